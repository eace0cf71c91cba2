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

use std::collections::{BTreeSet, HashMap};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use archive::Compression;
use distfix::splitter::{ItemKind, Splitter};
use postgres::Client;
use sha2::{Digest, Sha256};

use cluster::{quote, ConnParams};

use crate::binary::{BinaryRows, Input};
use crate::dump::Distribution;
use crate::engine::{run_step, Batch, BatchFailure, Policy, StepError};
use crate::load::{load_in, with_freeze, LoadError, LoadTx, Probe, Seal};
use crate::report::{Report, ScriptFigures, Table};
use crate::script::ScriptOut;
use crate::state::{State, Step};
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
    /// `-I`: only these indexes (with the other kinds named).
    pub indexes: Vec<String>,
    /// `-P`: only these functions, as `name(argument types)`.
    pub functions: Vec<String>,
    /// `-T/--trigger`: only these triggers.
    pub triggers: Vec<String>,
    /// `-s`: no table data, sequence values or large objects.
    pub schema_only: bool,
    /// `-a`: only those.
    pub data_only: bool,
    pub no_comments: bool,
    pub no_publications: bool,
    pub no_subscriptions: bool,
    pub no_security_labels: bool,
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
    /// `--verify-only`: read the whole script (decompression, statements, COPY blocks) and
    /// connect to nothing.
    pub verify_only: bool,
    pub selection: PlainSelection,
    pub resume: bool,
    pub state_file: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub verbose: bool,
    /// How progress is shown on stderr (`--progress`).
    pub progress: pipeline::progress::Display,
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
            && !self.named_kinds()
            && !self.schema_only
            && !self.data_only
            && !self.no_comments
            && !self.no_publications
            && !self.no_subscriptions
            && !self.no_security_labels)
    }

    /// pg_restore's `selTypes`: `-t`, `-I`, `-P` or `-T` given, so only the objects named.
    fn named_kinds(&self) -> bool {
        !(self.tables.is_empty()
            && self.indexes.is_empty()
            && self.functions.is_empty()
            && self.triggers.is_empty())
    }

    /// The entries a `--no-*` flag leaves out.
    fn left_out(&self, kind: &str) -> bool {
        (self.no_comments && kind == "COMMENT")
            || (self.no_publications
                && matches!(
                    kind,
                    "PUBLICATION" | "PUBLICATION TABLE" | "PUBLICATION TABLES IN SCHEMA"
                ))
            || (self.no_subscriptions && matches!(kind, "SUBSCRIPTION" | "SUBSCRIPTION TABLE"))
            || (self.no_security_labels && kind == "SECURITY LABEL")
    }

    /// The list of names `-t -I -P -T` give for an entry of this kind, if any names it.
    fn names_for(&self, e: &EntryHeader) -> Option<&[String]> {
        if e.is_table_like() {
            Some(&self.tables)
        } else if e.kind == "INDEX" {
            Some(&self.indexes)
        } else if matches!(e.kind.as_str(), "FUNCTION" | "AGGREGATE" | "PROCEDURE") {
            Some(&self.functions)
        } else if e.kind == "TRIGGER" {
            Some(&self.triggers)
        } else {
            None
        }
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
        if self.left_out(&e.kind) {
            return false;
        }
        if self.named_kinds() {
            let named = self
                .names_for(e)
                .is_some_and(|list| Self::names(list, schema, &e.name));
            if !named {
                return false;
            }
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
    open_io(path).map_err(|source| RestoreError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn open_io(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    let c = Compression::detect(path)?;
    let f = std::fs::File::open(path)?;
    c.decoder(BufReader::with_capacity(256 * 1024, f))
}

/// Why a COPY block could not be read again from the script (to load it as text after a
/// value the binary converter refused).
#[derive(Debug, thiserror::Error)]
pub enum RereadError {
    #[error(transparent)]
    Open(std::io::Error),
    #[error(transparent)]
    Split(#[from] distfix::splitter::SplitError),
    #[error("no COPY statement on line {0} when read again")]
    Gone(u64),
}

/// One COPY block's data as a reader over the splitter (the `\.` line included, which the
/// server takes as the end): rows are counted as lines go by.
struct CopyBlock<'s, R: Read> {
    sp: &'s mut Splitter<R>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    lines: u64,
    /// Bytes handed out so far.
    given: u64,
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
            given: 0,
            statement_line,
            shown,
        }
    }

    /// Reads ahead until the block's end or until `limit` bytes are held: whether the whole
    /// block is held (a small table's data). Nothing is handed out.
    fn within(&mut self, limit: usize) -> std::io::Result<bool> {
        while !self.done && self.buf.len() - self.pos < limit {
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.fetch()?;
        }
        Ok(self.done)
    }

    /// Appends the next piece of the block's data to `buf`.
    fn fetch(&mut self) -> std::io::Result<()> {
        loop {
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
                    self.buf.extend_from_slice(item.bytes);
                    self.lines += item.newlines;
                    self.done = item.complete;
                    return Ok(());
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

    /// Reads the rest of the block without sending it anywhere.
    fn drain(&mut self) -> std::io::Result<()> {
        std::io::copy(self, &mut std::io::sink()).map(|_| ())
    }

    /// Nothing of the block was handed out yet.
    fn untouched(&self) -> bool {
        self.given == 0
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
                self.given += n as u64;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            self.buf.clear();
            self.pos = 0;
            self.fetch()?;
        }
    }
}

type Sp = Splitter<Box<dyn Read + Send>>;

/// Where statements go.
enum Out {
    Live(Box<Client>),
    Script(ScriptOut),
    /// `-l`: one line per entry on stdout.
    List,
    /// `--verify-only`: read, and nothing else.
    Verify,
}

/// The input as a path to read (stdin spooled to a temporary file, so it can be decompressed
/// and read twice) and, for stdin, the sha256 of what was read (the `--resume` fingerprint).
fn spool_input(
    input: &Path,
) -> Result<(PathBuf, Option<tempfile::NamedTempFile>, Option<String>), RestoreError> {
    if input.as_os_str() != "-" {
        return Ok((input.to_path_buf(), None, None));
    }
    let err = |source: std::io::Error| RestoreError::Io {
        path: PathBuf::from("stdin"),
        source,
    };
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

/// What a statement does to the transaction state, which decides how it is run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `SET ...`: session state, run again on every run.
    Session,
    /// `COPY ... FROM stdin` with its table as written and whether its data is text.
    Copy(String, bool),
    /// `BEGIN` / `START TRANSACTION`: the script's own transaction block starts.
    Begin,
    /// `COMMIT` / `END`: the block is one step, committed here.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// Statements PostgreSQL refuses inside a transaction block (`CREATE DATABASE`,
    /// `VACUUM`, `... CONCURRENTLY`): run as they are, recorded after.
    Bare,
    /// Anything else: a step of its own transaction.
    Plain,
}

fn classify(text: &str) -> Kind {
    if let Some((name, text_format)) = copy_in_target(text) {
        return Kind::Copy(name, text_format);
    }
    if is_session_statement(text) {
        return Kind::Session;
    }
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
        .take(6)
        .map(str::to_ascii_uppercase)
        .collect();
    let w = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    match (w(0), w(1)) {
        ("BEGIN", "" | "TRANSACTION" | "WORK" | "ISOLATION" | "READ") => Kind::Begin,
        ("START", "TRANSACTION") => Kind::Begin,
        ("COMMIT" | "END", p) if p != "PREPARED" => Kind::Commit,
        ("ROLLBACK" | "ABORT", "" | "TRANSACTION" | "WORK") => Kind::Rollback,
        ("CREATE" | "DROP", "DATABASE" | "TABLESPACE" | "SUBSCRIPTION") => Kind::Bare,
        ("ALTER", "SYSTEM") | ("VACUUM", _) | ("DISCARD", "ALL") => Kind::Bare,
        ("COMMIT" | "ROLLBACK", "PREPARED") => Kind::Bare,
        _ if words.iter().any(|x| x == "CONCURRENTLY") => Kind::Bare,
        _ => Kind::Plain,
    }
}

/// One statement as the splitter gave it, owned (its COPY data follows in the splitter).
struct Stmt {
    step: u64,
    line: u64,
    text: String,
    kind: Kind,
    /// The pg_dump entry it belongs to: its header, or for a COPY without one its table.
    entry: Option<EntryHeader>,
    trivia: Vec<u8>,
    /// `--strip-distribution`: a partitioned parent's COPY whose rows its partitions' COPYs
    /// hold (the Greenplum-7 fork's pg_dump writes both); left out with its data.
    doubled: bool,
}

/// The input read once more: the path (stdin spooled), how it is shown, its distribution
/// plan.
struct Source {
    path: PathBuf,
    shown: String,
    plan: Option<distfix::policy::Plan>,
    strip: bool,
    digest: Option<String>,
    _spool: Option<tempfile::NamedTempFile>,
}

impl Source {
    fn open(o: &PlainRestoreOptions) -> Result<Source, RestoreError> {
        let shown = o.input.display().to_string();
        let (path, spool, digest) = spool_input(&o.input)?;
        let plan = match &o.distribution {
            Distribution::Rewrite(rules) => {
                let catalog = distfix::rewrite::collect(open(&path)?).map_err(|source| {
                    RestoreError::Rewrite {
                        input: shown.clone(),
                        source,
                    }
                })?;
                let plan = rules
                    .plan(&catalog, &HashMap::new(), false)
                    .map_err(|source| RestoreError::Rules {
                        input: shown.clone(),
                        source,
                    })?;
                Some(plan)
            }
            _ => None,
        };
        Ok(Source {
            path,
            shown,
            plan,
            strip: matches!(o.distribution, Distribution::Strip),
            digest,
            _spool: spool,
        })
    }
}

/// The state of a live run: in the state directory, keyed by the script, the target and the
/// selection; fingerprinted by the script's size and time (stdin: its digest).
fn open_state(o: &PlainRestoreOptions, src: &Source) -> Result<State, RestoreError> {
    let mut fp =
        crate::fingerprint::Fingerprint::new(format!("plain {} -> {}", src.shown, o.conn.target()));
    let identity = match &src.digest {
        Some(d) => format!("stdin {d}"),
        None => std::fs::canonicalize(&src.path)
            .unwrap_or_else(|_| src.path.clone())
            .display()
            .to_string(),
    };
    let identity = format!("plain {identity} -> {} {:?}", o.conn.target(), o.selection);
    fp.text(&identity);
    if src.digest.is_none() {
        fp.file_meta(&src.path).map_err(|source| RestoreError::Io {
            path: src.path.clone(),
            source,
        })?;
    }
    let name = o
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stdin".into());
    let label = format!("{name}-{}", o.conn.dbname());
    let place = crate::state::place(
        o.state_file.as_deref(),
        o.state_dir.as_deref(),
        &label,
        &identity,
        fp.finish(),
        o.resume,
    )?;
    Ok(State::open(&place)?)
}

/// Runs (or writes, lists, verifies) a plain script, filling `report` as it goes: when it
/// fails, `report` holds what was done (the COPY blocks committed, errors skipped) for
/// `--json`.
pub fn run(
    o: &PlainRestoreOptions,
    abort: Arc<AtomicBool>,
    report: &mut Report,
) -> Result<(), RestoreError> {
    let started = Instant::now();
    *report = Report::new(
        Some(crate::report::Kind::Script),
        o.input.display().to_string(),
    );
    report.target = o.conn.target();
    report.script = Some(ScriptFigures::default());
    let src = Source::open(o)?;
    report.input = src.shown.clone();
    let live = !(o.list || o.verify_only || o.script.is_some());
    // The state is for live runs; a single transaction has nothing half done to resume.
    let state = if live && !o.single_transaction {
        open_state(o, &src)?
    } else {
        State::in_memory()
    };
    if state.resuming && state.finished() {
        report.already_finished = true;
        return Ok(());
    }
    let out = open_out(o, &src, &state, report)?;
    let mut run = PlainRun::new(o, &src, out, state, std::mem::take(report));
    run.policy = Policy::new(o.on_error_continue).stopping_on(Arc::clone(&abort));
    let result = run.all(&abort).and_then(|()| run.finish());
    let result = match result {
        Err(e) => Err(e.stopped(&run.state)),
        Ok(()) => run.state.finish().map_err(RestoreError::from),
    };
    *report = run.into_report(result.is_ok());
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    result
}

fn open_out(
    o: &PlainRestoreOptions,
    src: &Source,
    state: &State,
    report: &mut Report,
) -> Result<Out, RestoreError> {
    if o.verify_only {
        return Ok(Out::Verify);
    }
    if o.list {
        stdout_line(&format!(
            ";\n; Archive: {} (plain SQL script)\n;\n; Selected entries (statement; line TYPE SCHEMA NAME OWNER):\n;",
            src.shown
        ))?;
        return Ok(Out::List);
    }
    if let Some(p) = &o.script {
        report.target = format!("script {}", p.display());
        return Ok(Out::Script(ScriptOut::create(p)?));
    }
    let mut client = crate::cancel::connect(&o.conn)?;
    state.reconcile(&mut client)?;
    if o.single_transaction {
        client
            .batch_execute("BEGIN")
            .map_err(|source| RestoreError::Session {
                what: "BEGIN (--single-transaction)",
                source,
            })?;
    }
    Ok(Out::Live(Box::new(client)))
}

/// One run over a script.
struct PlainRun<'a> {
    o: &'a PlainRestoreOptions,
    src: &'a Source,
    out: Out,
    conn: ConnParams,
    state: State,
    policy: Policy,
    report: Report,
    /// The script's own figures (the report's `script`).
    figures: ScriptFigures,
    /// Statements numbered below this one were finished by an earlier run.
    resume_from: u64,
    ordinal: u64,
    entry: Option<EntryHeader>,
    /// Trivia (comments, the entry header) waits for the statement it precedes: it is written
    /// to the script only when that statement is.
    pending_trivia: Vec<u8>,
    restrict_key: Option<String>,
    /// Tables that received a COPY block so far (only a table's first block is emptied).
    copied_tables: BTreeSet<String>,
    listed: Option<EntryHeader>,
    /// Inside the script's own transaction block: the step of its `BEGIN`, and whether a
    /// statement of it failed (the rest is skipped up to its end).
    block: Option<(u64, bool)>,
    /// The first statement after a resume: "already exists" there is the step the killed
    /// run finished without recording (only for statements run outside a transaction).
    first_after_resume: bool,
    /// `--strip-distribution`: MPP statements made PostgreSQL's.
    translator: distfix::translate::Translator,
    doubled_parents: distfix::translate::DoubledParents,
    /// Statements of their own transaction (and `SET`s) collected to be sent together, and
    /// the statements themselves, to run one by one if the batch fails (see [`Batch`]).
    batch: Batch,
    batched: Vec<Stmt>,
}

impl<'a> PlainRun<'a> {
    fn new(
        o: &'a PlainRestoreOptions,
        src: &'a Source,
        out: Out,
        state: State,
        report: Report,
    ) -> PlainRun<'a> {
        let resume_from = state.through();
        PlainRun {
            o,
            src,
            out,
            conn: o.conn.clone(),
            policy: Policy::new(o.on_error_continue),
            state,
            report,
            figures: ScriptFigures::default(),
            resume_from,
            ordinal: 0,
            entry: None,
            pending_trivia: Vec::new(),
            restrict_key: None,
            copied_tables: BTreeSet::new(),
            listed: None,
            block: None,
            first_after_resume: resume_from > 0,
            translator: distfix::translate::Translator::new(),
            doubled_parents: Default::default(),
            batch: Batch::default(),
            batched: Vec::new(),
        }
    }

    /// The report of this run: errors skipped, the script's figures, and the tables loaded
    /// (in name order), unless a failed `--single-transaction` took them back with it.
    fn into_report(self, ok: bool) -> Report {
        let mut report = self.report;
        report.errors = self.policy.errors();
        report.script = Some(self.figures);
        if !ok && self.o.single_transaction {
            report.tables.clear();
            report.total_rows = 0;
        }
        report.tables.sort_by(|a, b| a.table.cmp(&b.table));
        report.total_bytes = report.tables.iter().map(|t| t.bytes).sum();
        report
    }

    fn input_error(&self, line: u64, what: impl std::fmt::Display) -> RestoreError {
        RestoreError::Input(format!("{}, line {line}: {what}", self.src.shown))
    }

    /// Every item of the script, in order. A bad input stops the restore after the statements
    /// before it (the batch collected so far is sent); an interruption leaves that batch
    /// unsent, as if the signal had come before it.
    fn all(&mut self, abort: &AtomicBool) -> Result<(), RestoreError> {
        let progress = crate::progress::start(0, 0, self.o.progress);
        let mut sp = Splitter::new(crate::progress::script(&progress, &self.src.path)?);
        match self.items(abort, &mut sp) {
            Err(e) if !matches!(e, RestoreError::Interrupted) => {
                let _ = self.flush();
                Err(e)
            }
            other => other,
        }
    }

    fn items(&mut self, abort: &AtomicBool, sp: &mut Sp) -> Result<(), RestoreError> {
        loop {
            if abort.load(Ordering::SeqCst) {
                return Err(RestoreError::Interrupted);
            }
            let item = sp.next_item().map_err(|source| RestoreError::Split {
                input: self.src.shown.clone(),
                source,
            })?;
            let Some(item) = item else {
                return self.flush();
            };
            match item.kind {
                ItemKind::Trivia => self.trivia(item.bytes),
                ItemKind::CopyData => {
                    return Err(self.input_error(item.line, "COPY data without a COPY statement"))
                }
                ItemKind::Meta => {
                    let (line, bytes) = (item.line, item.bytes.to_vec());
                    self.meta(line, &bytes)?;
                }
                ItemKind::Statement => {
                    let stmt = self.statement(item.line, item.bytes, item.standard_strings)?;
                    self.dispatch(sp, stmt)?;
                }
            }
        }
    }

    fn trivia(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        for l in text.lines() {
            if let Some(h) = EntryHeader::parse(l) {
                self.entry = Some(h);
            }
        }
        if self.pending_trivia.len() < 1 << 20 {
            self.pending_trivia.extend_from_slice(bytes);
        }
    }

    /// psql's meta-commands that pg_dump writes: `\restrict KEY` (after which only
    /// `\unrestrict KEY` is accepted), `\unrestrict`, `\connect`.
    fn meta(&mut self, line: u64, bytes: &[u8]) -> Result<(), RestoreError> {
        self.flush()?;
        let text = String::from_utf8_lossy(bytes).into_owned();
        let args = meta_args(text.trim());
        let word = args.first().map(String::as_str).unwrap_or("");
        match word {
            "\\restrict" => {
                let key = args.get(1).cloned();
                self.restrict_key =
                    Some(key.ok_or_else(|| self.input_error(line, "\\restrict without a key"))?);
            }
            "\\unrestrict" => match (&self.restrict_key, args.get(1)) {
                (Some(k), Some(given)) if k == given => self.restrict_key = None,
                (Some(_), _) => return Err(self.input_error(line, "\\unrestrict: wrong key")),
                (None, _) => {}
            },
            _ if self.restrict_key.is_some() => {
                return Err(self.input_error(
                    line,
                    "backslash commands are restricted; only \\unrestrict is allowed",
                ))
            }
            "\\connect" | "\\c" => self.reconnect(&text)?,
            _ => {
                return Err(
                    self.input_error(line, format!("psql meta-command {word} is not supported"))
                )
            }
        }
        if let Out::Script(w) = &mut self.out {
            w.write(&std::mem::take(&mut self.pending_trivia))?;
            w.write(bytes)?;
        }
        self.pending_trivia.clear();
        Ok(())
    }

    fn reconnect(&mut self, text: &str) -> Result<(), RestoreError> {
        let (Out::Live(_), Some(db)) = (&self.out, connect_target(text)) else {
            return Ok(());
        };
        self.conn = self.conn.with_dbname(&db);
        self.out = Out::Live(Box::new(crate::cancel::connect(&self.conn)?));
        // Another database: its tables are not the ones seen so far.
        self.state.forget_created();
        self.copied_tables.clear();
        if self.o.verbose {
            logline::say!("cbrestore: connected to database {db}");
        }
        Ok(())
    }

    /// A statement, rewritten for `--distribute`/`--strip-distribution`, classified.
    fn statement(
        &mut self,
        line: u64,
        bytes: &[u8],
        standard_strings: bool,
    ) -> Result<Stmt, RestoreError> {
        let step = self.ordinal;
        self.ordinal += 1;
        let mut bytes = bytes.to_vec();
        let edit = self.src.plan.as_ref().and_then(|p| p.edits.get(&step));
        if let Some(edit) = edit {
            if let Some(b) =
                distfix::rewrite::edit_statement(&bytes, standard_strings, "public", edit)
            {
                bytes = b;
                self.report.distribution_statements_changed += 1;
            }
        }
        let mut doubled = false;
        if self.src.strip {
            if self
                .doubled_parents
                .doubled_copy(&bytes, standard_strings)
                .is_some()
            {
                self.report.distribution_statements_changed += 1;
                doubled = true;
            } else if copy_in_target(&String::from_utf8_lossy(&bytes)).is_none() {
                bytes = self.for_postgres(line, bytes)?;
            }
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| self.input_error(line, "statement is not valid UTF-8"))?;
        let kind = classify(&text);
        let entry = match (&self.entry, &kind) {
            (Some(e), _) => Some(e.clone()),
            (None, Kind::Copy(name, _)) => {
                let (schema, name) = split_name(name);
                Some(EntryHeader {
                    name,
                    kind: "TABLE DATA".into(),
                    schema,
                    owner: None,
                })
            }
            _ => None,
        };
        let trivia = std::mem::take(&mut self.pending_trivia);
        Ok(Stmt {
            step,
            line,
            text,
            kind,
            entry,
            trivia,
            doubled,
        })
    }

    /// `--strip-distribution`: distfix's translation of a Cloudberry/Greenplum statement for
    /// PostgreSQL (DISTRIBUTED, append-optimized options, column encodings, gp_* privileges);
    /// a statement with nothing left becomes an empty one.
    fn for_postgres(&mut self, line: u64, bytes: Vec<u8>) -> Result<Vec<u8>, RestoreError> {
        let (kind, name) = match &self.entry {
            Some(e) => (
                e.kind.clone(),
                format!("{}.{}", e.schema.as_deref().unwrap_or(""), e.name),
            ),
            None => (String::new(), String::new()),
        };
        let object = distfix::translate::Object {
            section: "pre-data",
            objecttype: &kind,
            name: &name,
        };
        let out = self.translator.translate(&bytes, &object).map_err(|u| {
            self.input_error(line, format!("{} {}: {}", u.objecttype, u.name, u.reason))
        })?;
        let out = out.unwrap_or_else(|| b";".to_vec());
        if out != bytes {
            self.report.distribution_statements_changed += 1;
        }
        Ok(out)
    }

    /// Whether the selection keeps `s` (session statements always run).
    fn included(&self, s: &Stmt) -> bool {
        let sel = &self.o.selection;
        s.kind == Kind::Session
            || match &s.entry {
                Some(e) => sel.includes(e),
                None => {
                    !sel.is_filtering()
                        || (!sel.named_kinds() && sel.schemas.is_empty() && !sel.data_only)
                }
            }
    }

    fn dispatch(&mut self, sp: &mut Sp, s: Stmt) -> Result<(), RestoreError> {
        let included = !s.doubled && self.included(&s);
        if included && s.kind != Kind::Session {
            self.list_line(&s)?;
        }
        let is_copy = matches!(s.kind, Kind::Copy(..));
        if !included {
            self.figures.skipped_statements += 1;
            if is_copy {
                self.drain(sp, &s)?;
            }
            return Ok(());
        }
        match &mut self.out {
            Out::List | Out::Verify => {
                self.report.statements += 1;
                if is_copy {
                    self.figures.copy_blocks += 1;
                    let rows = self.drain(sp, &s)?;
                    self.report.total_rows += rows;
                }
                Ok(())
            }
            Out::Script(w) => {
                self.report.statements += 1;
                w.write(&s.trivia)?;
                w.write(s.text.as_bytes())?;
                if is_copy {
                    self.figures.copy_blocks += 1;
                    w.write(b"\n")?;
                    let mut block = CopyBlock::new(sp, s.line, &self.src.shown);
                    w.copy_from(&mut block)?;
                }
                Ok(())
            }
            Out::Live(_) => self.live(sp, s),
        }
    }

    /// `-l`: one line per entry, at its first statement.
    fn list_line(&mut self, s: &Stmt) -> Result<(), RestoreError> {
        let (Out::List, Some(e)) = (&self.out, &s.entry) else {
            return Ok(());
        };
        if self.listed.as_ref() == Some(e) {
            return Ok(());
        }
        stdout_line(&format!(
            "{}; {} {} {} {} {}",
            s.step,
            s.line,
            e.kind,
            e.schema.as_deref().unwrap_or("-"),
            e.name,
            e.owner.as_deref().unwrap_or("-")
        ))?;
        self.listed = Some(e.clone());
        Ok(())
    }

    /// Reads a COPY block's data without sending it; its rows.
    fn drain(&self, sp: &mut Sp, s: &Stmt) -> Result<u64, RestoreError> {
        let mut block = CopyBlock::new(sp, s.line, &self.src.shown);
        block
            .drain()
            .map_err(|e| RestoreError::Input(e.to_string()))?;
        Ok(block.rows())
    }

    fn client(&mut self) -> &mut Client {
        match &mut self.out {
            Out::Live(c) => c,
            _ => unreachable!("live statements run on a connection"),
        }
    }
}

impl PlainRun<'_> {
    /// A statement on the live connection, unless an earlier run finished it.
    fn live(&mut self, sp: &mut Sp, s: Stmt) -> Result<(), RestoreError> {
        if s.step < self.resume_from && s.kind != Kind::Session {
            self.figures.resumed_statements += 1;
            if let Kind::Copy(name, _) = &s.kind {
                self.copied_tables.insert(name.clone());
                self.drain(sp, &s)?;
            }
            return Ok(());
        }
        self.report.statements += 1;
        if let Some((begin, failed)) = self.block {
            return self.in_block(sp, s, begin, failed);
        }
        if !self.o.single_transaction && matches!(s.kind, Kind::Session | Kind::Plain) {
            return self.collect(s);
        }
        self.flush()?;
        match s.kind.clone() {
            Kind::Session => self.session(&s),
            Kind::Begin => {
                let r = self.client().batch_execute(&s.text);
                match r {
                    Ok(()) => self.block = Some((s.step, false)),
                    Err(e) => self.fail_statement(&s, &cluster::error::server_message(&e))?,
                }
                Ok(())
            }
            Kind::Copy(name, text_format) => self.copy(sp, &s, &name, text_format),
            Kind::Bare | Kind::Commit | Kind::Rollback => self.bare(&s),
            Kind::Plain => self.plain(&s),
        }
    }

    /// A statement of its own transaction, or a `SET`, added to the batch; the batch is sent
    /// when full.
    fn collect(&mut self, s: Stmt) -> Result<(), RestoreError> {
        self.first_after_resume = false;
        match s.kind {
            Kind::Session => self.batch.push_session(&s.text),
            _ => self.batch.push(self.step_of(&s), &s.text),
        }
        self.batched.push(s);
        if self.batch.full() {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the statements collected so far in one transaction; if one fails, the batch is
    /// rolled back and they run one by one, so the failing statement is reported (or skipped
    /// with --on-error-continue) alone and those before it commit, as before.
    fn flush(&mut self) -> Result<(), RestoreError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let statements = std::mem::take(&mut self.batched);
        let Out::Live(client) = &mut self.out else {
            unreachable!("live statements run on a connection")
        };
        match self.batch.run(client, &self.state) {
            Ok(()) => Ok(()),
            Err(BatchFailure::State(e)) => Err(e.into()),
            Err(BatchFailure::Lost { steps, source }) => {
                let line = |s: Option<&Stmt>| {
                    format!("{}, line {}", self.src.shown, s.map_or(0, |s| s.line))
                };
                let (first, last) = (line(statements.first()), line(statements.last()));
                Err(crate::engine::lost_in_batch(steps, source, first, last))
            }
            Err(BatchFailure::Rerun(_)) => statements.iter().try_for_each(|s| match s.kind {
                Kind::Session => self.session(s),
                _ => self.plain(s),
            }),
        }
    }

    /// A `SET`: session state, run on its own.
    fn session(&mut self, s: &Stmt) -> Result<(), RestoreError> {
        let r = self.client().batch_execute(&s.text);
        if let Err(e) = r {
            self.fail_statement(s, &cluster::error::server_message(&e))?;
        }
        Ok(())
    }

    /// The step a statement of its own transaction is recorded as: its number, and the table
    /// it creates, if it is pg_dump's `CREATE TABLE`.
    fn step_of(&self, s: &Stmt) -> Step {
        let creates = s
            .entry
            .as_ref()
            .filter(|e| e.kind == "TABLE" && creates_table(&s.text))
            .and_then(|e| Some(quote::qualified(e.schema.as_deref()?, &e.name)));
        Step::sequential(s.step).creating(creates)
    }

    fn fail_statement(&mut self, s: &Stmt, message: &str) -> Result<(), RestoreError> {
        self.policy.fail(RestoreError::Statement {
            file: self.src.shown.clone(),
            line: s.line,
            message: message.to_string(),
            statement: s.text.trim().to_string(),
        })
    }

    /// A statement of its own transaction, recorded with it.
    fn plain(&mut self, s: &Stmt) -> Result<(), RestoreError> {
        let step = self.step_of(s);
        let Out::Live(client) = &mut self.out else {
            unreachable!("live statements run on a connection")
        };
        let r = if self.o.single_transaction {
            self.state.note(step.clone());
            client
                .batch_execute(&s.text)
                .map_err(|e| crate::engine::StepError::Server(cluster::error::server_message(&e)))
        } else {
            run_step(client, &self.state, step.clone(), &s.text)
        };
        self.first_after_resume = false;
        match r {
            Ok(()) => Ok(()),
            // Ran by the killed run on a server that cannot tell (older than 10).
            Err(e) if e.already_exists() && self.state.take_uncertain() => {
                Ok(self.state.record(step)?)
            }
            Err(e) => {
                self.fail_statement(s, &e.to_string())?;
                Ok(self.state.record(Step::sequential(s.step))?)
            }
        }
    }

    /// A statement run outside any transaction block, recorded after it ran.
    fn bare(&mut self, s: &Stmt) -> Result<(), RestoreError> {
        let first = std::mem::take(&mut self.first_after_resume);
        let r = self.client().batch_execute(&s.text);
        if let Err(e) = r {
            let msg = cluster::error::server_message(&e);
            // Ran just before the interruption, which left no record of it.
            if !(first && msg.contains("already exists")) {
                self.fail_statement(s, &msg)?;
            }
        }
        Ok(self.state.record(Step::sequential(s.step))?)
    }

    /// Inside the script's own `BEGIN ... COMMIT`: statements run as they come; the block is
    /// one step, recorded at its COMMIT (a kill before it leaves nothing: the resume starts
    /// again at its BEGIN, which is what a large-object block of pg_dump needs, its
    /// descriptors living only in that transaction).
    fn in_block(
        &mut self,
        sp: &mut Sp,
        s: Stmt,
        begin: u64,
        failed: bool,
    ) -> Result<(), RestoreError> {
        let ends = matches!(s.kind, Kind::Commit | Kind::Rollback);
        if failed {
            if matches!(s.kind, Kind::Copy(..)) {
                self.drain(sp, &s)?;
            }
            if ends {
                self.block = None;
                let _ = self.client().batch_execute("ROLLBACK");
                self.state.record(Step::sequential(s.step))?;
            }
            return Ok(());
        }
        let r = match &s.kind {
            Kind::Commit => self.commit_block(s.step),
            Kind::Copy(name, text_format) => self
                .copy_in_block(sp, &s, name, *text_format)
                .map_err(|e| StepError::Load(Box::new(e))),
            _ => {
                let r = self.client().batch_execute(&s.text);
                r.map_err(|e| StepError::Server(cluster::error::server_message(&e)))
            }
        };
        if ends {
            self.block = None;
            if s.kind == Kind::Rollback {
                self.state.record(Step::sequential(s.step))?;
            }
        }
        if let Err(msg) = r {
            let _ = self.client().batch_execute("ROLLBACK");
            self.block = (!ends).then_some((begin, true));
            self.fail_statement(
                &s,
                &format!(
                    "{msg}; the transaction block starting with statement {begin} was rolled back"
                ),
            )?;
            if ends {
                self.state.record(Step::sequential(s.step))?;
            }
        }
        Ok(())
    }

    fn commit_block(&mut self, step: u64) -> Result<(), StepError> {
        let Out::Live(client) = &mut self.out else {
            unreachable!("live statements run on a connection")
        };
        if self.o.single_transaction {
            // psql -1 runs the script's COMMIT too; so do we.
            return client
                .batch_execute("COMMIT")
                .map_err(|e| StepError::Server(cluster::error::server_message(&e)));
        }
        Ok(self.state.commit_open(client, Step::sequential(step))?)
    }

    /// A COPY block inside the script's transaction block: no transaction of its own.
    fn copy_in_block(
        &mut self,
        sp: &mut Sp,
        s: &Stmt,
        name: &str,
        text_format: bool,
    ) -> Result<(), LoadError> {
        self.copied_tables.insert(name.to_string());
        self.figures.copy_blocks += 1;
        let started = Instant::now();
        let shown = self.src.shown.clone();
        let Out::Live(client) = &mut self.out else {
            unreachable!("live statements run on a connection")
        };
        let mut block = CopyBlock::new(sp, s.line, &shown);
        let r = load_in(&mut **client, s.text.trim(), None, &mut block, None);
        let loaded = match r {
            Ok(l) => check_count(l, &block, text_format)?,
            Err(e) => {
                let _ = block.drain();
                return Err(e);
            }
        };
        self.loaded(name, s.line, loaded, started);
        Ok(())
    }

    fn loaded(&mut self, name: &str, line: u64, l: crate::load::Loaded, started: Instant) {
        self.report.total_rows += l.rows;
        if self.o.verbose {
            logline::say!("cbrestore: loaded {name}: {} rows", l.rows);
        }
        self.report.tables.push(Table {
            table: name.to_string(),
            rows: l.rows,
            bytes: l.bytes,
            seconds: started.elapsed().as_secs_f64(),
            files: None,
            source: Some(format!("line {line}")),
            ..Default::default()
        });
    }

    /// A COPY block in its own transaction, recorded with it. The first block of a table this
    /// restore created (pg_dump's own data entry, not a load through a partition root) is
    /// emptied and frozen in that transaction; a table it did not create is never emptied.
    fn copy(
        &mut self,
        sp: &mut Sp,
        s: &Stmt,
        name: &str,
        text_format: bool,
    ) -> Result<(), RestoreError> {
        self.first_after_resume = false;
        self.figures.copy_blocks += 1;
        let first_block = self.copied_tables.insert(name.to_string());
        let (schema, bare) = split_name(name);
        let own_entry = s.entry.as_ref().is_some_and(|e| {
            e.kind == "TABLE DATA"
                && (e.schema.clone(), e.name.clone()) == (schema.clone(), bare.clone())
        });
        let created = schema
            .as_deref()
            .is_some_and(|sc| self.state.created(&quote::qualified(sc, &bare)));
        let Out::Live(client) = &mut self.out else {
            unreachable!("live statements run on a connection")
        };
        let mut block = CopyBlock::new(sp, s.line, &self.src.shown);
        // A small block (all of it within FRESH_FROM) is copied as it is, unless resuming: see
        // load::FRESH_FROM.
        let small = !self.state.resuming
            && block
                .within(crate::load::FRESH_FROM as usize)
                .map_err(|e| RestoreError::Input(e.to_string()))?;
        let fresh = (first_block && own_entry && created && !self.o.single_transaction && !small)
            .then_some(name);
        let step = Step::sequential(s.step);
        let started = Instant::now();
        let shown = self.src.shown.clone();
        let again = Reread {
            path: &self.src.path,
            line: s.line,
            shown: &shown,
            verbose: self.o.verbose,
        };
        let how = CopyHow {
            single: self.o.single_transaction,
            fresh,
            text_format,
            seal: Seal {
                state: &self.state,
                step: &step,
            },
        };
        let result = copy_block(client, s.text.trim(), &mut block, how, again);
        match result {
            Ok(loaded) => self.loaded(name, s.line, loaded, started),
            Err(e) => {
                block
                    .drain()
                    .map_err(|e| RestoreError::Input(e.to_string()))?;
                self.policy.fail(RestoreError::ScriptCopy {
                    file: self.src.shown.clone(),
                    line: s.line,
                    table: name.to_string(),
                    source: Box::new(e),
                })?;
                self.state.record(step)?;
            }
        }
        Ok(())
    }

    /// The end: `--single-transaction`'s COMMIT, the script's last trivia.
    fn finish(&mut self) -> Result<(), RestoreError> {
        if self.block.is_some() {
            return Err(RestoreError::Input(format!(
                "{}: the script ends inside a transaction block (BEGIN without COMMIT); it was rolled back",
                self.src.shown
            )));
        }
        match std::mem::replace(&mut self.out, Out::Verify) {
            Out::Live(mut c) if self.o.single_transaction => {
                c.batch_execute("COMMIT")
                    .map_err(|source| RestoreError::Session {
                        what: "COMMIT (--single-transaction)",
                        source,
                    })
            }
            Out::Script(mut w) => {
                w.write(&self.pending_trivia)?;
                Ok(w.finish()?)
            }
            _ => Ok(()),
        }
    }
}

/// A line on stdout; a closed stdout (`cbrestore -l x.sql | head`) is an error the caller
/// ends quietly on.
fn stdout_line(line: &str) -> Result<(), RestoreError> {
    writeln!(std::io::stdout().lock(), "{line}").map_err(|source| RestoreError::Io {
        path: PathBuf::from("stdout"),
        source,
    })
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
fn splitter_at(path: &Path, line: u64) -> Result<Splitter<Box<dyn Read + Send>>, RereadError> {
    let mut sp = Splitter::new(open_io(path).map_err(RereadError::Open)?);
    loop {
        let found = match sp.next_item()? {
            None => return Err(RereadError::Gone(line)),
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

/// How a COPY block is loaded.
struct CopyHow<'a> {
    /// `--single-transaction`: inside the one transaction.
    single: bool,
    /// A table this run created: emptied and frozen in the load's transaction.
    fresh: Option<&'a str>,
    /// Text-format rows: counted and compared with what the server loaded.
    text_format: bool,
    seal: Seal<'a>,
}

/// Text-format rows counted as they went by, compared with what the server loaded.
fn check_count(
    loaded: crate::load::Loaded,
    block: &CopyBlock<'_, Box<dyn Read + Send>>,
    text_format: bool,
) -> Result<crate::load::Loaded, LoadError> {
    if text_format && block.done && loaded.rows != block.rows() {
        return Err(LoadError::Count {
            loaded: loaded.rows,
            expected: block.rows(),
        });
    }
    Ok(loaded)
}

/// One COPY block: in its own transaction (or `--single-transaction`'s). A table this run
/// created is emptied and copied WITH (FREEZE) in that transaction, so its rows land frozen
/// and the index builds that follow do not rewrite its pages; a server or table that refuses
/// FREEZE gets the plain COPY.
fn copy_block(
    client: &mut Client,
    copy_sql: &str,
    block: &mut CopyBlock<'_, Box<dyn Read + Send>>,
    how: CopyHow<'_>,
    again: Reread<'_>,
) -> Result<crate::load::Loaded, LoadError> {
    if how.single {
        let loaded = load_in(client, copy_sql, None, block, None)?;
        return check_count(loaded, block, how.text_format);
    }
    if let (Some(table), Some(frozen)) = (how.fresh, with_freeze(copy_sql)) {
        if let Some(done) = copy_fresh(client, copy_sql, &frozen, table, block, &how, again)? {
            return Ok(done);
        }
    }
    let probe = Probe {
        table: how.fresh,
        copy_sql: Some(copy_sql),
        ..Probe::default()
    };
    let mut tx = LoadTx::begin(client, probe)?;
    if let Some(table) = how.fresh {
        tx.empty(table)?;
    }
    let loaded = tx.copy(copy_sql, block, None)?;
    let loaded = check_count(loaded, block, how.text_format)?;
    tx.commit(how.seal)?;
    Ok(loaded)
}

/// The frozen load of a table created here: binary where every column converts (see
/// binary.rs), text otherwise; `None` when the table is partitioned or the server refused
/// FREEZE before a row was read. The transaction's opening message asks for the columns'
/// types too (see `load::Probe`).
fn copy_fresh(
    client: &mut Client,
    copy_sql: &str,
    frozen: &str,
    table: &str,
    block: &mut CopyBlock<'_, Box<dyn Read + Send>>,
    how: &CopyHow<'_>,
    again: Reread<'_>,
) -> Result<Option<crate::load::Loaded>, LoadError> {
    let probe = Probe {
        table: Some(table),
        copy_sql: Some(copy_sql),
        columns: how.text_format && crate::dump::is_text_copy(copy_sql),
    };
    let mut tx = LoadTx::begin(client, probe)?;
    if tx.facts.table_partitioned != Some(false) {
        return Ok(None);
    }
    tx.empty(table)?;
    let binary = tx
        .facts
        .columns
        .as_deref()
        .and_then(|known| crate::binary::columns_of(copy_sql, known))
        .zip(crate::binary::binary_statement(copy_sql).and_then(|b| with_freeze(&b)));
    let result = match binary {
        Some((types, sql)) => {
            let mut rows = BinaryRows::new(&mut *block, types, Input::Text);
            tx.copy(&sql, &mut rows, None)
        }
        None => tx.copy(frozen, &mut *block, None),
    };
    match result {
        Ok(loaded) => {
            let loaded = check_count(loaded, block, how.text_format)?;
            tx.commit(how.seal)?;
            Ok(Some(loaded))
        }
        // A value the converter refuses: that attempt rolls back, and the block is read
        // again from the script (stdin was spooled to a file) and sent as text.
        Err(LoadError::Read(x)) if crate::binary::is_unconvertible(&x) => {
            drop(tx);
            if again.verbose {
                logline::say!("cbrestore: {table}: {x}; loading it as text");
            }
            block.drain().map_err(LoadError::Read)?;
            let mut sp =
                splitter_at(again.path, again.line).map_err(|source| LoadError::Reread {
                    file: again.shown.to_string(),
                    source,
                })?;
            let mut block = CopyBlock::new(&mut sp, again.line, again.shown);
            let probe = Probe {
                table: Some(table),
                copy_sql: Some(copy_sql),
                ..Probe::default()
            };
            let mut tx = LoadTx::begin(client, probe)?;
            tx.empty(table)?;
            let loaded = tx.copy(frozen, &mut block, None)?;
            let loaded = check_count(loaded, &block, how.text_format)?;
            tx.commit(how.seal)?;
            Ok(Some(loaded))
        }
        // Refused before a row was read (FREEZE not allowed here): the plain COPY.
        Err(LoadError::Server(_)) if block.untouched() => Ok(None),
        Err(e) => Err(e),
    }
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
