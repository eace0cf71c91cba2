//! cbrestore on gpbackup backup sets, end to end against real PostgreSQL 15: the shared fixture
//! sets written by real gpbackup (when ../shared is present) and sets written from a live
//! database by the gpbackup crate's writer (always).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use gpbackup::writer::{WriterLayout, WriterOptions};
use gpbackup::Compression;
use testkit::gpset::write_backup_set;
use testkit::TestServer;

fn cbrestore(server: &TestServer, db: &str, args: &[&str]) -> Output {
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
    // Runs from the scratch directory: a failed restore leaves its state file there, not in
    // the source tree.
    cmd.current_dir(server.scratch())
        .args(["-d", db])
        .args(args)
        .output()
        .expect("running cbrestore")
}

fn ok(out: &Output) -> String {
    testkit::success(out, "cbrestore")
}

/// `schema.table` → md5 of its rows in a fixed order, for every user table of `db`.
fn fingerprints(server: &TestServer, db: &str) -> BTreeMap<String, String> {
    server.table_fingerprints(db, &['r'])
}

fn unpack(name: &str, into: &Path) -> Option<PathBuf> {
    testkit::gpset::unpack_fixture(name, into)
}

/// Rows per `schema.table`, summed over segments, from a fixture's rowcounts file.
fn rowcounts(name: &str) -> BTreeMap<String, u64> {
    let path = testkit::shared_fixtures()
        .unwrap()
        .join("gpbackup")
        .join(format!("{name}-rowcounts.txt"));
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() == 4 {
            if let Ok(n) = cols[3].parse::<u64>() {
                *out.entry(format!("{}.{}", cols[0], cols[1])).or_default() += n;
            }
        }
    }
    out
}

fn counts(server: &TestServer, db: &str, tables: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut c = server.client(db);
    tables
        .keys()
        .map(|t| {
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .unwrap()
                .get(0);
            (t.clone(), n as u64)
        })
        .collect()
}

#[test]
fn fixture_sets_restore_through_the_coordinator() {
    let server = TestServer::start();
    let Some(one) = unpack("1-segment-db", server.scratch()) else {
        eprintln!("skipping: no shared fixtures");
        return;
    };
    let two = unpack("2-segment-db", server.scratch()).unwrap();
    let sdf = unpack("2-segment-db-single-data-file", server.scratch()).unwrap();

    for (i, (dir, counts_name, jobs)) in [
        (&one, "1-segment-db", "1"),
        (&two, "2-segment-db", "2"),
        (&sdf, "2-segment-db", "2"),
    ]
    .into_iter()
    .enumerate()
    {
        let db = format!("r{i}");
        // Roles are cluster-wide: the first restore brings its roles (--with-globals); the
        // others, from clusters with other roles, leave ownership and privileges out.
        let mut args = vec!["--create-db", "-j", jobs, "--json", dir.to_str().unwrap()];
        if i == 0 {
            args.push("--with-globals");
        } else {
            args.extend(["--no-owner", "--no-privileges"]);
        }
        let report = ok(&cbrestore(&server, &db, &args));
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert_eq!(report["translated_for_postgres"], true);
        // The rowcounts list every table of the source database; the set holds eight of them.
        let all = rowcounts(counts_name);
        let restored: Vec<String> = report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["table"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(restored.len(), 8, "{restored:?}");
        let want: BTreeMap<String, u64> = restored.iter().map(|t| (t.clone(), all[t])).collect();
        assert_eq!(
            counts(&server, &db, &want),
            want,
            "{counts_name} via {}",
            dir.display()
        );
    }
    // The single-data-file set holds exactly the rows of its multiple-data-file twin.
    assert_eq!(fingerprints(&server, "r1"), fingerprints(&server, "r2"));

    // Replicated tables: one copy, not one per segment.
    let rep = unpack("1-segment-db-replicated", server.scratch()).unwrap();
    let out = ok(&cbrestore(
        &server,
        "rep",
        &["--create-db", "-O", "-x", "--json", rep.to_str().unwrap()],
    ));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    for t in report["tables"].as_array().unwrap() {
        let name = t["table"].as_str().unwrap();
        let n: i64 = server
            .client("rep")
            .query_one(&format!("SELECT count(*) FROM {name}"), &[])
            .unwrap()
            .get(0);
        assert_eq!(n as u64, t["rows"].as_u64().unwrap(), "{name}");
    }

    // corrupt-db: a row on the wrong segment fails stock gprestore; through the coordinator it
    // is just a row.
    let corrupt = unpack("corrupt-db", server.scratch()).unwrap();
    let out = ok(&cbrestore(
        &server,
        "corrupt",
        &[
            "--create-db",
            "-O",
            "-x",
            "--json",
            corrupt.to_str().unwrap(),
        ],
    ));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total_rows"], 30);

    // Incremental: two sets in one tree; --timestamp is required and the restore plan is followed.
    let inc = unpack("2-segment-db-incremental", server.scratch()).unwrap();
    let out = cbrestore(
        &server,
        "inc",
        &["--create-db", "-O", "-x", inc.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--timestamp"), "{err}");
    let sets = gpbackup::discover(&[&inc]).unwrap().timestamps();
    let latest = sets.iter().max().unwrap().clone();
    ok(&cbrestore(
        &server,
        "inc",
        &[
            "--create-db",
            "-O",
            "-x",
            "--timestamp",
            &latest,
            inc.to_str().unwrap(),
        ],
    ));
    let n: i64 = server
        .client("inc")
        .query_one("SELECT count(*) FROM schematwo.tableone", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 100_001);

    // --to-sql: one psql script, the same tables.
    let script = server.scratch().join("two.sql.gz");
    ok(&Command::new(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["--to-sql"])
        .arg(&script)
        .args(["--target", "postgres", "-O", "-x"])
        .arg(&two)
        .output()
        .unwrap());
    server.create_db("fromsql");
    let sql = {
        use std::io::Read;
        let mut s = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&script).unwrap())
            .read_to_string(&mut s)
            .unwrap();
        s
    };
    server.psql("fromsql", &sql);
    assert_eq!(
        fingerprints(&server, "fromsql"),
        fingerprints(&server, "r1")
    );
}

const SOURCE: &str = r#"
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Ta,ble ""q""" (id int PRIMARY KEY, t text, e text, b bytea, j jsonb);
INSERT INTO "Odd Schema"."Ta,ble ""q""" VALUES
 (1, 'comma, "quote"', '', '\x00ff', '{"a": "b,\"c\""}'),
 (2, E'multi\nline\r\nvalue', NULL, NULL, NULL),
 (3, 'ünïcødé', '""', '', 'null');
INSERT INTO "Odd Schema"."Ta,ble ""q""" SELECT g, md5(g::text), CASE WHEN g % 2 = 0 THEN '' END, NULL, NULL
  FROM generate_series(4, 30000) g;
CREATE TABLE public.big (id int PRIMARY KEY, t text);
INSERT INTO public.big SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, 150000) g;
CREATE TABLE public.other (id int, v numeric);
INSERT INTO public.other SELECT g, g / 3.0 FROM generate_series(1, 120000) g;
CREATE TABLE public.small (a int);
INSERT INTO public.small VALUES (1), (2);
CREATE INDEX other_v ON public.other (v);
CREATE TABLE public.events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE public.events_a PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE public.events_b PARTITION OF public.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO public.events SELECT g, date '2024-01-01' + (g % 700) FROM generate_series(1, 5000) g;
CREATE TABLE public.ancient (id int, d date);
INSERT INTO public.ancient SELECT g, CASE WHEN g = 3000 THEN date '0044-03-15 BC' ELSE date '2024-01-01' + g END
  FROM generate_series(1, 5000) g;
"#;

fn written_set(
    server: &TestServer,
    root: &Path,
    compression: Compression,
    sdf: bool,
    segments: u32,
) {
    let mut client = server.client("src");
    let pg_dump = || {
        let mut c = server.command("pg_dump");
        c.args(["-d", "src"]);
        c
    };
    write_backup_set(
        &mut client,
        &pg_dump,
        root,
        &WriterOptions {
            segments,
            compression,
            single_data_file: sdf,
            layout: WriterLayout::PerContent {
                prefix: "gpseg".into(),
            },
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn written_sets_restore_to_identical_tables() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", SOURCE);
    let source = fingerprints(&server, "src");
    server.set_conf("log_statement", "all");
    for (i, (c, sdf, segs, jobs)) in [
        (Compression::Gzip, false, 4, "3"),
        (Compression::Zstd, true, 3, "2"),
        (Compression::None, false, 2, "1"),
    ]
    .into_iter()
    .enumerate()
    {
        let root = server.scratch().join(format!("set{i}"));
        written_set(&server, &root, c, sdf, segs);
        let db = format!("t{i}");
        ok(&cbrestore(
            &server,
            &db,
            &["--create-db", "-j", jobs, root.to_str().unwrap()],
        ));
        assert_eq!(fingerprints(&server, &db), source, "set {i}");
    }
    // Tables this restore created are emptied and copied with FREEZE in one transaction; those
    // whose every column converts go in as binary COPY, and a table with a value the converter
    // refuses (a BC date, row 3000) is loaded again as CSV: the fingerprints above show no row
    // twice.
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        log.contains("TRUNCATE TABLE ONLY") && log.contains("DELIMITER ',', FREEZE)"),
        "no FREEZE load in the server log"
    );
    assert!(
        log.contains("COPY public.big (id,t) FROM STDIN WITH (FORMAT binary, FREEZE)"),
        "big went in as binary"
    );
    assert!(
        log.contains("COPY public.ancient (id,d) FROM STDIN WITH (FORMAT binary, FREEZE)")
            && log.contains(
                "COPY public.ancient (id,d) FROM STDIN WITH (FORMAT csv, DELIMITER ',', FREEZE)"
            ),
        "ancient tried binary, then CSV"
    );
}

#[test]
fn missing_and_corrupt_files_fail_before_or_without_half_loading() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", SOURCE);
    let root = server.scratch().join("set");
    written_set(&server, &root, Compression::Gzip, false, 3);
    let data_files: Vec<PathBuf> = walk(&root)
        .into_iter()
        .filter(|p| {
            p.to_string_lossy().contains("gpbackup_1_") && p.to_string_lossy().ends_with(".gz")
        })
        .collect();
    assert!(!data_files.is_empty());

    // A missing segment file: named, and nothing is created in the target.
    let victim = data_files[0].clone();
    let kept = victim.with_extension("kept");
    std::fs::rename(&victim, &kept).unwrap();
    server.create_db("m");
    let out = cbrestore(&server, "m", &[root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(victim.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    let n: i64 = server
        .client("m")
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "nothing restored before the file check passes");
    std::fs::rename(&kept, &victim).unwrap();

    // A gzip file cut in half: the error names the file and table; that table stays empty.
    let big = data_files
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap()
        .clone();
    let bytes = std::fs::read(&big).unwrap();
    std::fs::write(&big, &bytes[..bytes.len() / 2]).unwrap();
    server.create_db("c");
    let out = cbrestore(&server, "c", &[root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(big.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    let f = fingerprints(&server, "c");
    let empty: Vec<_> = f.iter().filter(|(_, v)| v.starts_with("0:")).collect();
    assert!(
        !empty.is_empty(),
        "the table with the broken file is empty, not half loaded: {f:?}"
    );
}

#[test]
fn kill_then_resume_loads_every_row_once() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", SOURCE);
    let source = fingerprints(&server, "src");
    let root = server.scratch().join("set");
    written_set(&server, &root, Compression::Gzip, false, 3);
    server.create_db("k");
    let state = server.scratch().join("state.json");
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
    let mut child = cmd
        .args(["-d", "k", "--state-file"])
        .arg(&state)
        .arg(&root)
        .spawn()
        .unwrap();
    // Kill as soon as some table has rows: in the middle of the data phase.
    let seen = server.wait_for_active("datname = 'k'", "COPY", 4);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "the data phase was reached before the kill");
    ok(&cbrestore(
        &server,
        "k",
        &[
            "--resume",
            "--state-file",
            state.to_str().unwrap(),
            root.to_str().unwrap(),
        ],
    ));
    assert_eq!(fingerprints(&server, "k"), source);
    let book: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(book["finished"], true, "a finished restore says so: {book}");

    // A state file from another input is refused.
    std::fs::write(
        &state,
        r#"{"fingerprint":"something else","statements":[],"tables":[]}"#,
    )
    .unwrap();
    let out = cbrestore(
        &server,
        "k",
        &[
            "--resume",
            "--state-file",
            state.to_str().unwrap(),
            root.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume refused"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn options_select_and_reload_tables() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", SOURCE);
    let source = fingerprints(&server, "src");
    let root = server.scratch().join("set");
    written_set(&server, &root, Compression::Gzip, false, 2);
    let r = root.to_str().unwrap();

    // --include-table (and the -file variant): only those tables, their rows exact.
    let list = server.scratch().join("tables.txt");
    std::fs::write(&list, "# wanted\npublic.small\n").unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&cbrestore(
        &server,
        "inc",
        &[
            "--create-db",
            "--include-table",
            "public.big",
            "--include-table-file",
            list.to_str().unwrap(),
            "--json",
            r,
        ],
    )))
    .unwrap();
    let got = fingerprints(&server, "inc");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        vec!["public.big", "public.small"]
    );
    for (k, v) in &got {
        assert_eq!(v, &source[k], "{k}");
    }
    assert_eq!(report["total_rows"], 150_000 + 2);
    let target = report["target"].as_str().unwrap();
    assert!(
        target.contains("database \"inc\"") && target.contains("PostgreSQL"),
        "{target}"
    );
    assert!(report["files_read"].as_u64().unwrap() >= 4);

    // --exclude-schema; then --metadata-only creates without rows; --data-only fills;
    // --data-only --truncate-table again gives the same rows, not twice.
    let out = ok(&cbrestore(
        &server,
        "ex",
        &["--create-db", "--exclude-schema", "Odd Schema", "--json", r],
    ));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["tables"].as_array().unwrap().len(), 5);
    assert!(!fingerprints(&server, "ex").contains_key("Odd Schema.Ta,ble \"q\""));

    ok(&cbrestore(
        &server,
        "md",
        &["--create-db", "--metadata-only", r],
    ));
    assert!(fingerprints(&server, "md")
        .values()
        .all(|v| v.starts_with("0:")));
    ok(&cbrestore(&server, "md", &["--data-only", "-j", "2", r]));
    assert_eq!(fingerprints(&server, "md"), source);
    ok(&cbrestore(
        &server,
        "md",
        &["--data-only", "--truncate-table", r],
    ));
    assert_eq!(fingerprints(&server, "md"), source);
    // Without --truncate-table a second data load is refused by the primary keys, and every
    // table it failed on keeps its rows (each load is one transaction).
    let out = cbrestore(
        &server,
        "md",
        &["--data-only", "--on-error-continue", "--json", r],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["errors"].as_array().unwrap().len() >= 2, "{report}");
    let f = fingerprints(&server, "md");
    for k in ["public.big", "Odd Schema.Ta,ble \"q\""] {
        assert_eq!(f[k], source[k], "{k}");
    }
}

#[test]
fn bad_offsets_and_newer_versions_are_clear_errors() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", SOURCE);
    let root = server.scratch().join("sdf");
    written_set(&server, &root, Compression::None, true, 2);
    let files = walk(&root);

    // A segment toc whose last range ends beyond its data file.
    let seg_toc = files
        .iter()
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("gpbackup_0_") && n.ends_with("_toc.yaml")
        })
        .expect("segment toc of content 0")
        .clone();
    let original = std::fs::read_to_string(&seg_toc).unwrap();
    let pos = original.rfind("endbyte: ").unwrap() + "endbyte: ".len();
    let end = pos
        + original[pos..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(original.len() - pos);
    let broken = format!("{}{}{}", &original[..pos], 999_999_999u64, &original[end..]);
    std::fs::write(&seg_toc, broken).unwrap();
    server.create_db("o");
    let out = cbrestore(&server, "o", &[root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("beyond"), "{err}");
    std::fs::write(&seg_toc, original).unwrap();

    // A config written by a gpbackup major this reader does not know: refused before
    // anything is created.
    let config = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_config.yaml"))
        .unwrap()
        .clone();
    let text = std::fs::read_to_string(&config).unwrap();
    let newer: String = text
        .lines()
        .map(|l| {
            if l.starts_with("backupversion:") {
                "backupversion: 9.0.0".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&config, newer).unwrap();
    server.create_db("v");
    let out = cbrestore(&server, "v", &[root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("9.0.0") && err.contains("config.yaml"),
        "{err}"
    );
    let n: i64 = server
        .client("v")
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

/// `-j 3 --split-tables-larger-than`: a big table's merged CSV stream is shared by idle
/// workers, cut only at row ends (quoted commas, quotes and line feeds inside values).
#[test]
fn split_loads_of_a_big_table_in_a_set() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", SOURCE);
    server.psql(
        "src",
        "CREATE TABLE public.wide (id bigint PRIMARY KEY, t text);
         INSERT INTO public.wide SELECT g, CASE g % 4 WHEN 0 THEN E'two\\nlines, \"quoted\"'
                                               WHEN 1 THEN '' WHEN 2 THEN NULL ELSE md5(g::text) END
           FROM generate_series(1, 200000) g;",
    );
    let source = fingerprints(&server, "src");
    let root = server.scratch().join("bigset");
    written_set(&server, &root, Compression::Gzip, false, 3);
    let out = cbrestore(
        &server,
        "split",
        &[
            "--create-db",
            "-j",
            "3",
            "-v",
            "--split-tables-larger-than",
            "1k",
            root.to_str().unwrap(),
        ],
    );
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("joining the load of"),
        "no helper joined: {err}"
    );
    assert_eq!(fingerprints(&server, "split"), source);
}

/// `--verify-only` reads every file of a set and counts its rows against the backup's, with no
/// server to connect to; a data-only restore killed mid-COPY and resumed keeps the rows a
/// table already had (only tables the restore created are emptied).
#[test]
fn verify_only_and_a_resumed_data_only_restore() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE public.big (id int, t text);
         INSERT INTO public.big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 600000) g;",
    );
    let root = server.scratch().join("set");
    written_set(&server, &root, Compression::Gzip, false, 3);
    let out = server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .env("PGHOST", "/nonexistent")
        .args(["--verify-only", "--json"])
        .arg(&root)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["tables"][0]["rows"], 600000, "{report}");
    assert_eq!(
        (report["kind"].as_str(), report["total_rows"].as_u64()),
        (Some("backup_set"), Some(600000))
    );

    server.create_db("d");
    server.psql(
        "d",
        "CREATE TABLE public.big (id int, t text);
         INSERT INTO public.big SELECT -g, 'mine' FROM generate_series(1, 10) g;",
    );
    let mut child = server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-d", "d", "--data-only"])
        .arg(&root)
        .spawn()
        .unwrap();
    let seen = server.wait_for_active("datname = 'd'", "COPY", 30);
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "killed during the COPY");
    ok(&cbrestore(
        &server,
        "d",
        &["--data-only", "--resume", root.to_str().unwrap()],
    ));
    let n: i64 = server
        .client("d")
        .query_one("SELECT count(*) FROM public.big", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 600010, "the table's own 10 rows are kept");
}

/// A publication's membership of a table follows the table: `--exclude-table` leaves out the
/// `ALTER PUBLICATION ... ADD TABLE` of the excluded table (which would fail, the table not being
/// there), and `--include-table` leaves out the publication and so its memberships, as it leaves
/// out every schema-less object.
#[test]
fn table_filters_keep_publication_memberships_consistent() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE \"B b\" (id int PRIMARY KEY);
         INSERT INTO a SELECT generate_series(1, 10); INSERT INTO \"B b\" VALUES (1);
         CREATE PUBLICATION p FOR TABLE a, \"B b\"; CREATE PUBLICATION q FOR TABLE \"B b\";",
    );
    let root = server.scratch().join("set");
    written_set(&server, &root, Compression::None, false, 2);
    let r = root.to_str().unwrap();
    let members = |db: &str| {
        server
            .psql(
                db,
                "SELECT pubname || ':' || tablename FROM pg_publication_tables ORDER BY 1",
            )
            .trim()
            .to_string()
    };

    ok(&cbrestore(&server, "all", &["--create-db", r]));
    assert_eq!(members("all"), "p:B b\np:a\nq:B b");
    ok(&cbrestore(
        &server,
        "ex",
        &["--create-db", "--exclude-table", "public.B b", r],
    ));
    assert_eq!(members("ex"), "p:a");
    ok(&cbrestore(
        &server,
        "inc",
        &["--create-db", "--include-table", "public.a", r],
    ));
    assert_eq!(members("inc"), "");
    assert_eq!(server.psql("inc", "SELECT count(*) FROM a").trim(), "10");
}
