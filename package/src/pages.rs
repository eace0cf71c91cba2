//! Man pages (roff, section 1) and bash, zsh and fish completions for each tool, written into a
//! directory laid out as they are installed under `/usr/share`.

use std::fs;
use std::path::{Path, PathBuf};

use clap_complete::Shell;

use crate::tools::Tool;
use crate::PackageError;

/// Where one tool's generated files go, relative to the `/usr/share`-like root.
pub fn man_path(name: &str) -> PathBuf {
    PathBuf::from(format!("man/man1/{name}.1"))
}

/// bash-completion's, zsh's and fish's vendor directories.
pub fn completion_path(shell: Shell, name: &str) -> PathBuf {
    match shell {
        Shell::Bash => PathBuf::from(format!("bash-completion/completions/{name}")),
        Shell::Zsh => PathBuf::from(format!("zsh/vendor-completions/_{name}")),
        Shell::Fish => PathBuf::from(format!("fish/vendor_completions.d/{name}.fish")),
        other => PathBuf::from(format!("{other}/{name}")),
    }
}

pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// The man page of `tool` as roff text.
pub fn man_page(tool: &Tool) -> Result<Vec<u8>, PackageError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(tool.command.clone())
        .section("1")
        .manual("cbtools")
        .source(format!(
            "cbtools {}",
            tool.command
                .get_version()
                .unwrap_or(env!("CARGO_PKG_VERSION"))
        ))
        .render(&mut out)
        .map_err(PackageError::io(Path::new("man page")))?;
    Ok(out)
}

/// The completion script of `tool` for `shell`.
pub fn completion(tool: &Tool, shell: Shell) -> Vec<u8> {
    let mut cmd = tool.command.clone();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, tool.name, &mut out);
    out
}

/// Every tool's man page and completions under `root` (`root/man/man1/cbdump.1`, ...); the
/// paths written, relative to `root`.
pub fn write_all(tools: &[Tool], root: &Path) -> Result<Vec<PathBuf>, PackageError> {
    let mut written = Vec::new();
    for tool in tools {
        let mut files = vec![(man_path(tool.name), man_page(tool)?)];
        for shell in SHELLS {
            files.push((completion_path(shell, tool.name), completion(tool, shell)));
        }
        for (rel, bytes) in files {
            let path = root.join(&rel);
            let dir = path.parent().expect("generated paths have a directory");
            fs::create_dir_all(dir).map_err(PackageError::io(dir))?;
            fs::write(&path, bytes).map_err(PackageError::io(&path))?;
            written.push(rel);
        }
    }
    Ok(written)
}
