//! What a SIGKILLed `cbdump --on-segment` leaves, and how the next run into the same DIR finds
//! and removes it.
//!
//! A run writes the coordinator's files in a hidden staging directory beside its set's `<ts>`
//! directory, named after its owner: `.cbdump-<ts>-<pid>-<start>-<boot>@<host>-<random>`
//! (`<start>` is the process's start time in clock ticks since boot, `<boot>` the first 8
//! characters of the kernel's boot id), so the name is written in the same `mkdir` that makes
//! the directory and no moment exists in which a staging directory has no known owner. SIGTERM
//! and SIGINT clean up themselves; SIGKILL leaves that directory and the segments' data files of
//! `<ts>` on every segment host (neither reads as a set: no coordinator directory is under a
//! set's name). The next run lists the staging directories, and for each whose owner is dead —
//! on this host, and no process with that pid and start time has run since that boot — has the
//! segments remove their files of `<ts>` (the statement that makes their directories:
//! `COPY (SELECT 1 FROM gp_dist_random('gp_id')) TO PROGRAM ... ON SEGMENT`), then removes the
//! staging directory, and says what it removed on stderr. It never touches a staging directory
//! whose owner runs (or may run: another host's), nor the segment files of a `<ts>` whose
//! coordinator directory exists (a complete set).

use std::path::{Path, PathBuf};

use cluster::segment_io;

use crate::DumpError;

/// Whom a staging directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub timestamp: String,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (0: unknown).
    pub start: u64,
    /// The first 8 characters of the boot id (empty: unknown).
    pub boot: String,
    pub host: String,
}

const PREFIX: &str = ".cbdump-";

impl Owner {
    /// This process, writing set `timestamp`.
    pub fn current(timestamp: &str) -> Owner {
        let pid = std::process::id();
        Owner {
            timestamp: timestamp.to_string(),
            pid,
            start: start_time(pid).unwrap_or(0),
            boot: boot_id(),
            host: host_name(),
        }
    }

    /// The staging directory's name up to its random tail.
    pub fn staging_prefix(&self) -> String {
        format!(
            "{PREFIX}{}-{}-{}-{}@{}-",
            self.timestamp, self.pid, self.start, self.boot, self.host
        )
    }

    /// The owner a staging directory's name records; None for names not made so.
    pub fn parse(name: &str) -> Option<Owner> {
        let rest = name.strip_prefix(PREFIX)?;
        let (rest, _random) = rest.rsplit_once('-')?;
        let (fields, host) = rest.split_once('@')?;
        let mut f = fields.splitn(4, '-');
        let timestamp = f.next()?.to_string();
        let pid = f.next()?.parse().ok()?;
        let start = f.next()?.parse().ok()?;
        let boot = f.next()?.to_string();
        let valid = timestamp.len() == 14 && timestamp.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| Owner {
            timestamp,
            pid,
            start,
            boot,
            host: host.to_string(),
        })
    }

    /// Whether the owner is certainly gone: it ran on this host and, since this boot, no
    /// process with its pid and start time exists (a reused pid has another start time).
    pub fn is_dead(&self) -> bool {
        if self.host != host_name() {
            return false;
        }
        if !self.boot.is_empty() && self.boot != boot_id() {
            return true;
        }
        match start_time(self.pid) {
            Some(now) => self.start != 0 && now != self.start,
            // No /proc entry we may read (gone, or hidden by hidepid): the kernel says whether
            // the pid exists; one that does is taken for the owner.
            None => !process_exists(self.pid),
        }
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after its last ')'.
    let (_, after) = stat.rsplit_once(')')?;
    after.split_whitespace().nth(19)?.parse().ok()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().chars().filter(|c| *c != '-').take(8).collect())
        .unwrap_or_default()
}

fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is ours and its length is passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    // A name we write into a file name: '/' and '-' (our separators after '@' are only the
    // random tail's) are kept out.
    String::from_utf8_lossy(&buf[..end])
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect()
}

fn process_exists(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A dead run's staging directory.
#[derive(Debug)]
pub(crate) struct Leftover {
    pub staging: PathBuf,
    pub owner: Owner,
    /// The set of its timestamp is complete (its coordinator directory exists): the segments'
    /// files are that set's and stay.
    pub set_complete: bool,
}

/// Dead runs' staging directories under `backups` (the coordinator's `DIR/<prefix>-1/backups`),
/// and the ones whose owner may still run on another host (left alone).
pub(crate) fn find(backups: &Path) -> (Vec<Leftover>, Vec<PathBuf>) {
    let (mut dead, mut unknown) = (Vec::new(), Vec::new());
    let Ok(dates) = std::fs::read_dir(backups) else {
        return (dead, unknown);
    };
    for date in dates.flatten() {
        let Ok(entries) = std::fs::read_dir(date.path()) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(owner) = Owner::parse(&name) else {
                continue;
            };
            if owner.is_dead() {
                dead.push(Leftover {
                    set_complete: date.path().join(&owner.timestamp).exists(),
                    staging: e.path(),
                    owner,
                });
            } else if owner.host != host_name() {
                unknown.push(e.path());
            }
        }
    }
    (dead, unknown)
}

/// Whether a staging directory of set `ts` exists in `date_dir` (a run owns that timestamp).
pub(crate) fn timestamp_staged(date_dir: &Path, ts: &str) -> bool {
    let prefix = format!("{PREFIX}{ts}-");
    std::fs::read_dir(date_dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
        .unwrap_or(false)
}

/// Removes `leftover`: first the segments' files of its timestamp (`segment_dir` with
/// `<SEGID>`), through `client`, then its staging directory, so a failure leaves the marker for
/// the next run. Returns what it removed, for the message; the caller words a failure, which
/// is not fatal (the next run tries again).
pub(crate) fn remove(
    client: &mut postgres::Client,
    leftover: &Leftover,
    segment_dir: &str,
) -> Result<String, DumpError> {
    let ts = &leftover.owner.timestamp;
    let mut removed = String::new();
    if !leftover.set_complete {
        segment_io::remove_on_every_segment(
            client,
            &[],
            &[format!("{segment_dir}/gpbackup_<SEGID>_{ts}_")],
            &[segment_dir.to_string()],
            "removing the segments' files of a killed run",
        )?;
        removed =
            format!("the segments' files of set {ts} ({segment_dir}/gpbackup_<SEGID>_{ts}_*) and ");
    }
    match std::fs::remove_dir_all(&leftover.staging) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(DumpError::io(&leftover.staging, e)),
    }
    Ok(format!(
        "{removed}its staging directory {}",
        leftover.staging.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_records_the_owner() {
        let me = Owner::current("20261203223320");
        let name = format!("{}Ab12Cd", me.staging_prefix());
        assert_eq!(Owner::parse(&name), Some(me.clone()));
        assert!(!me.is_dead(), "this process runs");
        assert_eq!(Owner::parse(".cbdump-Ab12Cd"), None, "an older run's name");
        assert_eq!(Owner::parse("20261203223320"), None);

        let mut other_host = me.clone();
        other_host.host = "elsewhere".into();
        assert!(!other_host.is_dead(), "another host's process may run");
        let mut rebooted = me.clone();
        rebooted.boot = "00000000".into();
        assert!(rebooted.is_dead());
        let mut reused = me.clone();
        reused.start += 1;
        assert!(reused.is_dead(), "the pid now belongs to another process");

        let mut child = std::process::Command::new("true").spawn().unwrap();
        child.wait().unwrap();
        let mut gone = me;
        gone.pid = child.id();
        assert!(gone.is_dead());
    }

    #[test]
    fn finds_dead_runs_only() {
        let dir = tempfile::tempdir().unwrap();
        let date = dir.path().join("20261203");
        std::fs::create_dir_all(date.join("20261203100000")).unwrap();
        let me = Owner::current("20261203100001");
        let mut dead = me.clone();
        dead.timestamp = "20261203100000".into();
        dead.start += 1;
        let mut elsewhere = me.clone();
        elsewhere.host = "elsewhere".into();
        for o in [&me, &dead, &elsewhere] {
            std::fs::create_dir(date.join(format!("{}x1", o.staging_prefix()))).unwrap();
        }
        let (found, unknown) = find(dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].owner, dead);
        assert!(found[0].set_complete, "its timestamp's set exists");
        assert_eq!(unknown.len(), 1);
        assert!(timestamp_staged(&date, "20261203100001"));
        assert!(!timestamp_staged(&date, "20261203100002"));
    }
}
