//! One zlib stream from pieces compressed in parallel, the way pigz does it.
//!
//! pg_restore reads a custom archive's gzip data block with one `inflate` and stops at the
//! first end of stream, so a table's chunks cannot simply be separate streams. Deflate lets us
//! cut anyway: every chunk is raw deflate ending with a sync flush (byte-aligned, no final
//! block), so pieces can be laid end to end; the table's stream is the zlib header, the pieces
//! in order, a last piece holding pg_dump's `\.` terminator with the final block, and the
//! Adler-32 of all uncompressed bytes, combined from the pieces' own checksums.

use std::io::{self, Write};

use flate2::{Compress, FlushCompress, Status};

const ADLER_MOD: u32 = 65521;
/// Largest run of bytes whose sums cannot overflow u32 before reduction (zlib's NMAX).
const ADLER_RUN: usize = 5552;

/// Adler-32 of `bytes` continued from `adler` (start with 1).
pub fn adler32(adler: u32, bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (adler & 0xffff, adler >> 16);
    for run in bytes.chunks(ADLER_RUN) {
        for &x in run {
            a += x as u32;
            b += a;
        }
        a %= ADLER_MOD;
        b %= ADLER_MOD;
    }
    (b << 16) | a
}

/// Adler-32 of `x ++ y` from `adler32(x)`, `adler32(y)` and `y.len()`:
/// A = A1 + A2 - 1, B = B1 + B2 + len(y)·(A1 - 1), all mod 65521.
pub fn adler32_combine(first: u32, second: u32, second_len: u64) -> u32 {
    let m = ADLER_MOD as u64;
    let (a1, b1) = ((first & 0xffff) as u64, (first >> 16) as u64);
    let (a2, b2) = ((second & 0xffff) as u64, (second >> 16) as u64);
    let a = (a1 + a2 + m - 1) % m;
    let b = (b1 + b2 + (second_len % m) * ((a1 + m - 1) % m)) % m;
    ((b << 16) | a) as u32
}

/// The two-byte zlib header for a deflate stream at `level` (32 KiB window, no dictionary).
pub fn zlib_header(level: u32) -> [u8; 2] {
    let cmf: u16 = 0x78;
    let flevel: u16 = match level {
        0 | 1 => 0,
        2..=5 => 1,
        6 => 2,
        _ => 3,
    };
    let mut flg = flevel << 6;
    flg += 31 - ((cmf << 8) | flg) % 31;
    [cmf as u8, flg as u8]
}

/// Raw deflate of one chunk, ending byte-aligned with a sync flush (or with the final block
/// when `finish` is called with `last = true`), and the chunk's Adler-32 and length.
pub struct PieceWriter<W: Write> {
    out: W,
    z: Compress,
    buf: Vec<u8>,
    adler: u32,
    len: u64,
}

impl<W: Write> PieceWriter<W> {
    pub fn new(out: W, level: u32) -> PieceWriter<W> {
        PieceWriter {
            out,
            z: Compress::new(flate2::Compression::new(level), false),
            buf: Vec::with_capacity(256 * 1024),
            adler: 1,
            len: 0,
        }
    }

    pub fn write_all(&mut self, mut input: &[u8]) -> io::Result<()> {
        self.adler = adler32(self.adler, input);
        self.len += input.len() as u64;
        while !input.is_empty() {
            let before = self.z.total_in();
            self.run(input, FlushCompress::None)?;
            input = &input[(self.z.total_in() - before) as usize..];
        }
        Ok(())
    }

    /// Ends the piece: a sync flush, or the final block when `last`. Returns the writer, the
    /// piece's Adler-32 and its uncompressed length.
    pub fn finish(mut self, last: bool) -> io::Result<(W, u32, u64)> {
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Sync
        };
        loop {
            let status = self.run(&[], flush)?;
            // Done when the compressor had room to spare: nothing of the flush is pending.
            if status == Status::StreamEnd || (!last && self.buf.len() < self.buf.capacity()) {
                self.out.write_all(&self.buf)?;
                self.buf.clear();
                break;
            }
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok((self.out, self.adler, self.len))
    }

    fn run(&mut self, input: &[u8], flush: FlushCompress) -> io::Result<Status> {
        if self.buf.len() == self.buf.capacity() {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.z
            .compress_vec(input, &mut self.buf, flush)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn naive_adler(bytes: &[u8]) -> u32 {
        let (mut a, mut b) = (1u64, 0u64);
        for &x in bytes {
            a = (a + x as u64) % 65521;
            b = (b + a) % 65521;
        }
        ((b << 16) | a) as u32
    }

    #[test]
    fn adler_matches_the_definition_and_combines() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert_eq!(adler32(1, &data), naive_adler(&data));
        assert_eq!(adler32(1, b"Wikipedia"), 0x11E6_0398);
        for cut in [0, 1, 5552, 50_000, 99_999, 100_000] {
            let (x, y) = data.split_at(cut);
            assert_eq!(
                adler32_combine(adler32(1, x), adler32(1, y), y.len() as u64),
                naive_adler(&data),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn headers_are_valid() {
        for level in 0..=9 {
            let h = zlib_header(level);
            assert_eq!(((h[0] as u16) << 8 | h[1] as u16) % 31, 0);
        }
        assert_eq!(zlib_header(6), [0x78, 0x9c]);
        assert_eq!(zlib_header(1), [0x78, 0x01]);
        assert_eq!(zlib_header(9), [0x78, 0xda]);
    }

    /// Pieces compressed separately, joined as the custom writer joins them, are one zlib
    /// stream that zlib inflates to the concatenated input and whose checksum it accepts.
    #[test]
    fn joined_pieces_are_one_zlib_stream() {
        let chunks: Vec<Vec<u8>> = (0..4)
            .map(|c| {
                (0..300_000u32)
                    .map(|i| format!("{c}\t{i}\tsome text {}\n", i % 97))
                    .collect::<String>()
                    .into_bytes()
            })
            .collect();
        let mut stream = zlib_header(6).to_vec();
        let mut adler = 1u32;
        for (i, c) in chunks.iter().enumerate() {
            let last = i == chunks.len() - 1;
            let mut w = PieceWriter::new(Vec::new(), 6);
            for part in c.chunks(70_000) {
                w.write_all(part).unwrap();
            }
            let (bytes, a, n) = w.finish(last).unwrap();
            stream.extend_from_slice(&bytes);
            adler = adler32_combine(adler, a, n);
        }
        stream.extend_from_slice(&adler.to_be_bytes());
        // A trailing byte must not be consumed: the stream ends where it says.
        stream.push(0xAA);
        let mut out = Vec::new();
        let mut z = flate2::read::ZlibDecoder::new(&stream[..]);
        z.read_to_end(&mut out).unwrap();
        assert_eq!(out, chunks.concat());
        assert_eq!(z.total_in() as usize, stream.len() - 1);
        // And through the inflater restores use (ISA-L when built with it).
        let mut again = Vec::new();
        archive::inflate::zlib(&stream[..])
            .read_to_end(&mut again)
            .unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn an_empty_piece_is_valid() {
        let (bytes, a, n) = PieceWriter::new(Vec::new(), 1).finish(false).unwrap();
        assert_eq!((a, n), (1, 0));
        let (last, a2, n2) = PieceWriter::new(Vec::new(), 1).finish(true).unwrap();
        let mut stream = zlib_header(1).to_vec();
        stream.extend(bytes);
        stream.extend(last);
        stream.extend(adler32_combine(a, a2, n2).to_be_bytes());
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(&stream[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }
}
