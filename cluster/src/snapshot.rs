//! One consistent snapshot shared by all workers.
//!
//! The leader opens a REPEATABLE READ transaction, locks the selected tables ACCESS SHARE (so no
//! one can drop or rewrite them underneath the export, as pg_dump does) and exports its
//! snapshot; every worker opens its own REPEATABLE READ transaction and imports it. All of them
//! then see the database at the same instant, whatever commits meanwhile. The leader must stay
//! open until the last worker has imported; we keep it for the whole run.

use postgres::Client;

use crate::{quote, ClusterError};

/// The leader's open transaction and its exported snapshot id.
pub struct SnapshotLeader {
    client: Client,
    id: String,
}

impl SnapshotLeader {
    /// Starts the transaction, takes the locks and exports the snapshot. `lock_timeout_ms`
    /// bounds the wait for each lock (pg_dump's `--lock-wait-timeout`); `None` waits.
    pub fn begin(
        mut client: Client,
        tables: &[String],
        lock_timeout_ms: Option<u64>,
    ) -> Result<SnapshotLeader, ClusterError> {
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .map_err(ClusterError::query("starting the snapshot transaction"))?;
        if let Some(ms) = lock_timeout_ms {
            client
                .batch_execute(&format!("SET LOCAL lock_timeout = {ms}"))
                .map_err(ClusterError::query("setting lock_timeout"))?;
        }
        let id: String = client
            .query_one("SELECT pg_export_snapshot()", &[])
            .map_err(ClusterError::query("exporting the snapshot"))?
            .get(0);
        let mut leader = SnapshotLeader { client, id };
        leader.lock(tables)?;
        Ok(leader)
    }

    /// Takes ACCESS SHARE locks on more tables (quoted names), e.g. once the selection has
    /// been read inside this snapshot.
    pub fn lock(&mut self, tables: &[String]) -> Result<(), ClusterError> {
        for t in tables {
            self.client
                .batch_execute(&format!("LOCK TABLE {t} IN ACCESS SHARE MODE"))
                .map_err(ClusterError::query(format!("locking {t}")))?;
        }
        Ok(())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The leader's session, for catalog reads that must see the same snapshot.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Ends the read-only transaction.
    pub fn finish(mut self) -> Result<(), ClusterError> {
        self.client
            .batch_execute("COMMIT")
            .map_err(ClusterError::query("ending the snapshot transaction"))
    }
}

/// Makes `client` see the leader's snapshot.
pub fn import(client: &mut Client, snapshot_id: &str) -> Result<(), ClusterError> {
    client
        .batch_execute(&import_sql(snapshot_id))
        .map_err(ClusterError::query(format!(
            "importing snapshot {snapshot_id}"
        )))
}

/// [`import`] for a [`CopySession`](crate::copy_stream::CopySession).
pub fn import_into(
    session: &mut crate::copy_stream::CopySession,
    snapshot_id: &str,
) -> Result<(), ClusterError> {
    session
        .batch_execute(&import_sql(snapshot_id))
        .map_err(ClusterError::query(format!(
            "importing snapshot {snapshot_id}"
        )))
}

fn import_sql(snapshot_id: &str) -> String {
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
        quote::literal(snapshot_id)
    )
}
