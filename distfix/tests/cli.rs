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
