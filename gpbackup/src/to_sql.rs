//! The whole backup set as one psql-loadable script (`--to-sql FILE[.gz]`): session settings,
//! predata DDL, one `COPY ... FROM stdin` block per table fed by the merged segment streams, then
//! postdata DDL — the single non-parallel dump made from parallel backup files.
//!
//! Streaming: one statement or one read buffer is in memory at a time. The output goes to a
//! temporary name next to the target and is renamed only when complete.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::filter::{unquote_ident, Filter};
use crate::metadata::{MetadataFile, Statement};
use crate::set::{BackupSet, PlannedTable};
use crate::sqltext::{mask, split_statements};
use crate::toc::Section;
use crate::translate::{ReportItem, Translator};

/// Which server the script is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// Greenplum/Cloudberry: statements as gpbackup wrote them.
    #[default]
    AsWritten,
    /// Plain PostgreSQL: Greenplum-only syntax translated or skipped ([`Translator`]).
    Postgres,
}

/// Options of [`write_sql`]; the defaults give a full restore of data and schema.
#[derive(Debug, Clone, Default)]
pub struct ToSqlOptions {
    pub target: Target,
    /// Compress with gzip; `None` decides by a `.gz` extension of the output path.
    pub gzip: Option<bool>,
    /// Include roles, tablespaces, database/role settings (and resource queues/groups when the
    /// target is Greenplum).
    pub with_globals: bool,
    /// Emit `CREATE DATABASE` and `\connect` to it (run the script from another database).
    pub create_db: bool,
    /// Only the data (plus sequence values); tables must exist.
    pub data_only: bool,
    /// Only the DDL.
    pub metadata_only: bool,
    /// Drop `ALTER ... OWNER TO` statements.
    pub no_owner: bool,
    /// Drop `GRANT`/`REVOKE` statements.
    pub no_privileges: bool,
    pub filter: Filter,
    /// Report and skip untranslatable statements instead of failing.
    pub on_error_continue: bool,
}

/// One table written.
#[derive(Debug, Clone, PartialEq)]
pub struct TableWritten {
    pub name: String,
    pub source_timestamp: String,
    pub rows: u64,
    pub bytes: u64,
    pub files: Vec<PathBuf>,
    /// From its first row read to its last written or committed.
    pub seconds: f64,
}

/// What [`write_sql`] did.
#[derive(Debug, Clone, Default)]
pub struct ToSqlReport {
    pub tables: Vec<TableWritten>,
    /// Metadata chunks written.
    pub statements: usize,
    /// Translations and skips (PostgreSQL target), and statements dropped by options.
    pub translation: Vec<ReportItem>,
    /// Untranslatable statements skipped under `on_error_continue`.
    pub errors_skipped: Vec<String>,
    pub warnings: Vec<String>,
}

/// Where a restore goes: a script file ([`write_sql`]) or a live server (cbrestore). The
/// driver, [`restore_with`], decides order, filters, translation and options once for both.
pub trait RestoreSink {
    /// Session settings (SESSION GUCS and the fixed setup), before any statement and again
    /// after switching databases.
    fn session(&mut self, sql: &str) -> Result<()>;
    /// One prepared chunk of metadata (already translated and filtered).
    fn statement(&mut self, stmt: &Statement, sql: &[u8]) -> Result<()>;
    /// Continue in database `db` (after its CREATE DATABASE).
    fn connect_database(&mut self, db: &str) -> Result<()>;
    /// Load (or write) one table's rows.
    fn table(&mut self, set: &BackupSet, table: &PlannedTable) -> Result<Option<TableWritten>>;
    /// Every table has been handed over; wait for loads still running before postdata.
    fn data_done(&mut self) -> Result<Vec<TableWritten>> {
        Ok(Vec::new())
    }
}

/// Restores `set` into `sink`: globals and database when asked, predata (or only sequence
/// values with `data_only`), data, postdata.
pub fn restore_with(
    set: &BackupSet,
    opts: &ToSqlOptions,
    sink: &mut dyn RestoreSink,
) -> Result<ToSqlReport> {
    Script::new(set, opts, sink).write_all()
}

/// Writes `set` as a psql script to `out`.
pub fn write_sql(set: &BackupSet, out: &Path, opts: &ToSqlOptions) -> Result<ToSqlReport> {
    let gzip = opts
        .gzip
        .unwrap_or_else(|| out.extension().is_some_and(|e| e == "gz"));
    let tmp = crate::fsutil::temp_name(out);
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let buffered = BufWriter::with_capacity(256 * 1024, file);
        let (report, file) = if gzip {
            let mut gz = flate2::write::GzEncoder::new(buffered, flate2::Compression::default());
            let report = script(set, opts, &mut gz, out)?;
            let inner = gz.finish().map_err(|e| Error::io(out, e))?;
            (
                report,
                inner
                    .into_inner()
                    .map_err(|e| Error::io(out, e.into_error()))?,
            )
        } else {
            let mut w = buffered;
            let report = script(set, opts, &mut w, out)?;
            (
                report,
                w.into_inner().map_err(|e| Error::io(out, e.into_error()))?,
            )
        };
        file.sync_all().map_err(|e| Error::io(out, e))?;
        Ok(report)
    })();
    match result {
        Ok(report) => {
            fs::rename(&tmp, out).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                Error::io(out, e)
            })?;
            Ok(report)
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// The script: a header comment, then the restore flow into a [`FileSink`].
fn script<W: Write>(
    set: &BackupSet,
    opts: &ToSqlOptions,
    w: &mut W,
    out: &Path,
) -> Result<ToSqlReport> {
    let mut sink = FileSink { w, out };
    let header = format!(
        "--\n-- gpbackup set {} of database {} (gpbackup {}, {} segment(s)), merged by cbtools\n--\n\n",
        set.timestamp,
        set.config.databasename,
        if set.config.backupversion.is_empty() {
            "?"
        } else {
            &set.config.backupversion
        },
        set.segment_count
    );
    sink.put(header.as_bytes())?;
    Script::new(set, opts, &mut sink).write_all()
}

struct Script<'a> {
    set: &'a BackupSet,
    opts: &'a ToSqlOptions,
    sink: &'a mut dyn RestoreSink,
    translator: Option<Translator>,
    report: ToSqlReport,
}

/// PostgreSQL-compatible session settings gprestore also applies before DDL and data.
const SESSION_SETUP: &str = "SET standard_conforming_strings = on;\nSET check_function_bodies = false;\nSET client_min_messages = warning;\nSET statement_timeout = 0;\nSET lock_timeout = 0;\nSET xmloption = content;\nSET search_path = pg_catalog;\n";

impl<'a> Script<'a> {
    fn new(set: &'a BackupSet, opts: &'a ToSqlOptions, sink: &'a mut dyn RestoreSink) -> Self {
        let translator = (opts.target == Target::Postgres).then(Translator::new);
        Script {
            set,
            opts,
            sink,
            translator,
            report: ToSqlReport {
                warnings: set.warnings.clone(),
                ..Default::default()
            },
        }
    }

    fn write_all(mut self) -> Result<ToSqlReport> {
        let set = self.set;
        let mut meta = set.metadata()?;
        let sections: &[Section] = &[Section::Global, Section::Predata, Section::Postdata];
        meta.check_offsets(&set.toc, sections)?;
        let session = set.session_gucs()?.unwrap_or_default();
        self.session(&session)?;

        // Cluster-wide objects first: the database's owner and settings may name these roles.
        if self.opts.with_globals {
            self.global_entries(&mut meta, |t| {
                !matches!(
                    t,
                    "SESSION GUCS" | "DATABASE" | "DATABASE METADATA" | "DATABASE GUC"
                )
            })?;
        }
        if self.opts.create_db {
            self.global_entries(&mut meta, |t| t == "DATABASE")?;
            let db = unquote_ident(&set.config.databasename);
            self.sink.connect_database(&db)?;
            self.session(&session)?;
            self.global_entries(&mut meta, |t| {
                t == "DATABASE METADATA" || t == "DATABASE GUC"
            })?;
        }
        if !self.opts.data_only {
            self.section(&mut meta, Section::Predata)?;
        } else {
            self.sequence_values(&mut meta)?;
        }
        if !self.opts.metadata_only {
            self.data()?;
        }
        if !self.opts.data_only {
            self.section(&mut meta, Section::Postdata)?;
        }
        if let Some(t) = self.translator.take() {
            self.report
                .translation
                .splice(0..0, t.report().iter().cloned());
        }
        Ok(self.report)
    }

    fn session(&mut self, session_gucs: &str) -> Result<()> {
        let mut sql = String::new();
        if !session_gucs.is_empty() {
            sql.push_str(session_gucs);
            sql.push('\n');
        }
        sql.push_str(SESSION_SETUP);
        self.sink.session(&sql)
    }

    fn global_entries(
        &mut self,
        meta: &mut MetadataFile,
        want: impl Fn(&str) -> bool,
    ) -> Result<()> {
        let set = self.set;
        let toc = &set.toc;
        for stmt in meta.statements(toc, Section::Global) {
            let stmt = stmt?;
            if want(&stmt.entry.objecttype) {
                self.statement(stmt)?;
            }
        }
        Ok(())
    }

    fn section(&mut self, meta: &mut MetadataFile, section: Section) -> Result<()> {
        let set = self.set;
        let toc = &set.toc;
        for stmt in meta.statements(toc, section) {
            let stmt = stmt?;
            if self.opts.filter.entry_included(section, &stmt.entry) {
                self.statement(stmt)?;
            }
        }
        Ok(())
    }

    /// Data-only scripts still restore sequence positions (gprestore does the same).
    fn sequence_values(&mut self, meta: &mut MetadataFile) -> Result<()> {
        let set = self.set;
        let toc = &set.toc;
        for stmt in meta.statements(toc, Section::Predata) {
            let stmt = stmt?;
            if stmt.entry.objecttype != "SEQUENCE"
                || !self
                    .opts
                    .filter
                    .entry_included(Section::Predata, &stmt.entry)
            {
                continue;
            }
            let masked = mask(&stmt.sql);
            for r in split_statements(&masked) {
                let text = String::from_utf8_lossy(&masked[r.clone()]).to_ascii_lowercase();
                if text.trim_start().starts_with("select pg_catalog.setval") {
                    let sql = stmt.sql[r].to_vec();
                    self.sink.statement(&stmt, &sql)?;
                }
            }
        }
        Ok(())
    }

    fn statement(&mut self, stmt: Statement) -> Result<()> {
        if stmt.is_blank() {
            return Ok(());
        }
        let sql = match self.translator.as_mut() {
            Some(t) => match t.translate(&stmt) {
                Ok(Some(sql)) => sql,
                Ok(None) => return Ok(()),
                Err(e @ Error::Untranslatable { .. }) if self.opts.on_error_continue => {
                    self.report.errors_skipped.push(e.to_string());
                    return Ok(());
                }
                Err(e) => return Err(e),
            },
            None => stmt.sql.clone(),
        };
        let sql = self.drop_by_option(&stmt, sql);
        if sql.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.sink.statement(&stmt, &sql)?;
        self.report.statements += 1;
        Ok(())
    }

    /// Removes OWNER / GRANT / REVOKE statements from a chunk when asked to.
    fn drop_by_option(&mut self, stmt: &Statement, sql: Vec<u8>) -> Vec<u8> {
        if !self.opts.no_owner && !self.opts.no_privileges {
            return sql;
        }
        let masked = mask(&sql);
        let mut out = Vec::with_capacity(sql.len());
        for r in split_statements(&masked) {
            let text = String::from_utf8_lossy(&masked[r.clone()]).to_ascii_uppercase();
            let words: Vec<&str> = text.split_whitespace().collect();
            let owner = words.first() == Some(&"ALTER") && text.contains(" OWNER TO ");
            let privilege = matches!(words.first(), Some(&"GRANT") | Some(&"REVOKE"));
            let drop = (owner && self.opts.no_owner) || (privilege && self.opts.no_privileges);
            if drop {
                self.report.translation.push(ReportItem {
                    section: crate::translate::section_name(stmt.section).to_string(),
                    objecttype: stmt.entry.objecttype.clone(),
                    name: stmt.entry.fqn(),
                    action: crate::translate::Action::Skipped,
                    detail: if owner {
                        "ownership (--no-owner)".into()
                    } else {
                        "privileges (--no-privileges)".into()
                    },
                });
            } else {
                out.extend_from_slice(&sql[r]);
            }
        }
        out
    }

    fn data(&mut self) -> Result<()> {
        let set = self.set;
        let filter = self.opts.filter.clone();
        for table in set.tables_filtered(&filter) {
            if let Some(done) = self.sink.table(set, table)? {
                self.report.tables.push(done);
            }
        }
        let finished = self.sink.data_done()?;
        self.report.tables.extend(finished);
        Ok(())
    }
}

/// The script writer: statements and `COPY ... FROM stdin` blocks into one file.
struct FileSink<'a, W: Write> {
    w: &'a mut W,
    out: &'a Path,
}

impl<W: Write> FileSink<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.w.write_all(bytes).map_err(|e| Error::io(self.out, e))
    }
}

impl<W: Write> RestoreSink for FileSink<'_, W> {
    fn session(&mut self, sql: &str) -> Result<()> {
        self.put(sql.as_bytes())
    }

    fn statement(&mut self, _stmt: &Statement, sql: &[u8]) -> Result<()> {
        self.put(sql)?;
        self.put(b"\n")
    }

    fn connect_database(&mut self, db: &str) -> Result<()> {
        let conninfo = format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"));
        self.put(
            format!(
                "\n\\connect -reuse-previous=on \"{}\"\n\n",
                conninfo.replace('"', "\"\"")
            )
            .as_bytes(),
        )
    }

    fn table(&mut self, set: &BackupSet, table: &PlannedTable) -> Result<Option<TableWritten>> {
        let started = std::time::Instant::now();
        let copy = table.copy_statement();
        self.put(
            format!(
                "\n--\n-- Data for {} (backup {}, {} content file(s))\n--\n{copy};\n",
                table.fqn(),
                table.source_timestamp,
                table.pieces.len()
            )
            .as_bytes(),
        )?;
        let mut reader = set.table_reader(table);
        let mut scan = EndMarkerScan::default();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(table_read_error(table, e)),
            };
            if scan.feed(&buf[..n]) {
                return Err(Error::UnscriptableData { table: table.fqn() });
            }
            self.put(&buf[..n])?;
        }
        self.put(b"\\.\n")?;
        if reader.rows() != table.expected_rows {
            return Err(Error::RowCountMismatch {
                table: table.fqn(),
                expected: table.expected_rows,
                actual: reader.rows(),
            });
        }
        Ok(Some(TableWritten {
            name: table.fqn(),
            source_timestamp: table.source_timestamp.clone(),
            rows: reader.rows(),
            bytes: reader.bytes_read(),
            files: reader.files().to_vec(),
            seconds: started.elapsed().as_secs_f64(),
        }))
    }
}

/// The error of reading a table's merged stream, with the file that failed when the reader
/// knows it.
pub fn table_read_error(table: &PlannedTable, e: io::Error) -> Error {
    Error::from_io(
        e,
        table
            .pieces
            .first()
            .map(|p| p.path().to_path_buf())
            .unwrap_or_default(),
    )
}

/// Finds a line consisting of `\.` (psql's end-of-data marker) in a stream fed in chunks.
#[derive(Debug, Default)]
struct EndMarkerScan {
    prefix: [u8; 3],
    len: usize,
    long: bool,
}

impl EndMarkerScan {
    fn feed(&mut self, buf: &[u8]) -> bool {
        let mut start = 0;
        for p in memchr::memchr_iter(b'\n', buf) {
            if self.line_is_marker(&buf[start..p]) {
                return true;
            }
            self.len = 0;
            self.long = false;
            start = p + 1;
        }
        self.append(&buf[start..]);
        false
    }

    fn line_is_marker(&self, rest: &[u8]) -> bool {
        if self.long || self.len + rest.len() > 3 {
            return false;
        }
        let mut line = self.prefix[..self.len].to_vec();
        line.extend_from_slice(rest);
        line == b"\\." || line == b"\\.\r"
    }

    fn append(&mut self, seg: &[u8]) {
        if self.long {
            return;
        }
        if self.len + seg.len() > 3 {
            self.long = true;
        } else {
            self.prefix[self.len..self.len + seg.len()].copy_from_slice(seg);
            self.len += seg.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_end_marker_across_chunks() {
        let mut s = EndMarkerScan::default();
        assert!(!s.feed(b"1,\"a\n\\"));
        assert!(s.feed(b".\nb\"\n"));
        let mut s = EndMarkerScan::default();
        assert!(!s.feed(b"1,\"\\.\"\n\\.x\n"));
        assert!(!s.feed(b"\\"));
        assert!(!s.feed(b".."));
        assert!(!s.feed(b"\n"));
    }
}
