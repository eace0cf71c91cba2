//! `cbrestore --on-segment`: a gpbackup backup set (gpbackup's own, or `cbdump --on-segment`'s)
//! restored with its data files left on the segment hosts. Every segment reads its own files and
//! no row passes through the coordinator; the coordinator only runs the metadata and one
//! statement per table.
//!
//! What it needs, checked before the target is touched:
//! - an MPP target (Cloudberry/Greenplum), refused otherwise;
//! - a role that may make the segments run programs (superuser, or `pg_execute_server_program`
//!   and the right to create `EXECUTE` external tables);
//! - the set's coordinator files (metadata.sql, toc.yaml, config.yaml) here, given as the path;
//! - source content `c`'s files on the host of target segment `c mod M` (M = the target's
//!   primaries), readable by the server's OS user, under `<ROOT>/backups/<date>/<ts>/` where ROOT
//!   is the `--on-segment` template with `<SEGID>` replaced by `c` and `<SEG_DATA_DIR>` by the
//!   reading segment's data directory. A same-shape restore needs nothing moved: content `c` is
//!   read by segment `c`. All of it is probed on every segment at once ([`cluster::mpp_load::probe`]).
//!
//! Order, filters and translation are the gpbackup crate's restore steps ([`restore_steps`]),
//! pulled here as by the coordinator restore; the statements run as recorded steps of the
//! restore engine through the same [`Runner`]. Each table is one transaction: loaded by
//! `COPY ... ON SEGMENT` when the files fit the target's placement, else through an external
//! web table and `INSERT ... SELECT` ([`Route`]); its row count is checked against the toc's
//! `rowscopied` before the COMMIT, which is recorded for `--resume` like every other step.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use cluster::mpp::Distribution;
use cluster::mpp_load::{self, LoadCatalog, SegmentEnd, SegmentLoadError, Selector, TablePolicy};
use cluster::{flavor, quote, ConnParams};
use gpbackup::layout::CoordinatorFile;
use gpbackup::to_sql::{restore_steps, RestoreStep, Target, ToSqlOptions, ToSqlReport};
use gpbackup::{BackupSet, Filter, PlannedTable};
use postgres::Client;

use crate::engine::Policy;
use crate::gpset::Runner;
use crate::state::{State, Step};
use crate::RestoreError;

/// What `--on-segment` restores and where from.
#[derive(Debug, Clone)]
pub struct SegmentRestoreOptions {
    pub conn: ConnParams,
    /// Where the set's coordinator files are.
    pub roots: Vec<PathBuf>,
    pub timestamp: Option<String>,
    /// Each content's backup root (`<SEGID>`, `<SEG_DATA_DIR>` substituted); `None`: derived
    /// from where the coordinator files are (gpbackup's `--backup-dir` layouts).
    pub segment_root: Option<String>,
    pub filter: Filter,
    pub data_only: bool,
    pub metadata_only: bool,
    pub truncate_table: bool,
    pub create_db: bool,
    pub with_globals: bool,
    pub on_error_continue: bool,
    pub no_owner: bool,
    pub no_privileges: bool,
    pub resume: bool,
    pub state_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub verbose: bool,
}

impl SegmentRestoreOptions {
    /// The coordinator restore's options (the same flags, selection and state rules) with the
    /// segment root; refuses what does not apply when the segments load the data.
    pub fn new(
        gp: crate::gpset::GpRestoreOptions,
        segment_root: &str,
    ) -> Result<SegmentRestoreOptions, RestoreError> {
        if gp.jobs > 1 || gp.split_larger_than.is_some() {
            return Err(step_error(
                "--on-segment loads one table at a time with every segment reading its own files \
                 in parallel: -j and --split-tables-larger-than do not apply",
            ));
        }
        if gp.target == crate::gpset::TargetChoice::Postgres {
            return Err(step_error(
                "--on-segment needs a Cloudberry/Greenplum target (its segments read the files); \
                 restore into PostgreSQL through the coordinator (without --on-segment)",
            ));
        }
        Ok(SegmentRestoreOptions {
            conn: gp.conn,
            roots: gp.roots,
            timestamp: gp.timestamp,
            segment_root: Some(segment_root.to_string()).filter(|r| !r.is_empty()),
            filter: gp.filter,
            data_only: gp.data_only,
            metadata_only: gp.metadata_only,
            truncate_table: gp.truncate_table,
            create_db: gp.create_db,
            with_globals: gp.with_globals,
            on_error_continue: gp.on_error_continue,
            no_owner: gp.no_owner,
            no_privileges: gp.no_privileges,
            resume: gp.resume,
            state_file: gp.state_file,
            state_dir: gp.state_dir,
            verbose: gp.verbose,
        })
    }
}

/// How a table's rows get in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Route {
    /// `COPY ... FROM PROGRAM ... ON SEGMENT`: each segment loads its files into itself.
    CopyOnSegment,
    /// External web table + `INSERT ... SELECT`: the interconnect places every row.
    WebTable,
}

#[derive(Debug, Serialize)]
pub struct SegmentRestoreReport {
    pub tool: &'static str,
    pub backup_timestamp: String,
    pub backup_database: String,
    pub source_segments: u32,
    pub target_segments: u32,
    pub segment_root: String,
    pub target: String,
    pub elapsed_seconds: f64,
    pub statements: usize,
    pub tables: Vec<SegmentTableReport>,
    pub total_rows: u64,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SegmentTableReport {
    pub table: String,
    pub rows: u64,
    pub route: Route,
    pub seconds: f64,
}

/// One primary of the target.
#[derive(Debug, Clone)]
struct Reader {
    content: i32,
    host: String,
    datadir: String,
}

/// Where every file is, for the probe and the loads.
struct Placement {
    root: String,
    source_segments: u32,
    readers: Vec<Reader>,
    compression_program: &'static str,
    extension: &'static str,
}

impl Placement {
    fn target_segments(&self) -> u32 {
        self.readers.len() as u32
    }

    /// Target segment reading source content `c`.
    fn reader_of(&self, content: u32) -> &Reader {
        &self.readers[(content % self.target_segments()) as usize]
    }

    /// `<root>/backups/<date>/<ts>` of content `c`, as seen by its reader.
    fn dir(&self, content: u32, ts: &str) -> String {
        let root = self
            .root
            .replace("<SEGID>", &content.to_string())
            .replace("<SEG_DATA_DIR>", &self.reader_of(content).datadir);
        format!(
            "{}/backups/{}/{ts}",
            root.trim_end_matches('/'),
            ts.get(..8).unwrap_or(ts)
        )
    }

    fn file(&self, content: u32, ts: &str, oid: u32) -> String {
        format!(
            "{}/gpbackup_{content}_{ts}_{oid}{}",
            self.dir(content, ts),
            self.extension
        )
    }

    /// The server-side path of every content's file of `table` with `<SEGID>` (and
    /// `<SEG_DATA_DIR>`) left for the server to replace, when each segment reads exactly its own
    /// content's uncompressed file: `COPY ... FROM '<path>' ON SEGMENT` then reads it in place.
    /// Measured on the stand-in (2M rows, 3 segments, 2 cores): COPY FROM PROGRAM 'cat ...'
    /// costs a pipe and a process per segment on the same cores the segments parse with.
    fn in_place(&self, table: &PlannedTable, contents: &[u32]) -> Option<String> {
        let own = contents.len() as u32 == self.target_segments()
            && contents.iter().enumerate().all(|(i, &c)| c == i as u32);
        if !own || !self.extension.is_empty() {
            return None;
        }
        let ts = &table.source_timestamp;
        Some(format!(
            "{}/backups/{}/{ts}/gpbackup_<SEGID>_{ts}_{}",
            self.root.trim_end_matches('/'),
            ts.get(..8).unwrap_or(ts),
            table.entry.oid
        ))
    }

    /// Segment → files it decompresses for `table`, reading `contents`.
    fn files(&self, table: &PlannedTable, contents: &[u32]) -> BTreeMap<i32, Vec<String>> {
        let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for &c in contents {
            out.entry(self.reader_of(c).content)
                .or_default()
                .push(self.file(c, &table.source_timestamp, table.entry.oid));
        }
        out
    }
}

/// The decision for one table: the route, the source contents read, the rows expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePlan {
    pub route: Route,
    pub contents: Vec<u32>,
    pub expected: u64,
    /// A COPY that the server may refuse (hash policy: placement checked row by row): fall back
    /// to the web table then.
    pub may_fall_back: bool,
}

/// Chooses how a table is loaded. `source` = N segments of the set, `target` = M primaries.
/// - replicated source files each hold every row: N = M into a replicated table, each segment
///   loads its own copy (`rowscopied` = rows × N); otherwise content 0 alone is read;
/// - hash target spanning N segments: each segment loads its own file, the server checking
///   placement (a changed key or hash fails the COPY at the first misplaced row → web table);
/// - random target with N ≥ M: segment `i` loads files `i, i+M, ...` (any row fits anywhere);
///   with N < M the web table is no better (the planner keeps rows where they are read for a
///   random target), so COPY too, and segments `N..M` stay empty;
/// - anything else: the web table.
pub fn plan_table(
    replicated_source: bool,
    rowscopied: u64,
    source: u32,
    target: u32,
    policy: Option<&TablePolicy>,
) -> TablePlan {
    let all: Vec<u32> = (0..source).collect();
    let one_copy = TablePlan {
        route: Route::WebTable,
        contents: vec![0].into_iter().filter(|_| source > 0).collect(),
        expected: if source > 0 {
            rowscopied / source as u64
        } else {
            0
        },
        may_fall_back: false,
    };
    let copy = |may_fall_back| TablePlan {
        route: Route::CopyOnSegment,
        contents: all.clone(),
        expected: rowscopied,
        may_fall_back,
    };
    let Some(policy) = policy else {
        return if replicated_source {
            one_copy
        } else {
            TablePlan {
                route: Route::WebTable,
                contents: all.clone(),
                expected: rowscopied,
                may_fall_back: false,
            }
        };
    };
    match (&policy.kind, replicated_source) {
        (Distribution::Replicated, true) if source == target && policy.numsegments == target => {
            copy(false)
        }
        (_, true) => one_copy,
        (Distribution::Hash(_), false) if policy.numsegments == source && source <= target => {
            copy(true)
        }
        (Distribution::Random, false) => copy(false),
        (_, false) => TablePlan {
            route: Route::WebTable,
            contents: all,
            expected: rowscopied,
            may_fall_back: false,
        },
    }
}

/// `(a,"B c")` → `["a", "B c"]`.
pub fn attribute_names(attributestring: &str) -> Vec<String> {
    let inner = attributestring
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or("");
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in inner.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                current.push(ch);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(ch),
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out.iter()
        .map(|c| gpbackup::filter::unquote_ident(c.trim()))
        .collect()
}

/// The default segment root: gpbackup's `--backup-dir B` layouts, read off where the
/// coordinator's files are. `B/<prefix>-1/backups/<date>/<ts>` → `B/<prefix><SEGID>`;
/// `B/backups/<date>/<ts>` holding every content's files (`--single-backup-dir`) → `B`.
pub fn derive_segment_root(coordinator_file: &Path, single_dir: bool) -> Option<String> {
    let ts_dir = coordinator_file.parent()?;
    let backups = ts_dir.parent()?.parent()?;
    if backups.file_name()? != "backups" {
        return None;
    }
    let root = backups.parent()?;
    if single_dir {
        return Some(root.to_str()?.to_string());
    }
    let name = root.file_name()?.to_str()?;
    let prefix = name.strip_suffix("-1")?;
    Some(
        root.parent()?
            .join(format!("{prefix}<SEGID>"))
            .to_str()?
            .to_string(),
    )
}

fn step_error(what: impl Into<String>) -> RestoreError {
    RestoreError::Step(what.into())
}

fn load_error(e: SegmentLoadError) -> RestoreError {
    match e {
        SegmentLoadError::Cluster(c) => RestoreError::Cluster(c),
        SegmentLoadError::Refused(m) => step_error(m),
    }
}

/// Runs the restore. `abort` is raised by a signal; the table loading then finishes or rolls
/// back.
pub fn run(
    opts: &SegmentRestoreOptions,
    abort: Arc<AtomicBool>,
) -> Result<SegmentRestoreReport, RestoreError> {
    let started = Instant::now();
    let set = open_set(opts)?;
    if opts.create_db {
        create_database(opts)?;
    }
    let (mut client, server, rights) = connect_mpp(opts)?;
    let placement = placement(opts, &set, &mut client)?;
    if !opts.metadata_only {
        probe_files(&mut client, rights, &set, &opts.filter, &placement)?;
    }
    let state = open_state(&set, opts, &placement)?;
    state.reconcile(&mut client)?;
    let policy = Policy::new(opts.on_error_continue).stopping_on(Arc::clone(&abort));
    let mut loader = SegmentLoader {
        opts,
        state: &state,
        policy: &policy,
        abort: &abort,
        placement,
        catalog: LoadCatalog::from_env(),
        encoding: client_encoding(&set)?,
        tables: Vec::new(),
        progress: pipeline::progress::Progress::new(
            set.tables_filtered(&opts.filter).count(),
            false,
        )
        .named("cbrestore"),
    };
    let mut runner = Runner::new(&opts.conn, client, (&state, &policy, &abort), opts.verbose);
    let result = if state.resuming && state.finished() {
        Ok(ToSqlReport::default())
    } else {
        restore(&mut loader, &mut runner, &set, &flow_options(opts))
    };
    loader.progress.finish();
    let report = match result {
        Ok(r) => r,
        Err(_) if abort.load(Ordering::SeqCst) => {
            return Err(RestoreError::Interrupted.stopped(&state))
        }
        Err(e) => return Err(e.stopped(&state)),
    };
    state.finish()?;
    let errors = policy.errors();
    let mut done = loader.report(&set, &server, started, (report, errors));
    done.target = format!("{} ({})", opts.conn.target(), done.target);
    Ok(done)
}

/// Pulls the set's restore steps: statements on the main connection ([`Runner`]), each table
/// loaded by the segments when its step comes.
fn restore(
    loader: &mut SegmentLoader<'_>,
    runner: &mut Runner<'_>,
    set: &BackupSet,
    flow: &ToSqlOptions,
) -> Result<ToSqlReport, RestoreError> {
    let mut steps = restore_steps(set, flow)?;
    for step in &mut steps {
        loader.check_abort()?;
        match step? {
            RestoreStep::Session(sql) => runner.session(sql)?,
            RestoreStep::Statement { stmt, sql } => runner.statement(&stmt, &sql)?,
            RestoreStep::ConnectDatabase(db) => runner.connect(&db)?,
            RestoreStep::Table(table) => {
                runner.flush()?;
                loader.table(&mut runner.client, table)?;
            }
            RestoreStep::DataDone => {}
        }
    }
    runner.flush()?;
    Ok(steps.finish())
}

/// A connection to the target, refused unless it is an MPP server whose segments this role may
/// make run programs; the role's rights, read once.
fn connect_mpp(
    opts: &SegmentRestoreOptions,
) -> Result<(postgres::Client, cluster::ServerInfo, mpp_load::Rights), RestoreError> {
    let mut client = cluster::connect(&opts.conn)?;
    let server = flavor::detect(&mut client, &cluster::mpp::MppCatalog::from_env())?;
    if !server.flavor.is_mpp() {
        return Err(cluster::ClusterError::NotMpp {
            server: server.describe(),
        }
        .into());
    }
    let rights = mpp_load::check_rights(&mut client).map_err(load_error)?;
    Ok((client, server, rights))
}

/// The options of the shared metadata flow: statements as written (an MPP target).
fn flow_options(opts: &SegmentRestoreOptions) -> ToSqlOptions {
    ToSqlOptions {
        target: Target::AsWritten,
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

/// The set, with what this mode cannot read refused up front.
fn open_set(opts: &SegmentRestoreOptions) -> Result<BackupSet, RestoreError> {
    let set = BackupSet::open_roots(&opts.roots, opts.timestamp.as_deref())?;
    if set.sources.values().any(|s| s.config.singledatafile) {
        return Err(step_error(format!(
            "backup {} is a single-data-file set: its segment files need gpbackup_helper to be \
             cut per table; restore it through the coordinator (cbrestore without --on-segment) \
             or with gprestore",
            set.timestamp
        )));
    }
    if !set.config.plugin.is_empty() {
        return Err(step_error(format!(
            "backup {} was written through the storage plugin {:?}: its files are not on the \
             segment hosts; restore it with gprestore --plugin-config",
            set.timestamp, set.config.plugin
        )));
    }
    set.metadata()?.check_offsets(
        &set.toc,
        &[
            gpbackup::Section::Global,
            gpbackup::Section::Predata,
            gpbackup::Section::Postdata,
        ],
    )?;
    Ok(set)
}

fn create_database(opts: &SegmentRestoreOptions) -> Result<(), RestoreError> {
    let mut admin = cluster::connect(&opts.conn.with_dbname("postgres"))?;
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {}",
            quote::ident(opts.conn.dbname())
        ))
        .map_err(cluster::ClusterError::query(format!(
            "creating database {}",
            opts.conn.dbname()
        )))?;
    Ok(())
}

/// The target's primaries and the segment root.
fn placement(
    opts: &SegmentRestoreOptions,
    set: &BackupSet,
    client: &mut postgres::Client,
) -> Result<Placement, RestoreError> {
    let readers: Vec<Reader> = cluster::mpp::MppCatalog::from_env()
        .primaries(client)?
        .into_iter()
        .filter(|s| s.content >= 0)
        .map(|s| Reader {
            content: s.content as i32,
            host: s.hostname,
            datadir: s.datadir,
        })
        .collect();
    if readers.is_empty() {
        return Err(step_error("the target lists no primary segment"));
    }
    let root = match &opts.segment_root {
        Some(r) if !r.is_empty() => r.clone(),
        _ => {
            let toc = set.files.require(CoordinatorFile::Toc)?;
            let single = set.files.layout_kind() == gpbackup::LayoutKind::SingleDir;
            derive_segment_root(toc, single).ok_or_else(|| {
                step_error(format!(
                    "{}: not in a gpbackup --backup-dir layout (<dir>/<prefix>-1/backups/<date>/<ts>), \
                     so the segments' directories cannot be derived: give --on-segment=ROOT, where \
                     each content's files are in ROOT/backups/<date>/<ts> (ROOT may contain <SEGID> \
                     and <SEG_DATA_DIR>)",
                    toc.display()
                ))
            })?
        }
    };
    let compression = set.sources.values().next().map(|s| s.compression);
    let compression = compression.unwrap_or(gpbackup::Compression::None);
    Ok(Placement {
        root,
        source_segments: set.segment_count,
        readers,
        compression_program: match compression {
            gpbackup::Compression::Gzip => "gzip -dc",
            gpbackup::Compression::Zstd => "zstd -dcq",
            gpbackup::Compression::None => "cat",
        },
        extension: compression.extension(),
    })
}

/// Every file the selected tables need, looked for on the segment that will read it, before
/// the target is touched.
fn probe_files(
    client: &mut postgres::Client,
    rights: mpp_load::Rights,
    set: &BackupSet,
    filter: &Filter,
    placement: &Placement,
) -> Result<(), RestoreError> {
    let mut wanted: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    let mut dirs: BTreeMap<i32, BTreeSet<String>> = BTreeMap::new();
    for table in set.tables_filtered(filter) {
        for c in 0..placement.source_segments {
            let reader = placement.reader_of(c).content;
            let ts = &table.source_timestamp;
            dirs.entry(reader).or_default().insert(placement.dir(c, ts));
            wanted
                .entry(reader)
                .or_default()
                .insert(placement.file(c, ts, table.entry.oid));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let dirs: BTreeMap<i32, Vec<String>> = dirs
        .into_iter()
        .map(|(s, d)| (s, d.into_iter().collect()))
        .collect();
    let found = mpp_load::probe(client, rights, &dirs, "gpbackup_")?;
    let host = |s: i32| {
        placement
            .readers
            .iter()
            .find(|r| r.content == s)
            .map(|r| r.host.clone())
            .unwrap_or_default()
    };
    let mut missing = Vec::new();
    for (segment, files) in &wanted {
        let seen = found.readable.get(segment);
        for f in files {
            if !seen.is_some_and(|s| s.contains(f)) {
                missing.push(format!("segment {segment} (host {}): {f}", host(*segment)));
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let shown: Vec<&String> = missing.iter().take(10).collect();
    Err(step_error(format!(
        "{} backup file(s) are missing or unreadable where the segments read them (source \
         content c is read on the host of segment c mod {}, as the server's OS user, under \
         {}/backups/<date>/<ts>); nothing was restored:\n  {}{}",
        missing.len(),
        placement.target_segments(),
        placement.root,
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        if missing.len() > shown.len() {
            format!("\n  ... and {} more", missing.len() - shown.len())
        } else {
            String::new()
        }
    )))
}

/// `SET client_encoding = 'UTF8';` of the set's SESSION GUCS → `UTF8`: the files' encoding,
/// given to the segments' COPY and web tables (they do not read the session's).
fn client_encoding(set: &BackupSet) -> Result<Option<String>, RestoreError> {
    let Some(gucs) = set.session_gucs()? else {
        return Ok(None);
    };
    let lower = gucs.to_ascii_lowercase();
    let Some(at) = lower.find("client_encoding") else {
        return Ok(None);
    };
    Ok(gucs[at..].split('\'').nth(1).map(str::to_string))
}

/// The state of this restore: the set, the segment root and the target.
fn open_state(
    set: &BackupSet,
    opts: &SegmentRestoreOptions,
    placement: &Placement,
) -> Result<State, RestoreError> {
    let mut fp = crate::fingerprint::Fingerprint::new(format!(
        "gpbackup {} on segments ({}) -> {}",
        set.timestamp,
        placement.root,
        opts.conn.target()
    ));
    for source in set.sources.values() {
        for which in [CoordinatorFile::Toc, CoordinatorFile::Config] {
            if let Some(p) = source.files.coordinator_file(which) {
                fp.file_content(p).map_err(|source| RestoreError::Io {
                    path: p.to_path_buf(),
                    source,
                })?;
            }
        }
    }
    fp.text(&format!(
        "{:?} {} {}",
        opts.filter, opts.data_only, opts.metadata_only
    ));
    let identity = format!(
        "gpbackup-on-segment {} {} -> {} {:?} data_only={} metadata_only={}",
        set.timestamp,
        placement.root,
        opts.conn.target(),
        opts.filter,
        opts.data_only,
        opts.metadata_only
    );
    let label = format!("{}-{}-on-segment", set.timestamp, opts.conn.dbname());
    let place = crate::state::place(
        opts.state_file.as_deref(),
        opts.state_dir.as_deref(),
        &label,
        &identity,
        fp.finish(),
        opts.resume,
    )?;
    Ok(State::open(&place)?)
}

/// Each table one segment-parallel load, on the main connection.
struct SegmentLoader<'a> {
    opts: &'a SegmentRestoreOptions,
    state: &'a State,
    policy: &'a Policy,
    abort: &'a AtomicBool,
    placement: Placement,
    catalog: LoadCatalog,
    encoding: Option<String>,
    tables: Vec<SegmentTableReport>,
    progress: pipeline::progress::Progress,
}

/// Runs `work` on `client` while a watcher cancels the statement in flight as soon as `abort`
/// is raised (SIGINT/SIGTERM/SIGHUP): a table's load can take minutes, and a cancelled one
/// rolls back whole. A cancel that reaches the COMMIT is harmless: its transaction id is
/// recorded first (see state.rs), so `--resume` asks the server what became of it.
fn cancelling<T>(
    client: &mut Client,
    abort: &AtomicBool,
    work: impl FnOnce(&mut Client) -> T,
) -> T {
    let token = client.cancel_token();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                if abort.load(Ordering::SeqCst) {
                    let _ = token.cancel_query(postgres::NoTls);
                    return;
                }
                // Unparked when the work ends: a plain sleep kept every table's load waiting
                // up to 50 ms for its watcher.
                std::thread::park_timeout(std::time::Duration::from_millis(50));
            }
        });
        let result = work(client);
        done.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        result
    })
}

impl SegmentLoader<'_> {
    fn check_abort(&self) -> Result<(), RestoreError> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(RestoreError::Interrupted);
        }
        Ok(())
    }

    /// One table's step: loaded unless an earlier run did; a failure goes to the on-error
    /// policy.
    fn table(&mut self, client: &mut Client, table: &PlannedTable) -> Result<(), RestoreError> {
        self.check_abort()?;
        let fqn = table.fqn();
        if self.state.table_done(&fqn) {
            if self.opts.verbose {
                logline::say!("cbrestore: {fqn} already loaded (resume)");
            }
            return Ok(());
        }
        let abort = self.abort;
        match cancelling(client, abort, |c| self.load(c, table)) {
            Err(_) if abort.load(Ordering::SeqCst) => Err(RestoreError::Interrupted),
            Ok(done) => {
                self.progress.table_done(&fqn);
                if self.opts.verbose {
                    logline::say!(
                        "cbrestore: loaded {fqn}: {} rows by {:?} in {:.2}s",
                        done.rows,
                        done.route,
                        done.seconds
                    );
                }
                self.tables.push(done);
                Ok(())
            }
            Err(e) => self
                .policy
                .fail(RestoreError::Step(format!("loading {fqn}: {e}"))),
        }
    }

    /// One table in one transaction; the COPY route falls back to the web table when the
    /// server finds a row that belongs to another segment.
    fn load(
        &self,
        client: &mut Client,
        table: &PlannedTable,
    ) -> Result<SegmentTableReport, RestoreError> {
        let started = Instant::now();
        let fqn = table.fqn();
        let policy = self.catalog.policy(client, &fqn)?;
        let rowscopied = table.entry.rowscopied.max(0) as u64;
        let (sources, targets) = (
            self.placement.source_segments,
            self.placement.target_segments(),
        );
        let replicated = table.entry.isreplicated;
        let mut plan = plan_table(replicated, rowscopied, sources, targets, policy.as_ref());
        let columns = attribute_names(&table.entry.attributestring);
        let rows = match self.load_as(client, table, &plan, &columns) {
            Err(RestoreError::Cluster(e))
                if plan.may_fall_back && mpp_load::is_misplaced_row(&e) =>
            {
                if self.opts.verbose {
                    logline::say!("cbrestore: {fqn}: the files were cut by another policy; loading through an external web table");
                }
                plan = plan_table(replicated, rowscopied, sources, targets, None);
                self.load_as(client, table, &plan, &columns)?
            }
            other => other?,
        };
        // A replicated table loaded copy by copy: the server counted every segment's copy.
        let copies = if plan.route == Route::CopyOnSegment && replicated {
            u64::from(sources.max(1))
        } else {
            1
        };
        Ok(SegmentTableReport {
            table: fqn,
            rows: rows / copies,
            route: plan.route,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn load_as(
        &self,
        client: &mut Client,
        table: &PlannedTable,
        plan: &TablePlan,
        columns: &[String],
    ) -> Result<u64, RestoreError> {
        let fqn = table.fqn();
        let files = self.placement.files(table, &plan.contents);
        let program = self.placement.compression_program;
        let encoding = self.encoding.as_deref();
        let mut tx = client
            .transaction()
            .map_err(cluster::ClusterError::query(format!(
                "starting the load of {fqn}"
            )))?;
        if self.opts.truncate_table {
            tx.batch_execute(&format!("TRUNCATE {fqn}"))
                .map_err(cluster::ClusterError::query(format!("emptying {fqn}")))?;
        }
        let rows = match plan.route {
            Route::CopyOnSegment => match self.placement.in_place(table, &plan.contents) {
                Some(path) => {
                    let source = SegmentEnd::File(&path);
                    mpp_load::copy_on_segment(&mut tx, &fqn, columns, source, encoding)?
                }
                None => {
                    let command = mpp_load::segment_command(Selector::CopyProgram, program, &files);
                    let source = SegmentEnd::Program(&command);
                    mpp_load::copy_on_segment(&mut tx, &fqn, columns, source, encoding)?
                }
            },
            Route::WebTable => {
                let typed = mpp_load::column_types(&mut tx, &fqn, columns).map_err(load_error)?;
                let command = mpp_load::segment_command(Selector::WebTable, program, &files);
                mpp_load::insert_from_segments(&mut tx, &fqn, &typed, &command, encoding)?
            }
        };
        if rows != plan.expected {
            return Err(step_error(format!(
                "{fqn}: the segments loaded {rows} rows but the backup's toc records {} \
                 (rowscopied {}); rolled back",
                plan.expected, table.entry.rowscopied
            )));
        }
        self.state
            .commit(tx, Step::table(&fqn))
            .map_err(|e| step_error(format!("committing {fqn}: {e}")))?;
        Ok(rows)
    }

    /// The report of a finished restore: the tables loaded, the steps' report and the errors
    /// skipped.
    fn report(
        self,
        set: &BackupSet,
        server: &cluster::ServerInfo,
        started: Instant,
        (steps, errors): (ToSqlReport, Vec<String>),
    ) -> SegmentRestoreReport {
        SegmentRestoreReport {
            tool: "cbrestore --on-segment",
            backup_timestamp: set.timestamp.clone(),
            backup_database: set.config.databasename.clone(),
            source_segments: self.placement.source_segments,
            target_segments: self.placement.target_segments(),
            segment_root: self.placement.root.clone(),
            target: server.describe(),
            elapsed_seconds: started.elapsed().as_secs_f64(),
            statements: steps.statements,
            total_rows: self.tables.iter().map(|t| t.rows).sum(),
            tables: self.tables,
            errors: errors
                .into_iter()
                .chain(steps.errors_skipped.iter().cloned())
                .collect(),
            warnings: steps.warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(kind: Distribution, n: u32) -> TablePolicy {
        TablePolicy {
            kind,
            numsegments: n,
        }
    }

    #[test]
    fn plans() {
        let hash = policy(Distribution::Hash(vec!["a".into()]), 3);
        let p = plan_table(false, 900, 3, 3, Some(&hash));
        assert_eq!(
            (p.route, p.expected, p.may_fall_back),
            (Route::CopyOnSegment, 900, true)
        );
        // 3 segments' files into 2: the interconnect places the rows.
        let p = plan_table(
            false,
            900,
            3,
            2,
            Some(&policy(Distribution::Hash(vec!["a".into()]), 2)),
        );
        assert_eq!((p.route, p.contents.len()), (Route::WebTable, 3));
        // Random: any segment takes any row.
        let p = plan_table(false, 900, 3, 2, Some(&policy(Distribution::Random, 2)));
        assert_eq!(p.route, Route::CopyOnSegment);
        // Replicated set (rows × 3) into the same shape: every segment its own copy.
        let rep = policy(Distribution::Replicated, 3);
        let p = plan_table(true, 300, 3, 3, Some(&rep));
        assert_eq!((p.route, p.expected), (Route::CopyOnSegment, 300));
        // ... into another shape or policy: content 0's copy, once.
        let p = plan_table(true, 300, 3, 2, Some(&policy(Distribution::Replicated, 2)));
        assert_eq!(
            (p.route, p.contents.clone(), p.expected),
            (Route::WebTable, vec![0], 100)
        );
        let p = plan_table(true, 300, 3, 3, Some(&hash));
        assert_eq!((p.route, p.expected), (Route::WebTable, 100));
        // Hash source into a replicated target: every row read once, broadcast.
        let p = plan_table(false, 900, 3, 3, Some(&rep));
        assert_eq!(
            (p.route, p.expected, p.contents.len()),
            (Route::WebTable, 900, 3)
        );
    }

    #[test]
    fn attribute_lists() {
        assert_eq!(
            attribute_names("(a,\"B c\",\"x,\"\"y\")"),
            vec!["a", "B c", "x,\"y"]
        );
        assert!(attribute_names("").is_empty());
    }

    #[test]
    fn derived_roots() {
        let p = Path::new(
            "/b/gpseg-1/backups/20250301/20250301101500/gpbackup_20250301101500_toc.yaml",
        );
        assert_eq!(
            derive_segment_root(p, false).as_deref(),
            Some("/b/gpseg<SEGID>")
        );
        let p = Path::new("/b/backups/20250301/20250301101500/gpbackup_20250301101500_toc.yaml");
        assert_eq!(derive_segment_root(p, true).as_deref(), Some("/b"));
        assert_eq!(
            derive_segment_root(Path::new("/flat/gpbackup_1_toc.yaml"), false),
            None
        );
    }

    #[test]
    fn placement_paths() {
        let reader = |c: i32| Reader {
            content: c,
            host: "h".into(),
            datadir: format!("/data/gpseg{c}"),
        };
        let p = Placement {
            root: "<SEG_DATA_DIR>/../bk/gpseg<SEGID>".into(),
            source_segments: 3,
            readers: vec![reader(0), reader(1)],
            compression_program: "gzip -dc",
            extension: ".gz",
        };
        assert_eq!(
            p.file(2, "20250301101500", 77),
            "/data/gpseg0/../bk/gpseg2/backups/20250301/20250301101500/gpbackup_2_20250301101500_77.gz"
        );
        // In place only for uncompressed files, each segment reading exactly its own content;
        // the tokens are left for the server.
        let mut flat = Placement {
            root: "/bk/gpseg<SEGID>/".into(),
            source_segments: 2,
            extension: "",
            compression_program: "cat",
            ..p
        };
        let table = PlannedTable {
            entry: gpbackup::DataEntry {
                oid: 77,
                ..Default::default()
            },
            source_timestamp: "20250301101500".into(),
            pieces: Vec::new(),
            expected_rows: 0,
        };
        assert_eq!(
            flat.in_place(&table, &[0, 1]).as_deref(),
            Some("/bk/gpseg<SEGID>/backups/20250301/20250301101500/gpbackup_<SEGID>_20250301101500_77")
        );
        assert_eq!(flat.in_place(&table, &[0]), None);
        flat.extension = ".zst";
        assert_eq!(flat.in_place(&table, &[0, 1]), None);
    }
}
