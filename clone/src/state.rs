//! `--resume`: what earlier runs of the same clone committed on the target.
//!
//! The state is an append-only log of JSON lines in the state directory, each line written and
//! fsynced before the step it describes is relied on: a run killed at any instant leaves at
//! most a torn last line, which replay ignores. Rewriting one JSON file per step (as
//! cbrestore's state does) would work too, but appending keeps every record O(1) for clones of
//! many thousands of chunks.
//!
//! The chunk protocol: inside the chunk's transaction on the target, after the COPY, the
//! transaction id (`txid_current()`) is logged as `pending`; then COMMIT; then `chunk`. A run
//! killed between the two records leaves a pending chunk whose fate only the target knows:
//! [`crate::resume`] asks it (`pg_xact_status`), so a committed chunk is never loaded again
//! and an aborted one is never counted.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::CloneError;

/// One line of the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A run started (`run` counts runs: each has its own snapshot).
    Start {
        fingerprint: String,
        run: u32,
    },
    /// pg_restore's pre-data transaction committed: every selected table was created by this
    /// clone.
    PreData,
    /// A table's data load started in this run with this many chunks.
    Plan {
        table: String,
        chunks: usize,
    },
    /// The table was emptied: earlier chunks no longer count.
    Reset {
        table: String,
    },
    /// A chunk's transaction is about to commit with this transaction id.
    Pending {
        table: String,
        chunk: usize,
        xid: String,
    },
    /// A chunk committed.
    Chunk {
        table: String,
        chunk: usize,
    },
    /// Large objects' transaction is about to commit / committed.
    BlobsPending {
        xid: String,
    },
    Blobs,
    Sequences,
    PostData,
    Matviews,
    /// Every step finished: a `--resume` has nothing left to do.
    Done,
}

/// One table's recorded progress.
#[derive(Debug, Clone, Default)]
pub struct TableRecord {
    pub chunks: Option<usize>,
    pub done: BTreeSet<usize>,
    pub pending: BTreeMap<usize, String>,
}

impl TableRecord {
    /// Every planned chunk committed.
    pub fn finished(&self) -> bool {
        self.chunks
            .is_some_and(|n| (0..n).all(|c| self.done.contains(&c)))
    }

    /// Something of this table was loaded or may have been.
    pub fn touched(&self) -> bool {
        !self.done.is_empty() || !self.pending.is_empty()
    }
}

/// Everything the log says, replayed.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    pub fingerprint: Option<String>,
    pub runs: u32,
    pub pre_data: bool,
    pub tables: BTreeMap<String, TableRecord>,
    pub blobs_pending: Option<String>,
    pub blobs: bool,
    pub sequences: bool,
    pub post_data: bool,
    pub matviews: bool,
    pub done: bool,
}

impl Recorded {
    fn apply(&mut self, e: Event) {
        match e {
            Event::Start { fingerprint, run } => {
                self.fingerprint = Some(fingerprint);
                self.runs = run;
            }
            Event::PreData => self.pre_data = true,
            Event::Plan { table, chunks } => {
                self.tables.entry(table).or_default().chunks = Some(chunks);
            }
            Event::Reset { table } => {
                self.tables.insert(table, TableRecord::default());
            }
            Event::Pending { table, chunk, xid } => {
                self.tables
                    .entry(table)
                    .or_default()
                    .pending
                    .insert(chunk, xid);
            }
            Event::Chunk { table, chunk } => {
                let t = self.tables.entry(table).or_default();
                t.pending.remove(&chunk);
                t.done.insert(chunk);
            }
            Event::BlobsPending { xid } => self.blobs_pending = Some(xid),
            Event::Blobs => self.blobs = true,
            Event::Sequences => self.sequences = true,
            Event::PostData => self.post_data = true,
            Event::Matviews => self.matviews = true,
            Event::Done => self.done = true,
        }
    }

    pub fn table(&self, name: &str) -> TableRecord {
        self.tables.get(name).cloned().unwrap_or_default()
    }
}

/// The open log, shared by the workers.
pub struct State {
    path: PathBuf,
    file: Mutex<File>,
    recorded: Mutex<Recorded>,
}

impl State {
    /// Opens the state under `dir`. With `resume`, the earlier log is replayed (and must be of
    /// the same clone); without, any earlier log is discarded.
    pub fn open(dir: &Path, fingerprint: &str, resume: bool) -> Result<State, CloneError> {
        let path = dir.join("state.jsonl");
        let err = |message: String| CloneError::State {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("creating the directory: {e}")))?;
        let mut recorded = Recorded::default();
        let mut valid = 0;
        if resume {
            (recorded, valid) = replay(&path).map_err(|e| err(format!("reading: {e}")))?;
            if let Some(old) = &recorded.fingerprint {
                if old != fingerprint {
                    return Err(err(format!(
                        "--resume refused: the state belongs to another clone ({old}), this one is {fingerprint}"
                    )));
                }
            }
        }
        let mut options = OpenOptions::new();
        options.create(true);
        if resume {
            options.append(true);
        } else {
            options.write(true).truncate(true);
        }
        let file = options
            .open(&path)
            .map_err(|e| err(format!("opening: {e}")))?;
        // A torn last line is cut off, so the next record starts on a line of its own.
        file.set_len(valid)
            .map_err(|e| err(format!("truncating a torn record: {e}")))?;
        let state = State {
            path: path.clone(),
            file: Mutex::new(file),
            recorded: Mutex::new(recorded),
        };
        let run = state.recorded().runs + 1;
        state.record(Event::Start {
            fingerprint: fingerprint.to_string(),
            run,
        })?;
        Ok(state)
    }

    /// A copy of what is recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.recorded.lock().expect("state lock").clone()
    }

    /// Appends `event` and makes it durable before returning.
    pub fn record(&self, event: Event) -> Result<(), CloneError> {
        let mut line = serde_json::to_vec(&event).expect("events serialize");
        line.push(b'\n');
        {
            let mut f = self.file.lock().expect("state lock");
            f.write_all(&line)
                .and_then(|_| f.sync_data())
                .map_err(|e| CloneError::State {
                    path: self.path.clone(),
                    message: format!("writing: {e}"),
                })?;
        }
        self.recorded.lock().expect("state lock").apply(event);
        Ok(())
    }
}

/// The log's events in order, and the length of its complete lines; a torn last line (a kill
/// mid-write) is ignored.
fn replay(path: &Path) -> std::io::Result<(Recorded, u64)> {
    let mut rec = Recorded::default();
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((rec, 0)),
        Err(e) => return Err(e),
    };
    let mut valid = 0u64;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        match serde_json::from_slice::<Event>(&line) {
            Ok(e) => rec.apply(e),
            Err(_) => break,
        }
        valid += n as u64;
    }
    Ok((rec, valid))
}

/// `$XDG_STATE_HOME/cbtools/clone-<fingerprint>`, or under `~/.local/state`.
pub fn default_dir(fingerprint: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("cbtools").join(format!("clone-{fingerprint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_survives_a_torn_line_and_resets() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path(), "fp", false).unwrap();
        s.record(Event::Plan {
            table: "a".into(),
            chunks: 2,
        })
        .unwrap();
        s.record(Event::Pending {
            table: "a".into(),
            chunk: 0,
            xid: "7".into(),
        })
        .unwrap();
        s.record(Event::Chunk {
            table: "a".into(),
            chunk: 0,
        })
        .unwrap();
        s.record(Event::Pending {
            table: "a".into(),
            chunk: 1,
            xid: "8".into(),
        })
        .unwrap();
        drop(s);
        let path = dir.path().join("state.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":\"chunk\",\"tab").unwrap();
        let s = State::open(dir.path(), "fp", true).unwrap();
        let r = s.recorded();
        assert_eq!(r.runs, 2);
        let a = r.table("a");
        assert!(!a.finished() && a.touched());
        assert_eq!(a.pending.get(&1).map(String::as_str), Some("8"));
        assert!(State::open(dir.path(), "other", true).is_err());
    }
}
