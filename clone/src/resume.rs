//! `--resume`: settling what an earlier run left undecided, by asking the target.
//!
//! A chunk or the large objects' transaction logged as pending but not as committed was killed
//! somewhere around its COMMIT. The target knows which: `pg_xact_status(xid)` (PostgreSQL 13+;
//! `txid_status` before) says committed, aborted, or — while the killed client's backend has
//! not noticed yet — in progress, which we wait out.

use std::time::{Duration, Instant};

use cluster::{Client, ServerInfo};

use crate::state::{Event, State};
use crate::CloneError;

/// How long a killed run's transaction may stay "in progress" before we give up.
const SETTLE: Duration = Duration::from_secs(60);

/// Records as committed every pending chunk whose transaction committed; the others stay
/// unrecorded (their table is reloaded).
pub fn settle(target: &mut Client, info: &ServerInfo, state: &State) -> Result<(), CloneError> {
    wait_for_earlier_sessions(target)?;
    let recorded = state.recorded();
    for (table, rec) in &recorded.tables {
        for (chunk, xid) in &rec.pending {
            if committed(target, info, xid)? {
                state.record(Event::Chunk {
                    table: table.clone(),
                    chunk: *chunk,
                })?;
            }
        }
    }
    if let (Some(xid), false) = (&recorded.blobs_pending, recorded.blobs) {
        if committed(target, info, xid)? {
            state.record(Event::Blobs)?;
        }
    }
    Ok(())
}

/// Waits until no session of an earlier cbclone (its workers, its pg_restore's) is still
/// working on the target: a killed client's backend finishes the statement it runs before it
/// notices, and a resumed run must not race it.
fn wait_for_earlier_sessions(target: &mut Client) -> Result<(), CloneError> {
    let started = Instant::now();
    loop {
        let n: i64 = target
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                   AND application_name = 'cbclone' AND pid <> pg_backend_pid()",
                &[],
            )
            .map_err(CloneError::query("looking for sessions of the earlier run"))?
            .get(0);
        if n == 0 {
            return Ok(());
        }
        if started.elapsed() > SETTLE {
            return Err(CloneError::Query {
                what: "resuming".into(),
                message: format!(
                    "{n} sessions named cbclone are still connected to the target database after {} s; end them (or the other cbclone) and resume again",
                    SETTLE.as_secs()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether transaction `xid` (as `txid_current()` printed it) committed on the target.
fn committed(target: &mut Client, info: &ServerInfo, xid: &str) -> Result<bool, CloneError> {
    let sql = if info.version_num >= 130000 {
        "SELECT pg_xact_status($1::text::xid8)::text"
    } else {
        "SELECT txid_status($1::text::bigint)::text"
    };
    let started = Instant::now();
    loop {
        let status: Option<String> = target
            .query_one(sql, &[&xid])
            .map_err(CloneError::query(format!(
                "asking the target about transaction {xid}"
            )))?
            .get(0);
        match status.as_deref() {
            Some("committed") => return Ok(true),
            Some("in progress") if started.elapsed() < SETTLE => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Some("in progress") => {
                return Err(CloneError::Query {
                    what: format!("transaction {xid} of the earlier run"),
                    message: format!(
                    "still in progress after {} s; end that session on the target and resume again",
                    SETTLE.as_secs()
                ),
                })
            }
            // Aborted, or too old to know (NULL): not counted; the table is reloaded whole.
            _ => return Ok(false),
        }
    }
}
