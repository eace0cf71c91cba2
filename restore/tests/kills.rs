//! cbrestore's bookkeeping under kill -9, for archives and plain scripts (gpbackup sets: see
//! gpbackup_sets.rs): a resumed restore never empties a table it did not create, never runs
//! a committed step twice (a primary key a killed run built), restarts a script's transaction
//! block (pg_dump's large-object block) from its BEGIN, and has nothing to do after a finished
//! restore. `--verify-only` and `-f` connect to nothing and leave no file behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};

use testkit::TestServer;

const ROWS: i64 = 600_000;

fn cbrestore(server: &TestServer, args: &[&str]) -> Output {
    server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(args)
        .output()
        .expect("running cbrestore")
}

fn spawn(server: &TestServer, args: &[&str]) -> Child {
    server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting cbrestore")
}

fn ok(out: &Output) -> String {
    testkit::success(out, "cbrestore")
}

fn count(server: &TestServer, db: &str, sql: &str) -> i64 {
    server.client(db).query_one(sql, &[]).unwrap().get(0)
}

fn fingerprints(server: &TestServer, db: &str) -> BTreeMap<String, String> {
    server.table_fingerprints(db, &['r'])
}

/// Kills `child` once a session of `db` runs a statement starting with `prefix` (after
/// `settle` ms, so part of it reached the server).
fn kill_during(server: &TestServer, mut child: Child, db: &str, prefix: &str, settle: u64) {
    let seen = server.wait_for_active(&format!("datname = '{db}'"), prefix, 60);
    std::thread::sleep(std::time::Duration::from_millis(settle));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "{prefix} was reached before the kill");
}

/// As [`kill_during`], for a statement matching a LIKE `pattern` (one that does not start
/// the query text).
fn kill_when(server: &TestServer, mut child: Child, db: &str, pattern: &str, settle: u64) {
    let mut c = server.client("postgres");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen = false;
    while !seen && std::time::Instant::now() < deadline {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE $2",
                &[&db, &pattern],
            )
            .unwrap()
            .get(0);
        seen = n > 0;
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(settle));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen, "{pattern} was reached before the kill");
}

fn source(server: &TestServer) {
    server.create_db("src");
    server.psql(
        "src",
        &format!(
            "CREATE TABLE public.big (id int, t text);
             INSERT INTO public.big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, {ROWS}) g;
             ALTER TABLE public.big ADD CONSTRAINT big_pkey PRIMARY KEY (id);
             CREATE TABLE public.a_small (id int PRIMARY KEY);
             INSERT INTO public.a_small SELECT generate_series(1, 100);"
        ),
    );
}

fn pg_dump(server: &TestServer, args: &[&str], to: &Path) -> PathBuf {
    server.pg_dump_to("src", args, to)
}

/// A data-only restore into tables that already hold rows of their own, killed in the middle
/// of a COPY and resumed: the user's 10 rows are still there, every row of the dump once.
fn data_only_keeps_the_users_rows(server: &TestServer, input: &Path, db: &str) {
    server.create_db(db);
    server.psql(
        db,
        "CREATE TABLE public.big (id int, t text);
         INSERT INTO public.big SELECT -g, 'mine' FROM generate_series(1, 10) g;
         CREATE TABLE public.a_small (id int PRIMARY KEY);",
    );
    let input = input.to_str().unwrap();
    let child = spawn(server, &["-d", db, "-a", input]);
    kill_during(server, child, db, "COPY public.big", 300);
    // Without --resume, the interrupted restore is named with the way to go on.
    let out = cbrestore(server, &["-d", db, "-a", input]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--resume") && err.contains("interrupted"),
        "{err}"
    );
    ok(&cbrestore(server, &["-d", db, "-a", "--resume", input]));
    assert_eq!(
        count(server, db, "SELECT count(*) FROM public.big"),
        ROWS + 10
    );
    assert_eq!(
        count(
            server,
            db,
            "SELECT count(*) FROM public.big WHERE t = 'mine'"
        ),
        10
    );
    assert_eq!(
        count(server, db, "SELECT count(*) FROM public.a_small"),
        100
    );
}

#[test]
fn resume_never_empties_a_table_it_did_not_create() {
    let server = TestServer::start();
    source(&server);
    let archive = pg_dump(&server, &["-Fc"], &server.scratch().join("a.dump"));
    data_only_keeps_the_users_rows(&server, &archive, "a");
    let plain = pg_dump(&server, &[], &server.scratch().join("a.sql"));
    data_only_keeps_the_users_rows(&server, &plain, "p");
}

/// Killed while its primary key builds: the key's transaction never committed (or did, and
/// the server says so), so the resume builds it once; `--resume` after the end does nothing.
#[test]
fn kill_during_a_key_build_then_resume_twice() {
    let server = TestServer::start();
    source(&server);
    let want = fingerprints(&server, "src");
    let archive = pg_dump(&server, &["-Fc"], &server.scratch().join("k.dump"));
    let a = archive.to_str().unwrap();
    server.create_db("k");
    let child = spawn(&server, &["-d", "k", a]);
    kill_when(
        &server,
        child,
        "k",
        "%ALTER TABLE ONLY public.big%PRIMARY KEY%",
        100,
    );
    let out = cbrestore(&server, &["-d", "k", "--resume", a]);
    ok(&out);
    assert_eq!(fingerprints(&server, "k"), want);
    assert_eq!(server.schema_dump("k"), server.schema_dump("src"));
    let again = cbrestore(&server, &["-d", "k", "--resume", a]);
    let err = ok(&again);
    let _ = err;
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("finished already"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(server.schema_dump("k"), server.schema_dump("src"));
}

/// A script's own `BEGIN ... COMMIT` is one step: killed inside it, the resume runs it again
/// from its BEGIN (rows 1 and 2 are not lost, row 3 not alone).
#[test]
fn a_scripts_transaction_block_is_one_step() {
    let server = TestServer::start();
    server.create_db("t");
    let script = server.scratch().join("block.sql");
    std::fs::write(
        &script,
        "CREATE TABLE public.t (n int);\nBEGIN;\nINSERT INTO public.t VALUES (1);\n\
         INSERT INTO public.t VALUES (2);\nSELECT pg_sleep(3);\nINSERT INTO public.t VALUES (3);\n\
         COMMIT;\nINSERT INTO public.t VALUES (4);\n",
    )
    .unwrap();
    let s = script.to_str().unwrap();
    let child = spawn(&server, &["-d", "t", s]);
    kill_during(&server, child, "t", "SELECT pg_sleep", 50);
    assert_eq!(count(&server, "t", "SELECT count(*) FROM public.t"), 0);
    ok(&cbrestore(&server, &["-d", "t", "--resume", s]));
    assert_eq!(
        count(&server, "t", "SELECT sum(n)::bigint FROM public.t"),
        10,
        "rows 1, 2, 3 and 4, once each"
    );
}

/// pg_dump's large-object block in a plain script, killed between two `lowrite` calls: the
/// resume starts the block again (its descriptor lived only in the killed transaction).
#[test]
fn a_large_object_block_resumes() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "SELECT lo_from_bytea(0, decode(repeat(md5('x'), 3000000), 'hex'));
         CREATE TABLE public.after (n int); INSERT INTO public.after VALUES (1);",
    );
    let want = server.large_object_fingerprint("src");
    let plain = pg_dump(&server, &[], &server.scratch().join("lo.sql"));
    let p = plain.to_str().unwrap();
    server.create_db("l");
    let child = spawn(&server, &["-d", "l", p]);
    kill_during(&server, child, "l", "SELECT pg_catalog.lowrite", 200);
    ok(&cbrestore(&server, &["-d", "l", "--resume", p]));
    assert_eq!(server.large_object_fingerprint("l"), want);
    assert_eq!(count(&server, "l", "SELECT count(*) FROM public.after"), 1);
}

/// `--verify-only` reads a script to its end and connects to nothing (no server listens
/// where it would connect); `-f` leaves no temporary or state file anywhere.
#[test]
fn verify_only_and_scripts_touch_no_server_and_leave_no_file() {
    let server = TestServer::start();
    source(&server);
    let plain = pg_dump(&server, &[], &server.scratch().join("v.sql"));
    let archive = pg_dump(&server, &["-Fc"], &server.scratch().join("v.dump"));
    let out = server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .env("PGHOST", "/nonexistent")
        .args(["-d", "nowhere", "--verify-only", "--json"])
        .arg(&plain)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(report["total_rows"], ROWS + 100);
    assert_eq!(report["copy_blocks"], 2);

    let tmp = server.scratch().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    for input in [&plain, &archive] {
        let sql = server.scratch().join("out.sql");
        let out = server
            .tool(env!("CARGO_BIN_EXE_cbrestore"))
            .env("TMPDIR", &tmp)
            .env("PGHOST", "/nonexistent")
            .arg("-f")
            .arg(&sql)
            .arg(input)
            .output()
            .unwrap();
        ok(&out);
        let text = std::fs::read_to_string(&sql).unwrap();
        assert!(
            text.contains("COPY public.big"),
            "the script holds the data"
        );
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "nothing in TMPDIR"
        );
    }
    let states = server.scratch().join("xdg-state");
    assert!(!states.exists(), "scripts keep no state");
    // -f - writes to stdout.
    let out = cbrestore(&server, &["-f", "-", archive.to_str().unwrap()]);
    assert!(ok(&out).contains("-- Name: big; Type: TABLE; Schema: public; Owner:"));
    // Neither -d nor -f: refused as pg_restore refuses it.
    let out = cbrestore(&server, &[archive.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-d/--dbname and -f/--file"));
}

/// A state directory that cannot be made: without --resume the restore warns and goes on.
#[test]
fn an_unwritable_state_directory_is_not_fatal() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE public.t (n int); INSERT INTO public.t VALUES (1);",
    );
    let plain = pg_dump(&server, &[], &server.scratch().join("s.sql"));
    server.create_db("s");
    let out = cbrestore(
        &server,
        &[
            "-d",
            "s",
            "--state-dir",
            "/dev/null/cbtools",
            plain.to_str().unwrap(),
        ],
    );
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be resumed"));
    assert_eq!(count(&server, "s", "SELECT count(*) FROM public.t"), 1);
    let out = cbrestore(
        &server,
        &[
            "-d",
            "s",
            "--resume",
            "--state-dir",
            "/dev/null/cbtools",
            plain.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "--resume needs its state");
}

/// `cbrestore -l x.sql | head -1`: the closed pipe ends it quietly, no panic, no message.
#[test]
fn a_listing_into_a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    let server = TestServer::start();
    server.create_db("src");
    let mut sql = String::new();
    for i in 0..3000 {
        sql.push_str(&format!("CREATE TABLE public.t{i} (n int);\n"));
    }
    server.psql("src", &sql);
    let plain = pg_dump(&server, &[], &server.scratch().join("many.sql"));
    let mut child = server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .arg("-l")
        .arg(&plain)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, ";\n");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && err.is_empty(), "{err}");
    assert_ne!(out.status.code(), Some(101), "no panic");
}

/// SIGTERM (what `timeout` and systemd send): the restore cancels the COPY in flight on the
/// server (it rolls back: the table is still empty, the COPY did not run to its end first),
/// exits 143 and prints the command that resumes it; that command finishes the restore.
#[test]
fn sigterm_stops_between_steps_and_says_how_to_resume() {
    let server = TestServer::start();
    source(&server);
    let archive = pg_dump(&server, &["-Fc"], &server.scratch().join("t.dump"));
    signal_then_resume(&server, "t", &[archive.to_str().unwrap()], "TERM", 143);
}

/// Ctrl-C during a plain script's COPY, under `--on-error-continue`: the cancelled COPY is
/// no error to skip, the restore stops (130) with the command that resumes it.
#[test]
fn sigint_cancels_a_scripts_copy_even_when_continuing_on_errors() {
    let server = TestServer::start();
    source(&server);
    let script = pg_dump(&server, &[], &server.scratch().join("t.sql"));
    let args = ["--on-error-continue", script.to_str().unwrap()];
    signal_then_resume(&server, "p", &args, "INT", 130);
}

/// Restores `args` into a new `db`, sends `signal` while `public.big`'s COPY runs, checks the
/// exit `status`, that the COPY was cancelled, and that the printed command finishes the
/// restore.
fn signal_then_resume(server: &TestServer, db: &str, args: &[&str], signal: &str, status: i32) {
    let want = fingerprints(server, "src");
    server.create_db(db);
    let child = server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-d", db])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let active = format!("datname = '{db}'");
    assert!(server.wait_for_active(&active, "COPY public.big", 60));
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "{err}");
    let resume = err
        .lines()
        .skip_while(|l| !l.contains("to resume:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no resume command in: {err}"))
        .trim()
        .to_string();
    assert!(resume.ends_with("--resume"), "{resume}");
    assert_eq!(
        count(server, db, "SELECT count(*) FROM public.big"),
        0,
        "the COPY was cancelled and rolled back"
    );
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(
        log.contains("canceling statement due to user request"),
        "the server was asked to cancel"
    );
    let words: Vec<&str> = resume.split_whitespace().collect();
    ok(&cbrestore(server, &words[1..]));
    assert_eq!(fingerprints(server, db), want);
    assert_eq!(server.schema_dump(db), server.schema_dump("src"));
}
