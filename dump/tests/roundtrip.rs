//! cbdump end to end on real PostgreSQL 15: every format restores with the stock tools (and
//! with cbrestore) to the same schema (`pg_dump -s`) and the same rows; one snapshot under
//! concurrent writes; --distribute; clear errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::{PgInstall, TestServer};

const SOURCE: &str = r#"
CREATE ROLE app_owner;
CREATE SCHEMA "Sales Dept" AUTHORIZATION app_owner;
CREATE TABLE "Sales Dept".customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE);
ALTER TABLE "Sales Dept".customers OWNER TO app_owner;
INSERT INTO "Sales Dept".customers SELECT g, 'c' || g, 'c' || g || '@x' FROM generate_series(1, 5000) g;
CREATE TABLE "Sales Dept"."Orders ""2024""" (id bigint PRIMARY KEY, customer int REFERENCES "Sales Dept".customers(id), note text, total numeric(10,2));
INSERT INTO "Sales Dept"."Orders ""2024""" SELECT g, 1 + g % 5000, CASE WHEN g % 3 = 0 THEN E'tab\there\nnewline \\. x' ELSE NULL END, g / 10.0 FROM generate_series(1, 200000) g;
CREATE INDEX orders_note ON "Sales Dept"."Orders ""2024""" (note);
COMMENT ON TABLE "Sales Dept".customers IS 'who buys';
CREATE SEQUENCE public.ticket START 100;
SELECT setval('public.ticket', 4242);
CREATE TABLE public.events (id int, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.events SELECT g, date '2024-01-01' + (g % 700), jsonb_build_object('n', g) FROM generate_series(1, 20000) g;
CREATE VIEW public.v_orders AS SELECT count(*) AS n FROM "Sales Dept"."Orders ""2024""";
CREATE MATERIALIZED VIEW public.mv AS SELECT customer, sum(total) AS total FROM "Sales Dept"."Orders ""2024""" GROUP BY customer;
CREATE FUNCTION public.double_it(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
CREATE TABLE public.gen (a int, b int GENERATED ALWAYS AS (a * 2) STORED);
INSERT INTO public.gen (a) SELECT generate_series(1, 100);
CREATE UNLOGGED TABLE public.scratchpad (k text);
INSERT INTO public.scratchpad VALUES ('u1'), ('u2');
GRANT SELECT ON public.gen TO app_owner;
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 10000), 'UTF8'));
VACUUM ANALYZE;
"#;

fn cbdump(server: &TestServer, args: &[&str]) -> Output {
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbdump"));
    cmd.env("PATH", path_with(server.install().bin_dir()))
        .args(["-d", "src"])
        .args(args)
        .output()
        .expect("running cbdump")
}

/// PATH with the server's own client programs first.
fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn ok(out: &Output) -> String {
    testkit::success(out, "command")
}

fn fingerprints(server: &TestServer, db: &str) -> BTreeMap<String, String> {
    let mut out = server.table_fingerprints(db, &['r', 'm']);
    out.insert("large objects".into(), server.large_object_fingerprint(db));
    let seq: i64 = server
        .client(db)
        .query_one("SELECT last_value FROM public.ticket", &[])
        .unwrap()
        .get(0);
    out.insert("sequence".into(), seq.to_string());
    out
}

fn schema_of(server: &TestServer, db: &str) -> String {
    server.schema_dump(db)
}

fn source() -> TestServer {
    let s = TestServer::start();
    s.create_db("src");
    s.psql("src", SOURCE);
    s
}

fn restore_with(server: &TestServer, tool: &str, args: &[&str], db: &str, input: &Path) {
    server.create_db(db);
    let out = server
        .command(tool)
        .args(args)
        .args(["-d", db])
        .arg(input)
        .output()
        .unwrap();
    ok(&out);
}

#[test]
fn every_format_restores_to_the_same_database() {
    let server = source();
    let want = fingerprints(&server, "src");
    let want_schema = schema_of(&server, "src");
    let scratch = server.scratch().to_path_buf();

    // Directory, 2 workers (the big table is split), restored by pg_restore -j 2.
    let dir = scratch.join("shop.dir");
    let report = ok(&cbdump(
        &server,
        &["-F", "d", "-j", "2", "-f", dir.to_str().unwrap(), "--json"],
    ));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let orders = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"].as_str().unwrap().contains("Orders"))
        .unwrap()
        .clone();
    assert_eq!(orders["rows"], 200_000);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["snapshot"], report["snapshot"]);
    for t in manifest["tables"].as_array().unwrap() {
        let file = dir.join(format!("{}.dat.gz", t["dump_id"]));
        let bytes = std::fs::read(&file).unwrap();
        use sha2::Digest;
        assert_eq!(
            t["sha256"].as_str().unwrap(),
            hex::encode(sha2::Sha256::digest(&bytes))
        );
    }
    let mut cmd = server.command("pg_restore");
    cmd.args(["-j", "2", "-d", "fromdir"]).arg(&dir);
    server.create_db("fromdir");
    ok(&cmd.output().unwrap());
    assert_eq!(fingerprints(&server, "fromdir"), want);
    assert_eq!(schema_of(&server, "fromdir"), want_schema);

    // Custom, restored by pg_restore.
    let custom = scratch.join("shop.dump");
    ok(&cbdump(
        &server,
        &["-F", "c", "-Z", "1", "-f", custom.to_str().unwrap()],
    ));
    restore_with(&server, "pg_restore", &[], "fromcustom", &custom);
    assert_eq!(fingerprints(&server, "fromcustom"), want);
    assert_eq!(schema_of(&server, "fromcustom"), want_schema);

    // Plain (zstd-compressed script), loaded by psql.
    let plain = scratch.join("shop.sql.zst");
    ok(&cbdump(
        &server,
        &["-F", "p", "-j", "2", "-f", plain.to_str().unwrap()],
    ));
    let sql = zstd::decode_all(std::fs::File::open(&plain).unwrap()).unwrap();
    let sqlfile = scratch.join("shop.sql");
    std::fs::write(&sqlfile, sql).unwrap();
    server.create_db("fromplain");
    let out = server
        .command("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "fromplain", "-f"])
        .arg(&sqlfile)
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(fingerprints(&server, "fromplain"), want);
    assert_eq!(schema_of(&server, "fromplain"), want_schema);

    // And cbrestore reads cbdump's archives.
    let cbrestore = testkit::workspace_bin("cbrestore");
    if cbrestore.exists() {
        server.create_db("viacbrestore");
        let mut cmd = Command::new(&cbrestore);
        server.apply_env(&mut cmd);
        ok(&cmd
            .current_dir(&scratch)
            .args(["-d", "viacbrestore", "-j", "2"])
            .arg(&dir)
            .output()
            .unwrap());
        assert_eq!(fingerprints(&server, "viacbrestore"), want);
    }

    // --distribute: the clauses are in the script.
    let dist = scratch.join("dist.sql");
    ok(&cbdump(
        &server,
        &[
            "-F",
            "p",
            "--distribute",
            "--on-conflict",
            "replicated",
            "-f",
            dist.to_str().unwrap(),
        ],
    ));
    let text = std::fs::read_to_string(&dist).unwrap();
    assert!(
        text.contains("DISTRIBUTED REPLICATED"),
        "customers has two unique keys"
    );
    assert!(text.contains("DISTRIBUTED BY (id)"));
}

#[test]
fn one_snapshot_under_concurrent_writes() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE a (id serial, pad text); CREATE TABLE b (id serial, pad text);
         INSERT INTO a (pad) SELECT repeat('a', 200) FROM generate_series(1, 150000);
         INSERT INTO b (pad) SELECT repeat('b', 200) FROM generate_series(1, 150000);",
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut c = server.client("src");
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                c.batch_execute(
                    "BEGIN; INSERT INTO a (pad) VALUES ('x'); INSERT INTO b (pad) VALUES ('y'); \
                     DELETE FROM a WHERE id = (SELECT min(id) FROM a); COMMIT;",
                )
                .unwrap();
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let dir = server.scratch().join("snap.dir");
    ok(&cbdump(
        &server,
        &["-F", "d", "-j", "2", "-f", dir.to_str().unwrap()],
    ));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    writer.join().unwrap();
    server.create_db("r");
    let mut cmd = server.command("pg_restore");
    ok(&cmd.args(["-d", "r"]).arg(&dir).output().unwrap());
    let mut c = server.client("r");
    let a: i64 = c.query_one("SELECT count(*) FROM a", &[]).unwrap().get(0);
    let b: i64 = c.query_one("SELECT count(*) FROM b", &[]).unwrap().get(0);
    let min_a: i32 = c.query_one("SELECT min(id) FROM a", &[]).unwrap().get(0);
    assert_eq!(a, 150_000);
    assert_eq!(
        (min_a - 1) as i64,
        b - 150_000,
        "a's deletions match b's insertions: one instant"
    );
}

#[test]
fn errors_are_clear_and_leave_nothing() {
    let server = source();
    let out_dir = server.scratch().join("x.dir");
    let out = cbdump(
        &server,
        &[
            "-F",
            "d",
            "--pg-dump",
            "/nonexistent/pg_dump",
            "-f",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pg_dump"));
    assert!(!out_dir.exists());

    // The output's directory is a file.
    let blocker = server.scratch().join("plainfile");
    std::fs::write(&blocker, "x").unwrap();
    let out = cbdump(
        &server,
        &["-F", "c", "-f", blocker.join("a.dump").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("plainfile"));

    // An existing output is not overwritten.
    let existing = server.scratch().join("exists.dump");
    std::fs::write(&existing, "keep").unwrap();
    let out = cbdump(&server, &["-F", "c", "-f", existing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep");

    // pg_dump failing while the data workers run: its message, exit 1, nothing left behind.
    let failing = server.scratch().join("failing_pg_dump");
    std::fs::write(
        &failing,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 99.0'; exit 0; fi\n\
         sleep 0.3; echo 'pg_dump: error: query failed: simulated catalog error' >&2; exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &failing,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .unwrap();
    let failed_dir = server.scratch().join("failed.dir");
    let out = cbdump(
        &server,
        &[
            "-F",
            "d",
            "-j",
            "2",
            "--pg-dump",
            failing.to_str().unwrap(),
            "-f",
            failed_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("simulated catalog error"), "{err}");
    assert!(!failed_dir.exists());

    // A newer server than the pg_dump given.
    if let Some(pg16) = PgInstall::major(16) {
        let newer = TestServer::start_with(&pg16);
        newer.create_db("src");
        let mut cmd = newer.tool(env!("CARGO_BIN_EXE_cbdump"));
        let out = cmd
            .args(["-d", "src", "-F", "c", "--pg-dump"])
            .arg(PgInstall::system().bin("pg_dump"))
            .arg("-f")
            .arg(newer.scratch().join("n.dump"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("newer") && err.contains("16"), "{err}");
    }
    let leftovers: Vec<PathBuf> = std::fs::read_dir(server.scratch())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".cbdump-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// cbrestore checks cbdump's manifest: --verify-only without a server, and before loading.
#[test]
fn manifest_is_verified_before_use() {
    let server = source();
    let dir = server.scratch().join("m.dir");
    ok(&cbdump(
        &server,
        &["-F", "d", "-j", "2", "-f", dir.to_str().unwrap()],
    ));
    let cbrestore = testkit::workspace_bin("cbrestore");
    if !cbrestore.exists() {
        eprintln!("skipping: cbrestore not built");
        return;
    }
    let out = Command::new(&cbrestore)
        .args(["--verify-only", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksums and row counts equal"));
    // --json is the restore's one report: every table checked against the manifest.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["status"].as_str(), report["kind"].as_str()),
        (Some("ok"), Some("archive"))
    );
    let tables = report["tables"].as_array().unwrap();
    assert!(
        !tables.is_empty() && tables.iter().all(|t| t["checksum"] == "ok"),
        "{report}"
    );
    assert!(report["total_rows"].as_u64().unwrap() > 0, "{report}");
    // Replace one data file by a valid gzip file of other rows: decompression is fine, the
    // checksum is not.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let t = &manifest["tables"][0];
    let file = dir.join(format!("{}.dat.gz", t["dump_id"]));
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&file).unwrap(),
            flate2::Compression::fast(),
        );
        e.write_all(b"\\.\n\n\n").unwrap();
        e.finish().unwrap();
    }
    let out = Command::new(&cbrestore)
        .args(["--verify-only", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "failed", "{report}");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("checksum mismatch"),
        "{report}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("checksum mismatch") && err.contains(t["table"].as_str().unwrap()),
        "{err}"
    );
    server.create_db("m");
    let mut cmd = Command::new(&cbrestore);
    server.apply_env(&mut cmd);
    let out = cmd
        .current_dir(server.scratch())
        .args(["-d", "m"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum mismatch"));
}

/// pg_dumpall's job: roles in globals.sql, every database in its own archive.
#[test]
fn all_databases_and_globals() {
    let server = source();
    server.create_db("Other DB");
    server.psql(
        "Other DB",
        "CREATE TABLE t AS SELECT generate_series(1, 10) AS x;",
    );
    let dir = server.scratch().join("cluster");
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbdump"));
    let out = cmd
        .env("PATH", path_with(server.install().bin_dir()))
        .args(["--all-databases", "-F", "c", "-f"])
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out);
    let globals = std::fs::read_to_string(dir.join("globals.sql")).unwrap();
    assert!(globals.contains("CREATE ROLE app_owner"), "{globals}");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            "%4Fther%20%44%42.dump",
            "globals.sql",
            "postgres.dump",
            "src.dump"
        ]
    );
    restore_with(
        &server,
        "pg_restore",
        &[],
        "other_copy",
        &dir.join("%4Fther%20%44%42.dump"),
    );
    let n: i64 = server
        .client("other_copy")
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 10);

    // --globals beside a single custom archive.
    let single = server.scratch().join("src.dump");
    ok(&cbdump(
        &server,
        &["-F", "c", "--globals", "-f", single.to_str().unwrap()],
    ));
    let g = std::fs::read_to_string(server.scratch().join("src.dump.globals.sql")).unwrap();
    assert!(g.contains("CREATE ROLE app_owner"));
}

/// Ctrl-C and a backend killed mid-COPY: non-zero exit, the table named, nothing left behind.
#[test]
fn interrupted_and_broken_dumps_leave_nothing() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 6) AS t FROM generate_series(1, 600000) g;",
    );
    let leftovers = |server: &TestServer| -> Vec<String> {
        std::fs::read_dir(server.scratch())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("big") || n.contains("cbdump"))
            .collect()
    };
    let out_path = server.scratch().join("big.dir");
    let spawn = || {
        let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbdump"));
        cmd.env("PATH", path_with(server.install().bin_dir()))
            .args(["-d", "src", "-F", "d", "-Z", "9", "-j", "2", "-f"])
            .arg(&out_path)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Ctrl-C once the data phase runs.
    let child = spawn();
    let mut c = server.client("postgres");
    let wait_copy = || server.wait_for_active("application_name = 'cbdump'", "COPY", 5);
    assert!(wait_copy());
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(leftovers(&server).is_empty(), "{:?}", leftovers(&server));

    // The server side of a worker goes away.
    let child = spawn();
    assert!(wait_copy());
    c.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'cbdump' AND query LIKE 'COPY%'",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("public.big"), "{err}");
    assert!(leftovers(&server).is_empty(), "{:?}", leftovers(&server));
}

/// --on-segment: refused on PostgreSQL; with the MPP catalog interface pointed at look-alike
/// tables, the statements a Cloudberry coordinator receives are gpbackup's own (PostgreSQL then
/// rejects ON SEGMENT), and the coordinator files are not left half written.
#[test]
fn on_segment_needs_cloudberry_and_sends_gpbackups_statements() {
    let server = source();
    let dir = server.scratch().join("backup");
    let out = cbdump(&server, &["--on-segment", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs Apache Cloudberry or Greenplum"),
        "{err}"
    );

    server.psql(
        "src",
        "CREATE SCHEMA fakegp;
         CREATE TABLE fakegp.gp_segment_configuration (dbid int2, content int2, role \"char\", preferred_role \"char\", mode \"char\", status \"char\", port int4, hostname text, address text, datadir text);
         INSERT INTO fakegp.gp_segment_configuration VALUES
           (1, -1, 'p', 'p', 'n', 'u', 5432, 'cdw', 'cdw', '/data/coordinator/gpseg-1'),
           (2, 0, 'p', 'p', 's', 'u', 6000, 'sdw1', 'sdw1', '/data/primary/gpseg0'),
           (3, 1, 'p', 'p', 's', 'u', 6001, 'sdw2', 'sdw2', '/data/primary/gpseg1');
         CREATE TABLE fakegp.gp_distribution_policy (localoid oid, policytype \"char\", numsegments int4, distkey int2vector, distclass oidvector);
         INSERT INTO fakegp.gp_distribution_policy VALUES ('public.gen'::regclass, 'r', 2, '', '');",
    );
    server.set_conf("log_statement", "all");
    let run = |dir: &Path| {
        let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbdump"));
        cmd.env("CBTOOLS_MPP_CATALOG_SCHEMA", "fakegp")
            .args(["-d", "src", "--pg-dump"])
            .arg(server.install().bin("pg_dump"))
            .arg("--on-segment")
            .arg(dir)
            .output()
            .unwrap()
    };
    // DIR is never created by cbdump: the segments could not write into it.
    let out = run(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must exist on every host") && err.contains("OS user"),
        "{err}"
    );
    assert!(!dir.exists());
    std::fs::create_dir(&dir).unwrap();
    let out = run(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    // PostgreSQL does not know the option; a Cloudberry coordinator does.
    assert!(err.contains("on_segment"), "{err}");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    let stmt = log
        .lines()
        .find(|l| l.contains("TO PROGRAM") && l.contains("on_segment true"))
        .expect("an ON SEGMENT statement reached the server");
    let root = dir.display().to_string();
    assert!(
        stmt.contains(&format!("mkdir -p ''{root}/gpseg<SEGID>/backups/"))
            && stmt.contains("gzip -c -1 >")
            && stmt.contains("/gpbackup_<SEGID>_")
            && stmt.contains("WITH (FORMAT csv, DELIMITER ',', on_segment true)"),
        "{stmt}"
    );
    // Nothing of the failed set is left on this host.
    assert!(walk(&dir).is_empty(), "{:?}", walk(&dir));
    // The coordinator's metadata was never renamed into place without its data.
    let toc_written = walk(&dir)
        .iter()
        .any(|p| p.to_string_lossy().ends_with("_toc.yaml"));
    assert!(
        !toc_written,
        "no toc.yaml presents a failed backup as complete"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// pagila (when ../shared is present): cbdump -F d -j 2, then pg_restore -j 2 and cbrestore -j 2.
#[test]
fn pagila_round_trip() {
    let server = TestServer::start();
    if !server.load_pagila("src") {
        return;
    }
    let tables_of = |db: &str| -> BTreeMap<String, String> {
        let mut c = server.client(db);
        let names: Vec<String> = c
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated)) AND n.nspname = 'public'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        names
            .into_iter()
            .map(|t| {
                let q = format!("SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '') FROM {t} x");
                let v: String = c.query_one(&q, &[]).unwrap().get(0);
                (t, v)
            })
            .collect()
    };
    let want = tables_of("src");
    let want_schema = schema_of(&server, "src");
    let out_dir = server.scratch().join("pagila.dir");
    ok(&cbdump(
        &server,
        &["-F", "d", "-j", "2", "-f", out_dir.to_str().unwrap()],
    ));
    server.create_db("viapg");
    let mut cmd = server.command("pg_restore");
    ok(&cmd
        .args(["-j", "2", "-d", "viapg"])
        .arg(&out_dir)
        .output()
        .unwrap());
    assert_eq!(tables_of("viapg"), want);
    assert_eq!(schema_of(&server, "viapg"), want_schema);
    let cbrestore = testkit::workspace_bin("cbrestore");
    if cbrestore.exists() {
        server.create_db("viacb");
        let mut cmd = Command::new(&cbrestore);
        server.apply_env(&mut cmd);
        ok(&cmd
            .current_dir(server.scratch())
            .args(["-d", "viacb", "-j", "2"])
            .arg(&out_dir)
            .output()
            .unwrap());
        assert_eq!(tables_of("viacb"), want);
        assert_eq!(schema_of(&server, "viacb"), want_schema);
    }
}
