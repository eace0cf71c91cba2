//! What kind of server we are talking to.

use postgres::Client;

use crate::mpp::{MppCatalog, Segment};
use crate::ClusterError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    PostgreSql,
    Greenplum,
    Cloudberry,
}

impl Flavor {
    /// Cloudberry and Greenplum: a coordinator with segments, `COPY ... ON SEGMENT`, distribution
    /// policies.
    pub fn is_mpp(self) -> bool {
        self != Flavor::PostgreSql
    }
}

/// Facts about the server that change what the tools do.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub flavor: Flavor,
    /// `server_version_num`, e.g. 150018 (Greenplum 6 reports its PostgreSQL base, 90426).
    pub version_num: i32,
    /// `version()`, verbatim.
    pub version: String,
    /// Primary segments (content >= 0), empty on PostgreSQL.
    pub segments: Vec<Segment>,
}

impl ServerInfo {
    /// `PostgreSQL 15.18` / `Apache Cloudberry ...` in one short phrase for messages.
    pub fn describe(&self) -> String {
        let short: String = self.version.split(" on ").next().unwrap_or("").to_string();
        match self.flavor {
            Flavor::PostgreSql => short,
            _ => format!("{short} ({} segments)", self.segments.len()),
        }
    }

    /// TID range scans (PostgreSQL 14+) make `WHERE ctid >= ... AND ctid < ...` read only the
    /// pages asked for; before that, each chunk would scan the whole table.
    pub fn has_tid_range_scan(&self) -> bool {
        self.version_num >= 140000
    }
}

/// Reads version and, when the Cloudberry catalogs are present, the segment list.
///
/// A server is MPP when `catalog` finds `gp_segment_configuration` (the doc'd test of Cloudberry
/// and Greenplum); `version()` then tells Cloudberry from Greenplum.
pub fn detect(client: &mut Client, catalog: &MppCatalog) -> Result<ServerInfo, ClusterError> {
    let row = client
        .query_one(
            "SELECT version(), current_setting('server_version_num')::int",
            &[],
        )
        .map_err(ClusterError::query("reading the server version"))?;
    let version: String = row.get(0);
    let version_num: i32 = row.get(1);
    let (flavor, segments) = if catalog.present(client)? {
        let flavor = if version.contains("Cloudberry") {
            Flavor::Cloudberry
        } else {
            Flavor::Greenplum
        };
        let segments = catalog
            .primaries(client)?
            .into_iter()
            .filter(|s| s.content >= 0)
            .collect();
        (flavor, segments)
    } else {
        (Flavor::PostgreSql, Vec::new())
    };
    Ok(ServerInfo {
        flavor,
        version_num,
        version,
        segments,
    })
}
