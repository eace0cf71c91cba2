//! `cbrestore`: load backups back through the coordinator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{ArgAction, Parser};

use cluster::{ConnParams, ConnectionArgs};
use gpbackup::to_sql::{write_sql, Target, ToSqlOptions};
use gpbackup::{BackupSet, Filter};
use restore::dump::{self, Distribution, DumpRestoreOptions};
use restore::gpset::{self, GpRestoreOptions, TargetChoice};
use restore::RestoreError;

/// Restore through the coordinator: pg_dump/cbdump custom and directory archives, and gpbackup
/// backup sets (every segment's files merged into one COPY per table, into a cluster of any
/// size or plain PostgreSQL).
#[derive(Parser, Debug)]
#[command(
    name = "cbrestore",
    version,
    disable_help_flag = true,
    after_help = "Exit status: 0 success; 1 failure (or errors skipped with --on-error-continue); 2 usage error; 130 interrupted.\n\
                  Examples:\n  cbrestore -d shop -j 4 shop.dump\n  cbrestore -d shop -j 4 --distribute --on-conflict replicated shop.dir/\n  \
                  cbrestore -d shop -j 4 /backups/gpseg-1 /backups/sdw1 /backups/sdw2\n  \
                  cbrestore -d shop --create-db --timestamp 20240102030405 /backups/all-hosts-copied-here/\n  \
                  cbrestore --to-sql shop.sql.gz --target postgres /backups/"
)]
struct Cli {
    #[command(flatten)]
    conn: ConnectionArgs,

    /// A pg_dump/cbdump custom archive file or directory archive, a plain SQL dump (.gz/.zst
    /// or not; - for stdin); or gpbackup backup directories (one root holding every host's
    /// files, or one root per host)
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,

    /// Archives: restore only this table (repeatable; as pg_restore -t)
    #[arg(short = 't', long = "table", value_name = "NAME")]
    table: Vec<String>,
    /// Archives: restore only objects in this schema (repeatable)
    #[arg(short = 'n', long = "schema", value_name = "NAME")]
    schema: Vec<String>,
    /// Archives: do not restore this table (repeatable)
    #[arg(short = 'T', long = "exclude-table-name", value_name = "NAME")]
    exclude_table_name: Vec<String>,
    /// Archives: do not restore objects in this schema (repeatable)
    #[arg(short = 'N', long = "exclude-schema-name", value_name = "NAME")]
    exclude_schema_name: Vec<String>,
    /// Archives: drop objects before recreating them
    #[arg(short = 'c', long)]
    clean: bool,
    /// Archives: use IF EXISTS when dropping (with --clean)
    #[arg(long = "if-exists", requires = "clean")]
    if_exists: bool,
    /// Archives: create the database named in the archive (-d then names the database to connect to first)
    #[arg(short = 'C', long = "create")]
    create: bool,
    /// Archives: restore as one transaction (not with -j)
    #[arg(short = '1', long = "single-transaction")]
    single_transaction: bool,
    /// Archives: print the table of contents and exit
    #[arg(short = 'l', long = "list")]
    list: bool,
    /// Archives: check every table's data (decompression, and cbdump's manifest checksums and
    /// row counts) without a server, and exit
    #[arg(long = "verify-only")]
    verify_only: bool,
    /// Archives: write the SQL that would run to FILE instead of running it
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Archives: ANALYZE the restored tables at the end
    #[arg(long)]
    analyze: bool,
    /// With -j: a table whose data takes more than SIZE in the archive or backup set (e.g. 1G)
    /// is loaded by its worker plus every worker that has nothing else to do, each with its own
    /// COPY, committed together. Smaller tables are emptied and copied with FREEZE in the
    /// load's own transaction instead (no hint-bit rewrite, no WAL with wal_level=minimal).
    #[arg(long = "split-tables-larger-than", value_name = "SIZE", value_parser = parse_size)]
    split_tables_larger_than: Option<u64>,
    /// Archives: add Cloudberry DISTRIBUTED clauses while restoring (cbdistfix rules)
    #[arg(long)]
    distribute: bool,
    /// With --distribute: the distribution rules (cbdistfix's)
    #[command(flatten)]
    rules: distfix::rules::RuleArgs,
    /// Archives: remove DISTRIBUTED clauses while restoring (Cloudberry dump into PostgreSQL)
    #[arg(long = "strip-distribution", conflicts_with = "distribute")]
    strip_distribution: bool,
    /// The backup set to restore when the paths hold several
    #[arg(long, value_name = "YYYYMMDDHHMMSS")]
    timestamp: Option<String>,
    /// Dialect of the target: detected from the server by default
    #[arg(long, value_enum, default_value = "auto")]
    target: TargetChoice,

    /// Restore only this table (schema.table; repeatable)
    #[arg(long = "include-table", value_name = "SCHEMA.TABLE")]
    include_table: Vec<String>,
    /// Tables to restore, one schema.table per line
    #[arg(long = "include-table-file", value_name = "FILE")]
    include_table_file: Vec<PathBuf>,
    /// Do not restore this table (repeatable)
    #[arg(long = "exclude-table", value_name = "SCHEMA.TABLE")]
    exclude_table: Vec<String>,
    /// Tables not to restore, one per line
    #[arg(long = "exclude-table-file", value_name = "FILE")]
    exclude_table_file: Vec<PathBuf>,
    /// Restore only this schema (repeatable)
    #[arg(long = "include-schema", value_name = "SCHEMA")]
    include_schema: Vec<String>,
    /// Schemas to restore, one per line
    #[arg(long = "include-schema-file", value_name = "FILE")]
    include_schema_file: Vec<PathBuf>,
    /// Do not restore this schema (repeatable)
    #[arg(long = "exclude-schema", value_name = "SCHEMA")]
    exclude_schema: Vec<String>,
    /// Schemas not to restore, one per line
    #[arg(long = "exclude-schema-file", value_name = "FILE")]
    exclude_schema_file: Vec<PathBuf>,

    /// Only the data (tables must exist; sequence values are restored too)
    #[arg(short = 'a', long = "data-only", conflicts_with = "metadata_only")]
    data_only: bool,
    /// Only the schema
    #[arg(short = 's', long = "metadata-only", visible_alias = "schema-only")]
    metadata_only: bool,
    /// Empty each table (in the load's transaction) before loading it
    #[arg(long = "truncate-table")]
    truncate_table: bool,
    /// Create the target database (-d names it) first
    #[arg(long = "create-db")]
    create_db: bool,
    /// Also restore roles, tablespaces and other global objects
    #[arg(long = "with-globals")]
    with_globals: bool,
    /// Record failed statements and tables in the report and go on
    #[arg(long = "on-error-continue")]
    on_error_continue: bool,
    /// Skip ALTER ... OWNER TO
    #[arg(short = 'O', long = "no-owner")]
    no_owner: bool,
    /// Skip GRANT and REVOKE
    #[arg(short = 'x', long = "no-privileges")]
    no_privileges: bool,

    /// Tables loaded at once, one connection each (archives and gpbackup sets; single-data-file
    /// sets load in order; a plain script runs in order on one connection)
    #[arg(short = 'j', long = "jobs", value_name = "N", default_value_t = 1)]
    jobs: usize,
    /// Continue an interrupted restore: finished statements and tables are skipped, unfinished
    /// tables are emptied and loaded again
    #[arg(long)]
    resume: bool,
    /// Where progress is recorded for --resume (default: <input>.cbrestore-state.json beside a
    /// plain script; .cbrestore-<timestamp>-<db>.state.json here for gpbackup sets)
    #[arg(long = "state-file", value_name = "FILE")]
    state_file: Option<PathBuf>,
    /// Directory for the default state file (plain scripts and gpbackup sets)
    #[arg(long = "state-dir", value_name = "DIR", conflicts_with = "state_file")]
    state_dir: Option<PathBuf>,

    /// Write the whole set as one psql script instead of restoring (no server needed; .gz compresses)
    #[arg(long = "to-sql", value_name = "FILE[.gz]")]
    to_sql: Option<PathBuf>,

    /// Print a machine-readable report on stdout
    #[arg(long)]
    json: bool,
    /// Verbose messages on stderr
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    help: Option<bool>,
}

fn parse_size(s: &str) -> Result<u64, String> {
    pipeline::size::parse(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let interrupted = matches!(
                e.downcast_ref::<RestoreError>(),
                Some(RestoreError::Interrupted)
            );
            eprintln!("cbrestore: error: {e:#}");
            ExitCode::from(if interrupted { 130 } else { 1 })
        }
    }
}

/// Names from the command line plus those of the `-file` variants (one per line, `#` comments).
fn names(given: &[String], files: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = given.to_vec();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(out)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if cli.jobs == 0 {
        bail!("-j/--jobs must be at least 1");
    }
    if cli.rules.any() && !cli.distribute {
        bail!(
            "--policy, --default and --on-conflict are distribution rules: they need --distribute"
        );
    }
    let filter = Filter {
        include_schemas: names(&cli.include_schema, &cli.include_schema_file)?,
        exclude_schemas: names(&cli.exclude_schema, &cli.exclude_schema_file)?,
        include_tables: names(&cli.include_table, &cli.include_table_file)?,
        exclude_tables: names(&cli.exclude_table, &cli.exclude_table_file)?,
    };
    for t in filter.include_tables.iter().chain(&filter.exclude_tables) {
        if gpbackup::filter::split_fqn(t).is_none() {
            bail!("table {t:?} must be schema-qualified (schema.table)");
        }
    }

    // A custom archive file or a directory archive: the pg_restore path.
    if cli.paths.len() == 1 && cli.paths[0] == Path::new("-") {
        return restore_plain(&cli, &cli.paths[0]);
    }
    if cli.paths.len() == 1 {
        if let Some(archive) = archive::Archive::open(&cli.paths[0])
            .with_context(|| cli.paths[0].display().to_string())?
        {
            return restore_archive(&cli, archive);
        }
        let p = &cli.paths[0];
        if p.is_file() || p == Path::new("-") {
            return restore_plain(&cli, p);
        }
    }
    let mut filter = filter;
    for t in &cli.table {
        if gpbackup::filter::split_fqn(t).is_none() {
            bail!("-t {t:?}: gpbackup sets need schema-qualified names (schema.table)");
        }
        filter.include_tables.push(t.clone());
    }
    filter.include_schemas.extend(cli.schema.iter().cloned());
    filter
        .exclude_tables
        .extend(cli.exclude_table_name.iter().cloned());
    filter
        .exclude_schemas
        .extend(cli.exclude_schema_name.iter().cloned());

    if let Some(out) = &cli.to_sql {
        return to_sql(&cli, out, filter);
    }

    let conn = ConnParams::resolve(&cli.conn, "cbrestore")?;
    let abort = Arc::new(AtomicBool::new(false));
    {
        let abort = Arc::clone(&abort);
        ctrlc::set_handler(move || abort.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    let opts = GpRestoreOptions {
        conn,
        roots: cli.paths.clone(),
        timestamp: cli.timestamp.clone(),
        target: cli.target,
        filter,
        data_only: cli.data_only,
        metadata_only: cli.metadata_only,
        truncate_table: cli.truncate_table,
        create_db: cli.create_db,
        with_globals: cli.with_globals,
        on_error_continue: cli.on_error_continue,
        no_owner: cli.no_owner,
        no_privileges: cli.no_privileges,
        jobs: cli.jobs,
        split_larger_than: cli.split_tables_larger_than,
        resume: cli.resume,
        state_file: cli.state_file.clone(),
        state_dir: cli.state_dir.clone(),
        verbose: cli.verbose,
    };
    let report = gpset::run(&opts, abort)?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    }
    for t in &report.translation {
        if cli.verbose {
            eprintln!("cbrestore: {t}");
        }
    }
    eprintln!(
        "cbrestore: restored backup {} ({} segment(s)) into {}: {} tables, {} rows, {} statements, {} translated or skipped for PostgreSQL, in {:.1}s",
        report.backup_timestamp,
        report.segment_count,
        report.target,
        report.tables.len(),
        report.total_rows,
        report.statements,
        report.translation.len(),
        report.elapsed_seconds
    );
    if !report.errors.is_empty() {
        eprintln!(
            "cbrestore: {} errors were skipped (--on-error-continue):",
            report.errors.len()
        );
        for e in &report.errors {
            eprintln!("  {e}");
        }
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// psql's job for plain SQL dumps, with cbrestore's error handling and distribution rewriting.
fn restore_plain(cli: &Cli, input: &Path) -> anyhow::Result<ExitCode> {
    if cli.clean || cli.create {
        bail!("-c and -C need a custom or directory archive (as with pg_restore); a plain script drops and creates what pg_dump put in it");
    }
    if cli.resume && cli.single_transaction {
        bail!("--resume with --single-transaction: a single transaction is either committed or not, there is nothing to resume");
    }
    if cli.single_transaction && cli.on_error_continue {
        bail!("--single-transaction with --on-error-continue: the first error aborts the transaction (as in psql)");
    }
    if cli.jobs > 1 && !cli.list && cli.file.is_none() {
        // pg_restore refuses plain scripts outright; running it in order is still useful.
        eprintln!(
            "cbrestore: note: -j {} does not apply to a plain SQL script: its statements run in order on one connection, as psql runs them (a custom or directory archive restores in parallel)",
            cli.jobs
        );
    }
    let conn = ConnParams::resolve(&cli.conn, "cbrestore")?;
    let abort = Arc::new(AtomicBool::new(false));
    {
        let abort = Arc::clone(&abort);
        ctrlc::set_handler(move || abort.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    let opts = restore::plain::PlainRestoreOptions {
        conn,
        input: input.to_path_buf(),
        single_transaction: cli.single_transaction,
        on_error_continue: cli.on_error_continue,
        distribution: distribution_of(cli),
        script: cli.file.clone(),
        list: cli.list,
        selection: restore::plain::PlainSelection {
            tables: cli.table.clone(),
            schemas: cli.schema.clone(),
            exclude_tables: cli.exclude_table_name.clone(),
            exclude_schemas: cli.exclude_schema_name.clone(),
            schema_only: cli.metadata_only,
            data_only: cli.data_only,
        },
        resume: cli.resume,
        state_file: cli.state_file.clone(),
        state_dir: cli.state_dir.clone(),
        verbose: cli.verbose,
    };
    let report = restore::plain::run(&opts, abort)?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    }
    if cli.list {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "cbrestore: {} {}: {} statements, {} COPY blocks, {} rows{}{} in {:.1}s",
        if cli.file.is_some() {
            "wrote the SQL of"
        } else {
            "ran"
        },
        report.input,
        report.statements,
        report.copy_blocks,
        report.total_rows,
        if report.skipped_statements > 0 {
            format!(
                ", {} statements left out by the filters",
                report.skipped_statements
            )
        } else {
            String::new()
        },
        if report.resumed_statements > 0 {
            format!(
                ", {} finished by the previous run",
                report.resumed_statements
            )
        } else {
            String::new()
        },
        report.elapsed_seconds
    );
    if !report.errors.is_empty() {
        eprintln!(
            "cbrestore: warning: errors ignored on restore: {}",
            report.errors.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn distribution_of(cli: &Cli) -> Distribution {
    if cli.strip_distribution {
        Distribution::Strip
    } else if cli.distribute {
        Distribution::Rewrite(cli.rules.clone())
    } else {
        Distribution::Keep
    }
}

/// pg_restore's job for custom and directory archives.
fn restore_archive(cli: &Cli, archive: archive::Archive) -> anyhow::Result<ExitCode> {
    if cli.list {
        print_list(&cli.paths[0], &archive);
        return Ok(ExitCode::SUCCESS);
    }
    if cli.verify_only {
        return match restore::verify::verify_only(&archive) {
            Ok(tables) => {
                if cli.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&tables).expect("report serializes")
                    );
                }
                let rows: u64 = tables.iter().map(|t| t.rows).sum();
                eprintln!(
                    "cbrestore: {} verified: {} tables, {} rows, every data stream complete{}",
                    cli.paths[0].display(),
                    tables.len(),
                    rows,
                    if tables.iter().any(|t| t.checksum == "ok") {
                        ", checksums and row counts equal to manifest.json"
                    } else {
                        " (no manifest: no checksums to compare)"
                    }
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                for p in &problems {
                    eprintln!("cbrestore: error: {p}");
                }
                Ok(ExitCode::from(1))
            }
        };
    }
    if cli.single_transaction && cli.jobs > 1 {
        bail!("-1/--single-transaction cannot be used with -j (as in pg_restore)");
    }
    drop(archive);
    let conn = ConnParams::resolve(&cli.conn, "cbrestore")?;
    let abort = Arc::new(AtomicBool::new(false));
    {
        let abort = Arc::clone(&abort);
        ctrlc::set_handler(move || abort.store(true, Ordering::SeqCst))
            .context("installing the Ctrl-C handler")?;
    }
    let opts = DumpRestoreOptions {
        conn,
        input: cli.paths[0].clone(),
        jobs: cli.jobs,
        clean: cli.clean,
        if_exists: cli.if_exists,
        create: cli.create,
        no_owner: cli.no_owner,
        no_acl: cli.no_privileges,
        single_transaction: cli.single_transaction,
        schema_only: cli.metadata_only,
        data_only: cli.data_only,
        tables: cli.table.clone(),
        schemas: cli.schema.clone(),
        exclude_tables: cli.exclude_table_name.clone(),
        exclude_schemas: cli.exclude_schema_name.clone(),
        on_error_continue: cli.on_error_continue,
        resume: cli.resume,
        state_file: cli.state_file.clone(),
        analyze: cli.analyze,
        split_larger_than: cli.split_tables_larger_than,
        distribution: distribution_of(cli),
        script: cli.file.clone(),
        verbose: cli.verbose,
    };
    let report = dump::run(&opts, abort)?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    }
    eprintln!(
        "cbrestore: restored {} ({} archive {}) into {}: {} statements, {} tables, {} rows, {} large objects in {:.1}s",
        report.input,
        report.format,
        report.archive_version,
        report.target,
        report.statements,
        report.tables.len(),
        report.total_rows,
        report.large_objects,
        report.elapsed_seconds
    );
    if !report.errors.is_empty() {
        eprintln!(
            "cbrestore: warning: errors ignored on restore: {}",
            report.errors.len()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `-l`: the TOC in pg_restore's list format.
fn print_list(path: &Path, archive: &archive::Archive) {
    let h = archive.header();
    println!(
        ";
; Archive: {}",
        path.display()
    );
    println!(";     TOC Entries: {}", archive.entries().len());
    println!(";     Dump Version: {}.{}-{}", h.major, h.minor, h.rev);
    println!(
        ";     Format: {}",
        match archive {
            archive::Archive::Custom(_) => "CUSTOM",
            archive::Archive::Directory(_) => "DIRECTORY",
        }
    );
    println!(
        ";
;
; Selected TOC Entries:
;"
    );
    for e in archive.entries() {
        let (tableoid, oid) = e.catalog_id();
        let ns = e.namespace();
        let owner = e
            .owner
            .as_ref()
            .map(|o| String::from_utf8_lossy(o).into_owned())
            .unwrap_or_default();
        println!(
            "{}; {} {} {} {} {} {}",
            e.dump_id,
            tableoid,
            oid,
            e.desc(),
            if ns.is_empty() { "-".into() } else { ns },
            e.tag(),
            owner
        );
    }
}

fn to_sql(cli: &Cli, out: &Path, filter: Filter) -> anyhow::Result<ExitCode> {
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
    let report = write_sql(&set, out, &opts)?;
    let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
    if cli.json {
        let tables: Vec<serde_json::Value> = report
            .tables
            .iter()
            .map(|t| serde_json::json!({"table": t.name, "rows": t.rows, "bytes": t.bytes, "files": t.files.len()}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "tool": "cbrestore",
                "to_sql": out.display().to_string(),
                "backup_timestamp": set.timestamp,
                "tables": tables,
                "total_rows": rows,
                "statements": report.statements,
                "translation": report.translation.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                "errors": report.errors_skipped,
                "warnings": report.warnings,
            }))
            .expect("report serializes")
        );
    }
    eprintln!(
        "cbrestore: wrote {}: {} tables, {} rows, {} statements",
        out.display(),
        report.tables.len(),
        rows,
        report.statements
    );
    if !report.errors_skipped.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
