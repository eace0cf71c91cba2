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
