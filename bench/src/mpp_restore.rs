//! `cbtools-bench mpp-restore`: `cbrestore --on-segment` (every segment reads its own files)
//! against cbrestore's coordinator merge of the same set, into the same segment count and into
//! another, next to the server's own figures for the same rows in the same run: `COPY ... FROM
//! ... ON SEGMENT`, psql's `\copy` through the coordinator, and an external web table with
//! `INSERT ... SELECT`.
//!
//! Needs two MPP clusters: `CBTOOLS_TEST_MPP` (the source and same-shape target) and
//! `CBTOOLS_TEST_MPP2` (another segment count); the segments must be on this host, since the set
//! is written by the first cluster's segments into one directory here. The set is uncompressed
//! CSV (`cbdump --on-segment -Z none`), one table of int/text/numeric/timestamptz,
//! `--rows` rows (the figure: 2M). Every load is `--data-only` into an emptied table, so
//! each figure is the data path alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::measure::{run_measured, Sample};

const TABLE: &str = "public.bench_rows";

struct Cluster {
    conninfo: String,
    segments: i64,
}

impl Cluster {
    fn from_env(var: &str) -> Result<Cluster> {
        let conninfo = std::env::var(var)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .with_context(|| format!("{var} must name an MPP coordinator (e.g. host=127.0.0.1 port=7000 user=gpadmin dbname=postgres)"))?;
        let mut c = postgres::Client::connect(&conninfo, postgres::NoTls)
            .with_context(|| format!("connecting to {var}"))?;
        let segments = c
            .query_one(
                "SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0",
                &[],
            )?
            .get(0);
        Ok(Cluster { conninfo, segments })
    }

    fn db(&self, db: &str) -> String {
        format!("{} dbname={db}", self.conninfo)
    }

    fn client(&self, db: &str) -> Result<postgres::Client> {
        Ok(postgres::Client::connect(&self.db(db), postgres::NoTls)?)
    }

    fn psql(&self, db: &str, sql: &str) -> Command {
        let mut c = Command::new("psql");
        c.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &self.db(db),
            "-c",
            sql,
        ]);
        c
    }

    fn recreate_db(&self, db: &str) -> Result<()> {
        let mut c = self.client("postgres")?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))?;
        c.batch_execute(&format!("CREATE DATABASE {db}"))?;
        Ok(())
    }
}

const DDL: &str = "CREATE TABLE public.bench_rows (id int, note text, amount numeric(12,2), ts timestamptz) DISTRIBUTED BY (id)";

pub fn mpp_restore(rows: u64) -> Result<()> {
    let one = Cluster::from_env("CBTOOLS_TEST_MPP")?;
    let two = Cluster::from_env("CBTOOLS_TEST_MPP2")?;
    if one.segments == two.segments {
        bail!("CBTOOLS_TEST_MPP2 must have another segment count than CBTOOLS_TEST_MPP");
    }
    let work = PathBuf::from(format!("/tmp/cbt-mppbench-{}", std::process::id()));
    std::fs::create_dir(&work)?;
    let result = measure_all(&one, &two, &work, rows);
    let _ = std::fs::remove_dir_all(&work);
    print(&result?, rows);
    Ok(())
}

fn measure_all(
    one: &Cluster,
    two: &Cluster,
    work: &Path,
    rows: u64,
) -> Result<Vec<(String, Sample)>> {
    let set = write_set(one, work, rows)?;
    let merged = merged_csv(&set, work)?;
    let state = work.join("state");
    let mut results: Vec<(String, Sample)> = Vec::new();
    // Rounds interleave every load, so a busy moment of a shared machine hits them alike; the
    // median of each is printed.
    for _round in 0..crate::measure::rounds(5) {
        for (cluster, name) in [(one, "same"), (two, "other")] {
            let db = "cbt_bench_target";
            cluster.recreate_db(db)?;
            cluster.client(db)?.batch_execute(DDL)?;
            let label = format!("{} -> {} segments", one.segments, cluster.segments);
            let mut measure = |what: &str, cmd: Command| -> Result<()> {
                cluster
                    .client(db)?
                    .batch_execute(&format!("TRUNCATE {TABLE}"))?;
                let s = run_measured(cmd, what)?;
                check_rows(cluster, db, rows).with_context(|| format!("{label}: {what}"))?;
                results.push((format!("{label}: {what}"), s));
                Ok(())
            };
            if name == "same" {
                measure(
                    "server COPY FROM file ON SEGMENT",
                    cluster.psql(db, &raw_copy_sql(&set)),
                )?;
            }
            measure(
                "server external web table INSERT SELECT",
                web_insert(cluster, db, &set),
            )?;
            measure(
                "psql \\copy through the coordinator",
                cluster.psql(
                    db,
                    &format!("\\copy {TABLE} FROM '{}' CSV", merged.display()),
                ),
            )?;
            measure(
                "cbrestore --on-segment",
                restore(cluster, db, &set, &state, true)?,
            )?;
            measure(
                "cbrestore (coordinator merge)",
                restore(cluster, db, &set, &state, false)?,
            )?;
        }
    }
    Ok(results)
}

/// The set's segment files and coordinator directory.
struct Set {
    /// Every host's directories (what the coordinator merge reads).
    root: PathBuf,
    coordinator_dir: PathBuf,
    /// `<root>/<prefix><SEGID>/backups/<date>/<ts>/gpbackup_<SEGID>_<ts>_<oid>`.
    file_template: String,
    files: Vec<PathBuf>,
}

fn write_set(one: &Cluster, work: &Path, rows: u64) -> Result<Set> {
    use std::os::unix::fs::PermissionsExt;
    let db = "cbt_bench_source";
    one.recreate_db(db)?;
    let mut c = one.client(db)?;
    c.batch_execute(DDL)?;
    c.batch_execute(&format!(
        "INSERT INTO {TABLE} SELECT g, 'note ' || g || repeat('x', g % 40), g * 1.25, \
         '2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, {rows}) g"
    ))?;
    let root = work.join("set");
    std::fs::create_dir(&root)?;
    std::fs::set_permissions(work, std::fs::Permissions::from_mode(0o755))?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1777))?;
    let out = Command::new(crate::tool("cbdump")?)
        .args(["-d", &one.db(db), "-Z", "none", "--pg-dump"])
        .arg(
            Path::new(
                &std::env::var("CBTOOLS_TEST_MPP_BIN")
                    .unwrap_or_else(|_| "/opt/mpp/install/bin".into()),
            )
            .join("pg_dump"),
        )
        .arg("--on-segment")
        .arg(&root)
        .output()?;
    if !out.status.success() {
        bail!(
            "cbdump --on-segment: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut files: Vec<PathBuf> = walk(&root)
        .into_iter()
        .filter(|p| {
            let n = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            n.starts_with("gpbackup_") && !n.contains(".") && n.matches('_').count() == 3
        })
        .collect();
    files.sort();
    let toc = walk(&root)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("_toc.yaml"))
        .context("the set's toc")?;
    let first = files
        .first()
        .context("no data file written")?
        .to_string_lossy()
        .into_owned();
    // <root>/<prefix>0/backups/<date>/<ts>/gpbackup_0_<ts>_<oid> → <SEGID> in both places
    // (the prefix is the coordinator data directory's name: gpseg, demoDataDir, ...).
    let prefix_dir = Path::new(&first)
        .strip_prefix(&root)
        .ok()
        .and_then(|rest| rest.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|d| d.ends_with('0'))
        .context("the set's content-0 directory")?;
    let segid_dir = format!("{}<SEGID>", &prefix_dir[..prefix_dir.len() - 1]);
    let file_template = first
        .replace(&format!("/{prefix_dir}/"), &format!("/{segid_dir}/"))
        .replace("/gpbackup_0_", "/gpbackup_<SEGID>_");
    Ok(Set {
        root: root.clone(),
        coordinator_dir: toc.parent().context("toc dir")?.to_path_buf(),
        file_template,
        files,
    })
}

/// The rows as one CSV file, for `\copy` (not timed).
fn merged_csv(set: &Set, work: &Path) -> Result<PathBuf> {
    let path = work.join("merged.csv");
    let mut out = std::fs::File::create(&path)?;
    for f in &set.files {
        std::io::copy(&mut std::fs::File::open(f)?, &mut out)?;
    }
    Ok(path)
}

fn raw_copy_sql(set: &Set) -> String {
    format!(
        "COPY {TABLE} FROM '{}' WITH (FORMAT csv, on_segment true)",
        set.file_template
    )
}

/// Each segment `i` of `cluster` prints source contents `i, i+M, ...` through a web table.
fn web_insert(cluster: &Cluster, db: &str, set: &Set) -> Command {
    let m = cluster.segments;
    let n = set.files.len() as i64;
    let template = set.file_template.replace("<SEGID>", "${c}");
    let command = format!(
        "c=$GP_SEGMENT_ID; while [ $c -lt {n} ]; do cat \"{template}\" || exit 1; c=$((c+{m})); done"
    );
    let sql = format!(
        "DROP EXTERNAL TABLE IF EXISTS w; \
         CREATE EXTERNAL WEB TEMP TABLE w (id int, note text, amount numeric(12,2), ts timestamptz) \
           EXECUTE '{}' ON ALL FORMAT 'csv'; \
         INSERT INTO {TABLE} SELECT * FROM w",
        command.replace('\'', "''")
    );
    cluster.psql(db, &sql)
}

fn restore(
    cluster: &Cluster,
    db: &str,
    set: &Set,
    state: &Path,
    on_segment: bool,
) -> Result<Command> {
    let mut c = Command::new(crate::tool("cbrestore")?);
    c.args(["-d", &cluster.db(db), "--data-only", "--state-dir"])
        .arg(state);
    if on_segment {
        c.arg("--on-segment").arg(&set.coordinator_dir);
    } else {
        c.arg(&set.root);
    }
    Ok(c)
}

fn check_rows(cluster: &Cluster, db: &str, rows: u64) -> Result<()> {
    let n: i64 = cluster
        .client(db)?
        .query_one(&format!("SELECT count(*) FROM {TABLE}"), &[])?
        .get(0);
    if n as u64 != rows {
        bail!("{TABLE} holds {n} rows after the load, expected {rows}");
    }
    Ok(())
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn print(results: &[(String, Sample)], rows: u64) {
    println!(
        "mpp-restore: {rows} rows of int/text/numeric/timestamptz, uncompressed CSV set; median (min-max) of {} interleaved rounds",
        crate::measure::rounds(5)
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
