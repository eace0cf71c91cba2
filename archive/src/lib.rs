//! On-disk formats and compression codecs.
//!
//! pg_dump's custom (`-Fc`) and directory (`-Fd`) archives, versions 1.12 to 1.16 (pg_dump 11
//! to 18): read, rewritten with changed TOC text (data blocks copied byte for byte, offsets
//! shifted), and built anew with our own data entries — always so that stock `pg_restore`
//! accepts the result. The codecs are the ones every cbtools command writes and reads.
//!
//! * [`toc`]: header and TOC model shared by both formats, look-ups ([`toc::Entries`]).
//! * [`custom`]: `-Fc` files read by offset ([`CustomArchive`]) or front to back from a pipe
//!   ([`custom::StreamReader`]); TOC rewrites; writers to files and pipes.
//! * [`directory`]: `-Fd` directories: `toc.dat`, data files, [`directory::DirectoryWriter`].
//! * [`blobs`]: large objects of either format.
//! * [`codec`]: compression specs, detection and streaming encoders/decoders; gzip written as
//!   libdeflate members ([`gzip_members`], marked so a file cut at a member boundary is caught),
//!   read back by ISA-L or zlib-rs ([`inflate`]).
//! * [`primitives`], [`atomic`], [`error`]: the encodings, temp-and-rename, typed errors.

pub mod atomic;
pub mod blobs;
pub mod codec;
pub mod custom;
pub mod directory;
pub mod error;
pub mod gzip_members;
mod gzip_reader;
pub mod inflate;
pub mod primitives;
pub mod toc;
pub mod watch;

pub use codec::Compression;
pub use custom::CustomArchive;
pub use directory::{DirectoryArchive, DirectoryWriter};
pub use error::ArchiveError;

fn custom_offset(e: &TocEntry) -> Option<u64> {
    match e.extra {
        toc::Extra::Offset {
            flag: primitives::OFFSET_SET,
            pos,
        } => Some(pos),
        _ => None,
    }
}
pub use toc::{Entries, Header, HeaderError, Section, Toc, TocEntry};

/// An archive of either kind, opened from a path (a file or a directory).
#[derive(Debug, Clone)]
pub enum Archive {
    Custom(CustomArchive),
    Directory(DirectoryArchive),
}

impl Archive {
    /// Opens a custom archive file or a directory archive; `Ok(None)` when `path` is neither
    /// (for example a plain SQL file).
    pub fn open(path: &std::path::Path) -> Result<Option<Archive>, ArchiveError> {
        if path.is_dir() {
            if DirectoryArchive::is_archive(path) {
                return Ok(Some(Archive::Directory(DirectoryArchive::open(path)?)));
            }
            return Ok(None);
        }
        let mut head = [0u8; 5];
        let n = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .map_err(|source| ArchiveError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if n == 5 && &head == b"PGDMP" {
            return Ok(Some(Archive::Custom(CustomArchive::open(path)?)));
        }
        Ok(None)
    }

    pub fn header(&self) -> &Header {
        match self {
            Archive::Custom(a) => &a.header,
            Archive::Directory(a) => &a.header,
        }
    }

    pub fn entries(&self) -> &[TocEntry] {
        match self {
            Archive::Custom(a) => &a.entries,
            Archive::Directory(a) => &a.entries,
        }
    }

    /// How many bytes an entry's data takes in the archive (compressed, as stored), when that
    /// is known without reading it: the data file's size, or the distance to the next data
    /// block of a custom archive with offsets. Used to tell big tables from small ones.
    pub fn stored_size(&self, entry: &TocEntry) -> Option<u64> {
        match self {
            Archive::Directory(a) => {
                let path = a.data_file(entry).ok()??;
                std::fs::metadata(path).ok().map(|m| m.len())
            }
            Archive::Custom(a) => {
                let start = custom_offset(entry)?;
                let next = a
                    .entries
                    .iter()
                    .filter_map(custom_offset)
                    .filter(|&p| p > start)
                    .min()
                    .unwrap_or(a.file_len);
                Some(next - start)
            }
        }
    }

    /// The decompressed COPY data of a TABLE DATA entry.
    pub fn table_data(
        &self,
        entry: &TocEntry,
    ) -> Result<Box<dyn std::io::Read + Send>, ArchiveError> {
        self.table_data_watched(entry, watch::unwatched())
    }

    /// [`Archive::table_data`], telling `on_read` how many stored bytes (compressed, as in
    /// [`Archive::stored_size`]) were read so far.
    pub fn table_data_watched(
        &self,
        entry: &TocEntry,
        on_read: watch::OnRead,
    ) -> Result<Box<dyn std::io::Read + Send>, ArchiveError> {
        match self {
            Archive::Custom(a) => a.table_data_watched(entry, on_read),
            Archive::Directory(a) => a.table_data_watched(entry, on_read),
        }
    }
}
