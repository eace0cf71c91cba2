//! The export run: plan, one snapshot, parallel workers, then commit of every file at once.
//!
//! Workers write under temporary names in the destination directory; only when every chunk of
//! every table has been written without error are the files renamed to their final names (and
//! chunks of one table concatenated in order). Any error or interrupt removes every temporary
//! file, so a failed run leaves nothing that looks like a finished export.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::catalog::{self, Relation, Selection};
use cluster::copy_stream::{Canceller, CopySession};
use cluster::mpp::MppCatalog;
use cluster::snapshot::{self, SnapshotLeader};
use cluster::{flavor, ClusterError, ConnParams, ServerInfo};
use interrupt::{Interrupt, TempPath};

use crate::compress::Compression;
use crate::format::CopyFormat;
use crate::report::{FileReport, Report, TableReport};
use crate::ExportError;
use pipeline::naming;
use pipeline::plan::{chunks_for, Chunk, ChunkPolicy, Job, Source};
use pipeline::progress::Progress;
use pipeline::sink::{HashingWriter, HeaderMode, PartFile, SplitLimits, StreamWriter};

/// What was selected on the command line.
#[derive(Debug, Clone)]
pub enum What {
    Tables {
        selection: Selection,
        columns: Option<Vec<String>>,
        filter: Option<String>,
    },
    Query(String),
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub conn: ConnParams,
    pub what: What,
    pub format: CopyFormat,
    /// `-o`: a directory, a file, or `-` for stdout.
    pub output: String,
    /// `--compress`; `None` infers it from a file name.
    pub compression: Option<Compression>,
    pub limits: SplitLimits,
    pub jobs: usize,
    /// `--chunk-size`; `None` sizes chunks per table, and splits tables only when compressing:
    /// joining uncompressed chunks costs a second write of the whole table, which eats the
    /// gain of reading in parallel.
    pub chunk_bytes: Option<u64>,
    /// fsync every file before renaming it into place (`--no-sync` turns it off).
    pub sync: bool,
    pub force: bool,
    pub manifest: Option<PathBuf>,
    pub verbose: bool,
    pub lock_wait_timeout_ms: Option<u64>,
    /// How progress is shown on stderr (`--progress`).
    pub progress: pipeline::progress::Display,
}

/// Where the output goes, once the number of jobs is known.
#[derive(Debug, Clone)]
enum Destination {
    Stdout,
    File(PathBuf),
    Dir(PathBuf),
}

/// One unit of work for a worker.
struct Task {
    job: usize,
    chunk: usize,
    sql: String,
    header: HeaderMode,
    temp_base: String,
}

struct TaskDone {
    job: usize,
    chunk: usize,
    parts: Vec<PartFile>,
}

/// Shared state between the leader and the workers.
struct Shared {
    /// Raised by a signal, a closed stdout, or the first failed task.
    abort: Arc<AtomicBool>,
    interrupt: Interrupt,
    bytes: AtomicU64,
    rows: AtomicU64,
    /// Every session's cancel handle: the leader's (it may wait on a lock or read the catalog)
    /// and each worker's.
    cancel: Mutex<Vec<Canceller>>,
    leader_cancel: Mutex<Option<postgres::CancelToken>>,
    conn: ConnParams,
    /// Each job's seconds, for the report.
    timings: Mutex<Timings>,
}

/// When each job's first chunk started, and its seconds once its last one finished (with
/// -j, chunks of other tables run in between: the seconds of all tables add up to more than
/// the run's).
#[derive(Default)]
struct Timings {
    started: HashMap<usize, Instant>,
    seconds: HashMap<usize, f64>,
}

impl Timings {
    fn start(&mut self, job: usize) {
        self.started.entry(job).or_insert_with(Instant::now);
    }

    fn finish(&mut self, job: usize) {
        if let Some(s) = self.started.get(&job) {
            self.seconds.insert(job, s.elapsed().as_secs_f64());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the export. A signal (see the `interrupt` crate) cancels the server-side statements,
/// stops the workers, removes every temporary file and returns [`ExportError::Interrupted`];
/// every temporary file lives in one private staging directory beside the output, removed
/// on any failure.
pub fn run(opts: &ExportOptions, interrupt: &Interrupt) -> Result<Report, ExportError> {
    let started = Instant::now();
    let mpp = MppCatalog::from_env();
    let shared = Arc::new(Shared::new(opts, interrupt));
    let _cancel_on_signal = {
        let shared = Arc::clone(&shared);
        interrupt.on_signal(move || cancel_all(&shared))
    };
    let mut leader_client = cluster::connect(&opts.conn)?;
    *shared.leader_cancel.lock().expect("cancel lock") = Some(leader_client.cancel_token());
    let server = flavor::detect(&mut leader_client, &mpp)?;
    opts.format.validate(server.version_num)?;
    let mut leader = SnapshotLeader::begin(leader_client, &[], opts.lock_wait_timeout_ms)?;

    let compression = effective_compression(opts);
    let jobs = plan_jobs(opts, &server, compression, leader.client())?;
    leader.lock(&lockable(&jobs))?;

    let dest = destination(opts, jobs.len())?;
    let finals = final_names(opts, &jobs, &dest, compression);
    let staging = check_targets(opts, &dest, &finals, interrupt)?;
    let expected = jobs
        .iter()
        .map(|j| (0..j.chunks.len()).map(|c| j.share(c).0).sum::<u64>());
    let progress =
        Progress::with_display(jobs.len(), opts.verbose, opts.progress).expecting(expected.sum());

    let outcome = match &staging {
        None => export_to_stdout(opts, &jobs[0], compression, leader.id(), &shared, &progress),
        Some(dir) => export_to_files(
            opts,
            &jobs,
            dir.path(),
            compression,
            leader.id(),
            &shared,
            &progress,
        ),
    };
    progress.finish();
    let snapshot_id = leader.id().to_string();
    let results = outcome?;
    // The leader held the snapshot (and the locks) for the whole run: if its session died,
    // say so and publish nothing rather than files no one can vouch for.
    leader
        .finish()
        .map_err(|e| ExportError::SnapshotLost(e.to_string()))?;
    if shared.abort.load(Ordering::SeqCst) {
        return Err(ExportError::Interrupted);
    }
    let seconds = std::mem::take(&mut lock(&shared.timings).seconds);
    let (tables, files) = commit(opts, &jobs, &finals, &dest, results, compression, interrupt)?;
    let tables = tables
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.taking(seconds.get(&i).copied().unwrap_or(0.0)))
        .collect();
    drop(staging);
    let report = Report::new(
        &server,
        Some(snapshot_id),
        &opts.format,
        compression,
        started.elapsed(),
        tables,
        files,
    );
    if let Some(path) = &opts.manifest {
        report.write_manifest(path, interrupt)?;
    }
    Ok(report)
}

impl Shared {
    fn new(opts: &ExportOptions, interrupt: &Interrupt) -> Shared {
        Shared {
            abort: interrupt.flag(),
            interrupt: interrupt.clone(),
            bytes: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            cancel: Mutex::new(Vec::new()),
            leader_cancel: Mutex::new(None),
            conn: opts.conn.clone(),
            timings: Mutex::new(Timings::default()),
        }
    }
}

/// The jobs' relations that `LOCK TABLE` takes: tables, partitioned tables and foreign
/// tables; materialized views and views cannot be locked (and cannot be dropped under us
/// without touching their tables).
fn lockable(jobs: &[Job]) -> Vec<String> {
    jobs.iter()
        .filter_map(|j| match &j.source {
            Source::Table { relation, .. } if relation.kind.lockable() => {
                Some(relation.qualified())
            }
            _ => None,
        })
        .collect()
}

impl TableReport {
    /// The report with the table's export time.
    fn taking(self, seconds: f64) -> TableReport {
        TableReport { seconds, ..self }
    }
}

/// `--compress`, else what a `-o FILE` name ends in (`.gz`, `.zst`), else none.
fn effective_compression(opts: &ExportOptions) -> Compression {
    opts.compression.unwrap_or_else(|| {
        let names_a_file = opts.output != "-" && !opts.output.ends_with('/');
        names_a_file
            .then(|| Compression::from_file_name(&opts.output))
            .flatten()
            .unwrap_or(Compression::None)
    })
}

/// Turns the selection into jobs, reading the catalog inside the snapshot.
/// Materialized views never refreshed have no rows to read (COPY fails on them): they are
/// skipped with a note, as pg_dump dumps their definition and no data.
fn skip_unpopulated(
    client: &mut postgres::Client,
    picked: &mut Vec<Relation>,
) -> Result<(), ExportError> {
    let empty: Vec<u32> = client
        .query(
            "SELECT oid FROM pg_catalog.pg_class WHERE relkind = 'm' AND NOT relispopulated",
            &[],
        )
        .map_err(ClusterError::query(
            "listing unpopulated materialized views",
        ))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    picked.retain(|r| {
        let skip = empty.contains(&r.oid);
        if skip {
            logline::say!(
                "cbcopyout: note: skipping materialized view {}: it was never populated (REFRESH MATERIALIZED VIEW fills it)",
                r.display()
            );
        }
        !skip
    });
    Ok(())
}

fn plan_jobs(
    opts: &ExportOptions,
    server: &ServerInfo,
    compression: Compression,
    client: &mut postgres::Client,
) -> Result<Vec<Job>, ExportError> {
    let split_tables = opts.chunk_bytes.is_some() || compression != Compression::None;
    let policy = ChunkPolicy {
        workers: if split_tables { opts.jobs } else { 1 },
        chunk_pages: opts.chunk_bytes.map(|b| (b / 8192).max(1) as i64),
        tid_range_scan: server.has_tid_range_scan(),
        segments: server.segments.len(),
    };
    match &opts.what {
        What::Query(q) => Ok(vec![Job {
            source: Source::Query(q.clone()),
            chunks: vec![Chunk::Whole],
        }]),
        What::Tables {
            selection,
            columns,
            filter,
        } => {
            let all = catalog::list_relations(client)?;
            let mut picked = selection.select(&all)?;
            skip_unpopulated(client, &mut picked)?;
            catalog::measure(client, &mut picked)?;
            if picked.is_empty() {
                return Err(ExportError::NothingSelected);
            }
            if (columns.is_some() || filter.is_some()) && picked.len() != 1 {
                return Err(ExportError::PortionNeedsOneTable(
                    picked.iter().map(Relation::display).collect(),
                ));
            }
            if let Some(cols) = columns {
                let rel = &picked[0];
                let existing = catalog::columns(client, rel.oid)?;
                for c in cols {
                    if !existing.iter().any(|e| &e.name == c) {
                        return Err(ExportError::UnknownColumn {
                            table: rel.display(),
                            column: c.clone(),
                        });
                    }
                }
            }
            // Largest first: the long poles start early and small tables fill the gaps.
            picked.sort_by(|a, b| b.pages.cmp(&a.pages).then(a.oid.cmp(&b.oid)));
            Ok(picked
                .into_iter()
                .map(|relation| {
                    let chunks = chunks_for(&relation, &policy);
                    Job {
                        source: Source::Table {
                            relation,
                            columns: columns.clone(),
                            filter: filter.clone(),
                        },
                        chunks,
                    }
                })
                .collect())
        }
    }
}

fn destination(opts: &ExportOptions, jobs: usize) -> Result<Destination, ExportError> {
    if opts.output == "-" {
        if jobs != 1 {
            return Err(ExportError::StdoutNeedsOne(jobs));
        }
        if opts.limits.active() {
            return Err(ExportError::StdoutSplit);
        }
        return Ok(Destination::Stdout);
    }
    let path = PathBuf::from(&opts.output);
    if opts.output.ends_with('/') || path.is_dir() || jobs > 1 {
        std::fs::create_dir_all(&path).map_err(|e| ExportError::io(&path, e))?;
        return Ok(Destination::Dir(path));
    }
    Ok(Destination::File(path))
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The final file of each job; with splitting, the name parts are numbered from.
fn final_names(
    opts: &ExportOptions,
    jobs: &[Job],
    dest: &Destination,
    compression: Compression,
) -> Vec<PathBuf> {
    jobs.iter()
        .map(|job| match dest {
            Destination::Stdout => PathBuf::from("-"),
            Destination::File(p) => p.clone(),
            Destination::Dir(d) => {
                let stem = match &job.source {
                    Source::Table { relation, .. } => {
                        naming::table_stem(&relation.schema, &relation.name)
                    }
                    Source::Query(_) => "query".to_string(),
                };
                d.join(format!(
                    "{stem}.{}{}",
                    opts.format.extension(),
                    compression.extension()
                ))
            }
        })
        .collect()
}

/// `dir/public.t.csv.gz` → `dir/public.t.part-00003.csv.gz`: the number goes before the
/// format and compression extensions so tools still recognise the file type.
pub fn part_name(base: &Path, n: usize) -> PathBuf {
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut stem = name.as_str();
    let mut exts = String::new();
    for ext in [".gz", ".zst", ".csv", ".txt", ".tsv", ".dat"] {
        if let Some(s) = stem.strip_suffix(ext) {
            exts = format!("{ext}{exts}");
            stem = s;
        }
    }
    for ext in [".csv", ".txt", ".tsv", ".dat"] {
        if let Some(s) = stem.strip_suffix(ext) {
            exts = format!("{ext}{exts}");
            stem = s;
        }
    }
    base.with_file_name(format!("{stem}.part-{n:05}{exts}"))
}

/// Refuses to overwrite without `--force`, and makes the private staging directory where every
/// temporary file goes (beside the outputs, so renames are atomic): its creation proves the
/// directory takes files before any COPY runs. `None` for stdout.
fn check_targets(
    opts: &ExportOptions,
    dest: &Destination,
    finals: &[PathBuf],
    interrupt: &Interrupt,
) -> Result<Option<TempPath>, ExportError> {
    let dir = match dest {
        Destination::Stdout => return Ok(None),
        Destination::File(p) => parent_dir(p),
        Destination::Dir(d) => d.clone(),
    };
    if !opts.force {
        refuse_existing(opts, finals)?;
    }
    let staging = interrupt
        .staging_dir(&dir, ".cbcopyout-")
        .map_err(|e| match e {
            interrupt::InterruptError::Temp { source, .. } => ExportError::Unwritable {
                dir: dir.clone(),
                source,
            },
            other => ExportError::Staging(other.to_string()),
        })?;
    Ok(Some(staging))
}

fn refuse_existing(opts: &ExportOptions, finals: &[PathBuf]) -> Result<(), ExportError> {
    for f in finals {
        let taken = if opts.limits.active() {
            part_name(f, 1).exists()
        } else {
            f.exists()
        };
        if taken {
            let shown = if opts.limits.active() {
                part_name(f, 1)
            } else {
                f.clone()
            };
            return Err(ExportError::OutputExists(shown));
        }
    }
    if let Some(m) = &opts.manifest {
        if m.exists() {
            return Err(ExportError::OutputExists(m.clone()));
        }
    }
    Ok(())
}

fn export_to_files(
    opts: &ExportOptions,
    jobs: &[Job],
    dir: &Path,
    compression: Compression,
    snapshot_id: &str,
    shared: &Arc<Shared>,
    progress: &Progress,
) -> Result<Vec<Vec<Vec<PartFile>>>, ExportError> {
    let tasks = copy_tasks(opts, jobs);
    let total_tasks = tasks.len();
    let workers = opts.jobs.clamp(1, total_tasks.max(1));
    let (task_tx, task_rx) = crossbeam_channel::unbounded::<Task>();
    for t in tasks {
        task_tx.send(t).expect("channel open");
    }
    drop(task_tx);
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Result<TaskDone, ExportError>>();
    let worker = Worker {
        opts,
        jobs,
        dir,
        compression,
        snapshot_id,
        shared,
        progress,
        labels: jobs.iter().map(Job::label).collect(),
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (rx, tx, worker) = (task_rx.clone(), done_tx.clone(), &worker);
            scope.spawn(move || worker.run(rx, tx));
        }
        drop(done_tx);
        collect(jobs, total_tasks, done_rx, shared, progress)
    })
}

/// One task per chunk of every job, with where its header goes.
fn copy_tasks(opts: &ExportOptions, jobs: &[Job]) -> Vec<Task> {
    let options = opts.format.sql_options();
    let mut tasks = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        for (c, chunk) in job.chunks.iter().enumerate() {
            let header = if !opts.format.header {
                HeaderMode::Absent
            } else if opts.limits.active() {
                HeaderMode::EveryPart
            } else if c == 0 {
                HeaderMode::First
            } else {
                HeaderMode::Drop
            };
            tasks.push(Task {
                job: j,
                chunk: c,
                sql: job.copy_sql(chunk, &options),
                header,
                temp_base: format!("{j}-{c}.tmp"),
            });
        }
    }
    tasks
}

/// What every worker thread shares.
struct Worker<'a> {
    opts: &'a ExportOptions,
    jobs: &'a [Job],
    dir: &'a Path,
    compression: Compression,
    snapshot_id: &'a str,
    shared: &'a Arc<Shared>,
    progress: &'a Progress,
    labels: Vec<String>,
}

impl Worker<'_> {
    /// One session on the snapshot: takes tasks until none is left, one fails, or the run is
    /// stopped; ends its transaction before it disconnects.
    fn run(
        &self,
        rx: crossbeam_channel::Receiver<Task>,
        tx: crossbeam_channel::Sender<Result<TaskDone, ExportError>>,
    ) {
        let shared = self.shared;
        let mut client = match connect_worker(&self.opts.conn, self.snapshot_id, shared) {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        for task in rx.iter() {
            if shared.abort.load(Ordering::SeqCst) {
                break;
            }
            let r = self.copy(&mut client, &task);
            let failed = r.is_err();
            let _ = tx.send(r);
            if failed {
                break;
            }
        }
        end_transaction(&mut client, !shared.abort.load(Ordering::SeqCst));
    }

    fn copy(&self, client: &mut CopySession, task: &Task) -> Result<TaskDone, ExportError> {
        let opts = self.opts;
        let label = &self.labels[task.job];
        let (share, share_rows) = self.jobs[task.job].share(task.chunk);
        lock(&self.shared.timings).start(task.job);
        let flight = self.progress.begin(label, share, share_rows);
        let writer = StreamWriter::new(
            self.dir,
            task.temp_base.clone(),
            self.compression,
            opts.limits,
            task.header,
            opts.format.row_syntax(),
            opts.sync,
        );
        let pipelined = self.compression != Compression::None;
        let parts = copy_into(
            client,
            &task.sql,
            writer,
            self.shared,
            label,
            pipelined,
            &flight,
        )?;
        Ok(TaskDone {
            job: task.job,
            chunk: task.chunk,
            parts,
        })
    }
}

/// The leader's side: every task's outcome, in any order, into its job's slot; the first
/// failure (or a signal) stops and cancels the others.
fn collect(
    jobs: &[Job],
    total_tasks: usize,
    done_rx: crossbeam_channel::Receiver<Result<TaskDone, ExportError>>,
    shared: &Shared,
    progress: &Progress,
) -> Result<Vec<Vec<Vec<PartFile>>>, ExportError> {
    let mut results: Vec<Vec<Vec<PartFile>>> = jobs
        .iter()
        .map(|j| vec![Vec::new(); j.chunks.len()])
        .collect();
    let mut chunks_left: Vec<usize> = jobs.iter().map(|j| j.chunks.len()).collect();
    let mut received = 0;
    let mut first_error: Option<ExportError> = None;
    while received < total_tasks {
        if shared.abort.load(Ordering::SeqCst) && first_error.is_none() {
            first_error = Some(ExportError::Interrupted);
            cancel_all(shared);
        }
        match done_rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(done)) => {
                received += 1;
                chunks_left[done.job] -= 1;
                if chunks_left[done.job] == 0 {
                    lock(&shared.timings).finish(done.job);
                    progress.table_done(&jobs[done.job].label());
                }
                results[done.job][done.chunk] = done.parts;
            }
            Ok(Err(e)) => {
                received += 1;
                if first_error.is_none() {
                    first_error = Some(e);
                    shared.abort.store(true, Ordering::SeqCst);
                    cancel_all(shared);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        progress.update(
            shared.bytes.load(Ordering::Relaxed),
            shared.rows.load(Ordering::Relaxed),
        );
    }
    match first_error {
        Some(e) => Err(e),
        None if received < total_tasks => Err(ExportError::Interrupted),
        None => Ok(results),
    }
}

fn connect_worker(
    conn: &ConnParams,
    snapshot_id: &str,
    shared: &Shared,
) -> Result<CopySession, ExportError> {
    let mut client = CopySession::connect(conn)?;
    snapshot::import_into(&mut client, snapshot_id)?;
    shared
        .cancel
        .lock()
        .expect("cancel lock")
        .push(client.cancel_token());
    Ok(client)
}

/// Asks the server to cancel what every session runs (a signal, or a failed task).
fn cancel_all(shared: &Shared) {
    if let Some(token) = shared.leader_cancel.lock().expect("cancel lock").as_ref() {
        cluster::connect::cancel(token, &shared.conn);
    }
    for token in shared.cancel.lock().expect("cancel lock").iter() {
        token.cancel(&shared.conn);
    }
}

/// Ends a worker's read-only transaction before it disconnects: COMMIT after a clean run,
/// ROLLBACK otherwise. Without it every worker's exit left "unexpected EOF on client
/// connection with an open transaction" in the server log. A dead connection just fails.
fn end_transaction(client: &mut CopySession, clean: bool) {
    let _ = client.batch_execute(if clean { "COMMIT" } else { "ROLLBACK" });
}

/// Runs one COPY and streams it into `writer`. With compression, reading (the driver) and
/// writing (the compressor) run on two threads ([`pipeline::buffers`]), so one worker keeps two
/// cores busy, as `psql | gzip` does.
fn copy_into(
    client: &mut CopySession,
    sql: &str,
    mut writer: StreamWriter,
    shared: &Shared,
    label: &str,
    pipelined: bool,
    flight: &pipeline::progress::InFlight,
) -> Result<Vec<PartFile>, ExportError> {
    let result = (|| -> Result<(), ExportError> {
        let mut reader = client
            .copy_out(sql)
            .map_err(|e| ExportError::copy(label, &e))?;
        let mut consume = |buf: &[u8]| -> Result<(), ExportError> {
            writer
                .write(buf)
                .map_err(|e| ExportError::Write(label.to_string(), e))?;
            shared.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            flight.add(buf.len() as u64, 0);
            Ok(())
        };
        if !pipelined {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                if shared.abort.load(Ordering::Relaxed) {
                    return Err(ExportError::Interrupted);
                }
                let n = reader
                    .fill(&mut buf)
                    .map_err(|e| ExportError::stream(label, &e))?;
                if n == 0 {
                    return Ok(());
                }
                consume(&buf[..n])?;
            }
        }
        let (written, read) = pipeline::pipelined(
            |buf| {
                if shared.abort.load(Ordering::Relaxed) {
                    return Err(ExportError::Interrupted);
                }
                reader.fill(buf).map_err(|e| ExportError::stream(label, &e))
            },
            consume,
        );
        written.and(read)
    })();
    match result {
        Ok(()) => {
            let parts = writer
                .finish()
                .map_err(|e| ExportError::Write(label.to_string(), e))?;
            for p in &parts {
                shared.rows.fetch_add(p.rows, Ordering::Relaxed);
                flight.add(0, p.rows);
            }
            Ok(parts)
        }
        Err(e) => {
            writer.discard();
            Err(e)
        }
    }
}

/// `-o -`: one table or query, streamed straight to stdout (no temporary file, no chunks: a
/// pipe's reader gets the first bytes at once).
fn export_to_stdout(
    opts: &ExportOptions,
    job: &Job,
    compression: Compression,
    snapshot_id: &str,
    shared: &Arc<Shared>,
    progress: &Progress,
) -> Result<Vec<Vec<Vec<PartFile>>>, ExportError> {
    let mut client = connect_worker(&opts.conn, snapshot_id, shared)?;
    let result = stream_to_stdout(&mut client, opts, job, compression, shared, progress);
    end_transaction(&mut client, result.is_ok());
    result
}

/// [`export_to_stdout`]'s COPY. A closed pipe is noted by [`Interrupt::stdout`], which ends
/// the tool quietly as `pg_dump | head` does.
fn stream_to_stdout(
    client: &mut CopySession,
    opts: &ExportOptions,
    job: &Job,
    compression: Compression,
    shared: &Arc<Shared>,
    progress: &Progress,
) -> Result<Vec<Vec<Vec<PartFile>>>, ExportError> {
    let label = job.label();
    let sql = job.copy_sql(&Chunk::Whole, &opts.format.sql_options());
    let stdout = shared.interrupt.stdout();
    let hashing = HashingWriter::new(std::io::BufWriter::with_capacity(256 * 1024, stdout));
    let mut encoder = compression
        .encoder(hashing)
        .map_err(|e| ExportError::Write(label.clone(), e))?;
    let mut scanner = pipeline::rows::RowScanner::new(opts.format.row_syntax());
    let mut ends = Vec::new();
    let mut rows = 0u64;
    let mut raw = 0u64;
    let mut reader = client
        .copy_out(&sql)
        .map_err(|e| ExportError::copy(&label, &e))?;
    let (share, share_rows) = job.share(0);
    lock(&shared.timings).start(0);
    let flight = progress.begin(&label, share, share_rows);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        if shared.abort.load(Ordering::Relaxed) {
            return Err(ExportError::Interrupted);
        }
        let n = reader
            .fill(&mut buf)
            .map_err(|e| ExportError::stream(&label, &e))?;
        if n == 0 {
            break;
        }
        ends.clear();
        scanner.scan(&buf[..n], &mut ends);
        rows += ends.len() as u64;
        raw += n as u64;
        encoder
            .write_all(&buf[..n])
            .map_err(|e| ExportError::Write("standard output".into(), e))?;
        shared.bytes.fetch_add(n as u64, Ordering::Relaxed);
        flight.add(n as u64, ends.len() as u64);
        progress.update(raw, rows);
    }
    drop(reader);
    lock(&shared.timings).finish(0);
    let hashing = encoder
        .finish()
        .map_err(|e| ExportError::Write("standard output".into(), e))?;
    let (mut out, sha256, file_bytes) = hashing.finish();
    out.flush()
        .map_err(|e| ExportError::Write("standard output".into(), e))?;
    if opts.format.header {
        rows = rows.saturating_sub(1);
    }
    progress.table_done(&label);
    Ok(vec![vec![vec![PartFile {
        temp: PathBuf::from("-"),
        rows,
        raw_bytes: raw,
        file_bytes,
        sha256,
    }]]])
}

/// Renames (or concatenates) every job's parts to their final names.
fn commit(
    opts: &ExportOptions,
    jobs: &[Job],
    finals: &[PathBuf],
    dest: &Destination,
    results: Vec<Vec<Vec<PartFile>>>,
    compression: Compression,
    interrupt: &Interrupt,
) -> Result<(Vec<TableReport>, Vec<FileReport>), ExportError> {
    let mut tables = Vec::new();
    let mut files = Vec::new();
    // First make every final file (concatenations) under temporary names, then rename all:
    // a failure while concatenating leaves no final name behind.
    let mut renames: Vec<(PathBuf, PathBuf)> = Vec::new();
    for ((job, final_path), chunks) in jobs.iter().zip(finals).zip(results) {
        let label = job.label();
        let parts: Vec<PartFile> = chunks.into_iter().flatten().collect();
        let mut t = TableReport {
            table: label.clone(),
            rows: parts.iter().map(|p| p.rows).sum(),
            raw_bytes: parts.iter().map(|p| p.raw_bytes).sum(),
            file_bytes: 0,
            files: 0,
            chunks: job.chunks.len(),
            seconds: 0.0,
        };
        if matches!(dest, Destination::Stdout) {
            let p = &parts[0];
            t.file_bytes = p.file_bytes;
            t.files = 1;
            files.push(FileReport::new(&label, "-", None, p, compression));
        } else if opts.limits.active() {
            for (i, p) in parts.iter().enumerate() {
                let name = part_name(final_path, i + 1);
                t.file_bytes += p.file_bytes;
                t.files += 1;
                files.push(FileReport::new(
                    &label,
                    &name.to_string_lossy(),
                    Some(i + 1),
                    p,
                    compression,
                ));
                renames.push((p.temp.clone(), name));
            }
        } else {
            let merged = if parts.len() == 1 {
                parts[0].clone()
            } else {
                concatenate(&parts, compression, opts.sync)?
            };
            t.file_bytes = merged.file_bytes;
            t.files = 1;
            files.push(FileReport::new(
                &label,
                &final_path.to_string_lossy(),
                None,
                &merged,
                compression,
            ));
            renames.push((merged.temp.clone(), final_path.clone()));
        }
        tables.push(t);
    }
    for (from, to) in &renames {
        interrupt
            .rename_into_place(from, to)
            .map_err(|e| ExportError::io(to, e))?;
    }
    if opts.force && opts.limits.active() {
        // Parts of an earlier, longer export would otherwise sit beside the new ones.
        for (final_path, t) in finals.iter().zip(&tables) {
            let mut n = t.files + 1;
            while part_name(final_path, n).exists() {
                let _ = std::fs::remove_file(part_name(final_path, n));
                n += 1;
            }
        }
    }
    Ok((tables, files))
}

/// Chunks of one table into one file, in order: the later chunks are appended to the first
/// chunk's file (hashing it once by reading, which is far cheaper than writing it again).
/// Compressed chunks are complete gzip members / zstd frames, so the result is a valid
/// compressed file; gzip chunks' end members are left out and one counting them all ends the
/// file ([`archive::gzip_members`]), so a cut at a chunk boundary is still caught.
pub fn concatenate(
    parts: &[PartFile],
    compression: Compression,
    sync: bool,
) -> Result<PartFile, ExportError> {
    let first = &parts[0];
    let run = || -> std::io::Result<([u8; 32], u64)> {
        let mut joined = archive::gzip_members::Join::default();
        let mut hasher = HashingWriter::new(std::io::sink());
        let mut head = std::fs::File::open(&first.temp)?;
        let kept = compression.append_piece(&mut head, &mut hasher, &mut joined)?;
        let mut file = std::fs::OpenOptions::new().write(true).open(&first.temp)?;
        file.set_len(kept)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, Tee(file, hasher));
        for p in &parts[1..] {
            compression.append_piece(&mut std::fs::File::open(&p.temp)?, &mut out, &mut joined)?;
        }
        compression.finish_join(&mut out, &joined)?;
        let Tee(file, hasher) = out.into_inner().map_err(|e| e.into_error())?;
        if sync {
            file.sync_data()?;
        }
        let (_, sha256, bytes) = hasher.finish();
        Ok((sha256, bytes))
    };
    let (sha256, file_bytes) = run().map_err(|e| ExportError::io(&first.temp, e))?;
    for p in &parts[1..] {
        let _ = std::fs::remove_file(&p.temp);
    }
    Ok(PartFile {
        temp: first.temp.clone(),
        rows: parts.iter().map(|p| p.rows).sum(),
        raw_bytes: parts.iter().map(|p| p.raw_bytes).sum(),
        file_bytes,
        sha256,
    })
}

/// Writes to a file and a hasher at once.
struct Tee(std::fs::File, HashingWriter<std::io::Sink>);

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1.write_all(&buf[..n])?;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl From<ClusterError> for ExportError {
    fn from(e: ClusterError) -> Self {
        ExportError::Cluster(e)
    }
}
