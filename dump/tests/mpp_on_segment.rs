//! `cbdump --on-segment` on a real MPP server (the Greenplum-7 stand-in or Cloudberry): runs when
//! `CBTOOLS_TEST_MPP` names the coordinator (e.g. `host=127.0.0.1 port=7000 user=gpadmin
//! dbname=postgres`), and says that it skipped otherwise. `CBTOOLS_TEST_MPP2` may name a second
//! cluster with another segment count (restores go there; else into the first one).
//!
//! What it checks: the set is written by the segments into a directory that exists and that
//! cbdump (running as an OS user other than the server's) did not create, with a trailing
//! backslash in its name while the server has `standard_conforming_strings = off`; `-N` leaves a
//! schema out; config.yaml carries a backupversion gprestore accepts; the set restores through
//! the coordinator into the MPP with every table's rows, policy, access method and column
//! encodings equal to the source's, and into plain PostgreSQL with the same rows.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::str::FromStr;

use testkit::TestServer;

fn mpp(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|s| !s.trim().is_empty())
}

fn connect(conninfo: &str, db: &str) -> postgres::Client {
    let mut cfg = postgres::Config::from_str(conninfo).expect("CBTOOLS_TEST_MPP is a conninfo");
    cfg.dbname(db);
    cfg.connect(postgres::NoTls).expect("connecting to the MPP")
}

/// `conninfo` with another database (the tools take conninfo strings in -d; the last key wins).
fn with_db(conninfo: &str, db: &str) -> String {
    format!("{conninfo} dbname={db}")
}

const SOURCE: &str = r#"
CREATE TABLE orders (id int PRIMARY KEY, note text, amount numeric(10,2), ts timestamptz) DISTRIBUTED BY (id);
INSERT INTO orders SELECT g, CASE WHEN g % 7 = 0 THEN E'tab\there "q", comma' END, g * 1.5, '2024-01-01'::timestamptz + g * interval '1 min' FROM generate_series(1, 20000) g;
CREATE TABLE rep (a int, b text) DISTRIBUTED REPLICATED;
INSERT INTO rep SELECT g, 'r' || g FROM generate_series(1, 100) g;
CREATE TABLE rnd (a int, b text) DISTRIBUTED RANDOMLY;
INSERT INTO rnd SELECT g, 'x' FROM generate_series(1, 500) g;
CREATE TABLE aoc (a int, b text ENCODING (compresstype=zlib, compresslevel=5)) WITH (appendonly=true, orientation=column, compresstype=zlib) DISTRIBUTED BY (a);
INSERT INTO aoc SELECT g, 'c' || g FROM generate_series(1, 1000) g;
CREATE SCHEMA other;
CREATE TABLE other.t (a int) DISTRIBUTED BY (a);
INSERT INTO other.t SELECT generate_series(1, 50);
CREATE SEQUENCE s1;
COMMENT ON TABLE orders IS 'the orders';
COMMENT ON COLUMN orders.note IS 'a note';
SELECT setval('s1', 42);
"#;

/// Per table: rows, a checksum of the rows, policy, access method, column encodings.
fn shape(c: &mut postgres::Client) -> Vec<(String, i64, i64, String, String, String)> {
    c.batch_execute("SET TimeZone = 'UTC'").unwrap();
    let tables = c
        .query(
            "SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind = 'r' AND n.nspname IN ('public', 'other') ORDER BY 2",
            &[],
        )
        .unwrap();
    tables
        .iter()
        .map(|t| {
            let (oid, name): (u32, String) = (t.get(0), t.get(1));
            let r = c
                .query_one(
                    &format!(
                        "SELECT count(*), coalesce(sum(hashtext(x::text)::bigint), 0)::bigint FROM {name} x"
                    ),
                    &[],
                )
                .unwrap();
            let meta = c
                .query_one(
                    "SELECT coalesce((SELECT p.policytype::text || ':' || p.distkey::text FROM gp_distribution_policy p WHERE p.localoid = $1), ''), \
                            (SELECT a.amname::text FROM pg_class k JOIN pg_am a ON a.oid = k.relam WHERE k.oid = $1), \
                            coalesce((SELECT string_agg(e.attnum || '=' || array_to_string(e.attoptions, ','), ' ' ORDER BY e.attnum) \
                                        FROM pg_attribute_encoding e WHERE e.attrelid = $1), '')",
                    &[&oid],
                )
                .unwrap();
            (name, r.get(0), r.get(1), meta.get(0), meta.get(1), meta.get(2))
        })
        .collect()
}

fn ok(out: &Output, what: &str) -> String {
    testkit::success(out, what)
}

fn find_file(dir: &Path, suffix: &str) -> std::path::PathBuf {
    walk(dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("no *{suffix} under {}", dir.display()))
}

/// Every file and directory under `dir`.
fn walk_all(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_all(&p));
            }
            out.push(p);
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn on_segment_set_restores_into_mpp_and_postgres() {
    let Some(coord) = mpp("CBTOOLS_TEST_MPP") else {
        eprintln!(
            "SKIPPED: set CBTOOLS_TEST_MPP to an MPP coordinator's conninfo to run this test"
        );
        return;
    };
    let target = mpp("CBTOOLS_TEST_MPP2").unwrap_or_else(|| coord.clone());
    let db = format!("cbt_onseg_{}", std::process::id());
    let restored = format!("{db}_r");
    let mut admin = connect(&coord, "postgres");
    let mut admin2 = connect(&target, "postgres");
    for (c, name) in [(&mut admin, &db), (&mut admin2, &restored)] {
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    }
    connect(&coord, &db).batch_execute(SOURCE).unwrap();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {db} SET standard_conforming_strings = off"
        ))
        .unwrap();

    // A PostgreSQL 15 server gives us a scratch directory and the second target.
    let pg = TestServer::start();
    let base = tempfile::Builder::new()
        .prefix("cbt-onseg-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = base.path().join("set\\");
    std::fs::create_dir(&dir).unwrap();
    // Writable by the server's OS user and by us, as a shared backup directory is.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();

    let mut cmd = pg.tool(env!("CARGO_BIN_EXE_cbdump"));
    let out = cmd
        .args(["-d", &with_db(&coord, &db), "-N", "other", "--pg-dump"])
        .arg(mpp_bin("pg_dump"))
        .arg("--on-segment")
        .arg(&dir)
        .arg("--json")
        .output()
        .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(&ok(&out, "cbdump --on-segment")).expect("the --json report");
    let tables = report["tables"].as_array().expect("tables in the report");
    assert!(!tables.is_empty(), "{report}");
    for t in tables {
        assert!(
            t["seconds"].as_f64().unwrap() > 0.0,
            "per-table seconds: {t}"
        );
    }
    let config = std::fs::read_to_string(find_file(&dir, "_config.yaml")).unwrap();
    assert!(config.contains("backupversion: 1.30.5"), "{config}");
    assert!(config.contains("writtenby: cbdump"), "{config}");
    assert!(config.contains("- other"), "{config}");
    let toc = std::fs::read_to_string(find_file(&dir, "_toc.yaml")).unwrap();
    assert!(!toc.contains("schema: other"), "-N other was honoured");
    // One file per table and segment, written by the segments into the backslashed directory.
    let segments: i64 = connect(&coord, "postgres")
        .query_one(
            "SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0",
            &[],
        )
        .unwrap()
        .get(0);
    let data_files = walk(&dir)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".gz"))
        .count();
    assert_eq!(data_files as i64, 4 * segments);

    // Into the MPP through the coordinator: the same tables, rows, policies, encodings.
    let out = pg
        .tool(testkit::workspace_bin("cbrestore"))
        .args(["-d", &with_db(&target, &restored), "-j", "2"])
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out, "cbrestore into the MPP");
    let mut source_shape = shape(&mut connect(&coord, &db));
    source_shape.retain(|t| !t.0.starts_with("other."));
    assert_eq!(shape(&mut connect(&target, &restored)), source_shape);
    let seq: i64 = connect(&target, &restored)
        .query_one("SELECT last_value FROM s1", &[])
        .unwrap()
        .get(0);
    assert_eq!(seq, 42);

    // Into plain PostgreSQL: Greenplum-only DDL translated, the same rows.
    pg.create_db("plain");
    pg.psql("postgres", "CREATE ROLE gpadmin");
    let out = pg
        .tool(testkit::workspace_bin("cbrestore"))
        .args(["-d", "plain", "--target", "postgres"])
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out, "cbrestore --target postgres");
    let mut c = pg.client("plain");
    c.batch_execute("SET TimeZone = 'UTC'").unwrap();
    for (name, rows, sum, ..) in &source_shape {
        let r = c
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(sum(hashtext(x::text)::bigint), 0)::bigint FROM {name} x"
                ),
                &[],
            )
            .unwrap();
        assert_eq!(
            (r.get::<_, i64>(0), r.get::<_, i64>(1)),
            (*rows, *sum),
            "{name}"
        );
    }

    // A filtered restore keeps the table's comments: their toc entries name the table as its
    // own entry does (the MPP's pg_dump heads a table comment `TABLE public.orders `).
    pg.create_db("one");
    let out = pg
        .tool(testkit::workspace_bin("cbrestore"))
        .args([
            "-d",
            "one",
            "--target",
            "postgres",
            "--include-table",
            "public.orders",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out, "cbrestore --include-table public.orders");
    let comments: Vec<String> = pg
        .client("one")
        .query(
            "SELECT description FROM pg_description WHERE objoid = 'public.orders'::regclass \
              ORDER BY objsubid",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(comments, ["the orders", "a note"]);

    admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
    admin2
        .batch_execute(&format!("DROP DATABASE {restored}"))
        .unwrap();
}

/// The MPP's own client programs (its pg_dump matches the server): `CBTOOLS_TEST_MPP_BIN` (or
/// `CBTOOLS_MPP_BIN`), else the stand-in's install.
fn mpp_bin(tool: &str) -> std::path::PathBuf {
    let bin = std::env::var("CBTOOLS_TEST_MPP_BIN")
        .or_else(|_| std::env::var("CBTOOLS_MPP_BIN"))
        .unwrap_or_else(|_| "/opt/mpp/install/bin".into());
    Path::new(&bin).join(tool)
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

/// Sessions of `db` still doing something for a run that is over (pg_dump, a COPY).
fn busy_sessions(c: &mut postgres::Client, db: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() \
           AND (application_name = 'pg_dump' OR strpos(query, 'on_segment') > 0 AND state = 'active')",
        &[&db],
    )
    .unwrap()
    .get(0)
}

fn cbdump_on_segment(coord: &str, db: &str, dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cbdump"));
    c.args(["-d", &with_db(coord, db), "--pg-dump"])
        .arg(mpp_bin("pg_dump"))
        .arg("--on-segment")
        .arg(dir);
    c
}

/// Killed while the segments write (issue 14): SIGTERM and SIGINT cancel the segments' COPY and
/// leave nothing at all in DIR (the coordinator's staging directory, and every segment's files
/// of the timestamp, removed through the segments); SIGKILL leaves no set (no coordinator
/// directory under a set's name, pg_dump gone with cbdump), and the next run into the same DIR
/// removes what the killed run left (its hidden staging directory on this host and every
/// segment's files of its timestamp), says so, and restores exactly.
#[test]
fn killed_while_the_segments_write_leaves_no_set() {
    let Some(coord) = mpp("CBTOOLS_TEST_MPP") else {
        eprintln!(
            "SKIPPED: set CBTOOLS_TEST_MPP to an MPP coordinator's conninfo to run this test"
        );
        return;
    };
    let db = format!("cbt_onseg_kill_{}", std::process::id());
    let restored = format!("{db}_r");
    let mut admin = connect(&coord, "postgres");
    for name in [&db, &restored] {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
    }
    connect(&coord, &db)
        .batch_execute(
            "CREATE TABLE a_small (id int PRIMARY KEY, v text) DISTRIBUTED BY (id);
             INSERT INTO a_small SELECT g, 'v' || g FROM generate_series(1, 1000) g;
             CREATE TABLE big (id int, note text) DISTRIBUTED BY (id);
             INSERT INTO big SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 1500000) g;",
        )
        .unwrap();
    let base = tempfile::Builder::new()
        .prefix("cbt-onseg-kill-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (signal, status) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let dir = base.path().join(format!("term{signal}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let child = cbdump_on_segment(&coord, &db, &dir)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_for_active(&mut admin, &db, "COPY public.big("),
            "no COPY of big seen"
        );
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{stderr}");
        assert!(stderr.contains("were removed"), "{stderr}");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(
            left.is_empty(),
            "left after signal {signal}: {left:?} {:?}",
            walk(&dir)
        );
        assert_eq!(
            busy_sessions(&mut admin, &db),
            0,
            "the segments' COPY was cancelled"
        );
    }

    let dir = base.path().join("kill");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mut child = cbdump_on_segment(&coord, &db, &dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for_active(&mut admin, &db, "COPY public.big("),
        "no COPY of big seen"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let visible: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("/."))
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with("_config.yaml")
                || name.ends_with("_toc.yaml")
                || name.ends_with("_metadata.sql")
        })
        .collect();
    assert!(
        visible.is_empty(),
        "a killed run presents a set: {visible:?}"
    );
    // pg_dump dies with cbdump; the orphaned COPY may still finish on the server.
    for _ in 0..500 {
        if busy_sessions(&mut admin, &db) == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        busy_sessions(&mut admin, &db),
        0,
        "sessions of the killed run left"
    );
    let out = std::process::Command::new(testkit::workspace_bin("cbrestore"))
        .args(["-d", &with_db(&coord, &restored)])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "cbrestore restored a killed run's set"
    );
    // What the killed run left: its staging directory, named after its owner and timestamp,
    // and the segments' files of that timestamp (a_small's at least).
    let staging = walk_all(&dir)
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".cbdump-"))
        })
        .expect("the killed run's staging directory");
    let killed_ts =
        staging.file_name().unwrap().to_string_lossy()[".cbdump-".len()..][..14].to_string();
    let of_killed = |p: &std::path::PathBuf| p.to_string_lossy().contains(killed_ts.as_str());
    let killed_files: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| of_killed(p) && !p.starts_with(&staging))
        .collect();
    assert!(
        !killed_files.is_empty(),
        "the segments' files of the killed run: {:?}",
        walk_all(&dir)
    );

    // The next run into the same directory removes them, says so, and is a set that restores
    // exactly.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = cbdump_on_segment(&coord, &db, &dir).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ok(&out, "cbdump --on-segment after a killed run");
    assert!(
        stderr.contains("removed what a killed run") && stderr.contains(killed_ts.as_str()),
        "{stderr}"
    );
    let left: Vec<_> = walk_all(&dir)
        .into_iter()
        .filter(|p| of_killed(p) || p.to_string_lossy().contains("/."))
        .collect();
    assert!(left.is_empty(), "left by the killed run: {left:?}");
    let config = walk(&dir)
        .into_iter()
        .find(|p| {
            p.to_string_lossy().ends_with("_config.yaml") && !p.to_string_lossy().contains("/.")
        })
        .expect("the new set's config.yaml");
    let ts = config.file_name().unwrap().to_string_lossy()["gpbackup_".len()..]
        .split('_')
        .next()
        .unwrap()
        .to_string();
    let out = std::process::Command::new(testkit::workspace_bin("cbrestore"))
        .args(["-d", &with_db(&coord, &restored), "--timestamp", &ts])
        .arg(&dir)
        .output()
        .unwrap();
    ok(&out, "cbrestore of the set written after the killed run");
    assert_eq!(
        shape(&mut connect(&coord, &restored)),
        shape(&mut connect(&coord, &db))
    );
    for name in [&db, &restored] {
        admin
            .batch_execute(&format!("DROP DATABASE {name}"))
            .unwrap();
    }
}
