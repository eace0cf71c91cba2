//! cbdump on PostgreSQL's own regression database (testkit::regress): its custom archive and
//! its parallel directory archive, restored with pg_restore, give the database that pg_restore
//! of pg_dump's archive gives: `pg_dump` of the two equal, COPY rows sorted. On PostgreSQL 15
//! and 18 (format 1.16, large objects as `BLOB METADATA`). Skipped, saying why, when the
//! regression database cannot be built on this machine.

use std::path::Path;

use testkit::regress::{self, RegressDumps};
use testkit::{PgInstall, TestServer};

/// A server holding `regression`, restored by pg_restore from pg_dump's cached archive: the
/// reference every cbdump archive must reproduce.
fn source(major: u32) -> Option<(TestServer, RegressDumps)> {
    let dumps = regress::database(major)?;
    let Some(install) = PgInstall::major(major) else {
        eprintln!("skipping: no PostgreSQL {major}");
        return None;
    };
    let server = TestServer::start_with(&install);
    dumps.create_roles(&server);
    dumps.pg_restore(&server, regress::DATABASE, &dumps.custom, &["-j", "2"]);
    Some((server, dumps))
}

fn cbdump(server: &TestServer, args: &[&str], file: &Path) {
    let out = server
        .tool(env!("CARGO_BIN_EXE_cbdump"))
        // cbdump runs pg_dump for the schema: the server's own version.
        .env(
            "PATH",
            format!(
                "{}:{}",
                server.install().bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["-d", regress::DATABASE])
        .args(args)
        .arg("-f")
        .arg(file)
        .output()
        .expect("running cbdump");
    testkit::success(&out, &format!("cbdump {}", args.join(" ")));
}

/// cbdump with `args`, pg_restore of its archive into `restored`, and the comparison.
fn round_trip(major: u32, args: &[&str], name: &str) {
    let Some((server, dumps)) = source(major) else {
        return;
    };
    let archive = server.scratch().join(name);
    cbdump(&server, args, &archive);
    dumps.pg_restore(&server, "restored", &archive, &[]);
    regress::assert_same_database(
        (&server, regress::DATABASE),
        (&server, "restored"),
        &format!(
            "cbdump {} on PostgreSQL {major}, pg_restore",
            args.join(" ")
        ),
    );
}

#[test]
fn pg15_directory_archive_two_jobs() {
    round_trip(15, &["-F", "d", "-j", "2"], "cb.dir");
}

#[test]
fn pg15_custom_archive() {
    round_trip(15, &["-F", "c"], "cb.dump");
}

#[test]
fn pg18_directory_archive_two_jobs() {
    round_trip(18, &["-F", "d", "-j", "2"], "cb.dir");
}

#[test]
fn pg18_custom_archive() {
    round_trip(18, &["-F", "c"], "cb.dump");
}
