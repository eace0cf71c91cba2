//! cbrestore: loads backups through the coordinator.
//!
//! - gpbackup backup sets ([`gpset`]): every segment's files merged into one `COPY ... FROM
//!   STDIN` per table, into a cluster of any size or plain PostgreSQL;
//! - pg_dump/cbdump custom and directory archives ([`dump`], checked by [`verify`]);
//! - plain SQL scripts ([`plain`]): psql's splitting, pg_restore's filters, resumable;
//! - the loader they share ([`load`]): one table per transaction, never half loaded, counted;
//!   pg_dump's text rows and gpbackup's CSV rows sent as binary COPY where every column
//!   converts ([`binary`]);
//!   with `-j`, a big table's data shared by idle workers ([`split`]), still all or nothing;
//! - resumable runs ([`state`]), keyed by what the input looked like ([`fingerprint`]).

#![warn(clippy::too_many_lines)]

pub mod binary;
pub mod blobs;
pub mod cancel;
pub mod cli;
pub mod dump;
pub mod engine;
pub mod fingerprint;
pub mod gpset;
pub mod load;
pub mod plain;
pub mod progress;
pub mod report;
pub mod script;
pub mod segment_restore;
pub mod split;
pub mod state;
pub mod toc;
pub mod verify;

use std::path::PathBuf;

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Backup(#[from] gpbackup::Error),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Script(#[from] script::ScriptError),
    /// A statement, table or large object the restore could not restore (the message names
    /// it, with the server's words).
    #[error("{0}")]
    Step(String),
    /// An archive entry's statements failed (rolled back).
    #[error("{entry}: {source}\nstatement: {}", clip(statement))]
    Entry {
        entry: String,
        statement: String,
        source: Box<engine::StepError>,
    },
    /// `--clean`: an entry's DROP failed.
    #[error("{entry} (clean): {source}")]
    Clean {
        entry: String,
        source: Box<engine::StepError>,
    },
    /// The session went away while steps sent together ran: none of them committed (or, lost
    /// at the COMMIT, the resume asks the server).
    #[error("{first} ... {last} ({steps} steps sent together): {source}")]
    LostInBatch {
        steps: usize,
        first: String,
        last: String,
        source: Box<engine::StepError>,
    },
    /// A table's data did not load (its transaction rolled back).
    #[error("{entry} ({table}): {source}")]
    Table {
        entry: String,
        table: String,
        source: Box<load::LoadError>,
    },
    /// A large-object entry's contents did not load (its transaction rolled back).
    #[error("{entry}: {source}")]
    LargeObjects {
        entry: String,
        source: Box<blobs::BlobError>,
    },
    /// `--analyze`.
    #[error("ANALYZE {table}: {message}")]
    Analyze { table: String, message: String },
    /// A plain script's statement failed.
    #[error("{file}, line {line}: {message}\nstatement: {}", clip(statement))]
    Statement {
        file: String,
        line: u64,
        message: String,
        statement: String,
    },
    /// A plain script's COPY block did not load (rolled back).
    #[error("{file}, line {line}: loading {table}: {source}; the table was left as it was")]
    ScriptCopy {
        file: String,
        line: u64,
        table: String,
        source: Box<load::LoadError>,
    },
    /// cbdump's manifest, or an archive's data checked against it.
    #[error(transparent)]
    Verify(Box<verify::VerifyError>),
    /// The input is not what it must be (the message names the file and line).
    #[error("{0}")]
    Input(String),
    /// A statement cbrestore sends on its own (a connection's session settings, the `BEGIN`
    /// and `COMMIT` of `--single-transaction`) failed.
    #[error("{what}: {}", cluster::error::server_message(source))]
    Session {
        what: &'static str,
        source: postgres::Error,
    },
    /// The input's SQL could not be split into statements.
    #[error("{input}: {source}")]
    Split {
        input: String,
        source: distfix::splitter::SplitError,
    },
    /// `--distribute`: the input could not be read for its tables, or given their clauses.
    #[error("{input}: {source}")]
    Rewrite {
        input: String,
        source: distfix::rewrite::RewriteError,
    },
    /// `--distribute`: the rules could not decide a table's clause.
    #[error("{input}: {source}")]
    Rules {
        input: String,
        source: distfix::rules::RulesError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("interrupted")]
    Interrupted,
    /// The restore stopped with its state recorded in `state`: it can be resumed.
    #[error("{error}")]
    Stopped {
        error: Box<RestoreError>,
        state: PathBuf,
    },
}

/// A failed statement as an error shows it: whole up to 2,000 bytes, else its start and how
/// much more there was. A large object's `lowrite` in a plain script is 8 KB of hex, and a
/// function body or a COPY-less INSERT can be far longer: whole, they buried the message (and
/// the resume command after it) under screens of text.
fn clip(statement: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN: usize = 2000;
    if statement.len() <= SHOWN {
        return statement.into();
    }
    let mut end = SHOWN;
    while !statement.is_char_boundary(end) {
        end -= 1;
    }
    let more = statement.len() - end;
    format!("{} ... ({more} more bytes)", &statement[..end]).into()
}

impl From<verify::VerifyError> for RestoreError {
    fn from(e: verify::VerifyError) -> RestoreError {
        RestoreError::Verify(Box::new(e))
    }
}

impl RestoreError {
    /// The error under a [`RestoreError::Stopped`].
    pub fn cause(&self) -> &RestoreError {
        match self {
            RestoreError::Stopped { error, .. } => error.cause(),
            e => e,
        }
    }

    /// Where the state of the stopped restore is, when it can be resumed.
    pub fn resumable_from(&self) -> Option<&std::path::Path> {
        match self {
            RestoreError::Stopped { state, .. } => Some(state),
            _ => None,
        }
    }

    /// Wraps `self` with the state a resume needs, when there is one.
    pub fn stopped(self, state: &state::State) -> RestoreError {
        let _ = state.save();
        match (state.path(), &self) {
            (Some(p), e)
                if p.exists()
                    && !matches!(e, RestoreError::State(_) | RestoreError::Stopped { .. }) =>
            {
                RestoreError::Stopped {
                    error: Box::new(self),
                    state: p.to_path_buf(),
                }
            }
            _ => self,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_statements_are_clipped_at_a_character() {
        assert_eq!(super::clip("SELECT 1"), "SELECT 1");
        let long = format!("SELECT  '{}'", "é".repeat(1500));
        let shown = super::clip(&long);
        assert!(shown.ends_with(&format!(" ... ({} more bytes)", long.len() - 1999)));
        assert!(shown.starts_with("SELECT  'é"));
    }
}
