//! Talking to PostgreSQL and Apache Cloudberry through the coordinator.
//!
//! Users of pg_dump expect their connection habits to carry over: `-h -p -U -d`, a conninfo string
//! or URI in `-d`, the `PG*` environment, `~/.pgpass`, service files, every `sslmode`. The driver
//! underneath (`postgres`) knows none of the files and only part of the environment, so this crate
//! resolves all of it the way libpq does and hands the driver a finished configuration.
//!
//! It also owns everything that knows catalog layout: table selection with pg_dump-style patterns,
//! exported snapshots shared by parallel workers, server flavour detection, and — behind one
//! interface, [`mpp::MppCatalog`] — the Cloudberry/Greenplum catalogs and `COPY ... ON SEGMENT`.
//! Big `COPY ... TO STDOUT` streams are read through [`copy_stream::CopySession`], which costs
//! half the CPU of the synchronous driver per row.

pub mod args;
pub mod catalog;
pub mod connect;
pub mod conninfo;
pub mod copy_stream;
pub mod error;
pub mod flavor;
pub mod mpp;
pub mod mpp_load;
pub mod params;
pub mod pattern;
pub mod pgpass;
pub mod quote;
pub mod segment_io;
pub mod service;
pub mod snapshot;
pub mod tls;

pub use args::ConnectionArgs;
pub use connect::connect;
pub use error::ClusterError;
pub use flavor::{Flavor, ServerInfo};
pub use params::{ConnParams, SslMode};
pub use postgres::Client;
