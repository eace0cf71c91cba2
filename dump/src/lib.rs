//! cbdump: a database through the coordinator into one archive, from one consistent snapshot,
//! with parallel workers inside tables — and still readable by stock `pg_restore`.
//!
//! The leader opens a REPEATABLE READ transaction, locks the selected tables and exports its
//! snapshot. The real `pg_dump` runs on that snapshot with every table's data excluded, so the
//! schema, sequence values, large objects, comments, ACLs and matview refreshes are pg_dump's
//! own ([`pgdump`]). Table data comes from our workers on the same snapshot ([`data`]) and is
//! added to pg_dump's TOC as TABLE DATA entries ([`build`]).

pub mod blobs;
pub mod build;
pub mod cli;
pub mod data;
pub mod output;
pub mod pgdump;
mod segment_leftovers;
pub mod segment_set;
pub mod session;
pub mod tables;
pub mod zlibjoin;

use std::path::{Path, PathBuf};

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("{0}")]
    PgDump(String),
    #[error("dumping data of {0}: {1}")]
    Data(String, String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Usage(String),
    #[error("interrupted; nothing was left under the output name")]
    Interrupted,
    #[error("the session holding the snapshot ended before the dump did ({0}); nothing was written under the output name")]
    SnapshotLost(String),
}

impl DumpError {
    pub fn io(path: &Path, source: std::io::Error) -> DumpError {
        DumpError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub use build::{run, DumpOptions, DumpReport, Format};
