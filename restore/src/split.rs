//! One big table's data on several connections at once.
//!
//! pg_restore -j gives each worker a whole table, so the last big table loads on one backend
//! while the other workers wait for its indexes. Here the worker that owns a table's load
//! reads and decompresses the data file on one thread and hands row-aligned batches to a
//! queue; its own COPY takes from the queue, and any worker with nothing else to do joins
//! with a COPY of its own on its own connection ([`SplitLoad::help`]).
//!
//! All or nothing still holds. Every participant's COPY runs in its own transaction and none
//! commits until all have finished their COPY without error and the rows add up to what the
//! manifest records; then all commit together. If any commit fails after another succeeded,
//! the owner empties the table again. A crash between the commits leaves some rows behind,
//! which is why a split load is only used for a table this restore created and is not
//! resuming: `--resume` reloads such a table in one stream after emptying it in the same
//! transaction.
//!
//! Batches end at row ends: any line feed in pg_dump's text format (a line feed inside a value
//! is written `\n`; pg_dump's `\.` line ends the data), line feeds outside quotes in gpbackup's
//! CSV.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crossbeam_channel::{Receiver, Sender};
use pipeline::rows::{RowScanner, RowSyntax};
use postgres::Client;

use crate::load::{LoadError, Loaded, Seal};

/// Bytes a load must have read before other workers may join (or the split limit, when that is
/// smaller): small tables are over before a helper's round trips would pay off.
pub const JOIN_AFTER: u64 = 32 << 20;
/// Size of the batches handed out.
const BATCH: usize = 1 << 20;

/// Open split loads that idle workers may join.
#[derive(Default)]
pub struct Board {
    loads: Mutex<Vec<Arc<SplitLoad>>>,
}

impl Board {
    /// A load that still takes helpers.
    pub fn joinable(&self) -> Option<Arc<SplitLoad>> {
        self.loads
            .lock()
            .expect("board lock")
            .iter()
            .find(|l| l.joinable.load(Ordering::SeqCst))
            .cloned()
    }

    /// Whether any split load is still running (a worker that leaves now could miss one that
    /// becomes joinable later).
    pub fn busy(&self) -> bool {
        !self.loads.lock().expect("board lock").is_empty()
    }

    fn post(&self, load: &Arc<SplitLoad>) {
        self.loads
            .lock()
            .expect("board lock")
            .push(Arc::clone(load));
    }

    fn remove(&self, load: &Arc<SplitLoad>) {
        self.loads
            .lock()
            .expect("board lock")
            .retain(|l| !Arc::ptr_eq(l, load));
    }
}

/// One table's load shared by its owner and any helpers.
pub struct SplitLoad {
    table: String,
    copy_sql: String,
    batches: Receiver<Vec<u8>>,
    /// Set once [`JOIN_AFTER`] bytes were read and more remain; cleared (under `join`'s lock)
    /// when the input ends or the load failed, so no helper registers after the owner counted.
    joinable: AtomicBool,
    /// The owner gave up: the reader stops, the queue drains.
    failed: AtomicBool,
    join: Mutex<Join>,
    changed: Condvar,
}

#[derive(Default)]
struct Join {
    helpers: usize,
    /// Each helper's COPY outcome.
    copied: Vec<Result<u64, HelperError>>,
    /// The owner's decision: commit (true) or roll back.
    verdict: Option<bool>,
    /// Each helper's commit outcome.
    committed: Vec<Result<(), HelperError>>,
}

/// What went wrong on a helper's connection, in the server's words; the owner reports it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HelperError {
    #[error("{0}")]
    Copy(String),
    #[error("committing a parallel COPY stream failed: {0}")]
    Commit(String),
}

impl SplitLoad {
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Joins the load on `client` with a COPY of its own until the input is used up, then
    /// commits or rolls back as the owner decides. Failures are the owner's to report; this
    /// returns the rows this helper committed (0 when it came too late to join).
    pub fn help(&self, client: &mut Client) -> u64 {
        {
            let mut j = self.join.lock().expect("join lock");
            if !self.joinable.load(Ordering::SeqCst) {
                return 0;
            }
            j.helpers += 1;
        }
        let server = |e: postgres::Error| HelperError::Copy(cluster::error::server_message(&e));
        let mut tx = match client.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                self.report_copy(Err(server(e)));
                self.await_verdict();
                self.report_commit(Ok(()));
                return 0;
            }
        };
        let copied = (|| -> Result<u64, HelperError> {
            let mut w = tx.copy_in(self.copy_sql.as_str()).map_err(server)?;
            for batch in self.batches.iter() {
                if let Err(e) = w.write_all(&batch) {
                    // The server ended the COPY (bad row): its message comes with finish.
                    // The owner drains the queue.
                    return Err(match w.finish() {
                        Err(pe) => server(pe),
                        Ok(_) => HelperError::Copy(e.to_string()),
                    });
                }
            }
            w.finish().map_err(server)
        })();
        let rows = copied.as_ref().ok().copied().unwrap_or(0);
        self.report_copy(copied);
        if self.await_verdict() {
            let r = tx
                .commit()
                .map_err(|e| HelperError::Commit(cluster::error::server_message(&e)));
            let ok = r.is_ok();
            self.report_commit(r);
            if ok {
                rows
            } else {
                0
            }
        } else {
            let _ = tx.rollback();
            self.report_commit(Ok(()));
            0
        }
    }

    fn report_copy(&self, r: Result<u64, HelperError>) {
        self.join.lock().expect("join lock").copied.push(r);
        self.changed.notify_all();
    }

    fn report_commit(&self, r: Result<(), HelperError>) {
        self.join.lock().expect("join lock").committed.push(r);
        self.changed.notify_all();
    }

    fn await_verdict(&self) -> bool {
        let mut j = self.join.lock().expect("join lock");
        loop {
            if let Some(v) = j.verdict {
                return v;
            }
            j = self.changed.wait(j).expect("join lock");
        }
    }

    /// Closes the load to new helpers.
    fn close(&self) {
        let _j = self.join.lock().expect("join lock");
        self.joinable.store(false, Ordering::SeqCst);
    }
}

/// What a split load copies into.
#[derive(Debug, Clone, Copy)]
pub struct SplitCopy<'a> {
    /// The table, quoted (emptied again if a commit fails half way).
    pub table: &'a str,
    pub copy_sql: &'a str,
    /// How rows end in the stream.
    pub syntax: RowSyntax,
    /// The `--split-tables-larger-than` limit that chose this table (helpers may join once
    /// this much, or [`JOIN_AFTER`], was read).
    pub limit: u64,
}

/// Loads `source` into a table this restore created, on `client` and on whichever workers
/// join through `board`, committing only if every participant succeeded.
pub fn load_split(
    client: &mut Client,
    board: &Board,
    what: SplitCopy<'_>,
    source: &mut (dyn Read + Send),
    expected_rows: Option<u64>,
    seal: Seal<'_>,
) -> Result<Loaded, LoadError> {
    let SplitCopy {
        table,
        copy_sql,
        syntax,
        limit: split_limit,
    } = what;
    let join_after = JOIN_AFTER.min(split_limit);
    let (tx_batches, rx_batches) = crossbeam_channel::bounded::<Vec<u8>>(4);
    let load = Arc::new(SplitLoad {
        table: table.to_string(),
        copy_sql: copy_sql.to_string(),
        batches: rx_batches.clone(),
        joinable: AtomicBool::new(false),
        failed: AtomicBool::new(false),
        join: Mutex::new(Join::default()),
        changed: Condvar::new(),
    });
    board.post(&load);
    let (own, read) = copy_own(client, &load, source, tx_batches, join_after, syntax);
    board.remove(&load);
    let (mut failure, total, helpers) = gather(&load, &own, read, expected_rows);
    let commit = failure.is_none();
    if let Some(e) = verdict(&load, commit, helpers) {
        failure = Some(e);
    }
    let Ok((_, bytes)) = own else {
        // The owner's COPY failed; its transaction is aborted (or never began).
        let _ = client.batch_execute("ROLLBACK");
        return Err(failure.expect("the owner's failure"));
    };
    match failure {
        None => {
            // The owner's COMMIT is the step's: recorded with its transaction id.
            if let Err(e) = seal.state.commit_open(client, seal.step.clone()) {
                empty_table(client, table);
                return Err(LoadError::Commit(e));
            }
            Ok(Loaded { rows: total, bytes })
        }
        Some(f) => {
            let _ = client.batch_execute("ROLLBACK");
            if commit {
                // Some helpers committed before one failed: take their rows out again.
                empty_table(client, table);
            }
            Err(f)
        }
    }
}

/// The owner's part: the source read on its own thread into the queue, the owner's COPY
/// (begun, not committed) fed from it. Its rows and bytes, and how the reading ended.
fn copy_own(
    client: &mut Client,
    load: &Arc<SplitLoad>,
    source: &mut (dyn Read + Send),
    tx_batches: Sender<Vec<u8>>,
    join_after: u64,
    syntax: RowSyntax,
) -> (Result<(u64, u64), LoadError>, io::Result<()>) {
    let server = |e: postgres::Error| LoadError::Server(cluster::error::server_message(&e));
    let rx_batches = load.batches.clone();
    std::thread::scope(|scope| {
        let reader = {
            let load = Arc::clone(load);
            scope.spawn(move || {
                let r = dispatch(source, &tx_batches, &load, join_after, syntax);
                load.close();
                drop(tx_batches);
                r
            })
        };
        // BEGIN here; COMMIT or ROLLBACK once the helpers have reported.
        let own = (|| -> Result<(u64, u64), LoadError> {
            client.batch_execute("BEGIN").map_err(server)?;
            let mut w = client.copy_in(load.copy_sql.as_str()).map_err(server)?;
            let mut bytes = 0u64;
            for batch in rx_batches.iter() {
                if let Err(e) = w.write_all(&batch) {
                    return Err(match w.finish() {
                        Err(pe) => server(pe),
                        Ok(_) => LoadError::Server(e.to_string()),
                    });
                }
                bytes += batch.len() as u64;
            }
            let rows = w.finish().map_err(server)?;
            Ok((rows, bytes))
        })();
        if own.is_err() {
            // Stop reading and keep the queue moving so the reader (and helpers) can end.
            load.failed.store(true, Ordering::SeqCst);
            load.close();
            for _ in rx_batches.iter() {}
        }
        let read = reader.join().expect("split reader thread");
        (own, read)
    })
}

/// Every helper that registered has finished its COPY once the queue is closed: their
/// outcomes with the owner's make the first failure (or a row count other than expected),
/// the rows copied, and the number of helpers.
fn gather(
    load: &SplitLoad,
    own: &Result<(u64, u64), LoadError>,
    read: io::Result<()>,
    expected_rows: Option<u64>,
) -> (Option<LoadError>, u64, usize) {
    let helpers_copied = {
        let mut j = load.join.lock().expect("join lock");
        while j.copied.len() < j.helpers {
            j = load.changed.wait(j).expect("join lock");
        }
        j.copied.clone()
    };
    let mut failure: Option<LoadError> = match (own, read) {
        (_, Err(e)) => Some(LoadError::Read(e)),
        (Err(e), _) => Some(clone_error(e)),
        _ => None,
    };
    let mut total = own.as_ref().map(|(rows, _)| *rows).unwrap_or(0);
    for r in &helpers_copied {
        match r {
            Ok(rows) => total += rows,
            Err(e) => {
                failure.get_or_insert_with(|| LoadError::Helper(e.clone()));
            }
        }
    }
    if let (None, Some(expected)) = (&failure, expected_rows) {
        if total != expected {
            failure = Some(LoadError::Count {
                loaded: total,
                expected,
            });
        }
    }
    (failure, total, helpers_copied.len())
}

/// Tells the helpers to commit (or roll back) and waits for them: helpers commit first, then
/// the owner, so if one of them fails the owner's own rows never become visible and only the
/// helpers' committed rows need removing. A helper's failed commit, if any.
fn verdict(load: &SplitLoad, commit: bool, helpers: usize) -> Option<LoadError> {
    let mut j = load.join.lock().expect("join lock");
    j.verdict = Some(commit);
    load.changed.notify_all();
    while j.committed.len() < helpers {
        j = load.changed.wait(j).expect("join lock");
    }
    if !commit {
        return None;
    }
    j.committed
        .iter()
        .find_map(|r| r.as_ref().err().map(|e| LoadError::Helper(e.clone())))
}

/// Removes rows some participants committed before another failed. The table was created by
/// this restore, so nothing else is lost.
fn empty_table(client: &mut Client, table: &str) {
    let _ = crate::load::empty(client, table);
}

fn clone_error(e: &LoadError) -> LoadError {
    match e {
        LoadError::Read(x) => LoadError::Read(io::Error::new(x.kind(), x.to_string())),
        LoadError::Server(m) => LoadError::Server(m.clone()),
        LoadError::Count { loaded, expected } => LoadError::Count {
            loaded: *loaded,
            expected: *expected,
        },
        other => LoadError::Server(other.to_string()),
    }
}

/// Reads the source and sends batches of whole rows, up to pg_dump's `\.` line (what follows
/// it is not data). Opens the load to helpers once it is big enough.
fn dispatch(
    source: &mut (dyn Read + Send),
    out: &Sender<Vec<u8>>,
    load: &SplitLoad,
    join_after: u64,
    syntax: RowSyntax,
) -> io::Result<()> {
    let mut read_total = 0u64;
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH);
    // Every byte is scanned once: the partial row carried into the next batch was scanned
    // already, and the scanner remembers whether it ended inside quotes.
    let mut scanner = RowScanner::new(syntax);
    let mut ends = Vec::new();
    let mut at_end = false;
    while !at_end {
        if load.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Fill up to BATCH (more when one row is longer than that).
        let start = buf.len();
        let want = BATCH.max(start + BATCH / 4);
        buf.resize(want, 0);
        let mut n = start;
        while n < want {
            match source.read(&mut buf[n..]) {
                Ok(0) => {
                    at_end = true;
                    break;
                }
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(n);
        read_total += (n - start) as u64;
        ends.clear();
        scanner.scan(&buf[start..], &mut ends);
        // Whole rows go out; the partial last row starts the next batch.
        let cut = if at_end {
            buf.len()
        } else {
            match ends.last() {
                Some(&p) => start + p,
                None => continue,
            }
        };
        let rest = buf[cut..].to_vec();
        buf.truncate(cut);
        if syntax == RowSyntax::Text {
            if let Some(end) = terminator(&buf) {
                buf.truncate(end);
                at_end = true;
            }
        }
        if !at_end && read_total >= join_after {
            load.joinable.store(true, Ordering::SeqCst);
        }
        if !buf.is_empty() && out.send(std::mem::take(&mut buf)).is_err() {
            return Ok(());
        }
        buf = Vec::with_capacity(BATCH + rest.len());
        buf.extend_from_slice(&rest);
    }
    Ok(())
}

/// Where a `\.` line starts in rows that begin at a row boundary.
fn terminator(rows: &[u8]) -> Option<usize> {
    if rows.starts_with(b"\\.\n") || rows == b"\\." {
        return Some(0);
    }
    memchr::memmem::find(rows, b"\n\\.\n")
        .map(|p| p + 1)
        .or_else(|| rows.ends_with(b"\n\\.").then(|| rows.len() - 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminator_only_at_a_line_start() {
        assert_eq!(terminator(b"\\.\n\n"), Some(0));
        assert_eq!(terminator(b"a\tb\n\\.\n\n\n"), Some(4));
        assert_eq!(terminator(b"a\\.\n"), None);
        assert_eq!(terminator(b"x\\\\.\n"), None);
        assert_eq!(terminator(b"a\n\\."), Some(2));
        assert_eq!(terminator(b"a\nb\n"), None);
    }

    fn batches_of(input: &[u8], syntax: RowSyntax) -> Vec<Vec<u8>> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let load = SplitLoad {
            table: "t".into(),
            copy_sql: String::new(),
            batches: rx.clone(),
            joinable: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            join: Mutex::new(Join::default()),
            changed: Condvar::new(),
        };
        let mut src = input;
        dispatch(&mut src, &tx, &load, JOIN_AFTER, syntax).unwrap();
        drop(tx);
        rx.iter().collect()
    }

    #[test]
    fn batches_are_whole_rows_and_stop_at_the_terminator() {
        let mut input = Vec::new();
        for i in 0..200_000 {
            input.extend_from_slice(format!("{i}\tsome text with \\n inside\n").as_bytes());
        }
        let rows = input.clone();
        input.extend_from_slice(b"\\.\n\n\n");
        let batches = batches_of(&input, RowSyntax::Text);
        assert!(batches.len() > 3);
        for b in &batches {
            assert_eq!(b.last(), Some(&b'\n'));
        }
        assert_eq!(batches.concat(), rows);
    }

    #[test]
    fn csv_batches_never_cut_inside_quotes() {
        let mut input = Vec::new();
        for i in 0..100_000 {
            input.extend_from_slice(
                format!("{i},\"line one\nline \"\"two\"\"\",\"x,y\"\n").as_bytes(),
            );
        }
        let syntax = RowSyntax::Csv {
            quote: b'"',
            escape: b'"',
        };
        let batches = batches_of(&input, syntax);
        assert!(batches.len() > 3);
        let mut rows = 0;
        for b in &batches {
            let mut ends = Vec::new();
            RowScanner::new(syntax).scan(b, &mut ends);
            assert_eq!(ends.last(), Some(&b.len()), "a batch ends at a row end");
            rows += ends.len();
        }
        assert_eq!(rows, 100_000);
        assert_eq!(batches.concat(), input);
    }

    #[test]
    fn a_row_longer_than_a_batch_stays_whole() {
        let mut input = b"1\tshort\n2\t".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * BATCH));
        input.extend_from_slice(b"\n3\tend\n");
        let batches = batches_of(&input, RowSyntax::Text);
        assert_eq!(batches.concat(), input);
        for b in &batches {
            assert_eq!(b.last(), Some(&b'\n'));
        }
    }
}
