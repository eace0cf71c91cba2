//! Writing one COPY stream into one or more part files under temporary names.
//!
//! The writer sees raw COPY bytes in buffers of any size. It finds row ends with the
//! [`RowScanner`], counts rows, cuts parts at row boundaries when `--split-rows` or
//! `--split-bytes` says so, repeats the header row at the top of every part when asked, and
//! feeds each part through the compressor and a SHA-256 of the bytes that land on disk.
//! Nothing is ever held in memory beyond one buffer and the tail of one unfinished row (capped;
//! a longer row streams through and may be the only reason a part exceeds `--split-bytes`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::rows::{RowScanner, RowSyntax};
use archive::codec::{Compression, Encoder};

/// The largest unfinished row we hold back while deciding where a part ends.
const CARRY_CAP: usize = 1 << 20;

/// A finished part under its temporary name.
#[derive(Debug, Clone)]
pub struct PartFile {
    pub temp: PathBuf,
    /// Data rows (the header row not counted).
    pub rows: u64,
    /// Bytes of COPY output in the part (header included), before compression.
    pub raw_bytes: u64,
    /// Bytes of the file on disk.
    pub file_bytes: u64,
    pub sha256: [u8; 32],
}

/// When to start a new part.
#[derive(Debug, Clone, Copy, Default)]
pub struct SplitLimits {
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
}

impl SplitLimits {
    pub fn active(&self) -> bool {
        self.rows.is_some() || self.bytes.is_some()
    }
}

/// What to do with the header row at the top of the COPY stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMode {
    /// The stream has no header.
    Absent,
    /// The stream has one; write it at the top of the first part only.
    First,
    /// The stream has one; write it at the top of every part.
    EveryPart,
    /// The stream has one; drop it (a later chunk of a table whose first chunk keeps it).
    Drop,
}

/// Splits, compresses and hashes one stream into temporary part files in `dir`.
pub struct StreamWriter {
    dir: PathBuf,
    temp_base: String,
    compression: Compression,
    limits: SplitLimits,
    header_mode: HeaderMode,
    scanner: RowScanner,
    ends: Vec<usize>,
    awaiting_header: bool,
    header: Vec<u8>,
    carry: Vec<u8>,
    streaming_row: bool,
    current: Option<OpenPart>,
    done: Vec<PartFile>,
    sync: bool,
}

struct OpenPart {
    temp: PathBuf,
    encoder: Encoder<HashingWriter<BufWriter<File>>>,
    rows: u64,
    raw_bytes: u64,
}

impl StreamWriter {
    /// `temp_base` names the temporary files (`<temp_base>.<n>`); it must be unique per stream.
    pub fn new(
        dir: &Path,
        temp_base: String,
        compression: Compression,
        limits: SplitLimits,
        header_mode: HeaderMode,
        syntax: RowSyntax,
        sync: bool,
    ) -> StreamWriter {
        StreamWriter {
            dir: dir.to_path_buf(),
            temp_base,
            compression,
            limits,
            header_mode,
            scanner: RowScanner::new(syntax),
            ends: Vec::new(),
            awaiting_header: header_mode != HeaderMode::Absent,
            header: Vec::new(),
            carry: Vec::new(),
            streaming_row: false,
            current: None,
            done: Vec::new(),
            sync,
        }
    }

    /// Takes the next piece of the COPY stream.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut ends = std::mem::take(&mut self.ends);
        ends.clear();
        self.scanner.scan(buf, &mut ends);
        let mut pos = 0;
        // Rows that go whole into the open part are counted one by one but handed to the
        // encoder as one run: a compressor call per 100-byte row costs more than the row.
        let mut run = 0;
        for &end in &ends {
            if self.takes_whole(end - pos) {
                let part = self.current.as_mut().expect("takes_whole needs a part");
                part.raw_bytes += (end - pos) as u64;
                part.rows += 1;
            } else {
                self.write_run(&buf[run..pos])?;
                self.complete_row(&buf[pos..end])?;
                run = end;
            }
            pos = end;
        }
        self.write_run(&buf[run..pos])?;
        if pos < buf.len() {
            self.partial_row(&buf[pos..])?;
        }
        self.ends = ends;
        Ok(())
    }

    /// Ends the stream: closes the last part (an empty stream still yields one file, holding
    /// the header when there is one) and returns every part in order.
    pub fn finish(mut self) -> io::Result<Vec<PartFile>> {
        if !self.carry.is_empty() || self.streaming_row {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the COPY stream ended in the middle of a row",
            ));
        }
        if self.current.is_none() && self.done.is_empty() {
            self.open_part()?;
        }
        self.close_part()?;
        Ok(self.done)
    }

    /// Removes every temporary file written so far (after an error).
    pub fn discard(mut self) {
        if let Some(open) = self.current.take() {
            let _ = std::fs::remove_file(&open.temp);
        }
        for p in &self.done {
            let _ = std::fs::remove_file(&p.temp);
        }
    }

    /// Whether a complete row of `len` bytes, with nothing carried before it, goes into the
    /// open part without any other bookkeeping.
    fn takes_whole(&self, len: usize) -> bool {
        if self.awaiting_header || self.streaming_row || !self.carry.is_empty() {
            return false;
        }
        let Some(p) = &self.current else {
            return false;
        };
        !(self.limits.rows.is_some_and(|n| p.rows >= n)
            || self
                .limits
                .bytes
                .is_some_and(|b| p.rows > 0 && p.raw_bytes + len as u64 > b))
    }

    /// Rows already counted by [`takes_whole`](Self::takes_whole), written in one call.
    fn write_run(&mut self, rows: &[u8]) -> io::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let part = self.current.as_mut().expect("counted rows have a part");
        part.encoder.write_all(rows)
    }

    fn complete_row(&mut self, tail: &[u8]) -> io::Result<()> {
        if self.awaiting_header {
            self.header.extend_from_slice(&self.carry);
            self.header.extend_from_slice(tail);
            self.carry.clear();
            self.awaiting_header = false;
            return Ok(());
        }
        if self.streaming_row {
            let part = self.current.as_mut().expect("a streaming row has a part");
            part.encoder.write_all(tail)?;
            part.raw_bytes += tail.len() as u64;
            part.rows += 1;
            self.streaming_row = false;
            return Ok(());
        }
        let len = (self.carry.len() + tail.len()) as u64;
        self.before_row(len)?;
        let part = self.current.as_mut().expect("before_row opens a part");
        if !self.carry.is_empty() {
            part.encoder.write_all(&self.carry)?;
            self.carry.clear();
        }
        part.encoder.write_all(tail)?;
        part.raw_bytes += len;
        part.rows += 1;
        Ok(())
    }

    fn partial_row(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.awaiting_header {
            self.carry.extend_from_slice(bytes);
            return Ok(());
        }
        if self.streaming_row {
            let part = self.current.as_mut().expect("a streaming row has a part");
            part.encoder.write_all(bytes)?;
            part.raw_bytes += bytes.len() as u64;
            return Ok(());
        }
        if self.carry.len() + bytes.len() <= CARRY_CAP {
            self.carry.extend_from_slice(bytes);
            return Ok(());
        }
        // A very long row: decide its part on what we know and stream the rest through.
        let len = (self.carry.len() + bytes.len()) as u64;
        self.before_row(len)?;
        let part = self.current.as_mut().expect("before_row opens a part");
        part.encoder.write_all(&self.carry)?;
        part.encoder.write_all(bytes)?;
        part.raw_bytes += len;
        self.carry.clear();
        self.streaming_row = true;
        Ok(())
    }

    /// Makes sure a part is open that may take a row of `len` bytes.
    fn before_row(&mut self, len: u64) -> io::Result<()> {
        let cut = match &self.current {
            None => {
                self.open_part()?;
                false
            }
            Some(p) => {
                self.limits.rows.is_some_and(|n| p.rows >= n)
                    || self
                        .limits
                        .bytes
                        .is_some_and(|b| p.rows > 0 && p.raw_bytes + len > b)
            }
        };
        if cut {
            self.close_part()?;
            self.open_part()?;
        }
        Ok(())
    }

    fn open_part(&mut self) -> io::Result<()> {
        let n = self.done.len() + 1;
        let temp = self.dir.join(format!("{}.{n}", self.temp_base));
        let file = File::create(&temp).map_err(|e| annotate(e, &temp))?;
        let hashing = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
        let mut encoder = self.compression.encoder(hashing)?;
        let with_header = match self.header_mode {
            HeaderMode::EveryPart => true,
            HeaderMode::First => n == 1,
            HeaderMode::Absent | HeaderMode::Drop => false,
        };
        let mut raw_bytes = 0;
        if with_header {
            encoder.write_all(&self.header)?;
            raw_bytes = self.header.len() as u64;
        }
        self.current = Some(OpenPart {
            temp,
            encoder,
            rows: 0,
            raw_bytes,
        });
        Ok(())
    }

    fn close_part(&mut self) -> io::Result<()> {
        if let Some(open) = self.current.take() {
            let hashing = open.encoder.finish()?;
            let (buffered, sha256, file_bytes) = hashing.finish();
            let file = buffered
                .into_inner()
                .map_err(|e| annotate(e.into_error(), &open.temp))?;
            // Durable before it can be renamed into place (pg_dump's default too; `--no-sync`
            // skips it).
            if self.sync {
                file.sync_data().map_err(|e| annotate(e, &open.temp))?;
            }
            self.done.push(PartFile {
                temp: open.temp,
                rows: open.rows,
                raw_bytes: open.raw_bytes,
                file_bytes,
                sha256,
            });
        }
        Ok(())
    }
}

fn annotate(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Counts and hashes what passes through to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Flushes and returns the inner writer, the digest and the byte count.
    pub fn finish(mut self) -> (W, [u8; 32], u64) {
        let _ = self.inner.flush();
        (self.inner, self.hasher.finalize().into(), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        data: &[u8],
        piece: usize,
        limits: SplitLimits,
        mode: HeaderMode,
    ) -> (Vec<Vec<u8>>, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StreamWriter::new(
            dir.path(),
            "t".into(),
            Compression::None,
            limits,
            mode,
            RowSyntax::Csv {
                quote: b'"',
                escape: b'"',
            },
            false,
        );
        for c in data.chunks(piece) {
            w.write(c).unwrap();
        }
        let parts = w.finish().unwrap();
        let contents = parts
            .iter()
            .map(|p| std::fs::read(&p.temp).unwrap())
            .collect();
        for p in &parts {
            let bytes = std::fs::read(&p.temp).unwrap();
            assert_eq!(p.file_bytes, bytes.len() as u64);
            assert_eq!(p.sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
        }
        (contents, parts.iter().map(|p| p.rows).collect())
    }

    #[test]
    fn split_by_rows_repeats_the_header() {
        let data = b"a,b\n1,\"x\ny\"\n2,z\n3,w\n";
        for piece in 1..data.len() {
            let (files, rows) = run(
                data,
                piece,
                SplitLimits {
                    rows: Some(2),
                    bytes: None,
                },
                HeaderMode::EveryPart,
            );
            assert_eq!(
                files,
                vec![b"a,b\n1,\"x\ny\"\n2,z\n".to_vec(), b"a,b\n3,w\n".to_vec()]
            );
            assert_eq!(rows, vec![2, 1]);
        }
    }

    #[test]
    fn split_by_bytes_never_exceeds_unless_one_row_does() {
        let data = b"aaaa\nbb\ncc\ndddddddddd\ne\n";
        let (files, _) = run(
            data,
            3,
            SplitLimits {
                rows: None,
                bytes: Some(8),
            },
            HeaderMode::Absent,
        );
        assert_eq!(
            files,
            vec![
                b"aaaa\nbb\n".to_vec(),
                b"cc\n".to_vec(),
                b"dddddddddd\n".to_vec(),
                b"e\n".to_vec()
            ]
        );
        assert_eq!(files.concat(), data.to_vec());
    }

    #[test]
    fn header_modes_and_empty_streams() {
        let none = SplitLimits::default();
        assert_eq!(
            run(b"h\n", 1, none, HeaderMode::First).0,
            vec![b"h\n".to_vec()]
        );
        assert_eq!(
            run(b"h\n1\n", 1, none, HeaderMode::Drop).0,
            vec![b"1\n".to_vec()]
        );
        assert_eq!(
            run(b"", 1, none, HeaderMode::Absent).0,
            vec![Vec::<u8>::new()]
        );
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StreamWriter::new(
            dir.path(),
            "t".into(),
            Compression::None,
            SplitLimits::default(),
            HeaderMode::Absent,
            RowSyntax::Text,
            false,
        );
        w.write(b"1\n2").unwrap();
        assert!(w.finish().is_err());
    }
}
