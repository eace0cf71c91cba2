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
