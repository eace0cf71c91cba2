//! Restoring a gpbackup backup set through the coordinator.
//!
//! gprestore puts segment c's file back into segment c, so it needs a cluster of the same shape.
//! Here every table's files from all contents are decompressed and concatenated into one
//! `COPY ... FROM STDIN` on the coordinator, which redistributes the rows by the target's own
//! policy: any segment count, a cluster that lost hosts, or plain PostgreSQL (with the
//! Greenplum-only DDL translated by the gpbackup crate). Order, filters, translation and options
//! are the gpbackup crate's [`restore_with`] flow, shared with `--to-sql`; this module is the
//! live [`RestoreSink`]: statements on one connection, tables on `-j` worker connections.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use serde::Serialize;

use cluster::{flavor, quote, ConnParams};
use gpbackup::metadata::Statement;
use gpbackup::to_sql::{restore_with, RestoreSink, TableWritten, Target, ToSqlOptions};
use gpbackup::{BackupSet, Filter, PlannedTable};

use crate::binary::{BinaryRows, Input};
use crate::engine::run_step;
use crate::load::{load_fresh_binary, load_fresh_table, load_table, LoadError, Seal};
use crate::progress::Counted;
use crate::split::{load_split, Board, SplitCopy};
use crate::state::{State, Step};
use crate::RestoreError;
use crossbeam_channel::RecvTimeoutError;
use gpbackup::data::PieceSource;
use pipeline::progress::InFlight;
use pipeline::rows::RowSyntax;

/// Which dialect the target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetChoice {
    /// Detect from the server.
    Auto,
    /// Plain PostgreSQL: translate Greenplum-only DDL.
    Postgres,
    /// Cloudberry/Greenplum: statements as written.
    Cloudberry,
}

#[derive(Debug, Clone)]
pub struct GpRestoreOptions {
    pub conn: ConnParams,
    pub roots: Vec<PathBuf>,
    pub timestamp: Option<String>,
    pub target: TargetChoice,
    pub filter: Filter,
    pub data_only: bool,
    pub metadata_only: bool,
    pub truncate_table: bool,
    pub create_db: bool,
    pub with_globals: bool,
    pub on_error_continue: bool,
    pub no_owner: bool,
    pub no_privileges: bool,
    pub jobs: usize,
    /// With -j: tables whose data files hold more than this are loaded by several workers.
    pub split_larger_than: Option<u64>,
    pub resume: bool,
    pub state_file: Option<PathBuf>,
    /// Where the state file goes (default: the user's state directory, see state.rs).
    pub state_dir: Option<PathBuf>,
    pub verbose: bool,
    /// How progress is shown on stderr (`--progress`).
    pub progress: pipeline::progress::Display,
}

/// The set as `--resume` must find it again: every timestamp's toc and config by content,
/// every data file by size and modification time, the target, and what is selected.
fn set_fingerprint(set: &BackupSet, opts: &GpRestoreOptions) -> std::io::Result<String> {
    use gpbackup::layout::CoordinatorFile;
    let mut fp = crate::fingerprint::Fingerprint::new(format!(
        "gpbackup {} ({} tables) -> {}",
        set.timestamp,
        set.tables().len(),
        opts.conn.target()
    ));
    for source in set.sources.values() {
        for which in [CoordinatorFile::Toc, CoordinatorFile::Config] {
            if let Some(p) = source.files.coordinator_file(which) {
                fp.file_content(p)?;
            }
        }
    }
    for t in set.tables() {
        fp.text(&t.fqn());
        for piece in &t.pieces {
            fp.file_meta(piece.path())?;
        }
    }
    fp.text(&format!("{:?}", opts.filter))
        .text(&format!("{} {}", opts.data_only, opts.metadata_only));
    Ok(fp.finish())
}

/// The state of this restore, keyed by the set's timestamp and roots, the target and the
/// selection.
fn open_state(set: &BackupSet, opts: &GpRestoreOptions) -> Result<State, RestoreError> {
    let fingerprint = set_fingerprint(set, opts).map_err(|source| RestoreError::Io {
        path: opts.roots[0].clone(),
        source,
    })?;
    let roots: Vec<String> = opts
        .roots
        .iter()
        .map(|r| {
            std::fs::canonicalize(r)
                .unwrap_or_else(|_| r.clone())
                .display()
                .to_string()
        })
        .collect();
    let identity = format!(
        "gpbackup {} {:?} -> {} {:?} data_only={} metadata_only={}",
        set.timestamp,
        roots,
        opts.conn.target(),
        opts.filter,
        opts.data_only,
        opts.metadata_only
    );
    let label = format!("{}-{}", set.timestamp, opts.conn.dbname());
    let place = crate::state::place(
        opts.state_file.as_deref(),
        opts.state_dir.as_deref(),
        &label,
        &identity,
        fingerprint,
        opts.resume,
    )?;
    Ok(State::open(&place)?)
}

#[derive(Debug, Serialize)]
pub struct GpRestoreReport {
    pub tool: &'static str,
    pub backup_timestamp: String,
    pub backup_database: String,
    pub segment_count: u32,
    pub target: String,
    pub translated_for_postgres: bool,
    pub elapsed_seconds: f64,
    pub statements: usize,
    pub tables: Vec<TableReport>,
    pub total_rows: u64,
    pub files_read: usize,
    pub translation: Vec<String>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct TableReport {
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
    pub source_timestamp: String,
    pub files: Vec<String>,
    /// From its first row read to its load committed.
    pub seconds: f64,
}

/// Runs the restore. `abort` is raised by Ctrl-C.
pub fn run(
    opts: &GpRestoreOptions,
    abort: Arc<AtomicBool>,
) -> Result<GpRestoreReport, RestoreError> {
    let started = Instant::now();
    let set = BackupSet::open_roots(&opts.roots, opts.timestamp.as_deref())?;
    // Every promised file must be there before the target is touched.
    set.check_files()?;
    let state = Arc::new(open_state(&set, opts)?);
    if opts.create_db {
        create_database(opts, &state)?;
    }
    let mut client = crate::cancel::connect(&opts.conn)?;
    let server = flavor::detect(&mut client, &cluster::mpp::MppCatalog::from_env())?;
    let postgres = match opts.target {
        TargetChoice::Auto => !server.flavor.is_mpp(),
        TargetChoice::Postgres => true,
        TargetChoice::Cloudberry => false,
    };
    state.reconcile(&mut client)?;
    let mut sink = LiveSink::new(opts, &set, client, &state, &abort, !server.flavor.is_mpp());
    let result = if state.resuming && state.finished() {
        Ok(gpbackup::to_sql::ToSqlReport::default())
    } else {
        restore_with(&set, &to_sql_options(opts, postgres), &mut sink)
    };
    sink.progress.finish();
    let errors = sink.errors.lock().expect("errors lock").clone();
    let report = match result {
        Ok(r) if !abort.load(Ordering::SeqCst) => r,
        other => {
            sink.shutdown();
            let e = match other {
                Err(e) if !abort.load(Ordering::SeqCst) => e.into(),
                _ => RestoreError::Interrupted,
            };
            return Err(e.stopped(&state));
        }
    };
    state.finish()?;
    let tables: Vec<TableReport> = report.tables.iter().map(TableReport::of).collect();
    Ok(GpRestoreReport {
        tool: "cbrestore",
        backup_timestamp: set.timestamp.clone(),
        backup_database: set.config.databasename.clone(),
        segment_count: set.segment_count,
        target: server.describe(),
        translated_for_postgres: postgres,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        statements: report.statements,
        total_rows: tables.iter().map(|t| t.rows).sum(),
        files_read: tables.iter().map(|t| t.files.len()).sum(),
        tables,
        translation: report.translation.iter().map(|t| t.to_string()).collect(),
        errors: errors
            .into_iter()
            .chain(report.errors_skipped.iter().cloned())
            .collect(),
        warnings: report.warnings,
    })
}

/// `--create-db`: the database `-d` names, made first (a resumed run finds it made).
fn create_database(opts: &GpRestoreOptions, state: &State) -> Result<(), RestoreError> {
    let mut admin = crate::cancel::connect(&opts.conn.with_dbname("postgres"))?;
    let sql = format!("CREATE DATABASE {}", quote::ident(opts.conn.dbname()));
    match admin.batch_execute(&sql) {
        Err(e)
            if !(state.resuming
                && cluster::error::server_message(&e).contains("already exists")) =>
        {
            Err(
                cluster::ClusterError::query(format!("creating database {}", opts.conn.dbname()))(
                    e,
                )
                .into(),
            )
        }
        _ => Ok(()),
    }
}

/// The gpbackup crate's restore options for a live target.
fn to_sql_options(opts: &GpRestoreOptions, postgres: bool) -> ToSqlOptions {
    ToSqlOptions {
        target: if postgres {
            Target::Postgres
        } else {
            Target::AsWritten
        },
        gzip: None,
        with_globals: opts.with_globals,
        create_db: false,
        data_only: opts.data_only,
        metadata_only: opts.metadata_only,
        no_owner: opts.no_owner,
        no_privileges: opts.no_privileges,
        filter: opts.filter.clone(),
        on_error_continue: opts.on_error_continue,
    }
}

impl TableReport {
    fn of(t: &TableWritten) -> TableReport {
        TableReport {
            table: t.name.clone(),
            rows: t.rows,
            bytes: t.bytes,
            source_timestamp: t.source_timestamp.clone(),
            files: t.files.iter().map(|f| f.display().to_string()).collect(),
            seconds: t.seconds,
        }
    }
}

/// One table handed to a worker.
struct TableJob {
    fqn: String,
    copy_sql: String,
    expected: u64,
    source_timestamp: String,
    reader: gpbackup::data::TableReader,
    /// Bytes of the table's data files as stored (what `--split-tables-larger-than` weighs).
    stored_bytes: u64,
}

struct Pool {
    jobs: crossbeam_channel::Sender<TableJob>,
    done: crossbeam_channel::Receiver<Result<TableWritten, gpbackup::Error>>,
    workers: Vec<JoinHandle<()>>,
}

/// One `-j` worker: its own connection, tables from the queue, and when the queue is empty
/// its connection lent to a big table still loading (see split.rs).
struct Worker {
    conn: ConnParams,
    session: String,
    state: Arc<State>,
    truncate: bool,
    freeze: bool,
    board: Arc<Board>,
    split_larger_than: Option<u64>,
    verbose: bool,
    abort: Arc<AtomicBool>,
    progress: Arc<pipeline::progress::Progress>,
}

type Done = Result<TableWritten, gpbackup::Error>;

impl Worker {
    fn connect(&self) -> Result<postgres::Client, gpbackup::Error> {
        let mut c = crate::cancel::connect(&self.conn)
            .map_err(|e| target_error("connecting a worker".into(), e.to_string()))?;
        c.batch_execute(&self.session).map_err(|e| {
            target_error(
                "session settings".into(),
                cluster::error::server_message(&e),
            )
        })?;
        Ok(c)
    }

    fn run(self, rx: &crossbeam_channel::Receiver<TableJob>, tx: &crossbeam_channel::Sender<Done>) {
        let mut client = match self.connect() {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        loop {
            let job = match rx.recv_timeout(std::time::Duration::from_millis(5)) {
                Ok(job) => job,
                Err(wait) => {
                    let handed_out = wait == RecvTimeoutError::Disconnected;
                    if self.idle(&mut client, handed_out) {
                        continue;
                    }
                    break;
                }
            };
            if self.abort.load(Ordering::SeqCst) {
                break;
            }
            let _ = tx.send(self.load(&mut client, job));
        }
    }

    /// Nothing to start: lend the connection to a big table still loading; `false` once no
    /// table is left to hand out or to join.
    fn idle(&self, client: &mut postgres::Client, handed_out: bool) -> bool {
        if self.abort.load(Ordering::SeqCst) || (handed_out && !self.board.busy()) {
            return false;
        }
        match self.board.joinable() {
            Some(load) => {
                if self.verbose {
                    logline::say!(
                        "cbrestore: joining the load of {} with another COPY stream",
                        load.table()
                    );
                }
                load.help(client);
            }
            None if handed_out => std::thread::sleep(std::time::Duration::from_millis(5)),
            None => {}
        }
        true
    }

    fn load(&self, client: &mut postgres::Client, job: TableJob) -> Done {
        let how = Emptying {
            truncate: self.truncate,
            fresh: self.state.created(&job.fqn),
            freeze: self.freeze,
            split: self
                .split_larger_than
                .filter(|&limit| job.stored_bytes > limit)
                .map(|limit| (&*self.board, limit)),
            verbose: self.verbose,
        };
        let flight = self
            .progress
            .begin(&job.fqn, job.stored_bytes, job.expected as f64);
        load_one(
            client,
            &self.state,
            how,
            &job.fqn,
            &job.copy_sql,
            job.expected,
            &job.source_timestamp,
            (job.reader, Arc::new(flight)),
        )
    }
}

/// Statements on one connection; tables inline (`-j 1`) or on worker connections.
struct LiveSink {
    conn: ConnParams,
    client: postgres::Client,
    session: String,
    state: Arc<State>,
    errors: Arc<Mutex<Vec<String>>>,
    on_error_continue: bool,
    truncate: bool,
    jobs: usize,
    pool: Option<Pool>,
    abort: Arc<AtomicBool>,
    verbose: bool,
    /// Tables loaded so far, on stderr when it is a terminal.
    progress: Arc<pipeline::progress::Progress>,
    /// The server is PostgreSQL (COPY FREEZE).
    freeze: bool,
    /// Big tables' loads that idle workers join (see split.rs).
    board: Arc<Board>,
    split_larger_than: Option<u64>,
}

/// Bytes of a table's data as stored: whole per-table files' sizes, slices' lengths.
fn stored_bytes(table: &PlannedTable) -> u64 {
    table
        .pieces
        .iter()
        .map(|p| match &p.source {
            PieceSource::Whole(f) => std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0),
            PieceSource::Slice { start, end, .. } => end - start,
            PieceSource::Missing { .. } => 0,
        })
        .sum()
}

/// One table's rows in one COPY. On PostgreSQL they go in as binary COPY when every column's
/// type converts (see binary.rs; for a table created here the types come with the load's
/// opening message); a value that does not convert rolls that attempt back and the table is
/// loaded again as CSV from its first row.
fn copy_rows(
    client: &mut postgres::Client,
    how: Emptying<'_>,
    (fqn, copy_sql, expected): (&str, &str, u64),
    seal: Seal<'_>,
    reader: &mut gpbackup::data::TableReader,
    flight: &Arc<InFlight>,
) -> Result<crate::load::Loaded, LoadError> {
    // Emptied only when asked (--truncate-table) or created by this restore: a load that a
    // kill interrupted rolled back, so a table the user had keeps exactly its own rows.
    let truncate = (how.truncate || how.fresh).then_some(fqn);
    let fresh = how.fresh && how.freeze;
    let expected = Some(expected);
    let first = if fresh {
        let mut rows = shown(reader, flight);
        load_fresh_binary(client, copy_sql, fqn, &mut rows, Input::Csv, expected, seal)
    } else {
        let binary = how
            .freeze
            .then(|| crate::binary::copy_columns(client, copy_sql))
            .flatten()
            .zip(crate::binary::binary_statement(copy_sql));
        let mut rows = shown(reader, flight);
        let Some((types, sql)) = binary else {
            return load_table(client, copy_sql, truncate, &mut rows, expected, seal);
        };
        let mut rows = BinaryRows::new(rows, types, Input::Csv);
        load_table(client, &sql, truncate, &mut rows, expected, seal)
    };
    match first {
        Err(LoadError::Read(x)) if crate::binary::is_unconvertible(&x) => {
            if how.verbose {
                logline::say!("cbrestore: {fqn}: {x}; loading it as CSV");
            }
            *reader = reader.again();
            let mut rows = shown(reader, flight);
            if fresh {
                load_fresh_table(client, copy_sql, fqn, &mut rows, expected, seal)
            } else {
                load_table(client, copy_sql, truncate, &mut rows, expected, seal)
            }
        }
        other => other,
    }
}

/// `reader` as the progress display counts it.
fn shown<'r>(
    reader: &'r mut gpbackup::data::TableReader,
    flight: &Arc<InFlight>,
) -> Counted<&'r mut gpbackup::data::TableReader> {
    Counted::new(reader, Arc::clone(flight))
}

fn target_error(what: String, message: String) -> gpbackup::Error {
    gpbackup::Error::Target { what, message }
}

/// How a table is loaded: emptied first (`--truncate-table`, resuming, or created here) and
/// copied with FREEZE (created here, PostgreSQL).
#[derive(Clone, Copy)]
struct Emptying<'b> {
    truncate: bool,
    fresh: bool,
    freeze: bool,
    /// Shared with idle workers (a fresh table, big enough, not resuming): the board and the
    /// size limit that made it so.
    split: Option<(&'b Board, u64)>,
    /// `-v`: say when a table falls back from binary COPY to CSV.
    verbose: bool,
}

/// Loads one table on `client`, recording it in the state when committed; `flight` is told the
/// rows read (progress judges them against the rows the set records).
#[allow(clippy::too_many_arguments)]
fn load_one(
    client: &mut postgres::Client,
    state: &State,
    how: Emptying<'_>,
    fqn: &str,
    copy_sql: &str,
    expected: u64,
    source_timestamp: &str,
    (mut reader, flight): (gpbackup::data::TableReader, Arc<InFlight>),
) -> Result<TableWritten, gpbackup::Error> {
    let started = Instant::now();
    let step = Step::table(fqn);
    let seal = Seal { state, step: &step };
    let loaded = if let (Some((board, limit)), true, false) = (how.split, how.fresh, state.resuming)
    {
        // gpbackup writes CSV with the default quote and escape.
        let what = SplitCopy {
            table: fqn,
            copy_sql,
            syntax: RowSyntax::Csv {
                quote: b'"',
                escape: b'"',
            },
            limit,
        };
        load_split(
            client,
            board,
            what,
            &mut shown(&mut reader, &flight),
            Some(expected),
            seal,
        )
    } else {
        copy_rows(
            client,
            how,
            (fqn, copy_sql, expected),
            seal,
            &mut reader,
            &flight,
        )
    };
    match loaded {
        Ok(loaded) => Ok(TableWritten {
            name: fqn.to_string(),
            source_timestamp: source_timestamp.to_string(),
            rows: loaded.rows,
            bytes: loaded.bytes,
            files: reader.files().to_vec(),
            seconds: started.elapsed().as_secs_f64(),
        }),
        Err(LoadError::Read(e)) => Err(gpbackup::Error::from_io(e, PathBuf::new())),
        Err(e) => Err(target_error(format!("loading {fqn}"), e.to_string())),
    }
}

impl LiveSink {
    fn new(
        opts: &GpRestoreOptions,
        set: &BackupSet,
        client: postgres::Client,
        state: &Arc<State>,
        abort: &Arc<AtomicBool>,
        freeze: bool,
    ) -> LiveSink {
        // Single-data-file sets keep one decoder per segment file, positioned where the
        // previous table ended: their tables are read in order, one at a time.
        let sequential = set.config.singledatafile || opts.jobs <= 1;
        let (tables, total) = set
            .tables_filtered(&opts.filter)
            .fold((0, 0), |(n, bytes), t| (n + 1, bytes + stored_bytes(t)));
        LiveSink {
            conn: opts.conn.clone(),
            client,
            session: String::new(),
            state: Arc::clone(state),
            errors: Arc::new(Mutex::new(Vec::new())),
            on_error_continue: opts.on_error_continue,
            truncate: opts.truncate_table,
            jobs: if sequential { 1 } else { opts.jobs },
            pool: None,
            abort: Arc::clone(abort),
            verbose: opts.verbose,
            progress: Arc::new(crate::progress::start(tables, total, opts.progress)),
            freeze,
            board: Arc::new(Board::default()),
            split_larger_than: opts.split_larger_than,
        }
    }

    fn execute(&mut self, what: &str, sql: &str) -> Result<(), gpbackup::Error> {
        self.client
            .batch_execute(sql)
            .map_err(|e| target_error(what.to_string(), cluster::error::server_message(&e)))
    }

    fn start_pool(&mut self) -> Result<(), gpbackup::Error> {
        let (job_tx, job_rx) = crossbeam_channel::bounded::<TableJob>(self.jobs);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let mut workers = Vec::new();
        for _ in 0..self.jobs {
            let worker = Worker {
                conn: self.conn.clone(),
                session: self.session.clone(),
                state: Arc::clone(&self.state),
                truncate: self.truncate,
                freeze: self.freeze,
                board: Arc::clone(&self.board),
                split_larger_than: self.split_larger_than,
                verbose: self.verbose,
                abort: Arc::clone(&self.abort),
                progress: Arc::clone(&self.progress),
            };
            let (rx, tx) = (job_rx.clone(), done_tx.clone());
            workers.push(std::thread::spawn(move || worker.run(&rx, &tx)));
        }
        self.pool = Some(Pool {
            jobs: job_tx,
            done: done_rx,
            workers,
        });
        Ok(())
    }

    fn shutdown(&mut self) {
        if let Some(pool) = self.pool.take() {
            self.abort.store(true, Ordering::SeqCst);
            drop(pool.jobs);
            for w in pool.workers {
                let _ = w.join();
            }
        }
    }

    /// A table's load committed: counted, and with `-v` said.
    fn loaded(&self, t: &TableWritten) {
        self.progress.table_done(&t.name);
        if self.verbose {
            logline::say!(
                "cbrestore: loaded {}: {} rows in {:.2}s",
                t.name,
                t.rows,
                t.seconds
            );
        }
    }

    fn table_failed(&mut self, e: gpbackup::Error) -> Result<(), gpbackup::Error> {
        if self.on_error_continue {
            logline::say!("cbrestore: error (continuing): {e}");
            self.errors.lock().expect("errors lock").push(e.to_string());
            Ok(())
        } else {
            Err(e)
        }
    }
}

impl RestoreSink for LiveSink {
    fn session(&mut self, sql: &str) -> gpbackup::Result<()> {
        self.session = sql.to_string();
        self.execute("session settings", sql)
    }

    fn statement(&mut self, stmt: &Statement, sql: &[u8]) -> gpbackup::Result<()> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(target_error("restore".into(), "interrupted".into()));
        }
        let key = format!("{:?}:{}", stmt.section, stmt.index);
        let creates = (stmt.entry.objecttype == "TABLE").then(|| stmt.entry.fqn());
        let step = Step::new(key).creating(creates);
        if self.state.done(&step.key) {
            return Ok(());
        }
        let what = format!(
            "{} {} ({:?} entry {})",
            stmt.entry.objecttype,
            stmt.entry.fqn(),
            stmt.section,
            stmt.index
        );
        let text = std::str::from_utf8(sql)
            .map_err(|_| target_error(what.clone(), "statement is not valid UTF-8".into()))?;
        if self.verbose {
            logline::say!("cbrestore: {what}");
        }
        match run_step(&mut self.client, &self.state, step.clone(), text) {
            Ok(()) => Ok(()),
            // Ran by the killed run on a server that cannot tell (older than 10).
            Err(e) if e.already_exists() && self.state.take_uncertain() => self
                .state
                .record(step)
                .map_err(|e| target_error("recording progress".into(), e.to_string())),
            Err(e) if self.on_error_continue => {
                let e = target_error(what, e.to_string());
                logline::say!("cbrestore: error (continuing): {e}");
                self.errors.lock().expect("errors lock").push(e.to_string());
                Ok(())
            }
            Err(e) => Err(target_error(what, e.to_string())),
        }
    }

    fn connect_database(&mut self, db: &str) -> gpbackup::Result<()> {
        self.conn = self.conn.with_dbname(db);
        self.client = crate::cancel::connect(&self.conn)
            .map_err(|e| target_error(format!("connecting to {db}"), e.to_string()))?;
        Ok(())
    }

    fn table(
        &mut self,
        set: &BackupSet,
        table: &PlannedTable,
    ) -> gpbackup::Result<Option<TableWritten>> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(target_error("restore".into(), "interrupted".into()));
        }
        let fqn = table.fqn();
        if self.state.table_done(&fqn) {
            // An earlier run loaded it: its share counts as read.
            drop(self.progress.begin(&fqn, stored_bytes(table), 0.0));
            self.progress.table_done(&fqn);
            if self.verbose {
                logline::say!("cbrestore: {fqn} already loaded (resume)");
            }
            return Ok(None);
        }
        let reader = set.table_reader(table);
        if self.jobs <= 1 {
            let how = Emptying {
                truncate: self.truncate,
                fresh: self.state.created(&fqn),
                freeze: self.freeze,
                split: None,
                verbose: self.verbose,
            };
            let flight = self
                .progress
                .begin(&fqn, stored_bytes(table), table.expected_rows as f64);
            let r = load_one(
                &mut self.client,
                &self.state,
                how,
                &fqn,
                &table.copy_statement(),
                table.expected_rows,
                &table.source_timestamp,
                (reader, Arc::new(flight)),
            );
            return match r {
                Ok(done) => {
                    self.loaded(&done);
                    Ok(Some(done))
                }
                Err(e) => self.table_failed(e).map(|_| None),
            };
        }
        if self.pool.is_none() {
            self.start_pool()?;
        }
        let pool = self.pool.as_mut().expect("pool started");
        pool.jobs
            .send(TableJob {
                fqn,
                copy_sql: table.copy_statement(),
                expected: table.expected_rows,
                source_timestamp: table.source_timestamp.clone(),
                reader,
                stored_bytes: stored_bytes(table),
            })
            .map_err(|_| target_error("loading tables".into(), "all workers stopped".into()))?;
        Ok(None)
    }

    fn data_done(&mut self) -> gpbackup::Result<Vec<TableWritten>> {
        let Some(pool) = self.pool.take() else {
            return Ok(Vec::new());
        };
        drop(pool.jobs);
        let mut done = Vec::new();
        let mut first_error = None;
        // Ends when every worker has exited: after the queue is drained, or at once after an
        // abort.
        for r in pool.done.iter() {
            match r {
                Ok(t) => {
                    self.loaded(&t);
                    done.push(t);
                }
                Err(e) => {
                    if self.on_error_continue {
                        logline::say!("cbrestore: error (continuing): {e}");
                        self.errors.lock().expect("errors lock").push(e.to_string());
                    } else if first_error.is_none() {
                        // Stop handing out work; loads already running finish or roll back.
                        self.abort.store(true, Ordering::SeqCst);
                        first_error = Some(e);
                    }
                }
            }
        }
        for w in pool.workers {
            let _ = w.join();
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }
}

/// What `--verify-only` found of one table of a set.
#[derive(Debug, Serialize)]
pub struct VerifiedTable {
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
}

/// `--verify-only` for a backup set, without a server: every promised file is there, and
/// every selected table's files decompress to the end with the row count the backup records.
pub fn verify(
    roots: &[PathBuf],
    timestamp: Option<&str>,
    filter: &Filter,
) -> Result<Vec<VerifiedTable>, RestoreError> {
    let set = BackupSet::open_roots(roots, timestamp)?;
    set.check_files()?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for t in set.tables_filtered(filter) {
        let mut reader = set.table_reader(t);
        let (rows, bytes) =
            count_csv_rows(&mut reader).map_err(|e| gpbackup::to_sql::table_read_error(t, e))?;
        if rows != t.expected_rows {
            problems.push(format!(
                "{}: {rows} rows in its files, the backup records {}",
                t.fqn(),
                t.expected_rows
            ));
        }
        out.push(VerifiedTable {
            table: t.fqn(),
            rows,
            bytes,
        });
    }
    if !problems.is_empty() {
        return Err(RestoreError::Input(problems.join("\n")));
    }
    Ok(out)
}

/// Rows (ends of lines outside quotes) and bytes of gpbackup's CSV.
fn count_csv_rows(r: &mut dyn Read) -> std::io::Result<(u64, u64)> {
    let mut scanner = pipeline::rows::RowScanner::new(RowSyntax::Csv {
        quote: b'"',
        escape: b'"',
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut ends = Vec::new();
    let (mut rows, mut bytes) = (0u64, 0u64);
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok((rows, bytes)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        ends.clear();
        scanner.scan(&buf[..n], &mut ends);
        rows += ends.len() as u64;
        bytes += n as u64;
    }
}
