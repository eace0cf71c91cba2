//! Plain-SQL passes: [`collect`] (pass 1) builds the [`Catalog`]; [`apply`] (pass 2) copies the
//! script, splicing clauses and demotions by statement ordinal; [`strip`] removes clauses.
//! All three stream: one statement in memory at a time, COPY data passed through in slices.
//! [`edit_statement`] and [`strip_statement`] work on one statement's text, for archive TOCs.

use std::io::{self, Read, Write};

use crate::catalog::{Catalog, DuplicateRelation};
use crate::parse::{parse, Stmt};
use crate::policy::{Edit, Plan};
use crate::splitter::{ItemKind, SplitError, Splitter};

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error(transparent)]
    Duplicate(#[from] DuplicateRelation),
    #[error("write error: {0}")]
    Write(io::Error),
    #[error("line {line}: statement {ordinal} changed between the two passes (is the input being modified?)")]
    Changed { line: u64, ordinal: u64 },
}

/// Tracks `SET search_path` so unqualified names resolve the same way in both passes.
struct Session {
    default_schema: String,
}

impl Session {
    fn new() -> Self {
        Session {
            default_schema: "public".into(),
        }
    }

    fn parse(&mut self, bytes: &[u8], standard_strings: bool) -> Stmt {
        let stmt = parse(bytes, standard_strings, &self.default_schema);
        if let Stmt::SearchPath(s) = &stmt {
            self.default_schema = s.clone();
        }
        stmt
    }
}

/// Pass 1: read the whole script and record what it defines.
pub fn collect<R: Read>(reader: R) -> Result<Catalog, RewriteError> {
    let mut sp = Splitter::new(reader);
    let mut catalog = Catalog::default();
    let mut session = Session::new();
    let mut ordinal = 0u64;
    let mut copy_target = None;
    while let Some(item) = sp.next_item()? {
        match item.kind {
            ItemKind::Statement => {
                let stmt = session.parse(item.bytes, item.standard_strings);
                catalog.add(ordinal, item.line, &stmt)?;
                copy_target = match stmt {
                    Stmt::CopyFrom(t) => Some(t),
                    _ => None,
                };
                ordinal += 1;
            }
            ItemKind::CopyData => {
                if let Some(t) = &copy_target {
                    // The splitter counted them for its line numbers already.
                    let mut rows = item.newlines;
                    if item.complete && ends_with_terminator_line(item.bytes) {
                        rows = rows.saturating_sub(1);
                    }
                    catalog.add_rows(t, rows);
                }
            }
            ItemKind::Meta | ItemKind::Trivia => {}
        }
    }
    Ok(catalog)
}

fn ends_with_terminator_line(b: &[u8]) -> bool {
    b.ends_with(b"\n\\.\n") || b.ends_with(b"\n\\.\r\n") || b == b"\\.\n" || b == b"\\.\r\n"
}

/// Pass 2: copy the script with the plan's edits applied. Returns the number of statements
/// changed.
pub fn apply<R: Read, W: Write>(reader: R, mut out: W, plan: &Plan) -> Result<u64, RewriteError> {
    let (changed, rest) = apply_head(reader, &mut out, plan)?;
    if let Some((ahead, mut rest, _)) = rest {
        out.write_all(&ahead).map_err(RewriteError::Write)?;
        // A read error (truncated gzip) must not pass for a write error, so no io::copy here.
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match rest.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(RewriteError::Split(SplitError::Io(e))),
            };
            out.write_all(&buf[..n]).map_err(RewriteError::Write)?;
        }
    }
    out.flush().map_err(RewriteError::Write)?;
    Ok(changed)
}

/// The unchanged rest of the input after the last edit: bytes already read ahead, the reader
/// positioned after them, and the input offset where that rest begins.
pub type Rest<R> = (Vec<u8>, R, u64);

/// Pass 2 up to the last edited statement. Everything after it is unchanged (in a pg_dump,
/// all COPY data and most of post-data): the caller copies it raw — from the returned reader,
/// or, for a plain file, straight from the input file at the returned offset, which lets the
/// kernel copy it. Returns the number of statements changed.
pub fn apply_head<R: Read, W: Write + ?Sized>(
    reader: R,
    out: &mut W,
    plan: &Plan,
) -> Result<(u64, Option<Rest<R>>), RewriteError> {
    let mut sp = Splitter::new(reader);
    let mut session = Session::new();
    let mut ordinal = 0u64;
    let mut changed = 0;
    let mut consumed = 0u64;
    let last_edit = plan.edits.keys().max().copied();
    while last_edit.is_some_and(|last| ordinal <= last) {
        let Some(item) = sp.next_item()? else {
            out.flush().map_err(RewriteError::Write)?;
            return Ok((changed, None));
        };
        consumed += item.bytes.len() as u64;
        if item.kind != ItemKind::Statement {
            out.write_all(item.bytes).map_err(RewriteError::Write)?;
            continue;
        }
        let stmt = session.parse(item.bytes, item.standard_strings);
        match plan.edits.get(&ordinal) {
            Some(edit) => {
                let new = edit_parsed(item.bytes, &stmt, edit).ok_or(RewriteError::Changed {
                    line: item.line,
                    ordinal,
                })?;
                out.write_all(&new).map_err(RewriteError::Write)?;
                changed += 1;
            }
            None => out.write_all(item.bytes).map_err(RewriteError::Write)?,
        }
        ordinal += 1;
    }
    let (ahead, rest) = sp.into_rest();
    Ok((changed, Some((ahead, rest, consumed))))
}

/// Remove every DISTRIBUTED clause of CREATE TABLE / MATERIALIZED VIEW statements and nothing
/// else. Returns the number of clauses removed.
pub fn strip<R: Read, W: Write>(reader: R, mut out: W) -> Result<u64, RewriteError> {
    let mut sp = Splitter::new(reader);
    let mut session = Session::new();
    let mut removed = 0;
    while let Some(item) = sp.next_item()? {
        if item.kind == ItemKind::Statement {
            let stmt = session.parse(item.bytes, item.standard_strings);
            if let Some(new) = strip_parsed(item.bytes, &stmt) {
                out.write_all(&new).map_err(RewriteError::Write)?;
                removed += 1;
                continue;
            }
        }
        out.write_all(item.bytes).map_err(RewriteError::Write)?;
    }
    out.flush().map_err(RewriteError::Write)?;
    Ok(removed)
}

/// Apply `edit` to one statement's text; `None` if the statement is not of the expected shape.
pub fn edit_statement(
    bytes: &[u8],
    standard_strings: bool,
    default_schema: &str,
    edit: &Edit,
) -> Option<Vec<u8>> {
    edit_parsed(bytes, &parse(bytes, standard_strings, default_schema), edit)
}

/// Remove the DISTRIBUTED clause from one statement; `None` if it has none.
pub fn strip_statement(
    bytes: &[u8],
    standard_strings: bool,
    default_schema: &str,
) -> Option<Vec<u8>> {
    strip_parsed(bytes, &parse(bytes, standard_strings, default_schema))
}

pub(crate) fn edit_parsed(bytes: &[u8], stmt: &Stmt, edit: &Edit) -> Option<Vec<u8>> {
    match (stmt, edit) {
        (Stmt::CreateTable(t), Edit::SetClause(c)) => {
            Some(splice(bytes, t.splice_at, t.existing.as_ref(), c))
        }
        (Stmt::CreateMatView(m), Edit::SetClause(c)) => {
            Some(splice(bytes, m.splice_at, m.existing.as_ref(), c))
        }
        (Stmt::AddConstraint(a), Edit::Demote) => {
            let sql = a.demoted.as_ref()?;
            // Keep whatever follows the last token (the `;`) and any leading bytes.
            let end_of_last = last_token_end(bytes)?;
            let mut out = sql.as_bytes().to_vec();
            out.extend_from_slice(&bytes[end_of_last..]);
            Some(out)
        }
        (Stmt::UniqueIndex(u), Edit::Demote) => {
            let mut out = Vec::with_capacity(bytes.len());
            let mut at = 0;
            for &(a, b) in &u.demote_cuts {
                out.extend_from_slice(&bytes[at..a]);
                at = b;
            }
            out.extend_from_slice(&bytes[at..]);
            Some(out)
        }
        _ => None,
    }
}

fn last_token_end(bytes: &[u8]) -> Option<usize> {
    let toks = crate::lexer::tokenize(bytes, true).ok()?;
    let mut sig = toks.iter().filter(|t| !t.kind.is_trivia()).rev();
    let last = sig.next()?;
    if last.kind == crate::lexer::TokenKind::Semicolon {
        sig.next().map(|t| t.end)
    } else {
        Some(last.end)
    }
}

fn splice(
    bytes: &[u8],
    at: usize,
    existing: Option<&crate::parse::ExistingClause>,
    clause: &crate::clause::Clause,
) -> Vec<u8> {
    let text = format!(" {clause}");
    let (a, b) = match existing {
        Some(e) => (e.start, e.end),
        None => (at, at),
    };
    let mut out = Vec::with_capacity(bytes.len() + text.len());
    out.extend_from_slice(&bytes[..a]);
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[b..]);
    out
}

pub(crate) fn strip_parsed(bytes: &[u8], stmt: &Stmt) -> Option<Vec<u8>> {
    let e = match stmt {
        Stmt::CreateTable(t) => t.existing.as_ref()?,
        Stmt::CreateMatView(m) => m.existing.as_ref()?,
        _ => return None,
    };
    let mut out = bytes[..e.start].to_vec();
    out.extend_from_slice(&bytes[e.end..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{decide, DefaultRule, OnConflict, Options, PolicyFile};
    use std::collections::HashMap;
    use std::error::Error;

    /// Rewrites `sql` and checks that stripping gives it back; an error is a collect, decide or
    /// apply error, boxed since the tests only read its message.
    fn run(sql: &str, opts: &Options, file: &PolicyFile) -> Result<(String, Plan), Box<dyn Error>> {
        let catalog = collect(sql.as_bytes())?;
        let plan = decide(&catalog, file, opts, &HashMap::new())?;
        let mut out = Vec::new();
        apply(sql.as_bytes(), &mut out, &plan)?;
        let out = String::from_utf8(out).unwrap();
        let mut back = Vec::new();
        strip(out.as_bytes(), &mut back).unwrap();
        assert_eq!(
            String::from_utf8(back).unwrap(),
            sql,
            "strip(rewrite(x)) == x"
        );
        Ok((out, plan))
    }

    fn opts() -> Options {
        Options {
            default: None,
            on_conflict: None,
            force: false,
        }
    }

    const ORDERS: &str = "CREATE TABLE public.orders (\n    note text,\n    id bigint NOT NULL,\n    code text\n);\n\nCOPY public.orders (note, id, code) FROM stdin;\na\t1\tx\n\\.\n\nALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);\n";

    #[test]
    fn primary_key_decides() {
        let (out, plan) = run(ORDERS, &opts(), &PolicyFile::default()).unwrap();
        assert!(
            out.contains("    code text\n) DISTRIBUTED BY (id);\n"),
            "{out}"
        );
        assert_eq!(plan.decisions[0].reason, crate::policy::Reason::PrimaryKey);
    }

    #[test]
    fn conflicts() {
        let sql = format!("{ORDERS}\nALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_code_key UNIQUE (code);\n");
        let err = run(&sql, &opts(), &PolicyFile::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("orders_code_key"), "{err}");
        let mut o = opts();
        o.on_conflict = Some(OnConflict::Replicated);
        let (out, _) = run(&sql, &o, &PolicyFile::default()).unwrap();
        assert!(out.contains(") DISTRIBUTED REPLICATED;"));
        o.on_conflict = Some(OnConflict::DemoteUnique);
        let catalog = collect(sql.as_bytes()).unwrap();
        let plan = decide(&catalog, &PolicyFile::default(), &o, &HashMap::new()).unwrap();
        let mut out = Vec::new();
        apply(sql.as_bytes(), &mut out, &plan).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains(") DISTRIBUTED BY (id);"));
        assert!(
            out.contains("CREATE INDEX orders_code_key ON ONLY public.orders (code);\n"),
            "{out}"
        );
        assert_eq!(plan.decisions[0].demoted, ["orders_code_key"]);
    }

    #[test]
    fn defaults_and_policy() {
        let sql = "CREATE TABLE public.t (\n    doc json,\n    g integer GENERATED ALWAYS AS (1) STORED,\n    n integer\n);\nCOPY public.t (doc, n) FROM stdin;\n{}\t1\n{}\t2\n\\.\n";
        let (out, plan) = run(sql, &opts(), &PolicyFile::default()).unwrap();
        assert!(out.contains(") DISTRIBUTED BY (n);"), "{out}");
        assert_eq!(plan.decisions[0].reason, crate::policy::Reason::Default);
        let mut o = opts();
        o.default = Some(DefaultRule::ReplicatedBelow(3));
        let (out, _) = run(sql, &o, &PolicyFile::default()).unwrap();
        assert!(out.contains(") DISTRIBUTED REPLICATED;"), "{out}");
        o.default = Some(DefaultRule::ReplicatedBelow(2));
        let (out, _) = run(sql, &o, &PolicyFile::default()).unwrap();
        assert!(out.contains(") DISTRIBUTED BY (n);"), "{out}");
        let file = PolicyFile::parse("[tables]\n\"public.t\" = \"random\"\n").unwrap();
        let (out, _) = run(sql, &opts(), &file).unwrap();
        assert!(out.contains(") DISTRIBUTED RANDOMLY;"));
        for (bad, msg) in [
            (
                "[tables]\n\"public.nope\" = \"random\"\n",
                "does not create",
            ),
            ("[tables]\n\"public.t\" = \"hash(zz)\"\n", "no column"),
            (
                "[tables]\n\"public.t\" = \"hash(doc)\"\n",
                "hash operator class",
            ),
            ("[tables]\n\"public.t\" = \"hash(g)\"\n", "generated"),
        ] {
            let err = run(sql, &opts(), &PolicyFile::parse(bad).unwrap())
                .unwrap_err()
                .to_string();
            assert!(err.contains(msg), "{err}");
        }
        let file = PolicyFile::parse(
            "[[patterns]]\nmatch = \"public.*\"\ndistribution = \"replicated\"\n",
        )
        .unwrap();
        let (out, _) = run(sql, &opts(), &file).unwrap();
        assert!(out.contains(") DISTRIBUTED REPLICATED;"));
    }

    #[test]
    fn partitions_and_inheritance() {
        let sql = "CREATE TABLE public.m (\n    a integer NOT NULL,\n    b text\n)\nPARTITION BY RANGE (a);\nCREATE TABLE public.m_1 (\n    a integer NOT NULL,\n    b text\n);\nCREATE TABLE public.m_2 PARTITION OF public.m FOR VALUES FROM (10) TO (20);\nCREATE TABLE public.p (x integer, y text);\nCREATE TABLE public.c (z integer) INHERITS (public.p);\nALTER TABLE ONLY public.m ATTACH PARTITION public.m_1 FOR VALUES FROM (0) TO (10);\nALTER TABLE ONLY public.m ADD CONSTRAINT m_pkey PRIMARY KEY (a, b);\nALTER TABLE ONLY public.m_1 ADD CONSTRAINT m_1_pkey PRIMARY KEY (a, b);\nCREATE UNIQUE INDEX c_z ON public.c USING btree (z, x);\n";
        let (out, plan) = run(sql, &opts(), &PolicyFile::default()).unwrap();
        assert!(
            out.contains(")\nPARTITION BY RANGE (a) DISTRIBUTED BY (a, b);"),
            "{out}"
        );
        assert!(
            out.contains("    b text\n) DISTRIBUTED BY (a, b);"),
            "{out}"
        );
        assert!(out.contains("FOR VALUES FROM (10) TO (20);"));
        assert!(
            out.contains("CREATE TABLE public.p (x integer, y text) DISTRIBUTED BY (x);"),
            "{out}"
        );
        assert!(
            out.contains("INHERITS (public.p) DISTRIBUTED BY (x);"),
            "{out}"
        );
        let reasons: Vec<_> = plan
            .decisions
            .iter()
            .map(|d| (d.table.as_str(), d.reason))
            .collect();
        use crate::policy::Reason::*;
        assert!(reasons.contains(&("public.m_2", PartitionOf)));
        assert!(reasons.contains(&("public.m_1", Parent)));
        assert!(reasons.contains(&("public.p", Unique)));
    }

    #[test]
    fn orphan_partition_of_gets_no_clause() {
        let sql = "CREATE TABLE public.m_1 PARTITION OF public.m FOR VALUES IN (1);\n";
        let (out, plan) = run(sql, &opts(), &PolicyFile::default()).unwrap();
        assert_eq!(out, sql);
        assert_eq!(plan.decisions[0].reason, crate::policy::Reason::PartitionOf);
    }

    #[test]
    fn existing_clauses_and_matviews() {
        let sql = "CREATE TABLE public.t (a integer, b integer) DISTRIBUTED BY (b);\nCREATE MATERIALIZED VIEW public.mv AS\n SELECT t.a\n   FROM public.t\n  WITH NO DATA;\nCREATE UNIQUE INDEX mv_a ON public.mv USING btree (a);\n";
        let catalog = collect(sql.as_bytes()).unwrap();
        let plan = decide(&catalog, &PolicyFile::default(), &opts(), &HashMap::new()).unwrap();
        let mut out = Vec::new();
        apply(sql.as_bytes(), &mut out, &plan).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("DISTRIBUTED BY (b);"));
        assert!(out.contains("  WITH NO DATA DISTRIBUTED BY (a);"), "{out}");
        let mut o = opts();
        o.force = true;
        let plan = decide(&catalog, &PolicyFile::default(), &o, &HashMap::new()).unwrap();
        let mut out = Vec::new();
        apply(sql.as_bytes(), &mut out, &plan).unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("(a integer, b integer) DISTRIBUTED BY (a);"));
        let mut stripped = Vec::new();
        assert_eq!(strip(sql.as_bytes(), &mut stripped).unwrap(), 1);
        assert!(String::from_utf8(stripped)
            .unwrap()
            .starts_with("CREATE TABLE public.t (a integer, b integer);\n"));
    }
}
