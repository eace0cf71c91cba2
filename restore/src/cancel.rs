//! What a signal does to the statements this restore has in flight: every connection it opens
//! is noted here ([`connect`]), and [`cancel_all`] (the signal hook `main.rs` installs through
//! the interrupt crate) sends the server a cancel request for each. A table's COPY or an index
//! build can take minutes; cancelled, it rolls back at once and the restore stops with its
//! state recorded, printing the command that resumes it. A cancel that reaches a COMMIT is
//! harmless: the transaction id is recorded before it (see state.rs), and `--resume` asks the
//! server what became of it.
//!
//! The list is the process's (one restore per process); a connection closed since costs a
//! cancel request the server ignores.

use std::sync::Mutex;

use cluster::ConnParams;
use postgres::{CancelToken, Client};

static SESSIONS: Mutex<Vec<(CancelToken, ConnParams)>> = Mutex::new(Vec::new());

/// A connection whose statements a signal cancels.
pub fn connect(conn: &ConnParams) -> Result<Client, cluster::ClusterError> {
    let client = cluster::connect(conn)?;
    watch(&client, conn);
    Ok(client)
}

/// Notes `client`'s cancel key.
pub fn watch(client: &Client, conn: &ConnParams) {
    let mut sessions = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
    sessions.push((client.cancel_token(), conn.clone()));
}

/// Asks the server to cancel whatever each noted connection is running.
pub fn cancel_all() {
    let sessions: Vec<(CancelToken, ConnParams)> =
        SESSIONS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (token, conn) in &sessions {
        cluster::connect::cancel(token, conn);
    }
}
