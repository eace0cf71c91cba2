//! An entry's stored bytes read with someone watching.
//!
//! How far a table's load has come is best measured in the archive bytes it consumed: exact
//! whatever the compression, and in the unit the total was counted in (stored data sizes:
//! data file sizes, distances between a custom archive's data blocks). The decompressed rows
//! are no measure of that: gzip'd COPY text is 3 to 10 times smaller than the rows.

use std::io::{self, Read};

/// Told the bytes of stored data read so far (a running total), after every read.
pub type OnRead = Box<dyn FnMut(u64) + Send>;

/// A reader that reports its running total to an [`OnRead`].
pub struct Watched<R> {
    inner: R,
    read: u64,
    on_read: OnRead,
}

impl<R> Watched<R> {
    pub fn new(inner: R, on_read: OnRead) -> Watched<R> {
        Watched {
            inner,
            read: 0,
            on_read,
        }
    }
}

impl<R: Read> Read for Watched<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        (self.on_read)(self.read);
        Ok(n)
    }
}

/// Nobody watching.
pub fn unwatched() -> OnRead {
    Box::new(|_| {})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn reports_the_running_total() {
        let seen = Arc::new(AtomicU64::new(0));
        let s = Arc::clone(&seen);
        let mut r = Watched::new(
            &b"0123456789"[..],
            Box::new(move |n| s.store(n, Ordering::SeqCst)),
        );
        let mut buf = [0u8; 4];
        r.read_exact(&mut buf).unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 4);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 10);
    }
}
