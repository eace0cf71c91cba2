//! Writing custom archives: header and TOC, then data blocks. [`CustomWriter`] writes a file
//! and patches real offsets into the TOC at the end (what pg_dump does on a seekable output);
//! [`StreamWriter`] writes to a pipe, offsets left "not set" so pg_restore walks the blocks in
//! order — blocks must then come in TOC order.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::chunks::{ChunkWriter, StreamEncoder};
use super::{skip_chunks, CustomArchive, BLK_BLOBS, BLK_DATA};
use crate::error::ArchiveError;
use crate::primitives::{PrimReader, PrimWriter, OFFSET_NOT_SET, OFFSET_NO_DATA, OFFSET_SET};
use crate::toc::{map_io, write_entries, DataCodec, Extra, Header, HeaderCompression, TocEntry};

/// Marks an entry as one whose data the writer will provide.
pub fn pending_offset() -> Extra {
    Extra::Offset {
        flag: OFFSET_NOT_SET,
        pos: 0,
    }
}

/// The compression level the header implies: the stored zlib level before 1.15, the codec's
/// default after (the header no longer records it).
pub fn header_level(header: &Header) -> i32 {
    match (header.compression, header.data_codec()) {
        (HeaderCompression::Level(l), DataCodec::Gzip) if (1..=9).contains(&l) => l as i32,
        (_, DataCodec::Zstd) => crate::codec::ZSTD_DEFAULT,
        _ => crate::codec::GZIP_DEFAULT as i32,
    }
}

/// The block-writing half shared by both writers: counts bytes to know where blocks start.
struct Blocks<W: Write> {
    out: W,
    pos: u64,
    header: Header,
    level: i32,
    positions: HashMap<i32, u64>,
}

impl<W: Write> Blocks<W> {
    fn int_size(&self) -> usize {
        self.header.int_size as usize
    }

    fn start(&mut self, dump_id: i32, kind: u8) -> io::Result<()> {
        self.positions.insert(dump_id, self.pos);
        let int_size = self.int_size();
        let mut w = PrimWriter::new(&mut self.out, int_size, 8);
        w.byte(kind)?;
        w.int(dump_id as i64)?;
        self.pos += 2 + self.int_size() as u64;
        Ok(())
    }

    fn int(&mut self, v: i64) -> io::Result<()> {
        let int_size = self.int_size();
        PrimWriter::new(&mut self.out, int_size, 8).int(v)?;
        self.pos += 1 + self.int_size() as u64;
        Ok(())
    }

    /// Frames `payload` (already encoded) as chunks.
    fn chunks_from(&mut self, payload: &mut dyn Read) -> io::Result<()> {
        let mut w = ChunkWriter::new(&mut self.out, self.header.int_size as usize);
        io::copy(payload, &mut w)?;
        let (_, n) = w.finish()?;
        self.pos += n;
        Ok(())
    }

    fn encoder(&mut self) -> io::Result<(StreamEncoder<&mut W>, &mut u64)> {
        let int_size = self.header.int_size as usize;
        let codec = self.header.data_codec();
        let enc = StreamEncoder::new(codec, self.level, ChunkWriter::new(&mut self.out, int_size))?;
        Ok((enc, &mut self.pos))
    }

    fn write_block(&mut self, dump_id: i32, kind: u8, payload: &mut dyn Read) -> io::Result<u64> {
        let start = self.pos;
        self.start(dump_id, kind)?;
        self.chunks_from(payload)?;
        Ok(self.pos - start)
    }

    fn data_writer(&mut self, dump_id: i32) -> io::Result<BlockWriter<'_, W>> {
        self.start(dump_id, BLK_DATA)?;
        let (enc, pos) = self.encoder()?;
        Ok(BlockWriter { enc, pos })
    }

    fn write_table_data(&mut self, dump_id: i32, data: &mut dyn Read) -> io::Result<u64> {
        let start = self.pos;
        let mut w = self.data_writer(dump_id)?;
        io::copy(data, &mut w)?;
        w.finish()?;
        Ok(self.pos - start)
    }

    fn write_blobs(
        &mut self,
        dump_id: i32,
        blobs: &mut dyn Iterator<Item = io::Result<(u32, Box<dyn Read + Send>)>>,
        encoded: bool,
    ) -> io::Result<u64> {
        let start = self.pos;
        self.start(dump_id, BLK_BLOBS)?;
        for blob in blobs {
            let (oid, mut r) = blob?;
            if oid == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "large object oid 0 would end the block",
                ));
            }
            self.int(oid as i64)?;
            if encoded {
                self.chunks_from(&mut r)?;
            } else {
                let (mut enc, _) = self.encoder()?;
                io::copy(&mut r, &mut enc)?;
                let (_, n) = enc.finish()?;
                self.pos += n;
            }
        }
        self.int(0)?;
        Ok(self.pos - start)
    }
}

/// A data block being written: what is written is compressed with the archive's codec and
/// framed in chunks. Call [`finish`](Self::finish); a dropped writer leaves a broken block.
pub struct BlockWriter<'a, W: Write> {
    enc: StreamEncoder<&'a mut W>,
    pos: &'a mut u64,
}

impl<W: Write> BlockWriter<'_, W> {
    /// Ends the compressed stream and the block; returns the block's bytes after its header.
    pub fn finish(self) -> io::Result<u64> {
        let (_, n) = self.enc.finish()?;
        *self.pos += n;
        Ok(n)
    }
}

impl<W: Write> Write for BlockWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.enc.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.enc.flush()
    }
}

/// Builds a new custom archive file: header and TOC first (offsets patched at the end), then
/// data blocks appended by the caller, in any order.
pub struct CustomWriter {
    path: PathBuf,
    temp: PathBuf,
    blocks: Blocks<BufWriter<File>>,
    entries: Vec<TocEntry>,
}

impl CustomWriter {
    /// Starts `path` (written as a temporary file until [`finish`](Self::finish)). Entries
    /// that will get data should carry [`pending_offset`]; the others `OFFSET_NO_DATA`. At
    /// the end every entry with a written block gets its offset, every other one "no data".
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
        let level = header_level(&header);
        Ok(CustomWriter {
            path: path.to_path_buf(),
            temp,
            blocks: Blocks {
                out: file,
                pos,
                header,
                level,
                positions: HashMap::new(),
            },
            entries,
        })
    }

    pub fn header(&self) -> &Header {
        &self.blocks.header
    }

    /// Overrides the compression level taken from the header (zlib 1-9, zstd 1-22).
    pub fn set_level(&mut self, level: i32) {
        self.blocks.level = level;
    }

    fn io(&self) -> impl Fn(io::Error) -> ArchiveError + '_ {
        move |source| ArchiveError::Io {
            path: self.temp.clone(),
            source,
        }
    }

    /// Appends the data block of `dump_id`: `payload` is the already-encoded stream (zlib or
    /// zstd per the header, or plain), cut into chunks here. Returns the block's length.
    pub fn write_block(
        &mut self,
        dump_id: i32,
        kind: u8,
        payload: &mut dyn Read,
    ) -> Result<u64, ArchiveError> {
        let r = self.blocks.write_block(dump_id, kind, payload);
        r.map_err(self.io())
    }

    /// Appends a TABLE DATA block with `data` (COPY text, ending with the `\.` line as
    /// pg_dump's does), compressed as the header says. Returns the block's length.
    pub fn write_table_data(
        &mut self,
        dump_id: i32,
        data: &mut dyn Read,
    ) -> Result<u64, ArchiveError> {
        let r = self.blocks.write_table_data(dump_id, data);
        r.map_err(self.io())
    }

    /// A writer of the TABLE DATA block of `dump_id`, compressing as the header says; call
    /// `finish` on it before the next block.
    pub fn data_writer(
        &mut self,
        dump_id: i32,
    ) -> Result<BlockWriter<'_, BufWriter<File>>, ArchiveError> {
        let temp = self.temp.clone();
        self.blocks
            .data_writer(dump_id)
            .map_err(|source| ArchiveError::Io { path: temp, source })
    }

    /// Appends a large-object block: each object's oid, its (already encoded) chunks, and the
    /// closing oid 0.
    pub fn write_blobs_block(
        &mut self,
        dump_id: i32,
        blobs: Vec<(u32, Box<dyn Read + Send>)>,
    ) -> Result<(), ArchiveError> {
        let mut it = blobs.into_iter().map(Ok);
        let r = self.blocks.write_blobs(dump_id, &mut it, true);
        r.map(|_| ()).map_err(self.io())
    }

    /// Appends a large-object block from the objects' plain contents, each compressed as its
    /// own stream as the header says. Readers are taken one at a time from `blobs`.
    pub fn write_blobs(
        &mut self,
        dump_id: i32,
        blobs: impl IntoIterator<Item = io::Result<(u32, Box<dyn Read + Send>)>>,
    ) -> Result<u64, ArchiveError> {
        let mut it = blobs.into_iter();
        let r = self.blocks.write_blobs(dump_id, &mut it, false);
        r.map_err(self.io())
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
        let len = block_length(source, start)?;
        let mut f = source.file()?;
        f.seek(SeekFrom::Start(start)).map_err(|e| source.io(e))?;
        self.blocks.positions.insert(entry.dump_id, self.blocks.pos);
        let copied = io::copy(&mut f.take(len), &mut self.blocks.out).map_err(self.io())?;
        if copied != len {
            return Err(map_io(
                io::ErrorKind::UnexpectedEof.into(),
                &source.path,
                "a data block",
            ));
        }
        self.blocks.pos += copied;
        Ok(())
    }

    /// Patches the offsets into the TOC, syncs and renames the archive into place.
    pub fn finish(self) -> Result<(), ArchiveError> {
        let temp = self.temp.clone();
        let io = |source| ArchiveError::Io {
            path: temp.clone(),
            source,
        };
        let Blocks {
            out,
            header,
            positions,
            ..
        } = self.blocks;
        let mut file = out.into_inner().map_err(|e| io(e.into_error()))?;
        let entries: Vec<TocEntry> = self
            .entries
            .into_iter()
            .map(|mut e| {
                e.extra = match positions.get(&e.dump_id) {
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
            header.int_size as usize,
            header.off_size as usize,
        );
        header.write(&mut w).map_err(io)?;
        write_entries(&mut w, &header, &entries, &temp)?;
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

/// The length of the block starting at `start`, found by walking its chunks.
fn block_length(source: &CustomArchive, start: u64) -> Result<u64, ArchiveError> {
    let mut f = source.file()?;
    f.seek(SeekFrom::Start(start)).map_err(|e| source.io(e))?;
    let mut r = PrimReader::new(BufReader::new(f));
    r.int_size = source.header.int_size as usize;
    r.off_size = source.header.off_size as usize;
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
    Ok(r.pos)
}

/// Writes a custom archive to a pipe: header and TOC at once with every data offset "not
/// set", then the blocks, which must follow TOC order (pg_restore reading a pipe only moves
/// forward).
pub struct StreamWriter<W: Write> {
    blocks: Blocks<W>,
    order: Vec<i32>,
    next: usize,
}

impl<W: Write> StreamWriter<W> {
    /// Writes header and TOC to `out`. Entries with data (any offset flag but "no data")
    /// are written as "not set".
    pub fn new(
        out: W,
        header: Header,
        entries: &[TocEntry],
        name: &Path,
    ) -> Result<StreamWriter<W>, ArchiveError> {
        let entries: Vec<TocEntry> = entries
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Extra::Offset { flag, .. } = e.extra {
                    if flag != OFFSET_NO_DATA {
                        e.extra = pending_offset();
                    }
                }
                e
            })
            .collect();
        let order = entries
            .iter()
            .filter(|e| {
                matches!(
                    e.extra,
                    Extra::Offset {
                        flag: OFFSET_NOT_SET,
                        ..
                    }
                )
            })
            .map(|e| e.dump_id)
            .collect();
        let toc = crate::toc::Toc {
            header: header.clone(),
            entries,
        };
        let pos = toc.encoded_len();
        let out = toc.write(out, name)?;
        let level = header_level(&header);
        Ok(StreamWriter {
            blocks: Blocks {
                out,
                pos,
                header,
                level,
                positions: HashMap::new(),
            },
            order,
            next: 0,
        })
    }

    /// Refuses a block pg_restore could not find: one that comes before an already written
    /// block in TOC order, or one for an entry without data.
    fn check_order(&mut self, dump_id: i32) -> io::Result<()> {
        match self.order[self.next..].iter().position(|&id| id == dump_id) {
            Some(i) => {
                self.next += i + 1;
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "data block of entry {dump_id} is out of TOC order or for an entry without data"
                ),
            )),
        }
    }

    pub fn write_block(
        &mut self,
        dump_id: i32,
        kind: u8,
        payload: &mut dyn Read,
    ) -> io::Result<u64> {
        self.check_order(dump_id)?;
        self.blocks.write_block(dump_id, kind, payload)
    }

    pub fn write_table_data(&mut self, dump_id: i32, data: &mut dyn Read) -> io::Result<u64> {
        self.check_order(dump_id)?;
        self.blocks.write_table_data(dump_id, data)
    }

    pub fn data_writer(&mut self, dump_id: i32) -> io::Result<BlockWriter<'_, W>> {
        self.check_order(dump_id)?;
        self.blocks.data_writer(dump_id)
    }

    pub fn write_blobs(
        &mut self,
        dump_id: i32,
        blobs: impl IntoIterator<Item = io::Result<(u32, Box<dyn Read + Send>)>>,
    ) -> io::Result<u64> {
        self.check_order(dump_id)?;
        self.blocks
            .write_blobs(dump_id, &mut blobs.into_iter(), false)
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.blocks.out.flush()?;
        Ok(self.blocks.out)
    }
}
