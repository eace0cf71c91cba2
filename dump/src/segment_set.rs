//! `cbdump --on-segment DIR`: the parallel mode of an MPP server, written as a gpbackup backup
//! set in which every segment writes its own data files on its own host.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use archive::Compression;
use cluster::catalog::{self, RelKind, Relation, Selection};
use cluster::mpp::{Distribution, MppCatalog};
use cluster::segment_io::{self, SegmentEnd};
use cluster::snapshot::SnapshotLeader;
use gpbackup::writer::{
    write_backup_set, SegmentFiles, SequenceValue, SetFilters, SetSource, SourceTable,
    WriterLayout, WriterOptions,
};

use interrupt::Interrupt;

use crate::build::{dies_with_us, DumpOptions, DumpReport, TableReport};
use crate::pgdump::{self, PgDump};
use crate::segment_leftovers::{self, Owner};
use crate::DumpError;

/// `--on-segment DIR`: a gpbackup backup set (metadata.sql, toc.yaml and config.yaml on this
/// host under `DIR/<prefix>-1/backups/<date>/<ts>`), with every segment writing its own data files
/// under `DIR/<prefix><content>/...` on its own host at the same time — what gpbackup does, so
/// cbrestore's gpbackup reader and stock gprestore can restore it. The schema comes from pg_dump
/// on the same snapshot, with the same `-t/-n/-T/-N`.
///
/// DIR must already exist on every host (as gpbackup's `--backup-dir` does): the segments create
/// their own subdirectories as the server's OS user, and a DIR this process created would belong
/// to the invoking user, where the segments could not write.
///
/// Nothing half-written is presented as a set: the coordinator's files are written in a private
/// staging directory beside `<ts>` and renamed to `<ts>` once every segment has written its
/// files (a set is found by its coordinator directory). A run that does not finish (an error,
/// SIGTERM, SIGINT: the signal's cancel hook stops the segments' `COPY`) removes its staging
/// directory and, through the segments themselves, every file they wrote for this timestamp.
/// SIGKILL can leave the hidden staging directory and segment files under `<ts>` with no
/// coordinator directory: no set, and readers skip hidden directories; the next run into the
/// same DIR removes them ([`crate::segment_leftovers`]).
pub(crate) fn write(
    o: &DumpOptions,
    root: &Path,
    pg_dump: &PgDump,
    server: &cluster::ServerInfo,
    mut leader: SnapshotLeader,
    started: Instant,
    interrupt: &Interrupt,
) -> Result<DumpReport, DumpError> {
    check_root(root)?;
    // The segments read the same path on their own hosts, where our working directory means
    // nothing (and COPY takes only absolute file names).
    let root = &std::path::absolute(root).map_err(|e| DumpError::io(root, e))?;
    let mpp = &MppCatalog::from_env();
    let prefix = segment_prefix(mpp, &mut leader)?;
    let selection =
        Selection::from_patterns(&o.tables, &o.exclude_tables, &o.schemas, &o.exclude_schemas)?;
    let relations: Vec<Relation> = selection
        .select(&catalog::list_relations(leader.client())?)?
        .into_iter()
        .filter(|r| matches!(r.kind, RelKind::Table | RelKind::PartitionedTable) && !r.is_partition)
        .collect();
    leader.lock(&relations.iter().map(|r| r.qualified()).collect::<Vec<_>>())?;
    let compression = match o.compress.unwrap_or(Compression::Gzip(1)) {
        Compression::None => gpbackup::Compression::None,
        Compression::Gzip(_) => gpbackup::Compression::Gzip,
        Compression::Zstd(_) => gpbackup::Compression::Zstd,
    };
    let layout = WriterLayout::PerContent {
        prefix: prefix.clone(),
    };
    remove_dead_runs(o, root, &prefix);
    let ts = free_timestamp(root, &layout);
    let place = CoordinatorPlace::prepare(root, &layout, &ts, interrupt)?;
    let snapshot = leader.id().to_string();
    let opts = WriterOptions {
        timestamp: ts.clone(),
        segments: server.segments.len() as u32,
        compression,
        single_data_file: false,
        layout,
        written_by: format!("cbdump {}", env!("CARGO_PKG_VERSION")),
        filters: SetFilters {
            include_relations: o.tables.clone(),
            exclude_relations: o.exclude_tables.clone(),
            include_schemas: o.schemas.clone(),
            exclude_schemas: o.exclude_schemas.clone(),
        },
        coordinator_dir: Some(place.staging.path().to_path_buf()),
        ..Default::default()
    };
    let mut source = SegmentSource {
        options: o,
        pg_dump,
        mpp,
        snapshot: snapshot.clone(),
        relations,
        leader: &mut leader,
        verbose: o.verbose,
        made_dirs: Default::default(),
        seconds: Default::default(),
    };
    let outcome = write_backup_set(&mut source, root, &opts);
    let seconds = std::mem::take(&mut source.seconds);
    let outcome = outcome
        .map_err(|e| DumpError::Data("--on-segment".into(), e.to_string()))
        .and_then(|w| {
            leader
                .finish()
                .map_err(|e| DumpError::SnapshotLost(e.to_string()))?;
            if interrupt.requested() {
                return Err(DumpError::Interrupted);
            }
            Ok(w)
        });
    let written = match outcome {
        Ok(w) => place
            .publish()
            .map(|()| w)
            .inspect_err(|_| remove_segment_files(o, root, &opts, interrupt))?,
        Err(e) => {
            // The segments' files first: until they are gone, the staging directory marks them
            // for the next run (should this cleanup itself be killed).
            remove_segment_files(o, root, &opts, interrupt);
            place.abandon();
            return Err(e);
        }
    };
    Ok(DumpReport {
        tool: "cbdump",
        version: env!("CARGO_PKG_VERSION"),
        output: root.display().to_string(),
        format: "gpbackup",
        server: server.describe(),
        pg_dump: pg_dump.version.clone(),
        snapshot,
        compression: compression.name(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        total_rows: written.tables.values().map(|t| t.rows).sum(),
        total_raw_bytes: 0,
        tables: written
            .tables
            .iter()
            .map(|(name, t)| TableReport {
                table: name.clone(),
                dump_id: 0,
                rows: t.rows,
                raw_bytes: 0,
                bytes: 0,
                sha256: String::new(),
                chunks: server.segments.len(),
                seconds: seconds.get(&t.oid).copied().unwrap_or(0.0),
            })
            .collect(),
        distribution_statements_changed: 0,
    })
}

/// A timestamp key (gpbackup's, to the second) whose coordinator directory does not exist yet
/// and that no other run is staging: two runs within a second must not share a set's names.
fn free_timestamp(root: &Path, layout: &WriterLayout) -> String {
    loop {
        let ts = local_timestamp();
        let dir = gpbackup::writer::dir_for(root, layout, -1, &ts);
        let staged = dir
            .parent()
            .is_some_and(|d| segment_leftovers::timestamp_staged(d, &ts));
        if !dir.exists() && !staged {
            return ts;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The coordinator's part of the set: a private staging directory beside its final `<ts>`
/// directory, and the parents this run had to create (taken back if the set is not published).
struct CoordinatorPlace {
    staging: interrupt::TempPath,
    final_dir: PathBuf,
    created: Vec<PathBuf>,
}

impl CoordinatorPlace {
    fn prepare(
        root: &Path,
        layout: &WriterLayout,
        ts: &str,
        interrupt: &Interrupt,
    ) -> Result<CoordinatorPlace, DumpError> {
        let final_dir = gpbackup::writer::dir_for(root, layout, -1, ts);
        let parent = final_dir.parent().unwrap_or(root).to_path_buf();
        let mut created = Vec::new();
        let mut p = parent.as_path();
        while p != root && !p.exists() {
            created.push(p.to_path_buf());
            p = p.parent().unwrap_or(root);
        }
        std::fs::create_dir_all(&parent).map_err(|e| DumpError::io(&parent, e))?;
        let staging = interrupt
            .staging_dir(&parent, &Owner::current(ts).staging_prefix())
            .map_err(|e| DumpError::Usage(format!("--on-segment: {e}")));
        match staging {
            Ok(staging) => Ok(CoordinatorPlace {
                staging,
                final_dir,
                created,
            }),
            Err(e) => {
                remove_empty(&created);
                Err(e)
            }
        }
    }

    /// The set appears under its name: one rename, after every file is in place.
    fn publish(self) -> Result<(), DumpError> {
        let CoordinatorPlace {
            staging,
            final_dir,
            created,
        } = self;
        staging.persist(&final_dir).map_err(|e| {
            remove_empty(&created);
            DumpError::io(&final_dir, e)
        })
    }

    /// The set is not published: the staging directory goes, then the parents this run made.
    fn abandon(self) {
        drop(self.staging);
        remove_empty(&self.created);
    }
}

/// Removes directories deepest first, each only if empty.
fn remove_empty(dirs: &[PathBuf]) {
    for d in dirs {
        if std::fs::remove_dir(d).is_err() {
            break;
        }
    }
}

/// After a run that did not finish: the segments remove the files they wrote for this
/// timestamp (they are on the segment hosts, owned by the server's OS user) and the
/// directories left empty; the final message says so, or what is left when that fails.
fn remove_segment_files(o: &DumpOptions, root: &Path, opts: &WriterOptions, interrupt: &Interrupt) {
    let ts = &opts.timestamp;
    let dir = segment_dir_template(root, &opts.layout, ts);
    let mut dirs = vec![dir.clone()];
    let mut d = Path::new(&dir);
    while let Some(p) = d.parent() {
        if p == root || !p.starts_with(root) {
            break;
        }
        dirs.push(p.display().to_string());
        d = p;
    }
    let removed = cluster::connect(&o.conn)
        .map_err(|e| cluster::error::one_line(&e))
        .and_then(|mut c| {
            segment_io::remove_on_every_segment(
                &mut c,
                &[],
                &[format!("{dir}/gpbackup_<SEGID>_{ts}_")],
                &dirs,
                "removing the segments' files of the unfinished set",
            )
            .map_err(|e| cluster::error::one_line(&e))
        });
    match removed {
        Ok(()) => interrupt.set_left(format!(
            "the set {ts} was not finished: its coordinator files and the segments' data files \
             were removed; nothing is left under a set's name"
        )),
        Err(e) => interrupt.set_left(format!(
            "the set {ts} was not finished and has no coordinator files; the segments' data \
             files could not be removed ({e}): remove {dir}/gpbackup_<SEGID>_{ts}_* on every \
             segment host (<SEGID> is the content id)"
        )),
    }
}

/// What killed runs (SIGKILL) left in DIR: each dead owner's staging directory and its segment
/// files (through the segments, on a connection of its own so that a failure cannot end the
/// snapshot's transaction), each removal said on stderr. Nothing is removed when the segments
/// cannot be reached: the staging directory stays as the marker for the next run.
fn remove_dead_runs(o: &DumpOptions, root: &Path, prefix: &str) {
    let backups = root.join(format!("{prefix}-1")).join("backups");
    let (dead, unknown) = segment_leftovers::find(&backups);
    for path in unknown {
        logline::say!(
            "cbdump: left {}: a run on another host owns it (it may still run)",
            path.display()
        );
    }
    if dead.is_empty() {
        return;
    }
    let mut client = match cluster::connect(&o.conn) {
        Ok(c) => c,
        Err(e) => {
            let e = cluster::error::one_line(&e);
            logline::say!("cbdump: could not remove a killed run's files: {e}");
            return;
        }
    };
    let layout = WriterLayout::PerContent {
        prefix: prefix.to_string(),
    };
    for leftover in dead {
        let owner = &leftover.owner;
        let dir = segment_dir_template(root, &layout, &owner.timestamp);
        match segment_leftovers::remove(&mut client, &leftover, &dir) {
            Ok(what) => logline::say!(
                "cbdump: removed what a killed run (pid {} on {}, no longer running) left of \
                 set {}: {what}",
                owner.pid,
                owner.host,
                owner.timestamp
            ),
            Err(e) => logline::say!(
                "cbdump: could not remove what a killed run left of set {} ({}); the next \
                 run tries again",
                owner.timestamp,
                cluster::error::one_line(&e)
            ),
        }
    }
}

/// The segments' directory of set `ts`, with `<SEGID>` where the content id goes.
fn segment_dir_template(root: &Path, layout: &WriterLayout, ts: &str) -> String {
    match layout {
        WriterLayout::PerContent { prefix } => root
            .join(format!("{prefix}<SEGID>"))
            .join("backups")
            .join(&ts[..8])
            .join(ts)
            .display()
            .to_string(),
        other => gpbackup::writer::dir_for(root, other, 0, ts)
            .display()
            .to_string(),
    }
}

/// DIR must exist (on this host; the segments' hosts are checked by the segments themselves).
fn check_root(root: &Path) -> Result<(), DumpError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(DumpError::Usage(format!(
            "--on-segment {}: not a directory",
            root.display()
        ))),
        Err(e) => Err(DumpError::Usage(format!(
            "--on-segment {}: {e}. The directory must exist on every host and be writable by the \
             database server's OS user (the segments create their subdirectories in it) and by \
             you (the coordinator's files are written here): e.g. `mkdir -p {0} && chown gpadmin {0} \
             && chmod 1777 {0}` on each host",
            root.display()
        ))),
    }
}

/// The segment directory prefix: the coordinator data directory's name without "-1".
fn segment_prefix(mpp: &MppCatalog, leader: &mut SnapshotLeader) -> Result<String, DumpError> {
    let coordinator = mpp
        .primaries(leader.client())?
        .into_iter()
        .find(|s| s.content == -1);
    Ok(coordinator
        .as_ref()
        .and_then(|c| {
            Path::new(&c.datadir)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .and_then(|n| n.strip_suffix("-1").map(str::to_string))
        .unwrap_or_else(|| "gpseg".into()))
}

/// The MPP server as the source of a set the segments write themselves.
struct SegmentSource<'a> {
    options: &'a DumpOptions,
    pg_dump: &'a PgDump,
    mpp: &'a MppCatalog,
    snapshot: String,
    relations: Vec<Relation>,
    leader: &'a mut SnapshotLeader,
    verbose: bool,
    /// The segment directory templates the segments have made (an uncompressed file is then
    /// written by `COPY ... TO '<file>'` itself, without a program).
    made_dirs: std::collections::HashSet<String>,
    /// Seconds of each table's `COPY ... ON SEGMENT`, by oid, for the report.
    seconds: std::collections::BTreeMap<u32, f64>,
}

fn source_err(e: impl std::fmt::Display) -> gpbackup::Error {
    gpbackup::Error::Writer(e.to_string())
}

impl SetSource for SegmentSource<'_> {
    fn database(&mut self) -> gpbackup::Result<(String, String)> {
        let row = self
            .leader
            .client()
            .query_one("SELECT quote_ident(current_database()), version()", &[])?;
        Ok((row.get(0), row.get(1)))
    }

    fn tables(&mut self) -> gpbackup::Result<Vec<SourceTable>> {
        // gpbackup's session: how dates, intervals and floats are rendered in the files.
        self.leader.client().batch_execute(
            "SET datestyle = ISO; SET intervalstyle = postgres; SET extra_float_digits = 3; \
             SET client_encoding = 'UTF8'",
        )?;
        // Every table's schema, name and stored columns, quoted in one round trip at the end
        // (one per identifier was ~8 per table before the first COPY).
        let mut names: Vec<String> = Vec::new();
        let mut shapes = Vec::with_capacity(self.relations.len());
        for r in &self.relations {
            let client = self.leader.client();
            let columns = catalog::columns(client, r.oid).map_err(source_err)?;
            let replicated = self.mpp.distribution(client, r.oid).map_err(source_err)?
                == Some(Distribution::Replicated);
            let first = names.len();
            names.extend([r.schema.clone(), r.name.clone()]);
            names.extend(columns.into_iter().filter(|c| !c.generated).map(|c| c.name));
            shapes.push((r.oid, first, names.len(), replicated));
        }
        let quoted = self.quote_idents(&names)?;
        Ok(shapes
            .into_iter()
            .map(|(oid, first, end, replicated)| SourceTable {
                oid,
                schema: quoted[first].clone(),
                name: quoted[first + 1].clone(),
                attributestring: format!("({})", quoted[first + 2..end].join(",")),
                replicated,
            })
            .collect())
    }

    fn sequences(&mut self) -> gpbackup::Result<Vec<SequenceValue>> {
        // The sequences pg_dump writes for this selection: those in dumped schemas when no table
        // is named, else those owned by a dumped table.
        let owners: Vec<u32> = self.relations.iter().map(|r| r.oid).collect();
        let schemas: Vec<String> = self.relations.iter().map(|r| r.schema.clone()).collect();
        let by_table = !self.options.tables.is_empty();
        let rows = self.leader.client().query(
            "SELECT quote_ident(n.nspname), quote_ident(c.relname), \
                    format('%I.%I', n.nspname, c.relname) \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind = 'S' AND CASE WHEN $3 \
                    THEN EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                   AND d.objid = c.oid AND d.deptype IN ('a', 'i') \
                                   AND d.refobjid = ANY($1)) \
                    ELSE n.nspname = ANY($2) END \
              ORDER BY 1, 2",
            &[&owners, &schemas, &by_table],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let fqn: String = r.get(2);
            let v = self
                .leader
                .client()
                .query_one(&format!("SELECT last_value, is_called FROM {fqn}"), &[])?;
            out.push(SequenceValue {
                schema: r.get(0),
                name: r.get(1),
                last_value: v.get(0),
                is_called: v.get(1),
            });
        }
        Ok(out)
    }

    fn quote_ident(&mut self, name: &str) -> gpbackup::Result<String> {
        quote_ident(self.leader.client(), name)
    }

    fn quote_idents(&mut self, names: &[String]) -> gpbackup::Result<Vec<String>> {
        let rows = self.leader.client().query(
            "SELECT quote_ident(n) FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i) ORDER BY i",
            &[&names],
        )?;
        if rows.len() != names.len() {
            return Err(source_err(format!(
                "quote_ident of {} names returned {} rows",
                names.len(),
                rows.len()
            )));
        }
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn pg_dump(&mut self) -> gpbackup::Result<Command> {
        let o = self.options;
        let (conninfo, password) = pgdump::conninfo(&o.conn);
        let mut c = Command::new(&self.pg_dump.path);
        // A SIGKILLed cbdump must not leave pg_dump running on its snapshot.
        dies_with_us(&mut c);
        c.arg("-d")
            .arg(&conninfo)
            .arg(format!("--snapshot={}", self.snapshot));
        for (flag, patterns) in [
            ("-t", &o.tables),
            ("-T", &o.exclude_tables),
            ("-n", &o.schemas),
            ("-N", &o.exclude_schemas),
        ] {
            for p in patterns {
                c.arg(flag).arg(p);
            }
        }
        if o.no_owner {
            c.arg("--no-owner");
        }
        if o.no_acl {
            c.arg("--no-acl");
        }
        if let Some(pw) = &password {
            c.env("PGPASSWORD", pw);
        }
        Ok(c)
    }

    fn segments_write_files(&self) -> bool {
        true
    }

    fn segments_write(&mut self, t: &SourceTable, files: &SegmentFiles) -> gpbackup::Result<u64> {
        // gpbackup's data file format: CSV with ',' and the set's compression. Uncompressed
        // files are written by the COPY itself once the segments have made their directory
        // (one statement per set, 0.08-0.28 s): piping 2M rows (146 MB) through `cat` took
        // 1.59-2.17 s where the file took 1.20-1.53 s on the stand-in. Compressed ones go
        // through the program, which also makes the directory.
        let program = files.write_program();
        let end = if files.compression == gpbackup::Compression::None {
            self.make_dir(&files.dir)?;
            SegmentEnd::File(&files.file)
        } else {
            SegmentEnd::Program(&program)
        };
        let sql = segment_io::copy_to_sql(
            &format!("{}{}", t.fqn(), t.attributestring),
            None,
            end,
            "FORMAT csv, DELIMITER ','",
        );
        if self.verbose {
            logline::say!("cbdump: {sql}");
        }
        let started = std::time::Instant::now();
        let rows = segment_io::run(self.leader.client(), &sql, &t.fqn()).map_err(|e| {
            gpbackup::Error::Target {
                what: format!("the segments writing {}", t.fqn()),
                message: e.to_string(),
            }
        })?;
        let seconds = started.elapsed().as_secs_f64();
        self.seconds.insert(t.oid, seconds);
        if self.verbose {
            logline::say!("cbdump: {}: {rows} rows in {seconds:.2} s", t.fqn());
        }
        Ok(rows)
    }
}

impl SegmentSource<'_> {
    /// Has every segment create `dir`, once per directory, on the snapshot's session (a
    /// statement without DDL, allowed in its read-only transaction).
    fn make_dir(&mut self, dir: &str) -> gpbackup::Result<()> {
        if self.made_dirs.contains(dir) {
            return Ok(());
        }
        let command = format!("mkdir -p {}", segment_io::shell_quote(dir));
        segment_io::run_on_every_segment(self.leader.client(), &command, "mkdir").map_err(|e| {
            gpbackup::Error::Target {
                what: format!("the segments making {dir}"),
                message: e.to_string(),
            }
        })?;
        self.made_dirs.insert(dir.to_string());
        Ok(())
    }
}

fn quote_ident(client: &mut cluster::Client, name: &str) -> gpbackup::Result<String> {
    Ok(client.query_one("SELECT quote_ident($1)", &[&name])?.get(0))
}

/// gpbackup's timestamp key: the local time as YYYYMMDDHHMMSS.
fn local_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: localtime_r fills the struct we own from a time value we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&now, &mut tm) };
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
