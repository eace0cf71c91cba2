//! `cbclone`: one database copied server to server in one command — PostgreSQL to Cloudberry,
//! Cloudberry to PostgreSQL, or like to like — from one snapshot, with no intermediate files.
//!
//! The flow ([`clone`]), in named steps like pgcopydb's:
//! - STEP 1 snapshot: a leader session on the source opens REPEATABLE READ, exports its
//!   snapshot and locks the selected tables ACCESS SHARE; it stays open for the whole run.
//! - STEP 2 schema: the source's pg_dump `--schema-only --snapshot` into a private temporary
//!   custom archive, rewritten for the target's dialect (DISTRIBUTED clauses for Cloudberry,
//!   none for PostgreSQL), pre-data applied by the target's pg_restore in one transaction.
//! - STEP 3 data: N workers import the snapshot and stream tables and chunks with `COPY TO
//!   STDOUT` into `COPY FROM STDIN` (binary when both ends read it the same), each chunk in
//!   its own logged transaction; then sequences and large objects.
//! - STEP 4 post-data: indexes, constraints, triggers, grants by pg_restore `-j N`; then
//!   materialized views are refreshed.
//! - STEP 5 verify (`--verify`): counts or checksums of every table on both sides.
//!
//! `--resume` continues a run that was killed at any point (see [`state`] and [`resume`]).

pub mod cli;
pub mod copy;
pub mod data;
pub mod error;
pub mod interrupt;
pub mod objects;
pub mod resume;
pub mod schema;
pub mod session;
pub mod state;
pub mod tables;
pub mod tools;
pub mod verify;

use std::path::PathBuf;
use std::time::Instant;

use cluster::mpp::MppCatalog;
use cluster::snapshot::SnapshotLeader;
use cluster::{Client, ConnParams, ServerInfo};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use error::CloneError;

use data::{DataContext, TableReport};
use pipeline::progress::{Display, Progress};
use schema::{DumpFlags, Section};
use state::{Event, State};
use tables::{Filters, Selected};
use verify::{Checked, Verify, VerifyContext};

/// Everything a clone is told.
pub struct CloneOptions {
    pub source: ConnParams,
    pub target: ConnParams,
    pub jobs: usize,
    pub split: tables::Split,
    pub dump: DumpFlags,
    pub exclude_table_data: Vec<String>,
    pub schema_only: bool,
    pub data_only: bool,
    pub no_blobs: bool,
    pub pg_dump: Option<PathBuf>,
    pub pg_restore: Option<PathBuf>,
    pub rules: distfix::rules::RuleArgs,
    pub resume: bool,
    pub state_dir: Option<PathBuf>,
    pub verify: Option<Verify>,
    pub lock_wait_timeout: Option<u64>,
    pub verbose: bool,
    /// How progress is shown on stderr (`--progress`).
    pub progress: Display,
}

/// What a clone did (`--json`).
#[derive(Debug, Serialize)]
pub struct Report {
    pub source: String,
    pub target: String,
    pub source_server: String,
    pub target_server: String,
    /// Which run of this clone this was (1, or more after `--resume`).
    pub run: u32,
    pub seconds: f64,
    pub steps: Vec<StepTime>,
    pub tables: Vec<TableReport>,
    pub rows: u64,
    pub bytes: u64,
    pub sequences: usize,
    pub large_objects: u64,
    pub materialized_views: usize,
    /// Cloudberry target: the distribution chosen per table.
    pub distribution: Vec<Distributed>,
    /// PostgreSQL target of an MPP source: what the schema translation changed or skipped.
    pub translated: Vec<String>,
    pub verify: Option<Vec<Checked>>,
}

#[derive(Debug, Serialize)]
pub struct StepTime {
    pub step: &'static str,
    pub seconds: f64,
}

#[derive(Debug, Serialize)]
pub struct Distributed {
    pub table: String,
    pub clause: Option<String>,
    pub reason: String,
}

/// The servers and connections the steps share.
struct Run<'a> {
    opts: &'a CloneOptions,
    source: ServerInfo,
    target: ServerInfo,
    leader: SnapshotLeader,
    target_client: Client,
    state: State,
    encoding: String,
    report: Report,
    /// Post-data entries already built per table during the data step.
    built_early: std::collections::BTreeSet<i32>,
}

/// Clones the source into the target. See the crate documentation for the steps.
pub fn clone(opts: &CloneOptions) -> Result<Report, CloneError> {
    let started = Instant::now();
    let mut run = connect(opts)?;
    let filters = filters(opts)?;
    // STEP 1: the snapshot and the selection read inside it.
    let selected = snapshot_and_select(&mut run, &filters)?;
    // STEP 2: the schema, pre-data.
    let schema = step(&mut run, "pre-data", |r| pre_data(r, &selected))?;
    // STEP 3: the rows, sequences and large objects.
    if !opts.schema_only {
        let tables = step(&mut run, "data", |r| {
            copy_data(r, &selected, schema.as_ref())
        })?;
        run.report.rows = tables.iter().map(|t| t.rows).sum();
        run.report.bytes = tables.iter().map(|t| t.bytes).sum();
        run.report.tables = tables;
        step(&mut run, "sequences and large objects", |r| {
            sequences_and_blobs(r, &filters, &selected)
        })?;
    }
    // STEP 4: post-data and materialized views.
    step(&mut run, "post-data", |r| post_data(r, schema.as_ref()))?;
    if !opts.schema_only {
        step(&mut run, "materialized views", |r| matviews(r, &selected))?;
    }
    // STEP 5: verification.
    if let Some(mode) = opts.verify.filter(|_| !opts.schema_only) {
        let checked = step(&mut run, "verify", |r| verify_tables(r, &selected, mode))?;
        run.report.verify = Some(checked);
    }
    let Run {
        leader,
        state,
        mut report,
        ..
    } = run;
    leader.finish()?;
    // The state stays, marked done: `--resume` of a finished clone then finds nothing to do,
    // instead of loading into tables that already hold every row.
    state.record(Event::Done)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Runs one step, timing it and checking for a signal first.
fn step<'a, T>(
    run: &mut Run<'a>,
    name: &'static str,
    body: impl FnOnce(&mut Run<'a>) -> Result<T, CloneError>,
) -> Result<T, CloneError> {
    interrupt::check()?;
    let started = Instant::now();
    if run.opts.verbose {
        logline::say!("cbclone: {name}");
    }
    let out = body(run)?;
    run.report.steps.push(StepTime {
        step: name,
        seconds: started.elapsed().as_secs_f64(),
    });
    Ok(out)
}

/// Both servers, what they are, and the state of this clone.
fn connect(opts: &CloneOptions) -> Result<Run<'_>, CloneError> {
    if opts.jobs == 0 {
        return Err(CloneError::Usage("-j must be at least 1".into()));
    }
    let catalog = MppCatalog::from_env();
    let mut source_client = cluster::connect(&opts.source)?;
    let source = cluster::flavor::detect(&mut source_client, &catalog)?;
    let mut target_client = cluster::connect(&opts.target)?;
    let target = cluster::flavor::detect(&mut target_client, &catalog)?;
    let encoding = session::encoding(&mut source_client)?;
    let fingerprint = fingerprint(opts);
    let dir = opts
        .state_dir
        .clone()
        .unwrap_or_else(|| state::default_dir(&fingerprint));
    let state = State::open(&dir, &fingerprint, opts.resume)?;
    interrupt::set_left(format!(
        "the target holds part of the clone; run the same command with --resume to continue (state in {})",
        dir.display()
    ));
    if opts.resume {
        resume::settle(&mut target_client, &target, &state)?;
    }
    let leader = SnapshotLeader::begin(source_client, &[], opts.lock_wait_timeout)?;
    let report = Report {
        source: opts.source.target(),
        target: opts.target.target(),
        source_server: source.describe(),
        target_server: target.describe(),
        run: state.recorded().runs,
        seconds: 0.0,
        steps: Vec::new(),
        tables: Vec::new(),
        rows: 0,
        bytes: 0,
        sequences: 0,
        large_objects: 0,
        materialized_views: 0,
        distribution: Vec::new(),
        translated: Vec::new(),
        verify: None,
    };
    Ok(Run {
        opts,
        source,
        target,
        leader,
        target_client,
        state,
        encoding,
        report,
        built_early: Default::default(),
    })
}

/// Names this clone for its state directory: both ends and every flag that changes what is
/// copied, so `--resume` never continues a different clone.
fn fingerprint(opts: &CloneOptions) -> String {
    let d = &opts.dump;
    let text = format!(
        "{}\n{}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{}{}{}{}",
        opts.source.target(),
        opts.target.target(),
        d.tables,
        d.exclude_tables,
        d.schemas,
        d.exclude_schemas,
        opts.exclude_table_data,
        opts.schema_only,
        opts.data_only,
        d.no_owner,
        d.no_acl
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn filters(opts: &CloneOptions) -> Result<Filters, CloneError> {
    let d = &opts.dump;
    Ok(Filters {
        selection: cluster::catalog::Selection::from_patterns(
            &d.tables,
            &d.exclude_tables,
            &d.schemas,
            &d.exclude_schemas,
        )?,
        exclude_table_data: opts
            .exclude_table_data
            .iter()
            .map(|p| cluster::pattern::NamePattern::parse(p))
            .collect::<Result<_, _>>()?,
    })
}

/// STEP 1: the selection, read in the leader's snapshot, and its tables locked.
fn snapshot_and_select(run: &mut Run, filters: &Filters) -> Result<Selected, CloneError> {
    let target_major = tools::server_major(&run.target);
    let selected = tables::select(
        run.leader.client(),
        filters,
        &run.source,
        target_major,
        run.opts.jobs,
        run.opts.split,
    )
    .map_err(|e| name_lock_holders(e, &run.opts.source))?;
    let locks: Vec<String> = selected
        .all
        .iter()
        .filter(|r| r.kind.lockable())
        .map(|r| r.qualified())
        .collect();
    run.leader.lock(&locks)?;
    Ok(selected)
}

/// A lock timeout while the selection is read (sizes need each table's lock) names the tables
/// other sessions hold exclusively, read on a fresh connection: the leader's transaction is
/// aborted by then.
fn name_lock_holders(e: CloneError, source: &ConnParams) -> CloneError {
    if !e.to_string().contains("lock timeout") {
        return e;
    }
    let holders = cluster::connect(source).ok().and_then(|mut c| {
        c.query(
            "SELECT format('%s (pid %s, %s)', l.relation::regclass, l.pid, l.mode) FROM pg_locks l \
              WHERE l.granted AND l.mode = 'AccessExclusiveLock' AND l.relation IS NOT NULL \
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .ok()
    });
    match holders {
        Some(rows) if !rows.is_empty() => {
            let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            CloneError::Query {
                what: "reading the selected tables on the source".into(),
                message: format!("{e}; locked by other sessions: {}", names.join(", ")),
            }
        }
        _ => e,
    }
}

/// STEP 2: dump, rewrite and apply the pre-data section; returns the archive for STEP 4.
/// Skipped with `--data-only`; on `--resume`, skipped when the earlier run's pre-data
/// transaction is known (or seen) to have committed.
fn pre_data(
    run: &mut Run,
    selected: &Selected,
) -> Result<Option<(interrupt::TempPath, tools::Program)>, CloneError> {
    let opts = run.opts;
    if opts.data_only {
        return Ok(None);
    }
    let pg_dump = tools::find(
        "pg_dump",
        opts.pg_dump.as_deref(),
        None,
        tools::server_major(&run.source),
        if run.source.flavor.is_mpp() {
            tools::Build::Mpp
        } else {
            tools::Build::Any
        },
    )?;
    // Beside pg_dump first (the same archive version), but a PostgreSQL target needs
    // PostgreSQL's pg_restore.
    let pg_restore = tools::find(
        "pg_restore",
        opts.pg_restore.as_deref(),
        pg_dump.path.parent(),
        pg_dump.major,
        if run.target.flavor.is_mpp() {
            tools::Build::Any
        } else {
            tools::Build::Stock
        },
    )?;
    let snapshot_id = run.leader.id().to_string();
    let raw = schema::dump(&pg_dump, &opts.source, &snapshot_id, &opts.dump)?;
    let mut stats_client = session::source_client(
        &opts.source,
        &session::settings(run.source.version_num, &run.encoding),
        &snapshot_id,
    )?;
    let (archive, rewritten) = schema::rewrite_for_target(
        raw,
        &run.source,
        &run.target,
        &mut stats_client,
        &opts.rules,
    )?;
    drop(stats_client);
    run.report.distribution = rewritten
        .decisions
        .iter()
        .map(|d| Distributed {
            table: d.table.clone(),
            clause: d.clause.as_ref().map(|c| c.to_string()),
            reason: format!("{:?}", d.reason),
        })
        .collect();
    run.report.translated = rewritten.translated;
    if !pre_data_committed(run, selected)? {
        schema::restore(
            &pg_restore,
            &opts.target,
            archive.path(),
            Section::PreData,
            1,
            None,
            &opts.dump,
        )?;
        run.state.record(Event::PreData)?;
    }
    Ok(Some((archive, pg_restore)))
}

/// Whether an earlier run's pre-data transaction committed: recorded, or — killed between
/// pg_restore's COMMIT and our record — visible, since that transaction created every
/// selected relation or none. Part of them means someone else created objects meanwhile.
fn pre_data_committed(run: &mut Run, selected: &Selected) -> Result<bool, CloneError> {
    let recorded = run.state.recorded();
    if recorded.pre_data {
        return Ok(true);
    }
    if !run.opts.resume || selected.all.is_empty() {
        return Ok(false);
    }
    let mut present = 0;
    for r in &selected.all {
        let exists: bool = run
            .target_client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&r.qualified()])
            .map_err(CloneError::query(format!(
                "looking for {} on the target",
                r.display()
            )))?
            .get(0);
        present += exists as usize;
    }
    if present == selected.all.len() {
        run.state.record(Event::PreData)?;
        return Ok(true);
    }
    if present == 0 {
        return Ok(false);
    }
    Err(CloneError::Usage(format!(
        "--resume: {present} of the {} selected relations exist on the target but the earlier run did not record its schema step; the target was changed by someone else — recreate the target database and clone again without --resume",
        selected.all.len()
    )))
}

/// STEP 3a: the tables' rows; meanwhile, each finished table's own indexes and keys (see
/// [`build_early`]).
fn copy_data(
    run: &mut Run,
    selected: &Selected,
    schema: Option<&(interrupt::TempPath, tools::Program)>,
) -> Result<Vec<TableReport>, CloneError> {
    let opts = run.opts;
    let total: u64 = selected.tables.iter().map(|t| t.bytes).sum();
    let progress = Progress::with_display(selected.tables.len(), false, opts.progress)
        .named("cbclone")
        .expecting(total);
    let per_table = match schema {
        Some((archive, _)) if !run.state.recorded().post_data => {
            schema::per_table_entries(archive.path())?
        }
        _ => Default::default(),
    };
    let (tx, rx) = crossbeam_channel::unbounded::<String>();
    let mut ctx = DataContext {
        source: &opts.source,
        target: &opts.target,
        source_settings: session::settings(run.source.version_num, &run.encoding),
        target_settings: session::settings(run.target.version_num, &run.encoding),
        snapshot_id: run.leader.id().to_string(),
        workers: opts.jobs,
        created_by_us: !opts.data_only,
        resuming: opts.resume,
        freeze_allowed: !run.target.flavor.is_mpp(),
        finished: None,
        verbose: opts.verbose,
    };
    let data_done = std::sync::atomic::AtomicBool::new(false);
    let (reports, early) = std::thread::scope(|scope| {
        let early = schema
            .filter(|_| !per_table.is_empty())
            .map(|(archive, pg_restore)| {
                ctx.finished = Some(tx.clone());
                let (per_table, data_done) = (&per_table, &data_done);
                scope
                    .spawn(move || build_early(archive, pg_restore, opts, per_table, rx, data_done))
            });
        drop(tx);
        let reports = data::copy_tables(&ctx, &selected.tables, &run.state, &progress);
        data_done.store(true, std::sync::atomic::Ordering::SeqCst);
        ctx.finished = None;
        let early = early.map(|h| h.join().expect("the post-data thread does not panic"));
        (reports, early)
    });
    progress.finish();
    let reports = reports?;
    if let Some(early) = early {
        run.built_early = early?;
    }
    Ok(reports)
}

/// Builds the indexes and keys of each table as it finishes, one table at a time through the
/// target's pg_restore, while the other tables are still copying: with two workers and one
/// table much bigger than the rest, a core is otherwise idle until the big one is done (the
/// benchmark's 1M-row table's primary key, 1.5 s, now overlaps the 3M-row table's copy).
/// Tables that finish once all data is in are left to the final `-j N` pass, which builds
/// them in parallel. Returns the entries built.
fn build_early(
    archive: &interrupt::TempPath,
    pg_restore: &tools::Program,
    opts: &CloneOptions,
    per_table: &std::collections::HashMap<String, Vec<i32>>,
    finished: crossbeam_channel::Receiver<String>,
    data_done: &std::sync::atomic::AtomicBool,
) -> Result<std::collections::BTreeSet<i32>, CloneError> {
    let mut built = std::collections::BTreeSet::new();
    for table in finished.iter() {
        if data_done.load(std::sync::atomic::Ordering::SeqCst) || interrupt::requested() {
            break;
        }
        let Some(ids) = per_table.get(&table) else {
            continue;
        };
        let list = schema::list_of(ids)?;
        schema::restore(
            pg_restore,
            &opts.target,
            archive.path(),
            Section::PostData,
            1,
            Some(list.path()),
            &opts.dump,
        )?;
        built.extend(ids.iter().copied());
    }
    Ok(built)
}

/// STEP 3b: sequence positions and large objects.
fn sequences_and_blobs(
    run: &mut Run,
    filters: &Filters,
    selected: &Selected,
) -> Result<(), CloneError> {
    let opts = run.opts;
    let seqs = objects::sequences(run.leader.client(), filters, &selected.all)?;
    run.report.sequences = objects::set_sequences(&mut run.target_client, &seqs)?;
    run.state.record(Event::Sequences)?;
    // pg_dump leaves large objects out of a selective dump (-t, -n); so do we.
    let whole_database = opts.dump.tables.is_empty() && opts.dump.schemas.is_empty();
    if opts.no_blobs || !whole_database || run.state.recorded().blobs {
        return Ok(());
    }
    if run.target.flavor.is_mpp() {
        let n: i64 = run
            .leader
            .client()
            .query_one("SELECT count(*) FROM pg_largeobject_metadata", &[])
            .map_err(CloneError::query("counting large objects"))?
            .get(0);
        if n > 0 {
            return Err(CloneError::Usage(format!(
                "the source has {n} large objects, which {} cannot store; give --no-blobs to clone without them",
                run.target.describe()
            )));
        }
        return Ok(());
    }
    run.report.large_objects = objects::copy_large_objects(
        run.leader.client(),
        &mut run.target_client,
        &run.state,
        opts.dump.no_owner,
        opts.dump.no_acl,
    )?;
    Ok(())
}

/// STEP 4: post-data by pg_restore -j N; on `--resume`, only what is not there yet.
fn post_data(
    run: &mut Run,
    schema: Option<&(interrupt::TempPath, tools::Program)>,
) -> Result<(), CloneError> {
    let Some((archive, pg_restore)) = schema else {
        return Ok(());
    };
    if run.state.recorded().post_data {
        return Ok(());
    }
    let target = run.opts.resume.then_some(&mut run.target_client);
    let list = schema::post_data_remaining(archive.path(), target, &run.built_early)?;
    schema::restore(
        pg_restore,
        &run.opts.target,
        archive.path(),
        Section::PostData,
        run.opts.jobs,
        Some(list.path()),
        &run.opts.dump,
    )?;
    run.state.record(Event::PostData)
}

/// STEP 4b: materialized views populated on the source are refreshed on the target.
fn matviews(run: &mut Run, selected: &Selected) -> Result<(), CloneError> {
    if run.opts.data_only || run.state.recorded().matviews {
        return Ok(());
    }
    run.report.materialized_views = objects::refresh_matviews(
        run.leader.client(),
        &mut run.target_client,
        &selected.matviews,
    )?;
    run.state.record(Event::Matviews)
}

/// STEP 5: both sides compared.
fn verify_tables(
    run: &mut Run,
    selected: &Selected,
    mode: Verify,
) -> Result<Vec<Checked>, CloneError> {
    let ctx = VerifyContext {
        source: &run.opts.source,
        target: &run.opts.target,
        settings: session::settings(
            run.source.version_num.min(run.target.version_num),
            &run.encoding,
        ),
        snapshot_id: run.leader.id().to_string(),
        workers: run.opts.jobs,
    };
    verify::verify(&ctx, &selected.tables, mode)
}
