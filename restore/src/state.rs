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
    /// Sequential inputs (plain scripts): every step numbered below this one is finished. One
    /// number instead of a set keeps each rewrite small for scripts of millions of statements.
    #[serde(default)]
    through: u64,
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

    /// Sequential inputs: the steps numbered below the returned one are finished.
    pub fn through(&self) -> u64 {
        self.inner.lock().expect("state lock").through
    }

    /// Sequential inputs: step `step` (and every one before it) is finished.
    pub fn mark_through(&self, step: u64) -> Result<(), RestoreError> {
        let mut rec = self.inner.lock().expect("state lock");
        rec.through = rec.through.max(step + 1);
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

    /// Called with the lock held, so writers never interleave on the temporary file. Written
    /// under a temporary name and renamed: a kill leaves the old state or the new, never half.
    fn write(&self, rec: &Recorded) -> Result<(), RestoreError> {
        let json = serde_json::to_vec(rec).expect("state serializes");
        let mut temp = self.path.clone().into_os_string();
        temp.push(".tmp");
        let temp = PathBuf::from(temp);
        std::fs::write(&temp, json)
            .and_then(|_| std::fs::rename(&temp, &self.path))
            .map_err(|e| RestoreError::State(format!("{}: {e}", self.path.display())))
    }
}

/// Where the state of a restore of `input` lives: `--state-file` when given, else
/// `<input>.cbrestore-state.json` beside the input (in `--state-dir` when given), so the same
/// command finds it again. `label` names inputs that are not one path (stdin, several roots).
pub fn default_path(input: &Path, label: Option<&str>, state_dir: Option<&Path>) -> PathBuf {
    let name = match label {
        Some(l) => format!(".cbrestore-{l}.state.json"),
        None => {
            let base = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".into());
            format!("{base}.cbrestore-state.json")
        }
    };
    match state_dir {
        Some(d) => d.join(name),
        None if label.is_some() => PathBuf::from(name),
        None => input
            .parent()
            .map(|p| p.join(&name))
            .unwrap_or_else(|| PathBuf::from(&name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_keeps_steps_and_refuses_other_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let s = State::open(&path, "fp1", false).unwrap();
        s.mark_statement("Predata:3").unwrap();
        s.mark_table("public.t").unwrap();
        s.mark_through(41).unwrap();
        drop(s);
        let s = State::open(&path, "fp1", true).unwrap();
        assert!(s.statement_done("Predata:3") && !s.statement_done("Predata:4"));
        assert!(s.table_done("public.t"));
        assert_eq!(s.through(), 42);
        let e = State::open(&path, "fp2", true).unwrap_err().to_string();
        assert!(e.contains("--resume refused"), "{e}");
        // A fresh run replaces the stale state.
        let s = State::open(&path, "fp2", false).unwrap();
        assert_eq!(s.through(), 0);
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn default_paths() {
        assert_eq!(
            default_path(Path::new("/d/x.sql.gz"), None, None),
            PathBuf::from("/d/x.sql.gz.cbrestore-state.json")
        );
        assert_eq!(
            default_path(Path::new("/d/x.sql"), None, Some(Path::new("/s"))),
            PathBuf::from("/s/x.sql.cbrestore-state.json")
        );
        assert_eq!(
            default_path(Path::new("-"), Some("stdin-ab"), None),
            PathBuf::from(".cbrestore-stdin-ab.state.json")
        );
    }
}
