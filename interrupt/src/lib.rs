//! One signal and cleanup facility that every `cb*` tool uses.
//!
//! What cron, systemd, Kubernetes and `timeout` send is SIGTERM; a closed terminal sends SIGHUP;
//! a user presses Ctrl-C (SIGINT). All three mean "stop now and leave nothing half-written", so
//! they are handled alike ([`install`]):
//!
//! 1. a cancellation flag is raised that the tools' workers poll ([`Interrupt::flag`]);
//! 2. cancel hooks run at once on the signal thread ([`Interrupt::on_signal`]): they send the
//!    server a cancel request for each running statement (`postgres::CancelToken`) and stop
//!    child processes, so a worker blocked on the network wakes up with an error instead of
//!    finishing a long COPY first;
//! 3. temporary paths registered here ([`Interrupt::staging_dir`], [`Interrupt::temp_file`],
//!    [`Interrupt::register`]) are removed when their guard drops on the way out, and whatever
//!    is still registered is removed before the process exits;
//! 4. the process ends with the conventional status, 128 + the signal number (130 SIGINT,
//!    143 SIGTERM, 129 SIGHUP), after a last message saying what was left and how to resume
//!    ([`Interrupt::fail`], [`Interrupt::set_left`]).
//!
//! A second signal while the first is being handled does not wait for the workers: it removes
//! every registered path and exits at once. Tools that have nothing to unwind (a
//! single-threaded rewriter) install [`Mode::Immediate`], where the first signal does that.
//!
//! A closed pipe (`cbdump | head`) is not an error: like `cat`, `pg_dump` and every unix tool
//! that does not ignore SIGPIPE, the tool dies of SIGPIPE without a message (the shell shows
//! status 141). Rust ignores SIGPIPE, so writes get `EPIPE`; [`Interrupt::stdout`] notes it,
//! stops the workers like a signal, and [`Interrupt::finish`] / [`Interrupt::fail`] re-raise
//! SIGPIPE once the temporary files are gone.
//!
//! Why a crate of its own and not part of `pipeline`: cbdistfix has no COPY pipeline and
//! cbrestore's resume state is no pipeline concern, but both need the same signals and the
//! same cleanup; it depends on no crate of ours but `logline` (its last messages reach
//! `--log-file` too), so any layer may register a temporary path.
//! signal-hook rather than `ctrlc`: `ctrlc` reports neither which signal arrived (needed for
//! the exit status) nor, without its `termination` feature, SIGTERM and SIGHUP at all.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// Why the facility could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InterruptError {
    #[error("installing the SIGINT/SIGTERM/SIGHUP handlers: {0}")]
    Install(io::Error),
    #[error("creating a temporary {what} in {}: {source}", dir.display())]
    Temp {
        what: &'static str,
        dir: PathBuf,
        source: io::Error,
    },
}

/// The signals that stop a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    Hangup,
}

impl Signal {
    fn from_number(n: i32) -> Option<Signal> {
        match n {
            SIGINT => Some(Signal::Interrupt),
            SIGTERM => Some(Signal::Terminate),
            SIGHUP => Some(Signal::Hangup),
            _ => None,
        }
    }

    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => SIGINT,
            Signal::Terminate => SIGTERM,
            Signal::Hangup => SIGHUP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
        }
    }

    /// 128 + the signal number, what a shell reports for a process the signal killed.
    pub fn exit_status(self) -> u8 {
        128 + self.number() as u8
    }
}

/// What the first signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Raise the flag and run the cancel hooks; the tool unwinds and calls
    /// [`Interrupt::fail`] (or [`Interrupt::finish`]). A second signal exits at once.
    Poll,
    /// Remove the registered paths and exit at once (tools with nothing to unwind).
    Immediate,
}

type Hook = Box<dyn Fn() + Send + Sync>;

struct Inner {
    tool: &'static str,
    mode: Mode,
    flag: Arc<AtomicBool>,
    /// The first signal's number, 0 before any.
    signal: AtomicI32,
    stdout_closed: AtomicBool,
    next_id: AtomicU64,
    hooks: Mutex<Vec<(u64, Hook)>>,
    /// Registered temporary paths. Held while a path is renamed into place, so a forced exit
    /// sees each path either still temporary or already final.
    temps: Mutex<Vec<(u64, PathBuf)>>,
    removed: AtomicU64,
    left: Mutex<Option<String>>,
}

/// The process's handle on signals and temporary paths; cheap to clone.
#[derive(Clone)]
pub struct Interrupt(Arc<Inner>);

static INSTALLED: OnceLock<Interrupt> = OnceLock::new();

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP (once per process: later calls return
/// the first handle). `tool` prefixes the final messages.
pub fn install(tool: &'static str, mode: Mode) -> Result<Interrupt, InterruptError> {
    if let Some(i) = INSTALLED.get() {
        return Ok(i.clone());
    }
    let handle = Interrupt(Arc::new(Inner {
        tool,
        mode,
        flag: Arc::new(AtomicBool::new(false)),
        signal: AtomicI32::new(0),
        stdout_closed: AtomicBool::new(false),
        next_id: AtomicU64::new(1),
        hooks: Mutex::new(Vec::new()),
        temps: Mutex::new(Vec::new()),
        removed: AtomicU64::new(0),
        left: Mutex::new(None),
    }));
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(InterruptError::Install)?;
    let on_thread = handle.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for n in signals.forever() {
                if let Some(s) = Signal::from_number(n) {
                    on_thread.received(s);
                }
            }
        })
        .map_err(InterruptError::Install)?;
    Ok(INSTALLED.get_or_init(|| handle).clone())
}

impl Interrupt {
    /// The cancellation flag the workers poll: raised by a signal or a closed stdout.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0.flag)
    }

    /// Whether the tool has been asked to stop.
    pub fn requested(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// The first signal received, if any.
    pub fn signal(&self) -> Option<Signal> {
        Signal::from_number(self.0.signal.load(Ordering::SeqCst))
    }

    /// Whether a write to stdout found the reading end closed.
    pub fn stdout_closed(&self) -> bool {
        self.0.stdout_closed.load(Ordering::SeqCst)
    }

    /// Runs `hook` when the tool is asked to stop (at once if it already was), until the
    /// returned guard drops. Hooks run on the signal thread: they must not block for long
    /// (a cancel request to the server, a signal to a child).
    pub fn on_signal(&self, hook: impl Fn() + Send + Sync + 'static) -> HookGuard {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let mut hooks = lock(&self.0.hooks);
        if self.requested() {
            hook();
        }
        hooks.push((id, Box::new(hook)));
        HookGuard {
            owner: self.clone(),
            id,
        }
    }

    /// What the final message says was left (and how to resume) if the run is interrupted or
    /// fails; by default "nothing was left under a final name".
    pub fn set_left(&self, text: impl Into<String>) {
        *lock(&self.0.left) = Some(text.into());
    }

    /// Registers an existing path (a file, or a directory removed with its contents) as
    /// temporary: removed when the guard drops unless [`TempPath::persist`] renamed it.
    pub fn register(&self, path: PathBuf) -> TempPath {
        self.registered(&mut lock(&self.0.temps), path)
    }

    fn registered(&self, temps: &mut Vec<(u64, PathBuf)>, path: PathBuf) -> TempPath {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        temps.push((id, path.clone()));
        TempPath {
            owner: self.clone(),
            id,
            path,
        }
    }

    /// A new private directory (mode 0700, a random name created with `mkdir`'s exclusive
    /// semantics) inside `dir`, e.g. `.cbdump-Xq3z9a/` beside the output, so renames out of
    /// it are atomic.
    pub fn staging_dir(&self, dir: &Path, prefix: &str) -> Result<TempPath, InterruptError> {
        // Made and registered under the registry's lock: a signal's forced exit finds it
        // either not yet made or registered (the kill harness caught the gap between).
        let mut temps = lock(&self.0.temps);
        let made = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(dir)
            .map_err(|source| InterruptError::Temp {
                what: "directory",
                dir: dir.to_path_buf(),
                source,
            })?;
        Ok(self.registered(&mut temps, made.keep()))
    }

    /// A new temporary file in `dir` (`O_CREAT|O_EXCL`, mode 0600, a random name), open for
    /// writing, and its guard.
    pub fn temp_file(&self, dir: &Path, prefix: &str) -> Result<(File, TempPath), InterruptError> {
        let mut temps = lock(&self.0.temps);
        let made = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(dir)
            .map_err(|source| InterruptError::Temp {
                what: "file",
                dir: dir.to_path_buf(),
                source,
            })?;
        let (file, path) = made.keep().map_err(|e| InterruptError::Temp {
            what: "file",
            dir: dir.to_path_buf(),
            source: e.error,
        })?;
        Ok((file, self.registered(&mut temps, path)))
    }

    /// Renames `from` (inside a staging directory) to `to` while no signal's cleanup can run:
    /// the cleanup finds the path either still staged or already in place, never a directory
    /// half removed under its final name (the kill harness caught that race with cbdistfix).
    pub fn rename_into_place(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _held = lock(&self.0.temps);
        std::fs::rename(from, to)
    }

    /// Standard output that notes a closed pipe: the write still fails, and the tool stops as
    /// if signalled, but [`finish`](Self::finish) / [`fail`](Self::fail) end it quietly.
    pub fn stdout(&self) -> Stdout {
        Stdout {
            owner: self.clone(),
            inner: io::stdout(),
        }
    }

    /// Notes `e` if it is a closed pipe on stdout (for writes not made through
    /// [`stdout`](Self::stdout)); returns whether it was.
    pub fn note_stdout_error(&self, e: &io::Error) -> bool {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return false;
        }
        self.0.stdout_closed.store(true, Ordering::SeqCst);
        self.stop();
        true
    }

    /// Raises the flag and runs the hooks, as a signal does (without one).
    pub fn stop(&self) {
        if !self.0.flag.swap(true, Ordering::SeqCst) {
            for (_, hook) in lock(&self.0.hooks).iter() {
                hook();
            }
        }
    }

    /// Ends a run that succeeded: removes what is still registered and returns 0, or dies of
    /// SIGPIPE (no message) when stdout was closed. A signal that came too late to stop the
    /// work changes nothing.
    pub fn finish(&self) -> ExitCode {
        self.clean_up();
        ExitCode::SUCCESS
    }

    /// Ends a run that failed: removes what is still registered and returns 1 with
    /// `cbtool: error: MESSAGE` (and what is left), 128 + n with what is left after signal n
    /// (the failure is then the signal's doing), or dies of SIGPIPE (no message) when stdout
    /// was closed. The message is the tool's own wording of its error.
    pub fn fail(&self, message: impl std::fmt::Display) -> ExitCode {
        self.clean_up();
        let tool = self.0.tool;
        if let Some(s) = self.signal() {
            logline::say!("{tool}: interrupted by {}: {}", s.name(), self.left_text());
            return ExitCode::from(s.exit_status());
        }
        logline::say!("{tool}: error: {message}");
        if let Some(left) = lock(&self.0.left).as_deref() {
            logline::say!("{tool}: {left}");
        }
        ExitCode::from(1)
    }

    /// What every end does first: nothing registered survives, and a closed stdout ends the
    /// process as SIGPIPE would have.
    fn clean_up(&self) {
        self.remove_registered();
        if self.stdout_closed() {
            die_of_sigpipe();
        }
    }

    fn left_text(&self) -> String {
        let removed = self.0.removed.load(Ordering::SeqCst);
        let left = lock(&self.0.left)
            .clone()
            .unwrap_or_else(|| "nothing was left under a final name".into());
        match removed {
            0 => left,
            1 => format!("1 temporary path removed; {left}"),
            n => format!("{n} temporary paths removed; {left}"),
        }
    }

    fn received(&self, s: Signal) {
        let first = self
            .0
            .signal
            .compare_exchange(0, s.number(), Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if first {
            logline::record(&format!("{}: received {}; stopping", self.0.tool, s.name()));
        }
        if first && self.0.mode == Mode::Poll {
            // On a thread of their own: a cancel request to an unreachable server may take its
            // connect timeout, and this thread must stay free to see a second signal.
            let handle = self.clone();
            if std::thread::Builder::new()
                .name("cancel".into())
                .spawn(move || handle.stop())
                .is_err()
            {
                self.stop();
            }
            return;
        }
        // A second signal, or a tool with nothing to unwind: leave now. The lock is kept until
        // the process is gone, so no rename into place can start after the removal.
        let _held = lock(&self.0.temps);
        for (_, p) in _held.iter() {
            if remove(p) {
                self.0.removed.fetch_add(1, Ordering::SeqCst);
            }
        }
        let s = self.signal().unwrap_or(s);
        logline::say!(
            "{}: interrupted by {}: {}",
            self.0.tool,
            s.name(),
            self.left_text()
        );
        std::process::exit(i32::from(s.exit_status()));
    }

    fn remove_registered(&self) {
        let paths: Vec<(u64, PathBuf)> = std::mem::take(&mut *lock(&self.0.temps));
        for (_, p) in paths {
            if remove(&p) {
                self.0.removed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn unregister(&self, id: u64) -> Option<PathBuf> {
        let mut temps = lock(&self.0.temps);
        let at = temps.iter().position(|(i, _)| *i == id)?;
        Some(temps.remove(at).1)
    }
}

/// Removes a file or a directory tree; whether something was there.
fn remove(p: &Path) -> bool {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => remove_dir_beside_writers(p),
        Ok(_) => std::fs::remove_file(p).is_ok(),
        Err(_) => false,
    }
}

/// Removes a directory that the process's other threads may still be writing into: the
/// signal's cleanup runs beside the work, and a file made after `remove_dir_all` listed the
/// directory fails its final rmdir (ENOTEMPTY). The kill harness caught cbdistfix's staging
/// directory left so after a SIGTERM, while it was hard-linking a directory archive's files.
/// Once the directory is gone the writers' next file fails, so a few rounds suffice.
fn remove_dir_beside_writers(p: &Path) -> bool {
    (0..100).any(|_| match std::fs::remove_dir_all(p) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking hook must not disable cleanup.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Dies the way a unix tool does on a closed pipe: SIGPIPE back to its default action and
/// raised, so the parent sees "killed by SIGPIPE" (a shell prints status 141).
fn die_of_sigpipe() -> ! {
    let _ = io::stderr().flush();
    // SAFETY: resetting a signal disposition and raising a signal at ourselves; no handler runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE);
}

/// Keeps a cancel hook registered; dropping it removes the hook.
pub struct HookGuard {
    owner: Interrupt,
    id: u64,
}

impl Drop for HookGuard {
    fn drop(&mut self) {
        lock(&self.owner.0.hooks).retain(|(i, _)| *i != self.id);
    }
}

/// A registered temporary path: removed when dropped, unless persisted.
pub struct TempPath {
    owner: Interrupt,
    id: u64,
    path: PathBuf,
}

impl TempPath {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the temporary path to `to` (same file system: atomic) and forgets it. Holding
    /// the registry meanwhile means a forced exit either removes it first or finds it renamed.
    /// On failure the path stays registered and is removed when the guard drops.
    pub fn persist(self, to: &Path) -> io::Result<()> {
        let temps = lock(&self.owner.0.temps);
        std::fs::rename(&self.path, to)?;
        drop(temps);
        self.owner.unregister(self.id);
        std::mem::forget(self);
        Ok(())
    }

    /// Forgets the path without removing it (it was moved or removed by other means).
    pub fn forget(self) {
        self.owner.unregister(self.id);
        std::mem::forget(self);
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(p) = self.owner.unregister(self.id) {
            if remove(&p) {
                self.owner.0.removed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Standard output that notes a closed pipe ([`Interrupt::stdout`]).
pub struct Stdout {
    owner: Interrupt,
    inner: io::Stdout,
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| {
            self.owner.note_stdout_error(e);
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf).inspect_err(|e| {
            self.owner.note_stdout_error(e);
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| {
            self.owner.note_stdout_error(e);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory another thread keeps filling is still removed (it was left behind when a
    /// file arrived between remove_dir_all's listing and its rmdir).
    #[test]
    fn a_directory_being_written_is_removed() {
        for round in 0..20 {
            let dir = std::env::temp_dir().join(format!(
                "cbtools-interrupt-test-{}-{round}",
                std::process::id()
            ));
            std::fs::create_dir(&dir).unwrap();
            let writer = {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    // A finite run of files, as cbdistfix's hard links are, that stops
                    // when the directory is gone.
                    for i in 0..5000 {
                        if std::fs::write(dir.join(format!("f{i}")), b"x").is_err() {
                            return;
                        }
                    }
                })
            };
            std::thread::sleep(std::time::Duration::from_millis(2));
            let removed = remove(&dir);
            writer.join().unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            assert!(removed, "round {round}: {} left", dir.display());
        }
    }

    #[test]
    fn exit_statuses_are_128_plus_the_signal() {
        assert_eq!(Signal::Interrupt.exit_status(), 130);
        assert_eq!(Signal::Terminate.exit_status(), 143);
        assert_eq!(Signal::Hangup.exit_status(), 129);
    }

    #[test]
    fn temporary_paths_go_unless_persisted() {
        let i = install("test", Mode::Poll).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let staging = i.staging_dir(dir.path(), ".t-").unwrap();
        std::fs::write(staging.path().join("x"), b"x").unwrap();
        let (mut f, kept) = i.temp_file(dir.path(), ".f-").unwrap();
        f.write_all(b"done").unwrap();
        let (_, dropped) = i.temp_file(dir.path(), ".g-").unwrap();
        let staged = staging.path().to_path_buf();
        drop(staging);
        drop(dropped);
        assert!(!staged.exists());
        kept.persist(&dir.path().join("final")).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("final")]);
        assert_eq!(std::fs::read(dir.path().join("final")).unwrap(), b"done");
    }

    #[test]
    fn hooks_run_once_on_stop_and_at_once_when_registered_late() {
        use std::sync::atomic::AtomicUsize;
        let i = Interrupt(Arc::new(Inner {
            tool: "test",
            mode: Mode::Poll,
            flag: Arc::new(AtomicBool::new(false)),
            signal: AtomicI32::new(0),
            stdout_closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            hooks: Mutex::new(Vec::new()),
            temps: Mutex::new(Vec::new()),
            removed: AtomicU64::new(0),
            left: Mutex::new(None),
        }));
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = Arc::clone(&n);
        let _g = i.on_signal(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        i.stop();
        i.stop();
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let n3 = Arc::clone(&n);
        let _late = i.on_signal(move || {
            n3.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 11);
        assert!(i.requested());
    }
}
