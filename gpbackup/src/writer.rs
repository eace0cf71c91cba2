//! Writes gpbackup backup sets: the coordinator's metadata.sql, toc.yaml, config.yaml and report,
//! and the data files, from whatever [`SetSource`] supplies the database.
//!
//! The writer knows the set's formats only; it never talks to a server. A source either hands
//! it each content's rows (the writer then compresses them into one file per table and content,
//! or one stream per content with a segment toc), or makes the segments write their own files
//! ([`SetSource::segments_write`], given the [`SegmentFiles`] names). metadata.sql is the source's
//! `pg_dump --schema-only` output split at its object headers into toc entries with exact byte
//! offsets, preceded by the SESSION GUCS entry; every table, materialized view and index chunk
//! carries the `SET default_table_access_method` / `SET default_tablespace` that pg_dump wrote
//! before it, because gprestore runs chunks on several connections in any order and an
//! append-optimized column table created without its access method fails
//! (`unrecognized parameter "compresstype"`).
//!
//! Every file is written under a temporary name and renamed when complete; data streams through
//! (one buffer at a time); pg_dump's output is consumed line by line.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::config::{BackupConfig, Compression, RestorePlanEntry};
use crate::error::{Error, Result};
use crate::fsutil::AtomicFile;
use crate::layout::is_timestamp;
use crate::toc::{DataEntry, MetadataEntry, SegmentDataEntry, SegmentToc, Toc};

/// Where the files go under the output root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterLayout {
    /// `<root>/<prefix>-1/backups/<date>/<ts>` for the coordinator, `<root>/<prefix><c>/...` per
    /// content (layouts A/B).
    PerContent { prefix: String },
    /// `<root>/backups/<date>/<ts>` for everything (layout C).
    SingleDir,
    /// Everything directly in `<root>`.
    Flat,
}

/// Tables an incremental set takes from an earlier set instead of dumping them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncrementalBase {
    pub timestamp: String,
    /// `schema.table` (quoted identifiers, as in the toc).
    pub tables: Vec<String>,
}

/// How to write the set.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub timestamp: String,
    pub segments: u32,
    pub compression: Compression,
    pub single_data_file: bool,
    pub layout: WriterLayout,
    /// Recorded as `backupversion`: a gpbackup version that gprestore accepts.
    pub backup_version: String,
    /// Recorded as `writtenby` when not empty (our own name; gprestore ignores the key).
    pub written_by: String,
    pub base: Option<IncrementalBase>,
    /// Where the coordinator's files go instead of their place in the layout: a staging
    /// directory the caller renames into place once the set is complete (cbdump --on-segment).
    pub coordinator_dir: Option<PathBuf>,
    /// `-t`/`-n`/`-T`/`-N` as given, recorded in config.yaml's filter keys.
    pub filters: SetFilters,
}

/// The selection a set was taken with (config.yaml's include/exclude keys).
#[derive(Debug, Clone, Default)]
pub struct SetFilters {
    pub include_relations: Vec<String>,
    pub exclude_relations: Vec<String>,
    pub include_schemas: Vec<String>,
    pub exclude_schemas: Vec<String>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            timestamp: "20250301101500".into(),
            segments: 3,
            compression: Compression::Gzip,
            single_data_file: false,
            layout: WriterLayout::PerContent {
                prefix: "gpseg".into(),
            },
            backup_version: "1.30.5".into(),
            written_by: String::new(),
            base: None,
            coordinator_dir: None,
            filters: SetFilters::default(),
        }
    }
}

/// One table of the source, names quoted as in the toc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `(a,b,...)`: the columns in attnum order, generated ones left out.
    pub attributestring: String,
    pub replicated: bool,
}

impl SourceTable {
    pub fn fqn(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A sequence's position (`SELECT pg_catalog.setval(...)` in metadata.sql).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceValue {
    pub schema: String,
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

/// The names under which the segments write one table's files themselves (`<SEGID>` is the
/// content id, replaced by the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFiles {
    pub dir: String,
    pub file: String,
    pub compression: Compression,
}

impl SegmentFiles {
    /// The shell program each segment runs with its COPY output on stdin: create its own
    /// directory (as the server's OS user, on its own host) and compress into its file.
    pub fn write_program(&self) -> String {
        format!(
            "mkdir -p {} && {} > {}",
            shell_quote(&self.dir),
            self.compression.compress_command(),
            shell_quote(&self.file)
        )
    }
}

/// What a set is made from. The writer asks; the source talks to the database.
pub trait SetSource {
    /// `quote_ident(current_database())` and `version()`.
    fn database(&mut self) -> Result<(String, String)>;
    /// The tables whose data goes into the set, in the order it is written.
    fn tables(&mut self) -> Result<Vec<SourceTable>>;
    /// Sequences of the set and their positions.
    fn sequences(&mut self) -> Result<Vec<SequenceValue>>;
    /// An identifier quoted as the server's `quote_ident` does (toc names are written so).
    fn quote_ident(&mut self, name: &str) -> Result<String>;
    /// Several identifiers quoted as [`SetSource::quote_ident`] does, in order; one round trip
    /// where the source can.
    fn quote_idents(&mut self, names: &[String]) -> Result<Vec<String>> {
        names.iter().map(|n| self.quote_ident(n)).collect()
    }
    /// A `pg_dump` command for the set's schema; the writer adds `--schema-only
    /// --format=custom --file=...` and renders the archive's sections with [`SetSource::pg_restore`].
    fn pg_dump(&mut self) -> Result<Command>;
    /// A `pg_restore` command that reads [`SetSource::pg_dump`]'s archives (no server: the
    /// writer adds `--section=... --file=... <archive>`); by default [`pg_restore_beside`] it.
    fn pg_restore(&mut self) -> Result<Command> {
        Ok(pg_restore_beside(&self.pg_dump()?))
    }
    /// Whether the segments write the data files themselves ([`SetSource::segments_write`])
    /// instead of handing rows to the writer ([`SetSource::content_rows`]).
    fn segments_write_files(&self) -> bool {
        false
    }
    /// Content `c`'s rows of `t` (of `n` contents) as gpbackup's CSV into `out`; returns them.
    fn content_rows(
        &mut self,
        t: &SourceTable,
        c: usize,
        n: usize,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let _ = (t, c, n, out);
        Err(werr("this source lets the segments write their own files"))
    }
    /// Every segment writes its own rows of `t` into `files`; returns the rows of all segments.
    fn segments_write(&mut self, t: &SourceTable, files: &SegmentFiles) -> Result<u64> {
        let _ = (t, files);
        Err(werr("this source hands its rows to the writer"))
    }
}

/// One table as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenTable {
    pub oid: u32,
    /// Distinct rows of the table (what a restore must load).
    pub rows: u64,
    /// Rows in each content's piece.
    pub rows_per_content: Vec<u64>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct WrittenSet {
    pub timestamp: String,
    pub coordinator_dir: PathBuf,
    /// By quoted `schema.table`; tables taken from an incremental base are not included.
    pub tables: BTreeMap<String, WrittenTable>,
    pub files: Vec<PathBuf>,
}

fn werr(msg: impl Into<String>) -> Error {
    Error::Writer(msg.into())
}

/// The directory of `content` (-1: the coordinator) under `root`.
pub fn dir_for(root: &Path, layout: &WriterLayout, content: i32, ts: &str) -> PathBuf {
    let tail = PathBuf::from("backups").join(&ts[..8]).join(ts);
    match layout {
        WriterLayout::PerContent { prefix } => root.join(format!("{prefix}{content}")).join(tail),
        WriterLayout::SingleDir => root.join(tail),
        WriterLayout::Flat => root.to_path_buf(),
    }
}

/// Writes a backup set of what `source` supplies under `root`.
pub fn write_backup_set(
    source: &mut dyn SetSource,
    root: &Path,
    opts: &WriterOptions,
) -> Result<WrittenSet> {
    if !is_timestamp(&opts.timestamp) {
        return Err(Error::InvalidTimestamp(opts.timestamp.clone()));
    }
    if opts.segments == 0 {
        return Err(werr("segments must be at least 1"));
    }
    let ts = opts.timestamp.as_str();
    let coord_dir = opts
        .coordinator_dir
        .clone()
        .unwrap_or_else(|| dir_for(root, &opts.layout, -1, ts));
    let on_segments = source.segments_write_files();
    if on_segments && opts.single_data_file {
        return Err(werr("sets the segments write have one file per table and segment; single-data-file needs gpbackup's helper"));
    }
    // Segment directories are the segments' own business when they write the files.
    let local_contents = if on_segments {
        -1..0
    } else {
        -1..opts.segments as i32
    };
    for c in local_contents {
        let d = match c {
            -1 => coord_dir.clone(),
            _ => dir_for(root, &opts.layout, c, ts),
        };
        fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    let mut files = Vec::new();
    let schema = SchemaDump::start(source, &coord_dir, ts)?;

    let base_tables: Vec<String> = opts
        .base
        .as_ref()
        .map(|b| b.tables.clone())
        .unwrap_or_default();
    let tables: Vec<SourceTable> = source
        .tables()?
        .into_iter()
        .filter(|t| !base_tables.contains(&t.fqn()))
        .collect();
    let per_content_rows = if on_segments {
        write_on_segments(source, root, opts, &tables)?
    } else if opts.single_data_file {
        write_single_files(source, root, opts, &tables, &mut files)?
    } else {
        write_table_files(source, root, opts, &tables, &mut files)?
    };
    let mut toc = Toc::default();
    let metadata_path = coord_dir.join(format!("gpbackup_{ts}_metadata.sql"));
    write_metadata(source, &metadata_path, &mut toc, schema)?;
    files.insert(0, metadata_path);
    let mut written = BTreeMap::new();
    for (t, rows) in tables.iter().zip(per_content_rows) {
        let sum: u64 = rows.iter().sum();
        toc.dataentries.push(DataEntry {
            schema: t.schema.clone(),
            name: t.name.clone(),
            oid: t.oid,
            attributestring: t.attributestring.clone(),
            rowscopied: sum as i64,
            partitionroot: String::new(),
            isreplicated: t.replicated,
            distbyenum: false,
        });
        let distinct = if t.replicated { rows[0] } else { sum };
        written.insert(
            t.fqn(),
            WrittenTable {
                oid: t.oid,
                rows: distinct,
                rows_per_content: rows,
            },
        );
    }
    let toc_path = coord_dir.join(format!("gpbackup_{ts}_toc.yaml"));
    crate::yaml::write_file(&toc_path, &toc)?;
    files.push(toc_path);
    let (dbname, version) = source.database()?;
    files.extend(write_config_and_report(
        root, &coord_dir, opts, &tables, dbname, version,
    )?);
    Ok(WrittenSet {
        timestamp: ts.to_string(),
        coordinator_dir: coord_dir,
        tables: written,
        files,
    })
}

/// The segments write every table's files; the server reports one total per table.
fn write_on_segments(
    source: &mut dyn SetSource,
    root: &Path,
    opts: &WriterOptions,
    tables: &[SourceTable],
) -> Result<Vec<Vec<u64>>> {
    let ts = opts.timestamp.as_str();
    let n = opts.segments as usize;
    let dir = dir_for(root, &opts.layout, 0, ts);
    // The content id inside the layout's directory and file names is the server's <SEGID>.
    let dir_template = match &opts.layout {
        WriterLayout::PerContent { prefix } => {
            let own = root.join(format!("{prefix}0"));
            let rest = dir.strip_prefix(&own).unwrap_or(&dir);
            root.join(format!("{prefix}<SEGID>")).join(rest)
        }
        _ => dir,
    };
    let dir_template = dir_template.display().to_string();
    let mut out = Vec::with_capacity(tables.len());
    for t in tables {
        let files = SegmentFiles {
            file: format!(
                "{dir_template}/gpbackup_<SEGID>_{ts}_{}{}",
                t.oid,
                opts.compression.extension()
            ),
            dir: dir_template.clone(),
            compression: opts.compression,
        };
        let total = source.segments_write(t, &files)?;
        let mut rows = vec![0u64; n];
        // A replicated table is held once per content.
        if t.replicated {
            rows.iter_mut().for_each(|r| *r = total / n as u64);
        } else {
            rows[0] = total;
        }
        out.push(rows);
    }
    Ok(out)
}

/// One compressed stream per content holding every table, with a segment toc of offsets.
fn write_single_files(
    source: &mut dyn SetSource,
    root: &Path,
    opts: &WriterOptions,
    tables: &[SourceTable],
    files: &mut Vec<PathBuf>,
) -> Result<Vec<Vec<u64>>> {
    let ts = opts.timestamp.as_str();
    let n = opts.segments as usize;
    let mut per_content_rows: Vec<Vec<u64>> = vec![vec![0; n]; tables.len()];
    for c in 0..n {
        let dir = dir_for(root, &opts.layout, c as i32, ts);
        let path = dir.join(format!("gpbackup_{c}_{ts}{}", opts.compression.extension()));
        let mut out = Encoder::new(AtomicFile::create(&path)?, opts.compression, &path)?;
        let mut seg_toc = SegmentToc::default();
        for (t, rows) in tables.iter().zip(per_content_rows.iter_mut()) {
            let start = out.written;
            rows[c] = source.content_rows(t, c, n, &mut out)?;
            seg_toc.dataentries.insert(
                t.oid,
                SegmentDataEntry {
                    startbyte: start,
                    endbyte: out.written,
                },
            );
        }
        out.finish()?.commit()?;
        let toc_path = dir.join(format!("gpbackup_{c}_{ts}_toc.yaml"));
        crate::yaml::write_file(&toc_path, &seg_toc)?;
        files.push(path);
        files.push(toc_path);
    }
    Ok(per_content_rows)
}

/// One compressed file per table and content.
fn write_table_files(
    source: &mut dyn SetSource,
    root: &Path,
    opts: &WriterOptions,
    tables: &[SourceTable],
    files: &mut Vec<PathBuf>,
) -> Result<Vec<Vec<u64>>> {
    let ts = opts.timestamp.as_str();
    let n = opts.segments as usize;
    let mut per_content_rows: Vec<Vec<u64>> = vec![vec![0; n]; tables.len()];
    for (t, rows) in tables.iter().zip(per_content_rows.iter_mut()) {
        for (c, slot) in rows.iter_mut().enumerate() {
            let dir = dir_for(root, &opts.layout, c as i32, ts);
            let path = dir.join(format!(
                "gpbackup_{c}_{ts}_{}{}",
                t.oid,
                opts.compression.extension()
            ));
            let mut out = Encoder::new(AtomicFile::create(&path)?, opts.compression, &path)?;
            *slot = source.content_rows(t, c, n, &mut out)?;
            out.finish()?.commit()?;
            files.push(path);
        }
    }
    Ok(per_content_rows)
}

fn write_config_and_report(
    root: &Path,
    coord_dir: &Path,
    opts: &WriterOptions,
    tables: &[SourceTable],
    databasename: String,
    databaseversion: String,
) -> Result<Vec<PathBuf>> {
    let ts = opts.timestamp.as_str();
    let mut plan = Vec::new();
    if let Some(base) = &opts.base {
        plan.push(RestorePlanEntry {
            timestamp: base.timestamp.clone(),
            tablefqns: base.tables.clone(),
        });
    }
    plan.push(RestorePlanEntry {
        timestamp: ts.to_string(),
        tablefqns: tables.iter().map(SourceTable::fqn).collect(),
    });
    let f = &opts.filters;
    let config = BackupConfig {
        backupdir: match opts.layout {
            WriterLayout::Flat => String::new(),
            _ => root.display().to_string(),
        },
        backupversion: opts.backup_version.clone(),
        compressed: opts.compression != Compression::None,
        compressiontype: match opts.compression {
            Compression::Zstd => "zstd".into(),
            _ => "gzip".into(),
        },
        databasename,
        databaseversion,
        segmentcount: i64::from(opts.segments),
        includerelations: f.include_relations.clone(),
        includetablefiltered: !f.include_relations.is_empty(),
        excluderelations: f.exclude_relations.clone(),
        excludetablefiltered: !f.exclude_relations.is_empty(),
        includeschemas: f.include_schemas.clone(),
        includeschemafiltered: !f.include_schemas.is_empty(),
        excludeschemas: f.exclude_schemas.clone(),
        excludeschemafiltered: !f.exclude_schemas.is_empty(),
        incremental: opts.base.is_some(),
        leafpartitiondata: opts.base.is_some(),
        restoreplan: Some(plan),
        singledatafile: opts.single_data_file,
        timestamp: ts.to_string(),
        endtime: ts.to_string(),
        status: "Success".into(),
        writtenby: opts.written_by.clone(),
        ..Default::default()
    };
    let config_path = coord_dir.join(format!("gpbackup_{ts}_config.yaml"));
    crate::yaml::write_file(&config_path, &config)?;
    let report_path = coord_dir.join(format!("gpbackup_{ts}_report"));
    let writer = if opts.written_by.is_empty() {
        "the cbtools set writer"
    } else {
        opts.written_by.as_str()
    };
    let report = format!(
        "Backup Report (written by {writer})\n\ntimestamp key:      {ts}\ndatabase name:      {}\ncompression:        {}\ndata file format:   {}\nsegment count:      {}\nbackup status:      Success\n",
        config.databasename,
        opts.compression.name(),
        if opts.single_data_file { "Single Data File Per Segment" } else { "Multiple Data Files Per Segment" },
        opts.segments
    );
    let mut file = AtomicFile::create(&report_path)?;
    file.write_all(report.as_bytes())
        .map_err(|e| Error::io(&report_path, e))?;
    file.commit()?;
    Ok(vec![config_path, report_path])
}

/// Single-quotes a word for the shell that runs a segment's COPY program.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.inner {
            EncoderKind::Plain(f) => f.write(buf)?,
            EncoderKind::Gzip(g) => g.write(buf)?,
            EncoderKind::Zstd(z) => z.write(buf)?,
        };
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            EncoderKind::Plain(f) => f.flush(),
            EncoderKind::Gzip(g) => g.flush(),
            EncoderKind::Zstd(z) => z.flush(),
        }
    }
}

/// A compressing writer that counts the uncompressed bytes (segment toc offsets).
struct Encoder {
    inner: EncoderKind,
    written: u64,
    path: PathBuf,
}

enum EncoderKind {
    Plain(AtomicFile),
    Gzip(flate2::write::GzEncoder<AtomicFile>),
    Zstd(zstd::stream::write::Encoder<'static, AtomicFile>),
}

impl Encoder {
    fn new(file: AtomicFile, compression: Compression, path: &Path) -> Result<Encoder> {
        let inner = match compression {
            Compression::None => EncoderKind::Plain(file),
            Compression::Gzip => EncoderKind::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::fast(),
            )),
            Compression::Zstd => EncoderKind::Zstd(
                zstd::stream::write::Encoder::new(file, 1).map_err(|e| Error::io(path, e))?,
            ),
        };
        Ok(Encoder {
            inner,
            written: 0,
            path: path.to_path_buf(),
        })
    }

    fn finish(self) -> Result<AtomicFile> {
        let path = self.path;
        match self.inner {
            EncoderKind::Plain(f) => Ok(f),
            EncoderKind::Gzip(g) => g.finish().map_err(|e| Error::io(&path, e)),
            EncoderKind::Zstd(z) => z.finish().map_err(|e| Error::io(&path, e)),
        }
    }
}

/// The set's schema: ONE `pg_dump --schema-only --format=custom` run into a hidden scratch
/// directory of the coordinator's directory (removed when this is dropped), rendered into
/// pre-data and post-data by `pg_restore --section=... -f` (no server): the same code pg_dump's
/// plain output runs, so each section is byte for byte what a `pg_dump --schema-only
/// --section=...` run on the same snapshot writes, comments and ACLs in their object's section
/// (checked on the stand-in's pagila and test databases). Two pg_dump runs cost 0.27 s of catalog
/// reads each on the Greenplum-7 stand-in, CPU the segments' COPY needed on 2 cores. All of it
/// runs on a thread started before the data is copied: the two pg_restore runs (11 ms each,
/// 20-60 ms under load) done after the data were on the critical path of a 2M-row set.
struct SchemaDump {
    /// pg_dump until the rendering thread takes it to wait for it (a drop kills it before).
    dump: Arc<Mutex<Option<std::process::Child>>>,
    rendered: Option<std::thread::JoinHandle<Result<()>>>,
    scratch: ScratchDir,
}

impl SchemaDump {
    fn start(source: &mut dyn SetSource, coord_dir: &Path, ts: &str) -> Result<SchemaDump> {
        let scratch = ScratchDir::create(coord_dir.join(format!(".gpbackup_{ts}_schema")))?;
        let archive = scratch.0.join("schema.dump");
        let mut cmd = source.pg_dump()?;
        cmd.args(["--schema-only", "--format=custom", "--compress=0", "--file"])
            .arg(&archive);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| werr(format!("running pg_dump: {e}")))?;
        let stderr = child.stderr.take();
        let dump = Arc::new(Mutex::new(Some(child)));
        let mut renders = Vec::new();
        for section in SECTIONS {
            let mut r = source.pg_restore()?;
            r.arg(format!("--section={section}"))
                .arg("--file")
                .arg(scratch.0.join(format!("{section}.sql")))
                .arg(&archive);
            renders.push((section, r));
        }
        let waiter = Arc::clone(&dump);
        let rendered = std::thread::spawn(move || render(&waiter, stderr, renders));
        Ok(SchemaDump {
            dump,
            rendered: Some(rendered),
            scratch,
        })
    }

    /// Waits until both sections are rendered.
    fn finish(&mut self) -> Result<()> {
        match self.rendered.take().map(|h| h.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(werr("rendering the schema: the thread panicked")),
            None => Err(werr("rendering the schema: already waited for")),
        }
    }

    /// `section`'s plain SQL (after [`SchemaDump::finish`]).
    fn section(&self, section: &str) -> Result<fs::File> {
        let out = self.scratch.0.join(format!("{section}.sql"));
        fs::File::open(&out).map_err(|e| Error::io(&out, e))
    }
}

const SECTIONS: [&str; 2] = ["pre-data", "post-data"];

/// The rendering thread: waits for pg_dump (its error output is the message when it failed),
/// then runs both pg_restore commands at once.
fn render(
    dump: &Mutex<Option<std::process::Child>>,
    stderr: Option<std::process::ChildStderr>,
    renders: Vec<(&'static str, Command)>,
) -> Result<()> {
    let mut message = String::new();
    if let Some(mut e) = stderr {
        // Until pg_dump exits (or is killed by a drop).
        let _ = io::Read::read_to_string(&mut e, &mut message);
    }
    let child = dump.lock().unwrap_or_else(|p| p.into_inner()).take();
    let status = match child {
        Some(mut c) => c
            .wait()
            .map_err(|e| werr(format!("waiting for pg_dump: {e}")))?,
        None => return Err(werr("pg_dump was stopped")),
    };
    if !status.success() {
        return Err(werr(format!("pg_dump failed: {}", message.trim_end())));
    }
    let mut running = Vec::new();
    for (section, mut cmd) in renders {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| werr(format!("running pg_restore: {e}")))?;
        running.push((section, child));
    }
    for (section, child) in running {
        let done = child
            .wait_with_output()
            .map_err(|e| werr(format!("waiting for pg_restore: {e}")))?;
        if !done.status.success() {
            return Err(werr(format!(
                "pg_restore --section={section} failed: {}",
                String::from_utf8_lossy(&done.stderr).trim_end()
            )));
        }
    }
    Ok(())
}

impl Drop for SchemaDump {
    fn drop(&mut self) {
        // An early error: pg_dump must not outlive the set it was dumping for, and the thread
        // must be done with the scratch directory before it goes.
        if let Some(c) = self.dump.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = c.kill();
        }
        if let Some(h) = self.rendered.take() {
            let _ = h.join();
        }
    }
}

/// A directory removed with everything in it when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn create(path: PathBuf) -> Result<ScratchDir> {
        fs::create_dir(&path).map_err(|e| Error::io(&path, e))?;
        Ok(ScratchDir(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The pg_restore beside `pg_dump`'s program (the same installation reads its archives), with
/// its environment and the options pg_dump takes but, for an archive, leaves to pg_restore.
pub fn pg_restore_beside(pg_dump: &Command) -> Command {
    let program = Path::new(pg_dump.get_program()).with_file_name("pg_restore");
    let mut cmd = Command::new(program);
    for (key, value) in pg_dump.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    const RENDERING: [&str; 12] = [
        "-O",
        "--no-owner",
        "-x",
        "--no-acl",
        "--no-privileges",
        "--no-comments",
        "--no-publications",
        "--no-security-labels",
        "--no-subscriptions",
        "--no-tablespaces",
        "--no-table-access-method",
        "--use-set-session-authorization",
    ];
    // The value of an option (a `-t` pattern, say) is never taken for an option of its own.
    let mut previous_takes_value = false;
    for arg in pg_dump.get_args() {
        let a = arg.to_string_lossy();
        if !previous_takes_value && RENDERING.contains(&a.as_ref()) {
            cmd.arg(arg);
        }
        previous_takes_value = !previous_takes_value && TAKES_VALUE.contains(&a.as_ref());
    }
    cmd
}

/// pg_dump's options that take their value as the next argument.
const TAKES_VALUE: [&str; 34] = [
    "-d",
    "-h",
    "-p",
    "-U",
    "-t",
    "-T",
    "-n",
    "-N",
    "-f",
    "-F",
    "-j",
    "-Z",
    "-E",
    "-S",
    "--dbname",
    "--host",
    "--port",
    "--username",
    "--table",
    "--exclude-table",
    "--schema",
    "--exclude-schema",
    "--file",
    "--format",
    "--jobs",
    "--compress",
    "--encoding",
    "--superuser",
    "--role",
    "--snapshot",
    "--lock-wait-timeout",
    "--exclude-table-data",
    "--section",
    "--extra-float-digits",
];

/// metadata.sql: SESSION GUCS, pg_dump's pre-data entries, sequence positions, post-data entries.
fn write_metadata(
    source: &mut dyn SetSource,
    path: &Path,
    toc: &mut Toc,
    mut schema: SchemaDump,
) -> Result<()> {
    schema.finish()?;
    let mut out = CountingFile {
        file: AtomicFile::create(path)?,
        pos: 0,
        path: path.to_path_buf(),
    };
    let session = "\nSET client_encoding = 'UTF8';\n";
    let start = out.pos;
    out.put(session.as_bytes())?;
    toc.globalentries.push(MetadataEntry {
        objecttype: "SESSION GUCS".into(),
        startbyte: start,
        endbyte: out.pos,
        ..Default::default()
    });
    let quoted = quoted_names(source, &schema)?;
    let mut rels = Relations::default();
    for section in SECTIONS {
        let sql = schema.section(section)?;
        let mut emit = |header: DumpHeader, body: String| -> Result<()> {
            let mut quote = |name: &str| match quoted.get(name) {
                Some(q) => Ok(q.clone()),
                None => source.quote_ident(name),
            };
            let mut entry = entry_for(&mut quote, &mut rels, &header, &body)?;
            entry.startbyte = out.pos;
            out.put(b"\n\n")?;
            out.put(body.as_bytes())?;
            entry.endbyte = out.pos;
            out.put(b"\n")?;
            if section == "pre-data" {
                toc.predataentries.push(entry);
            } else {
                toc.postdataentries.push(entry);
            }
            Ok(())
        };
        split_dump(BufReader::new(sql), &mut emit)
            .map_err(|e| werr(format!("reading pg_dump's {section} output: {e}")))?;
        if section == "pre-data" {
            write_sequence_values(source, &mut out, toc)?;
        }
    }
    out.file.commit()
}

/// Every identifier the toc entries of both sections name, quoted by the source in one call
/// (a first pass over the rendered sections): asked one at a time, pagila's 500 names were 500
/// round trips, 0.26 s after the last table's COPY on the stand-in.
fn quoted_names(
    source: &mut dyn SetSource,
    schema: &SchemaDump,
) -> Result<std::collections::HashMap<String, String>> {
    let mut names: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut rels = Relations::default();
    for section in SECTIONS {
        let sql = schema.section(section)?;
        split_dump(BufReader::new(sql), |header, body| {
            let mut note = |name: &str| {
                if seen.insert(name.to_string()) {
                    names.push(name.to_string());
                }
                Ok(name.to_string())
            };
            entry_for(&mut note, &mut rels, &header, &body).map(|_| ())
        })
        .map_err(|e| werr(format!("reading pg_dump's {section} output: {e}")))?;
    }
    let quoted = source.quote_idents(&names)?;
    if quoted.len() != names.len() {
        return Err(werr(format!(
            "quoting {} names gave {}",
            names.len(),
            quoted.len()
        )));
    }
    Ok(names.into_iter().zip(quoted).collect())
}

fn write_sequence_values(
    source: &mut dyn SetSource,
    out: &mut CountingFile,
    toc: &mut Toc,
) -> Result<()> {
    for s in source.sequences()? {
        let (schema, name, last, called) = (s.schema, s.name, s.last_value, s.is_called);
        let fqn = format!("{schema}.{name}");
        let literal = fqn.replace('\'', "''");
        let sql = format!("\n\nSELECT pg_catalog.setval('{literal}', {last}, {called});");
        let start = out.pos;
        out.put(sql.as_bytes())?;
        toc.predataentries.push(MetadataEntry {
            schema,
            name,
            objecttype: "SEQUENCE".into(),
            startbyte: start,
            endbyte: out.pos,
            ..Default::default()
        });
        out.put(b"\n")?;
    }
    Ok(())
}

struct CountingFile {
    file: AtomicFile,
    pos: u64,
    path: PathBuf,
}

impl CountingFile {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.file
            .write_all(b)
            .map_err(|e| Error::io(&self.path, e))?;
        self.pos += b.len() as u64;
        Ok(())
    }
}

/// A pg_dump object header: `-- Name: <name>; Type: <type>; Schema: <schema>; Owner: <owner>`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DumpHeader {
    name: String,
    kind: String,
    schema: Option<String>,
}

fn parse_header(line: &str) -> Option<DumpHeader> {
    let rest = line.strip_prefix("-- Name: ")?;
    let (name, rest) = rest.split_once("; Type: ")?;
    let (kind, rest) = rest.split_once("; Schema: ")?;
    let schema = rest.split_once("; Owner: ").map(|(s, _)| s).unwrap_or(rest);
    Some(DumpHeader {
        name: name.to_string(),
        kind: kind.to_string(),
        schema: (schema != "-").then(|| schema.to_string()),
    })
}

/// Lines of pg_dump output that are session plumbing rather than object DDL.
fn is_plumbing(line: &str) -> bool {
    line.starts_with("\\restrict")
        || line.starts_with("\\unrestrict")
        || line.starts_with("SELECT pg_catalog.set_config('search_path'")
}

/// pg_dump's per-object settings: written once when they change, before the next object's
/// header, so each chunk that needs them gets the ones in force repeated at its start.
#[derive(Default)]
struct ObjectSettings {
    access_method: Option<String>,
    tablespace: Option<String>,
}

impl ObjectSettings {
    /// Remembers `line` if it is one of them.
    fn take(&mut self, line: &str) -> bool {
        if line.starts_with("SET default_table_access_method") {
            self.access_method = Some(line.to_string());
        } else if line.starts_with("SET default_tablespace") {
            self.tablespace = Some(line.to_string());
        } else {
            return false;
        }
        true
    }

    /// The SET lines a chunk of this kind starts with.
    fn prefix(&self, kind: &str) -> String {
        let mut out = String::new();
        let relation = matches!(kind, "TABLE" | "MATERIALIZED VIEW");
        if relation || matches!(kind, "INDEX" | "CONSTRAINT") {
            if let Some(t) = &self.tablespace {
                out.push_str(t);
                out.push('\n');
            }
        }
        if relation {
            if let Some(am) = &self.access_method {
                out.push_str(am);
                out.push('\n');
            }
        }
        out
    }
}

/// Splits plain pg_dump output into (header, body) pairs, line by line.
fn split_dump(
    reader: impl BufRead,
    mut emit: impl FnMut(DumpHeader, String) -> Result<()>,
) -> io::Result<()> {
    let mut current: Option<(DumpHeader, String)> = None;
    let mut flush = |cur: Option<(DumpHeader, String)>| -> io::Result<()> {
        if let Some((h, body)) = cur {
            let mut body = body.trim_end().to_string();
            // The "--" opening the next header belongs to the header.
            while body.ends_with("--") {
                body.truncate(body.len() - 2);
                body = body.trim_end().to_string();
            }
            let body = body.trim_start_matches('\n').to_string();
            let only_settings = body
                .lines()
                .all(|l| l.trim().is_empty() || l.starts_with("SET default_"));
            if !only_settings {
                emit(h, body).map_err(|e| io::Error::other(e.to_string()))?;
            }
        }
        Ok(())
    };
    let mut skip_closing_dashes = false;
    let mut settings = ObjectSettings::default();
    for line in reader.lines() {
        let line = line?;
        if skip_closing_dashes {
            skip_closing_dashes = false;
            if line == "--" {
                continue;
            }
        }
        if settings.take(&line) {
            continue;
        }
        if let Some(h) = parse_header(&line) {
            flush(current.take())?;
            let prefix = settings.prefix(&h.kind);
            current = Some((h, prefix));
            skip_closing_dashes = true;
            continue;
        }
        if line.starts_with("-- PostgreSQL database dump complete") {
            flush(current.take())?;
            return Ok(());
        }
        if let Some((_, body)) = current.as_mut() {
            if !is_plumbing(&line) {
                body.push_str(&line);
                body.push('\n');
            }
        }
    }
    flush(current.take())
}

/// The toc entry gpbackup would write for a pg_dump object.
fn entry_for(
    quote: &mut dyn FnMut(&str) -> Result<String>,
    rels: &mut Relations,
    h: &DumpHeader,
    body: &str,
) -> Result<MetadataEntry> {
    rels.note(h);
    let schema = match &h.schema {
        Some(s) => quote(s)?,
        None => String::new(),
    };
    let mut entry = MetadataEntry {
        schema: schema.clone(),
        ..Default::default()
    };
    let (objecttype, name, reference) = match h.kind.as_str() {
        // "<table> <object>" names.
        "CONSTRAINT" | "FK CONSTRAINT" | "TRIGGER" | "RULE" | "POLICY" => {
            let (table, obj) = rels.split_table_first(h);
            let kind = if h.kind == "FK CONSTRAINT" {
                "CONSTRAINT".to_string()
            } else {
                h.kind.clone()
            };
            (kind, quote(obj)?, format!("{schema}.{}", quote(table)?))
        }
        // "<publication> <table>": the membership follows its table in a filtered restore.
        "PUBLICATION TABLE" => {
            let (publication, table) = rels.split_table_last(h);
            let reference = format!("{schema}.{}", quote(table)?);
            (h.kind.clone(), quote(publication)?, reference)
        }
        "DEFAULT" => {
            let (table, _column) = rels.split_table_first(h);
            ("TABLE".to_string(), quote(table)?, String::new())
        }
        "SEQUENCE OWNED BY" => {
            let reference = body
                .split_once(" OWNED BY ")
                .and_then(|(_, r)| r.trim().trim_end_matches(';').rsplit_once('.'))
                .map(|(table, _col)| table.to_string())
                .unwrap_or_default();
            ("SEQUENCE OWNER".to_string(), quote(&h.name)?, reference)
        }
        "ACL" | "COMMENT" => {
            // "TABLE t", "SCHEMA s", "COLUMN t.c", "FUNCTION f(integer)", ... The object is SQL
            // already (pg_dump's fmtId: quoted where needed), and the Greenplum-7 family's
            // pg_dump writes a table's or view's comment schema-qualified with a trailing space
            // (`TABLE public.orders `): its last name is the entry's, as it stands.
            let (kind, obj) = h.name.split_once(' ').unwrap_or(("", h.name.as_str()));
            let parts = sql_name_parts(obj);
            match kind {
                "COLUMN" => {
                    let table = parts.iter().rev().nth(1).cloned().unwrap_or_default();
                    ("TABLE".to_string(), table, String::new())
                }
                "TABLE" | "SCHEMA" | "SEQUENCE" | "VIEW" | "TYPE" | "DOMAIN" | "EXTENSION"
                | "INDEX" => {
                    let name = parts.last().cloned().unwrap_or_default();
                    if kind == "SCHEMA" {
                        entry.schema = name.clone();
                    }
                    (kind.to_string(), name, String::new())
                }
                _ => (kind.to_string(), obj.to_string(), String::new()),
            }
        }
        "FUNCTION" | "PROCEDURE" | "AGGREGATE" => (h.kind.clone(), h.name.clone(), String::new()),
        "SCHEMA" => {
            let name = quote(&h.name)?;
            entry.schema = name.clone();
            ("SCHEMA".to_string(), name, String::new())
        }
        "INDEX" => (h.kind.clone(), quote(&h.name)?, index_table(body)),
        other => (other.to_string(), quote(&h.name)?, String::new()),
    };
    entry.objecttype = objecttype;
    entry.name = name;
    entry.referenceobject = reference;
    Ok(entry)
}

/// The relations pg_dump has named so far (pre-data comes first), by schema. pg_dump tags a
/// table's constraints, triggers, rules, policies and defaults `<table> <object>`, and a
/// publication's tables `<publication> <table>`, in plain text: where a name holds a space, only
/// the known tables tell where one name ends (`B b B b_pkey` is the key `B b_pkey` of `B b`).
#[derive(Default)]
struct Relations(std::collections::HashMap<String, std::collections::HashSet<String>>);

impl Relations {
    fn note(&mut self, h: &DumpHeader) {
        if matches!(
            h.kind.as_str(),
            "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "FOREIGN TABLE"
        ) {
            let schema = h.schema.clone().unwrap_or_default();
            self.0.entry(schema).or_default().insert(h.name.clone());
        }
    }

    fn known(&self, h: &DumpHeader, table: &str) -> bool {
        let schema = h.schema.as_deref().unwrap_or_default();
        self.0.get(schema).is_some_and(|t| t.contains(table))
    }

    /// `<table> <object>`: the longest known table, else up to the first space.
    fn split_table_first<'h>(&self, h: &'h DumpHeader) -> (&'h str, &'h str) {
        let name = h.name.as_str();
        let mut spaces = name.match_indices(' ').map(|(i, _)| i).rev();
        match spaces.find(|&i| self.known(h, &name[..i])) {
            Some(i) => (&name[..i], &name[i + 1..]),
            None => name.split_once(' ').unwrap_or(("", name)),
        }
    }

    /// `<publication> <table>`: the longest known table, else after the first space.
    fn split_table_last<'h>(&self, h: &'h DumpHeader) -> (&'h str, &'h str) {
        let name = h.name.as_str();
        let mut spaces = name.match_indices(' ').map(|(i, _)| i);
        match spaces.find(|&i| self.known(h, &name[i + 1..])) {
            Some(i) => (&name[..i], &name[i + 1..]),
            None => name.split_once(' ').unwrap_or((name, "")),
        }
    }
}

/// The dot-separated names of a (possibly qualified) SQL name, each as written (quotes kept),
/// split outside double quotes and trimmed.
fn sql_name_parts(sql: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    for ch in sql.trim().chars() {
        match ch {
            '"' => quoted = !quoted,
            '.' if !quoted => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(ch);
        }
    }
    parts.into_iter().map(|p| p.trim().to_string()).collect()
}

/// The relation of `CREATE INDEX ... ON [ONLY] <relation> USING ...` (gpbackup records it as the
/// index entry's `referenceobject`).
fn index_table(body: &str) -> String {
    let masked = crate::sqltext::mask(body.as_bytes());
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        memchr::memmem::find(&hay[from..], needle).map(|p| p + from)
    };
    let Some(on) = find(&masked, b" ON ", 0) else {
        return String::new();
    };
    let mut start = on + 4;
    if masked[start..].starts_with(b"ONLY ") {
        start += 5;
    }
    let Some(using) = find(&masked, b" USING ", start) else {
        return String::new();
    };
    body[start..using].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_indexed_relation() {
        assert_eq!(
            index_table("CREATE INDEX \"a ON b\" ON ONLY \"S\".\"T USING x\" USING btree (v);"),
            "\"S\".\"T USING x\""
        );
    }

    #[test]
    fn tags_of_names_with_spaces_split_at_a_known_table() {
        let header = |name: &str, kind: &str| DumpHeader {
            name: name.into(),
            kind: kind.into(),
            schema: Some("public".into()),
        };
        let mut rels = Relations::default();
        rels.note(&header("B b", "TABLE"));
        rels.note(&header("a", "TABLE"));
        let constraint = header("B b B b_pkey", "CONSTRAINT");
        assert_eq!(rels.split_table_first(&constraint), ("B b", "B b_pkey"));
        let trigger = header("a x y", "TRIGGER");
        assert_eq!(rels.split_table_first(&trigger), ("a", "x y"));
        let membership = header("my pub B b", "PUBLICATION TABLE");
        assert_eq!(rels.split_table_last(&membership), ("my pub", "B b"));
        let mut quote = |n: &str| Ok(format!("<{n}>"));
        let e = entry_for(&mut quote, &mut rels, &constraint, "").unwrap();
        assert_eq!(
            (e.name.as_str(), e.referenceobject.as_str()),
            ("<B b_pkey>", "<public>.<B b>")
        );
    }

    #[test]
    fn comment_and_acl_entries_name_their_object_as_pg_dump_quoted_it() {
        let header = |name: &str, kind: &str| DumpHeader {
            name: name.into(),
            kind: kind.into(),
            schema: Some("Sch-1".into()),
        };
        let mut quote = |n: &str| Ok(format!("<{n}>"));
        for (name, kind, want_type, want_name) in [
            (
                "TABLE \"Sch-1\".\"Mixed Case\" ",
                "COMMENT",
                "TABLE",
                "\"Mixed Case\"",
            ),
            ("TABLE public.orders ", "COMMENT", "TABLE", "orders"),
            ("TABLE orders", "ACL", "TABLE", "orders"),
            ("COLUMN \"a.b\".\"Col B\"", "COMMENT", "TABLE", "\"a.b\""),
            ("SCHEMA other", "ACL", "SCHEMA", "other"),
        ] {
            let e = entry_for(
                &mut quote,
                &mut Relations::default(),
                &header(name, kind),
                "",
            )
            .unwrap();
            assert_eq!(
                (e.objecttype.as_str(), e.name.as_str()),
                (want_type, want_name),
                "{name}"
            );
        }
    }

    #[test]
    fn pg_restore_beside_pg_dump_takes_its_rendering_options() {
        let mut dump = Command::new("/opt/pg/bin/pg_dump");
        dump.args([
            "-d",
            "-O",
            "-t",
            "--no-acl",
            "--no-owner",
            "-x",
            "--snapshot=1",
        ])
        .env("LD_LIBRARY_PATH", "/opt/pg/lib");
        let restore = pg_restore_beside(&dump);
        assert_eq!(restore.get_program(), "/opt/pg/bin/pg_restore");
        // "-O" is -d's value and "--no-acl" -t's: only the real options are repeated.
        let args: Vec<_> = restore.get_args().collect();
        assert_eq!(args, ["--no-owner", "-x"]);
        assert_eq!(restore.get_envs().count(), 1);
        assert_eq!(
            pg_restore_beside(&Command::new("pg_dump")).get_program(),
            "pg_restore"
        );
    }

    #[test]
    fn splits_pg_dump_output_at_headers() {
        let dump = "--\n-- PostgreSQL database dump\n--\n\nSET x = 1;\n\n--\n-- Name: s; Type: SCHEMA; Schema: -; Owner: postgres\n--\n\nCREATE SCHEMA s;\n\n\nALTER SCHEMA s OWNER TO postgres;\n\nSET default_tablespace = '';\n\nSET default_table_access_method = ao_column;\n\n--\n-- Name: t; Type: TABLE; Schema: s; Owner: postgres\n--\n\nCREATE TABLE s.t (\n    a integer\n);\n\n\n--\n-- PostgreSQL database dump complete\n--\n";
        let mut got = Vec::new();
        split_dump(dump.as_bytes(), |h, b| {
            got.push((h, b));
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].0,
            DumpHeader {
                name: "s".into(),
                kind: "SCHEMA".into(),
                schema: None
            }
        );
        assert_eq!(
            got[0].1,
            "CREATE SCHEMA s;\n\n\nALTER SCHEMA s OWNER TO postgres;"
        );
        assert_eq!(got[1].0.schema.as_deref(), Some("s"));
        // The per-object settings pg_dump wrote before the header travel with the table.
        assert_eq!(
            got[1].1,
            "SET default_tablespace = '';\nSET default_table_access_method = ao_column;\n\nCREATE TABLE s.t (\n    a integer\n);"
        );
    }
}
