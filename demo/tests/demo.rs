//! The README's demo command, run as a test: every tool end to end on its own throwaway server,
//! with the demo's own checks (schema and md5 equality, row counts, byte-exact round trips).
//! `cargo test --workspace` builds every cb* binary beside the demo's, which is where it looks.

use std::process::Command;

#[test]
fn the_demo_runs_to_the_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_cbtools-demo"))
        .output()
        .expect("running cbtools-demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("every table's count matches the source"),
        "{stdout}"
    );
    assert!(stdout.contains("demo finished"), "{stdout}");
}
