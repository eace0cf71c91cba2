//! pg_dump custom-format (`-Fc`) archives: one file, header + TOC + data blocks.
//!
//! A data block is a type byte (1 table data, 3 large objects), the dump id, then chunks of
//! (length, bytes) ending with a zero length; with compression the chunks of one block form one
//! compressed stream. Offsets in the TOC point at blocks; an archive written to a pipe has no
//! offsets and its blocks are found by walking them in order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

mod chunks;
mod rewrite;
mod stream;
mod writer;

pub use chunks::{decoder, ChunkReader, ChunkWriter, StreamEncoder, CHUNK_SIZE};
pub use rewrite::{rewrite_toc, rewrite_toc_stream};
pub use stream::{Block, RawChunks, StreamReader};
pub use writer::{header_level, pending_offset, BlockWriter, CustomWriter, StreamWriter};

use crate::error::ArchiveError;
use crate::primitives::{PrimReader, OFFSET_NO_DATA, OFFSET_SET};
use crate::toc::{
    entry_error, map_io, read_entries, validate, DataCodec, Extra, Header, TocEntry, TocKind,
};

pub const BLK_DATA: u8 = 1;
pub const BLK_BLOBS: u8 = 3;

/// An opened custom archive: header and TOC in memory (object count, not data size), data read
/// on demand.
#[derive(Debug, Clone)]
pub struct CustomArchive {
    pub path: PathBuf,
    pub header: Header,
    pub entries: Vec<TocEntry>,
    /// Byte position just past the TOC, where the data region starts.
    pub toc_end: u64,
    pub file_len: u64,
}

impl CustomArchive {
    pub fn open(path: &Path) -> Result<CustomArchive, ArchiveError> {
        let file = File::open(path).map_err(|source| ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file_len = file
            .metadata()
            .map_err(|source| ArchiveError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .len();
        let mut r = PrimReader::new(BufReader::with_capacity(256 * 1024, file));
        let header = Header::read(&mut r, path)?;
        if header.format != 1 {
            return Err(ArchiveError::Unsupported {
                path: path.to_path_buf(),
                why: format!(
                    "archive format byte {} is not the custom format (tar archives are not supported)",
                    header.format
                ),
            });
        }
        let entries = read_entries(&mut r, &header, TocKind::Custom, path, file_len)?;
        validate(&entries, path)?;
        let toc_end = r.pos;
        for e in &entries {
            if let Extra::Offset {
                flag: OFFSET_SET,
                pos,
            } = e.extra
            {
                if pos < toc_end || pos >= file_len {
                    return Err(entry_error(
                        path,
                        e,
                        format!("data offset {pos} lies outside the data region ({toc_end}..{file_len})"),
                    ));
                }
            }
        }
        Ok(CustomArchive {
            path: path.to_path_buf(),
            header,
            entries,
            toc_end,
            file_len,
        })
    }

    /// Positions of every data block, found by walking them from the end of the TOC (used when
    /// the archive was written to a pipe and has no offsets).
    pub fn scan_blocks(&self) -> Result<HashMap<i32, u64>, ArchiveError> {
        let mut f = self.file()?;
        f.seek(SeekFrom::Start(self.toc_end))
            .map_err(|e| self.io(e))?;
        let mut r = PrimReader::new(BufReader::new(f));
        r.int_size = self.header.int_size as usize;
        r.off_size = self.header.off_size as usize;
        r.pos = self.toc_end;
        let mut found = HashMap::new();
        while r.pos < self.file_len {
            let at = r.pos;
            let kind = r
                .byte()
                .map_err(|e| map_io(e, &self.path, "a data block"))?;
            let id = r.int().map_err(|e| map_io(e, &self.path, "a data block"))? as i32;
            match kind {
                BLK_DATA => skip_chunks(&mut r, &self.path)?,
                BLK_BLOBS => loop {
                    let oid = r
                        .int()
                        .map_err(|e| map_io(e, &self.path, "a large-object block"))?;
                    if oid == 0 {
                        break;
                    }
                    skip_chunks(&mut r, &self.path)?;
                },
                other => {
                    return Err(ArchiveError::Corrupt {
                        path: self.path.clone(),
                        why: format!("unknown data block type {other} at byte {at}"),
                    })
                }
            }
            found.insert(id, at);
        }
        Ok(found)
    }

    fn file(&self) -> Result<File, ArchiveError> {
        File::open(&self.path).map_err(|e| self.io(e))
    }

    fn io(&self, source: io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn block_position(
        &self,
        entry: &TocEntry,
        scanned: &mut Option<HashMap<i32, u64>>,
    ) -> Result<Option<u64>, ArchiveError> {
        match entry.extra {
            Extra::Offset {
                flag: OFFSET_SET,
                pos,
            } => Ok(Some(pos)),
            Extra::Offset {
                flag: OFFSET_NO_DATA,
                ..
            } => Ok(None),
            _ => {
                if scanned.is_none() {
                    *scanned = Some(self.scan_blocks()?);
                }
                Ok(scanned
                    .as_ref()
                    .and_then(|m| m.get(&entry.dump_id).copied()))
            }
        }
    }

    /// The decompressed payload of a TABLE DATA entry: COPY rows ending with the `\.` line.
    pub fn table_data(&self, entry: &TocEntry) -> Result<Box<dyn Read + Send>, ArchiveError> {
        self.table_data_watched(entry, crate::watch::unwatched())
    }

    /// [`CustomArchive::table_data`], telling `on_read` the bytes read from the data block's
    /// start (reads are 256 KiB ahead of the decoder, so the last may run into the next block).
    pub fn table_data_watched(
        &self,
        entry: &TocEntry,
        on_read: crate::watch::OnRead,
    ) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let mut scanned = None;
        let pos = self
            .block_position(entry, &mut scanned)?
            .ok_or_else(|| entry_error(&self.path, entry, "has no data block"))?;
        let mut f = self.file()?;
        f.seek(SeekFrom::Start(pos)).map_err(|e| self.io(e))?;
        let f = crate::watch::Watched::new(f, on_read);
        let mut r = PrimReader::new(BufReader::with_capacity(256 * 1024, f));
        r.int_size = self.header.int_size as usize;
        r.off_size = self.header.off_size as usize;
        let kind = r
            .byte()
            .map_err(|e| map_io(e, &self.path, "a data block header"))?;
        let id = r
            .int()
            .map_err(|e| map_io(e, &self.path, "a data block header"))? as i32;
        if kind != BLK_DATA || id != entry.dump_id {
            return Err(entry_error(
                &self.path,
                entry,
                format!("offset {pos} points at block type {kind} of entry {id}"),
            ));
        }
        let chunks = ChunkReader::new(r, self.path.clone());
        decode(self.header.data_codec(), chunks, &self.path, entry)
    }
}

fn skip_chunks<R: Read>(r: &mut PrimReader<R>, path: &Path) -> Result<(), ArchiveError> {
    loop {
        let len = r.int().map_err(|e| map_io(e, path, "a data chunk"))?;
        if len == 0 {
            return Ok(());
        }
        if len < 0 {
            return Err(ArchiveError::Corrupt {
                path: path.to_path_buf(),
                why: format!("negative chunk length {len}"),
            });
        }
        r.skip(len as u64)
            .map_err(|e| map_io(e, path, "a data chunk"))?;
    }
}

/// A reader of the chunk payloads that start at `r`'s position (after a block or large-object
/// header), ending at the zero-length chunk.
pub fn chunk_reader<R: Read>(r: PrimReader<R>, path: PathBuf) -> impl Read {
    ChunkReader::new(r, path)
}

fn decode<R: Read + Send + 'static>(
    codec: DataCodec,
    inner: R,
    path: &Path,
    entry: &TocEntry,
) -> Result<Box<dyn Read + Send>, ArchiveError> {
    let d = chunks::decoder(codec, inner).map_err(|e| entry_error(path, entry, e.to_string()))?;
    Ok(Box::new(EntryReader::new(d, path, entry, codec)))
}

/// Wraps an entry's data stream so read errors name the file, the entry and the codec: a
/// corrupt block reads as "a.dump: TOC entry 3387 (TABLE DATA orders): corrupt gzip data:
/// ...", not a bare "corrupt deflate stream".
pub struct EntryReader<R> {
    inner: R,
    path: PathBuf,
    label: String,
    codec: &'static str,
}

impl<R: Read> EntryReader<R> {
    pub fn new(inner: R, path: &Path, entry: &TocEntry, codec: DataCodec) -> Self {
        let codec = match codec {
            DataCodec::None => "",
            DataCodec::Gzip => "gzip ",
            DataCodec::Lz4 => "lz4 ",
            DataCodec::Zstd => "zstd ",
        };
        EntryReader {
            inner,
            path: path.to_path_buf(),
            label: format!(
                "TOC entry {} ({} {})",
                entry.dump_id,
                entry.desc(),
                entry.tag()
            ),
            codec,
        }
    }
}

impl<R: Read> Read for EntryReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::Interrupted {
                return e;
            }
            let shown = self.path.display().to_string();
            let msg = e.to_string();
            let rest = msg
                .strip_prefix(&shown)
                .map(|r| r.trim_start_matches(':').trim_start())
                .unwrap_or(&msg);
            let what = if e.kind() == io::ErrorKind::UnexpectedEof {
                "truncated"
            } else {
                "corrupt"
            };
            io::Error::new(
                e.kind(),
                format!("{shown}: {}: {what} {}data: {rest}", self.label, self.codec),
            )
        })
    }
}
