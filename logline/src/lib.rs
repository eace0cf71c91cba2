//! Every message line a `cb*` tool writes on stderr goes through here: the `-v` lines, notes
//! and warnings, the final summary, errors and the resume hint.
//!
//! Two reasons for one path (issue 15):
//! - a line must not tear the live progress line: while a progress display is [`attach`]ed,
//!   each line is written with it suspended (cleared, the line written, redrawn);
//! - `--log-file FILE` ([`to_file`]) appends the same lines to FILE, each with an ISO-8601
//!   timestamp and the process id, so a cron job's log tells the whole story of a run: its
//!   command line, what it did with `-v`, how it ended (summary, or error and resume command).
//!   The file gets what stderr gets — no more (`-v` decides), no less — and never the progress
//!   display, which is for a terminal or, with `--progress json`, for an orchestrator.
//!
//! Process-wide, like stderr itself: the libraries say their lines without carrying a logger
//! through every struct. It depends on no crate of ours, so any layer may use it (the signal
//! facility `interrupt` included: an interrupted run's last words reach the file too).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why `--log-file` could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("--log-file {}: {source}", path.display())]
pub struct LogFileError {
    path: PathBuf,
    source: io::Error,
}

/// Runs a closure with the progress display out of the way (`ProgressBar::suspend`).
type Suspend = Box<dyn Fn(&mut dyn FnMut()) + Send + Sync>;

struct Sink {
    file: Option<(PathBuf, File)>,
    /// The progress display lines are written around, with the id of its [`Attached`].
    display: Option<(u64, Suspend)>,
    attached: u64,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    file: None,
    display: None,
    attached: 0,
});

fn sink() -> MutexGuard<'static, Sink> {
    SINK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends every line from now on to `path` (created if missing, never truncated: one file
/// may hold the runs of many nights), starting with a line naming the command that runs.
pub fn to_file(path: &Path) -> Result<(), LogFileError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogFileError {
            path: path.to_path_buf(),
            source,
        })?;
    sink().file = Some((path.to_path_buf(), file));
    record(&format!(
        "{}: started: {}",
        program(),
        command_line(std::env::args())
    ));
    Ok(())
}

/// Writes `line` on stderr (around the progress display) and into the log file.
pub fn say(line: &str) {
    let mut s = sink();
    match &s.display {
        Some((_, suspend)) => suspend(&mut || eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
    write_file(&mut s, line);
}

/// `say!("cbdump: dumped {table}")`: [`say`] with `format!`'s arguments.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say(&::std::format!($($arg)*))
    };
}

/// Writes `line` into the log file only (nothing without `--log-file`).
pub fn record(line: &str) {
    write_file(&mut sink(), line);
}

/// Whether `--log-file` is in effect.
pub fn logging_to_file() -> bool {
    sink().file.is_some()
}

/// Timestamped lines; a failed write is said once on stderr and ends the logging, it does not
/// end the run (a full log disk must not fail a backup; stderr still has every line).
fn write_file(s: &mut Sink, line: &str) {
    let Some((path, file)) = &mut s.file else {
        return;
    };
    let stamp = format!("{} [{}]", timestamp(SystemTime::now()), std::process::id());
    let mut text = String::new();
    for l in line.lines() {
        text.push_str(&format!("{stamp} {l}\n"));
    }
    if let Err(e) = file.write_all(text.as_bytes()) {
        eprintln!(
            "{}: warning: --log-file {}: {e}; nothing more is written there",
            program(),
            path.display()
        );
        s.file = None;
    }
}

/// While the returned guard lives, lines are written with `suspend`, which clears the
/// progress display, runs the closure and redraws it.
pub fn attach(suspend: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static) -> Attached {
    let mut s = sink();
    s.attached += 1;
    let id = s.attached;
    s.display = Some((id, Box::new(suspend)));
    Attached { id }
}

/// A progress display lines are written around; dropping it detaches it (unless a later one
/// replaced it).
pub struct Attached {
    id: u64,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let mut s = sink();
        if s.display.as_ref().is_some_and(|(id, _)| *id == self.id) {
            s.display = None;
        }
    }
}

/// `2026-12-03T18:14:21.123+01:00`: local time with its offset from UTC, so lines of runs on
/// machines in different zones still order.
pub fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as libc::time_t;
    let millis = since.subsec_millis();
    // SAFETY: localtime_r only writes the tm we own; a zeroed tm is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    if unsafe { libc::localtime_r(&secs, &mut tm) }.is_null() {
        return format!("@{}.{millis:03}", since.as_secs());
    }
    let offset = tm.tm_gmtoff / 60;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}{}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        if offset < 0 { '-' } else { '+' },
        offset.abs() / 60,
        offset.abs() % 60
    )
}

/// The program's name as the user typed it, without its directory.
fn program() -> String {
    std::env::args()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "cbtools".into())
}

/// The command line for the log, passwords masked: `password=...` in conninfo strings and the
/// password of a `postgresql://user:secret@host` URI.
pub fn command_line(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            let a = if i == 0 {
                Path::new(&a)
                    .file_name()
                    .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
            } else {
                mask_password(&a)
            };
            shell_word(&a)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn mask_password(word: &str) -> String {
    let mut w = word.to_string();
    if let Some(i) = w.find("password=") {
        let start = i + "password=".len();
        let end = w[start..].find([' ', '&']).map_or(w.len(), |n| start + n);
        w.replace_range(start..end, "...");
    }
    if let Some(scheme) = w.find("://") {
        let rest = scheme + 3;
        let authority_end = w[rest..].find('/').map_or(w.len(), |n| rest + n);
        if let Some(at) = w[rest..authority_end].rfind('@').map(|n| rest + n) {
            if let Some(colon) = w[rest..at].find(':').map(|n| rest + n) {
                w.replace_range(colon + 1..at, "...");
            }
        }
    }
    w
}

fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_iso_8601_with_an_offset() {
        let t = timestamp(UNIX_EPOCH + Duration::from_millis(1_780_000_000_123));
        // Whatever the zone: date, T, time with milliseconds, ±hh:mm.
        let b = t.as_bytes();
        assert_eq!(t.len(), 29, "{t}");
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16], b[19]),
            (b'-', b'-', b'T', b':', b':', b'.')
        );
        assert!(matches!(b[23], b'+' | b'-'), "{t}");
        assert!(t.contains(".123"), "{t}");
    }

    #[test]
    fn passwords_never_reach_the_log() {
        let words = [
            "/usr/bin/cbdump",
            "-d",
            "host=db password=s3cret dbname=x",
            "postgresql://me:s3cret@db:5432/x?password=again&sslmode=require",
            "my file.dump",
        ]
        .map(String::from);
        let line = command_line(words);
        assert!(
            !line.contains("s3cret") && !line.contains("again"),
            "{line}"
        );
        assert_eq!(
            line,
            "cbdump -d 'host=db password=... dbname=x' 'postgresql://me:...@db:5432/x?password=...&sslmode=require' 'my file.dump'"
        );
    }

    #[test]
    fn lines_go_to_the_file_with_a_stamp_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        std::fs::write(&path, "an earlier run\n").unwrap();
        to_file(&path).unwrap();
        let suspended = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = suspended.clone();
        let guard = attach(move |f| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            f()
        });
        say!("cbtest: loaded {}", "public.t");
        drop(guard);
        say("cbtest: error: first\n  second");
        assert_eq!(suspended.load(std::sync::atomic::Ordering::SeqCst), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "an earlier run");
        assert!(lines[1].contains(": started: "), "{text}");
        let pid = format!(" [{}] ", std::process::id());
        for (line, tail) in lines[2..].iter().zip([
            "cbtest: loaded public.t",
            "cbtest: error: first",
            "  second",
        ]) {
            assert_eq!(line.split_once(&pid).map(|(_, t)| t), Some(tail), "{text}");
            assert_eq!(line.find(&pid), Some(29), "{text}");
        }
        assert_eq!(lines.len(), 5);
    }
}
