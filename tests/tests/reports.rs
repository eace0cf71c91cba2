//! What every tool says about a run, end to end (issue 15): `-v` lines with `--log-file`
//! (timestamps, table names, the summary, the error of a failing run), cbrestore's
//! `--progress json` from bytes, table names spelled alike in every tool's reports, and
//! cbdump's manifest timings.
//!
//! The binaries are the workspace's own (`cargo test --workspace` builds them beside this test).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use testkit::TestServer;

const MIXED: &str = "\"Mixed Case\".\"t.1\"";

fn bin(name: &str) -> PathBuf {
    let path = testkit::workspace_bin(name);
    assert!(
        path.exists(),
        "{} is not built: cargo build --bins (cargo test --workspace builds it)",
        path.display()
    );
    path
}

/// A database with a plain table and one whose schema and table need quotes.
fn server() -> TestServer {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE public.plain (id int PRIMARY KEY, t text);
         INSERT INTO public.plain SELECT g, repeat('p', 50) FROM generate_series(1, 20000) g;
         CREATE SCHEMA \"Mixed Case\";
         CREATE TABLE \"Mixed Case\".\"t.1\" (id int, v text);
         INSERT INTO \"Mixed Case\".\"t.1\" SELECT g, 'v' || g FROM generate_series(1, 3000) g;",
    );
    server
}

fn tool(server: &TestServer, name: &str) -> Command {
    let mut cmd = server.tool(bin(name));
    cmd.stdin(Stdio::null());
    cmd
}

fn ok(out: &Output, what: &str) -> String {
    testkit::success(out, what)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The lines of a log file, each checked for its `2026-12-03T18:14:21.123+00:00 [pid] ` start;
/// returned without it.
fn log_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let b = line.as_bytes();
            let stamped = b.len() > 32
                && b[..29].iter().enumerate().all(|(i, c)| match i {
                    4 | 7 => *c == b'-',
                    10 => *c == b'T',
                    13 | 16 | 26 => *c == b':',
                    19 => *c == b'.',
                    23 => matches!(c, b'+' | b'-'),
                    _ => c.is_ascii_digit(),
                })
                && b[29..].starts_with(b" [");
            assert!(stamped, "not a timestamped line: {line:?}");
            let rest = &line[31..];
            let end = rest.find("] ").expect("the pid ends with ]");
            assert!(rest[..end].bytes().all(|c| c.is_ascii_digit()), "{line}");
            rest[end + 2..].to_string()
        })
        .collect()
}

fn has(lines: &[String], wanted: &str) -> bool {
    lines.iter().any(|l| l.starts_with(wanted))
}

#[test]
fn every_tool_writes_its_v_lines_summary_and_errors_to_the_log_file() {
    let server = server();
    let scratch = server.scratch().to_path_buf();
    let log = |n: &str| scratch.join(format!("{n}.log"));

    // cbdump: the command, a line per table, the summary.
    let dump = scratch.join("d.dir");
    let out = tool(&server, "cbdump")
        .args(["-d", "src", "-F", "d", "-j", "2", "-v", "-f"])
        .arg(&dump)
        .arg("--log-file")
        .arg(log("cbdump"))
        .output()
        .unwrap();
    ok(&out, "cbdump");
    let lines = log_lines(&log("cbdump"));
    assert!(
        has(&lines, "cbdump: started: cbdump -d src -F d"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "cbdump: dumped public.plain: 20000 rows"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, &format!("cbdump: dumped {MIXED}: 3000 rows")),
        "{lines:#?}"
    );
    assert!(
        has(
            &lines,
            &format!("cbdump: {} (directory): 2 tables", dump.display())
        ),
        "{lines:#?}"
    );
    // What stderr showed, the file has (stderr has no timestamps, and no first line).
    for l in stderr(&out).lines().filter(|l| l.starts_with("cbdump: ")) {
        assert!(
            lines.iter().any(|x| x == l),
            "{l:?} not in the log:\n{lines:#?}"
        );
    }

    // cbrestore: a line per table loaded, the summary naming the target.
    server.create_db("dst");
    let out = tool(&server, "cbrestore")
        .args(["-d", "dst", "-v", "--log-file"])
        .arg(log("cbrestore"))
        .arg(&dump)
        .output()
        .unwrap();
    ok(&out, "cbrestore");
    let lines = log_lines(&log("cbrestore"));
    assert!(
        has(&lines, "cbrestore: started: cbrestore -d dst -v"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "cbrestore: loaded public.plain: 20000 rows"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, &format!("cbrestore: loaded {MIXED}: 3000 rows")),
        "{lines:#?}"
    );
    assert!(has(&lines, "cbrestore: restored "), "{lines:#?}");

    // cbcopyout.
    let out = tool(&server, "cbcopyout")
        .args(["-d", "src", "-v", "-o"])
        .arg(scratch.join("csv"))
        .arg("--log-file")
        .arg(log("cbcopyout"))
        .output()
        .unwrap();
    ok(&out, "cbcopyout");
    let lines = log_lines(&log("cbcopyout"));
    assert!(
        has(&lines, "cbcopyout: exported public.plain ("),
        "{lines:#?}"
    );
    assert!(
        has(&lines, &format!("cbcopyout: exported {MIXED} (")),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "cbcopyout: exported 23000 rows from 2 tables"),
        "{lines:#?}"
    );

    // cbclone.
    server.create_db("copy");
    let out = tool(&server, "cbclone")
        .args(["--source", &server.conn_string("src")])
        .args(["--target", &server.conn_string("copy")])
        .args(["-v", "--log-file"])
        .arg(log("cbclone"))
        .output()
        .unwrap();
    ok(&out, "cbclone");
    let lines = log_lines(&log("cbclone"));
    assert!(has(&lines, "cbclone: pre-data"), "{lines:#?}");
    assert!(
        has(&lines, "cbclone: copied public.plain (20000 rows"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, &format!("cbclone: copied {MIXED} (3000 rows")),
        "{lines:#?}"
    );
    assert!(has(&lines, "cbclone: 2 tables, 23000 rows"), "{lines:#?}");
    // The password of a conninfo never reaches the file.
    assert!(
        has(&lines, "cbclone: started: cbclone --source 'host="),
        "{lines:#?}"
    );

    // A failing run: the error (and with it the story) is in the file, appended to the
    // earlier run's lines; the exit status is the failure's.
    let out = tool(&server, "cbrestore")
        .args(["-d", "no_such_db", "--log-file"])
        .arg(log("cbrestore"))
        .arg(&dump)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines = log_lines(&log("cbrestore"));
    assert!(
        has(&lines, "cbrestore: restored "),
        "the first run's lines stay"
    );
    let error = lines.last().unwrap();
    assert!(
        error.starts_with("cbrestore: error: ") && error.contains("no_such_db"),
        "{lines:#?}"
    );
    assert!(stderr(&out).contains(error.as_str()), "{}", stderr(&out));
    // A log file that cannot be written stops the run before it starts.
    let out = tool(&server, "cbdump")
        .args([
            "-d",
            "src",
            "-f",
            "x.sql",
            "--log-file",
            "/nonexistent/dir/x.log",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--log-file /nonexistent/dir/x.log:"),
        "{}",
        stderr(&out)
    );
    assert!(!scratch.join("x.sql").exists());
}

/// The JSON objects of `--progress json` on stderr.
fn progress_objects(out: &Output) -> Vec<Value> {
    stderr(out)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Objects from cbrestore, bytes done never going back, the last one at the total.
fn check_progress(objects: &[Value], total: u64, tables: u64) {
    assert!(!objects.is_empty(), "no progress objects");
    let mut done = 0;
    for o in objects {
        assert_eq!(o["tool"], "cbrestore", "{o}");
        assert_eq!(o["bytes_total"], total, "{o}");
        let now = o["bytes_done"].as_u64().unwrap();
        assert!(now >= done, "bytes_done went back: {objects:#?}");
        done = now;
    }
    let last = objects.last().unwrap();
    assert_eq!(last["bytes_done"], total, "{last}");
    assert_eq!(last["percent"], 100.0, "{last}");
    assert_eq!(last["tables_done"], tables, "{last}");
    assert_eq!(
        last["in_flight"].as_array().map(Vec::len),
        Some(0),
        "{last}"
    );
}

fn file_sizes(dir: &Path, keep: impl Fn(&str) -> bool) -> u64 {
    walk(dir)
        .iter()
        .filter(|p| keep(&p.file_name().unwrap().to_string_lossy()))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
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
fn cbrestore_progress_json_counts_the_stored_bytes_of_every_input() {
    let server = server();
    server.psql(
        "src",
        "CREATE TABLE public.big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 300000) g;",
    );
    let scratch = server.scratch().to_path_buf();
    let restore = |db: &str, input: &Path, extra: &[&str]| {
        server.create_db(db);
        let out = tool(&server, "cbrestore")
            .args(["-d", db, "--progress", "json"])
            .args(extra)
            .arg(input)
            .output()
            .unwrap();
        ok(&out, "cbrestore");
        assert_eq!(
            server.psql(db, "SELECT count(*) FROM public.big").trim(),
            "300000"
        );
        progress_objects(&out)
    };

    // A directory archive: the data files' sizes.
    let dir = scratch.join("p.dir");
    ok(
        &tool(&server, "cbdump")
            .args(["-d", "src", "-F", "d", "-f"])
            .arg(&dir)
            .output()
            .unwrap(),
        "cbdump -F d",
    );
    let total = file_sizes(&dir, |n| n.ends_with(".dat.gz"));
    check_progress(&restore("r_dir", &dir, &["-j", "2"]), total, 3);

    // A custom archive: its data blocks, from each one's offset to the next.
    let custom = scratch.join("p.dump");
    ok(
        &server
            .command("pg_dump")
            .args(["-d", "src", "-Fc", "-f"])
            .arg(&custom)
            .output()
            .unwrap(),
        "pg_dump -Fc",
    );
    let objects = restore("r_custom", &custom, &[]);
    let total = objects[0]["bytes_total"].as_u64().unwrap();
    let size = std::fs::metadata(&custom).unwrap().len();
    assert!(total > 0 && total < size, "{total} of {size}");
    check_progress(&objects, total, 3);

    // A plain script: its size.
    let script = scratch.join("p.sql");
    ok(
        &server
            .command("pg_dump")
            .args(["-d", "src", "-f"])
            .arg(&script)
            .output()
            .unwrap(),
        "pg_dump",
    );
    let size = std::fs::metadata(&script).unwrap().len();
    check_progress(&restore("r_plain", &script, &[]), size, 0);

    // A gpbackup set: its data files' sizes.
    let root = scratch.join("set");
    let mut client = server.client("src");
    let pg_dump = || {
        let mut c = server.command("pg_dump");
        c.args(["-d", "src"]);
        c
    };
    testkit::gpset::write_backup_set(
        &mut client,
        &pg_dump,
        &root,
        &gpbackup::writer::WriterOptions {
            segments: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let total = file_sizes(&root, |n| {
        matches!(
            gpbackup::layout::classify(n),
            Some(gpbackup::layout::FileKind::TableData { .. })
        )
    });
    let objects = restore("r_set", &root, &["-j", "2"]);
    assert_eq!(objects.last().unwrap()["bytes_total"], total);
    check_progress(&objects, total, 3);
}

/// `tables[].table` of a JSON report.
fn report_tables(report: &Value) -> Vec<String> {
    let mut names: Vec<String> = report["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("no tables in {report}"))
        .iter()
        .map(|t| t["table"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Every table of a report took some time.
fn assert_table_seconds(report: &Value) {
    for t in report["tables"].as_array().unwrap() {
        let s = t["seconds"].as_f64().unwrap_or(0.0);
        assert!(s > 0.0, "no seconds: {t}");
    }
}

#[test]
fn table_names_are_spelled_alike_in_every_report_with_real_seconds() {
    let server = server();
    let scratch = server.scratch().to_path_buf();
    let want = vec![MIXED.to_string(), "public.plain".to_string()];

    // cbdump, held on a lock for two seconds: the manifest's elapsed time shows them.
    let mut holder = server.client("src");
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE public.plain IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let dir = scratch.join("s.dir");
    let child = tool(&server, "cbdump")
        .args(["-d", "src", "-F", "d", "--json", "-f"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        server.wait_for_active("datname = 'src'", "LOCK TABLE", 60),
        "cbdump never waited on the lock"
    );
    let held = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let waited = held.elapsed().as_secs_f64();
    tx.rollback().unwrap();
    let out = child.wait_with_output().unwrap();
    let report: Value = serde_json::from_str(&ok(&out, "cbdump --json")).unwrap();
    assert_eq!(report_tables(&report), want);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(report_tables(&manifest), want);
    let elapsed = manifest["elapsed_seconds"].as_f64().unwrap();
    // It started before the wait was seen and could not finish before the lock was gone.
    assert!(
        elapsed >= waited,
        "manifest elapsed_seconds {elapsed} < {waited}"
    );
    // Orderings, not speeds: the report is made after the manifest, and each table's COPY ran
    // inside the run the manifest times; a slower machine only makes every figure larger.
    assert!(report["elapsed_seconds"].as_f64().unwrap() >= elapsed);
    for t in manifest["tables"].as_array().unwrap() {
        let s = t["seconds"].as_f64().unwrap();
        assert!(s > 0.0 && s <= elapsed, "{t}");
    }

    // cbrestore, of that archive.
    server.create_db("dst");
    let out = tool(&server, "cbrestore")
        .args(["-d", "dst", "--json"])
        .arg(&dir)
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&ok(&out, "cbrestore --json")).unwrap();
    assert_eq!(report_tables(&report), want);
    assert_table_seconds(&report);

    // cbcopyout.
    let out = tool(&server, "cbcopyout")
        .args(["-d", "src", "--json", "-o"])
        .arg(scratch.join("csv"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&ok(&out, "cbcopyout --json")).unwrap();
    assert_eq!(report_tables(&report), want);
    assert_table_seconds(&report);

    // cbclone.
    server.create_db("copy");
    let out = tool(&server, "cbclone")
        .args(["--source", &server.conn_string("src")])
        .args(["--target", &server.conn_string("copy"), "--json"])
        .args(["--progress", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(&ok(&out, "cbclone --json")).unwrap();
    assert_eq!(report_tables(&report), want);
    assert_table_seconds(&report);
    // Its progress is the one every tool draws: from the tables' bytes, to the total.
    let last = progress_objects(&out)
        .pop()
        .expect("a last progress object");
    assert_eq!(last["tool"], "cbclone", "{last}");
    assert!(last["bytes_total"].as_u64().unwrap() > 0, "{last}");
    assert_eq!(last["bytes_done"], last["bytes_total"], "{last}");
    assert_eq!(
        (last["tables_done"].as_u64(), last["tables"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(last["rows"], 23000, "{last}");
}
