//! What every input's restore shares: the on-error policy, a statement run as a recorded step,
//! and the worker pool that schedules steps by their dependencies and by pg_restore's
//! lock-conflict rule.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use postgres::Client;

use crate::state::{CommitError, State, StateError, Step};
use crate::RestoreError;

/// `--on-error-continue` or stop at the first error; the errors skipped, for the report.
#[derive(Debug, Default)]
pub struct Policy {
    continue_on_error: bool,
    errors: Mutex<Vec<String>>,
    /// Raised by a signal: an error then is the cancelled statement, and the restore stops.
    abort: Option<Arc<AtomicBool>>,
}

impl Policy {
    pub fn new(continue_on_error: bool) -> Policy {
        Policy {
            continue_on_error,
            errors: Mutex::new(Vec::new()),
            abort: None,
        }
    }

    /// Errors after `abort` is raised stop the restore as interrupted (the signal cancelled
    /// the statements in flight, see cancel.rs), even under `--on-error-continue`.
    pub fn stopping_on(mut self, abort: Arc<AtomicBool>) -> Policy {
        self.abort = Some(abort);
        self
    }

    /// An error: recorded and skipped under `--on-error-continue`, else the restore stops.
    pub fn fail(&self, error: RestoreError) -> Result<(), RestoreError> {
        if self
            .abort
            .as_ref()
            .is_some_and(|a| a.load(Ordering::SeqCst))
        {
            return Err(RestoreError::Interrupted);
        }
        if self.continue_on_error && !connection_lost(&error) {
            let what = error.to_string();
            logline::say!("cbrestore: error (continuing): {what}");
            self.errors.lock().expect("errors lock").push(what);
            Ok(())
        } else {
            Err(error)
        }
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("errors lock").clone()
    }
}

/// Whether `error` says the session itself is gone (its backend terminated, the server
/// restarted, the socket closed): not one step's error to skip, since no later step can run on
/// that connection. Skipping it made every later step fail the same way ("connection closed"
/// for each of the 20 entries of kill_phases.rs's archive after its backend was terminated)
/// and the restore end as finished: `--resume` then had nothing to do and the target stayed
/// empty. The deepest cause is the server's or the driver's message (the statement quoted
/// around it could say anything).
fn connection_lost(error: &RestoreError) -> bool {
    let mut cause: &dyn std::error::Error = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let what = cause.to_string();
    [
        "FATAL: ",
        "PANIC: ",
        "connection closed",
        cluster::error::LOST_CONNECTION,
        "error communicating with the server",
    ]
    .iter()
    .any(|m| what.starts_with(m) || what.contains(&format!(": {m}")) || what == *m)
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Server(String),
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// A COPY inside a plain script's own transaction block.
    #[error(transparent)]
    Load(Box<crate::load::LoadError>),
}

impl StepError {
    /// The object was there already: in a resumed run, possibly the step the killed run
    /// committed without being able to record it.
    pub fn already_exists(&self) -> bool {
        matches!(self, StepError::Server(m) if m.contains("already exists"))
    }
}

fn server(e: postgres::Error) -> StepError {
    StepError::Server(cluster::error::server_message(&e))
}

/// Runs `sql` on `client` as `step`, in a transaction of its own committed through the state:
/// `BEGIN`, the statements and `txid_current()` in one round trip, the transaction id
/// recorded, then `COMMIT`. Unrecorded (no state file), the statements run as they are.
pub fn run_step(
    client: &mut Client,
    state: &State,
    step: Step,
    sql: &str,
) -> Result<(), StepError> {
    if !state.recording() {
        client.batch_execute(sql).map_err(server)?;
        state.note(step);
        return Ok(());
    }
    let batch = format!("BEGIN;\n{sql}\n;\nSELECT pg_catalog.txid_current()");
    let xid = match client.simple_query(&batch) {
        Ok(messages) => messages.iter().rev().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse::<i64>().ok()),
            _ => None,
        }),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK");
            return Err(server(e));
        }
    };
    let Some(xid) = xid else {
        let _ = client.batch_execute("ROLLBACK");
        return Err(StepError::Server(
            "no transaction id from txid_current()".into(),
        ));
    };
    state.commit_xid(client, xid, step)?;
    Ok(())
}

/// Small steps sent together: one transaction, one message, one pair of journal writes.
///
/// A step of its own costs two round trips (the statements with `txid_current()`, then the
/// COMMIT after the transaction id is recorded); the regression database's pre-data alone is
/// about 1,400 of them (2,885 messages, 2.0 s against pg_restore's 1.15 s). Consecutive steps
/// collected here go as `BEGIN; s1; s2; ...; SELECT txid_current()`, then one COMMIT for all:
/// two round trips per batch (84 messages, 0.4 s). A batch that fails is rolled back whole,
/// and the caller runs its steps one by one (the step that fails is then named alone, and
/// those before it commit, as they would have).
#[derive(Debug, Default)]
pub struct Batch {
    sql: String,
    steps: Vec<Step>,
    statements: usize,
}

impl Batch {
    /// At most this many steps (each holds its locks until the COMMIT: 64 keeps a batch far
    /// below `max_locks_per_transaction` times the connections)...
    const STEPS: usize = 64;
    /// ...and this much text (a function body or a big view can be long).
    const BYTES: usize = 256 * 1024;

    pub fn push(&mut self, step: Step, sql: &str) {
        self.push_session(sql);
        self.steps.push(step);
    }

    /// A statement that is no step of its own (a script's `SET`): it runs with the batch, and
    /// again with each statement after a failure.
    pub fn push_session(&mut self, sql: &str) {
        self.sql.push_str(sql);
        // A statement may end without its semicolon or in a `--` comment.
        self.sql.push_str("\n;\n");
        self.statements += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.statements == 0
    }

    /// Whether the next statement should go in a new batch.
    pub fn full(&self) -> bool {
        self.statements >= Batch::STEPS || self.sql.len() >= Batch::BYTES
    }

    /// Runs and commits the batch through the state, emptying it. On a server error the
    /// transaction is rolled back (nothing of the batch stays) and the steps are returned for
    /// the caller to run one by one; the bookkeeping failing is the restore's end.
    pub fn run(&mut self, client: &mut Client, state: &State) -> Result<(), BatchFailure> {
        let sql = std::mem::take(&mut self.sql);
        let steps = std::mem::take(&mut self.steps);
        if std::mem::take(&mut self.statements) == 0 {
            return Ok(());
        }
        if !state.recording() {
            // No journal: the COMMIT goes in the same message.
            return match client.batch_execute(&format!("BEGIN;\n{sql}COMMIT")) {
                Ok(()) => {
                    steps.into_iter().for_each(|s| state.note(s));
                    Ok(())
                }
                Err(e) => Err(BatchFailure::after(client, e, steps)),
            };
        }
        let batch = format!("BEGIN;\n{sql}SELECT pg_catalog.txid_current()");
        let xid = match client.simple_query(&batch) {
            Ok(messages) => last_xid(&messages),
            Err(e) => return Err(BatchFailure::after(client, e, steps)),
        };
        let Some(xid) = xid else {
            let _ = client.batch_execute("ROLLBACK");
            return Err(BatchFailure::Rerun(steps));
        };
        match state.commit_steps(client, xid, &steps) {
            Ok(()) => Ok(()),
            Err(CommitError::State(e)) => {
                let _ = client.batch_execute("ROLLBACK");
                Err(BatchFailure::State(e))
            }
            // The COMMIT failed (a deferred constraint): one by one. The session lost at the
            // COMMIT: the transaction id is recorded, a resume asks the server.
            Err(CommitError::Server(e)) => Err(BatchFailure::after(client, e, steps)),
        }
    }
}

/// Why a [`Batch`] did not commit.
#[derive(Debug)]
pub enum BatchFailure {
    /// A statement failed and the batch was rolled back: its steps, to run one by one.
    Rerun(Vec<Step>),
    /// The session went away while the batch ran: none of its steps can run again on it.
    /// Running them one by one named the batch's first step as the failure, which may have
    /// had nothing to do with it (kill_phases.rs's terminated backends).
    Lost { steps: usize, source: StepError },
    /// The state could not be written.
    State(StateError),
}

impl BatchFailure {
    /// After the batch's statements or its COMMIT failed with `e`: rolled back, to rerun one
    /// by one, unless the session itself is gone.
    fn after(client: &mut Client, e: postgres::Error, steps: Vec<Step>) -> BatchFailure {
        if cluster::error::session_lost(&e) {
            return BatchFailure::Lost {
                steps: steps.len(),
                source: server(e),
            };
        }
        let _ = client.batch_execute("ROLLBACK");
        BatchFailure::Rerun(steps)
    }
}

/// The error for a batch whose session went away, naming the batch by its first and last
/// members (the driver's labels: an archive entry, a script line, a set's statement).
pub fn lost_in_batch(steps: usize, source: StepError, first: String, last: String) -> RestoreError {
    RestoreError::LostInBatch {
        steps,
        first,
        last,
        source: Box::new(source),
    }
}

/// The transaction id a batch's last statement returned.
fn last_xid(messages: &[postgres::SimpleQueryMessage]) -> Option<i64> {
    messages.iter().rev().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse::<i64>().ok()),
        _ => None,
    })
}

/// One schedulable item: its id, what must be done before it, and the tables it locks
/// exclusively (pg_restore's `lockDeps`).
#[derive(Debug, Clone)]
pub struct Item {
    pub id: i32,
    pub deps: Vec<i32>,
    pub lock_deps: Vec<i32>,
}

/// What a worker gets next.
enum Next {
    Run(usize),
    /// Nothing is ready while others run: wait for one to finish.
    Wait,
    Empty,
}

/// pg_restore's scheduling: an item is ready when every dependency is done, and runs only if
/// it has no lock conflict with an item running (one locks a table the other depends on, in
/// either direction: `has_lock_conflicts`). Two foreign keys on tables of one partition tree
/// therefore never run at once, which is what deadlocked.
struct Schedule {
    items: Vec<Item>,
    pending: Vec<usize>,
    running: Vec<usize>,
    done: HashSet<i32>,
    ids: HashSet<i32>,
}

impl Schedule {
    fn new(items: Vec<Item>) -> Schedule {
        let ids = items.iter().map(|i| i.id).collect();
        Schedule {
            pending: (0..items.len()).collect(),
            items,
            running: Vec::new(),
            done: HashSet::new(),
            ids,
        }
    }

    fn conflicts(a: &Item, b: &Item) -> bool {
        a.lock_deps.iter().any(|l| b.deps.contains(l))
            || b.lock_deps.iter().any(|l| a.deps.contains(l))
    }

    fn ready(&self, i: usize) -> bool {
        let item = &self.items[i];
        let deps_done = item
            .deps
            .iter()
            .all(|d| !self.ids.contains(d) || self.done.contains(d));
        deps_done
            && !self
                .running
                .iter()
                .any(|&r| Schedule::conflicts(item, &self.items[r]))
    }

    fn next(&mut self) -> Next {
        if self.pending.is_empty() {
            // Items still running: the worker waits, lending its connection to a big table's
            // load meanwhile ([`Work::idle`]), instead of leaving that load to fewer streams.
            return if self.running.is_empty() {
                Next::Empty
            } else {
                Next::Wait
            };
        }
        let pick = match self.pending.iter().position(|&i| self.ready(i)) {
            Some(p) => p,
            // Nothing running can end the wait (a cycle): take the next item as it is.
            None if self.running.is_empty() => 0,
            None => return Next::Wait,
        };
        let i = self.pending.remove(pick);
        self.running.push(i);
        Next::Run(i)
    }

    fn finish(&mut self, i: usize) {
        self.running.retain(|&r| r != i);
        self.done.insert(self.items[i].id);
    }
}

/// How the pool's workers get their connection and do their work.
pub trait Work: Sync {
    fn connect(&self) -> Result<Client, RestoreError>;
    /// Runs item number `index` of the list given to [`run_pool`].
    fn run(&self, client: &mut Client, index: usize) -> Result<(), RestoreError>;
    /// A worker with nothing ready: lend the connection (to a split load); `true` if it did.
    fn idle(&self, _client: &mut Client) -> bool {
        false
    }
}

struct Shared {
    schedule: Mutex<Schedule>,
    changed: Condvar,
    failure: Mutex<Option<RestoreError>>,
}

/// Runs `items` on `jobs` connections in pg_restore's order (see [`Schedule`]). Stops handing
/// out work at the first error or when `abort` is raised; items already running finish.
pub fn run_pool(
    jobs: usize,
    items: Vec<Item>,
    work: &dyn Work,
    abort: &AtomicBool,
) -> Result<(), RestoreError> {
    let workers = jobs.min(items.len()).max(1);
    let shared = Shared {
        schedule: Mutex::new(Schedule::new(items)),
        changed: Condvar::new(),
        failure: Mutex::new(None),
    };
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| worker(&shared, work, abort));
        }
    });
    // Interrupted: a failure is the statement the signal cancelled.
    if abort.load(Ordering::SeqCst) {
        return Err(RestoreError::Interrupted);
    }
    if let Some(e) = shared.failure.into_inner().expect("failure lock") {
        return Err(e);
    }
    Ok(())
}

fn worker(shared: &Shared, work: &dyn Work, abort: &AtomicBool) {
    let stop = |e: RestoreError| {
        shared
            .failure
            .lock()
            .expect("failure lock")
            .get_or_insert(e);
        shared.changed.notify_all();
    };
    let mut client = match work.connect() {
        Ok(c) => c,
        Err(e) => return stop(e),
    };
    loop {
        if abort.load(Ordering::SeqCst) || shared.failure.lock().expect("lock").is_some() {
            shared.changed.notify_all();
            return;
        }
        let next = shared.schedule.lock().expect("schedule lock").next();
        match next {
            Next::Empty => return,
            Next::Wait => {
                if !work.idle(&mut client) {
                    let s = shared.schedule.lock().expect("schedule lock");
                    let _ = shared
                        .changed
                        .wait_timeout(s, Duration::from_millis(20))
                        .expect("schedule lock");
                }
            }
            Next::Run(i) => {
                let r = work.run(&mut client, i);
                shared.schedule.lock().expect("schedule lock").finish(i);
                shared.changed.notify_all();
                if let Err(e) = r {
                    return stop(e);
                }
            }
        }
    }
}

/// Shared between the pool's workers: whether the restore was interrupted.
pub type Abort = Arc<AtomicBool>;

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: i32, deps: &[i32], lock_deps: &[i32]) -> Item {
        Item {
            id,
            deps: deps.to_vec(),
            lock_deps: lock_deps.to_vec(),
        }
    }

    #[test]
    fn lock_conflicts_serialize_foreign_keys_on_one_tree() {
        // 10, 11: data of two partitions; 20: FK on 10 referencing 30; 21: FK on 11
        // referencing 30; 22: an index on 11 (no lock deps).
        let mut s = Schedule::new(vec![
            item(10, &[], &[]),
            item(11, &[], &[]),
            item(20, &[10, 30], &[10, 30]),
            item(21, &[11, 30], &[11, 30]),
            item(22, &[11], &[]),
        ]);
        let (Next::Run(a), Next::Run(b)) = (s.next(), s.next()) else {
            panic!("both data items start")
        };
        s.finish(a);
        s.finish(b);
        let Next::Run(fk1) = s.next() else { panic!() };
        assert_eq!(s.items[fk1].id, 20);
        // 21 conflicts with the running 20 (both lock 30); the index on 11 conflicts with
        // nothing of 20's.
        let Next::Run(ix) = s.next() else { panic!() };
        assert_eq!(s.items[ix].id, 22);
        assert!(matches!(s.next(), Next::Wait));
        s.finish(fk1);
        // 21 would lock 11, on which the running index depends.
        assert!(matches!(s.next(), Next::Wait));
        s.finish(ix);
        let Next::Run(fk2) = s.next() else { panic!() };
        assert_eq!(s.items[fk2].id, 21);
    }
}
