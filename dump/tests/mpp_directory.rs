//! `cbdump -F d -j 2` through the coordinator of a real MPP server, with the server's own
//! pg_dump: restored by the server's own pg_restore and by cbrestore, each into a new database of
//! the same MPP, every table with the source's rows, policy, access method and column encodings.
//! Runs when `CBTOOLS_TEST_MPP` names the coordinator, and says that it skipped otherwise.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use testkit::TestServer;

const SOURCE: &str = r#"
CREATE TABLE orders (id int PRIMARY KEY, note text, amount numeric(10,2)) DISTRIBUTED BY (id);
INSERT INTO orders SELECT g, CASE WHEN g % 7 = 0 THEN E'tab\there' END, g * 1.5 FROM generate_series(1, 30000) g;
CREATE TABLE rep (a int, b text) DISTRIBUTED REPLICATED;
INSERT INTO rep SELECT g, 'r' || g FROM generate_series(1, 100) g;
CREATE TABLE aoc (a int, b text ENCODING (compresstype=zlib, compresslevel=5)) WITH (appendonly=true, orientation=column, compresstype=zlib) DISTRIBUTED BY (a);
INSERT INTO aoc SELECT g, 'c' || g FROM generate_series(1, 1000) g;
"#;

fn mpp_bin(tool: &str) -> PathBuf {
    let bin = std::env::var("CBTOOLS_MPP_BIN").unwrap_or_else(|_| "/opt/mpp/install/bin".into());
    Path::new(&bin).join(tool)
}

fn shape(conninfo: &str, db: &str) -> Vec<(String, i64, i64, String, String, String)> {
    let mut cfg = postgres::Config::from_str(conninfo).unwrap();
    let mut c = cfg.dbname(db).connect(postgres::NoTls).unwrap();
    ["orders", "rep", "aoc"]
        .iter()
        .map(|t| {
            let r = c
                .query_one(
                    &format!("SELECT count(*), coalesce(sum(hashtext(x::text)::bigint), 0)::bigint FROM {t} x"),
                    &[],
                )
                .unwrap();
            let m = c
                .query_one(
                    "SELECT pg_get_table_distributedby($1::text::regclass), \
                            (SELECT a.amname::text FROM pg_class k JOIN pg_am a ON a.oid = k.relam WHERE k.oid = $1::text::regclass), \
                            coalesce((SELECT string_agg(e.attnum || '=' || array_to_string(e.attoptions, ','), ' ' ORDER BY e.attnum) \
                                        FROM pg_attribute_encoding e WHERE e.attrelid = $1::text::regclass), '')",
                    &[&t.to_string()],
                )
                .unwrap();
            (t.to_string(), r.get(0), r.get(1), m.get(0), m.get(1), m.get(2))
        })
        .collect()
}

#[test]
fn directory_dump_restores_with_pg_restore_and_cbrestore() {
    let Some(coord) = std::env::var("CBTOOLS_TEST_MPP")
        .ok()
        .filter(|s| !s.is_empty())
    else {
        eprintln!(
            "SKIPPED: set CBTOOLS_TEST_MPP to an MPP coordinator's conninfo to run this test"
        );
        return;
    };
    let db = format!("cbt_dirdump_{}", std::process::id());
    let targets = [format!("{db}_pgr"), format!("{db}_cbr")];
    let mut cfg = postgres::Config::from_str(&coord).unwrap();
    let mut admin = cfg.dbname("postgres").connect(postgres::NoTls).unwrap();
    for name in std::iter::once(&db).chain(&targets) {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
    }
    cfg.dbname(&db)
        .connect(postgres::NoTls)
        .unwrap()
        .batch_execute(SOURCE)
        .unwrap();
    let expected = shape(&coord, &db);

    let pg = TestServer::start();
    let archive = pg.scratch().join("mpp.dir");
    let out = pg
        .tool(env!("CARGO_BIN_EXE_cbdump"))
        .args([
            "-d",
            &format!("{coord} dbname={db}"),
            "-F",
            "d",
            "-j",
            "2",
            "--pg-dump",
        ])
        .arg(mpp_bin("pg_dump"))
        .arg("-f")
        .arg(&archive)
        .output()
        .unwrap();
    testkit::success(&out, "cbdump -F d -j 2");

    let out = std::process::Command::new(mpp_bin("pg_restore"))
        .args([
            "--exit-on-error",
            "-j",
            "2",
            "-d",
            &format!("{coord} dbname={}", targets[0]),
        ])
        .arg(&archive)
        .output()
        .unwrap();
    testkit::success(&out, "the MPP's pg_restore");
    assert_eq!(shape(&coord, &targets[0]), expected);

    let out = pg
        .tool(testkit::workspace_bin("cbrestore"))
        .args(["-j", "2", "-d", &format!("{coord} dbname={}", targets[1])])
        .arg(&archive)
        .output()
        .unwrap();
    testkit::success(&out, "cbrestore");
    assert_eq!(shape(&coord, &targets[1]), expected);

    for name in std::iter::once(&db).chain(&targets) {
        admin
            .batch_execute(&format!("DROP DATABASE {name}"))
            .unwrap();
    }
}
