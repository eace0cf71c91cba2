//! Shared helpers of the cbclone end-to-end tests: a generated source database and the
//! comparisons "target equals source" is made of.

#![allow(dead_code)]

use std::process::{Command, Output};

use testkit::TestServer;

/// A source database with the shapes a clone must carry: a 200k-row table with a primary key
/// (several chunks with -j), a partitioned table, identity and serial sequences and a free
/// one, a large object, odd identifiers, generated columns, enums and arrays, a matview,
/// foreign keys and an index.
pub fn generated_db(server: &TestServer, db: &str) {
    server.create_db(db);
    server.psql(
        db,
        r#"
        CREATE SCHEMA "Odd Schema";
        CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE big (id bigint PRIMARY KEY, k text NOT NULL, amount numeric(12,2),
                          at timestamptz, tags text[], doc jsonb, raw bytea, feel mood);
        INSERT INTO big SELECT g, md5(g::text), (g % 100000) / 100.0,
                               timestamptz '2024-01-01' + g * interval '1 second',
                               ARRAY[g::text, 'x'], jsonb_build_object('g', g, 'half', g / 2.0),
                               decode(md5(g::text), 'hex'), (ARRAY['sad','ok','happy'])[1 + g % 3]::mood
          FROM generate_series(1, 200000) g;
        CREATE INDEX big_k ON big (k);
        CREATE TABLE "Odd Schema"."Mixed ""Case"" Table" ("Id" serial PRIMARY KEY, "a b" text,
                          twice int GENERATED ALWAYS AS ("Id" * 2) STORED,
                          big_id bigint REFERENCES big (id));
        INSERT INTO "Odd Schema"."Mixed ""Case"" Table" ("a b", big_id)
          SELECT 'row ' || g || E' tab\there ''quote'' \\back', g FROM generate_series(1, 500) g;
        CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY, day date NOT NULL, what text,
                             PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
        CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
        INSERT INTO events (day, what) SELECT date '2024-06-01' + (g % 400), 'e' || g
          FROM generate_series(1, 3000) g;
        CREATE TABLE empty_one (a int, b float8);
        CREATE TABLE floats (f4 real, f8 double precision, iv interval, t time, n numeric);
        INSERT INTO floats VALUES (1.1, 0.1 + 0.2, '1 day 02:03:04.5', '12:34:56.789', 'NaN'),
                                  ('Infinity', -0.0, '-3 months', '00:00', 1e-30);
        CREATE SEQUENCE free_seq START 100;
        SELECT setval('free_seq', 4242);
        SELECT nextval('"Odd Schema"."Mixed ""Case"" Table_Id_seq"');
        CREATE MATERIALIZED VIEW big_summary AS SELECT feel, count(*) AS n FROM big GROUP BY feel;
        CREATE VIEW big_view AS SELECT id, k FROM big WHERE id < 10;
        SELECT lo_from_bytea(43210, convert_to(repeat('large object ', 100000), 'UTF8'));
        COMMENT ON TABLE big IS 'the big one';
        VACUUM ANALYZE;
        "#,
    );
}

/// The cbclone binary with the server's environment.
pub fn cbclone(server: &TestServer) -> Command {
    server.tool(env!("CARGO_BIN_EXE_cbclone"))
}

/// `cbclone --source <src> --target <dst>` plus `extra`.
pub fn clone_cmd(server: &TestServer, src: &str, dst: &str, extra: &[&str]) -> Command {
    let mut c = cbclone(server);
    c.arg("--source")
        .arg(server.conn_string(src))
        .arg("--target")
        .arg(server.conn_string(dst))
        .args(extra);
    c
}

pub fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sequence positions of a database, for comparison.
pub fn sequences(server: &TestServer, db: &str) -> Vec<(String, i64, bool)> {
    let mut c = server.client(db);
    let names: Vec<String> = c
        .query(
            "SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    names
        .into_iter()
        .map(|n| {
            let r = c
                .query_one(&format!("SELECT last_value, is_called FROM {n}"), &[])
                .unwrap();
            (n, r.get(0), r.get(1))
        })
        .collect()
}

/// Asserts the target equals the source: every table's and populated matview's fingerprint,
/// `pg_dump -s`, sequences and large objects.
pub fn assert_same(server: &TestServer, src: &str, dst: &str) {
    let a = server.table_fingerprints(src, &['r', 'm']);
    let b = server.table_fingerprints(dst, &['r', 'm']);
    assert!(!a.is_empty());
    for (t, fa) in &a {
        assert_eq!(Some(fa), b.get(t), "table {t} differs");
    }
    assert_eq!(a.len(), b.len());
    assert_eq!(
        server.schema_dump(src),
        server.schema_dump(dst),
        "pg_dump -s differs"
    );
    assert_eq!(sequences(server, src), sequences(server, dst));
    assert_eq!(
        server.large_object_fingerprint(src),
        server.large_object_fingerprint(dst)
    );
}
