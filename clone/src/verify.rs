//! `--verify`: every copied table compared on both servers — row counts, or with
//! `--verify=checksum` an order-independent checksum of the rows — the source read at the
//! clone's snapshot.
//!
//! The checksum is the count and the sum of the first 64 bits of each row's md5, as numeric
//! (no overflow). Order-independent, so neither side sorts; `md5`, `::bit(64)::bigint` and
//! `numeric` sums exist on PostgreSQL 9.4 and later and on Cloudberry/Greenplum, where each
//! segment sums its own rows. The row text is the same on both sides because both sessions
//! get the same output settings (ISO dates, UTC, exact floats, hex bytea).

use std::sync::Mutex;

use cluster::ConnParams;
use serde::Serialize;

use crate::tables::Table;
use crate::{session, CloneError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Row counts
    Count,
    /// Row counts and checksums of the rows' contents
    Checksum,
}

/// One table's comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub table: String,
    pub source: String,
    pub target: String,
    pub equal: bool,
}

/// Where verification connects.
pub struct VerifyContext<'a> {
    pub source: &'a ConnParams,
    pub target: &'a ConnParams,
    pub settings: String,
    pub snapshot_id: String,
    pub workers: usize,
}

/// Compares every table, `workers` tables at a time.
pub fn verify(
    ctx: &VerifyContext,
    tables: &[Table],
    mode: Verify,
) -> Result<Vec<Checked>, CloneError> {
    let next = Mutex::new(0usize);
    let results = Mutex::new(Vec::new());
    let workers = ctx.workers.clamp(1, tables.len().max(1));
    let outcome: Vec<Result<(), CloneError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<(), CloneError> {
                    let mut src =
                        session::source_client(ctx.source, &ctx.settings, &ctx.snapshot_id)?;
                    let mut dst = session::target_client(ctx.target, &ctx.settings)?;
                    dst.batch_execute("SET bytea_output = hex")
                        .map_err(CloneError::query("configuring verification"))?;
                    src.batch_execute("SET bytea_output = hex")
                        .map_err(CloneError::query("configuring verification"))?;
                    loop {
                        let i = {
                            let mut n = next.lock().expect("lock");
                            *n += 1;
                            *n - 1
                        };
                        let Some(t) = tables.get(i) else {
                            return Ok(());
                        };
                        crate::interrupt::check()?;
                        let sql = summary_sql(t, mode);
                        let what = |side: &str| format!("verifying {} on the {side}", t.label());
                        let a: String = src
                            .query_one(&sql, &[])
                            .map_err(CloneError::query(what("source")))?
                            .get(0);
                        let b: String = dst
                            .query_one(&sql, &[])
                            .map_err(CloneError::query(what("target")))?
                            .get(0);
                        results.lock().expect("lock").push(Checked {
                            table: t.label(),
                            equal: a == b,
                            source: a,
                            target: b,
                        });
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("verify workers do not panic"))
            .collect()
    });
    for r in outcome {
        r?;
    }
    let mut out = results.into_inner().expect("lock");
    out.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(out)
}

/// The one-value summary of a table: `rows` or `rows:checksum`.
fn summary_sql(t: &Table, mode: Verify) -> String {
    let rel = t.relation().qualified();
    match mode {
        Verify::Count => format!("SELECT count(*)::text FROM ONLY {rel}"),
        Verify::Checksum => format!(
            "SELECT count(*)::text || ':' || \
                    coalesce(sum(('x' || substr(md5(x::text), 1, 16))::bit(64)::bigint::numeric), 0)::text \
               FROM ONLY {rel} x"
        ),
    }
}

/// The differences as one line per table, or `None` when all are equal.
pub fn differences(checked: &[Checked]) -> Option<String> {
    let lines: Vec<String> = checked
        .iter()
        .filter(|c| !c.equal)
        .map(|c| format!("  {}: source {}, target {}", c.table, c.source, c.target))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}
