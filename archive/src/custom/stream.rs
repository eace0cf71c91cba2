//! Reading a custom archive front to back from any reader — a pipe from `pg_dump -Fc`, or a
//! file read without seeking. Blocks come in file order; the caller reads the ones it wants
//! and the rest are skipped without being decompressed.

use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::chunks::{decoder, read_chunks, skip_rest};
use super::rewrite::shifted_entries;
use super::{BLK_BLOBS, BLK_DATA};
use crate::error::ArchiveError;
use crate::primitives::PrimReader;
use crate::toc::{map_io, read_entries, validate, Header, Toc, TocEntry, TocKind};

/// Strings in a streamed TOC are bounded by this (there is no file size to bound them).
const MAX_STRING: u64 = 1 << 30;

/// The block the reader is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// [`BLK_DATA`] or [`BLK_BLOBS`].
    pub kind: u8,
    pub dump_id: i32,
}

/// A custom archive read sequentially. Header and TOC are read by [`new`](Self::new); then
/// [`next_block`](Self::next_block) moves from block to block.
pub struct StreamReader<R: Read> {
    r: PrimReader<BufReader<R>>,
    path: PathBuf,
    pub header: Header,
    pub entries: Vec<TocEntry>,
    /// Bytes of header and TOC: where the data region starts.
    pub toc_end: u64,
    block: Option<Block>,
    /// A chunk sequence (a data block's or one large object's) is open.
    in_chunks: bool,
    left: u64,
    done: bool,
    /// Inside a large-object block whose closing oid 0 has not been read.
    blobs_open: bool,
}

impl<R: Read> StreamReader<R> {
    /// Reads header and TOC. `name` is used in errors (the file, or `-` for standard input).
    pub fn new(input: R, name: &Path) -> Result<StreamReader<R>, ArchiveError> {
        let mut r = PrimReader::new(BufReader::with_capacity(256 * 1024, input));
        let header = Header::read(&mut r, name)?;
        if header.format != 1 {
            return Err(ArchiveError::Unsupported {
                path: name.to_path_buf(),
                why: format!(
                    "archive format byte {} is not the custom format",
                    header.format
                ),
            });
        }
        let entries = read_entries(&mut r, &header, TocKind::Custom, name, MAX_STRING)?;
        validate(&entries, name)?;
        let toc_end = r.pos;
        Ok(StreamReader {
            r,
            path: name.to_path_buf(),
            header,
            entries,
            toc_end,
            block: None,
            in_chunks: false,
            left: 0,
            done: true,
            blobs_open: false,
        })
    }

    /// Header and TOC as one value.
    pub fn toc(&self) -> Toc {
        Toc {
            header: self.header.clone(),
            entries: self.entries.clone(),
        }
    }

    /// Bytes consumed from the input so far.
    pub fn position(&self) -> u64 {
        self.r.pos
    }

    fn corrupt(&self, why: String) -> ArchiveError {
        ArchiveError::Corrupt {
            path: self.path.clone(),
            why,
        }
    }

    fn finish_chunks(&mut self) -> Result<(), ArchiveError> {
        if self.in_chunks {
            skip_rest(&mut self.r, &mut self.left, &mut self.done, &self.path)
                .map_err(|e| map_io(e, &self.path, "a data block"))?;
            self.in_chunks = false;
        }
        Ok(())
    }

    fn open_chunks(&mut self) {
        self.in_chunks = true;
        self.left = 0;
        self.done = false;
    }

    /// Moves to the next block (skipping what is left of the current one); `None` at the end
    /// of the archive.
    pub fn next_block(&mut self) -> Result<Option<Block>, ArchiveError> {
        self.finish_chunks()?;
        while self.blobs_open {
            self.next_blob()?;
            self.finish_chunks()?;
        }
        let at = self.r.pos;
        let Some(kind) = self
            .r
            .byte_or_end()
            .map_err(|e| map_io(e, &self.path, "a data block header"))?
        else {
            self.block = None;
            return Ok(None);
        };
        let dump_id =
            self.r
                .int()
                .map_err(|e| map_io(e, &self.path, "a data block header"))? as i32;
        match kind {
            BLK_DATA => self.open_chunks(),
            BLK_BLOBS => self.blobs_open = true,
            other => {
                return Err(self.corrupt(format!("unknown data block type {other} at byte {at}")))
            }
        }
        if !self.entries.iter().any(|e| e.dump_id == dump_id) {
            return Err(self.corrupt(format!(
                "data block at byte {at} belongs to dump id {dump_id}, which is not in the TOC"
            )));
        }
        let block = Block { kind, dump_id };
        self.block = Some(block);
        Ok(Some(block))
    }

    /// Inside a large-object block: moves to the next object and returns its oid; `None` when
    /// the block's objects are exhausted.
    pub fn next_blob(&mut self) -> Result<Option<u32>, ArchiveError> {
        if !self.blobs_open {
            return Ok(None);
        }
        self.finish_chunks()?;
        let oid = self
            .r
            .int()
            .map_err(|e| map_io(e, &self.path, "a large-object block"))?;
        if oid == 0 {
            self.blobs_open = false;
            return Ok(None);
        }
        if !(1..=u32::MAX as i64).contains(&oid) {
            return Err(self.corrupt(format!("large object oid {oid}")));
        }
        self.open_chunks();
        Ok(Some(oid as u32))
    }

    /// The compressed bytes of the current data block or large object, as stored.
    pub fn raw(&mut self) -> Result<RawChunks<'_, R>, ArchiveError> {
        if !self.in_chunks {
            return Err(self.corrupt(
                "no data block or large object is open (call next_block / next_blob)".into(),
            ));
        }
        Ok(RawChunks { s: self })
    }

    /// The decompressed contents of the current data block (COPY text ending with `\.`) or
    /// large object. Unread rest is skipped by the next `next_block`/`next_blob`.
    pub fn data(&mut self) -> Result<Box<dyn Read + '_>, ArchiveError>
    where
        R: Send,
    {
        let codec = self.header.data_codec();
        let path = self.path.clone();
        let raw = self.raw()?;
        match decoder(codec, raw) {
            Ok(d) => Ok(d),
            Err(e) => Err(ArchiveError::Unsupported {
                path,
                why: e.to_string(),
            }),
        }
    }

    /// Writes the archive again with `entries` as its TOC (same entries, text changed) and
    /// copies everything after the TOC unchanged. Only before the first `next_block`.
    pub fn rewrite<W: Write>(mut self, entries: &[TocEntry], out: W) -> Result<u64, ArchiveError> {
        if self.r.pos != self.toc_end {
            return Err(self.corrupt("rewrite must start before the first data block".into()));
        }
        let shifted = shifted_entries(
            &self.header,
            &self.entries,
            self.toc_end,
            entries,
            &self.path,
        )?;
        let toc = Toc {
            header: self.header.clone(),
            entries: shifted,
        };
        let head = toc.encoded_len();
        let mut out = toc.write(out, &self.path)?;
        let copied = io::copy(self.r.get_mut(), &mut out).map_err(|source| ArchiveError::Io {
            path: self.path.clone(),
            source,
        })?;
        out.flush().map_err(|source| ArchiveError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(head + copied)
    }
}

/// The stored bytes of the open chunk sequence of a [`StreamReader`].
pub struct RawChunks<'a, R: Read> {
    s: &'a mut StreamReader<R>,
}

impl<R: Read> Read for RawChunks<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let s = &mut *self.s;
        read_chunks(&mut s.r, &mut s.left, &mut s.done, &s.path, buf)
    }
}
