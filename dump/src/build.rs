//! The dump run: snapshot, pg_dump for everything but table data, our data, one archive.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use archive::custom::{pending_offset, CustomWriter, BLK_DATA};
use archive::toc::{Extra, HeaderCompression, SECTION_DATA, SECTION_POST_DATA};
use archive::{Compression, DirectoryArchive, Header, TocEntry};
use serde::Serialize;

use cluster::catalog::{self, RelKind, Selection};
use cluster::mpp::MppCatalog;
use cluster::snapshot::SnapshotLeader;
use cluster::{flavor, ConnParams};
use pipeline::plan::{chunks_for, ChunkPolicy};

use crate::blobs;
use crate::data::{self, Counters, Encoding, TableTask};
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
}

/// Runs the dump. `abort` is raised by Ctrl-C.
pub fn run(o: &DumpOptions, abort: Arc<AtomicBool>) -> Result<DumpReport, DumpError> {
    let started = Instant::now();
    if o.format == Format::Directory && o.output == Path::new("-") {
        return Err(DumpError::Usage(
            "a directory archive needs -f DIRECTORY".into(),
        ));
    }
    if o.output.exists() && o.output != Path::new("-") {
        return Err(DumpError::Usage(format!(
            "{} already exists",
            o.output.display()
        )));
    }
    let mut client = cluster::connect(&o.conn)?;
    let mpp = MppCatalog::from_env();
    let server = flavor::detect(&mut client, &mpp)?;
    if o.on_segment.is_some() && !server.flavor.is_mpp() {
        return Err(DumpError::Cluster(cluster::ClusterError::NotMpp {
            server: server.describe(),
        }));
    }
    let pg_dump = PgDump::find(o.pg_dump.as_deref(), &server)?;
    let mut leader = SnapshotLeader::begin(client, &[], o.lock_wait_timeout_ms)?;
    if let Some(root) = &o.on_segment {
        return crate::segment_set::write(o, root, &pg_dump, &mpp, &server, leader, started);
    }

    // What pg_dump would dump data for: ordinary tables and partitions.
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
    // Extensions' tables stay with pg_dump, which dumps their configuration tables' data.
    let members = tables::extension_members(leader.client())?;
    relations.retain(|r| !members.contains(&r.oid));
    leader.lock(&relations.iter().map(|r| r.qualified()).collect::<Vec<_>>())?;

    // Where everything is built: beside the output, renamed (or rendered) at the end.
    let out_dir = match o.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = o
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dump".into());
    let work = out_dir.join(format!(".{name}.cbdump-{}", std::process::id()));
    std::fs::create_dir(&work).map_err(|e| {
        DumpError::Usage(format!(
            "cannot write the dump into {}: {e}",
            out_dir.display()
        ))
    })?;
    let result = build(
        o,
        &pg_dump,
        &mut leader,
        relations,
        &work,
        &server,
        &abort,
        started,
    )
    .and_then(|report| match &o.globals {
        Some(path) => dump_globals(&pg_dump, &o.conn, path).map(|_| report),
        None => Ok(report),
    });
    match result {
        Ok(report) => {
            leader.finish()?;
            let _ = std::fs::remove_dir_all(&work);
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    o: &DumpOptions,
    pg_dump: &PgDump,
    leader: &mut SnapshotLeader,
    relations: Vec<cluster::catalog::Relation>,
    work: &Path,
    server: &cluster::ServerInfo,
    abort: &Arc<AtomicBool>,
    started: Instant,
) -> Result<DumpReport, DumpError> {
    // Archives compress their data (gzip level 6 by default, as pg_dump); a plain script is
    // assembled uncompressed and compressed as a whole.
    let compression = match o.format {
        Format::Plain => Compression::None,
        _ => o.compress.unwrap_or(Compression::Gzip(6)),
    };
    // The schema: pg_dump on our snapshot, every table's data excluded.
    let schema_dir = work.join("schema");
    let level = match compression {
        Compression::Gzip(l) => l.to_string(),
        Compression::Zstd(l) => format!("zstd:{l}"),
        Compression::None => "0".into(),
    };
    let (conninfo, password) = pgdump::conninfo(&o.conn);
    let mut cmd = Command::new(&pg_dump.path);
    cmd.arg("-d")
        .arg(&conninfo)
        .args(["-Fd", "-f"])
        .arg(&schema_dir)
        .arg(format!("--snapshot={}", leader.id()))
        .arg(format!("-Z{level}"));
    // Exactly the tables whose rows we dump ourselves: a wildcard would also drop sequence
    // values and materialized-view data, which pg_dump counts as table data.
    for r in &relations {
        cmd.arg(format!(
            "--exclude-table-data={}.{}",
            pattern_literal(&r.schema),
            pattern_literal(&r.name)
        ));
    }
    for t in &o.exclude_table_data {
        cmd.arg(format!("--exclude-table-data={t}"));
    }
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    for t in &o.tables {
        cmd.arg(format!("--table={t}"));
    }
    for t in &o.exclude_tables {
        cmd.arg(format!("--exclude-table={t}"));
    }
    for s in &o.schemas {
        cmd.arg(format!("--schema={s}"));
    }
    for s in &o.exclude_schemas {
        cmd.arg(format!("--exclude-schema={s}"));
    }
    if o.schema_only {
        cmd.arg("--schema-only");
    }
    if o.data_only {
        cmd.arg("--data-only");
    }
    if o.no_owner {
        cmd.arg("--no-owner");
    }
    if o.no_acl {
        cmd.arg("--no-acl");
    }
    if o.verbose {
        eprintln!(
            "cbdump: running {} on snapshot {}",
            pg_dump.version,
            leader.id()
        );
    }
    if matches!(compression, Compression::Zstd(_)) && pg_dump.major < 16 {
        return Err(DumpError::Usage(format!(
            "zstd needs archive format 1.15 (pg_dump 16 or newer); {} writes an older one: use -Z gzip",
            pg_dump.version
        )));
    }

    let jobs = o.jobs.max(1);
    let policy = ChunkPolicy {
        workers: jobs,
        chunk_pages: None,
        tid_range_scan: server.has_tid_range_scan(),
        segments: server.segments.len(),
    };
    // With --data-only pg_dump writes no TABLE entries: what they would give comes from the
    // catalog, and referenced tables' data loads first, as pg_dump orders it.
    let owners = if o.data_only {
        tables::owners(leader.client())?
    } else {
        HashMap::new()
    };
    let fks = if o.data_only {
        tables::foreign_keys(leader.client())?
    } else {
        Vec::new()
    };
    let relations = if o.data_only {
        let (ordered, cyclic) = tables::referenced_first(relations, |r| r.oid, &fks);
        if !cyclic.is_empty() {
            eprintln!(
                "cbdump: warning: circular foreign-key constraints among {} tables; restoring the data may need --disable-triggers",
                cyclic.len()
            );
        }
        ordered
    } else {
        relations
    };
    // What each table's COPY reads, from the catalog: known before pg_dump has written
    // anything, so the data is dumped while pg_dump dumps the schema, both on the one
    // snapshot. Files get their dump ids once pg_dump's TOC is there.
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
            file_name: format!("t{i}.dat{}", compression.extension()),
        });
    }
    let session_sql = Session::of(leader.client(), server.version_num)?.statements();
    let data_dir = work.join("data");
    std::fs::create_dir(&data_dir).map_err(|e| DumpError::io(&data_dir, e))?;

    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| DumpError::PgDump(format!("running {}: {e}", pg_dump.path.display())))?;
    // The data workers stop when pg_dump fails (no use dumping rows for a schema we cannot
    // have) as well as on Ctrl-C; `stop` is theirs, `abort` is the user's.
    let pg_dump_pid = child.id();
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

    // The data itself.
    let encoding = match (o.format, compression) {
        (Format::Directory, c) => Encoding::Members(c),
        (_, Compression::Gzip(l)) => Encoding::Zlib(l),
        (_, Compression::Zstd(l)) => Encoding::ZstdFrame(l),
        (_, c) => Encoding::Members(c),
    };
    let counters = Counters::default();
    // Tables done, rows, bytes and throughput on stderr when it is a terminal.
    let progress = pipeline::progress::Progress::new(tasks.len(), false);
    let finished = AtomicBool::new(false);
    let written = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut shown = 0;
            while !finished.load(Ordering::Relaxed) {
                if abort.load(Ordering::Relaxed) {
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
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        });
        let r = data::export(
            &o.conn,
            leader.id(),
            &session_sql,
            &tasks,
            &data_dir,
            encoding,
            jobs,
            &stop,
            &counters,
        );
        finished.store(true, Ordering::Relaxed);
        r
    });
    progress.finish();
    if written.is_err() && !pg_dump_run.is_finished() {
        // SAFETY: a plain signal to our own child; its waiter is still running, so it has not
        // been reaped (short of losing a race with its exit by microseconds).
        unsafe { libc::kill(pg_dump_pid as libc::pid_t, libc::SIGTERM) };
    }
    let pg_dump_out = pg_dump_run.join().expect("pg_dump waiter");
    if abort.load(Ordering::SeqCst) {
        return Err(DumpError::Interrupted);
    }
    let pg_dump_failed = match &pg_dump_out {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "{} failed: {}",
            pg_dump.path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("running {}: {e}", pg_dump.path.display())),
    };
    let written = match (written, pg_dump_failed) {
        (Ok(w), None) => w,
        // The data stopped because pg_dump failed: pg_dump's error is the one to tell.
        (Err(DumpError::Interrupted), Some(msg)) | (Ok(_), Some(msg)) => {
            return Err(DumpError::PgDump(msg))
        }
        (Err(e), _) => return Err(e),
    };
    let schema = DirectoryArchive::open(&schema_dir)?;

    // Our TABLE DATA entries, numbered after pg_dump's; each data file renamed to its id.
    let mut next_id = schema.entries.iter().map(|e| e.dump_id).max().unwrap_or(0) + 1;
    let mut by_index: HashMap<usize, data::TableData> =
        written.into_iter().map(|d| (d.index, d)).collect();
    let mut kept = Vec::new();
    let mut new_entries = Vec::new();
    let mut written = Vec::new();
    let mut data_id_of: HashMap<u32, i32> = HashMap::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let Some(mut d) = by_index.remove(&i) else {
            continue;
        };
        let rel = &task.relation;
        let table = schema
            .entries
            .iter()
            .find(|e| e.desc() == "TABLE" && e.namespace() == rel.schema && e.tag() == rel.name);
        if table.is_none() && !o.data_only {
            // pg_dump's own filters left it out.
            let _ = std::fs::remove_file(&d.path);
            continue;
        }
        let id = next_id;
        next_id += 1;
        data_id_of.insert(rel.oid, id);
        let file_name = format!("{id}.dat{}", compression.extension());
        let dest = match o.format {
            Format::Directory => schema_dir.join(&file_name),
            _ => data_dir.join(&file_name),
        };
        std::fs::rename(&d.path, &dest).map_err(|e| DumpError::io(&dest, e))?;
        d.path = dest;
        d.index = kept.len();
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
                owners.get(&rel.oid).map(|o| o.clone().into_bytes()),
                if schema.header.minor >= 16 {
                    b'r' as i64
                } else {
                    0
                },
                Vec::new(),
            ),
        };
        new_entries.push(TocEntry {
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
        });
        written.push(d);
        kept.push(TableTask { file_name, ..task });
    }
    let tasks = kept;
    if o.data_only {
        for (entry, task) in new_entries.iter_mut().zip(&tasks) {
            for (from, to) in &fks {
                if *from == task.relation.oid {
                    if let Some(id) = data_id_of.get(to) {
                        entry.deps.push(id.to_string().into_bytes());
                    }
                }
            }
        }
    }

    // --distribute: the schema's statements rewritten for Cloudberry while dumping.
    let mut entries = schema.entries.clone();
    let mut changed = 0;
    if let Some(d) = &o.distribute {
        let catalog =
            distfix::archive::collect(&entries).map_err(|e| DumpError::Usage(e.to_string()))?;
        let file = match &d.policy {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| DumpError::io(p, e))?;
                distfix::policy::PolicyFile::parse(&text)
                    .map_err(|e| DumpError::Usage(format!("{}: {e}", p.display())))?
            }
            None => distfix::policy::PolicyFile::default(),
        };
        let stats = if d.stats {
            distfix::stats::fetch(leader.client()).map_err(|e| DumpError::Usage(e.to_string()))?
        } else {
            HashMap::new()
        };
        let plan = distfix::policy::decide(
            &catalog,
            &file,
            &distfix::policy::Options {
                default: d.default,
                on_conflict: d.on_conflict,
                force: false,
            },
            &stats,
        )
        .map_err(|e| DumpError::Usage(e.to_string()))?;
        let (e, n) = distfix::archive::apply(&entries, &plan)
            .map_err(|e| DumpError::Usage(e.to_string()))?;
        entries = e;
        changed = n;
    }
    let toc = place_data_entries(&entries, &new_entries, o.data_only);
    let tables: Vec<TableReport> = written
        .iter()
        .map(|d| TableReport {
            table: tasks[d.index].relation.display(),
            dump_id: new_entries[d.index].dump_id,
            rows: d.rows,
            raw_bytes: d.raw_bytes,
            bytes: d.file_bytes,
            sha256: hex::encode(d.sha256),
            chunks: tasks[d.index].chunks.len(),
        })
        .collect();

    let mut header = schema.header.clone();
    header.compression =
        HeaderCompression::for_version(header.minor, compression).map_err(DumpError::Usage)?;
    let report = DumpReport {
        tool: "cbdump",
        version: env!("CARGO_PKG_VERSION"),
        output: o.output.display().to_string(),
        format: match o.format {
            Format::Plain => "plain",
            Format::Custom => "custom",
            Format::Directory => "directory",
        },
        server: server.describe(),
        pg_dump: pg_dump.version.clone(),
        snapshot: leader.id().to_string(),
        compression: compression.name(),
        elapsed_seconds: 0.0,
        total_rows: tables.iter().map(|t| t.rows).sum(),
        total_raw_bytes: tables.iter().map(|t| t.raw_bytes).sum(),
        tables,
        distribution_statements_changed: changed,
    };

    match o.format {
        Format::Directory => {
            DirectoryArchive::write_toc(&schema_dir, &header, &toc)?;
            let manifest = serde_json::to_vec_pretty(&report).expect("report serializes");
            let m = schema_dir.join("manifest.json");
            std::fs::write(&m, manifest).map_err(|e| DumpError::io(&m, e))?;
            sync_dir_files(&schema_dir)?;
            std::fs::rename(&schema_dir, &o.output).map_err(|e| DumpError::io(&o.output, e))?;
        }
        Format::Custom => write_custom(
            &o.output,
            header,
            &toc,
            &schema,
            &written,
            &new_entries,
            compression,
        )?,
        Format::Plain => {
            let archive = work.join("plain.dump");
            let mut h = header.clone();
            h.compression = HeaderCompression::for_version(h.minor, Compression::None)
                .map_err(DumpError::Usage)?;
            // Rendered from an uncompressed custom archive by the real pg_restore.
            write_custom(
                &archive,
                h,
                &toc,
                &schema,
                &written,
                &new_entries,
                Compression::None,
            )?;
            render_plain(&pg_dump.path, &archive, &o.output, o.output_compression())?;
        }
    }
    Ok(DumpReport {
        elapsed_seconds: started.elapsed().as_secs_f64(),
        ..report
    })
}

impl DumpOptions {
    /// Plain output is compressed as asked or as its name says; the data inside is not.
    fn output_compression(&self) -> Compression {
        self.compress
            .or_else(|| Compression::from_file_name(&self.output.to_string_lossy()))
            .unwrap_or(Compression::None)
    }
}

fn write_custom(
    out: &Path,
    mut header: Header,
    toc: &[TocEntry],
    schema: &DirectoryArchive,
    written: &[data::TableData],
    new_entries: &[TocEntry],
    compression: Compression,
) -> Result<(), DumpError> {
    header.format = 1;
    let entries: Vec<TocEntry> = toc
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let has_data = has_data_file(&e);
            e.extra = if has_data {
                pending_offset()
            } else {
                Extra::Offset { flag: 3, pos: 0 }
            };
            e
        })
        .collect();
    let mut w = CustomWriter::create(out, header, entries.clone())?;
    let by_id: HashMap<i32, &data::TableData> = written
        .iter()
        .map(|d| (new_entries[d.index].dump_id, d))
        .collect();
    let result = (|| -> Result<(), DumpError> {
        for e in toc {
            if let Some(d) = by_id.get(&e.dump_id) {
                let mut f = std::fs::File::open(&d.path).map_err(|x| DumpError::io(&d.path, x))?;
                w.write_block(e.dump_id, BLK_DATA, &mut f)?;
            } else if e.desc() == "BLOBS" {
                // Each object is its own stream in the archive's codec, encoded as it is
                // copied.
                let mut encoded = Vec::new();
                for (oid, path) in blobs::list(&schema.dir, e)? {
                    let r: Box<dyn std::io::Read + Send> = Box::new(blobs::LazyBlob::new(path));
                    let r = encoding_reader(r, compression).map_err(|x| {
                        DumpError::Data(format!("large object {oid}"), x.to_string())
                    })?;
                    encoded.push((oid, r));
                }
                w.write_blobs_block(e.dump_id, encoded)?;
            } else if has_data_file(e) {
                // Data pg_dump wrote itself (extension configuration tables): re-encoded
                // from its file into one stream.
                let r = schema.table_data(e)?;
                let mut r = encoding_reader(r, compression)
                    .map_err(|x| DumpError::Data(e.tag().into_owned(), x.to_string()))?;
                w.write_block(e.dump_id, BLK_DATA, &mut r)?;
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(w.finish()?),
        Err(e) => {
            w.abandon();
            Err(e)
        }
    }
}

/// A directory archive's entry that has a data file (the others carry an empty name).
fn has_data_file(e: &TocEntry) -> bool {
    matches!(&e.extra, Extra::File(Some(name)) if !name.is_empty())
}

/// `r`'s bytes as one stream of a custom archive's codec: zlib for gzip, a zstd frame, or as is.
fn encoding_reader(
    r: Box<dyn std::io::Read + Send>,
    compression: Compression,
) -> std::io::Result<Box<dyn std::io::Read + Send>> {
    Ok(match compression {
        Compression::None => r,
        Compression::Gzip(level) => Box::new(flate2::read::ZlibEncoder::new(
            r,
            flate2::Compression::new(level),
        )),
        Compression::Zstd(level) => Box::new(zstd::stream::read::Encoder::new(r, level)?),
    })
}

/// The plain script: pg_restore renders our archive (schema, COPY blocks, post-data).
fn render_plain(
    pg_dump: &Path,
    archive: &Path,
    out: &Path,
    compression: Compression,
) -> Result<(), DumpError> {
    let pg_restore = pg_dump.with_file_name("pg_restore");
    let mut child = Command::new(&pg_restore)
        .arg("-f")
        .arg("-")
        .arg(archive)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| DumpError::PgDump(format!("running {}: {e}", pg_restore.display())))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let to_stdout = out == Path::new("-");
    let temp = archive::atomic::temp_name(out);
    let mut copy = || -> std::io::Result<()> {
        if to_stdout {
            let mut o = std::io::stdout().lock();
            let mut enc = compression.encoder(&mut o)?;
            std::io::copy(&mut stdout, &mut enc)?;
            enc.finish()?;
            return Ok(());
        }
        let f = std::fs::File::create(&temp)?;
        let mut enc = compression.encoder(std::io::BufWriter::new(f))?;
        std::io::copy(&mut stdout, &mut enc)?;
        let f = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()
    };
    let copied = copy();
    let status = child
        .wait_with_output()
        .map_err(|e| DumpError::PgDump(e.to_string()))?;
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&temp);
        return Err(DumpError::io(out, e));
    }
    if !status.status.success() {
        let _ = std::fs::remove_file(&temp);
        return Err(DumpError::PgDump(format!(
            "pg_restore could not render the script: {}",
            String::from_utf8_lossy(&status.stderr)
        )));
    }
    if !to_stdout {
        std::fs::rename(&temp, out).map_err(|e| DumpError::io(out, e))?;
    }
    Ok(())
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

fn sync_dir_files(dir: &Path) -> Result<(), DumpError> {
    for e in std::fs::read_dir(dir).map_err(|x| DumpError::io(dir, x))? {
        let p = e.map_err(|x| DumpError::io(dir, x))?.path();
        if p.is_file() {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|x| DumpError::io(&p, x))?;
        }
    }
    Ok(())
}

/// Roles and tablespaces — what `pg_dumpall --globals-only` writes — into `out` (temporary name,
/// renamed when complete).
pub fn dump_globals(pg_dump: &PgDump, conn: &ConnParams, out: &Path) -> Result<(), DumpError> {
    let pg_dumpall = pg_dump.path.with_file_name("pg_dumpall");
    let (conninfo, password) = pgdump::conninfo(conn);
    let temp = archive::atomic::temp_name(out);
    let mut cmd = Command::new(&pg_dumpall);
    cmd.arg(format!("--dbname={conninfo}"))
        .arg("--globals-only")
        .arg("-f")
        .arg(&temp);
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    let res = cmd
        .output()
        .map_err(|e| DumpError::PgDump(format!("running {}: {e}", pg_dumpall.display())))?;
    if !res.status.success() {
        let _ = std::fs::remove_file(&temp);
        return Err(DumpError::PgDump(format!(
            "{} --globals-only failed: {}",
            pg_dumpall.display(),
            String::from_utf8_lossy(&res.stderr).trim()
        )));
    }
    std::fs::rename(&temp, out).map_err(|e| DumpError::io(out, e))
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
