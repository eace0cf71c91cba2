//! `cbdistfix`: give every table of a pg_dump the right Cloudberry DISTRIBUTED clause, or strip
//! the clauses again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;

use distfix::codec::{self, Compression, Encoder};
use distfix::policy::{decide, DefaultRule, OnConflict, Options, PolicyFile};
use distfix::report::Report;
use distfix::rewrite;

#[derive(Parser, Debug)]
#[command(
    name = "cbdistfix",
    version,
    about = "Add Apache Cloudberry DISTRIBUTED clauses to the tables of a pg_dump (or strip them)"
)]
struct Cli {
    /// Plain SQL dump (optionally .gz/.zst compressed), or `-` for stdin.
    input: PathBuf,
    /// Output file, or `-` for stdout. Required unless --dry-run or --check.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// TOML policy file: exact tables or patterns -> hash(col, ...) | random | replicated.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Tables without unique objects: first-hashable | random | replicated-below=ROWS.
    #[arg(long)]
    default: Option<DefaultRule>,
    /// Unique objects without a common hashable column: fail | replicated | demote-unique.
    #[arg(long)]
    on_conflict: Option<OnConflict>,
    /// Replace DISTRIBUTED clauses the dump already has.
    #[arg(long)]
    force: bool,
    /// Remove DISTRIBUTED clauses (and nothing else) so the dump loads into PostgreSQL.
    #[arg(long, conflicts_with_all = ["policy", "default", "on_conflict", "force", "stats"])]
    strip: bool,
    /// Write the decisions as JSON to this file.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Exit with status 2 when any table gets a default clause or needed conflict handling.
    #[arg(long)]
    check: bool,
    /// Decide and report, write no output.
    #[arg(long)]
    dry_run: bool,
    /// Connection string of the source database; pg_stats then guides the default choice.
    #[arg(long, value_name = "CONNSTRING")]
    stats: Option<String>,
    /// Output compression (default: same as the input).
    #[arg(long)]
    compress: Option<Compression>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cbdistfix: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The input as a file we can read twice: stdin is spooled to a temporary file.
fn materialize(input: &Path) -> Result<(PathBuf, Option<tempfile::NamedTempFile>)> {
    if input != Path::new("-") {
        return Ok((input.to_path_buf(), None));
    }
    let mut spool = tempfile::NamedTempFile::new().context("creating a spool file for stdin")?;
    io::copy(&mut io::stdin().lock(), spool.as_file_mut()).context("spooling stdin")?;
    Ok((spool.path().to_path_buf(), Some(spool)))
}

fn run(cli: Cli) -> Result<ExitCode> {
    if cli.output.is_none() && !cli.dry_run && !cli.check {
        bail!("no output given: use -o FILE, -o - for stdout, --dry-run or --check");
    }
    let (path, _spool) = materialize(&cli.input)?;
    let shown = cli.input.display().to_string();
    if path.is_dir() {
        if path.join("toc.dat").is_file() {
            bail!("{shown}: pg_dump directory archives (-Fd) are not supported yet; convert with `pg_restore -f - {shown}` or wait for archive support");
        }
        bail!("{shown}: a directory without toc.dat is not a pg_dump archive");
    }
    let compression = codec::detect(&path).with_context(|| format!("reading {shown}"))?;
    let open = || codec::open(&path, compression).with_context(|| format!("opening {shown}"));
    let mut head = [0u8; 5];
    let n = read_head(&mut *open()?, &mut head).with_context(|| format!("reading {shown}"))?;
    if &head[..n] == b"PGDMP" {
        bail!("{shown}: pg_dump custom archives (-Fc) are not supported yet; convert with `pg_restore -f - {shown}` or wait for archive support");
    }

    let (report, plan) = if cli.strip {
        (None, None)
    } else {
        let catalog = rewrite::collect(open()?).with_context(|| shown.clone())?;
        let file = match &cli.policy {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading policy {}", p.display()))?;
                PolicyFile::parse(&text).with_context(|| format!("{}", p.display()))?
            }
            None => PolicyFile::default(),
        };
        let stats = match &cli.stats {
            Some(conn) => {
                let args = cluster::ConnectionArgs {
                    dbname: Some(conn.clone()),
                    ..Default::default()
                };
                let params = cluster::ConnParams::resolve(&args, "cbdistfix")?;
                let mut client = cluster::connect(&params)?;
                distfix::stats::fetch(&mut client).context("reading pg_stats")?
            }
            None => HashMap::new(),
        };
        let opts = Options {
            default: cli.default,
            on_conflict: cli.on_conflict,
            force: cli.force,
        };
        let plan = decide(&catalog, &file, &opts, &stats).with_context(|| shown.clone())?;
        (Some(plan.decisions.clone()), Some(plan))
    };

    let mut changed = 0;
    if let (Some(out), false) = (&cli.output, cli.dry_run) {
        let comp = cli.compress.unwrap_or(compression);
        changed = write_output(out, comp, |w| match &plan {
            Some(plan) => rewrite::apply(open()?, w, plan).with_context(|| shown.clone()),
            None => rewrite::strip(open()?, w).with_context(|| shown.clone()),
        })?;
    }

    let report = Report::new(
        shown,
        if cli.strip { "strip" } else { "rewrite" },
        report.unwrap_or_default(),
        changed,
    );
    if cli.strip {
        eprintln!("{} DISTRIBUTED clauses removed", report.statements_changed);
    } else {
        eprint!("{}", report.render());
    }
    if let Some(path) = &cli.report {
        let json = serde_json::to_vec_pretty(&report)?;
        write_output(path, Compression::None, |w| {
            w.write_all(&json)?;
            Ok(0)
        })?;
    }
    if cli.check && report.needs_attention() > 0 {
        eprintln!(
            "cbdistfix: --check: {} relations got a default or conflict decision",
            report.needs_attention()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn read_head(r: &mut dyn Read, head: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Write through `body` to stdout (`-`) or to a temporary file renamed over `out` on success.
fn write_output(
    out: &Path,
    comp: Compression,
    body: impl FnOnce(&mut dyn Write) -> Result<u64>,
) -> Result<u64> {
    if out == Path::new("-") {
        let stdout = io::stdout().lock();
        let mut enc = Encoder::new(BufWriter::with_capacity(256 * 1024, stdout), comp)?;
        let n = body(&mut enc)?;
        enc.finish()?.flush()?;
        return Ok(n);
    }
    // Devices and pipes (`-o /dev/null`, a FIFO) are written in place: renaming over them would
    // replace the special file.
    if std::fs::metadata(out).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(out)
            .with_context(|| format!("opening {}", out.display()))?;
        let mut enc = Encoder::new(BufWriter::with_capacity(256 * 1024, file), comp)?;
        let n = body(&mut enc)?;
        enc.finish()?.flush()?;
        return Ok(n);
    }
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".cbdistfix-")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let file: File = tmp.reopen()?;
    let mut enc = Encoder::new(BufWriter::with_capacity(256 * 1024, file), comp)?;
    let n = body(&mut enc)?;
    let w = enc.finish()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    // Temporary files are created 0600; the result is an ordinary file.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(out)
        .with_context(|| format!("renaming the output to {}", out.display()))?;
    Ok(n)
}
