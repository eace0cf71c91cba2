//! `cbdump`'s command line, in the library so that man pages and completions are generated
//! from it (`cbtools-package`).

use std::path::PathBuf;

use std::sync::OnceLock;

use clap::{ArgAction, CommandFactory, Parser};

use cluster::args::Refused;
use pipeline::progress::{Display, ProgressArgs};

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
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1, value_parser = cluster::args::jobs)]
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
    /// Plain output: DROP each object before creating it (pg_dump -c; give it to pg_restore
    /// for archives)
    #[arg(short = 'c', long = "clean")]
    pub clean: bool,
    /// Plain output: CREATE DATABASE and connect to it first (pg_dump -C; archives always hold
    /// the database for pg_restore -C)
    #[arg(short = 'C', long = "create")]
    pub create: bool,
    /// With -c: DROP ... IF EXISTS
    #[arg(long = "if-exists", requires = "clean")]
    pub if_exists: bool,
    /// Dump the data (and the schema) in this client encoding (default: the database's)
    #[arg(short = 'E', long = "encoding", value_name = "ENCODING")]
    pub encoding: Option<String>,
    /// Include large objects (the default unless -n, -t or -s narrow the dump)
    #[arg(short = 'b', long = "large-objects", visible_alias = "blobs")]
    pub large_objects: bool,
    /// Leave large objects out
    #[arg(
        short = 'B',
        long = "no-large-objects",
        visible_alias = "no-blobs",
        conflicts_with = "large_objects"
    )]
    pub no_large_objects: bool,
    /// Dump only this section: pre-data, data or post-data (repeatable; data alone is -a,
    /// pre-data with post-data is -s)
    #[arg(long = "section", value_name = "SECTION", value_parser = ["pre-data", "data", "post-data"], conflicts_with_all = ["schema_only", "data_only"])]
    pub section: Vec<String>,
    /// Do not dump comments
    #[arg(long = "no-comments")]
    pub no_comments: bool,
    /// Do not dump publications
    #[arg(long = "no-publications")]
    pub no_publications: bool,
    /// Do not dump security labels
    #[arg(long = "no-security-labels")]
    pub no_security_labels: bool,
    /// Do not dump subscriptions
    #[arg(long = "no-subscriptions")]
    pub no_subscriptions: bool,
    /// Do not dump table access methods
    #[arg(long = "no-table-access-method")]
    pub no_table_access_method: bool,
    /// Do not dump tablespace assignments
    #[arg(long = "no-tablespaces")]
    pub no_tablespaces: bool,
    /// Do not dump TOAST compression methods
    #[arg(long = "no-toast-compression")]
    pub no_toast_compression: bool,
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Print help
    #[arg(short = '?', long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// pg_dump's flags cbdump does not take, each with what to do instead.
pub const REFUSED: &[Refused] = &[
    Refused::switch("inserts", "cbdump writes table data as COPY (the fastest to restore); for INSERT statements use pg_dump --inserts"),
    Refused::switch("column-inserts", "cbdump writes table data as COPY; for INSERT statements use pg_dump --column-inserts"),
    Refused::valued("rows-per-insert", "cbdump writes table data as COPY; for INSERT statements use pg_dump --rows-per-insert"),
    Refused::switch("on-conflict-do-nothing", "cbdump writes table data as COPY; for INSERT ... ON CONFLICT DO NOTHING use pg_dump --inserts --on-conflict-do-nothing"),
    Refused::switch("attribute-inserts", "cbdump writes table data as COPY; for INSERT statements use pg_dump --column-inserts"),
    Refused::switch("load-via-partition-root", "not supported: cbdump's COPY targets each partition; restore into the partitioned table with pg_dump --load-via-partition-root"),
    Refused::valued("snapshot", "cbdump takes its own snapshot and shares it with pg_dump and every worker; to dump an exported snapshot use pg_dump --snapshot"),
    Refused::switch("no-sync", "cbdump always syncs what it writes before renaming it into place"),
    Refused::switch("serializable-deferrable", "not supported: cbdump's snapshot is REPEATABLE READ, as pg_dump's default"),
    Refused::switch("no-unlogged-table-data", "not supported: cbdump dumps the data of every selected table; leave unlogged tables out with -T or --exclude-table-data"),
    Refused::switch("quote-all-identifiers", "not supported: cbdump quotes identifiers where SQL needs it, as pg_dump's default"),
    Refused::valued("filter", "not supported: give -t/-T/-n/-N/--exclude-table-data on the command line"),
    Refused::valued("extension", "not supported: cbdump dumps every extension the selected objects need, as pg_dump without -e").short('e'),
    Refused::valued("exclude-extension", "not supported by cbdump; use pg_dump --exclude-extension"),
    Refused::valued("include-foreign-data", "not supported: cbdump dumps no foreign-server data; use pg_dump --include-foreign-data"),
    Refused::valued("table-and-children", "not supported: list the partitions with -t PATTERN"),
    Refused::valued("exclude-table-and-children", "not supported: exclude the partitions with -T PATTERN"),
    Refused::valued("exclude-table-data-and-children", "not supported: give --exclude-table-data PATTERN for the partitions"),
    Refused::switch("strict-names", "not supported: cbdump says when a pattern matches no table"),
    Refused::switch("enable-row-security", "not supported: cbdump dumps with row security off (an error instead of a filtered table), as pg_dump's default"),
    Refused::switch("disable-dollar-quoting", "not supported by cbdump; use pg_dump --disable-dollar-quoting"),
    Refused::switch("disable-triggers", "a restore option: give --disable-triggers to pg_restore or cbrestore"),
    Refused::switch("use-set-session-authorization", "a restore option: give --use-set-session-authorization to pg_restore"),
    Refused::switch("no-synchronized-snapshots", "not needed: cbdump's workers share one exported snapshot"),
    Refused::valued("superuser", "a restore option: give -S to pg_restore").short('S'),
    Refused::switch("no-policies", "not supported by cbdump; use pg_dump --no-policies"),
    Refused::switch("no-statistics", "not supported by cbdump; use pg_dump --no-statistics"),
    Refused::switch("statistics-only", "not supported by cbdump; use pg_dump --statistics-only"),
    Refused::switch("with-statistics", "not supported by cbdump; use pg_dump --with-statistics"),
    Refused::switch("sequence-data", "not supported by cbdump; use pg_dump --sequence-data"),
];

/// `0.1.0 (inflate: isa-l)`: the build's inflater, which decides how fast archives are read.
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
    #[error(
        "--policy, --default and --on-conflict are distribution rules: they need --distribute"
    )]
    RulesNeedDistribute,
    #[error("-F c and -F d need -f OUTPUT")]
    ArchiveNeedsFile,
    #[error("--json prints on stdout, which the script already uses: give -f FILE")]
    JsonOnStdout,
    #[error("--globals writes a second file: give -f")]
    GlobalsOnStdout,
}

/// The command line, or exit 2 with clap's usage message (refused flags and flag combinations
/// that cannot work included).
pub fn parse() -> Cli {
    cluster::args::parse(command(), REFUSED, Cli::validate)
}

impl Cli {
    /// Flag combinations that cannot work, found before connecting.
    pub fn validate(&self) -> Result<(), UsageError> {
        if self.rules.any() && !self.distribute {
            return Err(UsageError::RulesNeedDistribute);
        }
        if self.file.is_none() && self.on_segment.is_none() && self.format != Format::Plain {
            return Err(UsageError::ArchiveNeedsFile);
        }
        let to_stdout = self.on_segment.is_none()
            && !matches!(self.file.as_deref(), Some(f) if f.as_os_str() != "-");
        if self.json && to_stdout {
            return Err(UsageError::JsonOnStdout);
        }
        if self.globals && to_stdout {
            return Err(UsageError::GlobalsOnStdout);
        }
        Ok(())
    }

    /// What `--section` means for our data: (schema only, data only).
    pub fn data_sections(&self) -> (bool, bool) {
        let has = |s: &str| self.section.iter().any(|x| x == s);
        match (
            self.section.is_empty(),
            has("data"),
            has("pre-data") || has("post-data"),
        ) {
            (true, _, _) => (self.schema_only, self.data_only),
            (false, true, false) => (false, true),
            (false, false, _) => (true, false),
            (false, true, true) => (false, false),
        }
    }

    /// The flags of pg_dump's schema pass that ask nothing of our data.
    pub fn schema_flags(&self) -> Vec<String> {
        let switches = [
            // The short forms: every pg_dump since 10 has them (16 renamed --blobs).
            ("-b", self.large_objects),
            ("-B", self.no_large_objects),
            ("--no-comments", self.no_comments),
            ("--no-publications", self.no_publications),
            ("--no-security-labels", self.no_security_labels),
            ("--no-subscriptions", self.no_subscriptions),
            ("--no-table-access-method", self.no_table_access_method),
            ("--no-tablespaces", self.no_tablespaces),
            ("--no-toast-compression", self.no_toast_compression),
        ];
        let mut flags: Vec<String> = switches
            .iter()
            .filter(|(_, on)| *on)
            .map(|(f, _)| f.to_string())
            .collect();
        // `--section=data` alone is -a (data_sections); otherwise pg_dump filters its sections.
        if self.data_sections() != (false, true) {
            flags.extend(self.section.iter().map(|s| format!("--section={s}")));
        }
        flags
    }

    /// The flags of the pg_restore that renders a plain script. pg_dump ignores `-O`,
    /// `--no-tablespaces` and `--no-table-access-method` when it writes an archive (they are
    /// pg_restore's to apply), so they go here as well as to the schema pass.
    pub fn script_flags(&self) -> Vec<String> {
        [
            ("--clean", self.clean),
            ("--create", self.create),
            ("--if-exists", self.if_exists),
            ("--no-owner", self.no_owner),
            ("--no-tablespaces", self.no_tablespaces),
            ("--no-table-access-method", self.no_table_access_method),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| f.to_string())
        .collect()
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
