//! Greenplum/Cloudberry DDL → plain PostgreSQL.
//!
//! gpbackup's metadata.sql is Greenplum syntax. For a PostgreSQL target each chunk is split into
//! statements and every statement is either kept, edited (Greenplum-only clauses removed) or
//! skipped (objects PostgreSQL has no notion of). Every edit and skip is recorded in the report;
//! what cannot be expressed in PostgreSQL at all (Greenplum 6 inline partition syntax,
//! filespaces) is an [`Error::Untranslatable`] so nothing is silently lost.
//!
//! All matching happens on [`sqltext::mask`]ed text, so literals, quoted identifiers and
//! function bodies are never rewritten.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;
use std::sync::LazyLock;

use regex::bytes::Regex;

use crate::error::{Error, Result};
use crate::metadata::Statement;
use crate::sqltext::{mask, matching_paren, split_statements, split_top_level_commas};
use crate::toc::Section;

/// What happened to one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Skipped,
    Translated,
}

/// One line of the translation report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportItem {
    pub section: Section,
    pub objecttype: String,
    /// `schema.name` (or the global object's name).
    pub name: String,
    pub action: Action,
    pub detail: String,
}

impl fmt::Display for ReportItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.action {
            Action::Skipped => "skipped",
            Action::Translated => "translated",
        };
        write!(
            f,
            "{what} {} {}: {}",
            self.objecttype, self.name, self.detail
        )
    }
}

/// Object types PostgreSQL does not have; their entries are skipped whole.
const SKIPPED_TYPES: &[(&str, &str)] = &[
    ("RESOURCE QUEUE", "resource queues are Greenplum-only"),
    ("RESOURCE GROUP", "resource groups are Greenplum-only"),
    ("PROTOCOL", "external table protocols are Greenplum-only"),
    ("STORAGE SERVER", "storage servers are Cloudberry-only"),
    (
        "STORAGE USER MAPPING",
        "storage user mappings are Cloudberry-only",
    ),
];

/// Storage options of append-optimized/column tables (and per-segment tablespace locations).
fn is_gp_storage_option(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    matches!(
        n.as_str(),
        "appendonly"
            | "appendoptimized"
            | "orientation"
            | "compresstype"
            | "compresslevel"
            | "blocksize"
            | "checksum"
    ) || (n.starts_with("content") && n.len() > 7 && n[7..].bytes().all(|b| b.is_ascii_digit()))
}

fn is_gp_setting(name: &str) -> bool {
    let n = name.trim_matches('"').to_ascii_lowercase();
    n.starts_with("gp_")
        || n.starts_with("optimizer")
        || matches!(
            n.as_str(),
            "statement_mem"
                | "max_statement_mem"
                | "memory_spill_ratio"
                | "resource_cleanup_gangs_on_wait"
        )
}

macro_rules! re {
    ($name:ident, $pat:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| Regex::new($pat).expect("valid regex"));
    };
}

const IDENT: &str = r#"(?:"[^"]*"|[\w$]+)"#;

re!(
    RE_RESOURCE,
    r"(?is)^\s*(?:CREATE|ALTER|DROP|COMMENT\s+ON)\s+RESOURCE\s+(?:QUEUE|GROUP)\b"
);
re!(
    RE_PROTOCOL,
    r"(?is)^\s*(?:(?:CREATE|ALTER|DROP)\s+(?:TRUSTED\s+)?PROTOCOL\b|(?:GRANT|REVOKE)\b.*\bON\s+PROTOCOL\b)"
);
re!(
    RE_EXTERNAL,
    r"(?is)^\s*CREATE\s+(?:(?:READABLE|WRITABLE)\s+)?EXTERNAL\s+(?:WEB\s+)?(?:TEMP(?:ORARY)?\s+)?TABLE\b"
);
re!(
    RE_GP_FOREIGN_EXT,
    r"(?is)^\s*CREATE\s+FOREIGN\s+TABLE\b.*\bSERVER\s+gp_exttable_server\b"
);
re!(
    RE_STORAGE_SERVER,
    r"(?is)^\s*(?:CREATE|ALTER|DROP)\s+(?:STORAGE\s+SERVER|STORAGE\s+USER\s+MAPPING|USER\s+MAPPING\b.*\bSTORAGE\s+SERVER)\b"
);
re!(
    RE_ROLE_DENY,
    r"(?is)^\s*ALTER\s+ROLE\s+\S+\s+(?:DROP\s+)?DENY\b"
);
re!(
    RE_SET_DIST,
    r"(?is)^\s*ALTER\s+TABLE\b.*\bSET\s+(?:WITH\s*\([^)]*\)\s*)?DISTRIBUTED\b"
);
re!(
    RE_TYPE_ENCODING,
    r"(?is)^\s*ALTER\s+TYPE\b.*\bSET\s+DEFAULT\s+ENCODING\b"
);
re!(
    RE_SET_GUC,
    r"(?is)^\s*(?:ALTER\s+(?:ROLE|DATABASE|USER)\s+.*?\bSET\s+|SET\s+(?:SESSION\s+|LOCAL\s+)?)([\w.]+)\s*(?:=|\bTO\b)"
);
re!(
    RE_FILESPACE,
    r"(?is)^\s*CREATE\s+TABLESPACE\b.*\bFILESPACE\b"
);
re!(RE_SUBPARTITION, r"(?i)\bSUBPARTITION\b");
re!(
    RE_PARTITION_BY,
    r"(?i)\bPARTITION\s+BY\s+(?:RANGE|LIST|HASH)\s*\("
);
re!(
    RE_PARTITION_ALTER,
    r"(?is)^\s*ALTER\s+TABLE\b.*\b(?:EXCHANGE|SPLIT|ADD\s+DEFAULT|ADD|DROP|RENAME|TRUNCATE|SET\s+SUBPARTITION\s+TEMPLATE)\s+PARTITION\b"
);
re!(RE_DISTRIBUTED_BY, r"(?i)\s*\bDISTRIBUTED\s+BY\s*\(");
re!(
    RE_DISTRIBUTED_OTHER,
    r"(?i)\s*\bDISTRIBUTED\s+(?:RANDOMLY|REPLICATED)\b"
);
re!(RE_WITH_OPTIONS, r"(?i)\s*\bWITH\s*\(");
re!(
    RE_ELEMENT_ENCODING,
    &format!(r"(?i),\s*(?:DEFAULT\s+COLUMN|COLUMN\s+{IDENT})\s+ENCODING\s*\(")
);
re!(RE_INLINE_ENCODING, r"(?i)\s+ENCODING\s*\(");
re!(RE_USING_AO, r"(?i)\s+USING\s+(?:ao_row|ao_column)\b");
re!(
    RE_CREATE_FUNCTION,
    r"(?is)^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\b"
);
re!(
    RE_FUNC_GP_ATTRS,
    r"(?i)\s+(?:NO\s+SQL|CONTAINS\s+SQL|READS\s+SQL\s+DATA|MODIFIES\s+SQL\s+DATA|EXECUTE\s+ON\s+(?:ANY|MASTER|COORDINATOR|ALL\s+SEGMENTS|INITPLAN))\b"
);
re!(
    RE_ROLE_STMT,
    r"(?is)^\s*(?:CREATE|ALTER)\s+(?:ROLE|USER|GROUP)\b"
);
re!(
    RE_ROLE_GP_OPTS,
    &format!(
        r"(?i)\s+(?:NO)?CREATEEXTTABLE(?:\s*\([^)]*\))?|\s+RESOURCE\s+(?:QUEUE|GROUP)\s+{IDENT}|\s+PROFILE\s+{IDENT}|\s+ACCOUNT\s+(?:UN)?LOCK\b|\s+(?:ENABLE|DISABLE)\s+PROFILE\b"
    )
);
re!(
    RE_EMPTY_ALTER_ROLE,
    &format!(r"(?is)^\s*ALTER\s+(?:ROLE|USER)\s+{IDENT}\s*(?:WITH\s*)?;?\s*$")
);
re!(RE_CREATE_INDEX, r"(?is)^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\b");
re!(RE_USING_BITMAP, r"(?i)\bUSING\s+bitmap\b");
re!(RE_PREFUNC, r"(?i)\bPREFUNC\s*=");

/// An edit of a statement: replace `range` with `with`.
struct Edit {
    range: Range<usize>,
    with: Vec<u8>,
}

fn apply(sql: &[u8], mut edits: Vec<Edit>) -> Vec<u8> {
    edits.sort_by_key(|e| e.range.start);
    let mut out = Vec::with_capacity(sql.len());
    let mut pos = 0;
    for e in edits {
        if e.range.start < pos {
            continue; // overlapping edit: the earlier one already covers it
        }
        out.extend_from_slice(&sql[pos..e.range.start]);
        out.extend_from_slice(&e.with);
        pos = e.range.end;
    }
    out.extend_from_slice(&sql[pos..]);
    out
}

/// Outcome for one statement.
enum One {
    Keep,
    Skip(String),
    Edit(Vec<u8>, Vec<String>),
}

/// Translates metadata statements for a plain-PostgreSQL target, keeping a report.
#[derive(Debug, Default)]
pub struct Translator {
    /// Relations whose creation was skipped (external tables): their follow-up entries go too.
    skipped_relations: HashSet<String>,
    report: Vec<ReportItem>,
}

impl Translator {
    pub fn new() -> Translator {
        Translator::default()
    }

    /// Everything skipped or edited so far.
    pub fn report(&self) -> &[ReportItem] {
        &self.report
    }

    /// Translates one chunk. `Ok(None)` means nothing of it is left to run.
    pub fn translate(&mut self, stmt: &Statement) -> Result<Option<Vec<u8>>> {
        let e = &stmt.entry;
        let fqn = e.fqn();
        let note = |action, detail: String| ReportItem {
            section: stmt.section,
            objecttype: e.objecttype.clone(),
            name: fqn.clone(),
            action,
            detail,
        };
        if let Some((_, why)) = SKIPPED_TYPES
            .iter()
            .find(|(t, _)| e.objecttype.eq_ignore_ascii_case(t))
        {
            self.report.push(note(Action::Skipped, why.to_string()));
            return Ok(None);
        }
        if !e.schema.is_empty() && self.skipped_relations.contains(&fqn) {
            self.report.push(note(
                Action::Skipped,
                "belongs to a skipped external table".into(),
            ));
            return Ok(None);
        }
        let masked = mask(&stmt.sql);
        let mut out = Vec::with_capacity(stmt.sql.len());
        let mut kept_any = false;
        let mut changes: Vec<String> = Vec::new();
        let mut skips: Vec<String> = Vec::new();
        for range in split_statements(&masked) {
            let (sql, m) = (&stmt.sql[range.clone()], &masked[range]);
            if m.iter().all(u8::is_ascii_whitespace) {
                out.extend_from_slice(sql);
                continue;
            }
            match self.one(sql, m, &e.objecttype, &fqn)? {
                One::Keep => {
                    out.extend_from_slice(sql);
                    kept_any = true;
                }
                One::Skip(why) => skips.push(why),
                One::Edit(new, what) => {
                    out.extend_from_slice(&new);
                    kept_any = true;
                    changes.extend(what);
                }
            }
        }
        for s in &skips {
            self.report.push(note(Action::Skipped, s.clone()));
        }
        if !changes.is_empty() {
            changes.dedup();
            self.report
                .push(note(Action::Translated, changes.join("; ")));
        }
        if !kept_any && !skips.is_empty() {
            return Ok(None);
        }
        Ok(Some(out))
    }

    fn untranslatable(objecttype: &str, fqn: &str, reason: &str) -> Error {
        Error::Untranslatable {
            objecttype: objecttype.to_string(),
            name: fqn.to_string(),
            reason: reason.to_string(),
        }
    }

    fn one(&mut self, sql: &[u8], m: &[u8], objecttype: &str, fqn: &str) -> Result<One> {
        if RE_RESOURCE.is_match(m) {
            return Ok(One::Skip(
                "resource queue/group statement (Greenplum-only)".into(),
            ));
        }
        if RE_PROTOCOL.is_match(m) {
            return Ok(One::Skip(
                "external protocol statement (Greenplum-only)".into(),
            ));
        }
        if RE_EXTERNAL.is_match(m) || RE_GP_FOREIGN_EXT.is_match(m) {
            self.skipped_relations.insert(fqn.to_string());
            return Ok(One::Skip(
                "external table (reads/writes outside files or programs; not portable)".into(),
            ));
        }
        if RE_STORAGE_SERVER.is_match(m) {
            return Ok(One::Skip(
                "storage server statement (Cloudberry-only)".into(),
            ));
        }
        if RE_ROLE_DENY.is_match(m) {
            return Ok(One::Skip("role DENY time rule (Greenplum-only)".into()));
        }
        if RE_SET_DIST.is_match(m) {
            return Ok(One::Skip(
                "ALTER TABLE ... SET DISTRIBUTED (Greenplum-only)".into(),
            ));
        }
        if RE_TYPE_ENCODING.is_match(m) {
            return Ok(One::Skip(
                "type default column ENCODING (Greenplum-only)".into(),
            ));
        }
        if let Some(c) = RE_SET_GUC.captures(m) {
            let name = String::from_utf8_lossy(&c[1]).into_owned();
            if is_gp_setting(&name) {
                return Ok(One::Skip(format!(
                    "setting {name} exists only in Greenplum"
                )));
            }
        }
        if RE_FILESPACE.is_match(m) {
            return Err(Self::untranslatable(
                objecttype,
                fqn,
                "tablespace uses a Greenplum 5 FILESPACE",
            ));
        }
        if RE_SUBPARTITION.is_match(m) || RE_PARTITION_ALTER.is_match(m) {
            return Err(Self::untranslatable(objecttype, fqn, "Greenplum partition syntax (SUBPARTITION / partition maintenance) has no PostgreSQL equivalent; restore with --leaf-partition-data or into Cloudberry"));
        }
        for mat in RE_PARTITION_BY.find_iter(m) {
            let open = mat.end() - 1;
            if let Some(close) = matching_paren(m, open) {
                let next = m[close..].iter().find(|b| !b.is_ascii_whitespace());
                if next == Some(&b'(') {
                    return Err(Self::untranslatable(objecttype, fqn, "Greenplum 6 inline partition definitions (PARTITION BY ... (START ... END ...)) have no direct PostgreSQL equivalent"));
                }
            }
        }

        let mut edits = Vec::new();
        let mut what = Vec::new();
        // DISTRIBUTED BY (...) / RANDOMLY / REPLICATED
        for mat in RE_DISTRIBUTED_BY.find_iter(m) {
            if let Some(close) = matching_paren(m, mat.end() - 1) {
                edits.push(Edit {
                    range: mat.start()..close,
                    with: Vec::new(),
                });
                what.push("removed DISTRIBUTED clause".to_string());
            }
        }
        for mat in RE_DISTRIBUTED_OTHER.find_iter(m) {
            edits.push(Edit {
                range: mat.range(),
                with: Vec::new(),
            });
            what.push("removed DISTRIBUTED clause".to_string());
        }
        // WITH (appendonly=..., orientation=..., compresstype=..., ...)
        for mat in RE_WITH_OPTIONS.find_iter(m) {
            let open = mat.end() - 1;
            let Some(close) = matching_paren(m, open) else {
                continue;
            };
            let items = split_top_level_commas(m, open + 1..close - 1);
            let name_of = |r: &Range<usize>| {
                let t = String::from_utf8_lossy(&m[r.clone()]).into_owned();
                t.split('=').next().unwrap_or("").trim().to_string()
            };
            let (gp, keep): (Vec<_>, Vec<_>) = items
                .iter()
                .cloned()
                .partition(|r| is_gp_storage_option(&name_of(r)));
            if gp.is_empty() {
                continue;
            }
            let names: Vec<String> = gp.iter().map(name_of).collect();
            what.push(format!("removed storage options {}", names.join(", ")));
            if keep
                .iter()
                .all(|r| m[r.clone()].iter().all(u8::is_ascii_whitespace))
            {
                edits.push(Edit {
                    range: mat.start()..close,
                    with: Vec::new(),
                });
            } else {
                let kept: Vec<&[u8]> = keep.iter().map(|r| trim(&sql[r.clone()])).collect();
                let mut with = sql[mat.start()..open + 1].to_vec();
                with.extend_from_slice(&kept.join(&b", "[..]));
                with.push(b')');
                edits.push(Edit {
                    range: mat.start()..close,
                    with,
                });
            }
        }
        // Column ENCODING (...) clauses of column-oriented tables.
        let mut encoding_starts = HashSet::new();
        for mat in RE_ELEMENT_ENCODING.find_iter(m) {
            if let Some(close) = matching_paren(m, mat.end() - 1) {
                encoding_starts.insert(mat.end() - 1);
                edits.push(Edit {
                    range: mat.start()..close,
                    with: Vec::new(),
                });
                what.push("removed column ENCODING clauses".to_string());
            }
        }
        for mat in RE_INLINE_ENCODING.find_iter(m) {
            if encoding_starts.contains(&(mat.end() - 1)) {
                continue;
            }
            if let Some(close) = matching_paren(m, mat.end() - 1) {
                edits.push(Edit {
                    range: mat.start()..close,
                    with: Vec::new(),
                });
                what.push("removed column ENCODING clauses".to_string());
            }
        }
        for mat in RE_USING_AO.find_iter(m) {
            edits.push(Edit {
                range: mat.range(),
                with: Vec::new(),
            });
            what.push("removed append-optimized access method (heap is used)".to_string());
        }
        if RE_CREATE_FUNCTION.is_match(m) {
            for mat in RE_FUNC_GP_ATTRS.find_iter(m) {
                let attr = String::from_utf8_lossy(&sql[mat.range()])
                    .trim()
                    .to_string();
                edits.push(Edit {
                    range: mat.range(),
                    with: Vec::new(),
                });
                what.push(format!("removed function attribute {attr}"));
            }
        }
        let role_stmt = RE_ROLE_STMT.is_match(m);
        if role_stmt {
            for mat in RE_ROLE_GP_OPTS.find_iter(m) {
                edits.push(Edit {
                    range: mat.range(),
                    with: Vec::new(),
                });
            }
            if RE_ROLE_GP_OPTS.is_match(m) {
                what.push(
                    "removed Greenplum role options (RESOURCE QUEUE/GROUP, CREATEEXTTABLE, ...)"
                        .to_string(),
                );
            }
        }
        if RE_CREATE_INDEX.is_match(m) {
            for mat in RE_USING_BITMAP.find_iter(m) {
                edits.push(Edit {
                    range: mat.range(),
                    with: b"USING btree".to_vec(),
                });
                what.push("bitmap index created as btree".to_string());
            }
        }
        for mat in RE_PREFUNC.find_iter(m) {
            edits.push(Edit {
                range: mat.range(),
                with: b"COMBINEFUNC =".to_vec(),
            });
            what.push("aggregate PREFUNC renamed COMBINEFUNC".to_string());
        }
        if edits.is_empty() {
            return Ok(One::Keep);
        }
        let new = apply(sql, edits);
        if role_stmt && RE_EMPTY_ALTER_ROLE.is_match(&mask(&new)) {
            return Ok(One::Skip(
                "ALTER ROLE held only Greenplum role options".into(),
            ));
        }
        what.dedup();
        Ok(One::Edit(new, what))
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map(|p| p + 1)
        .unwrap_or(start);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toc::MetadataEntry;

    fn st(objecttype: &str, schema: &str, name: &str, sql: &str) -> Statement {
        Statement {
            section: Section::Predata,
            index: 0,
            entry: MetadataEntry {
                objecttype: objecttype.into(),
                schema: schema.into(),
                name: name.into(),
                ..Default::default()
            },
            sql: sql.as_bytes().to_vec(),
        }
    }

    fn tr(t: &mut Translator, objecttype: &str, sql: &str) -> Option<String> {
        t.translate(&st(objecttype, "s", "t", sql))
            .unwrap()
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn tables_lose_distribution_and_ao_options() {
        let mut t = Translator::new();
        assert_eq!(
            tr(
                &mut t,
                "TABLE",
                "\n\nCREATE TABLE s.t (\n\ti integer\n) DISTRIBUTED BY (i);"
            )
            .as_deref(),
            Some("\n\nCREATE TABLE s.t (\n\ti integer\n);")
        );
        assert_eq!(
            tr(
                &mut t,
                "TABLE",
                "CREATE TABLE s.r (a int, \"DISTRIBUTED BY (x)\" text) DISTRIBUTED REPLICATED;"
            )
            .as_deref(),
            Some("CREATE TABLE s.r (a int, \"DISTRIBUTED BY (x)\" text);")
        );
        assert_eq!(
            tr(&mut t, "TABLE", "CREATE TABLE s.a (a int ENCODING (compresstype=zlib), b text, COLUMN b ENCODING (compresstype=rle_type), DEFAULT COLUMN ENCODING (compresstype=zstd)) WITH (appendonly=true, orientation=column, fillfactor=70, compresstype=zstd) DISTRIBUTED RANDOMLY;").as_deref(),
            Some("CREATE TABLE s.a (a int, b text) WITH (fillfactor=70);")
        );
        assert_eq!(
            tr(&mut t, "TABLE", "CREATE TABLE s.b (a int) WITH (appendonly='true', compresslevel=5) DISTRIBUTED BY (a);").as_deref(),
            Some("CREATE TABLE s.b (a int);")
        );
        assert_eq!(
            tr(&mut t, "TABLE", "CREATE TABLE s.c (a int) USING ao_column;").as_deref(),
            Some("CREATE TABLE s.c (a int);")
        );
        assert!(t.report().iter().all(|r| r.action == Action::Translated));
    }

    #[test]
    fn roles_functions_and_skips() {
        let mut t = Translator::new();
        let role = "\n\nCREATE ROLE testrole;\nALTER ROLE testrole WITH SUPERUSER INHERIT LOGIN PASSWORD 'md5x' RESOURCE QUEUE pg_default RESOURCE GROUP admin_group CREATEEXTTABLE (protocol='http') CREATEEXTTABLE (protocol='gpfdist', type='readable');";
        assert_eq!(
            tr(&mut t, "ROLE", role).as_deref(),
            Some("\n\nCREATE ROLE testrole;\nALTER ROLE testrole WITH SUPERUSER INHERIT LOGIN PASSWORD 'md5x';")
        );
        assert_eq!(
            tr(
                &mut t,
                "ROLE",
                "CREATE ROLE r;\nALTER ROLE r WITH RESOURCE QUEUE pg_default;"
            )
            .as_deref(),
            Some("CREATE ROLE r;")
        );
        assert_eq!(
            tr(
                &mut t,
                "RESOURCE QUEUE",
                "ALTER RESOURCE QUEUE pg_default WITH (ACTIVE_STATEMENTS=20);"
            ),
            None
        );
        assert_eq!(
            tr(
                &mut t,
                "RESOURCE GROUP",
                "ALTER RESOURCE GROUP admin_group SET CPU_RATE_LIMIT 1;"
            ),
            None
        );
        let f = "CREATE FUNCTION public.f() RETURNS int AS\n$$\nSELECT 1 -- NO SQL here stays\n$$\nLANGUAGE plpgsql NO SQL EXECUTE ON ALL SEGMENTS;";
        assert_eq!(
            tr(&mut t, "FUNCTION", f).as_deref(),
            Some("CREATE FUNCTION public.f() RETURNS int AS\n$$\nSELECT 1 -- NO SQL here stays\n$$\nLANGUAGE plpgsql;")
        );
        assert_eq!(
            tr(
                &mut t,
                "PROTOCOL",
                "CREATE TRUSTED PROTOCOL p (readfunc = f);"
            ),
            None
        );
        assert_eq!(
            tr(
                &mut t,
                "DATABASE GUC",
                "ALTER DATABASE d SET gp_autostats_mode TO 'none';"
            ),
            None
        );
        assert_eq!(
            tr(
                &mut t,
                "DATABASE GUC",
                "ALTER DATABASE d SET work_mem TO '1MB';"
            )
            .as_deref(),
            Some("ALTER DATABASE d SET work_mem TO '1MB';")
        );
        assert_eq!(
            tr(&mut t, "INDEX", "CREATE INDEX i ON s.t USING bitmap (a);").as_deref(),
            Some("CREATE INDEX i ON s.t USING btree (a);")
        );
        assert_eq!(
            tr(
                &mut t,
                "TABLE",
                "CREATE READABLE EXTERNAL WEB TABLE s.t (a int) EXECUTE 'x' FORMAT 'csv';"
            ),
            None
        );
        assert_eq!(tr(&mut t, "TABLE", "ALTER TABLE s.t OWNER TO x;"), None);
        assert!(t
            .report()
            .iter()
            .any(|r| r.action == Action::Skipped && r.objecttype == "RESOURCE QUEUE"));
        assert!(t
            .report()
            .iter()
            .any(|r| r.detail.contains("external table")));
    }

    #[test]
    fn gp6_partitions_are_untranslatable() {
        let mut t = Translator::new();
        let e = t
            .translate(&st("TABLE", "s", "p", "CREATE TABLE s.p (a int, d date) DISTRIBUTED BY (a) PARTITION BY RANGE(d) (START (date '2020-01-01') END (date '2021-01-01') EVERY (INTERVAL '1 month'));"))
            .unwrap_err();
        assert!(matches!(e, Error::Untranslatable { .. }), "{e}");
        assert!(e.to_string().contains("TABLE s.p"), "{e}");
        // PostgreSQL-style declarative partitioning is fine.
        assert_eq!(
            tr(
                &mut t,
                "TABLE",
                "CREATE TABLE s.q (a int) PARTITION BY RANGE (a) DISTRIBUTED BY (a);"
            )
            .as_deref(),
            Some("CREATE TABLE s.q (a int) PARTITION BY RANGE (a);")
        );
    }
}
