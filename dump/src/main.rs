//! `cbdump`: dump a database through the coordinator from one consistent snapshot.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};

use archive::Compression;
use cluster::ConnParams;
use dump::build::Distribute;
use dump::cli::Cli;
use dump::{DumpOptions, Format};
use interrupt::{Interrupt, Mode};

fn main() -> ExitCode {
    let cli = dump::cli::parse();
    let interrupt = match interrupt::install("cbdump", Mode::Poll) {
        Ok(i) => i,
        Err(e) => {
            logline::say!("cbdump: error: {e}");
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
    let output = match (&cli.file, cli.format, &cli.on_segment) {
        (_, _, Some(dir)) => dir.clone(),
        (Some(f), _, _) => f.clone(),
        (None, Format::Plain, _) => PathBuf::from("-"),
        (None, _, _) => bail!("-F c and -F d need -f OUTPUT"),
    };
    let compress = cli
        .compress
        .as_deref()
        .map(Compression::parse)
        .transpose()?;
    let conn = ConnParams::resolve(&cli.conn, "cbdump")?;
    if cli.all_databases {
        return all_databases(&cli, conn, compress, interrupt);
    }
    if cli.globals && output.as_os_str() == "-" {
        bail!("--globals writes a second file: give -f");
    }
    let (json, verbose) = (cli.json, cli.verbose);
    let opts = options(cli, conn, output, compress);
    let report = dump::run(&opts, interrupt)?;
    if json {
        let text = serde_json::to_string_pretty(&report).expect("report serializes");
        print_stdout(interrupt, &text)?;
    }
    if opts.output.as_os_str() != "-" || verbose {
        logline::say!(
            "cbdump: {} ({}): {} tables, {} rows, snapshot {}, {:.1}s",
            report.output,
            report.format,
            report.tables.len(),
            report.total_rows,
            report.snapshot,
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

/// The dump the command line asks for.
fn options(
    cli: Cli,
    conn: ConnParams,
    output: PathBuf,
    compress: Option<Compression>,
) -> DumpOptions {
    // Roles and tablespaces: inside a directory archive, else beside the output.
    let globals = cli.globals.then(|| {
        if cli.format == Format::Directory {
            output.join("globals.sql")
        } else {
            let mut s = output.clone().into_os_string();
            s.push(".globals.sql");
            PathBuf::from(s)
        }
    });
    let (schema_only, data_only) = cli.data_sections();
    let (schema_flags, script_flags) = (cli.schema_flags(), cli.script_flags());
    let progress = cli.progress_display();
    DumpOptions {
        on_segment: cli.on_segment.clone(),
        globals,
        conn,
        format: cli.format,
        output,
        jobs: cli.jobs,
        compress,
        tables: cli.table,
        exclude_tables: cli.exclude_table,
        schemas: cli.schema,
        exclude_schemas: cli.exclude_schema,
        exclude_table_data: cli.exclude_table_data,
        schema_only,
        data_only,
        no_owner: cli.no_owner,
        no_acl: cli.no_acl,
        pg_dump: cli.pg_dump,
        distribute: cli.distribute.then_some(Distribute {
            policy: cli.rules.policy,
            default: cli.rules.default_rule,
            on_conflict: cli.rules.on_conflict,
            stats: cli.stats,
        }),
        lock_wait_timeout_ms: cli.lock_wait_timeout,
        verbose: cli.verbose,
        schema_flags,
        script_flags,
        encoding: cli.encoding,
        progress,
    }
}

/// `--all-databases`: one directory holding globals.sql and one archive per database, built
/// in a private staging directory beside it and renamed when every database is in.
fn all_databases(
    cli: &Cli,
    conn: ConnParams,
    compress: Option<Compression>,
    interrupt: &Interrupt,
) -> anyhow::Result<()> {
    let Some(dir) = &cli.file else {
        bail!("--all-databases needs -f DIRECTORY");
    };
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = interrupt.staging_dir(&parent, ".all-databases.cbdump-")?;
    let mut client = cluster::connect(&conn)?;
    let server = cluster::flavor::detect(&mut client, &cluster::mpp::MppCatalog::from_env())?;
    let pg_dump = dump::pgdump::PgDump::find(cli.pg_dump.as_deref(), &server)?;
    let dbs: Vec<String> = client
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let building = staging.path().to_path_buf();
    dump::output::dump_globals(&pg_dump, &conn, &building.join("globals.sql"), interrupt)?;
    let ext = match cli.format {
        Format::Plain => "sql",
        Format::Custom => "dump",
        Format::Directory => "dir",
    };
    for db in dbs {
        let output = building.join(format!("{}.{ext}", pipeline::naming::component(&db)));
        let opts = DumpOptions {
            conn: conn.with_dbname(&db),
            format: cli.format,
            output,
            jobs: cli.jobs,
            compress,
            tables: Vec::new(),
            exclude_tables: Vec::new(),
            schemas: Vec::new(),
            exclude_schemas: Vec::new(),
            exclude_table_data: cli.exclude_table_data.clone(),
            schema_only: cli.data_sections().0,
            data_only: cli.data_sections().1,
            no_owner: cli.no_owner,
            no_acl: cli.no_acl,
            pg_dump: Some(pg_dump.path.clone()),
            distribute: None,
            lock_wait_timeout_ms: cli.lock_wait_timeout,
            verbose: cli.verbose,
            globals: None,
            on_segment: None,
            schema_flags: cli.schema_flags(),
            script_flags: cli.script_flags(),
            encoding: cli.encoding.clone(),
            progress: cli.progress_display(),
        };
        let report = dump::run(&opts, interrupt).with_context(|| format!("database {db}"))?;
        logline::say!(
            "cbdump: {db}: {} tables, {} rows -> {}",
            report.tables.len(),
            report.total_rows,
            dir.join(output_name(&report.output)).display()
        );
    }
    staging
        .persist(dir)
        .with_context(|| format!("renaming the dumps to {}", dir.display()))
}

/// The last component of a path printed in a report.
fn output_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
