//! Wall time and peak RSS of a child process (and the children it waited for).

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use testkit::TestServer;

#[derive(Debug, Clone)]
pub struct Sample {
    pub seconds: f64,
    /// `ru_maxrss` of the child: the largest resident set of it or any descendant it reaped.
    pub max_rss_kib: i64,
}

/// Runs `cmd` to completion, measuring it with `wait4`.
pub fn run_measured(mut cmd: Command, what: &str) -> Result<Sample> {
    cmd.stdout(std::process::Stdio::null());
    // Kept for the error message; the tools' one-line summaries would clutter the table.
    let log = tempfile_path(what);
    cmd.stderr(std::fs::File::create(&log)?);
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {what}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data filled by the kernel; pid is our own child, which we reap
    // here instead of through `Child::wait`.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    std::mem::forget(child);
    if rc != pid {
        bail!("waiting for {what}: {}", std::io::Error::last_os_error());
    }
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{what} failed (status {status}): {stderr}");
    }
    Ok(Sample {
        seconds,
        max_rss_kib: usage.ru_maxrss,
    })
}

/// Compares two files in small pieces. The benchmark process must stay small: a child spawned
/// from it inherits its peak RSS in `ru_maxrss` (the kernel records the old image's high-water
/// mark at exec), which would pollute every later measurement.
pub fn files_equal(a: &std::path::Path, b: &std::path::Path) -> Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// A `sh -c` pipeline with the server's PG* environment.
pub fn shell(server: &TestServer, script: &str) -> Command {
    let mut c = Command::new("sh");
    server.apply_env(&mut c);
    c.args(["-c", &format!("set -e; {script}")]);
    c
}

fn tempfile_path(what: &str) -> std::path::PathBuf {
    let safe: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir().join(format!("cbtools-bench-{}-{safe}.log", std::process::id()))
}

/// Interleaved rounds of a benchmark: `default`, or `CBTOOLS_BENCH_ROUNDS` (more to see a
/// small change through a busy machine's noise).
pub fn rounds(default: usize) -> usize {
    std::env::var("CBTOOLS_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(default)
}
