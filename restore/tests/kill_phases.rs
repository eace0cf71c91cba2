//! cbrestore killed at every phase of a restore, and resumed: the result equals the source
//! every time (pg_dump -s, every table's rows, every large object's contents), for custom and
//! directory archives (`-j 2`), pg_dump's plain script, a hand-written script with explicit
//! transaction blocks, and a gpbackup set.
//!
//! Deterministic: no sleep decides where the kill lands. A second session holds a lock the
//! step needs, the test waits until cbrestore's backend queues behind it
//! (`pg_stat_activity.wait_event_type = 'Lock'` with the step's statement), then kills:
//! - cbrestore itself (SIGKILL), then lets the lock go: the backend finishes the statement it
//!   was in, finds its client gone, and its transaction rolls back, or, stopped inside its
//!   COMMIT, the server commits it although cbrestore never heard so;
//! - or the backend (`pg_terminate_backend`): cbrestore sees its connection die and stops.
//!
//! A table is created by the restore, so nothing can lock it beforehand; every table of the
//! source carries a CHECK constraint calling `gate(key, id)`, which takes a shared advisory
//! lock `key` at row 500. Holding the advisory lock stops the table's load mid-COPY (499 rows
//! sent); while it waits there, the test locks the table (ROW EXCLUSIVE: the load goes on, any
//! index, key, foreign key or trigger on it waits) and lets the load finish, so the table's
//! post-data step is stopped next, with one job or two. Large objects' writes wait for a SHARE
//! lock on `pg_largeobject` held from the start (creating them touches only the metadata).

use std::path::{Path, PathBuf};
use std::process::{Child, Output};

use testkit::{Held, TestServer};

/// `gate(key, n)`: true; for row 500, once the advisory lock `key` is free (shared).
macro_rules! gate {
    () => {
        r#"
CREATE FUNCTION public.gate(k integer, n integer) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF n = 500 THEN
        PERFORM pg_catalog.pg_advisory_xact_lock_shared(k);
    END IF;
    RETURN true;
END $$;
"#
    };
}

/// Each table's load stops at its row 500 while the test holds the advisory lock of its key.
const SOURCE: &str = concat!(
    gate!(),
    r#"
CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.t := coalesce(NEW.t, 'stamped');
    RETURN NEW;
END $$;
CREATE TABLE public.copied (id integer, t text, CONSTRAINT copied_gate CHECK (public.gate(1, id)));
CREATE TABLE public.indexed (id integer, t text, CONSTRAINT indexed_gate CHECK (public.gate(2, id)));
CREATE TABLE public.keyed (id integer, t text, CONSTRAINT keyed_gate CHECK (public.gate(3, id)));
CREATE TABLE public.referencing (id integer, keyed_id integer, CONSTRAINT referencing_gate CHECK (public.gate(4, id)));
CREATE TABLE public.triggered (id integer, t text, CONSTRAINT triggered_gate CHECK (public.gate(5, id)));
INSERT INTO public.copied SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
INSERT INTO public.indexed SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
INSERT INTO public.keyed SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
INSERT INTO public.referencing SELECT g, g % 1000 + 1 FROM generate_series(1, 2000) g;
INSERT INTO public.triggered SELECT g, md5(g::text) FROM generate_series(1, 2000) g;
CREATE INDEX indexed_t ON public.indexed (t);
ALTER TABLE public.keyed ADD CONSTRAINT keyed_pkey PRIMARY KEY (id);
ALTER TABLE public.referencing ADD CONSTRAINT referencing_keyed FOREIGN KEY (keyed_id) REFERENCES public.keyed (id);
CREATE TRIGGER triggered_stamp BEFORE INSERT ON public.triggered FOR EACH ROW EXECUTE FUNCTION public.stamp();
COMMENT ON TABLE public.copied IS 'its COMMENT waits for pg_description';
SELECT pg_catalog.lo_from_bytea(0, convert_to(repeat('a large object ', 30000), 'UTF8'));
SELECT pg_catalog.lo_from_bytea(0, '\x00ff');
"#
);

/// A script of its own: a transaction block stopped in its middle, and one stopped in its
/// COMMIT (a deferred constraint trigger runs there), which the server then commits.
const SCRIPT: &str = concat!(
    gate!(),
    r#"
CREATE TABLE public.t (n integer CONSTRAINT t_gate CHECK (public.gate(1, n)));
CREATE TABLE public.d (n integer);
CREATE FUNCTION public.d_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.gate(2, NEW.n);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER d_at_commit AFTER INSERT ON public.d DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION public.d_check();
INSERT INTO public.t VALUES (0);
BEGIN;
INSERT INTO public.t VALUES (1);
INSERT INTO public.t VALUES (2);
INSERT INTO public.t VALUES (500);
INSERT INTO public.t VALUES (3);
COMMIT;
BEGIN;
INSERT INTO public.d VALUES (500);
INSERT INTO public.d VALUES (501);
COMMIT;
INSERT INTO public.t VALUES (4);
"#
);

/// Where a restore is stopped.
#[derive(Clone, Copy, Debug)]
struct Phase<'a> {
    name: &'a str,
    /// The advisory lock held from the start (a table's gate, a script's own gate).
    gate: Option<i64>,
    /// The table locked while its load waits at the gate; the step then stopped is the next
    /// one on that table.
    table: Option<&'a str>,
    /// A lock held from the start (large objects: `pg_largeobject`).
    from_start: Option<&'a str>,
    /// The lock the stopped step waits for (`advisory`, `relation`) and its statement.
    waits: &'a str,
    statement: &'a str,
    /// Whether the stopped step's work is in the target (a query returning one boolean).
    there: &'a str,
    /// Stopped in its COMMIT: the server commits it after a kill of cbrestore.
    in_commit: bool,
}

/// Pre-data: a COMMENT waits for `pg_description`, held from the start (nothing else of the
/// restore writes it), in the middle of the statements that create the tables.
const PRE_DATA: Phase<'static> = Phase {
    name: "pre-data",
    gate: None,
    table: None,
    from_start: Some("LOCK TABLE pg_catalog.pg_description IN SHARE MODE"),
    waits: "relation",
    statement: "COMMENT ON TABLE public.copied ",
    there: "SELECT count(*) > 0 FROM pg_catalog.pg_description d \
            JOIN pg_catalog.pg_class c ON c.oid = d.objoid WHERE c.relname = 'copied'",
    in_commit: false,
};

const COPY: Phase<'static> = Phase {
    name: "COPY",
    gate: Some(1),
    table: None,
    from_start: None,
    waits: "advisory",
    statement: r"COPY public\.copied ",
    there: "SELECT count(*) > 0 FROM public.copied",
    in_commit: false,
};

const INDEX: Phase<'static> = Phase {
    name: "CREATE INDEX",
    gate: Some(2),
    table: Some("indexed"),
    from_start: None,
    waits: "relation",
    statement: "CREATE INDEX indexed_t ",
    there: "SELECT count(*) > 0 FROM pg_catalog.pg_indexes WHERE indexname = 'indexed_t'",
    in_commit: false,
};

const KEY: Phase<'static> = Phase {
    name: "PRIMARY KEY",
    gate: Some(3),
    table: Some("keyed"),
    from_start: None,
    waits: "relation",
    statement: "ADD CONSTRAINT keyed_pkey PRIMARY KEY",
    there: "SELECT count(*) > 0 FROM pg_catalog.pg_constraint WHERE conname = 'keyed_pkey'",
    in_commit: false,
};

const FOREIGN_KEY: Phase<'static> = Phase {
    name: "FOREIGN KEY",
    gate: Some(4),
    table: Some("referencing"),
    from_start: None,
    waits: "relation",
    statement: "ADD CONSTRAINT referencing_keyed FOREIGN KEY",
    there: "SELECT count(*) > 0 FROM pg_catalog.pg_constraint WHERE conname = 'referencing_keyed'",
    in_commit: false,
};

const TRIGGER: Phase<'static> = Phase {
    name: "trigger",
    gate: Some(5),
    table: Some("triggered"),
    from_start: None,
    waits: "relation",
    statement: "CREATE TRIGGER triggered_stamp ",
    there: "SELECT count(*) > 0 FROM pg_catalog.pg_trigger WHERE tgname = 'triggered_stamp'",
    in_commit: false,
};

const LARGE_OBJECTS: Phase<'static> = Phase {
    name: "large objects",
    gate: None,
    table: None,
    from_start: Some("LOCK TABLE pg_catalog.pg_largeobject IN SHARE MODE"),
    waits: "relation",
    statement: "lowrite",
    there: "SELECT count(*) > 0 FROM pg_catalog.pg_largeobject",
    in_commit: false,
};

const BLOCK: Phase<'static> = Phase {
    name: "inside BEGIN ... COMMIT",
    gate: Some(1),
    table: None,
    from_start: None,
    waits: "advisory",
    statement: r"public\.t VALUES \(500\)",
    there: "SELECT count(*) > 1 FROM public.t",
    in_commit: false,
};

const IN_COMMIT: Phase<'static> = Phase {
    name: "in a block's COMMIT",
    gate: Some(2),
    table: None,
    from_start: None,
    waits: "advisory",
    statement: "^COMMIT",
    there: "SELECT count(*) > 0 FROM public.d",
    in_commit: true,
};

/// Every phase of a pg_dump archive or script.
const PHASES: [Phase<'static>; 7] = [
    PRE_DATA,
    COPY,
    INDEX,
    KEY,
    FOREIGN_KEY,
    TRIGGER,
    LARGE_OBJECTS,
];

/// How the stopped restore ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stop {
    /// SIGKILL to cbrestore, then the lock goes.
    Kill,
    /// The backend is terminated; cbrestore fails on its own.
    Terminate,
    /// The lock goes first, the step's COMMIT is held (synchronous replication to a standby
    /// that never comes), and cbrestore is killed there: the server has committed the step,
    /// cbrestore's state only says it was about to.
    Commit,
}

/// Prepares a new target database.
type Prepare<'a> = dyn Fn(&TestServer, &str) + 'a;

/// A restore to stop and resume: cbrestore's arguments before the target, and the database
/// it must end equal to.
struct Input<'a> {
    name: &'a str,
    args: Vec<String>,
    source: &'a str,
    /// Run on the new target before the restore (a data-only restore's schema).
    before: Option<&'a Prepare<'a>>,
    /// SQL run before the comparison.
    after: Option<&'a str>,
}

impl<'a> Input<'a> {
    fn of(name: &'a str, args: Vec<String>, source: &'a str) -> Input<'a> {
        Input {
            name,
            args,
            source,
            before: None,
            after: None,
        }
    }
}

fn cbrestore(server: &TestServer, db: &str, args: &[String]) -> Child {
    server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-d", db])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting cbrestore")
}

/// Restores `input` into a new `db`, stops it at `phase` as `stop` says, resumes it, and
/// compares the result with the source; what went wrong, if anything.
fn trial(
    server: &TestServer,
    input: &Input,
    phase: Phase,
    stop: Stop,
    db: &str,
) -> Result<(), String> {
    server.create_db(db);
    if let Some(prepare) = input.before {
        prepare(server, db);
    }
    let from_start = phase.from_start.map(|sql| server.hold(db, sql));
    let gate = phase
        .gate
        .map(|k| server.hold(db, &format!("SELECT pg_catalog.pg_advisory_xact_lock({k})")));
    let mut holders: Vec<Held> = from_start.into_iter().chain(gate).collect();
    let child = cbrestore(server, db, &input.args);
    if let Some(table) = phase.table {
        // The table's load waits at its gate: lock the table, then let the load go on.
        let ours: Vec<i32> = holders.iter().map(Held::pid).collect();
        let copy = format!(r"COPY public\.{table} ");
        server.wait_for_lock_wait(db, "advisory", &copy, &ours, 60);
        let lock = format!("LOCK TABLE public.{table} IN ROW EXCLUSIVE MODE");
        let table_lock = server.hold(db, &lock);
        holders.pop().expect("the gate").release();
        holders.push(table_lock);
    }
    let ours: Vec<i32> = holders.iter().map(Held::pid).collect();
    let backend = server.wait_for_lock_wait(db, phase.waits, phase.statement, &ours, 60);
    let first = end(server, db, child, backend, holders, stop);
    server.wait_for_sessions_gone(db, &[], 60);
    // The stopped step rolled back, or, stopped in its COMMIT and only cbrestore killed,
    // committed without cbrestore knowing.
    let there: bool = server
        .client(db)
        .query_one(phase.there, &[])
        .unwrap()
        .get(0);
    if there != (phase.in_commit && stop == Stop::Kill || stop == Stop::Commit) {
        return Err(format!("after the stop, {:?} says {there}", phase.there));
    }
    let mut args = input.args.clone();
    args.push("--resume".into());
    let resumed = cbrestore(server, db, &args).wait_with_output().unwrap();
    if !resumed.status.success() {
        return Err(format!(
            "the resume failed ({}): {}\nfirst run: {first}",
            resumed.status,
            String::from_utf8_lossy(&resumed.stderr)
        ));
    }
    if let Some(sql) = input.after {
        server.psql(db, sql);
    }
    compare(server, db, input.source)
}

/// Stops the restore whose backend `backend` waits behind `holders`; what the first run said.
fn end(
    server: &TestServer,
    db: &str,
    mut child: Child,
    backend: i32,
    holders: Vec<Held>,
    stop: Stop,
) -> String {
    match stop {
        Stop::Commit => kill_in_commit(server, db, child, backend, holders),
        Stop::Kill => {
            child.kill().unwrap();
            child.wait().unwrap();
            holders.into_iter().for_each(Held::release);
            "killed".into()
        }
        Stop::Terminate => {
            let ended: bool = server
                .client("postgres")
                .query_one("SELECT pg_catalog.pg_terminate_backend($1)", &[&backend])
                .unwrap()
                .get(0);
            assert!(ended, "backend {backend} was terminated");
            holders.into_iter().for_each(Held::release);
            let out: Output = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                !out.status.success(),
                "a restore whose connection died failed: {err}"
            );
            // Stopped in its first step, a restore has nothing to resume (no state file): the
            // same command again is the way on. Else the failure says how to resume.
            assert!(
                err.contains("--resume") || !has_state(server, db),
                "the failure says how to resume: {err}"
            );
            // It says why: the server ended the session (not a statement's own error, nor a
            // later statement's failure on the dead connection).
            assert!(
                err.contains("FATAL") || err.contains("lost the connection to the server"),
                "the failure says the session ended: {err}"
            );
            if std::env::var_os("KILL_PHASES_SHOW").is_some() {
                eprintln!("--- terminated:\n{err}");
            }
            err
        }
    }
}

/// Whether a state file of a restore into `db` is in the state directory (the tool's
/// `XDG_STATE_HOME`; the file is named `cbrestore-INPUT-DB-DIGEST.json`).
fn has_state(server: &TestServer, db: &str) -> bool {
    let dir = server.scratch().join("xdg-state").join("cbtools");
    let needle = format!("-{db}-");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().contains(&needle))
        })
        .unwrap_or(false)
}

/// [`Stop::Commit`]: commits wait for a synchronous standby from now on, the locks go, and
/// cbrestore is killed once `backend` waits in its COMMIT; then commits go through again.
fn kill_in_commit(
    server: &TestServer,
    db: &str,
    mut child: Child,
    backend: i32,
    holders: Vec<Held>,
) -> String {
    commits_wait(server, true);
    holders.into_iter().for_each(Held::release);
    server.wait_for_wait_event(db, backend, "SyncRep", 60);
    child.kill().unwrap();
    child.wait().unwrap();
    commits_wait(server, false);
    "killed in its COMMIT".into()
}

/// Makes every commit wait for a synchronous standby named `nobody` (`on`), or not. Turned
/// on, a probe's commit is seen waiting before this returns: the checkpointer applies the
/// setting to the server's shared state some time after the reload, and no step of cbrestore
/// may commit before it did. Probes that committed too early are tried again; the one that
/// waits is cancelled (its commit stays).
fn commits_wait(server: &TestServer, on: bool) {
    server.set_conf("synchronous_standby_names", if on { "nobody" } else { "" });
    if !on {
        return;
    }
    // Sync rep is the server's: the probe writes in a database of its own (a commit waits
    // only when its transaction wrote WAL) into the table `start` made.
    let mut probe = server.client("postgres");
    let pid: i32 = probe
        .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let mut admin = server.client("postgres");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let committing = std::thread::spawn(move || {
            let r = probe.batch_execute("INSERT INTO public.probe VALUES (1)");
            (probe, r)
        });
        while !committing.is_finished() {
            let waits: bool = admin
                .query_one(
                    "SELECT count(*) > 0 FROM pg_catalog.pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'",
                    &[&pid],
                )
                .unwrap()
                .get(0);
            if waits {
                admin
                    .execute("SELECT pg_catalog.pg_cancel_backend($1)", &[&pid])
                    .unwrap();
                committing.join().unwrap().1.expect("the probe's commit");
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (back, r) = committing.join().unwrap();
        r.expect("the probe's commit");
        probe = back;
        assert!(
            std::time::Instant::now() < deadline,
            "commits never waited for the standby"
        );
    }
}

/// A server whose commits can be held ([`Stop::Commit`]): synchronous replication needs WAL
/// for a standby (`wal_level=replica`, WAL senders) and `synchronous_commit=on`.
fn start() -> TestServer {
    let server = TestServer::start();
    server.set_conf("wal_level", "replica");
    server.set_conf("max_wal_senders", "2");
    server.set_conf("synchronous_commit", "on");
    // A script's statements go in batches: the statement a step waits in is found in the
    // batch's text, past the default 1 kB pg_stat_activity keeps.
    server.set_conf("track_activity_query_size", "65536");
    server.restart();
    server
        .client("postgres")
        .batch_execute("CREATE TABLE public.probe (n integer)")
        .unwrap();
    server
}

/// The restored database against its source: schema, rows, large objects.
fn compare(server: &TestServer, db: &str, source: &str) -> Result<(), String> {
    let mut wrong = Vec::new();
    let (got, want) = (server.schema_dump(db), server.schema_dump(source));
    if got != want {
        wrong.push(format!("schema differs:\n{}", diff(&want, &got)));
    }
    let (got, want) = (
        server.table_fingerprints(db, &['r']),
        server.table_fingerprints(source, &['r']),
    );
    if got != want {
        wrong.push(format!("rows differ: {got:?}, source {want:?}"));
    }
    let (got, want) = (
        server.large_object_fingerprint(db),
        server.large_object_fingerprint(source),
    );
    if got != want {
        wrong.push(format!("large objects differ: {got}, source {want}"));
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n"))
    }
}

/// The lines of one text missing from the other, for a readable failure.
fn diff(want: &str, got: &str) -> String {
    let missing = want.lines().filter(|l| !got.contains(l)).take(10);
    let extra = got.lines().filter(|l| !want.contains(l)).take(10);
    missing
        .map(|l| format!("- {l}"))
        .chain(extra.map(|l| format!("+ {l}")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn source(server: &TestServer) {
    server.create_db("src");
    server.psql("src", SOURCE);
}

/// Runs every phase × stop of `phases` on `input`; panics listing every failure, after
/// printing the whole matrix.
fn matrix(server: &TestServer, input: &Input, phases: &[Phase], stops: &[Stop]) {
    let mut failures = Vec::new();
    for (i, phase) in phases.iter().enumerate() {
        for stop in stops {
            let db = format!("{}_{i}_{stop:?}", input.name).to_lowercase();
            let r = trial(server, input, *phase, *stop, &db);
            eprintln!(
                "{:<10} {:<24} {:<9} {}",
                input.name,
                phase.name,
                format!("{stop:?}"),
                if r.is_ok() { "equal" } else { "DIFFERENT" }
            );
            if let Err(e) = r {
                failures.push(format!("{} / {} / {stop:?}: {e}", input.name, phase.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn args(list: &[&str], input: &Path) -> Vec<String> {
    list.iter()
        .map(|s| s.to_string())
        .chain([input.display().to_string()])
        .collect()
}

/// pg_dump's output of the source (`dump`: its options, into `file`) restored with `options`
/// and stopped at every phase as `stops` say.
fn every_phase(name: &str, dump: &[&str], file: &str, options: &[&str], stops: &[Stop]) {
    let server = start();
    source(&server);
    let path = server.pg_dump_to("src", dump, &server.scratch().join(file));
    let input = Input::of(name, args(options, &path), "src");
    matrix(&server, &input, &PHASES, stops);
}

#[test]
fn custom_archive_killed_at_every_phase() {
    let all = [Stop::Kill, Stop::Terminate, Stop::Commit];
    every_phase("custom", &["-Fc"], "a.dump", &[], &all);
}

#[test]
fn directory_archive_with_two_jobs_killed_at_every_phase() {
    let stops = [Stop::Kill, Stop::Terminate, Stop::Commit];
    every_phase("directory", &["-Fd"], "a.dir", &["-j", "2"], &stops);
}

#[test]
fn plain_dump_killed_at_every_phase() {
    let all = [Stop::Kill, Stop::Terminate, Stop::Commit];
    every_phase("plain", &[], "a.sql", &[], &all);
}

#[test]
fn a_scripts_transaction_blocks_killed_inside_and_in_their_commit() {
    let server = start();
    server.create_db("hsrc");
    server.psql("hsrc", SCRIPT);
    let script: PathBuf = server.scratch().join("blocks.sql");
    std::fs::write(&script, SCRIPT).unwrap();
    let input = Input::of("script", args(&[], &script), "hsrc");
    matrix(
        &server,
        &input,
        &[BLOCK, IN_COMMIT],
        &[Stop::Kill, Stop::Terminate, Stop::Commit],
    );
}

#[test]
fn gpbackup_set_killed_at_every_phase() {
    use gpbackup::writer::{WriterLayout, WriterOptions};
    let server = start();
    source(&server);
    let root = server.scratch().join("set");
    let mut client = server.client("src");
    let pg_dump = || {
        let mut c = server.command("pg_dump");
        c.args(["-d", "src"]);
        c
    };
    let options = WriterOptions {
        segments: 2,
        layout: WriterLayout::PerContent {
            prefix: "gpseg".into(),
        },
        ..Default::default()
    };
    testkit::gpset::write_backup_set(&mut client, &pg_dump, &root, &options).unwrap();
    // A set holds no large objects (gpbackup leaves them out): the source without them.
    client
        .batch_execute("SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata")
        .unwrap();
    let input = Input::of("gpbackup", args(&["-j", "2"], &root), "src");
    matrix(
        &server,
        &input,
        &PHASES[..6],
        &[Stop::Kill, Stop::Terminate, Stop::Commit],
    );
}

/// A data-only restore into tables that are there already, one of which has a deferred
/// constraint trigger: the COPY's COMMIT runs it, so the restore stops inside that COMMIT.
/// Killed there, the server commits the load; the resume must not load the table again (it
/// did not create it, so nothing would empty it first: every row would be there twice).
#[test]
fn a_data_only_load_committed_after_the_kill_is_not_loaded_again() {
    let server = start();
    source(&server);
    let schema = server.pg_dump_to("src", &["-s"], &server.scratch().join("s.sql"));
    let mut before = std::fs::read_to_string(schema).unwrap();
    before.push_str(
        "CREATE FUNCTION public.at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM public.gate(6, NEW.id); RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER copied_at_commit AFTER INSERT ON public.copied
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.at_commit();",
    );
    let after = "DROP TRIGGER copied_at_commit ON public.copied; DROP FUNCTION public.at_commit();";
    let copy_commit = Phase {
        name: "a COPY's COMMIT",
        gate: Some(6),
        statement: "^COMMIT",
        there: "SELECT count(*) > 0 FROM public.copied",
        in_commit: true,
        ..COPY
    };
    let archive = server.pg_dump_to("src", &["-Fc"], &server.scratch().join("a.dump"));
    let script = server.pg_dump_to("src", &["-a"], &server.scratch().join("a.sql"));
    for (name, args) in [
        ("data_custom", args(&["-a"], &archive)),
        ("data_plain", args(&[], &script)),
    ] {
        let input = Input {
            name,
            args,
            source: "src",
            before: Some(&|server: &TestServer, db: &str| {
                server.psql(db, &before);
            }),
            after: Some(after),
        };
        matrix(
            &server,
            &input,
            &[copy_commit],
            &[Stop::Kill, Stop::Terminate],
        );
    }
}

/// A set real gpbackup wrote (the shared fixture `2-segment-db`), restored data-only into the
/// tables its metadata made: one of its biggest tables (10,000 rows in two segment files) is locked
/// from the start (SHARE: its COPY waits), the restore stopped there and resumed; it must end
/// equal to an uninterrupted restore of the same set.
#[test]
fn a_fixture_sets_data_load_killed_and_resumed() {
    let server = start();
    let Some(set) = testkit::gpset::unpack_fixture("2-segment-db", server.scratch()) else {
        eprintln!("skipping: no shared fixtures (../shared/fixtures/gpbackup)");
        return;
    };
    let set = set.display().to_string();
    let common = ["--no-owner", "--no-privileges"];
    server.create_db("reference");
    let out = server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-d", "reference", "-j", "2"])
        .args(common)
        .arg(&set)
        .output()
        .unwrap();
    testkit::success(&out, "cbrestore of the fixture set");
    let metadata = |server: &TestServer, db: &str| {
        let out = server
            .tool(env!("CARGO_BIN_EXE_cbrestore"))
            .args(["-d", db, "-s"])
            .args(common)
            .arg(&set)
            .output()
            .unwrap();
        testkit::success(&out, "cbrestore -s of the fixture set");
    };
    let load = Phase {
        name: "COPY of a set's table",
        gate: None,
        from_start: Some("LOCK TABLE schemaone.tablefour IN SHARE MODE"),
        waits: "relation",
        statement: r"COPY schemaone\.tablefour ",
        there: "SELECT count(*) > 0 FROM schemaone.tablefour",
        ..COPY
    };
    let input = Input {
        name: "fixture",
        args: ["-a", "-j", "2", common[0], common[1], set.as_str()]
            .map(String::from)
            .to_vec(),
        source: "reference",
        before: Some(&metadata),
        after: None,
    };
    matrix(
        &server,
        &input,
        &[load],
        &[Stop::Kill, Stop::Terminate, Stop::Commit],
    );
}

/// `--on-error-continue` skips a failing step, not a dead session: the backend terminated at
/// any phase, the restore stops (it used to fail every later step on the closed connection and
/// end as finished, so `--resume` had nothing to do and the target stayed empty).
#[test]
fn a_lost_connection_stops_a_restore_that_continues_on_errors() {
    let continuing = ["--on-error-continue"];
    every_phase(
        "cont_custom",
        &["-Fc"],
        "a.dump",
        &continuing,
        &[Stop::Terminate],
    );
    every_phase("cont_plain", &[], "a.sql", &continuing, &[Stop::Terminate]);
    let two_jobs = ["--on-error-continue", "-j", "2"];
    every_phase("cont_dir", &["-Fd"], "a.dir", &two_jobs, &[Stop::Terminate]);
}
