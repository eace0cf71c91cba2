//! The tools we ship and where each one's clap definition comes from.

use std::path::Path;

use clap::Command;

use crate::{helptext, PackageError};

/// One binary of the package.
pub struct Tool {
    pub name: &'static str,
    pub command: Command,
    /// True while the definition is read back from `--help` (see [`helptext`]).
    pub from_help_text: bool,
}

/// Binaries the package must hold.
pub const REQUIRED: [&str; 4] = ["cbcopyout", "cbdump", "cbrestore", "cbdistfix"];
/// Binaries the package holds when they were built.
pub const OPTIONAL: [&str; 1] = ["cbclone"];

/// Every tool built in `bin_dir`, with its clap `Command`.
pub fn all(bin_dir: &Path) -> Result<Vec<Tool>, PackageError> {
    let mut tools = Vec::new();
    for name in REQUIRED {
        let binary = bin_dir.join(name);
        if !binary.exists() {
            return Err(PackageError::MissingBinary(binary.display().to_string()));
        }
        tools.push(tool(name, &binary)?);
    }
    for name in OPTIONAL {
        let binary = bin_dir.join(name);
        if binary.exists() {
            tools.push(tool(name, &binary)?);
        }
    }
    Ok(tools)
}

fn tool(name: &'static str, binary: &Path) -> Result<Tool, PackageError> {
    if let Some(command) = from_library(name) {
        return Ok(Tool {
            name,
            command,
            from_help_text: false,
        });
    }
    Ok(Tool {
        name,
        command: helptext::command_from_binary(name, binary)?,
        from_help_text: true,
    })
}

/// The definitions exported by the tools' library crates (`<crate>::cli::command()`); a tool
/// not listed here goes through the [`helptext`] fallback.
fn from_library(name: &str) -> Option<Command> {
    type Definition = fn() -> Command;
    const EXPORTED: &[(&str, Definition)] = &[
        ("cbdistfix", distfix::cli::command),
        ("cbcopyout", copyout::cli::command),
        ("cbdump", dump::cli::command),
    ];
    EXPORTED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, command)| command())
}
