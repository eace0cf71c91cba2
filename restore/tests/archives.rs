//! cbrestore on pg_dump custom and directory archives, against real PostgreSQL 15: schema and
//! data equal to the source (`pg_dump -s` and per-table md5), parallel loading, `-f`, `-l`,
//! `--distribute`, resume after kill -9, and broken input.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use testkit::TestServer;

const SOURCE: &str = r#"
CREATE ROLE app_owner;
CREATE SCHEMA "Sales Dept" AUTHORIZATION app_owner;
CREATE TABLE "Sales Dept".customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE);
ALTER TABLE "Sales Dept".customers OWNER TO app_owner;
INSERT INTO "Sales Dept".customers SELECT g, 'c' || g, 'c' || g || '@x' FROM generate_series(1, 5000) g;
CREATE TABLE "Sales Dept"."Orders ""2024""" (id bigint PRIMARY KEY, customer int REFERENCES "Sales Dept".customers(id), note text, total numeric(10,2));
INSERT INTO "Sales Dept"."Orders ""2024""" SELECT g, 1 + g % 5000, CASE WHEN g % 3 = 0 THEN E'tab\there\nnewline' ELSE NULL END, g / 10.0 FROM generate_series(1, 60000) g;
CREATE INDEX orders_note ON "Sales Dept"."Orders ""2024""" (note);
COMMENT ON TABLE "Sales Dept".customers IS 'who buys';
CREATE TABLE public.hashes (id int PRIMARY KEY, h text);
INSERT INTO public.hashes SELECT g, md5(g::text) || md5((-g)::text) FROM generate_series(1, 60000) g;
CREATE SEQUENCE public.ticket START 100;
SELECT setval('public.ticket', 4242);
CREATE TABLE public.events (id int, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_2025 PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.events SELECT g, date '2024-01-01' + (g % 700), jsonb_build_object('n', g) FROM generate_series(1, 20000) g;
CREATE VIEW public.v_orders AS SELECT count(*) AS n FROM "Sales Dept"."Orders ""2024""";
CREATE MATERIALIZED VIEW public.mv AS SELECT customer, sum(total) AS total FROM "Sales Dept"."Orders ""2024""" GROUP BY customer;
CREATE FUNCTION public.double_it(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
CREATE TABLE public.gen (a int, b int GENERATED ALWAYS AS (a * 2) STORED);
INSERT INTO public.gen (a) SELECT generate_series(1, 100);
GRANT SELECT ON public.gen TO app_owner;
SELECT lo_from_bytea(0, convert_to(repeat('large object ', 10000), 'UTF8'));
"#;

fn cbrestore(server: &TestServer, db: &str, args: &[&str]) -> Output {
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
    cmd.args(["-d", db])
        .args(args)
        .output()
        .expect("running cbrestore")
}

fn ok(out: &Output) -> String {
    testkit::success(out, "command")
}

fn fingerprints(server: &TestServer, db: &str) -> BTreeMap<String, String> {
    let mut out = server.table_fingerprints(db, &['r', 'm']);
    out.insert("large objects".into(), server.large_object_fingerprint(db));
    let seq: i64 = server
        .client(db)
        .query_one("SELECT last_value FROM public.ticket", &[])
        .unwrap()
        .get(0);
    out.insert("sequence".into(), seq.to_string());
    out
}

fn schema_of(server: &TestServer, db: &str) -> String {
    server.schema_dump(db)
}

fn source() -> TestServer {
    let s = TestServer::start();
    s.create_db("src");
    s.psql("src", SOURCE);
    s
}

fn dump(server: &TestServer, format: &str, name: &str) -> std::path::PathBuf {
    let p = server.scratch().join(name);
    let out = server
        .command("pg_dump")
        .args(["-d", "src", "-F", format, "-f"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p
}

#[test]
fn archives_round_trip_schema_and_data() {
    let server = source();
    let want_data = fingerprints(&server, "src");
    let want_schema = schema_of(&server, "src");
    server.set_conf("log_statement", "all");
    for (i, (format, jobs)) in [("c", "1"), ("d", "2"), ("c", "3")].into_iter().enumerate() {
        let archive = dump(&server, format, &format!("a{i}.{format}"));
        let db = format!("t{i}");
        server.create_db(&db);
        let report = ok(&cbrestore(
            &server,
            &db,
            &["-j", jobs, "--json", archive.to_str().unwrap()],
        ));
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(report["large_objects"], 1);
        assert_eq!(
            fingerprints(&server, &db),
            want_data,
            "format {format} -j {jobs}"
        );
        assert_eq!(
            schema_of(&server, &db),
            want_schema,
            "format {format} -j {jobs}"
        );
    }

    // Tables this restore created are copied with FREEZE (partitioned parents have no data
    // of their own; every leaf is frozen) when their data is big enough to gain from it
    // (load::FRESH_FROM); a small one is copied as it is, without emptying it first.
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        log.contains("FROM stdin WITH (FREEZE)")
            || log.contains("FROM stdin WITH (FORMAT binary, FREEZE)"),
        "no FREEZE load in the server log"
    );
    assert!(log.contains("TRUNCATE TABLE ONLY \"public\".\"hashes\""));
    assert!(!log.contains("TRUNCATE TABLE ONLY \"public\".\"gen\""));

    // -f: the SQL that would run, loadable by psql, same result.
    let archive = dump(&server, "c", "f.dump");
    let script = server.scratch().join("restore.sql");
    ok(&cbrestore(
        &server,
        "unused",
        &["-f", script.to_str().unwrap(), archive.to_str().unwrap()],
    ));
    server.create_db("fromscript");
    let mut cmd = server.command("psql");
    let out = cmd
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "fromscript",
            "-f",
        ])
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got = fingerprints(&server, "fromscript");
    // Large objects are restored by the live path only (a script would need psql's \lo_import).
    got.remove("large objects");
    let mut want = want_data.clone();
    want.remove("large objects");
    assert_eq!(got, want);

    // -l lists every entry.
    let list = ok(&cbrestore(
        &server,
        "unused",
        &["-l", archive.to_str().unwrap()],
    ));
    assert!(
        list.contains("TABLE DATA \"Sales Dept\"") || list.contains("TABLE DATA Sales Dept"),
        "{list}"
    );
    assert!(list.contains("MATERIALIZED VIEW DATA public mv"), "{list}");

    // --distribute rewrites the statements on the way (checked in -f output: PostgreSQL itself
    // would reject the clauses).
    let dist = server.scratch().join("dist.sql");
    ok(&cbrestore(
        &server,
        "unused",
        &[
            "--distribute",
            "--on-conflict",
            "replicated",
            "-f",
            dist.to_str().unwrap(),
            archive.to_str().unwrap(),
        ],
    ));
    let text = std::fs::read_to_string(&dist).unwrap();
    assert!(
        text.contains("DISTRIBUTED REPLICATED"),
        "customers has two unique keys"
    );
    assert!(text.contains("DISTRIBUTED BY (id)"));
}

#[test]
fn broken_archives_and_existing_objects() {
    let server = source();
    let dir = dump(&server, "d", "broken.d");
    // Truncate the biggest data file: the error names it and the table stays empty.
    let biggest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".dat.gz"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let bytes = std::fs::read(&biggest).unwrap();
    std::fs::write(&biggest, &bytes[..bytes.len() / 2]).unwrap();
    server.create_db("b");
    let out = cbrestore(&server, "b", &[dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("public.hashes") && err.contains("TABLE DATA"),
        "{err}"
    );
    let n: i64 = server
        .client("b")
        .query_one("SELECT count(*) FROM public.hashes", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "never half loaded");

    // A newer archive version than we know.
    let custom = dump(&server, "c", "newer.dump");
    let mut b = std::fs::read(&custom).unwrap();
    b[6] = 17;
    std::fs::write(&custom, b).unwrap();
    let out = cbrestore(&server, "b", &[custom.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1.17"));

    // Objects already there: stop at the first, with the entry named; or continue and report.
    let good = dump(&server, "c", "good.dump");
    server.create_db("e");
    ok(&cbrestore(&server, "e", &[good.to_str().unwrap()]));
    let out = cbrestore(&server, "e", &[good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TOC entry") && err.contains("already exists"),
        "{err}"
    );
    let out = cbrestore(
        &server,
        "e",
        &["--on-error-continue", "--json", good.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["errors"].as_array().unwrap().len() > 3);
    // The tables were not created by this run (their CREATE failed), so their rows were not
    // emptied first, as with pg_restore: a table without a key now holds both copies.
    let gen: i64 = server
        .client("e")
        .query_one("SELECT count(*) FROM public.gen", &[])
        .unwrap()
        .get(0);
    assert_eq!(gen, 200, "rows that were there before are kept");

    // --clean --if-exists replaces them.
    ok(&cbrestore(
        &server,
        "e",
        &["--clean", "--if-exists", good.to_str().unwrap()],
    ));
    assert_eq!(fingerprints(&server, "e"), fingerprints(&server, "src"));
}

#[test]
fn kill_during_data_then_resume() {
    let server = source();
    server.psql(
        "src",
        "CREATE TABLE public.big1 AS SELECT g AS id, repeat(md5(g::text), 4) AS t FROM generate_series(1, 300000) g;
         CREATE TABLE public.big2 AS SELECT g AS id, repeat(md5(g::text), 4) AS t FROM generate_series(1, 300000) g;",
    );
    let want = fingerprints(&server, "src");
    let archive = dump(&server, "c", "k.dump");
    server.create_db("k");
    let state = server.scratch().join("k.state");
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
    let mut child = cmd
        .args(["-d", "k", "--state-file"])
        .arg(&state)
        .arg(&archive)
        .spawn()
        .unwrap();
    let seen = server.wait_for_active("datname = 'k'", "COPY public.big", 5);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "killed in the data phase");
    ok(&cbrestore(
        &server,
        "k",
        &[
            "--resume",
            "--state-file",
            state.to_str().unwrap(),
            archive.to_str().unwrap(),
        ],
    ));
    assert_eq!(fingerprints(&server, "k"), want);
    assert_eq!(schema_of(&server, "k"), schema_of(&server, "src"));

    // The archive changed since the first run: --resume refuses.
    let out = cbrestore(
        &server,
        "k2",
        &[
            "--resume",
            "--state-file",
            state.to_str().unwrap(),
            archive.to_str().unwrap(),
        ],
    );
    let _ = out;
    std::fs::write(
        &state,
        r#"{"fingerprint":"other","statements":[],"tables":[]}"#,
    )
    .unwrap();
    let out = cbrestore(
        &server,
        "k",
        &[
            "--resume",
            "--state-file",
            state.to_str().unwrap(),
            archive.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume refused"));
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn plain_dumps_run_like_psql() {
    let server = source();
    let want = fingerprints(&server, "src");
    let want_schema = schema_of(&server, "src");
    let plain = server.scratch().join("shop.sql");
    let out = server
        .command("pg_dump")
        .args(["-d", "src", "-f"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(out.status.success());
    // gzip-compressed, from stdin.
    let gz = server.scratch().join("shop.sql.gz");
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        e.write_all(&std::fs::read(&plain).unwrap()).unwrap();
        e.finish().unwrap();
    }
    server.create_db("p");
    server.set_conf("log_statement", "all");
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
    let out = cmd
        .args(["-d", "p", "-j", "2", "--json", "-"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    // -j does not apply to a script, and cbrestore says so rather than ignoring it.
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-j 2 does not apply to a plain SQL script"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert!(report["copy_blocks"].as_u64().unwrap() >= 5);
    let mut got = fingerprints(&server, "p");
    // A plain pg_dump carries large objects as lo_* calls; they are restored too.
    assert_eq!(got.remove("sequence"), want.get("sequence").cloned());
    let mut w = want.clone();
    w.remove("sequence");
    assert_eq!(got, w);
    assert_eq!(schema_of(&server, "p"), want_schema);
    // Tables the script created are emptied and loaded WITH (FREEZE) in one transaction (as
    // binary COPY where every column converts).
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        log.contains("TRUNCATE TABLE ONLY")
            && (log.contains("FROM stdin WITH (FREEZE);")
                || log.contains("FROM stdin WITH (FORMAT binary, FREEZE);")),
        "no FREEZE load of a plain script's block in the server log"
    );

    // A failing statement stops the restore and names its line.
    let broken = server.scratch().join("broken.sql");
    std::fs::write(
        &broken,
        "CREATE TABLE ok1 (a int);\nCREATE TABLE bad (a nosuchtype);\nCREATE TABLE ok2 (a int);\n",
    )
    .unwrap();
    server.create_db("q");
    let out = cbrestore(&server, "q", &[broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("nosuchtype"),
        "{err}"
    );
    // --on-error-continue runs the rest and reports.
    server.create_db("q2");
    let out = cbrestore(
        &server,
        "q2",
        &["--on-error-continue", broken.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1));
    let n: i64 = server
        .client("q2")
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('ok1', 'ok2')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 2);

    // --distribute on a plain script (checked through -f: PostgreSQL rejects the clauses).
    let dist = server.scratch().join("plain.dist.sql");
    ok(&cbrestore(
        &server,
        "unused",
        &[
            "--distribute",
            "--on-conflict",
            "replicated",
            "-f",
            dist.to_str().unwrap(),
            plain.to_str().unwrap(),
        ],
    ));
    let text = std::fs::read_to_string(&dist).unwrap();
    assert!(text.contains("DISTRIBUTED REPLICATED") && text.contains("DISTRIBUTED BY (id)"));
}

/// `--split-tables-larger-than`: a big table's data is shared by idle workers (each its own
/// COPY), the result equals the source; a bad row in one stream leaves the table empty.
#[test]
fn split_loads_share_a_big_table_all_or_nothing() {
    let server = source();
    server.psql(
        "src",
        "CREATE TABLE public.big (id bigint PRIMARY KEY, k text, note text);
         INSERT INTO public.big SELECT g, md5(g::text), CASE WHEN g % 7 = 0 THEN E'a\\tb\\nc\\\\' END
           FROM generate_series(1, 300000) g;",
    );
    let want_data = fingerprints(&server, "src");
    let want_schema = schema_of(&server, "src");
    for format in ["d", "c"] {
        let archive = dump(&server, format, &format!("split.{format}"));
        let db = format!("split_{format}");
        server.create_db(&db);
        let out = cbrestore(
            &server,
            &db,
            &[
                "-j",
                "3",
                "-v",
                "--split-tables-larger-than",
                "1k",
                archive.to_str().unwrap(),
            ],
        );
        ok(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("joining the load of"),
            "no helper joined: {err}"
        );
        assert_eq!(fingerprints(&server, &db), want_data, "format {format}");
        assert_eq!(schema_of(&server, &db), want_schema, "format {format}");
    }

    // A row the server rejects near the end of big's data: whichever stream gets it, every
    // stream rolls back.
    let dir = dump(&server, "d", "splitbad.d");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".dat.gz"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&file).unwrap()),
        &mut text,
    )
    .unwrap();
    // At a line start: md5('200030') itself ends in 299999.
    let bad = text.replacen("\n299999\t", "\nnot-a-number\t", 1);
    assert_ne!(bad, text);
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(&file).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut e, bad.as_bytes()).unwrap();
    e.finish().unwrap();
    server.create_db("splitbad");
    let out = cbrestore(
        &server,
        "splitbad",
        &[
            "-j",
            "3",
            "-v",
            "--split-tables-larger-than",
            "1k",
            dir.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("public.big") && err.contains("not-a-number"),
        "{err}"
    );
    let n: i64 = server
        .client("splitbad")
        .query_one("SELECT count(*) FROM public.big", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "never half loaded");
}

/// pg_dump --load-via-partition-root: each partition's data is copied through the partitioned
/// root, which refuses FREEZE; the leaf is still emptied first and the rows all arrive.
#[test]
fn data_loaded_through_a_partition_root() {
    let server = source();
    let want = fingerprints(&server, "src");
    let dir = server.scratch().join("viaroot.d");
    let out = server
        .command("pg_dump")
        .args(["-d", "src", "-F", "d", "--load-via-partition-root", "-f"])
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out);
    for jobs in ["1", "2"] {
        let db = format!("viaroot{jobs}");
        server.create_db(&db);
        ok(&cbrestore(
            &server,
            &db,
            &["-j", jobs, dir.to_str().unwrap()],
        ));
        assert_eq!(fingerprints(&server, &db), want, "-j {jobs}");
    }
    // The same as a plain script: every partition's block goes to the root, and the first one
    // must not empty the tree or ask for FREEZE on it.
    let plain = server.scratch().join("viaroot.sql");
    ok(&server
        .command("pg_dump")
        .args(["-d", "src", "--load-via-partition-root", "-f"])
        .arg(&plain)
        .output()
        .unwrap());
    server.create_db("viarootp");
    ok(&cbrestore(&server, "viarootp", &[plain.to_str().unwrap()]));
    let mut got = fingerprints(&server, "viarootp");
    let mut w = want.clone();
    assert_eq!(got.remove("sequence"), w.remove("sequence"));
    assert_eq!(got, w);
}

/// Tables whose columns all convert (and whose data is over load::FRESH_FROM) are sent as
/// binary COPY; every value comes back the same
/// (extremes, escapes, padding, special numerics and times, zone offsets with minutes and
/// seconds). A value the converter refuses (a BC date) makes its table load as text instead.
#[test]
fn binary_copy_brings_every_value_back() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        r#"
SET TimeZone = 'Europe/Amsterdam';
CREATE TABLE public.typed (i2 smallint, i4 int, i8 bigint, t text, v varchar(12), c char(5),
                           n numeric, n2 numeric(12,2), d date, ts timestamp, tz timestamptz, b bool,
                           j json, jb jsonb);
INSERT INTO public.typed VALUES
 (-32768, -2147483648, -9223372036854775808, E'tab\there\nnew\\line\r\x01 \\N', 'ünï', 'ab',
  -0.00, -1234567890.12, '0001-01-01', '0001-01-01 00:00:00', '1890-01-01 00:00:00+00', true,
  '{"a" : "tab\there \\ \u00e9",  "a": [1, 2.50]}', '{"k": "line\nbreak", "ü": [null, true, 1e3]}'),
 (32767, 2147483647, 9223372036854775807, '', 'x', 'abcde',
  123456789012345678901234567890.123456789, 0.05, '9999-12-31', '2024-02-29 23:59:59.999999',
  '2024-07-01 12:00:00.5+05:30', false, 'null', '"just a string"'),
 (0, 0, 0, '\.', NULL, NULL, 'NaN', NULL, 'infinity', '-infinity', 'infinity', NULL, NULL, NULL),
 (NULL, NULL, NULL, NULL, NULL, NULL, 'Infinity', 10000, '-infinity', 'infinity', '-infinity', NULL, '{"deep": {"er": [[]]}}', '[1, "two", {"3": 4}]'),
 (1, 1, 1, 'plain', 'y', 'z', 0.00000000000000000001, 0, '2000-01-01', '2000-01-01 00:00:00',
  '1969-12-31 23:59:59.000001-03:30', true, '[]', '{}');
INSERT INTO public.typed (i8, t, n, tz)
  SELECT g, md5(g::text), g / 7.0, timestamptz '2024-01-01' + g * interval '37 seconds'
    FROM generate_series(1, 80000) g;
CREATE TABLE public.ancient (id int, d date, h text);
INSERT INTO public.ancient VALUES (1, '2024-01-01', 'a'), (2, '0044-03-15 BC', 'b'), (3, NULL, NULL);
INSERT INTO public.ancient SELECT g, date '2000-01-01' + g % 9000, md5(g::text) FROM generate_series(4, 60000) g;
"#,
    );
    let want = server.table_fingerprints("src", &['r']);
    let dir = server.scratch().join("typed.d");
    let out = server
        .command("pg_dump")
        .args(["-d", "src", "-F", "d", "-f"])
        .arg(&dir)
        .env("PGTZ", "Asia/Kolkata")
        .output()
        .unwrap();
    ok(&out);
    server.set_conf("log_statement", "all");
    for jobs in ["1", "2"] {
        let db = format!("typed{jobs}");
        server.create_db(&db);
        let out = cbrestore(&server, &db, &["-j", jobs, "-v", dir.to_str().unwrap()]);
        ok(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cbrestore: public.ancient: cannot convert") && err.contains("as text"),
            "{err}"
        );
        assert_eq!(server.table_fingerprints(&db, &['r']), want, "-j {jobs}");
    }
    // A plain script of the same: from a file and from stdin (spooled), binary where the
    // table's values convert, the block read again as text where one does not.
    let plain = server.scratch().join("typed.sql");
    let out = server
        .command("pg_dump")
        .args(["-d", "src", "-f"])
        .arg(&plain)
        .env("PGTZ", "Asia/Kolkata")
        .output()
        .unwrap();
    ok(&out);
    for (db, from_stdin) in [("typedp", false), ("typeds", true)] {
        server.create_db(db);
        let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
        cmd.args(["-d", db, "-v"]);
        if from_stdin {
            cmd.arg("-").stdin(std::fs::File::open(&plain).unwrap());
        } else {
            cmd.arg(&plain);
        }
        let out = cmd.output().unwrap();
        ok(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("public.ancient: cannot convert") && err.contains("as text"),
            "{err}"
        );
        assert_eq!(server.table_fingerprints(db, &['r']), want, "{db}");
    }
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    let binary = "COPY public.typed (i2, i4, i8, t, v, c, n, n2, d, ts, tz, b, j, jb) FROM stdin WITH (FORMAT binary, FREEZE)";
    assert_eq!(
        log.matches(binary).count(),
        4,
        "typed went in as binary from both archive runs and both scripts"
    );
}
