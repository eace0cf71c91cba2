//! Restoring pg_dump (and cbdump) custom and directory archives through the coordinator.
//!
//! The order that loads fastest: session settings; pre-data statements in TOC order; table data
//! with `-j` worker connections (one transaction per table, counted); post-data statements
//! (indexes, constraints, triggers) on `-j` connections as soon as the entries they depend on
//! are done; privileges; materialized view refreshes; `ANALYZE` with `--analyze`. Ownership is
//! set the way pg_restore sets it (`ALTER ... OWNER TO` after each object) unless `--no-owner`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use archive::toc::{SECTION_DATA, SECTION_POST_DATA, SECTION_PRE_DATA};
use archive::{Archive, TocEntry};
use serde::Serialize;

use cluster::{quote, ConnParams};

use crate::binary::{BinaryRows, ColumnType, Input};
use crate::load::{load_fresh_table, load_table, LoadError};
use crate::split::{load_split, Board, SplitCopy};
use crate::state::State;
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
    pub no_acl: bool,
    pub single_transaction: bool,
    pub schema_only: bool,
    pub data_only: bool,
    /// `-t`: table names (exact, as pg_restore).
    pub tables: Vec<String>,
    /// `-n`: schema names.
    pub schemas: Vec<String>,
    pub exclude_tables: Vec<String>,
    pub exclude_schemas: Vec<String>,
    pub on_error_continue: bool,
    pub resume: bool,
    pub state_file: Option<PathBuf>,
    pub analyze: bool,
    /// With -j: tables stored larger than this are loaded by several workers at once.
    pub split_larger_than: Option<u64>,
    pub distribution: Distribution,
    /// `-f FILE`: write the SQL instead of running it.
    pub script: Option<PathBuf>,
    pub verbose: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct DumpRestoreReport {
    pub tool: &'static str,
    pub input: String,
    pub format: &'static str,
    pub archive_version: String,
    pub target: String,
    pub elapsed_seconds: f64,
    pub statements: usize,
    pub tables: Vec<TableLoaded>,
    pub total_rows: u64,
    pub large_objects: usize,
    pub errors: Vec<String>,
    pub distribution_statements_changed: u64,
}

#[derive(Debug, Serialize, Clone)]
pub struct TableLoaded {
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
}

/// `desc` values of entries restored after the main pass, as pg_restore does.
fn is_acl(desc: &str) -> bool {
    matches!(desc, "ACL" | "DEFAULT ACL" | "ACL LANGUAGE")
}

fn is_session(desc: &str) -> bool {
    matches!(desc, "ENCODING" | "STDSTRINGS" | "SEARCHPATH")
}

/// Entry selection with pg_restore's `-t/-n/-T/-N` and section rules.
fn wanted(e: &TocEntry, o: &DumpRestoreOptions) -> bool {
    let desc = e.desc();
    if is_session(&desc) || desc == "DATABASE" || desc == "DATABASE PROPERTIES" {
        return false;
    }
    if o.no_acl && is_acl(&desc) {
        return false;
    }
    let data =
        desc == "TABLE DATA" || desc == "SEQUENCE SET" || desc == "BLOBS" || desc == "BLOB DATA";
    if o.schema_only && data {
        return false;
    }
    if o.data_only && !data {
        return false;
    }
    let ns = e.namespace();
    if !o.schemas.is_empty() && !o.schemas.iter().any(|s| *s == ns) {
        return false;
    }
    if o.exclude_schemas.iter().any(|s| *s == ns) {
        return false;
    }
    let tableish = matches!(
        desc.as_ref(),
        "TABLE"
            | "TABLE DATA"
            | "VIEW"
            | "MATERIALIZED VIEW"
            | "MATERIALIZED VIEW DATA"
            | "SEQUENCE"
            | "SEQUENCE SET"
            | "FOREIGN TABLE"
    );
    let tag = e.tag();
    let named = tableish && o.tables.iter().any(|t| *t == tag);
    if !o.tables.is_empty() && !named {
        return false;
    }
    if tableish && o.exclude_tables.iter().any(|t| *t == tag) {
        return false;
    }
    true
}

/// `ALTER <object> OWNER TO <role>` for an entry, as pg_restore writes it.
fn owner_statement(e: &TocEntry) -> Option<String> {
    let owner = e
        .owner
        .as_ref()
        .map(|o| String::from_utf8_lossy(o).into_owned())?;
    if owner.is_empty() {
        return None;
    }
    let desc = e.desc();
    let tag = e.tag();
    let ns = e.namespace();
    let object = match desc.as_ref() {
        "TABLE"
        | "SEQUENCE"
        | "VIEW"
        | "MATERIALIZED VIEW"
        | "FOREIGN TABLE"
        | "TYPE"
        | "DOMAIN"
        | "COLLATION"
        | "CONVERSION"
        | "TEXT SEARCH DICTIONARY"
        | "TEXT SEARCH CONFIGURATION"
        | "STATISTICS" => {
            format!("{desc} {}", quote::qualified(&ns, &tag))
        }
        "SCHEMA"
        | "EVENT TRIGGER"
        | "PUBLICATION"
        | "SUBSCRIPTION"
        | "SERVER"
        | "FOREIGN DATA WRAPPER" => format!("{desc} {}", quote::ident(&tag)),
        // The tag holds the signature, already in SQL form: "f(integer)".
        "FUNCTION" | "AGGREGATE" | "PROCEDURE" => format!("{desc} {}.{tag}", quote::ident(&ns)),
        "BLOB" => format!("LARGE OBJECT {tag}"),
        _ => return None,
    };
    Some(format!("ALTER {object} OWNER TO {};", quote::ident(&owner)))
}

/// `dropStmt` with `IF EXISTS` after the object kind, as `pg_restore --if-exists` does.
fn with_if_exists(drop: &str) -> String {
    if drop.contains(" IF EXISTS ") {
        return drop.to_string();
    }
    let upper = drop.to_ascii_uppercase();
    for kind in [
        "MATERIALIZED VIEW ",
        "FOREIGN TABLE ",
        "TEXT SEARCH CONFIGURATION ",
        "TEXT SEARCH DICTIONARY ",
        "EVENT TRIGGER ",
        "TABLE ",
        "SEQUENCE ",
        "VIEW ",
        "INDEX ",
        "FUNCTION ",
        "PROCEDURE ",
        "AGGREGATE ",
        "TYPE ",
        "DOMAIN ",
        "SCHEMA ",
        "TRIGGER ",
        "RULE ",
        "POLICY ",
        "EXTENSION ",
        "COLLATION ",
        "CONVERSION ",
        "STATISTICS ",
        "PUBLICATION ",
        "SUBSCRIPTION ",
        "SERVER ",
        "OPERATOR ",
    ] {
        let pat = format!("DROP {kind}");
        if let Some(i) = upper.find(&pat) {
            let at = i + pat.len();
            return format!("{}IF EXISTS {}", &drop[..at], &drop[at..]);
        }
    }
    // ALTER TABLE ... DROP CONSTRAINT x;
    if let Some(i) = upper.find("DROP CONSTRAINT ") {
        let at = i + "DROP CONSTRAINT ".len();
        let prefix = drop[..at].replacen("ALTER TABLE ONLY ", "ALTER TABLE IF EXISTS ONLY ", 1);
        return format!("{prefix}IF EXISTS {}", &drop[at..]);
    }
    drop.to_string()
}

/// Where statements go: a live connection, or the `-f` script.
enum Runner {
    Live(Box<postgres::Client>),
    Script(std::io::BufWriter<std::fs::File>, PathBuf),
}

impl Runner {
    fn run(&mut self, sql: &str) -> Result<(), String> {
        match self {
            Runner::Live(c) => c
                .batch_execute(sql)
                .map_err(|e| cluster::error::server_message(&e)),
            Runner::Script(w, path) => w
                .write_all(sql.as_bytes())
                .and_then(|_| w.write_all(b"\n"))
                .map_err(|e| format!("{}: {e}", path.display())),
        }
    }
}

struct Ctx<'a> {
    o: &'a DumpRestoreOptions,
    manifest: &'a crate::verify::Manifest,
    progress: Arc<pipeline::progress::Progress>,
    archive: &'a Archive,
    state: Arc<State>,
    errors: Arc<Mutex<Vec<String>>>,
    statements: usize,
    abort: Arc<AtomicBool>,
    session: String,
    /// TABLE entries whose CREATE ran in this restore (or in the run being resumed): only
    /// their data may be loaded after emptying the table, as pg_restore's `te->created`.
    created: Arc<Mutex<HashSet<i32>>>,
}

fn entry_label(e: &TocEntry) -> String {
    let ns = e.namespace();
    if ns.is_empty() {
        format!("TOC entry {} ({} {})", e.dump_id, e.desc(), e.tag())
    } else {
        format!("TOC entry {} ({} {}.{})", e.dump_id, e.desc(), ns, e.tag())
    }
}

impl Ctx<'_> {
    fn fail(&self, what: String) -> Result<(), RestoreError> {
        if self.o.on_error_continue {
            eprintln!("cbrestore: error (continuing): {what}");
            self.errors.lock().expect("errors lock").push(what);
            Ok(())
        } else {
            Err(RestoreError::State(what))
        }
    }

    /// Runs one entry's statements (and its ownership) unless resuming past it.
    fn run_entry(&mut self, runner: &mut Runner, e: &TocEntry) -> Result<(), RestoreError> {
        if self.abort.load(Ordering::SeqCst) {
            return Err(RestoreError::Interrupted);
        }
        let key = format!("entry:{}", e.dump_id);
        let is_table = e.desc() == "TABLE";
        if self.state.statement_done(&key) {
            if is_table {
                self.created.lock().expect("created lock").insert(e.dump_id);
            }
            return Ok(());
        }
        let mut sql = String::new();
        if let Some(am) = e.tableam.as_ref().filter(|a| !a.is_empty()) {
            sql.push_str(&format!(
                "SET default_table_access_method = {};\n",
                quote::ident(&String::from_utf8_lossy(am))
            ));
        }
        if let Some(ts) = &e.tablespace {
            sql.push_str(&format!(
                "SET default_tablespace = {};\n",
                if ts.is_empty() {
                    "''".to_string()
                } else {
                    quote::ident(&String::from_utf8_lossy(ts))
                }
            ));
        }
        let defn = e.defn();
        if defn.trim().is_empty() {
            return Ok(());
        }
        sql.push_str(&defn);
        if !self.o.no_owner {
            if let Some(own) = owner_statement(e) {
                sql.push('\n');
                sql.push_str(&own);
            }
        }
        if self.o.verbose {
            eprintln!("cbrestore: {}", entry_label(e));
        }
        match runner.run(&sql) {
            Ok(()) => {
                self.statements += 1;
                if is_table {
                    self.created.lock().expect("created lock").insert(e.dump_id);
                }
            }
            Err(msg) => {
                let already = msg.contains("already exists");
                if self.state.resuming && already && is_table {
                    // Created by the run being resumed, just before its record was written.
                    self.created.lock().expect("created lock").insert(e.dump_id);
                }
                if !(self.state.resuming && already) {
                    self.fail(format!(
                        "{}: {msg}\nstatement: {}",
                        entry_label(e),
                        defn.trim()
                    ))?;
                }
            }
        }
        self.state
            .mark_statement(&key)
            .map_err(|e| RestoreError::State(e.to_string()))
    }
}

/// Runs the restore of one archive.
pub fn run(
    o: &DumpRestoreOptions,
    abort: Arc<AtomicBool>,
) -> Result<DumpRestoreReport, RestoreError> {
    let started = Instant::now();
    let archive = Archive::open(&o.input)
        .map_err(|e| RestoreError::State(e.to_string()))?
        .ok_or_else(|| {
            RestoreError::State(format!(
                "{}: not a pg_dump custom or directory archive",
                o.input.display()
            ))
        })?;
    let (entries, changed) = transform(archive.entries(), &o.distribution)?;
    let manifest = crate::verify::Manifest::load(&archive).map_err(RestoreError::State)?;
    let format = match &archive {
        Archive::Custom(_) => "custom",
        Archive::Directory(_) => "directory",
    };
    let header = archive.header();

    let fingerprint = format!(
        "{} {} entries {} -> {}",
        o.input.display(),
        entries.len(),
        input_stamp(&o.input),
        o.conn.target()
    );
    let state_path = o.state_file.clone().unwrap_or_else(|| {
        let name = o
            .input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dump".into());
        PathBuf::from(format!(".cbrestore-{name}-{}.state.json", o.conn.dbname()))
    });
    let scripting = o.script.is_some();
    let state = Arc::new(if scripting {
        State::open(
            &std::env::temp_dir().join(format!("cbrestore-script-{}.json", std::process::id())),
            &fingerprint,
            false,
        )?
    } else {
        State::open(&state_path, &fingerprint, o.resume)?
    });

    // Session settings every connection runs first (pg_restore's fixed state).
    let mut session = String::from(
        "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET idle_in_transaction_session_timeout = 0;\n",
    );
    for e in entries.iter().filter(|e| is_session(&e.desc())) {
        session.push_str(&e.defn());
        session.push('\n');
    }
    session.push_str("SET check_function_bodies = false;\nSET xmloption = content;\nSET client_min_messages = warning;\nSET row_security = off;\n");

    let mut conn = o.conn.clone();
    let mut runner = match &o.script {
        Some(path) => {
            let f = std::fs::File::create(path)
                .map_err(|e| RestoreError::State(format!("{}: {e}", path.display())))?;
            Runner::Script(std::io::BufWriter::new(f), path.clone())
        }
        None => {
            if o.create {
                let db_entry =
                    entries
                        .iter()
                        .find(|e| e.desc() == "DATABASE")
                        .ok_or_else(|| {
                            RestoreError::State(
                            "--create: the archive has no DATABASE entry (dump it with pg_dump -C)"
                                .into(),
                        )
                        })?;
                let mut admin = cluster::connect(&o.conn)?;
                admin.batch_execute(&db_entry.defn()).map_err(|e| {
                    RestoreError::State(format!(
                        "{}: {}",
                        entry_label(db_entry),
                        cluster::error::server_message(&e)
                    ))
                })?;
                conn = o.conn.with_dbname(&db_entry.tag());
            }
            Runner::Live(Box::new(cluster::connect(&conn)?))
        }
    };
    // COPY FREEZE is PostgreSQL's; into Cloudberry the plain COPY runs (its append-optimized
    // and distributed tables follow rules of their own there).
    let (target, freeze) = match &mut runner {
        Runner::Live(c) => {
            let server = cluster::flavor::detect(c, &cluster::mpp::MppCatalog::from_env())?;
            (server.describe(), !server.flavor.is_mpp())
        }
        Runner::Script(_, p) => (format!("script {}", p.display()), false),
    };
    runner.run(&session).map_err(RestoreError::State)?;
    let table_count = entries
        .iter()
        .filter(|e| e.desc() == "TABLE DATA" && wanted(e, o))
        .count();
    let mut ctx = Ctx {
        o,
        manifest: &manifest,
        progress: Arc::new(pipeline::progress::Progress::new(table_count, false)),
        archive: &archive,
        state: Arc::clone(&state),
        errors: Arc::new(Mutex::new(Vec::new())),
        statements: 0,
        abort: Arc::clone(&abort),
        session: session.clone(),
        created: Arc::new(Mutex::new(HashSet::new())),
    };
    if o.single_transaction {
        runner.run("BEGIN;").map_err(RestoreError::State)?;
    }
    // Entries without a section (comments, security labels ...) belong to the phase of the
    // entry before them in TOC order, which is where a serial pg_restore runs them.
    let mut phase = HashMap::new();
    let mut current = SECTION_PRE_DATA as i64;
    for e in entries.iter() {
        if e.section > 1 {
            current = e.section;
        }
        phase.insert(e.dump_id, current);
    }
    let in_phase = |e: &TocEntry, section: i32| phase.get(&e.dump_id) == Some(&(section as i64));
    let selected: Vec<&TocEntry> = entries.iter().filter(|e| wanted(e, o)).collect();

    if o.clean {
        for e in selected.iter().rev() {
            if let Some(drop) = e
                .drop_stmt
                .as_ref()
                .map(|d| String::from_utf8_lossy(d).into_owned())
            {
                if drop.trim().is_empty() {
                    continue;
                }
                let sql = if o.if_exists {
                    with_if_exists(&drop)
                } else {
                    drop
                };
                if let Err(msg) = runner.run(&sql) {
                    ctx.fail(format!("{} (clean): {msg}", entry_label(e)))?;
                }
            }
        }
    }

    // Pre-data.
    for e in selected
        .iter()
        .filter(|e| in_phase(e, SECTION_PRE_DATA) && !is_acl(&e.desc()))
    {
        ctx.run_entry(&mut runner, e)?;
    }

    // Data: tables on workers, sequence values and large objects here.
    let data: Vec<&TocEntry> = selected
        .iter()
        .copied()
        .filter(|e| in_phase(e, SECTION_DATA))
        .collect();
    let mut loaded = Vec::new();
    let mut large_objects = 0;
    for e in data.iter().filter(|e| e.desc() == "SEQUENCE SET") {
        ctx.run_entry(&mut runner, e)?;
    }
    let tables: Vec<&TocEntry> = data
        .iter()
        .copied()
        .filter(|e| e.desc() == "TABLE DATA")
        .collect();
    match &mut runner {
        Runner::Script(w, path) => {
            for e in &tables {
                script_table(w, path, &archive, e)?;
            }
        }
        Runner::Live(client) => {
            let jobs = if o.single_transaction {
                1
            } else {
                o.jobs.max(1)
            };
            // With -j, tables load in the parallel phase below, together with post-data.
            if jobs == 1 {
                for e in &tables {
                    if abort.load(Ordering::SeqCst) {
                        return Err(RestoreError::Interrupted);
                    }
                    match load_entry(
                        client,
                        &archive,
                        e,
                        &state,
                        Loading {
                            in_transaction: o.single_transaction,
                            created: &ctx.created,
                            freeze,
                            board: None,
                            split_larger_than: None,
                            verbose: o.verbose,
                        },
                        &manifest,
                    ) {
                        Ok(Some(t)) => {
                            ctx.progress.table_done(&t.table);
                            loaded.push(t)
                        }
                        Ok(None) => {}
                        Err(msg) => ctx.fail(msg)?,
                    }
                }
            }
            for e in data
                .iter()
                .filter(|e| e.desc() == "BLOBS" || e.desc() == "BLOB DATA")
            {
                large_objects += restore_blobs(client, &archive, e).map_err(RestoreError::State)?;
            }
        }
    }

    // Post-data, then privileges, then materialized view data.
    let post: Vec<&TocEntry> = selected
        .iter()
        .copied()
        .filter(|e| {
            in_phase(e, SECTION_POST_DATA)
                && !is_acl(&e.desc())
                && e.desc() != "MATERIALIZED VIEW DATA"
        })
        .collect();
    let post_jobs = if o.single_transaction || scripting {
        1
    } else {
        o.jobs.max(1)
    };
    if post_jobs == 1 {
        for e in &post {
            ctx.run_entry(&mut runner, e)?;
        }
    } else {
        loaded = run_parallel(&mut ctx, &conn, &tables, &post, post_jobs, freeze)?;
    }
    for e in selected.iter().filter(|e| is_acl(&e.desc())) {
        ctx.run_entry(&mut runner, e)?;
    }
    for e in selected
        .iter()
        .filter(|e| e.desc() == "MATERIALIZED VIEW DATA")
    {
        ctx.run_entry(&mut runner, e)?;
    }
    if o.single_transaction {
        runner.run("COMMIT;").map_err(RestoreError::State)?;
    }
    if o.analyze {
        for t in &loaded {
            runner
                .run(&format!("ANALYZE {};", t.table))
                .map_err(RestoreError::State)?;
        }
    }
    ctx.progress.finish();
    if let Runner::Script(w, path) = &mut runner {
        w.flush()
            .map_err(|e| RestoreError::State(format!("{}: {e}", path.display())))?;
    }
    let errors = ctx.errors.lock().expect("errors lock").clone();
    if errors.is_empty() {
        state.remove();
    }
    Ok(DumpRestoreReport {
        tool: "cbrestore",
        input: o.input.display().to_string(),
        format,
        archive_version: format!("{}.{}", header.major, header.minor),
        target,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        statements: ctx.statements,
        total_rows: loaded.iter().map(|t| t.rows).sum(),
        tables: loaded,
        large_objects,
        errors,
        distribution_statements_changed: changed,
    })
}

/// Size and modification time of the input, so `--resume` refuses an input that changed.
fn input_stamp(p: &Path) -> String {
    let target = if p.is_dir() {
        p.join("toc.dat")
    } else {
        p.to_path_buf()
    };
    match std::fs::metadata(&target) {
        Ok(m) => format!(
            "{} bytes, modified {:?}",
            m.len(),
            m.modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        ),
        Err(_) => "unknown".into(),
    }
}

fn transform(entries: &[TocEntry], d: &Distribution) -> Result<(Vec<TocEntry>, u64), RestoreError> {
    let err = |e: distfix::rewrite::RewriteError| RestoreError::State(e.to_string());
    match d {
        Distribution::Keep => Ok((entries.to_vec(), 0)),
        Distribution::Strip => distfix::archive::strip(entries).map_err(err),
        Distribution::Rewrite(rules) => {
            let catalog = distfix::archive::collect(entries).map_err(err)?;
            let plan = rules
                .plan(&catalog, &HashMap::new(), false)
                .map_err(RestoreError::State)?;
            distfix::archive::apply(entries, &plan).map_err(err)
        }
    }
}

/// `schema.table` of a TABLE DATA entry, quoted.
fn table_name(e: &TocEntry) -> String {
    quote::qualified(&e.namespace(), &e.tag())
}

fn load_entry(
    client: &mut postgres::Client,
    archive: &Archive,
    e: &TocEntry,
    state: &State,
    how: Loading<'_>,
    manifest: &crate::verify::Manifest,
) -> Result<Option<TableLoaded>, String> {
    let table = table_name(e);
    if state.table_done(&table) {
        return Ok(None);
    }
    let copy = e.copy_stmt();
    if copy.trim().is_empty() {
        return Ok(None);
    }
    // cbdump's manifest: the file must be the one that was written, before any row is sent.
    crate::verify::check_file(archive, e, manifest)?;
    let expected = manifest.get(e.dump_id).map(|r| r.rows);
    let mut data = archive
        .table_data(e)
        .map_err(|x| format!("{}: {x}", entry_label(e)))?;
    // A table created by this restore is emptied in the load's own transaction, as pg_restore
    // does in parallel mode: with wal_level=minimal the COPY then writes no WAL, and after a
    // crash (--resume) the reload is exact.
    // Only a table whose CREATE ran here: under --on-error-continue a CREATE may have failed
    // because the table was already there, with rows that are not ours.
    let created_here = {
        let created = how.created.lock().expect("created lock");
        e.dependencies().iter().any(|d| created.contains(d))
    };
    let truncate = (state.resuming || created_here).then_some(table.as_str());
    // A big table of this run's own may be shared with idle workers (see split.rs); a resumed
    // one is reloaded in one stream, emptied in its transaction.
    let split = match (how.board, how.split_larger_than) {
        (Some(board), Some(limit))
            if created_here
                && !state.resuming
                && is_text_copy(copy.trim())
                && archive.stored_size(e).is_some_and(|n| n > limit) =>
        {
            Some((board, limit))
        }
        _ => None,
    };
    let r = if how.in_transaction {
        // --single-transaction: the COPY joins the one transaction.
        copy_plain(client, copy.trim(), &mut data)
    } else if let Some((board, limit)) = split {
        let what = SplitCopy {
            table: &table,
            copy_sql: copy.trim(),
            syntax: RowSyntax::Text,
            limit,
        };
        load_split(client, board, what, &mut data, expected)
    } else if let (Some(t), true) = (truncate, how.freeze) {
        // Binary COPY where every column's type converts (see binary.rs); text otherwise, and
        // text again from the start if some value does not convert.
        match binary_columns(client, copy.trim()).zip(crate::binary::binary_statement(&copy)) {
            Some((types, sql)) => {
                let mut rows = BinaryRows::new(data, types, Input::Text);
                match load_fresh_table(client, &sql, t, &mut rows, expected) {
                    Err(LoadError::Read(x)) if crate::binary::is_unconvertible(&x) => {
                        if how.verbose {
                            eprintln!("cbrestore: {table}: {x}; loading it as text");
                        }
                        let mut again = archive
                            .table_data(e)
                            .map_err(|x| format!("{}: {x}", entry_label(e)))?;
                        load_fresh_table(client, copy.trim(), t, &mut again, expected)
                    }
                    other => other,
                }
            }
            None => load_fresh_table(client, copy.trim(), t, &mut data, expected),
        }
    } else {
        load_table(client, copy.trim(), truncate, &mut data, expected)
    };
    match r {
        Ok(l) => {
            state.mark_table(&table).map_err(|x| x.to_string())?;
            Ok(Some(TableLoaded {
                table,
                rows: l.rows,
                bytes: l.bytes,
            }))
        }
        Err(err) => Err(format!("{} ({table}): {err}", entry_label(e))),
    }
}

/// How the tables of this restore are loaded.
#[derive(Clone, Copy)]
struct Loading<'b> {
    /// `--single-transaction`: COPY inside the one transaction.
    in_transaction: bool,
    /// TABLE entries created by this restore.
    created: &'b Mutex<HashSet<i32>>,
    /// The target takes `COPY ... FREEZE`.
    freeze: bool,
    /// With -j: where split loads are offered to idle workers.
    board: Option<&'b Board>,
    split_larger_than: Option<u64>,
    /// `-v`: say when a table falls back from binary to text COPY.
    verbose: bool,
}

/// The converter's type of every column of pg_dump's plain `COPY name (cols) FROM stdin;`,
/// when all of them have one.
fn binary_columns(client: &mut postgres::Client, copy: &str) -> Option<Vec<ColumnType>> {
    if !is_text_copy(copy) {
        return None;
    }
    crate::binary::copy_columns(client, copy)
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
    client: &mut postgres::Client,
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

/// Table data and post-data on `jobs` connections, scheduled by dependencies as pg_restore -j
/// does: a table's data is ready at once; an index, constraint or trigger is ready when what it
/// depends on is done, where depending on a table means on that table's data. So one table's
/// indexes build while another table still loads.
fn run_parallel(
    ctx: &mut Ctx<'_>,
    conn: &ConnParams,
    tables: &[&TocEntry],
    post: &[&TocEntry],
    jobs: usize,
    freeze: bool,
) -> Result<Vec<TableLoaded>, RestoreError> {
    let mut data_of_table: HashMap<i32, i32> = HashMap::new();
    for d in tables {
        for t in d.dependencies() {
            data_of_table.insert(t, d.dump_id);
        }
    }
    let items: Vec<&TocEntry> = tables.iter().chain(post.iter()).copied().collect();
    let ids: HashSet<i32> = items.iter().map(|e| e.dump_id).collect();
    let deps: HashMap<i32, Vec<i32>> = items
        .iter()
        .map(|e| {
            let d = if e.desc() == "TABLE DATA" {
                Vec::new()
            } else {
                e.dependencies()
                    .into_iter()
                    .map(|x| *data_of_table.get(&x).unwrap_or(&x))
                    .filter(|x| ids.contains(x))
                    .collect()
            };
            (e.dump_id, d)
        })
        .collect();
    let loaded = Mutex::new(Vec::new());
    let board = Board::default();
    let pending = Mutex::new(items.clone());
    let done: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
    let running: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());
    let failure: Mutex<Option<String>> = Mutex::new(None);
    let statements = Mutex::new(0usize);
    let o = ctx.o;
    let state = Arc::clone(&ctx.state);
    let errors = Arc::clone(&ctx.errors);
    let abort = Arc::clone(&ctx.abort);
    let session = ctx.session.clone();
    let created = Arc::clone(&ctx.created);
    let archive = ctx.archive;
    let manifest = ctx.manifest;
    let progress = Arc::clone(&ctx.progress);
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(items.len().max(1)) {
            scope.spawn(|| {
                let mut runner = match cluster::connect(conn) {
                    Ok(mut c) => {
                        if let Err(e) = c.batch_execute(&session) {
                            failure
                                .lock()
                                .expect("lock")
                                .get_or_insert(cluster::error::server_message(&e));
                            return;
                        }
                        Runner::Live(Box::new(c))
                    }
                    Err(e) => {
                        failure.lock().expect("lock").get_or_insert(e.to_string());
                        return;
                    }
                };
                let mut worker = Ctx {
                    o,
                    manifest,
                    progress: Arc::clone(&progress),
                    archive,
                    state: Arc::clone(&state),
                    errors: Arc::clone(&errors),
                    statements: 0,
                    abort: Arc::clone(&abort),
                    session: session.clone(),
                    created: Arc::clone(&created),
                };
                loop {
                    if abort.load(Ordering::SeqCst) || failure.lock().expect("lock").is_some() {
                        break;
                    }
                    let next = {
                        let mut p = pending.lock().expect("lock");
                        if p.is_empty() {
                            break;
                        }
                        let d = done.lock().expect("lock");
                        let ready = p
                            .iter()
                            .position(|e| deps[&e.dump_id].iter().all(|dep| d.contains(dep)));
                        ready.map(|i| p.remove(i))
                    };
                    let e = match next {
                        Some(e) => e,
                        // Nothing running can end the wait (a cycle, or a dependency that
                        // failed under --on-error-continue): take the next entry as it is.
                        None if running.lock().expect("lock").is_empty() => {
                            let mut p = pending.lock().expect("lock");
                            if p.is_empty() {
                                break;
                            }
                            p.remove(0)
                        }
                        None => {
                            // Idle: lend this connection to a big table still loading.
                            if let (Some(load), Runner::Live(client)) =
                                (board.joinable(), &mut runner)
                            {
                                if o.verbose {
                                    eprintln!(
                                        "cbrestore: joining the load of {} with another COPY stream",
                                        load.table()
                                    );
                                }
                                load.help(client);
                                continue;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            continue;
                        }
                    };
                    running.lock().expect("lock").insert(e.dump_id);
                    let r = if e.desc() == "TABLE DATA" {
                        let Runner::Live(client) = &mut runner else {
                            unreachable!("parallel phases run live")
                        };
                        match load_entry(
                            client,
                            archive,
                            e,
                            &state,
                            Loading {
                                in_transaction: false,
                                created: &created,
                                freeze,
                                board: Some(&board),
                                split_larger_than: o.split_larger_than,
                                verbose: o.verbose,
                            },
                            manifest,
                        ) {
                            Ok(Some(t)) => {
                                worker.progress.table_done(&t.table);
                                loaded.lock().expect("lock").push(t);
                                Ok(())
                            }
                            Ok(None) => Ok(()),
                            Err(msg) => worker.fail(msg),
                        }
                    } else {
                        worker.run_entry(&mut runner, e)
                    };
                    running.lock().expect("lock").remove(&e.dump_id);
                    match r {
                        Ok(()) => {
                            done.lock().expect("lock").insert(e.dump_id);
                        }
                        Err(err) => {
                            failure.lock().expect("lock").get_or_insert(err.to_string());
                            break;
                        }
                    }
                }
                *statements.lock().expect("lock") += worker.statements;
            });
        }
    });
    ctx.statements += statements.into_inner().expect("lock");
    if let Some(f) = failure.into_inner().expect("lock") {
        return Err(RestoreError::State(f));
    }
    if ctx.abort.load(Ordering::SeqCst) {
        return Err(RestoreError::Interrupted);
    }
    let mut v = loaded.into_inner().expect("lock");
    v.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(v)
}

/// `-f`: the COPY block of one table in the script.
fn script_table(
    w: &mut std::io::BufWriter<std::fs::File>,
    path: &Path,
    archive: &Archive,
    e: &TocEntry,
) -> Result<(), RestoreError> {
    let io = |x: std::io::Error| RestoreError::State(format!("{}: {x}", path.display()));
    let copy = e.copy_stmt();
    if copy.trim().is_empty() {
        return Ok(());
    }
    w.write_all(copy.as_bytes()).map_err(io)?;
    let mut data = archive
        .table_data(e)
        .map_err(|x| RestoreError::State(format!("{}: {x}", entry_label(e))))?;
    std::io::copy(&mut data, w).map_err(io)?;
    w.write_all(b"\n").map_err(io)
}

/// Large objects: `lo_create` came with their BLOB entries in pre-data; here their contents
/// are written with `lo_open`/`lowrite`, one transaction for the lot, as pg_restore does.
fn restore_blobs(
    client: &mut postgres::Client,
    archive: &Archive,
    e: &TocEntry,
) -> Result<usize, String> {
    let blobs =
        archive::blobs::read_all(archive, e).map_err(|x| format!("{}: {x}", entry_label(e)))?;
    let mut tx = client
        .transaction()
        .map_err(|x| cluster::error::server_message(&x))?;
    let mut n = 0;
    for blob in blobs {
        let (oid, mut reader) = blob.map_err(|x| format!("{}: {x}", entry_label(e)))?;
        let fd: i32 = tx
            .query_one("SELECT pg_catalog.lo_open($1, 131072)", &[&oid])
            .map_err(|x| format!("large object {oid}: {}", cluster::error::server_message(&x)))?
            .get(0);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let k = reader
                .read(&mut buf)
                .map_err(|x| format!("large object {oid}: {x}"))?;
            if k == 0 {
                break;
            }
            tx.execute("SELECT pg_catalog.lowrite($1, $2)", &[&fd, &&buf[..k]])
                .map_err(|x| {
                    format!("large object {oid}: {}", cluster::error::server_message(&x))
                })?;
        }
        tx.execute("SELECT pg_catalog.lo_close($1)", &[&fd])
            .map_err(|x| format!("large object {oid}: {}", cluster::error::server_message(&x)))?;
        n += 1;
    }
    tx.commit()
        .map_err(|x| cluster::error::server_message(&x))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_exists_is_inserted_like_pg_restore() {
        assert_eq!(
            with_if_exists("DROP TABLE public.t;\n"),
            "DROP TABLE IF EXISTS public.t;\n"
        );
        assert_eq!(
            with_if_exists("ALTER TABLE ONLY public.t DROP CONSTRAINT t_pkey;\n"),
            "ALTER TABLE IF EXISTS ONLY public.t DROP CONSTRAINT IF EXISTS t_pkey;\n"
        );
        assert_eq!(
            with_if_exists("DROP MATERIALIZED VIEW s.mv;\n"),
            "DROP MATERIALIZED VIEW IF EXISTS s.mv;\n"
        );
    }
}
