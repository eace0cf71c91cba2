//! Stopping a tool at an exact step, without sleeping and hoping: a second session holds a lock
//! the step needs, and the test waits until the tool's backend queues behind it
//! (`pg_stat_activity.wait_event_type = 'Lock'`). What runs then is known to the statement, so a
//! kill lands in the same place on every run and on every machine.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::TestServer;

/// A lock taken by a session of its own, in a transaction that lasts until [`Held::release`]
/// (or drop). Taken on a thread, so a lock that must wait for the tool's transaction to end
/// queues without blocking the test: the server grants queued locks in order, so it is the
/// holder's before any later request of the tool.
pub struct Held {
    pid: i32,
    release: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Held {
    /// The holder's backend process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Ends the holder's transaction (its locks go) and waits for that.
    pub fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.end();
    }
}

impl TestServer {
    /// Runs `lock` (`LOCK TABLE ...`, `SELECT pg_advisory_xact_lock(...)`) in a transaction of
    /// a new session of `db`, on a thread; returns once the lock is granted or queued.
    pub fn hold(&self, db: &str, lock: &str) -> Held {
        let mut client = self.client(db);
        let pid: i32 = client
            .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
            .expect("the holder's pid")
            .get(0);
        let (tx, rx) = mpsc::channel::<()>();
        let (taken_tx, taken) = mpsc::channel::<Result<(), String>>();
        let sql = format!("BEGIN; {lock}");
        let thread = std::thread::spawn(move || {
            if let Err(e) = client.batch_execute(&sql) {
                let _ = taken_tx.send(Err(format!("{sql}: {e:?}")));
                return;
            }
            let _ = taken_tx.send(Ok(()));
            let _ = rx.recv();
            let _ = client.batch_execute("COMMIT");
        });
        let held = Held {
            pid,
            release: Some(tx),
            thread: Some(thread),
        };
        // Granted (the thread says so), or queued (the one lock a backend waits for is the only
        // one pg_locks shows as not granted).
        let queued = self.poll(db, 60, |c| {
            if let Ok(r) = taken.try_recv() {
                return Some(r);
            }
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_locks WHERE pid = $1 AND NOT granted",
                    &[&pid],
                )
                .expect("pg_locks")
                .get(0);
            (n > 0).then_some(Ok(()))
        });
        match queued {
            Some(Ok(())) => {}
            Some(Err(e)) => panic!("{e}"),
            None => panic!("{lock} was neither granted nor queued"),
        }
        held
    }

    /// Waits (up to `seconds`) until a backend of `db` other than `except` waits for a lock of
    /// kind `wait_event` (`relation`, `advisory`, ...) while running a statement matching the
    /// regular expression `query`; its pid. Panics with what the database's sessions do if
    /// none does in time.
    pub fn wait_for_lock_wait(
        &self,
        db: &str,
        wait_event: &str,
        query: &str,
        except: &[i32],
        seconds: u64,
    ) -> i32 {
        let found = self.poll(db, seconds, |c| {
            c.query_opt(
                "SELECT pid FROM pg_catalog.pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock' AND wait_event = $1 AND query ~ $2 \
                   AND pid <> ALL($3) AND pid <> pg_catalog.pg_backend_pid() LIMIT 1",
                &[&wait_event, &query, &except],
            )
            .expect("pg_stat_activity")
            .map(|r| r.get::<_, i32>(0))
        });
        found.unwrap_or_else(|| {
            panic!(
                "no session of {db} waited for a {wait_event} lock running /{query}/ within {seconds} s; sessions: {}",
                self.activity(db)
            )
        })
    }

    /// Waits (up to `seconds`) until backend `pid` waits for `wait_event` (`SyncRep`, ...).
    pub fn wait_for_wait_event(&self, db: &str, pid: i32, wait_event: &str, seconds: u64) {
        let seen = self.poll(db, seconds, |c| {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE pid = $1 AND wait_event = $2",
                    &[&pid, &wait_event],
                )
                .expect("pg_stat_activity")
                .get(0);
            (n > 0).then_some(())
        });
        assert!(
            seen.is_some(),
            "backend {pid} did not wait for {wait_event} within {seconds} s; sessions: {}",
            self.activity(db)
        );
    }

    /// Waits until no backend of `db` but `except` is left (a killed client's backend ends once
    /// it notices; a resume must not race it for the test's assertions on sessions).
    pub fn wait_for_sessions_gone(&self, db: &str, except: &[i32], seconds: u64) {
        let gone = self.poll(db, seconds, |c| {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = current_database() \
                       AND pid <> ALL($1) AND pid <> pg_catalog.pg_backend_pid()",
                    &[&except],
                )
                .expect("pg_stat_activity")
                .get(0);
            (n == 0).then_some(())
        });
        assert!(
            gone.is_some(),
            "sessions of {db} still there: {}",
            self.activity(db)
        );
    }

    /// What the sessions of `db` do, for failure messages.
    pub fn activity(&self, db: &str) -> String {
        let mut c = self.client("postgres");
        c.query(
            "SELECT pid, state, coalesce(wait_event_type, '-') || '/' || coalesce(wait_event, '-'), left(query, 120) \
               FROM pg_catalog.pg_stat_activity WHERE datname = $1",
            &[&db],
        )
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    format!(
                        "[{} {:?} {} {:?}]",
                        r.get::<_, i32>(0),
                        r.get::<_, Option<String>>(1),
                        r.get::<_, String>(2),
                        r.get::<_, String>(3)
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|e| e.to_string())
    }

    fn poll<T>(
        &self,
        db: &str,
        seconds: u64,
        mut probe: impl FnMut(&mut postgres::Client) -> Option<T>,
    ) -> Option<T> {
        let mut c = self.client(db);
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if let Some(t) = probe(&mut c) {
                return Some(t);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}
