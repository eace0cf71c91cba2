//! `--on-error-continue` when the server would refuse a table's COPY before its first row (the
//! table missing because its CREATE failed, or with other columns): that table is reported,
//! and every other table still loads, on the same connection, as pg_restore and psql do.
//!
//! The `postgres` crate loses the connection when a COPY is refused at its start (it sends a
//! second Sync; rust-postgres PR #1337); before the catalog check in `load::Facts::refusal`
//! the tables after the refused one failed with "connection closed" and stayed empty.

use std::path::{Path, PathBuf};
use std::process::Output;

use testkit::TestServer;

fn cbrestore(server: &TestServer, args: &[&str], input: &Path) -> Output {
    server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(args)
        .arg(input)
        .output()
        .expect("running cbrestore")
}

fn count(server: &TestServer, db: &str, table: &str) -> i64 {
    server
        .client(db)
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

/// `src`: `a` (100 rows), `b` (one text row), `c` (one row), `d` (50 rows), dumped as a
/// custom archive and a plain script.
fn source(server: &TestServer) -> (PathBuf, PathBuf) {
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE a (i int); INSERT INTO a SELECT generate_series(1, 100);
         CREATE TABLE b (t text); INSERT INTO b VALUES ('x');
         CREATE TABLE c (i int); INSERT INTO c VALUES (1);
         CREATE TABLE d (i int); INSERT INTO d SELECT generate_series(1, 50);",
    );
    let custom = server.scratch().join("src.dump");
    let plain = server.scratch().join("src.sql");
    for (format, path) in [("-Fc", &custom), ("-Fp", &plain)] {
        let out = server
            .command("pg_dump")
            .args([format, "-d", "src", "-f"])
            .arg(path)
            .output()
            .unwrap();
        testkit::success(&out, "pg_dump");
    }
    (custom, plain)
}

/// A target with `a`, `c`, `d` and, as `b_ddl` says, a `b` the data does not fit or none.
fn target(server: &TestServer, db: &str, b_ddl: &str) {
    server.create_db(db);
    server.psql(
        db,
        &format!("CREATE TABLE a (i int); CREATE TABLE c (i int); CREATE TABLE d (i int); {b_ddl}"),
    );
}

fn others_loaded(server: &TestServer, db: &str, out: &Output, refusal: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "errors were ignored: {stderr}");
    assert!(stderr.contains(refusal), "{stderr}");
    assert!(!stderr.contains("connection closed"), "{stderr}");
    assert_eq!(count(server, db, "a"), 100, "{stderr}");
    assert_eq!(count(server, db, "c"), 1, "{stderr}");
    assert_eq!(count(server, db, "d"), 50, "{stderr}");
}

#[test]
fn a_refused_copy_leaves_the_connection_usable() {
    let server = TestServer::start();
    let (custom, plain) = source(&server);
    let cases: [(&str, &[&str], &Path); 4] = [
        ("custom", &[], &custom),
        ("custom_j2", &["-j", "2"], &custom),
        ("plain", &[], &plain),
        ("plain_j2", &["-j", "2"], &plain),
    ];
    for (name, extra, input) in cases {
        for (kind, b_ddl, refusal) in [
            ("missing", "", "relation public.b does not exist"),
            (
                "columns",
                "CREATE TABLE b (x int);",
                "column \"t\" of relation public.b does not exist",
            ),
        ] {
            let db = format!("{name}_{kind}");
            target(&server, &db, b_ddl);
            let mut args = vec!["-a", "--on-error-continue", "-d", &db];
            args.extend_from_slice(extra);
            let out = cbrestore(&server, &args, input);
            others_loaded(&server, &db, &out, refusal);
        }
    }
}

/// Not data-only: `b`'s CREATE fails (a `b` of other columns is there), so its COPY is
/// refused; the rest of the script and archive restores.
#[test]
fn a_failed_create_then_its_refused_copy() {
    let server = TestServer::start();
    let (custom, plain) = source(&server);
    for (name, input) in [("custom", &custom), ("plain", &plain)] {
        let db = format!("whole_{name}");
        server.create_db(&db);
        server.psql(&db, "CREATE TABLE b (x int);");
        let out = cbrestore(&server, &["--on-error-continue", "-d", &db], input);
        others_loaded(&server, &db, &out, "column \"t\" of relation public.b");
    }
}
