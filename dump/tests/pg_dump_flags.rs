//! pg_dump's flags as cbdump takes them (issue 15): each one's effect on the plain script (what
//! a DBA reads), refused flags named with their alternative, usage errors exiting 2, `-?`,
//! `--version` naming the inflater, and `--progress json` on stderr.

use std::path::Path;
use std::process::{Command, Output};

use testkit::TestServer;

const SOURCE: &str = r#"
CREATE TABLE public.items (id int PRIMARY KEY, name text);
INSERT INTO public.items SELECT g, 'näme ' || g FROM generate_series(1, 3000) g;
CREATE INDEX items_name ON public.items (name);
COMMENT ON TABLE public.items IS 'the items';
CREATE PUBLICATION items_pub FOR TABLE public.items;
SELECT lo_from_bytea(0, convert_to('a large object', 'UTF8'));
VACUUM ANALYZE;
"#;

fn cbdump(server: &TestServer, args: &[&str]) -> Output {
    server
        .tool(env!("CARGO_BIN_EXE_cbdump"))
        .env("PATH", path_with(server.install().bin_dir()))
        .args(["-d", "src"])
        .args(args)
        .output()
        .expect("running cbdump")
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// The plain script `cbdump -F p` writes with `args`.
fn script(server: &TestServer, args: &[&str]) -> String {
    let out = cbdump(server, args);
    testkit::success(&out, "cbdump");
    String::from_utf8(out.stdout).expect("a UTF-8 script")
}

fn usage_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

fn source() -> TestServer {
    let s = TestServer::start();
    s.create_db("src");
    s.psql("src", SOURCE);
    s
}

#[test]
fn schema_flags_reach_the_schema_and_data_flags_the_data() {
    let server = source();
    let plain = script(&server, &[]);
    for expected in [
        "COMMENT ON TABLE public.items",
        "CREATE PUBLICATION items_pub",
        "CREATE INDEX items_name",
        "lo_create",
        "COPY public.items (id, name) FROM stdin;",
    ] {
        assert!(
            plain.contains(expected),
            "{expected} missing from the default script"
        );
    }
    assert!(!plain.contains("DROP TABLE"));
    assert!(!plain.contains("CREATE DATABASE"));

    let s = script(&server, &["--no-comments"]);
    assert!(
        !s.contains("COMMENT ON TABLE"),
        "--no-comments kept a comment"
    );
    assert!(s.contains("COPY public.items"));

    let s = script(&server, &["--no-publications"]);
    assert!(!s.contains("CREATE PUBLICATION"), "--no-publications");

    let s = script(&server, &["-B"]);
    assert!(!s.contains("lo_create"), "-B kept the large object");
    assert!(s.contains("COPY public.items"));

    let s = script(&server, &["-c", "--if-exists"]);
    assert!(
        s.contains("DROP TABLE IF EXISTS public.items;"),
        "-c --if-exists"
    );
    let s = script(&server, &["-C"]);
    assert!(s.contains("CREATE DATABASE src"), "-C");
    assert!(s.contains("\\connect src"), "-C");

    // --section=pre-data: the table, no rows, no index; data alone: the rows and nothing else.
    let s = script(&server, &["--section=pre-data"]);
    assert!(s.contains("CREATE TABLE public.items"));
    assert!(!s.contains("COPY public.items"), "pre-data has no rows");
    assert!(!s.contains("CREATE INDEX"), "the index is post-data");
    let s = script(&server, &["--section=data"]);
    assert!(s.contains("COPY public.items"));
    assert!(
        !s.contains("CREATE TABLE"),
        "data alone has no CREATE TABLE"
    );
    let s = script(&server, &["--section=post-data"]);
    assert!(s.contains("CREATE INDEX items_name"));
    assert!(!s.contains("CREATE TABLE public.items"));
    assert!(!s.contains("COPY public.items"));

    // -E: the rows themselves in that encoding, as the script's client_encoding says.
    let out = cbdump(&server, &["-E", "LATIN1"]);
    testkit::success(&out, "cbdump -E LATIN1");
    let latin1 = out.stdout;
    let text = String::from_utf8_lossy(&latin1);
    assert!(text.contains("SET client_encoding = 'LATIN1';"), "-E");
    let needle: &[u8] = b"n\xe4me 1\n";
    assert!(
        latin1.windows(needle.len()).any(|w| w == needle),
        "the rows are not LATIN1"
    );
}

#[test]
fn refused_and_wrong_flags_are_usage_errors_with_the_alternative() {
    let server = source();
    let e = usage_error(&cbdump(&server, &["--inserts"]));
    assert!(
        e.contains("--inserts: cbdump writes table data as COPY"),
        "{e}"
    );
    assert!(e.contains("pg_dump --inserts"), "{e}");
    assert!(!e.contains("similar argument"), "{e}");
    let e = usage_error(&cbdump(&server, &["--snapshot", "00000003-00000002-1"]));
    assert!(e.contains("cbdump takes its own snapshot"), "{e}");
    let e = usage_error(&cbdump(&server, &["--load-via-partition-root"]));
    assert!(e.contains("pg_dump --load-via-partition-root"), "{e}");
    let e = usage_error(&cbdump(&server, &["-j", "0"]));
    assert!(e.contains("at least 1"), "{e}");
    let e = usage_error(&cbdump(&server, &["-F", "c"]));
    assert!(e.contains("need -f OUTPUT"), "{e}");
    let e = usage_error(&cbdump(&server, &["--json"]));
    assert!(e.contains("--json prints on stdout"), "{e}");
    let e = usage_error(&cbdump(&server, &["--if-exists"]));
    assert!(e.contains("--clean"), "{e}");
    let e = usage_error(&cbdump(&server, &["--section=data", "-s"]));
    assert!(e.contains("cannot be used with"), "{e}");
}

#[test]
fn help_and_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_cbdump"))
        .arg("-?")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    assert!(help.contains("Usage: cbdump"), "{help}");
    assert!(help.contains("--no-comments"), "{help}");
    assert!(
        !help.contains("--inserts"),
        "refused flags stay out of help: {help}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cbdump"))
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(
        version.starts_with(&format!("cbdump {} (inflate: ", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert!(
        version.contains("isa-l") || version.contains("zlib-rs"),
        "{version}"
    );
}

#[test]
fn progress_json_is_one_object_per_line_from_bytes() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 400000) g; VACUUM ANALYZE;",
    );
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("d");
    let out = cbdump(
        &server,
        &[
            "-F",
            "d",
            "-f",
            out_dir.to_str().unwrap(),
            "--progress",
            "json",
        ],
    );
    testkit::success(&out, "cbdump --progress json");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let objects: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let pages: i64 = server
        .client("src")
        .query_one(
            "SELECT relpages::bigint FROM pg_class WHERE relname = 'big'",
            &[],
        )
        .unwrap()
        .get(0);
    // How many objects a run prints depends on its speed; every one says the same total.
    for o in &objects {
        assert_eq!(o["tool"], "cbdump");
        assert_eq!(o["bytes_total"].as_i64(), Some(pages * 8192), "{o}");
        assert_eq!(o["tables"], 1);
        assert!(o["bytes_done"].as_i64() <= o["bytes_total"].as_i64(), "{o}");
    }
    // Never a guess before data flowed: an ETA only once bytes are done.
    for o in &objects {
        if o["bytes_done"] == 0 {
            assert!(o["eta_seconds"].is_null(), "{o}");
        }
    }
    // The last object is the final state: every byte read, every table done.
    let last = objects.last().expect("at least the final object");
    assert_eq!(last["bytes_done"], last["bytes_total"], "{last}");
    assert_eq!(last["percent"], 100.0, "{last}");
    assert_eq!(last["tables_done"], last["tables"], "{last}");
    assert_eq!(last["in_flight"], serde_json::json!([]), "{last}");
}
