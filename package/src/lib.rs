//! Packaging for the cb* tools: man pages and shell completions generated from each tool's clap
//! definition, and a Debian package holding the binaries with both.
//!
//! The .deb is written by `dpkg-deb` from a staging tree we lay out ourselves rather than by
//! `cargo-deb`: the package holds binaries of five crates (cargo-deb packages one crate's), every
//! Debian machine has `dpkg-deb`, and CI then needs no extra tool built from crates.io (cargo-deb
//! takes minutes to compile on CI's two cores; the whole package step takes seconds).

pub mod deb;
pub mod pages;
pub mod tools;

/// Why packaging failed; every variant names the file or program involved.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("running {0}: {1}")]
    Run(String, std::io::Error),
    #[error("{program} failed: {stderr}")]
    Failed { program: String, stderr: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} not found: build the tools first (cargo build --bins, with --release for a release package)")]
    MissingBinary(String),
    #[error("{0}: {1}")]
    Dependency(String, String),
}

impl PackageError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
        move |source| PackageError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
