//! What to export: jobs (one per table or query), their chunks, and the SQL for each chunk.

use cluster::catalog::{RelKind, Relation};
use cluster::quote;

/// Where the rows come from.
#[derive(Debug, Clone)]
pub enum Source {
    Table {
        relation: Relation,
        /// `--columns`, already validated against the table.
        columns: Option<Vec<String>>,
        /// `--where`, passed through as SQL text.
        filter: Option<String>,
    },
    Query(String),
}

/// A slice of a table that one worker reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Whole,
    /// Pages `[from, to)`; `to = None` is open-ended so rows past the size measured at plan
    /// time are never lost.
    Ctid {
        from: i64,
        to: Option<i64>,
    },
    /// The rows stored on one Cloudberry/Greenplum segment (`gp_segment_id = content`): there
    /// ctids repeat on every segment, and the segment split is the natural one.
    Segment(i16),
}

/// The share of `relation`'s on-disk bytes and of its estimated rows that `chunks[index]`
/// reads: ctid ranges by their pages, segment chunks evenly; (0, 0) for tables never sized.
pub fn chunk_share(relation: &Relation, chunks: &[Chunk], index: usize) -> (u64, f64) {
    let pages = relation.pages.max(0);
    let part = match chunks.get(index) {
        Some(Chunk::Ctid { from, to }) => (to.unwrap_or(pages).min(pages) - from).max(0),
        // Even shares, the last one taking the remainder: the shares add up to the table.
        Some(Chunk::Segment(_)) => {
            let n = chunks.len().max(1) as i64;
            match index as i64 == n - 1 {
                true => pages - (n - 1) * (pages / n),
                false => pages / n,
            }
        }
        Some(Chunk::Whole) | None => pages,
    };
    let rows = match pages {
        0 => 0.0,
        _ => relation.estimated_rows.max(0.0) * part as f64 / pages as f64,
    };
    (part as u64 * 8192, rows)
}

/// One table or query to export.
#[derive(Debug, Clone)]
pub struct Job {
    pub source: Source,
    pub chunks: Vec<Chunk>,
}

impl Job {
    /// The share of the table's on-disk bytes and of its estimated rows that chunk `index`
    /// reads, for progress ([`chunk_share`]); queries are (0, 0).
    pub fn share(&self, index: usize) -> (u64, f64) {
        match &self.source {
            Source::Table { relation, .. } => chunk_share(relation, &self.chunks, index),
            Source::Query(_) => (0, 0.0),
        }
    }

    /// `schema.table` (unquoted) or `query`, for reports and messages.
    pub fn label(&self) -> String {
        match &self.source {
            Source::Table { relation, .. } => relation.display(),
            Source::Query(_) => "query".into(),
        }
    }

    /// The `COPY ... TO STDOUT` statement for one chunk.
    pub fn copy_sql(&self, chunk: &Chunk, options: &str) -> String {
        match &self.source {
            Source::Query(q) => format!("COPY ({q}) TO STDOUT WITH ({options})"),
            Source::Table {
                relation,
                columns,
                filter,
            } => {
                let cols = columns.as_ref().map(|c| {
                    c.iter()
                        .map(|x| quote::ident(x))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                if relation.kind.copies_directly() && filter.is_none() && *chunk == Chunk::Whole {
                    let list = cols.map(|c| format!(" ({c})")).unwrap_or_default();
                    return format!(
                        "COPY {}{list} TO STDOUT WITH ({options})",
                        relation.qualified()
                    );
                }
                // `COPY table TO` reads that table only, never inheritance children: `ONLY`
                // keeps the query form equal to it. Partitioned parents, views and the like are
                // read whole.
                let only = if relation.kind == RelKind::Table {
                    "ONLY "
                } else {
                    ""
                };
                let mut conds = Vec::new();
                match chunk {
                    Chunk::Whole => {}
                    Chunk::Ctid { from, to } => {
                        conds.push(format!("ctid >= '({from},0)'::tid"));
                        if let Some(to) = to {
                            conds.push(format!("ctid < '({to},0)'::tid"));
                        }
                    }
                    Chunk::Segment(c) => conds.push(format!("gp_segment_id = {c}")),
                }
                if let Some(f) = filter {
                    conds.push(format!("({f})"));
                }
                let wh = if conds.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", conds.join(" AND "))
                };
                format!(
                    "COPY (SELECT {} FROM {only}{}{wh}) TO STDOUT WITH ({options})",
                    cols.unwrap_or_else(|| "*".into()),
                    relation.qualified()
                )
            }
        }
    }
}

/// How to cut big tables for parallel workers.
#[derive(Debug, Clone, Copy)]
pub struct ChunkPolicy {
    pub workers: usize,
    /// Pages per ctid chunk (`--chunk-size` / block size); `None` sizes chunks per table so
    /// that each worker gets about four, never smaller than [`MIN_AUTO_CHUNK_PAGES`].
    pub chunk_pages: Option<i64>,
    /// TID range scans exist (PostgreSQL 14+); without them ctid chunks each scan the table.
    pub tid_range_scan: bool,
    /// Segment contents, on Cloudberry/Greenplum.
    pub segments: usize,
}

/// 16 MiB of 8 KiB pages: below this a separate COPY costs more than it saves.
pub const MIN_AUTO_CHUNK_PAGES: i64 = 2048;

/// The chunks of one table.
pub fn chunks_for(relation: &Relation, policy: &ChunkPolicy) -> Vec<Chunk> {
    let per = policy.chunk_pages.unwrap_or_else(|| {
        (relation.pages / (policy.workers.max(1) as i64 * 4)).max(MIN_AUTO_CHUNK_PAGES)
    });
    if policy.workers < 2 || relation.pages < 2 * per {
        return vec![Chunk::Whole];
    }
    if policy.segments > 0 {
        // A ctid chunk on the coordinator would be a chunk of every segment at once.
        if relation.kind == RelKind::Table {
            return (0..policy.segments as i16).map(Chunk::Segment).collect();
        }
        return vec![Chunk::Whole];
    }
    if !policy.tid_range_scan || relation.kind != RelKind::Table {
        return vec![Chunk::Whole];
    }
    let mut chunks = Vec::new();
    let mut from = 0;
    while from + per < relation.pages {
        chunks.push(Chunk::Ctid {
            from,
            to: Some(from + per),
        });
        from += per;
    }
    chunks.push(Chunk::Ctid { from, to: None });
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(kind: RelKind, pages: i64) -> Relation {
        Relation {
            oid: 1,
            schema: "S".into(),
            name: "t\"x".into(),
            kind,
            pages,
            estimated_rows: 0.0,
            is_partition: false,
        }
    }

    fn table_job(kind: RelKind, columns: Option<Vec<String>>, filter: Option<&str>) -> Job {
        Job {
            source: Source::Table {
                relation: rel(kind, 0),
                columns,
                filter: filter.map(str::to_string),
            },
            chunks: vec![Chunk::Whole],
        }
    }

    #[test]
    fn shares_of_bytes_and_rows_for_progress() {
        let mut relation = rel(RelKind::Table, 100);
        relation.estimated_rows = 1000.0;
        let job = |chunks| Job {
            source: Source::Table {
                relation: relation.clone(),
                columns: None,
                filter: None,
            },
            chunks,
        };
        assert_eq!(job(vec![Chunk::Whole]).share(0), (100 * 8192, 1000.0));
        let ctid = job(vec![
            Chunk::Ctid {
                from: 0,
                to: Some(25),
            },
            Chunk::Ctid { from: 25, to: None },
        ]);
        assert_eq!(ctid.share(0), (25 * 8192, 250.0));
        assert_eq!(ctid.share(1), (75 * 8192, 750.0));
        let segs = job(vec![
            Chunk::Segment(0),
            Chunk::Segment(1),
            Chunk::Segment(2),
        ]);
        assert_eq!(segs.share(0), (33 * 8192, 330.0));
        assert_eq!(segs.share(2), (34 * 8192, 340.0));
        let query = Job {
            source: Source::Query("SELECT 1".into()),
            chunks: vec![Chunk::Whole],
        };
        assert_eq!(query.share(0), (0, 0.0));
    }

    #[test]
    fn copy_statements() {
        let o = "FORMAT csv";
        assert_eq!(
            table_job(RelKind::Table, None, None).copy_sql(&Chunk::Whole, o),
            "COPY \"S\".\"t\"\"x\" TO STDOUT WITH (FORMAT csv)"
        );
        assert_eq!(
            table_job(RelKind::Table, Some(vec!["a".into(), "B".into()]), None)
                .copy_sql(&Chunk::Whole, o),
            "COPY \"S\".\"t\"\"x\" (\"a\", \"B\") TO STDOUT WITH (FORMAT csv)"
        );
        assert_eq!(
            table_job(RelKind::Table, None, Some("a > 1")).copy_sql(
                &Chunk::Ctid {
                    from: 10,
                    to: Some(20)
                },
                o
            ),
            "COPY (SELECT * FROM ONLY \"S\".\"t\"\"x\" WHERE ctid >= '(10,0)'::tid AND ctid < '(20,0)'::tid AND (a > 1)) TO STDOUT WITH (FORMAT csv)"
        );
        assert_eq!(
            table_job(RelKind::View, None, None).copy_sql(&Chunk::Whole, o),
            "COPY (SELECT * FROM \"S\".\"t\"\"x\") TO STDOUT WITH (FORMAT csv)"
        );
        assert_eq!(
            table_job(RelKind::Table, None, None).copy_sql(&Chunk::Segment(3), o),
            "COPY (SELECT * FROM ONLY \"S\".\"t\"\"x\" WHERE gp_segment_id = 3) TO STDOUT WITH (FORMAT csv)"
        );
    }

    #[test]
    fn chunking() {
        let p = ChunkPolicy {
            workers: 2,
            chunk_pages: Some(100),
            tid_range_scan: true,
            segments: 0,
        };
        assert_eq!(
            chunks_for(&rel(RelKind::Table, 150), &p),
            vec![Chunk::Whole]
        );
        assert_eq!(
            chunks_for(&rel(RelKind::Table, 250), &p),
            vec![
                Chunk::Ctid {
                    from: 0,
                    to: Some(100)
                },
                Chunk::Ctid {
                    from: 100,
                    to: Some(200)
                },
                Chunk::Ctid {
                    from: 200,
                    to: None
                }
            ]
        );
        let gp = ChunkPolicy { segments: 2, ..p };
        assert_eq!(
            chunks_for(&rel(RelKind::Table, 250), &gp),
            vec![Chunk::Segment(0), Chunk::Segment(1)]
        );
        let old = ChunkPolicy {
            tid_range_scan: false,
            ..p
        };
        assert_eq!(
            chunks_for(&rel(RelKind::Table, 250), &old),
            vec![Chunk::Whole]
        );
        let auto = ChunkPolicy {
            chunk_pages: None,
            ..p
        };
        assert_eq!(
            chunks_for(&rel(RelKind::Table, 4000), &auto),
            vec![Chunk::Whole]
        );
        assert_eq!(chunks_for(&rel(RelKind::Table, 40_000), &auto).len(), 8);
    }
}
