//! The real `pg_dump`, which writes everything that is not table data (so DDL fidelity is
//! pg_dump's for every object kind): found, version-checked against the server, and run on the
//! leader's exported snapshot.

use std::path::{Path, PathBuf};
use std::process::Command;

use cluster::{ConnParams, ServerInfo};

use crate::DumpError;

/// A pg_dump binary and its version.
#[derive(Debug, Clone)]
pub struct PgDump {
    pub path: PathBuf,
    pub major: u32,
    pub version: String,
}

impl PgDump {
    /// `--pg-dump PATH`, else `pg_dump` from PATH, else the newest under /usr/lib/postgresql;
    /// it must be at least the server's major version (pg_dump refuses newer servers), and a
    /// Cloudberry/Greenplum server needs its own pg_dump.
    pub fn find(explicit: Option<&Path>, server: &ServerInfo) -> Result<PgDump, DumpError> {
        let server_major = (server.version_num / 10000) as u32;
        let mut candidates: Vec<PathBuf> = Vec::new();
        match explicit {
            Some(p) => candidates.push(p.to_path_buf()),
            None => {
                if let Some(path) = std::env::var_os("PATH") {
                    for dir in std::env::split_paths(&path) {
                        let p = dir.join("pg_dump");
                        if p.is_file() {
                            candidates.push(p);
                        }
                    }
                }
                if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
                    let mut v: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok())
                        .map(|e| e.path().join("bin/pg_dump"))
                        .filter(|p| p.is_file())
                        .collect();
                    v.sort();
                    v.reverse();
                    // Debian's /usr/bin/pg_dump is postgresql-common's Perl wrapper, which runs
                    // the newest of these anyway: calling it directly saves two Perl start-ups
                    // (about 0.1 s) per dump.
                    if !v.is_empty() {
                        candidates.retain(|c| !is_debian_wrapper(c));
                    }
                    candidates.extend(v);
                }
            }
        }
        if candidates.is_empty() {
            return Err(DumpError::PgDump(format!(
                "pg_dump not found on PATH or under /usr/lib/postgresql; install the client for server version {server_major} (Debian: apt-get install postgresql-client-{server_major}) or give --pg-dump PATH"
            )));
        }
        let mut seen = Vec::new();
        for c in candidates {
            let out = Command::new(&c).arg("--version").output();
            let Ok(out) = out else {
                seen.push(format!("{} (cannot run)", c.display()));
                continue;
            };
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let major = parse_major(&text).unwrap_or(0);
            let mpp_dump = text.contains("Greenplum") || text.contains("Cloudberry");
            // An explicit --pg-dump is the user's choice on an MPP server (a wrapper, a build
            // whose version line says neither name); found ones must be the cluster's own.
            if major >= server_major && (mpp_dump || !server.flavor.is_mpp() || explicit.is_some())
            {
                return Ok(PgDump {
                    path: c,
                    major,
                    version: text,
                });
            }
            seen.push(format!("{} ({text})", c.display()));
        }
        Err(DumpError::PgDump(if server.flavor.is_mpp() {
            format!(
                "the server is {}; its schema must be dumped with its own pg_dump (Cloudberry's or Greenplum's), found only: {}; give --pg-dump /path/to/cloudberry/bin/pg_dump",
                server.describe(),
                seen.join(", ")
            )
        } else {
            format!(
                "server version {} is newer than every pg_dump found ({}); install pg_dump {server_major} or newer (Debian: apt-get install postgresql-client-{server_major}) or give --pg-dump PATH",
                server.describe(),
                seen.join(", ")
            )
        }))
    }
}

fn is_debian_wrapper(p: &Path) -> bool {
    std::fs::canonicalize(p)
        .map(|real| real.file_name().is_some_and(|n| n == "pg_wrapper"))
        .unwrap_or(false)
}

fn parse_major(version_line: &str) -> Option<u32> {
    // "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let after = version_line.split(')').nth(1)?.trim();
    after.split(['.', ' ']).next()?.parse().ok()
}

/// A libpq conninfo string for the child process (values quoted), and the password to pass in
/// its environment rather than on its command line.
pub fn conninfo(p: &ConnParams) -> (String, Option<String>) {
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
        "application_name",
    ] {
        if let Some(v) = p.get(key) {
            parts.push(format!("{key}={}", q(v)));
        }
    }
    (parts.join(" "), p.password())
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions() {
        assert_eq!(
            super::parse_major("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(super::parse_major("pg_dump (PostgreSQL) 18.6"), Some(18));
        assert_eq!(super::parse_major("pg_dump (PostgreSQL) 9.4.26"), Some(9));
    }
}
