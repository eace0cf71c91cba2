//! pg_dump's primitive encodings: sign-and-magnitude ints of `intSize` bytes, length-prefixed
//! strings (length -1 = NULL), and flagged offsets of `offSize` bytes.

use std::io::{self, Read, Write};

/// Offset flags.
pub const OFFSET_NOT_SET: u8 = 1;
pub const OFFSET_SET: u8 = 2;
pub const OFFSET_NO_DATA: u8 = 3;

/// Reads primitives from a stream, counting the bytes consumed (the TOC's end position matters
/// when offsets are shifted).
pub struct PrimReader<R> {
    inner: R,
    pub int_size: usize,
    pub off_size: usize,
    pub pos: u64,
}

impl<R: Read> PrimReader<R> {
    pub fn new(inner: R) -> Self {
        PrimReader {
            inner,
            int_size: 4,
            off_size: 8,
            pos: 0,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    pub fn bytes(&mut self, n: usize) -> io::Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.inner.read_exact(&mut v)?;
        self.pos += n as u64;
        Ok(v)
    }

    /// Reads exactly `buf.len()` bytes into `buf`.
    pub fn fill(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Reads and discards `n` bytes.
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        self.pos += copied;
        if copied < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// One byte, or `None` at a clean end of input.
    pub fn byte_or_end(&mut self) -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    self.pos += 1;
                    return Ok(Some(b[0]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub fn byte(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b)?;
        self.pos += 1;
        Ok(b[0])
    }

    pub fn int(&mut self) -> io::Result<i64> {
        let sign = self.byte()?;
        let mut v: i64 = 0;
        for i in 0..self.int_size {
            let b = self.byte()? as i64;
            if i < 8 {
                v |= b << (i * 8);
            }
        }
        Ok(if sign != 0 { -v } else { v })
    }

    /// A string (bytes, as stored: the archive's encoding is the database's); `None` is NULL.
    pub fn string(&mut self, max: u64) -> io::Result<Option<Vec<u8>>> {
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        if len as u64 > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("string length {len} is larger than the file"),
            ));
        }
        Ok(Some(self.bytes(len as usize)?))
    }

    pub fn offset(&mut self) -> io::Result<(u8, u64)> {
        let flag = self.byte()?;
        let mut v: u64 = 0;
        for i in 0..self.off_size {
            let b = self.byte()? as u64;
            if i < 8 {
                v |= b << (i * 8);
            }
        }
        Ok((flag, v))
    }
}

/// Writes primitives, mirroring [`PrimReader`].
pub struct PrimWriter<W> {
    pub inner: W,
    pub int_size: usize,
    pub off_size: usize,
}

impl<W: Write> PrimWriter<W> {
    pub fn new(inner: W, int_size: usize, off_size: usize) -> Self {
        PrimWriter {
            inner,
            int_size,
            off_size,
        }
    }

    pub fn bytes(&mut self, b: &[u8]) -> io::Result<()> {
        self.inner.write_all(b)
    }

    pub fn byte(&mut self, b: u8) -> io::Result<()> {
        self.inner.write_all(&[b])
    }

    pub fn int(&mut self, v: i64) -> io::Result<()> {
        self.byte(u8::from(v < 0))?;
        let mut m = v.unsigned_abs();
        for _ in 0..self.int_size {
            self.byte((m & 0xff) as u8)?;
            m >>= 8;
        }
        Ok(())
    }

    pub fn string(&mut self, s: Option<&[u8]>) -> io::Result<()> {
        match s {
            None => self.int(-1),
            Some(b) => {
                self.int(b.len() as i64)?;
                self.bytes(b)
            }
        }
    }

    pub fn offset(&mut self, flag: u8, v: u64) -> io::Result<()> {
        self.byte(flag)?;
        let mut m = v;
        for _ in 0..self.off_size {
            self.byte((m & 0xff) as u8)?;
            m >>= 8;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = PrimWriter::new(Vec::new(), 4, 8);
        w.int(-1).unwrap();
        w.int(3345).unwrap();
        w.string(None).unwrap();
        w.string(Some(b"abc")).unwrap();
        w.offset(OFFSET_SET, 123456789).unwrap();
        let bytes = w.inner;
        assert_eq!(&bytes[..5], &[1, 1, 0, 0, 0]);
        let mut r = PrimReader::new(&bytes[..]);
        assert_eq!(r.int().unwrap(), -1);
        assert_eq!(r.int().unwrap(), 3345);
        assert_eq!(r.string(100).unwrap(), None);
        assert_eq!(r.string(100).unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(r.offset().unwrap(), (OFFSET_SET, 123456789));
        assert_eq!(r.pos, bytes.len() as u64);
    }
}
