//! cbrestore on plain SQL scripts (pg_dump -Fp), against real PostgreSQL 15: pg_restore's
//! filters through pg_dump's entry headers, `-l`, `-f`, psql's `\restrict`/`\connect`, pagila,
//! and kill -9 in the middle of a COPY then `--resume`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use testkit::TestServer;

const SOURCE: &str = r#"
CREATE SCHEMA "Sales Dept";
CREATE TABLE "Sales Dept".customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE);
INSERT INTO "Sales Dept".customers SELECT g, 'c' || g, 'c' || g || '@x' FROM generate_series(1, 5000) g;
CREATE TABLE "Sales Dept"."Orders ""2024""" (id bigint PRIMARY KEY, customer int REFERENCES "Sales Dept".customers(id), note text);
INSERT INTO "Sales Dept"."Orders ""2024""" SELECT g, 1 + g % 5000, CASE WHEN g % 3 = 0 THEN E'tab\there\nnewline' WHEN g % 3 = 1 THEN '' END FROM generate_series(1, 30000) g;
CREATE INDEX orders_note ON "Sales Dept"."Orders ""2024""" (note);
CREATE SEQUENCE public.ticket START 100;
SELECT setval('public.ticket', 4242);
CREATE TABLE public.small (a int, b text);
INSERT INTO public.small VALUES (1, 'one'), (2, NULL), (3, '\N');
CREATE VIEW public.v AS SELECT count(*) AS n FROM public.small;
CREATE MATERIALIZED VIEW public.mv AS SELECT a FROM public.small;
"#;

fn cbrestore(server: &TestServer, db: &str, args: &[&str]) -> Output {
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
    cmd.args(["-d", db])
        .args(args)
        .output()
        .expect("running cbrestore")
}

fn ok(out: &Output) -> String {
    testkit::success(out, "cbrestore")
}

fn fingerprints(server: &TestServer, db: &str) -> BTreeMap<String, String> {
    server.table_fingerprints(db, &['r', 'm'])
}

fn pg_dump(server: &TestServer, db: &str, args: &[&str], to: &Path) {
    server.pg_dump_to(db, args, to);
}

fn source(server: &TestServer) -> PathBuf {
    server.create_db("src");
    server.psql("src", SOURCE);
    let plain = server.scratch().join("src.sql");
    pg_dump(server, "src", &[], &plain);
    plain
}

#[test]
fn filters_sections_list_and_script() {
    let server = TestServer::start();
    let plain = source(&server);
    let p = plain.to_str().unwrap();
    let want = fingerprints(&server, "src");

    // --schema-only: the schema of pg_dump -s, no rows anywhere.
    server.create_db("s");
    let report: serde_json::Value = serde_json::from_str(&ok(&cbrestore(
        &server,
        "s",
        &["--schema-only", "--json", p],
    )))
    .unwrap();
    assert_eq!(report["copy_blocks"], 0);
    assert!(report["skipped_statements"].as_u64().unwrap() > 0);
    assert_eq!(server.schema_dump("s"), server.schema_dump("src"));
    // Then --data-only into it: the source exactly (sequence value too). pg_dump orders data
    // by name, not by foreign keys (pg_restore -a needs --disable-triggers for the same
    // reason), so the key goes first.
    server.psql(
        "s",
        "ALTER TABLE \"Sales Dept\".\"Orders \"\"2024\"\"\" DROP CONSTRAINT \"Orders \"\"2024\"\"_customer_fkey\"",
    );
    let report: serde_json::Value =
        serde_json::from_str(&ok(&cbrestore(&server, "s", &["--data-only", "--json", p]))).unwrap();
    assert_eq!(report["total_rows"], 5000 + 30000 + 3);
    let mut got = fingerprints(&server, "s");
    // The materialized view's REFRESH is data in pg_restore's sense: restored with -a.
    assert_eq!(got, want);
    let seq: i64 = server
        .client("s")
        .query_one("SELECT last_value FROM public.ticket", &[])
        .unwrap()
        .get(0);
    assert_eq!(seq, 4242);
    got.clear();

    // -n: only that schema's objects; -t: only that table (definition and data).
    server.create_db("n");
    server.psql("n", "CREATE SCHEMA \"Sales Dept\"");
    ok(&cbrestore(&server, "n", &["-n", "Sales Dept", p]));
    let f = fingerprints(&server, "n");
    assert_eq!(f.len(), 2, "{f:?}");
    for (k, v) in &f {
        assert_eq!(Some(v), want.get(k), "{k}");
    }
    server.create_db("t");
    let report: serde_json::Value =
        serde_json::from_str(&ok(&cbrestore(&server, "t", &["-t", "small", "--json", p]))).unwrap();
    assert_eq!(report["tables"].as_array().unwrap().len(), 1);
    let f = fingerprints(&server, "t");
    assert_eq!(f.keys().collect::<Vec<_>>(), vec!["public.small"]);
    assert_eq!(f["public.small"], want["public.small"]);

    // -l: the entries that would be restored, without a server.
    let out = Command::new(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-l", "--exclude-table-name", "customers", p])
        .output()
        .unwrap();
    let list = ok(&out);
    assert!(
        list.contains(" TABLE DATA Sales Dept Orders \"2024\" "),
        "{list}"
    );
    assert!(list.contains(" SEQUENCE SET public ticket "), "{list}");
    assert!(!list.contains("TABLE DATA Sales Dept customers "), "{list}");
    assert!(!list.contains("TABLE Sales Dept customers "), "{list}");

    // -f: the filtered script, which psql runs to the same table.
    let script = server.scratch().join("small.sql");
    ok(&Command::new(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-t", "small", "-f"])
        .arg(&script)
        .arg(&plain)
        .output()
        .unwrap());
    server.create_db("f");
    server.psql("f", &std::fs::read_to_string(&script).unwrap());
    assert_eq!(fingerprints(&server, "f"), fingerprints(&server, "t"));

    // \restrict with its key is accepted (pg_dump 15.14+ writes it); a wrong \unrestrict key
    // and other meta-commands inside restricted mode are refused with their line.
    let r = server.scratch().join("restrict.sql");
    std::fs::write(
        &r,
        "\\restrict abc123\nCREATE TABLE r1 (a int);\n\\unrestrict abc123\n",
    )
    .unwrap();
    server.create_db("r");
    ok(&cbrestore(&server, "r", &[r.to_str().unwrap()]));
    std::fs::write(
        &r,
        "\\restrict abc123\nCREATE TABLE r2 (a int);\n\\unrestrict other\n",
    )
    .unwrap();
    let out = cbrestore(&server, "r", &[r.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("wrong key"), "{err}");

    // \connect with pg_dump's conninfo form for odd names.
    server.create_db("odd 'db'");
    let c = server.scratch().join("connect.sql");
    std::fs::write(
        &c,
        "\\connect -reuse-previous=on \"dbname='odd \\'db\\''\"\nCREATE TABLE here (a int);\nCOPY here (a) FROM stdin;\n1\n2\n\\.\n",
    )
    .unwrap();
    ok(&cbrestore(&server, "postgres", &[c.to_str().unwrap()]));
    let out = server
        .command("psql")
        .args([
            "-X",
            "-At",
            "-d",
            "odd 'db'",
            "-c",
            "SELECT sum(a) FROM here",
        ])
        .output()
        .unwrap();
    assert_eq!(ok(&out).trim(), "3");

    // A COPY block whose data the server rejects: the error names the line and table, the
    // table keeps none of the block's rows.
    let bad = server.scratch().join("badcopy.sql");
    std::fs::write(
        &bad,
        "CREATE TABLE b (a int);\nCOPY b (a) FROM stdin;\n1\n2\nnot a number\n4\n\\.\nCREATE TABLE after (a int);\n",
    )
    .unwrap();
    server.create_db("b");
    let out = cbrestore(
        &server,
        "b",
        &["--on-error-continue", "--json", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = report["errors"][0].as_str().unwrap();
    assert!(
        e.contains("line 2") && e.contains("loading b") && e.contains("not a number"),
        "{e}"
    );
    let n: i64 = server
        .client("b")
        .query_one("SELECT count(*) FROM b", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    server
        .client("b")
        .query_one("SELECT count(*) FROM after", &[])
        .unwrap();
}

#[test]
fn pagila_round_trip() {
    let server = TestServer::start();
    if !server.load_pagila("pagila") {
        return;
    }
    let plain = server.scratch().join("pagila.sql.zst");
    let raw = server.scratch().join("pagila.sql");
    pg_dump(&server, "pagila", &[], &raw);
    let st = Command::new("zstd")
        .args(["-q", "-f"])
        .arg(&raw)
        .arg("-o")
        .arg(&plain)
        .status();
    let input = if st.map(|s| s.success()).unwrap_or(false) {
        plain
    } else {
        raw
    };
    server.create_db("copy");
    let started = Instant::now();
    let report: serde_json::Value = serde_json::from_str(&ok(&cbrestore(
        &server,
        "copy",
        &["--json", input.to_str().unwrap()],
    )))
    .unwrap();
    eprintln!(
        "pagila: {} statements, {} rows in {:.2}s",
        report["statements"],
        report["total_rows"],
        started.elapsed().as_secs_f64()
    );
    assert_eq!(server.schema_dump("copy"), server.schema_dump("pagila"));
    assert_eq!(
        fingerprints(&server, "copy"),
        fingerprints(&server, "pagila")
    );
}

#[test]
fn kill_during_copy_then_resume() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE a (id int PRIMARY KEY, t text);
         INSERT INTO a SELECT g, md5(g::text) FROM generate_series(1, 50000) g;
         CREATE TABLE big (id int, t text);
         INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 1500000) g;
         CREATE TABLE z (id int PRIMARY KEY);
         INSERT INTO z SELECT generate_series(1, 1000);
         CREATE INDEX big_id ON big (id);",
    );
    let want = fingerprints(&server, "src");
    let plain = server.scratch().join("k.sql");
    pg_dump(&server, "src", &[], &plain);
    server.create_db("k");
    let state_dir = server.scratch().join("xdg-state").join("cbtools");

    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
    let mut child = cmd
        .current_dir(server.scratch())
        .args(["-d", "k"])
        .arg(&plain)
        .spawn()
        .unwrap();
    let mut c = server.client("postgres");
    let mut seen = false;
    for _ in 0..1000 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = 'k' AND query LIKE 'COPY public.big%'",
                &[],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            seen = true;
            break;
        }
    }
    // Let some of big's rows reach the server, uncommitted.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "the COPY of big was reached before the kill");
    let states: Vec<_> = std::fs::read_dir(&state_dir)
        .expect("the state lives in the state directory")
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(states.len(), 1, "{states:?}");
    let state = states[0].clone();
    assert!(!plain.with_extension("sql.cbrestore-state.json").exists());
    let a: i64 = server
        .client("k")
        .query_one("SELECT count(*) FROM a", &[])
        .unwrap()
        .get(0);
    assert_eq!(a, 50000, "a was committed before the kill");

    // A changed input is refused.
    let copy = server.scratch().join("k2.sql");
    std::fs::copy(&plain, &copy).unwrap();
    let out = cbrestore(
        &server,
        "k",
        &[
            "--resume",
            "--state-file",
            state.to_str().unwrap(),
            copy.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume refused"));

    let report: serde_json::Value = serde_json::from_str(&ok(&cbrestore(
        &server,
        "k",
        &["--resume", "--json", plain.to_str().unwrap()],
    )))
    .unwrap();
    assert!(report["resumed_statements"].as_u64().unwrap() > 0);
    assert_eq!(fingerprints(&server, "k"), want);
    assert_eq!(server.schema_dump("k"), server.schema_dump("src"));
    let book: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(book["finished"], true, "a finished restore says so: {book}");
    // --resume after the end has nothing to do.
    let out = ok(&cbrestore(
        &server,
        "k",
        &["--resume", plain.to_str().unwrap()],
    ));
    let _ = out;
    assert_eq!(fingerprints(&server, "k"), want);
}

/// A table is emptied and frozen only in the database where this run created it: after
/// `\connect`, a table of the same name as one created before (in the other database) that
/// already existed here (its CREATE failing under `--on-error-continue`) keeps its rows and
/// gets the script's appended.
#[test]
fn freeze_is_per_database_across_connect() {
    let server = TestServer::start();
    server.create_db("a");
    server.create_db("b");
    server.psql(
        "b",
        "CREATE TABLE public.t (x int); INSERT INTO public.t VALUES (100), (200);",
    );
    let create = |db: &str| {
        format!(
            "\\connect {db}\n\n\
             --\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\n\
             CREATE TABLE public.t (\n    x integer\n);\n\n"
        )
    };
    let data = "--\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: -\n--\n\n\
                COPY public.t (x) FROM stdin;\n1\n2\n3\n\\.\n\n";
    // a's table is created without data (as with --exclude-table-data), b's gets a block.
    let script = server.scratch().join("two.sql");
    std::fs::write(&script, format!("{}{}{data}", create("a"), create("b"))).unwrap();
    server.set_conf("log_statement", "all");
    let out = cbrestore(
        &server,
        "postgres",
        &["--on-error-continue", script.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "the CREATE in b fails");
    let count = |db: &str| -> i64 {
        server
            .client(db)
            .query_one("SELECT sum(x)::int8 FROM public.t", &[])
            .unwrap()
            .get(0)
    };
    let rows_in_a: i64 = server
        .client("a")
        .query_one("SELECT count(*) FROM public.t", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows_in_a, 0);
    assert_eq!(count("b"), 306, "b's own rows kept, the script's appended");
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        !log.contains("TRUNCATE TABLE ONLY public.t"),
        "nothing emptied"
    );
}
