//! cbdump's archives say what pg_dump's say: `pg_restore -f -` of a cbdump custom archive and
//! cbdump's plain script equal pg_dump's own, byte for byte (big tables split across workers,
//! extension configuration tables, large objects); data keeps its meaning whatever the
//! database's encoding and DateStyle; `--data-only` loads into an existing schema with foreign
//! keys; archive formats 1.15/1.16 with zstd from PostgreSQL 18 restore with its pg_restore.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use testkit::{PgInstall, TestServer};

fn cbdump(server: &TestServer, db: &str, args: &[&str]) -> Output {
    let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbdump"));
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            server.install().bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    )
    .args(["-d", db])
    .args(args)
    .output()
    .expect("running cbdump")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    ok(&out);
    out.stdout
}

/// Every user table's row count and ordered md5, read with ISO dates whatever the database says.
fn table_md5s(server: &TestServer, db: &str) -> BTreeMap<String, String> {
    let mut c = server.client(db);
    c.batch_execute(
        "SET DateStyle = ISO; SET IntervalStyle = postgres; SET extra_float_digits = 3",
    )
    .unwrap();
    let names: Vec<String> = c
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    names
        .into_iter()
        .map(|t| {
            let q = format!("SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '') FROM {t} x");
            let v: String = c.query_one(&q, &[]).unwrap().get(0);
            (t, v)
        })
        .collect()
}

/// A script without its per-run `\restrict` key lines.
fn without_restrict(script: &[u8]) -> String {
    String::from_utf8_lossy(script)
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn custom_and_plain_equal_pg_dumps_own() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        r#"
        CREATE EXTENSION citext;
        CREATE TABLE public.ext_cfg (k text);
        INSERT INTO public.ext_cfg VALUES ('kept by pg_dump');
        ALTER EXTENSION citext ADD TABLE public.ext_cfg;
        UPDATE pg_extension SET extconfig = ARRAY['public.ext_cfg'::regclass::oid], extcondition = ARRAY['']
         WHERE extname = 'citext';
        CREATE TABLE public.big (id int PRIMARY KEY, t text, c citext);
        INSERT INTO public.big SELECT g, md5(g::text) || E'\\x\t', 'Mixed' || g FROM generate_series(1, 600000) g;
        CREATE TABLE public."select" ("from" int, "Odd Col" text, plain text);
        INSERT INTO public."select" VALUES (1, 'a', NULL), (2, E'\\.', 'z');
        CREATE TABLE public.nocols ();
        INSERT INTO public.nocols DEFAULT VALUES;
        INSERT INTO public.nocols DEFAULT VALUES;
        CREATE TABLE public.parent (id int PRIMARY KEY);
        CREATE TABLE public.child (id int, p int REFERENCES public.parent);
        INSERT INTO public.parent VALUES (1), (2);
        INSERT INTO public.child VALUES (10, 1), (20, 2);
        CREATE SEQUENCE public.s;
        SELECT setval('public.s', 77);
        SELECT lo_from_bytea(0, convert_to(repeat('large object ', 20000), 'UTF8'));
        VACUUM ANALYZE;
        "#,
    );
    let scratch = server.scratch().to_path_buf();
    let reference = scratch.join("ref.dump");
    run(server
        .command("pg_dump")
        .args(["-d", "src", "-Fc", "-f"])
        .arg(&reference));
    let render = |archive: &Path| {
        without_restrict(&run(server
            .command("pg_restore")
            .args(["-f", "-"])
            .arg(archive)))
    };
    let want = render(&reference);
    assert!(want.contains("kept by pg_dump") && want.contains("COPY public.nocols  FROM stdin;"));

    // -F c -j 2: the big table in ctid chunks, compressed in parallel into one zlib stream.
    let custom = scratch.join("cb.dump");
    let report = ok(&cbdump(
        &server,
        "src",
        &[
            "-F",
            "c",
            "-j",
            "2",
            "-Z",
            "6",
            "-f",
            custom.to_str().unwrap(),
            "--json",
        ],
    ));
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let big = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "public.big")
        .unwrap();
    assert!(big["chunks"].as_u64().unwrap() >= 2, "{big}");
    assert_eq!(big["rows"], 600_000);
    assert_eq!(render(&custom), want);

    // The same from an uncompressed and a zstd-less gzip:1 archive, and the plain script.
    let custom0 = scratch.join("cb0.dump");
    ok(&cbdump(
        &server,
        "src",
        &[
            "-F",
            "c",
            "-j",
            "2",
            "-Z",
            "0",
            "-f",
            custom0.to_str().unwrap(),
        ],
    ));
    assert_eq!(render(&custom0), want);
    let plain = scratch.join("cb.sql");
    ok(&cbdump(
        &server,
        "src",
        &["-F", "p", "-j", "2", "-f", plain.to_str().unwrap()],
    ));
    assert_eq!(without_restrict(&std::fs::read(&plain).unwrap()), want);

    // pg_restore -j 2 of the custom archive restores every table (the configuration table
    // is the extension script's to create; ours was added by hand, so it is created here).
    server.create_db("copy");
    server.psql("copy", "CREATE TABLE public.ext_cfg (k text)");
    run(server
        .command("pg_restore")
        .args(["-j", "2", "-d", "copy"])
        .arg(&custom));
    assert_eq!(table_md5s(&server, "copy"), table_md5s(&server, "src"));
}

#[test]
fn data_keeps_its_meaning_and_data_only_loads_in_fk_order() {
    let server = TestServer::start();
    server.psql(
        "postgres",
        "CREATE DATABASE l1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C';
         ALTER DATABASE l1 SET DateStyle = 'SQL, DMY';
         ALTER DATABASE l1 SET IntervalStyle = 'sql_standard';
         ALTER DATABASE l1 SET extra_float_digits = -3;",
    );
    // Through the driver (client_encoding UTF8), so the server converts to LATIN1 itself.
    server.client("l1").batch_execute(
        "CREATE TABLE public.zz_parent (id int PRIMARY KEY, name text);
         CREATE TABLE public.aa_child (id int PRIMARY KEY, parent int REFERENCES public.zz_parent,
                                       born date, at timestamptz, span interval, x float8);
         INSERT INTO public.zz_parent VALUES (1, 'café'), (2, 'Müller');
         INSERT INTO public.aa_child VALUES
           (1, 1, '2024-02-25', '2024-02-25 13:14:15.123456+00', '1 year 2 days 03:04:05', 0.1 + 0.2),
           (2, 2, '1999-12-31', '1999-12-31 23:59:59+00', '-5 minutes', 1e-300);",
    )
    .unwrap();
    let want = table_md5s(&server, "l1");
    let dir = server.scratch().join("l1.dir");
    ok(&cbdump(
        &server,
        "l1",
        &["-F", "d", "-j", "2", "-f", dir.to_str().unwrap()],
    ));
    // A target with the defaults (UTF8 would convert; ISO, MDY would misread SQL, DMY dates).
    server.psql(
        "postgres",
        "CREATE DATABASE l1copy TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'",
    );
    run(server
        .command("pg_restore")
        .args(["-j", "2", "-d", "l1copy"])
        .arg(&dir));
    assert_eq!(table_md5s(&server, "l1copy"), want);
    server.psql(
        "postgres",
        "CREATE DATABASE utf8copy TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'",
    );
    run(server
        .command("pg_restore")
        .args(["-d", "utf8copy"])
        .arg(&dir));
    let name: String = server
        .client("utf8copy")
        .query_one("SELECT name FROM public.zz_parent WHERE id = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, "café");

    // --data-only into the schema (foreign keys in place): referenced tables load first.
    server.psql(
        "postgres",
        "CREATE DATABASE dataonly TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'",
    );
    run(server
        .command("pg_restore")
        .args(["-s", "-d", "dataonly"])
        .arg(&dir));
    let script = server.scratch().join("data.sql");
    ok(&cbdump(
        &server,
        "l1",
        &["-F", "p", "-a", "-f", script.to_str().unwrap()],
    ));
    let text = String::from_utf8_lossy(&std::fs::read(&script).unwrap()).into_owned();
    assert!(!text.contains("CREATE TABLE"));
    assert!(
        text.find("COPY public.zz_parent").unwrap() < text.find("COPY public.aa_child").unwrap()
    );
    run(server
        .command("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "dataonly", "-f"])
        .arg(&script));
    assert_eq!(table_md5s(&server, "dataonly"), want);
    // And as a directory archive restored by pg_restore -j 2 -a: dependencies order the data.
    let data_dir = server.scratch().join("data.dir");
    ok(&cbdump(
        &server,
        "l1",
        &["-F", "d", "-a", "-j", "2", "-f", data_dir.to_str().unwrap()],
    ));
    server.psql("dataonly", "TRUNCATE public.zz_parent, public.aa_child");
    run(server
        .command("pg_restore")
        .args(["-j", "2", "-d", "dataonly"])
        .arg(&data_dir));
    assert_eq!(table_md5s(&server, "dataonly"), want);
}

/// PostgreSQL 18 (archive format 1.16, relkind in the TOC, zstd): cbdump with that release's
/// pg_dump, restored by its pg_restore, equals the source.
#[test]
fn postgresql_18_archives_with_zstd() {
    let Some(pg18) = PgInstall::major(18) else {
        eprintln!("skipping: PostgreSQL 18 not available");
        return;
    };
    let server = TestServer::start_with(&pg18);
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE public.big (id int PRIMARY KEY, t text);
         INSERT INTO public.big SELECT g, md5(g::text) FROM generate_series(1, 600000) g;
         CREATE TABLE public.small (id int, note text);
         INSERT INTO public.small VALUES (1, 'one'), (2, NULL);
         CREATE MATERIALIZED VIEW public.mv AS SELECT count(*) AS n FROM public.big;
         SELECT lo_from_bytea(0, '\\x00ff00ff');
         VACUUM ANALYZE;",
    );
    let want = table_md5s(&server, "src");
    let scratch = server.scratch().to_path_buf();
    for (format, name, extra) in [
        ("c", "g.dump", vec![]),
        ("d", "g.dir", vec!["-Z", "1"]),
        ("c", "n.dump", vec!["-Z", "none"]),
        ("c", "z.dump", vec!["-Z", "zstd:3"]),
        ("d", "z.dir", vec!["-Z", "zstd:3"]),
    ] {
        let out = scratch.join(name);
        let mut args = vec!["-F", format, "-j", "2", "-f", out.to_str().unwrap()];
        args.extend(extra);
        let result = cbdump(&server, "src", &args);
        let err = String::from_utf8_lossy(&result.stderr);
        if err.contains("does not support compression with ZSTD") {
            eprintln!("skipping {name}: this PostgreSQL 18 build has no zstd");
            continue;
        }
        ok(&result);
        let db = format!("r_{}", name.replace('.', "_"));
        server.create_db(&db);
        run(server
            .command("pg_restore")
            .args(["-j", "2", "-d", &db])
            .arg(&out));
        assert_eq!(table_md5s(&server, &db), want, "{name}");
        let lo: String = server
            .client(&db)
            .query_one(
                "SELECT encode(lo_get(oid), 'hex') FROM pg_largeobject_metadata",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(lo, "00ff00ff");
        let mv: i64 = server
            .client(&db)
            .query_one("SELECT n FROM public.mv", &[])
            .unwrap()
            .get(0);
        assert_eq!(mv, 600_000);
    }
}
