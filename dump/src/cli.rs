//! `cbdump`'s command line, in the library so that man pages and completions are generated
//! from it (`cbtools-package`).

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use cluster::ConnectionArgs;

use crate::Format;

/// Dump a database through the coordinator into one archive: pg_dump's schema and our parallel,
/// snapshot-consistent table data, readable by stock pg_restore.
#[derive(Parser, Debug)]
#[command(
    name = "cbdump",
    version,
    disable_help_flag = true,
    after_help = "Exit status: 0 success; 1 failure (nothing left under the output name); 2 usage error; \
                  130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (nothing left under the output name, temporary files removed); \
                  killed by SIGPIPE, without a message, when the reader of the script goes away (as pg_dump).\n\
                  Examples:\n  cbdump -d shop -F d -j 4 -f shop.dir\n  cbdump -d shop -F c -Z 1 -f shop.dump\n  \
                  cbdump -d shop -F p -f shop.sql.zst --distribute --on-conflict replicated"
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnectionArgs,
    /// Output format: p (plain SQL), c (custom), d (directory)
    #[arg(short = 'F', long = "format", value_enum, default_value = "p")]
    pub format: Format,
    /// Output file or directory (plain: - for stdout)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Parallel workers (connections on one snapshot); big tables are split among them
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Compression: 0-9 (gzip level), none, gzip[:LEVEL], zstd[:LEVEL] (zstd needs pg_dump 16+)
    #[arg(short = 'Z', long = "compress", value_name = "METHOD[:LEVEL]")]
    pub compress: Option<String>,
    /// Dump only tables matching PATTERN
    #[arg(short = 't', long = "table", value_name = "PATTERN")]
    pub table: Vec<String>,
    /// Do not dump tables matching PATTERN
    #[arg(short = 'T', long = "exclude-table", value_name = "PATTERN")]
    pub exclude_table: Vec<String>,
    /// Dump only schemas matching PATTERN
    #[arg(short = 'n', long = "schema", value_name = "PATTERN")]
    pub schema: Vec<String>,
    /// Do not dump schemas matching PATTERN
    #[arg(short = 'N', long = "exclude-schema", value_name = "PATTERN")]
    pub exclude_schema: Vec<String>,
    /// Dump the definition but not the data of tables matching PATTERN
    #[arg(long = "exclude-table-data", value_name = "PATTERN")]
    pub exclude_table_data: Vec<String>,
    /// Only the schema
    #[arg(short = 's', long = "schema-only", conflicts_with = "data_only")]
    pub schema_only: bool,
    /// Only the data
    #[arg(short = 'a', long = "data-only")]
    pub data_only: bool,
    /// Skip restoration of object ownership
    #[arg(short = 'O', long = "no-owner")]
    pub no_owner: bool,
    /// Do not dump privileges (grant/revoke)
    #[arg(short = 'x', long = "no-acl", visible_alias = "no-privileges")]
    pub no_acl: bool,
    /// The pg_dump to run for the schema (default: from PATH or /usr/lib/postgresql)
    #[arg(long = "pg-dump", value_name = "PATH")]
    pub pg_dump: Option<PathBuf>,
    /// Fail instead of waiting more than MS milliseconds for a table lock
    #[arg(long = "lock-wait-timeout", value_name = "MS")]
    pub lock_wait_timeout: Option<u64>,
    /// Add Cloudberry DISTRIBUTED clauses to the schema (cbdistfix rules)
    #[arg(long)]
    pub distribute: bool,
    /// With --distribute: the distribution rules (cbdistfix's)
    #[command(flatten)]
    pub rules: distfix::rules::RuleArgs,
    /// With --distribute: use the source's pg_stats for the default choice
    #[arg(long, requires = "distribute")]
    pub stats: bool,
    /// Also dump roles and tablespaces (pg_dumpall --globals-only): into globals.sql inside a
    /// directory archive, else beside the output as OUTPUT.globals.sql
    #[arg(long)]
    pub globals: bool,
    /// Dump every database that accepts connections, each with its own snapshot, into the
    /// directory -f names: globals.sql plus one archive per database
    #[arg(long = "all-databases")]
    pub all_databases: bool,
    /// Cloudberry/Greenplum parallel mode: a gpbackup backup set under DIR, every segment writing
    /// its own files with COPY ... ON SEGMENT (refused on PostgreSQL)
    #[arg(long = "on-segment", value_name = "DIR", conflicts_with_all = ["file", "all_databases"])]
    pub on_segment: Option<PathBuf>,
    /// Print a machine-readable report on stdout (not with -f -)
    #[arg(long)]
    pub json: bool,
    /// Verbose messages on stderr
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// The clap definition, for man pages and completions (`cbtools-package`).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
