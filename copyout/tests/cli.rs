//! cbcopyout's command line as a pg_dump user meets it (issue 15): `-?`, `--version` with the
//! inflater, usage errors exiting 2 (with pg_dump's flags refused by name and alternative), and
//! `--progress json` reporting bytes against the tables' size.

use std::process::{Command, Output};

use testkit::TestServer;

const DB: &str = "shop";

fn cbcopyout(server: &TestServer, args: &[&str]) -> Output {
    server
        .tool(env!("CARGO_BIN_EXE_cbcopyout"))
        .env("PGDATABASE", DB)
        .args(args)
        .output()
        .expect("running cbcopyout")
}

/// Usage errors need no server: they are found before connecting.
fn offline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cbcopyout"))
        .env("PGHOST", "/nonexistent")
        .args(args)
        .output()
        .expect("running cbcopyout")
}

fn usage_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn usage_errors_exit_2_and_name_the_alternative() {
    let e = usage_error(&offline(&["-t", "x", "-o", "out", "-j", "0"]));
    assert!(e.contains("at least 1"), "{e}");
    let e = usage_error(&offline(&["-t", "x"]));
    assert!(e.contains("no output given"), "{e}");
    let e = usage_error(&offline(&["-t", "x", "-o", "-", "--json"]));
    assert!(e.contains("--manifest"), "{e}");
    let e = usage_error(&offline(&["-t", "x", "-o", "d", "--split-rows", "0"]));
    assert!(e.contains("--split-rows must be at least 1"), "{e}");
    let e = usage_error(&offline(&[
        "-t",
        "x",
        "--on-segment",
        "/x/<SEGID>",
        "-o",
        "d",
    ]));
    assert!(e.contains("--on-segment writes server-side files"), "{e}");
    let e = usage_error(&offline(&["-t", "x", "-f", "out.csv"]));
    assert!(e.contains("-o DIR|FILE|-"), "{e}");
    let e = usage_error(&offline(&["-t", "x", "-o", "d", "--inserts"]));
    assert!(e.contains("pg_dump --inserts"), "{e}");
    assert!(!e.contains("similar argument"), "{e}");
    let e = usage_error(&offline(&["-t", "x", "-o", "d", "--progress", "bar"]));
    assert!(e.contains("auto"), "{e}");
}

/// A server that is not there is a failed connect, not a lost session (both have a socket
/// error under the driver's error; only the driver's words tell them apart).
#[test]
fn no_server_is_a_failed_connect() {
    let dir = tempfile::tempdir().unwrap();
    let out = offline(&["-t", "x", "-o", dir.path().to_str().unwrap()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains("\"/nonexistent\"") && e.contains("error connecting to server"),
        "{e}"
    );
    assert!(!e.contains("lost the connection"), "{e}");
}

#[test]
fn help_and_version() {
    let out = offline(&["-?"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("Usage: cbcopyout"), "{help}");
    assert!(help.contains("--progress"), "{help}");
    assert!(!help.contains("--inserts"), "{help}");
    let out = offline(&["--version"]);
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!(
            "cbcopyout {} (inflate: ",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
}

#[test]
fn progress_json_counts_bytes_against_the_tables_size() {
    let server = TestServer::start();
    server.create_db(DB);
    server.psql(
        DB,
        "CREATE TABLE a AS SELECT g AS id, repeat('x', 300) AS pad FROM generate_series(1, 300000) g;
         CREATE TABLE b AS SELECT g AS id FROM generate_series(1, 1000) g; VACUUM ANALYZE;",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = cbcopyout(
        &server,
        &[
            "-t",
            "public.*",
            "-o",
            dir.path().to_str().unwrap(),
            "--progress",
            "json",
            "-Z",
            "gzip:1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pages: i64 = server
        .client(DB)
        .query_one(
            "SELECT sum(relpages)::bigint FROM pg_class WHERE relname IN ('a', 'b')",
            &[],
        )
        .unwrap()
        .get(0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let objects: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    // The number of objects depends on the machine's speed; each one's figures do not.
    for o in &objects {
        assert_eq!(o["tool"], "cbcopyout", "{o}");
        assert_eq!(o["bytes_total"].as_i64(), Some(pages * 8192), "{o}");
        assert_eq!(o["tables"], 2, "{o}");
        assert!(o["bytes_done"].as_i64() <= o["bytes_total"].as_i64(), "{o}");
        if o["bytes_done"] == 0 {
            assert!(o["eta_seconds"].is_null(), "an ETA before any data: {o}");
        }
    }
    // The last object is the final state: every byte read, every table done.
    let last = objects.last().expect("at least the final object");
    assert_eq!(last["bytes_done"], last["bytes_total"], "{last}");
    assert_eq!(last["percent"], 100.0, "{last}");
    assert_eq!(last["tables_done"], last["tables"], "{last}");
    assert_eq!(last["in_flight"], serde_json::json!([]), "{last}");
    // Without a terminal and without --progress json, stderr has no progress at all.
    let dir2 = tempfile::tempdir().unwrap();
    let out = cbcopyout(
        &server,
        &["-t", "public.b", "-o", dir2.path().to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains('{') && !stderr.contains("ETA"), "{stderr}");
}
