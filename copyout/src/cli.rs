//! `cbcopyout`'s command line, in the library so that man pages and completions are generated
//! from it (`cbtools-package`).

use std::path::PathBuf;

use std::sync::OnceLock;

use clap::{ArgAction, CommandFactory, Parser};

use cluster::args::Refused;
use pipeline::progress::{Display, ProgressArgs};

use cluster::ConnectionArgs;

use crate::format::Format;

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
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnectionArgs,

    /// Export tables matching PATTERN (repeatable; psql patterns with * and ?)
    #[arg(short = 't', long = "table", value_name = "PATTERN")]
    pub tables: Vec<String>,
    /// Do not export tables matching PATTERN
    #[arg(short = 'T', long = "exclude-table", value_name = "PATTERN")]
    pub exclude_tables: Vec<String>,
    /// Export the tables of schemas matching PATTERN
    #[arg(short = 'n', long = "schema", value_name = "PATTERN")]
    pub schemas: Vec<String>,
    /// Do not export schemas matching PATTERN
    #[arg(short = 'N', long = "exclude-schema", value_name = "PATTERN")]
    pub exclude_schemas: Vec<String>,
    /// Export the result of one query instead of tables
    #[arg(long, value_name = "SQL", conflicts_with_all = ["tables", "schemas", "exclude_tables", "exclude_schemas", "columns", "filter", "on_segment"])]
    pub query: Option<String>,
    /// Export only these columns (comma-separated, exact names) of one table
    #[arg(long, value_name = "COL,...", value_delimiter = ',')]
    pub columns: Option<Vec<String>>,
    /// Export only rows of one table for which this SQL expression is true
    #[arg(long = "where", value_name = "EXPR")]
    pub filter: Option<String>,

    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Field delimiter (default: tab for text, comma for csv)
    #[arg(long, value_name = "CHAR")]
    pub delimiter: Option<String>,
    /// String written for NULL (default: \N for text, empty for csv)
    #[arg(long, value_name = "STRING")]
    pub null: Option<String>,
    /// Write a header line with the column names (repeated at the top of every part)
    #[arg(long)]
    pub header: bool,
    /// CSV quote character
    #[arg(long, value_name = "CHAR")]
    pub quote: Option<String>,
    /// CSV escape character
    #[arg(long, value_name = "CHAR")]
    pub escape: Option<String>,
    /// CSV: always quote these columns (comma-separated), or * for all
    #[arg(long = "force-quote", value_name = "COL,...|*")]
    pub force_quote: Option<String>,
    /// Encoding of the output (COPY's ENCODING option)
    #[arg(long, value_name = "ENCODING")]
    pub encoding: Option<String>,

    /// Output: a directory (one file per table), a file (one table or query), or - for stdout
    #[arg(short = 'o', long = "output", value_name = "DIR|FILE|-")]
    pub output: Option<String>,
    /// Compression: none, gzip[:LEVEL], zstd[:LEVEL] (default: from a .gz/.zst file name, else none)
    #[arg(short = 'Z', long = "compress", value_name = "METHOD[:LEVEL]")]
    pub compress: Option<String>,
    /// Start a new numbered part file after this many rows
    #[arg(long = "split-rows", value_name = "N")]
    pub split_rows: Option<u64>,
    /// Start a new numbered part before a part would exceed SIZE bytes (e.g. 500M, 2G)
    #[arg(long = "split-bytes", value_name = "SIZE")]
    pub split_bytes: Option<String>,
    /// Overwrite existing output files
    #[arg(long)]
    pub force: bool,
    /// Do not fsync files before renaming them into place (faster, not crash-safe)
    #[arg(long = "no-sync")]
    pub no_sync: bool,
    /// Write a JSON manifest: every file with table, rows, bytes and sha256
    #[arg(long, value_name = "FILE.json")]
    pub manifest: Option<PathBuf>,
    /// Print a machine-readable report on stdout
    #[arg(long)]
    pub json: bool,

    /// Number of parallel workers (connections), all reading one snapshot
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1, value_parser = cluster::args::jobs)]
    pub jobs: usize,
    /// Size of the ctid chunks big tables are split into for the workers (default: when compressing, about four per worker, at least 16M; uncompressed tables are split only when this is given)
    #[arg(long = "chunk-size", value_name = "SIZE")]
    pub chunk_size: Option<String>,
    /// Fail instead of waiting more than MS milliseconds for a table lock
    #[arg(long = "lock-wait-timeout", value_name = "MS")]
    pub lock_wait_timeout: Option<u64>,
    /// Cloudberry/Greenplum: every segment writes its own rows to this server-side path (must contain <SEGID>; <TABLE> for several tables)
    #[arg(long = "on-segment", value_name = "PATH_WITH_<SEGID>")]
    pub on_segment: Option<String>,

    /// Verbose messages on stderr
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Print help
    #[arg(short = '?', long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// pg_dump's flags a pg_dump user may try here, each with what to do instead.
pub const REFUSED: &[Refused] = &[
    Refused::valued("file", "cbcopyout writes to -o DIR|FILE|-").short('f'),
    Refused::switch("data-only", "cbcopyout exports rows only, always").short('a'),
    Refused::switch("schema-only", "cbcopyout exports rows, not definitions; for the schema use cbdump -s").short('s'),
    Refused::switch("inserts", "cbcopyout writes COPY formats (--format text|csv|binary); for INSERT statements use pg_dump --inserts"),
    Refused::switch("column-inserts", "cbcopyout writes COPY formats (--format text|csv|binary); for INSERT statements use pg_dump --column-inserts"),
    Refused::valued("snapshot", "cbcopyout takes its own snapshot and shares it with every worker"),
    Refused::valued("section", "cbcopyout exports rows only; sections are cbdump's (--section)"),
    Refused::switch("clean", "cbcopyout writes files, not SQL; use --force to overwrite existing files").short('c'),
];

/// `0.1.0 (inflate: isa-l)`: the build's inflater.
fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        format!(
            "{} (inflate: {})",
            env!("CARGO_PKG_VERSION"),
            archive::inflate::backend()
        )
    })
}

/// A flag combination that cannot work, refused before connecting: exit 2 with clap's usage
/// message, worded as the tests and users know it.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--on-segment writes server-side files on the segment hosts; -o, --compress and --split-* do not apply")]
    OnSegmentLocalOutput,
    #[error("--on-segment exports whole tables (COPY ... ON SEGMENT takes no WHERE); use -o with --where instead")]
    OnSegmentWhere,
    #[error("no output given: use -o DIR, -o FILE or -o - (or --on-segment PATH)")]
    NoOutput,
    #[error("--json prints the report on stdout, which -o - already uses for data; use --manifest FILE instead")]
    JsonOnStdout,
    #[error("--split-rows must be at least 1")]
    ZeroSplitRows,
}

/// The command line, or exit 2 with clap's usage message (refused flags and flag combinations
/// that cannot work included).
pub fn parse() -> Cli {
    cluster::args::parse(command(), REFUSED, Cli::validate)
}

impl Cli {
    /// Flag combinations that cannot work, found before connecting.
    pub fn validate(&self) -> Result<(), UsageError> {
        if self.on_segment.is_some() {
            return self.validate_on_segment();
        }
        let Some(output) = &self.output else {
            return Err(UsageError::NoOutput);
        };
        if self.json && output == "-" {
            return Err(UsageError::JsonOnStdout);
        }
        if self.split_rows == Some(0) {
            return Err(UsageError::ZeroSplitRows);
        }
        Ok(())
    }

    /// `--on-segment` writes on the segment hosts: the local output flags do not apply.
    fn validate_on_segment(&self) -> Result<(), UsageError> {
        if self.output.is_some() || self.compress.is_some() || self.split_rows.is_some() {
            return Err(UsageError::OnSegmentLocalOutput);
        }
        if self.filter.is_some() {
            return Err(UsageError::OnSegmentWhere);
        }
        Ok(())
    }

    /// `--progress`.
    pub fn progress_display(&self) -> Display {
        self.progress.progress
    }
}

/// The clap definition, for man pages and completions (`cbtools-package`).
pub fn command() -> clap::Command {
    Cli::command().version(version())
}
