//! Catalog queries: which relations exist, their columns and sizes, and table selection with
//! pg_dump's `-t -T -n -N` semantics.

use postgres::Client;

use crate::pattern::{NamePattern, SchemaPattern};
use crate::{quote, ClusterError};

/// `pg_class.relkind` values we deal with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    Table,
    PartitionedTable,
    MaterializedView,
    View,
    ForeignTable,
}

impl RelKind {
    pub fn from_code(c: i8) -> Option<RelKind> {
        Some(match c as u8 {
            b'r' => RelKind::Table,
            b'p' => RelKind::PartitionedTable,
            b'm' => RelKind::MaterializedView,
            b'v' => RelKind::View,
            b'f' => RelKind::ForeignTable,
            _ => return None,
        })
    }

    /// Whether `COPY rel TO` works; the others need `COPY (SELECT ...) TO`.
    pub fn copies_directly(self) -> bool {
        self == RelKind::Table
    }

    /// Whether `LOCK TABLE` accepts this kind.
    pub fn lockable(self) -> bool {
        matches!(
            self,
            RelKind::Table | RelKind::PartitionedTable | RelKind::ForeignTable
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            RelKind::Table => "table",
            RelKind::PartitionedTable => "partitioned table",
            RelKind::MaterializedView => "materialized view",
            RelKind::View => "view",
            RelKind::ForeignTable => "foreign table",
        }
    }
}

/// One user relation.
#[derive(Debug, Clone)]
pub struct Relation {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub kind: RelKind,
    /// Size of the main fork in pages (0 for relations without storage): the catalog's
    /// `relpages` estimate from [`list_relations`], exact after [`measure`].
    pub pages: i64,
    /// The planner's row estimate (`reltuples`, -1 when never analyzed).
    pub estimated_rows: f64,
    /// A partition of a partitioned table (rows also visible through the parent).
    pub is_partition: bool,
}

impl Relation {
    pub fn qualified(&self) -> String {
        quote::qualified(&self.schema, &self.name)
    }

    /// `schema.name` for messages and reports, quoted only where SQL needs it.
    pub fn display(&self) -> String {
        quote::display(&self.schema, &self.name)
    }
}

/// One column of a relation.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub type_name: String,
    /// `GENERATED ALWAYS AS (...) STORED`: COPY TO includes it, COPY FROM must not name it.
    pub generated: bool,
}

/// Every relation outside the system schemas, in (schema, name) order, without taking a lock
/// on any of them: sizes are the catalog's `relpages` estimate. `pg_relation_size` opens each
/// relation with an ACCESS SHARE lock, so listing with it waited behind any ACCESS EXCLUSIVE
/// lock anywhere in the database (an unrelated `ALTER TABLE` or `TRUNCATE` blocked
/// `cbcopyout -t actor`; pg_dump -t locks only what it dumps). Callers [`measure`] the
/// relations they selected, after locking them.
pub fn list_relations(client: &mut Client) -> Result<Vec<Relation>, ClusterError> {
    // relispartition exists from PostgreSQL 10 on; Greenplum 6 (9.4) lacks it.
    let has_relispartition = client
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_class'::regclass AND attname = 'relispartition'",
            &[],
        )
        .map_err(ClusterError::query("reading pg_class columns"))?
        .get::<_, i64>(0)
        > 0;
    let partition_expr = if has_relispartition {
        "c.relispartition"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind, \
                CASE WHEN c.relkind IN ('r','m') THEN greatest(c.relpages, 0) ELSE 0 END::int8, \
                c.reltuples::float8, {partition_expr} \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r','p','m','v','f') \
            AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'gp_toolkit') \
            AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_' \
          ORDER BY n.nspname, c.relname"
    );
    let rows = client
        .query(&sql, &[])
        .map_err(ClusterError::query("listing relations"))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(Relation {
                oid: r.get(0),
                schema: r.get(1),
                name: r.get(2),
                kind: RelKind::from_code(r.get(3))?,
                pages: r.get(4),
                estimated_rows: r.get(5),
                is_partition: r.get(6),
            })
        })
        .collect())
}

/// Replaces the `relpages` estimates of `relations` with their exact sizes (a never-vacuumed
/// table says 0 pages: chunking and progress need the real size). Opens only these relations,
/// which the caller has selected and normally already locked; one that was dropped meanwhile
/// keeps its estimate.
pub fn measure(client: &mut Client, relations: &mut [Relation]) -> Result<(), ClusterError> {
    let oids: Vec<u32> = relations
        .iter()
        .filter(|r| matches!(r.kind, RelKind::Table | RelKind::MaterializedView))
        .map(|r| r.oid)
        .collect();
    if oids.is_empty() {
        return Ok(());
    }
    let rows = client
        .query(
            "SELECT o, (pg_relation_size(o) / current_setting('block_size')::int)::int8 \
               FROM unnest($1::oid[]) AS o",
            &[&oids],
        )
        .map_err(ClusterError::query("measuring the selected relations"))?;
    for row in rows {
        let (oid, pages): (u32, Option<i64>) = (row.get(0), row.get(1));
        if let (Some(r), Some(pages)) = (relations.iter_mut().find(|r| r.oid == oid), pages) {
            r.pages = pages;
        }
    }
    Ok(())
}

/// The live columns of a relation in attribute order.
pub fn columns(client: &mut Client, oid: u32) -> Result<Vec<Column>, ClusterError> {
    let has_generated = client
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_attribute'::regclass AND attname = 'attgenerated'",
            &[],
        )
        .map_err(ClusterError::query("reading pg_attribute columns"))?
        .get::<_, i64>(0)
        > 0;
    let generated = if has_generated {
        "a.attgenerated <> ''"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), {generated} \
           FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
          ORDER BY a.attnum"
    );
    let rows = client
        .query(&sql, &[&oid])
        .map_err(ClusterError::query(format!(
            "reading columns of relation {oid}"
        )))?;
    Ok(rows
        .iter()
        .map(|r| Column {
            name: r.get(0),
            type_name: r.get(1),
            generated: r.get(2),
        })
        .collect())
}

/// pg_dump-style include/exclude lists.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub tables: Vec<NamePattern>,
    pub exclude_tables: Vec<NamePattern>,
    pub schemas: Vec<SchemaPattern>,
    pub exclude_schemas: Vec<SchemaPattern>,
}

impl Selection {
    pub fn from_patterns(
        tables: &[String],
        exclude_tables: &[String],
        schemas: &[String],
        exclude_schemas: &[String],
    ) -> Result<Selection, ClusterError> {
        Ok(Selection {
            tables: tables
                .iter()
                .map(|t| NamePattern::parse(t))
                .collect::<Result<_, _>>()?,
            exclude_tables: exclude_tables
                .iter()
                .map(|t| NamePattern::parse(t))
                .collect::<Result<_, _>>()?,
            schemas: schemas
                .iter()
                .map(|t| SchemaPattern::parse(t))
                .collect::<Result<_, _>>()?,
            exclude_schemas: exclude_schemas
                .iter()
                .map(|t| SchemaPattern::parse(t))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The relations whose *data* to take, as pg_dump decides it: with `-t`, the matching
    /// relations (and `-n`/`-N` are ignored, as in pg_dump); otherwise everything in the `-n`
    /// schemas (all schemas when none), minus `-N` and `-T`.
    ///
    /// Kinds: ordinary tables (partitions included, which hold the rows of partitioned tables)
    /// and materialized views are taken by wildcard and schema selection. Partitioned parents,
    /// views and foreign tables have no rows of their own; they are taken only when a `-t`
    /// pattern names them exactly, and are then read through a query.
    ///
    /// Every `-t` and `-n` pattern must match something: a typo is an error, not an empty export.
    pub fn select(&self, all: &[Relation]) -> Result<Vec<Relation>, ClusterError> {
        let excluded = |r: &Relation| {
            self.exclude_tables
                .iter()
                .any(|p| p.matches(&r.schema, &r.name))
        };
        let by_default =
            |r: &Relation| matches!(r.kind, RelKind::Table | RelKind::MaterializedView);
        let mut out = Vec::new();
        if !self.tables.is_empty() {
            for p in &self.tables {
                let hits: Vec<&Relation> = all
                    .iter()
                    .filter(|r| p.matches(&r.schema, &r.name))
                    .filter(|r| by_default(r) || p.exact)
                    .collect();
                if hits.is_empty() {
                    return Err(ClusterError::NoMatch(p.text.clone()));
                }
                for r in hits {
                    if !excluded(r) && !out.iter().any(|o: &Relation| o.oid == r.oid) {
                        out.push(r.clone());
                    }
                }
            }
        } else {
            for p in &self.schemas {
                if !all.iter().any(|r| p.matches(&r.schema)) {
                    return Err(ClusterError::NoMatch(p.text.clone()));
                }
            }
            for r in all {
                let in_schema =
                    self.schemas.is_empty() || self.schemas.iter().any(|p| p.matches(&r.schema));
                let schema_excluded = self.exclude_schemas.iter().any(|p| p.matches(&r.schema));
                if in_schema && !schema_excluded && by_default(r) && !excluded(r) {
                    out.push(r.clone());
                }
            }
        }
        out.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(oid: u32, schema: &str, name: &str, kind: RelKind) -> Relation {
        Relation {
            oid,
            schema: schema.into(),
            name: name.into(),
            kind,
            pages: 0,
            estimated_rows: 0.0,
            is_partition: false,
        }
    }

    #[test]
    fn selection_rules() {
        let all = vec![
            rel(1, "public", "a", RelKind::Table),
            rel(2, "public", "v", RelKind::View),
            rel(3, "sales", "orders", RelKind::PartitionedTable),
            rel(4, "sales", "orders_2024", RelKind::Table),
            rel(5, "sales", "mv", RelKind::MaterializedView),
        ];
        let names =
            |s: &Selection| -> Vec<u32> { s.select(&all).unwrap().iter().map(|r| r.oid).collect() };
        let s = |t: &[&str], tt: &[&str], n: &[&str], nn: &[&str]| {
            let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            Selection::from_patterns(&v(t), &v(tt), &v(n), &v(nn)).unwrap()
        };
        assert_eq!(names(&s(&[], &[], &[], &[])), vec![1, 5, 4]);
        assert_eq!(names(&s(&["sales.*"], &[], &[], &[])), vec![5, 4]);
        assert_eq!(names(&s(&["sales.orders"], &[], &[], &[])), vec![3]);
        assert_eq!(names(&s(&["v"], &[], &[], &[])), vec![2]);
        assert_eq!(names(&s(&[], &["*.mv"], &["sales"], &[])), vec![4]);
        assert_eq!(names(&s(&[], &[], &[], &["sales"])), vec![1]);
        assert!(s(&["nope*"], &[], &[], &[]).select(&all).is_err());
        assert!(s(&[], &[], &["nope"], &[]).select(&all).is_err());
    }
}
