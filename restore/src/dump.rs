//! Restoring pg_dump (and cbdump) custom and directory archives through the coordinator.
//!
//! The order that loads fastest: session settings; pre-data statements in TOC order; table data
//! with `-j` worker connections (one transaction per table, counted); post-data statements
//! (indexes, constraints, triggers) on `-j` connections as soon as the entries they depend on
//! are done and nothing running locks what they need (pg_restore's rule, see `engine.rs`);
//! privileges; materialized view refreshes; `ANALYZE` with `--analyze`. Each entry's
//! statements are pg_restore's (see `toc.rs`), and each runs as one recorded step
//! (see `state.rs`), so `--resume` continues exactly where a kill stopped it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use archive::toc::{SECTION_DATA, SECTION_POST_DATA, SECTION_PRE_DATA};
use archive::{Archive, TocEntry};
use postgres::Client;

use cluster::{quote, ConnParams};

use crate::binary::Input;
use crate::blobs::BlobError;
use crate::engine::{run_pool, run_step, Batch, BatchFailure, Item, Policy, Work};
use crate::load::{load_fresh_binary, load_fresh_table, load_table, LoadError, Seal};
use crate::report::{ArchiveFigures, Kind, Report, Table};
use crate::script::ScriptOut;
use crate::split::{load_split, Board, SplitCopy};
use crate::state::{State, Step};
use crate::toc::{self, Selection};
use crate::verify::Manifest;
use crate::RestoreError;
use pipeline::rows::RowSyntax;

/// `--distribute` / `--strip-distribution`: the TOC's statements rewritten before they run.
#[derive(Debug, Clone)]
pub enum Distribution {
    Keep,
    Strip,
    Rewrite(distfix::rules::RuleArgs),
}

#[derive(Debug, Clone)]
pub struct DumpRestoreOptions {
    pub conn: ConnParams,
    pub input: PathBuf,
    pub jobs: usize,
    pub clean: bool,
    pub if_exists: bool,
    pub create: bool,
    pub no_owner: bool,
    pub single_transaction: bool,
    /// `-t -n -T -N -a -s -x`.
    pub selection: Selection,
    pub on_error_continue: bool,
    pub resume: bool,
    pub state_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub analyze: bool,
    /// With -j: tables stored larger than this are loaded by several workers at once.
    pub split_larger_than: Option<u64>,
    pub distribution: Distribution,
    /// `-f FILE` (`-` for stdout): write the SQL instead of running it.
    pub script: Option<PathBuf>,
    pub verbose: bool,
    /// How progress is shown on stderr (`--progress`).
    pub progress: pipeline::progress::Display,
    /// `--disable-triggers` with `-a`: triggers (foreign keys' included) do not fire while
    /// the data loads, through `session_replication_role` on every connection (pg_restore
    /// runs `ALTER TABLE ... DISABLE TRIGGER ALL` around each table; both need a superuser).
    pub disable_triggers: bool,
}

fn entry_label(e: &TocEntry) -> String {
    let ns = e.namespace();
    if ns.is_empty() {
        format!("TOC entry {} ({} {})", e.dump_id, e.desc(), e.tag())
    } else if e.is("TABLE") || e.is("TABLE DATA") {
        // A table is spelled as in every report: `"Mixed Case"."t.1"`, not `Mixed Case.t.1`.
        format!("TOC entry {} ({} {})", e.dump_id, e.desc(), shown_name(e))
    } else {
        format!("TOC entry {} ({} {}.{})", e.dump_id, e.desc(), ns, e.tag())
    }
}

/// `schema.table` of a TABLE or TABLE DATA entry, quoted.
fn table_name(e: &TocEntry) -> String {
    quote::qualified(&e.namespace(), &e.tag())
}

/// `schema.table` of a TABLE DATA entry as reports, progress and `-v` lines spell it in every
/// tool: quoted only where SQL needs it.
fn shown_name(e: &TocEntry) -> String {
    quote::display(&e.namespace(), &e.tag())
}

fn entry_key(e: &TocEntry) -> String {
    format!("entry:{}", e.dump_id)
}

/// Where statements go: a live connection (inside `--single-transaction`'s one transaction
/// or not), or the `-f` script.
enum Out<'c> {
    Live {
        client: &'c mut Client,
        single: bool,
    },
    Script(&'c mut ScriptOut),
}

/// What [`Out`] borrows: the main connection or the script.
enum Target {
    Live(Box<Client>),
    Script(ScriptOut),
}

impl Target {
    fn out(&mut self, single: bool) -> Out<'_> {
        match self {
            Target::Live(c) => Out::Live { client: c, single },
            Target::Script(s) => Out::Script(s),
        }
    }
}

/// Runs the restore of one archive, filling `report` as it goes: when it fails, `report` holds
/// what was done (the tables whose loads committed, errors skipped) for `--json`.
pub fn run(
    o: &DumpRestoreOptions,
    abort: Arc<AtomicBool>,
    report: &mut Report,
) -> Result<(), RestoreError> {
    let started = Instant::now();
    *report = Report::new(Some(Kind::Archive), o.input.display().to_string());
    report.target = o.conn.target();
    let archive = Archive::open(&o.input)?.ok_or_else(|| {
        RestoreError::Input(format!(
            "{}: not a pg_dump custom or directory archive",
            o.input.display()
        ))
    })?;
    report.archive = Some(ArchiveFigures {
        format: match &archive {
            Archive::Custom(_) => "custom",
            Archive::Directory(_) => "directory",
        },
        archive_version: format!("{}.{}", archive.header().major, archive.header().minor),
        large_objects: 0,
    });
    let (mut entries, mut changed) = transform(archive.entries(), &o.distribution)?;
    o.selection.strip(&mut entries);
    o.selection.sort_by_list(&mut entries);
    let manifest = Manifest::load(&archive)?;
    let state = open_state(o, &entries)?;
    if state.resuming && state.finished() {
        report.already_finished = true;
        return Ok(());
    }
    let (mut target, conn) = open_out(o, &entries, &state)?;
    // A Cloudberry/Greenplum archive into PostgreSQL: distfix's translation (DISTRIBUTED,
    // append-optimized options, column encodings, gp_* privileges), as --strip-distribution.
    if matches!(o.distribution, Distribution::Keep)
        && looks_mpp(&entries)
        && live_postgres(&mut target)?
    {
        let (translated, n) = for_postgres(&entries)?;
        entries = translated;
        changed += n;
    }
    report.distribution_statements_changed = changed;
    let mut out = target.out(o.single_transaction);
    let restore = Restore::new(o, &archive, &entries, &manifest, state, abort, &mut out)?;
    // The database restored into, and what the server is.
    report.target = match o.script {
        Some(_) => restore.target.clone(),
        None => format!("{} ({})", conn.target(), restore.target),
    };
    let result = restore
        .phases(&mut out, &conn)
        .and_then(|()| finish(target, o));
    restore.fill(report, result.is_ok());
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    if let Err(e) = result {
        return Err(e.stopped(&restore.state));
    }
    restore.state.finish()?;
    restore.progress.finish();
    Ok(())
}

/// The state of this restore: in the state directory, keyed by the archive, the target and
/// the selection, fingerprinted by the archive's TOC file as it is now. A script needs none.
fn open_state(o: &DumpRestoreOptions, entries: &[TocEntry]) -> Result<State, RestoreError> {
    if o.script.is_some() {
        return Ok(State::in_memory());
    }
    let absolute = std::fs::canonicalize(&o.input).unwrap_or_else(|_| o.input.clone());
    let identity = format!(
        "archive {} -> {} {:?} clean={} create={} single={}",
        absolute.display(),
        o.conn.target(),
        o.selection,
        o.clean,
        o.create,
        o.single_transaction
    );
    let toc_file = if o.input.is_dir() {
        o.input.join("toc.dat")
    } else {
        o.input.clone()
    };
    let mut fp = crate::fingerprint::Fingerprint::new(format!(
        "archive {} ({} entries) -> {}",
        o.input.display(),
        entries.len(),
        o.conn.target()
    ));
    fp.text(&identity)
        .file_meta(&toc_file)
        .map_err(|source| RestoreError::Io {
            path: toc_file.clone(),
            source,
        })?;
    let name = o
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let label = format!("{name}-{}", o.conn.dbname());
    let place = crate::state::place(
        o.state_file.as_deref(),
        o.state_dir.as_deref(),
        &label,
        &identity,
        fp.finish(),
        o.resume,
    )?;
    Ok(State::open(&place)?)
}

/// The script, or a connection (to the database `--create` made, when asked).
fn open_out(
    o: &DumpRestoreOptions,
    entries: &[TocEntry],
    state: &State,
) -> Result<(Target, ConnParams), RestoreError> {
    if let Some(path) = &o.script {
        return Ok((Target::Script(ScriptOut::create(path)?), o.conn.clone()));
    }
    let mut conn = o.conn.clone();
    if o.create {
        let db = entries.iter().find(|e| e.is("DATABASE")).ok_or_else(|| {
            RestoreError::Input(
                "--create: the archive has no DATABASE entry (dump it with pg_dump -C)".into(),
            )
        })?;
        let mut admin = crate::cancel::connect(&o.conn)?;
        // Recorded as the restore's first step: stopped before anything else committed, the
        // run still leaves a state (the database is there), so it says how to resume, and
        // the same command again is refused instead of failing on "already exists".
        let made = Step::new("create database");
        if !state.done(&made.key) {
            if o.clean && !state.resuming {
                drop_database(&mut admin, o, entries)?;
            }
            if let Err(e) = admin.batch_execute(&db.defn()) {
                let msg = cluster::error::server_message(&e);
                // A resumed run finds the database its first run made.
                if !(state.resuming && msg.contains("already exists")) {
                    return Err(RestoreError::Step(format!("{}: {msg}", entry_label(db))));
                }
            }
            state.record(made)?;
        }
        database_settings(&mut admin, o, db, entries)?;
        conn = o.conn.with_dbname(&db.tag());
    }
    let mut client = crate::cancel::connect(&conn)?;
    state.reconcile(&mut client)?;
    Ok((Target::Live(Box::new(client)), conn))
}

fn finish(target: Target, o: &DumpRestoreOptions) -> Result<(), RestoreError> {
    match target {
        Target::Live(mut client) => {
            if o.single_transaction {
                client
                    .batch_execute("COMMIT")
                    .map_err(|source| RestoreError::Session {
                        what: "COMMIT (--single-transaction)",
                        source,
                    })?;
            }
            Ok(())
        }
        Target::Script(mut s) => {
            if o.single_transaction {
                s.write(b"COMMIT;\n\n")?;
            }
            s.write(b"--\n-- PostgreSQL database dump complete\n--\n\n")?;
            Ok(s.finish()?)
        }
    }
}

/// `-C -c`: pg_restore drops the database as a whole (its `DATABASE` and `DATABASE
/// PROPERTIES` entries' DROPs, in reverse order) and none of its objects, which would be
/// dropped in the wrong database. Not on a resume: the database is the first run's, with what
/// it restored. Without `--if-exists`, a database that is not there is an error, as in
/// pg_restore (`--on-error-continue` goes on to create it).
fn drop_database(
    admin: &mut Client,
    o: &DumpRestoreOptions,
    entries: &[TocEntry],
) -> Result<(), RestoreError> {
    let database = |e: &&TocEntry| e.is("DATABASE") || e.is("DATABASE PROPERTIES");
    for e in entries.iter().rev().filter(database) {
        let Some(sql) = toc::drop_sql(e, o.if_exists) else {
            continue;
        };
        if let Err(x) = admin.batch_execute(&sql) {
            let msg = cluster::error::server_message(&x);
            let missing = msg.contains("does not exist");
            if !(missing && o.on_error_continue) {
                let hint = if missing {
                    " (--if-exists skips it)"
                } else {
                    ""
                };
                return Err(RestoreError::Step(format!(
                    "{} (clean): {msg}{hint}",
                    entry_label(e)
                )));
            }
        }
    }
    Ok(())
}

/// `-C`: what pg_restore issues for the new database besides its CREATE: its owner (unless
/// `-O`) and its properties (`ALTER DATABASE ... SET`, the `DATABASE PROPERTIES` entry), each
/// on its own (CREATE DATABASE's implicit transaction takes nothing else); again on a resume,
/// as they change nothing the second time.
fn database_settings(
    admin: &mut Client,
    o: &DumpRestoreOptions,
    db: &TocEntry,
    entries: &[TocEntry],
) -> Result<(), RestoreError> {
    let style = toc::Style {
        no_owner: o.no_owner,
        pg17: false,
    };
    let mut steps: Vec<(&TocEntry, String)> = Vec::new();
    if let Some(owner) = toc::owner_sql(db, style) {
        steps.push((db, owner));
    }
    for p in entries.iter().filter(|e| e.is("DATABASE PROPERTIES")) {
        steps.push((p, p.defn().into_owned()));
    }
    for (e, sql) in steps {
        admin.batch_execute(&sql).map_err(|x| {
            RestoreError::Step(format!(
                "{}: {}",
                entry_label(e),
                cluster::error::server_message(&x)
            ))
        })?;
    }
    Ok(())
}

/// Session settings every connection runs first (pg_restore's fixed state).
fn session_sql(entries: &[TocEntry], transaction_timeout: bool) -> String {
    let mut session = String::from(
        "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET idle_in_transaction_session_timeout = 0;\n",
    );
    if transaction_timeout {
        session.push_str("SET transaction_timeout = 0;\n");
    }
    // As `_doSetFixedOutputState` writes them (`standard_conforming_strings` unquoted).
    let mut std_strings = true;
    for e in entries.iter().filter(|e| toc::is_session(&e.desc())) {
        if e.is("STDSTRINGS") {
            std_strings = !e.defn().contains("'off'");
            let value = if std_strings { "on" } else { "off" };
            session.push_str(&format!("SET standard_conforming_strings = {value};\n"));
        } else {
            session.push_str(e.defn().trim_end());
            session.push('\n');
        }
    }
    session.push_str("SET check_function_bodies = false;\nSET xmloption = content;\nSET client_min_messages = warning;\n");
    if !std_strings {
        session.push_str("SET escape_string_warning = off;\n");
    }
    session.push_str("SET row_security = off;\n");
    session
}

/// One restore of one archive: what every phase and every worker shares.
struct Restore<'a> {
    o: &'a DumpRestoreOptions,
    archive: &'a Archive,
    entries: &'a [TocEntry],
    by_id: HashMap<i32, usize>,
    manifest: &'a Manifest,
    state: State,
    policy: Policy,
    abort: Arc<AtomicBool>,
    session: String,
    target: String,
    /// The target takes `COPY ... FREEZE` (PostgreSQL; Cloudberry's append-optimized and
    /// distributed tables follow rules of their own).
    freeze: bool,
    statements: AtomicUsize,
    large_objects: AtomicUsize,
    loaded: Mutex<Vec<Table>>,
    /// `-f`: the script's `default_tablespace` and `default_table_access_method`.
    placement: Mutex<toc::Placement>,
    /// How entries' statements are spelled (`-O`, the archive's pg_restore version).
    style: toc::Style,
    progress: pipeline::progress::Progress,
    /// With -j: big tables' loads that idle workers join (see split.rs).
    board: Board,
}

impl<'a> Restore<'a> {
    fn new(
        o: &'a DumpRestoreOptions,
        archive: &'a Archive,
        entries: &'a [TocEntry],
        manifest: &'a Manifest,
        state: State,
        abort: Arc<AtomicBool>,
        out: &mut Out<'_>,
    ) -> Result<Restore<'a>, RestoreError> {
        let h = archive.header();
        let style = toc::Style {
            no_owner: o.no_owner,
            pg17: (h.major, h.minor) >= (1, 16),
        };
        // `transaction_timeout` (PostgreSQL 17) where the server knows it, or where the
        // script's pg_restore wrote it.
        let (target, freeze, transaction_timeout) = match out {
            Out::Live { client, .. } => {
                let server =
                    cluster::flavor::detect(client, &cluster::mpp::MppCatalog::from_env())?;
                let timeout = server.version_num >= 170000;
                (server.describe(), !server.flavor.is_mpp(), timeout)
            }
            Out::Script(_) => (
                format!(
                    "script {}",
                    o.script.as_deref().unwrap_or(Path::new("-")).display()
                ),
                false,
                style.pg17,
            ),
        };
        let mut session = session_sql(entries, transaction_timeout);
        if o.disable_triggers {
            session.push_str("SET session_replication_role = replica;\n");
        }
        let wanted = o.selection.select(entries);
        let tables = entries
            .iter()
            .filter(|e| e.is("TABLE DATA") && wanted.contains(&e.dump_id))
            .collect::<Vec<_>>();
        let r = Restore {
            o,
            archive,
            entries,
            by_id: entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.dump_id, i))
                .collect(),
            manifest,
            state,
            policy: Policy::new(o.on_error_continue).stopping_on(Arc::clone(&abort)),
            abort,
            session,
            target,
            freeze,
            statements: AtomicUsize::new(0),
            large_objects: AtomicUsize::new(0),
            loaded: Mutex::new(Vec::new()),
            placement: Mutex::default(),
            style,
            progress: crate::progress::start(
                tables.len(),
                crate::progress::archive_total(archive, tables.iter().copied()),
                o.progress,
            ),
            board: Board::default(),
        };
        r.begin(out)?;
        Ok(r)
    }

    /// The session settings (and `--single-transaction`'s BEGIN) on the main connection, or
    /// pg_restore's script header.
    fn begin(&self, out: &mut Out<'_>) -> Result<(), RestoreError> {
        match out {
            Out::Live { client, single } => {
                let mut sql = self.session.clone();
                if *single {
                    sql.push_str("BEGIN;\n");
                }
                client
                    .batch_execute(&sql)
                    .map_err(|source| RestoreError::Session {
                        what: "the session settings",
                        source,
                    })
            }
            Out::Script(s) => {
                let mut text = String::from("--\n-- PostgreSQL database dump\n--\n\n");
                let h = self.archive.header();
                for (what, version) in [
                    ("from database", &h.server_version),
                    ("by pg_dump", &h.dump_version),
                ] {
                    if let Some(v) = version {
                        text.push_str(&format!(
                            "-- Dumped {what} version {}\n",
                            String::from_utf8_lossy(v)
                        ));
                    }
                }
                text.push('\n');
                if self.o.single_transaction {
                    text.push_str("BEGIN;\n\n");
                }
                text.push_str(&self.session);
                text.push('\n');
                Ok(s.write(text.as_bytes())?)
            }
        }
    }

    /// `-C -f`: the database's entries as pg_restore writes them, in TOC order (the database,
    /// its comment and security label, its properties; with `--clean` only its DROP before
    /// them, the objects being new), `\connect` to it and the session settings again after the
    /// database and its properties (`_reconnectToDB`, which forgets the placement too). Its
    /// comment and label leave the main pass; its ACL stays in the ACL pass.
    fn script_database(&self, plan: &mut Phases<'_>) -> String {
        let database = |e: &TocEntry| e.is("DATABASE") || e.is("DATABASE PROPERTIES");
        let mut text = String::new();
        if self.o.clean {
            for e in self.entries.iter().rev().filter(|e| database(e)) {
                text.push_str(&toc::drop_sql(e, self.o.if_exists).unwrap_or_default());
            }
        }
        let in_main = |e: &TocEntry| plan.main.iter().any(|(_, m)| m.dump_id == e.dump_id);
        for e in self.entries.iter() {
            let dependent = toc::is_on_database(e) && !e.is("ACL") && in_main(e);
            if !(database(e) || dependent) {
                continue;
            }
            text.push_str(&self.script_entry(e));
            if database(e) {
                *self.placement.lock().expect("placement lock") = toc::Placement::default();
                text.push_str(&format!("{}\n", toc::connect_line(&e.tag())));
                text.push_str(&self.session);
                text.push('\n');
            }
        }
        plan.main
            .retain(|(_, e)| !toc::is_on_database(e) || e.is("ACL"));
        text
    }

    fn entry(&self, id: i32) -> Option<&'a TocEntry> {
        self.by_id.get(&id).map(|&i| &self.entries[i])
    }

    fn check_abort(&self) -> Result<(), RestoreError> {
        if self.abort.load(Ordering::SeqCst) {
            Err(RestoreError::Interrupted)
        } else {
            Ok(())
        }
    }

    /// The report's figures: statements, large objects, errors skipped, and the tables
    /// loaded, unless a failed `--single-transaction` took them back with it.
    fn fill(&self, report: &mut Report, ok: bool) {
        report.statements = self.statements.load(Ordering::SeqCst) as u64;
        if let Some(a) = report.archive.as_mut() {
            a.large_objects = self.large_objects.load(Ordering::SeqCst) as u64;
        }
        report.errors = self.policy.errors();
        if ok || !self.o.single_transaction {
            report.set_tables(self.loaded.lock().expect("loaded lock").clone());
        }
    }

    /// Every phase, in pg_restore's order.
    fn phases(&self, out: &mut Out<'_>, conn: &ConnParams) -> Result<(), RestoreError> {
        let mut plan = Phases::of(self.entries, &self.o.selection);
        // `-C -f`: the database first (with `-c`, its DROP instead of the objects').
        let new_database = self.o.create && matches!(out, Out::Script(_));
        if let (true, Out::Script(s)) = (new_database, &mut *out) {
            s.write(self.script_database(&mut plan).as_bytes())?;
        }
        // With `-C` the database itself was dropped and made again (open_out): its objects
        // are new, and dropping them one by one would fail (pg_restore drops only the
        // database in that mode).
        if self.o.clean && !self.o.create {
            self.clean(out, &plan.selected)?;
        }
        let jobs = match out {
            Out::Live { single: false, .. } => self.o.jobs.max(1),
            _ => 1,
        };
        if jobs > 1 {
            self.run_entries(out, &plan.in_phase(Phase::Pre))?;
            self.run_entries(out, &plan.in_phase(Phase::Sequences))?;
            self.blobs_all(out, &plan.in_phase(Phase::Blobs))?;
            self.parallel(
                conn,
                jobs,
                &plan.in_phase(Phase::Tables),
                &plan.in_phase(Phase::Post),
            )?;
        } else {
            self.serial(out, &plan.main)?;
        }
        self.run_entries(out, &plan.acls)?;
        self.run_entries(out, &plan.refreshes)?;
        self.analyze(out)
    }

    /// pg_restore's serial order: the main pass in TOC order (the `-L` list's when given, as
    /// `SortTocFromFile` reorders it), so `-f` writes what `pg_restore -f` writes where it
    /// writes it; consecutive statement entries go in batches, a table's data, large objects
    /// and post-data entries one by one.
    fn serial(&self, out: &mut Out<'_>, main: &[(Phase, &TocEntry)]) -> Result<(), RestoreError> {
        let mut run: Vec<&TocEntry> = Vec::new();
        for (phase, e) in main {
            if matches!(phase, Phase::Pre | Phase::Sequences) {
                run.push(e);
                continue;
            }
            self.run_entries(out, &std::mem::take(&mut run))?;
            match phase {
                Phase::Tables => self.table(out, e, false)?,
                Phase::Blobs => self.blobs_all(out, &[e])?,
                _ => self.run_entry(out, e)?,
            }
        }
        self.run_entries(out, &run)
    }

    /// `--clean`: every selected entry's DROP, in reverse order.
    fn clean(&self, out: &mut Out<'_>, selected: &[&TocEntry]) -> Result<(), RestoreError> {
        for e in selected.iter().rev() {
            let Some(sql) = toc::drop_sql(e, self.o.if_exists) else {
                continue;
            };
            let step = Step::new(format!("clean:{}", e.dump_id));
            if self.state.done(&step.key) {
                continue;
            }
            if let Err(source) = self.send(out, step, &sql, None) {
                self.policy.fail(RestoreError::Clean {
                    entry: entry_label(e),
                    source: Box::new(source),
                })?;
            }
        }
        Ok(())
    }

    /// Sends `sql` as `step`: one recorded transaction on a live connection, a statement in
    /// `--single-transaction`'s, or the script's text (after pg_restore's header comment).
    fn send(
        &self,
        out: &mut Out<'_>,
        step: Step,
        sql: &str,
        header: Option<&TocEntry>,
    ) -> Result<(), crate::engine::StepError> {
        match out {
            Out::Live {
                client,
                single: false,
            } => run_step(client, &self.state, step, sql),
            Out::Live { client, .. } => {
                if let Some(t) = step.creates {
                    self.state.note_created(&t);
                }
                client.batch_execute(sql).map_err(|e| {
                    crate::engine::StepError::Server(cluster::error::server_message(&e))
                })
            }
            Out::Script(s) => {
                let text = match header {
                    Some(e) => self.script_entry(e),
                    // `--clean`'s DROP, as pg_restore writes it: the statement alone.
                    None => sql.to_string(),
                };
                if let Some(t) = step.creates {
                    self.state.note_created(&t);
                }
                s.write(text.as_bytes())
                    .map_err(|e| crate::engine::StepError::Server(e.to_string()))
            }
        }
    }

    /// An entry as `pg_restore -f` writes it, its placement set only where it changes.
    fn script_entry(&self, e: &TocEntry) -> String {
        let header = toc_comment(e, "", self.o.no_owner);
        let mut placement = self.placement.lock().expect("placement lock");
        toc::script_entry(e, self.style, |id| self.entry(id), &mut placement, &header)
    }

    /// An entry's step and statements as pg_restore issues them; `None` when there is nothing
    /// to run (no statement, or a previous run did it).
    fn entry_work(&self, e: &TocEntry) -> Option<(Step, String)> {
        let creates = e.is("TABLE").then(|| table_name(e));
        let step = Step::new(entry_key(e)).creating(creates);
        if self.state.done(&step.key) {
            return None;
        }
        let sql = toc::entry_sql(e, self.style, |id| self.entry(id));
        if sql.trim().is_empty() || (!toc::has_body(e) && !sql.contains("OWNER TO")) {
            return None;
        }
        if self.o.verbose {
            logline::say!("cbrestore: {}", entry_label(e));
        }
        Some((step, sql))
    }

    /// Entries run in order on the main connection: in batches (see [`Batch`]) on a live
    /// connection outside `--single-transaction`, else one by one. A batch a statement of
    /// which fails is rolled back and run again entry by entry, so the failing entry is named
    /// and handled alone, as it would have been.
    fn run_entries(&self, out: &mut Out<'_>, entries: &[&TocEntry]) -> Result<(), RestoreError> {
        let Out::Live {
            client,
            single: false,
        } = out
        else {
            return entries.iter().try_for_each(|e| self.run_entry(out, e));
        };
        let mut batch = Batch::default();
        let mut members: Vec<&TocEntry> = Vec::new();
        for e in entries {
            self.check_abort()?;
            let Some((step, sql)) = self.entry_work(e) else {
                continue;
            };
            batch.push(step, &sql);
            members.push(e);
            if batch.full() {
                self.flush(client, &mut batch, &mut members)?;
            }
        }
        self.flush(client, &mut batch, &mut members)
    }

    fn flush(
        &self,
        client: &mut Client,
        batch: &mut Batch,
        members: &mut Vec<&TocEntry>,
    ) -> Result<(), RestoreError> {
        let members = std::mem::take(members);
        match batch.run(client, &self.state) {
            Ok(()) => {
                self.statements.fetch_add(members.len(), Ordering::SeqCst);
                Ok(())
            }
            Err(BatchFailure::State(e)) => Err(e.into()),
            Err(BatchFailure::Lost { steps, source }) => Err(crate::engine::lost_in_batch(
                steps,
                source,
                members.first().map(|e| entry_label(e)).unwrap_or_default(),
                members.last().map(|e| entry_label(e)).unwrap_or_default(),
            )),
            Err(BatchFailure::Rerun(_)) => {
                let mut out = Out::Live {
                    client,
                    single: false,
                };
                members.iter().try_for_each(|e| self.run_entry(&mut out, e))
            }
        }
    }

    /// Runs one entry's statements as pg_restore issues them, unless a previous run did.
    fn run_entry(&self, out: &mut Out<'_>, e: &TocEntry) -> Result<(), RestoreError> {
        self.check_abort()?;
        let Some((step, sql)) = self.entry_work(e) else {
            return Ok(());
        };
        match self.send(out, step.clone(), &sql, Some(e)) {
            Ok(()) => {
                self.statements.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            // Ran by the interrupted run on a server that cannot tell (older than 10).
            Err(x) if x.already_exists() && self.state.take_uncertain() => {
                Ok(self.state.record(step)?)
            }
            Err(source) => self.policy.fail(RestoreError::Entry {
                entry: entry_label(e),
                statement: e.defn().trim().to_string(),
                source: Box::new(source),
            }),
        }
    }

    /// `--analyze`: the tables loaded, once everything else is done.
    fn analyze(&self, out: &mut Out<'_>) -> Result<(), RestoreError> {
        if !self.o.analyze {
            return Ok(());
        }
        let tables: Vec<String> = self
            .loaded
            .lock()
            .expect("loaded lock")
            .iter()
            .map(|t| t.table.clone())
            .collect();
        for t in tables {
            let sql = format!("ANALYZE {t};");
            let r = match out {
                Out::Live { client, .. } => client
                    .batch_execute(&sql)
                    .map_err(|e| cluster::error::server_message(&e)),
                Out::Script(s) => s
                    .write(format!("{sql}\n").as_bytes())
                    .map_err(|e| e.to_string()),
            };
            if let Err(message) = r {
                self.policy
                    .fail(RestoreError::Analyze { table: t, message })?;
            }
        }
        Ok(())
    }
}

/// pg_restore's `-- Name: ...; Type: ...; Schema: ...; Owner: ...` comment before an entry in
/// a script (`prefix` "Data for " before table data).
fn toc_comment(e: &TocEntry, prefix: &str, no_owner: bool) -> String {
    // `sanitize_line`: line ends made spaces; a field the archive does not have (NULL) is
    // `-`, an empty one stays empty (an extension's comment has an empty owner).
    let line = |f: &Option<Vec<u8>>| match f {
        None => "-".to_string(),
        Some(b) => String::from_utf8_lossy(b).replace(['\n', '\r'], " "),
    };
    let owner = if no_owner {
        "-".to_string()
    } else {
        line(&e.owner)
    };
    let mut c = format!(
        "--\n-- {prefix}Name: {}; Type: {}; Schema: {}; Owner: {owner}",
        e.tag().replace(['\n', '\r'], " "),
        e.desc(),
        line(&e.namespace),
    );
    if let Some(ts) = e.tablespace.as_ref().filter(|t| !t.is_empty()) {
        c.push_str(&format!(
            "; Tablespace: {}",
            String::from_utf8_lossy(ts).replace(['\n', '\r'], " ")
        ));
    }
    c.push_str("\n--\n\n");
    c
}

/// What part of a restore an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Pre,
    Sequences,
    Tables,
    Blobs,
    Post,
    Acls,
    Refreshes,
}

/// The selected entries, in TOC order, with their phase.
struct Phases<'e> {
    selected: Vec<&'e TocEntry>,
    /// pg_restore's main pass: everything but ACLs and refreshes.
    main: Vec<(Phase, &'e TocEntry)>,
    acls: Vec<&'e TocEntry>,
    refreshes: Vec<&'e TocEntry>,
}

impl<'e> Phases<'e> {
    /// Entries without a section (comments, security labels ...) belong to the phase of the
    /// entry before them in TOC order, which is where a serial pg_restore runs them. ACLs come
    /// after everything else, materialized views' data after the ACLs (pg_restore's passes).
    fn of(entries: &'e [TocEntry], selection: &Selection) -> Phases<'e> {
        let mut p = Phases {
            selected: Vec::new(),
            main: Vec::new(),
            acls: Vec::new(),
            refreshes: Vec::new(),
        };
        let mut current = SECTION_PRE_DATA as i64;
        let wanted = selection.select(entries);
        for e in entries {
            if e.section > 1 {
                current = e.section;
            }
            // An entry whose data pg_restore would not restore (distfix's translation marks the
            // doubled data of a partitioned parent so).
            let no_data = e.is("TABLE DATA") && e.had_dumper == 0;
            if !wanted.contains(&e.dump_id) || no_data {
                continue;
            }
            p.selected.push(e);
            let desc = e.desc();
            let phase = match (current, desc.as_ref()) {
                (_, d) if toc::is_acl(d) => Phase::Acls,
                (_, "MATERIALIZED VIEW DATA") => Phase::Refreshes,
                (s, "TABLE DATA") if s == SECTION_DATA as i64 => Phase::Tables,
                (s, "BLOBS" | "BLOB DATA") if s == SECTION_DATA as i64 => Phase::Blobs,
                (s, _) if s == SECTION_POST_DATA as i64 => Phase::Post,
                (s, _) if s == SECTION_DATA as i64 => Phase::Sequences,
                _ => Phase::Pre,
            };
            match phase {
                Phase::Acls => p.acls.push(e),
                Phase::Refreshes => p.refreshes.push(e),
                _ => p.main.push((phase, e)),
            }
        }
        p
    }

    /// The main pass's entries of one phase, in TOC order.
    fn in_phase(&self, phase: Phase) -> Vec<&'e TocEntry> {
        self.main
            .iter()
            .filter(|(p, _)| *p == phase)
            .map(|(_, e)| *e)
            .collect()
    }
}

/// The parallel phase's work: table data and post-data entries, one connection per worker.
struct Parallel<'r, 'a> {
    restore: &'r Restore<'a>,
    conn: &'r ConnParams,
    items: Vec<&'a TocEntry>,
}

impl Work for Parallel<'_, '_> {
    fn connect(&self) -> Result<Client, RestoreError> {
        let mut c = crate::cancel::connect(self.conn)?;
        c.batch_execute(&self.restore.session)
            .map_err(|source| RestoreError::Session {
                what: "a worker's session settings",
                source,
            })?;
        Ok(c)
    }

    fn run(&self, client: &mut Client, index: usize) -> Result<(), RestoreError> {
        let e = self.items[index];
        let mut out = Out::Live {
            client,
            single: false,
        };
        if e.is("TABLE DATA") {
            self.restore.table(&mut out, e, true)
        } else {
            self.restore.run_entry(&mut out, e)
        }
    }

    fn idle(&self, client: &mut Client) -> bool {
        let Some(load) = self.restore.board.joinable() else {
            return false;
        };
        if self.restore.o.verbose {
            logline::say!(
                "cbrestore: joining the load of {} with another COPY stream",
                load.table()
            );
        }
        load.help(client);
        true
    }
}

impl<'a> Restore<'a> {
    /// Table data and post-data on `jobs` connections, scheduled by dependencies as pg_restore
    /// -j does: a table's data is ready at once; an index, constraint or trigger is ready when
    /// what it depends on is done, where depending on a table means on that table's data; and
    /// two entries whose locks conflict never run at once.
    fn parallel(
        &self,
        conn: &ConnParams,
        jobs: usize,
        tables: &[&'a TocEntry],
        post: &[&'a TocEntry],
    ) -> Result<(), RestoreError> {
        let mut data_of_table: HashMap<i32, i32> = HashMap::new();
        for d in tables {
            for t in d.dependencies() {
                data_of_table.insert(t, d.dump_id);
            }
        }
        // pg_restore's ready list order: the most data first, then by dump id. Which of two
        // ready entries runs first can change the result (a partitioned table's foreign key
        // added before or after its partitions' own), so it is pg_restore's.
        let mut items: Vec<&'a TocEntry> = tables.iter().chain(post.iter()).copied().collect();
        items.sort_by_key(|e| {
            let size = e
                .is("TABLE DATA")
                .then(|| self.archive.stored_size(e))
                .flatten();
            (std::cmp::Reverse(size.unwrap_or(0)), e.dump_id)
        });
        let schedule = items
            .iter()
            .map(|e| {
                let deps: Vec<i32> = if e.is("TABLE DATA") {
                    Vec::new()
                } else {
                    e.dependencies()
                        .into_iter()
                        .map(|x| *data_of_table.get(&x).unwrap_or(&x))
                        .collect()
                };
                let lock_deps =
                    toc::lock_deps(e, &deps, |id| self.entry(id).map(|x| x.desc().into_owned()));
                Item {
                    id: e.dump_id,
                    deps,
                    lock_deps,
                }
            })
            .collect();
        let work = Parallel {
            restore: self,
            conn,
            items,
        };
        run_pool(jobs, schedule, &work, &self.abort)
    }
}

impl<'a> Restore<'a> {
    /// One table's data: loaded (recorded as a step), written to the script, or, failing,
    /// handed to the on-error policy.
    fn table(&self, out: &mut Out<'_>, e: &TocEntry, split: bool) -> Result<(), RestoreError> {
        self.check_abort()?;
        let table = table_name(e);
        if self.state.table_done(&table) || e.copy_stmt().trim().is_empty() {
            // Loaded by an earlier run, or nothing to load: its share counts as read.
            crate::progress::skipped(&self.progress, self.archive, e, &shown_name(e));
            return Ok(());
        }
        let started = Instant::now();
        let r = match out {
            Out::Script(s) => self.script_table(s, e).map(|()| None),
            Out::Live { client, single } => {
                let board = (split && self.o.split_larger_than.is_some()).then_some(&self.board);
                self.load(client, e, *single, board).map(Some)
            }
        };
        match r {
            Ok(Some(l)) => {
                let shown = shown_name(e);
                self.progress.table_done(&shown);
                if self.o.verbose {
                    logline::say!("cbrestore: loaded {shown}: {} rows", l.rows);
                }
                self.loaded.lock().expect("loaded lock").push(Table {
                    table: shown,
                    rows: l.rows,
                    bytes: l.bytes,
                    seconds: started.elapsed().as_secs_f64(),
                    files: None,
                    source: Some(format!("TOC entry {}", e.dump_id)),
                    ..Default::default()
                });
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(source) => self.policy.fail(RestoreError::Table {
                entry: entry_label(e),
                table,
                source: Box::new(source),
            }),
        }
    }

    /// `-f`: the COPY block of one table in the script, after pg_restore's comment.
    fn script_table(&self, s: &mut ScriptOut, e: &TocEntry) -> Result<(), LoadError> {
        s.write(toc_comment(e, "Data for ", self.o.no_owner).as_bytes())
            .map_err(LoadError::Script)?;
        s.write(e.copy_stmt().as_bytes())
            .map_err(LoadError::Script)?;
        let data = crate::progress::table_data(&self.progress, self.archive, e, &shown_name(e))
            .map_err(LoadError::Archive)?;
        let mut data = LastByte {
            inner: data,
            last: None,
        };
        s.copy_from(&mut data).map_err(LoadError::Script)?;
        // pg_dump's data ends with `\.` and two empty lines, which pg_restore writes as they
        // are; a stream cut after `\.` still gets its line end.
        if data.last != Some(b'\n') {
            s.write(b"\n").map_err(LoadError::Script)?;
        }
        Ok(())
    }

    /// Loads one table's data. A table this restore created is emptied in the load's own
    /// transaction (no WAL with `wal_level=minimal`, FREEZE allowed, a reload after a kill
    /// exact); a table it did not create is never emptied: an interrupted load of it rolled
    /// back, so its own rows are all it holds.
    fn load(
        &self,
        client: &mut Client,
        e: &TocEntry,
        single: bool,
        board: Option<&Board>,
    ) -> Result<crate::load::Loaded, LoadError> {
        let table = table_name(e);
        let copy = e.copy_stmt();
        let copy = copy.trim();
        // cbdump's manifest: the file must be the one that was written, before any row is sent.
        crate::verify::check_file(self.archive, e, self.manifest)
            .map_err(|v| LoadError::Verify(Box::new(v)))?;
        let expected = self.manifest.get(e.dump_id).map(|r| r.rows);
        let mut data = crate::progress::table_data(&self.progress, self.archive, e, &shown_name(e))
            .map_err(read_error)?;
        if single {
            // --single-transaction: the COPY joins the one transaction.
            return copy_plain(client, copy, &mut data);
        }
        let created_here = self.state.created(&table);
        let step = Step::table(&table);
        let seal = Seal {
            state: &self.state,
            step: &step,
        };
        let limit = self.o.split_larger_than.unwrap_or(u64::MAX);
        let big = self.archive.stored_size(e).is_some_and(|n| n > limit);
        match board {
            Some(board) if created_here && !self.state.resuming && is_text_copy(copy) && big => {
                let what = SplitCopy {
                    table: &table,
                    copy_sql: copy,
                    syntax: RowSyntax::Text,
                    limit,
                };
                load_split(client, board, what, &mut data, expected, seal)
            }
            _ if created_here && self.freeze && !self.small(e) => {
                self.load_fresh(client, e, &table, data, expected, seal)
            }
            _ => {
                let truncate = (created_here && !self.small(e)).then_some(table.as_str());
                load_table(client, copy, truncate, &mut data, expected, seal)
            }
        }
    }

    /// A table whose data is stored in less than [`crate::load::FRESH_FROM`]: loaded without
    /// emptying it first and without FREEZE, unless resuming (see there).
    fn small(&self, e: &TocEntry) -> bool {
        !self.state.resuming
            && self
                .archive
                .stored_size(e)
                .is_some_and(|n| n < crate::load::FRESH_FROM)
    }

    /// A table created here on PostgreSQL: binary COPY where every column's type converts
    /// (see binary.rs), text otherwise, and text again from the start if some value does not
    /// convert; emptied and frozen in the load's transaction.
    fn load_fresh(
        &self,
        client: &mut Client,
        e: &TocEntry,
        table: &str,
        mut data: Box<dyn Read + Send>,
        expected: Option<u64>,
        seal: Seal<'_>,
    ) -> Result<crate::load::Loaded, LoadError> {
        let copy = e.copy_stmt();
        let copy = copy.trim();
        if !is_text_copy(copy) {
            return load_fresh_table(client, copy, table, &mut data, expected, seal);
        }
        match load_fresh_binary(client, copy, table, &mut data, Input::Text, expected, seal) {
            Err(LoadError::Read(x)) if crate::binary::is_unconvertible(&x) => {
                if self.o.verbose {
                    logline::say!("cbrestore: {}: {x}; loading it as text", shown_name(e));
                }
                let mut again = self.archive.table_data(e).map_err(read_error)?;
                load_fresh_table(client, copy, table, &mut again, expected, seal)
            }
            other => other,
        }
    }

    fn blobs_all(&self, out: &mut Out<'_>, entries: &[&TocEntry]) -> Result<(), RestoreError> {
        for e in entries {
            self.check_abort()?;
            let step = Step::new(entry_key(e));
            if self.state.done(&step.key) {
                continue;
            }
            let r = match out {
                Out::Live { client, single } => self.blobs(client, *single, e, step),
                Out::Script(s) => self.script_blobs(s, e),
            };
            match r {
                Ok(n) => {
                    self.large_objects.fetch_add(n, Ordering::SeqCst);
                }
                Err(source) => self.policy.fail(RestoreError::LargeObjects {
                    entry: entry_label(e),
                    source: Box::new(source),
                })?,
            }
        }
        Ok(())
    }

    /// Large objects' contents, written with `lo_open`/`lowrite` into the objects their
    /// metadata entries created, one transaction for the entry, as pg_restore does.
    fn blobs(
        &self,
        client: &mut Client,
        single: bool,
        e: &TocEntry,
        step: Step,
    ) -> Result<usize, BlobError> {
        let blobs = archive::blobs::read_all(self.archive, e)?;
        if single {
            return crate::blobs::write_all(client, blobs);
        }
        let mut tx = client
            .transaction()
            .map_err(|x| BlobError::Begin(cluster::error::server_message(&x)))?;
        let n = crate::blobs::write_all(&mut tx, blobs)?;
        self.state.commit(tx, step)?;
        Ok(n)
    }

    /// `-f`: large objects as pg_restore writes them into a script.
    fn script_blobs(&self, s: &mut ScriptOut, e: &TocEntry) -> Result<usize, BlobError> {
        let blobs = archive::blobs::read_all(self.archive, e)?;
        let header = toc_comment(e, "Data for ", self.o.no_owner);
        crate::blobs::script(s, header, blobs, self.o.single_transaction)
    }
}

/// A reader that remembers the last byte it gave.
struct LastByte<R> {
    inner: R,
    last: Option<u8>,
}

impl<R: Read> Read for LastByte<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.last = Some(buf[n - 1]);
        }
        Ok(n)
    }
}

fn read_error(e: archive::ArchiveError) -> LoadError {
    LoadError::Archive(e)
}

fn transform(entries: &[TocEntry], d: &Distribution) -> Result<(Vec<TocEntry>, u64), RestoreError> {
    let input = || "the archive's TOC".to_string();
    let err = |source| RestoreError::Rewrite {
        input: input(),
        source,
    };
    match d {
        Distribution::Keep => Ok((entries.to_vec(), 0)),
        Distribution::Strip => for_postgres(entries),
        Distribution::Rewrite(rules) => {
            let catalog = distfix::archive::collect(entries).map_err(err)?;
            let plan = rules
                .plan(&catalog, &HashMap::new(), false)
                .map_err(|source| RestoreError::Rules {
                    input: input(),
                    source,
                })?;
            distfix::archive::apply(entries, &plan).map_err(err)
        }
    }
}

/// An archive pg_dump wrote from Cloudberry or Greenplum: a table with a distribution clause
/// or an append-optimized access method.
fn looks_mpp(entries: &[TocEntry]) -> bool {
    entries.iter().any(|e| {
        e.is("TABLE")
            && (e.defn().contains(" DISTRIBUTED ")
                || e.tableam.as_deref().is_some_and(|a| a.starts_with(b"ao_")))
    })
}

/// Whether the restore goes into a live PostgreSQL (not Cloudberry/Greenplum).
fn live_postgres(target: &mut Target) -> Result<bool, RestoreError> {
    match target {
        Target::Live(c) => {
            let server = cluster::flavor::detect(c, &cluster::mpp::MppCatalog::from_env())?;
            Ok(!server.flavor.is_mpp())
        }
        Target::Script(_) => Ok(false),
    }
}

/// distfix's translation of an MPP archive for PostgreSQL; the entries it changed.
fn for_postgres(entries: &[TocEntry]) -> Result<(Vec<TocEntry>, u64), RestoreError> {
    let mut tr = distfix::translate::Translator::new();
    let out = distfix::translate::translate_entries(entries, &mut tr).map_err(|u| {
        RestoreError::Input(format!(
            "{} {} cannot be restored into PostgreSQL: {}",
            u.objecttype, u.name, u.reason
        ))
    })?;
    let changed = entries
        .iter()
        .zip(&out)
        .filter(|(a, b)| a.defn != b.defn || a.had_dumper != b.had_dumper)
        .count() as u64;
    Ok((out, changed))
}

/// pg_dump's `COPY name (cols) FROM stdin;`: text format, one row per line.
pub(crate) fn is_text_copy(copy: &str) -> bool {
    let upper = copy.to_ascii_uppercase();
    upper.starts_with("COPY ")
        && upper
            .trim_end_matches(';')
            .trim_end()
            .ends_with("FROM STDIN")
}

fn copy_plain(
    client: &mut Client,
    copy: &str,
    data: &mut dyn Read,
) -> Result<crate::load::Loaded, LoadError> {
    let mut w = client
        .copy_in(copy)
        .map_err(|e| LoadError::Server(cluster::error::server_message(&e)))?;
    let bytes = std::io::copy(data, &mut w).map_err(LoadError::Read)?;
    let rows = w
        .finish()
        .map_err(|e| LoadError::Server(cluster::error::server_message(&e)))?;
    Ok(crate::load::Loaded { rows, bytes })
}
