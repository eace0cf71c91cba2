//! `cbcopyout`: export tables or queries with COPY TO into local files.

use std::process::ExitCode;

use anyhow::bail;

use cluster::catalog::Selection;
use cluster::ConnParams;
use copyout::cli::Cli;
use copyout::compress::Compression;
use copyout::format::{CopyFormat, ForceQuote};
use copyout::onsegment::{self, OnSegmentOptions};
use copyout::{ExportOptions, What};
use interrupt::{Interrupt, Mode};
use pipeline::sink::SplitLimits;

fn parse_size(s: &str) -> anyhow::Result<u64> {
    Ok(pipeline::size::bytes(s)?)
}

fn main() -> ExitCode {
    let cli = copyout::cli::parse();
    let interrupt = match interrupt::install("cbcopyout", Mode::Poll) {
        Ok(i) => i,
        Err(e) => {
            logline::say!("cbcopyout: error: {e}");
            return ExitCode::from(1);
        }
    };
    match run(cli, &interrupt) {
        Ok(()) => interrupt.finish(),
        Err(e) => interrupt.fail(cluster::error::one_line(e.as_ref())),
    }
}

fn run(cli: Cli, interrupt: &Interrupt) -> anyhow::Result<()> {
    cli.progress.open_log()?;
    let conn = ConnParams::resolve(&cli.conn, "cbcopyout")?;
    if cli.on_segment.is_some() {
        return on_segment(cli, conn, interrupt);
    }
    let json = cli.json;
    let opts = export_options(cli, conn)?;
    let report = copyout::run(&opts, interrupt)?;
    if json {
        return print_stdout(interrupt, &report.to_json());
    }
    if opts.verbose || opts.output != "-" {
        let tables = report.tables.len();
        logline::say!(
            "cbcopyout: exported {} rows from {tables} {} into {} files ({}) in {:.1}s",
            report.total_rows,
            if tables == 1 { "table" } else { "tables" },
            report.files.len(),
            pipeline::progress::human(report.total_file_bytes),
            report.elapsed_seconds
        );
    }
    Ok(())
}

/// `--json` on stdout, through the `interrupt` crate's stdout: a closed pipe ends the tool
/// quietly instead of `println!`'s panic.
fn print_stdout(interrupt: &Interrupt, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = interrupt.stdout();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// The COPY options of the command line.
fn copy_format(cli: &Cli) -> CopyFormat {
    CopyFormat {
        format: cli.format,
        delimiter: cli.delimiter.clone(),
        null: cli.null.clone(),
        header: cli.header,
        quote: cli.quote.clone(),
        escape: cli.escape.clone(),
        force_quote: cli.force_quote.as_ref().map(|f| {
            if f.trim() == "*" {
                ForceQuote::All
            } else {
                ForceQuote::Columns(f.split(',').map(|c| c.trim().to_string()).collect())
            }
        }),
        encoding: cli.encoding.clone(),
    }
}

fn selection(cli: &Cli) -> anyhow::Result<Selection> {
    Ok(Selection::from_patterns(
        &cli.tables,
        &cli.exclude_tables,
        &cli.schemas,
        &cli.exclude_schemas,
    )?)
}

/// `--on-segment`: every segment writes its own rows on its own host.
fn on_segment(cli: Cli, conn: ConnParams, interrupt: &Interrupt) -> anyhow::Result<()> {
    let options = OnSegmentOptions {
        conn,
        selection: selection(&cli)?,
        format: copy_format(&cli),
        columns: cli.columns,
        path_template: cli.on_segment.unwrap_or_default(),
        jobs: cli.jobs,
        verbose: cli.verbose,
    };
    let report = onsegment::run(&options, interrupt)?;
    if cli.json {
        let text = serde_json::to_string_pretty(&report).expect("report serializes");
        return print_stdout(interrupt, &text);
    }
    logline::say!(
        "cbcopyout: {} rows from {} tables written on the segments",
        report.total_rows,
        report.tables.len()
    );
    Ok(())
}

/// The export the command line asks for, checked.
fn export_options(cli: Cli, conn: ConnParams) -> anyhow::Result<ExportOptions> {
    let Some(output) = cli.output.clone() else {
        bail!("no output given: use -o DIR, -o FILE or -o - (or --on-segment PATH)");
    };
    let format = copy_format(&cli);
    let progress = cli.progress_display();
    let what = match cli.query {
        Some(q) => What::Query(q),
        None => What::Tables {
            selection: selection(&cli)?,
            columns: cli.columns,
            filter: cli.filter,
        },
    };
    Ok(ExportOptions {
        conn,
        what,
        format,
        output,
        compression: cli
            .compress
            .as_deref()
            .map(Compression::parse)
            .transpose()?,
        limits: SplitLimits {
            rows: cli.split_rows,
            bytes: cli.split_bytes.as_deref().map(parse_size).transpose()?,
        },
        jobs: cli.jobs,
        chunk_bytes: cli.chunk_size.as_deref().map(parse_size).transpose()?,
        sync: !cli.no_sync,
        force: cli.force,
        manifest: cli.manifest,
        verbose: cli.verbose,
        lock_wait_timeout_ms: cli.lock_wait_timeout,
        progress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
