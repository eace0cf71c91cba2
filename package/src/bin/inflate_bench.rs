//! `inflate-bench FILE.gz`: archive's inflater (our C shim over libisal when the build found
//! it, else zlib-rs) against the `isal-rs` crate (ISA-L built from source and linked
//! statically) and flate2's zlib-rs, on the same file, best of three runs each; then how each
//! treats a truncated file and a corrupted checksum. `--make MB` first writes a synthetic
//! COPY-text gzip file of about MB compressed megabytes (one member, like pg_dump's).
//!
//! Built only with `--features isal-bench` (isal-rs needs autotools and nasm to build):
//! `cargo run --release -p cbtools-package --features isal-bench --bin inflate-bench -- --make 300 /tmp/x.gz`

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

/// isal-rs's decoders are not `Send` (they hold raw pointers into their own buffers), while
/// archive's readers must be: the bench takes both as plain `Read`.
type Open = fn(Box<dyn io::BufRead + Send>) -> Box<dyn Read>;

fn decoders() -> Vec<(&'static str, Open)> {
    vec![
        ("archive::inflate::gzip", |r| {
            Box::new(archive::inflate::gzip(r))
        }),
        ("isal-rs GzipDecoder", |r| {
            Box::new(isal::read::GzipDecoder::new(r))
        }),
        ("flate2 MultiGzDecoder (zlib-rs)", |r| {
            Box::new(flate2::bufread::MultiGzDecoder::new(r))
        }),
    ]
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (make, path) = match args.as_slice() {
        [flag, mb, path] if flag == "--make" => (Some(mb.parse::<u64>()?), path.clone()),
        [path] => (None, path.clone()),
        _ => bail!("usage: inflate-bench [--make MB] FILE.gz"),
    };
    let path = Path::new(&path);
    if let Some(mb) = make {
        make_file(path, mb << 20)?;
    }
    let size = std::fs::metadata(path)
        .with_context(|| path.display().to_string())?
        .len();
    println!(
        "{}: {:.1} MB compressed; archive's backend: {}",
        path.display(),
        size as f64 / 1e6,
        archive::inflate::backend()
    );
    let mut reference = None;
    for (name, open) in decoders() {
        let mut best = f64::MAX;
        let mut out = (0, 0);
        for _ in 0..3 {
            let started = Instant::now();
            out = inflate(open, path, None)?;
            best = best.min(started.elapsed().as_secs_f64());
        }
        if *reference.get_or_insert(out) != out {
            bail!("{name}: different output {out:?} from {reference:?}");
        }
        println!(
            "{name:34} best {best:6.3} s  {:7.1} MB/s in  {:7.1} MB/s out  ({} bytes, hash {:016x})",
            size as f64 / 1e6 / best,
            out.0 as f64 / 1e6 / best,
            out.0,
            out.1
        );
    }
    for (name, open) in decoders() {
        let truncated = inflate(open, path, Some(Damage::Truncate));
        let corrupted = inflate(open, path, Some(Damage::FlipCrc));
        println!(
            "{name:34} truncated: {}; bad CRC: {}",
            verdict(&truncated),
            verdict(&corrupted)
        );
    }
    Ok(())
}

fn verdict(r: &Result<(u64, u64)>) -> String {
    match r {
        Ok((n, _)) => format!("NO ERROR ({n} bytes)"),
        Err(e) => format!("error ({e:#})"),
    }
}

#[derive(Clone, Copy)]
enum Damage {
    /// The first half of the file only.
    Truncate,
    /// The member's CRC32 (8 bytes before the end) altered.
    FlipCrc,
}

/// Inflates `path` (damaged as asked); (bytes out, CRC-32 of them).
fn inflate(open: Open, path: &Path, damage: Option<Damage>) -> Result<(u64, u64)> {
    let input: Box<dyn io::BufRead + Send> = match damage {
        None => Box::new(BufReader::with_capacity(
            256 * 1024,
            File::open(path).context("opening")?,
        )),
        Some(d) => {
            let mut bytes = std::fs::read(path)?;
            match d {
                Damage::Truncate => bytes.truncate(bytes.len() / 2),
                Damage::FlipCrc => {
                    let at = bytes.len() - 8;
                    bytes[at] ^= 0xff;
                }
            }
            Box::new(io::Cursor::new(bytes))
        }
    };
    let mut reader = open(input);
    let mut buf = vec![0u8; 256 * 1024];
    // CRC-32 (SIMD, many GB/s): not the bottleneck being measured, and blind to read sizes.
    let (mut crc, mut total) = (flate2::Crc::new(), 0u64);
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok((total, crc.sum() as u64));
        }
        total += n as u64;
        crc.update(&buf[..n]);
    }
}

/// A gzip file of pseudo-random COPY rows (ids, names, timestamps, amounts, a JSON column):
/// about 3.5x compressible at level 6, like pg_dump's data files.
fn make_file(path: &Path, compressed_target: u64) -> Result<()> {
    let file = File::create(path).with_context(|| path.display().to_string())?;
    let counter = Counting(BufWriter::with_capacity(1 << 20, file), 0);
    let mut gz = flate2::write::GzEncoder::new(counter, flate2::Compression::new(6));
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let words = [
        "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    ];
    let mut id = 0u64;
    let mut line = String::new();
    while gz.get_ref().1 < compressed_target {
        for _ in 0..10_000 {
            id += 1;
            let r = next();
            line.clear();
            use std::fmt::Write as _;
            writeln!(
                line,
                "{id}\t{} {}\t2024-{:02}-{:02} {:02}:{:02}:{:02}+00\t{}.{:02}\t{{\"k\": {}, \"tag\": \"{}\"}}",
                words[(r & 7) as usize],
                words[((r >> 3) & 7) as usize],
                1 + (r >> 6) % 12,
                1 + (r >> 10) % 28,
                (r >> 15) % 24,
                (r >> 20) % 60,
                (r >> 26) % 60,
                (r >> 32) % 100_000,
                (r >> 50) % 100,
                (r >> 40) % 1000,
                words[((r >> 56) & 7) as usize],
            )?;
            gz.write_all(line.as_bytes())?;
        }
    }
    let Counting(mut w, n) = gz.finish()?;
    w.flush()?;
    println!(
        "wrote {} ({} rows, {:.1} MB)",
        path.display(),
        id,
        n as f64 / 1e6
    );
    Ok(())
}

struct Counting<W>(W, u64);

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
