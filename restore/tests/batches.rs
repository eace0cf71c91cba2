//! Small statements and entries are sent in batches (one transaction, one message each, see
//! `engine.rs`'s `Batch`): a failure inside a batch must look exactly as without batches. The
//! statements before the failing one commit, the failing one is named alone (its line, its
//! entry), the ones after it run only with `--on-error-continue`, and a script's `SET` before
//! the failure stays in effect after the batch is rolled back and run again one by one.

use std::process::Output;

use testkit::TestServer;

fn cbrestore(server: &TestServer, db: &str, args: &[&str]) -> Output {
    server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-d", db])
        .args(args)
        .output()
        .expect("running cbrestore")
}

fn tables(server: &TestServer, db: &str, schema: &str) -> Vec<String> {
    server
        .client(db)
        .query(
            "SELECT tablename::text FROM pg_catalog.pg_tables WHERE schemaname = $1 ORDER BY 1",
            &[&schema],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `t001` ... `t200`, each `CREATE TABLE` on a line of its own, `t150`'s type unknown.
fn script_with_a_bad_statement(server: &TestServer) -> std::path::PathBuf {
    let mut text = String::from("CREATE SCHEMA s;\nSET search_path = s;\n");
    for i in 1..=200 {
        let ty = if i == 150 { "nosuchtype" } else { "int" };
        text.push_str(&format!("CREATE TABLE t{i:03} (a {ty});\n"));
    }
    let path = server.scratch().join("two-hundred.sql");
    std::fs::write(&path, text).unwrap();
    path
}

fn names(range: impl Iterator<Item = u32>) -> Vec<String> {
    range.map(|i| format!("t{i:03}")).collect()
}

#[test]
fn a_failure_inside_a_batch_of_a_script() {
    let server = TestServer::start();
    let script = script_with_a_bad_statement(&server);
    let path = script.to_str().unwrap();

    server.create_db("stop");
    let out = cbrestore(&server, "stop", &[path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // Line 152: the schema, the SET, then t001 on line 3.
    assert!(
        err.contains("line 152") && err.contains("nosuchtype"),
        "{err}"
    );
    // Created in schema s: the SET of the rolled-back batch was run again.
    assert_eq!(tables(&server, "stop", "s"), names(1..150));
    assert!(tables(&server, "stop", "public").is_empty());

    server.create_db("go_on");
    let out = cbrestore(&server, "go_on", &["--on-error-continue", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "errors were skipped: {err}");
    assert!(err.contains("line 152"), "{err}");
    let want: Vec<String> = names((1..150).chain(151..=200));
    assert_eq!(tables(&server, "go_on", "s"), want);
    assert!(tables(&server, "go_on", "public").is_empty());
}

#[test]
fn a_failure_inside_a_batch_of_an_archive() {
    let server = TestServer::start();
    server.create_db("src");
    let mut ddl = String::new();
    for i in 1..=150 {
        ddl.push_str(&format!(
            "CREATE TABLE public.t{i:03} (a int); COMMENT ON TABLE public.t{i:03} IS 'number {i}';\n"
        ));
    }
    server.psql("src", &ddl);
    let archive = server.scratch().join("many.dump");
    let out = server
        .command("pg_dump")
        .args(["-Fc", "-d", "src", "-f"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success());
    let path = archive.to_str().unwrap();
    // The target already has t100, with a column of another type: its CREATE fails.
    for db in ["stop", "go_on"] {
        server.create_db(db);
        server.psql(db, "CREATE TABLE public.t100 (b text);");
    }

    let out = cbrestore(&server, "stop", &["-j", "2", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("TABLE public.t100"),
        "the failing entry is named: {err}"
    );
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(tables(&server, "stop", "public"), names(1..=100));

    let out = cbrestore(&server, "go_on", &["--on-error-continue", "-j", "2", path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(tables(&server, "go_on", "public"), names(1..=150));
    let comments: i64 = server
        .client("go_on")
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_description d JOIN pg_catalog.pg_class c ON c.oid = d.objoid WHERE c.relname LIKE 't%'",
            &[],
        )
        .unwrap()
        .get(0);
    // t100's comment goes onto the table that was there (as with pg_restore).
    assert_eq!(comments, 150);
}
