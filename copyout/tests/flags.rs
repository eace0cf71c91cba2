//! cbcopyout's selection flags (-t, -T, -n, -N) and --lock-wait-timeout, by what they select
//! and what they refuse (issue 14: every flag run by a test).

use std::path::Path;
use std::process::Output;

use testkit::TestServer;

const DB: &str = "shop";

fn server() -> TestServer {
    let server = TestServer::start();
    server.create_db(DB);
    server.psql(
        DB,
        "CREATE SCHEMA s1; CREATE SCHEMA s2;
         CREATE TABLE s1.a (id int); INSERT INTO s1.a VALUES (1), (2);
         CREATE TABLE s1.b (id int); INSERT INTO s1.b VALUES (3);
         CREATE TABLE s2.c (id int); INSERT INTO s2.c VALUES (4);
         CREATE TABLE public.d (id int); INSERT INTO public.d VALUES (5);",
    );
    server
}

fn cbcopyout(server: &TestServer, args: &[&str], dir: &Path) -> Output {
    server
        .tool(env!("CARGO_BIN_EXE_cbcopyout"))
        .env("PGDATABASE", DB)
        .args(args)
        .arg("-o")
        .arg(format!("{}/", dir.display()))
        .output()
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn schema_and_table_patterns_select_and_exclude() {
    let server = server();
    let cases: &[(&[&str], &[&str])] = &[
        (&["-n", "s1", "-T", "s1.b"], &["s1.a.txt"]),
        (
            &["--schema", "s*", "--exclude-table", "s1.*"],
            &["s2.c.txt"],
        ),
        (&["-N", "s1"], &["public.d.txt", "s2.c.txt"]),
        (&["--exclude-schema", "s?"], &["public.d.txt"]),
        (
            &["-t", "s1.b", "--table", "d"],
            &["public.d.txt", "s1.b.txt"],
        ),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let dir = server.scratch().join(format!("sel{i}"));
        let out = cbcopyout(&server, args, &dir);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(files(&dir), *want, "{args:?}");
    }
    let one = std::fs::read_to_string(server.scratch().join("sel0/s1.a.txt")).unwrap();
    assert_eq!(one, "1\n2\n");
}

#[test]
fn lock_wait_timeout_fails_instead_of_waiting_and_leaves_nothing() {
    let server = server();
    let mut holder = server.client(DB);
    holder
        .batch_execute("BEGIN; LOCK TABLE public.d IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let dir = server.scratch().join("locked");
    let out = cbcopyout(&server, &["-t", "d", "--lock-wait-timeout", "200"], &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // The leader's catalog read (pg_relation_size of every table) is what meets the lock
    // first, so the message says "lock timeout" but not which table (see the notes).
    assert!(err.contains("lock timeout"), "{err}");
    assert_eq!(files(&dir), Vec::<String>::new());
    holder.batch_execute("COMMIT").unwrap();
    // Once the lock is gone the same command works.
    let out = cbcopyout(&server, &["-t", "d", "--lock-wait-timeout", "200"], &dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files(&dir), vec!["public.d.txt".to_string()]);
}
