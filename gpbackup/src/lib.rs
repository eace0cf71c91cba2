//! Reading (and, for tests, writing) gpbackup backup sets, so that a set taken on a Greenplum or
//! Cloudberry cluster of any size can be restored through one coordinator connection or turned
//! into one psql script. Format reference: `shared/docs/gpbackup-format.md`.
//!
//! Typical use (what `cbrestore` does):
//! 1. [`layout::discover`] the roots, [`BackupSet::open`] one timestamp;
//! 2. [`BackupSet::check_files`] before touching the target;
//! 3. run metadata [`metadata::Statement`]s (optionally through [`translate::Translator`]);
//! 4. per [`PlannedTable`]: `COPY ... FROM STDIN` fed by [`BackupSet::table_reader`], compare
//!    [`data::TableReader::rows`] with [`PlannedTable::expected_rows`].
//!
//! [`to_sql`] does all of that into a file; [`writer`] creates realistic sets from a live
//! PostgreSQL database for tests.

pub mod config;
pub mod data;
mod error;
pub mod filter;
mod fsutil;
pub mod layout;
pub mod metadata;
mod set;
use distfix::sqltext;
pub mod to_sql;
pub mod toc;
pub mod translate;
pub mod writer;
mod yaml;

pub use config::{BackupConfig, Compression, RestorePlanEntry};
pub use error::{DataProblem, Error, MissingFile, Result};
pub use filter::Filter;
pub use layout::{discover, Discovery, LayoutKind, SetFiles};
pub use set::{BackupSet, PlannedTable, SourceBackup};
pub use toc::{DataEntry, MetadataEntry, Section, Toc};
