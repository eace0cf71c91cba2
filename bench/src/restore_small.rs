//! `cbtools-bench restore-small`: cbrestore on many small objects (PostgreSQL's regression
//! database, about 600 tables, 490 indexes, 330 functions, 215 triggers) against its peers in
//! the same run: `pg_restore -j 2` and `cbrestore -j 2` of pg_dump 15's custom archive,
//! `psql -f` and `cbrestore` of its plain script. Rounds interleave the four, so a busy moment
//! of a shared machine hits them alike; medians of `--rounds` (default 3) are printed with peak
//! RSS.
//!
//! `cbtools-bench restore-wide`: peak memory with one big value (`--mib`, default 200) in one
//! row: a bytea and a text table, each restored from the custom and directory archives by
//! pg_restore and cbrestore and from the plain script by psql and cbrestore.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use testkit::TestServer;

use crate::measure::{run_measured, Sample};
use crate::{env_command, line, median, pg_dump_file, tool};

/// One way to restore: the label, and the command for a fresh database.
struct Contender<'a> {
    label: String,
    command: Box<dyn Fn(&str) -> Command + 'a>,
    peer: Option<usize>,
}

fn option(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .with_context(|| format!("{name} needs a number"))?
            .parse()
            .with_context(|| format!("{name} needs a number")),
        None => Ok(default),
    }
}

pub fn restore_small(args: &[String]) -> Result<()> {
    let rounds = option(args, "--rounds", 3)?.max(1) as usize;
    let cb = tool("cbrestore")?;
    let Some(dumps) = testkit::regress::database(15) else {
        bail!("the regression database of PostgreSQL 15 cannot be built here (see above)");
    };
    println!("== cbrestore vs pg_restore -j 2 and psql -f: the regression database, medians of {rounds} ==");
    let server = TestServer::start();
    dumps.create_roles(&server);
    let states = server.scratch().join("state");
    let cbrestore = |extra: &'static [&'static str], input: PathBuf| {
        let (cb, server, states) = (&cb, &server, &states);
        Box::new(move |db: &str| {
            let mut c = env_command(server, cb);
            c.env("XDG_STATE_HOME", states)
                .args(["-d", db])
                .args(extra)
                .arg(&input);
            c
        }) as Box<dyn Fn(&str) -> Command>
    };
    let custom = dumps.custom.clone();
    let plain = dumps.plain.clone();
    let contenders = vec![
        Contender {
            label: "pg_restore -j 2 (custom)".into(),
            command: Box::new(|db: &str| {
                let mut c = server.command("pg_restore");
                c.args(["-j", "2", "-d", db]).arg(&custom);
                c
            }),
            peer: None,
        },
        Contender {
            label: "cbrestore -j 2 (custom)".into(),
            command: cbrestore(&["-j", "2"], dumps.custom.clone()),
            peer: Some(0),
        },
        Contender {
            label: "psql -f (plain)".into(),
            command: Box::new(|db: &str| {
                let mut c = server.command("psql");
                c.args(["-X", "-q", "-d", db, "-f"]).arg(&plain);
                c
            }),
            peer: None,
        },
        Contender {
            label: "cbrestore (plain)".into(),
            command: cbrestore(&[], dumps.plain.clone()),
            peer: Some(2),
        },
    ];
    let samples = rounds_of(&server, &contenders, rounds)?;
    print_medians(&contenders, samples);
    Ok(())
}

/// Runs every contender `rounds` times, interleaved, each into a fresh database after a
/// CHECKPOINT (otherwise each run pays for flushing what the one before left dirty). The
/// restored databases are compared by their object counts, so a restore that skipped work
/// cannot look fast.
fn rounds_of(
    server: &TestServer,
    contenders: &[Contender<'_>],
    rounds: usize,
) -> Result<Vec<Vec<Sample>>> {
    let mut samples: Vec<Vec<Sample>> = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        let mut counts = Vec::new();
        for (i, c) in contenders.iter().enumerate() {
            let db = format!("r{round}_{i}");
            server.psql("postgres", "CHECKPOINT");
            testkit::regress::create_database(server, &db);
            let s = run_measured((c.command)(&db), &c.label)?;
            eprintln!(
                "  round {}: {:<30} {:>7.2} s",
                round + 1,
                c.label,
                s.seconds
            );
            samples[i].push(s);
            counts.push((c.label.as_str(), object_counts(server, &db)?));
            server.psql("postgres", &format!("DROP DATABASE {db}"));
        }
        if let Some((label, _)) = counts.iter().find(|(_, n)| *n != counts[0].1) {
            bail!(
                "{label} restored other objects than {}: {counts:?}",
                counts[0].0
            );
        }
    }
    Ok(samples)
}

/// Relations, routines, constraints, triggers, rows of the 20 largest tables: equal across
/// the contenders of one round.
fn object_counts(server: &TestServer, db: &str) -> Result<String> {
    let mut c = server.client(db);
    let row = c.query_one(
        "SELECT (SELECT count(*) FROM pg_class)::text || '/' || (SELECT count(*) FROM pg_proc)::text
              || '/' || (SELECT count(*) FROM pg_constraint)::text || '/' || (SELECT count(*) FROM pg_trigger)::text
              || '/' || (SELECT coalesce(sum(n_live_tup), 0) FROM pg_stat_user_tables)::text",
        &[],
    )?;
    Ok(row.get(0))
}

fn print_medians(contenders: &[Contender<'_>], mut samples: Vec<Vec<Sample>>) {
    let medians: Vec<Sample> = samples.iter_mut().map(|v| median(v)).collect();
    for (c, m) in contenders.iter().zip(&medians) {
        line(&c.label, m, c.peer.map(|p| &medians[p]));
    }
}

pub fn restore_wide(args: &[String]) -> Result<()> {
    let mib = option(args, "--mib", 200)?;
    let cb = tool("cbrestore")?;
    println!("== peak memory restoring one {mib} MiB value: cbrestore vs pg_restore and psql ==");
    let server = TestServer::start();
    server.create_db("wide");
    server.psql(
        "wide",
        &format!(
            "CREATE TABLE wide_bytea (id int PRIMARY KEY, v bytea);
             CREATE TABLE wide_text (id int PRIMARY KEY, v text);
             INSERT INTO wide_bytea SELECT 1, convert_to(repeat(md5('x'), {mib} * 32768), 'UTF8');
             INSERT INTO wide_text SELECT 1, repeat(md5('y'), {mib} * 32768);"
        ),
    );
    let scratch = server.scratch().to_path_buf();
    let states = scratch.join("state");
    for table in ["wide_bytea", "wide_text"] {
        let files = dump_formats(&server, &scratch, table)?;
        for (format, path) in &files {
            let peer = restore_wide_once(&server, table, || {
                let mut c = if *format == "plain" {
                    let mut c = server.command("psql");
                    c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "widedb", "-f"]);
                    c
                } else {
                    let mut c = server.command("pg_restore");
                    c.args(["-d", "widedb"]);
                    c
                };
                c.arg(path);
                c
            })?;
            let peer_name = if *format == "plain" {
                "psql -f"
            } else {
                "pg_restore"
            };
            line(&format!("{table} {format}: {peer_name}"), &peer, None);
            let ours = restore_wide_once(&server, table, || {
                let mut c = env_command(&server, &cb);
                c.env("XDG_STATE_HOME", &states)
                    .args(["-d", "widedb"])
                    .arg(path);
                c
            })?;
            line(&format!("{table} {format}: cbrestore"), &ours, Some(&peer));
        }
    }
    Ok(())
}

/// pg_dump's custom, directory and plain dumps of `table`.
fn dump_formats(
    server: &TestServer,
    scratch: &Path,
    table: &str,
) -> Result<Vec<(&'static str, PathBuf)>> {
    let mut files = Vec::new();
    for (format, flag, name) in [
        ("custom", "c", "dump"),
        ("directory", "d", "dir"),
        ("plain", "p", "sql"),
    ] {
        let path = scratch.join(format!("{table}.{name}"));
        pg_dump_file(server, &["-d", "wide", "-t", table, "-F", flag], &path)?;
        files.push((format, path));
    }
    Ok(files)
}

/// One restore into a fresh database `widedb`, checked: the value arrived whole.
fn restore_wide_once(
    server: &TestServer,
    table: &str,
    command: impl Fn() -> Command,
) -> Result<Sample> {
    server.psql(
        "postgres",
        "DROP DATABASE IF EXISTS widedb; CREATE DATABASE widedb; CHECKPOINT;",
    );
    let s = run_measured(command(), table)?;
    let mut c = server.client("widedb");
    let ours: String = c
        .query_one(&format!("SELECT md5(v::text) FROM {table}"), &[])?
        .get(0);
    let theirs: String = server
        .client("wide")
        .query_one(&format!("SELECT md5(v::text) FROM {table}"), &[])?
        .get(0);
    if ours != theirs {
        bail!("{table}: the restored value differs from the source");
    }
    Ok(s)
}
