//! `--resume`: the bookkeeping of one restore, kept so that it survives any kill.
//!
//! Every step (a statement, a table's load, a script's transaction block) runs in a transaction
//! of its own. Before its COMMIT the transaction's id (`txid_current()`) is written to the state
//! file as *pending*; after the COMMIT the step is *done*. A kill can fall anywhere: before the
//! COMMIT reached the server (rolled back: nothing to undo), or after it (committed, but the
//! state still says pending). On `--resume` the server is asked what became of each pending
//! transaction (`pg_xact_status`, `txid_status` before PostgreSQL 13) instead of guessing: a
//! committed step is done, any other is run again. So a primary key whose build a kill
//! interrupted is neither built twice nor missing, and a table's load is never truncated to
//! undo it: a load that did not commit left nothing behind.
//!
//! The same book holds the tables this restore created ("created here"), the only ones whose
//! data may be emptied before loading (the interrupted load of a table the user already had
//! rolled back; its own rows stay). It lives in a state directory (`--state-dir`, default
//! `$XDG_STATE_HOME/cbtools` or `~/.local/state/cbtools`), written under a fresh `O_EXCL`
//! temporary name and renamed, so a kill leaves the old book or the new one, never half.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::{Client, GenericClient, Transaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why the bookkeeping failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unreadable state file: {source}")]
    Unreadable {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: --resume refused: the state belongs to another input or target ({recorded}), this run is {this}")]
    OtherInput {
        path: PathBuf,
        recorded: String,
        this: String,
    },
    #[error("{path}: an interrupted restore of this input into this target is recorded here ({steps} steps done). To continue it, run the same command with --resume; to start over, remove {path}")]
    Interrupted { path: PathBuf, steps: usize },
    #[error("asking the server about transaction {xid} of the interrupted run: {message}")]
    Server { xid: i64, message: String },
}

/// A step waiting for its COMMIT: what it would finish, and its transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    xid: i64,
    /// The table its CREATE made, if it made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    creates: Option<String>,
    /// Sequential inputs: the step number it finishes everything below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    through: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Book {
    fingerprint: String,
    /// Steps committed.
    done: BTreeSet<String>,
    /// Tables created by this restore (quoted `schema.table`).
    created: BTreeSet<String>,
    /// Steps whose COMMIT was sent or about to be, by key.
    pending: BTreeMap<String, Pending>,
    /// Sequential inputs (plain scripts): every step numbered below this one is done. One
    /// number instead of a set keeps each rewrite small for scripts of millions of statements.
    through: u64,
    /// The restore ran to its end (`--resume` then has nothing to do).
    finished: bool,
}

/// One line of the journal that follows the book's snapshot in the state file: a step's
/// transaction id before its COMMIT (`done` false), or the step done after it. Appending a
/// line per event keeps each step's bookkeeping a few dozen bytes however many steps were done
/// before (rewriting the whole book each time made a restore of many small objects quadratic).
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    k: String,
    #[serde(default)]
    x: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    done: bool,
}

impl Book {
    /// The snapshot on the first line, then the journal's lines in order. A last line a kill
    /// cut short is ignored: its event had not happened yet as far as anyone knows.
    fn read(bytes: &[u8]) -> Result<Book, serde_json::Error> {
        let mut lines = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
        let mut book: Book = serde_json::from_slice(lines.next().unwrap_or(b"{}"))?;
        for line in lines {
            let Ok(l) = serde_json::from_slice::<Line>(line) else {
                continue;
            };
            let p = Pending {
                xid: l.x,
                creates: l.c,
                through: l.t,
            };
            if l.done {
                book.pending.remove(&l.k);
                book.apply(&l.k, &p);
            } else {
                book.pending.insert(l.k, p);
            }
        }
        Ok(book)
    }

    fn apply(&mut self, key: &str, p: &Pending) {
        self.done.insert(key.to_string());
        if let Some(t) = &p.creates {
            self.created.insert(t.clone());
        }
        if let Some(n) = p.through {
            self.through = self.through.max(n);
        }
    }

    /// Steps done or possibly done (pending: the server will say).
    fn steps(&self) -> usize {
        self.done.len() + self.pending.len() + self.through as usize
    }
}

/// One step, as recorded: its key, the table it creates, the script position it finishes.
#[derive(Debug, Clone, Default)]
pub struct Step {
    pub key: String,
    pub creates: Option<String>,
    pub through: Option<u64>,
}

impl Step {
    pub fn new(key: impl Into<String>) -> Step {
        Step {
            key: key.into(),
            ..Default::default()
        }
    }

    /// A table's data.
    pub fn table(table: &str) -> Step {
        Step::new(format!("table:{table}"))
    }

    /// Statement number `n` of a sequential input (and every one before it).
    pub fn sequential(n: u64) -> Step {
        Step {
            key: format!("step:{n}"),
            creates: None,
            through: Some(n + 1),
        }
    }

    pub fn creating(mut self, table: Option<String>) -> Step {
        self.creates = table;
        self
    }
}

/// Where a restore's state is kept and what identifies its input.
#[derive(Debug, Clone)]
pub struct Place {
    /// `None`: kept in memory only (a script, a listing, or an unwritable state directory).
    pub path: Option<PathBuf>,
    /// What the input looked like (see `fingerprint.rs`): a resume of another input is refused.
    pub fingerprint: String,
    pub resume: bool,
}

/// The state of one restore, shared by its workers.
#[derive(Debug)]
pub struct State {
    path: Option<PathBuf>,
    book: Mutex<Book>,
    /// Resuming: steps recorded by the earlier run are skipped.
    pub resuming: bool,
    /// A pending transaction whose fate the server could not tell (a server older than 10):
    /// the first statement that finds its object already there is taken as that step.
    uncertain: Mutex<bool>,
    /// Nothing was written yet (a run that fails before its first step leaves no file).
    written: Mutex<bool>,
    /// The state file opened for appending, after its snapshot.
    journal: Mutex<Option<std::fs::File>>,
}

impl State {
    /// No file: a script, a listing.
    pub fn in_memory() -> State {
        State::new(None, Book::default(), false)
    }

    fn new(path: Option<PathBuf>, book: Book, resuming: bool) -> State {
        State {
            path,
            book: Mutex::new(book),
            resuming,
            uncertain: Mutex::new(false),
            written: Mutex::new(false),
            journal: Mutex::new(None),
        }
    }

    /// Opens the state at `place`. Resuming needs the same fingerprint. A fresh run over an
    /// interrupted one is refused (it would overwrite what `--resume` needs); over a finished
    /// one it starts empty.
    pub fn open(place: &Place) -> Result<State, StateError> {
        let Some(path) = &place.path else {
            return Ok(State::new(None, Book::default(), false));
        };
        let fresh = Book {
            fingerprint: place.fingerprint.clone(),
            ..Default::default()
        };
        let old = match std::fs::read(path) {
            Ok(bytes) => Some(Book::read(&bytes).map_err(|source| StateError::Unreadable {
                path: path.clone(),
                source,
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(StateError::Io {
                    path: path.clone(),
                    source,
                })
            }
        };
        let book = match (old, place.resume) {
            (Some(old), true) if old.fingerprint != place.fingerprint => {
                return Err(StateError::OtherInput {
                    path: path.clone(),
                    recorded: old.fingerprint,
                    this: place.fingerprint.clone(),
                })
            }
            (Some(old), true) => old,
            (Some(old), false) if !old.finished && old.steps() > 0 => {
                return Err(StateError::Interrupted {
                    path: path.clone(),
                    steps: old.steps(),
                })
            }
            _ => fresh,
        };
        Ok(State::new(Some(path.clone()), book, place.resume))
    }

    /// The file, when there is one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The earlier run finished: nothing to resume.
    pub fn finished(&self) -> bool {
        self.book.lock().expect("state lock").finished
    }

    /// Asks the server what became of the transactions the interrupted run left pending, and
    /// records those that committed. A transaction still running (its backend has not noticed
    /// the kill yet) is waited for.
    pub fn reconcile(&self, client: &mut Client) -> Result<(), StateError> {
        let pending: Vec<(String, Pending)> = {
            let book = self.book.lock().expect("state lock");
            book.pending
                .iter()
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect()
        };
        if pending.is_empty() {
            return Ok(());
        }
        let check = XactCheck::for_server(client);
        // Steps committed together share a transaction: asked once.
        let mut fates: BTreeMap<i64, Option<String>> = BTreeMap::new();
        for (key, p) in pending {
            let status = match fates.get(&p.xid) {
                Some(s) => s.clone(),
                None => {
                    let s = check.wait_for(client, p.xid)?;
                    fates.insert(p.xid, s.clone());
                    s
                }
            };
            let mut book = self.book.lock().expect("state lock");
            match status.as_deref() {
                Some("committed") => book.apply(&key, &p),
                Some(_) => {}
                None => *self.uncertain.lock().expect("state lock") = true,
            }
            book.pending.remove(&key);
        }
        let book = self.book.lock().expect("state lock");
        self.write(&book)
    }

    /// Whether a statement that finds its object already there may be the step an earlier run
    /// committed without recording it (only when the server could not say).
    pub fn take_uncertain(&self) -> bool {
        std::mem::take(&mut *self.uncertain.lock().expect("state lock"))
    }

    pub fn done(&self, key: &str) -> bool {
        self.book.lock().expect("state lock").done.contains(key)
    }

    pub fn table_done(&self, table: &str) -> bool {
        self.done(&Step::table(table).key)
    }

    /// Whether this restore (or the run it resumes) created `table` (quoted).
    pub fn created(&self, table: &str) -> bool {
        self.book
            .lock()
            .expect("state lock")
            .created
            .contains(table)
    }

    /// Records a table created outside a recorded step (a script, `--single-transaction`).
    pub fn note_created(&self, table: &str) {
        self.book
            .lock()
            .expect("state lock")
            .created
            .insert(table.to_string());
    }

    /// Forgets the tables created so far (a script's `\connect`: another database).
    pub fn forget_created(&self) {
        self.book.lock().expect("state lock").created.clear();
    }

    /// Sequential inputs: the steps numbered below the returned one are finished.
    pub fn through(&self) -> u64 {
        self.book.lock().expect("state lock").through
    }

    /// Commits `tx` as `step`: its transaction id is recorded before the COMMIT, the step after.
    pub fn commit(&self, mut tx: Transaction<'_>, step: Step) -> Result<(), CommitError> {
        let xid = self.xid_of(&mut tx)?;
        self.seal(xid, step, || tx.commit())
    }

    /// As [`State::commit`], for a transaction opened with a plain `BEGIN` on `client` (a
    /// script's own transaction block).
    pub fn commit_open(&self, client: &mut Client, step: Step) -> Result<(), CommitError> {
        let xid = self.xid_of(client)?;
        self.seal(xid, step, || client.batch_execute("COMMIT"))
    }

    /// As [`State::commit_open`], for a transaction whose id the caller asked already.
    pub fn commit_xid(&self, client: &mut Client, xid: i64, step: Step) -> Result<(), CommitError> {
        self.seal(Some(xid), step, || client.batch_execute("COMMIT"))
    }

    /// Whether steps are recorded in a file (else they only need to run).
    pub fn recording(&self) -> bool {
        self.path.is_some()
    }

    /// A step that ran unrecorded (no state file): remembered for this run only.
    pub fn note(&self, step: Step) {
        let p = Pending {
            xid: 0,
            creates: step.creates,
            through: step.through,
        };
        self.book.lock().expect("state lock").apply(&step.key, &p);
    }

    /// Records a step that ran outside a transaction block (statements that refuse one, such
    /// as `CREATE DATABASE`), after it ran.
    pub fn record(&self, step: Step) -> Result<(), StateError> {
        let mut book = self.book.lock().expect("state lock");
        let p = Pending {
            xid: 0,
            creates: step.creates,
            through: step.through,
        };
        book.apply(&step.key, &p);
        self.append(&book, &[(step.key.clone(), p.clone())], true)
    }

    fn xid_of<C: GenericClient>(&self, client: &mut C) -> Result<Option<i64>, CommitError> {
        if self.path.is_none() {
            return Ok(None);
        }
        let row = client
            .query_one("SELECT pg_catalog.txid_current()", &[])
            .map_err(CommitError::Server)?;
        Ok(Some(row.get(0)))
    }

    /// Commits the open transaction `xid` on `client` as every one of `steps` (small entries
    /// or statements sent together, see `engine.rs`): their pending lines in one write before
    /// the COMMIT, their done lines in one write after it.
    pub fn commit_steps(
        &self,
        client: &mut Client,
        xid: i64,
        steps: &[Step],
    ) -> Result<(), CommitError> {
        self.seal_all(Some(xid), steps, || client.batch_execute("COMMIT"))
    }

    fn seal(
        &self,
        xid: Option<i64>,
        step: Step,
        commit: impl FnOnce() -> Result<(), postgres::Error>,
    ) -> Result<(), CommitError> {
        self.seal_all(xid, std::slice::from_ref(&step), commit)
    }

    fn seal_all(
        &self,
        xid: Option<i64>,
        steps: &[Step],
        commit: impl FnOnce() -> Result<(), postgres::Error>,
    ) -> Result<(), CommitError> {
        let events: Vec<(String, Pending)> = steps
            .iter()
            .map(|s| {
                let p = Pending {
                    xid: xid.unwrap_or(0),
                    creates: s.creates.clone(),
                    through: s.through,
                };
                (s.key.clone(), p)
            })
            .collect();
        if xid.is_some() {
            let mut book = self.book.lock().expect("state lock");
            for (key, p) in &events {
                book.pending.insert(key.clone(), p.clone());
            }
            self.append(&book, &events, false)
                .map_err(CommitError::State)?;
        }
        commit().map_err(CommitError::Server)?;
        let mut book = self.book.lock().expect("state lock");
        for (key, p) in &events {
            book.pending.remove(key);
            book.apply(key, p);
        }
        if xid.is_some() {
            self.append(&book, &events, true)
                .map_err(CommitError::State)?;
        }
        Ok(())
    }

    /// Events at the end of the journal, in one write (the snapshot first, when there is none
    /// yet). Called with the book locked, so lines never interleave. A kill that cuts the
    /// write leaves whole lines and at most one torn last line, which is ignored: pending
    /// lines are written before the COMMIT is sent, so a lost one belongs to a transaction
    /// that never committed; a lost done line leaves its pending line, which `--resume`
    /// settles with the server.
    fn append(
        &self,
        book: &Book,
        events: &[(String, Pending)],
        done: bool,
    ) -> Result<(), StateError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let mut journal = self.journal.lock().expect("journal lock");
        if journal.is_none() {
            drop(journal);
            return self.write(book);
        }
        let mut bytes = Vec::new();
        for (key, p) in events {
            let line = Line {
                k: key.clone(),
                x: p.xid,
                c: p.creates.clone(),
                t: p.through,
                done,
            };
            serde_json::to_writer(&mut bytes, &line).expect("state serializes");
            bytes.push(b'\n');
        }
        let file = journal.as_mut().expect("journal open");
        file.write_all(&bytes).map_err(|source| StateError::Io {
            path: path.clone(),
            source,
        })
    }

    /// The restore ran to its end: the book shrinks to its fingerprint and `finished`.
    pub fn finish(&self) -> Result<(), StateError> {
        let mut book = self.book.lock().expect("state lock");
        *book = Book {
            fingerprint: std::mem::take(&mut book.fingerprint),
            finished: true,
            ..Default::default()
        };
        self.write(&book)
    }

    /// Writes what is recorded now (before a stop, so a resume skips what is done): the
    /// journal holds every event already; a book never written needs no file.
    pub fn save(&self) -> Result<(), StateError> {
        let book = self.book.lock().expect("state lock");
        if book.steps() == 0 || *self.written.lock().expect("lock") {
            return Ok(());
        }
        self.write(&book)
    }

    /// The book's snapshot, alone in a fresh temporary file (`O_EXCL`, random name) beside the
    /// state, renamed over it; the journal then continues it. Called with the book locked, so
    /// writers never interleave.
    fn write(&self, book: &Book) -> Result<(), StateError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let mut temp = tempfile::Builder::new()
            .prefix(".cbrestore-state-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io)?;
        let mut snapshot = serde_json::to_vec(book).expect("state serializes");
        snapshot.push(b'\n');
        temp.write_all(&snapshot).map_err(io)?;
        let file = temp.persist(path).map_err(|e| io(e.error))?;
        *self.journal.lock().expect("journal lock") = Some(file);
        *self.written.lock().expect("state lock") = true;
        Ok(())
    }
}

/// A step's COMMIT failed, or recording it did.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("{}", cluster::error::server_message(.0))]
    Server(postgres::Error),
    #[error(transparent)]
    State(StateError),
}

/// How this server tells a transaction's fate.
enum XactCheck {
    /// PostgreSQL 13 and later.
    XactStatus,
    /// PostgreSQL 10 to 12.
    TxidStatus,
    /// Older servers cannot say.
    Unknown,
}

impl XactCheck {
    fn for_server(client: &mut Client) -> XactCheck {
        let version: i32 = client
            .query_one(
                "SELECT pg_catalog.current_setting('server_version_num')::int",
                &[],
            )
            .map(|r| r.get(0))
            .unwrap_or(0);
        match version {
            v if v >= 130000 => XactCheck::XactStatus,
            v if v >= 100000 => XactCheck::TxidStatus,
            _ => XactCheck::Unknown,
        }
    }

    fn status(&self, client: &mut Client, xid: i64) -> Result<Option<String>, StateError> {
        let sql = match self {
            XactCheck::XactStatus => "SELECT pg_catalog.pg_xact_status($1::text::pg_catalog.xid8)",
            XactCheck::TxidStatus => "SELECT pg_catalog.txid_status($1)",
            XactCheck::Unknown => return Ok(None),
        };
        let row = match self {
            XactCheck::XactStatus => client.query_one(sql, &[&xid.to_string()]),
            _ => client.query_one(sql, &[&xid]),
        };
        row.map(|r| r.get(0)).map_err(|e| StateError::Server {
            xid,
            message: cluster::error::server_message(&e),
        })
    }

    /// The fate of `xid`, waiting while it is still in progress (the killed run's backend
    /// finishing a statement before it notices its client is gone).
    fn wait_for(&self, client: &mut Client, xid: i64) -> Result<Option<String>, StateError> {
        let started = Instant::now();
        let mut said = false;
        loop {
            let s = self.status(client, xid)?;
            if s.as_deref() != Some("in progress") {
                return Ok(s);
            }
            if !said && started.elapsed() > Duration::from_secs(2) {
                logline::say!(
                    "cbrestore: waiting for transaction {xid} of the interrupted run to end"
                );
                said = true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `$XDG_STATE_HOME/cbtools`, else `~/.local/state/cbtools`.
pub fn default_dir() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty());
    let base = match xdg {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?)
            .join(".local")
            .join("state"),
    };
    Some(base.join("cbtools"))
}

/// Where the state of a restore lives: `--state-file` when given, else a file in `state_dir`
/// (or [`default_dir`]) named after the input and target, with a digest of `identity` (what
/// makes two restores the same one: input paths, target, selection), so the same command finds
/// it again and different ones never share it.
///
/// When the directory cannot be created and `--resume` was not asked, the restore goes on
/// without a file (with a warning): bookkeeping must not stop a restore that does not need it.
pub fn place(
    state_file: Option<&Path>,
    state_dir: Option<&Path>,
    label: &str,
    identity: &str,
    fingerprint: String,
    resume: bool,
) -> Result<Place, StateError> {
    let path = match state_file {
        Some(f) => Some(f.to_path_buf()),
        None => {
            let dir = state_dir.map(Path::to_path_buf).or_else(default_dir);
            let made = dir.as_ref().map(|d| (d, std::fs::create_dir_all(d)));
            match made {
                Some((d, Ok(()))) => Some(d.join(file_name(label, identity))),
                Some((d, Err(source))) if resume => {
                    return Err(StateError::Io {
                        path: d.clone(),
                        source,
                    })
                }
                Some((d, Err(e))) => {
                    logline::say!("cbrestore: warning: {}: {e}; this restore cannot be resumed if it is interrupted", d.display());
                    None
                }
                None if resume => {
                    return Err(StateError::Io {
                        path: PathBuf::from("$HOME"),
                        source: std::io::Error::other("no state directory: give --state-dir"),
                    })
                }
                None => None,
            }
        }
    };
    Ok(Place {
        path,
        fingerprint,
        resume,
    })
}

fn file_name(label: &str, identity: &str) -> String {
    let digest = Sha256::digest(identity.as_bytes());
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    format!("cbrestore-{clean}-{}.json", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place_at(path: &Path, fp: &str, resume: bool) -> Place {
        Place {
            path: Some(path.to_path_buf()),
            fingerprint: fp.into(),
            resume,
        }
    }

    #[test]
    fn resume_keeps_steps_and_refuses_other_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let s = State::open(&place_at(&path, "fp1", false)).unwrap();
        s.record(Step::new("entry:3").creating(Some("\"public\".\"t\"".into())))
            .unwrap();
        s.record(Step::sequential(41)).unwrap();
        drop(s);
        // A line a kill cut short is ignored.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"k\":\"entry:9\",\"do").unwrap();
        drop(f);
        let s = State::open(&place_at(&path, "fp1", true)).unwrap();
        assert!(s.done("entry:3") && !s.done("entry:4") && !s.done("entry:9"));
        assert!(s.created("\"public\".\"t\""));
        assert_eq!(s.through(), 42);
        let e = State::open(&place_at(&path, "fp2", true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--resume refused"), "{e}");
        // A fresh run over an interrupted one is refused, over a finished one it starts empty.
        let e = State::open(&place_at(&path, "fp1", false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("with --resume") && e.contains("remove"), "{e}");
        s.finish().unwrap();
        let s = State::open(&place_at(&path, "fp1", true)).unwrap();
        assert!(s.finished());
        let s = State::open(&place_at(&path, "fp2", false)).unwrap();
        assert_eq!(s.through(), 0);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left");
    }

    #[test]
    fn places() {
        let dir = tempfile::tempdir().unwrap();
        let p = place(None, Some(dir.path()), "x.sql/db", "id", "fp".into(), false).unwrap();
        let path = p.path.unwrap();
        assert!(path.starts_with(dir.path()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("cbrestore-x.sql_db-"), "{name}");
        let other = place(
            None,
            Some(dir.path()),
            "x.sql/db",
            "id2",
            "fp".into(),
            false,
        )
        .unwrap();
        assert_ne!(other.path.unwrap(), path);
        let given = place(
            Some(Path::new("/s/f.json")),
            None,
            "x",
            "i",
            "f".into(),
            true,
        )
        .unwrap();
        assert_eq!(given.path.unwrap(), PathBuf::from("/s/f.json"));
    }
}
