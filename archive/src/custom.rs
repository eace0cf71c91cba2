//! pg_dump custom-format (`-Fc`) archives: one file, header + TOC + data blocks.
//!
//! A data block is a type byte (1 table data, 3 large objects), the dump id, then chunks of
//! (length, bytes) ending with a zero length; with compression the chunks of one block form one
//! compressed stream. Offsets in the TOC point at blocks; an archive written to a pipe has no
//! offsets and its blocks are found by walking them in order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::ArchiveError;
use crate::primitives::{PrimReader, PrimWriter, OFFSET_NOT_SET, OFFSET_NO_DATA, OFFSET_SET};
use crate::toc::{
    entry_error, map_io, read_entries, validate, write_entries, DataCodec, Extra, Header, TocEntry,
    TocKind,
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
        let mut scanned = None;
        let pos = self
            .block_position(entry, &mut scanned)?
            .ok_or_else(|| entry_error(&self.path, entry, "has no data block"))?;
        let mut f = self.file()?;
        f.seek(SeekFrom::Start(pos)).map_err(|e| self.io(e))?;
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
        let chunks = ChunkReader {
            r,
            left: 0,
            done: false,
            path: self.path.clone(),
        };
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
        let mut left = len as u64;
        let mut buf = [0u8; 8192];
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            r.bytes_into(&mut buf[..n])
                .map_err(|e| map_io(e, path, "a data chunk"))?;
            left -= n as u64;
        }
    }
}

impl<R: Read> PrimReader<R> {
    fn bytes_into(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let v = self.bytes(buf.len())?;
        buf.copy_from_slice(&v);
        Ok(())
    }
}

/// A reader of the chunk payloads that start at `r`'s position (after a block or large-object
/// header), ending at the zero-length chunk.
pub fn chunk_reader<R: Read>(r: PrimReader<R>, path: PathBuf) -> impl Read {
    ChunkReader {
        r,
        left: 0,
        done: false,
        path,
    }
}

/// Reads the concatenated chunk payloads of one block.
struct ChunkReader<R> {
    r: PrimReader<R>,
    left: u64,
    done: bool,
    path: PathBuf,
}

impl<R: Read> Read for ChunkReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.left == 0 {
            if self.done {
                return Ok(0);
            }
            let len = self.r.int()?;
            if len < 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: negative chunk length {len}", self.path.display()),
                ));
            }
            if len == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = len as u64;
        }
        let want = (buf.len() as u64).min(self.left) as usize;
        let v = self.r.bytes(want)?;
        buf[..want].copy_from_slice(&v);
        self.left -= want as u64;
        Ok(want)
    }
}

fn decode<R: Read + Send + 'static>(
    codec: DataCodec,
    inner: R,
    path: &Path,
    entry: &TocEntry,
) -> Result<Box<dyn Read + Send>, ArchiveError> {
    Ok(match codec {
        DataCodec::None => Box::new(inner),
        DataCodec::Gzip => Box::new(flate2::read::ZlibDecoder::new(inner)),
        DataCodec::Zstd => Box::new(
            zstd::stream::read::Decoder::new(inner)
                .map_err(|e| entry_error(path, entry, e.to_string()))?,
        ),
        DataCodec::Lz4 => {
            return Err(entry_error(
                path,
                entry,
                "LZ4-compressed archives are not supported; re-dump with -Z gzip or -Z zstd",
            ))
        }
    })
}

/// Writes `archive` with `entries` as its TOC (same count and order of data-bearing entries,
/// usually only `defn` strings changed) to `out`: header and new TOC, then the data region
/// copied byte for byte, every set offset shifted by the change in TOC length. Written under a
/// temporary name and renamed.
pub fn rewrite_toc(
    archive: &CustomArchive,
    entries: &[TocEntry],
    out: &Path,
) -> Result<(), ArchiveError> {
    for (new, old) in entries.iter().zip(&archive.entries) {
        if new.extra != old.extra || new.dump_id != old.dump_id {
            return Err(entry_error(
                out,
                new,
                "rewrite_toc changes TOC text only; data offsets and dump ids must stay",
            ));
        }
    }
    if entries.len() != archive.entries.len() {
        return Err(ArchiveError::Corrupt {
            path: out.to_path_buf(),
            why: "rewrite_toc needs the same entries as the archive".into(),
        });
    }
    let mut probe = PrimWriter::new(
        Vec::new(),
        archive.header.int_size as usize,
        archive.header.off_size as usize,
    );
    archive
        .header
        .write(&mut probe)
        .map_err(|e| map_io(e, out, "the header"))?;
    write_entries(&mut probe, &archive.header, entries, out)?;
    let new_end = probe.inner.len() as i64;
    let shift = new_end - archive.toc_end as i64;
    let shifted: Vec<TocEntry> = entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if let Extra::Offset {
                flag: OFFSET_SET,
                pos,
            } = e.extra
            {
                e.extra = Extra::Offset {
                    flag: OFFSET_SET,
                    pos: (pos as i64 + shift) as u64,
                };
            }
            e
        })
        .collect();
    crate::atomic::write_file(out, |file| {
        let mut w = PrimWriter::new(
            BufWriter::with_capacity(1 << 20, file),
            archive.header.int_size as usize,
            archive.header.off_size as usize,
        );
        archive.header.write(&mut w)?;
        write_entries(&mut w, &archive.header, &shifted, out).map_err(io::Error::other)?;
        let mut src = File::open(&archive.path)?;
        src.seek(SeekFrom::Start(archive.toc_end))?;
        let mut inner = w.inner.into_inner().map_err(|e| e.into_error())?;
        // File to file: std uses copy_file_range, no user-space copy of the data blocks.
        let copied = io::copy(&mut src, &mut inner)?;
        if copied != archive.file_len - archive.toc_end {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive changed while it was copied",
            ));
        }
        Ok(())
    })
}

/// Builds a new custom archive: header and TOC first (offsets patched at the end), then data
/// blocks appended by the caller, in any order.
pub struct CustomWriter {
    path: PathBuf,
    temp: PathBuf,
    file: BufWriter<File>,
    header: Header,
    entries: Vec<TocEntry>,
    positions: HashMap<i32, u64>,
    pos: u64,
}

impl CustomWriter {
    /// Starts `path` (written as a temporary file until [`finish`](Self::finish)). Entries
    /// that will get data must carry `Extra::Offset { flag: OFFSET_NOT_SET, .. }`; the others
    /// `OFFSET_NO_DATA`.
    pub fn create(
        path: &Path,
        header: Header,
        entries: Vec<TocEntry>,
    ) -> Result<CustomWriter, ArchiveError> {
        let temp = crate::atomic::temp_name(path);
        let file = File::create(&temp).map_err(|source| ArchiveError::Io {
            path: temp.clone(),
            source,
        })?;
        let mut w = PrimWriter::new(
            BufWriter::with_capacity(1 << 20, file),
            header.int_size as usize,
            header.off_size as usize,
        );
        let io = |source| ArchiveError::Io {
            path: temp.clone(),
            source,
        };
        header.write(&mut w).map_err(io)?;
        write_entries(&mut w, &header, &entries, &temp)?;
        let mut file = w.inner;
        let pos = file.stream_position().map_err(io)?;
        Ok(CustomWriter {
            path: path.to_path_buf(),
            temp,
            file,
            header,
            entries,
            positions: HashMap::new(),
            pos,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Appends the data block of `dump_id`: `payload` is the already-encoded stream (zlib or
    /// zstd per the header, or plain), cut into chunks here.
    pub fn write_block(
        &mut self,
        dump_id: i32,
        kind: u8,
        payload: &mut dyn Read,
    ) -> Result<u64, ArchiveError> {
        let temp = self.temp.clone();
        let io = |source| ArchiveError::Io {
            path: temp.clone(),
            source,
        };
        self.positions.insert(dump_id, self.pos);
        let start = self.pos;
        let mut w = PrimWriter::new(
            &mut self.file,
            self.header.int_size as usize,
            self.header.off_size as usize,
        );
        w.byte(kind).map_err(io)?;
        w.int(dump_id as i64).map_err(io)?;
        let mut written = 1 + 1 + self.header.int_size as u64;
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = read_full(payload, &mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            w.int(n as i64).map_err(io)?;
            w.bytes(&buf[..n]).map_err(io)?;
            written += 1 + self.header.int_size as u64 + n as u64;
        }
        w.int(0).map_err(io)?;
        written += 1 + self.header.int_size as u64;
        self.pos = start + written;
        Ok(written)
    }

    /// Copies a block of another custom archive verbatim (large objects written by pg_dump).
    pub fn copy_block_from(
        &mut self,
        source: &CustomArchive,
        entry: &TocEntry,
    ) -> Result<(), ArchiveError> {
        let mut scanned = None;
        let Some(start) = source.block_position(entry, &mut scanned)? else {
            return Ok(());
        };
        // The block's length is found by walking it once; then it is copied raw.
        let mut f = source.file()?;
        f.seek(SeekFrom::Start(start)).map_err(|e| source.io(e))?;
        let mut r = PrimReader::new(BufReader::new(f));
        r.int_size = source.header.int_size as usize;
        r.off_size = source.header.off_size as usize;
        r.pos = start;
        let kind = r
            .byte()
            .map_err(|e| map_io(e, &source.path, "a data block"))?;
        r.int()
            .map_err(|e| map_io(e, &source.path, "a data block"))?;
        if kind == BLK_BLOBS {
            loop {
                let oid = r
                    .int()
                    .map_err(|e| map_io(e, &source.path, "a large-object block"))?;
                if oid == 0 {
                    break;
                }
                skip_chunks(&mut r, &source.path)?;
            }
        } else {
            skip_chunks(&mut r, &source.path)?;
        }
        let len = r.pos - start;
        let mut f = source.file()?;
        f.seek(SeekFrom::Start(start)).map_err(|e| source.io(e))?;
        self.positions.insert(entry.dump_id, self.pos);
        let copied = io::copy(&mut f.take(len), &mut self.file).map_err(|e| ArchiveError::Io {
            path: self.temp.clone(),
            source: e,
        })?;
        self.pos += copied;
        Ok(())
    }

    /// Patches the offsets into the TOC, syncs and renames the archive into place.
    pub fn finish(self) -> Result<(), ArchiveError> {
        let temp = self.temp.clone();
        let io = |source| ArchiveError::Io {
            path: temp.clone(),
            source,
        };
        let mut file = self.file.into_inner().map_err(|e| io(e.into_error()))?;
        let entries: Vec<TocEntry> = self
            .entries
            .into_iter()
            .map(|mut e| {
                e.extra = match self.positions.get(&e.dump_id) {
                    Some(&pos) => Extra::Offset {
                        flag: OFFSET_SET,
                        pos,
                    },
                    None => Extra::Offset {
                        flag: OFFSET_NO_DATA,
                        pos: 0,
                    },
                };
                e
            })
            .collect();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut w = PrimWriter::new(
            BufWriter::new(&mut file),
            self.header.int_size as usize,
            self.header.off_size as usize,
        );
        self.header.write(&mut w).map_err(io)?;
        write_entries(&mut w, &self.header, &entries, &temp)?;
        w.inner.flush().map_err(io)?;
        drop(w);
        file.sync_all().map_err(io)?;
        std::fs::rename(&temp, &self.path).map_err(|source| ArchiveError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Removes the temporary file (after an error).
    pub fn abandon(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Marks an entry as one whose data the writer will provide.
pub fn pending_offset() -> Extra {
    Extra::Offset {
        flag: OFFSET_NOT_SET,
        pos: 0,
    }
}

impl CustomWriter {
    /// Appends a large-object block: each object's oid, its (already encoded) chunks, and the
    /// closing oid 0.
    pub fn write_blobs_block(
        &mut self,
        dump_id: i32,
        blobs: Vec<(u32, Box<dyn Read + Send>)>,
    ) -> Result<(), ArchiveError> {
        let temp = self.temp.clone();
        let io = |source| ArchiveError::Io {
            path: temp.clone(),
            source,
        };
        self.positions.insert(dump_id, self.pos);
        let int = 1 + self.header.int_size as u64;
        let mut w = PrimWriter::new(
            &mut self.file,
            self.header.int_size as usize,
            self.header.off_size as usize,
        );
        w.byte(BLK_BLOBS).map_err(io)?;
        w.int(dump_id as i64).map_err(io)?;
        let mut written = 1 + int;
        let mut buf = vec![0u8; 128 * 1024];
        for (oid, mut payload) in blobs {
            w.int(oid as i64).map_err(io)?;
            written += int;
            loop {
                let n = read_full(&mut payload, &mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                w.int(n as i64).map_err(io)?;
                w.bytes(&buf[..n]).map_err(io)?;
                written += int + n as u64;
            }
            w.int(0).map_err(io)?;
            written += int;
        }
        w.int(0).map_err(io)?;
        written += int;
        self.pos += written;
        Ok(())
    }
}
