//! Creates realistic gpbackup sets from a live PostgreSQL database, for tests and benchmarks.
//!
//! The set looks like one gpbackup would write on an N-segment cluster: each table's rows are
//! spread over contents 0..N-1 by a hash of the row (`COPY (SELECT ... WHERE mod(hash, N) = c) TO
//! STDOUT (FORMAT csv)`, the same CSV dialect gpbackup uses), compressed with gzip, zstd or
//! nothing, as one file per table and content or one stream per content with a segment toc;
//! metadata.sql is `pg_dump --schema-only` split at its object headers into toc entries with
//! exact byte offsets, preceded by the SESSION GUCS entry; config.yaml and toc.yaml use gpbackup's
//! keys. Replicated tables get a full copy in every content, and an incremental set can take
//! chosen tables from an earlier set through its `restoreplan`.
//!
//! Every file is written under a temporary name and renamed when complete; data streams through
//! (one COPY buffer at a time); pg_dump's output is consumed line by line.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use postgres::Client;

use crate::config::{BackupConfig, Compression, RestorePlanEntry};
use crate::data::RowCounter;
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
    /// Recorded as `backupversion`.
    pub backup_version: String,
    /// Tables (quoted `schema.table`) written as DISTRIBUTED REPLICATED: a full copy per content.
    pub replicated: Vec<String>,
    pub base: Option<IncrementalBase>,
    /// Cloudberry/Greenplum: the segments write their own files with `COPY ... ON SEGMENT`
    /// (server-side, on each segment host) instead of this process writing them.
    pub on_segment: Option<OnSegment>,
}

/// How the segments name their backup directories (`<root>/<prefix><content>/backups/...`,
/// gpbackup's `--backup-dir` layout; the prefix is the coordinator data directory's name
/// without its `-1`).
#[derive(Debug, Clone)]
pub struct OnSegment {
    pub prefix: String,
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
            replicated: Vec::new(),
            base: None,
            on_segment: None,
        }
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

fn dir_for(root: &Path, layout: &WriterLayout, content: i32, ts: &str) -> PathBuf {
    let tail = PathBuf::from("backups").join(&ts[..8]).join(ts);
    match layout {
        WriterLayout::PerContent { prefix } => root.join(format!("{prefix}{content}")).join(tail),
        WriterLayout::SingleDir => root.join(tail),
        WriterLayout::Flat => root.to_path_buf(),
    }
}

struct Table {
    oid: u32,
    schema: String,
    name: String,
    attributestring: String,
    replicated: bool,
}

impl Table {
    fn fqn(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// Writes a backup set of the database `client` is connected to. `pg_dump` makes a pg_dump
/// command already pointed at that database (connection options or PG* environment); the writer
/// adds `--schema-only --section=...`.
pub fn write_backup_set(
    client: &mut Client,
    pg_dump: &dyn Fn() -> Command,
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
    let coord_dir = dir_for(root, &opts.layout, -1, ts);
    // Segment directories are the segments' own business in ON SEGMENT mode.
    let local_contents = if opts.on_segment.is_some() {
        -1..0
    } else {
        -1..opts.segments as i32
    };
    for c in local_contents {
        let d = dir_for(root, &opts.layout, c, ts);
        fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    }
    // No parallel scans: a segment's COPY reads its heap front to back, so each content's rows
    // keep the table's physical order (a Gather would interleave blocks at random).
    client.batch_execute(
        "SET datestyle = ISO; SET intervalstyle = postgres; SET extra_float_digits = 3; SET client_encoding = 'UTF8'; \
         SET max_parallel_workers_per_gather = 0",
    )?;
    let mut files = Vec::new();

    // Metadata first: it is what gpbackup writes first too.
    let mut toc = Toc::default();
    let metadata_path = coord_dir.join(format!("gpbackup_{ts}_metadata.sql"));
    write_metadata(client, pg_dump, &metadata_path, &mut toc)?;
    files.push(metadata_path);

    let base_tables: Vec<String> = opts
        .base
        .as_ref()
        .map(|b| b.tables.clone())
        .unwrap_or_default();
    let tables: Vec<Table> = list_tables(client, &opts.replicated)?
        .into_iter()
        .filter(|t| !base_tables.contains(&t.fqn()))
        .collect();
    let mut written = BTreeMap::new();
    let n = opts.segments as usize;
    let mut per_content_rows: Vec<Vec<u64>> = vec![vec![0; n]; tables.len()];
    if let Some(seg) = &opts.on_segment {
        if opts.single_data_file {
            return Err(werr("ON SEGMENT backups write one file per table and segment; single-data-file needs gpbackup's helper"));
        }
        for (t, rows) in tables.iter().zip(per_content_rows.iter_mut()) {
            let total = copy_on_segment(client, t, root, &seg.prefix, ts, opts.compression)?;
            // The server reports one total; a replicated table holds it once per content.
            if t.replicated {
                rows.iter_mut().for_each(|r| *r = total / n as u64);
            } else {
                rows[0] = total;
            }
        }
    } else if opts.single_data_file {
        for c in 0..n {
            let dir = dir_for(root, &opts.layout, c as i32, ts);
            let path = dir.join(format!("gpbackup_{c}_{ts}{}", opts.compression.extension()));
            let mut out = Encoder::new(AtomicFile::create(&path)?, opts.compression, &path)?;
            let mut seg_toc = SegmentToc::default();
            for (t, rows) in tables.iter().zip(per_content_rows.iter_mut()) {
                let start = out.written;
                rows[c] = copy_piece(client, t, c, n, &mut out)?;
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
    } else {
        for (t, rows) in tables.iter().zip(per_content_rows.iter_mut()) {
            for (c, slot) in rows.iter_mut().enumerate() {
                let dir = dir_for(root, &opts.layout, c as i32, ts);
                let path = dir.join(format!(
                    "gpbackup_{c}_{ts}_{}{}",
                    t.oid,
                    opts.compression.extension()
                ));
                let mut out = Encoder::new(AtomicFile::create(&path)?, opts.compression, &path)?;
                *slot = copy_piece(client, t, c, n, &mut out)?;
                out.finish()?.commit()?;
                files.push(path);
            }
        }
    }
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

    let mut plan = Vec::new();
    if let Some(base) = &opts.base {
        plan.push(RestorePlanEntry {
            timestamp: base.timestamp.clone(),
            tablefqns: base.tables.clone(),
        });
    }
    plan.push(RestorePlanEntry {
        timestamp: ts.to_string(),
        tablefqns: tables.iter().map(Table::fqn).collect(),
    });
    let row = client.query_one("SELECT quote_ident(current_database()), version()", &[])?;
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
        databasename: row.get(0),
        databaseversion: row.get(1),
        segmentcount: i64::from(opts.segments),
        incremental: opts.base.is_some(),
        leafpartitiondata: opts.base.is_some(),
        restoreplan: Some(plan),
        singledatafile: opts.single_data_file,
        timestamp: ts.to_string(),
        endtime: ts.to_string(),
        status: "Success".into(),
        ..Default::default()
    };
    let config_path = coord_dir.join(format!("gpbackup_{ts}_config.yaml"));
    crate::yaml::write_file(&config_path, &config)?;
    files.push(config_path);
    let report_path = coord_dir.join(format!("gpbackup_{ts}_report"));
    let report = format!(
        "Backup Report (written by the cbtools test writer)\n\ntimestamp key:      {ts}\ndatabase name:      {}\ncompression:        {}\ndata file format:   {}\nsegment count:      {}\nbackup status:      Success\n",
        config.databasename,
        opts.compression.name(),
        if opts.single_data_file { "Single Data File Per Segment" } else { "Multiple Data Files Per Segment" },
        opts.segments
    );
    let mut f = AtomicFile::create(&report_path)?;
    f.write_all(report.as_bytes())
        .map_err(|e| Error::io(&report_path, e))?;
    f.commit()?;
    files.push(report_path);
    Ok(WrittenSet {
        timestamp: ts.to_string(),
        coordinator_dir: coord_dir,
        tables: written,
        files,
    })
}

fn list_tables(client: &mut Client, replicated: &[String]) -> Result<Vec<Table>> {
    let rows = client.query(
        "SELECT c.oid, quote_ident(n.nspname), quote_ident(c.relname),
                coalesce((SELECT '(' || string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum) || ')'
                          FROM pg_attribute a
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '')
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
         ORDER BY n.nspname, c.relname",
        &[],
    )?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let (schema, name): (String, String) = (r.get(1), r.get(2));
            let fqn = format!("{schema}.{name}");
            Table {
                oid: r.get(0),
                schema,
                name,
                attributestring: r.get(3),
                replicated: replicated.contains(&fqn),
            }
        })
        .collect())
}

/// Single-quotes for the shell, which runs the segments' COPY program.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The statement gpbackup itself issues: every segment pipes its own rows of `t` through the
/// compressor into `<root>/<prefix><SEGID>/backups/<date>/<ts>/gpbackup_<SEGID>_<ts>_<oid><ext>`
/// on its own host (the server replaces `<SEGID>`). Returns the rows written by all segments.
pub fn on_segment_copy_sql(
    fqn: &str,
    attributestring: &str,
    oid: u32,
    root: &Path,
    prefix: &str,
    ts: &str,
    compression: Compression,
) -> String {
    let dir = format!(
        "{}/{prefix}<SEGID>/backups/{}/{ts}",
        root.display(),
        &ts[..8]
    );
    let file = format!(
        "{dir}/gpbackup_<SEGID>_{ts}_{oid}{}",
        compression.extension()
    );
    let compressor = match compression {
        Compression::Gzip => "gzip -c -1",
        Compression::Zstd => "zstd --compress -1 -c",
        Compression::None => "cat -",
    };
    let program = format!(
        "mkdir -p {} && {compressor} > {}",
        shell_quote(&dir),
        shell_quote(&file)
    );
    format!(
        "COPY {fqn}{attributestring} TO PROGRAM '{}' WITH CSV DELIMITER ',' ON SEGMENT IGNORE EXTERNAL PARTITIONS",
        program.replace('\'', "''")
    )
}

fn copy_on_segment(
    client: &mut Client,
    t: &Table,
    root: &Path,
    prefix: &str,
    ts: &str,
    compression: Compression,
) -> Result<u64> {
    let sql = on_segment_copy_sql(
        &t.fqn(),
        &t.attributestring,
        t.oid,
        root,
        prefix,
        ts,
        compression,
    );
    client
        .execute(sql.as_str(), &[])
        .map_err(|e| Error::Target {
            what: format!("COPY ... ON SEGMENT of {}", t.fqn()),
            message: match e.as_db_error() {
                Some(db) => format!("{}: {}", db.severity(), db.message()),
                None => e.to_string(),
            },
        })
}

/// COPYs content `c`'s share of `t` into `out`; returns its rows.
fn copy_piece(
    client: &mut Client,
    t: &Table,
    c: usize,
    n: usize,
    out: &mut Encoder,
) -> Result<u64> {
    let cols = t
        .attributestring
        .trim_start_matches('(')
        .trim_end_matches(')');
    let filter = if t.replicated {
        String::new()
    } else {
        format!(" WHERE mod(abs(hashtext(r::text)::bigint), {n}) = {c}")
    };
    let sql = format!(
        "COPY (SELECT {cols} FROM {} r{filter}) TO STDOUT WITH (FORMAT csv, DELIMITER ',')",
        t.fqn()
    );
    let mut reader = client.copy_out(&sql)?;
    let mut counter = RowCounter::default();
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let k = io::Read::read(&mut reader, &mut buf)
            .map_err(|e| werr(format!("COPY of {}: {e}", t.fqn())))?;
        if k == 0 {
            break;
        }
        counter.feed(&buf[..k]);
        out.write_all(&buf[..k])
            .map_err(|e| Error::io(&out.path, e))?;
    }
    Ok(counter.rows())
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

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.inner {
            EncoderKind::Plain(f) => f.write_all(buf)?,
            EncoderKind::Gzip(g) => g.write_all(buf)?,
            EncoderKind::Zstd(z) => z.write_all(buf)?,
        }
        self.written += buf.len() as u64;
        Ok(())
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

/// metadata.sql: SESSION GUCS, pg_dump's pre-data entries, sequence positions, post-data entries.
fn write_metadata(
    client: &mut Client,
    pg_dump: &dyn Fn() -> Command,
    path: &Path,
    toc: &mut Toc,
) -> Result<()> {
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
    for (section, entries) in [("pre-data", 0), ("post-data", 1)] {
        let mut cmd = pg_dump();
        cmd.args([
            "--schema-only",
            "--format=plain",
            &format!("--section={section}"),
        ]);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| werr(format!("running pg_dump: {e}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| werr("pg_dump has no stdout"))?;
        let mut emit = |header: DumpHeader, body: String| -> Result<()> {
            let mut entry = entry_for(client, &header, &body)?;
            entry.startbyte = out.pos;
            out.put(b"\n\n")?;
            out.put(body.as_bytes())?;
            entry.endbyte = out.pos;
            out.put(b"\n")?;
            if entries == 0 {
                toc.predataentries.push(entry);
            } else {
                toc.postdataentries.push(entry);
            }
            Ok(())
        };
        let split = split_dump(BufReader::new(stdout), &mut emit);
        let status = child
            .wait_with_output()
            .map_err(|e| werr(format!("waiting for pg_dump: {e}")))?;
        if !status.status.success() {
            return Err(werr(format!(
                "pg_dump failed: {}",
                String::from_utf8_lossy(&status.stderr)
            )));
        }
        split.map_err(|e| werr(format!("reading pg_dump output: {e}")))?;
        if entries == 0 {
            write_sequence_values(client, &mut out, toc)?;
        }
    }
    out.file.commit()
}

fn write_sequence_values(client: &mut Client, out: &mut CountingFile, toc: &mut Toc) -> Result<()> {
    let seqs = client.query(
        "SELECT quote_ident(schemaname), quote_ident(sequencename) FROM pg_sequences ORDER BY 1, 2",
        &[],
    )?;
    for s in seqs {
        let (schema, name): (String, String) = (s.get(0), s.get(1));
        let fqn = format!("{schema}.{name}");
        let row = client.query_one(&format!("SELECT last_value, is_called FROM {fqn}"), &[])?;
        let (last, called): (i64, bool) = (row.get(0), row.get(1));
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
    line.starts_with("SET default_tablespace")
        || line.starts_with("SET default_table_access_method")
        || line.starts_with("\\restrict")
        || line.starts_with("\\unrestrict")
        || line.starts_with("SELECT pg_catalog.set_config('search_path'")
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
            if !body.trim().is_empty() {
                emit(h, body).map_err(|e| io::Error::other(e.to_string()))?;
            }
        }
        Ok(())
    };
    let mut skip_closing_dashes = false;
    for line in reader.lines() {
        let line = line?;
        if skip_closing_dashes {
            skip_closing_dashes = false;
            if line == "--" {
                continue;
            }
        }
        if let Some(h) = parse_header(&line) {
            flush(current.take())?;
            current = Some((h, String::new()));
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
fn entry_for(client: &mut Client, h: &DumpHeader, body: &str) -> Result<MetadataEntry> {
    let quote = |client: &mut Client, s: &str| -> Result<String> {
        Ok(client.query_one("SELECT quote_ident($1)", &[&s])?.get(0))
    };
    let schema = match &h.schema {
        Some(s) => quote(client, s)?,
        None => String::new(),
    };
    let mut entry = MetadataEntry {
        schema: schema.clone(),
        ..Default::default()
    };
    let (objecttype, name, reference) = match h.kind.as_str() {
        // "<table> <object>" names.
        "CONSTRAINT" | "FK CONSTRAINT" | "TRIGGER" | "RULE" | "POLICY" => {
            let (table, obj) = h.name.split_once(' ').unwrap_or(("", h.name.as_str()));
            let kind = if h.kind == "FK CONSTRAINT" {
                "CONSTRAINT".to_string()
            } else {
                h.kind.clone()
            };
            (
                kind,
                quote(client, obj)?,
                format!("{schema}.{}", quote(client, table)?),
            )
        }
        "DEFAULT" => {
            let table = h.name.split_once(' ').map(|(t, _)| t).unwrap_or(&h.name);
            ("TABLE".to_string(), quote(client, table)?, String::new())
        }
        "SEQUENCE OWNED BY" => {
            let reference = body
                .split_once(" OWNED BY ")
                .and_then(|(_, r)| r.trim().trim_end_matches(';').rsplit_once('.'))
                .map(|(table, _col)| table.to_string())
                .unwrap_or_default();
            (
                "SEQUENCE OWNER".to_string(),
                quote(client, &h.name)?,
                reference,
            )
        }
        "ACL" | "COMMENT" => {
            // "TABLE t", "SCHEMA s", "COLUMN t.c", "FUNCTION f(integer)", ...
            let (kind, obj) = h.name.split_once(' ').unwrap_or(("", h.name.as_str()));
            match kind {
                "COLUMN" => {
                    let table = obj.split_once('.').map(|(t, _)| t).unwrap_or(obj);
                    ("TABLE".to_string(), quote(client, table)?, String::new())
                }
                "TABLE" | "SCHEMA" | "SEQUENCE" | "VIEW" | "TYPE" | "DOMAIN" | "EXTENSION"
                | "INDEX" => {
                    let name = quote(client, obj)?;
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
            let name = quote(client, &h.name)?;
            entry.schema = name.clone();
            ("SCHEMA".to_string(), name, String::new())
        }
        "INDEX" => (h.kind.clone(), quote(client, &h.name)?, index_table(body)),
        other => (other.to_string(), quote(client, &h.name)?, String::new()),
    };
    entry.objecttype = objecttype;
    entry.name = name;
    entry.referenceobject = reference;
    Ok(entry)
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
    fn splits_pg_dump_output_at_headers() {
        let dump = "--\n-- PostgreSQL database dump\n--\n\nSET x = 1;\n\n--\n-- Name: s; Type: SCHEMA; Schema: -; Owner: postgres\n--\n\nCREATE SCHEMA s;\n\n\nALTER SCHEMA s OWNER TO postgres;\n\nSET default_tablespace = '';\n\n--\n-- Name: t; Type: TABLE; Schema: s; Owner: postgres\n--\n\nCREATE TABLE s.t (\n    a integer\n);\n\n\n--\n-- PostgreSQL database dump complete\n--\n";
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
        assert_eq!(got[1].1, "CREATE TABLE s.t (\n    a integer\n);");
    }
}
