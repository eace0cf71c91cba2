//! cbrestore: loads backups through the coordinator.
//!
//! - gpbackup backup sets ([`gpset`]): every segment's files merged into one `COPY ... FROM
//!   STDIN` per table, into a cluster of any size or plain PostgreSQL;
//! - pg_dump/cbdump custom and directory archives ([`dump`], checked by [`verify`]);
//! - plain SQL scripts ([`plain`]): psql's splitting, pg_restore's filters, resumable;
//! - the loader they share ([`load`]): one table per transaction, never half loaded, counted;
//!   pg_dump's text rows and gpbackup's CSV rows sent as binary COPY where every column
//!   converts ([`binary`]);
//!   with `-j`, a big table's data shared by idle workers ([`split`]), still all or nothing;
//! - resumable runs ([`state`]), keyed by what the input looked like ([`fingerprint`]).

pub mod binary;
pub mod dump;
pub mod fingerprint;
pub mod gpset;
pub mod load;
pub mod plain;
pub mod split;
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
