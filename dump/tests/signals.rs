//! cbdump stopped from outside (issue 14): SIGINT, SIGTERM and SIGHUP in every format while
//! pg_dump runs, the snapshot's leader session terminated, a closed stdout, and the server log
//! after clean runs.
//!
//! No timing: the test holds an ACCESS EXCLUSIVE lock on a partitioned table (which has no data
//! of its own and whose size we never ask for), so our workers finish while pg_dump waits to
//! lock it; "in the middle of the dump" is that state, which the test waits for. Waits are bounded only so a hang fails instead of blocking.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use testkit::TestServer;

const DB: &str = "shop";

fn server() -> TestServer {
    let server = TestServer::start();
    server.create_db(DB);
    server.psql(
        DB,
        "CREATE TABLE public.big (id int PRIMARY KEY, t text);
         INSERT INTO public.big SELECT g, repeat('x', 100) || g FROM generate_series(1, 60000) g;
         CREATE TABLE public.held (id int) PARTITION BY RANGE (id);",
    );
    server
}

fn cbdump(server: &TestServer) -> Command {
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbdump"));
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

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn sessions(server: &TestServer, condition: &str) -> i64 {
    server
        .client("postgres")
        .query_one(
            &format!("SELECT count(*) FROM pg_stat_activity WHERE {condition}"),
            &[],
        )
        .unwrap()
        .get(0)
}

/// Waits (bounded) until `condition` holds for exactly `n` sessions.
fn wait_sessions(server: &TestServer, condition: &str, n: i64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if sessions(server, condition) == n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Starts cbdump into `dir/NAME` with pg_dump held on the test's lock on `held`.
fn start_held(
    server: &TestServer,
    dir: &Path,
    format: &str,
    name: &str,
) -> (Child, postgres::Client) {
    let mut holder = server.client(DB);
    holder
        .batch_execute("BEGIN; LOCK TABLE ONLY public.held IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let child = cbdump(server)
        .args(["-F", format, "-j", "2", "-f"])
        .arg(dir.join(name))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        server.wait_for_active(
            "application_name = 'pg_dump' AND wait_event_type = 'Lock'",
            "LOCK TABLE",
            60
        ),
        "pg_dump never waited on the test's lock: {:?}",
        server.psql("postgres", "SELECT application_name, state, wait_event_type, left(query, 60) FROM pg_stat_activity")
    );
    (child, holder)
}

#[test]
fn signals_stop_pg_dump_and_the_workers_and_leave_nothing() {
    let server = server();
    for (format, sig) in [
        ("d", libc::SIGTERM),
        ("c", libc::SIGINT),
        ("p", libc::SIGHUP),
    ] {
        let dir = server.scratch().join(format!("sig-{format}"));
        std::fs::create_dir(&dir).unwrap();
        let (child, mut holder) = start_held(&server, &dir, format, "out");
        let staged = entries(&dir);
        assert!(
            staged.len() == 1 && staged[0].starts_with(".out.cbdump-"),
            "one private staging directory while pg_dump runs: {staged:?}"
        );
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let out = finish_within(child, 60, "cbdump after a signal");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128 + sig), "-F {format}: {err}");
        assert!(err.contains("interrupted by SIG"), "{err}");
        assert_eq!(entries(&dir), Vec::<String>::new(), "-F {format}");
        // pg_dump was stopped with us (it would otherwise wait on the lock for ever).
        assert!(wait_sessions(
            &server,
            "application_name IN ('pg_dump', 'cbdump')",
            0
        ));
        holder.batch_execute("COMMIT").unwrap();
    }
}

#[test]
fn losing_the_snapshot_leader_publishes_nothing() {
    let server = server();
    for format in ["d", "c"] {
        let dir = server.scratch().join(format!("lost-{format}"));
        std::fs::create_dir(&dir).unwrap();
        let (child, mut holder) = start_held(&server, &dir, format, "out");
        // Our workers are done once the leader is the one cbdump session left.
        assert!(wait_sessions(&server, "application_name = 'cbdump'", 1));
        let terminated: i64 = server
            .client("postgres")
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                  WHERE application_name = 'cbdump'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(terminated, 1);
        holder.batch_execute("COMMIT").unwrap();
        let out = finish_within(child, 120, "cbdump without its leader");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "-F {format}: {err}");
        assert!(err.contains("holding the snapshot ended"), "{err}");
        assert_eq!(entries(&dir), Vec::<String>::new(), "-F {format}");
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
    finish_within(child, 120, "a writer to a closed pipe")
}

#[test]
fn a_closed_stdout_ends_it_quietly_as_pg_dump() {
    let server = server();
    let pg_dump = close_after_five_lines(
        server
            .command("pg_dump")
            .args(["-d", DB, "-t", "public.big"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = close_after_five_lines(
        cbdump(&server)
            .args(["-t", "big"])
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
    let left: Vec<String> = entries(server.scratch())
        .into_iter()
        .filter(|n| n.contains("cbdump"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn workers_end_their_transactions_before_disconnecting() {
    let server = server();
    for format in ["d", "c", "p"] {
        let out = cbdump(&server)
            .args(["-F", format, "-j", "2", "-f"])
            .arg(server.scratch().join(format!("clean-{format}")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(wait_sessions(&server, "application_name = 'cbdump'", 0));
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        !log.contains("unexpected EOF on client connection"),
        "server log:\n{log}"
    );
}

/// A signal while the leader itself waits (its catalog read meets a lock the test holds):
/// the leader's statement is cancelled on the server and the dump ends at once.
#[test]
fn a_signal_cancels_the_leaders_wait() {
    let server = server();
    let dir = server.scratch().join("leader-wait");
    std::fs::create_dir(&dir).unwrap();
    let mut holder = server.client(DB);
    holder
        .batch_execute("BEGIN; LOCK TABLE public.big IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let child = cbdump(&server)
        .args(["-F", "d", "-f"])
        .arg(dir.join("out"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_sessions(
            &server,
            "application_name = 'cbdump' AND wait_event_type = 'Lock'",
            1
        ),
        "the leader never waited on the test's lock"
    );
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    // The test keeps its lock: only a cancel request ends the leader's wait.
    let out = finish_within(child, 60, "cbdump waiting on a lock after SIGTERM");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert_eq!(entries(&dir), Vec::<String>::new());
    assert!(wait_sessions(&server, "application_name = 'cbdump'", 0));
    holder.batch_execute("COMMIT").unwrap();
}
