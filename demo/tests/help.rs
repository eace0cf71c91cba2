//! `cbtools-demo --help` prints help like any other binary instead of running the demo.

use std::process::Command;

#[test]
fn help_prints_usage_and_runs_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_cbtools-demo"))
        .arg("--help")
        .output()
        .expect("running cbtools-demo --help");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Usage: cbtools-demo"), "{stdout}");
    assert!(!stdout.contains("== cbtools demo =="), "{stdout}");
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_cbtools-demo"))
        .arg("--frobnicate")
        .output()
        .expect("running cbtools-demo --frobnicate");
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("== cbtools demo =="));
}
