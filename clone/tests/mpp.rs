//! cbclone from PostgreSQL 15 into the MPP stand-in (Greenplum 7 / Cloudberry-like), when env
//! `CBTOOLS_TEST_MPP` names its coordinator: every table's fingerprint equal, `pg_dump -s` equal
//! apart from distribution clauses, `--verify=checksum` equal on both.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{generated_db, ok};
use testkit::TestServer;

fn mpp() -> Option<String> {
    match std::env::var("CBTOOLS_TEST_MPP") {
        Ok(c) if !c.trim().is_empty() => Some(c),
        _ => {
            eprintln!(
                "SKIPPED: CBTOOLS_TEST_MPP is not set (the MPP stand-in's coordinator conninfo)"
            );
            None
        }
    }
}

/// A database of its own on the MPP coordinator, dropped afterwards.
struct MppDb {
    admin: String,
    name: String,
}

impl MppDb {
    fn create(admin: &str, name: &str) -> MppDb {
        let mut c = postgres::Client::connect(admin, postgres::NoTls).expect("MPP coordinator");
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        MppDb {
            admin: admin.to_string(),
            name: name.to_string(),
        }
    }

    fn conninfo(&self) -> String {
        format!("{} dbname={}", self.admin, self.name)
    }
}

impl Drop for MppDb {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

/// testkit's fingerprint (rows and md5 of the sorted row texts) for any server.
fn fingerprints(conninfo: &str) -> BTreeMap<String, String> {
    let mut c = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    c.batch_execute("SET DateStyle = ISO; SET TimeZone = 'UTC'; SET extra_float_digits = 3")
        .unwrap();
    let tables: Vec<(String, String)> = c
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind IN ('r', 'm') AND (c.relkind <> 'm' OR c.relispopulated) \
                AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'gp_toolkit') \
                AND n.nspname !~ '^pg_' ",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    tables
        .into_iter()
        .map(|(s, t)| {
            let q = format!(
                "SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '') FROM \"{}\".\"{}\" x",
                s.replace('"', "\"\""),
                t.replace('"', "\"\"")
            );
            let v: String = c.query_one(&q, &[]).unwrap().get(0);
            (format!("{s}.{t}"), v)
        })
        .collect()
}

/// `pg_dump -s` statements with what legitimately differs removed: comments, SETs, owners and
/// distribution clauses; sorted, since two pg_dump versions may order objects differently.
/// Greenplum's pg_dump also writes `ALTER TABLE` where PostgreSQL 15's writes `ALTER TABLE
/// ONLY` for column defaults (the same statement for a table without children).
fn schema_statements(pg_dump: &str, conninfo: &str) -> Vec<String> {
    let out = Command::new(pg_dump)
        .args(["-s", "-O", "-x", "-d", conninfo])
        .output()
        .unwrap();
    let text = ok(&out, "pg_dump -s");
    let mut stmts: Vec<String> = text
        .split(";\n")
        .map(|s| {
            s.lines()
                .filter(|l| !l.starts_with("--") && !l.starts_with('\\') && !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .map(|s| s.replace("ALTER TABLE ONLY ", "ALTER TABLE "))
        .map(|s| match s.find(" DISTRIBUTED ") {
            Some(i) => s[..i].to_string(),
            None => s.replace("\nDISTRIBUTED", "").trim().to_string(),
        })
        .filter(|s| {
            !s.is_empty()
                && !s.starts_with("SET ")
                && !s.starts_with("SELECT pg_catalog.set_config")
                && !s.starts_with("DISTRIBUTED")
        })
        .collect();
    stmts.sort();
    stmts
}

#[test]
fn postgres_to_mpp_clones_equal() {
    let Some(admin) = mpp() else { return };
    let server = TestServer::start();
    generated_db(&server, "src");
    let target = MppDb::create(&admin, &format!("cbclone_t{}", std::process::id()));
    let out = common::cbclone(&server)
        .arg("--source")
        .arg(server.conn_string("src"))
        .args(["--target", &target.conninfo()])
        .args([
            "-j",
            "3",
            "-O",
            "-x",
            "--no-blobs",
            "--verify=checksum",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = ok(&out, "cbclone into the MPP stand-in");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        !report["distribution"].as_array().unwrap().is_empty(),
        "no distribution decisions: {report}"
    );
    let big = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.big")
        .expect("big in the report");
    assert_eq!(big["rows"], 200000);
    assert_eq!(big["format"], "binary", "{big}");
    assert!(report["verify"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["equal"] == true));
    let a = fingerprints(&server.conn_string("src"));
    let b = fingerprints(&target.conninfo());
    for (t, fa) in &a {
        assert_eq!(Some(fa), b.get(t), "table {t} differs");
    }
    let source_dump = server.install().bin("pg_dump");
    let mpp_dump = std::env::var("CBTOOLS_TEST_MPP_BIN")
        .map(|d| format!("{d}/pg_dump"))
        .unwrap_or_else(|_| "/opt/mpp/install/bin/pg_dump".into());
    let s = schema_statements(source_dump.to_str().unwrap(), &server.conn_string("src"));
    let t = schema_statements(&mpp_dump, &target.conninfo());
    let missing: Vec<&String> = s.iter().filter(|x| !t.contains(x)).collect();
    let extra: Vec<&String> = t.iter().filter(|x| !s.contains(x)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "schemas differ\nonly on the source:\n{missing:#?}\nonly on the target:\n{extra:#?}"
    );
}

#[test]
fn mpp_to_postgres_clones_equal() {
    let Some(admin) = mpp() else { return };
    let source = MppDb::create(&admin, &format!("cbclone_s{}", std::process::id()));
    let mut c = postgres::Client::connect(&source.conninfo(), postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE TABLE hashed (id bigint PRIMARY KEY, k text, at timestamptz) DISTRIBUTED BY (id);
         INSERT INTO hashed SELECT g, md5(g::text), timestamptz '2024-01-01' + g * interval '1 minute'
           FROM generate_series(1, 100000) g;
         CREATE TABLE ao_col (id int, v numeric, note text)
           WITH (appendonly = true, orientation = column, compresstype = zlib) DISTRIBUTED BY (id);
         INSERT INTO ao_col SELECT g, g / 7.0, repeat('n', g % 20) FROM generate_series(1, 20000) g;
         CREATE TABLE everywhere (code text PRIMARY KEY, label text) DISTRIBUTED REPLICATED;
         INSERT INTO everywhere VALUES ('a', 'alpha'), ('b', 'beta');
         CREATE TABLE scattered (x int, y text) DISTRIBUTED RANDOMLY;
         INSERT INTO scattered SELECT g, 'y' || g FROM generate_series(1, 5000) g;
         CREATE SEQUENCE s START 7; SELECT setval('s', 77);
         ANALYZE;",
    )
    .unwrap();
    let server = TestServer::start();
    server.create_db("dst");
    let bin =
        std::env::var("CBTOOLS_TEST_MPP_BIN").unwrap_or_else(|_| "/opt/mpp/install/bin".into());
    let out = common::cbclone(&server)
        .args(["--source", &source.conninfo()])
        .arg("--target")
        .arg(server.conn_string("dst"))
        .args([
            "-j",
            "3",
            "-O",
            "-x",
            "--verify=checksum",
            "--json",
            "--pg-dump",
        ])
        .arg(format!("{bin}/pg_dump"))
        .output()
        .unwrap();
    let stdout = ok(&out, "cbclone from the MPP stand-in");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        !report["translated"].as_array().unwrap().is_empty(),
        "nothing translated: {report}"
    );
    assert_eq!(report["rows"], 100000 + 20000 + 2 + 5000);
    let a = fingerprints(&source.conninfo());
    let b = fingerprints(&server.conn_string("dst"));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b);
    let seq: i64 = server
        .client("dst")
        .query_one("SELECT last_value FROM s", &[])
        .unwrap()
        .get(0);
    assert_eq!(seq, 77);
}

/// The target equals the source: every table's fingerprint, and `pg_dump -s` apart from
/// distribution clauses (`source_dump` and `target_dump` are pg_dump binaries matching each).
fn assert_clone_equal(
    source: &str,
    source_dump: &str,
    target: &str,
    target_dump: &str,
    what: &str,
) {
    let a = fingerprints(source);
    let b = fingerprints(target);
    assert!(!a.is_empty());
    for (t, fa) in &a {
        assert_eq!(Some(fa), b.get(t), "{what}: table {t} differs");
    }
    assert_eq!(a.len(), b.len(), "{what}: tables");
    let s = schema_statements(source_dump, source);
    let t = schema_statements(target_dump, target);
    let missing: Vec<&String> = s.iter().filter(|x| !t.contains(x)).collect();
    let extra: Vec<&String> = t.iter().filter(|x| !s.contains(x)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: schemas differ\nonly on the source:\n{missing:#?}\nonly on the target:\n{extra:#?}"
    );
}

fn mpp_bin(tool: &str) -> String {
    let bin =
        std::env::var("CBTOOLS_TEST_MPP_BIN").unwrap_or_else(|_| "/opt/mpp/install/bin".into());
    format!("{bin}/{tool}")
}

/// cbclone from PostgreSQL 15 into the stand-in, killed with SIGKILL at points spread over a
/// clean run's length (schema, each table's COPY, the index builds, the final pass), then
/// `--resume`d: every table's fingerprint equals the source's, `pg_dump -s` equal apart from
/// distribution clauses, no row loaded twice (the fingerprint counts rows).
#[test]
fn postgres_to_mpp_killed_anywhere_then_resumed_equals_the_source() {
    let Some(admin) = mpp() else { return };
    let server = TestServer::start();
    generated_db(&server, "src");
    let source = server.conn_string("src");
    let source_dump = server.install().bin("pg_dump");
    let clone_into = |target: &MppDb, state: &std::path::Path| {
        let mut c = common::cbclone(&server);
        c.arg("--source")
            .arg(&source)
            .args(["--target", &target.conninfo()])
            .args(["-j", "3", "-O", "-x", "--no-blobs", "--state-dir"])
            .arg(state);
        c
    };
    // How long a whole run takes here, to spread the kills over it.
    let pid = std::process::id();
    let timing = MppDb::create(&admin, &format!("cbclone_kt{pid}"));
    let started = std::time::Instant::now();
    ok(
        &clone_into(&timing, &server.scratch().join("timing"))
            .output()
            .unwrap(),
        "cbclone into the MPP stand-in",
    );
    let whole = started.elapsed();
    drop(timing);
    let mut outcomes = Vec::new();
    for (i, fraction) in [0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95].iter().enumerate() {
        let target = MppDb::create(&admin, &format!("cbclone_k{i}_{pid}"));
        let state = server.scratch().join(format!("state{i}"));
        let mut child = clone_into(&target, &state)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(*fraction));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        outcomes.push(format!("{fraction}: {status}"));
        let out = clone_into(&target, &state)
            .args(["--resume", "--verify=checksum"])
            .output()
            .unwrap();
        ok(
            &out,
            &format!("cbclone --resume after a kill at {fraction}"),
        );
        assert_clone_equal(
            &source,
            source_dump.to_str().unwrap(),
            &target.conninfo(),
            &mpp_bin("pg_dump"),
            &format!("killed at {fraction} of {whole:?}"),
        );
    }
    eprintln!(
        "{} kills over a {whole:?} run, each resumed equal: {outcomes:?}",
        outcomes.len()
    );
}

/// Per table of the public schema: policy type, key columns, access method, column encodings
/// (the segment count is the target cluster's own).
fn mpp_shape(conninfo: &str) -> Vec<(String, String, String, String, String)> {
    let mut c = postgres::Client::connect(conninfo, postgres::NoTls).unwrap();
    c.query(
        "SELECT c.relname::text, coalesce(p.policytype::text, ''), coalesce(p.distkey::text, ''), \
                coalesce(a.amname::text, ''), \
                coalesce((SELECT string_agg(e.attnum || '=' || array_to_string(e.attoptions, ','), ' ' ORDER BY e.attnum) \
                            FROM pg_attribute_encoding e WHERE e.attrelid = c.oid), '') \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           LEFT JOIN gp_distribution_policy p ON p.localoid = c.oid LEFT JOIN pg_am a ON a.oid = c.relam \
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

/// cbclone from the stand-in's 3-segment cluster into its 2-segment one (`CBTOOLS_TEST_MPP2`),
/// once killed during the big table's COPY and resumed: rows, policies (hash keys, replicated,
/// random), access methods, column encodings, partitions and a sequence equal; `pg_dump -s` of
/// both equal with their DISTRIBUTED clauses.
#[test]
fn mpp_to_mpp_three_segments_into_two() {
    let Some(admin) = mpp() else { return };
    let Some(admin2) = std::env::var("CBTOOLS_TEST_MPP2")
        .ok()
        .filter(|c| !c.trim().is_empty())
    else {
        eprintln!("SKIPPED: CBTOOLS_TEST_MPP2 is not set (a second MPP cluster's conninfo)");
        return;
    };
    let pid = std::process::id();
    let source = MppDb::create(&admin, &format!("cbclone_ms{pid}"));
    let target = MppDb::create(&admin2, &format!("cbclone_mt{pid}"));
    let mut c = postgres::Client::connect(&source.conninfo(), postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE TABLE hashed (id bigint PRIMARY KEY, k text, at timestamptz) DISTRIBUTED BY (id);
         INSERT INTO hashed SELECT g, md5(g::text), timestamptz '2024-01-01' + g * interval '1 minute'
           FROM generate_series(1, 600000) g;
         CREATE INDEX hashed_k ON hashed (k);
         CREATE TABLE two_keys (a int, b text, c numeric) DISTRIBUTED BY (b, a);
         INSERT INTO two_keys SELECT g, 'b' || (g % 97), g / 3.0 FROM generate_series(1, 20000) g;
         CREATE TABLE ao_col (id int, v numeric, note text ENCODING (compresstype=zlib, compresslevel=5))
           WITH (appendonly = true, orientation = column, compresstype = zlib) DISTRIBUTED BY (id);
         INSERT INTO ao_col SELECT g, g / 7.0, repeat('n', g % 20) FROM generate_series(1, 20000) g;
         CREATE TABLE ao_row (id int, v text) WITH (appendonly = true) DISTRIBUTED RANDOMLY;
         INSERT INTO ao_row SELECT g, 'r' || g FROM generate_series(1, 3000) g;
         CREATE TABLE everywhere (code text PRIMARY KEY, label text) DISTRIBUTED REPLICATED;
         INSERT INTO everywhere VALUES ('a', 'alpha'), ('b', 'beta');
         CREATE TABLE scattered (x int, y text) DISTRIBUTED RANDOMLY;
         INSERT INTO scattered SELECT g, 'y' || g FROM generate_series(1, 5000) g;
         CREATE TABLE parted (id int, day date, v text) DISTRIBUTED BY (id)
           PARTITION BY RANGE (day) (START (date '2024-01-01') END (date '2024-04-01') EVERY (interval '1 month'));
         INSERT INTO parted SELECT g, date '2024-01-01' + (g % 90), 'p' || g FROM generate_series(1, 9000) g;
         CREATE SEQUENCE s START 7; SELECT setval('s', 77);
         ANALYZE;",
    )
    .unwrap();
    drop(c);
    let state = tempfile::tempdir().unwrap();
    let clone = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cbclone"));
        c.args([
            "--source",
            &source.conninfo(),
            "--target",
            &target.conninfo(),
        ])
        .args(["-j", "3", "-O", "-x", "--pg-dump", &mpp_bin("pg_dump")])
        .args(["--pg-restore", &mpp_bin("pg_restore"), "--state-dir"])
        .arg(state.path());
        c
    };
    let mut child = clone()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut watch = postgres::Client::connect(&admin2, postgres::NoTls).unwrap();
    let mut seen = false;
    for _ in 0..6000 {
        let n: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' \
                   AND strpos(query, 'COPY \"public\".\"hashed\"') > 0",
                &[&target.name],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            seen = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(seen, "no COPY into hashed seen");
    child.kill().unwrap();
    child.wait().unwrap();
    let out = clone()
        .args(["--resume", "--verify=checksum", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&ok(&out, "cbclone --resume MPP into MPP")).unwrap();
    assert!(report["verify"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["equal"] == true));
    assert_eq!(mpp_shape(&source.conninfo()), mpp_shape(&target.conninfo()));
    let a = fingerprints(&source.conninfo());
    assert_eq!(a.len(), 9, "{a:?}");
    assert_eq!(a, fingerprints(&target.conninfo()));
    let dump = |conninfo: &str| {
        let out = Command::new(mpp_bin("pg_dump"))
            .args(["-s", "-O", "-x", "-d", conninfo])
            .output()
            .unwrap();
        let text = ok(&out, "pg_dump -s");
        let mut stmts: Vec<String> = text
            .split(";\n")
            .map(|s| {
                s.lines()
                    .filter(|l| !l.starts_with("--") && !l.trim().is_empty())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .filter(|s| !s.is_empty())
            .collect();
        stmts.sort();
        stmts
    };
    assert_eq!(dump(&source.conninfo()), dump(&target.conninfo()));
    let seq: i64 = postgres::Client::connect(&target.conninfo(), postgres::NoTls)
        .unwrap()
        .query_one("SELECT last_value FROM s", &[])
        .unwrap()
        .get(0);
    assert_eq!(seq, 77);
}

/// Pagila (the shared fixture) from PostgreSQL 15 into the stand-in: `rental` and `store` have
/// unique keys with no column in common with their primary keys, so `--on-conflict
/// demote-unique` is what a DBA passes (without it cbclone stops before touching the target and
/// names both tables). Killed with SIGKILL halfway and resumed: every table's fingerprint and
/// the checksum verification equal the source's; the schema differs only by the distribution
/// clauses and the two demoted unique indexes.
#[test]
fn pagila_into_mpp_killed_then_resumed_equals_the_source() {
    let Some(admin) = mpp() else { return };
    let server = TestServer::start();
    if !server.load_pagila("pagila") {
        eprintln!("SKIPPED: no pagila fixture (../shared/fixtures/pagila)");
        return;
    }
    server.psql("pagila", "VACUUM ANALYZE;");
    let source = server.conn_string("pagila");
    let target = MppDb::create(&admin, &format!("cbclone_pagila{}", std::process::id()));
    let state = server.scratch().join("pagila-state");
    let clone_into = |extra: &[&str]| {
        let mut c = common::cbclone(&server);
        c.arg("--source")
            .arg(&source)
            .args(["--target", &target.conninfo()])
            .args(["-j", "2", "-O", "-x", "--state-dir"])
            .arg(&state)
            .args(extra);
        c
    };
    let refused = clone_into(&[]).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("public.rental") && err.contains("public.store"),
        "{err}"
    );
    std::fs::remove_dir_all(&state).ok();
    let mut child = clone_into(&["--on-conflict", "demote-unique"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    child.kill().unwrap();
    let killed = child.wait().unwrap();
    let out = clone_into(&[
        "--on-conflict",
        "demote-unique",
        "--resume",
        "--verify=checksum",
    ])
    .output()
    .unwrap();
    ok(&out, &format!("cbclone --resume of pagila after {killed}"));
    let a = fingerprints(&source);
    let b = fingerprints(&target.conninfo());
    assert_eq!(a.len(), b.len(), "tables");
    for (t, fa) in &a {
        assert_eq!(Some(fa), b.get(t), "pagila table {t} differs");
    }
}
