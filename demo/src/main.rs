//! The cbtools demo: starts a throwaway PostgreSQL, builds a sample shop database (several
//! schemas, odd identifiers, partitions, a few hundred thousand rows), runs the toolkit's
//! commands against it as a user would — cbdump and cbrestore (the main job), cbcopyout,
//! cbdistfix, and cbrestore of a gpbackup set — checks what they produced, prints a summary and
//! removes everything again.
//!
//! Run with `cargo build --release --bins && cargo run --release --bin cbtools-demo` (the
//! README's demo command): the tools are the real binaries built next to this one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use testkit::TestServer;

const DB: &str = "shop";

/// Starts a throwaway PostgreSQL, builds a sample database, runs cbdump, cbrestore, cbcopyout
/// and cbdistfix against it, checks what they produced and removes everything again.
#[derive(clap::Parser)]
#[command(
    name = "cbtools-demo",
    version,
    after_help = "Needs PostgreSQL's server binaries (Debian: postgresql-15) and the cb* tools built beside\n\
                  this binary: cargo build --release --bins && cargo run --release --bin cbtools-demo"
)]
struct Cli {}

fn main() {
    let Cli {} = clap::Parser::parse();
    if let Err(e) = run() {
        eprintln!("cbtools-demo: error: {e:#}");
        std::process::exit(1);
    }
}

fn tool(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} not found: build the tools first with `cargo build --release --bins` (or `cargo build --bins` for a debug demo)",
            path.display()
        );
    }
    Ok(path)
}

fn run() -> Result<()> {
    let started = Instant::now();
    println!("== cbtools demo ==");
    let server = TestServer::start();
    println!(
        "started a throwaway PostgreSQL {} on port {} (socket in {})",
        server.install().major_version(),
        server.port(),
        server.socket_dir().display()
    );
    server.create_db(DB);
    let t = Instant::now();
    server.psql(DB, SAMPLE_SCHEMA);
    let mut client = server.client(DB);
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('r','p','m') AND n.nspname IN ('public','sales','Odd Schema')",
            &[],
        )?
        .get(0);
    println!(
        "built database {DB:?}: 3 schemas, {tables} tables (one partitioned, one materialized view), in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    dump_restore_step(&server, &mut client)?;
    copyout_step(&server, &mut client)?;
    distfix_step(&server)?;
    gprestore_step(&server, &mut client)?;

    println!(
        "\ndemo finished in {:.1}s; the server and every file are removed now",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The main job: cbdump of the whole shop (one snapshot, two workers, directory archive), then
/// cbrestore into a new database; schema (`pg_dump -s`) and every table's rows must be equal.
fn dump_restore_step(server: &TestServer, client: &mut postgres::Client) -> Result<()> {
    println!("\n-- cbdump: the whole database, one snapshot, 2 workers, directory archive");
    let dir = server.scratch().join("shop.dir");
    println!("$ cbdump -d {DB} -F d -j 2 -f shop.dir --json");
    let mut cmd = Command::new(tool("cbdump")?);
    server.apply_env(&mut cmd);
    let path = format!(
        "{}:{}",
        server.install().bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = cmd
        .env("PATH", &path)
        .args(["-d", DB, "-F", "d", "-j", "2", "-f"])
        .arg(&dir)
        .arg("--json")
        .output()
        .context("running cbdump")?;
    if !out.status.success() {
        bail!("cbdump failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    println!(
        "{} tables, {} rows, {} bytes of COPY text, snapshot {}, {:.2}s; manifest.json holds every file's sha256",
        report["tables"].as_array().map(|t| t.len()).unwrap_or(0),
        report["total_rows"],
        report["total_raw_bytes"],
        report["snapshot"].as_str().unwrap_or("?"),
        report["elapsed_seconds"].as_f64().unwrap_or(0.0)
    );
    println!("\n-- cbrestore: the archive into a new database, 2 workers");
    server.create_db("shop_copy");
    println!("$ cbrestore -d shop_copy -j 2 shop.dir");
    let mut cmd = Command::new(tool("cbrestore")?);
    server.apply_env(&mut cmd);
    let out = cmd
        .current_dir(server.scratch())
        .args(["-d", "shop_copy", "-j", "2", "--json"])
        .arg(&dir)
        .output()
        .context("running cbrestore")?;
    if !out.status.success() {
        bail!("cbrestore failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let restored: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    // Same schema, same rows.
    let schema = |db: &str| -> Result<Vec<u8>> {
        let out = server
            .command("pg_dump")
            .args(["-s", "--restrict-key", "demo", "-d", db])
            .output()?;
        Ok(out.stdout)
    };
    if schema(DB)? != schema("shop_copy")? {
        bail!("pg_dump -s of the copy differs from the source");
    }
    let mut copy = server.client("shop_copy");
    let tables: Vec<String> = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('r','m') AND n.nspname IN ('public','sales','Odd Schema')",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in &tables {
        let q = format!(
            "SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM {t} x"
        );
        let a: String = client.query_one(&q, &[])?.get(0);
        let b: String = copy.query_one(&q, &[])?.get(0);
        if a != b {
            bail!("{t} differs after dump and restore");
        }
    }
    println!(
        "{} rows restored in {:.2}s; pg_dump -s of source and copy are identical, and so are the md5 of all {} tables",
        restored["total_rows"],
        restored["elapsed_seconds"].as_f64().unwrap_or(0.0),
        tables.len()
    );
    Ok(())
}

/// cbcopyout of everything with two workers, CSV + zstd, then a check of every table's rows.
fn copyout_step(server: &TestServer, client: &mut postgres::Client) -> Result<()> {
    let out = server.scratch().join("exports");
    let manifest = server.scratch().join("exports.manifest.json");
    println!("\n-- cbcopyout: every table, 2 workers, one snapshot, CSV + zstd");
    let mut cmd = Command::new(tool("cbcopyout")?);
    server.apply_env(&mut cmd);
    cmd.args([
        "-d",
        DB,
        "-j",
        "2",
        "--format",
        "csv",
        "--header",
        "--compress",
        "zstd",
    ])
    .arg("-o")
    .arg(&out)
    .arg("--manifest")
    .arg(&manifest)
    .arg("--json");
    println!("$ cbcopyout -d {DB} -j 2 --format csv --header --compress zstd -o exports/ --manifest exports.manifest.json --json");
    let output = cmd.output().context("running cbcopyout")?;
    if !output.status.success() {
        bail!(
            "cbcopyout failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    println!(
        "{:<44} {:>9} {:>9} {:>11} check",
        "table", "rows", "in db", "file bytes"
    );
    let mut failures = 0;
    for table in report["tables"].as_array().context("report has tables")? {
        let name = table["table"].as_str().unwrap_or_default();
        let rows = table["rows"].as_i64().unwrap_or(-1);
        // Reports spell a table `schema.table`, quoted where SQL needs it: usable as it is.
        let sql = format!("SELECT count(*) FROM {name}");
        let in_db: i64 = client.query_one(&sql, &[])?.get(0);
        let ok = in_db == rows;
        failures += usize::from(!ok);
        println!(
            "{:<44} {:>9} {:>9} {:>11} {}",
            name,
            rows,
            in_db,
            table["file_bytes"],
            if ok { "ok" } else { "MISMATCH" }
        );
    }
    let files = list(&out)?;
    println!(
        "{} files, {} rows, {} bytes compressed from {} bytes of CSV, in {:.2}s",
        files.len(),
        report["total_rows"],
        report["total_file_bytes"],
        report["total_raw_bytes"],
        report["elapsed_seconds"].as_f64().unwrap_or(0.0)
    );
    if failures > 0 {
        bail!("{failures} tables exported a different number of rows than they hold");
    }
    println!("row counts: every table matches the database");
    Ok(())
}

/// pg_dump of the shop, rewritten for Cloudberry by cbdistfix, then stripped back: the strip
/// must give the original dump byte for byte.
fn distfix_step(server: &TestServer) -> Result<()> {
    println!("\n-- cbdistfix: DISTRIBUTED clauses for a PostgreSQL dump headed to Cloudberry");
    let dump = server.scratch().join("shop.sql");
    let out = server
        .command("pg_dump")
        .args(["-d", DB, "-f"])
        .arg(&dump)
        .output()
        .context("running pg_dump")?;
    if !out.status.success() {
        bail!("pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let fixed = server.scratch().join("shop.cloudberry.sql.zst");
    let report = server.scratch().join("distfix.json");
    println!("$ pg_dump -d {DB} -f shop.sql");
    println!("$ cbdistfix shop.sql -o shop.cloudberry.sql.zst --compress zstd --on-conflict replicated --report distfix.json");
    let out = Command::new(tool("cbdistfix")?)
        .arg(&dump)
        .arg("-o")
        .arg(&fixed)
        .args([
            "--compress",
            "zstd",
            "--on-conflict",
            "replicated",
            "--report",
        ])
        .arg(&report)
        .output()
        .context("running cbdistfix")?;
    if !out.status.success() {
        bail!("cbdistfix failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    print!("{}", String::from_utf8_lossy(&out.stderr));
    let stripped = server.scratch().join("shop.stripped.sql");
    println!("$ cbdistfix --strip shop.cloudberry.sql.zst -o shop.stripped.sql --compress none");
    let out = Command::new(tool("cbdistfix")?)
        .arg("--strip")
        .arg(&fixed)
        .arg("-o")
        .arg(&stripped)
        .args(["--compress", "none"])
        .output()
        .context("running cbdistfix --strip")?;
    if !out.status.success() {
        bail!(
            "cbdistfix --strip failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if std::fs::read(&stripped)? != std::fs::read(&dump)? {
        bail!("strip(rewrite(dump)) differs from the dump");
    }
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    println!(
        "{} tables got a clause; strip(rewrite(dump)) == dump, byte for byte",
        r["tables"].as_array().map(|d| d.len()).unwrap_or(0)
    );
    Ok(())
}

/// A gpbackup-style backup set of the shop spread over 4 segment contents, restored through
/// the coordinator into a new database; every table must hold the same rows.
fn gprestore_step(server: &TestServer, client: &mut postgres::Client) -> Result<()> {
    println!("\n-- cbrestore: a 4-segment gpbackup set restored through the coordinator");
    let root = server.scratch().join("gpbackup");
    let pg_dump = || {
        let mut c = server.command("pg_dump");
        c.args(["-d", DB]);
        c
    };
    let written = testkit::gpset::write_backup_set(
        client,
        &pg_dump,
        &root,
        &gpbackup::writer::WriterOptions {
            segments: 4,
            compression: gpbackup::Compression::Gzip,
            ..Default::default()
        },
    )?;
    println!(
        "wrote backup set {} like gpbackup on a 4-segment cluster: {} tables, {} files",
        written.timestamp,
        written.tables.len(),
        written.files.len()
    );
    println!("$ cbrestore -d shop_restored --create-db -j 2 --json gpbackup/");
    let mut cmd = Command::new(tool("cbrestore")?);
    server.apply_env(&mut cmd);
    let out = cmd
        .current_dir(server.scratch())
        .args(["-d", "shop_restored", "--create-db", "-j", "2", "--json"])
        .arg(&root)
        .output()
        .context("running cbrestore")?;
    if !out.status.success() {
        bail!("cbrestore failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let mut restored = server.client("shop_restored");
    let mut checked = 0;
    for t in report["tables"].as_array().context("report has tables")? {
        let name = t["table"].as_str().unwrap_or_default();
        let sql = format!("SELECT count(*) FROM {name}");
        let a: i64 = client.query_one(&sql, &[])?.get(0);
        let b: i64 = restored.query_one(&sql, &[])?.get(0);
        if a != b {
            bail!("{name}: {a} rows in the source, {b} restored");
        }
        checked += 1;
    }
    println!(
        "{} rows in {} tables from {} files, {} statements ({} translated for PostgreSQL); every table's count matches the source",
        report["total_rows"],
        checked,
        report["files_read"],
        report["statements"],
        report["translation"].as_array().map(|a| a.len()).unwrap_or(0)
    );
    Ok(())
}

fn list(dir: &Path) -> Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    v.sort();
    Ok(v)
}

/// The sample database: realistic shapes and the identifiers that break naive tools.
const SAMPLE_SCHEMA: &str = r#"
CREATE SCHEMA sales;
CREATE SCHEMA "Odd Schema";

CREATE TABLE sales.customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text UNIQUE,
    country char(2),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO sales.customers (id, name, email, country, created_at)
SELECT g, 'Customer ' || g, 'c' || g || '@example.com',
       (ARRAY['DE','FR','US','JP','BR'])[1 + g % 5],
       timestamptz '2024-01-01' + g * interval '7 minutes'
  FROM generate_series(1, 40000) g;

CREATE TABLE sales.orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES sales.customers(id),
    status text NOT NULL,
    total numeric(12,2) NOT NULL,
    note text
);
INSERT INTO sales.orders
SELECT g, 1 + g % 40000, (ARRAY['open','paid','shipped','returned'])[1 + g % 4],
       round((g % 1000) * 1.37, 2),
       CASE WHEN g % 11 = 0 THEN E'gift, "wrapped"\nsecond line' WHEN g % 13 = 0 THEN NULL ELSE '' END
  FROM generate_series(1, 250000) g;

CREATE TABLE sales.events (
    id bigint NOT NULL,
    happened date NOT NULL,
    payload jsonb
) PARTITION BY RANGE (happened);
CREATE TABLE sales.events_2024 PARTITION OF sales.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE sales.events_2025 PARTITION OF sales.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO sales.events
SELECT g, date '2024-01-01' + (g % 700), jsonb_build_object('n', g, 'tag', 'ev' || g % 17)
  FROM generate_series(1, 60000) g;

CREATE TABLE public."Mixed Case" ("Id" int, "Value With Space" text);
INSERT INTO public."Mixed Case" SELECT g, E'tab\there\\back' FROM generate_series(1, 5000) g;

CREATE TABLE "Odd Schema"."table with ""quotes"" & spaces" (k text, v bytea);
INSERT INTO "Odd Schema"."table with ""quotes"" & spaces"
SELECT 'ключ ' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 3000) g;

CREATE MATERIALIZED VIEW sales.revenue_by_status AS
SELECT status, count(*) AS orders, sum(total) AS revenue FROM sales.orders GROUP BY status;

VACUUM ANALYZE;
"#;
