//! `cbcopyout`: export tables or queries with COPY TO into local files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{ArgAction, Parser};

use cluster::catalog::Selection;
use cluster::{ConnParams, ConnectionArgs};
use copyout::compress::Compression;
use copyout::format::{CopyFormat, ForceQuote, Format};
use copyout::onsegment::{self, OnSegmentOptions};
use copyout::{ExportOptions, What};
use interrupt::{Interrupt, Mode};
use pipeline::sink::SplitLimits;

/// Export tables, column subsets, filtered rows or a query with COPY TO into delimited files on
/// this host: one consistent snapshot, parallel workers, compression, split parts, manifest.
#[derive(Parser, Debug)]
#[command(
    name = "cbcopyout",
    version,
    disable_help_flag = true,
    after_help = "Exit status: 0 success, 1 failure (nothing left under a final name), 2 usage error, \
                  130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (temporary files removed); killed by SIGPIPE, \
                  without a message, when the reader of -o - goes away (as pg_dump).\n\
                  Examples:\n  cbcopyout -d shop -t 'sales.*' --format csv --header --compress zstd -j 4 -o exports/\n  \
                  cbcopyout -d shop -t public.orders --where \"status = 'open'\" -o open_orders.csv.gz --format csv\n  \
                  cbcopyout -d shop --query 'SELECT id, total FROM orders' -o -"
)]
struct Cli {
    #[command(flatten)]
    conn: ConnectionArgs,

    /// Export tables matching PATTERN (repeatable; psql patterns with * and ?)
    #[arg(short = 't', long = "table", value_name = "PATTERN")]
    tables: Vec<String>,
    /// Do not export tables matching PATTERN
    #[arg(short = 'T', long = "exclude-table", value_name = "PATTERN")]
    exclude_tables: Vec<String>,
    /// Export the tables of schemas matching PATTERN
    #[arg(short = 'n', long = "schema", value_name = "PATTERN")]
    schemas: Vec<String>,
    /// Do not export schemas matching PATTERN
    #[arg(short = 'N', long = "exclude-schema", value_name = "PATTERN")]
    exclude_schemas: Vec<String>,
    /// Export the result of one query instead of tables
    #[arg(long, value_name = "SQL", conflicts_with_all = ["tables", "schemas", "exclude_tables", "exclude_schemas", "columns", "filter", "on_segment"])]
    query: Option<String>,
    /// Export only these columns (comma-separated, exact names) of one table
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Export only rows of one table for which this SQL expression is true
    #[arg(long = "where", value_name = "EXPR")]
    filter: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Field delimiter (default: tab for text, comma for csv)
    #[arg(long, value_name = "CHAR")]
    delimiter: Option<String>,
    /// String written for NULL (default: \N for text, empty for csv)
    #[arg(long, value_name = "STRING")]
    null: Option<String>,
    /// Write a header line with the column names (repeated at the top of every part)
    #[arg(long)]
    header: bool,
    /// CSV quote character
    #[arg(long, value_name = "CHAR")]
    quote: Option<String>,
    /// CSV escape character
    #[arg(long, value_name = "CHAR")]
    escape: Option<String>,
    /// CSV: always quote these columns (comma-separated), or * for all
    #[arg(long = "force-quote", value_name = "COL,...|*")]
    force_quote: Option<String>,
    /// Encoding of the output (COPY's ENCODING option)
    #[arg(long, value_name = "ENCODING")]
    encoding: Option<String>,

    /// Output: a directory (one file per table), a file (one table or query), or - for stdout
    #[arg(short = 'o', long = "output", value_name = "DIR|FILE|-")]
    output: Option<String>,
    /// Compression: none, gzip[:LEVEL], zstd[:LEVEL] (default: from a .gz/.zst file name, else none)
    #[arg(short = 'Z', long = "compress", value_name = "METHOD[:LEVEL]")]
    compress: Option<String>,
    /// Start a new numbered part file after this many rows
    #[arg(long = "split-rows", value_name = "N")]
    split_rows: Option<u64>,
    /// Start a new numbered part before a part would exceed SIZE bytes (e.g. 500M, 2G)
    #[arg(long = "split-bytes", value_name = "SIZE")]
    split_bytes: Option<String>,
    /// Overwrite existing output files
    #[arg(long)]
    force: bool,
    /// Do not fsync files before renaming them into place (faster, not crash-safe)
    #[arg(long = "no-sync")]
    no_sync: bool,
    /// Write a JSON manifest: every file with table, rows, bytes and sha256
    #[arg(long, value_name = "FILE.json")]
    manifest: Option<PathBuf>,
    /// Print a machine-readable report on stdout
    #[arg(long)]
    json: bool,

    /// Number of parallel workers (connections), all reading one snapshot
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1)]
    jobs: usize,
    /// Size of the ctid chunks big tables are split into for the workers (default: when compressing, about four per worker, at least 16M; uncompressed tables are split only when this is given)
    #[arg(long = "chunk-size", value_name = "SIZE")]
    chunk_size: Option<String>,
    /// Fail instead of waiting more than MS milliseconds for a table lock
    #[arg(long = "lock-wait-timeout", value_name = "MS")]
    lock_wait_timeout: Option<u64>,
    /// Cloudberry/Greenplum: every segment writes its own rows to this server-side path (must contain <SEGID>; <TABLE> for several tables)
    #[arg(long = "on-segment", value_name = "PATH_WITH_<SEGID>")]
    on_segment: Option<String>,

    /// Verbose messages on stderr
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

/// The error and those of its causes that add something: our messages often quote their cause
/// already, and saying it twice reads badly.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

fn parse_size(s: &str) -> anyhow::Result<u64> {
    pipeline::size::parse(s).map_err(anyhow::Error::msg)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let interrupt = match interrupt::install("cbcopyout", Mode::Poll) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("cbcopyout: error: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = run(cli, &interrupt).map_err(|e| error_chain(&e));
    interrupt.conclude(outcome)
}

fn run(cli: Cli, interrupt: &Interrupt) -> anyhow::Result<()> {
    if cli.jobs == 0 {
        bail!("-j/--jobs must be at least 1");
    }
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
        eprintln!(
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
    if cli.output.is_some() || cli.compress.is_some() || cli.split_rows.is_some() {
        bail!("--on-segment writes server-side files on the segment hosts; -o, --compress and --split-* do not apply");
    }
    if cli.filter.is_some() {
        bail!("--on-segment exports whole tables (COPY ... ON SEGMENT takes no WHERE); use -o with --where instead");
    }
    let options = OnSegmentOptions {
        conn,
        selection: selection(&cli)?,
        format: copy_format(&cli),
        columns: cli.columns,
        path_template: cli.on_segment.unwrap_or_default(),
        jobs: cli.jobs,
        verbose: cli.verbose,
    };
    let report = onsegment::run(&options, interrupt.flag())?;
    if cli.json {
        let text = serde_json::to_string_pretty(&report).expect("report serializes");
        return print_stdout(interrupt, &text);
    }
    eprintln!(
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
    if cli.json && output == "-" {
        bail!("--json prints the report on stdout, which -o - already uses for data; use --manifest FILE instead");
    }
    if cli.split_rows == Some(0) {
        bail!("--split-rows must be at least 1");
    }
    let format = copy_format(&cli);
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
