//! STEP 3: every selected table's rows, chunk by chunk, on N workers that share the snapshot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use cluster::ConnParams;
use pipeline::progress::Progress;
use serde::Serialize;

use crate::copy::{copy_chunk, Copied, LoadMode, Worker};
use crate::state::{Event, Recorded, State};
use crate::tables::Table;
use crate::{interrupt, session, CloneError};

/// What one table's copy did, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
    /// From its first chunk's start to its last chunk's commit.
    pub seconds: f64,
    pub chunks: usize,
    pub format: &'static str,
    /// Loaded by an earlier run (`--resume`): not copied again.
    pub resumed: bool,
}

/// Where the workers connect and how they load.
pub struct DataContext<'a> {
    pub source: &'a ConnParams,
    pub target: &'a ConnParams,
    pub source_settings: String,
    pub target_settings: String,
    pub snapshot_id: String,
    pub workers: usize,
    /// The tables were created by this clone's pre-data step (not `--data-only`).
    pub created_by_us: bool,
    /// A `--resume` run: tables not finished may hold rows of an earlier run.
    pub resuming: bool,
    /// `COPY FREEZE` is used on the target (PostgreSQL; not on Cloudberry/Greenplum).
    pub freeze_allowed: bool,
    /// Told each table's name once its last chunk committed (its indexes can then be built).
    pub finished: Option<crossbeam_channel::Sender<String>>,
    /// `-v`: a line per table copied.
    pub verbose: bool,
}

struct Accounting {
    started: Option<Instant>,
    remaining: usize,
    copied: Copied,
}

/// Copies every table not already finished by an earlier run.
pub fn copy_tables(
    ctx: &DataContext,
    tables: &[Table],
    state: &State,
    progress: &Progress,
) -> Result<Vec<TableReport>, CloneError> {
    let recorded = state.recorded();
    let (todo, mut reports) = split_finished(tables, &recorded);
    reset_unfinished(ctx, &todo, &recorded, state)?;
    plan(&todo, &reports, state, progress)?;
    let run = Run::new(ctx, &todo, state, progress);
    let (tx, rx) = crossbeam_channel::unbounded();
    for (t, table) in todo.iter().enumerate() {
        for c in 0..table.job.chunks.len() {
            tx.send((t, c)).expect("the receiver is alive");
        }
    }
    let workers = ctx.workers.min(tx.len()).max(1);
    drop(tx);
    let results: Vec<Result<(), CloneError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let (rx, run) = (rx.clone(), &run);
                scope.spawn(move || run.worker(&rx))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("workers do not panic"))
            .collect()
    });
    first_error(results)?;
    reports.extend(run.finished.into_inner().expect("lock"));
    Ok(reports)
}

/// Records each table's chunk count, and counts the tables an earlier run copied as read (so
/// the ETA covers what is left).
fn plan(
    todo: &[Table],
    done: &[TableReport],
    state: &State,
    progress: &Progress,
) -> Result<(), CloneError> {
    for t in todo {
        state.record(Event::Plan {
            table: t.label(),
            chunks: t.job.chunks.len(),
        })?;
    }
    for r in done {
        drop(progress.begin(&r.table, r.bytes, 0.0));
        progress.table_done(&r.table);
    }
    Ok(())
}

/// What the workers share: the tables to copy, each table's chunks still to go, the reports
/// of finished tables, and whether one worker failed (the others then stop taking chunks).
struct Run<'a> {
    ctx: &'a DataContext<'a>,
    todo: &'a [Table],
    state: &'a State,
    progress: &'a Progress,
    accounting: Mutex<HashMap<usize, Accounting>>,
    finished: Mutex<Vec<TableReport>>,
    failed: AtomicBool,
}

impl<'a> Run<'a> {
    fn new(
        ctx: &'a DataContext<'a>,
        todo: &'a [Table],
        state: &'a State,
        progress: &'a Progress,
    ) -> Run<'a> {
        let accounting = todo
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let remaining = t.job.chunks.len();
                let copied = Copied::default();
                (
                    i,
                    Accounting {
                        started: None,
                        remaining,
                        copied,
                    },
                )
            })
            .collect();
        Run {
            ctx,
            todo,
            state,
            progress,
            accounting: Mutex::new(accounting),
            finished: Mutex::new(Vec::new()),
            failed: AtomicBool::new(false),
        }
    }

    /// One worker: its own connection in the snapshot, chunks until none are left.
    fn worker(&self, rx: &crossbeam_channel::Receiver<(usize, usize)>) -> Result<(), CloneError> {
        let run = || -> Result<(), CloneError> {
            let mut worker = connect_worker(self.ctx)?;
            let _cancel = cancel_on_signal(self.ctx, &worker);
            for (t, c) in rx.iter() {
                if self.failed.load(Ordering::SeqCst) {
                    break;
                }
                self.chunk(&mut worker, t, c)?;
            }
            Ok(())
        };
        let r = run();
        if r.is_err() {
            self.failed.store(true, Ordering::SeqCst);
        }
        r
    }

    /// Copies chunk `c` of table `t`; the table's last chunk reports the table.
    fn chunk(&self, worker: &mut Worker, t: usize, c: usize) -> Result<(), CloneError> {
        let (ctx, table) = (self.ctx, &self.todo[t]);
        self.accounting
            .lock()
            .expect("lock")
            .get_mut(&t)
            .expect("planned")
            .started
            .get_or_insert_with(Instant::now);
        let one = table.job.chunks.len() == 1;
        let mode = LoadMode {
            truncate: ctx.created_by_us && one,
            freeze: ctx.created_by_us && one && ctx.freeze_allowed,
        };
        let chunk = &table.job.chunks[c];
        let (share, share_rows) = table.chunk_share(c);
        let flight = self.progress.begin(&table.label(), share, share_rows);
        let copied = copy_chunk(worker, table, c, chunk, mode, self.state, &flight)?;
        drop(flight);
        let Some(report) = account(&self.accounting, t, table, copied) else {
            return Ok(());
        };
        self.progress.table_done(&report.table);
        if ctx.verbose {
            say_copied(&report);
        }
        if let Some(tx) = &ctx.finished {
            let _ = tx.send(report.table.clone());
        }
        self.finished.lock().expect("lock").push(report);
        Ok(())
    }
}

/// `-v`'s line for a table copied.
fn say_copied(t: &TableReport) {
    logline::say!(
        "cbclone: copied {} ({} rows, {}, {:.2} s, {} chunk{}, {})",
        t.table,
        t.rows,
        pipeline::progress::human(t.bytes),
        t.seconds,
        t.chunks,
        if t.chunks == 1 { "" } else { "s" },
        t.format
    );
}

/// The first real error: an interruption is reported only when nothing else went wrong.
fn first_error(results: Vec<Result<(), CloneError>>) -> Result<(), CloneError> {
    let mut interrupted = None;
    for r in results {
        match r {
            Err(CloneError::Interrupted(s)) => interrupted = Some(s),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
    }
    match interrupted {
        Some(s) => Err(CloneError::Interrupted(s)),
        None => Ok(()),
    }
}

fn connect_worker(ctx: &DataContext) -> Result<Worker, CloneError> {
    Ok(Worker {
        source: session::source_stream(ctx.source, &ctx.source_settings, &ctx.snapshot_id)?,
        target: session::target_client(ctx.target, &ctx.target_settings)?,
    })
}

/// On a signal, both of the worker's statements are cancelled on their servers, so a COPY
/// blocked on the network ends now rather than after its chunk (the target's transaction
/// then rolls back: the chunk was not logged as committed).
fn cancel_on_signal(ctx: &DataContext, worker: &Worker) -> Option<interrupt::HookGuard> {
    let source = worker.source.cancel_token();
    let target = worker.target.cancel_token();
    let (sp, tp) = (ctx.source.clone(), ctx.target.clone());
    interrupt::on_signal(move || {
        source.cancel(&sp);
        cluster::connect::cancel(&target, &tp);
    })
}

/// Adds a chunk to its table; the table's report once its last chunk is in.
fn account(
    accounting: &Mutex<HashMap<usize, Accounting>>,
    t: usize,
    table: &Table,
    copied: Copied,
) -> Option<TableReport> {
    let mut acc = accounting.lock().expect("lock");
    let a = acc.get_mut(&t).expect("planned");
    a.copied.rows += copied.rows;
    a.copied.bytes += copied.bytes;
    a.remaining -= 1;
    (a.remaining == 0).then(|| TableReport {
        table: table.label(),
        rows: a.copied.rows,
        bytes: a.copied.bytes,
        seconds: a.started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0),
        chunks: table.job.chunks.len(),
        format: table.format(),
        resumed: false,
    })
}

/// Tables an earlier run finished (reported as resumed) and the rest.
fn split_finished(tables: &[Table], recorded: &Recorded) -> (Vec<Table>, Vec<TableReport>) {
    let mut todo = Vec::new();
    let mut done = Vec::new();
    for t in tables {
        let rec = recorded.table(&t.label());
        if rec.finished() {
            done.push(TableReport {
                table: t.label(),
                rows: 0,
                bytes: t.bytes,
                seconds: 0.0,
                chunks: rec.chunks.unwrap_or(0),
                format: t.format(),
                resumed: true,
            });
        } else {
            todo.push(t.clone());
        }
    }
    (todo, done)
}

/// A table an earlier run loaded in part is reloaded whole from this run's snapshot: its
/// chunks were cut from another snapshot, and rows may have changed or moved in between, so
/// only emptying it keeps every row exactly once. On `--resume` every unfinished table this
/// clone created is emptied, recorded as touched or not (the state may be lost, or a kill may
/// have come between a commit and its record). Only a table this clone created may be
/// emptied; a partly loaded table of `--data-only` stops the clone with a message.
fn reset_unfinished(
    ctx: &DataContext,
    todo: &[Table],
    recorded: &Recorded,
    state: &State,
) -> Result<(), CloneError> {
    let touched: Vec<&Table> = todo
        .iter()
        .filter(|t| recorded.table(&t.label()).touched())
        .collect();
    if !ctx.created_by_us {
        let Some(t) = touched.first() else {
            return Ok(());
        };
        return Err(CloneError::Table {
            table: t.label(),
            message: "an earlier --data-only run loaded part of this table, which this clone did not create and so will not empty; empty it (TRUNCATE) and run again".into(),
        });
    }
    let reset: Vec<&Table> = if ctx.resuming {
        todo.iter().collect()
    } else {
        touched
    };
    if reset.is_empty() {
        return Ok(());
    }
    let mut target = session::target_client(ctx.target, &ctx.target_settings)?;
    for t in reset {
        target
            .batch_execute(&format!("TRUNCATE ONLY {}", t.relation().qualified()))
            .map_err(CloneError::query(format!(
                "emptying {} to reload it",
                t.label()
            )))?;
        state.record(Event::Reset { table: t.label() })?;
    }
    Ok(())
}
