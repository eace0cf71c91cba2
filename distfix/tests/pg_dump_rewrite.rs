//! End to end against real pg_dump 15 output: a schema full of splitter traps is dumped, rewritten
//! by the `cbdistfix` binary, checked clause by clause, stripped back to the exact original, and
//! the stripped script is loaded into a fresh database that must hold the same rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::{expect_success, TestServer};

const SCHEMA: &str = r#"
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('happy', 'sad');
CREATE TYPE app.comp AS (a integer, b text);
CREATE FOREIGN DATA WRAPPER dummy_fdw;
CREATE SERVER dummy_srv FOREIGN DATA WRAPPER dummy_fdw;
CREATE FOREIGN TABLE app.ft (a integer) SERVER dummy_srv;

CREATE TABLE app.orders (note text, id bigint PRIMARY KEY, code text, doc json);
CREATE TABLE app."Weird;Name" ("col ""x""" integer NOT NULL, "Order" text NOT NULL, payload jsonb,
    CONSTRAINT weird_pk PRIMARY KEY ("col ""x""", "Order"));
CREATE TABLE app.conflict (id integer PRIMARY KEY, code text UNIQUE);
CREATE TABLE app.nokey (doc json, g integer GENERATED ALWAYS AS (1) STORED, m app.mood, n integer);
CREATE TABLE app.geo (p point, j json);
CREATE UNLOGGED TABLE app.ulog (a integer, b text UNIQUE);
CREATE TABLE app.meas (city integer NOT NULL, logdate date NOT NULL, v numeric,
    PRIMARY KEY (city, logdate)) PARTITION BY RANGE (logdate);
CREATE TABLE app.meas_2024 PARTITION OF app.meas FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.meas_2025 PARTITION OF app.meas FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
    PARTITION BY LIST (city);
CREATE TABLE app.meas_2025_c1 PARTITION OF app.meas_2025 FOR VALUES IN (1);
CREATE TABLE app.parent (id integer, name text);
CREATE TABLE app.child (extra text) INHERITS (app.parent);
CREATE TABLE app.typed OF app.comp;
CREATE TABLE app.ident (id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
CREATE TABLE app.uidx (a text, b integer);
CREATE UNIQUE INDEX uidx_lower ON app.uidx (lower(a), b);
CREATE TABLE app.rooms (room integer, during tstzrange, EXCLUDE USING gist (during WITH &&));
CREATE MATERIALIZED VIEW app.mv AS SELECT id, count(*) AS n FROM app.orders GROUP BY id;
CREATE UNIQUE INDEX mv_id ON app.mv (id);
CREATE MATERIALIZED VIEW app.mv2 AS SELECT code FROM app.orders WITH NO DATA;

CREATE FUNCTION app.f_plpgsql() RETURNS integer LANGUAGE plpgsql AS $body$
BEGIN
  CREATE TEMP TABLE tmp_x (a integer); -- a table inside a body; must stay untouched
  RAISE NOTICE 'semi; colon \ and E''x''';
  RETURN 1;
END $body$;
CREATE FUNCTION app.f_atomic(a integer) RETURNS integer LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;
  SELECT 3;
END;
CREATE RULE r_multi AS ON INSERT TO app.parent WHERE new.id < 0
    DO ALSO (INSERT INTO app.geo (j) VALUES ('{}'); INSERT INTO app.geo (j) VALUES ('[]'));
COMMENT ON TABLE app.orders IS 'has ''quotes''; and CREATE TABLE x (a int); /* not a comment */';
COMMENT ON COLUMN app."Weird;Name"."col ""x""" IS E'tab\there -- not a comment';

INSERT INTO app.orders VALUES (E'line1\nline2 \\. ; $$ ''q''', 1, 'a', '{"k": 1}'), ('\.', 2, 'b', '[]'),
    (E'\\.', 3, NULL, 'null');
INSERT INTO app."Weird;Name" VALUES (1, 'x;y', '{"a": [1, 2]}'), (2, 'Z', NULL);
INSERT INTO app.conflict VALUES (1, 'one'), (2, 'two');
INSERT INTO app.nokey (doc, m, n) VALUES ('{}', 'happy', 1), ('[]', 'sad', 2);
INSERT INTO app.geo VALUES ('(1,2)', '{"x": "y"}');
INSERT INTO app.ulog VALUES (1, 'u1'), (2, 'u2');
INSERT INTO app.meas VALUES (1, '2024-05-01', 1.5), (2, '2024-06-01', 2.5), (1, '2025-02-02', 3.5);
INSERT INTO app.parent VALUES (1, 'p');
INSERT INTO app.child VALUES (2, 'c', 'extra');
INSERT INTO app.typed VALUES (1, 'typed');
INSERT INTO app.ident (v) VALUES ('i1'), ('i2');
INSERT INTO app.uidx VALUES ('A', 1), ('b', 1);
INSERT INTO app.rooms VALUES (1, '[2024-01-01,2024-01-02)');
REFRESH MATERIALIZED VIEW app.mv;
"#;

const POLICY: &str = r#"
[tables]
"app.rooms" = "replicated"
"#;

/// Expected clause per relation after the rewrite with `--on-conflict demote-unique`.
const EXPECTED: &[(&str, &str)] = &[
    ("app.orders", "DISTRIBUTED BY (id)"),
    (
        "app.\"Weird;Name\"",
        "DISTRIBUTED BY (\"col \"\"x\"\"\", \"Order\")",
    ),
    ("app.conflict", "DISTRIBUTED BY (id)"),
    ("app.nokey", "DISTRIBUTED BY (m)"),
    ("app.geo", "DISTRIBUTED RANDOMLY"),
    ("app.ulog", "DISTRIBUTED BY (b)"),
    ("app.meas", "DISTRIBUTED BY (city, logdate)"),
    ("app.meas_2024", "DISTRIBUTED BY (city, logdate)"),
    ("app.meas_2025", "DISTRIBUTED BY (city, logdate)"),
    ("app.meas_2025_c1", "DISTRIBUTED BY (city, logdate)"),
    ("app.parent", "DISTRIBUTED BY (id)"),
    ("app.child", "DISTRIBUTED BY (id)"),
    // A typed table's columns come from its CREATE TYPE: the first hashable one is the key.
    ("app.typed", "DISTRIBUTED BY (a)"),
    ("app.ident", "DISTRIBUTED BY (id)"),
    ("app.uidx", "DISTRIBUTED BY (b)"),
    ("app.rooms", "DISTRIBUTED REPLICATED"),
    ("app.mv", "DISTRIBUTED BY (id)"),
    // A matview reading one table: its column types come from that table.
    ("app.mv2", "DISTRIBUTED BY (code)"),
];

fn cbdistfix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cbdistfix"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running cbdistfix");
    expect_success(&out, "cbdistfix");
    out
}

fn dump(server: &TestServer, db: &str, path: &Path) {
    let out = server
        .command("pg_dump")
        .args(["-d", db, "-f"])
        .arg(path)
        .output()
        .expect("pg_dump");
    expect_success(&out, "pg_dump");
}

/// The CREATE statement of each relation in the rewritten text: from `CREATE ... name` to `;`.
fn create_statement<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    for kw in ["TABLE ", "MATERIALIZED VIEW "] {
        let needle_paren = format!("{kw}{name} ");
        let needle_nl = format!("{kw}{name}\n");
        for needle in [needle_paren, needle_nl] {
            let mut from = 0;
            while let Some(i) = text[from..].find(&needle) {
                let at = from + i;
                let line_start = text[..at].rfind('\n').map_or(0, |p| p + 1);
                if text[line_start..].starts_with("CREATE ") {
                    let end = text[at..].find(";\n").map(|e| at + e + 1)?;
                    return Some(&text[line_start..end]);
                }
                from = at + 1;
            }
        }
    }
    None
}

fn table_checksums(server: &TestServer, db: &str) -> HashMap<String, String> {
    let list = server.psql(
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'app' AND c.relkind IN ('r', 'm') AND c.relispopulated ORDER BY 1",
    );
    list.lines()
        .map(|t| {
            let sum = server.psql(
                db,
                &format!("SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') FROM {t} x"),
            );
            (t.to_string(), sum.trim().to_string())
        })
        .collect()
}

fn scratch_file(server: &TestServer, name: &str) -> PathBuf {
    server.scratch().join(name)
}

#[test]
fn trap_schema_round_trip() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", "CREATE EXTENSION btree_gist;");
    server.psql("src", SCHEMA);
    let plain = scratch_file(&server, "src.sql");
    dump(&server, "src", &plain);
    let original = std::fs::read_to_string(&plain).unwrap();
    assert!(
        original.contains("\\restrict "),
        "pg_dump 15.18 wraps scripts in \\restrict"
    );

    let policy = scratch_file(&server, "policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let rewritten = scratch_file(&server, "out.sql");
    let report = scratch_file(&server, "report.json");
    run_ok(
        cbdistfix()
            .arg(&plain)
            .arg("-o")
            .arg(&rewritten)
            .arg("--policy")
            .arg(&policy)
            .args(["--on-conflict", "demote-unique", "--report"])
            .arg(&report),
    );
    let text = std::fs::read_to_string(&rewritten).unwrap();

    for (name, clause) in EXPECTED {
        let stmt = create_statement(&text, name).unwrap_or_else(|| panic!("no CREATE for {name}"));
        assert!(
            stmt.ends_with(&format!(" {clause};")),
            "{name}: expected {clause}, got:\n{stmt}"
        );
    }
    // Foreign tables are never touched; PARTITION OF does not occur in pg_dump 15 output.
    let ft = create_statement(&text, "app.ft").unwrap_or("");
    assert!(!ft.contains("DISTRIBUTED"), "{ft}");
    // The conflicting UNIQUE was demoted to a plain index.
    assert!(
        text.contains("CREATE INDEX conflict_code_key ON ONLY app.conflict (code);"),
        "demotion"
    );
    assert!(!text.contains("ADD CONSTRAINT conflict_code_key UNIQUE"));
    // Exactly one clause per expected relation, nothing anywhere else.
    assert_eq!(
        text.matches(" DISTRIBUTED ").count(),
        EXPECTED.len(),
        "clause count"
    );

    // Everything except the clauses and the demotion is byte-identical: undo the demotion by
    // hand, strip the clauses, compare with the original dump.
    let stripped_path = scratch_file(&server, "stripped.sql");
    run_ok(
        cbdistfix()
            .arg(&rewritten)
            .arg("--strip")
            .arg("-o")
            .arg(&stripped_path),
    );
    let stripped = std::fs::read_to_string(&stripped_path).unwrap();
    let undemoted = stripped.replace(
        "CREATE INDEX conflict_code_key ON ONLY app.conflict (code);",
        "ALTER TABLE ONLY app.conflict\n    ADD CONSTRAINT conflict_code_key UNIQUE (code);",
    );
    assert_eq!(
        undemoted, original,
        "strip(rewrite(x)) == x apart from the demoted constraint"
    );

    // The report says why.
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let reason = |t: &str| {
        json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["table"] == t)
            .map(|d| d["reason"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{t} not in report"))
    };
    assert_eq!(reason("app.orders"), "primary_key");
    assert_eq!(reason("app.ulog"), "unique");
    assert_eq!(reason("app.conflict"), "conflict");
    assert_eq!(reason("app.rooms"), "policy");
    assert_eq!(reason("app.nokey"), "default");
    assert_eq!(reason("app.meas_2024"), "parent");

    // Without demotion: plain strip(rewrite(x)) == x, byte for byte, and it loads.
    let rewritten2 = scratch_file(&server, "out2.sql");
    run_ok(
        cbdistfix()
            .arg(&plain)
            .arg("-o")
            .arg(&rewritten2)
            .arg("--policy")
            .arg(&policy)
            .args(["--on-conflict", "replicated"]),
    );
    let text2 = std::fs::read_to_string(&rewritten2).unwrap();
    assert!(create_statement(&text2, "app.conflict")
        .unwrap()
        .ends_with(" DISTRIBUTED REPLICATED;"));
    let stripped2 = scratch_file(&server, "stripped2.sql");
    run_ok(
        cbdistfix()
            .arg(&rewritten2)
            .arg("--strip")
            .arg("-o")
            .arg(&stripped2),
    );
    assert_eq!(std::fs::read(&stripped2).unwrap(), original.as_bytes());

    server.create_db("dst");
    let out = server
        .command("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "dst", "-f"])
        .arg(&stripped2)
        .output()
        .unwrap();
    expect_success(&out, "psql loading the stripped dump");
    let src = table_checksums(&server, "src");
    let dst = table_checksums(&server, "dst");
    assert!(src.len() >= 15, "{src:?}");
    assert_eq!(src, dst);
}

#[test]
fn command_line_modes() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", "CREATE EXTENSION btree_gist;");
    server.psql("src", SCHEMA);
    let plain = scratch_file(&server, "src.sql");
    dump(&server, "src", &plain);
    let original = std::fs::read(&plain).unwrap();

    // Without a conflict policy the conflicting table fails with a clear message, and no output
    // file is left behind.
    let out_path = scratch_file(&server, "fail.sql");
    let out = cbdistfix()
        .arg(&plain)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("app.conflict") && err.contains("conflict_code_key"),
        "{err}"
    );
    assert!(!out_path.exists());
    let leftovers = std::fs::read_dir(server.scratch())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".cbdistfix-")
        })
        .count();
    assert_eq!(leftovers, 0);

    // stdin to stdout, gzip kept.
    let gz = scratch_file(&server, "src.sql.gz");
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        e.write_all(&original).unwrap();
        e.finish().unwrap();
    }
    let out = run_ok(
        cbdistfix()
            .args([
                "-",
                "-o",
                "-",
                "--on-conflict",
                "replicated",
                "--default",
                "random",
            ])
            .stdin(std::fs::File::open(&gz).unwrap()),
    );
    let mut text = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&out.stdout[..]),
        &mut text,
    )
    .unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(create_statement(&text, "app.nokey")
        .unwrap()
        .ends_with(" DISTRIBUTED RANDOMLY;"));

    // zstd output on request, then stripped from zstd back to the exact original.
    let zst = scratch_file(&server, "out.sql.zst");
    run_ok(cbdistfix().arg(&plain).arg("-o").arg(&zst).args([
        "--on-conflict",
        "replicated",
        "--compress",
        "zstd",
    ]));
    let back = scratch_file(&server, "back.sql");
    run_ok(
        cbdistfix()
            .arg(&zst)
            .arg("--strip")
            .arg("-o")
            .arg(&back)
            .args(["--compress", "none"]),
    );
    assert_eq!(std::fs::read(&back).unwrap(), original);

    // --check fails on default/conflict decisions; --dry-run writes nothing.
    let dry = scratch_file(&server, "dry.sql");
    let out = cbdistfix()
        .arg(&plain)
        .arg("-o")
        .arg(&dry)
        .args(["--on-conflict", "replicated", "--check", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dry.exists());
    let table = String::from_utf8_lossy(&out.stderr);
    assert!(
        table.contains("app.nokey") && table.contains("default"),
        "{table}"
    );

    // Archives: custom and directory, rewritten in their own format. `pg_restore -f -` of the
    // rewritten archive equals cbdistfix's rewrite of `pg_restore -f -` of the original.
    let restore_sql = |archive: &Path| -> Vec<u8> {
        let o = server
            .command("pg_restore")
            .args(["--restrict-key", "cbtoolstest", "-f", "-"])
            .arg(archive)
            .output()
            .unwrap();
        expect_success(&o, "pg_restore -f -");
        o.stdout
    };
    let custom = scratch_file(&server, "src.dump");
    let o = server
        .command("pg_dump")
        .args(["-Fc", "-d", "src", "-f"])
        .arg(&custom)
        .output()
        .unwrap();
    expect_success(&o, "pg_dump -Fc");
    let plain_of_archive = scratch_file(&server, "from_archive.sql");
    std::fs::write(&plain_of_archive, restore_sql(&custom)).unwrap();
    let plain_fixed = scratch_file(&server, "from_archive.fixed.sql");
    run_ok(
        cbdistfix()
            .arg(&plain_of_archive)
            .arg("-o")
            .arg(&plain_fixed)
            .args(["--on-conflict", "replicated"]),
    );
    let custom_fixed = scratch_file(&server, "fixed.dump");
    run_ok(
        cbdistfix()
            .arg(&custom)
            .arg("-o")
            .arg(&custom_fixed)
            .args(["--on-conflict", "replicated"]),
    );
    let o = server
        .command("pg_restore")
        .arg("-l")
        .arg(&custom_fixed)
        .output()
        .unwrap();
    expect_success(&o, "pg_restore -l");
    let fixed_sql = restore_sql(&custom_fixed);
    assert!(
        fixed_sql == std::fs::read(&plain_fixed).unwrap(),
        "custom archive rewrite equals the plain rewrite"
    );
    assert!(String::from_utf8_lossy(&fixed_sql).contains("DISTRIBUTED BY"));
    // Strip gives back the original archive's SQL.
    let custom_stripped = scratch_file(&server, "stripped.dump");
    run_ok(
        cbdistfix()
            .arg("--strip")
            .arg(&custom_fixed)
            .arg("-o")
            .arg(&custom_stripped),
    );
    assert!(restore_sql(&custom_stripped) == restore_sql(&custom));
    // Custom archives are not written to stdout.
    let out = cbdistfix()
        .arg(&custom)
        .args(["-o", "-", "--on-conflict", "replicated"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not to stdout"));

    let dir = scratch_file(&server, "src.dir");
    let o = server
        .command("pg_dump")
        .args(["-Fd", "-d", "src", "-f"])
        .arg(&dir)
        .output()
        .unwrap();
    expect_success(&o, "pg_dump -Fd");
    let dir_fixed = scratch_file(&server, "fixed.dir");
    run_ok(
        cbdistfix()
            .arg(&dir)
            .arg("-o")
            .arg(&dir_fixed)
            .args(["--on-conflict", "replicated"]),
    );
    assert!(
        restore_sql(&dir_fixed) == fixed_sql,
        "directory rewrite equals the custom one"
    );
    // The original directory is untouched; --in-place rewrites a copy's toc.dat only.
    assert!(restore_sql(&dir) == restore_sql(&custom));
    run_ok(cbdistfix().arg("--strip").arg("--in-place").arg(&dir_fixed));
    assert!(restore_sql(&dir_fixed) == restore_sql(&custom));
    // A stripped archive restores into PostgreSQL with pg_restore -j 2.
    server.create_db("from_archive");
    let o = server
        .command("pg_restore")
        .args(["-j", "2", "-d", "from_archive"])
        .arg(&dir_fixed)
        .output()
        .unwrap();
    expect_success(&o, "pg_restore -j 2");
    assert_eq!(
        table_checksums(&server, "from_archive"),
        table_checksums(&server, "src")
    );

    // Special files are written in place, never renamed over.
    let fifo = scratch_file(&server, "out.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    run_ok(
        cbdistfix()
            .arg(&plain)
            .arg("-o")
            .arg(&fifo)
            .args(["--on-conflict", "replicated"]),
    );
    let via_fifo = reader.join().unwrap();
    assert!(String::from_utf8_lossy(&via_fifo).contains(" DISTRIBUTED BY (id);"));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // Policy errors name the problem.
    let policy = scratch_file(&server, "bad.toml");
    std::fs::write(&policy, "[tables]\n\"app.orders\" = \"hash(nope)\"\n").unwrap();
    let out = cbdistfix()
        .arg(&plain)
        .arg("--dry-run")
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no column \"nope\""));
}

#[test]
fn stats_pick_high_cardinality_and_replicate_small_tables() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        "CREATE TABLE public.big (flag integer, id integer, t text);\
         INSERT INTO public.big SELECT i % 2, i, 'x' FROM generate_series(1, 5000) i;\
         CREATE TABLE public.small (a integer);\
         INSERT INTO public.small VALUES (1), (2);\
         ANALYZE;",
    );
    let plain = scratch_file(&server, "src.sql");
    dump(&server, "src", &plain);
    let out = run_ok(
        cbdistfix()
            .arg(&plain)
            .args(["-o", "-", "--default", "replicated-below=100", "--stats"])
            .arg(server.conn_string("src")),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        create_statement(&text, "public.big")
            .unwrap()
            .ends_with(" DISTRIBUTED BY (id);"),
        "{text}"
    );
    assert!(create_statement(&text, "public.small")
        .unwrap()
        .ends_with(" DISTRIBUTED REPLICATED;"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stats"), "{err}");
}

#[test]
fn pagila_fixture() {
    let server = TestServer::start();
    if !server.load_pagila("pagila") {
        return;
    }
    let plain = scratch_file(&server, "pagila.sql");
    dump(&server, "pagila", &plain);
    let original = std::fs::read(&plain).unwrap();
    let rewritten = scratch_file(&server, "pagila.cb.sql");
    let report = scratch_file(&server, "pagila.json");
    run_ok(
        cbdistfix()
            .arg(&plain)
            .arg("-o")
            .arg(&rewritten)
            .args(["--on-conflict", "replicated", "--report"])
            .arg(&report),
    );
    let text = std::fs::read_to_string(&rewritten).unwrap();
    // Partitions of payment carry the root's key; film_actor's composite PK is the key.
    for (name, clause) in [
        ("public.actor", "DISTRIBUTED BY (actor_id)"),
        ("public.film_actor", "DISTRIBUTED BY (actor_id, film_id)"),
        (
            "public.payment",
            "DISTRIBUTED BY (payment_date, payment_id)",
        ),
        (
            "public.payment_p2022_01",
            "DISTRIBUTED BY (payment_date, payment_id)",
        ),
    ] {
        let stmt = create_statement(&text, name).unwrap_or_else(|| panic!("no {name}"));
        assert!(stmt.ends_with(&format!(" {clause};")), "{name}: {stmt}");
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let n_tables = json["tables"].as_array().unwrap().len();
    assert_eq!(text.matches(" DISTRIBUTED ").count(), n_tables);
    let stripped = scratch_file(&server, "pagila.back.sql");
    run_ok(
        cbdistfix()
            .arg(&rewritten)
            .arg("--strip")
            .arg("-o")
            .arg(&stripped),
    );
    assert_eq!(std::fs::read(&stripped).unwrap(), original);
}

/// Deterministic pseudo-random numbers (no dependency, same cases on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn mangled_dumps_never_panic() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", "CREATE EXTENSION btree_gist;");
    server.psql("src", SCHEMA);
    let plain = scratch_file(&server, "src.sql");
    dump(&server, "src", &plain);
    let original = std::fs::read(&plain).unwrap();
    let mut rng = Lcg(0x5eed);
    let opts = distfix::policy::Options {
        default: None,
        on_conflict: Some(distfix::policy::OnConflict::DemoteUnique),
        force: true,
    };
    let bytes = [
        b'\'', b'"', b'$', b';', b'(', b')', b'\\', b'\n', b'-', b'/', b'*', b'E', 0xff, b'.',
    ];
    for case in 0..600 {
        let mut data = original.clone();
        if case % 3 == 0 {
            data.truncate((rng.next() as usize) % data.len());
        } else {
            for _ in 0..1 + rng.next() % 6 {
                let at = (rng.next() as usize) % data.len();
                data[at] = bytes[(rng.next() as usize) % bytes.len()];
            }
        }
        let Ok(catalog) = distfix::rewrite::collect(&data[..]) else {
            continue;
        };
        let file = distfix::policy::PolicyFile::default();
        if let Ok(plan) = distfix::policy::decide(&catalog, &file, &opts, &HashMap::new()) {
            let mut out = Vec::new();
            if distfix::rewrite::apply(&data[..], &mut out, &plan).is_ok() {
                let mut back = Vec::new();
                let _ = distfix::rewrite::strip(&out[..], &mut back);
            }
        }
    }
}
