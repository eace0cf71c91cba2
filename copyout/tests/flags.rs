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

/// pg_dump's flags a pg_dump user may try here: usage errors (exit 2) naming what to do
/// instead, never clap's look-alike suggestion.
#[test]
fn pg_dump_flags_are_refused_with_the_alternative() {
    let cases: &[(&[&str], &str)] = &[
        (&["-a"], "exports rows only"),
        (&["--data-only"], "exports rows only"),
        (&["-s"], "cbdump -s"),
        (&["--schema-only"], "cbdump -s"),
        (&["-c"], "--force"),
        (&["--clean"], "--force"),
        (&["--column-inserts"], "pg_dump --column-inserts"),
        (&["--snapshot", "00000003-1"], "its own snapshot"),
        (&["--section", "data"], "cbdump's (--section)"),
        (&["--file", "x.csv"], "-o DIR|FILE|-"),
    ];
    for (args, says) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cbcopyout"))
            .args(["-t", "x", "-o", "out"])
            .args(*args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("similar argument"), "{args:?}: {err}");
    }
}

/// `--no-sync`: the same files, written without fsync.
#[test]
fn no_sync_writes_the_same_files() {
    let server = server();
    let (synced, unsynced) = (server.scratch().join("a"), server.scratch().join("b"));
    for (dir, extra) in [(&synced, &[][..]), (&unsynced, &["--no-sync"][..])] {
        let out = cbcopyout(&server, &[&["-n", "s1"], extra].concat(), dir);
        testkit::success(&out, "cbcopyout");
    }
    assert_eq!(files(&synced), ["s1.a.txt", "s1.b.txt"]);
    assert_eq!(files(&unsynced), files(&synced));
    for f in files(&synced) {
        assert_eq!(
            std::fs::read(synced.join(&f)).unwrap(),
            std::fs::read(unsynced.join(&f)).unwrap(),
            "{f}"
        );
    }
}

/// `-h -p -U -d` (long forms too) over PG* variables that point elsewhere; `-w` fails at once
/// on a terminal where the password would be asked for; `-W` asks on the terminal first;
/// `--role` runs the export as that role.
#[test]
fn connection_flags() {
    let server = server();
    server.psql(
        "postgres",
        "SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE alice LOGIN SUPERUSER PASSWORD 'sec:ret'; CREATE ROLE reader;",
    );
    server.set_hba(
        "local all all trust\n\
         host all alice 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n",
    );
    let port = server.port().to_string();
    let tool = |args: &[&str]| {
        let mut c = server.tool(env!("CARGO_BIN_EXE_cbcopyout"));
        c.env("PGHOST", "/nonexistent")
            .env("PGPORT", "1")
            .env("PGUSER", "nobody")
            .env("PGDATABASE", "nowhere")
            .args(args)
            .args(["-t", "public.d", "-o", "-"]);
        c
    };
    let short = ["-h", "127.0.0.1", "-p", &port, "-U", "alice", "-d", DB];
    let (out, terminal) = testkit::tty::run_on_tty(tool(&[&short[..], &["-w"]].concat()), None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("password") && err.contains("alice"), "{err}");
    assert!(!terminal.contains("Password"), "{terminal}");

    let long = [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--username",
        "alice",
        "--dbname",
        DB,
    ];
    for flag in ["-W", "--password"] {
        let (out, terminal) =
            testkit::tty::run_on_tty(tool(&[&long[..], &[flag]].concat()), Some("sec:ret"));
        assert_eq!(testkit::success(&out, flag), "5\n", "{flag}");
        assert!(terminal.contains("Password: "), "{flag}: {terminal}");
    }
    let out = tool(&[&long[..], &["--no-password"]].concat())
        .env("PGPASSWORD", "sec:ret")
        .output()
        .unwrap();
    assert_eq!(testkit::success(&out, "--no-password"), "5\n");

    // --role: the session's user is that role.
    let out = server
        .tool(env!("CARGO_BIN_EXE_cbcopyout"))
        .env("PGDATABASE", DB)
        .args([
            "--role",
            "reader",
            "--query",
            "SELECT current_user",
            "-o",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(testkit::success(&out, "--role"), "reader\n");
}
