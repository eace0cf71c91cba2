//! Everything that knows Cloudberry/Greenplum catalogs and MPP-only SQL, behind one interface.
//!
//! Cloudberry cannot be installed here, so this module is written to the documented catalog
//! layout and syntax, and tested against PostgreSQL with [`MppCatalog::in_schema`] pointed at
//! real tables that have the same columns. Nothing outside this module names a `gp_*` relation.
//!
//! - `gp_segment_configuration(dbid, content, role, preferred_role, mode, status, port,
//!   hostname, address, datadir)`: one row per segment instance; `content = -1` is the
//!   coordinator, `role = 'p'` the acting primary.
//! - `gp_distribution_policy(localoid, policytype, numsegments, distkey, distclass)`:
//!   `policytype 'r'` is REPLICATED, `'p'` hash-partitioned; an empty `distkey` means RANDOMLY.
//! - Statements in which the segments read or write their own files (`COPY ... ON SEGMENT`,
//!   external web tables) are built and run by [`crate::segment_io`].

use postgres::Client;

use crate::{quote, ClusterError};

/// Where the MPP catalogs live. `pg_catalog` on a real coordinator.
#[derive(Debug, Clone)]
pub struct MppCatalog {
    schema: String,
}

impl Default for MppCatalog {
    fn default() -> Self {
        MppCatalog {
            schema: "pg_catalog".into(),
        }
    }
}

/// One row of `gp_segment_configuration`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub content: i16,
    pub dbid: i16,
    pub hostname: String,
    pub address: String,
    pub port: i32,
    pub datadir: String,
}

/// A table's distribution, as `gp_distribution_policy` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distribution {
    Hash(Vec<String>),
    Random,
    Replicated,
}

impl Distribution {
    /// The clause Cloudberry's own pg_dump writes for this policy.
    pub fn clause(&self) -> String {
        match self {
            Distribution::Hash(cols) => format!(
                "DISTRIBUTED BY ({})",
                cols.iter()
                    .map(|c| quote::ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Distribution::Random => "DISTRIBUTED RANDOMLY".into(),
            Distribution::Replicated => "DISTRIBUTED REPLICATED".into(),
        }
    }
}

impl MppCatalog {
    /// Catalogs in another schema: tests use tables with the same columns in a scratch schema.
    pub fn in_schema(schema: &str) -> MppCatalog {
        MppCatalog {
            schema: schema.to_string(),
        }
    }

    /// The catalogs the tools use: `pg_catalog`, unless `CBTOOLS_MPP_CATALOG_SCHEMA` names a
    /// schema of look-alike tables. That variable exists for the end-to-end tests, which run
    /// the real binaries against PostgreSQL; it is the only way the binaries' MPP paths can be
    /// exercised without a Cloudberry cluster.
    pub fn from_env() -> MppCatalog {
        match std::env::var("CBTOOLS_MPP_CATALOG_SCHEMA") {
            Ok(s) if !s.is_empty() => MppCatalog::in_schema(&s),
            _ => MppCatalog::default(),
        }
    }

    fn rel(&self, name: &str) -> String {
        quote::qualified(&self.schema, name)
    }

    /// Whether `gp_segment_configuration` exists here.
    pub fn present(&self, client: &mut Client) -> Result<bool, ClusterError> {
        let name = format!("{}.gp_segment_configuration", quote::ident(&self.schema));
        let row = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
            .map_err(ClusterError::query("looking for gp_segment_configuration"))?;
        Ok(row.get(0))
    }

    /// Acting primaries, coordinator (content -1) included, ordered by content.
    pub fn primaries(&self, client: &mut Client) -> Result<Vec<Segment>, ClusterError> {
        let sql = format!(
            "SELECT content::int2, dbid::int2, hostname::text, address::text, port::int4, datadir::text \
               FROM {} WHERE role = 'p' ORDER BY content",
            self.rel("gp_segment_configuration")
        );
        let rows = client
            .query(&sql, &[])
            .map_err(ClusterError::query("reading gp_segment_configuration"))?;
        Ok(rows
            .iter()
            .map(|r| Segment {
                content: r.get(0),
                dbid: r.get(1),
                hostname: r.get(2),
                address: r.get(3),
                port: r.get(4),
                datadir: r.get(5),
            })
            .collect())
    }

    /// The distribution of one table; `None` when the table has no policy row (not distributed,
    /// e.g. a coordinator-only catalog table).
    pub fn distribution(
        &self,
        client: &mut Client,
        table_oid: u32,
    ) -> Result<Option<Distribution>, ClusterError> {
        let sql = format!(
            "SELECT p.policytype::text, \
                    ARRAY(SELECT a.attname::text \
                            FROM unnest(p.distkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
                            JOIN pg_attribute a ON a.attrelid = p.localoid AND a.attnum = k.attnum \
                           ORDER BY k.ord) \
               FROM {} p WHERE p.localoid = $1",
            self.rel("gp_distribution_policy")
        );
        let row = client
            .query_opt(&sql, &[&table_oid])
            .map_err(ClusterError::query("reading gp_distribution_policy"))?;
        Ok(row.map(|r| {
            let kind: String = r.get(0);
            let cols: Vec<String> = r.get(1);
            if kind == "r" {
                Distribution::Replicated
            } else if cols.is_empty() {
                Distribution::Random
            } else {
                Distribution::Hash(cols)
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_clause() {
        assert_eq!(
            Distribution::Hash(vec!["id".into(), "Ts".into()]).clause(),
            "DISTRIBUTED BY (\"id\", \"Ts\")"
        );
    }
}
