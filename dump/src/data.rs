//! Table data: `COPY ... TO STDOUT` on worker connections that imported the leader's snapshot,
//! compressed on the workers, written as each archive format wants it.
//!
//! - directory archives: a table's chunks (ctid ranges, so one big table keeps every worker
//!   busy) are complete gzip members (or zstd frames) joined in order, plus one member holding
//!   pg_dump's `\.` terminator — a gzip file pg_restore reads whole;
//! - custom archives with gzip: one zlib stream per table (pg_restore stops at the first stream
//!   end), joined pigz-style from chunks compressed in parallel ([`crate::zlibjoin`]);
//! - custom archives without compression or with zstd, and the archive behind a plain script:
//!   chunks as raw text or zstd frames joined in order, then the terminator.
//!
//! Every worker reads its COPY stream and compresses on two threads.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use archive::Compression;
use cluster::catalog::Relation;
use cluster::{snapshot, ConnParams};
use copyout::plan::Chunk;
use copyout::rows::{RowScanner, RowSyntax};
use copyout::sink::{HashingWriter, HeaderMode, PartFile, SplitLimits, StreamWriter};

use crate::tables::CopyTarget;
use crate::{zlibjoin, DumpError};

/// pg_dump ends every table's data with this.
pub const TERMINATOR: &[u8] = b"\\.\n\n\n";

/// One table to dump.
#[derive(Debug, Clone)]
pub struct TableTask {
    pub relation: Relation,
    /// Name and non-generated columns as pg_dump writes them.
    pub target: CopyTarget,
    pub chunks: Vec<Chunk>,
    /// File name of the finished data (`<dumpId>.dat.gz`).
    pub file_name: String,
}

impl TableTask {
    fn copy_sql(&self, chunk: &Chunk) -> String {
        let cols = &self.target.columns;
        let rel = &self.target.table;
        match chunk {
            Chunk::Whole => format!("COPY {rel} {} TO STDOUT", self.target.column_clause()),
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
    /// Gzip members, zstd frames or raw text, one per chunk plus one for the terminator.
    Members(Compression),
    /// Custom archives with gzip: one zlib stream per table, at this level.
    Zlib(u32),
    /// Custom archives with zstd: one frame per table, terminator included, read whole by one
    /// worker. pg_restore's custom-format zstd reader drops the rest of a data chunk after a
    /// frame ends, so frames cannot be joined there.
    ZstdFrame(i32),
}

impl Encoding {
    fn units(self, task: &TableTask) -> usize {
        match self {
            Encoding::ZstdFrame(_) => 1,
            _ => task.chunks.len(),
        }
    }
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
    session_sql: &str,
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
        for c in 0..encoding.units(task) {
            units.push((t, c));
        }
    }
    // Biggest tables first.
    units.sort_by_key(|(t, c)| (std::cmp::Reverse(tasks[*t].relation.pages), *t, *c));
    let queue = Mutex::new(units.into_iter().rev().collect::<Vec<_>>());
    let parts: Mutex<Vec<Vec<Option<Piece>>>> = Mutex::new(
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
                let mut client = match cluster::connect(conn).and_then(|mut c| {
                    c.batch_execute(session_sql)
                        .map_err(cluster::ClusterError::query("setting up the session"))?;
                    snapshot::import(&mut c, snapshot_id).map(|_| c)
                }) {
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
                        Encoding::ZstdFrame(_) => &Chunk::Whole,
                        _ => &task.chunks[c],
                    };
                    let temp = dir.join(format!(".{}.{c}.part", task.file_name));
                    let r = dump_unit(&mut client, task, chunk, &temp, encoding, counters, abort);
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
    // Join chunks in order and add the terminator.
    let mut out = Vec::new();
    for (t, (task, pieces)) in tasks.iter().zip(all_parts).enumerate() {
        let pieces: Vec<Piece> = pieces.into_iter().flatten().collect();
        let path = dir.join(&task.file_name);
        let merged = match encoding {
            Encoding::Members(c) => join_members(dir, task, pieces, c)?,
            Encoding::Zlib(level) => join_zlib(dir, task, &pieces, level)?,
            Encoding::ZstdFrame(_) => {
                let Some(p) = pieces.into_iter().next() else {
                    return Err(DumpError::Data(task.relation.display(), "no data".into()));
                };
                let (sha256, file_bytes) = hash_file(&p.file.temp)?;
                PartFile {
                    sha256,
                    file_bytes,
                    ..p.file
                }
            }
        };
        std::fs::rename(&merged.temp, &path).map_err(|e| DumpError::io(&path, e))?;
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

/// A finished chunk: its file, and for zlib pieces the Adler-32 of its uncompressed bytes.
#[derive(Debug, Clone)]
struct Piece {
    file: PartFile,
    adler: u32,
}

/// Members (or frames, or raw text) in chunk order, then one holding the terminator.
fn join_members(
    dir: &Path,
    task: &TableTask,
    pieces: Vec<Piece>,
    c: Compression,
) -> Result<PartFile, DumpError> {
    let mut parts: Vec<PartFile> = pieces.into_iter().map(|p| p.file).collect();
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
    parts.push(PartFile {
        temp: term,
        rows: 0,
        raw_bytes: TERMINATOR.len() as u64,
        file_bytes: len,
        sha256: [0; 32],
    });
    // concatenate hashes the joined file.
    copyout::export::concatenate(&parts, false)
        .map_err(|e| DumpError::Data(task.relation.display(), e.to_string()))
}

/// The zlib header, the pieces, the terminator in the final block, the combined Adler-32.
fn join_zlib(
    dir: &Path,
    task: &TableTask,
    pieces: &[Piece],
    level: u32,
) -> Result<PartFile, DumpError> {
    let temp = dir.join(format!(".{}.joined.part", task.file_name));
    let run = || -> std::io::Result<([u8; 32], u64)> {
        let file = std::fs::File::create(&temp)?;
        let mut out = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
        out.write_all(&zlibjoin::zlib_header(level))?;
        let mut adler = 1u32;
        for p in pieces {
            std::io::copy(&mut std::fs::File::open(&p.file.temp)?, &mut out)?;
            adler = zlibjoin::adler32_combine(adler, p.adler, p.file.raw_bytes);
        }
        let last = zlibjoin::PieceWriter::new(&mut out, level);
        let mut last = last;
        last.write_all(TERMINATOR)?;
        let (_, a, n) = last.finish(true)?;
        adler = zlibjoin::adler32_combine(adler, a, n);
        out.write_all(&adler.to_be_bytes())?;
        let (w, sha, bytes) = out.finish();
        w.into_inner().map_err(|e| e.into_error())?;
        Ok((sha, bytes))
    };
    let result = run();
    for p in pieces {
        let _ = std::fs::remove_file(&p.file.temp);
    }
    let (sha256, file_bytes) = result.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        DumpError::io(&temp, e)
    })?;
    Ok(PartFile {
        temp,
        rows: pieces.iter().map(|p| p.file.rows).sum(),
        raw_bytes: pieces.iter().map(|p| p.file.raw_bytes).sum::<u64>() + TERMINATOR.len() as u64,
        file_bytes,
        sha256,
    })
}

fn remove_parts(parts: &[Vec<Option<Piece>>]) {
    for p in parts.iter().flatten().flatten() {
        let _ = std::fs::remove_file(&p.file.temp);
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
) -> Result<Piece, DumpError> {
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
            let file = parts.remove(0);
            counters.rows.fetch_add(file.rows, Ordering::Relaxed);
            Ok(Piece { file, adler: 1 })
        }
        Encoding::ZstdFrame(level) => {
            let file = std::fs::File::create(temp).map_err(|e| DumpError::io(temp, e))?;
            let buffered = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut enc = zstd::stream::write::Encoder::new(buffered, level)
                .map_err(|e| DumpError::io(temp, e))?;
            let mut scanner = RowScanner::new(RowSyntax::Text);
            let mut ends = Vec::new();
            let (mut rows, mut raw) = (0u64, 0u64);
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
                    .and_then(|_| enc.finish())
                    .and_then(|mut w| w.flush())
                    .map_err(|e| DumpError::io(temp, e))
            });
            if let Err(e) = r {
                let _ = std::fs::remove_file(temp);
                return Err(e);
            }
            counters.rows.fetch_add(rows, Ordering::Relaxed);
            Ok(Piece {
                file: PartFile {
                    temp: temp.to_path_buf(),
                    rows,
                    raw_bytes: raw + TERMINATOR.len() as u64,
                    file_bytes: 0,
                    sha256: [0; 32],
                },
                adler: 1,
            })
        }
        Encoding::Zlib(level) => {
            let file = std::fs::File::create(temp).map_err(|e| DumpError::io(temp, e))?;
            let buffered = std::io::BufWriter::with_capacity(1 << 20, file);
            let mut piece = zlibjoin::PieceWriter::new(buffered, level);
            let mut scanner = RowScanner::new(RowSyntax::Text);
            let mut ends = Vec::new();
            let mut rows = 0u64;
            let r = pump(&mut reader, abort, &stream_err, |b| {
                ends.clear();
                scanner.scan(b, &mut ends);
                rows += ends.len() as u64;
                piece.write_all(b).map_err(|e| DumpError::io(temp, e))?;
                counters.bytes.fetch_add(b.len() as u64, Ordering::Relaxed);
                Ok(())
            })
            .and_then(|_| {
                let (w, adler, len) = piece.finish(false).map_err(|e| DumpError::io(temp, e))?;
                let f = w
                    .into_inner()
                    .map_err(|e| DumpError::io(temp, e.into_error()))?;
                let file_bytes = f.metadata().map_err(|e| DumpError::io(temp, e))?.len();
                Ok((adler, len, file_bytes))
            });
            match r {
                Ok((adler, raw_bytes, file_bytes)) => {
                    counters.rows.fetch_add(rows, Ordering::Relaxed);
                    Ok(Piece {
                        file: PartFile {
                            temp: temp.to_path_buf(),
                            rows,
                            raw_bytes,
                            file_bytes,
                            // Pieces are hashed once joined.
                            sha256: [0; 32],
                        },
                        adler,
                    })
                }
                Err(e) => {
                    let _ = std::fs::remove_file(temp);
                    Err(e)
                }
            }
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
