//! Loading one table: `COPY ... FROM STDIN` inside its own transaction.
//!
//! Either every row of the stream is committed or none is: a read error (truncated gzip, missing
//! file), a server error, or a row count other than the expected one rolls the transaction back,
//! so a table is never left half loaded. `truncate` empties the table in the same transaction
//! first, which makes re-running a load (after a crash, with `--resume`) exact.

use std::io::{self, Read, Write};

use postgres::{Client, GenericClient};

use crate::binary::{BinaryRows, Input};
use crate::state::{CommitError, State, Step};

/// How a load's transaction ends: committed as `step` of `state` (its transaction id recorded
/// before the COMMIT, see `state.rs`).
#[derive(Clone, Copy)]
pub struct Seal<'a> {
    pub state: &'a State,
    pub step: &'a Step,
}

impl Seal<'_> {
    pub fn commit(self, tx: postgres::Transaction<'_>) -> Result<(), LoadError> {
        self.state
            .commit(tx, self.step.clone())
            .map_err(LoadError::Commit)
    }
}

/// What one load did.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rows: u64,
    pub bytes: u64,
}

/// Why a load failed; the caller adds the table and the entry or script line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The source could not be read; the source's own error (it names the file).
    #[error("reading the data failed: {0}")]
    Read(io::Error),
    /// The archive's data for the table cannot be opened.
    #[error("reading the data failed: {0}")]
    Archive(archive::ArchiveError),
    /// The data file is not the one cbdump's manifest records.
    #[error(transparent)]
    Verify(Box<crate::verify::VerifyError>),
    /// The server refused the data or the statement.
    #[error("{0}")]
    Server(String),
    /// The server loaded a different number of rows than the source promised.
    #[error("loaded {loaded} rows but the backup records {expected}; rolled back")]
    Count { loaded: u64, expected: u64 },
    /// The COMMIT, or recording it.
    #[error(transparent)]
    Commit(CommitError),
    /// `-f`: writing the table's data into the script.
    #[error(transparent)]
    Script(crate::script::ScriptError),
    /// A helper's COPY stream of a load shared by several workers (see split.rs).
    #[error(transparent)]
    Helper(crate::split::HelperError),
    /// A plain script's COPY block could not be read again (to load it as text).
    #[error("{file}: {source}")]
    Reread {
        file: String,
        source: crate::plain::RereadError,
    },
}

/// A table this restore created gets the fresh load ([`load_fresh_table`]: emptied and copied
/// with FREEZE in the load's own transaction) only when its data is at least this big (or when
/// resuming, where emptying makes a reload exact). Below it the fixed cost wins: `TRUNCATE`
/// gives the table a new file, and at COMMIT with `wal_level=minimal` the server writes the
/// new file's pages to the WAL or syncs it. On the regression database's plain script (537
/// tables, nearly all under 100 kB) that was 1.6 s of the server's CPU: 4.14 s against 2.56 s
/// without, psql -f 2.51 s. A table created here is empty, and a load that did not commit
/// left nothing (its transaction id tells, see state.rs), so a plain COPY is exact too.
pub const FRESH_FROM: u64 = 1 << 20;

/// A load's own transaction on a connection, opened by one message that also asks what the
/// load needs to know: the transaction id (recorded before the COMMIT, see `state.rs`),
/// whether the table and the COPY's target are partitioned, and, when asked, the target's
/// columns for binary COPY. Rolled back when dropped uncommitted.
///
/// Opening with `client.transaction()` and asking each of these on its own cost 10 more round
/// trips per table (extended-protocol queries take two each); on the regression database's
/// 537 tables that was most of the data phase's time (see restore.md).
pub struct LoadTx<'c> {
    client: &'c mut Client,
    xid: Option<i64>,
    open: bool,
    /// What the opening message found out.
    pub facts: Facts,
}

/// What a load asks when its transaction opens.
#[derive(Debug, Clone, Copy, Default)]
pub struct Probe<'a> {
    /// The table the load empties (quoted).
    pub table: Option<&'a str>,
    /// The COPY statement, whose target's kind (and columns) are asked.
    pub copy_sql: Option<&'a str>,
    /// The target's columns and types, for binary COPY.
    pub columns: bool,
}

/// The answers to a [`Probe`]; `None` where the catalog could not say.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub table_partitioned: Option<bool>,
    pub target_partitioned: Option<bool>,
    /// `(name, type oid)` of every live column of the COPY's target.
    pub columns: Option<Vec<(String, u32)>>,
    /// Whether the COPY's target exists, and whether this role may insert into it.
    pub target_exists: Option<bool>,
    pub target_insertable: Option<bool>,
}

impl Facts {
    /// Why the server would refuse `copy_sql` before reading a row, as far as the catalog
    /// tells: the target missing, not insertable, or lacking a listed column.
    ///
    /// Such a refusal must not reach the server: the `postgres` crate (tokio-postgres 0.7.18)
    /// sends `Bind, Execute, Sync` to start a COPY and another `Sync` with the `CopyFail` when
    /// the start failed, so the second `ReadyForQuery` answers the next statement and the
    /// connection is lost (rust-postgres PR #1337). Seen with `--on-error-continue` after a
    /// table's CREATE failed: its COPY was refused, and every later table on that connection
    /// failed with "connection closed" instead of loading.
    pub fn refusal(&self, copy_sql: &str) -> Option<LoadError> {
        let target = copy_target(copy_sql).unwrap_or(copy_sql);
        let refused = |m: String| {
            Some(LoadError::Server(format!(
                "ERROR: {m} (checked before the COPY)"
            )))
        };
        if self.target_exists == Some(false) {
            return refused(format!("relation {target} does not exist"));
        }
        if self.target_insertable == Some(false) {
            return refused(format!("permission denied for table {target}"));
        }
        let known = self.columns.as_ref()?;
        let missing = crate::binary::copy_column_names(copy_sql)?
            .into_iter()
            .find(|c| !known.iter().any(|(k, _)| k == c))?;
        refused(format!(
            "column \"{}\" of relation {target} does not exist",
            missing.replace('"', "\"\"")
        ))
    }
}

/// The select-list items that fill [`Facts::target_exists`], [`Facts::target_insertable`] and
/// [`Facts::columns`] for the COPY target `target` (as written in the statement).
fn target_checks(target: &str) -> [String; 3] {
    let rel = format!(
        "pg_catalog.to_regclass({})",
        cluster::quote::literal(target)
    );
    [
        format!("{rel} IS NOT NULL"),
        format!("pg_catalog.has_any_column_privilege({rel}, 'INSERT')"),
        format!(
            "(SELECT pg_catalog.json_agg(pg_catalog.json_build_array(a.attname, a.atttypid::int8)) \
               FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid = {rel} AND a.attnum > 0 AND NOT a.attisdropped)"
        ),
    ]
}

/// Reads [`target_checks`]' three answers starting at column `at` of `row`.
fn target_facts(facts: &mut Facts, text: impl Fn(usize) -> Option<String>, at: usize) {
    let flag = |i: usize| text(i).map(|v| v == "t");
    facts.target_exists = flag(at);
    facts.target_insertable = flag(at + 1);
    facts.columns = text(at + 2).and_then(|j| serde_json::from_str::<Vec<(String, u32)>>(&j).ok());
}

fn relkind_is_p(table: &str) -> String {
    format!(
        "(SELECT c.relkind = 'p' FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass({}))",
        cluster::quote::literal(table)
    )
}

impl<'c> LoadTx<'c> {
    /// `BEGIN` and the probe in one round trip.
    pub fn begin(client: &'c mut Client, probe: Probe<'_>) -> Result<LoadTx<'c>, LoadError> {
        let target = probe.copy_sql.and_then(copy_target);
        let null = || "NULL".to_string();
        let checks = target.map_or_else(
            || "NULL, NULL, NULL".into(),
            |t| target_checks(t).join(", "),
        );
        let sql = format!(
            "BEGIN;\nSELECT pg_catalog.txid_current(), {}, {}, {checks}",
            probe.table.map(relkind_is_p).unwrap_or_else(null),
            target.map(relkind_is_p).unwrap_or_else(null),
        );
        let messages = match client.simple_query(&sql) {
            Ok(m) => m,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK");
                return Err(server_error(e));
            }
        };
        let row = messages.iter().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        });
        let text = |i: usize| row.and_then(|r| r.get(i)).map(str::to_string);
        let flag = |i: usize| text(i).map(|v| v == "t");
        let mut facts = Facts {
            table_partitioned: flag(1),
            target_partitioned: flag(2),
            ..Facts::default()
        };
        target_facts(&mut facts, text, 3);
        Ok(LoadTx {
            xid: row.and_then(|r| r.get(0)).and_then(|v| v.parse().ok()),
            client,
            open: true,
            facts,
        })
    }

    /// Empties `table` (quoted) in this transaction: `TRUNCATE ONLY`, so an inheritance parent
    /// keeps its children's rows (they are loaded from entries of their own), except for a
    /// partitioned table, whose data (gpbackup dumps partitioned tables through the root) is
    /// every partition's, so the whole tree is emptied.
    pub fn empty(&mut self, table: &str) -> Result<(), LoadError> {
        let only = if self.facts.table_partitioned == Some(true) {
            ""
        } else {
            "ONLY "
        };
        self.client
            .batch_execute(&format!("TRUNCATE TABLE {only}{table}"))
            .map_err(server_error)
    }

    /// `COPY ... FROM STDIN` with `source`, the count checked.
    pub fn copy(
        &mut self,
        copy_sql: &str,
        source: &mut (dyn Read + Send),
        expected_rows: Option<u64>,
    ) -> Result<Loaded, LoadError> {
        if let Some(refused) = self.facts.refusal(copy_sql) {
            return Err(refused);
        }
        let writer = self.client.copy_in(copy_sql).map_err(server_error)?;
        stream(writer, source, expected_rows)
    }

    /// Commits as `seal` says: the transaction id recorded first.
    pub fn commit(mut self, seal: Seal<'_>) -> Result<(), LoadError> {
        self.open = false;
        let step = seal.step.clone();
        let r = match self.xid {
            Some(xid) => seal.state.commit_xid(self.client, xid, step),
            None => seal.state.commit_open(self.client, step),
        };
        r.map_err(LoadError::Commit)
    }
}

impl Drop for LoadTx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

fn server_error(e: postgres::Error) -> LoadError {
    LoadError::Server(cluster::error::server_message(&e))
}

/// Loads `source` into a table this restore has just created, in one transaction that empties
/// it first and copies with `FREEZE`.
///
/// Truncating in the load's own transaction is what pg_restore -j does: with
/// `wal_level=minimal` the COPY then writes no WAL. `FREEZE` (allowed exactly because the table
/// was truncated in this transaction) also writes the rows already frozen and all-visible, so
/// the index builds that follow do not rewrite every page to set hint bits, and the first
/// VACUUM has nothing to freeze: 17% faster COPY and 35% faster primary key on a 3M-row
/// table here. A partitioned target refuses `FREEZE` only once rows flow (gpbackup loads
/// partitioned tables through their root; pg_dump --load-via-partition-root too), so the
/// opening message asks; a server that refuses it anyway before reading a row gets the plain
/// COPY.
pub fn load_fresh_table(
    client: &mut Client,
    copy_sql: &str,
    table: &str,
    source: &mut (dyn Read + Send),
    expected_rows: Option<u64>,
    seal: Seal<'_>,
) -> Result<Loaded, LoadError> {
    load_fresh(client, copy_sql, table, source, None, expected_rows, seal)
}

/// As [`load_fresh_table`], the rows sent as binary COPY (see binary.rs) when every column the
/// COPY names has a type the converter takes: the types come with the transaction's opening
/// message, so this costs no round trip. A value that does not convert fails with
/// [`crate::binary::is_unconvertible`]'s error, rolled back: the caller loads the table again
/// with [`load_fresh_table`].
pub fn load_fresh_binary(
    client: &mut Client,
    copy_sql: &str,
    table: &str,
    source: &mut (dyn Read + Send),
    syntax: Input,
    expected_rows: Option<u64>,
    seal: Seal<'_>,
) -> Result<Loaded, LoadError> {
    load_fresh(
        client,
        copy_sql,
        table,
        source,
        Some(syntax),
        expected_rows,
        seal,
    )
}

fn load_fresh(
    client: &mut Client,
    copy_sql: &str,
    table: &str,
    source: &mut (dyn Read + Send),
    binary: Option<Input>,
    expected_rows: Option<u64>,
    seal: Seal<'_>,
) -> Result<Loaded, LoadError> {
    let probe = Probe {
        table: Some(table),
        copy_sql: Some(copy_sql),
        columns: binary.is_some(),
    };
    let mut tx = LoadTx::begin(client, probe)?;
    tx.empty(table)?;
    let converted = binary.and_then(|syntax| {
        let types = crate::binary::columns_of(copy_sql, tx.facts.columns.as_deref()?)?;
        Some((types, crate::binary::binary_statement(copy_sql)?, syntax))
    });
    let statement = converted
        .as_ref()
        .map_or(copy_sql, |(_, sql, _)| sql.as_str());
    let frozen = with_freeze(statement).filter(|_| tx.facts.target_partitioned == Some(false));
    let mut rows;
    let source: &mut (dyn Read + Send) = match converted.clone() {
        Some((types, _, syntax)) => {
            rows = BinaryRows::new(&mut *source, types, syntax);
            &mut rows
        }
        None => source,
    };
    let Some(frozen) = frozen else {
        let loaded = tx.copy(statement, source, expected_rows)?;
        tx.commit(seal)?;
        return Ok(loaded);
    };
    if let Some(refused) = tx.facts.refusal(statement) {
        return Err(refused);
    }
    let started = match tx.client.copy_in(frozen.as_str()) {
        Ok(writer) => Some(stream(writer, source, expected_rows)),
        Err(e) if refuses_freeze(&e) => None,
        Err(e) => return Err(server_error(e)),
    };
    if let Some(loaded) = started {
        let loaded = loaded?;
        tx.commit(seal)?;
        return Ok(loaded);
    }
    drop(tx);
    load_table(client, statement, Some(table), source, expected_rows, seal)
}

/// `COPY ... FROM STDIN` with `FREEZE` added: pg_dump's bare form gets `WITH (FREEZE)`, an
/// option list (gpbackup's `WITH (FORMAT csv, DELIMITER ',')`) gets `, FREEZE`; `None` for
/// anything else.
pub fn with_freeze(copy_sql: &str) -> Option<String> {
    let body = copy_sql.trim_end().trim_end_matches(';').trim_end();
    let lower = body.to_ascii_lowercase();
    if lower.ends_with("from stdin") {
        return Some(format!("{body} WITH (FREEZE);"));
    }
    let options = lower.rfind("from stdin with (")?;
    if !body.ends_with(')') || lower[options..].contains("freeze") {
        return None;
    }
    Some(format!("{}, FREEZE);", &body[..body.len() - 1]))
}

/// The relation a `COPY name [(cols)] FROM ...` statement names, as written (quoted parts kept).
pub fn copy_target(copy_sql: &str) -> Option<&str> {
    let rest = copy_sql.trim_start();
    let rest = rest
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("COPY "))
        .map(|_| rest[5..].trim_start())?;
    let mut in_quotes = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ' ' | '(' | '\n' | '\t' if !in_quotes => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// Whether `table` (quoted) is a partitioned table; `None` when the catalog cannot say.
pub fn is_partitioned<C: GenericClient>(client: &mut C, table: &str) -> Option<bool> {
    client
        .query_one(
            "SELECT c.relkind = 'p' FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)",
            &[&table],
        )
        .ok()
        .map(|row| row.get(0))
}

/// Empties `table` (quoted), as [`LoadTx::empty`], asking the catalog first.
pub fn empty<C: GenericClient>(client: &mut C, table: &str) -> Result<(), postgres::Error> {
    let only = if is_partitioned(client, table) == Some(true) {
        ""
    } else {
        "ONLY "
    };
    client.batch_execute(&format!("TRUNCATE TABLE {only}{table}"))
}

fn refuses_freeze(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    matches!(
        e.code(),
        Some(c) if *c == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
            || *c == SqlState::FEATURE_NOT_SUPPORTED
            || *c == SqlState::WRONG_OBJECT_TYPE
            || *c == SqlState::SYNTAX_ERROR
    )
}

/// Loads `source` into the table with `copy_sql`, in one transaction, committed as `seal` says.
pub fn load_table(
    client: &mut Client,
    copy_sql: &str,
    truncate: Option<&str>,
    source: &mut (dyn Read + Send),
    expected_rows: Option<u64>,
    seal: Seal<'_>,
) -> Result<Loaded, LoadError> {
    let probe = Probe {
        table: truncate,
        copy_sql: Some(copy_sql),
        ..Probe::default()
    };
    let mut tx = LoadTx::begin(client, probe)?;
    if let Some(table) = truncate {
        tx.empty(table)?;
    }
    let loaded = tx.copy(copy_sql, source, expected_rows)?;
    tx.commit(seal)?;
    Ok(loaded)
}

/// The load inside a transaction the caller owns (its own, or `--single-transaction`'s): on
/// error the caller rolls back; nothing is committed here.
pub fn load_in<C: GenericClient>(
    tx: &mut C,
    copy_sql: &str,
    truncate: Option<&str>,
    source: &mut (dyn Read + Send),
    expected_rows: Option<u64>,
) -> Result<Loaded, LoadError> {
    let server = |e: postgres::Error| LoadError::Server(cluster::error::server_message(&e));
    if let Some(table) = truncate {
        empty(tx, table).map_err(server)?;
    }
    precheck(tx, copy_sql)?;
    let writer = tx.copy_in(copy_sql).map_err(server)?;
    stream(writer, source, expected_rows)
}

/// [`Facts::refusal`] for a COPY on a connection whose transaction the caller owns: one query
/// of its own (the opening message of a [`LoadTx`] asks the same in passing).
pub fn precheck<C: GenericClient>(client: &mut C, copy_sql: &str) -> Result<(), LoadError> {
    let Some(target) = copy_target(copy_sql) else {
        return Ok(());
    };
    let row = client
        .query_one(
            &format!(
                "SELECT ({})::text",
                target_checks(target).join(")::text, (")
            ),
            &[],
        )
        .map_err(server_error)?;
    let text = |i: usize| row.get::<_, Option<String>>(i);
    let mut facts = Facts::default();
    target_facts(&mut facts, text, 0);
    match facts.refusal(copy_sql) {
        Some(refused) => Err(refused),
        None => Ok(()),
    }
}

/// The first this many bytes are read on the calling thread; only a source longer than that
/// gets a reader thread (decompression, merging segment files) beside the COPY. A thread and
/// its buffers for every table cost more than they save on small ones: the regression
/// database's plain script started 539 of them, for tables of a few kB.
const READ_HERE: usize = 256 * 1024;

/// Sends `source` through a started COPY and checks the count.
fn stream(
    mut writer: postgres::CopyInWriter<'_>,
    source: &mut (dyn Read + Send),
    expected_rows: Option<u64>,
) -> Result<Loaded, LoadError> {
    let server = |e: postgres::Error| LoadError::Server(cluster::error::server_message(&e));
    let mut head = vec![0u8; READ_HERE];
    // Dropping the writer unfinished aborts the COPY; the transaction rolls back.
    let n = read_full(source, &mut head).map_err(LoadError::Read)?;
    let mut bytes = n as u64;
    let mut written = writer.write_all(&head[..n]);
    drop(head);
    if n == READ_HERE && written.is_ok() {
        let (w, read) = pipeline::pipelined(
            |buf| loop {
                match source.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            },
            |buf| {
                writer.write_all(buf)?;
                bytes += buf.len() as u64;
                Ok(())
            },
        );
        read.map_err(LoadError::Read)?;
        written = w;
    }
    if let Err(e) = written {
        // The server ended the COPY early (bad row): its message is in the finish error.
        return Err(match writer.finish() {
            Err(pe) => server(pe),
            Ok(_) => LoadError::Server(e.to_string()),
        });
    }
    let rows = writer.finish().map_err(server)?;
    if let Some(expected) = expected_rows {
        if rows != expected {
            return Err(LoadError::Count {
                loaded: rows,
                expected,
            });
        }
    }
    Ok(Loaded { rows, bytes })
}

/// Reads until `buf` is full or the source ends; how much was read.
fn read_full(source: &mut (dyn Read + Send), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match source.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::with_freeze;

    #[test]
    fn freeze_joins_the_options() {
        assert_eq!(
            with_freeze("COPY public.t (a, b) FROM stdin;").as_deref(),
            Some("COPY public.t (a, b) FROM stdin WITH (FREEZE);")
        );
        assert_eq!(
            with_freeze("COPY s.t (a) FROM STDIN WITH (FORMAT csv, DELIMITER ',')").as_deref(),
            Some("COPY s.t (a) FROM STDIN WITH (FORMAT csv, DELIMITER ',', FREEZE);")
        );
        assert_eq!(with_freeze("COPY t FROM STDIN WITH (FREEZE)"), None);
        assert_eq!(
            super::copy_target("COPY \"Sales Dept\".\"Orders (2024)\" (id) FROM stdin;"),
            Some("\"Sales Dept\".\"Orders (2024)\"")
        );
        assert_eq!(
            super::copy_target("COPY sales.events FROM STDIN WITH (FORMAT csv)"),
            Some("sales.events")
        );
        assert_eq!(super::copy_target("SELECT 1"), None);
        assert_eq!(with_freeze("INSERT INTO t VALUES (1)"), None);
    }
}
