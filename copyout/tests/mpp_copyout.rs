//! `cbcopyout --on-segment` on a real MPP server (the Greenplum-7 stand-in or Cloudberry): runs
//! when `CBTOOLS_TEST_MPP` names the coordinator and says that it skipped otherwise. Every
//! segment writes its own file; the files hold exactly the table's rows (a hash-distributed
//! table's rows once, split by segment as `gp_segment_id` says; a replicated table's rows in full
//! on every segment), in the CSV the server's own COPY writes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::str::FromStr;

#[test]
fn every_segment_writes_its_own_rows() {
    let Some(coord) = std::env::var("CBTOOLS_TEST_MPP")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        eprintln!(
            "SKIPPED: set CBTOOLS_TEST_MPP to an MPP coordinator's conninfo to run this test"
        );
        return;
    };
    let db = format!("cbt_copyout_{}", std::process::id());
    let mut cfg = postgres::Config::from_str(&coord).unwrap();
    let mut admin = cfg.dbname("postgres").connect(postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let mut c = cfg.dbname(&db).connect(postgres::NoTls).unwrap();
    c.batch_execute(
        "CREATE TABLE orders (id int, note text) DISTRIBUTED BY (id);
         INSERT INTO orders SELECT g, CASE WHEN g % 5 = 0 THEN E'a,\"b\"\\nc' END FROM generate_series(1, 3000) g;
         CREATE TABLE rep (a int) DISTRIBUTED REPLICATED;
         INSERT INTO rep SELECT generate_series(1, 40);",
    )
    .unwrap();
    let per_segment: BTreeMap<i32, i64> = c
        .query("SELECT gp_segment_id, count(*) FROM orders GROUP BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let segments: i64 = c
        .query_one(
            "SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0",
            &[],
        )
        .unwrap()
        .get(0);

    let dir = tempfile::Builder::new()
        .prefix("cbt-copyout-")
        .tempdir_in("/tmp")
        .unwrap();
    // The segments write as the server's OS user.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let template = format!("{}/<TABLE>_<SEGID>.csv", dir.path().display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cbcopyout"))
        .args(["-d", &format!("{coord} dbname={db}")])
        .args([
            "-t",
            "orders",
            "-t",
            "rep",
            "--format",
            "csv",
            "--on-segment",
        ])
        .arg(&template)
        .output()
        .unwrap();
    testkit::success(&out, "cbcopyout --on-segment");

    // The rows the server's own COPY writes, to compare the files with.
    let mut whole = Vec::new();
    c.copy_out("COPY orders TO STDOUT (FORMAT csv)")
        .unwrap()
        .read_to_end(&mut whole)
        .unwrap();
    let rows = |b: &[u8]| -> Vec<String> {
        let mut v: Vec<String> = split_csv_rows(b);
        v.sort();
        v
    };
    let mut from_files = Vec::new();
    for seg in 0..segments as i32 {
        let path = dir.path().join(format!("public.orders_{seg}.csv"));
        let bytes = std::fs::read(&path).unwrap();
        let n = split_csv_rows(&bytes).len() as i64;
        assert_eq!(
            n,
            per_segment.get(&seg).copied().unwrap_or(0),
            "segment {seg}"
        );
        from_files.extend(bytes);
        let rep = std::fs::read(dir.path().join(format!("public.rep_{seg}.csv"))).unwrap();
        assert_eq!(
            split_csv_rows(&rep).len(),
            40,
            "replicated: a full copy per segment"
        );
    }
    assert_eq!(rows(&from_files), rows(&whole));

    drop(c);
    admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
}

use std::io::Read;

/// CSV records (a newline inside quotes belongs to the field).
fn split_csv_rows(b: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut quoted = false;
    for &c in b {
        if c == b'"' {
            quoted = !quoted;
        }
        if c == b'\n' && !quoted {
            out.push(String::from_utf8_lossy(&cur).into_owned());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    out
}

/// Waits until a statement of `db` whose text contains `like` is running on the coordinator.
fn wait_for_active(c: &mut postgres::Client, db: &str, like: &str) -> bool {
    for _ in 0..6000 {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' \
                   AND strpos(query, $2) > 0",
                &[&db, &like],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// SIGTERM and SIGINT while the segments write: the server's COPY is cancelled (no statement of
/// the run is left running), cbcopyout exits 143/130 saying the files were removed, and no file
/// of the run is left on any segment (all on this host here), the finished table's included.
#[test]
fn a_signal_cancels_the_segments_copy_and_removes_their_files() {
    let Some(coord) = std::env::var("CBTOOLS_TEST_MPP")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        eprintln!(
            "SKIPPED: set CBTOOLS_TEST_MPP to an MPP coordinator's conninfo to run this test"
        );
        return;
    };
    let db = format!("cbt_copyout_sig_{}", std::process::id());
    let mut cfg = postgres::Config::from_str(&coord).unwrap();
    let mut admin = cfg.dbname("postgres").connect(postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let mut c = cfg.dbname(&db).connect(postgres::NoTls).unwrap();
    // "a_small" is exported first (one worker, tables in name order), "big" takes seconds.
    c.batch_execute(
        "CREATE TABLE a_small (id int) DISTRIBUTED BY (id);
         INSERT INTO a_small SELECT generate_series(1, 1000);
         CREATE TABLE big (id int, note text) DISTRIBUTED BY (id);
         INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 1500000) g;",
    )
    .unwrap();
    for (signal, status) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let dir = tempfile::Builder::new()
            .prefix("cbt-copyout-sig-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let template = format!("{}/<TABLE>_<SEGID>.csv", dir.path().display());
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_cbcopyout"))
            .args(["-d", &format!("{coord} dbname={db}")])
            .args(["-t", "a_small", "-t", "big", "-j", "1", "--format", "csv"])
            .arg("--on-segment")
            .arg(&template)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_for_active(&mut admin, &db, "COPY \"public\".\"big\""),
            "no COPY of big seen"
        );
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{stderr}");
        assert!(stderr.contains("were removed"), "{stderr}");
        let running: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND strpos(query, 'on_segment') > 0 AND state = 'active'",
                &[&db],
            )
            .unwrap()
            .get(0);
        assert_eq!(running, 0, "the server's COPY was cancelled");
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "files left after {signal}: {left:?}");
    }
    drop(c);
    admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
}
