//! Table data: `COPY ... TO STDOUT` on worker connections that imported the leader's snapshot,
//! compressed on the workers, written as each archive format wants it.
//!
//! - directory archives: a table's chunks (ctid ranges, so one big table keeps every worker
//!   busy) are complete gzip members (or zstd frames) joined in order, plus one member holding
//!   pg_dump's `\.` terminator — a gzip file pg_restore reads whole;
//! - custom archives: one zlib stream per table (pg_restore stops at the first stream end), so a
//!   table is one task, read and compressed on two threads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use archive::Compression;
use cluster::catalog::Relation;
use cluster::{quote, snapshot, ConnParams};
use copyout::plan::Chunk;
use copyout::rows::{RowScanner, RowSyntax};
use copyout::sink::{HashingWriter, HeaderMode, PartFile, SplitLimits, StreamWriter};

use crate::DumpError;

/// pg_dump ends every table's data with this.
pub const TERMINATOR: &[u8] = b"\\.\n\n\n";

/// One table to dump.
#[derive(Debug, Clone)]
pub struct TableTask {
    pub relation: Relation,
    /// Non-generated columns in attribute order: pg_dump's COPY column list.
    pub columns: Vec<String>,
    pub chunks: Vec<Chunk>,
    /// File name of the finished data (`<dumpId>.dat.gz`).
    pub file_name: String,
}

impl TableTask {
    pub fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote::ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn copy_sql(&self, chunk: &Chunk) -> String {
        let cols = self.column_list();
        let rel = self.relation.qualified();
        match chunk {
            Chunk::Whole => format!("COPY {rel} ({cols}) TO STDOUT"),
            Chunk::Ctid { from, to } => {
                let mut cond = format!("ctid >= '({from},0)'::tid");
                if let Some(to) = to {
                    cond.push_str(&format!(" AND ctid < '({to},0)'::tid"));
                }
                format!("COPY (SELECT {cols} FROM ONLY {rel} WHERE {cond}) TO STDOUT")
            }
            Chunk::Segment(c) => {
                format!("COPY (SELECT {cols} FROM ONLY {rel} WHERE gp_segment_id = {c}) TO STDOUT")
            }
        }
    }
}

/// How a table's data file is encoded.
#[derive(Debug, Clone, Copy)]
pub enum Encoding {
    /// Directory archives: members/frames of this codec, chunks allowed.
    Members(Compression),
    /// Custom archives with gzip: one zlib stream per table.
    Zlib(u32),
    /// Custom archives without compression, or with zstd (one frame).
    Single(Compression),
}

/// A finished data file.
#[derive(Debug, Clone)]
pub struct TableData {
    pub index: usize,
    pub path: PathBuf,
    pub rows: u64,
    pub raw_bytes: u64,
    pub file_bytes: u64,
    pub sha256: [u8; 32],
}

/// Progress counters shared with the caller's display.
#[derive(Default)]
pub struct Counters {
    pub bytes: AtomicU64,
    pub rows: AtomicU64,
    pub tables_done: AtomicU64,
}

/// Dumps every task's data into `dir` on `jobs` connections that import `snapshot_id`.
#[allow(clippy::too_many_arguments)]
pub fn export(
    conn: &ConnParams,
    snapshot_id: &str,
    tasks: &[TableTask],
    dir: &Path,
    encoding: Encoding,
    jobs: usize,
    abort: &Arc<AtomicBool>,
    counters: &Counters,
) -> Result<Vec<TableData>, DumpError> {
    // (task, chunk) units; chunked only where the format allows.
    let mut units: Vec<(usize, usize)> = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        let n = match encoding {
            Encoding::Members(_) => task.chunks.len(),
            _ => 1,
        };
        for c in 0..n {
            units.push((t, c));
        }
    }
    // Biggest tables first.
    units.sort_by_key(|(t, c)| (std::cmp::Reverse(tasks[*t].relation.pages), *t, *c));
    let queue = Mutex::new(units.into_iter().rev().collect::<Vec<_>>());
    let parts: Mutex<Vec<Vec<Option<PartFile>>>> = Mutex::new(
        tasks
            .iter()
            .map(|t| vec![None; t.chunks.len().max(1)])
            .collect(),
    );
    let first_error: Mutex<Option<DumpError>> = Mutex::new(None);
    let cancel: Mutex<Vec<postgres::CancelToken>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| {
                let mut client = match cluster::connect(conn)
                    .and_then(|mut c| snapshot::import(&mut c, snapshot_id).map(|_| c))
                {
                    Ok(c) => c,
                    Err(e) => {
                        first_error.lock().expect("lock").get_or_insert(e.into());
                        abort.store(true, Ordering::SeqCst);
                        return;
                    }
                };
                cancel.lock().expect("lock").push(client.cancel_token());
                loop {
                    if abort.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some((t, c)) = queue.lock().expect("lock").pop() else {
                        return;
                    };
                    let task = &tasks[t];
                    let chunk = match encoding {
                        Encoding::Members(_) => task.chunks[c].clone(),
                        _ => Chunk::Whole,
                    };
                    let temp = dir.join(format!(".{}.{c}.part", task.file_name));
                    let r = dump_unit(&mut client, task, &chunk, &temp, encoding, counters, abort);
                    match r {
                        Ok(part) => parts.lock().expect("lock")[t][c] = Some(part),
                        Err(e) => {
                            first_error.lock().expect("lock").get_or_insert(e);
                            abort.store(true, Ordering::SeqCst);
                            for tok in cancel.lock().expect("lock").iter() {
                                cluster::connect::cancel(tok, conn);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    let all_parts = parts.into_inner().expect("lock");
    if let Some(e) = first_error.into_inner().expect("lock") {
        remove_parts(&all_parts);
        return Err(e);
    }
    if abort.load(Ordering::SeqCst) {
        remove_parts(&all_parts);
        return Err(DumpError::Interrupted);
    }
    // Join chunks in order and add the terminator (a member of its own where chunks are
    // members; already inside the single stream otherwise).
    let mut out = Vec::new();
    for (t, (task, chunks)) in tasks.iter().zip(all_parts).enumerate() {
        let mut chunks: Vec<PartFile> = chunks.into_iter().flatten().collect();
        if let Encoding::Members(c) = encoding {
            let term = dir.join(format!(".{}.term.part", task.file_name));
            let mut enc = c
                .encoder(std::fs::File::create(&term).map_err(|e| DumpError::io(&term, e))?)
                .map_err(|e| DumpError::io(&term, e))?;
            enc.write_all(TERMINATOR)
                .map_err(|e| DumpError::io(&term, e))?;
            enc.finish().map_err(|e| DumpError::io(&term, e))?;
            let len = std::fs::metadata(&term)
                .map_err(|e| DumpError::io(&term, e))?
                .len();
            chunks.push(PartFile {
                temp: term,
                rows: 0,
                raw_bytes: TERMINATOR.len() as u64,
                file_bytes: len,
                sha256: [0; 32],
            });
        }
        let merged = if chunks.len() == 1 {
            chunks.remove(0)
        } else {
            copyout::export::concatenate(&chunks, false)
                .map_err(|e| DumpError::Data(task.relation.display(), e.to_string()))?
        };
        let path = dir.join(&task.file_name);
        std::fs::rename(&merged.temp, &path).map_err(|e| DumpError::io(&path, e))?;
        // concatenate hashed the joined file; a single part was hashed as it was written.
        out.push(TableData {
            index: t,
            path,
            rows: merged.rows,
            raw_bytes: merged.raw_bytes,
            file_bytes: merged.file_bytes,
            sha256: merged.sha256,
        });
        counters.tables_done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(out)
}

fn remove_parts(parts: &[Vec<Option<PartFile>>]) {
    for p in parts.iter().flatten().flatten() {
        let _ = std::fs::remove_file(&p.temp);
    }
}

fn hash_file(path: &Path) -> Result<([u8; 32], u64), DumpError> {
    let mut h = HashingWriter::new(std::io::sink());
    let mut f = std::fs::File::open(path).map_err(|e| DumpError::io(path, e))?;
    std::io::copy(&mut f, &mut h).map_err(|e| DumpError::io(path, e))?;
    let (_, sha, n) = h.finish();
    Ok((sha, n))
}

/// One COPY into one temporary file.
fn dump_unit(
    client: &mut postgres::Client,
    task: &TableTask,
    chunk: &Chunk,
    temp: &Path,
    encoding: Encoding,
    counters: &Counters,
    abort: &AtomicBool,
) -> Result<PartFile, DumpError> {
    let label = task.relation.display();
    let sql = task.copy_sql(chunk);
    let mut reader = client
        .copy_out(&sql)
        .map_err(|e| DumpError::Data(label.clone(), cluster::error::server_message(&e)))?;
    let stream_err = |e: std::io::Error| {
        let msg = match e
            .get_ref()
            .and_then(|i| i.downcast_ref::<postgres::Error>())
        {
            Some(pg) => cluster::error::server_message(pg),
            None => e.to_string(),
        };
        DumpError::Data(label.clone(), msg)
    };
    match encoding {
        Encoding::Members(c) => {
            let dir = temp.parent().unwrap_or(Path::new("."));
            let name = temp
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut w = StreamWriter::new(
                dir,
                name,
                c,
                SplitLimits::default(),
                HeaderMode::Absent,
                RowSyntax::Text,
                false,
            );
            let r = pump(&mut reader, abort, &stream_err, |b| {
                w.write(b).map_err(|e| DumpError::io(temp, e))?;
                counters.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                Ok(())
            });
            if let Err(e) = r {
                w.discard();
                return Err(e);
            }
            let mut parts = w.finish().map_err(|e| DumpError::io(temp, e))?;
            let p = parts.remove(0);
            counters.rows.fetch_add(p.rows, Ordering::Relaxed);
            Ok(p)
        }
        Encoding::Zlib(_) | Encoding::Single(_) => {
            let file = std::fs::File::create(temp).map_err(|e| DumpError::io(temp, e))?;
            let buffered = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut enc = match encoding {
                Encoding::Zlib(level) => SingleEncoder::Zlib(flate2::write::ZlibEncoder::new(
                    buffered,
                    flate2::Compression::new(level),
                )),
                Encoding::Single(c) => {
                    SingleEncoder::Other(c.encoder(buffered).map_err(|e| DumpError::io(temp, e))?)
                }
                Encoding::Members(_) => unreachable!("handled above"),
            };
            let mut scanner = RowScanner::new(RowSyntax::Text);
            let mut ends = Vec::new();
            let mut rows = 0u64;
            let mut raw = 0u64;
            let r = pump(&mut reader, abort, &stream_err, |b| {
                ends.clear();
                scanner.scan(b, &mut ends);
                rows += ends.len() as u64;
                raw += b.len() as u64;
                enc.write_all(b).map_err(|e| DumpError::io(temp, e))?;
                counters.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                Ok(())
            })
            .and_then(|_| {
                enc.write_all(TERMINATOR)
                    .map_err(|e| DumpError::io(temp, e))
            });
            let r = r.and_then(|_| {
                enc.finish()
                    .and_then(|mut w| w.flush())
                    .map_err(|e| DumpError::io(temp, e))
            });
            if let Err(e) = r {
                let _ = std::fs::remove_file(temp);
                return Err(e);
            }
            counters.rows.fetch_add(rows, Ordering::Relaxed);
            let (sha256, file_bytes) = hash_file(temp)?;
            Ok(PartFile {
                temp: temp.to_path_buf(),
                rows,
                raw_bytes: raw + TERMINATOR.len() as u64,
                file_bytes,
                sha256,
            })
        }
    }
}

/// Reads the COPY stream on a second thread while `consume` (compression) runs on this one,
/// through a bounded queue of four 256 KiB buffers: one worker keeps two cores busy, and memory
/// stays at a megabyte per worker.
fn pump<R: Read + Send>(
    reader: &mut R,
    abort: &AtomicBool,
    stream_err: &(dyn Fn(std::io::Error) -> DumpError + Sync),
    mut consume: impl FnMut(&[u8]) -> Result<(), DumpError>,
) -> Result<(), DumpError> {
    let (full_tx, full_rx) = crossbeam_channel::bounded::<(Vec<u8>, usize)>(4);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded::<Vec<u8>>(4);
    for _ in 0..4 {
        empty_tx.send(vec![0u8; 256 * 1024]).expect("open channel");
    }
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || -> Result<(), DumpError> {
            let mut done = false;
            for mut buf in empty_rx.iter() {
                if abort.load(Ordering::Relaxed) {
                    return Err(DumpError::Interrupted);
                }
                let n = fill(reader, &mut buf, &mut done).map_err(stream_err)?;
                if n == 0 {
                    return Ok(());
                }
                if full_tx.send((buf, n)).is_err() {
                    return Ok(());
                }
            }
            Ok(())
        });
        let mut written = Ok(());
        for (buf, n) in full_rx.iter() {
            if let Err(e) = consume(&buf[..n]) {
                written = Err(e);
                break;
            }
            let _ = empty_tx.send(buf);
        }
        drop(full_rx);
        drop(empty_tx);
        let read = reading.join().expect("COPY reader thread");
        written.and(read)
    })
}

/// Reads until `buf` is full or the stream ends (the driver returns one row per read); `done`
/// remembers the end, because the driver must not be read again after it.
fn fill(reader: &mut impl Read, buf: &mut [u8], done: &mut bool) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() && !*done {
        match reader.read(&mut buf[n..]) {
            Ok(0) => *done = true,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The single-stream writers of custom archives.
enum SingleEncoder<W: Write> {
    Zlib(flate2::write::ZlibEncoder<W>),
    Other(archive::codec::Encoder<W>),
}

impl<W: Write> SingleEncoder<W> {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            SingleEncoder::Zlib(e) => e.write_all(b),
            SingleEncoder::Other(e) => e.write_all(b),
        }
    }

    fn finish(self) -> std::io::Result<W> {
        match self {
            SingleEncoder::Zlib(e) => e.finish(),
            SingleEncoder::Other(e) => e.finish(),
        }
    }
}
