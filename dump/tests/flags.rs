//! cbdump's selection flags (-t, -T, -n, -N), -x/--no-acl/--no-privileges, -v and
//! --lock-wait-timeout, by what the script holds (issue 14: every flag run by a test).

use std::process::Output;

use testkit::TestServer;

const DB: &str = "shop";

fn server() -> TestServer {
    let server = TestServer::start();
    server.create_db(DB);
    server.psql(
        DB,
        "CREATE ROLE reader;
         CREATE SCHEMA s1; CREATE SCHEMA s2;
         CREATE TABLE s1.a (id int); INSERT INTO s1.a VALUES (1), (2);
         CREATE TABLE s1.b (id int); INSERT INTO s1.b VALUES (3);
         CREATE TABLE s2.c (id int); INSERT INTO s2.c VALUES (4);
         CREATE TABLE public.d (id int); INSERT INTO public.d VALUES (5);
         GRANT SELECT ON public.d TO reader;",
    );
    server
}

/// cbdump's plain script on stdout.
fn cbdump(server: &TestServer, args: &[&str]) -> Output {
    server
        .tool(env!("CARGO_BIN_EXE_cbdump"))
        .env("PGDATABASE", DB)
        .args(args)
        .output()
        .unwrap()
}

fn script(out: &Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tables whose data the script loads.
fn copied(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn schema_and_table_patterns_select_and_exclude() {
    let server = server();
    let cases: &[(&[&str], &[&str])] = &[
        (&["-n", "s1", "-T", "s1.b"], &["s1.a"]),
        (&["--schema", "s*", "--exclude-table", "s1.*"], &["s2.c"]),
        (&["-N", "s1"], &["public.d", "s2.c"]),
        (&["--exclude-schema", "s?"], &["public.d"]),
        (&["-t", "s1.b", "--table", "d"], &["public.d", "s1.b"]),
    ];
    for (args, want) in cases {
        let text = script(&cbdump(&server, args), args);
        assert_eq!(copied(&text), *want, "{args:?}");
        for table in ["s1.a", "s1.b", "s2.c", "public.d"] {
            let created = text.contains(&format!("CREATE TABLE {table} "));
            assert_eq!(created, want.contains(&table), "{args:?}: {table}");
        }
    }
}

#[test]
fn no_acl_verbose_and_lock_wait_timeout() {
    let server = server();
    let with = script(&cbdump(&server, &["-t", "d"]), &[]);
    assert!(with.contains("GRANT SELECT ON TABLE public.d TO reader;"));
    for flag in ["-x", "--no-acl", "--no-privileges"] {
        let without = script(&cbdump(&server, &["-t", "d", flag]), &[flag]);
        assert!(!without.contains("GRANT"), "{flag}");
        assert_eq!(copied(&without), ["public.d"]);
    }
    let out = cbdump(&server, &["-t", "d", "-v"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("cbdump: running pg_dump"),
        "{err}"
    );

    let mut holder = server.client(DB);
    holder
        .batch_execute("BEGIN; LOCK TABLE public.d IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let file = server.scratch().join("locked.dump");
    let out = cbdump(
        &server,
        &[
            "-F",
            "c",
            "-t",
            "d",
            "--lock-wait-timeout",
            "200",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lock timeout"), "{err}");
    assert!(!file.exists());
    let left: Vec<_> = std::fs::read_dir(server.scratch())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("cbdump"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    holder.batch_execute("COMMIT").unwrap();
}
