//! Compression of plain dumps: detected from magic bytes, kept on output unless told otherwise.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "zstd" | "zst" => Ok(Compression::Zstd),
            _ => Err(format!("unknown compression {s:?}: use none, gzip or zstd")),
        }
    }
}

/// Compression of a file, from its first bytes.
pub fn detect(path: &Path) -> io::Result<Compression> {
    let mut head = [0u8; 4];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < 4 {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    })
}

/// A reader of the decompressed content.
pub fn open(path: &Path, c: Compression) -> io::Result<Box<dyn Read>> {
    let f = BufReader::with_capacity(256 * 1024, File::open(path)?);
    Ok(match c {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(f)?),
    })
}

/// A compressing writer that must be finished to write its trailer.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(w: W, c: Compression) -> io::Result<Self> {
        Ok(match c {
            Compression::None => Encoder::Plain(w),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(w, 3)?),
        })
    }

    /// Flush everything and return the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(buf),
            Encoder::Gzip(w) => w.write_all(buf),
            Encoder::Zstd(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}
