//! cbrestore: loads backups through the coordinator.
//!
//! - gpbackup backup sets ([`gpset`]): every segment's files merged into one `COPY ... FROM
//!   STDIN` per table, into a cluster of any size or plain PostgreSQL;
//! - the loader they share ([`load`]): one table per transaction, never half loaded, counted;
//! - resumable runs ([`state`]).

pub mod dump;
pub mod gpset;
pub mod load;
pub mod plain;
pub mod state;
pub mod verify;

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Backup(#[from] gpbackup::Error),
    #[error("{0}")]
    State(String),
    #[error("interrupted")]
    Interrupted,
}
