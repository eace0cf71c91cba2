//! The whole backup set as one psql-loadable script (`--to-sql FILE[.gz]`): session settings,
//! predata DDL, one `COPY ... FROM stdin` block per table fed by the merged segment streams, then
//! postdata DDL — the single non-parallel dump made from parallel backup files.
//!
//! Streaming: one statement or one read buffer is in memory at a time. The output goes to a
//! temporary name next to the target and is renamed only when complete.

use std::collections::VecDeque;
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

/// Options of [`restore_steps`] and [`write_sql`]; the defaults give a full restore of data and schema.
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

/// What [`write_sql`] did (or a live restore of [`restore_steps`]).
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

/// One thing a restore does, in restore order: what [`RestoreSteps`] hands its consumer (the
/// script writer here, cbrestore's live restores), which decides how to do it.
#[derive(Debug)]
pub enum RestoreStep<'s> {
    /// Session settings (SESSION GUCS and the fixed setup), before any statement and again
    /// after switching databases.
    Session(String),
    /// One prepared chunk of metadata: `sql` is `stmt`'s text translated and filtered.
    Statement { stmt: Statement, sql: Vec<u8> },
    /// Continue in this database (after its CREATE DATABASE).
    ConnectDatabase(String),
    /// Load (or write) one table's rows.
    Table(&'s PlannedTable),
    /// Every table has been handed over: loads still running finish before postdata.
    DataDone,
}

/// Where [`RestoreSteps`] stands: the phases still to go, first one current.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Session,
    /// The entries of `section` that `pick` selects, from entry `next` on.
    Entries {
        section: Section,
        pick: Pick,
        next: usize,
    },
    Connect,
    Tables,
    DataDone,
}

/// Which entries of a section a phase takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    /// Roles, tablespaces, resource queues/groups: every global but the database's own.
    Globals,
    Database,
    DatabaseSettings,
    /// What the options' filter includes.
    Filtered,
    /// Only the `setval` calls of included sequences (data-only restores).
    SequenceValues,
}

/// A set's restore order, pulled one [`RestoreStep`] at a time: globals and database when
/// asked, predata (or only sequence values with `data_only`), data, postdata. Order, filters,
/// translation and options are decided here once for every consumer.
///
/// Streaming: metadata.sql is read one entry at a time as the steps are pulled (a set's
/// metadata can be hundreds of megabytes). After an error the sequence ends. When it is
/// exhausted, [`RestoreSteps::finish`] gives what it reports (statements, translation,
/// skipped errors, warnings); the consumer adds the tables.
pub struct RestoreSteps<'s> {
    set: &'s BackupSet,
    opts: &'s ToSqlOptions,
    meta: MetadataFile,
    session: String,
    phases: VecDeque<Phase>,
    /// Steps made ahead (a sequence chunk's several `setval` calls).
    ready: VecDeque<RestoreStep<'s>>,
    tables: std::slice::Iter<'s, PlannedTable>,
    translator: Option<Translator>,
    report: ToSqlReport,
}

/// The restore order of `set` under `opts`; fails before any step when metadata.sql is
/// missing or an entry lies outside it.
pub fn restore_steps<'s>(set: &'s BackupSet, opts: &'s ToSqlOptions) -> Result<RestoreSteps<'s>> {
    let meta = set.metadata()?;
    let sections: &[Section] = &[Section::Global, Section::Predata, Section::Postdata];
    meta.check_offsets(&set.toc, sections)?;
    let session = set.session_gucs()?.unwrap_or_default();
    Ok(RestoreSteps {
        set,
        opts,
        meta,
        session,
        phases: phases(opts),
        ready: VecDeque::new(),
        tables: set.tables().iter(),
        translator: (opts.target == Target::Postgres).then(Translator::new),
        report: ToSqlReport {
            warnings: set.warnings.clone(),
            ..Default::default()
        },
    })
}

/// The phases `opts` asks for, in order.
fn phases(opts: &ToSqlOptions) -> VecDeque<Phase> {
    let entries = |section, pick| Phase::Entries {
        section,
        pick,
        next: 0,
    };
    let mut phases = VecDeque::from([Phase::Session]);
    // Cluster-wide objects first: the database's owner and settings may name these roles.
    if opts.with_globals {
        phases.push_back(entries(Section::Global, Pick::Globals));
    }
    if opts.create_db {
        phases.extend([
            entries(Section::Global, Pick::Database),
            Phase::Connect,
            Phase::Session,
            entries(Section::Global, Pick::DatabaseSettings),
        ]);
    }
    phases.push_back(if opts.data_only {
        entries(Section::Predata, Pick::SequenceValues)
    } else {
        entries(Section::Predata, Pick::Filtered)
    });
    if !opts.metadata_only {
        phases.extend([Phase::Tables, Phase::DataDone]);
    }
    if !opts.data_only {
        phases.push_back(entries(Section::Postdata, Pick::Filtered));
    }
    phases
}

/// PostgreSQL-compatible session settings gprestore also applies before DDL and data.
const SESSION_SETUP: &str = "SET standard_conforming_strings = on;\nSET check_function_bodies = false;\nSET client_min_messages = warning;\nSET statement_timeout = 0;\nSET lock_timeout = 0;\nSET xmloption = content;\nSET search_path = pg_catalog;\n";

impl<'s> Iterator for RestoreSteps<'s> {
    type Item = Result<RestoreStep<'s>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(step) = self.ready.pop_front() {
            return Some(Ok(step));
        }
        loop {
            let step = match self.phases.front_mut()? {
                Phase::Entries {
                    section,
                    pick,
                    next,
                } => {
                    let (section, pick, index) = (*section, *pick, *next);
                    *next += 1;
                    match self.entry(section, pick, index) {
                        Some(Ok(None)) => continue,
                        Some(Ok(Some(step))) => Ok(step),
                        Some(Err(e)) => Err(e),
                        None => {
                            self.phases.pop_front();
                            continue;
                        }
                    }
                }
                Phase::Tables => match self.next_table() {
                    Some(table) => Ok(RestoreStep::Table(table)),
                    None => {
                        self.phases.pop_front();
                        continue;
                    }
                },
                Phase::Session => Ok(RestoreStep::Session(self.session_sql())),
                Phase::Connect => Ok(RestoreStep::ConnectDatabase(unquote_ident(
                    &self.set.config.databasename,
                ))),
                Phase::DataDone => Ok(RestoreStep::DataDone),
            };
            match &step {
                // One step each: the phase is done.
                Ok(RestoreStep::Session(_) | RestoreStep::ConnectDatabase(_))
                | Ok(RestoreStep::DataDone) => {
                    self.phases.pop_front();
                }
                Ok(_) => {}
                Err(_) => self.phases.clear(),
            }
            return Some(step);
        }
    }
}

impl<'s> RestoreSteps<'s> {
    /// What the steps reported (without tables: their consumer loads or writes them). Call it
    /// once the steps are exhausted.
    pub fn finish(mut self) -> ToSqlReport {
        if let Some(t) = self.translator.take() {
            self.report
                .translation
                .splice(0..0, t.report().iter().cloned());
        }
        self.report
    }

    fn session_sql(&self) -> String {
        let mut sql = String::new();
        if !self.session.is_empty() {
            sql.push_str(&self.session);
            sql.push('\n');
        }
        sql.push_str(SESSION_SETUP);
        sql
    }

    fn next_table(&mut self) -> Option<&'s PlannedTable> {
        let filter = &self.opts.filter;
        self.tables
            .find(|t| filter.table_included(&t.entry.schema, &t.entry.name))
    }

    /// Entry `index` of `section` as a step, `Ok(None)` when `pick` leaves it out or nothing of
    /// it remains; `None` past the section's end.
    fn entry(
        &mut self,
        section: Section,
        pick: Pick,
        index: usize,
    ) -> Option<Result<Option<RestoreStep<'s>>>> {
        let set = self.set;
        let entry = set.toc.entries(section).get(index)?;
        let wanted = match pick {
            Pick::Globals => !matches!(
                entry.objecttype.as_str(),
                "SESSION GUCS" | "DATABASE" | "DATABASE METADATA" | "DATABASE GUC"
            ),
            Pick::Database => entry.objecttype == "DATABASE",
            Pick::DatabaseSettings => {
                entry.objecttype == "DATABASE METADATA" || entry.objecttype == "DATABASE GUC"
            }
            Pick::Filtered => self.opts.filter.entry_included(section, entry),
            Pick::SequenceValues => {
                entry.objecttype == "SEQUENCE" && self.opts.filter.entry_included(section, entry)
            }
        };
        if !wanted {
            return Some(Ok(None));
        }
        let stmt = match self.meta.statement(&set.toc, section, index)? {
            Ok(stmt) => stmt,
            Err(e) => return Some(Err(e)),
        };
        Some(if pick == Pick::SequenceValues {
            self.sequence_values(stmt);
            Ok(self.ready.pop_front())
        } else {
            self.statement(stmt)
        })
    }

    /// Data-only restores still restore sequence positions (gprestore does the same): the
    /// `setval` calls of a sequence's chunk, each a step.
    fn sequence_values(&mut self, stmt: Statement) {
        let masked = mask(&stmt.sql);
        for r in split_statements(&masked) {
            let text = String::from_utf8_lossy(&masked[r.clone()]).to_ascii_lowercase();
            if text.trim_start().starts_with("select pg_catalog.setval") {
                let sql = stmt.sql[r].to_vec();
                self.ready.push_back(RestoreStep::Statement {
                    stmt: stmt.clone(),
                    sql,
                });
            }
        }
    }

    /// A metadata chunk translated (PostgreSQL target) and stripped of what the options drop;
    /// `None` when nothing is left.
    fn statement(&mut self, stmt: Statement) -> Result<Option<RestoreStep<'s>>> {
        if stmt.is_blank() {
            return Ok(None);
        }
        let sql = match self.translator.as_mut() {
            Some(t) => match t.translate(&stmt) {
                Ok(Some(sql)) => sql,
                Ok(None) => return Ok(None),
                Err(e @ Error::Untranslatable { .. }) if self.opts.on_error_continue => {
                    self.report.errors_skipped.push(e.to_string());
                    return Ok(None);
                }
                Err(e) => return Err(e),
            },
            None => stmt.sql.clone(),
        };
        let sql = self.drop_by_option(&stmt, sql);
        if sql.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        self.report.statements += 1;
        Ok(Some(RestoreStep::Statement { stmt, sql }))
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

/// The script: a header comment, then every restore step written as psql runs it.
fn script<W: Write>(
    set: &BackupSet,
    opts: &ToSqlOptions,
    w: &mut W,
    out: &Path,
) -> Result<ToSqlReport> {
    let mut file = ScriptFile { w, out };
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
    file.put(header.as_bytes())?;
    let mut steps = restore_steps(set, opts)?;
    let mut tables = Vec::new();
    for step in &mut steps {
        match step? {
            RestoreStep::Session(sql) => file.put(sql.as_bytes())?,
            RestoreStep::Statement { sql, .. } => {
                file.put(&sql)?;
                file.put(b"\n")?;
            }
            RestoreStep::ConnectDatabase(db) => file.connect_database(&db)?,
            RestoreStep::Table(table) => tables.push(file.table(set, table)?),
            RestoreStep::DataDone => {}
        }
    }
    let mut report = steps.finish();
    report.tables = tables;
    Ok(report)
}

/// The script writer: statements and `COPY ... FROM stdin` blocks into one file.
struct ScriptFile<'a, W: Write> {
    w: &'a mut W,
    out: &'a Path,
}

impl<W: Write> ScriptFile<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.w.write_all(bytes).map_err(|e| Error::io(self.out, e))
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

    fn table(&mut self, set: &BackupSet, table: &PlannedTable) -> Result<TableWritten> {
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
        Ok(TableWritten {
            name: table.fqn(),
            source_timestamp: table.source_timestamp.clone(),
            rows: reader.rows(),
            bytes: reader.bytes_read(),
            files: reader.files().to_vec(),
            seconds: started.elapsed().as_secs_f64(),
        })
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

    fn phase_names(opts: &ToSqlOptions) -> Vec<String> {
        phases(opts)
            .iter()
            .map(|p| match p {
                Phase::Entries { section, pick, .. } => format!("{pick:?} {section:?}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn phases_follow_the_options() {
        let full = phase_names(&ToSqlOptions::default());
        assert_eq!(
            full,
            [
                "Session",
                "Filtered Predata",
                "Tables",
                "DataDone",
                "Filtered Postdata"
            ]
        );
        let data_only = phase_names(&ToSqlOptions {
            data_only: true,
            ..Default::default()
        });
        assert_eq!(
            data_only,
            ["Session", "SequenceValues Predata", "Tables", "DataDone"]
        );
        let everything = phase_names(&ToSqlOptions {
            with_globals: true,
            create_db: true,
            metadata_only: true,
            ..Default::default()
        });
        assert_eq!(
            everything,
            [
                "Session",
                "Globals Global",
                "Database Global",
                "Connect",
                "Session",
                "DatabaseSettings Global",
                "Filtered Predata",
                "Filtered Postdata"
            ]
        );
    }

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
