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

/// `t0001` ... `t3000`, each created and given one row by its own statements (6,000 small
/// steps, about a hundred batches).
fn many_small_tables(server: &TestServer) -> String {
    let mut text = String::new();
    for i in 1..=3000 {
        text.push_str(&format!(
            "CREATE TABLE public.t{i:04} (a int);\nINSERT INTO public.t{i:04} VALUES ({i});\n"
        ));
    }
    let path = server.scratch().join("three-thousand.sql");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Killed (-9) in the middle of batches and resumed: every statement ran exactly once (a
/// batch that committed is not run again, one that did not is), whatever batch the kill hit.
#[test]
fn kill_between_and_inside_batches_then_resume() {
    let server = TestServer::start();
    let script = many_small_tables(&server);
    server.create_db("k");
    for round in 0..2 {
        let mut child = server
            .tool(env!("CARGO_BIN_EXE_cbrestore"))
            .args(["-d", "k", &script])
            .args(if round == 0 {
                &[][..]
            } else {
                &["--resume"][..]
            })
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Until some of the tables of this round exist.
        let mut c = server.client("k");
        let wanted = 600 * (round + 1);
        loop {
            let n: i64 = c
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = 'public'",
                    &[],
                )
                .unwrap()
                .get(0);
            if n >= wanted || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _ = child.kill();
        child.wait().unwrap();
    }
    let out = cbrestore(&server, "k", &["--resume", &script]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = server.client("k");
    let tables = tables(&server, "k", "public");
    assert_eq!(
        tables,
        (1..=3000).map(|i| format!("t{i:04}")).collect::<Vec<_>>()
    );
    for t in tables {
        let (n, sum): (i64, i64) = {
            let r = c
                .query_one(
                    &format!("SELECT count(*), coalesce(sum(a), 0)::int8 FROM public.{t}"),
                    &[],
                )
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!((n, sum), (1, t[1..].parse::<i64>().unwrap()), "{t}");
    }
}
