//! SIGINT, SIGTERM and SIGHUP, through the workspace's one signal and cleanup facility (the
//! `interrupt` crate): a signal raises a flag that every loop checks between two buffers, runs
//! the cancel hooks the workers registered (so a COPY blocked on the network ends at once
//! instead of finishing its chunk), and the process ends with 128 + the signal number after
//! removing the registered temporary files. This module is cbclone's only contact with it.

use std::path::PathBuf;
use std::sync::OnceLock;

pub use interrupt::{HookGuard, Interrupt, Mode, TempPath};

use crate::CloneError;

static HANDLE: OnceLock<Interrupt> = OnceLock::new();

/// Installs the handlers (once); the binary calls this first.
pub fn install() -> Result<Interrupt, CloneError> {
    let handle =
        interrupt::install("cbclone", Mode::Poll).map_err(|e| CloneError::Usage(e.to_string()))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// `Err(Interrupted)` once a signal has arrived.
pub fn check() -> Result<(), CloneError> {
    match HANDLE.get().and_then(|h| h.signal()) {
        Some(s) => Err(CloneError::Interrupted(s.number())),
        None if requested() => Err(CloneError::Interrupted(libc::SIGTERM)),
        None => Ok(()),
    }
}

/// Whether the run has been asked to stop.
pub fn requested() -> bool {
    HANDLE.get().is_some_and(|h| h.requested())
}

/// Runs `hook` on a signal while the guard lives (nothing when no handler is installed, as in
/// library use).
pub fn on_signal(hook: impl Fn() + Send + Sync + 'static) -> Option<HookGuard> {
    HANDLE.get().map(|h| h.on_signal(hook))
}

/// What the final message says is left when the run stops early.
pub fn set_left(text: impl Into<String>) {
    if let Some(h) = HANDLE.get() {
        h.set_left(text);
    }
}

/// A private temporary file removed on drop, on failure and on a signal.
pub fn temp_file(prefix: &str) -> Result<(std::fs::File, TempPath), CloneError> {
    let dir: PathBuf = std::env::temp_dir();
    let handle = match HANDLE.get() {
        Some(h) => h.clone(),
        None => install()?,
    };
    handle.temp_file(&dir, prefix).map_err(|e| CloneError::Io {
        what: "creating a temporary file".into(),
        source: std::io::Error::other(e.to_string()),
    })
}
