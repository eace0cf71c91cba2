//! The tools we ship and where each one's clap definition comes from: every tool's library
//! exports its command line (`<crate>::cli::command()`), so man pages and completions carry
//! exactly the options the binary parses.

use std::path::Path;

use clap::Command;

use crate::PackageError;

/// One binary of the package.
pub struct Tool {
    pub name: &'static str,
    pub command: Command,
}

type Definition = fn() -> Command;

/// Binaries the package holds, with their clap definitions.
pub const TOOLS: [(&str, Definition); 5] = [
    ("cbdump", dump::cli::command),
    ("cbrestore", restore::cli::command),
    ("cbcopyout", copyout::cli::command),
    ("cbdistfix", distfix::cli::command),
    ("cbclone", clone::cli::command),
];

/// Every tool, each of which must be built in `bin_dir`.
pub fn all(bin_dir: &Path) -> Result<Vec<Tool>, PackageError> {
    TOOLS
        .iter()
        .map(|(name, command)| {
            let binary = bin_dir.join(name);
            if !binary.exists() {
                return Err(PackageError::MissingBinary(binary.display().to_string()));
            }
            Ok(Tool {
                name,
                command: command(),
            })
        })
        .collect()
}
