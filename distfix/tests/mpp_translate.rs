//! `cbdistfix --target postgres` on dumps written by a real MPP server's own pg_dump (the
//! Greenplum-7 stand-in or Cloudberry): runs when `CBTOOLS_TEST_MPP` names the coordinator and
//! says that it skipped otherwise. The translated plain script (through psql) and custom archive
//! (through pg_restore) load into PostgreSQL 15 with exactly the source's rows: AO column tables,
//! column encodings, DISTRIBUTED clauses, `gp_*` settings and catalog grants translated, and a
//! partitioned table's rows loaded once although the fork's pg_dump writes them twice. cbrestore
//! `--strip-distribution` loads the untranslated archive and script the same way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use testkit::TestServer;

const SOURCE: &str = r#"
CREATE TABLE orders (id int PRIMARY KEY, note text, amount numeric(10,2)) DISTRIBUTED BY (id);
INSERT INTO orders SELECT g, 'n' || g, g * 1.5 FROM generate_series(1, 5000) g;
CREATE TABLE rep (a int, b text) DISTRIBUTED REPLICATED;
INSERT INTO rep SELECT g, 'r' || g FROM generate_series(1, 100) g;
CREATE TABLE aoc (a int, b text ENCODING (compresstype=zlib, compresslevel=5)) WITH (appendonly=true, orientation=column, compresstype=zlib) DISTRIBUTED BY (a);
INSERT INTO aoc SELECT g, 'c' || g FROM generate_series(1, 1000) g;
CREATE TABLE aor (a int, b text) WITH (appendonly=true, compresstype=zlib, compresslevel=3) DISTRIBUTED RANDOMLY;
INSERT INTO aor SELECT g, 'o' || g FROM generate_series(1, 700) g;
CREATE TABLE pt (id int, d date) PARTITION BY RANGE (d) DISTRIBUTED BY (id);
CREATE TABLE pt_1 PARTITION OF pt FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE pt_2 PARTITION OF pt FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO pt SELECT g, '2024-01-01'::date + g FROM generate_series(1, 600) g;
"#;

const TABLES: &[&str] = &["orders", "rep", "aoc", "aor", "pt", "pt_1", "pt_2"];

fn mpp_bin(tool: &str) -> PathBuf {
    let bin = std::env::var("CBTOOLS_MPP_BIN").unwrap_or_else(|_| "/opt/mpp/install/bin".into());
    Path::new(&bin).join(tool)
}

fn counts(c: &mut postgres::Client) -> Vec<(String, i64, i64)> {
    TABLES
        .iter()
        .map(|t| {
            let r = c
                .query_one(
                    &format!("SELECT count(*), coalesce(sum(hashtext(x::text)::bigint), 0)::bigint FROM {t} x"),
                    &[],
                )
                .unwrap();
            (t.to_string(), r.get(0), r.get(1))
        })
        .collect()
}

#[test]
fn mpp_pg_dump_script_and_archive_load_into_postgres() {
    let Some(coord) = std::env::var("CBTOOLS_TEST_MPP")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        eprintln!(
            "SKIPPED: set CBTOOLS_TEST_MPP to an MPP coordinator's conninfo to run this test"
        );
        return;
    };
    let db = format!("cbt_translate_{}", std::process::id());
    let mut cfg = postgres::Config::from_str(&coord).unwrap();
    let mut admin = cfg.dbname("postgres").connect(postgres::NoTls).unwrap();
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let mut src = cfg.dbname(&db).connect(postgres::NoTls).unwrap();
    src.batch_execute(SOURCE).unwrap();
    let expected = counts(&mut src);

    let pg = TestServer::start();
    // The dump's owner exists on the target, as it would after `pg_dumpall --globals-only`.
    pg.psql("postgres", "CREATE ROLE gpadmin");
    let conn = format!("{coord} dbname={db}");
    let plain = pg.scratch().join("mpp.sql");
    let custom = pg.scratch().join("mpp.dump");
    for (format, out) in [("p", &plain), ("c", &custom)] {
        let st = Command::new(mpp_bin("pg_dump"))
            .args(["-d", &conn, "-F", format, "-f"])
            .arg(out)
            .status()
            .unwrap();
        assert!(st.success(), "the MPP's pg_dump -F {format}");
    }
    let text = std::fs::read_to_string(&plain).unwrap();
    assert!(text.contains("SET default_table_access_method = ao_column;"));
    assert!(text.contains("GRANT SELECT ON TABLE pg_catalog.gp_"));

    // The plain script, translated, through psql with ON_ERROR_STOP.
    let fixed = pg.scratch().join("fixed.sql");
    let out = pg
        .tool(env!("CARGO_BIN_EXE_cbdistfix"))
        .arg(&plain)
        .args(["--target", "postgres", "-o"])
        .arg(&fixed)
        .output()
        .unwrap();
    testkit::success(&out, "cbdistfix --target postgres (script)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("partitioned parent"), "{err}");
    pg.create_db("viascript");
    let out = pg
        .command("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "viascript", "-f"])
        .arg(&fixed)
        .output()
        .unwrap();
    testkit::success(&out, "psql of the translated script");
    assert_eq!(counts(&mut pg.client("viascript")), expected);

    // The custom archive, translated, through pg_restore.
    let fixed = pg.scratch().join("fixed.dump");
    let out = pg
        .tool(env!("CARGO_BIN_EXE_cbdistfix"))
        .arg(&custom)
        .args(["--target", "postgres", "-o"])
        .arg(&fixed)
        .output()
        .unwrap();
    testkit::success(&out, "cbdistfix --target postgres (archive)");
    pg.create_db("viaarchive");
    let out = pg
        .command("pg_restore")
        .args(["--exit-on-error", "-d", "viaarchive"])
        .arg(&fixed)
        .output()
        .unwrap();
    testkit::success(&out, "pg_restore of the translated archive");
    assert_eq!(counts(&mut pg.client("viaarchive")), expected);

    // cbrestore reads the MPP's archive and script as they are: the target is PostgreSQL, so the
    // same translation runs inside it.
    for (input, name) in [(&custom, "cbrarchive"), (&plain, "cbrscript")] {
        pg.create_db(name);
        let out = pg
            .tool(testkit::workspace_bin("cbrestore"))
            .args(["-d", name, "--strip-distribution"])
            .arg(input)
            .output()
            .unwrap();
        testkit::success(&out, &format!("cbrestore of {}", input.display()));
        assert_eq!(counts(&mut pg.client(name)), expected, "{name}");
    }

    drop(src);
    admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
}
