//! The framing inside a data block: chunks of (int length, bytes) ending with a zero length.
//! A block's chunks together carry one stream in the archive's codec; chunk boundaries mean
//! nothing to the codec.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::primitives::{PrimReader, PrimWriter};
use crate::toc::DataCodec;

/// Chunk size our writers use (pg_dump's own vary with its compressor's output).
pub const CHUNK_SIZE: usize = 128 * 1024;

/// Reads the concatenated payloads of one chunk sequence from a [`PrimReader`] positioned at
/// its first length, stopping at the zero length.
pub struct ChunkReader<R> {
    pub(crate) r: PrimReader<R>,
    pub(crate) left: u64,
    pub(crate) done: bool,
    pub(crate) path: PathBuf,
}

impl<R: Read> ChunkReader<R> {
    pub fn new(r: PrimReader<R>, path: PathBuf) -> Self {
        ChunkReader {
            r,
            left: 0,
            done: false,
            path,
        }
    }
}

impl<R: Read> Read for ChunkReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_chunks(&mut self.r, &mut self.left, &mut self.done, &self.path, buf)
    }
}

/// One step of chunk reading over borrowed state, shared by [`ChunkReader`] and the
/// sequential stream reader.
pub(crate) fn read_chunks<R: Read>(
    r: &mut PrimReader<R>,
    left: &mut u64,
    done: &mut bool,
    path: &Path,
    buf: &mut [u8],
) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    while *left == 0 {
        if *done {
            return Ok(0);
        }
        let len = r.int().map_err(|e| named(e, path, "a data chunk length"))?;
        if len < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: corrupt data block: negative chunk length {len}",
                    path.display()
                ),
            ));
        }
        if len == 0 {
            *done = true;
            return Ok(0);
        }
        *left = len as u64;
    }
    let want = (buf.len() as u64).min(*left) as usize;
    r.fill(&mut buf[..want])
        .map_err(|e| named(e, path, "a data chunk"))?;
    *left -= want as u64;
    Ok(want)
}

/// Skips the rest of a chunk sequence.
pub(crate) fn skip_rest<R: Read>(
    r: &mut PrimReader<R>,
    left: &mut u64,
    done: &mut bool,
    path: &Path,
) -> io::Result<()> {
    loop {
        if *left > 0 {
            r.skip(*left).map_err(|e| named(e, path, "a data chunk"))?;
            *left = 0;
        }
        if *done {
            return Ok(());
        }
        let len = r.int().map_err(|e| named(e, path, "a data chunk length"))?;
        if len < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: corrupt data block: negative chunk length {len}",
                    path.display()
                ),
            ));
        }
        if len == 0 {
            *done = true;
        } else {
            *left = len as u64;
        }
    }
}

/// An io error that keeps its kind and names the file and what was being read.
pub(crate) fn named(e: io::Error, path: &Path, what: &str) -> io::Error {
    let msg = if e.kind() == io::ErrorKind::UnexpectedEof {
        format!("{}: archive truncated while reading {what}", path.display())
    } else {
        format!("{}: reading {what}: {e}", path.display())
    };
    io::Error::new(e.kind(), msg)
}

/// Frames what is written to it as chunks of at most [`CHUNK_SIZE`] bytes; [`finish`]
/// writes the closing zero length. Counts every byte it puts out.
///
/// [`finish`]: ChunkWriter::finish
pub struct ChunkWriter<W: Write> {
    out: PrimWriter<W>,
    buf: Vec<u8>,
    pub(crate) written: u64,
}

impl<W: Write> ChunkWriter<W> {
    pub fn new(out: W, int_size: usize) -> Self {
        ChunkWriter {
            out: PrimWriter::new(out, int_size, 8),
            buf: Vec::with_capacity(CHUNK_SIZE),
            written: 0,
        }
    }

    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.out.int(self.buf.len() as i64)?;
        self.out.bytes(&self.buf)?;
        self.written += 1 + self.out.int_size as u64 + self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the last chunk and the zero length; returns the inner writer and the bytes
    /// written since [`new`](Self::new).
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.emit()?;
        self.out.int(0)?;
        self.written += 1 + self.out.int_size as u64;
        Ok((self.out.inner, self.written))
    }
}

impl<W: Write> Write for ChunkWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK_SIZE - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK_SIZE {
            self.emit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.inner.flush()
    }
}

/// The compressor of one custom-archive stream (a zlib stream for gzip archives, as
/// pg_dump's `deflate` writes; one zstd frame; or nothing) over a [`ChunkWriter`].
pub enum StreamEncoder<W: Write> {
    Plain(ChunkWriter<W>),
    Zlib(flate2::write::ZlibEncoder<ChunkWriter<W>>),
    Zstd(zstd::Encoder<'static, ChunkWriter<W>>),
}

impl<W: Write> StreamEncoder<W> {
    /// `level`: zlib 1-9 (or -1 for zlib's default) / zstd level; ignored for `None`.
    pub fn new(codec: DataCodec, level: i32, chunks: ChunkWriter<W>) -> io::Result<Self> {
        Ok(match codec {
            DataCodec::None => StreamEncoder::Plain(chunks),
            DataCodec::Gzip => {
                let level = if (1..=9).contains(&level) { level } else { 6 };
                StreamEncoder::Zlib(flate2::write::ZlibEncoder::new(
                    chunks,
                    flate2::Compression::new(level as u32),
                ))
            }
            DataCodec::Zstd => StreamEncoder::Zstd(zstd::Encoder::new(chunks, level)?),
            DataCodec::Lz4 => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "writing LZ4-compressed archives is not supported",
                ))
            }
        })
    }

    /// Ends the compressed stream and the chunk sequence.
    pub fn finish(self) -> io::Result<(W, u64)> {
        match self {
            StreamEncoder::Plain(c) => c.finish(),
            StreamEncoder::Zlib(z) => z.finish()?.finish(),
            StreamEncoder::Zstd(z) => z.finish()?.finish(),
        }
    }
}

impl<W: Write> Write for StreamEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            StreamEncoder::Plain(w) => w.write(buf),
            StreamEncoder::Zlib(w) => w.write(buf),
            StreamEncoder::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            StreamEncoder::Plain(w) => w.flush(),
            StreamEncoder::Zlib(w) => w.flush(),
            StreamEncoder::Zstd(w) => w.flush(),
        }
    }
}

/// A reader of the decompressed stream carried by `chunks`.
pub fn decoder<'a, R: Read + Send + 'a>(
    codec: DataCodec,
    chunks: R,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match codec {
        DataCodec::None => Box::new(chunks),
        DataCodec::Gzip => crate::inflate::zlib(chunks),
        DataCodec::Zstd => Box::new(zstd::stream::read::Decoder::new(chunks)?),
        DataCodec::Lz4 => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "LZ4-compressed archives are not supported; re-dump with -Z gzip or -Z zstd",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_for_every_codec() {
        let data: Vec<u8> = (0..400_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in [DataCodec::None, DataCodec::Gzip, DataCodec::Zstd] {
            let mut enc = StreamEncoder::new(codec, 3, ChunkWriter::new(Vec::new(), 4)).unwrap();
            enc.write_all(&data).unwrap();
            let (bytes, n) = enc.finish().unwrap();
            assert_eq!(n, bytes.len() as u64);
            assert!(bytes.ends_with(&[0, 0, 0, 0, 0]));
            let chunks = ChunkReader::new(PrimReader::new(&bytes[..]), "t".into());
            let mut back = Vec::new();
            decoder(codec, chunks)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{codec:?}");
        }
    }

    #[test]
    fn truncated_chunks_name_the_file() {
        let mut w = ChunkWriter::new(Vec::new(), 4);
        w.write_all(b"hello world").unwrap();
        let (bytes, _) = w.finish().unwrap();
        let cut = &bytes[..8];
        let mut r = ChunkReader::new(PrimReader::new(cut), "x.dump".into());
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("x.dump"), "{err}");
    }
}
