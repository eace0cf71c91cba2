//! The real `pg_dump` and `pg_restore`, found the way cbdump finds pg_dump (`--pg-dump PATH`,
//! PATH, then the newest under /usr/lib/postgresql), and run as children that stop when we do.
//!
//! cbdump's finder lives in its verb crate, which cbclone may not import; this one also finds
//! `pg_restore`, beside the chosen pg_dump when it is there so both read the same archive
//! version. Moving both into a shared crate is noted in /work/notes/clone.md.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cluster::{ConnParams, ServerInfo};

use crate::{interrupt, CloneError};

/// A client program and its major version.
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    pub major: u32,
    pub version: String,
}

/// Which build of a client program a server needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Cloudberry's or Greenplum's own (the version line names it): pg_dump of an MPP server.
    Mpp,
    /// PostgreSQL's: Greenplum's pg_restore starts every session with `SET
    /// gp_default_storage_options`, which PostgreSQL rejects.
    Stock,
    /// Either.
    Any,
}

/// Finds `name` (`pg_dump`, `pg_restore`) at least as new as `min_major`, of the `build`
/// asked for (an explicit path is the user's choice). `near` is a directory to try first.
pub fn find(
    name: &str,
    explicit: Option<&Path>,
    near: Option<&Path>,
    min_major: u32,
    build: Build,
) -> Result<Program, CloneError> {
    let candidates = candidates(name, explicit, near);
    let mut seen = Vec::new();
    for c in candidates {
        let Ok(out) = Command::new(&c).arg("--version").output() else {
            seen.push(format!("{} (cannot run)", c.display()));
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let major = parse_major(&text).unwrap_or(0);
        let mpp_build = text.contains("Greenplum") || text.contains("Cloudberry");
        let fits = match build {
            Build::Mpp => mpp_build,
            Build::Stock => !mpp_build,
            Build::Any => true,
        };
        if major >= min_major && (fits || explicit.is_some()) {
            return Ok(Program {
                path: c,
                major,
                version: text,
            });
        }
        seen.push(format!("{} ({text})", c.display()));
    }
    Err(CloneError::Tool(format!(
        "no usable {name} (version {min_major} or newer{}) found; seen: [{}]; install the client (Debian: apt-get install postgresql-client-{min_major}) or give --{} PATH",
        match build {
            Build::Mpp => ", Cloudberry/Greenplum build",
            Build::Stock => ", PostgreSQL build",
            Build::Any => "",
        },
        seen.join(", "),
        name.replace('_', "-")
    )))
}

fn candidates(name: &str, explicit: Option<&Path>, near: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Some(dir) = near {
        out.push(dir.join(name));
    }
    if let Some(path) = std::env::var_os("PATH") {
        out.extend(std::env::split_paths(&path).map(|d| d.join(name)));
    }
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    versioned.sort();
    versioned.reverse();
    // Debian's /usr/bin/pg_dump is postgresql-common's Perl wrapper around these: calling the
    // real binary saves two Perl start-ups per run.
    if !versioned.iter().any(|p| p.is_file()) {
        return out.into_iter().filter(|p| p.is_file()).collect();
    }
    out.retain(|p| !is_debian_wrapper(p));
    out.extend(versioned);
    let mut unique: Vec<PathBuf> = Vec::new();
    for p in out {
        if p.is_file() && !unique.contains(&p) {
            unique.push(p);
        }
    }
    unique
}

fn is_debian_wrapper(p: &Path) -> bool {
    std::fs::canonicalize(p)
        .map(|real| real.file_name().is_some_and(|n| n == "pg_wrapper"))
        .unwrap_or(false)
}

/// `pg_dump (PostgreSQL) 15.18 (Debian ...)` → 15.
fn parse_major(version_line: &str) -> Option<u32> {
    let after = version_line.split(')').nth(1)?.trim();
    after.split(['.', ' ']).next()?.parse().ok()
}

/// The major version of a server, as a client program's version is compared with it.
pub fn server_major(info: &ServerInfo) -> u32 {
    (info.version_num / 10000) as u32
}

/// A command for `program` connected through `params`: a quoted conninfo in `-d`, the password
/// in the child's environment (never on its command line, where `ps` shows it).
pub fn command(program: &Program, params: &ConnParams) -> Command {
    let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    for key in [
        "host",
        "hostaddr",
        "port",
        "user",
        "dbname",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "connect_timeout",
        "options",
    ] {
        if let Some(v) = params.get(key) {
            parts.push(format!("{key}={}", q(v)));
        }
    }
    parts.push("application_name='cbclone'".into());
    let mut cmd = Command::new(&program.path);
    cmd.arg("-d").arg(parts.join(" "));
    if let Some(pw) = params.password() {
        cmd.env("PGPASSWORD", pw);
    }
    if let Some(role) = &params.role {
        cmd.arg(format!("--role={role}"));
    }
    cmd
}

/// Runs `cmd` to completion, its stderr collected for the error message. A signal to us stops
/// the child too (SIGTERM reaches only us; a terminal's SIGINT reaches both).
pub fn run(mut cmd: Command, what: &str) -> Result<(), CloneError> {
    let log = tempfile::tempfile().map_err(CloneError::io("creating a log for a child"))?;
    let log_read = log
        .try_clone()
        .map_err(CloneError::io("creating a log for a child"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| CloneError::Tool(format!("{what}: cannot start: {e}")))?;
    let status = wait(&mut child, what)?;
    if status.success() {
        return Ok(());
    }
    let stderr = tail(log_read);
    Err(CloneError::Tool(format!(
        "{what} failed ({status}):\n{stderr}"
    )))
}

/// The child is killed when we are, even by SIGKILL: an orphaned pg_restore would go on
/// changing the target under a resumed run.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches only the child being started.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn wait(child: &mut Child, what: &str) -> Result<std::process::ExitStatus, CloneError> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => return Err(CloneError::Tool(format!("{what}: waiting: {e}"))),
        }
        if let Err(e) = interrupt::check() {
            // SAFETY: a plain signal to our own child, not yet reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
            return Err(e);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last 4 KiB of a child's stderr.
fn tail(mut file: std::fs::File) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert_eq!(
            super::parse_major("pg_restore (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(super::parse_major("pg_dump (PostgreSQL) 9.4.26"), Some(9));
    }
}
