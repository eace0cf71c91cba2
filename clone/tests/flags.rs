//! cbclone's flags not run elsewhere, each by what it does to the target (issue 14: every flag
//! run by a test): `-O`, `-x`, `-B`, `--pg-dump`, `--split-tables-larger-than`, the
//! distribution rules (refused for a PostgreSQL target; on the MPP stand-in when
//! `CBTOOLS_TEST_MPP` names it), `--help`, `--version` and usage errors.

mod common;

use std::path::Path;
use std::process::Command;

use common::{clone_cmd, ok};
use testkit::TestServer;

const SOURCE: &str = r#"
CREATE ROLE app_owner;
CREATE ROLE reader;
CREATE TABLE public.t (id int PRIMARY KEY, v text);
ALTER TABLE public.t OWNER TO app_owner;
INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 100) g;
GRANT SELECT ON public.t TO reader;
CREATE TABLE public.nokey (a int, b text);
INSERT INTO public.nokey SELECT g, md5(g::text) FROM generate_series(1, 100000) g;
SELECT lo_from_bytea(0, convert_to('a large object', 'UTF8'));
VACUUM ANALYZE;
"#;

fn source() -> TestServer {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", SOURCE);
    server
}

fn one(server: &TestServer, db: &str, sql: &str) -> String {
    server.psql(db, sql).trim().to_string()
}

fn owner_and_grants(server: &TestServer, db: &str) -> (String, String) {
    (
        one(
            server,
            db,
            "SELECT tableowner FROM pg_tables WHERE tablename = 't'",
        ),
        one(
            server,
            db,
            "SELECT count(*) FROM information_schema.role_table_grants WHERE grantee = 'reader'",
        ),
    )
}

/// A `pg_dump` that logs each run's arguments into `log` and runs the real one, with the real
/// `pg_restore` beside it.
fn logging_pg_dump(server: &TestServer, dir: &Path, log: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).unwrap();
    let wrapper = dir.join("pg_dump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            server.install().bin("pg_dump").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(server.install().bin("pg_restore"), dir.join("pg_restore")).unwrap();
    wrapper
}

/// `-O`, `-x` (and their long forms), `-B`, `--pg-dump`, `--split-tables-larger-than`.
#[test]
fn object_flags_and_splitting() {
    let server = source();
    let want = server.table_fingerprints("src", &['r']);

    server.create_db("all");
    ok(
        &clone_cmd(&server, "src", "all", &[]).output().unwrap(),
        "cbclone",
    );
    assert_eq!(
        owner_and_grants(&server, "all"),
        ("app_owner".into(), "1".into())
    );
    assert_eq!(
        server.large_object_fingerprint("all"),
        server.large_object_fingerprint("src")
    );
    for (db, flags) in [
        ("o1", ["-O", "-x", "-B"]),
        ("o2", ["--no-owner", "--no-acl", "--no-blobs"]),
        (
            "o3",
            ["--no-owner", "--no-privileges", "--no-large-objects"],
        ),
    ] {
        server.create_db(db);
        ok(
            &clone_cmd(&server, "src", db, &flags).output().unwrap(),
            "cbclone",
        );
        assert_eq!(
            owner_and_grants(&server, db),
            ("postgres".into(), "0".into()),
            "{flags:?}"
        );
        assert_eq!(server.large_object_fingerprint(db), "0:", "{flags:?}");
        assert_eq!(server.table_fingerprints(db, &['r']), want, "{flags:?}");
    }

    // --pg-dump: the schema comes from that program (pg_restore is taken beside it).
    let log = server.scratch().join("pg_dump.args");
    let wrapper = logging_pg_dump(&server, &server.scratch().join("bin"), &log);
    server.create_db("pd");
    let out = clone_cmd(&server, "src", "pd", &["--pg-dump"])
        .arg(&wrapper)
        .output()
        .unwrap();
    ok(&out, "cbclone --pg-dump");
    let runs = std::fs::read_to_string(&log).expect("the wrapper ran");
    assert!(
        runs.lines()
            .any(|l| l.contains("--schema-only") || l.contains("-s")),
        "{runs}"
    );
    assert_eq!(server.table_fingerprints("pd", &['r']), want);

    // --split-tables-larger-than: nokey (about 6 MB) in chunks of 256 kB, which the default
    // (none under 16 MiB) leaves whole.
    let chunks = |db: &str, extra: &[&str]| -> u64 {
        server.create_db(db);
        let out = clone_cmd(
            &server,
            "src",
            db,
            &[&["-j", "2", "--json"], extra].concat(),
        )
        .output()
        .unwrap();
        let report: serde_json::Value = serde_json::from_str(&ok(&out, "cbclone")).unwrap();
        assert_eq!(server.table_fingerprints(db, &['r']), want, "{extra:?}");
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"].as_str().unwrap().contains("nokey"))
            .unwrap()["chunks"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(chunks("whole", &[]), 1);
    assert!(chunks("split", &["--split-tables-larger-than", "256k"]) >= 10);
}

/// The distribution rules choose DISTRIBUTED clauses, which a PostgreSQL target has none of:
/// refused there (exit 2, nothing done), applied on the MPP stand-in.
#[test]
fn distribution_rules() {
    let server = source();
    server.create_db("pg");
    for flags in [
        vec!["--default", "random"],
        vec!["--on-conflict", "replicated"],
        vec!["--policy", "/nonexistent.toml"],
    ] {
        let out = clone_cmd(&server, "src", "pg", &flags).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert!(err.contains("PostgreSQL"), "{flags:?}: {err}");
        assert_eq!(
            one(
                &server,
                "pg",
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
            ),
            "0",
            "{flags:?}: nothing restored"
        );
    }

    let Ok(admin) = std::env::var("CBTOOLS_TEST_MPP") else {
        eprintln!("SKIPPED (MPP part): CBTOOLS_TEST_MPP is not set");
        return;
    };
    let policy = server.scratch().join("policy.toml");
    std::fs::write(&policy, "[tables]\n\"public.t\" = \"replicated\"\n").unwrap();
    let db = "cbclone_flags_rules";
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("MPP coordinator");
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .unwrap();
    c.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    let out = common::cbclone(&server)
        .arg("--source")
        .arg(server.conn_string("src"))
        .arg("--target")
        .arg(format!("{admin} dbname={db}"))
        // The source's large object has no place on the MPP (cbclone refuses without -B).
        .args([
            "-O",
            "-x",
            "-B",
            "--json",
            "--default",
            "random",
            "--on-conflict",
            "fail",
        ])
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&out, "cbclone to MPP")).unwrap();
    let clause = |table: &str| {
        report["distribution"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["table"].as_str().unwrap().contains(table))
            .map(|d| d["clause"].as_str().unwrap_or("").to_string())
            .unwrap()
    };
    assert_eq!(clause("nokey"), "DISTRIBUTED RANDOMLY");
    assert_eq!(clause(".t"), "DISTRIBUTED REPLICATED");
    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"));
}

/// `--help`, `--version`, and command lines that cannot work (exit 2, nothing connected).
#[test]
fn help_version_and_usage_errors() {
    let cbclone = || Command::new(env!("CARGO_BIN_EXE_cbclone"));
    for flag in ["-?", "--help"] {
        let out = cbclone().arg(flag).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && help.contains("Usage: cbclone"),
            "{help}"
        );
        assert!(help.contains("--split-tables-larger-than"), "{help}");
    }
    let out = cbclone().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cbclone "));
    for (args, says) in [
        (vec!["--target", "dbname=x"], "--source"),
        (vec!["--source", "dbname=x"], "--target"),
        (
            vec!["--source", "x", "--target", "y", "-s", "-a"],
            "cannot be used with",
        ),
        (
            vec!["--source", "x", "--target", "y", "-j", "0"],
            "at least 1",
        ),
        (
            vec!["--source", "x", "--target", "y", "--verify=all"],
            "invalid value",
        ),
        (
            vec![
                "--source",
                "x",
                "--target",
                "y",
                "--split-tables-larger-than",
                "lots",
            ],
            "lots",
        ),
    ] {
        let out = cbclone().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
