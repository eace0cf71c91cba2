//! cbcopyout end to end against a real PostgreSQL 15: bytes equal to the server's own COPY,
//! splitting, compression, chunking, consistency, and every bad input the issue lists.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use testkit::TestServer;

const DB: &str = "shop";

fn cbcopyout(server: &TestServer, args: &[&str]) -> Output {
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbcopyout"));
    cmd.env("PGDATABASE", DB)
        .args(args)
        .output()
        .expect("running cbcopyout")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "cbcopyout failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "cbcopyout should have failed");
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What the server's own `COPY ... TO STDOUT` gives.
fn reference(server: &TestServer, sql: &str) -> Vec<u8> {
    let mut c = server.client(DB);
    let mut out = Vec::new();
    c.copy_out(sql).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn tricky_server() -> TestServer {
    let server = TestServer::start();
    server.create_db(DB);
    server.psql(
        DB,
        r#"CREATE TABLE public.tricky (
              id int PRIMARY KEY, t text, b bytea, a text[], j jsonb, n numeric, ts timestamptz, x int GENERATED ALWAYS AS (id * 10) STORED);
           INSERT INTO public.tricky VALUES
             (1, E'tab\there', '\x00ff', '{a,"b c",NULL}', '{"k": "v\n"}', 1.5, '2024-01-02 03:04:05+00'),
             (2, E'new\nline and cr\r', NULL, '{}', '[]', NULL, NULL),
             (3, E'back\\slash', '\x', NULL, 'null', -0.0, 'infinity'),
             (4, '\.', 'abc', '{"{}"}', '"s"', 1e100, NULL),
             (5, '\N', NULL, NULL, NULL, NULL, NULL),
             (6, NULL, NULL, NULL, NULL, NULL, NULL),
             (7, '', '', '{""}', '{}', 0, NULL),
             (8, 'ünïcödé ✓ 漢字 🙂', NULL, '{ü}', '{"ü": 1}', 2, NULL),
             (9, 'quote " and , comma; semi ''apos''', NULL, NULL, NULL, NULL, NULL),
             (10, repeat('long-', 200000), NULL, NULL, NULL, NULL, NULL);
           CREATE TABLE public.latin (id int, t text);
           INSERT INTO public.latin VALUES (1, 'café'), (2, 'naïve'), (3, NULL);"#,
    );
    server
}

#[test]
fn bytes_equal_copy_to_stdout_for_every_option() {
    let server = tricky_server();
    let dir = server.scratch().join("out");
    let cases: &[(&[&str], &str)] = &[
        (&[], "FORMAT text"),
        (
            &["--delimiter", "|", "--null", "NULL", "--header"],
            "FORMAT text, DELIMITER '|', NULL 'NULL', HEADER true",
        ),
        (&["--format", "csv"], "FORMAT csv"),
        (
            &[
                "--format",
                "csv",
                "--header",
                "--quote",
                "'",
                "--escape",
                "\\",
                "--force-quote",
                "*",
            ],
            "FORMAT csv, HEADER true, QUOTE '''', ESCAPE E'\\\\', FORCE_QUOTE *",
        ),
        (
            &[
                "--format",
                "csv",
                "--delimiter",
                ";",
                "--null",
                "N/A",
                "--force-quote",
                "t,j",
            ],
            "FORMAT csv, DELIMITER ';', NULL 'N/A', FORCE_QUOTE (t, j)",
        ),
    ];
    for (i, (args, options)) in cases.iter().enumerate() {
        let file = dir.join(format!("case{i}.out"));
        let mut a = vec!["-t", "public.tricky", "-o", file.to_str().unwrap()];
        a.extend_from_slice(args);
        std::fs::create_dir_all(&dir).unwrap();
        ok(&cbcopyout(&server, &a));
        let want = reference(
            &server,
            &format!("COPY public.tricky TO STDOUT WITH ({options})"),
        );
        let got = std::fs::read(&file).unwrap();
        assert!(
            got == want,
            "case {i} ({options}) differs from COPY's own output"
        );
    }
    // ENCODING: bytes converted by the server, not by us.
    let file = dir.join("latin.csv");
    ok(&cbcopyout(
        &server,
        &[
            "-t",
            "latin",
            "--format",
            "csv",
            "--encoding",
            "LATIN1",
            "-o",
            file.to_str().unwrap(),
        ],
    ));
    let want = reference(
        &server,
        "COPY public.latin TO STDOUT WITH (FORMAT csv, ENCODING 'LATIN1')",
    );
    assert_eq!(std::fs::read(&file).unwrap(), want);
    assert!(want.contains(&0xE9), "é is one LATIN1 byte");
}

#[test]
fn columns_where_and_query() {
    let server = tricky_server();
    let out = server.scratch().join("cols.txt");
    ok(&cbcopyout(
        &server,
        &[
            "-t",
            "tricky",
            "--columns",
            "id,t",
            "--where",
            "id % 2 = 0",
            "-o",
            out.to_str().unwrap(),
        ],
    ));
    let want = reference(
        &server,
        "COPY (SELECT id, t FROM ONLY public.tricky WHERE id % 2 = 0) TO STDOUT",
    );
    assert_eq!(std::fs::read(&out).unwrap(), want);
    assert_eq!(want.iter().filter(|&&b| b == b'\n').count(), 5);

    let out = server.scratch().join("q.csv");
    let q = "SELECT id, j->>'k' AS k FROM tricky WHERE j IS NOT NULL ORDER BY id DESC";
    ok(&cbcopyout(
        &server,
        &[
            "--query",
            q,
            "--format",
            "csv",
            "--header",
            "-o",
            out.to_str().unwrap(),
        ],
    ));
    let want = reference(
        &server,
        &format!("COPY ({q}) TO STDOUT WITH (FORMAT csv, HEADER true)"),
    );
    assert_eq!(std::fs::read(&out).unwrap(), want);

    // Standard output.
    let got = cbcopyout(&server, &["--query", q, "--format", "csv", "-o", "-"]);
    ok(&got);
    assert_eq!(
        got.stdout,
        reference(&server, &format!("COPY ({q}) TO STDOUT WITH (FORMAT csv)"))
    );

    // An unknown column is named.
    let err = failed(&cbcopyout(
        &server,
        &[
            "-t",
            "tricky",
            "--columns",
            "id,nope",
            "-o",
            out.to_str().unwrap(),
            "--force",
        ],
    ));
    assert!(
        err.contains("\"nope\"") && err.contains("public.tricky"),
        "{err}"
    );
}

fn big_server(rows: u32) -> TestServer {
    let server = TestServer::start();
    server.create_db(DB);
    server.psql(
        DB,
        &format!(
            "CREATE TABLE big (id int, payload text, note text);
             INSERT INTO big SELECT g, md5(g::text) || repeat('x', g % 50), CASE WHEN g % 7 = 0 THEN NULL ELSE E'line\\n' || g END
               FROM generate_series(1, {rows}) g;
             CREATE TABLE small (id int);
             INSERT INTO small SELECT generate_series(1, 1000);
             VACUUM ANALYZE;"
        ),
    );
    server
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unzstd(path: &Path) -> Vec<u8> {
    zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap()
}

#[test]
fn parallel_chunks_reassemble_exactly_and_compress() {
    let server = big_server(200_000);
    let want = reference(
        &server,
        "COPY public.big TO STDOUT WITH (FORMAT csv, HEADER true)",
    );
    let dir = server.scratch().join("par");
    let manifest = server.scratch().join("manifest.json");
    let out = cbcopyout(
        &server,
        &[
            "-j",
            "3",
            "--chunk-size",
            "1M",
            "--format",
            "csv",
            "--header",
            "-o",
            dir.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--json",
        ],
    );
    let stdout = ok(&out);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let big = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.big")
        .unwrap();
    assert!(
        big["chunks"].as_u64().unwrap() >= 3,
        "the big table was split: {big}"
    );
    assert_eq!(big["rows"], 200_000);
    assert_eq!(std::fs::read(dir.join("public.big.csv")).unwrap(), want);

    // The manifest's checksums and row counts are those of the files.
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    for f in m["files"].as_array().unwrap() {
        let bytes = std::fs::read(f["path"].as_str().unwrap()).unwrap();
        assert_eq!(
            f["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&bytes))
        );
        assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64);
    }
    assert_eq!(m["total_rows"], 201_000);
    // No temporary file is left beside the outputs.
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // gzip and zstd, chunked: each decodes to the same bytes.
    for (spec, ext) in [("gzip:1", "gz"), ("zstd", "zst")] {
        let file = server.scratch().join(format!("big.csv.{ext}"));
        ok(&cbcopyout(
            &server,
            &[
                "-t",
                "big",
                "-j",
                "2",
                "--chunk-size",
                "2M",
                "--format",
                "csv",
                "--header",
                "--compress",
                spec,
                "-o",
                file.to_str().unwrap(),
            ],
        ));
        let got = if ext == "gz" {
            gunzip(&file)
        } else {
            unzstd(&file)
        };
        assert!(got == want, "{spec} output decodes to COPY's bytes");
    }
    // Compression inferred from the file name.
    let file = server.scratch().join("inferred.txt.gz");
    ok(&cbcopyout(
        &server,
        &["-t", "small", "-o", file.to_str().unwrap()],
    ));
    assert_eq!(
        gunzip(&file),
        reference(&server, "COPY public.small TO STDOUT")
    );
}

#[test]
fn split_parts_are_whole_files_that_concatenate_to_the_table() {
    let server = big_server(20_000);
    let want = reference(&server, "COPY public.big TO STDOUT WITH (FORMAT csv)");
    let header = b"id,payload,note\n";
    let dir = server.scratch().join("split");
    // A trailing slash makes a new directory even for one table.
    let out_dir = format!("{}/", dir.display());
    ok(&cbcopyout(
        &server,
        &[
            "-t",
            "big",
            "--format",
            "csv",
            "--header",
            "--split-rows",
            "3000",
            "-o",
            &out_dir,
        ],
    ));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    let mut joined = Vec::new();
    for n in 1..=7 {
        let part = dir.join(format!("public.big.part-{n:05}.csv"));
        let bytes = std::fs::read(&part).unwrap_or_else(|_| panic!("missing {}", part.display()));
        assert!(bytes.starts_with(header), "part {n} starts with the header");
        joined.extend_from_slice(&bytes[header.len()..]);
    }
    assert!(!dir.join("public.big.part-00008.csv").exists());
    assert!(joined == want);

    // By size, compressed, with chunks: every part decodes on its own and none passes the limit.
    let dir = server.scratch().join("split2");
    std::fs::create_dir(&dir).unwrap();
    ok(&cbcopyout(
        &server,
        &[
            "-t",
            "big",
            "--format",
            "csv",
            "--split-bytes",
            "100k",
            "--compress",
            "gzip",
            "-j",
            "2",
            "--chunk-size",
            "256k",
            "-o",
            dir.to_str().unwrap(),
        ],
    ));
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    parts.sort();
    assert!(parts.len() > 5);
    let mut joined = Vec::new();
    for p in &parts {
        let bytes = gunzip(p);
        assert!(
            bytes.len() <= 100 * 1024,
            "{} has {} bytes",
            p.display(),
            bytes.len()
        );
        joined.extend(bytes);
    }
    assert!(joined == want);
}

#[test]
fn odd_identifiers_get_distinct_safe_names() {
    let server = TestServer::start();
    server.create_db(DB);
    server.psql(
        DB,
        r#"CREATE SCHEMA "Sales/Dept";
           CREATE TABLE "Sales/Dept"."Orders" (x int); INSERT INTO "Sales/Dept"."Orders" VALUES (1);
           CREATE TABLE "Sales/Dept"."orders" (x int); INSERT INTO "Sales/Dept"."orders" VALUES (2);
           CREATE TABLE "Sales/Dept"."a b.c""d" (x int); INSERT INTO "Sales/Dept"."a b.c""d" VALUES (3);
           CREATE TABLE public."ünï" (x int); INSERT INTO public."ünï" VALUES (4);"#,
    );
    let dir = server.scratch().join("names");
    ok(&cbcopyout(&server, &["-o", dir.to_str().unwrap()]));
    let mut got: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    got.sort();
    let want = vec![
        (
            "%53ales%2F%44ept.%4Frders.txt".to_string(),
            "1\n".to_string(),
        ),
        (
            "%53ales%2F%44ept.a%20b%2Ec%22d.txt".to_string(),
            "3\n".to_string(),
        ),
        ("%53ales%2F%44ept.orders.txt".to_string(), "2\n".to_string()),
        ("public.%C3%BCn%C3%AF.txt".to_string(), "4\n".to_string()),
    ];
    assert_eq!(got, want);
}

#[test]
fn export_is_one_snapshot_under_concurrent_writes() {
    let server = TestServer::start();
    server.create_db(DB);
    server.psql(
        DB,
        "CREATE TABLE a (id serial, pad text); CREATE TABLE b (id serial, pad text);
         INSERT INTO a (pad) SELECT repeat('a', 200) FROM generate_series(1, 150000);
         INSERT INTO b (pad) SELECT repeat('b', 200) FROM generate_series(1, 150000);",
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut c = server.client(DB);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 100_000 {
                // Every transaction changes both tables: equal counts only at one instant.
                c.batch_execute(
                    "BEGIN; INSERT INTO a (pad) VALUES ('x'); INSERT INTO b (pad) VALUES ('y'); \
                     DELETE FROM a WHERE id = (SELECT min(id) FROM a); COMMIT;",
                )
                .unwrap();
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    let dir = server.scratch().join("snap");
    let out = cbcopyout(
        &server,
        &[
            "-j",
            "2",
            "--chunk-size",
            "1M",
            "-o",
            dir.to_str().unwrap(),
            "--json",
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.join().unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert!(writes > 0);
    let rows = |name: &str| -> usize {
        std::fs::read(dir.join(name))
            .unwrap()
            .iter()
            .filter(|&&c| c == b'\n')
            .count()
    };
    // a had 150000 + k inserts - k deletes; b had 150000 + k inserts, for the same k.
    let (ra, rb) = (rows("public.a.txt"), rows("public.b.txt"));
    assert_eq!(
        ra, 150_000,
        "a's count never changes at a transaction boundary"
    );
    assert!(rb >= 150_000);
    let ids = std::fs::read_to_string(dir.join("public.a.txt")).unwrap();
    let min_a: usize = ids
        .lines()
        .map(|l| l.split('\t').next().unwrap().parse::<usize>().unwrap())
        .min()
        .unwrap();
    assert_eq!(
        min_a - 1,
        rb - 150_000,
        "deleted rows of a equal inserted rows of b: one snapshot"
    );
    assert_eq!(report["tables"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_inputs_fail_clearly_and_leave_nothing() {
    let server = tricky_server();
    let dir = server.scratch().join("bad");
    let d = dir.to_str().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let leftovers =
        |dir: &Path| -> usize { std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0) };

    let err = failed(&cbcopyout(&server, &["-t", "nosuch*", "-o", d]));
    assert!(
        err.contains("no matching tables") && err.contains("nosuch*"),
        "{err}"
    );

    let err = failed(&cbcopyout(
        &server,
        &["-t", "tricky", "--where", "nosuchcol > 1", "-o", d],
    ));
    assert!(
        err.contains("public.tricky") && err.contains("column \"nosuchcol\" does not exist"),
        "{err}"
    );
    assert_eq!(leftovers(&dir), 0, "no file after a rejected WHERE");

    // A server error in the middle of the stream (division by zero at row 5).
    let err = failed(&cbcopyout(
        &server,
        &[
            "--query",
            "SELECT 1 / (5 - id) FROM tricky ORDER BY id",
            "-o",
            dir.join("q.txt").to_str().unwrap(),
        ],
    ));
    assert!(err.contains("division by zero"), "{err}");
    assert_eq!(leftovers(&dir), 0);

    server.psql(DB, "CREATE ROLE nobody LOGIN;");
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbcopyout"));
    let out = cmd
        .env("PGDATABASE", DB)
        .env("PGUSER", "nobody")
        .args(["-t", "tricky", "-o", d])
        .output()
        .unwrap();
    let err = failed(&out);
    assert!(err.contains("permission denied"), "{err}");
    assert_eq!(leftovers(&dir), 0);

    // The output's parent is a file: not a directory we can write into.
    let blocker = server.scratch().join("plainfile");
    std::fs::write(&blocker, "x").unwrap();
    let err = failed(&cbcopyout(
        &server,
        &["-o", blocker.join("sub/").to_str().unwrap()],
    ));
    assert!(err.contains("plainfile"), "{err}");

    // An existing file is not overwritten without --force.
    let file = server.scratch().join("exists.txt");
    std::fs::write(&file, "keep me").unwrap();
    let err = failed(&cbcopyout(
        &server,
        &["-t", "latin", "-o", file.to_str().unwrap()],
    ));
    assert!(
        err.contains("already exists") && err.contains("exists.txt"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    ok(&cbcopyout(
        &server,
        &["-t", "latin", "-o", file.to_str().unwrap(), "--force"],
    ));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        reference(&server, "COPY public.latin TO STDOUT")
    );

    // Connection refused and wrong password name the server, never the password.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cbcopyout"));
    cmd.args([
        "-d",
        "host=127.0.0.1 port=1 dbname=shop user=postgres sslmode=disable",
        "-o",
        d,
    ]);
    let err = failed(&cmd.output().unwrap());
    assert!(err.contains("127.0.0.1") && err.contains("port 1"), "{err}");

    server.psql(
        DB,
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE pw LOGIN PASSWORD 'right';",
    );
    server.set_hba("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cbcopyout"));
    let conn = format!(
        "host=127.0.0.1 port={} dbname=shop user=pw password=wrongsecret sslmode=disable",
        server.port()
    );
    cmd.args(["-d", &conn, "-o", d]);
    let err = failed(&cmd.output().unwrap());
    assert!(
        err.contains("password authentication failed for user \"pw\"")
            && !err.contains("wrongsecret"),
        "{err}"
    );
}

#[test]
fn on_segment_needs_cloudberry_and_sends_the_documented_statement() {
    let server = tricky_server();
    let err = failed(&cbcopyout(
        &server,
        &["-t", "latin", "--on-segment", "/tmp/x_<SEGID>.csv"],
    ));
    assert!(
        err.contains("needs Apache Cloudberry or Greenplum") && err.contains("PostgreSQL"),
        "{err}"
    );

    // The MPP path, with the catalog interface pointed at look-alike tables. PostgreSQL then
    // rejects ON SEGMENT itself; the log shows exactly what a Cloudberry coordinator receives.
    server.psql(
        DB,
        "CREATE SCHEMA fakegp;
         CREATE TABLE fakegp.gp_segment_configuration (dbid int2, content int2, role \"char\", preferred_role \"char\", mode \"char\", status \"char\", port int4, hostname text, address text, datadir text);
         INSERT INTO fakegp.gp_segment_configuration VALUES
           (1, -1, 'p', 'p', 'n', 'u', 5432, 'cdw', 'cdw', '/c'), (2, 0, 'p', 'p', 's', 'u', 6000, 'sdw1', 'sdw1', '/s0'), (3, 1, 'p', 'p', 's', 'u', 6001, 'sdw2', 'sdw2', '/s1');",
    );
    server.set_conf("log_statement", "all");
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbcopyout"));
    let out = cmd
        .env("PGDATABASE", DB)
        .env("CBTOOLS_MPP_CATALOG_SCHEMA", "fakegp")
        .args([
            "-t",
            "latin",
            "--format",
            "csv",
            "--on-segment",
            "/data/exp/<TABLE>_<SEGID>.csv",
        ])
        .output()
        .unwrap();
    let err = failed(&out);
    assert!(
        err.contains("public.latin") && err.contains("on_segment"),
        "{err}"
    );
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        log.contains("COPY \"public\".\"latin\" TO '/data/exp/public.latin_<SEGID>.csv' WITH (FORMAT csv, on_segment true)"),
        "statement not found in the server log"
    );
    // Several tables need <TABLE> in the path.
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbcopyout"));
    let out = cmd
        .env("PGDATABASE", DB)
        .env("CBTOOLS_MPP_CATALOG_SCHEMA", "fakegp")
        .args(["--on-segment", "/d/x_<SEGID>"])
        .output()
        .unwrap();
    assert!(failed(&out).contains("<TABLE>"));
}

/// Ctrl-C in the middle of a big export: workers stop, temporary files go, exit status 130.
#[test]
fn interrupt_and_lost_server_leave_nothing_behind() {
    let server = big_server(300_000);
    let dir = server.scratch().join("int");
    std::fs::create_dir(&dir).unwrap();
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbcopyout"));
    let child = cmd
        .env("PGDATABASE", DB)
        .args([
            "-t",
            "big",
            "--compress",
            "gzip:9",
            "-j",
            "2",
            "--chunk-size",
            "1M",
            "-o",
        ])
        .arg(&dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"));
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no files after Ctrl-C"
    );

    // The server side goes away mid-COPY: the error names the table, nothing is left.
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbcopyout"));
    let child = cmd
        .env("PGDATABASE", DB)
        .args(["-t", "big", "--compress", "gzip:9", "-o"])
        .arg(&dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut killer = server.client("postgres");
    let mut killed = 0;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        killed = killer
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                  WHERE application_name = 'cbcopyout' AND query LIKE 'COPY%'",
                &[],
            )
            .unwrap()
            .get::<_, i64>(0);
        if killed > 0 {
            break;
        }
    }
    assert!(killed > 0, "the COPY was seen and terminated");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("public.big")
            && (err.contains("terminat") || err.contains("lost the connection")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no files after a lost server"
    );
}
