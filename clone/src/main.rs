//! `cbclone`: parse the flags, run the clone, print the report.

use std::process::ExitCode;

use clone::cli::Cli;
use clone::schema::DumpFlags;
use clone::{CloneError, CloneOptions};
use cluster::{ConnParams, ConnectionArgs};

fn main() -> ExitCode {
    let cli = clone::cli::parse();
    let handle = match clone::interrupt::install() {
        Ok(h) => h,
        Err(e) => {
            logline::say!("cbclone: error: {e}");
            return ExitCode::from(1);
        }
    };
    // The signal facility ends the run: temporary files removed, 130/143/129 after a signal,
    // 1 with the message and what is left otherwise; usage errors are 2.
    match run(cli) {
        Ok(()) => handle.finish(),
        Err(e) => match e.downcast_ref::<CloneError>() {
            Some(err @ CloneError::Usage(_)) => {
                let _ = handle.finish();
                logline::say!("cbclone: error: {err}");
                ExitCode::from(err.exit_code())
            }
            Some(CloneError::Verify(_)) => {
                handle.set_left("the clone ran to the end; the tables above differ from the source at its snapshot");
                handle.fail(format!("{e:#}"))
            }
            _ => handle.fail(format!("{e:#}")),
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
    cli.progress.open_log()?;
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
        progress: cli.progress.progress,
    };
    let report = clone::clone(&opts)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    logline::say!(
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
        logline::say!("cbclone: verified {} tables: all equal", checked.len());
    }
    Ok(())
}
