//! cbcopyout stopped from outside (issue 14): `-v` with and without a terminal, SIGINT, SIGTERM
//! and SIGHUP while a COPY runs, the snapshot's leader session terminated, a closed stdout, and
//! the server log after clean runs.
//!
//! No timing: a COPY is held on an advisory lock the test owns, so "in the middle of the
//! export" is a state the test waits for, and only a server-side cancel can free a worker the
//! lock holds. Waits are bounded only so a hang fails instead of blocking CI.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::TestServer;

const DB: &str = "shop";

/// A query whose COPY blocks until the test releases advisory lock `key`.
fn held_query(key: i64) -> String {
    format!(
        "SELECT g, pg_advisory_xact_lock_shared({key})::text AS held FROM generate_series(1, 1000) g"
    )
}

fn server() -> TestServer {
    let server = TestServer::start();
    server.create_db(DB);
    server.psql(
        DB,
        "CREATE TABLE public.a (id int PRIMARY KEY, t text);
         INSERT INTO public.a SELECT g, 'a' || g FROM generate_series(1, 1000) g;
         CREATE TABLE public.b (id int, t text);
         INSERT INTO public.b SELECT g, repeat('b', 100) FROM generate_series(1, 50000) g;",
    );
    server
}

fn cbcopyout(server: &TestServer) -> Command {
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbcopyout"));
    cmd.env("PGDATABASE", DB);
    cmd
}

/// Waits for `child`, killing it and failing after `secs`: a hang must fail, not block.
fn finish_within(mut child: Child, secs: u64, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().expect("polling the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} hung; stderr so far:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
        .wait_with_output()
        .expect("collecting the child's output")
}

/// Names in `dir` (hidden ones included).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn sessions(server: &TestServer, app: &str) -> i64 {
    server
        .client("postgres")
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .get(0)
}

/// Waits (bounded) until no session of `app` is left on the server.
fn no_sessions_left(server: &TestServer, app: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if sessions(server, app) == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn verbose_prints_a_line_per_table_with_and_without_a_terminal() {
    let server = server();
    let dir = server.scratch().join("v");
    let child = cbcopyout(&server)
        .args(["-t", "a", "-t", "b", "--format", "csv", "-v", "-o"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish_within(child, 120, "cbcopyout -v without a terminal");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("cbcopyout: exported public.").count(),
        2,
        "{err}"
    );
    assert!(err.contains("(2/2)"), "{err}");
    let b = std::fs::read_to_string(dir.join("public.b.csv")).unwrap();
    assert_eq!(b.lines().count(), 50_000);

    // A terminal: indicatif draws its bar and `suspend`s it for the -v lines.
    let script = Path::new("/usr/bin/script");
    if !script.exists() {
        eprintln!("skipping the terminal case: script(1) from util-linux is not installed");
        return;
    }
    let tty_dir = server.scratch().join("tty");
    let line = format!(
        "'{}' -t a -t b --format csv -v -o '{}'",
        env!("CARGO_BIN_EXE_cbcopyout"),
        tty_dir.display()
    );
    let child = server
        .tool(script)
        .env("PGDATABASE", DB)
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish_within(child, 120, "cbcopyout -v on a terminal");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("exported public.a"), "{shown}");
    let b = std::fs::read_to_string(tty_dir.join("public.b.csv")).unwrap();
    assert_eq!(b.lines().count(), 50_000);
}

#[test]
fn signals_cancel_the_server_side_and_leave_nothing() {
    let server = server();
    for (n, sig) in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
        .into_iter()
        .enumerate()
    {
        let dir = server.scratch().join(format!("sig{n}"));
        std::fs::create_dir(&dir).unwrap();
        let mut holder = server.client(DB);
        holder.batch_execute("SELECT pg_advisory_lock(14)").unwrap();
        let child = cbcopyout(&server)
            .args(["--query", &held_query(14), "--format", "csv", "-o"])
            .arg(dir.join("out.csv"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            server.wait_for_active(
                "application_name = 'cbcopyout' AND wait_event_type = 'Lock'",
                "COPY",
                60
            ),
            "the COPY never waited on the test's lock"
        );
        let staged = entries(&dir);
        assert!(
            staged.len() == 1 && staged[0].starts_with(".cbcopyout-"),
            "one private staging directory while the COPY runs: {staged:?}"
        );
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        // Only a cancel request frees the worker from the lock the test still holds.
        let out = finish_within(child, 60, "cbcopyout after a signal");
        holder
            .batch_execute("SELECT pg_advisory_unlock(14)")
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128 + sig), "{err}");
        assert!(err.contains("interrupted by SIG"), "{err}");
        assert!(err.contains("nothing was left"), "{err}");
        assert_eq!(entries(&dir), Vec::<String>::new(), "signal {sig}");
        assert!(no_sessions_left(&server, "cbcopyout"), "signal {sig}");
    }
}

#[test]
fn losing_the_snapshot_leader_publishes_nothing() {
    let server = server();
    for jobs in ["1", "2"] {
        let dir = server.scratch().join(format!("lost{jobs}"));
        std::fs::create_dir(&dir).unwrap();
        let mut holder = server.client(DB);
        holder.batch_execute("SELECT pg_advisory_lock(15)").unwrap();
        let child = cbcopyout(&server)
            .args(["--query", &held_query(15), "-j", jobs, "-o"])
            .arg(dir.join("out.txt"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(server.wait_for_active(
            "application_name = 'cbcopyout' AND wait_event_type = 'Lock'",
            "COPY",
            60
        ));
        // The leader is the one session of ours not running the COPY.
        let terminated: i64 = holder
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                  WHERE application_name = 'cbcopyout' AND state = 'idle in transaction'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(terminated, 1);
        holder
            .batch_execute("SELECT pg_advisory_unlock(15)")
            .unwrap();
        let out = finish_within(child, 60, "cbcopyout without its leader");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("holding the snapshot ended"), "{err}");
        assert_eq!(entries(&dir), Vec::<String>::new());
    }
}

/// Reads a few lines of `child`'s stdout, closes the pipe, and returns how it ended.
fn close_after_five_lines(mut child: Child) -> Output {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).split(b'\n');
    for _ in 0..5 {
        lines.next().expect("a line").expect("readable");
    }
    drop(lines);
    finish_within(child, 60, "a writer to a closed pipe")
}

#[test]
fn a_closed_stdout_ends_it_quietly_as_pg_dump() {
    let server = server();
    let pg_dump = close_after_five_lines(
        server
            .command("pg_dump")
            .args(["-d", DB, "-t", "public.b"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    for compress in ["none", "gzip"] {
        let out = close_after_five_lines(
            cbcopyout(&server)
                .args(["-t", "b", "--compress", compress, "-o", "-"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        assert_eq!(
            (out.status.code(), out.status.signal()),
            (pg_dump.status.code(), pg_dump.status.signal()),
            "ends as pg_dump does"
        );
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no message");
    }
    assert!(no_sessions_left(&server, "cbcopyout"));
}

#[test]
fn workers_end_their_transactions_before_disconnecting() {
    let server = server();
    let dir = server.scratch().join("clean/");
    for args in [
        &[
            "-t",
            "b",
            "-j",
            "2",
            "--chunk-size",
            "1M",
            "--compress",
            "gzip:1",
        ][..],
        &["-t", "a", "-t", "b", "-j", "2"][..],
    ] {
        let out = cbcopyout(&server)
            .args(args)
            .arg("--force")
            .arg("-o")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = cbcopyout(&server)
        .args(["-t", "a", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1000);
    assert!(no_sessions_left(&server, "cbcopyout"));
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        !log.contains("unexpected EOF on client connection"),
        "server log:\n{log}"
    );
}
