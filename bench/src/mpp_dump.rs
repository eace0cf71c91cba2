//! `cbtools-bench mpp-dump`: `cbdump --on-segment` (every segment writes its own files) against
//! `cbdump -F d -j 3` through the coordinator, next to the server's own figures for the same rows
//! in the same run: `COPY ... TO '<file>' WITH (..., on_segment true)` and psql's `\copy ... TO`
//! through the coordinator.
//!
//! Needs an MPP cluster whose segments are on this host: `CBTOOLS_TEST_MPP` names its
//! coordinator, `CBTOOLS_MPP_BIN` its client programs (default: the stand-in's
//! `/opt/mpp/install/bin`). One table of int/text/numeric/timestamptz, `--rows` rows (the
//! issue's figure: 2M), everything uncompressed so that the figures are the data paths alone.
//! `CBTOOLS_BENCH_BASELINE_CBDUMP` may name another cbdump binary (an earlier build): its
//! `--on-segment` run joins every round, so a change is measured before/after in the same run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::measure::{run_measured, Sample};

const TABLE: &str = "public.bench_rows";
/// Interleaved rounds: 7 (or `CBTOOLS_BENCH_ROUNDS`). On the stand-in one run of 2M rows
/// swings 0.47-0.77 s whoever runs it: 3 rounds put cbdump at 1.30x the raw COPY where 7 gave
/// 0.95x in the same hour.
fn rounds() -> usize {
    crate::measure::rounds(7)
}
const DB: &str = "cbt_bench_dump";

fn mpp_bin(tool: &str) -> PathBuf {
    let bin = std::env::var("CBTOOLS_MPP_BIN").unwrap_or_else(|_| "/opt/mpp/install/bin".into());
    Path::new(&bin).join(tool)
}

pub fn mpp_dump(rows: u64) -> Result<()> {
    let coord = std::env::var("CBTOOLS_TEST_MPP")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .context("CBTOOLS_TEST_MPP must name an MPP coordinator (e.g. host=127.0.0.1 port=7000 user=gpadmin dbname=postgres)")?;
    let work = PathBuf::from(format!("/tmp/cbt-mppdump-{}", std::process::id()));
    std::fs::create_dir(&work)?;
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o1777))?;
    let result = prepare(&coord, rows).and_then(|()| measure_all(&coord, &work, rows));
    let _ = std::fs::remove_dir_all(&work);
    let mut admin = postgres::Client::connect(&coord, postgres::NoTls)?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB}"))?;
    print(&result?, rows);
    Ok(())
}

fn conn(coord: &str) -> String {
    format!("{coord} dbname={DB}")
}

fn prepare(coord: &str, rows: u64) -> Result<()> {
    let mut admin = postgres::Client::connect(coord, postgres::NoTls)?;
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB}"))?;
    admin.batch_execute(&format!("CREATE DATABASE {DB}"))?;
    let mut c = postgres::Client::connect(&conn(coord), postgres::NoTls)?;
    c.batch_execute(&format!(
        "CREATE TABLE {TABLE} (id int, note text, amount numeric(12,2), ts timestamptz) DISTRIBUTED BY (id); \
         INSERT INTO {TABLE} SELECT g, 'note ' || g || repeat('x', g % 40), g * 1.25, \
         '2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, {rows}) g"
    ))?;
    c.batch_execute(&format!("VACUUM ANALYZE {TABLE}"))?;
    Ok(())
}

fn psql(coord: &str, sql: &str) -> Command {
    let mut c = Command::new(mpp_bin("psql"));
    c.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        &conn(coord),
        "-c",
        sql,
    ]);
    c
}

fn measure_all(coord: &str, work: &Path, rows: u64) -> Result<Vec<(String, Sample)>> {
    let mut results = Vec::new();
    // Rounds interleave every path, so a busy moment of the shared machine hits them alike.
    for round in 0..rounds() {
        let dir = work.join(format!("r{round}"));
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))?;
        let raw = format!("{}/raw_<SEGID>.csv", dir.display());
        let s = run_measured(
            psql(
                coord,
                &format!("COPY {TABLE} TO '{raw}' WITH (FORMAT csv, on_segment true)"),
            ),
            "server COPY TO file ON SEGMENT",
        )?;
        results.push(("server COPY TO file ON SEGMENT".to_string(), s));
        let merged = dir.join("merged.csv");
        let s = run_measured(
            psql(
                coord,
                &format!("\\copy {TABLE} TO '{}' CSV", merged.display()),
            ),
            "psql \\copy TO through the coordinator",
        )?;
        check_lines(&merged, rows)?;
        results.push(("psql \\copy TO through the coordinator".to_string(), s));

        let mut on_segment = vec![(
            "cbdump --on-segment -Z none".to_string(),
            crate::tool("cbdump")?,
        )];
        if let Some(base) = std::env::var_os("CBTOOLS_BENCH_BASELINE_CBDUMP") {
            let label = format!(
                "baseline {} --on-segment -Z none",
                Path::new(&base).display()
            );
            // Alternate which goes first, so neither always runs on a warmer cache.
            let at = if round % 2 == 0 { 0 } else { 1 };
            on_segment.insert(at, (label, PathBuf::from(base)));
        }
        for (i, (label, binary)) in on_segment.into_iter().enumerate() {
            let set = dir.join(format!("set{i}"));
            std::fs::create_dir(&set)?;
            std::fs::set_permissions(&set, std::fs::Permissions::from_mode(0o1777))?;
            let mut cmd = Command::new(binary);
            cmd.args(["-d", &conn(coord), "-Z", "none", "--pg-dump"])
                .arg(mpp_bin("pg_dump"))
                .arg("--on-segment")
                .arg(&set);
            results.push((label.clone(), run_measured(cmd, &label)?));
        }

        let archive = dir.join("dir");
        let mut cmd = Command::new(crate::tool("cbdump")?);
        cmd.args([
            "-d",
            &conn(coord),
            "-F",
            "d",
            "-j",
            "3",
            "-Z",
            "none",
            "--pg-dump",
        ])
        .arg(mpp_bin("pg_dump"))
        .arg("-f")
        .arg(&archive);
        results.push((
            "cbdump -F d -j 3 -Z none (coordinator)".to_string(),
            run_measured(cmd, "cbdump -F d -j 3")?,
        ));
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(results)
}

fn check_lines(path: &Path, rows: u64) -> Result<()> {
    use std::io::BufRead;
    let n = std::io::BufReader::new(std::fs::File::open(path)?)
        .lines()
        .count() as u64;
    if n != rows {
        bail!("{}: {n} lines, expected {rows}", path.display());
    }
    Ok(())
}

fn print(results: &[(String, Sample)], rows: u64) {
    println!(
        "mpp-dump: {rows} rows of int/text/numeric/timestamptz, uncompressed; median (min-max) of {} interleaved rounds",
        rounds()
    );
    let mut labels: Vec<&String> = Vec::new();
    for (what, _) in results {
        if !labels.contains(&what) {
            labels.push(what);
        }
    }
    let width = labels.iter().map(|w| w.len()).max().unwrap_or(0);
    for what in labels {
        let mut secs: Vec<f64> = results
            .iter()
            .filter(|(w, _)| w == what)
            .map(|(_, s)| s.seconds)
            .collect();
        secs.sort_by(f64::total_cmp);
        let rss = results
            .iter()
            .filter(|(w, _)| w == what)
            .map(|(_, s)| s.max_rss_kib)
            .max()
            .unwrap_or(0);
        println!(
            "  {what:<width$}  {:>6.2} s ({:.2}-{:.2})  {:>7} KiB peak RSS",
            secs[secs.len() / 2],
            secs[0],
            secs[secs.len() - 1],
            rss
        );
    }
}
