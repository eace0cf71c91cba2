//! The one report of a restore, whatever the input (a pg_dump archive, a plain script, a
//! gpbackup set): what `--json` writes and the summary line says. Every input reports its
//! tables the same way (rows, bytes, seconds); what only one input has (an archive's large
//! objects, a script's COPY blocks, a set's segments and translation) is in an optional part
//! whose fields appear at the top level of the JSON, under the names they always had.
//!
//! A failed or interrupted restore reports too (`status`, `error`, the resume command), with
//! the tables whose loads committed before it stopped.

use serde::Serialize;

use crate::gpset::{GpRestoreReport, TableReport};
use crate::segment_restore::{Route, SegmentRestoreReport};

/// How the restore ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Ok,
    Failed,
    Interrupted,
}

/// What was restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A pg_dump/cbdump custom or directory archive.
    Archive,
    /// A plain SQL script.
    Script,
    /// gpbackup backup directories.
    BackupSet,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub status: Status,
    /// `None` when the restore failed before its input was recognised.
    pub kind: Option<Kind>,
    /// The archive or script (`-` for stdin), or the backup set's directories.
    pub input: String,
    /// The database restored into (host, port, database), or `script FILE` with `-f`.
    pub target: String,
    pub elapsed_seconds: f64,
    /// Statements (or archive entries) run.
    pub statements: u64,
    /// The tables whose data loaded (committed), by name.
    pub tables: Vec<Table>,
    pub total_rows: u64,
    pub total_bytes: u64,
    /// Errors skipped under `--on-error-continue`.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// `--distribute`/`--strip-distribution` (or a Cloudberry dump into PostgreSQL):
    /// statements rewritten.
    pub distribution_statements_changed: u64,
    /// `--resume` found the restore finished already.
    pub already_finished: bool,
    /// Why the restore failed or stopped (`status` not `ok`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where a stopped restore's progress is recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_file: Option<String>,
    /// The command that resumes a stopped restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
    #[serde(flatten)]
    pub archive: Option<ArchiveFigures>,
    #[serde(flatten)]
    pub script: Option<ScriptFigures>,
    #[serde(flatten)]
    pub backup_set: Option<SetFigures>,
    #[serde(flatten)]
    pub on_segment: Option<SegmentFigures>,
}

/// One table's data, loaded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    /// `schema.table`, quoted only where SQL needs it.
    pub table: String,
    pub rows: u64,
    /// Bytes of COPY data sent.
    pub bytes: u64,
    /// From its first row read to its load committed.
    pub seconds: f64,
    /// A backup set's data files read for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
    /// Where its rows came from: `TOC entry N` of an archive, `line N` of a script (its COPY
    /// block), `backup TIMESTAMP` of a set (an incremental set's table may come from an
    /// earlier backup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// `--on-segment`: how its rows got in (`copy-on-segment` or `web-table`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
    /// `--verify-only` of an archive: its data against manifest.json (`ok`, or what was not
    /// compared)...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<&'static str>,
    /// ...and what proves its data file complete without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_check: Option<&'static str>,
}

/// A pg_dump archive's own figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveFigures {
    /// `custom` or `directory`.
    pub format: &'static str,
    /// The archive format's version (`1.14`).
    pub archive_version: String,
    pub large_objects: u64,
}

/// A plain script's own figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScriptFigures {
    pub copy_blocks: u64,
    /// Statements left out by `-t -n -T -N -s -a`.
    pub skipped_statements: u64,
    /// Statements a previous run finished (`--resume`).
    pub resumed_statements: u64,
}

/// A gpbackup set's own figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetFigures {
    pub backup_timestamp: String,
    pub backup_database: String,
    pub segment_count: u32,
    pub translated_for_postgres: bool,
    pub files_read: u64,
    /// What was translated or skipped for PostgreSQL.
    pub translation: Vec<String>,
}

/// `--on-segment`: the segments read their own files.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SegmentFigures {
    pub source_segments: u32,
    pub target_segments: u32,
    /// Where each segment found its files (the set's directories when not given).
    pub segment_root: String,
}

impl Report {
    /// An empty report of a restore of `input`, to be filled as it goes.
    pub fn new(kind: Option<Kind>, input: impl Into<String>) -> Report {
        Report {
            tool: "cbrestore",
            kind,
            input: input.into(),
            ..Default::default()
        }
    }

    /// `tables`, sorted by name, and their totals.
    pub fn set_tables(&mut self, mut tables: Vec<Table>) {
        tables.sort_by(|a, b| a.table.cmp(&b.table));
        self.total_rows = tables.iter().map(|t| t.rows).sum();
        self.total_bytes = tables.iter().map(|t| t.bytes).sum();
        self.tables = tables;
    }
}

impl From<TableReport> for Table {
    fn from(t: TableReport) -> Table {
        Table {
            table: t.table,
            rows: t.rows,
            bytes: t.bytes,
            seconds: t.seconds,
            files: Some(t.files),
            source: Some(format!("backup {}", t.source_timestamp)),
            ..Default::default()
        }
    }
}

impl From<GpRestoreReport> for Report {
    fn from(g: GpRestoreReport) -> Report {
        let tables: Vec<Table> = g.tables.into_iter().map(Table::from).collect();
        let files_read = tables
            .iter()
            .map(|t| t.files.as_ref().map_or(0, Vec::len) as u64)
            .sum();
        let mut report = Report {
            target: g.target,
            elapsed_seconds: g.elapsed_seconds,
            statements: g.statements as u64,
            errors: g.errors,
            warnings: g.warnings,
            backup_set: Some(SetFigures {
                backup_timestamp: g.backup_timestamp,
                backup_database: g.backup_database,
                segment_count: g.segment_count,
                translated_for_postgres: g.translated_for_postgres,
                files_read,
                translation: g.translation,
            }),
            ..Report::new(Some(Kind::BackupSet), "")
        };
        report.set_tables(tables);
        report
    }
}

impl From<SegmentRestoreReport> for Report {
    fn from(g: SegmentRestoreReport) -> Report {
        let tables: Vec<Table> = g
            .tables
            .into_iter()
            .map(|t| Table {
                table: t.table,
                rows: t.rows,
                seconds: t.seconds,
                route: Some(t.route),
                source: Some(format!("backup {}", g.backup_timestamp)),
                ..Default::default()
            })
            .collect();
        let mut report = Report {
            target: g.target,
            elapsed_seconds: g.elapsed_seconds,
            statements: g.statements as u64,
            errors: g.errors,
            warnings: g.warnings,
            backup_set: Some(SetFigures {
                backup_timestamp: g.backup_timestamp,
                backup_database: g.backup_database,
                segment_count: g.source_segments,
                ..Default::default()
            }),
            on_segment: Some(SegmentFigures {
                source_segments: g.source_segments,
                target_segments: g.target_segments,
                segment_root: g.segment_root,
            }),
            ..Report::new(Some(Kind::BackupSet), "")
        };
        report.set_tables(tables);
        report
    }
}

impl Report {
    /// `--to-sql`: the set written as one script (`out`) instead of restored; `postgres` when
    /// it was translated for PostgreSQL.
    pub fn of_set_script(
        set: &gpbackup::BackupSet,
        written: gpbackup::to_sql::ToSqlReport,
        out: &std::path::Path,
        postgres: bool,
    ) -> Report {
        let tables: Vec<Table> = written
            .tables
            .into_iter()
            .map(|t| Table {
                table: t.name,
                rows: t.rows,
                bytes: t.bytes,
                seconds: t.seconds,
                files: Some(t.files.iter().map(|f| f.display().to_string()).collect()),
                source: Some(format!("backup {}", t.source_timestamp)),
                ..Default::default()
            })
            .collect();
        let files_read = tables
            .iter()
            .map(|t| t.files.as_ref().map_or(0, Vec::len) as u64)
            .sum();
        let mut report = Report {
            target: format!("script {}", out.display()),
            statements: written.statements as u64,
            errors: written.errors_skipped,
            warnings: written.warnings,
            backup_set: Some(SetFigures {
                backup_timestamp: set.timestamp.clone(),
                backup_database: set.config.databasename.clone(),
                segment_count: set.segment_count,
                translated_for_postgres: postgres,
                files_read,
                translation: written.translation.iter().map(|t| t.to_string()).collect(),
            }),
            ..Report::new(Some(Kind::BackupSet), "")
        };
        report.set_tables(tables);
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON names tests, the demo and users' scripts read stay where they were.
    #[test]
    fn input_figures_are_top_level_fields() {
        let mut r = Report::new(Some(Kind::Script), "x.sql");
        r.script = Some(ScriptFigures {
            copy_blocks: 2,
            ..Default::default()
        });
        r.set_tables(vec![Table {
            table: "public.b".into(),
            rows: 3,
            bytes: 10,
            seconds: 0.5,
            files: None,
            source: Some("line 7".into()),
            ..Default::default()
        }]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["copy_blocks"], 2);
        assert_eq!(v["total_rows"], 3);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["kind"], "script");
        assert!(v.get("large_objects").is_none() && v.get("error").is_none());
        assert!(v["tables"][0].get("files").is_none());
        assert_eq!(v["tables"][0]["source"], "line 7");
        assert!(v["tables"][0].get("route").is_none() && v.get("target_segments").is_none());
    }

    #[test]
    fn an_on_segment_restore_is_the_same_report() {
        use crate::segment_restore::{Route, SegmentRestoreReport, SegmentTableReport};
        let seg = SegmentRestoreReport {
            tool: "cbrestore",
            backup_timestamp: "20260101000000".into(),
            backup_database: "db".into(),
            source_segments: 3,
            target_segments: 2,
            segment_root: "/data".into(),
            target: "t".into(),
            elapsed_seconds: 1.0,
            statements: 4,
            tables: vec![SegmentTableReport {
                table: "public.t".into(),
                rows: 5,
                route: Route::WebTable,
                seconds: 0.5,
            }],
            total_rows: 5,
            errors: vec![],
            warnings: vec![],
        };
        let v = serde_json::to_value(Report::from(seg)).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["status"].as_str()),
            (Some("backup_set"), Some("ok"))
        );
        assert_eq!(
            (v["source_segments"].as_u64(), v["target_segments"].as_u64()),
            (Some(3), Some(2))
        );
        assert_eq!(v["backup_timestamp"], "20260101000000");
        assert_eq!(v["tables"][0]["route"], "web-table");
        assert_eq!(v["total_rows"], 5);
    }
}
