//! Compression codecs shared by every tool: parsing user specs, detecting a stream's codec from
//! its first bytes, and streaming encoders/decoders.
//!
//! Encoders write one complete gzip member / zstd frame each; decoders read any number of them
//! back to back. That is what lets parallel workers compress pieces of one file independently
//! and simply concatenate them.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::gzip_members::{GzipMembers, Join};

/// A codec and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip(u32),
    Zstd(i32),
}

/// A stream whose first bytes were read to detect its codec, with them put back in front.
pub type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// gzip's own default; `| gzip` users compare against it.
pub const GZIP_DEFAULT: u32 = 6;
/// zstd's own default.
pub const ZSTD_DEFAULT: i32 = 3;

#[derive(Debug, thiserror::Error)]
#[error("invalid compression {0:?}: expected none, gzip[:1-9] or zstd[:1-22] (also gzip:level=N, or a bare level 0-9)")]
pub struct BadCompression(pub String);

impl Compression {
    /// Parses pg_dump-style specs: `none`, `gzip`, `gzip:5`, `gzip:level=5`, `zstd`, `zstd:19`,
    /// or a bare level 0-9 (gzip; 0 is none), as in `pg_dump -Z 5`.
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
            "gzip" | "gz" => {
                let level = match detail {
                    Some(d) => d.parse().map_err(|_| bad())?,
                    None => GZIP_DEFAULT,
                };
                if !(1..=9).contains(&level) {
                    return Err(bad());
                }
                Ok(Compression::Gzip(level))
            }
            "zstd" | "zst" => {
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

    /// The codec of a stream from its first bytes (gzip `1f 8b`, zstd `28 b5 2f fd`); anything
    /// else is taken as uncompressed.
    pub fn from_magic(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip(GZIP_DEFAULT),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd(ZSTD_DEFAULT),
            _ => Compression::None,
        }
    }

    /// The codec of a file, from its content.
    pub fn detect(path: &Path) -> io::Result<Compression> {
        let mut head = [0u8; 4];
        let mut f = File::open(path)?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..])? {
                0 => break,
                k => n += k,
            }
        }
        Ok(Compression::from_magic(&head[..n]))
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

    /// Same codec, same level: for output that should match its input's codec.
    pub fn same_kind(self, other: Compression) -> bool {
        std::mem::discriminant(&self) == std::mem::discriminant(&other)
    }

    /// The codec of a stream from its first bytes (read until 4 are there or the stream
    /// ends, so a pipe's short reads do not fool it), and a reader that still yields them.
    pub fn sniff<R: Read>(mut r: R) -> io::Result<(Compression, Sniffed<R>)> {
        let mut head = [0u8; 4];
        let mut n = 0;
        while n < head.len() {
            match r.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let c = Compression::from_magic(&head[..n]);
        Ok((c, io::Cursor::new(head[..n].to_vec()).chain(r)))
    }

    /// A boxed encoder over `inner`; `finish_boxed` writes the trailer.
    pub fn writer<W: Write + Send + 'static>(self, inner: W) -> io::Result<Box<dyn FinishWrite>> {
        Ok(Box::new(self.encoder(inner)?))
    }

    /// A boxed decoder over any reader (buffered here).
    pub fn reader<'a, R: Read + Send + 'a>(
        self,
        inner: R,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        self.decoder(BufReader::with_capacity(256 * 1024, inner))
    }

    /// Wraps `inner` in the encoder.
    pub fn encoder<W: Write>(self, inner: W) -> io::Result<Encoder<W>> {
        Ok(match self {
            Compression::None => Encoder::Plain(inner),
            Compression::Gzip(level) => Encoder::Gzip(GzipMembers::new(inner, level)),
            Compression::Zstd(level) => Encoder::Zstd(zstd::Encoder::new(inner, level)?),
        })
    }

    /// Copies `piece`, a finished file of this codec, to `out` as the next part of a file
    /// joined from pieces (parallel chunks of one table). A gzip piece's end member is left
    /// out and counted in `join`; end the joined file with [`encoder_after`](Self::encoder_after)
    /// or [`finish_join`](Self::finish_join). zstd frames and plain text are copied as they are.
    pub fn append_piece<P: Read + Seek, W: Write + ?Sized>(
        self,
        piece: &mut P,
        out: &mut W,
        join: &mut Join,
    ) -> io::Result<u64> {
        match self {
            Compression::Gzip(_) => join.append(piece, out),
            _ => io::copy(piece, out),
        }
    }

    /// The encoder of a joined file's last part: gzip's end member counts every piece too.
    pub fn encoder_after<W: Write>(self, inner: W, join: Join) -> io::Result<Encoder<W>> {
        Ok(match self {
            Compression::Gzip(level) => Encoder::Gzip(GzipMembers::after(inner, level, join)),
            other => other.encoder(inner)?,
        })
    }

    /// Ends a joined file when no part follows the pieces: gzip's end member.
    pub fn finish_join<W: Write + ?Sized>(self, out: &mut W, join: &Join) -> io::Result<()> {
        match self {
            Compression::Gzip(_) => out.write_all(&join.end_member()),
            _ => Ok(()),
        }
    }

    /// A reader of the decompressed content of `inner` (all gzip members / zstd frames).
    pub fn decoder<'a, R: io::BufRead + Send + 'a>(
        self,
        inner: R,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Compression::None => Box::new(inner),
            Compression::Gzip(_) => crate::inflate::gzip(inner),
            Compression::Zstd(_) => Box::new(zstd::stream::read::Decoder::with_buffer(inner)?),
        })
    }
}

/// Opens a file and decodes it by its content (not its name). Read errors name the file.
pub fn open_decoded(path: &Path) -> io::Result<(Compression, Box<dyn Read + Send>)> {
    open_reader(path).map_err(|e| match e {
        CodecError::Io { source, .. } => {
            io::Error::new(source.kind(), format!("{}: {source}", path.display()))
        }
        other => io::Error::other(other.to_string()),
    })
}

/// How well reading a compressed file to its end proves the file complete: what
/// `--verify-only` can promise without a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCheck {
    /// gzip ending in our end member: a cut anywhere is an error.
    GzipEndMember,
    /// gzip without our end member (pg_dump's, an older cbdump's, gzip's): each member's
    /// trailer is checked, but a file of several members cut between two reads as complete.
    GzipTrailerOnly,
    /// zstd frames: a cut between two frames reads as complete.
    ZstdFrames,
    /// Uncompressed: nothing marks the end.
    Uncompressed,
}

impl EndCheck {
    /// The check a file allows, from its first bytes and its last [`END_MEMBER_LEN`] bytes.
    ///
    /// [`END_MEMBER_LEN`]: crate::gzip_members::END_MEMBER_LEN
    pub fn of_file(path: &Path) -> io::Result<EndCheck> {
        use crate::gzip_members::{parse_end_member, END_MEMBER_LEN};
        Ok(match Compression::detect(path)? {
            Compression::None => EndCheck::Uncompressed,
            Compression::Zstd(_) => EndCheck::ZstdFrames,
            Compression::Gzip(_) => {
                let mut f = File::open(path)?;
                let len = f.seek(io::SeekFrom::End(0))?;
                let mut tail = [0u8; END_MEMBER_LEN];
                let ours = len >= END_MEMBER_LEN as u64 && {
                    f.seek(io::SeekFrom::Start(len - END_MEMBER_LEN as u64))?;
                    f.read_exact(&mut tail)?;
                    parse_end_member(&tail).is_some()
                };
                if ours {
                    EndCheck::GzipEndMember
                } else {
                    EndCheck::GzipTrailerOnly
                }
            }
        })
    }
}

/// Errors of the codec layer, each naming the file (or `-` for a stream) it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    BadSpec(#[from] BadCompression),

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },

    /// The compressed data does not decode (bad header, checksum, truncated member/frame).
    #[error("{}: corrupt {codec} data: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        codec: &'static str,
        source: io::Error,
    },
}

/// Opens `path` and decodes it by its content (all gzip members / zstd frames). Errors while
/// reading are `io::Error`s wrapping a [`CodecError`] (use `get_ref` / `into_inner` to get it).
pub fn open_reader(path: &Path) -> Result<(Compression, Box<dyn Read + Send>), CodecError> {
    let io = |source| CodecError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = File::open(path).map_err(io)?;
    let (c, r) = Compression::sniff(f).map_err(io)?;
    let d = c.reader(r).map_err(io)?;
    Ok((c, Box::new(NamedReader::new(d, path, c))))
}

/// Creates `path` (truncating) and returns an encoder writing to it; call `finish`.
pub fn create_writer(path: &Path, c: Compression) -> Result<Encoder<BufWriter<File>>, CodecError> {
    let io = |source| CodecError::Io {
        path: path.to_path_buf(),
        source,
    };
    let f = File::create(path).map_err(io)?;
    c.encoder(BufWriter::with_capacity(256 * 1024, f))
        .map_err(io)
}

/// Wraps a decoder so its errors say which file and codec they come from.
pub struct NamedReader<R> {
    inner: R,
    path: PathBuf,
    codec: Compression,
}

impl<R: Read> NamedReader<R> {
    pub fn new(inner: R, path: &Path, codec: Compression) -> Self {
        NamedReader {
            inner,
            path: path.to_path_buf(),
            codec,
        }
    }
}

impl<R: Read> Read for NamedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            let typed = if kind == io::ErrorKind::Interrupted {
                return e;
            } else if self.codec == Compression::None && kind != io::ErrorKind::InvalidData {
                CodecError::Io {
                    path: self.path.clone(),
                    source: e,
                }
            } else {
                CodecError::Corrupt {
                    path: self.path.clone(),
                    codec: self.codec.name(),
                    source: e,
                }
            };
            io::Error::new(kind, typed)
        })
    }
}

/// An encoder behind a box: what callers holding outputs of different codecs keep.
pub trait FinishWrite: Write + Send {
    /// Writes the trailer and flushes.
    fn finish_boxed(self: Box<Self>) -> io::Result<()>;
}

impl<W: Write + Send> FinishWrite for Encoder<W> {
    fn finish_boxed(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

/// A streaming compressor over `W`; [`finish`](Encoder::finish) writes the trailer.
pub enum Encoder<W: Write> {
    Plain(W),
    Gzip(GzipMembers<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    /// Writes the trailer, flushes, and returns the inner writer.
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
    fn end_checks_tell_our_files_from_others() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, c: Compression| {
            let p = dir.path().join(name);
            let mut w = create_writer(&p, c).unwrap();
            w.write_all(b"1\tx\n\\.\n").unwrap();
            w.finish().unwrap().flush().unwrap();
            EndCheck::of_file(&p).unwrap()
        };
        assert_eq!(write("a.gz", Compression::Gzip(1)), EndCheck::GzipEndMember);
        assert_eq!(write("a.zst", Compression::Zstd(1)), EndCheck::ZstdFrames);
        assert_eq!(write("a", Compression::None), EndCheck::Uncompressed);
        let p = dir.path().join("theirs.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"x").unwrap();
        std::fs::write(&p, e.finish().unwrap()).unwrap();
        assert_eq!(EndCheck::of_file(&p).unwrap(), EndCheck::GzipTrailerOnly);
    }

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

    #[test]
    fn concatenated_members_and_frames_decode_whole() {
        for c in [
            Compression::Gzip(1),
            Compression::Zstd(1),
            Compression::None,
        ] {
            let mut all = Vec::new();
            for piece in [&b"first piece\n"[..], b"", b"second\n"] {
                let mut e = c.encoder(Vec::new()).unwrap();
                e.write_all(piece).unwrap();
                all.extend(e.finish().unwrap());
            }
            assert!(Compression::from_magic(&all).same_kind(c));
            let mut out = Vec::new();
            c.decoder(&all[..]).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, b"first piece\nsecond\n");
        }
    }

    #[test]
    fn sniffing_keeps_the_bytes_and_files_name_themselves() {
        let mut e = Compression::Zstd(1).encoder(Vec::new()).unwrap();
        e.write_all(b"abc").unwrap();
        let z = e.finish().unwrap();
        // One byte per read: the magic spans four reads.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || b.is_empty() {
                    return Ok(0);
                }
                b[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let (c, r) = Compression::sniff(Slow(&z)).unwrap();
        assert_eq!(c, Compression::Zstd(ZSTD_DEFAULT));
        let mut out = Vec::new();
        c.reader(r).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc");

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.csv.gz");
        let mut w = create_writer(&p, Compression::Gzip(1)).unwrap();
        w.write_all(&[b'x'; 5000]).unwrap();
        w.finish().unwrap().flush().unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        bytes[mid + 1] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
        let (c, mut r) = open_reader(&p).unwrap();
        assert_eq!(c, Compression::Gzip(GZIP_DEFAULT));
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("bad.csv.gz"), "{err}");
        let typed = err.get_ref().and_then(|e| e.downcast_ref::<CodecError>());
        assert!(
            matches!(typed, Some(CodecError::Corrupt { codec: "gzip", .. })),
            "{err:?}"
        );
        assert!(matches!(
            open_reader(&dir.path().join("missing.gz")),
            Err(CodecError::Io { .. })
        ));
    }

    #[test]
    fn truncated_streams_are_errors() {
        for c in [Compression::Gzip(1), Compression::Zstd(1)] {
            let mut e = c.encoder(Vec::new()).unwrap();
            e.write_all(&[7u8; 10000]).unwrap();
            let full = e.finish().unwrap();
            let cut = &full[..full.len() / 2];
            let mut out = Vec::new();
            let r = c
                .decoder(cut)
                .and_then(|mut d| d.read_to_end(&mut out).map(|_| ()));
            assert!(r.is_err(), "{c:?}");
        }
    }
}
