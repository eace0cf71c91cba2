//! The kill harness (issue 14): cbdump in each format, cbcopyout and cbdistfix stopped with
//! SIGKILL and SIGTERM at states of their run (a staging directory made, data bytes written,
//! pg_dump's TOC written) and at delays spread over a clean run; after each, the output is
//! complete and equal to the clean run's or absent, and after SIGTERM no temporary path
//! remains (`testkit::kill` says the contract and holds the scenarios). Prints the counts.
//! A longer soak with hundreds of kills: `cbtools-bench soak`.

use std::path::PathBuf;

use testkit::kill::{self, Bins};
use testkit::TestServer;

#[test]
fn killed_anywhere_the_output_is_complete_or_absent() {
    let server = TestServer::start();
    kill::fill(&server);
    let bins = Bins {
        cbdump: PathBuf::from(env!("CARGO_BIN_EXE_cbdump")),
        cbcopyout: testkit::workspace_bin("cbcopyout"),
        cbdistfix: testkit::workspace_bin("cbdistfix"),
    };
    let tally = kill::run_all(&server, &bins, 2, 14);
    tally.print();
    assert!(tally.kills > 0);
    assert!(tally.violations.is_empty(), "{:#?}", tally.violations);
}

/// cbdistfix writing a rewritten plain dump to a closed stdout ends as pg_dump does: killed by
/// SIGPIPE, no message.
#[test]
fn cbdistfix_to_a_closed_stdout_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let cbdistfix = testkit::workspace_bin("cbdistfix");
    if !cbdistfix.exists() {
        eprintln!("skipping: {} is not built", cbdistfix.display());
        return;
    }
    let server = TestServer::start();
    kill::fill(&server);
    let inputs = server.scratch().join("inputs");
    kill::make_inputs(&server, &inputs);
    let mut child = std::process::Command::new(&cbdistfix)
        .arg(inputs.join("in.sql"))
        .args(["-o", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).split(b'\n');
    for _ in 0..5 {
        lines.next().unwrap().unwrap();
    }
    drop(lines);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}", out.status);
    // The decisions report goes to stderr before the rewrite; no error follows it.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("error") && !err.contains("Broken pipe"),
        "{err}"
    );
}
