//! `cbtools-bench`: each cbtools command against the tool people use today, on the same data in
//! the same run, printing wall time, the ratio to the peer and peak RSS of both.
//!
//! Run on demand, not in CI: `cargo build --release --bins && target/release/cbtools-bench copyout`.
//! `--rows N` changes the size (default: the issues' 3 million rows, about 330 MB of COPY text).

mod clone;
mod measure;
mod mpp_dump;
mod mpp_restore;
mod restore_small;
mod soak;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use measure::{run_measured, shell, Sample};
use testkit::TestServer;

fn main() {
    if let Err(e) = run() {
        eprintln!("cbtools-bench: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map(String::as_str).unwrap_or("all");
    let rows: u64 = match args.iter().position(|a| a == "--rows") {
        Some(i) => args
            .get(i + 1)
            .context("--rows needs a number")?
            .parse()
            .context("--rows needs a number")?,
        None => 3_000_000,
    };
    match what {
        "copyout" => copyout(rows),
        "distfix" => distfix(rows),
        "gprestore" => gprestore(rows),
        "restore" => restore(rows),
        "dump" => dump(rows),
        "soak" => soak::soak(&args),
        "mpp-restore" => mpp_restore::mpp_restore(rows),
        "mpp-dump" => mpp_dump::mpp_dump(rows),
        "clone" => clone::clone(rows),
        "restore-small" => restore_small::restore_small(&args),
        "restore-wide" => restore_small::restore_wide(&args),
        "all" => {
            dump(rows)?;
            copyout(rows)?;
            distfix(rows)?;
            gprestore(rows)?;
            restore(rows)
        }
        other => {
            bail!("unknown benchmark {other:?}: use copyout, distfix, gprestore, restore, restore-small, restore-wide, dump, soak, mpp-restore, mpp-dump, clone or all")
        }
    }
}

fn tool(name: &str) -> Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} missing: run `cargo build --release --bins` first",
            path.display()
        );
    }
    Ok(path)
}

/// A server with one table of `rows` rows (~110 bytes of COPY text each).
fn server_with_table(rows: u64) -> Result<TestServer> {
    let server = TestServer::start();
    server.create_db("bench");
    server.psql(
        "bench",
        &format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, k text, payload text, amount numeric(12,2), at timestamptz);
             INSERT INTO t SELECT g, md5(g::text), repeat(chr(97 + (g % 26)::int), 20 + (g % 40)::int),
                                  (g % 100000) / 100.0, timestamptz '2024-01-01' + g * interval '1 second'
               FROM generate_series(1, {rows}) g;
             VACUUM ANALYZE t;"
        ),
    );
    Ok(server)
}

fn line(label: &str, s: &Sample, peer: Option<&Sample>) {
    let ratio = peer
        .map(|p| format!("{:>6.2}x", s.seconds / p.seconds))
        .unwrap_or_else(|| "  peer ".into());
    println!(
        "{label:<48} {:>8.2} s {ratio}  peak RSS {:>7.1} MiB",
        s.seconds,
        s.max_rss_kib as f64 / 1024.0
    );
}

/// `program` pointed at `server` through its PG* variables.
fn env_command(server: &TestServer, program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    server.apply_env(&mut c);
    c
}

/// `pg_dump ARGS -f PATH`, failing with pg_dump's stderr.
fn pg_dump_file(server: &TestServer, args: &[&str], path: &Path) -> Result<()> {
    let out = server
        .command("pg_dump")
        .args(args)
        .arg("-f")
        .arg(path)
        .output()?;
    if !out.status.success() {
        bail!(
            "pg_dump {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// `cbrestore -d DB ARGS INPUT` pointed at `server`, run in its scratch directory.
fn cbrestore_into(
    server: &TestServer,
    cb: &Path,
    db: &str,
    args: &[&str],
    input: &Path,
) -> Command {
    let mut c = env_command(server, cb);
    c.current_dir(server.scratch())
        .args(["-d", db])
        .args(args)
        .arg(input);
    c
}

/// A new empty database `name` after a checkpoint. Every run starts from one: otherwise each
/// pays for flushing what the one before left dirty, and the later runs (ours) would carry the
/// earlier ones' cost.
fn fresh(server: &TestServer, name: &str) {
    server.psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}; CHECKPOINT;"),
    );
}

fn median(v: &mut [Sample]) -> Sample {
    v.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    v[v.len() / 2].clone()
}

/// `PATH` with the server's client programs first, for tools that run pg_dump themselves.
fn path_with_bin_dir(server: &TestServer) -> String {
    format!(
        "{}:{}",
        server.install().bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The issue's database: `rows` rows with a primary key, and a jsonb table a third its size.
fn issue_database(rows: u64) -> Result<TestServer> {
    with_docs(rows, "VACUUM ANALYZE docs;")
}

/// [`server_with_table`] plus a jsonb table `docs` of a third its rows, then `last` (SQL).
fn with_docs(rows: u64, last: &str) -> Result<TestServer> {
    let server = server_with_table(rows)?;
    server.psql(
        "bench",
        &format!(
            "CREATE TABLE docs (id bigint PRIMARY KEY, doc jsonb);
             INSERT INTO docs SELECT g, jsonb_build_object('n', g, 'tag', 'tag' || (g % 97), 'v', repeat('x', g % 30))
               FROM generate_series(1, {}) g;
             {last}",
            rows / 3
        ),
    );
    Ok(server)
}

fn count_t(server: &TestServer, db: &str) -> Result<i64> {
    Ok(server
        .client(db)
        .query_one("SELECT count(*) FROM t", &[])?
        .get(0))
}

fn copyout(rows: u64) -> Result<()> {
    let cb = tool("cbcopyout")?;
    println!("== cbcopyout vs psql \\copy: {rows} rows ==");
    let server = server_with_table(rows)?;
    // Uncompressed: psql's \copy is the peer.
    let (peer, bytes) = copyout_psql(&server)?;
    copyout_plain(&server, &cb, &peer, bytes)?;
    // gzip -6: `psql | gzip -6` is the peer.
    let gz_peer = copyout_psql_gzip(&server)?;
    copyout_compressed(&server, &cb, &gz_peer)
}

/// psql's `\copy t to FILE`, and the size of what it wrote.
fn copyout_psql(server: &TestServer) -> Result<(Sample, u64)> {
    let file = server.scratch().join("psql.txt");
    let mut c = env_command(server, server.install().bin("psql"));
    c.args(["-X", "-q", "-d", "bench", "-c"])
        .arg(format!("\\copy t to '{}'", file.display()));
    let peer = run_measured(c, "psql \\copy")?;
    let bytes = std::fs::metadata(&file)?.len();
    println!("COPY text: {:.0} MB", bytes as f64 / 1e6);
    line("psql -c '\\copy t to FILE'", &peer, None);
    Ok((peer, bytes))
}

/// cbcopyout to an uncompressed file, each run checked to write as many bytes as psql.
fn copyout_plain(server: &TestServer, cb: &Path, peer: &Sample, bytes: u64) -> Result<()> {
    let out = server.scratch().join("cb.txt");
    for (label, extra) in [
        ("cbcopyout -o FILE (fsync)", &[][..]),
        ("cbcopyout -o FILE --no-sync", &["--no-sync"][..]),
        (
            "cbcopyout -j 2 --chunk-size 64M --no-sync",
            &["-j", "2", "--chunk-size", "64M", "--no-sync"][..],
        ),
    ] {
        let _ = std::fs::remove_file(&out);
        let mut c = env_command(server, cb);
        c.args(["-d", "bench", "-t", "t", "-o"])
            .arg(&out)
            .args(extra);
        let s = run_measured(c, label)?;
        same_size(&out, bytes)?;
        line(label, &s, Some(peer));
    }
    Ok(())
}

fn copyout_psql_gzip(server: &TestServer) -> Result<Sample> {
    let script = format!(
        "{} -X -q -d bench -c '\\copy t to stdout' | gzip -6 > {}",
        server.install().bin("psql").display(),
        server.scratch().join("psql.txt.gz").display()
    );
    let gz_peer = run_measured(shell(server, &script), "psql | gzip")?;
    line("psql -c '\\copy t to stdout' | gzip -6", &gz_peer, None);
    Ok(gz_peer)
}

/// cbcopyout with gzip at 1 and 2 jobs and with zstd at 2, against `psql | gzip -6`.
fn copyout_compressed(server: &TestServer, cb: &Path, gz_peer: &Sample) -> Result<()> {
    for (jobs, method, out, what) in [
        ("1", "gzip:6", "cb1.txt.gz", "cbcopyout gzip"),
        ("2", "gzip:6", "cb2.txt.gz", "cbcopyout gzip"),
        ("2", "zstd:3", "cb2.txt.zst", "cbcopyout zstd"),
    ] {
        let mut c = env_command(server, cb);
        c.args([
            "-d",
            "bench",
            "-t",
            "t",
            "-j",
            jobs,
            "--compress",
            method,
            "-o",
        ])
        .arg(server.scratch().join(out));
        let s = run_measured(c, what)?;
        line(
            &format!("cbcopyout -j {jobs} --compress {method}"),
            &s,
            Some(gz_peer),
        );
    }
    Ok(())
}

fn same_size(path: &Path, bytes: u64) -> Result<()> {
    let got = std::fs::metadata(path)?.len();
    if got != bytes {
        bail!("{} has {got} bytes, psql wrote {bytes}", path.display());
    }
    Ok(())
}

/// cbdistfix on a plain dump of about 400 MB (mostly COPY data) against `cat` and the `sed -E`
/// rewrite people use by hand.
fn distfix(rows: u64) -> Result<()> {
    let fix = tool("cbdistfix")?;
    // ~130 bytes a row in the dump: 3M rows is about 400 MB.
    println!("== cbdistfix vs cat and sed: plain dump of {rows} rows ==");
    let server = server_with_table(rows)?;
    server.psql(
        "bench",
        "CREATE TABLE dim (code text PRIMARY KEY, label text UNIQUE);
         CREATE TABLE facts (id bigint, dim_code text REFERENCES dim(code), v numeric);
         CREATE INDEX ON facts (dim_code);",
    );
    let dump = server.scratch().join("dump.sql");
    pg_dump_file(&server, &["-d", "bench"], &dump)?;
    println!(
        "dump: {:.0} MB",
        std::fs::metadata(&dump)?.len() as f64 / 1e6
    );
    let (cat, sed) = distfix_peers(&server, &dump)?;
    distfix_round_trip(&server, &fix, &dump, &cat)?;
    distfix_devnull(&fix, &dump, &cat, &sed)?;
    distfix_custom(&server, &fix)
}

/// `cat` (reading the dump, the floor) and the `sed -E` rewrite, both to /dev/null.
fn distfix_peers(server: &TestServer, dump: &Path) -> Result<(Sample, Sample)> {
    let cat = run_measured(
        shell(server, &format!("cat {} > /dev/null", dump.display())),
        "cat",
    )?;
    line("cat dump.sql > /dev/null", &cat, None);
    let sed = run_measured(
        shell(
            server,
            &format!(
                "sed -E '/^CREATE TABLE/,/^\\);$/ s/^\\);$/) DISTRIBUTED RANDOMLY;/' {} > /dev/null",
                dump.display(),
            ),
        ),
        "sed",
    )?;
    line(
        "sed -E (CREATE TABLE ... ); -> DISTRIBUTED) > /dev/null",
        &sed,
        None,
    );
    Ok((cat, sed))
}

/// `cbdistfix INPUT -o OUTPUT --on-conflict replicated`.
fn distfix_rewrite(fix: &Path, input: &Path, output: &Path) -> Command {
    let mut c = Command::new(fix);
    c.arg(input)
        .arg("-o")
        .arg(output)
        .args(["--on-conflict", "replicated"]);
    c
}

/// The dump rewritten, then stripped: the result must be the dump again.
fn distfix_round_trip(server: &TestServer, fix: &Path, dump: &Path, cat: &Sample) -> Result<()> {
    let outfile = server.scratch().join("fixed.sql");
    let s = run_measured(distfix_rewrite(fix, dump, &outfile), "cbdistfix")?;
    line("cbdistfix dump.sql -o fixed.sql (fsync)", &s, Some(cat));
    let stripped = server.scratch().join("stripped.sql");
    let mut c = Command::new(fix);
    c.arg("--strip").arg(&outfile).arg("-o").arg(&stripped);
    let s2 = run_measured(c, "cbdistfix --strip")?;
    line("cbdistfix --strip fixed.sql", &s2, Some(cat));
    if !measure::files_equal(&stripped, dump)? {
        bail!("strip(rewrite(dump)) differs from the dump");
    }
    Ok(())
}

/// The rewrite to /dev/null, like the sed peer.
fn distfix_devnull(fix: &Path, dump: &Path, cat: &Sample, sed: &Sample) -> Result<()> {
    let mut c = Command::new(fix);
    c.arg(dump)
        .args(["-o", "/dev/null", "--on-conflict", "replicated"]);
    let devnull = run_measured(c, "cbdistfix to /dev/null")?;
    line("cbdistfix dump.sql -o /dev/null", &devnull, Some(cat));
    println!(
        "{:<48} {:>8.2}x faster than sed (both to /dev/null)",
        "",
        sed.seconds / devnull.seconds
    );
    Ok(())
}

/// A custom archive: only the TOC changes, data blocks are copied.
fn distfix_custom(server: &TestServer, fix: &Path) -> Result<()> {
    let archive = server.scratch().join("dump.fc");
    pg_dump_file(server, &["-d", "bench", "-Fc", "-Z0"], &archive)?;
    let mb = std::fs::metadata(&archive)?.len() as f64 / 1e6;
    let fixed_fc = server.scratch().join("fixed.fc");
    let s3 = run_measured(distfix_rewrite(fix, &archive, &fixed_fc), "cbdistfix -Fc")?;
    line(&format!("cbdistfix on a {mb:.0} MB -Fc archive"), &s3, None);
    println!("{:<48} {:>8.3} s per 100 MB", "", s3.seconds / (mb / 100.0));
    Ok(())
}

/// cbrestore of a gpbackup set (rows spread over 4 contents, gzip) against `psql \copy` of the
/// same rows as one uncompressed CSV file and against `zcat | psql`, all into the same schema.
fn gprestore(rows: u64) -> Result<()> {
    let cb = tool("cbrestore")?;
    println!("== cbrestore (gpbackup set, 4 contents, gzip) vs psql \\copy: {rows} rows ==");
    let server = server_with_table(rows)?;
    let root = server.scratch().join("set");
    write_gzip_set(&server, &root)?;
    let csv = csv_and_gzip(&server)?;
    // One target schema (table with its primary key), emptied before each run.
    server.create_db("target");
    let schema = server
        .command("pg_dump")
        .args(["-s", "-d", "bench"])
        .output()?;
    server.psql("target", &String::from_utf8_lossy(&schema.stdout));
    let peer = gprestore_peers(&server, &csv)?;
    let ours = SetRuns {
        server: &server,
        cb: &cb,
        root: &root,
        peer: &peer,
        rows,
    };
    ours.data_only()?;
    ours.whole()
}

/// `bench` as a gpbackup set of 4 contents, gzip.
fn write_gzip_set(server: &TestServer, root: &Path) -> Result<()> {
    let mut client = server.client("bench");
    let pg_dump = || {
        let mut c = server.command("pg_dump");
        c.args(["-d", "bench"]);
        c
    };
    testkit::gpset::write_backup_set(
        &mut client,
        &pg_dump,
        root,
        &gpbackup::writer::WriterOptions {
            segments: 4,
            compression: gpbackup::Compression::Gzip,
            ..Default::default()
        },
    )?;
    Ok(())
}

/// `t` as one CSV file (the peers' input), with a `gzip -1` copy beside it.
fn csv_and_gzip(server: &TestServer) -> Result<PathBuf> {
    let csv = server.scratch().join("t.csv");
    server.psql(
        "bench",
        &format!("COPY t TO '{}' WITH (FORMAT csv)", csv.display()),
    );
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -1 -k {}", csv.display()))
        .status()?;
    if !status.success() {
        bail!("gzip failed");
    }
    println!("CSV: {:.0} MB", std::fs::metadata(&csv)?.len() as f64 / 1e6);
    Ok(csv)
}

fn truncate_target(server: &TestServer) {
    server.psql("target", "TRUNCATE t; CHECKPOINT;");
}

/// `psql \copy` of the CSV (the peer) and `zcat | psql` of its gzip copy, into `target`.
fn gprestore_peers(server: &TestServer, csv: &Path) -> Result<Sample> {
    let psql = server.install().bin("psql");
    truncate_target(server);
    let mut c = env_command(server, &psql);
    c.args(["-X", "-q", "-d", "target", "-c"])
        .arg(format!("\\copy t from '{}' csv", csv.display()));
    let peer = run_measured(c, "psql \\copy")?;
    line("psql -c '\\copy t from FILE csv'", &peer, None);
    truncate_target(server);
    let script = format!(
        "zcat {}.gz | {} -X -q -d target -c '\\copy t from stdin csv'",
        csv.display(),
        psql.display()
    );
    let zcat = run_measured(shell(server, &script), "zcat | psql")?;
    line(
        "zcat FILE.gz | psql -c '\\copy t from stdin csv'",
        &zcat,
        Some(&peer),
    );
    Ok(peer)
}

/// Our runs on the gpbackup set: cbrestore, the set, the peer and the rows every run must load.
struct SetRuns<'a> {
    server: &'a TestServer,
    cb: &'a Path,
    root: &'a Path,
    peer: &'a Sample,
    rows: u64,
}

impl SetRuns<'_> {
    /// cbrestore --data-only into `target` with 1 and 2 jobs; then every row is there.
    fn data_only(&self) -> Result<()> {
        for jobs in ["1", "2"] {
            truncate_target(self.server);
            let flags = ["--data-only", "-j", jobs];
            let c = cbrestore_into(self.server, self.cb, "target", &flags, self.root);
            let s = run_measured(c, "cbrestore")?;
            line(
                &format!("cbrestore -j {jobs} --data-only (4 gzip files)"),
                &s,
                Some(self.peer),
            );
        }
        let n = count_t(self.server, "target")?;
        if n as u64 != self.rows {
            bail!("cbrestore loaded {n} rows, expected {}", self.rows);
        }
        Ok(())
    }

    /// The whole set into a new database: the table is created by the restore, so its rows go
    /// in with FREEZE (or, split, on both workers) and the primary key is built after.
    fn whole(&self) -> Result<()> {
        for (i, args) in [
            &["-j", "1"][..],
            &["-j", "2", "--split-tables-larger-than", "64M"],
        ]
        .into_iter()
        .enumerate()
        {
            let db = format!("whole{i}");
            self.server.psql("postgres", "CHECKPOINT;");
            let flags = [&["--create-db"][..], args].concat();
            let c = cbrestore_into(self.server, self.cb, &db, &flags, self.root);
            let s = run_measured(c, "cbrestore")?;
            line(
                &format!("cbrestore {} (schema + data, new db)", args.join(" ")),
                &s,
                Some(self.peer),
            );
            let n = count_t(self.server, &db)?;
            if n as u64 != self.rows {
                bail!(
                    "cbrestore loaded {n} rows into {db}, expected {}",
                    self.rows
                );
            }
        }
        Ok(())
    }
}

/// cbrestore -j 2 of a pg_dump archive against pg_restore -j 2 of the same archive and psql -f
/// of the plain dump: a table of `rows` rows with a primary key plus a 1M-row jsonb table (the
/// issue's 450 MB database at the default size).
fn restore(rows: u64) -> Result<()> {
    let cb = tool("cbrestore")?;
    println!(
        "== cbrestore vs pg_restore -j 2 and psql -f: {rows} + {} rows ==",
        rows / 3
    );
    let server = with_docs(rows, "CREATE INDEX ON docs ((doc->>'tag'));")?;
    let dir = server.scratch().join("dump.d");
    let plain = server.scratch().join("dump.sql");
    pg_dump_file(&server, &["-d", "bench", "-F", "d"], &dir)?;
    pg_dump_file(&server, &["-d", "bench", "-F", "p"], &plain)?;
    let (peer, psql) = restore_peers(&server, &dir, &plain)?;
    restore_ours(&server, &cb, (&dir, &plain), (&peer, &psql))?;
    restore_medians(&server, &cb, &dir)
}

/// `pg_restore -j 2 -d peer DIR`.
fn pg_restore_peer(server: &TestServer, dir: &Path) -> Command {
    let mut c = server.command("pg_restore");
    c.args(["-j", "2", "-d", "peer"]).arg(dir);
    c
}

/// pg_restore -j 2 of the directory archive and psql -f of the plain dump.
fn restore_peers(server: &TestServer, dir: &Path, plain: &Path) -> Result<(Sample, Sample)> {
    fresh(server, "peer");
    let peer = run_measured(pg_restore_peer(server, dir), "pg_restore -j 2")?;
    line("pg_restore -j 2 -Fd", &peer, None);
    fresh(server, "viapsql");
    let mut c = server.command("psql");
    c.args(["-X", "-q", "-d", "viapsql", "-f"]).arg(plain);
    let psql = run_measured(c, "psql -f")?;
    line("psql -f plain dump", &psql, Some(&peer));
    Ok((peer, psql))
}

/// cbrestore of the plain dump (against psql -f), then of the directory archive with 1 and 2
/// jobs and split tables (against pg_restore -j 2).
fn restore_ours(
    server: &TestServer,
    cb: &Path,
    (dir, plain): (&Path, &Path),
    (peer, psql): (&Sample, &Sample),
) -> Result<()> {
    fresh(server, "ours");
    let plain_ours = run_measured(cbrestore_into(server, cb, "ours", &[], plain), "cbrestore")?;
    line("cbrestore plain dump (vs psql -f)", &plain_ours, Some(psql));
    for args in [
        &["-j", "1"][..],
        &["-j", "2"],
        &["-j", "2", "--split-tables-larger-than", "64M"],
    ] {
        fresh(server, "ours");
        let s = run_measured(cbrestore_into(server, cb, "ours", args, dir), "cbrestore")?;
        line(&format!("cbrestore {} -Fd", args.join(" ")), &s, Some(peer));
    }
    Ok(())
}

/// Single runs of either tool vary by 15-25% here; three more of each, alternating, and the
/// medians.
fn restore_medians(server: &TestServer, cb: &Path, dir: &Path) -> Result<()> {
    let (mut theirs, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        fresh(server, "peer");
        theirs.push(run_measured(
            pg_restore_peer(server, dir),
            "pg_restore -j 2",
        )?);
        fresh(server, "ours");
        let c = cbrestore_into(server, cb, "ours", &["-j", "2"], dir);
        ours.push(run_measured(c, "cbrestore")?);
    }
    let (peer3, ours3) = (median(&mut theirs), median(&mut ours));
    line("pg_restore -j 2 -Fd, median of 3", &peer3, None);
    line("cbrestore -j 2 -Fd, median of 3", &ours3, Some(&peer3));
    Ok(())
}

/// cbdump against pg_dump on the issue's database (a `rows`-row table with a primary key and a
/// jsonb table a third of its size), same compression level (gzip 6, pg_dump's default).
fn dump(rows: u64) -> Result<()> {
    let cb = tool("cbdump")?;
    println!("== cbdump vs pg_dump: {rows} + {} rows ==", rows / 3);
    let server = issue_database(rows)?;
    let scratch = server.scratch().to_path_buf();
    let pg = |args: &[&str], out: &str| -> Result<measure::Sample> {
        let mut c = server.command("pg_dump");
        c.args(["-d", "bench"])
            .args(args)
            .arg("-f")
            .arg(scratch.join(out));
        run_measured(c, "pg_dump")
    };
    let ours = |args: &[&str], out: &str| -> Result<measure::Sample> {
        let mut c = env_command(&server, &cb);
        c.current_dir(&scratch)
            .env("PATH", path_with_bin_dir(&server))
            .args(["-d", "bench"])
            .args(args)
            .arg("-f")
            .arg(scratch.join(out));
        run_measured(c, "cbdump")
    };
    let peer_d = pg(&["-Fd", "-j", "2", "-Z", "6"], "pg.dir")?;
    line("pg_dump -Fd -j 2 -Z 6", &peer_d, None);
    let s = ours(&["-F", "d", "-j", "2", "-Z", "6"], "cb.dir")?;
    line("cbdump -F d -j 2 -Z 6", &s, Some(&peer_d));
    let peer_c = pg(&["-Fc", "-Z", "6"], "pg.dump")?;
    line("pg_dump -Fc -Z 6", &peer_c, None);
    let s = ours(&["-F", "c", "-Z", "6"], "cb.dump")?;
    line("cbdump -F c -j 1 -Z 6", &s, Some(&peer_c));
    let s = ours(&["-F", "c", "-j", "2", "-Z", "6"], "cb2.dump")?;
    line("cbdump -F c -j 2 -Z 6", &s, Some(&peer_c));
    let s = ours(&["-F", "d", "-j", "2", "-Z", "1"], "cb1.dir")?;
    line("cbdump -F d -j 2 -Z 1", &s, Some(&peer_d));
    Ok(())
}
