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

/// A `pg_dump` that logs its arguments (one run a line) into `log` and runs the real one, with
/// the real `pg_restore` beside it (cbdump renders plain scripts with it).
fn logging_pg_dump(server: &TestServer, dir: &std::path::Path, log: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let real = server.install().bin("pg_dump");
    let wrapper = dir.join("pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(server.install().bin("pg_restore"), dir.join("pg_restore")).unwrap();
    wrapper.to_str().unwrap().to_string()
}

/// pg_dump's `--no-*` flags, `--exclude-table-data`, `-O`, `-b` and `--pg-dump`, by what the
/// script holds (and, for security labels, which no server here can make, by the arguments
/// the schema pass got).
#[test]
fn schema_pass_flags_shape_the_script() {
    let server = server();
    server.psql(
        DB,
        "CREATE TABLE public.t (v text);
         ALTER TABLE public.t ALTER COLUMN v SET COMPRESSION pglz;
         INSERT INTO public.t VALUES ('x');
         CREATE PUBLICATION p FOR TABLE public.t;
         CREATE SUBSCRIPTION sub CONNECTION 'dbname=nowhere' PUBLICATION p
           WITH (connect = false, slot_name = NONE, enabled = false);
         SELECT lo_from_bytea(0, 'a large object');",
    );
    let plain = script(&cbdump(&server, &[]), &[]);
    for s in [
        "SET default_tablespace = '';",
        "SET default_table_access_method = heap;",
        "ALTER COLUMN v SET COMPRESSION pglz;",
        "CREATE SUBSCRIPTION sub",
        "OWNER TO postgres;",
        "lo_create",
        "COPY s1.a ",
    ] {
        assert!(plain.contains(s), "{s} missing from the default script");
    }
    let cases: &[(&[&str], &str)] = &[
        (&["--no-tablespaces"], "default_tablespace"),
        (&["--no-table-access-method"], "default_table_access_method"),
        (&["--no-toast-compression"], "SET COMPRESSION"),
        (&["--no-subscriptions"], "SUBSCRIPTION"),
        (&["-O"], "OWNER TO"),
        (&["--no-owner"], "OWNER TO"),
        (&["--exclude-table-data", "s1.a"], "COPY s1.a "),
        (&["-n", "s1"], "lo_create"),
    ];
    for (args, gone) in cases {
        let s = script(&cbdump(&server, args), args);
        assert!(!s.contains(gone), "{args:?} kept {gone}");
        assert!(s.contains("CREATE TABLE s1.a "), "{args:?}");
    }
    // -b / --large-objects / --blobs bring the large objects back into a narrowed dump.
    for flag in ["-b", "--large-objects", "--blobs"] {
        let s = script(&cbdump(&server, &["-n", "s1", flag]), &[flag]);
        assert!(s.contains("lo_create"), "{flag}");
    }

    let log = server.scratch().join("pg_dump.args");
    let wrapper = logging_pg_dump(&server, &server.scratch().join("bin"), &log);
    let s = script(
        &cbdump(
            &server,
            &["--pg-dump", &wrapper, "--no-security-labels", "-t", "d"],
        ),
        &["--pg-dump"],
    );
    assert!(s.contains("COPY public.d "));
    let args = std::fs::read_to_string(&log).expect("the wrapper ran");
    assert!(
        args.lines().any(|l| l.contains("--no-security-labels")),
        "{args}"
    );
}

/// `--distribute` with `--default`, `--policy` and `--stats`: the DISTRIBUTED clauses written.
#[test]
fn distribution_rules() {
    let server = server();
    server.psql(
        DB,
        "CREATE TABLE public.k (a int, b int);
         INSERT INTO public.k SELECT g % 2, g FROM generate_series(1, 2000) g;
         ANALYZE public.k;",
    );
    let clause = |args: &[&str]| -> String {
        let s = script(
            &cbdump(&server, &[&["-t", "k", "--distribute"], args].concat()),
            args,
        );
        s.lines()
            .find(|l| l.contains("DISTRIBUTED"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(clause(&[]), ") DISTRIBUTED BY (a);");
    assert_eq!(clause(&["--stats"]), ") DISTRIBUTED BY (b);");
    assert_eq!(clause(&["--default", "random"]), ") DISTRIBUTED RANDOMLY;");
    let policy = server.scratch().join("policy.toml");
    std::fs::write(&policy, "[tables]\n\"public.k\" = \"replicated\"\n").unwrap();
    assert_eq!(
        clause(&["--policy", policy.to_str().unwrap()]),
        ") DISTRIBUTED REPLICATED;"
    );
    let out = cbdump(&server, &["--stats"]);
    assert_eq!(out.status.code(), Some(2), "--stats needs --distribute");
}

/// A server that wants a password from `alice` over TCP (everything else trusted).
fn password_server() -> TestServer {
    let server = server();
    server.psql(
        "postgres",
        "SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE alice LOGIN SUPERUSER PASSWORD 'sec:ret';",
    );
    server.set_hba(
        "local all all trust\n\
         host all alice 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n",
    );
    server
}

/// `-h -p -U -d` (long forms too) over PG* variables that point elsewhere; `-w` fails at once
/// on a terminal where the password would be asked for; `-W` asks on the terminal first;
/// `--role` dumps with that role's rights.
#[test]
fn connection_flags() {
    let server = password_server();
    let port = server.port().to_string();
    let tool = |args: &[&str]| {
        let mut c = server.tool(env!("CARGO_BIN_EXE_cbdump"));
        c.env("PGHOST", "/nonexistent")
            .env("PGPORT", "1")
            .env("PGUSER", "nobody")
            .env("PGDATABASE", "nowhere")
            .args(args);
        c
    };
    let short = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-U",
        "alice",
        "-d",
        DB,
        "-t",
        "d",
    ];
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
        "--table",
        "d",
    ];
    for flag in ["-W", "--password"] {
        let (out, terminal) =
            testkit::tty::run_on_tty(tool(&[&long[..], &[flag]].concat()), Some("sec:ret"));
        assert_eq!(copied(&script(&out, &[flag])), ["public.d"], "{flag}");
        assert!(terminal.contains("Password: "), "{flag}: {terminal}");
    }
    let out = tool(&[&long[..], &["--no-password"]].concat())
        .env("PGPASSWORD", "sec:ret")
        .output()
        .unwrap();
    assert_eq!(copied(&script(&out, &["--no-password"])), ["public.d"]);

    // --role: reader may read public.d but not s1.a.
    let out = cbdump(&server, &["--role", "reader", "-t", "d"]);
    assert_eq!(copied(&script(&out, &["--role"])), ["public.d"]);
    let out = cbdump(&server, &["--role", "reader", "-t", "s1.a"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("permission denied"), "{err}");
}
