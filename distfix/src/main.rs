//! `cbdistfix`: give every table of a pg_dump the right Cloudberry DISTRIBUTED clause, or strip
//! the clauses again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use archive::codec::Compression;
use archive::custom::rewrite_toc;
use archive::{Archive, DirectoryArchive, TocEntry};
use distfix::catalog::Catalog;
use distfix::cli::Cli;
use distfix::policy::Plan;
use distfix::report::Report;
use distfix::rewrite;
use distfix::rules::PlanOutcome;
use interrupt::{Interrupt, Mode, TempPath};

/// Signals (SIGINT, SIGTERM, SIGHUP) go through the `interrupt` crate in its immediate mode:
/// the rewrite is one thread streaming into temporary files, with nothing to cancel or unwind,
/// so the first signal removes the temporary files and exits 128 + the signal number at once.
/// A closed stdout (`cbdistfix dump.sql -o - | head`) ends it quietly by SIGPIPE, as pg_dump.
fn main() -> ExitCode {
    let cli = distfix::cli::parse();
    let interrupt = match interrupt::install("cbdistfix", Mode::Immediate) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("cbdistfix: {e}");
            return ExitCode::from(1);
        }
    };
    match run(cli, &interrupt) {
        Ok(code) => {
            let _ = interrupt.finish();
            code
        }
        Err(e) => interrupt.fail(cluster::error::one_line(e.as_ref())),
    }
}

/// The input as a file we can read twice: stdin is spooled to a temporary file (exclusive
/// creation, a random name, removed at the end or on a signal).
fn materialize(input: &Path, interrupt: &Interrupt) -> Result<(PathBuf, Option<TempPath>)> {
    if input != Path::new("-") {
        return Ok((input.to_path_buf(), None));
    }
    let (mut file, spool) = interrupt
        .temp_file(&std::env::temp_dir(), ".cbdistfix-stdin-")
        .context("creating a spool file for stdin")?;
    io::copy(&mut io::stdin().lock(), &mut file).context("spooling stdin")?;
    Ok((spool.path().to_path_buf(), Some(spool)))
}

fn run(cli: Cli, interrupt: &Interrupt) -> Result<ExitCode> {
    let (path, _spool) = materialize(&cli.input, interrupt)?;
    let shown = cli.input.display().to_string();
    if let Some(archive) = Archive::open(&path).with_context(|| shown.clone())? {
        return run_archive(&cli, archive, &shown, interrupt);
    }
    if path.is_dir() {
        bail!("{shown}: a directory without toc.dat is not a pg_dump archive");
    }
    if cli.in_place {
        bail!("--in-place is for directory archives; give -o for a plain dump");
    }
    let compression = Compression::detect(&path).with_context(|| format!("reading {shown}"))?;
    let open = || -> Result<Box<dyn Read + Send>> {
        let f = io::BufReader::with_capacity(
            256 * 1024,
            File::open(&path).with_context(|| format!("opening {shown}"))?,
        );
        compression
            .decoder(f)
            .with_context(|| format!("opening {shown}"))
    };

    let (report, plan) = if cli.strip || cli.target.is_some() {
        (None, None)
    } else {
        let catalog = rewrite::collect(open()?).with_context(|| shown.clone())?;
        let plan = make_plan(&cli, &catalog, &shown, interrupt)?;
        (Some(plan.decisions.clone()), Some(plan))
    };

    let mut changed = 0;
    if let (Some(out), false) = (&cli.output, cli.dry_run) {
        let comp = cli.compress.unwrap_or(compression);
        changed = write_output(out, comp, interrupt, |w| match &plan {
            // Uncompressed in and out: the unchanged tail after the last edit is copied from
            // the input file by the kernel (copy_file_range/sendfile), not through here.
            Some(plan) if compression == Compression::None && w.raw_file().is_some() => {
                let (changed, rest) =
                    rewrite::apply_head(open()?, w, plan).with_context(|| shown.clone())?;
                if let Some((_, _, offset)) = rest {
                    use std::io::Seek;
                    let mut input =
                        File::open(&path).with_context(|| format!("opening {shown}"))?;
                    input.seek(io::SeekFrom::Start(offset))?;
                    let file = w.raw_file().expect("checked above");
                    io::copy(&mut input, file)
                        .with_context(|| format!("copying the rest of {shown}"))?;
                }
                Ok(changed)
            }
            Some(plan) => rewrite::apply(open()?, w, plan).with_context(|| shown.clone()),
            None if cli.target.is_some() => {
                let mut tr = distfix::translate::Translator::new();
                let n = distfix::translate::translate_script(open()?, w, &mut tr)
                    .with_context(|| shown.clone())?;
                print_translation(&tr);
                Ok(n)
            }
            None => rewrite::strip(open()?, w).with_context(|| shown.clone()),
        })?;
    }

    finish(&cli, shown, report.unwrap_or_default(), changed, interrupt)
}

/// Statistics (with --stats) and the command line's rules into a plan for this catalog. With
/// conflicts under `--on-conflict fail`, every conflict is shown and the report (`--report`) is
/// still written, with them and the other tables' decisions, before the run fails.
fn make_plan(cli: &Cli, catalog: &Catalog, shown: &str, interrupt: &Interrupt) -> Result<Plan> {
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
    let outcome = cli
        .rules
        .plan_outcome(catalog, &stats, cli.force)
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    match outcome {
        PlanOutcome::Planned(plan) => Ok(plan),
        PlanOutcome::Conflicts { partial, message } => {
            let report = Report::new(shown.to_string(), "rewrite", partial.decisions, 0);
            eprint!("{}", report.render());
            if let Some(path) = &cli.report {
                let json = serde_json::to_vec_pretty(&report)?;
                write_output(path, Compression::None, interrupt, |w| {
                    w.write_all(&json)?;
                    Ok(0)
                })?;
            }
            bail!("{shown}: {message}")
        }
    }
}

/// Custom and directory archives: the TOC's statements are rewritten; data is copied (custom)
/// or linked (directory), never decoded.
fn run_archive(
    cli: &Cli,
    archive: Archive,
    shown: &str,
    interrupt: &Interrupt,
) -> Result<ExitCode> {
    let entries = archive.entries();
    let (new_entries, decisions, changed): (Vec<TocEntry>, _, u64) = if cli.target.is_some() {
        let mut tr = distfix::translate::Translator::new();
        let e = distfix::translate::translate_entries(entries, &mut tr)
            .with_context(|| shown.to_string())?;
        print_translation(&tr);
        let n = tr.report().len() as u64;
        (e, Vec::new(), n)
    } else if cli.strip {
        let (e, n) = distfix::archive::strip(entries).with_context(|| shown.to_string())?;
        (e, Vec::new(), n)
    } else {
        let catalog = distfix::archive::collect(entries).with_context(|| shown.to_string())?;
        let plan = make_plan(cli, &catalog, shown, interrupt)?;
        let (e, n) = distfix::archive::apply(entries, &plan).with_context(|| shown.to_string())?;
        (e, plan.decisions, n)
    };
    if !cli.dry_run {
        match &archive {
            Archive::Custom(a) => {
                let Some(out) = &cli.output else {
                    bail!("{shown} is a custom archive: give -o NEW_FILE");
                };
                if out == Path::new("-") {
                    bail!("a custom archive is written to a file (its TOC offsets are patched), not to stdout");
                }
                if cli.in_place {
                    bail!("--in-place is for directory archives; give -o for a custom archive");
                }
                write_custom_copy(a, &new_entries, out, interrupt)?;
            }
            Archive::Directory(d) => {
                if cli.in_place {
                    replace_toc(d, &new_entries, interrupt)?;
                } else if let Some(out) = &cli.output {
                    if out == Path::new("-") {
                        bail!("a directory archive is written to a directory: give -o NEW_DIR or --in-place");
                    }
                    write_directory_copy(d, &new_entries, out, interrupt)?;
                } else if !cli.check {
                    bail!("give -o NEW_DIR or --in-place for a directory archive");
                }
            }
        }
    }
    finish(cli, shown.to_string(), decisions, changed, interrupt)
}

/// The directory that holds `out`, where its temporary files go (same file system: the final
/// rename is atomic).
fn parent_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A new custom archive: written in a private staging directory beside `out`, then renamed.
fn write_custom_copy(
    src: &archive::CustomArchive,
    entries: &[TocEntry],
    out: &Path,
    interrupt: &Interrupt,
) -> Result<()> {
    let staging = interrupt.staging_dir(&parent_of(out), ".cbdistfix-")?;
    let built = staging.path().join("archive.dump");
    rewrite_toc(src, entries, &built)?;
    interrupt
        .rename_into_place(&built, out)
        .with_context(|| format!("renaming to {}", out.display()))
}

/// `--in-place`: the new toc.dat is written in a private staging directory inside the
/// archive and renamed over the old one.
fn replace_toc(d: &DirectoryArchive, entries: &[TocEntry], interrupt: &Interrupt) -> Result<()> {
    let staging = interrupt.staging_dir(&d.dir, ".toc.cbdistfix-")?;
    DirectoryArchive::write_toc(staging.path(), &d.header, entries)?;
    let toc = DirectoryArchive::toc_path(&d.dir);
    interrupt
        .rename_into_place(&DirectoryArchive::toc_path(staging.path()), &toc)
        .with_context(|| format!("renaming to {}", toc.display()))
}

/// A new directory archive: data files hard-linked (copied across file systems), a new toc.dat.
/// Built in a private staging directory beside `out` and renamed when complete.
fn write_directory_copy(
    src: &DirectoryArchive,
    entries: &[TocEntry],
    out: &Path,
    interrupt: &Interrupt,
) -> Result<()> {
    if out.exists() {
        bail!("{} already exists", out.display());
    }
    let staging = interrupt.staging_dir(&parent_of(out), ".cbdistfix-")?;
    let temp = staging.path().join("archive");
    let build = || -> Result<()> {
        std::fs::create_dir(&temp).with_context(|| format!("creating {}", temp.display()))?;
        for f in
            std::fs::read_dir(&src.dir).with_context(|| format!("reading {}", src.dir.display()))?
        {
            let f = f?;
            if f.file_name() == "toc.dat" || !f.file_type()?.is_file() {
                continue;
            }
            let to = temp.join(f.file_name());
            if std::fs::hard_link(f.path(), &to).is_err() {
                std::fs::copy(f.path(), &to)
                    .with_context(|| format!("copying {}", f.path().display()))?;
            }
        }
        DirectoryArchive::write_toc(&temp, &src.header, entries)?;
        interrupt
            .rename_into_place(&temp, out)
            .with_context(|| format!("renaming to {}", out.display()))?;
        Ok(())
    };
    build()
}

/// Every statement `--target postgres` changed or left out, on stderr.
fn print_translation(tr: &distfix::translate::Translator) {
    for item in tr.report() {
        eprintln!("cbdistfix: {item}");
    }
}

/// Report on stderr and in `--report`, and the exit status.
fn finish(
    cli: &Cli,
    shown: String,
    decisions: Vec<distfix::policy::Decision>,
    changed: u64,
    interrupt: &Interrupt,
) -> Result<ExitCode> {
    let report = Report::new(
        shown,
        if cli.target.is_some() {
            "postgres"
        } else if cli.strip {
            "strip"
        } else {
            "rewrite"
        },
        decisions,
        changed,
    );
    if cli.target.is_some() {
        eprintln!(
            "{} statements translated or left out for PostgreSQL",
            report.statements_changed
        );
    } else if cli.strip {
        eprintln!("{} DISTRIBUTED clauses removed", report.statements_changed);
    } else {
        eprint!("{}", report.render());
    }
    if let Some(path) = &cli.report {
        let json = serde_json::to_vec_pretty(&report)?;
        write_output(path, Compression::None, interrupt, |w| {
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

/// Write through `body` to stdout (`-`) or to a temporary file renamed over `out` on success.
/// Where a rewritten script goes. `raw_file` is the file underneath when nothing is compressed
/// (flushed first), so callers can let the kernel copy unchanged bytes into it.
trait Sink: Write {
    fn raw_file(&mut self) -> Option<&mut File>;
}

impl Sink for archive::codec::Encoder<BufWriter<File>> {
    fn raw_file(&mut self) -> Option<&mut File> {
        match self {
            archive::codec::Encoder::Plain(w) => {
                w.flush().ok()?;
                Some(w.get_mut())
            }
            _ => None,
        }
    }
}

impl Sink for archive::codec::Encoder<BufWriter<interrupt::Stdout>> {
    fn raw_file(&mut self) -> Option<&mut File> {
        None
    }
}

fn write_output(
    out: &Path,
    comp: Compression,
    interrupt: &Interrupt,
    body: impl FnOnce(&mut dyn Sink) -> Result<u64>,
) -> Result<u64> {
    if out == Path::new("-") {
        let stdout = interrupt.stdout();
        let mut enc = comp.encoder(BufWriter::with_capacity(256 * 1024, stdout))?;
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
        let mut enc = comp.encoder(BufWriter::with_capacity(256 * 1024, file))?;
        let n = body(&mut enc)?;
        enc.finish()?.flush()?;
        return Ok(n);
    }
    let (file, tmp) = interrupt.temp_file(&parent_of(out), ".cbdistfix-")?;
    let mut enc = comp.encoder(BufWriter::with_capacity(256 * 1024, file))?;
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
