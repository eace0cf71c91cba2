//! "Restored the same" as one assertion: `pg_dump` of one database equals `pg_dump` of another,
//! in plain format, with the rows of every COPY block sorted (a parallel or binary load may
//! store them in another physical order) and pg_dump's per-run `\restrict`/`\unrestrict` key
//! lines left out. On a mismatch, an excerpt of the first differences in unified-diff style and
//! how many lines differ, so the failure says what is wrong without a 13 MB diff.

use std::collections::HashMap;
use std::fmt;

use crate::TestServer;

/// `pg_dump` of `db` with `server`'s own pg_dump, normalized as the module says, one line each.
pub fn normalized_dump(server: &TestServer, db: &str) -> Vec<String> {
    let out = server
        .command("pg_dump")
        .args(["-d", db])
        .output()
        .expect("running pg_dump");
    let script = crate::expect_success(&out, &format!("pg_dump of {db}"));
    normalize(&script)
}

fn normalize(script: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in script.lines() {
        if line.starts_with("\\restrict ") || line.starts_with("\\unrestrict ") {
            continue;
        }
        match block.as_mut() {
            Some(rows) if line != "\\." => rows.push(line.to_string()),
            Some(_) => {
                let mut rows = block.take().unwrap_or_default();
                rows.sort_unstable();
                lines.append(&mut rows);
                lines.push(line.to_string());
            }
            None => {
                lines.push(line.to_string());
                if line.starts_with("COPY ") && line.ends_with(" FROM stdin;") {
                    block = Some(Vec::new());
                }
            }
        }
    }
    lines.extend(block.unwrap_or_default());
    lines
}

/// How two normalized dumps differ.
#[derive(Debug)]
pub struct DumpDifference {
    /// Lines of the expected dump the actual one lacks (counted as a multiset).
    pub missing: usize,
    /// Lines of the actual dump the expected one lacks.
    pub extra: usize,
    /// The first hunks, unified-diff style (`-` expected, `+` actual).
    pub excerpt: String,
}

impl fmt::Display for DumpDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line(s) of the expected dump missing, {} extra line(s); first differences:\n{}",
            self.missing, self.extra, self.excerpt
        )
    }
}

/// `None` when the dumps are equal.
pub fn dump_difference(expected: &[String], actual: &[String]) -> Option<DumpDifference> {
    if expected == actual {
        return None;
    }
    let mut balance: HashMap<&str, i64> = HashMap::new();
    for l in expected {
        *balance.entry(l).or_default() += 1;
    }
    for l in actual {
        *balance.entry(l).or_default() -= 1;
    }
    let missing = balance
        .values()
        .filter(|n| **n > 0)
        .map(|n| *n as usize)
        .sum();
    let extra = balance
        .values()
        .filter(|n| **n < 0)
        .map(|n| n.unsigned_abs() as usize)
        .sum();
    Some(DumpDifference {
        missing,
        extra,
        excerpt: excerpt(expected, actual),
    })
}

/// Panics, with the difference, unless `pg_dump` of `actual` equals `pg_dump` of `expected`.
pub fn assert_same_database(
    expected: (&TestServer, &str),
    actual: (&TestServer, &str),
    what: &str,
) {
    let want = normalized_dump(expected.0, expected.1);
    let got = normalized_dump(actual.0, actual.1);
    if let Some(diff) = dump_difference(&want, &got) {
        panic!(
            "{what}: pg_dump of {} differs from pg_dump of {}: {diff}",
            actual.1, expected.1
        );
    }
}

const HUNKS: usize = 6;
const LINES_PER_SIDE: usize = 12;
const CONTEXT: usize = 3;

/// The first [`HUNKS`] places where the dumps diverge, each resynchronised on the nearest run of
/// three equal lines.
fn excerpt(a: &[String], b: &[String]) -> String {
    let mut out = String::new();
    let (mut i, mut j, mut hunks) = (0, 0, 0);
    while (i < a.len() || j < b.len()) && hunks < HUNKS {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
            continue;
        }
        let (di, dj) = resync(a, b, i, j);
        out.push_str(&format!(
            "@@ expected line {}, actual line {} @@\n",
            i + 1,
            j + 1
        ));
        for l in &a[i.saturating_sub(CONTEXT)..i] {
            out.push_str(&format!(" {l}\n"));
        }
        side(&mut out, '-', &a[i..i + di]);
        side(&mut out, '+', &b[j..j + dj]);
        i += di;
        j += dj;
        hunks += 1;
    }
    out
}

fn side(out: &mut String, mark: char, lines: &[String]) {
    for l in lines.iter().take(LINES_PER_SIDE) {
        out.push_str(&format!("{mark}{l}\n"));
    }
    if lines.len() > LINES_PER_SIDE {
        out.push_str(&format!(
            "{mark}... ({} more)\n",
            lines.len() - LINES_PER_SIDE
        ));
    }
}

/// The smallest (skip in a, skip in b) after which three lines agree again, or both dumps end.
fn resync(a: &[String], b: &[String], i: usize, j: usize) -> (usize, usize) {
    const WINDOW: usize = 3000;
    let agree = |x: usize, y: usize| {
        (x == a.len() && y == b.len())
            || (0..3).all(|k| match (a.get(x + k), b.get(y + k)) {
                (Some(p), Some(q)) => p == q,
                (None, None) => true,
                _ => false,
            }) && x < a.len()
    };
    for d in 1..=2 * WINDOW {
        for di in 0..=d.min(WINDOW) {
            let dj = d - di;
            if dj <= WINDOW && i + di <= a.len() && j + dj <= b.len() && agree(i + di, j + dj) {
                return (di, dj);
            }
        }
    }
    (a.len() - i, b.len() - j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        normalize(s)
    }

    #[test]
    fn copy_rows_sorted_and_restrict_lines_ignored() {
        let a = lines(
            "\\restrict abc\nCOPY t (a) FROM stdin;\n2\n1\n\\.\nSELECT 1;\n\\unrestrict abc\n",
        );
        let b = lines(
            "\\restrict xyz\nCOPY t (a) FROM stdin;\n1\n2\n\\.\nSELECT 1;\n\\unrestrict xyz\n",
        );
        assert_eq!(a, b);
        assert_eq!(a, ["COPY t (a) FROM stdin;", "1", "2", "\\.", "SELECT 1;"]);
    }

    #[test]
    fn difference_counts_and_excerpt() {
        let a = lines("a\nb\nc\nd\ne\nf\ng\n");
        let b = lines("a\nb\nX\nd\ne\nf\ng\nh\n");
        let d = dump_difference(&a, &b).expect("they differ");
        assert_eq!((d.missing, d.extra), (1, 2));
        assert_eq!(
            d.excerpt,
            "@@ expected line 3, actual line 3 @@\n a\n b\n-c\n+X\n@@ expected line 8, actual line 8 @@\n e\n f\n g\n+h\n"
        );
        assert!(dump_difference(&a, &a).is_none());
    }
}
