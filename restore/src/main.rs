//! `cbrestore`: load backups back through the coordinator.
#![warn(clippy::too_many_lines)]

mod summary;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cluster::ConnParams;
use restore::cli::{Cli, Usage};
use restore::report::{Kind, Report, Status};
use restore::RestoreError;

fn main() -> ExitCode {
    let cli = restore::cli::parse();
    // The one signal setup: SIGINT, SIGTERM and SIGHUP raise the flag every step checks and
    // cancel the statements in flight (restore::cancel); the restore stops, records its
    // state, and exits 130, 143 or 129 saying how to resume.
    let interrupt = match interrupt::install("cbrestore", interrupt::Mode::Poll) {
        Ok(i) => i,
        Err(e) => {
            logline::say!("cbrestore: error: {e}");
            return ExitCode::from(1);
        }
    };
    let _cancel = interrupt.on_signal(restore::cancel::cancel_all);
    let mut report = Report::new(None, shown_inputs(&cli));
    match run(&cli, interrupt.flag(), &mut report) {
        Ok(code) if !interrupt.stdout_closed() => code,
        Ok(_) => interrupt.finish(),
        Err(e) => {
            if cli.json && e.chain().find_map(broken_pipe).is_none() {
                json_failure(report, &e, &interrupt);
            }
            failed(&e, &interrupt)
        }
    }
}

/// The inputs as the report names them.
fn shown_inputs(cli: &Cli) -> String {
    let shown: Vec<String> = cli.paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(" ")
}

/// Reports an error: one line (plus the server's detail) and the command that resumes when
/// there is one; exit status 2 for usage, 130/143/129 for a signal, 1 otherwise. A closed
/// stdout (`cbrestore -l x | head`) ends quietly.
fn failed(e: &anyhow::Error, interrupt: &interrupt::Interrupt) -> ExitCode {
    if let Some(io) = e.chain().find_map(broken_pipe) {
        interrupt.note_stdout_error(io);
        return interrupt.finish();
    }
    if e.downcast_ref::<Usage>().is_some() {
        logline::say!("cbrestore: error: {}", message(e));
        return ExitCode::from(2);
    }
    let restore = e.downcast_ref::<RestoreError>();
    if let Some(state) = restore.and_then(RestoreError::resumable_from) {
        interrupt.set_left(format!(
            "progress is recorded in {}; to resume:\n  {}",
            state.display(),
            resume_command()
        ));
    }
    if let Some(RestoreError::Interrupted) = restore.map(RestoreError::cause) {
        if interrupt.signal().is_none() {
            // Raised without a signal (a closed pipe): still 130, as before.
            logline::say!("cbrestore: error: {}", message(e));
            return ExitCode::from(130);
        }
    }
    interrupt.fail(message(e))
}

/// The error and its causes on one line, each said once (a typed error's message often
/// quotes its cause already).
fn message(e: &anyhow::Error) -> String {
    cluster::error::one_line(e.as_ref())
}

/// `--json` on failure: the report of what was done before the error (the tables whose loads
/// committed), with the status, the error, and the command that resumes when there is one.
fn json_failure(mut report: Report, e: &anyhow::Error, interrupt: &interrupt::Interrupt) {
    let restore = e.downcast_ref::<RestoreError>();
    let stopped = restore.map(RestoreError::cause);
    report.status =
        if interrupt.signal().is_some() || matches!(stopped, Some(RestoreError::Interrupted)) {
            Status::Interrupted
        } else {
            Status::Failed
        };
    report.error = Some(message(e));
    if let Some(state) = restore.and_then(RestoreError::resumable_from) {
        report.state_file = Some(state.display().to_string());
        report.resume = Some(resume_command());
    }
    let text = serde_json::to_string_pretty(&report).expect("report serializes");
    // stdout closed meanwhile: the error on stderr is all there is to say.
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn broken_pipe<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e std::io::Error> {
    let io =
        e.downcast_ref::<std::io::Error>()
            .or_else(|| match e.downcast_ref::<RestoreError>() {
                Some(RestoreError::Io { source, .. }) => Some(source),
                _ => None,
            });
    io.filter(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// This command line with `--resume`, quoted for a POSIX shell, passwords in conninfo strings
/// masked.
fn resume_command() -> String {
    let mut words: Vec<String> = std::env::args().collect();
    if !words.iter().any(|w| w == "--resume") {
        words.push("--resume".into());
    }
    words
        .iter()
        .map(|w| shell_word(&mask_password(w)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn mask_password(w: &str) -> String {
    if let Some(i) = w.find("password=") {
        let end = w[i..].find(' ').map(|n| i + n).unwrap_or(w.len());
        return format!("{}password=...{}", &w[..i], &w[end..]);
    }
    w.to_string()
}

fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// What the input is decides the restore: a custom or directory archive (pg_restore's job), a
/// plain script (psql's), or gpbackup backup directories.
fn run(cli: &Cli, abort: Arc<AtomicBool>, report: &mut Report) -> anyhow::Result<ExitCode> {
    cli.progress.open_log()?;
    cli.check()?;
    let first = &cli.paths[0];
    if cli.paths.len() == 1 && first != Path::new("-") {
        // Its errors name the file already (the path was said twice: "x.dump: x.dump: No
        // such file or directory").
        if let Some(archive) = archive::Archive::open(first)? {
            return restore_archive(cli, archive, abort, report);
        }
    }
    if cli.paths.len() == 1 && (first == Path::new("-") || first.is_file()) {
        return restore_plain(cli, abort, report);
    }
    restore_set(cli, abort, report)
}

fn connection(cli: &Cli) -> anyhow::Result<ConnParams> {
    Ok(ConnParams::resolve(&cli.conn, "cbrestore")?)
}

/// pg_restore's job for custom and directory archives.
fn restore_archive(
    cli: &Cli,
    archive: archive::Archive,
    abort: Arc<AtomicBool>,
    report: &mut Report,
) -> anyhow::Result<ExitCode> {
    report.kind = Some(Kind::Archive);
    cli.refuse_gprestore_flags("a pg_dump archive")?;
    cli.check_format(match &archive {
        archive::Archive::Custom(_) => "custom",
        archive::Archive::Directory(_) => "directory",
    })?;
    let selection = cli.archive_selection(archive.entries())?;
    if cli.list {
        summary::list(&cli.paths[0], &archive, &selection, cli.create)?;
        return Ok(ExitCode::SUCCESS);
    }
    if cli.verify_only {
        return Ok(summary::verify_archive(cli, &archive)?);
    }
    if cli.single_transaction && cli.jobs > 1 {
        return Err(Usage(
            "-1/--single-transaction cannot be used with -j (as in pg_restore)".into(),
        )
        .into());
    }
    drop(archive);
    let opts = cli.archive_options(connection(cli)?, selection);
    restore::dump::run(&opts, abort, report)?;
    Ok(summary::report(cli, report)?)
}

/// psql's job for plain SQL dumps, with cbrestore's error handling and distribution rewriting.
fn restore_plain(
    cli: &Cli,
    abort: Arc<AtomicBool>,
    report: &mut Report,
) -> anyhow::Result<ExitCode> {
    report.kind = Some(Kind::Script);
    cli.refuse_gprestore_flags("a plain SQL script")?;
    cli.refuse_script_flags()?;
    cli.check_format("plain SQL script")?;
    if cli.resume && cli.single_transaction {
        return Err(Usage("--resume with --single-transaction: a single transaction is either committed or not, there is nothing to resume".into()).into());
    }
    if cli.single_transaction && cli.on_error_continue {
        return Err(Usage("--single-transaction with --on-error-continue: the first error aborts the transaction (as in psql)".into()).into());
    }
    let live = !(cli.list || cli.verify_only || cli.file.is_some());
    if cli.jobs > 1 && live {
        // pg_restore refuses plain scripts outright; running it in order is still useful.
        logline::say!(
            "cbrestore: note: -j {} does not apply to a plain SQL script: its statements run in order on one connection, as psql runs them (a custom or directory archive restores in parallel)",
            cli.jobs
        );
    }
    // -l, -f and --verify-only connect to nothing: no connection parameters are needed.
    let conn = connection(cli)?;
    restore::plain::run(&cli.plain_options(conn), abort, report)?;
    Ok(summary::report(cli, report)?)
}

/// gprestore's job for backup sets, through the coordinator.
fn restore_set(cli: &Cli, abort: Arc<AtomicBool>, report: &mut Report) -> anyhow::Result<ExitCode> {
    report.kind = Some(Kind::BackupSet);
    cli.refuse_archive_flags()?;
    let filter = cli.filter()?;
    if cli.verify_only {
        return summary::verify_set(cli, &filter);
    }
    if let Some(out) = &cli.to_sql {
        return summary::to_sql(cli, out, filter);
    }
    if let Some(root) = &cli.on_segment {
        let gp = cli.gpset_options(connection(cli)?, filter);
        let opts = restore::segment_restore::SegmentRestoreOptions::new(gp, root)?;
        let input = report.input.clone();
        *report = Report::from(restore::segment_restore::run(&opts, abort)?);
        report.input = input;
        return Ok(summary::report(cli, report)?);
    }
    let conn = connection(cli)?;
    report.target = conn.target();
    let opts = cli.gpset_options(conn, filter);
    let input = report.input.clone();
    *report = Report::from(restore::gpset::run(&opts, abort, report)?);
    report.input = input;
    Ok(summary::report(cli, report)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn resume_commands_are_quoted_and_masked() {
        assert_eq!(super::shell_word("-d"), "-d");
        assert_eq!(super::shell_word("my file.dump"), "'my file.dump'");
        assert_eq!(super::shell_word("it's"), "'it'\\''s'");
        assert_eq!(
            super::mask_password("host=x password=secret dbname=y"),
            "host=x password=... dbname=y"
        );
    }
}
