//! Restoring plain SQL dumps (any size, gzip/zstd or not, or stdin) the way psql runs them,
//! statement by statement, with COPY data streamed straight into `COPY ... FROM STDIN`.
//!
//! The statement splitter is cbdistfix's psql-compatible one, so quoting, dollar quotes,
//! `BEGIN ATOMIC` bodies and COPY blocks are cut exactly where psql cuts them. pg_dump's entry
//! headers (`-- Name: x; Type: TABLE; Schema: s; Owner: o`) say what each statement belongs
//! to, which gives pg_restore's filters (`-t -n -T -N`, `--schema-only`, `--data-only`, `-l`)
//! on a plain script. Each COPY block is loaded in its own transaction ([`crate::load`]): a
//! block that fails leaves its table as it was. `--resume` records the last finished statement;
//! the COPY block a kill interrupted is loaded again after a TRUNCATE in its transaction.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use archive::Compression;
use distfix::splitter::{ItemKind, Splitter};
use serde::Serialize;
use sha2::{Digest, Sha256};

use cluster::ConnParams;

use crate::binary::{BinaryRows, Input};
use crate::dump::Distribution;
use crate::load::{is_partitioned, load_in, with_freeze, LoadError};
use crate::state::State;
use crate::RestoreError;

/// pg_restore's selection, applied to a plain script through its entry headers.
#[derive(Debug, Clone, Default)]
pub struct PlainSelection {
    /// `-t`: only these tables (also views, sequences, ...), by name or `schema.name`.
    pub tables: Vec<String>,
    /// `-n`: only objects in these schemas.
    pub schemas: Vec<String>,
    /// `-T`: not these tables.
    pub exclude_tables: Vec<String>,
    /// `-N`: not these schemas.
    pub exclude_schemas: Vec<String>,
    /// `-s`: no table data, sequence values or large objects.
    pub schema_only: bool,
    /// `-a`: only those.
    pub data_only: bool,
}

#[derive(Debug, Clone)]
pub struct PlainRestoreOptions {
    pub conn: ConnParams,
    /// A file, or `-` for stdin.
    pub input: PathBuf,
    pub single_transaction: bool,
    pub on_error_continue: bool,
    pub distribution: Distribution,
    /// `-f FILE` (`-` for stdout): write the statements (filtered, rewritten) instead of
    /// running them.
    pub script: Option<PathBuf>,
    /// `-l`: list the entries that would be restored on stdout, connect to nothing.
    pub list: bool,
    pub selection: PlainSelection,
    pub resume: bool,
    pub state_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub verbose: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct PlainRestoreReport {
    pub tool: &'static str,
    pub input: String,
    pub elapsed_seconds: f64,
    pub statements: u64,
    pub copy_blocks: u64,
    pub total_rows: u64,
    pub tables: Vec<PlainTable>,
    /// Statements left out by `-t -n -T -N -s -a`.
    pub skipped_statements: u64,
    /// Statements a previous run finished (`--resume`).
    pub resumed_statements: u64,
    pub errors: Vec<String>,
    pub distribution_statements_changed: u64,
}

#[derive(Debug, Serialize)]
pub struct PlainTable {
    pub table: String,
    pub line: u64,
    pub rows: u64,
}

/// The pg_dump entry a statement belongs to, from the header comment before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryHeader {
    pub name: String,
    pub kind: String,
    /// `None` for objects outside schemas (pg_dump writes `-`).
    pub schema: Option<String>,
    pub owner: Option<String>,
}

impl EntryHeader {
    /// `-- Name: x; Type: T; Schema: s; Owner: o` (or `-- Data for Name: ...`), as pg_dump
    /// writes them; `None` for any other comment line.
    pub fn parse(line: &str) -> Option<EntryHeader> {
        let rest = line
            .strip_prefix("-- Name: ")
            .or_else(|| line.strip_prefix("-- Data for Name: "))?;
        let (name, rest) = rest.split_once("; Type: ")?;
        let (kind, rest) = rest.split_once("; Schema: ")?;
        let (schema, rest) = match rest.split_once("; Owner: ") {
            Some((s, o)) => (s, Some(o)),
            None => (rest, None),
        };
        let schema = schema.split("; Tablespace: ").next().unwrap_or(schema);
        let owner = rest
            .map(|o| o.split("; Tablespace: ").next().unwrap_or(o).trim_end())
            .filter(|o| *o != "-" && !o.is_empty());
        Some(EntryHeader {
            name: name.to_string(),
            kind: kind.to_string(),
            schema: (schema != "-").then(|| schema.to_string()),
            owner: owner.map(str::to_string),
        })
    }

    /// Data in pg_restore's sense: `--data-only` takes these, `--schema-only` leaves them.
    pub fn is_data(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "TABLE DATA"
                | "SEQUENCE SET"
                | "BLOB"
                | "BLOBS"
                | "BLOB METADATA"
                | "LARGE OBJECT"
                | "LARGE OBJECTS"
                | "MATERIALIZED VIEW DATA"
        ) || (matches!(self.kind.as_str(), "ACL" | "COMMENT" | "SECURITY LABEL")
            && self.name.starts_with("LARGE OBJECT "))
    }

    /// The kinds pg_restore's `-t` selects.
    fn is_table_like(&self) -> bool {
        matches!(
            self.kind.as_str(),
            "TABLE"
                | "TABLE DATA"
                | "VIEW"
                | "FOREIGN TABLE"
                | "MATERIALIZED VIEW"
                | "MATERIALIZED VIEW DATA"
                | "SEQUENCE"
                | "SEQUENCE SET"
        )
    }
}

impl PlainSelection {
    fn is_filtering(&self) -> bool {
        !(self.tables.is_empty()
            && self.schemas.is_empty()
            && self.exclude_tables.is_empty()
            && self.exclude_schemas.is_empty()
            && !self.schema_only
            && !self.data_only)
    }

    fn names(list: &[String], schema: Option<&str>, name: &str) -> bool {
        list.iter()
            .any(|p| p == name || schema.is_some_and(|s| p.split_once('.') == Some((s, name))))
    }

    /// Whether an entry is restored.
    pub fn includes(&self, e: &EntryHeader) -> bool {
        if (self.schema_only && e.is_data()) || (self.data_only && !e.is_data()) {
            return false;
        }
        let schema = e.schema.as_deref();
        if !self.schemas.is_empty() && !schema.is_some_and(|s| self.schemas.iter().any(|x| x == s))
        {
            return false;
        }
        if schema.is_some_and(|s| self.exclude_schemas.iter().any(|x| x == s)) {
            return false;
        }
        let named = e.is_table_like() && Self::names(&self.tables, schema, &e.name);
        if !self.tables.is_empty() && !named {
            return false;
        }
        if e.is_table_like() && Self::names(&self.exclude_tables, schema, &e.name) {
            return false;
        }
        true
    }
}

/// `SET ...` and `SELECT pg_catalog.set_config(...)`: session state that later statements rely
/// on, so they run whatever the filters, and again when resuming.
fn is_session_statement(text: &str) -> bool {
    let t = text.trim_start();
    let upper: String = t.chars().take(40).collect::<String>().to_ascii_uppercase();
    (upper.starts_with("SET ") && !upper.starts_with("SET CONSTRAINTS"))
        || upper.starts_with("SELECT PG_CATALOG.SET_CONFIG(")
}

/// The table of a `COPY name [(cols)] FROM stdin` statement, as written (quotes kept), and
/// whether its data is text format (one row per line, so its rows can be counted).
pub fn copy_in_target(text: &str) -> Option<(String, bool)> {
    let t = text.trim_start();
    if !t.get(..5)?.eq_ignore_ascii_case("COPY ") {
        return None;
    }
    let rest = t[5..].trim_start();
    // The name: identifiers, quoted or not, joined by dots.
    let bytes = rest.as_bytes();
    let mut i = 0;
    let mut in_quotes = false;
    while i < bytes.len() {
        let c = bytes[i];
        if in_quotes {
            if c == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    in_quotes = false;
                }
            }
        } else if c == b'"' {
            in_quotes = true;
        } else if c.is_ascii_whitespace() || c == b'(' {
            break;
        }
        i += 1;
    }
    let name = rest[..i].to_string();
    let tail = rest[i..].to_ascii_uppercase();
    let tail_words: Vec<&str> = tail
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    let from = tail_words.windows(2).any(|w| w == ["FROM", "STDIN"]);
    if name.is_empty() || !from {
        return None;
    }
    let text_format = !tail_words
        .iter()
        .any(|w| *w == "CSV" || *w == "BINARY" || *w == "'CSV'");
    Some((name, text_format))
}

/// Splits a possibly quoted `schema.name` into its parts, unquoted.
fn split_name(name: &str) -> (Option<String>, String) {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = name.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c if quoted => cur.push(c),
            c => cur.push(c.to_ascii_lowercase()),
        }
    }
    parts.push(cur);
    let name = parts.pop().unwrap_or_default();
    (parts.pop(), name)
}

/// psql's argument words of a meta-command: `"double"` (with `""`) and `'single'` (with `''`
/// and backslash escapes) quoting.
fn meta_args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            match c {
                '"' => {
                    while let Some(c) = chars.next() {
                        if c == '"' {
                            if chars.peek() == Some(&'"') {
                                chars.next();
                                word.push('"');
                            } else {
                                break;
                            }
                        } else {
                            word.push(c);
                        }
                    }
                }
                '\'' => {
                    while let Some(c) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some(n) = chars.next() {
                                    word.push(n);
                                }
                            }
                            '\'' if chars.peek() == Some(&'\'') => {
                                chars.next();
                                word.push('\'');
                            }
                            '\'' => break,
                            c => word.push(c),
                        }
                    }
                }
                c => word.push(c),
            }
        }
        out.push(word);
    }
}

/// The database a `\connect` line names (`None`: keep the current one): a plain name, or a
/// conninfo string with `dbname=` as pg_dump writes for unusual names.
pub fn connect_target(line: &str) -> Option<String> {
    let args = meta_args(line);
    let first = args.iter().skip(1).find(|a| !a.starts_with('-'))?;
    if first.contains('=') {
        // Conninfo: keyword = value pairs, values possibly single-quoted.
        let words = meta_args(first);
        for w in words {
            if let Some(v) = w.strip_prefix("dbname=") {
                return Some(v.to_string());
            }
        }
        None
    } else {
        Some(first.clone())
    }
}

/// Opens the (decompressed) input.
fn open(path: &Path) -> Result<Box<dyn Read + Send>, RestoreError> {
    let err = |e: std::io::Error| RestoreError::State(format!("{}: {e}", path.display()));
    let c = Compression::detect(path).map_err(err)?;
    let f = std::fs::File::open(path).map_err(err)?;
    c.decoder(BufReader::with_capacity(256 * 1024, f))
        .map_err(err)
}

/// One COPY block's data as a reader over the splitter (the `\.` line included, which the
/// server takes as the end): rows are counted as lines go by.
struct CopyBlock<'s, R: Read> {
    sp: &'s mut Splitter<R>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    lines: u64,
    statement_line: u64,
    shown: &'s str,
}

impl<'s, R: Read> CopyBlock<'s, R> {
    fn new(sp: &'s mut Splitter<R>, statement_line: u64, shown: &'s str) -> Self {
        CopyBlock {
            sp,
            buf: Vec::new(),
            pos: 0,
            done: false,
            lines: 0,
            statement_line,
            shown,
        }
    }

    /// Reads the rest of the block without sending it anywhere.
    fn drain(&mut self) -> std::io::Result<()> {
        std::io::copy(self, &mut std::io::sink()).map(|_| ())
    }

    /// Nothing of the block was read yet.
    fn untouched(&self) -> bool {
        self.lines == 0 && !self.done && self.buf.is_empty()
    }

    /// Data rows: the lines less the `\.` terminator.
    fn rows(&self) -> u64 {
        self.lines.saturating_sub(1)
    }
}

impl<R: Read> Read for CopyBlock<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let item = self
                .sp
                .next_item()
                .map_err(|e| std::io::Error::other(format!("{}: {e}", self.shown)))?
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "{}: the script ends inside the COPY data of line {}",
                            self.shown, self.statement_line
                        ),
                    )
                })?;
            match item.kind {
                // The line break after `FROM stdin;`.
                ItemKind::Trivia => continue,
                ItemKind::CopyData => {
                    self.buf.clear();
                    self.buf.extend_from_slice(item.bytes);
                    self.pos = 0;
                    self.lines += item.newlines;
                    self.done = item.complete;
                }
                _ => {
                    return Err(std::io::Error::other(format!(
                        "{}, line {}: expected the COPY data of line {}",
                        self.shown, item.line, self.statement_line
                    )))
                }
            }
        }
    }
}

/// Where the script (`-f`) goes: a temporary file renamed on success, or stdout.
enum ScriptOut {
    File(std::io::BufWriter<tempfile::NamedTempFile>, PathBuf),
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

impl ScriptOut {
    fn create(path: &Path) -> Result<ScriptOut, RestoreError> {
        if path.as_os_str() == "-" {
            return Ok(ScriptOut::Stdout(
                std::io::BufWriter::new(std::io::stdout()),
            ));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".cbrestore-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| RestoreError::State(format!("{}: {e}", path.display())))?;
        Ok(ScriptOut::File(
            std::io::BufWriter::with_capacity(256 * 1024, temp),
            path.to_path_buf(),
        ))
    }

    fn write(&mut self, b: &[u8]) -> Result<(), RestoreError> {
        let r = match self {
            ScriptOut::File(w, _) => w.write_all(b),
            ScriptOut::Stdout(w) => w.write_all(b),
        };
        r.map_err(|e| RestoreError::State(format!("writing the script: {e}")))
    }

    fn finish(self) -> Result<(), RestoreError> {
        match self {
            ScriptOut::Stdout(mut w) => w
                .flush()
                .map_err(|e| RestoreError::State(format!("writing the script: {e}"))),
            ScriptOut::File(w, path) => {
                let temp = w
                    .into_inner()
                    .map_err(|e| RestoreError::State(format!("{}: {e}", path.display())))?;
                temp.persist(&path)
                    .map(|_| ())
                    .map_err(|e| RestoreError::State(format!("{}: {e}", path.display())))
            }
        }
    }
}

enum Out {
    Live(Box<postgres::Client>),
    Script(ScriptOut),
    List,
}

/// The input as a path to read (stdin spooled to a temporary file, so it can be decompressed
/// and read twice) and, for stdin, the sha256 of what was read (the `--resume` fingerprint).
fn spool_input(
    input: &Path,
) -> Result<(PathBuf, Option<tempfile::NamedTempFile>, Option<String>), RestoreError> {
    if input.as_os_str() != "-" {
        return Ok((input.to_path_buf(), None, None));
    }
    let err = |e: std::io::Error| RestoreError::State(format!("spooling stdin: {e}"));
    let mut spool = tempfile::NamedTempFile::new().map_err(err)?;
    let mut hash = Sha256::new();
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(e)),
        };
        hash.update(&buf[..n]);
        spool.as_file_mut().write_all(&buf[..n]).map_err(err)?;
    }
    let path = spool.path().to_path_buf();
    Ok((path, Some(spool), Some(hex::encode(hash.finalize()))))
}

pub fn run(
    o: &PlainRestoreOptions,
    abort: Arc<AtomicBool>,
) -> Result<PlainRestoreReport, RestoreError> {
    let started = Instant::now();
    let shown = o.input.display().to_string();
    let (path, _spool, stdin_digest) = spool_input(&o.input)?;
    let plan = match &o.distribution {
        Distribution::Rewrite(rules) => {
            let catalog = distfix::rewrite::collect(open(&path)?)
                .map_err(|e| RestoreError::State(format!("{shown}: {e}")))?;
            Some(
                rules
                    .plan(&catalog, &HashMap::new(), false)
                    .map_err(|e| RestoreError::State(format!("{shown}: {e}")))?,
            )
        }
        _ => None,
    };
    let strip = matches!(o.distribution, Distribution::Strip);

    let mut conn = o.conn.clone();
    let mut out = if o.list {
        println!(";\n; Archive: {shown} (plain SQL script)\n;\n; Selected entries (statement; line TYPE SCHEMA NAME OWNER):\n;");
        Out::List
    } else {
        match &o.script {
            Some(p) => Out::Script(ScriptOut::create(p)?),
            None => Out::Live(Box::new(cluster::connect(&conn)?)),
        }
    };
    let live = matches!(out, Out::Live(_));

    // The state is for live runs; a single transaction has nothing half done to resume.
    let state = if live && !o.single_transaction {
        let mut fp =
            crate::fingerprint::Fingerprint::new(format!("plain {shown} -> {}", conn.target()));
        match &stdin_digest {
            Some(d) => {
                fp.text(d);
            }
            None => {
                fp.file_meta(&path)
                    .map_err(|e| RestoreError::State(format!("{shown}: {e}")))?;
            }
        }
        fp.text(&format!("{:?}", o.selection));
        let state_path = o.state_file.clone().unwrap_or_else(|| {
            let label = stdin_digest.as_ref().map(|d| format!("stdin-{}", &d[..16]));
            crate::state::default_path(&o.input, label.as_deref(), o.state_dir.as_deref())
        });
        Some(State::open(&state_path, &fp.finish(), o.resume)?)
    } else {
        None
    };
    let resume_from = state.as_ref().map(|s| s.through()).unwrap_or(0);

    let mut report = PlainRestoreReport {
        tool: "cbrestore",
        input: shown.clone(),
        ..Default::default()
    };
    if o.single_transaction {
        if let Out::Live(c) = &mut out {
            c.batch_execute("BEGIN")
                .map_err(|e| RestoreError::State(cluster::error::server_message(&e)))?;
        }
    }
    let mut sp = Splitter::new(open(&path)?);
    let mut ordinal = 0u64;
    let mut entry: Option<EntryHeader> = None;
    // Trivia (comments, the entry header) waits for the statement it precedes: it is written
    // to the script only when that statement is.
    let mut pending_trivia: Vec<u8> = Vec::new();
    let mut restrict_key: Option<String> = None;
    // Tables that received a COPY block in this script so far (a resumed block is emptied
    // first only when it is its table's first).
    let mut copied_tables: BTreeSet<String> = BTreeSet::new();
    // Tables whose `CREATE TABLE` (under a pg_dump entry header) ran in this run: their first
    // COPY block is emptied and loaded WITH (FREEZE) in one transaction, as for archives.
    let mut created_here: HashSet<(Option<String>, String)> = HashSet::new();
    let mut first_after_resume = resume_from > 0;
    let mut listed: Option<EntryHeader> = None;
    let fail = |report: &mut PlainRestoreReport, msg: String| -> Result<(), RestoreError> {
        if o.on_error_continue {
            eprintln!("cbrestore: error (continuing): {msg}");
            report.errors.push(msg);
            Ok(())
        } else {
            Err(RestoreError::State(msg))
        }
    };
    loop {
        if abort.load(Ordering::SeqCst) {
            return Err(RestoreError::Interrupted);
        }
        let item = sp
            .next_item()
            .map_err(|e| RestoreError::State(format!("{shown}: {e}")))?;
        let Some(item) = item else { break };
        match item.kind {
            ItemKind::Trivia => {
                let text = String::from_utf8_lossy(item.bytes);
                for l in text.lines() {
                    if let Some(h) = EntryHeader::parse(l) {
                        entry = Some(h);
                    }
                }
                if pending_trivia.len() < 1 << 20 {
                    pending_trivia.extend_from_slice(item.bytes);
                }
            }
            ItemKind::CopyData => {
                return Err(RestoreError::State(format!(
                    "{shown}, line {}: COPY data without a COPY statement",
                    item.line
                )));
            }
            ItemKind::Meta => {
                let text = String::from_utf8_lossy(item.bytes).into_owned();
                let args = meta_args(text.trim());
                let word = args.first().map(String::as_str).unwrap_or("");
                // psql's restricted mode: after `\restrict KEY` only `\unrestrict KEY` is
                // accepted; both are otherwise no-ops.
                match word {
                    "\\restrict" => {
                        let key = args.get(1).cloned().ok_or_else(|| {
                            RestoreError::State(format!(
                                "{shown}, line {}: \\restrict without a key",
                                item.line
                            ))
                        })?;
                        restrict_key = Some(key);
                    }
                    "\\unrestrict" => match (&restrict_key, args.get(1)) {
                        (Some(k), Some(given)) if k == given => restrict_key = None,
                        (Some(_), _) => {
                            return Err(RestoreError::State(format!(
                                "{shown}, line {}: \\unrestrict: wrong key",
                                item.line
                            )))
                        }
                        (None, _) => {}
                    },
                    _ if restrict_key.is_some() => {
                        return Err(RestoreError::State(format!(
                            "{shown}, line {}: backslash commands are restricted; only \\unrestrict is allowed",
                            item.line
                        )))
                    }
                    "\\connect" | "\\c" => {
                        if let Out::Live(_) = out {
                            if let Some(db) = connect_target(&text) {
                                conn = conn.with_dbname(&db);
                                out = Out::Live(Box::new(cluster::connect(&conn)?));
                                // Another database: its tables are not the ones seen so far.
                                created_here.clear();
                                copied_tables.clear();
                                if o.verbose {
                                    eprintln!("cbrestore: connected to database {db}");
                                }
                            }
                        }
                    }
                    _ => {
                        return Err(RestoreError::State(format!(
                            "{shown}, line {}: psql meta-command {word} is not supported",
                            item.line
                        )))
                    }
                }
                if let Out::Script(w) = &mut out {
                    w.write(&std::mem::take(&mut pending_trivia))?;
                    w.write(item.bytes)?;
                }
                pending_trivia.clear();
            }
            ItemKind::Statement => {
                let step = ordinal;
                ordinal += 1;
                let mut bytes = item.bytes.to_vec();
                if let Some(plan) = &plan {
                    if let Some(edit) = plan.edits.get(&step) {
                        if let Some(b) = distfix::rewrite::edit_statement(
                            &bytes,
                            item.standard_strings,
                            "public",
                            edit,
                        ) {
                            bytes = b;
                            report.distribution_statements_changed += 1;
                        }
                    }
                }
                if strip {
                    if let Some(b) =
                        distfix::rewrite::strip_statement(&bytes, item.standard_strings, "public")
                    {
                        if b != bytes {
                            report.distribution_statements_changed += 1;
                        }
                        bytes = b;
                    }
                }
                let line = item.line;
                let text = String::from_utf8(bytes).map_err(|_| {
                    RestoreError::State(format!(
                        "{shown}, line {line}: statement is not valid UTF-8"
                    ))
                })?;
                let copy = copy_in_target(&text);
                let session = copy.is_none() && is_session_statement(&text);
                // What the statement belongs to: its pg_dump entry, or for a COPY without
                // one, its table.
                let owner_entry = match (&entry, &copy) {
                    (Some(e), _) => Some(e.clone()),
                    (None, Some((name, _))) => {
                        let (schema, name) = split_name(name);
                        Some(EntryHeader {
                            name,
                            kind: "TABLE DATA".into(),
                            schema,
                            owner: None,
                        })
                    }
                    (None, None) => None,
                };
                let included = session
                    || match &owner_entry {
                        Some(e) => o.selection.includes(e),
                        None => {
                            !o.selection.is_filtering()
                                || (o.selection.tables.is_empty()
                                    && o.selection.schemas.is_empty()
                                    && !o.selection.data_only)
                        }
                    };
                let trivia = std::mem::take(&mut pending_trivia);
                if let Some(e) = owner_entry.as_ref().filter(|_| included && !session) {
                    if matches!(out, Out::List) && listed.as_ref() != Some(e) {
                        // One line per entry, at its first statement.
                        println!(
                            "{step}; {line} {} {} {} {}",
                            e.kind,
                            e.schema.as_deref().unwrap_or("-"),
                            e.name,
                            e.owner.as_deref().unwrap_or("-")
                        );
                        listed = Some(e.clone());
                    }
                }
                if !included {
                    report.skipped_statements += 1;
                    if copy.is_some() {
                        CopyBlock::new(&mut sp, line, &shown)
                            .drain()
                            .map_err(|e| RestoreError::State(e.to_string()))?;
                    }
                    if let Some(s) = &state {
                        if step >= resume_from {
                            s.mark_through(step)?;
                        }
                    }
                    continue;
                }
                match &mut out {
                    Out::List => {
                        if copy.is_some() {
                            CopyBlock::new(&mut sp, line, &shown)
                                .drain()
                                .map_err(|e| RestoreError::State(e.to_string()))?;
                        }
                    }
                    Out::Script(w) => {
                        report.statements += 1;
                        w.write(&trivia)?;
                        w.write(text.as_bytes())?;
                        if copy.is_some() {
                            report.copy_blocks += 1;
                            w.write(b"\n")?;
                            let mut block = CopyBlock::new(&mut sp, line, &shown);
                            let mut buf = vec![0u8; 256 * 1024];
                            loop {
                                let n = block
                                    .read(&mut buf)
                                    .map_err(|e| RestoreError::State(e.to_string()))?;
                                if n == 0 {
                                    break;
                                }
                                w.write(&buf[..n])?;
                            }
                        }
                    }
                    Out::Live(client) => {
                        let done_before = step < resume_from && !session;
                        if let Some((name, text_format)) = &copy {
                            let first_block = copied_tables.insert(name.clone());
                            if done_before {
                                report.resumed_statements += 1;
                                CopyBlock::new(&mut sp, line, &shown)
                                    .drain()
                                    .map_err(|e| RestoreError::State(e.to_string()))?;
                                continue;
                            }
                            report.statements += 1;
                            report.copy_blocks += 1;
                            // The block a kill interrupted may have committed just before it:
                            // loaded again into an emptied table, in the same transaction.
                            let truncate =
                                (first_after_resume && first_block).then_some(name.as_str());
                            first_after_resume = false;
                            // pg_dump's own data entry for a table this run created (not a
                            // load through a partition root, which names another table).
                            let fresh = first_block
                                && !o.single_transaction
                                && owner_entry.as_ref().is_some_and(|e| {
                                    let key = (e.schema.clone(), e.name.clone());
                                    e.kind == "TABLE DATA"
                                        && split_name(name) == key
                                        && created_here.contains(&key)
                                });
                            let mut block = CopyBlock::new(&mut sp, line, &shown);
                            let result = copy_block(
                                client,
                                o.single_transaction,
                                text.trim(),
                                truncate,
                                fresh.then_some(name.as_str()),
                                &mut block,
                                *text_format,
                                Reread {
                                    path: &path,
                                    line,
                                    shown: &shown,
                                    verbose: o.verbose,
                                },
                            );
                            match result {
                                Ok(rows) => {
                                    report.total_rows += rows;
                                    report.tables.push(PlainTable {
                                        table: name.clone(),
                                        line,
                                        rows,
                                    });
                                    if o.verbose {
                                        eprintln!("cbrestore: loaded {name}: {rows} rows");
                                    }
                                }
                                Err(e) => {
                                    block
                                        .drain()
                                        .map_err(|e| RestoreError::State(e.to_string()))?;
                                    fail(
                                        &mut report,
                                        format!("{shown}, line {line}: loading {name}: {e}; the table was left as it was"),
                                    )?;
                                }
                            }
                        } else {
                            if done_before {
                                report.resumed_statements += 1;
                                continue;
                            }
                            report.statements += 1;
                            let result = client.batch_execute(&text);
                            if result.is_ok() && creates_table(&text) {
                                if let Some(e) = owner_entry.as_ref().filter(|e| e.kind == "TABLE")
                                {
                                    created_here.insert((e.schema.clone(), e.name.clone()));
                                }
                            }
                            if let Err(e) = result {
                                let msg = cluster::error::server_message(&e);
                                if first_after_resume && !session && msg.contains("already exists")
                                {
                                    // Ran just before the interruption; not yet recorded.
                                } else {
                                    fail(
                                        &mut report,
                                        format!(
                                            "{shown}, line {line}: {msg}\nstatement: {}",
                                            text.trim()
                                        ),
                                    )?;
                                }
                            }
                            if !session {
                                first_after_resume = false;
                            }
                        }
                        if let Some(s) = &state {
                            if !session {
                                s.mark_through(step)?;
                            }
                        }
                    }
                }
            }
        }
    }
    match out {
        Out::Live(mut c) => {
            if o.single_transaction {
                c.batch_execute("COMMIT")
                    .map_err(|e| RestoreError::State(cluster::error::server_message(&e)))?;
            }
        }
        Out::Script(mut w) => {
            w.write(&pending_trivia)?;
            w.finish()?;
        }
        Out::List => {}
    }
    if let Some(s) = &state {
        if report.errors.is_empty() {
            s.remove();
        }
    }
    if o.verbose {
        eprintln!(
            "cbrestore: {} statements, {} COPY blocks",
            report.statements, report.copy_blocks
        );
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Where a COPY block can be read again: the script (stdin spooled to a file).
#[derive(Clone, Copy)]
struct Reread<'a> {
    path: &'a Path,
    line: u64,
    shown: &'a str,
    verbose: bool,
}

/// A splitter over the script at `path`, its last item the COPY statement that starts on
/// `line`: what follows is that statement's data.
fn splitter_at(path: &Path, line: u64) -> Result<Splitter<Box<dyn Read + Send>>, String> {
    let mut sp = Splitter::new(open(path).map_err(|e| e.to_string())?);
    loop {
        let found = match sp.next_item().map_err(|e| e.to_string())? {
            None => return Err(format!("no COPY statement on line {line} when read again")),
            Some(item) => item.kind == ItemKind::Statement && item.line == line,
        };
        if found {
            return Ok(sp);
        }
    }
}

/// Whether a statement is pg_dump's `CREATE [UNLOGGED] TABLE` (not the `ALTER TABLE ... OWNER`
/// that shares its entry).
fn creates_table(text: &str) -> bool {
    let head: String = text
        .trim_start()
        .chars()
        .take(24)
        .collect::<String>()
        .to_ascii_uppercase();
    head.starts_with("CREATE TABLE ") || head.starts_with("CREATE UNLOGGED TABLE ")
}

/// One COPY block: in its own transaction (or `--single-transaction`'s), text-format rows
/// counted and compared with what the server loaded. `fresh` (a table this run created):
/// emptied and copied WITH (FREEZE) in that transaction, so its rows land frozen and the index
/// builds that follow do not rewrite its pages; a server or table that refuses FREEZE gets
/// the plain COPY.
#[allow(clippy::too_many_arguments)]
fn copy_block(
    client: &mut postgres::Client,
    single_transaction: bool,
    copy_sql: &str,
    truncate: Option<&str>,
    fresh: Option<&str>,
    block: &mut CopyBlock<'_, Box<dyn Read + Send>>,
    text_format: bool,
    again: Reread<'_>,
) -> Result<u64, LoadError> {
    let check = |loaded: u64, block: &CopyBlock<'_, Box<dyn Read + Send>>| {
        if text_format && block.done && loaded != block.rows() {
            Err(LoadError::Count {
                loaded,
                expected: block.rows(),
            })
        } else {
            Ok(loaded)
        }
    };
    if single_transaction {
        let loaded = load_in(client, copy_sql, truncate, block, None)?;
        return check(loaded.rows, block);
    }
    let server = |e: postgres::Error| LoadError::Server(cluster::error::server_message(&e));
    if let (Some(table), Some(frozen)) = (fresh, fresh.and_then(|_| with_freeze(copy_sql))) {
        // Binary where every column converts (see binary.rs), text otherwise.
        let binary = (text_format && crate::dump::is_text_copy(copy_sql))
            .then(|| crate::binary::copy_columns(client, copy_sql))
            .flatten()
            .zip(crate::binary::binary_statement(copy_sql).and_then(|b| with_freeze(&b)));
        let mut tx = client.transaction().map_err(server)?;
        if is_partitioned(&mut tx, table) == Some(false) {
            let result = match binary {
                Some((types, sql)) => {
                    let mut rows = BinaryRows::new(&mut *block, types, Input::Text);
                    load_in(&mut tx, &sql, Some(table), &mut rows, None)
                }
                None => load_in(&mut tx, &frozen, Some(table), &mut *block, None),
            };
            match result {
                Ok(loaded) => {
                    let rows = check(loaded.rows, block)?;
                    tx.commit().map_err(server)?;
                    return Ok(rows);
                }
                // A value the converter refuses: that attempt rolls back, and the block is
                // read again from the script (stdin was spooled to a file) and sent as text.
                Err(LoadError::Read(x)) if crate::binary::is_unconvertible(&x) => {
                    drop(tx);
                    if again.verbose {
                        eprintln!("cbrestore: {table}: {x}; loading it as text");
                    }
                    block.drain().map_err(LoadError::Read)?;
                    let mut sp = splitter_at(again.path, again.line).map_err(|e| {
                        LoadError::Read(std::io::Error::other(format!("{}: {e}", again.shown)))
                    })?;
                    let mut block = CopyBlock::new(&mut sp, again.line, again.shown);
                    let mut tx = client.transaction().map_err(server)?;
                    let loaded = load_in(&mut tx, &frozen, Some(table), &mut block, None)?;
                    let rows = check(loaded.rows, &block)?;
                    tx.commit().map_err(server)?;
                    return Ok(rows);
                }
                // Refused before a row was read (FREEZE not allowed here): the plain COPY.
                Err(LoadError::Server(_)) if block.untouched() => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mut tx = client.transaction().map_err(server)?;
    let loaded = load_in(&mut tx, copy_sql, truncate.or(fresh), block, None)?;
    let rows = check(loaded.rows, block)?;
    tx.commit().map_err(server)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let h = EntryHeader::parse(
            "-- Data for Name: actor; Type: TABLE DATA; Schema: public; Owner: postgres",
        )
        .unwrap();
        assert_eq!(h.name, "actor");
        assert_eq!(h.kind, "TABLE DATA");
        assert_eq!(h.schema.as_deref(), Some("public"));
        assert_eq!(h.owner.as_deref(), Some("postgres"));
        assert!(h.is_data());
        let h = EntryHeader::parse("-- Name: s; Type: SCHEMA; Schema: -; Owner: -").unwrap();
        assert_eq!(h.schema, None);
        assert_eq!(h.owner, None);
        let h =
            EntryHeader::parse("-- Name: t; Type: TABLE; Schema: x; Owner: o; Tablespace: fast")
                .unwrap();
        assert_eq!(h.owner.as_deref(), Some("o"));
        assert!(EntryHeader::parse("-- just a comment").is_none());
    }

    #[test]
    fn selection() {
        let t = |kind: &str, schema: &str, name: &str| EntryHeader {
            name: name.into(),
            kind: kind.into(),
            schema: Some(schema.into()),
            owner: None,
        };
        let s = PlainSelection {
            tables: vec!["a".into(), "x.b".into()],
            ..Default::default()
        };
        assert!(s.includes(&t("TABLE", "public", "a")));
        assert!(s.includes(&t("TABLE DATA", "x", "b")));
        assert!(!s.includes(&t("TABLE", "public", "b")));
        assert!(!s.includes(&t("INDEX", "public", "a")));
        let s = PlainSelection {
            schemas: vec!["x".into()],
            data_only: true,
            ..Default::default()
        };
        assert!(s.includes(&t("TABLE DATA", "x", "b")));
        assert!(!s.includes(&t("TABLE", "x", "b")));
        assert!(!s.includes(&t("TABLE DATA", "y", "b")));
        let s = PlainSelection {
            exclude_tables: vec!["b".into()],
            schema_only: true,
            ..Default::default()
        };
        assert!(!s.includes(&t("TABLE", "x", "b")));
        assert!(s.includes(&t("TABLE", "x", "c")));
        assert!(!s.includes(&t("SEQUENCE SET", "x", "c")));
    }

    #[test]
    fn copy_targets() {
        assert_eq!(
            copy_in_target("COPY public.\"Odd \"\"T\"\"\" (a, b) FROM stdin;"),
            Some(("public.\"Odd \"\"T\"\"\"".into(), true))
        );
        assert_eq!(
            copy_in_target("copy t from STDIN with (format csv);"),
            Some(("t".into(), false))
        );
        assert_eq!(copy_in_target("COPY t TO stdout;"), None);
        assert_eq!(copy_in_target("COPY t FROM '/x';"), None);
        assert_eq!(
            split_name("public.\"Odd \"\"T\"\"\""),
            (Some("public".into()), "Odd \"T\"".into())
        );
        assert_eq!(split_name("Foo"), (None, "foo".into()));
    }

    #[test]
    fn connect_lines() {
        assert_eq!(connect_target("\\connect shop\n"), Some("shop".into()));
        assert_eq!(
            connect_target("\\connect -reuse-previous=on \"dbname='we''ird db'\"\n"),
            Some("we'ird db".into())
        );
        assert_eq!(connect_target("\\connect \"My DB\""), Some("My DB".into()));
        assert_eq!(connect_target("\\connect -"), None);
        assert!(is_session_statement("SET statement_timeout = 0;"));
        assert!(is_session_statement(
            "SELECT pg_catalog.set_config('search_path', '', false);"
        ));
        assert!(!is_session_statement("SET CONSTRAINTS ALL DEFERRED;"));
        assert!(!is_session_statement(
            "SELECT pg_catalog.setval('s', 1, true);"
        ));
    }
}
