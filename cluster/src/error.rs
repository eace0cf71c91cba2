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

/// How every tool words a session that went away under it (the words a caller can look for).
pub const LOST_CONNECTION: &str = "lost the connection to the server";

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
        // A terminated backend usually says so (FATAL, above), but the socket can close
        // before its last message is read: the driver then says only "connection closed"
        // (cbcopyout's lost-server test saw both, run to run). Say what happened, one way.
        None if e.is_closed() => format!("{LOST_CONNECTION} (connection closed)"),
        // Or the socket fails under a read or write ("Connection reset by peer", a broken
        // pipe): the driver's words for it are "error communicating with the server".
        None if socket_error(e).is_some() => {
            let cause = socket_error(e).map(|c| c.to_string()).unwrap_or_default();
            format!("{LOST_CONNECTION} ({cause})")
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

/// The socket error under a driver error, when an open session failed on its socket. A failed
/// connect also has an I/O cause ("error connecting to server: No such file or directory"); the
/// driver tells the two apart only in its words, and a connect that failed is no lost session.
fn socket_error(e: &postgres::Error) -> Option<&std::io::Error> {
    if e.to_string() != "error communicating with the server" {
        return None;
    }
    std::error::Error::source(e)?.downcast_ref::<std::io::Error>()
}

/// Whether the session itself is gone, not just a statement failed: the socket closed or
/// failed, or the server ended the session (FATAL: a terminated backend, a shutdown; PANIC: a
/// crash). No later statement can run on that connection.
pub fn session_lost(e: &postgres::Error) -> bool {
    e.is_closed()
        || socket_error(e).is_some()
        || e.as_db_error()
            .is_some_and(|d| matches!(d.severity(), "FATAL" | "PANIC"))
}

/// An error and its causes on one line, each part said once: context we add often quotes its
/// cause already (`pagila.dmp: pagila.dmp: No such file or directory (os error 2): No such file
/// or directory (os error 2)` was one such message, issue 15). A cause already contained in
/// the line is dropped; a cause that starts with the line so far replaces it.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if text.starts_with(&line) {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

#[cfg(test)]
mod one_line_tests {
    use super::one_line;

    #[derive(Debug)]
    struct E(String, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }
    fn chain(parts: &[&str]) -> E {
        parts
            .iter()
            .rev()
            .fold(None, |inner, p| Some(E(p.to_string(), inner.map(Box::new))))
            .unwrap()
    }

    #[test]
    fn every_part_once() {
        let os = "No such file or directory (os error 2)";
        let e = chain(&["pagila.dmp", &format!("pagila.dmp: {os}"), os]);
        assert_eq!(one_line(&e), format!("pagila.dmp: {os}"));
        let e = chain(&["restoring public.t", "COPY failed", "connection reset"]);
        assert_eq!(
            one_line(&e),
            "restoring public.t: COPY failed: connection reset"
        );
        let e = chain(&["reading x: disk full", "disk full"]);
        assert_eq!(one_line(&e), "reading x: disk full");
    }
}
