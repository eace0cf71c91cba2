//! cbdistfix's decisions on shapes of PostgreSQL's regression database (issue 12): typed tables
//! get their keys from the dump's `CREATE TYPE`, materialized views from the table their query
//! reads, and with `--on-conflict fail` every conflict is
//! shown in one pass and `--report` is written anyway. When `CBTOOLS_TEST_MPP` names an MPP
//! coordinator, the rewritten script is also loaded there and the policies read back.

use std::process::Command;
use std::str::FromStr;

const TYPED: &str = "CREATE TYPE public.person_type AS (\n\tid integer,\n\tname text\n);\n\
CREATE TABLE public.persons3 OF public.person_type (\n    name WITH OPTIONS DEFAULT ''::text NOT NULL\n);\n\
ALTER TABLE ONLY public.persons3\n    ADD CONSTRAINT persons3_pkey PRIMARY KEY (id);\n\
CREATE TABLE public.bit_defaults (\n    b1 bit(4) DEFAULT '1001'::\"bit\",\n    b2 bit varying(5)\n);\n\
CREATE TABLE public.orders (\n    note text,\n    customer integer,\n    total numeric\n);\n\
CREATE MATERIALIZED VIEW public.mv AS\n SELECT orders.note,\n    orders.customer,\n    sum(orders.total) AS total\n   FROM public.orders\n  GROUP BY orders.note, orders.customer\n  WITH NO DATA;\n";

/// Two tables whose unique constraints share no column.
const CONFLICTS: &str = "CREATE TABLE public.a (x int, y int);\n\
ALTER TABLE ONLY public.a ADD CONSTRAINT a_x UNIQUE (x);\n\
ALTER TABLE ONLY public.a ADD CONSTRAINT a_y UNIQUE (y);\n\
CREATE TABLE public.b (p int, q int);\n\
ALTER TABLE ONLY public.b ADD CONSTRAINT b_pk PRIMARY KEY (p);\n\
CREATE UNIQUE INDEX b_q ON public.b USING btree (q);\n\
CREATE TABLE public.c (k int PRIMARY KEY);\n";

fn cbdistfix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cbdistfix"))
}

#[test]
fn typed_tables_take_their_keys_from_the_type() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("typed.sql");
    std::fs::write(&input, TYPED).unwrap();
    let out = cbdistfix().arg(&input).args(["-o", "-"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("CREATE TABLE public.persons3 OF public.person_type (\n    name WITH OPTIONS DEFAULT ''::text NOT NULL\n) DISTRIBUTED BY (id);"),
        "{text}"
    );
    // bit and varbit have default hash operator classes in the Greenplum-7 line (checked in the
    // stand-in's pg_opclass), so bit(4) is a key there.
    assert!(text.contains(") DISTRIBUTED BY (b1);"), "{text}");
    // A matview's columns are typed through the one table its query reads: the first hashable
    // one is the key, as for a table.
    assert!(
        text.contains("  WITH NO DATA DISTRIBUTED BY (note);"),
        "{text}"
    );

    if let Some(coord) = std::env::var("CBTOOLS_TEST_MPP")
        .ok()
        .filter(|s| !s.is_empty())
    {
        let mut cfg = postgres::Config::from_str(&coord).unwrap();
        let mut c = cfg.connect(postgres::NoTls).unwrap();
        let schema = format!("cbt_typed_{}", std::process::id());
        c.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
        let sql = text.replace("public.", &format!("{schema}."));
        c.batch_execute(&sql).unwrap();
        let policy: String = c
            .query_one(
                &format!("SELECT pg_get_table_distributedby('{schema}.persons3'::regclass)"),
                &[],
            )
            .unwrap()
            .get(0);
        c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
        cfg.dbname("postgres");
        assert_eq!(policy, "DISTRIBUTED BY (id)");
    } else {
        eprintln!(
            "SKIPPED the MPP half: set CBTOOLS_TEST_MPP to load the rewritten script into an MPP"
        );
    }
}

#[test]
fn every_conflict_in_one_pass_and_the_report_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("conflicts.sql");
    std::fs::write(&input, CONFLICTS).unwrap();
    let report = dir.path().join("report.json");
    let out = cbdistfix()
        .arg(&input)
        .args(["--dry-run", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("2 conflicts"), "{err}");
    assert!(
        err.contains("public.a") && err.contains("public.b"),
        "{err}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("the report is written")).unwrap();
    let text = json.to_string();
    assert!(
        text.contains("public.a") && text.contains("public.b"),
        "{text}"
    );
    // The table without a conflict got its decision too.
    assert!(text.contains("public.c"), "{text}");
}
