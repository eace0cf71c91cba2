//! One error type for the whole crate, so callers (the `cbrestore` loader) match on a single enum
//! and every message names the file, entry or table it is about.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading or writing a backup set.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },

    /// The target refused something (a statement, a table's data) during a live restore.
    #[error("{what}: {message}")]
    Target { what: String, message: String },

    #[error(
        "no gpbackup backup set (gpbackup_<timestamp>_toc.yaml / _config.yaml) found under {roots}"
    )]
    NoBackupSet { roots: String },

    #[error("several backup sets found: {}; choose one with --timestamp", candidates.join(", "))]
    AmbiguousTimestamp { candidates: Vec<String> },

    #[error(
        "backup set {wanted} not found; backup sets present: {}",
        list_or_none(candidates)
    )]
    TimestampNotFound {
        wanted: String,
        candidates: Vec<String>,
    },

    #[error("invalid backup timestamp {0:?}: expected 14 digits YYYYMMDDHHMMSS")]
    InvalidTimestamp(String),

    #[error("{name} found twice: {} and {}; pass only one copy", first.display(), second.display())]
    DuplicateFile {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("backup set {timestamp}: no {what} file (gpbackup_{timestamp}_{what}) found")]
    MissingCoordinatorFile {
        timestamp: String,
        what: &'static str,
    },

    #[error("{}: {message}", path.display())]
    Yaml { path: PathBuf, message: String },

    #[error("{}: written by gpbackup {version}, newer than the newest format this reader knows ({known}); refusing to guess its layout", path.display())]
    UnsupportedVersion {
        path: PathBuf,
        version: String,
        known: &'static str,
    },

    #[error("{}: backup status is {status:?}, not \"Success\"; the set is incomplete", path.display())]
    BackupNotSuccessful { path: PathBuf, status: String },

    #[error("{}: {message}", path.display())]
    InvalidConfig { path: PathBuf, message: String },

    #[error("{}: {message}", path.display())]
    InvalidToc { path: PathBuf, message: String },

    #[error("{} data file(s) promised by the toc are missing:\n{}", missing.len(), missing.iter().map(|m| format!("  {m}")).collect::<Vec<_>>().join("\n"))]
    MissingDataFiles { missing: Vec<MissingFile> },

    #[error("restoreplan of backup {timestamp} takes table {table} from backup {source_timestamp}, but that backup's toc has no data entry for it")]
    PlanTableMissing {
        timestamp: String,
        source_timestamp: String,
        table: String,
    },

    #[error("{}: file extension says {found}, but config.yaml says {expected}", path.display())]
    CompressionMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("{}: {section} entry #{index} ({objecttype} {name}) covers bytes {start}..{end}, but the file has {len} bytes", path.display())]
    MetadataOffset {
        path: PathBuf,
        section: &'static str,
        index: usize,
        objecttype: String,
        name: String,
        start: u64,
        end: u64,
        len: u64,
    },

    #[error("table {table}: {}: {problem}", file.display())]
    TableData {
        table: String,
        file: PathBuf,
        problem: DataProblem,
    },

    #[error("table {table}: loaded {actual} rows, but the toc's rowscopied says {expected}")]
    RowCountMismatch {
        table: String,
        expected: u64,
        actual: u64,
    },

    #[error("cannot translate {objecttype} {name} for PostgreSQL: {reason}")]
    Untranslatable {
        objecttype: String,
        name: String,
        reason: String,
    },

    #[error("table {table}: a data line consists of \"\\.\" inside a quoted value, which a psql script cannot carry (psql would end the COPY there)")]
    UnscriptableData { table: String },

    #[error("writing backup set: {0}")]
    Writer(String),

    #[error("database: {0}")]
    Database(#[from] postgres::Error),
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// What is wrong with one table's data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataProblem {
    /// The file the toc promises does not exist.
    Missing,
    /// Decompression failed (truncated or corrupt stream); the text is the decoder's message.
    Corrupt(String),
    /// The segment toc range lies (partly) beyond the end of the decompressed stream.
    OffsetsBeyondEnd { start: u64, end: u64, len: u64 },
    /// The segment toc has no entry for this table's oid.
    NotInSegmentToc { oid: u32 },
    /// This content's piece does not end with a newline, so concatenating pieces would glue rows.
    NotAtRowBoundary,
    /// Plain read error.
    Read(String),
}

impl fmt::Display for DataProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataProblem::Missing => write!(f, "file is missing"),
            DataProblem::Corrupt(m) => write!(f, "corrupt or truncated compressed stream: {m}"),
            DataProblem::OffsetsBeyondEnd { start, end, len } => write!(
                f,
                "segment toc range {start}..{end} lies beyond the end of the decompressed data ({len} bytes)"
            ),
            DataProblem::NotInSegmentToc { oid } => {
                write!(f, "segment toc has no entry for oid {oid}")
            }
            DataProblem::NotAtRowBoundary => {
                write!(f, "data does not end with a newline (cut mid-row)")
            }
            DataProblem::Read(m) => write!(f, "read error: {m}"),
        }
    }
}

/// One (table, content) file that the toc promises but that was not found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MissingFile {
    /// Backup timestamp whose directory should hold the file.
    pub timestamp: String,
    /// Segment content id.
    pub content: i32,
    /// `schema.table`, or `None` when a whole-segment file (single-data-file mode) is missing.
    pub table: Option<String>,
    /// The file name looked for (any directory).
    pub file_name: String,
}

impl fmt::Display for MissingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.table {
            Some(t) => write!(f, "content {}: table {t}: {}", self.content, self.file_name),
            None => write!(
                f,
                "content {}: all tables: {}",
                self.content, self.file_name
            ),
        }
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Recovers our typed error from an `io::Error` produced by a data reader's `Read` impl (which
    /// must speak `io::Error`); other I/O errors become [`Error::Io`] about `path`.
    pub fn from_io(err: io::Error, path: impl Into<PathBuf>) -> Error {
        if err.get_ref().is_some_and(|e| e.is::<Error>()) {
            let kind = err.kind();
            return match err.into_inner().map(|b| b.downcast::<Error>()) {
                Some(Ok(e)) => *e,
                Some(Err(other)) => Error::io(path, io::Error::new(kind, other)),
                None => Error::io(path, io::Error::from(kind)),
            };
        }
        Error::io(path, err)
    }
}

/// Crate result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
