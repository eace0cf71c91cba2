//! `cbtools-bench soak [--rounds N]`: the kill harness of `dump/tests/kill.rs` at soak size.
//! Each round re-runs every scenario (cbdump in each format, cbcopyout into a directory,
//! cbdistfix on each kind of dump) with SIGKILL and SIGTERM at each state of the run and at 20
//! delays spread over a clean run, each round with other delays; the default 3 rounds make
//! about 450 kills. Prints the counts by scenario, signal and outcome, and fails on any
//! output that is neither complete nor absent or any temporary path left after SIGTERM.

use anyhow::{bail, Context, Result};
use testkit::kill::{self, Bins, Tally};
use testkit::TestServer;

use crate::tool;

pub fn soak(args: &[String]) -> Result<()> {
    let rounds: u64 = match args.iter().position(|a| a == "--rounds") {
        Some(i) => args
            .get(i + 1)
            .context("--rounds needs a number")?
            .parse()
            .context("--rounds needs a number")?,
        None => 3,
    };
    let bins = Bins {
        cbdump: tool("cbdump")?,
        cbcopyout: tool("cbcopyout")?,
        cbdistfix: tool("cbdistfix")?,
    };
    let server = TestServer::start();
    kill::fill(&server);
    let mut total = Tally::default();
    for round in 0..rounds {
        println!("== soak round {} of {rounds} ==", round + 1);
        let tally = kill::run_all(&server, &bins, 20, 1000 + round);
        tally.print();
        total.kills += tally.kills;
        total.leftovers_after_kill += tally.leftovers_after_kill;
        total.violations.extend(tally.violations);
        for (key, n) in tally.counts {
            *total.counts.entry(key).or_default() += n;
        }
    }
    println!("== soak total ==");
    total.print();
    if !total.violations.is_empty() {
        bail!("{} kill trials broke the contract", total.violations.len());
    }
    Ok(())
}
