//! pg_dump directory-format (`-Fd`) archives: `toc.dat` (header + TOC whose entries name their
//! data files) and one file per data entry, `<dumpId>.dat` plus `.gz`/`.zst`/`.lz4` when
//! compressed; large objects in `blobs.toc` and `blob_<oid>.dat`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

use crate::codec::Compression;
use crate::error::ArchiveError;
use crate::primitives::{PrimReader, PrimWriter};
use crate::toc::{
    entry_error, read_entries, validate, write_entries, Extra, Header, TocEntry, TocKind,
};

#[derive(Debug, Clone)]
pub struct DirectoryArchive {
    pub dir: PathBuf,
    pub header: Header,
    pub entries: Vec<TocEntry>,
}

impl DirectoryArchive {
    pub fn toc_path(dir: &Path) -> PathBuf {
        dir.join("toc.dat")
    }

    /// Whether `dir` looks like a directory archive.
    pub fn is_archive(dir: &Path) -> bool {
        Self::toc_path(dir).is_file()
    }

    pub fn open(dir: &Path) -> Result<DirectoryArchive, ArchiveError> {
        let path = Self::toc_path(dir);
        let file = File::open(&path).map_err(|source| ArchiveError::Io {
            path: path.clone(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| ArchiveError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        let mut r = PrimReader::new(BufReader::new(file));
        let header = Header::read(&mut r, &path)?;
        let entries = read_entries(&mut r, &header, TocKind::Directory, &path, len)?;
        validate(&entries, &path)?;
        if r.pos != len {
            return Err(ArchiveError::Corrupt {
                path,
                why: format!("{} bytes follow the TOC", len - r.pos),
            });
        }
        Ok(DirectoryArchive {
            dir: dir.to_path_buf(),
            header,
            entries,
        })
    }

    /// The data file of an entry as it exists on disk (the TOC names `N.dat`; the writer adds
    /// the compression suffix), or `None` for entries without data.
    pub fn data_file(&self, entry: &TocEntry) -> Result<Option<PathBuf>, ArchiveError> {
        let Extra::File(Some(name)) = &entry.extra else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(name).into_owned();
        if name.contains('/') || name.starts_with('.') {
            return Err(entry_error(
                &self.dir,
                entry,
                format!("data file name {name:?} leaves the archive directory"),
            ));
        }
        for suffix in ["", ".gz", ".zst", ".lz4"] {
            let p = self.dir.join(format!("{name}{suffix}"));
            if p.is_file() {
                return Ok(Some(p));
            }
        }
        Err(entry_error(
            &self.dir,
            entry,
            format!("data file {name} (or {name}.gz/.zst) is missing"),
        ))
    }

    /// The decompressed data of a TABLE DATA entry.
    pub fn table_data(&self, entry: &TocEntry) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let path = self
            .data_file(entry)?
            .ok_or_else(|| entry_error(&self.dir, entry, "has no data file"))?;
        if path.extension().is_some_and(|e| e == "lz4") {
            return Err(entry_error(
                &self.dir,
                entry,
                "LZ4-compressed data files are not supported; re-dump with -Z gzip or -Z zstd",
            ));
        }
        let c = Compression::detect(&path).map_err(|source| ArchiveError::Io {
            path: path.clone(),
            source,
        })?;
        let f = File::open(&path).map_err(|source| ArchiveError::Io {
            path: path.clone(),
            source,
        })?;
        let r = BufReader::with_capacity(256 * 1024, f);
        Ok(match c {
            Compression::None => Box::new(r),
            Compression::Gzip(_) => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            Compression::Zstd(_) => Box::new(
                zstd::stream::read::Decoder::with_buffer(r)
                    .map_err(|source| ArchiveError::Io { path, source })?,
            ),
        })
    }

    /// Writes `toc.dat` of `dir` with this header and these entries (temporary name, rename).
    pub fn write_toc(
        dir: &Path,
        header: &Header,
        entries: &[TocEntry],
    ) -> Result<(), ArchiveError> {
        let path = Self::toc_path(dir);
        crate::atomic::write_file(&path, |file| {
            let mut w = PrimWriter::new(
                BufWriter::new(file),
                header.int_size as usize,
                header.off_size as usize,
            );
            header.write(&mut w)?;
            write_entries(&mut w, header, entries, &path).map_err(std::io::Error::other)?;
            use std::io::Write;
            w.inner.flush()
        })
    }
}
