//! What can go wrong in a clone, each case naming the table, file or step it happened in.

use std::path::PathBuf;

use cluster::ClusterError;

#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),

    /// pg_dump or pg_restore could not be found, started, or failed.
    #[error("{0}")]
    Tool(String),

    /// A server refused a statement of one step (`what` names the step and the object).
    #[error("{what}: {message}")]
    Query { what: String, message: String },

    /// One table's data could not be copied.
    #[error("copying {table}: {message}")]
    Table { table: String, message: String },

    #[error("rewriting the schema for the target: {0}")]
    Rewrite(String),

    #[error("state {path}: {message}")]
    State { path: PathBuf, message: String },

    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },

    /// The flags ask for something impossible.
    #[error("{0}")]
    Usage(String),

    /// `--verify` found differences; each line names a table.
    #[error("verification failed:\n{0}")]
    Verify(String),

    #[error("interrupted by signal {0}")]
    Interrupted(i32),
}

impl CloneError {
    /// Wraps a driver error with what was being done.
    pub fn query(what: impl Into<String>) -> impl FnOnce(postgres::Error) -> CloneError {
        let what = what.into();
        move |e| CloneError::Query {
            what,
            message: cluster::error::server_message(&e),
        }
    }

    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CloneError {
        let what = what.into();
        move |source| CloneError::Io { what, source }
    }

    /// The process exit status this error calls for: 128 + the signal when interrupted
    /// (130 for SIGINT, 143 for SIGTERM), 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CloneError::Interrupted(sig) => (128 + sig) as u8,
            CloneError::Usage(_) => 2,
            _ => 1,
        }
    }
}
