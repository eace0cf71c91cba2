//! What cbrestore prints: the one-line summary of each input's report (naming the target),
//! `--json` reports, pg_restore's `-l` listing, and `--to-sql`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use gpbackup::to_sql::{write_sql, Target, ToSqlOptions};
use gpbackup::{BackupSet, Filter};
use restore::gpset::TargetChoice;
use serde::Serialize;

use restore::cli::Cli;
use restore::report::{Kind, Report, Status, Table};
use restore::segment_restore::Route;

/// `--json`: the report on stdout.
pub fn json<T: Serialize>(cli: &Cli, report: &T) -> std::io::Result<()> {
    if cli.json {
        let text = serde_json::to_string_pretty(report).expect("report serializes");
        writeln!(std::io::stdout().lock(), "{text}")?;
    }
    Ok(())
}

/// Exit status 1 when errors were skipped under `--on-error-continue`, after listing them.
fn with_errors(errors: &[String]) -> ExitCode {
    if errors.is_empty() {
        return ExitCode::SUCCESS;
    }
    logline::say!(
        "cbrestore: warning: errors ignored on restore: {}",
        errors.len()
    );
    for e in errors {
        logline::say!("  {}", e.lines().next().unwrap_or(""));
    }
    ExitCode::from(1)
}

/// The summary of a restore (any input): `--json`'s report on stdout, then one line naming
/// what was restored into what, with the input's own figures; exit status 1 when errors were
/// skipped.
pub fn report(cli: &Cli, report: &Report) -> std::io::Result<ExitCode> {
    json(cli, report)?;
    if cli.list {
        return Ok(ExitCode::SUCCESS);
    }
    if report.already_finished {
        logline::say!(
            "cbrestore: the restore of {} into {} finished already: nothing to resume",
            report.input,
            report.target
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let (true, Some(set)) = (cli.verbose, &report.backup_set) {
        for t in &set.translation {
            logline::say!("cbrestore: {t}");
        }
    }
    let (verb, into) = if cli.verify_only {
        ("verified", String::new())
    } else if cli.file.is_some() || cli.to_sql.is_some() {
        ("wrote the SQL of", format!(" into {}", report.target))
    } else {
        ("restored", format!(" into {}", report.target))
    };
    logline::say!(
        "cbrestore: {verb} {}{into}: {} statements, {} tables, {} rows{} in {:.1}s",
        subject(report),
        report.statements,
        report.tables.len(),
        report.total_rows,
        own_figures(report),
        report.elapsed_seconds
    );
    Ok(with_errors(&report.errors))
}

/// What was restored, as the summary names it.
fn subject(r: &Report) -> String {
    if let Some(a) = &r.archive {
        format!("{} ({} archive {})", r.input, a.format, a.archive_version)
    } else if let Some(set) = &r.backup_set {
        format!(
            "backup {} ({} segment(s))",
            set.backup_timestamp, set.segment_count
        )
    } else {
        format!("{} (plain SQL script)", r.input)
    }
}

/// The input's own figures after the common ones.
fn own_figures(r: &Report) -> String {
    let mut s = String::new();
    if let Some(a) = &r.archive {
        s.push_str(&format!(", {} large objects", a.large_objects));
    }
    if let Some(p) = &r.script {
        s.push_str(&format!(", {} COPY blocks", p.copy_blocks));
        if p.skipped_statements > 0 {
            s.push_str(&format!(
                ", {} statements left out by the filters",
                p.skipped_statements
            ));
        }
        if p.resumed_statements > 0 {
            s.push_str(&format!(
                ", {} finished by the previous run",
                p.resumed_statements
            ));
        }
    }
    if let Some(seg) = &r.on_segment {
        let copies = r
            .tables
            .iter()
            .filter(|t| t.route == Some(Route::CopyOnSegment))
            .count();
        s.push_str(&format!(
            ", from the segments' own files into {} segment(s): {copies} tables by COPY ON SEGMENT, {} through external web tables",
            seg.target_segments,
            r.tables.len() - copies
        ));
    } else if let Some(set) = &r.backup_set {
        s.push_str(&format!(
            ", {} files, {} translated or skipped for PostgreSQL",
            set.files_read,
            set.translation.len()
        ));
    }
    s
}

/// The report of a `--verify-only` run (the one report, with the tables checked and, for an
/// archive, how each was checked), before its tables.
fn verified(cli: &Cli, kind: Kind) -> Report {
    let shown: Vec<String> = cli.paths.iter().map(|p| p.display().to_string()).collect();
    let mut report = Report::new(Some(kind), shown.join(" "));
    report.target = "none (--verify-only)".into();
    report
}

/// `--verify-only` on an archive.
pub fn verify_archive(cli: &Cli, archive: &archive::Archive) -> std::io::Result<ExitCode> {
    let mut report = verified(cli, Kind::Archive);
    match restore::verify::verify_only(archive) {
        Ok(tables) => {
            let checked = tables.iter().map(|t| Table {
                table: t.table.clone(),
                rows: t.rows,
                bytes: t.bytes,
                checksum: Some(t.checksum),
                end_check: Some(t.end_check).filter(|c| !c.is_empty()),
                ..Default::default()
            });
            report.set_tables(checked.collect());
            json(cli, &report)?;
            let rows: u64 = tables.iter().map(|t| t.rows).sum();
            logline::say!(
                "cbrestore: {} verified: {} tables, {} rows, every data stream complete{}",
                cli.paths[0].display(),
                tables.len(),
                rows,
                if tables.iter().any(|t| t.checksum == "ok") {
                    ", checksums and row counts equal to manifest.json"
                } else {
                    ""
                }
            );
            if !tables.iter().any(|t| t.checksum == "ok") {
                unchecked_ends(&tables);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(problems) => {
            report.status = Status::Failed;
            report.errors = problems.iter().map(ToString::to_string).collect();
            report.error = Some(report.errors.join("\n"));
            json(cli, &report)?;
            for p in &report.errors {
                logline::say!("cbrestore: error: {p}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// Without manifest.json: what could not be checked, per kind of data file.
fn unchecked_ends(tables: &[restore::verify::Verified]) {
    logline::say!(
        "cbrestore: warning: no manifest.json: row counts and sha256 checksums not compared"
    );
    for (kind, what) in [
        ("gzip trailer only", "are gzip without cbdump's end member: each gzip member's trailer was checked, but a file cut between two members would pass"),
        ("zstd frames", "are zstd: a file cut between two frames would pass"),
        ("none", "are uncompressed: a file cut at a line end would pass"),
    ] {
        let files: Vec<&str> = tables
            .iter()
            .filter(|t| t.end_check == kind)
            .map(|t| t.file.as_str())
            .collect();
        if !files.is_empty() {
            let first: Vec<&str> = files.iter().take(5).copied().collect();
            logline::say!(
                "cbrestore: warning: {} data files ({}{}) {what}",
                files.len(),
                first.join(", "),
                if files.len() > 5 { ", ..." } else { "" }
            );
        }
    }
}

/// `--verify-only` on a backup set.
pub fn verify_set(cli: &Cli, filter: &Filter) -> anyhow::Result<ExitCode> {
    let tables = restore::gpset::verify(&cli.paths, cli.timestamp.as_deref(), filter)?;
    let mut report = verified(cli, Kind::BackupSet);
    let checked = tables.iter().map(|t| Table {
        table: t.table.clone(),
        rows: t.rows,
        bytes: t.bytes,
        ..Default::default()
    });
    report.set_tables(checked.collect());
    json(cli, &report)?;
    let rows: u64 = tables.iter().map(|t| t.rows).sum();
    logline::say!(
        "cbrestore: verified the backup set: {} tables, {rows} rows, every file present and complete, row counts equal to the backup's",
        tables.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `-l`: the TOC in pg_restore's list format.
pub fn list(
    path: &Path,
    archive: &archive::Archive,
    selection: &restore::toc::Selection,
    create: bool,
) -> std::io::Result<()> {
    // In the `-L` list's order, as pg_restore lists it.
    let mut entries = archive.entries().to_vec();
    selection.sort_by_list(&mut entries);
    let wanted = selection.select(&entries);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let h = archive.header();
    writeln!(out, ";\n; Archive: {}", path.display())?;
    writeln!(out, ";     TOC Entries: {}", archive.entries().len())?;
    writeln!(out, ";     Dump Version: {}.{}-{}", h.major, h.minor, h.rev)?;
    let format = match archive {
        archive::Archive::Custom(_) => "CUSTOM",
        archive::Archive::Directory(_) => "DIRECTORY",
    };
    writeln!(out, ";     Format: {format}")?;
    writeln!(out, ";\n;\n; Selected TOC Entries:\n;")?;
    for e in &entries {
        // As pg_restore lists them: never the session entries (ENCODING, STDSTRINGS,
        // SEARCHPATH), DATABASE only with -C.
        let desc = e.desc();
        let listed = if toc_special(&desc) {
            create && desc.starts_with("DATABASE")
        } else {
            wanted.contains(&e.dump_id)
        };
        if !listed {
            continue;
        }
        let (tableoid, oid) = e.catalog_id();
        let ns = e.namespace();
        writeln!(
            out,
            "{}; {} {} {} {} {} {}",
            e.dump_id,
            tableoid,
            oid,
            e.desc(),
            if ns.is_empty() { "-".into() } else { ns },
            e.tag(),
            e.owner()
        )?;
    }
    out.flush()
}

fn toc_special(desc: &str) -> bool {
    restore::toc::is_session(desc) || desc == "DATABASE" || desc == "DATABASE PROPERTIES"
}

/// `--to-sql`: the whole set as one psql script.
pub fn to_sql(cli: &Cli, out: &Path, filter: Filter) -> anyhow::Result<ExitCode> {
    let set = BackupSet::open_roots(&cli.paths, cli.timestamp.as_deref())?;
    set.check_files()?;
    let opts = ToSqlOptions {
        target: match cli.target {
            TargetChoice::Postgres => Target::Postgres,
            TargetChoice::Cloudberry => Target::AsWritten,
            TargetChoice::Auto => bail!(
                "--to-sql has no server to detect: give --target postgres or --target cloudberry"
            ),
        },
        gzip: None,
        with_globals: cli.with_globals,
        create_db: cli.create_db,
        data_only: cli.data_only,
        metadata_only: cli.metadata_only,
        no_owner: cli.no_owner,
        no_privileges: cli.no_privileges,
        filter,
        on_error_continue: cli.on_error_continue,
    };
    let started = std::time::Instant::now();
    let postgres = matches!(opts.target, Target::Postgres);
    let written = write_sql(&set, out, &opts)?;
    let mut r = Report::of_set_script(&set, written, out, postgres);
    r.input = cli
        .paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    r.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report(cli, &r)?)
}
