//! cbclone end to end on PostgreSQL 15: a generated database and pagila cloned, compared table
//! by table and schema against the source, verified, and interrupted runs resumed.

mod common;

use common::{assert_same, clone_cmd, generated_db, ok};
use testkit::TestServer;

#[test]
fn generated_database_clones_equal_and_verifies() {
    let server = TestServer::start();
    generated_db(&server, "src");
    server.create_db("dst");
    let out = clone_cmd(
        &server,
        "src",
        "dst",
        &["-j", "3", "--verify=checksum", "--json"],
    )
    .env("XDG_STATE_HOME", server.scratch())
    .output()
    .unwrap();
    let stdout = ok(&out, "cbclone");
    assert_same(&server, "src", "dst");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let big = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.big")
        .expect("big in the report");
    assert_eq!(big["rows"], 200000);
    assert_eq!(big["format"], "binary");
    assert!(big["chunks"].as_u64().unwrap() >= 2, "{big}");
    assert_eq!(report["rows"], 200000 + 500 + 3000 + 2);
    assert_eq!(report["large_objects"], 1);
    let checked = report["verify"].as_array().unwrap();
    assert_eq!(checked.len(), 6);
    assert!(checked.iter().all(|c| c["equal"] == true));
    // Resuming a finished clone finds nothing to do and leaves the target as it was.
    let out = clone_cmd(&server, "src", "dst", &["-j", "3", "--resume", "--json"])
        .env("XDG_STATE_HOME", server.scratch())
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_str(&ok(&out, "cbclone --resume")).unwrap();
    assert!(again["tables"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["resumed"] == true));
    assert_same(&server, "src", "dst");
}

#[test]
fn verify_reports_a_difference() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 100);",
    );
    server.create_db("dst");
    ok(
        &clone_cmd(&server, "src", "dst", &["--verify"])
            .output()
            .unwrap(),
        "cbclone",
    );
    // The clone is right; a data-only clone on top doubles every row, which --verify sees.
    let out = clone_cmd(&server, "src", "dst", &["-a", "--verify=count"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("public.t: source 100, target 200"), "{err}");
}

#[test]
fn pagila_clones_equal() {
    let server = TestServer::start();
    if !server.load_pagila("pagila") {
        eprintln!("skipping pagila_clones_equal: no pagila fixture");
        return;
    }
    server.psql("pagila", "VACUUM ANALYZE;");
    server.create_db("copy");
    ok(
        &clone_cmd(&server, "pagila", "copy", &["-j", "2", "--verify=checksum"])
            .output()
            .unwrap(),
        "cbclone pagila",
    );
    assert_same(&server, "pagila", "copy");
}

#[test]
fn selection_flags_follow_pg_dump() {
    let server = TestServer::start();
    generated_db(&server, "src");
    server.create_db("dst");
    ok(
        &clone_cmd(
            &server,
            "src",
            "dst",
            &[
                "-n",
                "\"Odd Schema\"",
                "-t",
                "floats",
                "-t",
                "empty_one",
                "--exclude-table-data",
                "floats",
            ],
        )
        .output()
        .unwrap(),
        "cbclone -t",
    );
    let fp = server.table_fingerprints("dst", &['r']);
    let names: Vec<&str> = fp.keys().map(String::as_str).collect();
    // -t wins over -n, as in pg_dump; floats' definition without its rows.
    assert_eq!(names, vec!["public.empty_one", "public.floats"]);
    assert_eq!(fp["public.floats"], "0:");
}

#[test]
fn schema_only_and_exclusions() {
    let server = TestServer::start();
    generated_db(&server, "src");
    server.create_db("dst");
    let pg_restore = server.install().bin("pg_restore");
    let out = clone_cmd(
        &server,
        "src",
        "dst",
        &[
            "-s",
            "-T",
            "empty_one",
            "-N",
            "\"Odd Schema\"",
            "-v",
            "--pg-restore",
        ],
    )
    .arg(&pg_restore)
    .output()
    .unwrap();
    ok(&out, "cbclone -s");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cbclone: pre-data"),
        "-v names the steps: {stderr}"
    );
    let fp = server.table_fingerprints("dst", &['r']);
    let names: Vec<&str> = fp.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        vec![
            "public.big",
            "public.events_2024",
            "public.events_2025",
            "public.floats"
        ]
    );
    assert!(fp.values().all(|v| v == "0:"), "schema only: {fp:?}");
    // Indexes and constraints of post-data are there.
    let idx = server.psql(
        "dst",
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'big'",
    );
    assert_eq!(idx.trim(), "2");
}

#[test]
fn lock_wait_timeout_names_the_table() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE locked (a int); INSERT INTO locked VALUES (1);",
    );
    server.create_db("dst");
    let mut holder = server.client("src");
    holder
        .batch_execute("BEGIN; LOCK TABLE locked IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let out = clone_cmd(&server, "src", "dst", &["--lock-wait-timeout", "200"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("locked") && err.contains("lock timeout"),
        "{err}"
    );
    holder.batch_execute("ROLLBACK").unwrap();
}
