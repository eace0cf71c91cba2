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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use cluster::catalog::{self, Selection};
use cluster::mpp::MppCatalog;
use cluster::segment_io::{self, SegmentEnd};
use cluster::snapshot::{self, SnapshotLeader};
use cluster::{flavor, ConnParams};

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

pub fn run(
    opts: &OnSegmentOptions,
    abort: Arc<AtomicBool>,
) -> Result<OnSegmentReport, ExportError> {
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
    let mut leader = SnapshotLeader::begin(client, &[], None)?;
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
    let work: Vec<(String, String, String)> = picked
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
            (r.display(), path, sql)
        })
        .collect();
    let snapshot_id = leader.id().to_string();
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..work.len() {
        tx.send(i).expect("open channel");
    }
    drop(tx);
    let results: Vec<Result<(usize, u64), ExportError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..opts.jobs.clamp(1, work.len()))
            .map(|_| {
                let rx = rx.clone();
                let work = &work;
                let abort = Arc::clone(&abort);
                let snapshot_id = snapshot_id.clone();
                scope.spawn(move || {
                    let mut out = Vec::new();
                    let mut client = match cluster::connect(&opts.conn)
                        .map_err(ExportError::Cluster)
                        .and_then(|mut c| {
                            snapshot::import(&mut c, &snapshot_id)
                                .map_err(ExportError::Cluster)
                                .map(|_| c)
                        }) {
                        Ok(c) => c,
                        Err(e) => return vec![Err(e)],
                    };
                    for i in rx.iter() {
                        if abort.load(Ordering::SeqCst) {
                            out.push(Err(ExportError::Interrupted));
                            break;
                        }
                        let (label, _, sql) = &work[i];
                        if opts.verbose {
                            eprintln!("cbcopyout: {sql}");
                        }
                        match segment_io::run(&mut client, sql, label) {
                            Ok(rows) => out.push(Ok((i, rows))),
                            Err(e) => {
                                out.push(Err(ExportError::Cluster(e)));
                                break;
                            }
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    });
    let mut rows = vec![0u64; work.len()];
    for r in results {
        let (i, n) = r?;
        rows[i] = n;
    }
    leader.finish()?;
    let tables = work
        .iter()
        .zip(rows)
        .map(|((label, path, _), rows)| SegmentTable {
            table: label.clone(),
            rows,
            files: server
                .segments
                .iter()
                .map(|s| SegmentFile {
                    content: s.content,
                    host: s.hostname.clone(),
                    path: path
                        .replace("<SEGID>", &s.content.to_string())
                        .replace("<SEG_DATA_DIR>", &s.datadir),
                })
                .collect(),
        })
        .collect::<Vec<_>>();
    Ok(OnSegmentReport {
        tool: "cbcopyout",
        server: server.describe(),
        snapshot: snapshot_id,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        total_rows: tables.iter().map(|t| t.rows).sum(),
        tables,
    })
}
