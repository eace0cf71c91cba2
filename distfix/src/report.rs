//! What was decided, for people (a table on stderr) and for pipelines (JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::policy::{counts, Decision, Reason};

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub input: String,
    /// `rewrite` or `strip`.
    pub mode: &'static str,
    pub tables: Vec<Decision>,
    pub counts: BTreeMap<Reason, usize>,
    /// Statements changed in the output.
    pub statements_changed: u64,
}

impl Report {
    pub fn new(
        input: String,
        mode: &'static str,
        tables: Vec<Decision>,
        statements_changed: u64,
    ) -> Self {
        let counts = counts(&tables);
        Report {
            input,
            mode,
            tables,
            counts,
            statements_changed,
        }
    }

    /// Tables that fell back to a default or needed conflict handling (what `--check` rejects).
    pub fn needs_attention(&self) -> usize {
        self.tables
            .iter()
            .filter(|d| matches!(d.reason, Reason::Default | Reason::Conflict))
            .count()
    }

    /// A fixed-width text table.
    pub fn render(&self) -> String {
        let rows: Vec<[String; 4]> = self
            .tables
            .iter()
            .map(|d| {
                let mut detail = d.detail.clone();
                if !d.demoted.is_empty() {
                    let _ = write!(detail, " (demoted: {})", d.demoted.join(", "));
                }
                [
                    d.table.clone(),
                    d.clause
                        .as_ref()
                        .map_or_else(|| "(none)".to_string(), |c| c.to_string()),
                    serde_json::to_value(d.reason)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    detail,
                ]
            })
            .collect();
        let head = ["table", "clause", "reason", "detail"];
        let mut w = head.map(str::len);
        for r in &rows {
            for i in 0..3 {
                w[i] = w[i].max(r[i].chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, r: [&str; 4]| {
            let _ = writeln!(
                out,
                "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2]
            );
        };
        line(&mut out, head);
        for r in &rows {
            line(&mut out, [&r[0], &r[1], &r[2], &r[3]]);
        }
        let summary: Vec<String> = self
            .counts
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}: {v}",
                    serde_json::to_value(k)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{} relations ({}), {} statements changed",
            self.tables.len(),
            summary.join(", "),
            self.statements_changed
        );
        out
    }
}
