//! Building the regression database's dumps into the cache directory, step by step.
//!
//! Cache layout (`CBTOOLS_REGRESS_CACHE`, else `target/regress` of the workspace):
//! `src/regress` the source package's `src/test/regress`; `<major>/lib/` regress.so, refint.so
//! and autoinc.so for that server (the database's C functions name this directory, so the
//! cache must not move); `<major>/pg_regress/` pg_regress's output; `<major>/regression.dump`,
//! `.dir`, `.sql`, `roles.sql`, and `COMPLETE`, written last, holding the build's notes (failed
//! pg_regress tests, statements PostgreSQL 18 refused).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{create_database, RegressDumps, DATABASE};
use crate::install::FileLock;
use crate::{PgInstall, TestServer};

/// Why the regression database cannot be built here.
#[derive(Debug)]
pub(super) struct Unavailable(String);

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn unavailable(reason: impl Into<String>) -> Unavailable {
    Unavailable(reason.into())
}

const MARKER: &str = "COMPLETE";

/// The dumps for `major`, building whatever is missing. Parallel tests wait on one lock while
/// the first builds.
pub(super) fn cached_or_built(major: u32) -> Result<RegressDumps, Unavailable> {
    if major != 15 && major != 18 {
        return Err(unavailable(format!(
            "no recipe for PostgreSQL {major} (15 and 18 are built)"
        )));
    }
    let cache = cache_dir()?;
    let _lock = FileLock::acquire(&cache.join("build.lock")).map_err(Unavailable)?;
    let d15 = cached(&cache, 15).map_or_else(|| build_15(&cache), Ok)?;
    if major == 15 {
        return Ok(d15);
    }
    cached(&cache, 18).map_or_else(|| build_18(&cache, &d15), Ok)
}

/// `CBTOOLS_REGRESS_CACHE`, else `target/regress` beside the pg wheels' cache; absolute, since
/// the path of `lib/` ends up inside the database's function definitions.
fn cache_dir() -> Result<PathBuf, Unavailable> {
    let dir = std::env::var_os("CBTOOLS_REGRESS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/regress"));
    std::fs::create_dir_all(&dir).map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
    dir.canonicalize()
        .map_err(|e| unavailable(format!("{}: {e}", dir.display())))
}

fn dumps_in(cache: &Path, major: u32) -> RegressDumps {
    let dir = cache.join(major.to_string());
    RegressDumps {
        major,
        custom: dir.join("regression.dump"),
        directory: dir.join("regression.dir"),
        plain: dir.join("regression.sql"),
        roles: dir.join("roles.sql"),
        notes: std::fs::read_to_string(dir.join(MARKER)).unwrap_or_default(),
    }
}

fn cached(cache: &Path, major: u32) -> Option<RegressDumps> {
    let d = dumps_in(cache, major);
    let complete = cache.join(major.to_string()).join(MARKER).is_file()
        && d.custom.is_file()
        && d.directory.join("toc.dat").is_file()
        && d.plain.is_file()
        && d.roles.is_file();
    complete.then_some(d)
}

/// pg_regress against a PostgreSQL 15 server, then pg_dump 15's three formats.
fn build_15(cache: &Path) -> Result<RegressDumps, Unavailable> {
    let started = std::time::Instant::now();
    let install = PgInstall::major(15).ok_or_else(|| unavailable("no PostgreSQL 15"))?;
    let pg_config = install.bin("pg_config");
    ensure_prerequisites(&pg_config)?;
    let source = regress_source(cache)?;
    let dir = fresh_dir(&cache.join("15"))?;
    let lib = dir.join("lib");
    build_libraries(&pg_config, &source, &lib, None)?;
    let server = TestServer::start_with(&install);
    let failed = run_pg_regress(&server, &pg_config, &source, &lib, &dir.join("pg_regress"))?;
    ensure_large_objects(&server);
    write_roles(&server, &dir.join("roles.sql"))?;
    write_dumps(&server, &dir)?;
    drop(server);
    let notes = format!("pg_regress tests that failed: {}\n", failed.join(" "));
    finish(cache, 15, &notes, started)
}

/// pg_dump 18 of the database on PostgreSQL 15, loaded into PostgreSQL 18 with psql, then
/// pg_dump 18's formats of that (1.16 archives, large objects as `BLOB METADATA` + `BLOBS`).
fn build_18(cache: &Path, d15: &RegressDumps) -> Result<RegressDumps, Unavailable> {
    let started = std::time::Instant::now();
    let install15 = PgInstall::major(15).ok_or_else(|| unavailable("no PostgreSQL 15"))?;
    let install18 = PgInstall::major(18).ok_or_else(|| unavailable("no PostgreSQL 18 wheel"))?;
    let source = regress_source(cache)?;
    let dir = fresh_dir(&cache.join("18"))?;
    let lib = dir.join("lib");
    // PostgreSQL 15's regress.c against 18's headers: utils/array.h is no longer included
    // through other headers, and the spinlock emulation constants went away in 17.
    let cflags = "-O2 -fPIC -fvisibility=hidden -include postgres.h -include utils/array.h \
                  -DNUM_SPINLOCK_SEMAPHORES=0 -DNUM_ATOMICS_SEMAPHORES=0";
    build_libraries(&install18.bin("pg_config"), &source, &lib, Some(cflags))?;

    let old = TestServer::start_with(&install15);
    d15.create_roles(&old);
    d15.pg_restore(&old, DATABASE, &d15.custom, &[]);
    let script = dump_for_18(&old, &install18, &lib)?;
    drop(old);
    let load = dir.join("load.sql");
    std::fs::write(&load, script).map_err(|e| unavailable(format!("{}: {e}", load.display())))?;

    let server = TestServer::start_with(&install18);
    d15.create_roles(&server);
    create_database(&server, DATABASE);
    let out = run(
        server
            .command("psql")
            .args(["-X", "-q", "-d", DATABASE, "-f"])
            .arg(&load),
        "psql -f load.sql (PostgreSQL 18)",
    )?;
    let refused = error_lines(&out.stderr);
    let _ = std::fs::remove_file(&load);
    ensure_large_objects(&server);
    std::fs::copy(&d15.roles, dir.join("roles.sql")).map_err(|e| unavailable(e.to_string()))?;
    write_dumps(&server, &dir)?;
    drop(server);
    let notes = format!(
        "statements PostgreSQL 18 refused while loading ({}):\n{}\n",
        refused.len(),
        refused.join("\n")
    );
    finish(cache, 18, &notes, started)
}

fn finish(
    cache: &Path,
    major: u32,
    notes: &str,
    started: std::time::Instant,
) -> Result<RegressDumps, Unavailable> {
    let marker = cache.join(major.to_string()).join(MARKER);
    std::fs::write(&marker, notes)
        .map_err(|e| unavailable(format!("{}: {e}", marker.display())))?;
    eprintln!(
        "built the regression database's dumps for PostgreSQL {major} in {:.0} s into {}\n{notes}",
        started.elapsed().as_secs_f64(),
        marker.parent().unwrap_or(cache).display()
    );
    Ok(dumps_in(cache, major))
}

/// Server headers, pgxs and pg_regress for `pg_config`'s installation, dpkg-source for the
/// source package. When something is missing and we are root, `tests/scripts/regress-prereqs.sh`
/// installs it (and adds the deb-src entries `apt-get source` needs).
fn ensure_prerequisites(pg_config: &Path) -> Result<(), Unavailable> {
    if prerequisites_present(pg_config) {
        return Ok(());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/regress-prereqs.sh");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(unavailable(format!(
            "server headers, pg_regress or dpkg-source missing: run {} as root",
            script.display()
        )));
    }
    eprintln!(
        "installing the regression database's prerequisites: {}",
        script.display()
    );
    run(Command::new("bash").arg(&script), "regress-prereqs.sh")?;
    if prerequisites_present(pg_config) {
        Ok(())
    } else {
        Err(unavailable(
            "prerequisites still missing after regress-prereqs.sh",
        ))
    }
}

fn prerequisites_present(pg_config: &Path) -> bool {
    let server_headers = pg_config_value(pg_config, "--includedir-server")
        .is_some_and(|d| Path::new(&d).join("postgres.h").is_file());
    server_headers
        && pg_regress(pg_config).is_some_and(|p| p.is_file())
        && Command::new("dpkg-source")
            .arg("--version")
            .output()
            .is_ok()
        && Command::new("make").arg("--version").output().is_ok()
        && sources_listed()
}

fn sources_listed() -> bool {
    Command::new("apt-cache")
        .args(["showsrc", "postgresql-15"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Version:"))
}

fn pg_config_value(pg_config: &Path, flag: &str) -> Option<String> {
    let out = Command::new(pg_config).arg(flag).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// pg_regress ships with pgxs (`postgresql-client-15` on Debian).
fn pg_regress(pg_config: &Path) -> Option<PathBuf> {
    let pgxs = pg_config_value(pg_config, "--pgxs")?; // .../pgxs/src/makefiles/pgxs.mk
    let root = Path::new(&pgxs).parent()?.parent()?;
    Some(root.join("test/regress/pg_regress"))
}

/// `src/test/regress` of Debian's postgresql-15 source package, fetched with `apt-get source`
/// on first use and kept alone as `src/regress` (the whole unpacked package is 188 MB). The
/// installed version first, then every version the archive lists: a mirror may lack the
/// security pool's sources.
fn regress_source(cache: &Path) -> Result<PathBuf, Unavailable> {
    let kept = cache.join("src/regress");
    if is_regress_dir(&kept) {
        return Ok(kept);
    }
    let download = fresh_dir(&cache.join("src.download"))?;
    let mut errors = Vec::new();
    for version in source_versions() {
        let out = Command::new("apt-get")
            .args(["source", "-q", &format!("postgresql-15={version}")])
            .current_dir(&download)
            .output()
            .map_err(|e| unavailable(format!("running apt-get: {e}")))?;
        if let Some(found) = find_regress_dir(&download).filter(|_| out.status.success()) {
            fresh_dir(&cache.join("src"))?;
            std::fs::rename(&found, &kept).map_err(|e| unavailable(e.to_string()))?;
            let _ = std::fs::write(cache.join("src/VERSION"), format!("{version}\n"));
            let _ = std::fs::remove_dir_all(&download);
            return Ok(kept);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().find(|l| l.starts_with("E:")).unwrap_or("");
        errors.push(format!("{version}: {first}"));
    }
    Err(unavailable(format!(
        "apt-get source postgresql-15 failed: {}",
        errors.join("; ")
    )))
}

fn is_regress_dir(dir: &Path) -> bool {
    dir.join("parallel_schedule").is_file() && dir.join("regress.c").is_file()
}

fn find_regress_dir(src: &Path) -> Option<PathBuf> {
    std::fs::read_dir(src)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("src/test/regress"))
        .find(|d| is_regress_dir(d))
}

fn source_versions() -> Vec<String> {
    let mut versions = Vec::new();
    if let Ok(out) = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "postgresql-15"])
        .output()
    {
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !v.is_empty() {
            versions.push(v);
        }
    }
    if let Ok(out) = Command::new("apt-cache")
        .args(["showsrc", "postgresql-15"])
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(v) = line.strip_prefix("Version: ") {
                if !versions.iter().any(|known| known == v) {
                    versions.push(v.to_string());
                }
            }
        }
    }
    versions
}

fn fresh_dir(dir: &Path) -> Result<PathBuf, Unavailable> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| unavailable(format!("{}: {e}", dir.display())))?;
    Ok(dir.to_path_buf())
}

/// regress.so built with pgxs for `pg_config`'s server, and that installation's refint.so and
/// autoinc.so (the triggers test loads them from the same directory) copied beside it.
fn build_libraries(
    pg_config: &Path,
    source: &Path,
    lib: &Path,
    cflags: Option<&str>,
) -> Result<(), Unavailable> {
    let work = lib.with_file_name("lib-build");
    fresh_dir(&work)?;
    std::fs::create_dir_all(lib).map_err(|e| unavailable(e.to_string()))?;
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| unavailable(format!("copying {}: {e}", from.display())))
    };
    copy(&source.join("regress.c"), &work.join("regress.c"))?;
    let makefile = "MODULES = regress\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n";
    std::fs::write(work.join("Makefile"), makefile).map_err(|e| unavailable(e.to_string()))?;
    let mut make = Command::new("make");
    make.current_dir(&work)
        .arg(format!("PG_CONFIG={}", pg_config.display()))
        // No LLVM bitcode: it would need the clang the server was built with.
        .arg("with_llvm=no");
    if let Some(flags) = cflags {
        make.arg(format!("CFLAGS={flags}"));
    }
    run(&mut make, "make regress.so")?;
    copy(&work.join("regress.so"), &lib.join("regress.so"))?;
    let pkglib = pg_config_value(pg_config, "--pkglibdir")
        .ok_or_else(|| unavailable("pg_config --pkglibdir failed"))?;
    for module in ["refint.so", "autoinc.so"] {
        copy(&Path::new(&pkglib).join(module), &lib.join(module))?;
    }
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// pg_regress with the parallel schedule against `server`; it drops and creates the
/// `regression` database itself, with the settings `make installcheck` gives it. Returns the
/// names of the tests that failed.
fn run_pg_regress(
    server: &TestServer,
    pg_config: &Path,
    source: &Path,
    lib: &Path,
    out_dir: &Path,
) -> Result<Vec<String>, Unavailable> {
    let pg_regress = pg_regress(pg_config).ok_or_else(|| unavailable("no pg_regress"))?;
    // Server-side COPY TO/FROM files land in results/, written by the server's OS user.
    let results = out_dir.join("results");
    std::fs::create_dir_all(&results).map_err(|e| unavailable(e.to_string()))?;
    for dir in [out_dir, &results] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| unavailable(e.to_string()))?;
    }
    let mut cmd = Command::new(pg_regress);
    server.apply_env(&mut cmd);
    let arg = |name: &str, value: &Path| format!("--{name}={}", value.display());
    cmd.arg(arg("host", server.socket_dir()))
        .arg(format!("--port={}", server.port()))
        .arg("--user=postgres")
        .arg(arg("bindir", server.install().bin_dir()))
        .arg(arg("dlpath", lib))
        .arg(arg("inputdir", source))
        .arg(arg("outputdir", out_dir))
        .arg(arg("schedule", &source.join("parallel_schedule")))
        .arg("--max-concurrent-tests=20");
    // A non-zero exit only says some tests' output differed: what matters is the database.
    let out = cmd
        .output()
        .map_err(|e| unavailable(format!("running pg_regress: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::write(out_dir.join("pg_regress.out"), stdout.as_bytes());
    let tables: i64 = server
        .client("postgres")
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&DATABASE],
        )
        .map(|r| r.get(0))
        .unwrap_or(0);
    if tables == 0 {
        return Err(unavailable(format!(
            "pg_regress left no regression database ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(stdout
        .lines()
        .filter(|l| l.contains("... FAILED") || l.contains("... failed"))
        .filter_map(|l| l.split_whitespace().find(|w| *w != "test" && *w != "not"))
        .map(str::to_string)
        .collect())
}

/// The suite leaves a few large objects; make sure there are some whatever it did, since
/// `BLOB METADATA` is part of what the dumps must exercise.
fn ensure_large_objects(server: &TestServer) {
    server.psql(
        DATABASE,
        "SELECT lo_from_bytea(0, convert_to('cbtools large object ' || g, 'UTF8')) \
           FROM generate_series(1, 2) g \
          WHERE NOT EXISTS (SELECT FROM pg_largeobject_metadata)",
    );
}

/// `pg_dumpall --roles-only`, without creating the bootstrap superuser every server has.
fn write_roles(server: &TestServer, path: &Path) -> Result<(), Unavailable> {
    let out = run(
        server.command("pg_dumpall").arg("--roles-only"),
        "pg_dumpall --roles-only",
    )?;
    let roles: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| *l != "CREATE ROLE postgres;")
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(path, roles).map_err(|e| unavailable(format!("{}: {e}", path.display())))
}

/// pg_dump's custom, directory and plain formats of the regression database, each written
/// under a temporary name and renamed, so a killed build leaves no file that looks complete.
fn write_dumps(server: &TestServer, dir: &Path) -> Result<(), Unavailable> {
    for (format, name) in [
        ("c", "regression.dump"),
        ("d", "regression.dir"),
        ("p", "regression.sql"),
    ] {
        let tmp = dir.join(format!("{name}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_file(&tmp);
        run(
            server
                .command("pg_dump")
                .args(["-F", format, "-d", DATABASE, "-f"])
                .arg(&tmp),
            &format!("pg_dump -F{format}"),
        )?;
        std::fs::rename(&tmp, dir.join(name)).map_err(|e| unavailable(e.to_string()))?;
    }
    Ok(())
}

/// pg_dump 18's plain script of the database on the old server, ready for PostgreSQL 18: the
/// C functions point at the libraries built for 18 (whichever directories the old server's
/// functions name: the dumps may have been built in another cache), and the `pg_attver` column
/// options Debian's PostgreSQL 15.20 stores on every column (pg_dump 15 leaves them out,
/// pg_dump 18 prints them, PostgreSQL 18 refuses them) are dropped.
fn dump_for_18(
    old: &TestServer,
    install18: &PgInstall,
    lib18: &Path,
) -> Result<String, Unavailable> {
    let old_dirs: Vec<String> = old
        .client(DATABASE)
        .query(
            "SELECT DISTINCT regexp_replace(probin, '[^/]*$', '') FROM pg_proc \
              WHERE probin LIKE '/%'",
            &[],
        )
        .map_err(|e| unavailable(format!("listing C functions' libraries: {e}")))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut cmd = Command::new(install18.bin("pg_dump"));
    old.apply_env(&mut cmd);
    let out = run(
        cmd.args(["-d", DATABASE]),
        "pg_dump 18 of the PostgreSQL 15 database",
    )?;
    let text = String::from_utf8(out.stdout).map_err(|e| unavailable(e.to_string()))?;
    let to = format!("{}/", lib18.display());
    Ok(text
        .lines()
        .filter(|l| !(l.starts_with("ALTER TABLE ONLY ") && l.contains(" SET (pg_attver=")))
        .map(|l| {
            let line = old_dirs.iter().fold(l.to_string(), |line, dir| {
                line.replace(&format!("'{dir}"), &format!("'{to}"))
            });
            format!("{line}\n")
        })
        .collect())
}

fn error_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.contains("ERROR:"))
        .map(str::to_string)
        .collect()
}

fn run(cmd: &mut Command, what: &str) -> Result<Output, Unavailable> {
    let out = cmd
        .output()
        .map_err(|e| unavailable(format!("running {what}: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(unavailable(format!(
            "{what} failed ({}):\n{}",
            out.status,
            tail.join("\n")
        )));
    }
    Ok(out)
}
