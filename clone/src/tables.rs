//! What to copy: the selected tables read inside the snapshot, their columns, whether their
//! rows can travel in binary, and their chunks.

use std::collections::HashMap;

use cluster::catalog::{self, RelKind, Relation, Selection};
use cluster::pattern::NamePattern;
use cluster::{quote, Client, ServerInfo};
use pipeline::plan::{chunks_for, Chunk, ChunkPolicy, Job, Source};

use crate::CloneError;

/// One table whose rows are copied.
#[derive(Debug, Clone)]
pub struct Table {
    pub job: Job,
    /// The columns COPY names on both sides: all but generated ones, which the target computes.
    pub columns: Vec<String>,
    /// Binary COPY on both sides; text otherwise (see [`binary_safe`]).
    pub binary: bool,
    /// Bytes on disk at the snapshot, for the progress estimate.
    pub bytes: u64,
}

impl Table {
    pub fn relation(&self) -> &Relation {
        match &self.job.source {
            Source::Table { relation, .. } => relation,
            Source::Query(_) => unreachable!("clone jobs are tables"),
        }
    }

    /// `schema.name`, quoted where SQL needs it: the key in the state and the report.
    pub fn label(&self) -> String {
        self.relation().display()
    }

    /// Chunk `index`'s share of [`Table::bytes`] and of the estimated rows, for progress.
    pub fn chunk_share(&self, index: usize) -> (u64, f64) {
        let (share, rows) = self.job.share(index);
        // chunk_share counts 8 KiB pages; the server's blocks may be bigger (32 KiB on
        // Cloudberry), and the total expected is counted in the server's blocks.
        let pages = self.relation().pages.max(1) as u64;
        let bytes = (share as u128 * self.bytes as u128 / (pages as u128 * 8192)) as u64;
        (bytes, rows)
    }

    pub fn format(&self) -> &'static str {
        if self.binary {
            "binary"
        } else {
            "text"
        }
    }

    /// `COPY ... TO STDOUT` on the source for one chunk.
    pub fn copy_out_sql(&self, chunk: &Chunk) -> String {
        self.job
            .copy_sql(chunk, &format!("FORMAT {}", self.format()))
    }

    /// `COPY ... FROM STDIN` on the target.
    pub fn copy_in_sql(&self, freeze: bool) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| quote::ident(c)).collect();
        format!(
            "COPY {} ({}) FROM STDIN WITH (FORMAT {}{})",
            self.relation().qualified(),
            cols.join(", "),
            self.format(),
            if freeze { ", FREEZE" } else { "" }
        )
    }
}

/// What was selected: tables with data, materialized views to refresh, and every selected
/// relation (for locks and sequence ownership).
pub struct Selected {
    pub tables: Vec<Table>,
    pub matviews: Vec<Relation>,
    pub all: Vec<Relation>,
}

/// The selection flags, as cbdump's.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub selection: Selection,
    pub exclude_table_data: Vec<NamePattern>,
}

/// How big tables are cut for the workers (`--split-tables-larger-than`, as pgcopydb's and
/// cbrestore's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The pipeline's rule: about four chunks per worker, none under 16 MiB.
    Auto,
    /// Chunks of this many bytes, for tables of at least twice that.
    LargerThan(u64),
}

/// Reads the relations inside the leader's snapshot and plans every selected table. Biggest
/// first, so the longest copy starts earliest.
pub fn select(
    leader: &mut Client,
    filters: &Filters,
    source: &ServerInfo,
    target_major: u32,
    workers: usize,
    split: Split,
) -> Result<Selected, CloneError> {
    let all = catalog::list_relations(leader)?;
    let block_size: i32 = leader
        .query_one("SELECT current_setting('block_size')::int", &[])
        .map_err(CloneError::query("reading block_size"))?
        .get(0);
    let mut chosen = filters.selection.select(&all)?;
    catalog::measure(leader, &mut chosen)?;
    let types = TypeCatalog::read(leader)?;
    let generated = generated_expr(leader)?;
    let same_major = source.version_num / 10000 == target_major as i32;
    let policy = ChunkPolicy {
        workers,
        chunk_pages: match split {
            Split::Auto => None,
            Split::LargerThan(bytes) => Some((bytes / block_size.max(1) as u64).max(1) as i64),
        },
        tid_range_scan: source.has_tid_range_scan(),
        segments: source.segments.len(),
    };
    let mut tables = Vec::new();
    let mut matviews = Vec::new();
    for r in &chosen {
        match r.kind {
            RelKind::Table => {
                if filters
                    .exclude_table_data
                    .iter()
                    .any(|p| p.matches(&r.schema, &r.name))
                {
                    continue;
                }
                let mut t = plan_table(leader, r, &types, generated, same_major, &policy)?;
                t.bytes = (r.pages.max(0) as u64) * block_size as u64;
                tables.push(t);
            }
            RelKind::MaterializedView => matviews.push(r.clone()),
            _ => {}
        }
    }
    tables.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.label().cmp(&b.label())));
    Ok(Selected {
        tables,
        matviews,
        all: chosen,
    })
}

fn plan_table(
    leader: &mut Client,
    r: &Relation,
    types: &TypeCatalog,
    generated: &str,
    same_major: bool,
    policy: &ChunkPolicy,
) -> Result<Table, CloneError> {
    let sql = format!(
        "SELECT a.attname::text, a.atttypid, {generated} \
           FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
          ORDER BY a.attnum"
    );
    let rows = leader
        .query(&sql, &[&r.oid])
        .map_err(CloneError::query(format!(
            "reading the columns of {}",
            r.display()
        )))?;
    let mut columns = Vec::new();
    let mut binary = true;
    for row in rows {
        if row.get::<_, bool>(2) {
            continue;
        }
        columns.push(row.get::<_, String>(0));
        binary &= types.binary_safe(row.get(1), same_major);
    }
    let job = Job {
        source: Source::Table {
            relation: r.clone(),
            columns: Some(columns.clone()),
            filter: None,
        },
        chunks: chunks_for(r, policy),
    };
    Ok(Table {
        job,
        columns,
        binary,
        bytes: 0,
    })
}

/// `attgenerated` exists from PostgreSQL 12 on (Greenplum 6 lacks it).
fn generated_expr(client: &mut Client) -> Result<&'static str, CloneError> {
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'pg_catalog.pg_attribute'::regclass AND attname = 'attgenerated'",
            &[],
        )
        .map_err(CloneError::query("reading pg_attribute's columns"))?
        .get(0);
    Ok(if n > 0 {
        "a.attgenerated <> ''"
    } else {
        "false"
    })
}

/// The facts of `pg_type` that decide binary COPY.
struct TypeRow {
    typtype: String,
    base: u32,
    elem: u32,
    is_array: bool,
    has_binary_io: bool,
}

struct TypeCatalog(HashMap<u32, TypeRow>);

/// OIDs below this are built in (`FirstNormalObjectId`): the same type, with the same OID and
/// the same binary format, on every server of every supported version.
const FIRST_NORMAL_OID: u32 = 16384;

impl TypeCatalog {
    fn read(client: &mut Client) -> Result<TypeCatalog, CloneError> {
        let rows = client
            .query(
                "SELECT oid, typtype::text, typbasetype, typelem, typcategory = 'A' AND typelem <> 0, \
                        typsend::oid <> 0 AND typreceive::oid <> 0 FROM pg_type",
                &[],
            )
            .map_err(CloneError::query("reading pg_type"))?;
        Ok(TypeCatalog(
            rows.iter()
                .map(|r| {
                    (
                        r.get::<_, u32>(0),
                        TypeRow {
                            typtype: r.get(1),
                            base: r.get(2),
                            elem: r.get(3),
                            is_array: r.get(4),
                            has_binary_io: r.get(5),
                        },
                    )
                })
                .collect(),
        ))
    }

    /// Whether a column of type `oid` can be sent in binary COPY to the target.
    ///
    /// Binary values carry no type names, but two kinds carry OIDs: arrays (the element type's)
    /// and composites (every field's), which the receiving server checks against its own; so
    /// those need built-in element types. Built-in scalars and enums (sent as their labels)
    /// read the same on every version. Other user-defined base types (extensions) are trusted
    /// only between servers of the same major version; anything else goes as text.
    fn binary_safe(&self, mut oid: u32, same_major: bool) -> bool {
        for _ in 0..16 {
            let Some(t) = self.0.get(&oid) else {
                return false;
            };
            if t.typtype == "d" {
                oid = t.base;
                continue;
            }
            if !t.has_binary_io {
                return false;
            }
            if t.is_array {
                return t.elem < FIRST_NORMAL_OID && self.binary_safe(t.elem, same_major);
            }
            return match t.typtype.as_str() {
                "c" | "p" => false,
                "e" => true,
                _ => oid < FIRST_NORMAL_OID || same_major,
            };
        }
        false
    }
}

/// Cuts `chunks` of one table for display: `ctid 0-2048` / `segment 3` / `whole`.
pub fn describe_chunk(chunk: &Chunk) -> String {
    match chunk {
        Chunk::Whole => "whole".into(),
        Chunk::Ctid { from, to } => match to {
            Some(to) => format!("pages {from}-{to}"),
            None => format!("pages {from}-end"),
        },
        Chunk::Segment(c) => format!("segment {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(typtype: &str, base: u32, elem: u32, is_array: bool, io: bool) -> TypeRow {
        TypeRow {
            typtype: typtype.into(),
            base,
            elem,
            is_array,
            has_binary_io: io,
        }
    }

    #[test]
    fn binary_only_where_both_ends_read_it_alike() {
        let cat = TypeCatalog(HashMap::from([
            (20, ty("b", 0, 0, false, true)),       // int8
            (1016, ty("b", 0, 20, true, true)),     // int8[]
            (16400, ty("e", 0, 0, false, true)),    // an enum
            (16401, ty("b", 0, 16400, true, true)), // its array: carries the enum's OID
            (16402, ty("c", 0, 0, false, true)),    // a composite
            (16403, ty("d", 20, 0, false, true)),   // a domain over int8
            (16404, ty("b", 0, 0, false, true)),    // an extension's base type
            (16405, ty("b", 0, 0, false, false)),   // one without send/receive
        ]));
        assert!(cat.binary_safe(20, false));
        assert!(cat.binary_safe(1016, false));
        assert!(cat.binary_safe(16400, false));
        assert!(!cat.binary_safe(16401, true));
        assert!(!cat.binary_safe(16402, true));
        assert!(cat.binary_safe(16403, false));
        assert!(cat.binary_safe(16404, true) && !cat.binary_safe(16404, false));
        assert!(!cat.binary_safe(16405, true));
        assert!(!cat.binary_safe(99999, true));
    }
}
