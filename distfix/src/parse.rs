//! Recognizes the few statement shapes that decide or carry a distribution clause, with the byte
//! positions needed to splice. Everything else is [`Stmt::Other`] and passes through untouched.

use serde::Serialize;

use crate::clause::Clause;
use crate::lexer::{tokenize, Token, TokenKind};
use crate::names::{identifier, QualName};
use crate::types::{TypeRef, UserType};

/// A column of a table (or the name of a materialized view's output column).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Catalog (folded) name.
    pub name: String,
    /// The name as written in the dump, safe to write back into a clause.
    pub spelling: String,
    /// `None` when unknown (materialized view outputs).
    pub type_ref: Option<TypeRef>,
    /// `GENERATED ALWAYS AS (...) STORED` (identity columns are not generated columns).
    pub generated: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UniqueKind {
    PrimaryKey,
    Unique,
    Exclude,
    UniqueIndex,
}

/// A PRIMARY KEY / UNIQUE / EXCLUDE constraint or a unique index: the columns a hash key must
/// be drawn from. `None` entries are expressions (or non-equality EXCLUDE elements), which can
/// never hold a key column.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UniqueSpec {
    pub kind: UniqueKind,
    pub name: Option<String>,
    pub columns: Vec<Option<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// `CREATE TABLE t (...)`, also temp/unlogged.
    Regular,
    /// `CREATE TABLE t OF type`.
    Typed(TypeRef),
    /// `CREATE TABLE t PARTITION OF parent ...`: the grammar has no slot for a clause.
    PartitionOf(QualName),
    /// Foreign or external tables: never touched.
    Foreign,
    /// `CREATE TABLE ... AS`: not produced by pg_dump; left alone.
    AsQuery,
}

/// An existing DISTRIBUTED clause and its bytes, from the end of the preceding token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingClause {
    pub start: usize,
    pub end: usize,
    pub clause: Clause,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateTable {
    pub name: QualName,
    pub kind: TableKind,
    pub temp: bool,
    pub columns: Vec<Column>,
    /// Constraints written inside the statement.
    pub uniques: Vec<UniqueSpec>,
    pub inherits: Vec<QualName>,
    /// Has `PARTITION BY` (a partitioned table).
    pub partitioned: bool,
    pub existing: Option<ExistingClause>,
    /// Byte offset just after the last token before the final `;`: where ` DISTRIBUTED ...` goes.
    pub splice_at: usize,
}

/// Words that may follow a single FROM relation (and its alias) in a matview's query.
const STOP_AFTER_FROM: &[&str] = &[
    "where", "group", "having", "order", "limit", "offset", "window", "with",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateMatView {
    pub name: QualName,
    /// Output column names when they can be read off the statement.
    pub columns: Vec<Column>,
    /// `SELECT ... FROM <one relation> ...`: that relation, and for each output column the
    /// source column it names unchanged (`t.a`, `a`), so its type can be taken from the table.
    pub source: Option<(QualName, Vec<Option<String>>)>,
    pub existing: Option<ExistingClause>,
    pub splice_at: usize,
}

/// `ALTER TABLE ... ADD [CONSTRAINT n] PRIMARY KEY|UNIQUE|EXCLUDE ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddConstraint {
    pub table: QualName,
    pub spec: UniqueSpec,
    /// The same index as a plain `CREATE INDEX` statement (without `;`), when the statement has a
    /// single action and the constraint is a UNIQUE that can be demoted.
    pub demoted: Option<String>,
}

/// `CREATE UNIQUE INDEX ... ON t (...)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UniqueIndex {
    pub table: QualName,
    pub spec: UniqueSpec,
    /// Byte ranges to delete to make it a plain index (`UNIQUE `, `NULLS [NOT] DISTINCT `).
    pub demote_cuts: Vec<(usize, usize)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    CreateTable(CreateTable),
    CreateMatView(CreateMatView),
    AddConstraint(AddConstraint),
    UniqueIndex(UniqueIndex),
    AttachPartition {
        parent: QualName,
        child: QualName,
    },
    /// `ALTER TABLE child INHERIT parent`.
    Inherit {
        parent: QualName,
        child: QualName,
    },
    CreateType {
        name: QualName,
        def: UserType,
        /// A composite type's attributes: the columns of tables created `OF` it.
        attributes: Vec<Column>,
    },
    /// `COPY t [(cols)] FROM stdin`: the data block that follows belongs to `t`.
    CopyFrom(QualName),
    /// `SET search_path`: the first schema becomes the default for unqualified names.
    SearchPath(String),
    Other,
}

/// Non-trivia tokens of one statement with helpers to read them.
struct Cursor<'a> {
    text: &'a [u8],
    toks: Vec<Token>,
}

impl<'a> Cursor<'a> {
    fn kind(&self, i: usize) -> Option<TokenKind> {
        self.toks.get(i).map(|t| t.kind)
    }

    fn bytes(&self, i: usize) -> &'a [u8] {
        let t = self.toks[i];
        &self.text[t.start..t.end]
    }

    fn kw(&self, i: usize, word: &str) -> bool {
        self.kind(i) == Some(TokenKind::Ident)
            && self.bytes(i).eq_ignore_ascii_case(word.as_bytes())
    }

    fn punct(&self, i: usize, c: u8) -> bool {
        self.kind(i) == Some(TokenKind::Other) && self.bytes(i) == [c]
    }

    fn ident(&self, i: usize) -> Option<String> {
        let t = self.toks.get(i)?;
        identifier(t.kind, &self.text[t.start..t.end])
    }

    fn spelling(&self, i: usize) -> String {
        String::from_utf8_lossy(self.bytes(i)).into_owned()
    }

    /// Index of the `)` matching the `(` at `i`.
    fn close_paren(&self, i: usize) -> Option<usize> {
        let mut depth = 0usize;
        for j in i..self.toks.len() {
            match self.toks[j].kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(j);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// A possibly qualified name at `i`; returns it and the index after it.
    fn qualname(&self, i: usize, default_schema: &str) -> Option<(QualName, usize)> {
        let first = self.ident(i)?;
        if self.punct(i + 1, b'.') {
            let second = self.ident(i + 2)?;
            if self.punct(i + 3, b'.') {
                // database.schema.name: drop the database.
                let third = self.ident(i + 4)?;
                return Some((QualName::new(second, third), i + 5));
            }
            Some((QualName::new(first, second), i + 3))
        } else {
            Some((QualName::new(default_schema, first), i + 1))
        }
    }

    /// Split the tokens strictly between `open` and its matching `close` at top-level commas.
    fn elements(&self, open: usize, close: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut start = open + 1;
        for j in open + 1..close {
            match self.toks[j].kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth = depth.saturating_sub(1),
                TokenKind::Other if depth == 0 && self.bytes(j) == b"," => {
                    out.push((start, j));
                    start = j + 1;
                }
                _ => {}
            }
        }
        if start < close {
            out.push((start, close));
        }
        out
    }

    /// Index of the last token, not counting a final `;`.
    fn last(&self) -> Option<usize> {
        let n = self.toks.len();
        match self.kind(n.checked_sub(1)?) {
            Some(TokenKind::Semicolon) => n.checked_sub(2),
            _ => Some(n - 1),
        }
    }

    /// A type starting at `i` and ending before `end`.
    fn type_ref(&self, i: usize, end: usize) -> TypeRef {
        let mut words: Vec<String> = Vec::new();
        let mut schema = None;
        let mut array = false;
        let mut depth = 0usize;
        for j in i..end {
            match self.toks[j].kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth = depth.saturating_sub(1),
                _ if depth > 0 => {}
                TokenKind::Other if self.bytes(j) == b"[" => array = true,
                TokenKind::Other
                    if self.bytes(j) == b"." && words.len() == 1 && schema.is_none() =>
                {
                    schema = words.pop();
                }
                TokenKind::Ident if self.kw(j, "array") => array = true,
                TokenKind::Ident | TokenKind::QuotedIdent => {
                    if let Some(w) = self.ident(j) {
                        words.push(w);
                    }
                }
                _ => {}
            }
        }
        TypeRef {
            schema: schema.filter(|s| s != "pg_catalog"),
            name: words.join(" "),
            array,
        }
    }
}

/// A type written as SQL text (for example by `format_type`).
pub fn type_ref_from_text(text: &str) -> TypeRef {
    let toks = tokenize(text.as_bytes(), true)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !t.kind.is_trivia())
        .collect::<Vec<_>>();
    let n = toks.len();
    Cursor {
        text: text.as_bytes(),
        toks,
    }
    .type_ref(0, n)
}

/// Recognize one statement. `standard_strings` is the setting it was lexed under;
/// `default_schema` resolves unqualified names.
pub fn parse(text: &[u8], standard_strings: bool, default_schema: &str) -> Stmt {
    let Ok(all) = tokenize(text, standard_strings) else {
        return Stmt::Other;
    };
    let c = Cursor {
        text,
        toks: all.into_iter().filter(|t| !t.kind.is_trivia()).collect(),
    };
    let p = Parser { c, default_schema };
    p.statement().unwrap_or(Stmt::Other)
}

struct Parser<'a> {
    c: Cursor<'a>,
    default_schema: &'a str,
}

/// Words that end a column's type inside a column definition.
const COLUMN_STOP: &[&str] = &[
    "collate",
    "constraint",
    "not",
    "null",
    "default",
    "check",
    "primary",
    "unique",
    "references",
    "generated",
    "deferrable",
    "initially",
    "compression",
    "storage",
    "encoding",
];

impl Parser<'_> {
    fn statement(&self) -> Option<Stmt> {
        let c = &self.c;
        if c.kw(0, "create") {
            return self.create();
        }
        if c.kw(0, "alter") && c.kw(1, "table") {
            return self.alter_table();
        }
        if c.kw(0, "copy") && c.kind(1) != Some(TokenKind::LParen) {
            let (name, _) = c.qualname(1, self.default_schema)?;
            let from_stdin = (2..c.toks.len()).any(|k| c.kw(k, "from") && c.kw(k + 1, "stdin"));
            return from_stdin.then_some(Stmt::CopyFrom(name));
        }
        if c.kw(0, "set") {
            let mut i = 1;
            if c.kw(1, "session") || c.kw(1, "local") {
                i = 2;
            }
            if c.kw(i, "search_path") {
                let v = i + 2;
                let first = match c.kind(v)? {
                    TokenKind::String => {
                        let raw = String::from_utf8_lossy(c.bytes(v)).into_owned();
                        raw.trim_matches('\'').split(',').next()?.trim().to_string()
                    }
                    _ => c.ident(v)?,
                };
                if !first.is_empty() && first != "\"$user\"" && first != "$user" {
                    return Some(Stmt::SearchPath(first));
                }
            }
        }
        None
    }

    fn create(&self) -> Option<Stmt> {
        let c = &self.c;
        let mut i = 1;
        let mut temp = false;
        let mut foreign = false;
        loop {
            if c.kw(i, "global") || c.kw(i, "local") || c.kw(i, "unlogged") {
                i += 1;
            } else if c.kw(i, "temp") || c.kw(i, "temporary") {
                temp = true;
                i += 1;
            } else if c.kw(i, "foreign")
                || c.kw(i, "external")
                || c.kw(i, "readable")
                || c.kw(i, "writable")
                || c.kw(i, "web")
            {
                foreign = true;
                i += 1;
            } else {
                break;
            }
        }
        if c.kw(i, "table") {
            return self
                .create_table(i + 1, temp, foreign)
                .map(Stmt::CreateTable);
        }
        if c.kw(i, "materialized") && c.kw(i + 1, "view") {
            return self.create_matview(i + 2).map(Stmt::CreateMatView);
        }
        if c.kw(1, "unique") {
            return self.unique_index(2).map(Stmt::UniqueIndex);
        }
        if c.kw(1, "type") {
            return self.create_type();
        }
        if c.kw(1, "domain") {
            let (name, mut j) = c.qualname(2, self.default_schema)?;
            if c.kw(j, "as") {
                j += 1;
            }
            let end = (j..c.toks.len())
                .find(|&k| {
                    c.kind(k) == Some(TokenKind::Semicolon)
                        || ["collate", "default", "constraint", "not", "null", "check"]
                            .iter()
                            .any(|w| c.kw(k, w))
                })
                .unwrap_or(c.toks.len());
            return Some(Stmt::CreateType {
                name,
                def: UserType::Domain(c.type_ref(j, end)),
                attributes: Vec::new(),
            });
        }
        None
    }

    fn create_type(&self) -> Option<Stmt> {
        let c = &self.c;
        let (name, j) = c.qualname(2, self.default_schema)?;
        let mut attributes = Vec::new();
        let def = if c.kw(j, "as") && c.kw(j + 1, "enum") {
            UserType::Enum
        } else if c.kw(j, "as") && c.kw(j + 1, "range") {
            UserType::Range
        } else if c.kw(j, "as") && c.kind(j + 1) == Some(TokenKind::LParen) {
            // Attributes are written like columns: `name type [COLLATE c]`.
            let close = c.close_paren(j + 1)?;
            let mut scratch = CreateTable {
                name: name.clone(),
                kind: TableKind::Regular,
                temp: false,
                columns: Vec::new(),
                uniques: Vec::new(),
                inherits: Vec::new(),
                partitioned: false,
                existing: None,
                splice_at: 0,
            };
            for (s, e) in c.elements(j + 1, close) {
                self.table_element(s, e, &mut scratch);
            }
            attributes = scratch.columns;
            UserType::Composite
        } else {
            UserType::Base
        };
        Some(Stmt::CreateType {
            name,
            def,
            attributes,
        })
    }

    fn if_not_exists(&self, i: usize) -> usize {
        let c = &self.c;
        if c.kw(i, "if") && c.kw(i + 1, "not") && c.kw(i + 2, "exists") {
            i + 3
        } else {
            i
        }
    }

    fn create_table(&self, i: usize, temp: bool, foreign: bool) -> Option<CreateTable> {
        let c = &self.c;
        let i = self.if_not_exists(i);
        let (name, mut j) = c.qualname(i, self.default_schema)?;
        let last = c.last()?;
        let splice_at = c.toks[last].end;
        let mut table = CreateTable {
            name,
            kind: TableKind::Regular,
            temp,
            columns: Vec::new(),
            uniques: Vec::new(),
            inherits: Vec::new(),
            partitioned: false,
            existing: None,
            splice_at,
        };
        if foreign {
            table.kind = TableKind::Foreign;
            return Some(table);
        }
        if c.kw(j, "partition") && c.kw(j + 1, "of") {
            let (parent, _) = c.qualname(j + 2, self.default_schema)?;
            table.kind = TableKind::PartitionOf(parent);
            return Some(table);
        }
        if c.kw(j, "of") {
            let end = (j + 1..=last)
                .find(|&k| {
                    c.kind(k) == Some(TokenKind::LParen)
                        || c.kind(k) == Some(TokenKind::Ident) && k > j + 1 && !c.punct(k - 1, b'.')
                })
                .unwrap_or(last + 1);
            table.kind = TableKind::Typed(c.type_ref(j + 1, end));
            j = end;
            if c.kind(j) == Some(TokenKind::LParen) {
                j = c.close_paren(j)? + 1;
            }
        } else if c.kind(j) == Some(TokenKind::LParen) {
            let close = c.close_paren(j)?;
            if c.kw(close + 1, "as") {
                table.kind = TableKind::AsQuery;
                return Some(table);
            }
            for (s, e) in c.elements(j, close) {
                self.table_element(s, e, &mut table);
            }
            j = close + 1;
        } else {
            // CREATE TABLE t AS ... / WITH (...) AS ...
            table.kind = TableKind::AsQuery;
            return Some(table);
        }
        // The tail: INHERITS, PARTITION BY, USING, WITH, ON COMMIT, TABLESPACE, DISTRIBUTED.
        while j <= last {
            if c.kw(j, "inherits") && c.kind(j + 1) == Some(TokenKind::LParen) {
                let close = c.close_paren(j + 1)?;
                for (s, _) in c.elements(j + 1, close) {
                    if let Some((p, _)) = c.qualname(s, self.default_schema) {
                        table.inherits.push(p);
                    }
                }
                j = close + 1;
            } else if c.kw(j, "partition") && c.kw(j + 1, "by") {
                table.partitioned = true;
                j += 2;
            } else if c.kw(j, "distributed") {
                let (clause, end) = self.clause(j)?;
                table.existing = Some(ExistingClause {
                    start: c.toks[j - 1].end,
                    end: c.toks[end - 1].end,
                    clause,
                });
                j = end;
            } else if c.kw(j, "as") {
                table.kind = TableKind::AsQuery;
                return Some(table);
            } else if c.kind(j) == Some(TokenKind::LParen) {
                j = c.close_paren(j)? + 1;
            } else {
                j += 1;
            }
        }
        Some(table)
    }

    /// A DISTRIBUTED clause starting at `i`; returns it and the index after it.
    fn clause(&self, i: usize) -> Option<(Clause, usize)> {
        let c = &self.c;
        if c.kw(i + 1, "randomly") {
            return Some((Clause::Random, i + 2));
        }
        if c.kw(i + 1, "replicated") {
            return Some((Clause::Replicated, i + 2));
        }
        if c.kw(i + 1, "by") && c.kind(i + 2) == Some(TokenKind::LParen) {
            let close = c.close_paren(i + 2)?;
            let mut keys = Vec::new();
            for (s, e) in c.elements(i + 2, close) {
                // Keep the key exactly as written, opclass included.
                let text = &c.text[c.toks[s].start..c.toks[e - 1].end];
                keys.push(String::from_utf8_lossy(text).into_owned());
            }
            return Some((Clause::Hash(keys), close + 1));
        }
        None
    }

    fn table_element(&self, s: usize, e: usize, table: &mut CreateTable) {
        let c = &self.c;
        let mut k = s;
        let mut name = None;
        if c.kw(k, "constraint") {
            name = c.ident(k + 1);
            k += 2;
        }
        if c.kw(k, "primary") || c.kw(k, "unique") || c.kw(k, "exclude") {
            if let Some(spec) = self.unique_spec(k, e, name) {
                table.uniques.push(spec);
            }
            return;
        }
        if k != s
            || ["check", "foreign", "like"].iter().any(|w| c.kw(k, w))
            || !matches!(c.kind(k), Some(TokenKind::Ident | TokenKind::QuotedIdent))
        {
            return;
        }
        let Some(col) = c.ident(k) else { return };
        let type_end = (k + 1..e)
            .find(|&j| COLUMN_STOP.iter().any(|w| c.kw(j, w)))
            .unwrap_or(e);
        let mut generated = false;
        let mut j = type_end;
        while j < e {
            if c.kw(j, "generated") {
                // GENERATED ALWAYS AS ( expr ) STORED, unlike GENERATED ... AS IDENTITY.
                let mut a = j + 1;
                while a < e && !c.kw(a, "as") {
                    a += 1;
                }
                if c.kind(a + 1) == Some(TokenKind::LParen) {
                    generated = true;
                }
            }
            if c.kw(j, "primary") && c.kw(j + 1, "key") {
                table.uniques.push(UniqueSpec {
                    kind: UniqueKind::PrimaryKey,
                    name: None,
                    columns: vec![Some(col.clone())],
                });
            }
            if c.kw(j, "unique") {
                table.uniques.push(UniqueSpec {
                    kind: UniqueKind::Unique,
                    name: None,
                    columns: vec![Some(col.clone())],
                });
            }
            j += 1;
        }
        table.columns.push(Column {
            name: col,
            spelling: c.spelling(k),
            type_ref: Some(c.type_ref(k + 1, type_end)),
            generated,
        });
    }

    /// `PRIMARY KEY (..)`, `UNIQUE [NULLS [NOT] DISTINCT] (..)`, `EXCLUDE [USING m] (..)` at `k`.
    fn unique_spec(&self, k: usize, e: usize, name: Option<String>) -> Option<UniqueSpec> {
        let c = &self.c;
        let (kind, mut j) = if c.kw(k, "primary") && c.kw(k + 1, "key") {
            (UniqueKind::PrimaryKey, k + 2)
        } else if c.kw(k, "unique") {
            (UniqueKind::Unique, k + 1)
        } else {
            (UniqueKind::Exclude, k + 1)
        };
        while j < e && c.kind(j) != Some(TokenKind::LParen) {
            if c.kw(j, "index") && kind != UniqueKind::Exclude {
                // ... USING INDEX idx: the columns live in an index we do not track.
                return Some(UniqueSpec {
                    kind,
                    name,
                    columns: vec![None],
                });
            }
            j += 1;
        }
        let close = c.close_paren(j)?;
        let columns = c
            .elements(j, close)
            .into_iter()
            .map(|(s, en)| {
                if kind == UniqueKind::Exclude {
                    // `col WITH =`: only equality on a plain column can hold a hash key.
                    let with = (s..en).find(|&x| c.kw(x, "with"))?;
                    let op: Vec<u8> = (with + 1..en).flat_map(|x| c.bytes(x).to_vec()).collect();
                    if op != b"=" {
                        return None;
                    }
                    self.index_column(s, with)
                } else {
                    self.index_column(s, en)
                }
            })
            .collect();
        Some(UniqueSpec {
            kind,
            name,
            columns,
        })
    }

    /// An index element: a plain column (with optional COLLATE/opclass/order), or `None` for
    /// an expression.
    fn index_column(&self, s: usize, e: usize) -> Option<String> {
        let c = &self.c;
        if c.kind(s) == Some(TokenKind::LParen) {
            // PostgreSQL takes `(col)` and `(col COLLATE x)` for the column itself, not an
            // expression (ComputeIndexAttrs); found by the sqlparser oracle test.
            let close = c.close_paren(s)?;
            let collated = c.kw(s + 2, "collate")
                && (close == s + 4 || (close == s + 6 && c.punct(s + 4, b'.')));
            return if close == s + 2 || collated {
                c.ident(s + 1)
            } else {
                None
            };
        }
        if c.kind(s + 1) == Some(TokenKind::LParen) {
            return None;
        }
        if s + 1 < e && (c.punct(s + 1, b'.') || c.punct(s + 1, b':')) {
            return None;
        }
        c.ident(s)
    }

    fn create_matview(&self, i: usize) -> Option<CreateMatView> {
        let c = &self.c;
        let i = self.if_not_exists(i);
        let (name, mut j) = c.qualname(i, self.default_schema)?;
        let last = c.last()?;
        let mut columns = Vec::new();
        if c.kind(j) == Some(TokenKind::LParen) {
            let close = c.close_paren(j)?;
            for (s, _) in c.elements(j, close) {
                if let Some(n) = c.ident(s) {
                    columns.push(Column {
                        name: n,
                        spelling: c.spelling(s),
                        type_ref: None,
                        generated: false,
                    });
                }
            }
            j = close + 1;
        }
        // Find AS at depth 0.
        let mut depth = 0usize;
        let mut as_at = None;
        for k in j..=last {
            match c.kind(k) {
                Some(TokenKind::LParen) => depth += 1,
                Some(TokenKind::RParen) => depth = depth.saturating_sub(1),
                _ if depth == 0 && c.kw(k, "as") => {
                    as_at = Some(k);
                    break;
                }
                _ => {}
            }
        }
        let as_at = as_at?;
        // The end of the query: WITH [NO] DATA at depth 0, then maybe DISTRIBUTED.
        let mut query_end = last + 1;
        let mut existing = None;
        let mut splice_at = c.toks[last].end;
        let mut depth = 0usize;
        for k in as_at + 1..=last {
            match c.kind(k) {
                Some(TokenKind::LParen) => depth += 1,
                Some(TokenKind::RParen) => depth = depth.saturating_sub(1),
                _ if depth == 0 && c.kw(k, "with") && c.kw(k + 1, "data") => {
                    query_end = k;
                    splice_at = c.toks[k + 1].end;
                    break;
                }
                _ if depth == 0 && c.kw(k, "with") && c.kw(k + 1, "no") && c.kw(k + 2, "data") => {
                    query_end = k;
                    splice_at = c.toks[k + 2].end;
                    break;
                }
                _ => {}
            }
        }
        let after_data = (as_at + 1..=last).find(|&k| c.toks[k].start >= splice_at);
        if let Some(k) = after_data {
            if c.kw(k, "distributed") {
                if let Some((clause, end)) = self.clause(k) {
                    existing = Some(ExistingClause {
                        start: splice_at,
                        end: c.toks[end - 1].end,
                        clause,
                    });
                }
            }
        }
        let mut source = None;
        if columns.is_empty() {
            let (cols, from) = self.select_list(as_at + 1, query_end);
            columns = cols;
            source = from;
        }
        Some(CreateMatView {
            name,
            columns,
            source,
            existing,
            splice_at,
        })
    }

    /// Output column names of `SELECT ... FROM`, when every item's name is evident; with a
    /// single relation after FROM, also that relation and the column each item passes through.
    #[allow(clippy::type_complexity)]
    fn select_list(
        &self,
        s: usize,
        e: usize,
    ) -> (Vec<Column>, Option<(QualName, Vec<Option<String>>)>) {
        let c = &self.c;
        if !c.kw(s, "select") {
            return (Vec::new(), None);
        }
        let mut k = s + 1;
        if c.kw(k, "distinct") {
            k += 1;
            if c.kw(k, "on") && c.kind(k + 1) == Some(TokenKind::LParen) {
                match c.close_paren(k + 1) {
                    Some(close) => k = close + 1,
                    None => return (Vec::new(), None),
                }
            }
        } else if c.kw(k, "all") {
            k += 1;
        }
        let mut depth = 0usize;
        let mut end = e;
        for j in k..e {
            match c.kind(j) {
                Some(TokenKind::LParen) => depth += 1,
                Some(TokenKind::RParen) => depth = depth.saturating_sub(1),
                _ if depth == 0
                    && [
                        "from", "where", "group", "union", "order", "limit", "window", "having",
                    ]
                    .iter()
                    .any(|w| c.kw(j, w)) =>
                {
                    end = j;
                    break;
                }
                _ => {}
            }
        }
        if k >= end {
            return (Vec::new(), None);
        }
        // Reuse the element splitter on a virtual paren pair.
        let mut items = Vec::new();
        let mut depth = 0usize;
        let mut start = k;
        for j in k..end {
            match c.kind(j) {
                Some(TokenKind::LParen) => depth += 1,
                Some(TokenKind::RParen) => depth = depth.saturating_sub(1),
                Some(TokenKind::Other) if depth == 0 && c.bytes(j) == b"," => {
                    items.push((start, j));
                    start = j + 1;
                }
                _ => {}
            }
        }
        items.push((start, end));
        let mut out = Vec::new();
        let mut sources = Vec::new();
        for (a, b) in items {
            if b == 0 || a >= b {
                return (Vec::new(), None);
            }
            let last = b - 1;
            let named = matches!(
                c.kind(last),
                Some(TokenKind::Ident | TokenKind::QuotedIdent)
            ) && (last == a || c.kw(last - 1, "as") || c.punct(last - 1, b'.'));
            if !named || c.punct(last, b'*') {
                return (Vec::new(), None);
            }
            // `a` or `t.a`: the item passes a source column through unchanged.
            let passes = last == a || (last == a + 2 && c.punct(a + 1, b'.'));
            sources.push(if passes { c.ident(last) } else { None });
            if let Some(n) = c.ident(last) {
                out.push(Column {
                    name: n,
                    spelling: c.spelling(last),
                    type_ref: None,
                    generated: false,
                });
            }
        }
        let from = self.single_from(end, e).map(|t| (t, sources));
        (out, from)
    }

    /// `FROM <relation> [[AS] alias]` followed by the end or a WHERE/GROUP/ORDER/... clause.
    fn single_from(&self, at: usize, e: usize) -> Option<QualName> {
        let c = &self.c;
        if !c.kw(at, "from") {
            return None;
        }
        let (table, mut k) = c.qualname(at + 1, self.default_schema)?;
        if c.kw(k, "as") {
            k += 1;
        }
        if k < e
            && c.kind(k) == Some(TokenKind::Ident)
            && !STOP_AFTER_FROM.iter().any(|w| c.kw(k, w))
        {
            k += 1;
        }
        let ends = k >= e || STOP_AFTER_FROM.iter().any(|w| c.kw(k, w));
        ends.then_some(table)
    }

    fn unique_index(&self, mut i: usize) -> Option<UniqueIndex> {
        let c = &self.c;
        if !c.kw(i, "index") {
            return None;
        }
        let unique_tok = c.toks[i - 1];
        let mut cuts = vec![(unique_tok.start, c.toks[i].start)];
        i += 1;
        if c.kw(i, "concurrently") {
            i += 1;
        }
        i = self.if_not_exists(i);
        let mut name = None;
        if !c.kw(i, "on") {
            name = c.ident(i);
            i += 1;
        }
        if !c.kw(i, "on") {
            return None;
        }
        i += 1;
        if c.kw(i, "only") {
            i += 1;
        }
        let (table, mut j) = c.qualname(i, self.default_schema)?;
        if c.kw(j, "using") {
            j += 2;
        }
        if c.kind(j) != Some(TokenKind::LParen) {
            return None;
        }
        let close = c.close_paren(j)?;
        let columns = c
            .elements(j, close)
            .into_iter()
            .map(|(s, e)| self.index_column(s, e))
            .collect();
        let mut k = close + 1;
        // Up to the next token, or to the end of the last when nothing follows (a script's
        // last statement may lack its `;`).
        let cut_to = |last: usize| c.toks.get(last + 1).map_or(c.toks[last].end, |t| t.start);
        while k < c.toks.len() {
            if c.kw(k, "nulls") && c.kw(k + 1, "not") && c.kw(k + 2, "distinct") {
                cuts.push((c.toks[k].start, cut_to(k + 2)));
            } else if c.kw(k, "nulls") && c.kw(k + 1, "distinct") {
                cuts.push((c.toks[k].start, cut_to(k + 1)));
            }
            k += 1;
        }
        Some(UniqueIndex {
            table,
            spec: UniqueSpec {
                kind: UniqueKind::UniqueIndex,
                name,
                columns,
            },
            demote_cuts: cuts,
        })
    }

    fn alter_table(&self) -> Option<Stmt> {
        let c = &self.c;
        let mut i = 2;
        if c.kw(i, "if") && c.kw(i + 1, "exists") {
            i += 2;
        }
        let only = c.kw(i, "only");
        if only {
            i += 1;
        }
        let table_tok = i;
        let (table, j) = c.qualname(i, self.default_schema)?;
        let table_text =
            String::from_utf8_lossy(&c.text[c.toks[table_tok].start..c.toks[j - 1].end])
                .into_owned();
        if c.kw(j, "attach") && c.kw(j + 1, "partition") {
            let (child, _) = c.qualname(j + 2, self.default_schema)?;
            return Some(Stmt::AttachPartition {
                parent: table,
                child,
            });
        }
        if c.kw(j, "inherit") {
            let (parent, _) = c.qualname(j + 1, self.default_schema)?;
            return Some(Stmt::Inherit {
                parent,
                child: table,
            });
        }
        if !c.kw(j, "add") {
            return None;
        }
        let mut k = j + 1;
        let mut name = None;
        if c.kw(k, "constraint") {
            name = c.ident(k + 1);
            k += 2;
        }
        if !(c.kw(k, "primary") || c.kw(k, "unique") || c.kw(k, "exclude")) {
            return None;
        }
        let last = c.last()?;
        let single_action = !(k..=last).any(|x| c.punct(x, b',') && self.depth_at(x) == 0);
        let spec = self.unique_spec(k, last + 1, name.clone())?;
        let demoted = if spec.kind == UniqueKind::Unique && single_action {
            name.as_ref()
                .and_then(|n| self.demoted_index(k, last, n, &table_text, only))
        } else {
            None
        };
        Some(Stmt::AddConstraint(AddConstraint {
            table,
            spec,
            demoted,
        }))
    }

    fn depth_at(&self, x: usize) -> usize {
        let mut depth = 0usize;
        for j in 0..x {
            match self.c.kind(j) {
                Some(TokenKind::LParen) => depth += 1,
                Some(TokenKind::RParen) => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        depth
    }

    /// `UNIQUE [NULLS ...] (cols) [INCLUDE (..)] [WITH (..)] [USING INDEX TABLESPACE ts] ...` as
    /// `CREATE INDEX name ON [ONLY] table (cols) [INCLUDE (..)] [WITH (..)] [TABLESPACE ts]`.
    fn demoted_index(
        &self,
        k: usize,
        last: usize,
        name: &str,
        table: &str,
        only: bool,
    ) -> Option<String> {
        let c = &self.c;
        let text = |a: usize, b: usize| {
            String::from_utf8_lossy(&c.text[c.toks[a].start..c.toks[b].end]).into_owned()
        };
        let open = (k..=last).find(|&x| c.kind(x) == Some(TokenKind::LParen))?;
        let close = c.close_paren(open)?;
        let mut sql = format!(
            "CREATE INDEX {} ON {}{} {}",
            crate::names::quote_ident(name),
            if only { "ONLY " } else { "" },
            table,
            text(open, close)
        );
        let mut x = close + 1;
        while x <= last {
            if (c.kw(x, "include") || c.kw(x, "with")) && c.kind(x + 1) == Some(TokenKind::LParen) {
                let cl = c.close_paren(x + 1)?;
                sql.push(' ');
                sql.push_str(&text(x, cl));
                x = cl + 1;
            } else if c.kw(x, "using") && c.kw(x + 1, "index") && c.kw(x + 2, "tablespace") {
                sql.push_str(" TABLESPACE ");
                sql.push_str(&c.spelling(x + 3));
                x += 4;
            } else {
                x += 1;
            }
        }
        Some(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Stmt {
        parse(s.as_bytes(), true, "public")
    }

    fn table(s: &str) -> CreateTable {
        match p(s) {
            Stmt::CreateTable(t) => t,
            other => panic!("not a table: {other:?}"),
        }
    }

    #[test]
    fn create_table_columns_and_splice() {
        let s = "CREATE TABLE app.\"Weird;Name\" (\n    id bigint NOT NULL,\n    \"col \"\"x\"\"\" character varying(20) COLLATE pg_catalog.\"C\",\n    total numeric(10,2) GENERATED ALWAYS AS ((id * 2)) STORED,\n    tags text[],\n    doc json,\n    ident integer GENERATED ALWAYS AS IDENTITY\n)\nWITH (fillfactor='70');";
        let t = table(s);
        assert_eq!(t.name, QualName::new("app", "Weird;Name"));
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "col \"x\"", "total", "tags", "doc", "ident"]);
        assert_eq!(t.columns[1].spelling, "\"col \"\"x\"\"\"");
        assert_eq!(
            t.columns[1].type_ref.as_ref().unwrap().name,
            "character varying"
        );
        assert!(t.columns[2].generated);
        assert!(!t.columns[5].generated);
        assert!(t.columns[3].type_ref.as_ref().unwrap().array);
        assert_eq!(&s[..t.splice_at], &s[..s.len() - 1]);
    }

    #[test]
    fn partitions_inherits_existing() {
        let t = table("CREATE TABLE public.m (a int, b text)\nPARTITION BY RANGE (a);");
        assert!(t.partitioned);
        let t = table("CREATE TABLE public.c (x int) INHERITS (public.p, q) DISTRIBUTED BY (x);");
        assert_eq!(
            t.inherits,
            [QualName::new("public", "p"), QualName::new("public", "q")]
        );
        let e = t.existing.unwrap();
        assert_eq!(e.clause, Clause::Hash(vec!["x".into()]));
        let t = table("CREATE TABLE public.m_1 PARTITION OF public.m FOR VALUES FROM (1) TO (2);");
        assert_eq!(t.kind, TableKind::PartitionOf(QualName::new("public", "m")));
        let t = table("CREATE FOREIGN TABLE public.f (a int) SERVER s;");
        assert_eq!(t.kind, TableKind::Foreign);
        let t = table("CREATE TABLE t AS SELECT 1;");
        assert_eq!(t.kind, TableKind::AsQuery);
    }

    #[test]
    fn constraints_and_indexes() {
        match p("ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_code_key UNIQUE (code, \"Id\") INCLUDE (x) WITH (fillfactor='90');") {
            Stmt::AddConstraint(a) => {
                assert_eq!(a.table, QualName::new("public", "orders"));
                assert_eq!(a.spec.kind, UniqueKind::Unique);
                assert_eq!(a.spec.columns, [Some("code".into()), Some("Id".into())]);
                assert_eq!(
                    a.demoted.as_deref(),
                    Some("CREATE INDEX orders_code_key ON ONLY public.orders (code, \"Id\") INCLUDE (x) WITH (fillfactor='90')")
                );
            }
            o => panic!("{o:?}"),
        }
        match p("ALTER TABLE ONLY public.r ADD CONSTRAINT r_excl EXCLUDE USING gist (room WITH =, during WITH &&);") {
            Stmt::AddConstraint(a) => {
                assert_eq!(a.spec.columns, [Some("room".into()), None]);
            }
            o => panic!("{o:?}"),
        }
        let s =
            "CREATE UNIQUE INDEX u ON ONLY public.t USING btree (lower(a), b) NULLS NOT DISTINCT;";
        match p(s) {
            Stmt::UniqueIndex(u) => {
                assert_eq!(u.spec.columns, [None, Some("b".into())]);
                let mut out = s.to_string();
                for &(a, b) in u.demote_cuts.iter().rev() {
                    out.replace_range(a..b, "");
                }
                assert_eq!(
                    out,
                    "CREATE INDEX u ON ONLY public.t USING btree (lower(a), b) ;"
                );
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            p("ALTER TABLE ONLY public.m ATTACH PARTITION public.m_1 FOR VALUES FROM (1) TO (2);"),
            Stmt::AttachPartition {
                parent: QualName::new("public", "m"),
                child: QualName::new("public", "m_1")
            }
        );
    }

    #[test]
    fn matviews() {
        let s = "CREATE MATERIALIZED VIEW public.mv AS\n SELECT t.id,\n    count(*) AS n\n   FROM public.t\n  GROUP BY t.id\n  WITH NO DATA;";
        match p(s) {
            Stmt::CreateMatView(m) => {
                let names: Vec<_> = m.columns.iter().map(|c| c.name.as_str()).collect();
                assert_eq!(names, ["id", "n"]);
                assert_eq!(&s[m.splice_at..], ";");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn types_and_search_path() {
        assert_eq!(
            p("CREATE TYPE public.mood AS ENUM ('a', 'b');"),
            Stmt::CreateType {
                name: QualName::new("public", "mood"),
                def: UserType::Enum,
                attributes: Vec::new(),
            }
        );
        match p("CREATE TYPE public.person_type AS (\n\tid integer,\n\tname text COLLATE \"C\"\n);")
        {
            Stmt::CreateType {
                def: UserType::Composite,
                attributes,
                ..
            } => {
                let cols: Vec<_> = attributes
                    .iter()
                    .map(|a| {
                        (
                            a.name.as_str(),
                            a.type_ref.as_ref().map(|t| t.name.as_str()),
                        )
                    })
                    .collect();
                assert_eq!(cols, vec![("id", Some("integer")), ("name", Some("text"))]);
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            p("SET search_path = app, public;"),
            Stmt::SearchPath("app".into())
        );
        assert_eq!(p("SELECT 1;"), Stmt::Other);
    }
}
