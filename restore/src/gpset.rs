//! Restoring a gpbackup backup set through the coordinator.
//!
//! gprestore puts segment c's file back into segment c, so it needs a cluster of the same shape.
//! Here every table's files from all contents are decompressed and concatenated into one
//! `COPY ... FROM STDIN` on the coordinator, which redistributes the rows by the target's own
//! policy: any segment count, a cluster that lost hosts, or plain PostgreSQL (with the
//! Greenplum-only DDL translated by the gpbackup crate). Order, filters, translation and options
//! are the gpbackup crate's restore steps ([`restore_steps`], also what `--to-sql` writes),
//! pulled here: statements in recorded batches on one connection ([`Runner`], shared with
//! `--on-segment`), the tables at the data phase on the engine's pool ([`run_pool`], the one
//! archives use), `-j` connections that join a big table's load when idle (split.rs).

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postgres::Client;
use serde::Serialize;

use cluster::{flavor, quote, ConnParams};
use gpbackup::metadata::Statement;
use gpbackup::to_sql::{
    restore_steps, RestoreStep, TableWritten, Target, ToSqlOptions, ToSqlReport,
};
use gpbackup::{BackupSet, Filter, PlannedTable};

use crate::binary::{BinaryRows, Input};
use crate::engine::{run_pool, run_step, Batch, BatchFailure, Item, Policy, Work};
use crate::load::{load_fresh_binary, load_fresh_table, load_table, LoadError, Seal};
use crate::progress::Counted;
use crate::split::{load_split, Board, SplitCopy};
use crate::state::{State, Step};
use crate::RestoreError;
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

/// Runs the restore. `abort` is raised by a signal (cancel.rs cancels what is in flight).
/// When it fails or stops, `partial` gets the tables whose loads committed before that (the
/// `--json` report of a failure names them, as an archive's does).
pub fn run(
    opts: &GpRestoreOptions,
    abort: Arc<AtomicBool>,
    partial: &mut crate::report::Report,
) -> Result<GpRestoreReport, RestoreError> {
    let started = Instant::now();
    let set = BackupSet::open_roots(&opts.roots, opts.timestamp.as_deref())?;
    // Every promised file must be there before the target is touched.
    set.check_files()?;
    let state = open_state(&set, opts)?;
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
    let ctx = Context::new(opts, &set, &state, &abort, !server.flavor.is_mpp());
    let shared = (&state, &ctx.policy, &*abort);
    let mut runner = Runner::new(&opts.conn, client, shared, opts.verbose);
    let result = if state.resuming && state.finished() {
        Ok(ToSqlReport::default())
    } else {
        restore(&ctx, &mut runner, &set, &to_sql_options(opts, postgres))
    };
    ctx.progress.finish();
    let stopped = |e: RestoreError, partial: &mut crate::report::Report| {
        let done = std::mem::take(&mut *ctx.loaded.lock().expect("loaded lock"));
        partial.set_tables(done.iter().map(|t| TableReport::of(t).into()).collect());
        e.stopped(&state)
    };
    let report = match result {
        Ok(r) if !abort.load(Ordering::SeqCst) => r,
        Err(e) if !abort.load(Ordering::SeqCst) => return Err(stopped(e, partial)),
        _ => return Err(stopped(RestoreError::Interrupted, partial)),
    };
    state.finish()?;
    let tables: Vec<TableReport> = report.tables.iter().map(TableReport::of).collect();
    Ok(GpRestoreReport {
        tool: "cbrestore",
        backup_timestamp: set.timestamp.clone(),
        backup_database: set.config.databasename.clone(),
        segment_count: set.segment_count,
        target: format!("{} ({})", opts.conn.target(), server.describe()),
        translated_for_postgres: postgres,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        statements: report.statements,
        total_rows: tables.iter().map(|t| t.rows).sum(),
        files_read: tables.iter().map(|t| t.files.len()).sum(),
        tables,
        translation: report.translation.iter().map(|t| t.to_string()).collect(),
        errors: ctx
            .policy
            .errors()
            .into_iter()
            .chain(report.errors_skipped.iter().cloned())
            .collect(),
        warnings: report.warnings,
    })
}

/// `--create-db`: the database `-d` names, made first (a resumed run finds it made).
fn create_database(opts: &GpRestoreOptions, state: &State) -> Result<(), RestoreError> {
    // The restore's first recorded step, as an archive's `-C` (dump.rs open_out).
    let made = Step::new("create database");
    if state.done(&made.key) {
        return Ok(());
    }
    let mut admin = crate::cancel::connect(&opts.conn.with_dbname("postgres"))?;
    let sql = format!("CREATE DATABASE {}", quote::ident(opts.conn.dbname()));
    if let Err(e) = admin.batch_execute(&sql) {
        if !(state.resuming && cluster::error::server_message(&e).contains("already exists")) {
            let what = format!("creating database {}", opts.conn.dbname());
            return Err(cluster::ClusterError::query(what)(e).into());
        }
    }
    Ok(state.record(made)?)
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

/// What the main connection and the table workers share.
struct Context<'o> {
    opts: &'o GpRestoreOptions,
    state: &'o State,
    policy: Policy,
    abort: Arc<AtomicBool>,
    /// Tables loaded so far, on stderr when it is a terminal.
    progress: pipeline::progress::Progress,
    /// The server is PostgreSQL (COPY FREEZE).
    freeze: bool,
    /// Big tables' loads that idle workers join (see split.rs).
    board: Board,
    /// Single-data-file sets keep one decoder per segment file, positioned where the
    /// previous table ended: their tables are read in order, one at a time, on the main
    /// connection (as with `-j 1`).
    sequential: bool,
    loaded: Mutex<Vec<TableWritten>>,
}

impl<'o> Context<'o> {
    fn new(
        opts: &'o GpRestoreOptions,
        set: &BackupSet,
        state: &'o State,
        abort: &Arc<AtomicBool>,
        freeze: bool,
    ) -> Context<'o> {
        let (tables, total) = set
            .tables_filtered(&opts.filter)
            .fold((0, 0), |(n, bytes), t| (n + 1, bytes + stored_bytes(t)));
        Context {
            opts,
            state,
            policy: Policy::new(opts.on_error_continue).stopping_on(Arc::clone(abort)),
            abort: Arc::clone(abort),
            progress: crate::progress::start(tables, total, opts.progress),
            freeze,
            board: Board::default(),
            sequential: set.config.singledatafile || opts.jobs <= 1,
            loaded: Mutex::new(Vec::new()),
        }
    }

    fn check_abort(&self) -> Result<(), RestoreError> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(RestoreError::Interrupted);
        }
        Ok(())
    }

    /// A table an earlier run loaded: its share counts as read. `false` for one to load.
    fn loaded_before(&self, table: &PlannedTable) -> bool {
        let fqn = table.fqn();
        if !self.state.table_done(&fqn) {
            return false;
        }
        drop(self.progress.begin(&fqn, stored_bytes(table), 0.0));
        self.progress.table_done(&fqn);
        if self.opts.verbose {
            logline::say!("cbrestore: {fqn} already loaded (resume)");
        }
        true
    }

    /// Loads one table on `client` (shared with idle workers when `split` and big enough);
    /// a failure goes to the on-error policy.
    fn table(
        &self,
        client: &mut Client,
        set: &BackupSet,
        table: &PlannedTable,
        split: bool,
    ) -> Result<(), RestoreError> {
        self.check_abort()?;
        let fqn = table.fqn();
        let bytes = stored_bytes(table);
        let how = Emptying {
            truncate: self.opts.truncate_table,
            fresh: self.state.created(&fqn),
            freeze: self.freeze,
            split: split
                .then_some(self.opts.split_larger_than)
                .flatten()
                .filter(|&limit| bytes > limit)
                .map(|limit| (&self.board, limit)),
            verbose: self.opts.verbose,
        };
        let flight = self.progress.begin(&fqn, bytes, table.expected_rows as f64);
        let reader = set.table_reader(table);
        match load_one(client, self.state, how, table, (reader, Arc::new(flight))) {
            Ok(done) => {
                self.progress.table_done(&done.name);
                if self.opts.verbose {
                    logline::say!(
                        "cbrestore: loaded {}: {} rows in {:.2}s",
                        done.name,
                        done.rows,
                        done.seconds
                    );
                }
                self.loaded.lock().expect("loaded lock").push(done);
                Ok(())
            }
            Err(e) => self.policy.fail(e),
        }
    }
}

/// Pulls the set's restore steps: statements on the main connection ([`Runner`]), the
/// tables collected and loaded together when the data phase ends.
fn restore(
    ctx: &Context<'_>,
    runner: &mut Runner<'_>,
    set: &BackupSet,
    flow: &ToSqlOptions,
) -> Result<ToSqlReport, RestoreError> {
    let mut steps = restore_steps(set, flow)?;
    let mut tables = Vec::new();
    for step in &mut steps {
        ctx.check_abort()?;
        match step? {
            RestoreStep::Session(sql) => runner.session(sql)?,
            RestoreStep::Statement { stmt, sql } => runner.statement(&stmt, &sql)?,
            RestoreStep::ConnectDatabase(db) => runner.connect(&db)?,
            RestoreStep::Table(table) => tables.push(table),
            RestoreStep::DataDone => {
                runner.flush()?;
                ctx.load_tables(runner, set, std::mem::take(&mut tables))?;
            }
        }
    }
    runner.flush()?;
    let mut report = steps.finish();
    report.tables = std::mem::take(&mut *ctx.loaded.lock().expect("loaded lock"));
    Ok(report)
}

impl Context<'_> {
    /// The data phase: the tables not loaded by an earlier run, in the set's order, inline
    /// (`-j 1`, single-data-file sets) or on `-j` connections of the engine's pool.
    fn load_tables(
        &self,
        runner: &mut Runner<'_>,
        set: &BackupSet,
        tables: Vec<&PlannedTable>,
    ) -> Result<(), RestoreError> {
        let tables: Vec<&PlannedTable> = tables
            .into_iter()
            .filter(|t| !self.loaded_before(t))
            .collect();
        if tables.is_empty() {
            return Ok(());
        }
        if self.sequential {
            return tables
                .iter()
                .try_for_each(|t| self.table(&mut runner.client, set, t, false));
        }
        let items = (0..tables.len())
            .map(|i| Item {
                id: i32::try_from(i).unwrap_or(i32::MAX),
                deps: Vec::new(),
                lock_deps: Vec::new(),
            })
            .collect();
        let work = Tables {
            ctx: self,
            conn: &runner.conn,
            session: &runner.session,
            set,
            tables,
        };
        run_pool(self.opts.jobs, items, &work, &self.abort)
    }
}

/// A metadata statement waiting in the batch, to run alone if the batch fails.
struct Member {
    step: Step,
    what: String,
    sql: String,
}

/// The main connection of a set's restore (coordinator or `--on-segment`): session
/// settings, database switches and metadata statements, the statements in batches of
/// recorded steps ([`Batch`]) that the on-error policy judges one by one when a batch fails.
pub(crate) struct Runner<'a> {
    conn: ConnParams,
    pub(crate) client: Client,
    /// The session settings, for every worker connection too.
    session: String,
    state: &'a State,
    policy: &'a Policy,
    abort: &'a AtomicBool,
    verbose: bool,
    batch: Batch,
    members: Vec<Member>,
}

impl<'a> Runner<'a> {
    pub(crate) fn new(
        conn: &ConnParams,
        client: Client,
        (state, policy, abort): (&'a State, &'a Policy, &'a AtomicBool),
        verbose: bool,
    ) -> Runner<'a> {
        Runner {
            conn: conn.clone(),
            client,
            session: String::new(),
            state,
            policy,
            abort,
            verbose,
            batch: Batch::default(),
            members: Vec::new(),
        }
    }

    pub(crate) fn session(&mut self, sql: String) -> Result<(), RestoreError> {
        self.flush()?;
        self.client.batch_execute(&sql).map_err(|e| {
            RestoreError::Step(format!(
                "session settings: {}",
                cluster::error::server_message(&e)
            ))
        })?;
        self.session = sql;
        Ok(())
    }

    /// Continues in `db` (after its CREATE DATABASE).
    pub(crate) fn connect(&mut self, db: &str) -> Result<(), RestoreError> {
        self.flush()?;
        self.conn = self.conn.with_dbname(db);
        self.client = crate::cancel::connect(&self.conn)?;
        Ok(())
    }

    /// One metadata chunk as a step of the batch, unless an earlier run did it.
    pub(crate) fn statement(&mut self, stmt: &Statement, sql: &[u8]) -> Result<(), RestoreError> {
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
        let Ok(text) = std::str::from_utf8(sql) else {
            let e = RestoreError::Step(format!("{what}: statement is not valid UTF-8"));
            return self.policy.fail(e);
        };
        if self.verbose {
            logline::say!("cbrestore: {what}");
        }
        self.batch.push(step.clone(), text);
        self.members.push(Member {
            step,
            what,
            sql: text.to_string(),
        });
        if self.batch.full() {
            self.flush()?;
        }
        Ok(())
    }

    /// Runs the batch; when a statement of it fails, its steps one by one, so the failing
    /// one is named and handled alone (those before it commit, as they would have).
    pub(crate) fn flush(&mut self) -> Result<(), RestoreError> {
        let members = std::mem::take(&mut self.members);
        match self.batch.run(&mut self.client, self.state) {
            Ok(()) => Ok(()),
            Err(BatchFailure::State(e)) => Err(e.into()),
            Err(BatchFailure::Lost { steps, source }) => {
                let what = |m: Option<&Member>| m.map(|m| m.what.to_string()).unwrap_or_default();
                let (first, last) = (what(members.first()), what(members.last()));
                Err(crate::engine::lost_in_batch(steps, source, first, last))
            }
            Err(BatchFailure::Rerun(_)) => members.into_iter().try_for_each(|m| self.run_one(m)),
        }
    }

    fn run_one(&mut self, m: Member) -> Result<(), RestoreError> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(RestoreError::Interrupted);
        }
        let state = self.state;
        match run_step(&mut self.client, state, m.step.clone(), &m.sql) {
            Ok(()) => Ok(()),
            // Ran by the killed run on a server that cannot tell (older than 10).
            Err(e) if e.already_exists() && state.take_uncertain() => Ok(state.record(m.step)?),
            Err(source) => self.policy.fail(RestoreError::Entry {
                entry: m.what,
                statement: m.sql.trim().to_string(),
                source: Box::new(source),
            }),
        }
    }
}

/// The data phase on the engine's pool: one connection per worker, one table per item; a
/// worker with nothing to start joins a big table's load (see split.rs).
struct Tables<'a, 'o, 's> {
    ctx: &'a Context<'o>,
    conn: &'a ConnParams,
    session: &'a str,
    set: &'s BackupSet,
    tables: Vec<&'s PlannedTable>,
}

impl Work for Tables<'_, '_, '_> {
    fn connect(&self) -> Result<Client, RestoreError> {
        let mut client = crate::cancel::connect(self.conn)?;
        client.batch_execute(self.session).map_err(|e| {
            RestoreError::Step(format!(
                "session settings: {}",
                cluster::error::server_message(&e)
            ))
        })?;
        Ok(client)
    }

    fn run(&self, client: &mut Client, index: usize) -> Result<(), RestoreError> {
        self.ctx.table(client, self.set, self.tables[index], true)
    }

    fn idle(&self, client: &mut Client) -> bool {
        let Some(load) = self.ctx.board.joinable() else {
            return false;
        };
        if self.ctx.opts.verbose {
            logline::say!(
                "cbrestore: joining the load of {} with another COPY stream",
                load.table()
            );
        }
        load.help(client);
        true
    }
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
fn load_one(
    client: &mut Client,
    state: &State,
    how: Emptying<'_>,
    table: &PlannedTable,
    (mut reader, flight): (gpbackup::data::TableReader, Arc<InFlight>),
) -> Result<TableWritten, RestoreError> {
    let started = Instant::now();
    let (fqn, copy_sql) = (table.fqn(), table.copy_statement());
    let (fqn, copy_sql, expected) = (fqn.as_str(), copy_sql.as_str(), table.expected_rows);
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
        let mut rows = shown(&mut reader, &flight);
        load_split(client, board, what, &mut rows, Some(expected), seal)
    } else {
        let what = (fqn, copy_sql, expected);
        copy_rows(client, how, what, seal, &mut reader, &flight)
    };
    match loaded {
        Ok(loaded) => Ok(TableWritten {
            name: fqn.to_string(),
            source_timestamp: table.source_timestamp.clone(),
            rows: loaded.rows,
            bytes: loaded.bytes,
            files: reader.files().to_vec(),
            seconds: started.elapsed().as_secs_f64(),
        }),
        // The set's files: the gpbackup crate's error names the file and what is wrong.
        Err(LoadError::Read(e)) => Err(gpbackup::Error::from_io(e, PathBuf::new()).into()),
        Err(e) => Err(RestoreError::Table {
            entry: "TABLE DATA".into(),
            table: fqn.to_string(),
            source: Box::new(e),
        }),
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
