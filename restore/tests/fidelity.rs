//! cbrestore issues what pg_restore issues: large objects of pg_dump 17/18 archives (format
//! 1.16's `BLOB METADATA`, their owners, comments and ACLs), owners of overloaded procedures,
//! and `-j 2` never building two foreign keys of one partition tree at once (pg_restore's
//! lock-conflict rule). Each restore's `pg_dump` must equal the source's.

use std::path::PathBuf;
use std::process::Output;

use testkit::{PgInstall, TestServer};

fn cbrestore(server: &TestServer, db: &str, args: &[&str]) -> Output {
    server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-d", db])
        .args(args)
        .output()
        .expect("running cbrestore")
}

fn ok(out: &Output) -> String {
    testkit::success(out, "cbrestore")
}

fn dump(server: &TestServer, db: &str, args: &[&str], name: &str) -> PathBuf {
    let to = server.scratch().join(name);
    let out = server
        .command("pg_dump")
        .args(["-d", db])
        .args(args)
        .arg("-f")
        .arg(&to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    to
}

/// The whole database as pg_dump sees it (large objects' metadata and data included).
fn everything(server: &TestServer, db: &str) -> String {
    let out = server
        .command("pg_dump")
        .args(["-d", db, "--restrict-key=k"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// PostgreSQL 18's pg_dump writes large objects as `BLOB METADATA` entries (format 1.16),
/// whose definition is a list of OIDs: each must be created (with its owner, comment and
/// privileges) before `BLOBS` loads its data.
#[test]
fn large_objects_of_format_1_16() {
    let Some(install) = PgInstall::major(18) else {
        eprintln!("skipping: no PostgreSQL 18");
        return;
    };
    let server = TestServer::start_with(&install);
    server.create_db("src");
    server.psql(
        "src",
        "CREATE ROLE lo_owner; CREATE ROLE lo_reader;
         SELECT lo_from_bytea(0, 'hello');
         SELECT lo_from_bytea(0, decode(repeat('ab', 300000), 'hex'));
         SELECT lo_from_bytea(0, 'third') AS o \\gset
         ALTER LARGE OBJECT :o OWNER TO lo_owner;
         COMMENT ON LARGE OBJECT :o IS 'the third';
         GRANT SELECT ON LARGE OBJECT :o TO lo_reader;",
    );
    let want = everything(&server, "src");
    for (format, name) in [("-Fc", "lo.dump"), ("-Fd", "lo.dir")] {
        let archive = dump(&server, "src", &[format], name);
        let db = format!("lo{}", &format[2..]).to_lowercase();
        server.create_db(&db);
        ok(&cbrestore(&server, &db, &[archive.to_str().unwrap()]));
        assert_eq!(everything(&server, &db), want, "{format}");
        assert_eq!(
            server.large_object_fingerprint(&db),
            server.large_object_fingerprint("src")
        );
    }
}

/// Two procedures of one name: the owner statement names each by its argument list, as
/// pg_restore takes it from the entry's DROP statement.
#[test]
fn owners_of_overloaded_procedures() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE ROLE proc_owner;
         CREATE PROCEDURE ptest10(OUT a int, IN b int, IN c int) LANGUAGE sql AS $$ SELECT b - c $$;
         CREATE PROCEDURE ptest10(IN a int, IN b int, IN c int) LANGUAGE sql AS $$ SELECT a + b - c $$;
         ALTER PROCEDURE ptest10(OUT a int, IN b int, IN c int) OWNER TO proc_owner;
         ALTER PROCEDURE ptest10(IN a int, IN b int, IN c int) OWNER TO proc_owner;
         CREATE FUNCTION f(int) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
         CREATE FUNCTION f(text) RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;
         ALTER FUNCTION f(text) OWNER TO proc_owner;",
    );
    let want = server.schema_dump("src");
    let archive = dump(&server, "src", &["-Fc"], "p.dump");
    server.create_db("p");
    ok(&cbrestore(&server, "p", &[archive.to_str().unwrap()]));
    assert_eq!(server.schema_dump("p"), want);
    // The script carries the same statement.
    let out = server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-f", "-"])
        .arg(&archive)
        .output()
        .unwrap();
    let script = ok(&out);
    assert!(
        script.contains("ALTER PROCEDURE public.ptest10(OUT a integer, IN b integer, IN c integer) OWNER TO proc_owner;"),
        "{script}"
    );
}

/// foreign_key.sql's `fk_partitioned_fk` tree: a partitioned FK table with a sub-partitioned
/// partition, each level with foreign keys to the same key. With -j 2 the FK constraints of
/// the levels lock the same referenced table; run at once they deadlocked.
#[test]
fn foreign_keys_across_partition_levels_with_two_jobs() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE fk_notpartitioned_pk (a int, b int, PRIMARY KEY (a, b));
         INSERT INTO fk_notpartitioned_pk SELECT g, g FROM generate_series(1, 2000) g;
         CREATE TABLE fk_partitioned_fk (b int, a int) PARTITION BY RANGE (a, b);
         CREATE TABLE fk_partitioned_fk_1 PARTITION OF fk_partitioned_fk FOR VALUES FROM (0, 0) TO (1000, 1000);
         CREATE TABLE fk_partitioned_fk_2 (a int, b int);
         ALTER TABLE fk_partitioned_fk ATTACH PARTITION fk_partitioned_fk_2 FOR VALUES FROM (1000, 1000) TO (1500, 1500);
         CREATE TABLE fk_partitioned_fk_5 (a int, b int) PARTITION BY RANGE (b);
         CREATE TABLE fk_partitioned_fk_5_1 (a int, b int);
         ALTER TABLE fk_partitioned_fk_5 ATTACH PARTITION fk_partitioned_fk_5_1 FOR VALUES FROM (0) TO (2001);
         ALTER TABLE fk_partitioned_fk ATTACH PARTITION fk_partitioned_fk_5 FOR VALUES FROM (1500, 1500) TO (2001, 2001);
         ALTER TABLE fk_partitioned_fk ADD FOREIGN KEY (a, b) REFERENCES fk_notpartitioned_pk;
         ALTER TABLE fk_partitioned_fk_5 ADD FOREIGN KEY (a, b) REFERENCES fk_notpartitioned_pk;
         ALTER TABLE fk_partitioned_fk_5_1 ADD FOREIGN KEY (a, b) REFERENCES fk_notpartitioned_pk;
         ALTER TABLE fk_partitioned_fk_1 ADD FOREIGN KEY (a, b) REFERENCES fk_notpartitioned_pk;
         INSERT INTO fk_partitioned_fk SELECT g, g FROM generate_series(1, 2000) g;",
    );
    let want_rows = server.table_fingerprints("src", &['r']);
    let archive = dump(&server, "src", &["-Fd"], "fk.dir");
    // pg_restore's result is the reference: restored in dependency order, the partitions' own
    // foreign keys merge into the parent's when it is added (as they do for pg_restore).
    server.create_db("reference");
    let out = server
        .command("pg_restore")
        .args(["-d", "reference", "-j", "2"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = server.schema_dump("reference");
    for run in 0..8 {
        let db = format!("fk{run}");
        server.create_db(&db);
        ok(&cbrestore(
            &server,
            &db,
            &["-j", "2", archive.to_str().unwrap()],
        ));
        assert_eq!(server.schema_dump(&db), want, "run {run}");
        assert_eq!(
            server.table_fingerprints(&db, &['r']),
            want_rows,
            "run {run}"
        );
    }
}

/// A Cloudberry/Greenplum plain dump into PostgreSQL with --strip-distribution: distfix's
/// translation drops distribution clauses, append-optimized options and column encodings
/// and skips privileges on gp_* objects; the rows arrive.
#[test]
fn an_mpp_script_into_postgres() {
    let server = TestServer::start();
    server.create_db("m");
    let script = server.scratch().join("mpp.sql");
    std::fs::write(
        &script,
        "SET gp_default_storage_options = '';\n\
         CREATE TABLE public.ao (id integer, v text)\n\
         WITH (appendonly='true', orientation='column', compresstype=zstd, compresslevel='1')\n\
         DISTRIBUTED BY (id);\n\
         CREATE TABLE public.r (id integer ENCODING (compresstype=zlib)) DISTRIBUTED REPLICATED;\n\
         COPY public.ao (id, v) FROM stdin;\n1\tone\n2\ttwo\n\\.\n\
         COPY public.r (id) FROM stdin;\n7\n\\.\n\
         GRANT SELECT ON TABLE gp_toolkit.gp_log_system TO PUBLIC;\n",
    )
    .unwrap();
    let out = cbrestore(
        &server,
        "m",
        &["--strip-distribution", "--json", script.to_str().unwrap()],
    );
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    assert!(
        report["distribution_statements_changed"].as_u64().unwrap() >= 3,
        "{report}"
    );
    let mut c = server.client("m");
    let n: i64 = c
        .query_one("SELECT count(*) FROM public.ao", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let n: i64 = c
        .query_one("SELECT sum(id)::bigint FROM public.r", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 7);
}
