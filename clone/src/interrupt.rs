//! SIGINT and SIGTERM: remembered, then noticed by every loop between two buffers.
//!
//! This is the one place cbclone learns about signals, so that the workspace's shared
//! signal/cleanup facility (being written for all tools) replaces exactly this module. The
//! handler only stores the signal number: everything else (aborting the COPY transactions,
//! stopping pg_restore, removing temporary files) happens on the normal error path, which
//! unwinds through the same code as any other failure.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::CloneError;

static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn remember(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT and SIGTERM.
pub fn install() {
    let handler = remember as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// `Err(Interrupted)` once a signal has arrived.
pub fn check() -> Result<(), CloneError> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => Err(CloneError::Interrupted(sig)),
    }
}

/// Whether a signal has arrived.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}
