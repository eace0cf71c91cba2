//! cbclone against the two ways people copy a database today, on the same server in the same
//! run: `pg_dump -Fd -j 2` followed by `pg_restore -j 2` (a full copy on local disk in
//! between), and Debian's `pgcopydb clone --table-jobs 2 --index-jobs 2` (streaming, like us).
//! Every run copies `bench` into a fresh database, starts from a checkpoint, and its target is
//! checked to hold every row.

use std::process::Command;

use anyhow::{bail, Result};
use testkit::TestServer;

use crate::measure::{run_measured, shell, Sample};
use crate::{env_command, fresh, issue_database, line, median, path_with_bin_dir, tool};

/// Both tables hold every row in `db`.
fn check(server: &TestServer, db: &str, rows: u64) -> Result<()> {
    let got = server.psql(
        db,
        "SELECT (SELECT count(*) FROM t) || ' ' || (SELECT count(*) FROM docs) || ' ' || \
                (SELECT count(*) FROM pg_indexes WHERE schemaname = 'public')",
    );
    let want = format!("{rows} {} 2", rows / 3);
    if got.trim() != want {
        bail!(
            "{db}: expected rows/rows/indexes {want}, found {}",
            got.trim()
        );
    }
    Ok(())
}

fn uri(server: &TestServer, db: &str) -> String {
    format!(
        "postgresql://postgres@/{db}?host={}&port={}",
        server.socket_dir().display(),
        server.port()
    )
}

fn dump_restore(server: &TestServer) -> Result<Sample> {
    fresh(server, "via_dump");
    let dir = server.scratch().join("clone.dir");
    let _ = std::fs::remove_dir_all(&dir);
    let bin = server.install().bin_dir().display().to_string();
    let s = run_measured(
        shell(
            server,
            &format!(
                "{bin}/pg_dump -d bench -Fd -j 2 -f {d} && {bin}/pg_restore -j 2 -d via_dump {d}",
                d = dir.display()
            ),
        ),
        "pg_dump | pg_restore",
    )?;
    std::fs::remove_dir_all(&dir)?;
    Ok(s)
}

fn pgcopydb(server: &TestServer) -> Result<Sample> {
    fresh(server, "via_pgcopydb");
    let work = server.scratch().join("pgcopydb");
    let _ = std::fs::remove_dir_all(&work);
    let mut c = env_command(server, "pgcopydb");
    c.env("PATH", path_with_bin_dir(server))
        .args(["clone", "--table-jobs", "2", "--index-jobs", "2", "--dir"])
        .arg(&work)
        .arg("--source")
        .arg(uri(server, "bench"))
        .arg("--target")
        .arg(uri(server, "via_pgcopydb"));
    let s = run_measured(c, "pgcopydb clone")?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(s)
}

fn cbclone(server: &TestServer, cb: &std::path::Path) -> Result<Sample> {
    fresh(server, "via_cbclone");
    let mut c = env_command(server, cb);
    c.current_dir(server.scratch())
        .env("XDG_STATE_HOME", server.scratch())
        .arg("--source")
        .arg(server.conn_string("bench"))
        .arg("--target")
        .arg(server.conn_string("via_cbclone"))
        .args(["-j", "2"]);
    run_measured(c, "cbclone")
}

pub fn clone(rows: u64) -> Result<()> {
    let cb = tool("cbclone")?;
    println!(
        "== cbclone vs pg_dump|pg_restore and pgcopydb: {rows} + {} rows ==",
        rows / 3
    );
    let have_pgcopydb = Command::new("pgcopydb").arg("--version").output().is_ok();
    if !have_pgcopydb {
        println!("pgcopydb not installed (apt-get install pgcopydb): its column is skipped");
    }
    let server = issue_database(rows)?;
    // Runs vary by 15-25% here: three rounds, alternating, and the medians.
    let (mut dr, mut pc, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..3 {
        let s = dump_restore(&server)?;
        check(&server, "via_dump", rows)?;
        line(
            &format!("pg_dump -Fd -j 2 + pg_restore -j 2 (#{round})"),
            &s,
            None,
        );
        dr.push(s);
        if have_pgcopydb {
            let s = pgcopydb(&server)?;
            check(&server, "via_pgcopydb", rows)?;
            line(
                &format!("pgcopydb clone --table/index-jobs 2 (#{round})"),
                &s,
                None,
            );
            pc.push(s);
        }
        let s = cbclone(&server, &cb)?;
        check(&server, "via_cbclone", rows)?;
        line(&format!("cbclone -j 2 (#{round})"), &s, dr.last());
        ours.push(s);
    }
    let (dr, ours) = (median(&mut dr), median(&mut ours));
    line("pg_dump -Fd -j 2 + pg_restore -j 2, median", &dr, None);
    line(
        "cbclone -j 2 vs pg_dump+pg_restore, median",
        &ours,
        Some(&dr),
    );
    if have_pgcopydb {
        let pc = median(&mut pc);
        line("pgcopydb clone, median", &pc, None);
        line("cbclone -j 2 vs pgcopydb, median", &ours, Some(&pc));
    }
    Ok(())
}
