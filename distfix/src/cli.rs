//! `cbdistfix`'s command line, in the library so that man pages and completions are generated
//! from it (`cbtools-package`).

use std::path::PathBuf;

use std::sync::OnceLock;

use clap::{ArgAction, CommandFactory, Parser};

use cluster::args::Refused;

use archive::codec::Compression;

#[derive(Parser, Debug)]
#[command(
    name = "cbdistfix",
    version,
    disable_help_flag = true,
    about = "Add Apache Cloudberry DISTRIBUTED clauses to the tables of a pg_dump (or strip them)"
)]
pub struct Cli {
    /// A plain SQL dump (optionally .gz/.zst compressed), a pg_dump custom archive (-Fc), a
    /// directory archive (-Fd), or `-` for stdin. The format is read from the content.
    pub input: PathBuf,
    /// Output file (a new directory for -Fd input), or `-` for stdout (plain dumps only).
    /// Required unless --dry-run, --check or --in-place.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Directory archives: rewrite toc.dat where it is (data files are never touched).
    #[arg(long, conflicts_with = "output")]
    pub in_place: bool,
    #[command(flatten)]
    pub rules: crate::rules::RuleArgs,
    /// Replace DISTRIBUTED clauses the dump already has.
    #[arg(long)]
    pub force: bool,
    /// Remove DISTRIBUTED clauses (and nothing else) so the dump loads into PostgreSQL.
    #[arg(long, conflicts_with_all = ["policy", "default_rule", "on_conflict", "force", "stats"])]
    pub strip: bool,
    /// `postgres`: translate a dump of an MPP server into plain PostgreSQL (DISTRIBUTED clauses,
    /// append-optimized storage options and column ENCODINGs, `gp_*` settings, grants on `gp_*`
    /// catalog objects, a partitioned parent's doubled rows); every change is listed on stderr.
    #[arg(long, value_enum, conflicts_with_all = ["strip", "policy", "default_rule", "on_conflict", "force", "stats"])]
    pub target: Option<Target>,
    /// Write the decisions as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Exit with status 2 when any table gets a default clause or needed conflict handling.
    #[arg(long)]
    pub check: bool,
    /// Decide and report, write no output.
    #[arg(long)]
    pub dry_run: bool,
    /// Connection string of the source database; pg_stats then guides the default choice.
    #[arg(long, value_name = "CONNSTRING")]
    pub stats: Option<String>,
    /// Output compression of a plain dump: none, gzip[:LEVEL], zstd[:LEVEL] (default: same as the input).
    #[arg(long, value_parser = Compression::parse)]
    pub compress: Option<Compression>,
    /// Print help (-h is the host in the other tools, so help is -? here too)
    #[arg(short = '?', long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// What a pg_dump/pg_restore user may try here, with what to do instead.
pub const REFUSED: &[Refused] = &[
    Refused::switch("host", "cbdistfix reads a dump, not a server: give the server for --stats as a conninfo (--stats 'host=... dbname=...'); help is -? or --help").short('h'),
    Refused::valued("dbname", "cbdistfix reads a dump, not a server: give the database for --stats as a conninfo (--stats 'dbname=...')").short('d'),
    Refused::valued("port", "cbdistfix reads a dump, not a server: give the port for --stats in its conninfo (--stats 'port=...')").short('p'),
    Refused::valued("username", "cbdistfix reads a dump, not a server: give the user for --stats in its conninfo (--stats 'user=...')").short('U'),
    Refused::valued("file", "cbdistfix writes to -o FILE (-o - for stdout)").short('f'),
    Refused::switch("no-comments", "cbdistfix changes DISTRIBUTED clauses only; leave comments out with pg_dump or pg_restore --no-comments"),
    Refused::switch("no-owner", "cbdistfix changes DISTRIBUTED clauses only; leave owners out with pg_restore -O").short('O'),
    Refused::switch("no-privileges", "cbdistfix changes DISTRIBUTED clauses only; leave privileges out with pg_restore -x").short('x'),
    Refused::switch("clean", "cbdistfix changes DISTRIBUTED clauses only; add DROPs with pg_restore -c").short('c'),
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

/// A flag combination that cannot work, refused before reading anything: exit 2 with clap's
/// usage message, worded as the tests and users know it.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("no output given: use -o FILE, -o - for stdout, --in-place, --dry-run or --check")]
    NoOutput,
}

/// The command line, or exit 2 with clap's usage message (refused flags and flag combinations
/// that cannot work included).
pub fn parse() -> Cli {
    cluster::args::parse(command(), REFUSED, Cli::validate)
}

impl Cli {
    /// Flag combinations that cannot work, found before reading anything.
    pub fn validate(&self) -> Result<(), UsageError> {
        if self.output.is_none() && !self.dry_run && !self.check && !self.in_place {
            return Err(UsageError::NoOutput);
        }
        Ok(())
    }
}

/// `--target`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Postgres,
}

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command().version(version())
}
