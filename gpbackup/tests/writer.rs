//! Sets made by `gpbackup::writer` from a live PostgreSQL 15 database (odd identifiers, tricky
//! CSV values, generated columns, partitions, sequences, constraints), read back by the library
//! and restored through one connection or a psql script: table contents must equal the source.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use gpbackup::to_sql::{write_sql, Target, ToSqlOptions};
use gpbackup::writer::{IncrementalBase, WriterLayout, WriterOptions};
use gpbackup::{BackupSet, Compression, Error, LayoutKind};
use testkit::gpset::write_backup_set_replicated;
use testkit::TestServer;

const SOURCE: &str = r#"
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Ta,ble ""q""" (
    id int PRIMARY KEY,
    "we""ird col" text,
    empty_vs_null text,
    n numeric,
    ts timestamptz,
    b bytea,
    arr int[],
    j jsonb,
    f float8,
    g int GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO "Odd Schema"."Ta,ble ""q""" VALUES
 (1, 'plain', '', 1.5, '2024-01-01 00:00+00', '\x00ff', '{1,2}', '{"a": "b,\"c\""}', 0.1),
 (2, 'comma, "quote"', NULL, NULL, NULL, NULL, NULL, NULL, 'NaN'),
 (3, E'multi\nline\r\nvalue', '""', -0, 'infinity', '', '{}', 'null', '-Infinity'),
 (4, 'ünïcødé ✓', ' ', 123456789012345678901234567890.123, '1999-12-31 23:59:59.999999+05', '\x', '{NULL,3}', '[1, "x"]', 1e308),
 (5, E'back\\slash \\. not alone', 'NULL', 0.000001, '2000-02-29 12:00+00', 'abc', '{-1}', '{}', 2.2250738585072014e-308),
 (6, E'\\.', ',', 7, '2020-01-01 00:00+00', '\x0a0d', '{4}', '"str"', -0.0);
INSERT INTO "Odd Schema"."Ta,ble ""q""" (id, "we""ird col", empty_vs_null, n)
  SELECT g, md5(g::text) || E'\n' || g, CASE WHEN g % 3 = 0 THEN '' WHEN g % 3 = 1 THEN NULL ELSE 'x' END, g / 7.0
  FROM generate_series(7, 20000) g;
CREATE TABLE public.big AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 50000) g;
CREATE INDEX big_t_idx ON public.big (t);
CREATE TABLE public.rep (a int, b text);
INSERT INTO public.rep SELECT g, 'r' || g FROM generate_series(1, 100) g;
CREATE SEQUENCE public.seq;
SELECT setval('public.seq', 42);
CREATE TABLE public.parent (id int PRIMARY KEY);
INSERT INTO public.parent SELECT generate_series(1, 500);
CREATE TABLE public.child (id int, pid int REFERENCES public.parent (id));
INSERT INTO public.child SELECT g, 1 + g % 500 FROM generate_series(1, 3000) g;
CREATE VIEW public.v AS SELECT count(*) AS n FROM public.big;
CREATE TABLE public.parted (k int, v text) PARTITION BY RANGE (k);
CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES FROM (0) TO (1000);
CREATE TABLE public.parted_2 PARTITION OF public.parted FOR VALUES FROM (1000) TO (2000);
INSERT INTO public.parted SELECT g, 'v' || g FROM generate_series(1, 1999) g;
CREATE TABLE public.empty_t (a int);
CREATE TABLE public.serial_t (id serial PRIMARY KEY, v text);
INSERT INTO public.serial_t (v) SELECT 's' || g FROM generate_series(1, 77) g;
"#;

fn source_server() -> TestServer {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", SOURCE);
    server
}

fn pg_dump_for<'a>(server: &'a TestServer, db: &'a str) -> impl Fn() -> Command + 'a {
    move || {
        let mut c = server.command("pg_dump");
        c.args(["-d", db]);
        c
    }
}

fn write(server: &TestServer, root: &Path, opts: &WriterOptions) -> gpbackup::writer::WrittenSet {
    write_replicated(server, root, opts, &[])
}

fn write_replicated(
    server: &TestServer,
    root: &Path,
    opts: &WriterOptions,
    replicated: &[String],
) -> gpbackup::writer::WrittenSet {
    let mut client = server.client("src");
    write_backup_set_replicated(
        &mut client,
        &pg_dump_for(server, "src"),
        root,
        opts,
        replicated,
    )
    .unwrap()
}

#[test]
fn written_sets_restore_to_identical_tables_in_every_mode() {
    let server = source_server();
    let cases = [
        (
            "mdf_gzip",
            Compression::Gzip,
            false,
            WriterLayout::PerContent {
                prefix: "gpseg".into(),
            },
            4,
            LayoutKind::PerContentDirs,
        ),
        (
            "sdf_zstd",
            Compression::Zstd,
            true,
            WriterLayout::SingleDir,
            3,
            LayoutKind::SingleDir,
        ),
        (
            "mdf_none_flat",
            Compression::None,
            false,
            WriterLayout::Flat,
            2,
            LayoutKind::Flat,
        ),
        (
            "sdf_gzip",
            Compression::Gzip,
            true,
            WriterLayout::PerContent {
                prefix: "demoDataDir".into(),
            },
            5,
            LayoutKind::PerContentDirs,
        ),
        (
            "mdf_zstd_one",
            Compression::Zstd,
            false,
            WriterLayout::SingleDir,
            1,
            LayoutKind::SingleDir,
        ),
    ];
    let mut src = server.client("src");
    let mut reference = None;
    for (i, (name, compression, sdf, layout, segments, kind)) in cases.into_iter().enumerate() {
        let root = server.scratch().join(name);
        let ts = format!("2025030110150{i}");
        let opts = WriterOptions {
            timestamp: ts.clone(),
            segments,
            compression,
            single_data_file: sdf,
            layout,
            ..Default::default()
        };
        let written = write(&server, &root, &opts);
        let set = BackupSet::open_roots(&[&root], None).unwrap();
        assert_eq!(set.files.layout_kind(), kind, "{name}");
        assert_eq!(set.segment_count, segments, "{name}");
        set.check_files().unwrap();
        // Rows really are spread over the contents.
        let odd = &written.tables["\"Odd Schema\".\"Ta,ble \"\"q\"\"\""];
        assert_eq!(odd.rows, 20000);
        assert!(
            segments == 1
                || odd
                    .rows_per_content
                    .iter()
                    .all(|r| *r > 20000 / u64::from(segments) / 2),
            "{name}: {odd:?}"
        );
        for t in set.tables() {
            assert_eq!(
                t.expected_rows,
                written.tables[&t.fqn()].rows,
                "{name} {}",
                t.fqn()
            );
        }
        let sums_src = checksums(&set, &mut src);
        reference.get_or_insert_with(|| sums_src.clone());
        let db = format!("dst_{name}");
        server.create_db(&db);
        let mut dst = server.client(&db);
        load(&set, &mut dst, false);
        assert_eq!(checksums(&set, &mut dst), sums_src, "{name}");
        let seq: i64 = dst
            .query_one("SELECT last_value FROM public.seq", &[])
            .unwrap()
            .get(0);
        assert_eq!(seq, 42);
        let fk: i64 = dst
            .query_one("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'public.child'::regclass", &[])
            .unwrap()
            .get(0);
        assert_eq!(fk, 1, "{name}: postdata constraints restored");
    }
    assert_eq!(reference.unwrap()["public.big"].0, 50000);
}

#[test]
fn to_sql_of_a_written_set_loads_with_psql() {
    let server = source_server();
    let root = server.scratch().join("set");
    let opts = WriterOptions {
        segments: 3,
        compression: Compression::Zstd,
        single_data_file: true,
        ..Default::default()
    };
    write(&server, &root, &opts);
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let out = server.scratch().join("out.sql.gz");
    let report = write_sql(
        &set,
        &out,
        &ToSqlOptions {
            target: Target::Postgres,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.tables.len(), set.tables().len());
    let plain = server.scratch().join("out.sql");
    let mut s = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap()),
        &mut s,
    )
    .unwrap();
    std::fs::write(&plain, &s).unwrap();
    server.create_db("dst");
    let output = server
        .command("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "dst", "-f"])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut src = server.client("src");
    let mut dst = server.client("dst");
    assert_eq!(checksums(&set, &mut dst), checksums(&set, &mut src));
    let seq: i64 = dst
        .query_one("SELECT last_value FROM public.seq", &[])
        .unwrap()
        .get(0);
    assert_eq!(seq, 42);
}

#[test]
fn replicated_tables_hold_one_copy_after_restore() {
    let server = source_server();
    let root = server.scratch().join("rep");
    let opts = WriterOptions {
        segments: 3,
        ..Default::default()
    };
    let written = write_replicated(&server, &root, &opts, &["public.rep".into()]);
    assert_eq!(
        written.tables["public.rep"].rows_per_content,
        vec![100, 100, 100]
    );
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let t = set
        .tables()
        .iter()
        .find(|t| t.fqn() == "public.rep")
        .unwrap();
    assert_eq!(
        (
            t.entry.rowscopied,
            t.entry.isreplicated,
            t.pieces.len(),
            t.expected_rows
        ),
        (300, true, 1, 100)
    );
    server.create_db("dst");
    let mut dst = server.client("dst");
    let loaded = load(&set, &mut dst, false);
    assert_eq!(loaded["public.rep"], 100);
}

#[test]
fn incremental_set_takes_unchanged_tables_from_its_base() {
    let server = source_server();
    let root = server.scratch().join("inc");
    let base = WriterOptions {
        timestamp: "20250301000000".into(),
        segments: 2,
        ..Default::default()
    };
    write(&server, &root, &base);
    server.psql("src", "INSERT INTO public.big SELECT g, 'new' FROM generate_series(50001, 50010) g; INSERT INTO public.rep VALUES (101, 'x');");
    let inc = WriterOptions {
        timestamp: "20250302000000".into(),
        segments: 2,
        base: Some(IncrementalBase {
            timestamp: "20250301000000".into(),
            tables: vec!["public.big".into()],
        }),
        ..Default::default()
    };
    let written = write(&server, &root, &inc);
    assert!(!written.tables.contains_key("public.big"));
    let e = BackupSet::open_roots(&[&root], None).unwrap_err();
    assert!(matches!(e, Error::AmbiguousTimestamp { .. }), "{e}");
    let set = BackupSet::open_roots(&[&root], Some("20250302000000")).unwrap();
    assert!(set.config.incremental);
    let big = set
        .tables()
        .iter()
        .find(|t| t.fqn() == "public.big")
        .unwrap();
    assert_eq!(big.source_timestamp, "20250301000000");
    server.create_db("dst");
    let mut dst = server.client("dst");
    let loaded = load(&set, &mut dst, false);
    // The base's rows for big (before the insert), the incremental's for rep (after it).
    assert_eq!(loaded["public.big"], 50000);
    assert_eq!(loaded["public.rep"], 101);
}

#[test]
fn script_refuses_data_psql_cannot_carry_and_wrong_row_counts() {
    let server = source_server();
    server.psql(
        "src",
        r"CREATE TABLE public.marker (t text); INSERT INTO public.marker VALUES (E'a\n\\.\nb');",
    );
    let root = server.scratch().join("m");
    write(
        &server,
        &root,
        &WriterOptions {
            segments: 2,
            ..Default::default()
        },
    );
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let out = server.scratch().join("m.sql");
    let e = write_sql(&set, &out, &ToSqlOptions::default()).unwrap_err();
    assert!(
        matches!(&e, Error::UnscriptableData { table } if table == "public.marker"),
        "{e}"
    );
    assert!(!out.exists(), "no partial output");
    assert!(std::fs::read_dir(server.scratch()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp-")));

    // A toc whose rowscopied disagrees with the files.
    server.psql("src", "DROP TABLE public.marker");
    let root = server.scratch().join("n");
    write(
        &server,
        &root,
        &WriterOptions {
            segments: 2,
            timestamp: "20250303000000".into(),
            ..Default::default()
        },
    );
    let toc = find_file(&root, "gpbackup_20250303000000_toc.yaml");
    let text = std::fs::read_to_string(&toc)
        .unwrap()
        .replace("rowscopied: 77", "rowscopied: 78");
    std::fs::write(&toc, text).unwrap();
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let e = write_sql(&set, &out, &ToSqlOptions::default()).unwrap_err();
    assert!(
        matches!(&e, Error::RowCountMismatch { table, expected: 78, actual: 77 } if table == "public.serial_t"),
        "{e}"
    );
}
