//! Errors of the connection and catalog layer.
//!
//! Every message names where we tried to go (user, host, port, database) so that a script's log
//! says which of several servers failed; none ever contains a password.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid connection string: {0}")]
    BadConnInfo(String),

    #[error("invalid value for {key}: {value:?} ({why})")]
    BadParam {
        key: &'static str,
        value: String,
        why: &'static str,
    },

    #[error("could not read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("service file {path}, line {line}: {why}")]
    ServiceFile {
        path: PathBuf,
        line: usize,
        why: String,
    },

    #[error("definition of service {0:?} not found")]
    UnknownService(String),

    #[error("TLS setup for {target}: {why}")]
    Tls { target: String, why: String },

    #[error("connection to {target} failed: {message}")]
    Connect {
        target: String,
        message: String,
        /// Kept for callers that inspect it; not a `#[source]`, because `message` already
        /// carries the server's words and a chain would repeat them.
        cause: postgres::Error,
    },

    #[error("connection to {target} failed: the server asked for a password and none was given (use PGPASSWORD, ~/.pgpass or -W)")]
    PasswordMissing { target: String },

    #[error("{what}: {message}")]
    Query {
        what: String,
        message: String,
        /// See `Connect::cause`.
        cause: postgres::Error,
    },

    #[error("invalid pattern {pattern:?}: {why}")]
    BadPattern { pattern: String, why: String },

    #[error("no matching tables were found for pattern {0:?}")]
    NoMatch(String),

    #[error("this needs Apache Cloudberry or Greenplum, but {server} is plain PostgreSQL")]
    NotMpp { server: String },
}

impl ClusterError {
    /// Wraps a driver error with a short description of what was being done.
    pub fn query(what: impl Into<String>) -> impl FnOnce(postgres::Error) -> ClusterError {
        let what = what.into();
        move |cause| ClusterError::Query {
            what,
            message: server_message(&cause),
            cause,
        }
    }
}

/// The server's own message (`ERROR: ...`), when the error came from the server, else the
/// driver's text. Used to show users what PostgreSQL said without the driver's wrapping.
pub fn server_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                s.push_str(&format!(" (DETAIL: {d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" (HINT: {h})"));
            }
            s
        }
        None => {
            // The driver's own errors keep the useful part in their cause ("password missing",
            // "Connection refused", ...).
            match std::error::Error::source(e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            }
        }
    }
}
