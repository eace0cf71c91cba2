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
//! Every worker reads its COPY stream and compresses on two threads; finished chunks are
//! appended to their table's file in order by whichever worker completes the next in line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use archive::Compression;
use cluster::catalog::Relation;
use cluster::copy_stream::{Canceller, CopyOut, CopySession};
use cluster::{snapshot, ConnParams};
use pipeline::plan::{chunk_share, Chunk};
use pipeline::progress::InFlight;
use pipeline::rows::{RowScanner, RowSyntax};
use pipeline::sink::{HashingWriter, HeaderMode, PartFile, SplitLimits, StreamWriter};

use interrupt::Interrupt;

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
    /// From its first chunk's COPY to its file complete (chunks of other tables may have run
    /// in between: with -j, the seconds of all tables add up to more than the run's).
    pub seconds: f64,
}

/// Progress counters shared with the caller's display.
#[derive(Default)]
pub struct Counters {
    pub bytes: AtomicU64,
    pub rows: AtomicU64,
    pub tables_done: AtomicU64,
}

/// The worker sessions: where they connect, what they set up, how many.
pub struct Workers<'a> {
    pub conn: &'a ConnParams,
    pub snapshot_id: &'a str,
    /// pg_dump's session settings ([`crate::session`]).
    pub session_sql: &'a str,
    pub jobs: usize,
    /// A signal cancels every worker's running COPY on the server at once.
    pub interrupt: &'a Interrupt,
    /// Every table or chunk in flight is shown there with its share of the tables' bytes.
    pub progress: &'a pipeline::progress::Progress,
    /// `-v`: a line per table dumped.
    pub verbose: bool,
}

/// Dumps every task's data into `dir` on `jobs` connections that import `snapshot_id`.
/// `abort` stops the workers (a signal, or pg_dump's failure); a worker's failure raises it.
pub fn export(
    workers: &Workers,
    tasks: &[TableTask],
    dir: &Path,
    encoding: Encoding,
    abort: &Arc<AtomicBool>,
    counters: &Counters,
) -> Result<Vec<TableData>, DumpError> {
    let pool = Pool {
        workers,
        tasks,
        dir,
        encoding,
        abort,
        counters,
        queue: Mutex::new(units(tasks, encoding)),
        // Each table's file grows in chunk order as chunks finish, on the worker that
        // finished the next one in line: only the last chunk of the last table is joined
        // after the COPYs.
        joins: tasks
            .iter()
            .map(|t| {
                Mutex::new(Join {
                    units: encoding.units(t),
                    ..Join::default()
                })
            })
            .collect(),
        finished: Mutex::new(Vec::new()),
        first_error: Mutex::new(None),
        cancel: Arc::new(Mutex::new(Vec::new())),
    };
    let _cancel_on_signal = {
        let (cancel, conn) = (Arc::clone(&pool.cancel), workers.conn.clone());
        workers.interrupt.on_signal(move || {
            for tok in cancel.lock().expect("lock").iter() {
                tok.cancel(&conn);
            }
        })
    };
    std::thread::scope(|scope| {
        for _ in 0..workers.jobs.max(1) {
            scope.spawn(|| pool.work());
        }
    });
    pool.finish()
}

/// (task, chunk) units, chunked only where the format allows, biggest tables popped first.
fn units(tasks: &[TableTask], encoding: Encoding) -> Vec<(usize, usize)> {
    let mut units: Vec<(usize, usize)> = Vec::new();
    for (t, task) in tasks.iter().enumerate() {
        for c in 0..encoding.units(task) {
            units.push((t, c));
        }
    }
    units.sort_by_key(|(t, c)| (std::cmp::Reverse(tasks[*t].relation.pages), *t, *c));
    units.reverse();
    units
}

/// The workers' shared state for one [`export`].
struct Pool<'a> {
    workers: &'a Workers<'a>,
    tasks: &'a [TableTask],
    dir: &'a Path,
    encoding: Encoding,
    abort: &'a Arc<AtomicBool>,
    counters: &'a Counters,
    queue: Mutex<Vec<(usize, usize)>>,
    joins: Vec<Mutex<Join>>,
    finished: Mutex<Vec<TableData>>,
    first_error: Mutex<Option<DumpError>>,
    cancel: Arc<Mutex<Vec<Canceller>>>,
}

impl Pool<'_> {
    /// One worker session: units until none is left, one fails or the run stops.
    fn work(&self) {
        let Some(mut client) = self.connect() else {
            return;
        };
        while !self.abort.load(Ordering::SeqCst) {
            let Some((t, c)) = self.queue.lock().expect("lock").pop() else {
                break;
            };
            if let Err(e) = self.unit(&mut client, t, c) {
                self.first_error.lock().expect("lock").get_or_insert(e);
                self.abort.store(true, Ordering::SeqCst);
                for tok in self.cancel.lock().expect("lock").iter() {
                    tok.cancel(self.workers.conn);
                }
                break;
            }
        }
        // The read-only transaction ends before the session does: a bare disconnect leaves
        // "unexpected EOF on client connection with an open transaction" in the server log.
        // A dead connection just fails here.
        let clean = !self.abort.load(Ordering::SeqCst);
        let _ = client.batch_execute(if clean { "COMMIT" } else { "ROLLBACK" });
    }

    /// A session with pg_dump's settings on the leader's snapshot, registered for cancels.
    fn connect(&self) -> Option<CopySession> {
        let w = self.workers;
        let connected = CopySession::connect(w.conn).and_then(|mut c| {
            c.batch_execute(w.session_sql)
                .map_err(cluster::ClusterError::query("setting up the session"))?;
            snapshot::import_into(&mut c, w.snapshot_id).map(|_| c)
        });
        match connected {
            Ok(c) => {
                self.cancel.lock().expect("lock").push(c.cancel_token());
                Some(c)
            }
            Err(e) => {
                self.first_error
                    .lock()
                    .expect("lock")
                    .get_or_insert(e.into());
                self.abort.store(true, Ordering::SeqCst);
                None
            }
        }
    }

    /// Chunk `c` of table `t`, appended to its table's file when it is next in line.
    fn unit(&self, client: &mut CopySession, t: usize, c: usize) -> Result<(), DumpError> {
        let (task, encoding) = (&self.tasks[t], self.encoding);
        let whole = [Chunk::Whole];
        let (chunks, i) = match encoding {
            Encoding::ZstdFrame(_) => (&whole[..], 0),
            _ => (&task.chunks[..], c),
        };
        let temp = self.dir.join(format!(".{}.{c}.part", task.file_name));
        let (share, share_rows) = chunk_share(&task.relation, chunks, i);
        let flight = self
            .workers
            .progress
            .begin(&task.relation.display(), share, share_rows);
        let on = (self.counters, &flight);
        let started = Instant::now();
        self.joins[t]
            .lock()
            .expect("lock")
            .started
            .get_or_insert(started);
        let piece = dump_unit(client, task, &chunks[i], &temp, encoding, on, self.abort)?;
        let mut join = self.joins[t].lock().expect("lock");
        if let Some(mut data) = join.add(c, piece, self.dir, task, encoding)? {
            data.index = t;
            data.seconds = join.started.unwrap_or(started).elapsed().as_secs_f64();
            if self.workers.verbose {
                logline::say!(
                    "cbdump: dumped {}: {} rows, {} in {:.2} s",
                    task.relation.display(),
                    data.rows,
                    pipeline::progress::human(data.file_bytes),
                    data.seconds
                );
            }
            self.finished.lock().expect("lock").push(data);
            self.counters.tables_done.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Every table's file in task order, or the first error with everything written removed.
    fn finish(self) -> Result<Vec<TableData>, DumpError> {
        let mut out = self.finished.into_inner().expect("lock");
        let failed = self.first_error.into_inner().expect("lock");
        if failed.is_some() || self.abort.load(Ordering::SeqCst) {
            for j in self.joins {
                j.into_inner().expect("lock").discard();
            }
            for d in &out {
                let _ = std::fs::remove_file(&d.path);
            }
            return Err(failed.unwrap_or(DumpError::Interrupted));
        }
        out.sort_by_key(|d| d.index);
        Ok(out)
    }
}

/// A finished chunk: its file, and for zlib pieces the Adler-32 of its uncompressed bytes.
#[derive(Debug, Clone)]
struct Piece {
    file: PartFile,
    adler: u32,
}

/// One table's data file as its chunks arrive, appended strictly in chunk order.
#[derive(Default)]
struct Join {
    units: usize,
    next: usize,
    waiting: std::collections::BTreeMap<usize, Piece>,
    out: Option<(PathBuf, HashingWriter<std::io::BufWriter<std::fs::File>>)>,
    rows: u64,
    raw_bytes: u64,
    adler: u32,
    /// Gzip pieces' end members, left out and counted in the file's one end member.
    pieces: archive::gzip_members::Join,
    /// When the table's first chunk started.
    started: Option<Instant>,
}

impl Join {
    /// Takes chunk `c`; appends every chunk now in line; returns the table's file once the
    /// last one is in.
    fn add(
        &mut self,
        c: usize,
        piece: Piece,
        dir: &Path,
        task: &TableTask,
        encoding: Encoding,
    ) -> Result<Option<TableData>, DumpError> {
        self.waiting.insert(c, piece);
        if let Encoding::ZstdFrame(_) = encoding {
            // One frame, terminator included: the piece is the file.
            let p = self.waiting.remove(&c).expect("just inserted");
            let (sha256, file_bytes) = hash_file(&p.file.temp)?;
            let path = dir.join(&task.file_name);
            rename(&p.file.temp, &path)?;
            return Ok(Some(TableData {
                index: 0,
                path,
                rows: p.file.rows,
                raw_bytes: p.file.raw_bytes,
                file_bytes,
                sha256,
                seconds: 0.0,
            }));
        }
        while let Some(p) = self.waiting.remove(&self.next) {
            self.append(p, dir, task, encoding)?;
            self.next += 1;
        }
        if self.next < self.units {
            return Ok(None);
        }
        let (temp, mut w) = self.out.take().expect("at least one chunk");
        let io = |e: std::io::Error| DumpError::io(&temp, e);
        match encoding {
            Encoding::Members(c) => {
                let mut enc = c.encoder_after(&mut w, self.pieces).map_err(io)?;
                enc.write_all(TERMINATOR).map_err(io)?;
                enc.finish().map_err(io)?;
            }
            Encoding::Zlib(level) => {
                let mut last = zlibjoin::PieceWriter::new(&mut w, level);
                last.write_all(TERMINATOR).map_err(io)?;
                let (_, a, n) = last.finish(true).map_err(io)?;
                let adler = zlibjoin::adler32_combine(self.adler, a, n);
                w.write_all(&adler.to_be_bytes()).map_err(io)?;
            }
            Encoding::ZstdFrame(_) => unreachable!("handled above"),
        }
        let (buffered, sha256, file_bytes) = w.finish();
        buffered.into_inner().map_err(|e| io(e.into_error()))?;
        let path = dir.join(&task.file_name);
        rename(&temp, &path)?;
        Ok(Some(TableData {
            index: 0,
            path,
            rows: self.rows,
            raw_bytes: self.raw_bytes + TERMINATOR.len() as u64,
            file_bytes,
            sha256,
            seconds: 0.0,
        }))
    }

    fn append(
        &mut self,
        p: Piece,
        dir: &Path,
        task: &TableTask,
        encoding: Encoding,
    ) -> Result<(), DumpError> {
        if self.out.is_none() {
            let temp = dir.join(format!(".{}.joined.part", task.file_name));
            let file = std::fs::File::create(&temp).map_err(|e| DumpError::io(&temp, e))?;
            let mut w = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
            if let Encoding::Zlib(level) = encoding {
                w.write_all(&zlibjoin::zlib_header(level))
                    .map_err(|e| DumpError::io(&temp, e))?;
                self.adler = 1;
            }
            self.out = Some((temp, w));
        }
        let (temp, w) = self.out.as_mut().expect("opened above");
        let mut f =
            std::fs::File::open(&p.file.temp).map_err(|e| DumpError::io(&p.file.temp, e))?;
        match encoding {
            Encoding::Members(c) => c.append_piece(&mut f, w, &mut self.pieces),
            _ => std::io::copy(&mut f, w),
        }
        .map_err(|e| DumpError::io(temp, e))?;
        let _ = std::fs::remove_file(&p.file.temp);
        if let Encoding::Zlib(_) = encoding {
            self.adler = zlibjoin::adler32_combine(self.adler, p.adler, p.file.raw_bytes);
        }
        self.rows += p.file.rows;
        self.raw_bytes += p.file.raw_bytes;
        Ok(())
    }

    /// Removes everything this table wrote so far (after a failure elsewhere).
    fn discard(self) {
        for p in self.waiting.values() {
            let _ = std::fs::remove_file(&p.file.temp);
        }
        if let Some((temp, _)) = self.out {
            let _ = std::fs::remove_file(temp);
        }
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), DumpError> {
    std::fs::rename(from, to).map_err(|e| DumpError::io(to, e))
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
    client: &mut CopySession,
    task: &TableTask,
    chunk: &Chunk,
    temp: &Path,
    encoding: Encoding,
    (counters, flight): (&Counters, &InFlight),
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
    let mut feed = |consume: &mut Consume| pump(&mut reader, abort, &stream_err, flight, consume);
    match encoding {
        Encoding::Members(c) => members_piece(temp, c, counters, &mut feed),
        Encoding::ZstdFrame(level) => zstd_piece(temp, level, counters, &mut feed),
        Encoding::Zlib(level) => zlib_piece(temp, level, counters, &mut feed),
    }
}

/// What takes each buffer of the COPY stream.
type Consume<'c> = dyn FnMut(&[u8]) -> Result<(), DumpError> + 'c;
/// Runs the COPY stream through a [`Consume`] ([`pump`]).
type Feed<'f> = dyn FnMut(&mut Consume) -> Result<(), DumpError> + 'f;

/// Directory archives and uncompressed or zstd custom archives' chunks: members (or frames, or
/// raw text) written by the shared [`StreamWriter`].
fn members_piece(
    temp: &Path,
    c: Compression,
    counters: &Counters,
    feed: &mut Feed,
) -> Result<Piece, DumpError> {
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
    let r = feed(&mut |b| {
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

/// Custom archives with zstd: the whole table as one frame, terminator included.
fn zstd_piece(
    temp: &Path,
    level: i32,
    counters: &Counters,
    feed: &mut Feed,
) -> Result<Piece, DumpError> {
    let file = std::fs::File::create(temp).map_err(|e| DumpError::io(temp, e))?;
    let buffered = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut enc =
        zstd::stream::write::Encoder::new(buffered, level).map_err(|e| DumpError::io(temp, e))?;
    let mut scanner = RowScanner::new(RowSyntax::Text);
    let mut ends = Vec::new();
    let (mut rows, mut raw) = (0u64, 0u64);
    let r = feed(&mut |b| {
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

/// Custom archives with gzip: a raw deflate piece and its Adler-32, joined pigz-style later.
fn zlib_piece(
    temp: &Path,
    level: u32,
    counters: &Counters,
    feed: &mut Feed,
) -> Result<Piece, DumpError> {
    let file = std::fs::File::create(temp).map_err(|e| DumpError::io(temp, e))?;
    let buffered = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut piece = zlibjoin::PieceWriter::new(buffered, level);
    let mut scanner = RowScanner::new(RowSyntax::Text);
    let mut ends = Vec::new();
    let mut rows = 0u64;
    let r = feed(&mut |b| {
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
    let (adler, raw_bytes, file_bytes) = r.inspect_err(|_| {
        let _ = std::fs::remove_file(temp);
    })?;
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

/// Reads the COPY stream on a second thread while `consume` (compression) runs on this one
/// ([`pipeline::buffers`]): one worker keeps two cores busy.
fn pump(
    reader: &mut CopyOut<'_>,
    abort: &AtomicBool,
    stream_err: &(dyn Fn(std::io::Error) -> DumpError + Sync),
    flight: &InFlight,
    mut consume: impl FnMut(&[u8]) -> Result<(), DumpError>,
) -> Result<(), DumpError> {
    let (written, read) = pipeline::pipelined(
        |buf| {
            if abort.load(Ordering::Relaxed) {
                return Err(DumpError::Interrupted);
            }
            let n = reader.fill(buf).map_err(stream_err)?;
            flight.add(n as u64, 0);
            Ok(n)
        },
        &mut consume,
    );
    written.and(read)
}
