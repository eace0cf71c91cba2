//! The Debian package: the binaries (stripped), their man pages (gzipped) and completions, a
//! copyright file, and a control file whose `Depends` comes from the libraries the binaries
//! actually link (libssl, libisal when the build found it), the way `dpkg-shlibdeps` derives it:
//! each needed library's owning package and that package's `shlibs` entry.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pages::{self, SHELLS};
use crate::tools::Tool;
use crate::PackageError;

pub const PACKAGE: &str = "cbtools";

/// What to package and where the .deb goes.
pub struct DebOptions {
    /// Where the built binaries are (cargo's target/<profile>).
    pub bin_dir: PathBuf,
    /// Where the .deb is written.
    pub out_dir: PathBuf,
    /// dpkg-deb's compressor: `xz` for a release, `gzip` for a quick check.
    pub compression: String,
}

/// Builds the package; returns the path of the .deb.
pub fn build(tools: &[Tool], opts: &DebOptions) -> Result<PathBuf, PackageError> {
    fs::create_dir_all(&opts.out_dir).map_err(PackageError::io(&opts.out_dir))?;
    let staging = tempdir_in(&opts.out_dir)?;
    let root = staging.path();
    let binaries = stage_binaries(tools, &opts.bin_dir, root)?;
    stage_docs(tools, root)?;
    let arch = output("dpkg", &["--print-architecture"])?;
    let depends = depends(&binaries)?;
    write_control(root, &arch, &depends)?;
    let deb = opts.out_dir.join(format!(
        "{PACKAGE}_{}_{arch}.deb",
        env!("CARGO_PKG_VERSION")
    ));
    let mut cmd = Command::new("dpkg-deb");
    cmd.arg("--root-owner-group")
        .arg(format!("-Z{}", opts.compression))
        .arg("--build")
        .arg(root)
        .arg(&deb);
    run(cmd, "dpkg-deb --build")?;
    Ok(deb)
}

fn tempdir_in(dir: &Path) -> Result<tempfile::TempDir, PackageError> {
    tempfile::Builder::new()
        .prefix(".cbtools-deb-")
        .tempdir_in(dir)
        .map_err(PackageError::io(dir))
}

/// `usr/bin/<tool>`, stripped of debug information (a debug build's 100 MB become 20).
fn stage_binaries(
    tools: &[Tool],
    bin_dir: &Path,
    root: &Path,
) -> Result<Vec<PathBuf>, PackageError> {
    let bin = root.join("usr/bin");
    fs::create_dir_all(&bin).map_err(PackageError::io(&bin))?;
    let mut staged = Vec::new();
    for tool in tools {
        let to = bin.join(tool.name);
        let mut cmd = Command::new("strip");
        cmd.arg("--strip-debug")
            .arg("-o")
            .arg(&to)
            .arg(bin_dir.join(tool.name));
        run(cmd, "strip")?;
        set_mode(&to, 0o755)?;
        staged.push(to);
    }
    Ok(staged)
}

/// Man pages (gzipped, as Debian installs them), completions and the copyright file.
fn stage_docs(tools: &[Tool], root: &Path) -> Result<(), PackageError> {
    let share = root.join("usr/share");
    for tool in tools {
        let page = pages::man_page(tool)?;
        let man = share
            .join(pages::man_path(tool.name))
            .with_extension("1.gz");
        write_file(&man, &gzip(&page))?;
        for shell in SHELLS {
            let path = share.join(pages::completion_path(shell, tool.name));
            write_file(&path, &pages::completion(tool, shell))?;
        }
    }
    let copyright = format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: cbtools\n\nFiles: *\nCopyright: the cbtools authors\nLicense: {}\n",
        env!("CARGO_PKG_LICENSE")
    );
    write_file(
        &share.join(format!("doc/{PACKAGE}/copyright")),
        copyright.as_bytes(),
    )
}

/// gzip -9 with no name and no time stamp, as dh_compress makes them (reproducible).
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), PackageError> {
    let dir = path.parent().expect("staged paths have a directory");
    fs::create_dir_all(dir).map_err(PackageError::io(dir))?;
    fs::write(path, bytes).map_err(PackageError::io(path))?;
    set_mode(path, 0o644)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), PackageError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(PackageError::io(path))
}

fn write_control(root: &Path, arch: &str, depends: &[String]) -> Result<(), PackageError> {
    let size_kib = du_kib(root)?;
    let control = format!(
        "Package: {PACKAGE}\n\
         Version: {}\n\
         Architecture: {arch}\n\
         Maintainer: cbtools developers <cbtools@localhost>\n\
         Installed-Size: {size_kib}\n\
         Depends: {}\n\
         Section: database\n\
         Priority: optional\n\
         Description: backup, export, rewrite, restore and clone tools for Apache Cloudberry and PostgreSQL\n \
         cbdump, cbrestore, cbcopyout, cbdistfix and cbclone: pg_dump-compatible dumps through\n \
         the coordinator from one snapshot, parallel restores of archives and gpbackup sets,\n \
         COPY exports, DISTRIBUTED-clause rewriting of pg_dump output, and server-to-server\n \
         copies of a database.\n",
        env!("CARGO_PKG_VERSION"),
        depends.join(", ")
    );
    let debian = root.join("DEBIAN");
    fs::create_dir_all(&debian).map_err(PackageError::io(&debian))?;
    write_file(&debian.join("control"), control.as_bytes())
}

fn du_kib(dir: &Path) -> Result<u64, PackageError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(PackageError::io(dir))? {
        let entry = entry.map_err(PackageError::io(dir))?;
        let meta = entry.metadata().map_err(PackageError::io(&entry.path()))?;
        total += if meta.is_dir() {
            du_kib(&entry.path())? * 1024
        } else {
            meta.len()
        };
    }
    Ok(total.div_ceil(1024))
}

/// `Depends` entries for the shared libraries `binaries` need, sorted and without repeats.
pub fn depends(binaries: &[PathBuf]) -> Result<Vec<String>, PackageError> {
    let mut libs = BTreeSet::new();
    for binary in binaries {
        let shown = binary.display().to_string();
        for (soname, path) in needed_libraries(binary)? {
            libs.insert((
                soname,
                path.ok_or_else(|| {
                    PackageError::Dependency(
                        shown.clone(),
                        "a needed library is not installed".into(),
                    )
                })?,
            ));
        }
    }
    let mut depends = BTreeSet::new();
    for (soname, path) in libs {
        depends.insert(dependency_of(&soname, &path)?);
    }
    Ok(depends.into_iter().collect())
}

/// The binary's direct `NEEDED` entries (readelf) with the file each resolves to (ldd).
fn needed_libraries(binary: &Path) -> Result<Vec<(String, Option<String>)>, PackageError> {
    let dynamic = output("readelf", &["-d", &binary.display().to_string()])?;
    let resolved = output("ldd", &[&binary.display().to_string()])?;
    let mut needed = Vec::new();
    for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
        let Some(soname) = line.split('[').nth(1).and_then(|s| s.split(']').next()) else {
            continue;
        };
        // `libssl.so.3 => /lib/.../libssl.so.3 (0x...)`, or for the loader `/lib64/ld-linux-x86-64.so.2 (0x...)`.
        let path = resolved.lines().find_map(|l| {
            let l = l.trim();
            let (name, rest) = l.split_once(" => ").unwrap_or(("", l));
            let path = rest.split(" (").next().unwrap_or(rest).trim();
            let matches =
                name == soname || (name.is_empty() && path.ends_with(&format!("/{soname}")));
            matches.then(|| path.to_string())
        });
        needed.push((soname.to_string(), path));
    }
    Ok(needed)
}

/// `libisal.so.2` at `/lib/x86_64-linux-gnu/libisal.so.2` -> `libisal2 (>= 2.30.0)`: the
/// owning package's shlibs line for that library, or the bare package name when it has none.
fn dependency_of(soname: &str, path: &str) -> Result<String, PackageError> {
    let package = owner(path)?;
    let (lib, version) = soname
        .split_once(".so.")
        .map(|(l, v)| (l.to_string(), v.to_string()))
        .unwrap_or_else(|| (soname.to_string(), String::new()));
    let shlibs = output("dpkg-query", &["--control-show", &package, "shlibs"]).unwrap_or_default();
    let from_shlibs = shlibs.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        let (name, ver) = if first.ends_with(':') {
            (words.next()?, words.next()?)
        } else {
            (first, words.next()?)
        };
        (name == lib && ver == version).then(|| words.collect::<Vec<_>>().join(" "))
    });
    Ok(from_shlibs
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| package.split(':').next().unwrap_or(&package).to_string()))
}

/// The installed package that holds `path` (tried as given, then through /usr: merged /usr
/// makes `/lib/...` and `/usr/lib/...` the same file under two names).
fn owner(path: &str) -> Result<String, PackageError> {
    let mut candidates = vec![path.to_string()];
    if let Ok(real) = fs::canonicalize(path) {
        candidates.push(real.display().to_string());
    }
    for c in candidates.clone() {
        match c.strip_prefix("/usr") {
            Some(rest) => candidates.push(rest.to_string()),
            None => candidates.push(format!("/usr{c}")),
        }
    }
    for c in &candidates {
        if let Ok(out) = output("dpkg-query", &["--search", c]) {
            if let Some(pkg) = out.lines().next().and_then(|l| l.split(':').next()) {
                let pkg = pkg.split(',').next().unwrap_or(pkg).trim();
                return Ok(pkg.to_string());
            }
        }
    }
    Err(PackageError::Dependency(
        path.to_string(),
        "no installed package holds this library".into(),
    ))
}

fn output(program: &str, args: &[&str]) -> Result<String, PackageError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    let out = run(cmd, program)?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

fn run(mut cmd: Command, what: &str) -> Result<Vec<u8>, PackageError> {
    let out = cmd
        .output()
        .map_err(|e| PackageError::Run(what.to_string(), e))?;
    if !out.status.success() {
        return Err(PackageError::Failed {
            program: what.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}
