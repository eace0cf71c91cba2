//! Catalog reads, flavour detection, the MPP interface and snapshot sharing on a real server.

use cluster::catalog::{self, Selection};
use cluster::flavor::{self, Flavor};
use cluster::mpp::{Distribution, MppCatalog};
use cluster::snapshot::{self, SnapshotLeader};
use testkit::TestServer;

#[test]
fn lists_and_selects_odd_names() {
    let server = TestServer::start();
    server.psql(
        "postgres",
        r#"CREATE SCHEMA "Sales Dept";
           CREATE TABLE "Sales Dept"."Orders ""2024""" (id int, "Amount" numeric, g int GENERATED ALWAYS AS (id * 2) STORED);
           CREATE TABLE public.plain (x text);
           CREATE VIEW public.v AS SELECT 1 AS one;"#,
    );
    let mut c = server.client("postgres");
    let all = catalog::list_relations(&mut c).unwrap();
    let sel = Selection::from_patterns(&["\"Sales Dept\".*".into()], &[], &[], &[]).unwrap();
    let picked = sel.select(&all).unwrap();
    assert_eq!(picked.len(), 1);
    assert_eq!(picked[0].name, "Orders \"2024\"");
    assert_eq!(
        picked[0].qualified(),
        "\"Sales Dept\".\"Orders \"\"2024\"\"\""
    );
    let cols = catalog::columns(&mut c, picked[0].oid).unwrap();
    let names: Vec<_> = cols
        .iter()
        .map(|c| (c.name.as_str(), c.generated))
        .collect();
    assert_eq!(names, vec![("id", false), ("Amount", false), ("g", true)]);
}

#[test]
fn flavour_and_mpp_catalog_through_look_alike_tables() {
    let server = TestServer::start();
    let mut c = server.client("postgres");
    let info = flavor::detect(&mut c, &MppCatalog::default()).unwrap();
    assert_eq!(info.flavor, Flavor::PostgreSql);
    assert!(info.segments.is_empty());
    assert!(info.version_num >= 150000);

    // The same columns as Cloudberry's catalogs, in a scratch schema.
    server.psql(
        "postgres",
        "CREATE SCHEMA fakegp;
         CREATE TABLE fakegp.gp_segment_configuration (dbid int2, content int2, role \"char\", preferred_role \"char\", mode \"char\", status \"char\", port int4, hostname text, address text, datadir text);
         INSERT INTO fakegp.gp_segment_configuration VALUES
           (1, -1, 'p', 'p', 'n', 'u', 5432, 'cdw', 'cdw', '/data/coordinator/gpseg-1'),
           (2, 0, 'p', 'p', 's', 'u', 6000, 'sdw1', 'sdw1', '/data/primary/gpseg0'),
           (3, 1, 'p', 'p', 's', 'u', 6001, 'sdw1', 'sdw1', '/data/primary/gpseg1'),
           (4, 0, 'm', 'm', 's', 'u', 7000, 'sdw2', 'sdw2', '/data/mirror/gpseg0');
         CREATE TABLE fakegp.gp_distribution_policy (localoid oid, policytype \"char\", numsegments int4, distkey int2vector, distclass oidvector);
         CREATE TABLE public.t (a int, \"B\" text, c int);
         CREATE TABLE public.r (a int);
         CREATE TABLE public.z (a int);
         INSERT INTO fakegp.gp_distribution_policy VALUES
           ('public.t'::regclass, 'p', 2, '3 2', '0 0'),
           ('public.r'::regclass, 'r', 2, '', ''),
           ('public.z'::regclass, 'p', 2, '', '');",
    );
    let gp = MppCatalog::in_schema("fakegp");
    let info = flavor::detect(&mut c, &gp).unwrap();
    assert_eq!(info.flavor, Flavor::Greenplum);
    let contents: Vec<(i16, i32, &str)> = info
        .segments
        .iter()
        .map(|s| (s.content, s.port, s.datadir.as_str()))
        .collect();
    assert_eq!(
        contents,
        vec![
            (0, 6000, "/data/primary/gpseg0"),
            (1, 6001, "/data/primary/gpseg1")
        ]
    );
    let oid = |name: &str, c: &mut postgres::Client| -> u32 {
        c.query_one("SELECT $1::text::regclass::oid", &[&name])
            .unwrap()
            .get(0)
    };
    let t = oid("public.t", &mut c);
    let r = oid("public.r", &mut c);
    let z = oid("public.z", &mut c);
    assert_eq!(
        gp.distribution(&mut c, t).unwrap(),
        Some(Distribution::Hash(vec!["c".into(), "B".into()]))
    );
    assert_eq!(
        gp.distribution(&mut c, r).unwrap(),
        Some(Distribution::Replicated)
    );
    assert_eq!(
        gp.distribution(&mut c, z).unwrap(),
        Some(Distribution::Random)
    );
}

#[test]
fn workers_share_the_leaders_snapshot() {
    let server = TestServer::start();
    server.psql(
        "postgres",
        "CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1, 100);",
    );
    let leader =
        SnapshotLeader::begin(server.client("postgres"), &["public.t".into()], Some(5000)).unwrap();
    // Changes committed after the export are invisible to workers that import it.
    server.psql(
        "postgres",
        "INSERT INTO t SELECT generate_series(1, 50); DELETE FROM t WHERE x <= 10;",
    );
    let mut worker = server.client("postgres");
    snapshot::import(&mut worker, leader.id()).unwrap();
    let n: i64 = worker
        .query_one("SELECT count(*) FROM t", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 100);
    // An unknown snapshot id is a clear error.
    let mut other = server.client("postgres");
    let err = snapshot::import(&mut other, "00000003-0000001B-1")
        .unwrap_err()
        .to_string();
    assert!(err.contains("snapshot"), "{err}");
    leader.finish().unwrap();
}

/// Listing takes no lock: an ACCESS EXCLUSIVE lock on an unrelated table (an `ALTER TABLE` or
/// `TRUNCATE` in progress) does not hold up a selection of other tables. With `lock_timeout`
/// set, a list that needed the lock fails instead of waiting. `measure` then gives the selected
/// table its real size although the catalog's estimate is 0 (never vacuumed).
#[test]
fn listing_takes_no_locks_and_measure_gives_real_sizes() {
    let server = TestServer::start();
    server.psql(
        "postgres",
        "CREATE TABLE public.busy (x int);
         CREATE TABLE public.wanted AS SELECT g AS x FROM generate_series(1, 50000) g;",
    );
    let mut holder = server.client("postgres");
    let mut txn = holder.transaction().unwrap();
    txn.batch_execute("LOCK TABLE public.busy IN ACCESS EXCLUSIVE MODE")
        .unwrap();

    let mut c = server.client("postgres");
    c.batch_execute("SET lock_timeout = '3s'").unwrap();
    let all = catalog::list_relations(&mut c).expect("listing must not wait for locks");
    let sel = Selection::from_patterns(&["public.wanted".into()], &[], &[], &[]).unwrap();
    let mut picked = sel.select(&all).unwrap();
    assert_eq!(picked.len(), 1);
    assert_eq!(picked[0].pages, 0, "relpages of a never-vacuumed table");
    catalog::measure(&mut c, &mut picked).unwrap();
    let exact: i64 = c
        .query_one(
            "SELECT (pg_relation_size('public.wanted') / current_setting('block_size')::int)::int8",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(exact > 100, "50,000 rows span more than 100 pages: {exact}");
    assert_eq!(picked[0].pages, exact);
    txn.rollback().unwrap();
}
