//! Column statistics that let the default choice prefer the highest-cardinality column and
//! replicate small tables. The caller may fill [`TableStats`] from anywhere; [`fetch`] reads
//! them from `pg_stats` of the source database.

use std::collections::HashMap;

use crate::names::QualName;
use crate::types::TypeRef;

/// Planner statistics of one column (`pg_stats`).
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnStat {
    pub name: String,
    /// `pg_stats.n_distinct`: a count when positive, minus a fraction of the rows when negative.
    pub n_distinct: f64,
    pub null_frac: f64,
    /// The column type as the server formats it, when known (lets matview columns qualify).
    pub type_ref: Option<TypeRef>,
}

impl ColumnStat {
    /// Estimated number of distinct values for a table of `rows` rows.
    pub fn distinct(&self, rows: f64) -> f64 {
        if self.n_distinct < 0.0 {
            -self.n_distinct * rows
        } else {
            self.n_distinct
        }
    }
}

/// Row estimate and column statistics of one relation.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TableStats {
    pub rows: f64,
    pub columns: Vec<ColumnStat>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("statistics query failed: {0}")]
    Db(#[from] postgres::Error),
}

/// Statistics of every analyzed table, partitioned table and materialized view outside the
/// system schemas. Tables never analyzed are left out (their estimates would mislead).
///
/// The caller connects (through `cluster::connect`, so `--stats` takes the same conninfo, URIs,
/// environment, `.pgpass` and `sslmode` as every other tool).
pub fn fetch(client: &mut postgres::Client) -> Result<HashMap<QualName, TableStats>, StatsError> {
    let rows = client.query(
        "SELECT n.nspname::text, c.relname::text,
                CASE WHEN c.relkind = 'p' THEN
                     (SELECT sum(greatest(ch.reltuples, 0))::float8
                        FROM pg_partition_tree(c.oid) t JOIN pg_class ch ON ch.oid = t.relid
                       WHERE t.isleaf)
                     WHEN c.reltuples < 0 THEN NULL
                     ELSE c.reltuples::float8 END AS rows,
                a.attname::text, format_type(a.atttypid, NULL),
                s.n_distinct::float8, s.null_frac::float8
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
           LEFT JOIN LATERAL (SELECT st.n_distinct, st.null_frac FROM pg_stats st
                               WHERE st.schemaname = n.nspname AND st.tablename = c.relname
                                 AND st.attname = a.attname
                               ORDER BY st.inherited DESC LIMIT 1) s ON true
          WHERE c.relkind IN ('r', 'p', 'm')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_toast%'
          ORDER BY n.nspname, c.relname, a.attnum",
        &[],
    )?;
    let mut out: HashMap<QualName, TableStats> = HashMap::new();
    for r in rows {
        let Some(table_rows) = r.get::<_, Option<f64>>(2) else {
            continue;
        };
        let name = QualName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        let entry = out.entry(name).or_insert_with(|| TableStats {
            rows: table_rows,
            columns: Vec::new(),
        });
        let (Some(n_distinct), Some(null_frac)) =
            (r.get::<_, Option<f64>>(5), r.get::<_, Option<f64>>(6))
        else {
            continue;
        };
        let ty: String = r.get(4);
        entry.columns.push(ColumnStat {
            name: r.get(3),
            n_distinct,
            null_frac,
            type_ref: Some(crate::parse::type_ref_from_text(&ty)),
        });
    }
    Ok(out)
}
