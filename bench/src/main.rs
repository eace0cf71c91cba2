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

use std::path::{Path, PathBuf};

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

fn copyout(rows: u64) -> Result<()> {
    let cb = tool("cbcopyout")?;
    println!("== cbcopyout vs psql \\copy: {rows} rows ==");
    let server = server_with_table(rows)?;
    let dir = server.scratch().to_path_buf();
    let file = |n: &str| dir.join(n);
    let psql = server.install().bin("psql");
    let env = |cmd: &mut std::process::Command| server.apply_env(cmd);

    let mut results = Vec::new();
    // Uncompressed: psql's \copy is the peer.
    let peer = run_measured(
        {
            let mut c = std::process::Command::new(&psql);
            env(&mut c);
            c.args(["-X", "-q", "-d", "bench", "-c"])
                .arg(format!("\\copy t to '{}'", file("psql.txt").display()));
            c
        },
        "psql \\copy",
    )?;
    let bytes = std::fs::metadata(file("psql.txt"))?.len();
    println!("COPY text: {:.0} MB", bytes as f64 / 1e6);
    line("psql -c '\\copy t to FILE'", &peer, None);
    for (label, extra) in [
        ("cbcopyout -o FILE (fsync)", &[][..]),
        ("cbcopyout -o FILE --no-sync", &["--no-sync"][..]),
        (
            "cbcopyout -j 2 --chunk-size 64M --no-sync",
            &["-j", "2", "--chunk-size", "64M", "--no-sync"][..],
        ),
    ] {
        let out = file("cb.txt");
        let _ = std::fs::remove_file(&out);
        let s = run_measured(
            {
                let mut c = std::process::Command::new(&cb);
                env(&mut c);
                c.args(["-d", "bench", "-t", "t", "-o"])
                    .arg(&out)
                    .args(extra);
                c
            },
            label,
        )?;
        same_size(&out, bytes)?;
        line(label, &s, Some(&peer));
        results.push(s);
    }
    // gzip -6: `psql | gzip -6` is the peer.
    let gz_peer = run_measured(
        shell(
            &server,
            &format!(
                "{} -X -q -d bench -c '\\copy t to stdout' | gzip -6 > {}",
                psql.display(),
                file("psql.txt.gz").display()
            ),
        ),
        "psql | gzip",
    )?;
    line("psql -c '\\copy t to stdout' | gzip -6", &gz_peer, None);
    for jobs in ["1", "2"] {
        let out = file(&format!("cb{jobs}.txt.gz"));
        let s = run_measured(
            {
                let mut c = std::process::Command::new(&cb);
                env(&mut c);
                c.args([
                    "-d",
                    "bench",
                    "-t",
                    "t",
                    "-j",
                    jobs,
                    "--compress",
                    "gzip:6",
                    "-o",
                ])
                .arg(&out);
                c
            },
            "cbcopyout gzip",
        )?;
        line(
            &format!("cbcopyout -j {jobs} --compress gzip:6"),
            &s,
            Some(&gz_peer),
        );
    }
    let out = file("cb2.txt.zst");
    let s = run_measured(
        {
            let mut c = std::process::Command::new(&cb);
            env(&mut c);
            c.args([
                "-d",
                "bench",
                "-t",
                "t",
                "-j",
                "2",
                "--compress",
                "zstd:3",
                "-o",
            ])
            .arg(&out);
            c
        },
        "cbcopyout zstd",
    )?;
    line("cbcopyout -j 2 --compress zstd:3", &s, Some(&gz_peer));
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
    let out = server
        .command("pg_dump")
        .args(["-d", "bench", "-f"])
        .arg(&dump)
        .output()?;
    if !out.status.success() {
        bail!("pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    }
    println!(
        "dump: {:.0} MB",
        std::fs::metadata(&dump)?.len() as f64 / 1e6
    );
    let cat = run_measured(
        shell(&server, &format!("cat {} > /dev/null", dump.display())),
        "cat",
    )?;
    line("cat dump.sql > /dev/null", &cat, None);
    let sed = run_measured(
        shell(
            &server,
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
    let outfile = server.scratch().join("fixed.sql");
    let s = run_measured(
        {
            let mut c = std::process::Command::new(&fix);
            c.arg(&dump)
                .arg("-o")
                .arg(&outfile)
                .args(["--on-conflict", "replicated"]);
            c
        },
        "cbdistfix",
    )?;
    line("cbdistfix dump.sql -o fixed.sql (fsync)", &s, Some(&cat));
    let stripped = server.scratch().join("stripped.sql");
    let s2 = run_measured(
        {
            let mut c = std::process::Command::new(&fix);
            c.arg("--strip").arg(&outfile).arg("-o").arg(&stripped);
            c
        },
        "cbdistfix --strip",
    )?;
    line("cbdistfix --strip fixed.sql", &s2, Some(&cat));
    if !measure::files_equal(&stripped, &dump)? {
        bail!("strip(rewrite(dump)) differs from the dump");
    }
    let devnull = run_measured(
        {
            let mut c = std::process::Command::new(&fix);
            c.arg(&dump)
                .args(["-o", "/dev/null", "--on-conflict", "replicated"]);
            c
        },
        "cbdistfix to /dev/null",
    )?;
    line("cbdistfix dump.sql -o /dev/null", &devnull, Some(&cat));
    println!(
        "{:<48} {:>8.2}x faster than sed (both to /dev/null)",
        "",
        sed.seconds / devnull.seconds
    );

    // A custom archive: only the TOC changes, data blocks are copied.
    let archive = server.scratch().join("dump.fc");
    let out = server
        .command("pg_dump")
        .args(["-d", "bench", "-Fc", "-Z0", "-f"])
        .arg(&archive)
        .output()?;
    if !out.status.success() {
        bail!("pg_dump -Fc: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mb = std::fs::metadata(&archive)?.len() as f64 / 1e6;
    let fixed_fc = server.scratch().join("fixed.fc");
    let s3 = run_measured(
        {
            let mut c = std::process::Command::new(&fix);
            c.arg(&archive)
                .arg("-o")
                .arg(&fixed_fc)
                .args(["--on-conflict", "replicated"]);
            c
        },
        "cbdistfix -Fc",
    )?;
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
    {
        let mut client = server.client("bench");
        let pg_dump = || {
            let mut c = server.command("pg_dump");
            c.args(["-d", "bench"]);
            c
        };
        testkit::gpset::write_backup_set(
            &mut client,
            &pg_dump,
            &root,
            &gpbackup::writer::WriterOptions {
                segments: 4,
                compression: gpbackup::Compression::Gzip,
                ..Default::default()
            },
        )?;
    }
    let csv = server.scratch().join("t.csv");
    server.psql(
        "bench",
        &format!("COPY t TO '{}' WITH (FORMAT csv)", csv.display()),
    );
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -1 -k {}", csv.display()))
        .status()?;
    if !status.success() {
        bail!("gzip failed");
    }
    println!("CSV: {:.0} MB", std::fs::metadata(&csv)?.len() as f64 / 1e6);
    // One target schema (table with its primary key), emptied before each run.
    server.create_db("target");
    let schema = server
        .command("pg_dump")
        .args(["-s", "-d", "bench"])
        .output()?;
    server.psql("target", &String::from_utf8_lossy(&schema.stdout));
    let psql = server.install().bin("psql");
    let truncate = || server.psql("target", "TRUNCATE t; CHECKPOINT;");

    truncate();
    let peer = run_measured(
        {
            let mut c = std::process::Command::new(&psql);
            server.apply_env(&mut c);
            c.args(["-X", "-q", "-d", "target", "-c"])
                .arg(format!("\\copy t from '{}' csv", csv.display()));
            c
        },
        "psql \\copy",
    )?;
    line("psql -c '\\copy t from FILE csv'", &peer, None);
    truncate();
    let zcat = run_measured(
        shell(
            &server,
            &format!(
                "zcat {}.gz | {} -X -q -d target -c '\\copy t from stdin csv'",
                csv.display(),
                psql.display()
            ),
        ),
        "zcat | psql",
    )?;
    line(
        "zcat FILE.gz | psql -c '\\copy t from stdin csv'",
        &zcat,
        Some(&peer),
    );
    for jobs in ["1", "2"] {
        truncate();
        let s = run_measured(
            {
                let mut c = std::process::Command::new(&cb);
                server.apply_env(&mut c);
                c.current_dir(server.scratch())
                    .args(["-d", "target", "--data-only", "-j", jobs])
                    .arg(&root);
                c
            },
            "cbrestore",
        )?;
        line(
            &format!("cbrestore -j {jobs} --data-only (4 gzip files)"),
            &s,
            Some(&peer),
        );
    }
    let n: i64 = server
        .client("target")
        .query_one("SELECT count(*) FROM t", &[])?
        .get(0);
    if n as u64 != rows {
        bail!("cbrestore loaded {n} rows, expected {rows}");
    }
    // The whole set into a new database: the table is created by the restore, so its rows
    // go in with FREEZE (or, split, on both workers) and the primary key is built after.
    for (i, args) in [
        &["-j", "1"][..],
        &["-j", "2", "--split-tables-larger-than", "64M"],
    ]
    .into_iter()
    .enumerate()
    {
        let db = format!("whole{i}");
        server.psql("postgres", "CHECKPOINT;");
        let s = run_measured(
            {
                let mut c = std::process::Command::new(&cb);
                server.apply_env(&mut c);
                c.current_dir(server.scratch())
                    .args(["-d", &db, "--create-db"])
                    .args(args)
                    .arg(&root);
                c
            },
            "cbrestore",
        )?;
        line(
            &format!("cbrestore {} (schema + data, new db)", args.join(" ")),
            &s,
            Some(&peer),
        );
        let n: i64 = server
            .client(&db)
            .query_one("SELECT count(*) FROM t", &[])?
            .get(0);
        if n as u64 != rows {
            bail!("cbrestore loaded {n} rows into {db}, expected {rows}");
        }
    }
    Ok(())
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
    let server = server_with_table(rows)?;
    server.psql(
        "bench",
        &format!(
            "CREATE TABLE docs (id bigint PRIMARY KEY, doc jsonb);
             INSERT INTO docs SELECT g, jsonb_build_object('n', g, 'tag', 'tag' || (g % 97), 'v', repeat('x', g % 30))
               FROM generate_series(1, {}) g;
             CREATE INDEX ON docs ((doc->>'tag'));",
            rows / 3
        ),
    );
    let dir = server.scratch().join("dump.d");
    let plain = server.scratch().join("dump.sql");
    for (fmt, path) in [("d", &dir), ("p", &plain)] {
        let out = server
            .command("pg_dump")
            .args(["-d", "bench", "-F", fmt, "-f"])
            .arg(path)
            .output()?;
        if !out.status.success() {
            bail!("pg_dump: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    // Every run starts from a checkpoint: otherwise each one pays for flushing what the
    // previous one left dirty, and the later runs (ours) would carry the earlier ones' cost.
    let fresh = |name: &str| {
        server.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}; CHECKPOINT;"),
        );
    };
    fresh("peer");
    let peer = run_measured(
        {
            let mut c = server.command("pg_restore");
            c.args(["-j", "2", "-d", "peer"]).arg(&dir);
            c
        },
        "pg_restore -j 2",
    )?;
    line("pg_restore -j 2 -Fd", &peer, None);
    fresh("viapsql");
    let psql = run_measured(
        {
            let mut c = server.command("psql");
            c.args(["-X", "-q", "-d", "viapsql", "-f"]).arg(&plain);
            c
        },
        "psql -f",
    )?;
    line("psql -f plain dump", &psql, Some(&peer));
    fresh("ours");
    let plain_ours = run_measured(
        {
            let mut c = std::process::Command::new(&cb);
            server.apply_env(&mut c);
            c.current_dir(server.scratch())
                .args(["-d", "ours"])
                .arg(&plain);
            c
        },
        "cbrestore",
    )?;
    line(
        "cbrestore plain dump (vs psql -f)",
        &plain_ours,
        Some(&psql),
    );
    for args in [
        &["-j", "1"][..],
        &["-j", "2"],
        &["-j", "2", "--split-tables-larger-than", "64M"],
    ] {
        fresh("ours");
        let s = run_measured(
            {
                let mut c = std::process::Command::new(&cb);
                server.apply_env(&mut c);
                c.current_dir(server.scratch())
                    .args(["-d", "ours"])
                    .args(args)
                    .arg(&dir);
                c
            },
            "cbrestore",
        )?;
        line(
            &format!("cbrestore {} -Fd", args.join(" ")),
            &s,
            Some(&peer),
        );
    }
    // Single runs of either tool vary by 15-25% here; three more of each, alternating, and the
    // medians.
    let (mut theirs, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        fresh("peer");
        theirs.push(run_measured(
            {
                let mut c = server.command("pg_restore");
                c.args(["-j", "2", "-d", "peer"]).arg(&dir);
                c
            },
            "pg_restore -j 2",
        )?);
        fresh("ours");
        ours.push(run_measured(
            {
                let mut c = std::process::Command::new(&cb);
                server.apply_env(&mut c);
                c.current_dir(server.scratch())
                    .args(["-d", "ours", "-j", "2"])
                    .arg(&dir);
                c
            },
            "cbrestore",
        )?);
    }
    let median = |v: &mut Vec<Sample>| {
        v.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
        v[v.len() / 2].clone()
    };
    let (peer3, ours3) = (median(&mut theirs), median(&mut ours));
    line("pg_restore -j 2 -Fd, median of 3", &peer3, None);
    line("cbrestore -j 2 -Fd, median of 3", &ours3, Some(&peer3));
    Ok(())
}

/// cbdump against pg_dump on the database (a `rows`-row table with a primary key and a
/// jsonb table a third of its size), same compression level (gzip 6, pg_dump's default).
fn dump(rows: u64) -> Result<()> {
    let cb = tool("cbdump")?;
    println!("== cbdump vs pg_dump: {rows} + {} rows ==", rows / 3);
    let server = server_with_table(rows)?;
    server.psql(
        "bench",
        &format!(
            "CREATE TABLE docs (id bigint PRIMARY KEY, doc jsonb);
             INSERT INTO docs SELECT g, jsonb_build_object('n', g, 'tag', 'tag' || (g % 97), 'v', repeat('x', g % 30))
               FROM generate_series(1, {}) g;
             VACUUM ANALYZE docs;",
            rows / 3
        ),
    );
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
        let mut c = std::process::Command::new(&cb);
        server.apply_env(&mut c);
        c.current_dir(&scratch)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    server.install().bin_dir().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
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
