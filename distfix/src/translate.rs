//! Greenplum/Cloudberry DDL → plain PostgreSQL: the one translation every input shares.
//!
//! gpbackup's metadata.sql, a pg_dump archive's TOC statements and a plain pg_dump script of an
//! MPP server all carry the same Greenplum-only syntax. Each piece of SQL is split into statements
//! and every statement is either kept, edited (Greenplum-only clauses removed: DISTRIBUTED,
//! append-optimized storage options, column ENCODING, `USING ao_*`, ...) or skipped (objects and
//! settings PostgreSQL has no notion of: resource queues, external tables, `gp_*` settings,
//! `SET default_table_access_method = ao_column`, grants on `gp_*` catalog objects). Every edit
//! and skip is recorded in the report; what cannot be expressed in PostgreSQL at all (Greenplum 6
//! inline partition syntax, filespaces) is an [`Untranslatable`] so nothing is silently lost.
//!
//! [`Translator::translate`] works on one piece of SQL; [`translate_entries`] on a pg_dump
//! archive's TOC (it also drops the TABLE DATA the Greenplum-7 fork writes for a partitioned
//! parent whose partitions have their own: the parent's copy holds every row again);
//! [`translate_script`] streams a plain script.
//!
//! All matching happens on [`sqltext::mask`]ed text, so literals, quoted identifiers and
//! function bodies are never rewritten.

use std::collections::HashSet;
use std::fmt;
use std::io::{Read, Write};
use std::ops::Range;
use std::sync::LazyLock;

use regex::bytes::Regex;

use crate::names::QualName;
use crate::parse::{parse, Stmt};
use crate::splitter::{ItemKind, SplitError, Splitter};
use crate::sqltext::{self, mask, matching_paren, split_statements, split_top_level_commas};

/// A statement that has no PostgreSQL equivalent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot translate {objecttype} {name} for PostgreSQL: {reason}")]
pub struct Untranslatable {
    pub objecttype: String,
    pub name: String,
    pub reason: String,
}

/// What a piece of SQL belongs to: named in the report, and the key for follow-up statements of
/// a skipped relation.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    /// `predata`, `postdata`, `global`, `pre-data` ...: as the caller's format names it.
    pub section: &'a str,
    /// gpbackup's object type or pg_dump's TOC `desc` (`TABLE`, `ACL`, ...).
    pub objecttype: &'a str,
    /// `schema.name`, or the global object's name (may be empty).
    pub name: &'a str,
}

/// What happened to one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Skipped,
    Translated,
}

/// One line of the translation report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportItem {
    pub section: String,
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
    RE_SET_AO_AM,
    r"(?is)^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?default_table_access_method\s*(?:=|\bTO\b)\s*'?(?:ao_row|ao_column|appendoptimized|aocs)\b"
);
re!(
    RE_GP_CATALOG_ACL,
    r#"(?is)^\s*(?:GRANT|REVOKE)\b.*?\bON\s+(?:TABLE\s+|SEQUENCE\s+|VIEW\s+|FUNCTION\s+)?(?:"?pg_catalog"?\s*\.\s*"?gp_|"?gp_toolkit"?\s*\.)"#
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

    /// Translates one piece of SQL (one or more statements). `Ok(None)` means nothing of it is
    /// left to run.
    pub fn translate(
        &mut self,
        sql: &[u8],
        object: &Object<'_>,
    ) -> Result<Option<Vec<u8>>, Untranslatable> {
        let fqn = object.name.to_string();
        let note = |action, detail: String| ReportItem {
            section: object.section.to_string(),
            objecttype: object.objecttype.to_string(),
            name: fqn.clone(),
            action,
            detail,
        };
        if let Some((_, why)) = SKIPPED_TYPES
            .iter()
            .find(|(t, _)| object.objecttype.eq_ignore_ascii_case(t))
        {
            self.report.push(note(Action::Skipped, why.to_string()));
            return Ok(None);
        }
        if fqn.contains('.') && self.skipped_relations.contains(&fqn) {
            self.report.push(note(
                Action::Skipped,
                "belongs to a skipped external table".into(),
            ));
            return Ok(None);
        }
        let objecttype = object.objecttype;
        let masked = mask(sql);
        let whole = sql;
        let mut out = Vec::with_capacity(whole.len());
        let mut kept_any = false;
        let mut changes: Vec<String> = Vec::new();
        let mut skips: Vec<String> = Vec::new();
        for range in split_statements(&masked) {
            let (sql, m) = (&whole[range.clone()], &masked[range]);
            if m.iter().all(u8::is_ascii_whitespace) {
                out.extend_from_slice(sql);
                continue;
            }
            match self.one(sql, m, objecttype, &fqn)? {
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

    fn untranslatable(objecttype: &str, fqn: &str, reason: &str) -> Untranslatable {
        Untranslatable {
            objecttype: objecttype.to_string(),
            name: fqn.to_string(),
            reason: reason.to_string(),
        }
    }

    /// One statement for a PostgreSQL target, in three steps: statements with no PostgreSQL
    /// meaning are skipped, those that cannot be translated stop with the reason, and the rest
    /// lose their Greenplum-only clauses.
    fn one(
        &mut self,
        sql: &[u8],
        m: &[u8],
        objecttype: &str,
        fqn: &str,
    ) -> Result<One, Untranslatable> {
        // STEP 1: skipped whole.
        if let Some(why) = self.skip_reason(m, fqn) {
            return Ok(One::Skip(why));
        }
        // STEP 2: refused.
        if let Some(why) = untranslatable_reason(m) {
            return Err(Self::untranslatable(objecttype, fqn, why));
        }
        // STEP 3: clauses removed or renamed.
        let mut e = Edits::default();
        e.distribution(m);
        e.storage_options(sql, m);
        e.column_encodings(m);
        e.functions_indexes_aggregates(sql, m);
        let role_stmt = e.role_options(m);
        if e.edits.is_empty() {
            return Ok(One::Keep);
        }
        let new = apply(sql, e.edits);
        if role_stmt && RE_EMPTY_ALTER_ROLE.is_match(&mask(&new)) {
            return Ok(One::Skip(
                "ALTER ROLE held only Greenplum role options".into(),
            ));
        }
        let mut what = e.what;
        what.dedup();
        Ok(One::Edit(new, what))
    }

    /// Why a statement has no PostgreSQL counterpart at all, if it has none. An external
    /// table's name is remembered, so its data and dependent statements are skipped too.
    fn skip_reason(&mut self, m: &[u8], fqn: &str) -> Option<String> {
        let greenplum_only = |checks: &[(&Regex, &str)]| {
            checks
                .iter()
                .find(|(re, _)| re.is_match(m))
                .map(|(_, why)| (*why).to_string())
        };
        let before_external: [(&Regex, &str); 2] = [
            (
                &RE_RESOURCE,
                "resource queue/group statement (Greenplum-only)",
            ),
            (&RE_PROTOCOL, "external protocol statement (Greenplum-only)"),
        ];
        if let Some(why) = greenplum_only(&before_external) {
            return Some(why);
        }
        if RE_EXTERNAL.is_match(m) || RE_GP_FOREIGN_EXT.is_match(m) {
            self.skipped_relations.insert(fqn.to_string());
            return Some(
                "external table (reads/writes outside files or programs; not portable)".into(),
            );
        }
        let others: [(&Regex, &str); 6] = [
            (
                &RE_STORAGE_SERVER,
                "storage server statement (Cloudberry-only)",
            ),
            (&RE_ROLE_DENY, "role DENY time rule (Greenplum-only)"),
            (
                &RE_SET_DIST,
                "ALTER TABLE ... SET DISTRIBUTED (Greenplum-only)",
            ),
            (
                &RE_TYPE_ENCODING,
                "type default column ENCODING (Greenplum-only)",
            ),
            (
                &RE_SET_AO_AM,
                "append-optimized default access method (heap is used)",
            ),
            (
                &RE_GP_CATALOG_ACL,
                "privileges on a Greenplum catalog object (gp_*)",
            ),
        ];
        if let Some(why) = greenplum_only(&others) {
            return Some(why);
        }
        let name = RE_SET_GUC
            .captures(m)
            .map(|c| String::from_utf8_lossy(&c[1]).into_owned())?;
        is_gp_setting(&name).then(|| format!("setting {name} exists only in Greenplum"))
    }
}

/// Why a statement cannot be restored into PostgreSQL, if it cannot.
fn untranslatable_reason(m: &[u8]) -> Option<&'static str> {
    if RE_FILESPACE.is_match(m) {
        return Some("tablespace uses a Greenplum 5 FILESPACE");
    }
    if RE_SUBPARTITION.is_match(m) || RE_PARTITION_ALTER.is_match(m) {
        return Some("Greenplum partition syntax (SUBPARTITION / partition maintenance) has no PostgreSQL equivalent; restore with --leaf-partition-data or into Cloudberry");
    }
    let inline_partitions = RE_PARTITION_BY.find_iter(m).any(|mat| {
        matching_paren(m, mat.end() - 1).is_some_and(|close| {
            m[close..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'(')
        })
    });
    inline_partitions.then_some("Greenplum 6 inline partition definitions (PARTITION BY ... (START ... END ...)) have no direct PostgreSQL equivalent")
}

/// The edits of one statement and what each did, in words for the report.
#[derive(Default)]
struct Edits {
    edits: Vec<Edit>,
    what: Vec<String>,
}

impl Edits {
    fn remove(&mut self, range: Range<usize>, what: &str) {
        self.replace(range, Vec::new(), what);
    }

    fn replace(&mut self, range: Range<usize>, with: Vec<u8>, what: &str) {
        self.edits.push(Edit { range, with });
        self.what.push(what.to_string());
    }

    /// `DISTRIBUTED BY (...)`, `DISTRIBUTED RANDOMLY`, `DISTRIBUTED REPLICATED`.
    fn distribution(&mut self, m: &[u8]) {
        for mat in RE_DISTRIBUTED_BY.find_iter(m) {
            if let Some(close) = matching_paren(m, mat.end() - 1) {
                self.remove(mat.start()..close, "removed DISTRIBUTED clause");
            }
        }
        for mat in RE_DISTRIBUTED_OTHER.find_iter(m) {
            self.remove(mat.range(), "removed DISTRIBUTED clause");
        }
    }

    /// `WITH (appendonly=..., orientation=..., compresstype=..., ...)`: the Greenplum options
    /// go, the others stay (the whole clause goes when nothing is left).
    fn storage_options(&mut self, sql: &[u8], m: &[u8]) {
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
            let what = format!("removed storage options {}", names.join(", "));
            if keep
                .iter()
                .all(|r| m[r.clone()].iter().all(u8::is_ascii_whitespace))
            {
                self.remove(mat.start()..close, &what);
            } else {
                let kept: Vec<&[u8]> = keep.iter().map(|r| trim(&sql[r.clone()])).collect();
                let mut with = sql[mat.start()..open + 1].to_vec();
                with.extend_from_slice(&kept.join(&b", "[..]));
                with.push(b')');
                self.replace(mat.start()..close, with, &what);
            }
        }
    }

    /// Column `ENCODING (...)` clauses of column-oriented tables, as separate elements and
    /// inline after a column's type; `USING ao_row/ao_column`.
    fn column_encodings(&mut self, m: &[u8]) {
        let mut encoding_starts = HashSet::new();
        for mat in RE_ELEMENT_ENCODING.find_iter(m) {
            if let Some(close) = matching_paren(m, mat.end() - 1) {
                encoding_starts.insert(mat.end() - 1);
                self.remove(mat.start()..close, "removed column ENCODING clauses");
            }
        }
        for mat in RE_INLINE_ENCODING.find_iter(m) {
            if encoding_starts.contains(&(mat.end() - 1)) {
                continue;
            }
            if let Some(close) = matching_paren(m, mat.end() - 1) {
                self.remove(mat.start()..close, "removed column ENCODING clauses");
            }
        }
        for mat in RE_USING_AO.find_iter(m) {
            self.remove(
                mat.range(),
                "removed append-optimized access method (heap is used)",
            );
        }
    }

    /// Greenplum function attributes, bitmap indexes (as btree), aggregates' `PREFUNC`.
    fn functions_indexes_aggregates(&mut self, sql: &[u8], m: &[u8]) {
        if RE_CREATE_FUNCTION.is_match(m) {
            for mat in RE_FUNC_GP_ATTRS.find_iter(m) {
                let attr = String::from_utf8_lossy(&sql[mat.range()])
                    .trim()
                    .to_string();
                self.remove(mat.range(), &format!("removed function attribute {attr}"));
            }
        }
        if RE_CREATE_INDEX.is_match(m) {
            for mat in RE_USING_BITMAP.find_iter(m) {
                let with = b"USING btree".to_vec();
                self.replace(mat.range(), with, "bitmap index created as btree");
            }
        }
        for mat in RE_PREFUNC.find_iter(m) {
            let with = b"COMBINEFUNC =".to_vec();
            self.replace(mat.range(), with, "aggregate PREFUNC renamed COMBINEFUNC");
        }
    }

    /// Greenplum role options (`RESOURCE QUEUE`, `CREATEEXTTABLE`, ...); whether the statement
    /// is a role statement at all.
    fn role_options(&mut self, m: &[u8]) -> bool {
        if !RE_ROLE_STMT.is_match(m) {
            return false;
        }
        let what = "removed Greenplum role options (RESOURCE QUEUE/GROUP, CREATEEXTTABLE, ...)";
        for mat in RE_ROLE_GP_OPTS.find_iter(m) {
            self.remove(mat.range(), what);
        }
        true
    }
}

/// A pg_dump archive's entries for a PostgreSQL target.
///
/// Every `defn` (and `dropStmt`) goes through `tr`; an entry left with nothing to run keeps its
/// place with empty statements (dependencies stay valid, and pg_restore reads an empty `defn` as
/// "no schema part"). A TABLE DATA entry of a partitioned parent is dropped when a partition
/// attached to it has its own TABLE DATA: the Greenplum-7 fork's pg_dump writes both, and the
/// parent's copy holds every partition's rows again.
pub fn translate_entries(
    entries: &[archive::TocEntry],
    tr: &mut Translator,
) -> Result<Vec<archive::TocEntry>, Untranslatable> {
    let doubled = doubled_parent_data(entries);
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let desc = text(&e.desc);
        let name = match text(&e.namespace) {
            ns if ns.is_empty() => text(&e.tag),
            ns => format!("{ns}.{}", text(&e.tag)),
        };
        if desc == "TABLE DATA" && doubled.contains(&name) {
            tr.report.push(ReportItem {
                section: "data".into(),
                objecttype: desc,
                name,
                action: Action::Skipped,
                detail: "a partitioned parent's rows, which its partitions' data holds already"
                    .into(),
            });
            // The entry keeps its place (a custom archive's TOC is rewritten entry for entry);
            // without a data dumper pg_restore restores nothing of it.
            let mut e = e.clone();
            e.had_dumper = 0;
            e.defn = Some(Vec::new());
            e.drop_stmt = Some(Vec::new());
            out.push(e);
            continue;
        }
        let object = Object {
            section: section_name(e.section),
            objecttype: &desc,
            name: &name,
        };
        let mut e = e.clone();
        // pg_restore sets default_table_access_method from this field before the statement.
        if e.tableam.as_deref().is_some_and(is_ao_access_method) {
            e.tableam = Some(b"heap".to_vec());
        }
        if let Some(defn) = e.defn.as_deref().filter(|d| !d.is_empty()) {
            match tr.translate(defn, &object)? {
                Some(new) => e.defn = Some(new),
                None => {
                    e.defn = Some(Vec::new());
                    e.drop_stmt = Some(Vec::new());
                }
            }
        }
        out.push(e);
    }
    Ok(out)
}

fn is_ao_access_method(am: &[u8]) -> bool {
    matches!(am, b"ao_row" | b"ao_column" | b"appendoptimized" | b"aocs")
}

fn text(b: &Option<Vec<u8>>) -> String {
    b.as_deref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn section_name(section: i64) -> &'static str {
    use archive::toc::{SECTION_DATA, SECTION_POST_DATA, SECTION_PRE_DATA};
    match i32::try_from(section) {
        Ok(SECTION_PRE_DATA) => "pre-data",
        Ok(SECTION_DATA) => "data",
        Ok(SECTION_POST_DATA) => "post-data",
        _ => "none",
    }
}

/// `schema.table` of partitioned parents whose TABLE DATA repeats their partitions' rows.
fn doubled_parent_data(entries: &[archive::TocEntry]) -> HashSet<String> {
    let mut partitioned = HashSet::new();
    let mut attached: Vec<(QualName, QualName)> = Vec::new();
    for e in entries {
        let Some(defn) = e.defn.as_deref() else {
            continue;
        };
        if !matches!(text(&e.desc).as_str(), "TABLE" | "TABLE ATTACH") {
            continue;
        }
        for_each_statement(defn, |stmt| match stmt {
            Stmt::CreateTable(t) if t.partitioned => {
                partitioned.insert(t.name);
            }
            Stmt::AttachPartition { parent, child } => attached.push((parent, child)),
            _ => {}
        });
    }
    let with_data: HashSet<String> = entries
        .iter()
        .filter(|e| text(&e.desc) == "TABLE DATA")
        .map(|e| format!("{}.{}", text(&e.namespace), text(&e.tag)))
        .collect();
    attached
        .into_iter()
        .filter(|(p, c)| partitioned.contains(p) && with_data.contains(&plain(c)))
        .map(|(p, _)| plain(&p))
        .collect()
}

/// `schema.name` unquoted, as an archive's namespace and tag spell them.
fn plain(q: &QualName) -> String {
    format!("{}.{}", q.schema, q.name)
}

fn for_each_statement(sql: &[u8], mut f: impl FnMut(Stmt)) {
    let masked = sqltext::mask(sql);
    for r in split_statements(&masked) {
        if masked[r.clone()].iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        f(parse(&sql[r], true, "public"));
    }
}

/// Why a script could not be translated.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error("line {line}: {source}")]
    Untranslatable { line: u64, source: Untranslatable },
    #[error("write error: {0}")]
    Write(std::io::Error),
}

/// The Greenplum-7 fork's doubled rows in a plain script: its pg_dump writes a COPY for a
/// partitioned parent as well as for each partition, so the parent's rows, routed into the
/// partitions, would be loaded twice. Fed every statement in order, it names the COPY of a
/// partitioned parent whose partitions were attached before it (the partitions' own COPYs hold
/// those rows). Used by [`translate_script`] and by cbrestore's plain-script loader.
#[derive(Debug)]
pub struct DoubledParents {
    default_schema: String,
    partitioned: HashSet<QualName>,
    with_partitions: HashSet<QualName>,
}

impl Default for DoubledParents {
    fn default() -> Self {
        DoubledParents {
            default_schema: "public".into(),
            partitioned: HashSet::new(),
            with_partitions: HashSet::new(),
        }
    }
}

impl DoubledParents {
    /// The parent whose rows `sql` (the next statement of the script) would load a second time.
    pub fn doubled_copy(&mut self, sql: &[u8], standard_strings: bool) -> Option<QualName> {
        match parse(sql, standard_strings, &self.default_schema) {
            Stmt::SearchPath(s) => self.default_schema = s,
            Stmt::CreateTable(t) if t.partitioned => {
                self.partitioned.insert(t.name);
            }
            Stmt::AttachPartition { parent, .. } if self.partitioned.contains(&parent) => {
                self.with_partitions.insert(parent);
            }
            Stmt::CopyFrom(t) if self.with_partitions.contains(&t) => return Some(t),
            _ => {}
        }
        None
    }
}

/// The report line of a partitioned parent's COPY left out.
fn doubled_rows_item(t: &QualName) -> ReportItem {
    ReportItem {
        section: "data".into(),
        objecttype: "TABLE DATA".into(),
        name: plain(t),
        action: Action::Skipped,
        detail: "a partitioned parent's rows, which its partitions' data holds already".into(),
    }
}

/// A plain pg_dump script of an MPP server, translated for PostgreSQL while it streams: each
/// statement through `tr` (named by its first words in the report), meta-commands and COPY data
/// passed through, and the COPY block of a partitioned parent left out when partitions were
/// attached to it before (the fork's doubled rows; see [`translate_entries`]). Returns the
/// statements changed or skipped.
pub fn translate_script<R: Read, W: Write>(
    reader: R,
    mut out: W,
    tr: &mut Translator,
) -> Result<u64, ScriptError> {
    let mut sp = Splitter::new(reader);
    let mut doubled = DoubledParents::default();
    let mut skipping_data = false;
    let mut changed = 0u64;
    while let Some(item) = sp.next_item()? {
        if matches!(item.kind, ItemKind::Statement | ItemKind::Meta) {
            skipping_data = false;
        }
        match item.kind {
            ItemKind::Statement => {
                if let Some(t) = doubled.doubled_copy(item.bytes, item.standard_strings) {
                    skipping_data = true;
                    changed += 1;
                    tr.report.push(doubled_rows_item(&t));
                    continue;
                }
                let kind = statement_kind(item.bytes);
                let object = Object {
                    section: "script",
                    objecttype: &kind,
                    name: "",
                };
                let before = tr.report.len();
                let new = tr.translate(item.bytes, &object).map_err(|source| {
                    ScriptError::Untranslatable {
                        line: item.line,
                        source,
                    }
                })?;
                if tr.report.len() > before {
                    changed += 1;
                    for r in &mut tr.report[before..] {
                        r.name = format!("line {}", item.line);
                    }
                }
                if let Some(new) = new {
                    out.write_all(&new).map_err(ScriptError::Write)?;
                }
            }
            ItemKind::CopyData if skipping_data => {}
            _ => out.write_all(item.bytes).map_err(ScriptError::Write)?,
        }
    }
    out.flush().map_err(ScriptError::Write)?;
    Ok(changed)
}

/// The first words of a statement (`CREATE TABLE`, `GRANT`, `SET`), for the report.
fn statement_kind(sql: &[u8]) -> String {
    let masked = mask(sql);
    let words: Vec<String> = String::from_utf8_lossy(&masked)
        .split_whitespace()
        .take(2)
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .collect();
    match words.first().map(String::as_str) {
        Some("CREATE" | "ALTER" | "DROP" | "COMMENT") => words.join(" "),
        Some(w) => w.to_string(),
        None => String::new(),
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

    fn obj(objecttype: &str) -> Object<'_> {
        Object {
            section: "predata",
            objecttype,
            name: "s.t",
        }
    }

    fn tr(t: &mut Translator, objecttype: &str, sql: &str) -> Option<String> {
        t.translate(sql.as_bytes(), &obj(objecttype))
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
            .translate(b"CREATE TABLE s.p (a int, d date) DISTRIBUTED BY (a) PARTITION BY RANGE(d) (START (date '2020-01-01') END (date '2021-01-01') EVERY (INTERVAL '1 month'));", &Object { section: "predata", objecttype: "TABLE", name: "s.p" })
            .unwrap_err();
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

    #[test]
    fn mpp_pg_dump_settings_and_catalog_grants() {
        let mut t = Translator::new();
        assert_eq!(
            tr(&mut t, "", "SET default_table_access_method = ao_column;"),
            None
        );
        assert_eq!(
            tr(&mut t, "", "SET default_table_access_method = heap;").as_deref(),
            Some("SET default_table_access_method = heap;")
        );
        assert_eq!(tr(&mut t, "", "SET gp_default_storage_options = '';"), None);
        assert_eq!(
            tr(
                &mut t,
                "ACL",
                "GRANT SELECT ON TABLE pg_catalog.gp_pgdatabase TO PUBLIC;"
            ),
            None
        );
        assert_eq!(
            tr(
                &mut t,
                "ACL",
                "GRANT SELECT ON TABLE public.gp_mine TO PUBLIC;"
            )
            .as_deref(),
            Some("GRANT SELECT ON TABLE public.gp_mine TO PUBLIC;")
        );
    }

    /// The stand-in's pg_dump: an AO column table with its SET, a partitioned parent whose rows
    /// are dumped again under the parent, a grant on a catalog object.
    const MPP_SCRIPT: &str = "SET gp_default_storage_options = '';\nSET standard_conforming_strings = on;\n\
SET default_table_access_method = ao_column;\n\
CREATE TABLE public.aoc (\n    a integer,\n    b text,\n    COLUMN a ENCODING (compresstype=zlib,compresslevel=1,blocksize=32768)\n)\nWITH (compresstype=zlib) DISTRIBUTED BY (a);\n\
SET default_table_access_method = heap;\n\
CREATE TABLE public.pt (\n    id integer,\n    d date\n)\nPARTITION BY RANGE (d) DISTRIBUTED BY (id);\n\
CREATE TABLE public.pt_1 (\n    id integer,\n    d date\n) DISTRIBUTED BY (id);\n\
ALTER TABLE ONLY public.pt ATTACH PARTITION public.pt_1 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n\
COPY public.pt (id, d) FROM stdin;\n1\t2024-01-02\n\\.\n\n\
COPY public.pt_1 (id, d) FROM stdin;\n1\t2024-01-02\n\\.\n\n\
GRANT SELECT ON TABLE pg_catalog.gp_distributed_log TO PUBLIC;\n";

    #[test]
    fn scripts_lose_mpp_syntax_and_doubled_parent_rows() {
        let mut t = Translator::new();
        let mut out = Vec::new();
        let changed = translate_script(MPP_SCRIPT.as_bytes(), &mut out, &mut t).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out,
            "\nSET standard_conforming_strings = on;\n\n\
CREATE TABLE public.aoc (\n    a integer,\n    b text\n);\n\
SET default_table_access_method = heap;\n\
CREATE TABLE public.pt (\n    id integer,\n    d date\n)\nPARTITION BY RANGE (d);\n\
CREATE TABLE public.pt_1 (\n    id integer,\n    d date\n);\n\
ALTER TABLE ONLY public.pt ATTACH PARTITION public.pt_1 FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');\n\
\n\n\
COPY public.pt_1 (id, d) FROM stdin;\n1\t2024-01-02\n\\.\n\n\
\n"
        );
        assert_eq!(changed, 7, "{:#?}", t.report());
    }

    #[test]
    fn archive_entries_lose_doubled_parent_data() {
        fn entry(id: i32, desc: &str, tag: &str, defn: &str) -> archive::TocEntry {
            archive::TocEntry {
                dump_id: id,
                had_dumper: 0,
                table_oid: None,
                oid: None,
                tag: Some(tag.as_bytes().to_vec()),
                desc: Some(desc.as_bytes().to_vec()),
                section: 2,
                defn: Some(defn.as_bytes().to_vec()),
                drop_stmt: None,
                copy_stmt: None,
                namespace: Some(b"public".to_vec()),
                tablespace: None,
                tableam: None,
                relkind: 0,
                owner: None,
                with_oids: None,
                deps: Vec::new(),
                extra: archive::toc::Extra::File(None),
            }
        }
        let entries = vec![
            entry(1, "TABLE", "pt", "CREATE TABLE public.pt (id integer) PARTITION BY RANGE (id) DISTRIBUTED BY (id);\n"),
            entry(2, "TABLE", "pt_1", "CREATE TABLE public.pt_1 (id integer) DISTRIBUTED BY (id);\nALTER TABLE ONLY public.pt ATTACH PARTITION public.pt_1 FOR VALUES FROM (1) TO (10);\n"),
            archive::TocEntry {
                had_dumper: 1,
                ..entry(3, "TABLE DATA", "pt", "")
            },
            archive::TocEntry {
                had_dumper: 1,
                ..entry(4, "TABLE DATA", "pt_1", "")
            },
            entry(5, "ACL", "TABLE gp_pgdatabase", "GRANT SELECT ON TABLE pg_catalog.gp_pgdatabase TO PUBLIC;\n"),
        ];
        let mut t = Translator::new();
        let out = translate_entries(&entries, &mut t).unwrap();
        let ids: Vec<(i32, i64)> = out.iter().map(|e| (e.dump_id, e.had_dumper)).collect();
        assert_eq!(ids, vec![(1, 0), (2, 0), (3, 0), (4, 1), (5, 0)]);
        assert_eq!(
            out[0].defn.as_deref(),
            Some(&b"CREATE TABLE public.pt (id integer) PARTITION BY RANGE (id);\n"[..])
        );
        assert_eq!(out[4].defn.as_deref(), Some(&b""[..]));
    }
}
