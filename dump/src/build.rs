//! The dump run: snapshot, pg_dump for everything but table data, our data, one archive.
//!
//! [`run`] reads as its steps; each is a function below. Everything is built in a private
//! staging directory beside the output and appears under the output name only in the last
//! step, after the leader has shown it held the snapshot to the end: a failure, a lost leader
//! or a signal (SIGINT, SIGTERM, SIGHUP: the `interrupt` crate) leaves nothing under the
//! output name and no temporary file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use archive::toc::{Extra, HeaderCompression, SECTION_DATA, SECTION_POST_DATA};
use archive::{Compression, DirectoryArchive, TocEntry};
use serde::Serialize;

use cluster::catalog::{self, RelKind, Relation, Selection};
use cluster::mpp::MppCatalog;
use cluster::snapshot::SnapshotLeader;
use cluster::{flavor, ConnParams, ServerInfo};
use interrupt::{HookGuard, Interrupt};
use pipeline::plan::{chunks_for, ChunkPolicy};

use crate::data::{self, Counters, Encoding, TableData, TableTask};
use crate::output;
use crate::pgdump::{self, PgDump};
use crate::session::Session;
use crate::tables;
use crate::DumpError;

/// `-F`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[value(name = "p", alias = "plain")]
    Plain,
    #[value(name = "c", alias = "custom")]
    Custom,
    #[value(name = "d", alias = "directory")]
    Directory,
}

/// `--distribute` rules (cbdistfix's).
#[derive(Debug, Clone, Default)]
pub struct Distribute {
    pub policy: Option<PathBuf>,
    pub default: Option<distfix::policy::DefaultRule>,
    pub on_conflict: Option<distfix::policy::OnConflict>,
    /// Use the source's own `pg_stats` for the default choice.
    pub stats: bool,
}

#[derive(Debug, Clone)]
pub struct DumpOptions {
    pub conn: ConnParams,
    pub format: Format,
    pub output: PathBuf,
    pub jobs: usize,
    pub compress: Option<Compression>,
    pub tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    pub schemas: Vec<String>,
    pub exclude_schemas: Vec<String>,
    pub exclude_table_data: Vec<String>,
    pub schema_only: bool,
    pub data_only: bool,
    pub no_owner: bool,
    pub no_acl: bool,
    pub pg_dump: Option<PathBuf>,
    pub distribute: Option<Distribute>,
    pub lock_wait_timeout_ms: Option<u64>,
    pub verbose: bool,
    /// pg_dump flags of the schema pass that ask nothing of the data (`--no-comments`, `-B`,
    /// `--section=pre-data`, ...), passed as given.
    pub schema_flags: Vec<String>,
    /// pg_restore flags that shape a plain script (`--clean`, `--create`, `--if-exists`).
    pub script_flags: Vec<String>,
    /// `-E`: the client encoding of the data and of pg_dump's schema pass (default: the
    /// database's, as pg_dump).
    pub encoding: Option<String>,
    /// How progress is shown on stderr (`--progress`).
    pub progress: pipeline::progress::Display,
    /// Also write roles and tablespaces (`pg_dumpall --globals-only`) to this file.
    pub globals: Option<PathBuf>,
    /// Cloudberry parallel mode: a gpbackup backup set under this directory, every segment
    /// writing its own files with `COPY ... ON SEGMENT`.
    pub on_segment: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct DumpReport {
    pub tool: &'static str,
    pub version: &'static str,
    pub output: String,
    pub format: &'static str,
    pub server: String,
    pub pg_dump: String,
    pub snapshot: String,
    pub compression: &'static str,
    pub elapsed_seconds: f64,
    pub tables: Vec<TableReport>,
    pub total_rows: u64,
    pub total_raw_bytes: u64,
    pub distribution_statements_changed: u64,
}

#[derive(Debug, Serialize, Clone)]
pub struct TableReport {
    pub table: String,
    pub dump_id: i32,
    pub rows: u64,
    pub raw_bytes: u64,
    pub bytes: u64,
    pub sha256: String,
    pub chunks: usize,
    /// Seconds from the table's first COPY to its data complete.
    pub seconds: f64,
}

/// What every step after the snapshot needs.
pub(crate) struct Run<'a> {
    pub o: &'a DumpOptions,
    pub pg_dump: &'a PgDump,
    pub server: &'a ServerInfo,
    /// The private staging directory.
    pub work: &'a Path,
    pub interrupt: &'a Interrupt,
    /// How the archive's data is compressed: gzip level 6 by default as pg_dump; a plain
    /// script is assembled uncompressed and compressed as a whole.
    pub compression: Compression,
}

impl Run<'_> {
    /// pg_dump's `-Fd` output, which becomes a directory archive as it is.
    pub fn schema_dir(&self) -> PathBuf {
        self.work.join("schema")
    }

    fn data_dir(&self) -> PathBuf {
        self.work.join("data")
    }
}

/// Runs the dump (see the module documentation).
pub fn run(o: &DumpOptions, interrupt: &Interrupt) -> Result<DumpReport, DumpError> {
    let started = Instant::now();
    // STEP 1: an output that exists is refused before anything runs.
    check_output(o)?;
    // STEP 2: the server, the pg_dump that matches it, and the snapshot everything reads.
    let mut client = cluster::connect(&o.conn)?;
    let mpp = MppCatalog::from_env();
    let server = flavor::detect(&mut client, &mpp)?;
    if o.on_segment.is_some() && !server.flavor.is_mpp() {
        return Err(DumpError::Cluster(cluster::ClusterError::NotMpp {
            server: server.describe(),
        }));
    }
    let pg_dump = PgDump::find(o.pg_dump.as_deref(), &server)?;
    let _cancel_leader = cancel_on_signal(interrupt, client.cancel_token(), &o.conn);
    let mut leader = SnapshotLeader::begin(client, &[], o.lock_wait_timeout_ms)?;
    if let Some(root) = &o.on_segment {
        return crate::segment_set::write(o, root, &pg_dump, &server, leader, started, interrupt);
    }
    // STEP 3: the tables whose rows we dump ourselves, locked in the snapshot.
    let relations = select_tables(o, &mut leader)?;
    // STEP 4: the private staging directory beside the output.
    let work = staging(o, interrupt)?;
    let run = Run {
        o,
        pg_dump: &pg_dump,
        server: &server,
        work: work.path(),
        interrupt,
        compression: match o.format {
            Format::Plain => Compression::None,
            _ => o.compress.unwrap_or(Compression::Gzip(6)),
        },
    };
    // STEP 5: the schema (pg_dump) and the data (our workers) at once, on the one snapshot.
    let dumped = dump_schema_and_data(&run, &mut leader, relations)?;
    // STEP 6: our TABLE DATA entries in pg_dump's TOC, --distribute's rewrite, the report.
    let assembled = assemble(&run, &mut leader, dumped)?;
    // STEP 7: the snapshot ends; a leader lost on the way means nothing is published.
    leader
        .finish()
        .map_err(|e| DumpError::SnapshotLost(e.to_string()))?;
    if interrupt.requested() {
        return Err(DumpError::Interrupted);
    }
    // STEP 8: the archive written and renamed into place (with the globals beside it). The
    // manifest written there has the run's seconds up to now (issue 15: it said 0.0).
    let mut assembled = assembled;
    assembled.report.elapsed_seconds = started.elapsed().as_secs_f64();
    output::publish(&run, &assembled)?;
    Ok(DumpReport {
        elapsed_seconds: started.elapsed().as_secs_f64(),
        ..assembled.report
    })
}

fn check_output(o: &DumpOptions) -> Result<(), DumpError> {
    if o.format == Format::Directory && o.output == Path::new("-") {
        return Err(DumpError::Usage(
            "a directory archive needs -f DIRECTORY".into(),
        ));
    }
    // --on-segment writes into an existing backup directory, as gpbackup's --backup-dir does.
    if o.on_segment.is_none() && o.output.exists() && o.output != Path::new("-") {
        return Err(DumpError::Usage(format!(
            "{} already exists",
            o.output.display()
        )));
    }
    Ok(())
}

/// Sends the server a cancel request for `token`'s session when a signal arrives.
pub(crate) fn cancel_on_signal(
    interrupt: &Interrupt,
    token: postgres::CancelToken,
    conn: &ConnParams,
) -> HookGuard {
    let conn = conn.clone();
    interrupt.on_signal(move || cluster::connect::cancel(&token, &conn))
}

/// What pg_dump would dump data for: ordinary tables and partitions, without extensions'
/// tables (pg_dump dumps their configuration tables' data itself). They are locked at once.
fn select_tables(o: &DumpOptions, leader: &mut SnapshotLeader) -> Result<Vec<Relation>, DumpError> {
    let all = catalog::list_relations(leader.client())?;
    let selection =
        Selection::from_patterns(&o.tables, &o.exclude_tables, &o.schemas, &o.exclude_schemas)?;
    let no_data = Selection::from_patterns(&o.exclude_table_data, &[], &[], &[]);
    let mut relations: Vec<_> = if o.schema_only {
        Vec::new()
    } else {
        selection
            .select(&all)?
            .into_iter()
            .filter(|r| r.kind == RelKind::Table)
            .collect()
    };
    if !o.exclude_table_data.is_empty() {
        let excluded = no_data?.select(&all).unwrap_or_default();
        relations.retain(|r| !excluded.iter().any(|x| x.oid == r.oid));
    }
    let members = tables::extension_members(leader.client())?;
    relations.retain(|r| !members.contains(&r.oid));
    leader.lock(&relations.iter().map(|r| r.qualified()).collect::<Vec<_>>())?;
    catalog::measure(leader.client(), &mut relations)?;
    Ok(relations)
}

/// `.NAME.cbdump-XXXXXX/` beside the output: private (0700), a random name made with
/// exclusive creation, removed on any failure or signal.
fn staging(o: &DumpOptions, interrupt: &Interrupt) -> Result<interrupt::TempPath, DumpError> {
    let out_dir = match o.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = o
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dump".into());
    interrupt
        .staging_dir(&out_dir, &format!(".{name}.cbdump-"))
        .map_err(|e| {
            DumpError::Usage(format!(
                "cannot write the dump into {}: {e}",
                out_dir.display()
            ))
        })
}

/// What the schema and data step leaves: pg_dump's archive, our data files, and what the TOC
/// step needs to know about them.
struct Dumped {
    schema: DirectoryArchive,
    tasks: Vec<TableTask>,
    written: Vec<TableData>,
    owners: HashMap<u32, String>,
    fks: Vec<(u32, u32)>,
}

/// STEP 5: pg_dump writes the schema while our workers write the data, both on the snapshot.
fn dump_schema_and_data(
    run: &Run,
    leader: &mut SnapshotLeader,
    relations: Vec<Relation>,
) -> Result<Dumped, DumpError> {
    let o = run.o;
    let cmd = schema_command(run, leader.id(), &relations)?;
    // With --data-only pg_dump writes no TABLE entries: what they would give comes from the
    // catalog, and referenced tables' data loads first, as pg_dump orders it.
    let (owners, fks) = if o.data_only {
        (
            tables::owners(leader.client())?,
            tables::foreign_keys(leader.client())?,
        )
    } else {
        (HashMap::new(), Vec::new())
    };
    let relations = if o.data_only {
        referenced_first(relations, &fks)
    } else {
        relations
    };
    let tasks = table_tasks(run, leader, relations)?;
    let mut session = Session::of(leader.client(), run.server.version_num)?;
    if let Some(encoding) = &o.encoding {
        session.encoding = encoding.clone();
    }
    let session_sql = session.statements();
    let data_dir = run.data_dir();
    std::fs::create_dir(&data_dir).map_err(|e| DumpError::io(&data_dir, e))?;
    let written = run_concurrently(run, cmd, leader.id(), &session_sql, &tasks)?;
    let schema = DirectoryArchive::open(&run.schema_dir())?;
    Ok(Dumped {
        schema,
        tasks,
        written,
        owners,
        fks,
    })
}

/// pg_dump on our snapshot into `-Fd` form, every table whose rows we dump excluded.
fn schema_command(run: &Run, snapshot: &str, relations: &[Relation]) -> Result<Command, DumpError> {
    let (o, pg_dump) = (run.o, run.pg_dump);
    if matches!(run.compression, Compression::Zstd(_)) && pg_dump.major < 16 {
        return Err(DumpError::Usage(format!(
            "zstd needs archive format 1.15 (pg_dump 16 or newer); {} writes an older one: use -Z gzip",
            pg_dump.version
        )));
    }
    let level = match run.compression {
        Compression::Gzip(l) => l.to_string(),
        Compression::Zstd(l) => format!("zstd:{l}"),
        Compression::None => "0".into(),
    };
    let (conninfo, password) = pgdump::conninfo(&o.conn);
    let mut cmd = Command::new(&pg_dump.path);
    cmd.arg("-d")
        .arg(&conninfo)
        .args(["-Fd", "-f"])
        .arg(run.schema_dir())
        .arg(format!("--snapshot={snapshot}"))
        .arg(format!("-Z{level}"));
    // Exactly the tables whose rows we dump ourselves: a wildcard would also drop sequence
    // values and materialized-view data, which pg_dump counts as table data.
    for r in relations {
        cmd.arg(format!(
            "--exclude-table-data={}.{}",
            pattern_literal(&r.schema),
            pattern_literal(&r.name)
        ));
    }
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    let repeated = [
        ("--exclude-table-data", &o.exclude_table_data),
        ("--table", &o.tables),
        ("--exclude-table", &o.exclude_tables),
        ("--schema", &o.schemas),
        ("--exclude-schema", &o.exclude_schemas),
    ];
    for (flag, values) in repeated {
        for v in values {
            cmd.arg(format!("{flag}={v}"));
        }
    }
    let switches = [
        ("--schema-only", o.schema_only),
        ("--data-only", o.data_only),
        ("--no-owner", o.no_owner),
        ("--no-acl", o.no_acl),
    ];
    cmd.args(switches.iter().filter(|(_, on)| *on).map(|(flag, _)| flag));
    cmd.args(&o.schema_flags);
    if let Some(encoding) = &o.encoding {
        cmd.arg(format!("--encoding={encoding}"));
    }
    if o.verbose {
        logline::say!("cbdump: running {} on snapshot {snapshot}", pg_dump.version);
    }
    Ok(cmd)
}

/// `--data-only`: referenced tables first, with a warning for cycles.
fn referenced_first(relations: Vec<Relation>, fks: &[(u32, u32)]) -> Vec<Relation> {
    let (ordered, cyclic) = tables::referenced_first(relations, |r| r.oid, fks);
    if !cyclic.is_empty() {
        logline::say!(
            "cbdump: warning: circular foreign-key constraints among {} tables; restoring the data may need --disable-triggers",
            cyclic.len()
        );
    }
    ordered
}

/// What each table's COPY reads, from the catalog: known before pg_dump has written anything,
/// so the data is dumped while pg_dump dumps the schema. Files get their dump ids once pg_dump's
/// TOC is there.
fn table_tasks(
    run: &Run,
    leader: &mut SnapshotLeader,
    relations: Vec<Relation>,
) -> Result<Vec<TableTask>, DumpError> {
    let policy = ChunkPolicy {
        workers: run.o.jobs.max(1),
        chunk_pages: None,
        tid_range_scan: run.server.has_tid_range_scan(),
        segments: run.server.segments.len(),
    };
    let mut tasks = Vec::new();
    for (i, rel) in relations.into_iter().enumerate() {
        let columns: Vec<String> = catalog::columns(leader.client(), rel.oid)?
            .into_iter()
            .filter(|c| !c.generated)
            .map(|c| c.name)
            .collect();
        let target = tables::CopyTarget::read(leader.client(), &rel.schema, &rel.name, &columns)?;
        tasks.push(TableTask {
            chunks: chunks_for(&rel, &policy),
            relation: rel,
            target,
            file_name: format!("t{i}.dat{}", run.compression.extension()),
        });
    }
    Ok(tasks)
}

/// pg_dump in a child process and the data workers here, at the same time. The workers stop
/// when pg_dump fails (no use dumping rows for a schema we cannot have) and on a signal;
/// pg_dump is stopped when the data fails or on a signal.
fn run_concurrently(
    run: &Run,
    mut cmd: Command,
    snapshot: &str,
    session_sql: &str,
    tasks: &[TableTask],
) -> Result<Vec<TableData>, DumpError> {
    let pg_dump_path = run.pg_dump.path.display().to_string();
    let child = dies_with_us(&mut cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| DumpError::PgDump(format!("running {pg_dump_path}: {e}")))?;
    let pg_dump_pid = child.id();
    let stop_pg_dump = run.interrupt.on_signal(move || terminate(pg_dump_pid));
    // `stop` is the workers': raised by pg_dump's failure as well as by a signal.
    let stop = Arc::new(AtomicBool::new(false));
    let pg_dump_run = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let out = child.wait_with_output();
            if !matches!(&out, Ok(o) if o.status.success()) {
                stop.store(true, Ordering::SeqCst);
            }
            out
        })
    };
    let written = data_with_progress(run, snapshot, session_sql, tasks, &stop);
    if written.is_err() && !pg_dump_run.is_finished() {
        terminate(pg_dump_pid);
    }
    let pg_dump_out = pg_dump_run.join().expect("pg_dump waiter");
    drop(stop_pg_dump);
    if run.interrupt.requested() {
        return Err(DumpError::Interrupted);
    }
    let pg_dump_failed = match &pg_dump_out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "{pg_dump_path} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("running {pg_dump_path}: {e}")),
    };
    match (written, pg_dump_failed) {
        (Ok(w), None) => Ok(w),
        // The data stopped because pg_dump failed: pg_dump's error is the one to tell.
        (Err(DumpError::Interrupted), Some(msg)) | (Ok(_), Some(msg)) => {
            Err(DumpError::PgDump(msg))
        }
        (Err(e), _) => Err(e),
    }
}

/// Makes the child get SIGTERM when the thread that started it ends, as it does when we are
/// killed with SIGKILL (which no handler sees): a pg_dump must not go on writing into a staging
/// directory no one will publish.
pub(crate) fn dies_with_us(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure only calls prctl, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// SIGTERM to a child of ours. Its waiter still runs when this is called, so it has not been
/// reaped (short of losing a race with its exit by microseconds).
pub(crate) fn terminate(pid: u32) {
    // SAFETY: a plain signal to a process id; no memory is involved.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
}

/// The data workers, with tables done, rows, bytes and throughput on stderr when it is a
/// terminal.
fn data_with_progress(
    run: &Run,
    snapshot: &str,
    session_sql: &str,
    tasks: &[TableTask],
    stop: &Arc<AtomicBool>,
) -> Result<Vec<TableData>, DumpError> {
    let encoding = match (run.o.format, run.compression) {
        (Format::Directory, c) => Encoding::Members(c),
        (_, Compression::Gzip(l)) => Encoding::Zlib(l),
        (_, Compression::Zstd(l)) => Encoding::ZstdFrame(l),
        (_, c) => Encoding::Members(c),
    };
    let counters = Counters::default();
    let expected = tasks
        .iter()
        .map(|t| t.relation.pages.max(0) as u64 * 8192)
        .sum();
    let progress = pipeline::progress::Progress::with_display(tasks.len(), false, run.o.progress)
        .named("cbdump")
        .expecting(expected);
    let finished = AtomicBool::new(false);
    let written = std::thread::scope(|scope| {
        let ticker = scope.spawn(|| {
            let mut shown = 0;
            // One more round after the workers finished, so the last tables are counted.
            let mut last_round = false;
            while !last_round {
                last_round = finished.load(Ordering::Relaxed);
                if run.interrupt.requested() {
                    stop.store(true, Ordering::SeqCst);
                }
                let done = counters.tables_done.load(Ordering::Relaxed);
                while shown < done {
                    progress.table_done("");
                    shown += 1;
                }
                progress.update(
                    counters.bytes.load(Ordering::Relaxed),
                    counters.rows.load(Ordering::Relaxed),
                );
                if !last_round {
                    // Unparked when the workers finish: a plain sleep here added up to 200 ms
                    // to every dump.
                    std::thread::park_timeout(std::time::Duration::from_millis(200));
                }
            }
        });
        let r = data::export(
            &data::Workers {
                conn: &run.o.conn,
                snapshot_id: snapshot,
                session_sql,
                jobs: run.o.jobs.max(1),
                interrupt: run.interrupt,
                progress: &progress,
                verbose: run.o.verbose,
            },
            tasks,
            &run.data_dir(),
            encoding,
            stop,
            &counters,
        );
        finished.store(true, Ordering::Relaxed);
        ticker.thread().unpark();
        r
    });
    progress.finish();
    written
}

/// What goes into the archive once the schema and data are there.
pub(crate) struct Assembled {
    pub toc: Vec<TocEntry>,
    pub schema: DirectoryArchive,
    pub written: Vec<TableData>,
    pub new_entries: Vec<TocEntry>,
    pub report: DumpReport,
}

/// STEP 6: our entries numbered into pg_dump's TOC, `--distribute` applied, the report made.
fn assemble(
    run: &Run,
    leader: &mut SnapshotLeader,
    dumped: Dumped,
) -> Result<Assembled, DumpError> {
    let Dumped {
        schema,
        tasks,
        written,
        owners,
        fks,
    } = dumped;
    let mut numbered = number_data_entries(run, &schema, tasks, written, &owners)?;
    if run.o.data_only {
        add_foreign_key_deps(&mut numbered, &fks);
    }
    let (entries, changed) = distribute(run.o, schema.entries.clone(), leader)?;
    let toc = place_data_entries(&entries, &numbered.entries, run.o.data_only);
    let report = report(run, leader.id(), &numbered, changed);
    Ok(Assembled {
        toc,
        schema,
        written: numbered.written,
        new_entries: numbered.entries,
        report,
    })
}

/// Our TABLE DATA entries, numbered after pg_dump's, each data file renamed to its id.
struct Numbered {
    tasks: Vec<TableTask>,
    written: Vec<TableData>,
    entries: Vec<TocEntry>,
    data_id_of: HashMap<u32, i32>,
}

fn number_data_entries(
    run: &Run,
    schema: &DirectoryArchive,
    tasks: Vec<TableTask>,
    written: Vec<TableData>,
    owners: &HashMap<u32, String>,
) -> Result<Numbered, DumpError> {
    let mut next_id = schema.entries.iter().map(|e| e.dump_id).max().unwrap_or(0) + 1;
    let mut by_index: HashMap<usize, TableData> =
        written.into_iter().map(|d| (d.index, d)).collect();
    let mut out = Numbered {
        tasks: Vec::new(),
        written: Vec::new(),
        entries: Vec::new(),
        data_id_of: HashMap::new(),
    };
    for (i, task) in tasks.into_iter().enumerate() {
        let Some(mut d) = by_index.remove(&i) else {
            continue;
        };
        let rel = &task.relation;
        let table = schema
            .entries
            .iter()
            .find(|e| e.desc() == "TABLE" && e.namespace() == rel.schema && e.tag() == rel.name);
        if table.is_none() && !run.o.data_only {
            // pg_dump's own filters left it out.
            let _ = std::fs::remove_file(&d.path);
            continue;
        }
        let id = next_id;
        next_id += 1;
        out.data_id_of.insert(rel.oid, id);
        let file_name = format!("{id}.dat{}", run.compression.extension());
        let dest = match run.o.format {
            Format::Directory => run.schema_dir().join(&file_name),
            _ => run.data_dir().join(&file_name),
        };
        std::fs::rename(&d.path, &dest).map_err(|e| DumpError::io(&dest, e))?;
        d.path = dest;
        d.index = out.tasks.len();
        let minor = schema.header.minor;
        out.entries
            .push(data_entry(id, &task, table, owners.get(&rel.oid), minor));
        out.written.push(d);
        out.tasks.push(TableTask { file_name, ..task });
    }
    Ok(out)
}

/// One TABLE DATA entry as pg_dump writes it, depending on its TABLE entry (or, for
/// `--data-only`, described from the catalog).
fn data_entry(
    id: i32,
    task: &TableTask,
    table: Option<&TocEntry>,
    owner: Option<&String>,
    minor: u8,
) -> TocEntry {
    let rel = &task.relation;
    let (tag, namespace, owner, relkind, deps) = match table {
        Some(t) => (
            t.tag.clone(),
            t.namespace.clone(),
            t.owner.clone(),
            t.relkind,
            vec![t.dump_id.to_string().into_bytes()],
        ),
        None => (
            Some(rel.name.clone().into_bytes()),
            Some(rel.schema.clone().into_bytes()),
            owner.map(|o| o.clone().into_bytes()),
            if minor >= 16 { b'r' as i64 } else { 0 },
            Vec::new(),
        ),
    };
    TocEntry {
        dump_id: id,
        had_dumper: 1,
        table_oid: Some(b"0".to_vec()),
        oid: Some(rel.oid.to_string().into_bytes()),
        tag,
        desc: Some(b"TABLE DATA".to_vec()),
        section: SECTION_DATA as i64,
        defn: Some(Vec::new()),
        drop_stmt: Some(Vec::new()),
        copy_stmt: Some(task.target.copy_from_stdin().into_bytes()),
        namespace,
        tablespace: None,
        tableam: None,
        relkind,
        owner,
        with_oids: Some(b"false".to_vec()),
        deps,
        extra: Extra::File(Some(format!("{id}.dat").into_bytes())),
    }
}

/// `--data-only`: a table's data depends on the data of the tables it references.
fn add_foreign_key_deps(numbered: &mut Numbered, fks: &[(u32, u32)]) {
    for (entry, task) in numbered.entries.iter_mut().zip(&numbered.tasks) {
        for (from, to) in fks {
            if *from == task.relation.oid {
                if let Some(id) = numbered.data_id_of.get(to) {
                    entry.deps.push(id.to_string().into_bytes());
                }
            }
        }
    }
}

/// `--distribute`: the schema's statements rewritten for Cloudberry while dumping; returns the
/// entries and how many statements changed.
fn distribute(
    o: &DumpOptions,
    entries: Vec<TocEntry>,
    leader: &mut SnapshotLeader,
) -> Result<(Vec<TocEntry>, u64), DumpError> {
    let Some(d) = &o.distribute else {
        return Ok((entries, 0));
    };
    let usage = |e: &dyn std::fmt::Display| DumpError::Usage(e.to_string());
    let catalog = distfix::archive::collect(&entries).map_err(|e| usage(&e))?;
    let file = match &d.policy {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| DumpError::io(p, e))?;
            distfix::policy::PolicyFile::parse(&text)
                .map_err(|e| DumpError::Usage(format!("{}: {e}", p.display())))?
        }
        None => distfix::policy::PolicyFile::default(),
    };
    let stats = if d.stats {
        distfix::stats::fetch(leader.client()).map_err(|e| usage(&e))?
    } else {
        HashMap::new()
    };
    let options = distfix::policy::Options {
        default: d.default,
        on_conflict: d.on_conflict,
        force: false,
    };
    let plan = distfix::policy::decide(&catalog, &file, &options, &stats).map_err(|e| usage(&e))?;
    distfix::archive::apply(&entries, &plan).map_err(|e| usage(&e))
}

fn report(run: &Run, snapshot: &str, numbered: &Numbered, changed: u64) -> DumpReport {
    let tables: Vec<TableReport> = numbered
        .written
        .iter()
        .map(|d| TableReport {
            table: numbered.tasks[d.index].relation.display(),
            dump_id: numbered.entries[d.index].dump_id,
            rows: d.rows,
            raw_bytes: d.raw_bytes,
            bytes: d.file_bytes,
            sha256: hex::encode(d.sha256),
            chunks: numbered.tasks[d.index].chunks.len(),
            seconds: d.seconds,
        })
        .collect();
    DumpReport {
        tool: "cbdump",
        version: env!("CARGO_PKG_VERSION"),
        output: run.o.output.display().to_string(),
        format: match run.o.format {
            Format::Plain => "plain",
            Format::Custom => "custom",
            Format::Directory => "directory",
        },
        server: run.server.describe(),
        pg_dump: run.pg_dump.version.clone(),
        snapshot: snapshot.to_string(),
        compression: run.compression.name(),
        elapsed_seconds: 0.0,
        total_rows: tables.iter().map(|t| t.rows).sum(),
        total_raw_bytes: tables.iter().map(|t| t.raw_bytes).sum(),
        tables,
        distribution_statements_changed: changed,
    }
}

/// The header of the archive we write: pg_dump's, with our compression.
pub(crate) fn archive_header(
    schema: &DirectoryArchive,
    compression: Compression,
) -> Result<archive::Header, DumpError> {
    let mut header = schema.header.clone();
    header.compression = HeaderCompression::for_version(header.minor, compression)
        .map_err(|e| DumpError::Usage(e.to_string()))?;
    Ok(header)
}

/// Our TABLE DATA entries where pg_dump puts TABLE DATA: in the data section, before sequence
/// values and large objects, merged by (schema, name) with any pg_dump wrote itself (extension
/// configuration tables) — or, for `--data-only`, first and in the foreign-key order given.
fn place_data_entries(entries: &[TocEntry], ours: &[TocEntry], fk_order: bool) -> Vec<TocEntry> {
    let is_data = |e: &TocEntry| e.section == SECTION_DATA as i64;
    let data_start = entries
        .iter()
        .position(|e| is_data(e) || e.section == SECTION_POST_DATA as i64)
        .unwrap_or(entries.len());
    let mut toc: Vec<TocEntry> = entries[..data_start].to_vec();
    let mut ours = ours.iter().peekable();
    let key = |e: &TocEntry| -> (Vec<u8>, Vec<u8>) {
        (
            e.namespace.clone().unwrap_or_default(),
            e.tag.clone().unwrap_or_default(),
        )
    };
    for e in &entries[data_start..] {
        while let Some(next) = ours.peek() {
            let before = !is_data(e) || fk_order || e.desc() != "TABLE DATA" || key(next) < key(e);
            if !before {
                break;
            }
            toc.push((*next).clone());
            ours.next();
        }
        toc.push(e.clone());
    }
    toc.extend(ours.cloned());
    toc
}

/// A name as a psql pattern that matches only itself: double-quoted, quotes doubled.
fn pattern_literal(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i32, desc: &str, section: i32, ns: &str, tag: &str) -> TocEntry {
        TocEntry {
            dump_id: id,
            had_dumper: 0,
            table_oid: None,
            oid: None,
            tag: Some(tag.as_bytes().to_vec()),
            desc: Some(desc.as_bytes().to_vec()),
            section: section as i64,
            defn: None,
            drop_stmt: None,
            copy_stmt: None,
            namespace: Some(ns.as_bytes().to_vec()),
            tablespace: None,
            tableam: None,
            relkind: 0,
            owner: None,
            with_oids: None,
            deps: Vec::new(),
            extra: Extra::File(None),
        }
    }

    #[test]
    fn data_entries_go_where_pg_dump_puts_them() {
        use archive::toc::SECTION_PRE_DATA;
        let pre = SECTION_PRE_DATA;
        let data = SECTION_DATA;
        let post = SECTION_POST_DATA;
        let theirs = vec![
            entry(1, "TABLE", pre, "public", "a"),
            entry(2, "TABLE", pre, "public", "m"),
            entry(3, "TABLE DATA", data, "public", "m"),
            entry(4, "SEQUENCE SET", data, "public", "s"),
            entry(5, "BLOBS", data, "", "BLOBS"),
            entry(6, "CONSTRAINT", post, "public", "a_pkey"),
        ];
        let ours = vec![
            entry(10, "TABLE DATA", data, "public", "a"),
            entry(11, "TABLE DATA", data, "public", "z"),
        ];
        let ids = |v: Vec<TocEntry>| v.iter().map(|e| e.dump_id).collect::<Vec<_>>();
        assert_eq!(
            ids(place_data_entries(&theirs, &ours, false)),
            vec![1, 2, 10, 3, 11, 4, 5, 6]
        );
        assert_eq!(
            ids(place_data_entries(&theirs, &ours, true)),
            vec![1, 2, 10, 11, 3, 4, 5, 6]
        );
        // Nothing of pg_dump's in the data section.
        let bare = vec![theirs[0].clone(), theirs[5].clone()];
        assert_eq!(
            ids(place_data_entries(&bare, &ours, false)),
            vec![1, 10, 11, 6]
        );
        assert_eq!(
            ids(place_data_entries(&bare[..1], &ours, false)),
            vec![1, 10, 11]
        );
    }
}
