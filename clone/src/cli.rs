//! `cbclone`'s command line, in the library so that man pages and completions are generated
//! from it (`cbtools-package`).

use std::path::PathBuf;
use std::sync::OnceLock;

use clap::{ArgAction, CommandFactory, Parser};

use pipeline::progress::ProgressArgs;

use crate::verify::Verify;
use crate::CloneError;

/// Copy a database from one server to another in one command — PostgreSQL into Cloudberry,
/// Cloudberry into PostgreSQL, or like to like — from one snapshot, with no intermediate files.
#[derive(Parser, Debug)]
#[command(
    name = "cbclone",
    version,
    disable_help_flag = true,
    after_help = "Exit status: 0 success; 1 failure (rerun with --resume to continue); 2 usage error; 130/143 interrupted by SIGINT/SIGTERM.\n\
                  Examples:\n  cbclone --source 'host=pg dbname=shop' --target 'host=cbdb dbname=shop' -j 4 --verify\n  \
                  cbclone --source postgresql://pg/shop --target postgresql://cbdb/shop -j 4 --resume"
)]
pub struct Cli {
    /// Source database: a conninfo string or postgresql:// URI (libpq conventions)
    #[arg(long, value_name = "CONNINFO")]
    pub source: String,
    /// Target database (must exist): a conninfo string or postgresql:// URI
    #[arg(long, value_name = "CONNINFO")]
    pub target: String,
    /// Parallel workers: connections on each side, chunks of big tables, pg_restore -j for
    /// post-data
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1)]
    pub jobs: usize,
    /// Cut tables larger than twice SIZE into chunks of SIZE (e.g. 256M) copied in parallel;
    /// default: about four chunks per worker, none under 16 MiB
    #[arg(long = "split-tables-larger-than", value_name = "SIZE", value_parser = pipeline::size::bytes)]
    pub split_tables_larger_than: Option<u64>,
    /// Clone only tables matching PATTERN
    #[arg(short = 't', long = "table", value_name = "PATTERN")]
    pub table: Vec<String>,
    /// Do not clone tables matching PATTERN
    #[arg(short = 'T', long = "exclude-table", value_name = "PATTERN")]
    pub exclude_table: Vec<String>,
    /// Clone only schemas matching PATTERN
    #[arg(short = 'n', long = "schema", value_name = "PATTERN")]
    pub schema: Vec<String>,
    /// Do not clone schemas matching PATTERN
    #[arg(short = 'N', long = "exclude-schema", value_name = "PATTERN")]
    pub exclude_schema: Vec<String>,
    /// Clone the definition but not the data of tables matching PATTERN
    #[arg(long = "exclude-table-data", value_name = "PATTERN")]
    pub exclude_table_data: Vec<String>,
    /// Only the schema
    #[arg(short = 's', long = "schema-only", conflicts_with = "data_only")]
    pub schema_only: bool,
    /// Only the data, into tables that already exist on the target
    #[arg(short = 'a', long = "data-only")]
    pub data_only: bool,
    /// Do not set object ownership on the target
    #[arg(short = 'O', long = "no-owner")]
    pub no_owner: bool,
    /// Do not copy privileges (grant/revoke)
    #[arg(short = 'x', long = "no-acl", visible_alias = "no-privileges")]
    pub no_acl: bool,
    /// Do not copy large objects
    #[arg(short = 'B', long = "no-blobs", visible_alias = "no-large-objects")]
    pub no_blobs: bool,
    /// The source's pg_dump (default: from PATH or /usr/lib/postgresql)
    #[arg(long = "pg-dump", value_name = "PATH")]
    pub pg_dump: Option<PathBuf>,
    /// The pg_restore to apply the schema (default: beside pg_dump)
    #[arg(long = "pg-restore", value_name = "PATH")]
    pub pg_restore: Option<PathBuf>,
    /// Cloudberry target: the distribution rules (cbdistfix's)
    #[command(flatten)]
    pub rules: distfix::rules::RuleArgs,
    /// Fail instead of waiting more than MS milliseconds for a table lock on the source
    #[arg(long = "lock-wait-timeout", value_name = "MS")]
    pub lock_wait_timeout: Option<u64>,
    /// Continue a clone that failed or was killed; tables it had not finished are reloaded
    /// whole from a new snapshot
    #[arg(long)]
    pub resume: bool,
    /// Where the state of this clone is kept (default:
    /// $XDG_STATE_HOME/cbtools/clone-<fingerprint>, or under ~/.local/state)
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Compare every table on both sides afterwards: row counts, or checksums of the rows
    #[arg(long, value_enum, value_name = "WHAT", num_args = 0..=1, default_missing_value = "count")]
    pub verify: Option<Verify>,
    /// Print a machine-readable report on stdout
    #[arg(long)]
    pub json: bool,
    /// Verbose messages on stderr: each step, and a line per table copied
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Print help
    #[arg(short = '?', long, short_alias = 'h', action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// `0.1.0 (inflate: isa-l)`: the build's inflater (pg_dump's schema archive is read with it).
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

/// The command line, or exit 2 with clap's usage message.
pub fn parse() -> Cli {
    cluster::args::parse(command(), &[], Cli::validate)
}

impl Cli {
    /// Flag combinations that cannot work, found before connecting anywhere (a
    /// [`CloneError::Usage`], as the library gives for the same options).
    pub fn validate(&self) -> Result<(), CloneError> {
        if self.jobs == 0 {
            return Err(CloneError::Usage("-j must be at least 1".into()));
        }
        Ok(())
    }
}

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command().version(version())
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        super::command().debug_assert();
    }
}
