//! cbrestore's flags, each by what it does to the target (issue 14: every flag run by a test):
//! pg_restore's selection and output flags on an archive (objects present or absent, rows,
//! owners, grants, comments, the SQL `-f` writes), their refusal for plain scripts and backup
//! sets, gprestore's flags on a set and their refusal with an archive, the connection flags,
//! and usage errors exiting 2. One server per test; the databases restored into are many.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::TestServer;

const SOURCE: &str = r#"
CREATE ROLE app_owner;
CREATE ROLE reader;
CREATE SCHEMA s1 AUTHORIZATION app_owner;
CREATE SCHEMA s2;
CREATE TABLE s1.a (id int PRIMARY KEY, v text);
ALTER TABLE s1.a OWNER TO app_owner;
INSERT INTO s1.a SELECT g, 'v' || g FROM generate_series(1, 100) g;
CREATE INDEX a_v ON s1.a (v);
COMMENT ON TABLE s1.a IS 'table a';
GRANT SELECT ON s1.a TO reader;
CREATE TABLE s1.b (id int, a_id int REFERENCES s1.a (id));
INSERT INTO s1.b SELECT g, g FROM generate_series(1, 50) g;
CREATE TABLE s2.c (id int);
INSERT INTO s2.c SELECT generate_series(1, 10);
CREATE FUNCTION s1.f(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
CREATE FUNCTION s1.up() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN NEW.v := upper(NEW.v); RETURN NEW; END';
CREATE TRIGGER a_up BEFORE INSERT ON s1.a FOR EACH ROW EXECUTE FUNCTION s1.up();
CREATE SEQUENCE s1.seq;
SELECT setval('s1.seq', 77);
CREATE PUBLICATION pub FOR TABLE s1.a;
"#;

fn cbrestore(server: &TestServer, args: &[&str]) -> Output {
    server
        .tool(env!("CARGO_BIN_EXE_cbrestore"))
        .args(args)
        .output()
        .expect("running cbrestore")
}

/// `cbrestore -d db args...`, which must succeed; its stdout.
fn restore(server: &TestServer, db: &str, args: &[&str]) -> String {
    let out = cbrestore(server, &[&["-d", db], args].concat());
    testkit::success(&out, &format!("cbrestore {args:?}"))
}

/// A fresh database with the source's roles' schemas, as pg_restore -n/-t expect them.
fn target(server: &TestServer, db: &str) {
    server.create_db(db);
    server.psql(db, "CREATE SCHEMA s1; CREATE SCHEMA s2;");
}

fn exit_code(out: &Output, code: i32, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    err
}

/// Row count of every user table in `db` (schema.table).
fn tables(server: &TestServer, db: &str) -> BTreeMap<String, i64> {
    server
        .table_fingerprints(db, &['r'])
        .into_iter()
        .map(|(t, f)| (t, f.split(':').next().unwrap().parse().unwrap()))
        .collect()
}

fn query_i64(server: &TestServer, db: &str, sql: &str) -> i64 {
    server.client(db).query_one(sql, &[]).unwrap().get(0)
}

fn exists(server: &TestServer, db: &str, sql: &str) -> bool {
    query_i64(server, db, &format!("SELECT count(*) FROM ({sql}) x")) > 0
}

fn has_index(server: &TestServer, db: &str) -> bool {
    exists(
        server,
        db,
        "SELECT 1 FROM pg_indexes WHERE indexname = 'a_v'",
    )
}

fn has_comment(server: &TestServer, db: &str) -> bool {
    exists(
        server,
        db,
        "SELECT 1 FROM pg_description WHERE description = 'table a'",
    )
}

fn has_grant(server: &TestServer, db: &str) -> bool {
    exists(
        server,
        db,
        "SELECT 1 FROM information_schema.role_table_grants WHERE grantee = 'reader'",
    )
}

fn owner_of_a(server: &TestServer, db: &str) -> String {
    server
        .client(db)
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE schemaname = 's1' AND tablename = 'a'",
            &[],
        )
        .unwrap()
        .get(0)
}

fn source() -> (TestServer, PathBuf) {
    let server = TestServer::start();
    server.create_db("src");
    server.psql("src", SOURCE);
    let archive = server.scratch().join("src.dump");
    pg_dump(&server, "src", &["-F", "c"], &archive);
    (server, archive)
}

fn pg_dump(server: &TestServer, db: &str, args: &[&str], to: &Path) {
    server.pg_dump_to(db, args, to);
}

/// `-t -n -N -I -P -T`, `--exclude-table-name`, `--section`, `-L`, `-l` with a selection and
/// `--strict-names`: what arrives in the target is what pg_restore restores.
#[test]
fn selection_flags_restore_what_pg_restore_would() {
    let (server, archive) = source();
    let a = archive.to_str().unwrap();

    // -t: the table, its data, and (as pg_restore) its comment and grant, nothing else.
    target(&server, "t");
    restore(&server, "t", &["-t", "a", a]);
    assert_eq!(tables(&server, "t"), BTreeMap::from([("s1.a".into(), 100)]));
    assert!(has_comment(&server, "t") && has_grant(&server, "t"));
    assert!(!has_index(&server, "t"), "-t restores no index");
    // -I, -P and -T/--trigger add the named index, functions and trigger to it.
    restore(&server, "t", &["-I", "a_v", "--index", "a_v", a]);
    assert!(has_index(&server, "t"));
    restore(&server, "t", &["-P", "up()", "--function", "f(integer)", a]);
    assert_eq!(
        query_i64(
            &server,
            "t",
            "SELECT count(*) FROM pg_proc WHERE proname IN ('up', 'f')"
        ),
        2
    );
    // A trigger's tag (what -T matches, as in pg_restore) is "table trigger".
    restore(&server, "t", &["-T", "a a_up", a]);
    assert!(exists(
        &server,
        "t",
        "SELECT 1 FROM pg_trigger WHERE tgname = 'a_up'"
    ));
    restore(&server, "t", &["--trigger", "a a_up", "--clean", a]);
    assert!(exists(
        &server,
        "t",
        "SELECT 1 FROM pg_trigger WHERE tgname = 'a_up'"
    ));

    // -n / --schema: that schema's objects only; -N / --exclude-schema(-name): all but.
    target(&server, "n");
    restore(&server, "n", &["-n", "s2", a]);
    assert_eq!(tables(&server, "n"), BTreeMap::from([("s2.c".into(), 10)]));
    target(&server, "n2");
    restore(&server, "n2", &["--schema", "s1", "-N", "s1", a]);
    assert!(tables(&server, "n2").is_empty());
    for (db, flag) in [
        ("x1", "-N"),
        ("x2", "--exclude-schema"),
        ("x3", "--exclude-schema-name"),
    ] {
        server.create_db(db);
        restore(&server, db, &[flag, "s1", a]);
        assert_eq!(
            tables(&server, db),
            BTreeMap::from([("s2.c".into(), 10)]),
            "{flag}"
        );
    }
    // --exclude-table-name (pg_restore has none): everything but that table.
    server.create_db("xt");
    restore(&server, "xt", &["--exclude-table-name", "b", a]);
    assert_eq!(
        tables(&server, "xt"),
        BTreeMap::from([("s1.a".into(), 100), ("s2.c".into(), 10)])
    );

    // --section: pre-data (tables, no rows, no index), then data, then post-data.
    server.create_db("sec");
    restore(&server, "sec", &["--section", "pre-data", a]);
    assert_eq!(tables(&server, "sec").values().sum::<i64>(), 0);
    assert!(!has_index(&server, "sec"));
    restore(&server, "sec", &["--section=data", a]);
    assert_eq!(tables(&server, "sec").values().sum::<i64>(), 160);
    assert!(!has_index(&server, "sec"));
    restore(&server, "sec", &["--section", "post-data", a]);
    assert!(has_index(&server, "sec"));
    assert_eq!(server.schema_dump("sec"), server.schema_dump("src"));

    // -l lists what the selection restores, entry for entry what pg_restore -l lists.
    let entries = |out: String| -> Vec<String> {
        out.lines()
            .filter(|l| !l.starts_with(';') && !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    for flags in [
        vec![],
        vec!["-t", "a"],
        vec!["-n", "s2"],
        vec!["-N", "s1"],
        vec!["-I", "a_v", "-P", "f(integer)", "-T", "a a_up"],
        vec!["--section", "pre-data", "--section", "post-data"],
        vec!["-s"],
        vec!["-a"],
        vec!["-x", "--no-comments", "--no-publications"],
        vec!["-C"],
    ] {
        let ours = restore(&server, "unused", &[&["-l"], &flags[..], &[a]].concat());
        let out = server
            .command("pg_restore")
            .arg("-l")
            .args(&flags)
            .arg(a)
            .output()
            .unwrap();
        let theirs = testkit::success(&out, "pg_restore -l");
        assert_eq!(entries(ours), entries(theirs), "-l {flags:?}");
    }

    // -l honours the selection; its listing, edited, is -L's input.
    let listing = restore(&server, "unused", &["-l", "-n", "s2", a]);
    assert!(listing.contains(" TABLE s2 c "), "{listing}");
    assert!(!listing.contains(" s1 "), "{listing}");
    let full = restore(&server, "unused", &["--list", a]);
    let edited: String = full
        .lines()
        .map(|l| {
            if l.contains(" s2 c ") || l.contains("COMMENT s1 TABLE a") {
                format!(";{l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let list = server.scratch().join("edited.list");
    std::fs::write(&list, edited).unwrap();
    server.create_db("l");
    restore(&server, "l", &["-L", list.to_str().unwrap(), a]);
    assert_eq!(
        tables(&server, "l"),
        BTreeMap::from([("s1.a".into(), 100), ("s1.b".into(), 50)])
    );
    assert!(!has_comment(&server, "l") && has_grant(&server, "l") && has_index(&server, "l"));
    std::fs::write(&list, "99999; 0 0 TABLE s9 nothing x\n").unwrap();
    let out = cbrestore(
        &server,
        &["-d", "l", "--use-list", list.to_str().unwrap(), a],
    );
    let err = exit_code(&out, 1, "-L with an unknown id");
    assert!(err.contains("could not find entry for ID 99999"), "{err}");

    // --strict-names: a name that matches nothing is an error, as pg_restore's.
    let out = cbrestore(&server, &["-l", "--strict-names", "-t", "nosuch", a]);
    let err = exit_code(&out, 1, "--strict-names");
    assert!(err.contains("table \"nosuch\" not found"), "{err}");
    let out = cbrestore(&server, &["-l", "--strict-names", "-n", "s9", a]);
    assert!(exit_code(&out, 1, "--strict-names -n").contains("schema \"s9\" not found"));
    restore(
        &server,
        "unused",
        &["-l", "--strict-names", "-t", "a", "-n", "s1", a],
    );
}

/// `-a -s --disable-triggers -O -x --role --no-comments --no-publications
/// --no-subscriptions --no-security-labels -c -C -1 -e --on-error-continue --analyze -F`.
#[test]
fn output_flags_change_the_target_as_pg_restores_do() {
    let (server, archive) = source();
    let a = archive.to_str().unwrap();

    // -s then -a: the source exactly; the trigger fires on the data (upper-cased values)
    // unless --disable-triggers.
    server.create_db("sa");
    restore(&server, "sa", &["-s", a]);
    assert_eq!(tables(&server, "sa").values().sum::<i64>(), 0);
    assert!(has_index(&server, "sa"));
    restore(&server, "sa", &["--data-only", "--disable-triggers", a]);
    assert_eq!(
        server.table_fingerprints("sa", &['r']),
        server.table_fingerprints("src", &['r'])
    );
    let upper = "SELECT count(*) FROM s1.a WHERE v = upper(v)";
    assert_eq!(query_i64(&server, "sa", upper), 0);
    server.create_db("sa2");
    restore(&server, "sa2", &["--schema-only", a]);
    restore(&server, "sa2", &["-a", a]);
    assert_eq!(query_i64(&server, "sa2", upper), 100, "the trigger fired");

    // -O / --no-owner and -x / --no-privileges; --role: SET ROLE before restoring, so the
    // objects belong to that role.
    server.create_db("own");
    restore(&server, "own", &[a]);
    assert_eq!(owner_of_a(&server, "own"), "app_owner");
    assert!(has_grant(&server, "own"));
    for (db, flags) in [
        ("o1", ["-O", "-x"]),
        ("o2", ["--no-owner", "--no-privileges"]),
    ] {
        server.create_db(db);
        restore(&server, db, &[flags[0], flags[1], a]);
        assert_eq!(owner_of_a(&server, db), "postgres", "{flags:?}");
        assert!(!has_grant(&server, db), "{flags:?}");
    }
    server.create_db("role");
    server.psql("role", "GRANT CREATE ON DATABASE role TO app_owner");
    restore(
        &server,
        "role",
        &["--role", "app_owner", "-O", "--no-subscriptions", a],
    );
    assert_eq!(owner_of_a(&server, "role"), "app_owner");

    // --no-comments, --no-publications.
    server.create_db("nc");
    restore(&server, "nc", &["--no-comments", "--no-publications", a]);
    assert!(!has_comment(&server, "nc"));
    assert!(!exists(&server, "nc", "SELECT 1 FROM pg_publication"));
    assert!(exists(
        &server,
        "own",
        "SELECT 1 FROM pg_publication WHERE pubname = 'pub'"
    ));
    assert!(has_comment(&server, "own"));

    // -C: the archive's database is created (-d names where to connect first).
    server.create_db("made");
    server.psql(
        "made",
        "CREATE TABLE m (a int); INSERT INTO m VALUES (1), (2);",
    );
    let made = server.scratch().join("made.dump");
    pg_dump(&server, "made", &["-F", "c"], &made);
    server.psql("postgres", "DROP DATABASE made");
    restore(&server, "postgres", &["-C", made.to_str().unwrap()]);
    assert_eq!(
        tables(&server, "made"),
        BTreeMap::from([("public.m".into(), 2)])
    );
    server.psql("postgres", "DROP DATABASE made");
    restore(&server, "postgres", &["--create", made.to_str().unwrap()]);
    assert_eq!(
        tables(&server, "made"),
        BTreeMap::from([("public.m".into(), 2)])
    );
    // -C -c: the database is dropped and made again, as pg_restore does (not its objects one
    // by one in the new database): a table added since goes with it.
    server.psql(
        "made",
        "CREATE TABLE extra (a int); INSERT INTO m VALUES (3);",
    );
    restore(&server, "postgres", &["-C", "-c", made.to_str().unwrap()]);
    assert_eq!(
        tables(&server, "made"),
        BTreeMap::from([("public.m".into(), 2)])
    );
    // Not there: without --if-exists that is an error naming the entry and the way on...
    server.psql("postgres", "DROP DATABASE made");
    let out = cbrestore(
        &server,
        &["-d", "postgres", "-C", "-c", made.to_str().unwrap()],
    );
    let err = exit_code(&out, 1, "-C -c of a missing database");
    assert!(
        err.contains("DATABASE made") && err.contains("--if-exists"),
        "{err}"
    );
    // ...and with it, the database is simply made.
    let args = ["-C", "-c", "--if-exists", made.to_str().unwrap()];
    restore(&server, "postgres", &args);
    assert_eq!(
        tables(&server, "made"),
        BTreeMap::from([("public.m".into(), 2)])
    );

    // -c / --clean: restoring again over the same objects replaces them.
    restore(&server, "own", &["-c", "--no-subscriptions", a]);
    restore(
        &server,
        "own",
        &["--clean", "--if-exists", "--no-subscriptions", a],
    );
    assert_eq!(
        server.table_fingerprints("own", &['r']),
        server.table_fingerprints("src", &['r'])
    );

    // A target where s2.c exists already: -1 leaves nothing behind; without it (and with -e,
    // the default) the restore stops at that entry with what came before in place;
    // --on-error-continue restores the rest and exits 1.
    let conflict = |db: &str| {
        server.create_db(db);
        server.psql(db, "CREATE SCHEMA s2; CREATE TABLE s2.c (id int);");
    };
    conflict("one");
    for flag in ["-1", "--single-transaction"] {
        let out = cbrestore(&server, &["-d", "one", flag, a]);
        let err = exit_code(&out, 1, flag);
        assert!(err.contains("already exists"), "{err}");
        assert!(!exists(
            &server,
            "one",
            "SELECT 1 FROM pg_tables WHERE schemaname = 's1'"
        ));
    }
    conflict("e");
    let out = cbrestore(&server, &["-d", "e", "-e", a]);
    exit_code(&out, 1, "-e");
    assert!(exists(
        &server,
        "e",
        "SELECT 1 FROM pg_namespace WHERE nspname = 's1'"
    ));
    assert!(!exists(
        &server,
        "e",
        "SELECT 1 FROM pg_indexes WHERE indexname = 'a_v'"
    ));
    let out = cbrestore(
        &server,
        &["-d", "e", "--exit-on-error", "--on-error-continue", a],
    );
    exit_code(&out, 2, "-e with --on-error-continue");
    conflict("cont");
    let out = cbrestore(&server, &["-d", "cont", "--on-error-continue", a]);
    exit_code(&out, 1, "--on-error-continue");
    assert!(has_index(&server, "cont"));

    // --analyze: the restored tables are analyzed (by us, not autovacuum).
    let analyzed = "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL";
    assert_eq!(query_i64(&server, "own", analyzed), 0);
    server.create_db("an");
    restore(&server, "an", &["--analyze", a]);
    assert_eq!(query_i64(&server, "an", analyzed), 3);

    // -F: the format given must be the archive's.
    server.create_db("f");
    restore(&server, "f", &["--format=custom", a]);
    restore(&server, "unused", &["-l", "-F", "c", a]);
    let out = cbrestore(&server, &["-d", "f", "-F", "d", a]);
    assert!(exit_code(&out, 1, "-F d").contains("is not a directory archive"));
    let out = cbrestore(&server, &["-d", "f", "-F", "t", a]);
    assert!(exit_code(&out, 1, "-F t").contains("tar -xf"));
}

/// pg_restore's flags in the SQL `-f` writes (no server needed): `--no-tablespaces`,
/// `--no-table-access-method`, `--no-security-labels`, `--no-subscriptions`, `-1`, the
/// distribution rules (`--distribute --default --policy`, `--strip-distribution`).
#[test]
fn script_output_flags() {
    let (server, _) = source();
    server.psql(
        "src",
        "CREATE SUBSCRIPTION sub CONNECTION 'dbname=nowhere' PUBLICATION pub \
           WITH (connect = false, slot_name = NONE, enabled = false);",
    );
    let dir = server.scratch().join("src.dir");
    pg_dump(&server, "src", &["-F", "d"], &dir);
    add_security_label(&dir);
    let d = dir.to_str().unwrap();
    let script = |args: &[&str]| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_cbrestore"))
            .args(["-f", "-"])
            .args(args)
            .arg(d)
            .output()
            .unwrap();
        testkit::success(&out, &format!("cbrestore -f - {args:?}"))
    };
    let all = script(&[]);
    for s in [
        "SET default_tablespace = '';",
        "SET default_table_access_method = ",
        "SECURITY LABEL FOR dummy ON TABLE s1.a",
        "CREATE SUBSCRIPTION sub",
    ] {
        assert!(all.contains(s), "{s} missing from the script");
    }
    assert!(!all.contains("BEGIN;"));
    let s = script(&["--no-tablespaces", "--no-table-access-method"]);
    assert!(!s.contains("default_tablespace") && !s.contains("default_table_access_method"));
    let s = script(&["--no-security-labels", "--no-subscriptions"]);
    assert!(!s.contains("SECURITY LABEL") && !s.contains("SUBSCRIPTION"));
    assert!(s.contains("CREATE TABLE s1.a"));
    let s = script(&["-1"]);
    assert!(s.contains("BEGIN;\n") && s.contains("COMMIT;\n"), "-1");

    // The security label needs a provider this server lacks: restoring fails on it unless
    // --no-security-labels; --no-subscriptions leaves the subscription out.
    server.create_db("sl");
    let out = cbrestore(&server, &["-d", "sl", "--no-subscriptions", d]);
    assert!(exit_code(&out, 1, "a security label").contains("dummy"));
    server.create_db("sl2");
    restore(
        &server,
        "sl2",
        &["--no-security-labels", "--no-subscriptions", d],
    );
    let subscriptions = "SELECT 1 FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid \
                         WHERE d.datname = current_database()";
    assert!(!exists(&server, "sl2", subscriptions));
    assert_eq!(tables(&server, "sl2").values().sum::<i64>(), 160);

    // --distribute with --default random / --policy: the clauses in the script;
    // --strip-distribution takes them out again.
    let s = script(&["--distribute", "--default", "random"]);
    assert!(s.contains("DISTRIBUTED RANDOMLY"), "--default random");
    assert!(s.contains("DISTRIBUTED BY (id)"), "s1.a has a key");
    let policy = server.scratch().join("policy.toml");
    std::fs::write(&policy, "[tables]\n\"s2.c\" = \"replicated\"\n").unwrap();
    let s = script(&["--distribute", "--policy", policy.to_str().unwrap()]);
    assert!(s.contains("DISTRIBUTED REPLICATED"), "--policy");
    let distributed = server.scratch().join("distributed.sql");
    std::fs::write(&distributed, &s).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["--strip-distribution", "-f", "-"])
        .arg(&distributed)
        .output()
        .unwrap();
    let stripped = testkit::success(&out, "--strip-distribution");
    assert!(stripped.contains("CREATE TABLE s2.c") && !stripped.contains("DISTRIBUTED"));
}

/// A `SECURITY LABEL` entry for `s1.a` added to a directory archive's TOC (no server here has
/// a label provider, so pg_dump cannot make one).
fn add_security_label(dir: &Path) {
    let opened = archive::Archive::open(dir)
        .unwrap()
        .expect("a directory archive");
    let header = opened.header().clone();
    let mut entries = opened.entries().to_vec();
    let table = entries
        .iter()
        .find(|e| e.is("TABLE") && e.tag() == "a")
        .unwrap()
        .clone();
    let at = entries
        .iter()
        .position(|e| e.dump_id == table.dump_id)
        .unwrap();
    let b = |s: &str| Some(s.as_bytes().to_vec());
    let label = archive::TocEntry {
        dump_id: entries.iter().map(|e| e.dump_id).max().unwrap() + 1,
        had_dumper: 0,
        table_oid: b("0"),
        oid: b("0"),
        tag: b("TABLE a"),
        desc: b("SECURITY LABEL"),
        section: archive::toc::SECTION_NONE as i64,
        defn: b("SECURITY LABEL FOR dummy ON TABLE s1.a IS 'secret';\n"),
        drop_stmt: b(""),
        copy_stmt: None,
        namespace: b("s1"),
        tablespace: None,
        tableam: None,
        relkind: 0,
        owner: table.owner.clone(),
        with_oids: None,
        deps: vec![table.dump_id.to_string().into_bytes()],
        extra: archive::toc::Extra::File(None),
    };
    entries.insert(at + 1, label);
    archive::DirectoryArchive::write_toc(dir, &header, &entries).unwrap();
}

/// Flags that do not apply to the input are usage errors naming the alternative: gprestore's
/// with an archive, pg_restore's archive-only ones with a script or a set; pg_restore's flags
/// cbrestore does not take; `-?`, `--help` and `--version`.
#[test]
fn flags_that_do_not_apply_are_refused() {
    let (server, archive) = source();
    let a = archive.to_str().unwrap();
    let usage = |args: &[&str]| -> String {
        let out = cbrestore(&server, args);
        exit_code(&out, 2, &format!("{args:?}"))
    };
    let list = server.scratch().join("names.txt");
    std::fs::write(&list, "s1.a\n").unwrap();
    let l = list.to_str().unwrap();
    for (flags, named) in [
        (vec!["--include-table", "s1.a"], "--include-table"),
        (vec!["--include-table-file", l], "--include-table"),
        (vec!["--exclude-table", "s1.a"], "--exclude-table"),
        (vec!["--exclude-table-file", l], "--exclude-table"),
        (vec!["--include-schema", "s1"], "--include-schema"),
        (vec!["--include-schema-file", l], "--include-schema"),
        (vec!["--exclude-schema-file", l], "--exclude-schema-file"),
        (vec!["--create-db"], "--create-db"),
        (vec!["--truncate-table"], "--truncate-table"),
        (vec!["--with-globals"], "--with-globals"),
        (vec!["--timestamp", "20240102030405"], "--timestamp"),
        (vec!["--to-sql", "x.sql"], "--to-sql"),
        (vec!["--on-segment"], "--on-segment"),
        (vec!["--target", "postgres"], "--target"),
    ] {
        let err = usage(&[&["-d", "x"], &flags[..], &[a]].concat());
        assert!(
            err.contains(&format!("{named} is a gprestore flag for backup sets")),
            "{flags:?}: {err}"
        );
    }
    // pg_restore's archive-only flags with a plain script.
    let plain = server.scratch().join("src.sql");
    pg_dump(&server, "src", &[], &plain);
    let p = plain.to_str().unwrap();
    for flags in [
        vec!["-c"],
        vec!["-C"],
        vec!["-L", l],
        vec!["--section", "data"],
        vec!["--strict-names"],
        vec!["--no-tablespaces"],
        vec!["--no-table-access-method"],
        vec!["--disable-triggers"],
    ] {
        let err = usage(&[&["-d", "x"], &flags[..], &[p]].concat());
        assert!(
            err.contains("need a custom or directory archive"),
            "{flags:?}: {err}"
        );
    }
    let out = cbrestore(&server, &["-d", "x", "-F", "c", p]);
    assert!(exit_code(&out, 1, "-F c on a script").contains("plain SQL script"));
    // ... and with a backup set.
    let set = server.scratch().join("set");
    write_set(&server, &set);
    let s = set.to_str().unwrap();
    for (flags, named) in [
        (vec!["-I", "i"], "-I/-P/-T"),
        (vec!["-P", "f()"], "-I/-P/-T"),
        (vec!["-T", "t"], "-I/-P/-T"),
        (vec!["--exclude-table-name", "a"], "--exclude-table-name"),
        (vec!["-L", l], "-L/--use-list"),
        (vec!["--section", "data"], "--section"),
        (vec!["--strict-names"], "--strict-names"),
        (vec!["-F", "d"], "-F/--format"),
        (vec!["--no-comments"], "--no-comments"),
        (vec!["--disable-triggers"], "--disable-triggers"),
        (vec!["-c"], "-c/--clean"),
        (vec!["-C"], "-C/--create"),
        (vec!["-1"], "-1/--single-transaction"),
        (vec!["--analyze"], "--analyze"),
        (vec!["-l"], "-l/--list"),
        (vec!["-f", "x.sql"], "-f/--file"),
        (vec!["--distribute"], "--distribute"),
    ] {
        let err = usage(&[&["-d", "x"], &flags[..], &[s]].concat());
        assert!(
            err.contains(named) && err.contains("with a gpbackup backup set use"),
            "{flags:?}: {err}"
        );
    }
    // pg_restore's flags cbrestore does not take, and combinations that cannot work.
    for (flags, says) in [
        (vec!["-S", "postgres"], "connect as the superuser"),
        (
            vec!["--use-set-session-authorization"],
            "ALTER ... OWNER TO",
        ),
        (
            vec!["--no-data-for-failed-tables"],
            "pg_restore --no-data-for-failed-tables",
        ),
        (vec!["--enable-row-security"], "row_security off"),
        (vec!["--transaction-size", "100"], "use -1"),
        (vec!["--filter", "f.txt"], "-L"),
        (vec!["--no-statistics"], "pg_restore --no-statistics"),
        (vec!["-j", "0"], "at least 1"),
        (vec!["--if-exists"], "--clean"),
        (vec!["--section", "data", "-a"], "cannot be used with"),
        (vec!["--default", "random"], "need --distribute"),
        (
            vec!["--distribute", "--strip-distribution"],
            "cannot be used with",
        ),
        (
            vec!["--state-dir", "d", "--state-file", "f"],
            "cannot be used with",
        ),
    ] {
        let err = usage(&[&["-d", "x"], &flags[..], &[a]].concat());
        assert!(err.contains(says), "{flags:?}: {err}");
        assert!(!err.contains("similar argument"), "{flags:?}: {err}");
    }
    let err = usage(&[a]);
    assert!(err.contains("one of -d/--dbname and -f/--file"), "{err}");
    let err = usage(&["-d", "x", "-1", "-j", "2", a]);
    assert!(err.contains("-j"), "{err}");

    for flag in ["-?", "--help"] {
        let out = cbrestore(&server, &[flag]);
        let help = testkit::success(&out, flag);
        assert!(
            help.contains("Usage: cbrestore") && help.contains("--use-list"),
            "{help}"
        );
        assert!(
            !help.contains("--transaction-size"),
            "refused flags stay out of help"
        );
    }
    let out = cbrestore(&server, &["--version"]);
    let version = testkit::success(&out, "--version");
    assert!(version.starts_with("cbrestore "), "{version}");
}

fn write_set(server: &TestServer, root: &Path) {
    let mut client = server.client("src");
    let pg_dump = || {
        let mut c = server.command("pg_dump");
        c.args(["-d", "src"]);
        c
    };
    testkit::gpset::write_backup_set(
        &mut client,
        &pg_dump,
        root,
        &gpbackup::writer::WriterOptions {
            segments: 2,
            ..Default::default()
        },
    )
    .unwrap();
}

/// gprestore's selection flags on a backup set: `--include-schema(-file)`,
/// `--exclude-schema-file`, `--exclude-table(-file)`, `-n -N -t` (the same meanings), each by
/// the tables restored.
#[test]
fn gprestore_selection_on_a_set() {
    let (server, _) = source();
    // A publication of an excluded table is still restored from a set (and fails): the set
    // here has none (flags.md).
    server.psql("src", "DROP PUBLICATION pub");
    let set = server.scratch().join("set");
    write_set(&server, &set);
    let s = set.to_str().unwrap();
    let file = |name: &str, text: &str| -> String {
        let p = server.scratch().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let schemas = file("schemas.txt", "# one per line\ns2\n");
    let tables_file = file("tables.txt", "s1.b\n");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["--include-schema", "s2"], vec!["s2.c"]),
        (vec!["--include-schema-file", &schemas], vec!["s2.c"]),
        (vec!["-n", "s2"], vec!["s2.c"]),
        (
            vec!["--exclude-schema-file", &schemas],
            vec!["s1.a", "s1.b"],
        ),
        (vec!["-N", "s1"], vec!["s2.c"]),
        (
            vec![
                "--exclude-table",
                "s1.a",
                "--exclude-table-file",
                &tables_file,
            ],
            vec!["s2.c"],
        ),
        (vec!["-t", "s2.c"], vec!["s2.c"]),
    ];
    for (i, (flags, want)) in cases.into_iter().enumerate() {
        let db = format!("g{i}");
        restore(&server, &db, &[&["--create-db"], &flags[..], &[s]].concat());
        let got = tables(&server, &db);
        assert_eq!(got.keys().collect::<Vec<_>>(), want, "{flags:?}");
        let src = tables(&server, "src");
        for (t, n) in &got {
            assert_eq!(src[t], *n, "{flags:?}: {t}");
        }
    }
}

/// A server that wants a password from `alice` over TCP (everything else trusted).
fn password_server() -> (TestServer, PathBuf) {
    let (server, archive) = source();
    server.psql(
        "postgres",
        "SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE alice LOGIN SUPERUSER PASSWORD 'sec:ret';",
    );
    server.set_hba(
        "local all all trust\n\
         host all alice 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n",
    );
    (server, archive)
}

/// `-h -p -U -d` (long forms too) over PG* variables that point elsewhere; `-w` fails at once
/// on a terminal where the password would be asked for; `-W` asks on the terminal first.
#[test]
fn connection_flags() {
    let (server, archive) = password_server();
    let a = archive.to_str().unwrap();
    let port = server.port().to_string();
    let tool = |args: &[&str]| {
        let mut c = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
        c.env("PGHOST", "/nonexistent")
            .env("PGPORT", "1")
            .env("PGUSER", "nobody")
            .args(args)
            .arg(a);
        c
    };
    server.create_db("w");
    let (out, terminal) = testkit::tty::run_on_tty(
        tool(&[
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "alice",
            "-d",
            "w",
            "-w",
        ]),
        None,
    );
    let err = exit_code(&out, 1, "-w without a password");
    assert!(err.contains("password") && err.contains("alice"), "{err}");
    assert!(!terminal.contains("Password"), "{terminal}");
    assert!(tables(&server, "w").is_empty());

    let long = [
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--username",
        "alice",
        "--dbname",
        "w",
    ];
    for flag in ["-W", "--password"] {
        let (out, terminal) = testkit::tty::run_on_tty(
            tool(&[&long[..], &[flag, "-c", "--if-exists"]].concat()),
            Some("sec:ret"),
        );
        testkit::success(&out, flag);
        assert!(terminal.contains("Password: "), "{flag}: {terminal}");
        assert_eq!(tables(&server, "w").values().sum::<i64>(), 160, "{flag}");
    }
    // --no-password with the password in the environment connects.
    let mut c = tool(&[&long[..], &["--no-password", "-c"]].concat());
    let out = c.env("PGPASSWORD", "sec:ret").output().unwrap();
    testkit::success(&out, "--no-password with PGPASSWORD");
}

/// Without `-W`, a server that asks for a password gets one prompt for the whole run, as with
/// pg_restore: the workers of `-j 3` (and the leader) use the password typed once.
#[test]
fn one_prompt_for_every_worker() {
    let (server, archive) = password_server();
    server.create_db("p");
    let port = server.port().to_string();
    let mut c = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
    c.env_remove("PGPASSWORD")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "alice",
            "-d",
            "p",
            "-j",
            "3",
        ])
        .arg(&archive);
    let (out, terminal, prompts) = testkit::tty::run_on_tty_answering(c, "sec:ret");
    testkit::success(&out, "cbrestore -j 3 with a prompted password");
    assert_eq!(prompts, 1, "{terminal}");
    assert_eq!(tables(&server, "p").values().sum::<i64>(), 160);
}

/// An input that is not there: exit 1, its path said once (it was said twice).
#[test]
fn a_missing_input_is_named_once() {
    let out = Command::new(env!("CARGO_BIN_EXE_cbrestore"))
        .args(["-d", "x", "/nonexistent/x.dump"])
        .output()
        .unwrap();
    let err = exit_code(&out, 1, "a missing input");
    assert_eq!(err.matches("/nonexistent/x.dump").count(), 1, "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
}

/// `--strip-distribution` on a plain script of the Greenplum-7 fork's pg_dump, which writes a
/// COPY for a partitioned parent as well as for its partitions: the rows are loaded once (they
/// were loaded twice: the parent's COPY routes them into the partitions, whose own COPYs follow).
/// The stand-in's real dump is checked by distfix/tests/mpp_translate.rs.
#[test]
fn an_mpp_scripts_partitioned_parent_rows_load_once() {
    let server = TestServer::start();
    let script = server.scratch().join("mpp.sql");
    std::fs::write(
        &script,
        "SET search_path = public, pg_catalog;\n\
         CREATE TABLE public.pt (id integer, v text) PARTITION BY RANGE (id) DISTRIBUTED BY (id);\n\
         CREATE TABLE public.pt_1 (id integer, v text) DISTRIBUTED BY (id);\n\
         CREATE TABLE public.pt_2 (id integer, v text) DISTRIBUTED BY (id);\n\
         ALTER TABLE ONLY public.pt ATTACH PARTITION public.pt_1 FOR VALUES FROM (0) TO (10);\n\
         ALTER TABLE ONLY public.pt ATTACH PARTITION public.pt_2 FOR VALUES FROM (10) TO (20);\n\
         COPY public.pt (id, v) FROM stdin;\n1\ta\n2\tb\n15\tc\n\\.\n\n\
         COPY public.pt_1 (id, v) FROM stdin;\n1\ta\n2\tb\n\\.\n\n\
         COPY public.pt_2 (id, v) FROM stdin;\n15\tc\n\\.\n\n",
    )
    .unwrap();
    let path = script.to_str().unwrap();
    // Without the translation the target's own rules apply: the clauses fail on PostgreSQL.
    server.create_db("raw");
    let out = cbrestore(&server, &["-d", "raw", path]);
    exit_code(&out, 1, "a script with DISTRIBUTED clauses");
    server.create_db("once");
    restore(&server, "once", &["--strip-distribution", path]);
    let counts = tables(&server, "once");
    assert_eq!(counts.get("public.pt_1"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("public.pt_2"), Some(&1), "{counts:?}");
    assert_eq!(
        query_i64(&server, "once", "SELECT count(*) FROM public.pt"),
        3
    );
}
