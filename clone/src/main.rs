//! `cbclone`: parse the flags, run the clone, print the report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use clone::schema::DumpFlags;
use clone::verify::Verify;
use clone::{CloneError, CloneOptions};
use cluster::{ConnParams, ConnectionArgs};

/// Copy a database from one server to another in one command — PostgreSQL into Cloudberry,
/// Cloudberry into PostgreSQL, or like to like — from one snapshot, with no intermediate files.
#[derive(Parser, Debug)]
#[command(
    name = "cbclone",
    version,
    after_help = "Exit status: 0 success; 1 failure (rerun with --resume to continue); 2 usage error; 130/143 interrupted by SIGINT/SIGTERM.\n\
                  Examples:\n  cbclone --source 'host=pg dbname=shop' --target 'host=cbdb dbname=shop' -j 4 --verify\n  \
                  cbclone --source postgresql://pg/shop --target postgresql://cbdb/shop -j 4 --resume"
)]
struct Cli {
    /// Source database: a conninfo string or postgresql:// URI (libpq conventions)
    #[arg(long, value_name = "CONNINFO")]
    source: String,
    /// Target database (must exist): a conninfo string or postgresql:// URI
    #[arg(long, value_name = "CONNINFO")]
    target: String,
    /// Parallel workers: connections on each side, chunks of big tables, pg_restore -j for
    /// post-data
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1)]
    jobs: usize,
    /// Cut tables larger than twice SIZE into chunks of SIZE (e.g. 256M) copied in parallel;
    /// default: about four chunks per worker, none under 16 MiB
    #[arg(long = "split-tables-larger-than", value_name = "SIZE", value_parser = pipeline::size::parse)]
    split_tables_larger_than: Option<u64>,
    /// Clone only tables matching PATTERN
    #[arg(short = 't', long = "table", value_name = "PATTERN")]
    table: Vec<String>,
    /// Do not clone tables matching PATTERN
    #[arg(short = 'T', long = "exclude-table", value_name = "PATTERN")]
    exclude_table: Vec<String>,
    /// Clone only schemas matching PATTERN
    #[arg(short = 'n', long = "schema", value_name = "PATTERN")]
    schema: Vec<String>,
    /// Do not clone schemas matching PATTERN
    #[arg(short = 'N', long = "exclude-schema", value_name = "PATTERN")]
    exclude_schema: Vec<String>,
    /// Clone the definition but not the data of tables matching PATTERN
    #[arg(long = "exclude-table-data", value_name = "PATTERN")]
    exclude_table_data: Vec<String>,
    /// Only the schema
    #[arg(short = 's', long = "schema-only", conflicts_with = "data_only")]
    schema_only: bool,
    /// Only the data, into tables that already exist on the target
    #[arg(short = 'a', long = "data-only")]
    data_only: bool,
    /// Do not set object ownership on the target
    #[arg(short = 'O', long = "no-owner")]
    no_owner: bool,
    /// Do not copy privileges (grant/revoke)
    #[arg(short = 'x', long = "no-acl", visible_alias = "no-privileges")]
    no_acl: bool,
    /// Do not copy large objects
    #[arg(short = 'B', long = "no-blobs", visible_alias = "no-large-objects")]
    no_blobs: bool,
    /// The source's pg_dump (default: from PATH or /usr/lib/postgresql)
    #[arg(long = "pg-dump", value_name = "PATH")]
    pg_dump: Option<PathBuf>,
    /// The pg_restore to apply the schema (default: beside pg_dump)
    #[arg(long = "pg-restore", value_name = "PATH")]
    pg_restore: Option<PathBuf>,
    /// Cloudberry target: the distribution rules (cbdistfix's)
    #[command(flatten)]
    rules: distfix::rules::RuleArgs,
    /// Fail instead of waiting more than MS milliseconds for a table lock on the source
    #[arg(long = "lock-wait-timeout", value_name = "MS")]
    lock_wait_timeout: Option<u64>,
    /// Continue a clone that failed or was killed; tables it had not finished are reloaded
    /// whole from a new snapshot
    #[arg(long)]
    resume: bool,
    /// Where the state of this clone is kept (default:
    /// $XDG_STATE_HOME/cbtools/clone-<fingerprint>, or under ~/.local/state)
    #[arg(long = "state-dir", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Compare every table on both sides afterwards: row counts, or checksums of the rows
    #[arg(long, value_enum, value_name = "WHAT", num_args = 0..=1, default_missing_value = "count")]
    verify: Option<Verify>,
    /// Print a machine-readable report on stdout
    #[arg(long)]
    json: bool,
    /// Verbose messages on stderr
    #[arg(short = 'v', long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let handle = match clone::interrupt::install() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cbclone: error: {e}");
            return ExitCode::from(1);
        }
    };
    // The signal facility ends the run: temporary files removed, 130/143/129 after a signal,
    // 1 with the message and what is left otherwise; usage errors are 2.
    match run(cli) {
        Ok(()) => handle.conclude(Ok(())),
        Err(e) => match e.downcast_ref::<CloneError>() {
            Some(err @ CloneError::Usage(_)) => {
                let _ = handle.conclude(Ok(()));
                eprintln!("cbclone: error: {err}");
                ExitCode::from(err.exit_code())
            }
            Some(CloneError::Verify(_)) => {
                handle.set_left("the clone ran to the end; the tables above differ from the source at its snapshot");
                handle.conclude(Err(format!("{e:#}")))
            }
            _ => handle.conclude(Err(format!("{e:#}"))),
        },
    }
}

fn resolve(conninfo: &str) -> anyhow::Result<ConnParams> {
    let args = ConnectionArgs {
        dbname: Some(conninfo.to_string()),
        ..Default::default()
    };
    Ok(ConnParams::resolve(&args, "cbclone")?)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let opts = CloneOptions {
        source: resolve(&cli.source)?,
        target: resolve(&cli.target)?,
        jobs: cli.jobs,
        split: match cli.split_tables_larger_than {
            Some(b) => clone::tables::Split::LargerThan(b),
            None => clone::tables::Split::Auto,
        },
        dump: DumpFlags {
            tables: cli.table,
            exclude_tables: cli.exclude_table,
            schemas: cli.schema,
            exclude_schemas: cli.exclude_schema,
            no_owner: cli.no_owner,
            no_acl: cli.no_acl,
        },
        exclude_table_data: cli.exclude_table_data,
        schema_only: cli.schema_only,
        data_only: cli.data_only,
        no_blobs: cli.no_blobs,
        pg_dump: cli.pg_dump,
        pg_restore: cli.pg_restore,
        rules: cli.rules,
        resume: cli.resume,
        state_dir: cli.state_dir,
        verify: cli.verify,
        lock_wait_timeout: cli.lock_wait_timeout,
        verbose: cli.verbose,
    };
    let report = clone::clone(&opts)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    eprintln!(
        "cbclone: {} tables, {} rows, {} in {:.2} s",
        report.tables.len(),
        report.rows,
        pipeline::progress::human(report.bytes),
        report.seconds
    );
    if let Some(diff) = report
        .verify
        .as_deref()
        .and_then(clone::verify::differences)
    {
        return Err(CloneError::Verify(diff).into());
    }
    if let Some(checked) = &report.verify {
        eprintln!("cbclone: verified {} tables: all equal", checked.len());
    }
    Ok(())
}
