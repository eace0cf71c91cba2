//! `--on-segment`: every Cloudberry/Greenplum segment writes its own rows to a file on its own
//! host, all at once, with `COPY ... TO '<path>' WITH (..., on_segment true)`
//! ([`cluster::segment_io`]).
//!
//! The files are the server's: they are written by the segment postmasters as the database OS
//! user, so the role needs superuser or (Greenplum 7, Cloudberry) `pg_write_server_files`, and
//! the directory must exist on every segment host. We cannot rename them into place or hash
//! them; the report lists, per table and content, the host and path each segment wrote.
//! Placeholders: `<SEGID>` (required; the server replaces it with the content id), and
//! `<SEG_DATA_DIR>` (also the server's), plus our `<TABLE>` — the safe `schema.table` file stem —
//! required when more than one table is exported.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use cluster::catalog::{self, Selection};
use cluster::mpp::MppCatalog;
use cluster::segment_io::{self, SegmentEnd};
use cluster::snapshot::{self, SnapshotLeader};
use cluster::{flavor, ConnParams, ServerInfo};
use interrupt::Interrupt;

use crate::format::CopyFormat;
use crate::ExportError;
use pipeline::naming;

#[derive(Debug, Clone)]
pub struct OnSegmentOptions {
    pub conn: ConnParams,
    pub selection: Selection,
    pub columns: Option<Vec<String>>,
    pub format: CopyFormat,
    pub path_template: String,
    pub jobs: usize,
    pub verbose: bool,
}

#[derive(Debug, Serialize)]
pub struct OnSegmentReport {
    pub tool: &'static str,
    pub server: String,
    pub snapshot: String,
    pub elapsed_seconds: f64,
    pub total_rows: u64,
    pub tables: Vec<SegmentTable>,
}

#[derive(Debug, Serialize)]
pub struct SegmentTable {
    pub table: String,
    /// Rows written by all segments together (the command tag of the COPY).
    pub rows: u64,
    pub files: Vec<SegmentFile>,
}

#[derive(Debug, Serialize)]
pub struct SegmentFile {
    pub content: i16,
    pub host: String,
    pub path: String,
}

/// One table's statement and the files its segments write.
struct Work {
    label: String,
    path: String,
    sql: String,
}

/// Runs the export. A signal (or a closed stdout) cancels every running `COPY` on the server
/// (the interrupt crate's cancel hooks), and a run that does not finish, for whatever reason,
/// removes the files its segments wrote from every segment host: a partial export is never left
/// under the names the user asked for (issue 14).
pub fn run(opts: &OnSegmentOptions, interrupt: &Interrupt) -> Result<OnSegmentReport, ExportError> {
    let started = Instant::now();
    if !opts.path_template.contains("<SEGID>") {
        return Err(ExportError::OnSegment(format!(
            "the path {:?} must contain <SEGID>, or the segments of one host would write the same file",
            opts.path_template
        )));
    }
    let catalog_iface = MppCatalog::from_env();
    let mut client = cluster::connect(&opts.conn)?;
    let server = flavor::detect(&mut client, &catalog_iface)?;
    if !server.flavor.is_mpp() {
        return Err(ExportError::Cluster(cluster::ClusterError::NotMpp {
            server: server.describe(),
        }));
    }
    let cancels: Cancels = Arc::new(Mutex::new(vec![client.cancel_token()]));
    let _cancel_on_signal = {
        let (cancels, conn) = (Arc::clone(&cancels), opts.conn.clone());
        interrupt.on_signal(move || cancel_all(&cancels, &conn))
    };
    let mut leader = SnapshotLeader::begin(client, &[], None)?;
    let work = plan(opts, &mut leader)?;
    let snapshot_id = leader.id().to_string();
    let exported = export_all(opts, &work, &snapshot_id, interrupt, &cancels).and_then(|rows| {
        leader
            .finish()
            .map_err(|e| ExportError::SnapshotLost(e.to_string()))?;
        if interrupt.requested() {
            return Err(ExportError::Interrupted);
        }
        Ok(rows)
    });
    let rows = match exported {
        Ok(rows) => rows,
        Err(e) => {
            remove_written(opts, &work, interrupt);
            return Err(e);
        }
    };
    let tables = report_tables(&work, rows, &server);
    Ok(OnSegmentReport {
        tool: "cbcopyout",
        server: server.describe(),
        snapshot: snapshot_id,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        total_rows: tables.iter().map(|t| t.rows).sum(),
        tables,
    })
}

type Cancels = Arc<Mutex<Vec<postgres::CancelToken>>>;

/// Asks the server to cancel what every session of the run is doing.
fn cancel_all(cancels: &Cancels, conn: &ConnParams) {
    let tokens = cancels.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for token in &tokens {
        cluster::connect::cancel(token, conn);
    }
}

/// The selected tables, locked in the snapshot, each with its statement and file template.
fn plan(opts: &OnSegmentOptions, leader: &mut SnapshotLeader) -> Result<Vec<Work>, ExportError> {
    let all = catalog::list_relations(leader.client())?;
    let picked: Vec<_> = opts
        .selection
        .select(&all)?
        .into_iter()
        .filter(|r| r.kind.copies_directly())
        .collect();
    if picked.is_empty() {
        return Err(ExportError::NothingSelected);
    }
    if picked.len() > 1 && !opts.path_template.contains("<TABLE>") {
        return Err(ExportError::OnSegment(format!(
            "{} tables are selected: the path must contain <TABLE> so that each gets its own files",
            picked.len()
        )));
    }
    if opts.columns.is_some() && picked.len() != 1 {
        return Err(ExportError::PortionNeedsOneTable(
            picked.iter().map(|r| r.display()).collect(),
        ));
    }
    leader.lock(
        &picked
            .iter()
            .filter(|r| r.kind.lockable())
            .map(|r| r.qualified())
            .collect::<Vec<_>>(),
    )?;
    let options = opts.format.sql_options();
    Ok(picked
        .iter()
        .map(|r| {
            let path = opts
                .path_template
                .replace("<TABLE>", &naming::table_stem(&r.schema, &r.name));
            let sql = segment_io::copy_to_sql(
                &r.qualified(),
                opts.columns.as_deref(),
                SegmentEnd::File(&path),
                &options,
            );
            Work {
                label: r.display(),
                path,
                sql,
            }
        })
        .collect())
}

/// `opts.jobs` sessions on the snapshot run the tables' statements; the rows per table.
fn export_all(
    opts: &OnSegmentOptions,
    work: &[Work],
    snapshot_id: &str,
    interrupt: &Interrupt,
    cancels: &Cancels,
) -> Result<Vec<u64>, ExportError> {
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..work.len() {
        tx.send(i).expect("open channel");
    }
    drop(tx);
    let results: Vec<Result<(usize, u64), ExportError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..opts.jobs.clamp(1, work.len()))
            .map(|_| {
                let rx = rx.clone();
                scope.spawn(move || worker(opts, work, snapshot_id, interrupt, cancels, rx))
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(ExportError::OnSegment("a worker panicked".into()))]
                })
            })
            .collect()
    });
    let mut rows = vec![0u64; work.len()];
    for r in results {
        let (i, n) = r?;
        rows[i] = n;
    }
    Ok(rows)
}

/// One session: imports the snapshot, then runs tables' statements until none is left, the
/// run is stopped, or one fails.
fn worker(
    opts: &OnSegmentOptions,
    work: &[Work],
    snapshot_id: &str,
    interrupt: &Interrupt,
    cancels: &Cancels,
    rx: crossbeam_channel::Receiver<usize>,
) -> Vec<Result<(usize, u64), ExportError>> {
    let mut client = match cluster::connect(&opts.conn) {
        Ok(c) => c,
        Err(e) => return vec![Err(ExportError::Cluster(e))],
    };
    // Registered before the flag is read: a signal either finds the token or is seen below.
    cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(client.cancel_token());
    if let Err(e) = snapshot::import(&mut client, snapshot_id) {
        return vec![Err(ExportError::Cluster(e))];
    }
    let mut out = Vec::new();
    for i in rx.iter() {
        if interrupt.requested() {
            out.push(Err(ExportError::Interrupted));
            break;
        }
        let w = &work[i];
        if opts.verbose {
            logline::say!("cbcopyout: {}", w.sql);
        }
        match segment_io::run(&mut client, &w.sql, &w.label) {
            Ok(rows) => out.push(Ok((i, rows))),
            Err(e) => {
                out.push(Err(ExportError::Cluster(e)));
                break;
            }
        }
    }
    // A read-only transaction ended, so the server logs no "unexpected EOF".
    let _ = client.batch_execute("ROLLBACK");
    out
}

/// After a run that did not finish: every file a statement of the run may have written is
/// removed on every segment host (through a fresh session: the run's may be cancelled or
/// gone), and the final message says so, or names what is left when that fails.
fn remove_written(opts: &OnSegmentOptions, work: &[Work], interrupt: &Interrupt) {
    let files: Vec<String> = work.iter().map(|w| w.path.clone()).collect();
    let removed = cluster::connect(&opts.conn)
        .map_err(|e| e.to_string())
        .and_then(|mut c| {
            segment_io::remove_on_every_segment(
                &mut c,
                &files,
                &[],
                &[],
                "removing the files of the unfinished export",
            )
            .map_err(|e| cluster::error::one_line(&e))
        });
    match removed {
        Ok(()) => interrupt.set_left(
            "the files the segments had written were removed from every segment host; \
             nothing is left under a final name",
        ),
        Err(e) => interrupt.set_left(format!(
            "the segments' files of this run are incomplete and could not be removed ({e}): \
             remove {} on every segment host",
            files.join(" ")
        )),
    }
}

fn report_tables(work: &[Work], rows: Vec<u64>, server: &ServerInfo) -> Vec<SegmentTable> {
    work.iter()
        .zip(rows)
        .map(|(w, rows)| SegmentTable {
            table: w.label.clone(),
            rows,
            files: server
                .segments
                .iter()
                .map(|s| SegmentFile {
                    content: s.content,
                    host: s.hostname.clone(),
                    path: w
                        .path
                        .replace("<SEGID>", &s.content.to_string())
                        .replace("<SEG_DATA_DIR>", &s.datadir),
                })
                .collect(),
        })
        .collect()
}
