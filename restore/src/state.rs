//! `--resume`: what a previous run of the same restore finished.
//!
//! The state file records finished metadata statements and committed tables, keyed by a
//! fingerprint of the input and the target, and is rewritten atomically after every step. On
//! `--resume` finished steps are skipped; a table whose load had not committed is loaded again
//! after a TRUNCATE in the same transaction, so no row is loaded twice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::RestoreError;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Recorded {
    fingerprint: String,
    statements: BTreeSet<String>,
    tables: BTreeSet<String>,
}

/// The state of one restore, shared by its workers.
#[derive(Debug)]
pub struct State {
    path: PathBuf,
    inner: Mutex<Recorded>,
    /// Resuming: steps recorded by the earlier run are skipped.
    pub resuming: bool,
}

impl State {
    /// Opens the state at `path`. Resuming needs the same fingerprint; a fresh run starts empty
    /// (and replaces a stale file).
    pub fn open(path: &Path, fingerprint: &str, resume: bool) -> Result<State, RestoreError> {
        let mut rec = Recorded {
            fingerprint: fingerprint.to_string(),
            ..Default::default()
        };
        if resume {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let old: Recorded = serde_json::from_slice(&bytes).map_err(|e| {
                        RestoreError::State(format!(
                            "{}: unreadable state file: {e}",
                            path.display()
                        ))
                    })?;
                    if old.fingerprint != fingerprint {
                        return Err(RestoreError::State(format!(
                            "{}: --resume refused: the state belongs to another input or target ({}), this run is {}",
                            path.display(),
                            old.fingerprint,
                            fingerprint
                        )));
                    }
                    rec = old;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RestoreError::State(format!("{}: {e}", path.display()))),
            }
        }
        let state = State {
            path: path.to_path_buf(),
            inner: Mutex::new(rec),
            resuming: resume,
        };
        state.save()?;
        Ok(state)
    }

    pub fn statement_done(&self, key: &str) -> bool {
        self.inner
            .lock()
            .expect("state lock")
            .statements
            .contains(key)
    }

    pub fn table_done(&self, table: &str) -> bool {
        self.inner
            .lock()
            .expect("state lock")
            .tables
            .contains(table)
    }

    pub fn mark_statement(&self, key: &str) -> Result<(), RestoreError> {
        let mut rec = self.inner.lock().expect("state lock");
        rec.statements.insert(key.to_string());
        self.write(&rec)
    }

    pub fn mark_table(&self, table: &str) -> Result<(), RestoreError> {
        let mut rec = self.inner.lock().expect("state lock");
        rec.tables.insert(table.to_string());
        self.write(&rec)
    }

    /// A finished restore needs no state.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    fn save(&self) -> Result<(), RestoreError> {
        let rec = self.inner.lock().expect("state lock");
        self.write(&rec)
    }

    /// Called with the lock held, so writers never interleave on the temporary file.
    fn write(&self, rec: &Recorded) -> Result<(), RestoreError> {
        let json = serde_json::to_vec_pretty(rec).expect("state serializes");
        let temp = self.path.with_extension("tmp");
        std::fs::write(&temp, json)
            .and_then(|_| std::fs::rename(&temp, &self.path))
            .map_err(|e| RestoreError::State(format!("{}: {e}", self.path.display())))
    }
}
