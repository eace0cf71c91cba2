//! `cbdump --on-segment DIR`: the parallel mode of an MPP server, written as a gpbackup backup
//! set in which every segment writes its own data files on its own host.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use archive::Compression;
use cluster::catalog::{self, RelKind};
use cluster::mpp::MppCatalog;
use cluster::snapshot::SnapshotLeader;

use crate::build::{DumpOptions, DumpReport, TableReport};
use crate::pgdump::{self, PgDump};
use crate::DumpError;

/// `--on-segment DIR`: a gpbackup backup set (metadata.sql, toc.yaml and config.yaml on this
/// host under `DIR/<prefix>-1/backups/<date>/<ts>`), with every segment writing its own data files
/// under `DIR/<prefix><content>/...` on its own host at the same time — what gpbackup does, so
/// cbrestore's gpbackup reader and stock gprestore can restore it. The schema comes from pg_dump
/// on the same snapshot; the statements sent are gpbackup's own.
pub(crate) fn write(
    o: &DumpOptions,
    root: &Path,
    pg_dump: &PgDump,
    mpp: &MppCatalog,
    server: &cluster::ServerInfo,
    mut leader: SnapshotLeader,
    started: Instant,
) -> Result<DumpReport, DumpError> {
    if root.exists()
        && std::fs::read_dir(root)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(DumpError::Usage(format!(
            "{} exists and is not empty",
            root.display()
        )));
    }
    // The segment directory prefix: the coordinator data directory's name without "-1".
    let coordinator = mpp
        .primaries(leader.client())?
        .into_iter()
        .find(|s| s.content == -1);
    let prefix = coordinator
        .as_ref()
        .and_then(|c| {
            Path::new(&c.datadir)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .and_then(|n| n.strip_suffix("-1").map(str::to_string))
        .unwrap_or_else(|| "gpseg".into());
    let relations = catalog::list_relations(leader.client())?;
    let mut replicated = Vec::new();
    for r in relations.iter().filter(|r| r.kind == RelKind::Table) {
        if mpp.distribution(leader.client(), r.oid)? == Some(cluster::mpp::Distribution::Replicated)
        {
            let q: String = leader
                .client()
                .query_one(
                    "SELECT quote_ident($1::text) || '.' || quote_ident($2::text)",
                    &[&r.schema, &r.name],
                )
                .map_err(cluster::ClusterError::query("quoting a table name"))?
                .get(0);
            replicated.push(q);
        }
    }
    let compression = match o.compress.unwrap_or(Compression::Gzip(1)) {
        Compression::None => gpbackup::Compression::None,
        Compression::Gzip(_) => gpbackup::Compression::Gzip,
        Compression::Zstd(_) => gpbackup::Compression::Zstd,
    };
    let ts = local_timestamp();
    let (conninfo, password) = pgdump::conninfo(&o.conn);
    let snapshot = leader.id().to_string();
    let pg_dump_cmd = || {
        let mut c = Command::new(&pg_dump.path);
        c.arg("-d")
            .arg(&conninfo)
            .arg(format!("--snapshot={snapshot}"));
        if let Some(pw) = &password {
            c.env("PGPASSWORD", pw);
        }
        c
    };
    let written = gpbackup::writer::write_backup_set(
        leader.client(),
        &pg_dump_cmd,
        root,
        &gpbackup::writer::WriterOptions {
            timestamp: ts.clone(),
            segments: server.segments.len() as u32,
            compression,
            single_data_file: false,
            layout: gpbackup::writer::WriterLayout::PerContent {
                prefix: prefix.clone(),
            },
            backup_version: format!("cbdump {}", env!("CARGO_PKG_VERSION")),
            replicated,
            base: None,
            on_segment: Some(gpbackup::writer::OnSegment { prefix }),
        },
    )
    .map_err(|e| DumpError::Data("--on-segment".into(), e.to_string()))?;
    leader.finish()?;
    Ok(DumpReport {
        tool: "cbdump",
        version: env!("CARGO_PKG_VERSION"),
        output: root.display().to_string(),
        format: "gpbackup",
        server: server.describe(),
        pg_dump: pg_dump.version.clone(),
        snapshot,
        compression: compression.name(),
        elapsed_seconds: started.elapsed().as_secs_f64(),
        total_rows: written.tables.values().map(|t| t.rows).sum(),
        total_raw_bytes: 0,
        tables: written
            .tables
            .iter()
            .map(|(name, t)| TableReport {
                table: name.clone(),
                dump_id: 0,
                rows: t.rows,
                raw_bytes: 0,
                bytes: 0,
                sha256: String::new(),
                chunks: server.segments.len(),
            })
            .collect(),
        distribution_statements_changed: 0,
    })
}

/// gpbackup's timestamp key: the local time as YYYYMMDDHHMMSS.
fn local_timestamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as libc::time_t)
        .unwrap_or(0);
    // SAFETY: localtime_r fills the struct we own from a time value we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&now, &mut tm) };
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}
