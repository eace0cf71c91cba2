//! cbdistfix's command line like the other tools' (issue 15): `-?`/`--help` is help, `-h` is
//! not (it is the host everywhere else) and says where a server goes instead, usage errors exit
//! 2, `--version` names the inflater.

use std::process::{Command, Output};

fn cbdistfix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cbdistfix"))
        .args(args)
        .output()
        .expect("running cbdistfix")
}

fn usage_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn question_mark_is_help_and_h_says_where_the_server_goes() {
    for flag in ["-?", "--help"] {
        let out = cbdistfix(&[flag]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{flag}: {help}");
        assert!(help.contains("Usage: cbdistfix"), "{help}");
        assert!(help.contains("-?, --help"), "{help}");
    }
    let e = usage_error(&cbdistfix(&["-h"]));
    assert!(e.contains("--stats"), "{e}");
    assert!(e.contains("-? or --help"), "{e}");
    let e = usage_error(&cbdistfix(&["dump.sql", "-d", "shop"]));
    assert!(e.contains("--stats"), "{e}");
    let e = usage_error(&cbdistfix(&["dump.sql", "-f", "out.sql"]));
    assert!(e.contains("-o FILE"), "{e}");
}

#[test]
fn usage_errors_exit_2() {
    let e = usage_error(&cbdistfix(&["dump.sql"]));
    assert!(e.contains("no output given"), "{e}");
    let e = usage_error(&cbdistfix(&["dump.sql", "--no-comments", "-o", "x.sql"]));
    assert!(
        !e.contains("similar argument exists: '--on-conflict'"),
        "{e}"
    );
}

#[test]
fn version_names_the_inflater() {
    let out = cbdistfix(&["--version"]);
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(
        v.starts_with(&format!(
            "cbdistfix {} (inflate: ",
            env!("CARGO_PKG_VERSION")
        )),
        "{v}"
    );
}

#[test]
fn a_missing_file_is_named_once_with_its_cause_once() {
    let out = cbdistfix(&["/nonexistent/pagila.dmp", "-o", "/tmp/never-written.sql"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert_eq!(
        e.trim(),
        "cbdistfix: error: /nonexistent/pagila.dmp: No such file or directory (os error 2)"
    );
}

/// pg_dump's and pg_restore's flags a DBA may try: usage errors naming what to do instead.
#[test]
fn server_and_restore_flags_name_the_alternative() {
    let cases: &[(&[&str], &str)] = &[
        (&["-p", "5432"], "--stats 'port=...'"),
        (&["--port", "5432"], "--stats 'port=...'"),
        (&["-U", "alice"], "--stats 'user=...'"),
        (&["--username", "alice"], "--stats 'user=...'"),
        (&["--host", "db1"], "--stats 'host=..."),
        (&["--dbname", "shop"], "--stats 'dbname=...'"),
        (&["--file", "out.sql"], "-o FILE"),
        (&["--no-comments"], "pg_restore --no-comments"),
        (&["-O"], "pg_restore -O"),
        (&["--no-owner"], "pg_restore -O"),
        (&["-x"], "pg_restore -x"),
        (&["--no-privileges"], "pg_restore -x"),
        (&["-c"], "pg_restore -c"),
        (&["--clean"], "pg_restore -c"),
    ];
    for (args, says) in cases {
        let e = usage_error(&cbdistfix(&[&["dump.sql", "-o", "x.sql"], *args].concat()));
        assert!(e.contains(says), "{args:?}: {e}");
        assert!(!e.contains("similar argument"), "{args:?}: {e}");
    }
}

/// `--force`: a DISTRIBUTED clause the dump already has is kept unless --force replaces it
/// with the rules' choice.
#[test]
fn force_replaces_existing_clauses() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.sql");
    std::fs::write(
        &input,
        "CREATE TABLE public.t (\n    id integer NOT NULL,\n    v text\n) DISTRIBUTED RANDOMLY;\n\
         ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n",
    )
    .unwrap();
    let clause = |extra: &[&str]| -> String {
        let out = cbdistfix(&[&[input.to_str().unwrap(), "-o", "-"], extra].concat());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .find(|l| l.contains("DISTRIBUTED"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    assert_eq!(clause(&[]), ") DISTRIBUTED RANDOMLY;");
    assert_eq!(clause(&["--force"]), ") DISTRIBUTED BY (id);");
}

/// `--target postgres` on an MPP script (no MPP server needed): what PostgreSQL lacks goes,
/// and each change is said on stderr.
#[test]
fn target_postgres_translates_an_mpp_script() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mpp.sql");
    std::fs::write(
        &input,
        "SET gp_default_storage_options = '';\n\
         SET default_table_access_method = ao_column;\n\
         CREATE TABLE public.ao (\n    id integer ENCODING (compresstype=zlib,compresslevel=1,blocksize=32768),\n    v text\n)\n\
         WITH (compresstype=zlib) DISTRIBUTED BY (id);\n\
         CREATE TABLE public.r (a int) DISTRIBUTED REPLICATED;\n",
    )
    .unwrap();
    let out = cbdistfix(&[input.to_str().unwrap(), "--target", "postgres", "-o", "-"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        text.contains("CREATE TABLE public.ao (\n    id integer,\n    v text\n);"),
        "{text}"
    );
    assert!(text.contains("CREATE TABLE public.r (a int);"), "{text}");
    for gone in [
        "DISTRIBUTED",
        "ENCODING",
        "compresstype",
        "gp_default",
        "ao_column",
    ] {
        assert!(!text.contains(gone), "{gone}: {text}");
    }
    assert!(err.contains("4 statements translated or left out"), "{err}");
}
