//! The harness itself: servers start, answer, run in parallel, and go away.

use testkit::{PgInstall, TestServer};

#[test]
fn two_servers_run_side_by_side_and_stop_on_drop() {
    let a = TestServer::start();
    let b = TestServer::start();
    assert_ne!(a.port(), b.port());
    a.create_db("one");
    a.psql(
        "one",
        "CREATE TABLE t(x int); INSERT INTO t SELECT generate_series(1,10);",
    );
    assert_eq!(a.psql("one", "SELECT count(*) FROM t").trim(), "10");
    assert_eq!(b.psql("postgres", "SELECT 1").trim(), "1");
    let data = a.data_dir().to_path_buf();
    drop(a);
    assert!(!data.exists(), "the temporary directory is removed");
    assert_eq!(b.psql("postgres", "SELECT 2").trim(), "2");
}

#[test]
fn newer_majors_start_when_available() {
    for major in [16, 18] {
        let Some(install) = PgInstall::major(major) else {
            eprintln!("skipping PostgreSQL {major}: not available");
            continue;
        };
        let server = TestServer::start_with(&install);
        let v = server.psql("postgres", "SHOW server_version_num");
        assert!(v.trim().starts_with(&major.to_string()), "{v}");
    }
}
