//! Output compression: `--compress none|gzip[:LEVEL]|zstd[:LEVEL]`, or inferred from the name.

use std::io::{self, Write};

/// A codec and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip(u32),
    Zstd(i32),
}

/// gzip's own default; `psql | gzip` users compare against it.
pub const GZIP_DEFAULT: u32 = 6;
/// zstd's own default.
pub const ZSTD_DEFAULT: i32 = 3;

#[derive(Debug, thiserror::Error)]
#[error("invalid compression {0:?}: expected none, gzip[:1-9] or zstd[:1-22] (also gzip:level=N)")]
pub struct BadCompression(pub String);

impl Compression {
    /// Parses `none`, `gzip`, `gzip:5`, `gzip:level=5`, `zstd`, `zstd:19`, or a bare level 0-9
    /// (gzip, as pg_dump's `-Z 5`).
    pub fn parse(spec: &str) -> Result<Compression, BadCompression> {
        let bad = || BadCompression(spec.to_string());
        let (method, detail) = match spec.split_once(':') {
            Some((m, d)) => (m, Some(d.strip_prefix("level=").unwrap_or(d))),
            None => (spec, None),
        };
        if let Ok(level) = method.parse::<u32>() {
            if detail.is_some() || level > 9 {
                return Err(bad());
            }
            return Ok(if level == 0 {
                Compression::None
            } else {
                Compression::Gzip(level)
            });
        }
        match method {
            "none" if detail.is_none() => Ok(Compression::None),
            "gzip" => {
                let level = match detail {
                    Some(d) => d.parse().map_err(|_| bad())?,
                    None => GZIP_DEFAULT,
                };
                if !(1..=9).contains(&level) {
                    return Err(bad());
                }
                Ok(Compression::Gzip(level))
            }
            "zstd" => {
                let level = match detail {
                    Some(d) => d.parse().map_err(|_| bad())?,
                    None => ZSTD_DEFAULT,
                };
                if !(1..=22).contains(&level) {
                    return Err(bad());
                }
                Ok(Compression::Zstd(level))
            }
            _ => Err(bad()),
        }
    }

    /// From a file name ending in `.gz` or `.zst`.
    pub fn from_file_name(name: &str) -> Option<Compression> {
        if name.ends_with(".gz") {
            Some(Compression::Gzip(GZIP_DEFAULT))
        } else if name.ends_with(".zst") {
            Some(Compression::Zstd(ZSTD_DEFAULT))
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip(_) => ".gz",
            Compression::Zstd(_) => ".zst",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip(_) => "gzip",
            Compression::Zstd(_) => "zstd",
        }
    }

    /// Wraps `inner` in the encoder. Each encoder writes one complete gzip member / zstd frame
    /// when finished, so files written by several workers can be concatenated.
    pub fn encoder<W: Write>(self, inner: W) -> io::Result<Encoder<W>> {
        Ok(match self {
            Compression::None => Encoder::Plain(inner),
            Compression::Gzip(level) => Encoder::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::new(level),
            )),
            Compression::Zstd(level) => Encoder::Zstd(zstd::Encoder::new(inner, level)?),
        })
    }
}

/// A streaming compressor over `W`.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Writes the trailer and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(buf),
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Zstd(e) => e.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(Compression::parse("none").unwrap(), Compression::None);
        assert_eq!(Compression::parse("0").unwrap(), Compression::None);
        assert_eq!(Compression::parse("5").unwrap(), Compression::Gzip(5));
        assert_eq!(Compression::parse("gzip").unwrap(), Compression::Gzip(6));
        assert_eq!(
            Compression::parse("gzip:level=1").unwrap(),
            Compression::Gzip(1)
        );
        assert_eq!(
            Compression::parse("zstd:19").unwrap(),
            Compression::Zstd(19)
        );
        for bad in [
            "gzip:0", "gzip:10", "zstd:0", "lz4", "12", "gzip:x", "none:1",
        ] {
            assert!(Compression::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Compression::from_file_name("a.csv.zst"),
            Some(Compression::Zstd(3))
        );
    }
}
