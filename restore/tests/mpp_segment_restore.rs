//! `cbrestore --on-segment`: a backup set whose data files stay on the segment hosts, restored
//! with every segment reading its own files.
//!
//! The MPP tests run when `CBTOOLS_TEST_MPP` names a coordinator (e.g. `host=127.0.0.1
//! port=7000 user=gpadmin dbname=postgres`) and `CBTOOLS_TEST_MPP2` a second cluster with another
//! segment count (the different-shape restore is skipped without it); they say that they skipped
//! otherwise. The set is written by the server itself (`cbdump --on-segment`: gpbackup's
//! `COPY ... TO PROGRAM ... ON SEGMENT` on every segment). The other tests need only PostgreSQL:
//! the refusal of a plain PostgreSQL target, and the policy query against look-alike catalogs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

use testkit::TestServer;

fn mpp(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|s| !s.trim().is_empty())
}

fn connect(conninfo: &str, db: &str) -> postgres::Client {
    let mut cfg = postgres::Config::from_str(conninfo).expect("a conninfo");
    cfg.dbname(db);
    cfg.connect(postgres::NoTls).expect("connecting to the MPP")
}

fn with_db(conninfo: &str, db: &str) -> String {
    format!("{conninfo} dbname={db}")
}

const SOURCE: &str = r#"
CREATE SCHEMA "Odd ""Schema""";
CREATE TABLE orders (id int, note text, amount numeric(12,2), ts timestamptz) DISTRIBUTED BY (id);
INSERT INTO orders SELECT g, CASE WHEN g % 7 = 0 THEN E'tab\there "q", comma\nline' END, g * 1.5,
       '2024-01-01'::timestamptz + g * interval '1 min' FROM generate_series(1, 20000) g;
CREATE TABLE rnd (a int, b text) DISTRIBUTED RANDOMLY;
INSERT INTO rnd SELECT g, CASE WHEN g % 5 = 0 THEN '' ELSE 'x' || g END FROM generate_series(1, 3000) g;
CREATE TABLE rep (a int, b text) DISTRIBUTED REPLICATED;
INSERT INTO rep SELECT g, 'r' || g FROM generate_series(1, 150) g;
CREATE TABLE aoc (a int, b text ENCODING (compresstype=zlib, compresslevel=5), c float8)
  WITH (appendonly=true, orientation=column, compresstype=zlib) DISTRIBUTED BY (a);
INSERT INTO aoc SELECT g, 'c' || g, g / 3.0 FROM generate_series(1, 4000) g;
CREATE TABLE "Odd ""Schema"""."Mixed Case, T" ("Col A" int, "b,c" text, "Ünï" text) DISTRIBUTED BY ("Col A");
INSERT INTO "Odd ""Schema"""."Mixed Case, T" SELECT g, E'a\\b "c"', 'ü' || g FROM generate_series(1, 700) g;
CREATE TABLE empty (a int) DISTRIBUTED BY (a);
"#;

/// Every user table: (name, rows, checksum of the rows, policy).
type Shape = Vec<(String, i64, i64, String)>;

fn shape(c: &mut postgres::Client) -> Shape {
    c.batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
        .unwrap();
    let tables = c
        .query(
            "SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_class c \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'gp_toolkit') \
                AND n.nspname NOT LIKE 'pg_%' ORDER BY 2",
            &[],
        )
        .unwrap();
    tables
        .iter()
        .map(|t| {
            let (oid, name): (u32, String) = (t.get(0), t.get(1));
            let r = c
                .query_one(
                    &format!("SELECT count(*), coalesce(sum(hashtext(x::text)::bigint), 0)::bigint FROM {name} x"),
                    &[],
                )
                .unwrap();
            let policy: String = c
                .query_one(
                    "SELECT coalesce((SELECT p.policytype::text || ':' || p.distkey::text \
                       FROM gp_distribution_policy p WHERE p.localoid = $1), '')",
                    &[&oid],
                )
                .unwrap()
                .get(0);
            (name, r.get(0), r.get(1), policy)
        })
        .collect()
}

/// Rows per segment of every non-replicated table.
fn per_segment(c: &mut postgres::Client, shape: &Shape) -> Vec<(String, i32, i64)> {
    let mut out = Vec::new();
    for (name, _, _, policy) in shape {
        if policy.starts_with('r') {
            continue;
        }
        for r in c
            .query(
                &format!("SELECT gp_segment_id::int4, count(*) FROM {name} GROUP BY 1 ORDER BY 1"),
                &[],
            )
            .unwrap()
        {
            out.push((name.clone(), r.get(0), r.get(1)));
        }
    }
    out
}

fn cbrestore(state: &Path) -> Command {
    let mut cmd = Command::new(testkit::workspace_bin("cbrestore"));
    for (key, _) in std::env::vars() {
        if key.starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("XDG_STATE_HOME", state);
    cmd
}

fn ok(out: &Output, what: &str) -> serde_json::Value {
    let stdout = testkit::success(out, what);
    serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null)
}

/// Route of every table in a `--json` report.
fn routes(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut r: Vec<(String, String)> = report["tables"]
        .as_array()
        .expect("tables in the report")
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["route"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    r.sort();
    r
}

fn find_coordinator_dir(root: &Path) -> PathBuf {
    fn walk(dir: &Path) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Some(found) = walk(&p) {
                    return Some(found);
                }
            } else if p.to_string_lossy().ends_with("_toc.yaml") {
                return p.parent().map(Path::to_path_buf);
            }
        }
        None
    }
    walk(root).expect("the set's coordinator directory")
}

fn mpp_bin(tool: &str) -> PathBuf {
    let bin = std::env::var("CBTOOLS_MPP_BIN").unwrap_or_else(|_| "/opt/mpp/install/bin".into());
    Path::new(&bin).join(tool)
}

/// A database on the first cluster and its set written by the segments.
struct Source {
    db: String,
    _base: tempfile::TempDir,
    set_root: PathBuf,
    coordinator_dir: PathBuf,
    state: tempfile::TempDir,
}

impl Source {
    fn make(coord: &str, tag: &str, compress: &str) -> Source {
        let db = format!("cbt_segrest_{tag}_{}", std::process::id());
        let mut admin = connect(coord, "postgres");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
        connect(coord, &db).batch_execute(SOURCE).unwrap();
        let base = tempfile::Builder::new()
            .prefix("cbt-segrest-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let set_root = base.path().join("set");
        std::fs::create_dir(&set_root).unwrap();
        // Writable by the server's OS user, as a shared backup directory is.
        std::fs::set_permissions(&set_root, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let out = Command::new(testkit::workspace_bin("cbdump"))
            .args(["-d", &with_db(coord, &db), "-Z", compress, "--pg-dump"])
            .arg(mpp_bin("pg_dump"))
            .arg("--on-segment")
            .arg(&set_root)
            .output()
            .unwrap();
        testkit::success(&out, "cbdump --on-segment");
        let coordinator_dir = find_coordinator_dir(&set_root);
        Source {
            db,
            _base: base,
            set_root,
            coordinator_dir,
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn restore(&self, target: &str, db: &str, extra: &[&str]) -> Output {
        cbrestore(self.state.path())
            .args(["-d", &with_db(target, db), "--on-segment", "--json"])
            .args(extra)
            .arg(&self.coordinator_dir)
            .output()
            .unwrap()
    }
}

fn fresh_db(conninfo: &str, db: &str) {
    let mut admin = connect(conninfo, "postgres");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
}

fn drop_db(conninfo: &str, db: &str) {
    let _ = connect(conninfo, "postgres").batch_execute(&format!("DROP DATABASE IF EXISTS {db}"));
}

#[test]
fn same_shape_every_segment_loads_its_own_files() {
    let Some(coord) = mpp("CBTOOLS_TEST_MPP") else {
        eprintln!("skipped: CBTOOLS_TEST_MPP not set (an MPP coordinator's conninfo)");
        return;
    };
    let src = Source::make(&coord, "same", "gzip");
    let db = format!("{}_r", src.db);
    fresh_db(&coord, &db);
    let report = ok(&src.restore(&coord, &db, &[]), "cbrestore --on-segment");
    // Same segment count, same policies: every table by COPY ... ON SEGMENT.
    assert!(
        routes(&report).iter().all(|(_, r)| r == "copy-on-segment"),
        "{report}"
    );
    let source = shape(&mut connect(&coord, &src.db));
    let restored = shape(&mut connect(&coord, &db));
    assert_eq!(restored, source);
    assert_eq!(source.len(), 6);
    assert_eq!(
        per_segment(&mut connect(&coord, &db), &restored),
        per_segment(&mut connect(&coord, &src.db), &source)
    );
    let am: String = connect(&coord, &db)
        .query_one(
            "SELECT a.amname::text FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.relname = 'aoc'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(am, "ao_column");
    let rep_rows = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.rep")
        .unwrap()["rows"]
        .as_u64();
    assert_eq!(rep_rows, Some(150), "replicated rows counted once");
    // The coordinator restore's selection flags: one table, its files alone probed and read.
    let one = format!("{}_one", src.db);
    fresh_db(&coord, &one);
    let report = ok(
        &src.restore(&coord, &one, &["--include-table", "public.orders"]),
        "--include-table",
    );
    assert_eq!(
        routes(&report),
        vec![("public.orders".into(), "copy-on-segment".into())]
    );
    let only = shape(&mut connect(&coord, &one));
    assert_eq!(
        only,
        vec![source
            .iter()
            .find(|t| t.0 == "public.orders")
            .unwrap()
            .clone()]
    );
    drop_db(&coord, &one);
    drop_db(&coord, &db);
    drop_db(&coord, &src.db);
}

#[test]
fn changed_policies_go_through_the_interconnect_and_resume_skips_committed_tables() {
    let Some(coord) = mpp("CBTOOLS_TEST_MPP") else {
        eprintln!("skipped: CBTOOLS_TEST_MPP not set (an MPP coordinator's conninfo)");
        return;
    };
    let src = Source::make(&coord, "policy", "none");
    let db = format!("{}_r", src.db);
    fresh_db(&coord, &db);
    ok(
        &src.restore(&coord, &db, &["--metadata-only"]),
        "--metadata-only",
    );
    // Another key, hash into replicated, replicated into random; and a constraint that stops
    // the load of rnd half way through the run.
    connect(&coord, &db)
        .batch_execute(
            "ALTER TABLE public.orders SET DISTRIBUTED BY (note); \
             ALTER TABLE public.aoc SET DISTRIBUTED REPLICATED; \
             ALTER TABLE public.rep SET DISTRIBUTED RANDOMLY; \
             ALTER TABLE public.rnd ADD CONSTRAINT stop CHECK (a < 2000)",
        )
        .unwrap();
    let out = src.restore(&coord, &db, &["--data-only"]);
    assert!(!out.status.success(), "the CHECK constraint stops the run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("public.rnd") && stderr.contains("--resume"),
        "{stderr}"
    );
    let loaded_before: i64 = connect(&coord, &db)
        .query_one("SELECT count(*) FROM public.orders", &[])
        .unwrap()
        .get(0);
    connect(&coord, &db)
        .batch_execute("ALTER TABLE public.rnd DROP CONSTRAINT stop")
        .unwrap();
    let report = ok(
        &src.restore(&coord, &db, &["--data-only", "--resume"]),
        "--data-only --resume",
    );
    // Committed tables were skipped (a data-only load would have doubled them).
    let source = shape(&mut connect(&coord, &src.db));
    let restored = shape(&mut connect(&coord, &db));
    let rows = |s: &Shape| {
        s.iter()
            .map(|(n, r, sum, _)| (n.clone(), *r, *sum))
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(&restored), rows(&source));
    let policy = |s: &Shape, t: &str| s.iter().find(|x| x.0 == t).unwrap().3.clone();
    assert_eq!(policy(&restored, "public.orders"), "p:2");
    assert_eq!(policy(&restored, "public.aoc"), "r:");
    assert_eq!(policy(&restored, "public.rep"), "p:");
    let routes = routes(&report);
    assert!(
        routes.contains(&("public.rnd".into(), "copy-on-segment".into())),
        "{routes:?}"
    );
    let _ = loaded_before;
    drop_db(&coord, &db);
    drop_db(&coord, &src.db);
}

#[test]
fn three_segments_into_two() {
    let (Some(coord), Some(other)) = (mpp("CBTOOLS_TEST_MPP"), mpp("CBTOOLS_TEST_MPP2")) else {
        eprintln!("skipped: CBTOOLS_TEST_MPP and CBTOOLS_TEST_MPP2 (a cluster with another segment count) not both set");
        return;
    };
    let src = Source::make(&coord, "resize", "zstd");
    let db = format!("{}_r", src.db);
    fresh_db(&other, &db);
    let report = ok(
        &src.restore(&other, &db, &[]),
        "cbrestore --on-segment into 2 segments",
    );
    let source = shape(&mut connect(&coord, &src.db));
    let restored = shape(&mut connect(&other, &db));
    assert_eq!(restored, source, "rows, checksums and policies");
    assert_eq!(report["source_segments"], 3);
    assert_eq!(report["target_segments"], 2);
    // Hash tables are placed by the target's own hash: every row on the segment it belongs to.
    let misplaced: i64 = connect(&other, &db)
        .query_one(
            "SELECT count(*) FROM public.orders o \
              WHERE gp_segment_id <> (SELECT gp_segment_id FROM public.orders p WHERE p.id = o.id LIMIT 1)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(misplaced, 0);
    let routes = routes(&report);
    assert!(
        routes.contains(&("public.orders".into(), "web-table".into())),
        "{routes:?}"
    );
    assert!(
        routes.contains(&("public.rnd".into(), "copy-on-segment".into())),
        "{routes:?}"
    );
    drop_db(&other, &db);
    drop_db(&coord, &src.db);
}

#[test]
fn missing_files_are_found_before_anything_is_restored() {
    let Some(coord) = mpp("CBTOOLS_TEST_MPP") else {
        eprintln!("skipped: CBTOOLS_TEST_MPP not set (an MPP coordinator's conninfo)");
        return;
    };
    let src = Source::make(&coord, "missing", "gzip");
    // One data file of content 1 disappears (its directory's name is the cluster's prefix,
    // e.g. gpseg1 or demoDataDir1: the file name says the content).
    let gone = walk_files(&src.set_root)
        .into_iter()
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("gpbackup_1_") && name.ends_with(".gz")
        })
        .expect("cbdump wrote data files of content 1");
    std::fs::remove_file(&gone).unwrap();
    let db = format!("{}_r", src.db);
    fresh_db(&coord, &db);
    // A role that may not make the segments run programs is refused first.
    let role = format!("cbt_segrest_plain_{}", std::process::id());
    let mut admin = connect(&coord, "postgres");
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT ALL ON DATABASE {db} TO {role}"
        ))
        .unwrap();
    let out = cbrestore(src.state.path())
        .args([
            "-d",
            &format!("{} user={role}", with_db(&coord, &db)),
            "--on-segment",
        ])
        .arg(&src.coordinator_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connect as a superuser"), "{stderr}");
    admin
        .batch_execute(&format!(
            "REVOKE ALL ON DATABASE {db} FROM {role}; DROP ROLE {role}"
        ))
        .unwrap();
    let out = src.restore(&coord, &db, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("missing or unreadable")
            && stderr.contains(&*gone.to_string_lossy())
            && stderr.contains("segment 1"),
        "{stderr}"
    );
    let tables: i64 = connect(&coord, &db)
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "nothing restored");
    drop_db(&coord, &db);
    drop_db(&coord, &src.db);
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// CI: a plain PostgreSQL target is refused with a message that says why, before anything runs.
#[test]
fn plain_postgres_is_refused() {
    let pg = TestServer::start();
    pg.create_db("src");
    pg.psql(
        "src",
        "CREATE TABLE t (a int); INSERT INTO t SELECT generate_series(1, 10);",
    );
    pg.create_db("dst");
    let root = pg.scratch().join("set");
    let install = pg.install().clone();
    let conn = pg.conn_string("src");
    let mut client = pg.client("src");
    let pg_dump = move || {
        let mut c = Command::new(install.bin("pg_dump"));
        c.arg("-d").arg(&conn);
        c
    };
    testkit::gpset::write_backup_set(
        &mut client,
        &pg_dump,
        &root,
        &gpbackup::writer::WriterOptions::default(),
    )
    .unwrap();
    let out = pg
        .tool(testkit::workspace_bin("cbrestore"))
        .args(["-d", "dst", "--on-segment"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs Apache Cloudberry or Greenplum"),
        "{stderr}"
    );
    let tables: i64 = pg
        .client("dst")
        .query_one("SELECT count(*) FROM pg_class WHERE relname = 't'", &[])
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
    // -j is refused, not ignored.
    let out = pg
        .tool(testkit::workspace_bin("cbrestore"))
        .args(["-d", "dst", "--on-segment", "-j", "2"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-j"),
        "{out:?}"
    );
}

/// CI: the policy query against look-alike catalog tables (same columns as
/// `gp_distribution_policy`).
#[test]
fn policies_are_read_from_the_catalog() {
    let pg = TestServer::start();
    pg.create_db("db");
    pg.psql(
        "db",
        "CREATE SCHEMA look; \
         CREATE TABLE look.gp_distribution_policy (localoid oid, policytype \"char\", numsegments int2, distkey int2vector, distclass oidvector); \
         CREATE TABLE public.h (x int, \"Key B\" text); CREATE TABLE public.rep (a int); CREATE TABLE public.rnd (a int); \
         INSERT INTO look.gp_distribution_policy VALUES \
           ('public.h'::regclass, 'p', 3, '2 1', ''), ('public.rep'::regclass, 'r', 2, '', ''), ('public.rnd'::regclass, 'p', 3, '', '');",
    );
    let catalog = cluster::mpp_load::LoadCatalog::in_schema("look");
    let mut c = pg.client("db");
    use cluster::mpp::Distribution;
    let p = catalog.policy(&mut c, "public.h").unwrap().unwrap();
    assert_eq!(p.kind, Distribution::Hash(vec!["Key B".into(), "x".into()]));
    assert_eq!(p.numsegments, 3);
    let p = catalog.policy(&mut c, "public.rep").unwrap().unwrap();
    assert_eq!((p.kind, p.numsegments), (Distribution::Replicated, 2));
    let p = catalog.policy(&mut c, "public.rnd").unwrap().unwrap();
    assert_eq!(p.kind, Distribution::Random);
    let cols = cluster::mpp_load::column_types(&mut c, "public.h", &["Key B".into()]).unwrap();
    assert_eq!(cols, vec![("Key B".to_string(), "text".to_string())]);
    let e = cluster::mpp_load::column_types(&mut c, "public.h", &["nope".into()]).unwrap_err();
    assert!(e.to_string().contains("no column \"nope\""), "{e}");
}

/// `schema.table` → rows per segment, from a fixture's rowcounts file.
fn fixture_rowcounts(name: &str) -> std::collections::BTreeMap<String, Vec<(i32, i64)>> {
    let path = testkit::shared_fixtures()
        .unwrap()
        .join("gpbackup")
        .join(format!("{name}-rowcounts.txt"));
    let mut out: std::collections::BTreeMap<String, Vec<(i32, i64)>> = Default::default();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() == 4 {
            if let (Ok(seg), Ok(n)) = (f[2].parse(), f[3].parse()) {
                out.entry(format!("{}.{}", f[0], f[1]))
                    .or_default()
                    .push((seg, n));
            }
        }
    }
    out
}

fn segment_count(conninfo: &str) -> i64 {
    connect(conninfo, "postgres")
        .query_one(
            "SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0",
            &[],
        )
        .unwrap()
        .get(0)
}

/// A set written by real gpbackup (Greenplum 6, 2 segments, gzip, `--backup-dir` layout B with
/// prefix `demoDataDir`), its files left where gpbackup put them: into a 2-segment cluster every
/// segment loads its own file (the rows per segment are the source's), into any other through
/// the interconnect (the same rows).
#[test]
fn real_gpbackup_set_loads_on_its_segments() {
    let Some(coord) = mpp("CBTOOLS_TEST_MPP") else {
        eprintln!("skipped: CBTOOLS_TEST_MPP not set (an MPP coordinator's conninfo)");
        return;
    };
    let Some(tarball) = testkit::shared_fixtures()
        .map(|d| d.join("gpbackup/2-segment-db.tar.gz"))
        .filter(|p| p.is_file())
    else {
        eprintln!("skipped: no shared gpbackup fixtures");
        return;
    };
    let base = tempfile::Builder::new()
        .prefix("cbt-segrest-fx-")
        .tempdir_in("/tmp")
        .unwrap();
    let st = Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(base.path())
        .status()
        .unwrap();
    assert!(st.success());
    // Readable by the server's OS user, as a backup directory on the segment hosts is.
    let st = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(base.path())
        .status()
        .unwrap();
    assert!(st.success());
    let coordinator_dir = find_coordinator_dir(base.path());
    let expected = fixture_rowcounts("2-segment-db");
    let state = tempfile::tempdir().unwrap();
    let mut targets = vec![coord.clone()];
    targets.extend(mpp("CBTOOLS_TEST_MPP2"));
    for target in targets {
        let db = format!("cbt_segrest_fx_{}", std::process::id());
        fresh_db(&target, &db);
        let out = cbrestore(state.path())
            .args([
                "-d",
                &with_db(&target, &db),
                "--on-segment",
                "--json",
                "-O",
                "-x",
            ])
            .arg(&coordinator_dir)
            .output()
            .unwrap();
        let report = ok(&out, "cbrestore --on-segment of a real gpbackup set");
        let same_shape = segment_count(&target) == 2;
        let mut c = connect(&target, &db);
        let tables = report["tables"].as_array().unwrap();
        assert_eq!(tables.len(), 8, "{report}");
        for t in tables {
            let name = t["table"].as_str().unwrap();
            let route = t["route"].as_str().unwrap();
            let rows: Vec<(i32, i64)> = c
                .query(
                    &format!(
                        "SELECT gp_segment_id::int4, count(*) FROM {name} GROUP BY 1 ORDER BY 1"
                    ),
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let want = &expected[name];
            if same_shape {
                assert_eq!(route, "copy-on-segment", "{name}");
                assert_eq!(&rows, want, "{name}: rows per segment");
            } else {
                let total = |v: &[(i32, i64)]| v.iter().map(|x| x.1).sum::<i64>();
                assert_eq!(total(&rows), total(want), "{name}");
            }
        }
        drop(c);
        drop_db(&target, &db);
    }
}

/// SIGTERM while the segments load a table: the statement is cancelled and rolled back (the
/// table is empty, never half loaded), the exit status says so, and `--resume` finishes with
/// every row once.
#[test]
fn sigterm_cancels_the_segments_load_and_resume_finishes() {
    let Some(coord) = mpp("CBTOOLS_TEST_MPP") else {
        eprintln!("skipped: CBTOOLS_TEST_MPP not set (an MPP coordinator's conninfo)");
        return;
    };
    let tag = format!("sig_{}", std::process::id());
    let src_db = format!("cbt_segrest_{tag}");
    fresh_db(&coord, &src_db);
    connect(&coord, &src_db)
        .batch_execute(
            "CREATE TABLE big (id int, note text, amount numeric(12,2)) DISTRIBUTED BY (id); \
             INSERT INTO big SELECT g, repeat('n', g % 50), g * 0.5 FROM generate_series(1, 1500000) g; \
             CREATE TABLE small (a int) DISTRIBUTED RANDOMLY; INSERT INTO small SELECT generate_series(1, 10);",
        )
        .unwrap();
    let base = tempfile::Builder::new()
        .prefix("cbt-segrest-sig-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let set_root = base.path().join("set");
    std::fs::create_dir(&set_root).unwrap();
    std::fs::set_permissions(&set_root, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = Command::new(testkit::workspace_bin("cbdump"))
        .args(["-d", &with_db(&coord, &src_db), "-Z", "gzip:6", "--pg-dump"])
        .arg(mpp_bin("pg_dump"))
        .arg("--on-segment")
        .arg(&set_root)
        .output()
        .unwrap();
    testkit::success(&out, "cbdump --on-segment");
    let coordinator_dir = find_coordinator_dir(&set_root);
    let state = tempfile::tempdir().unwrap();
    let db = format!("{src_db}_r");
    fresh_db(&coord, &db);
    let child = cbrestore(state.path())
        .args(["-d", &with_db(&coord, &db), "--on-segment"])
        .arg(&coordinator_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut watch = connect(&coord, "postgres");
    let started = std::time::Instant::now();
    loop {
        let busy: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' \
                   AND query LIKE 'COPY public.big%on_segment true%'",
                &[&db],
            )
            .unwrap()
            .get(0);
        if busy > 0 {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "the load of big never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "SIGTERM stops the restore");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--resume"), "{stderr}");
    let rows: i64 = connect(&coord, &db)
        .query_one("SELECT count(*) FROM public.big", &[])
        .unwrap()
        .get(0);
    assert!(rows == 0 || rows == 1_500_000, "never half loaded: {rows}");
    eprintln!("after SIGTERM: public.big holds {rows} rows; {stderr}");
    let out = cbrestore(state.path())
        .args(["-d", &with_db(&coord, &db), "--on-segment", "--resume"])
        .arg(&coordinator_dir)
        .output()
        .unwrap();
    testkit::success(&out, "--resume");
    let source = shape(&mut connect(&coord, &src_db));
    assert_eq!(shape(&mut connect(&coord, &db)), source);
    drop_db(&coord, &db);
    drop_db(&coord, &src_db);
}
