//! cbcopyout: `COPY ... TO` exports of whole tables, column subsets, filtered rows or queries to
//! delimited files on the local host — consistent across tables (one exported snapshot for
//! every worker), parallel inside big tables, compressed, split, checksummed, and never left
//! half-written under a final name.
//!
//! The bytes of every file are the server's own `COPY ... TO STDOUT` output for the same
//! options: we move and compress them, we never re-format them.

pub mod cli;
pub mod export;
pub mod format;
pub mod onsegment;
pub mod report;

use std::path::{Path, PathBuf};

/// The codecs are the toolkit's shared ones.
pub use archive::codec as compress;
pub use export::{run, ExportOptions, What};
pub use report::Report;

/// Why an export failed. Every variant names the table, file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Cluster(cluster::ClusterError),

    #[error(transparent)]
    Format(#[from] format::FormatError),

    #[error("no tables selected: the database has no tables matching the selection")]
    NothingSelected,

    #[error("--columns and --where apply to exactly one table, but the selection matches {}: {}", .0.len(), .0.join(", "))]
    PortionNeedsOneTable(Vec<String>),

    #[error("column {column:?} does not exist in table {table}")]
    UnknownColumn { table: String, column: String },

    #[error("-o - writes one table or query to standard output, but {0} tables are selected; give a directory")]
    StdoutNeedsOne(usize),

    #[error("--split-rows/--split-bytes need files, not standard output")]
    StdoutSplit,

    #[error("{} already exists (use --force to overwrite)", .0.display())]
    OutputExists(PathBuf),

    #[error("cannot write to output directory {}: {source}", dir.display())]
    Unwritable {
        dir: PathBuf,
        source: std::io::Error,
    },

    #[error("exporting {table}: {message}")]
    Copy { table: String, message: String },

    #[error("exporting {table}: the COPY stream broke off: {message}")]
    CopyStream { table: String, message: String },

    #[error("writing {0}: {1}")]
    Write(String, std::io::Error),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("--on-segment: {0}")]
    OnSegment(String),

    #[error("interrupted; temporary files removed")]
    Interrupted,

    #[error("the session holding the snapshot ended before the export did ({0}); nothing was written under a final name")]
    SnapshotLost(String),

    #[error("{0}")]
    Staging(String),
}

impl ExportError {
    pub fn io(path: &Path, source: std::io::Error) -> ExportError {
        ExportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// An error while reading the COPY stream: the driver wraps the server's error (or the
    /// lost connection) in an I/O error; show what the server said.
    pub fn stream(table: &str, e: &std::io::Error) -> ExportError {
        let message = match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<postgres::Error>())
        {
            // The server answered with an error (a terminated backend or a shutdown says so).
            Some(pg) if pg.as_db_error().is_some() || cluster::error::session_lost(pg) => {
                cluster::error::server_message(pg)
            }
            Some(pg) => format!(
                "{} ({})",
                cluster::error::LOST_CONNECTION,
                cluster::error::server_message(pg)
            ),
            None => format!("{} ({e})", cluster::error::LOST_CONNECTION),
        };
        ExportError::CopyStream {
            table: table.to_string(),
            message,
        }
    }

    pub fn copy(table: &str, e: &postgres::Error) -> ExportError {
        ExportError::Copy {
            table: table.to_string(),
            message: cluster::error::server_message(e),
        }
    }
}
