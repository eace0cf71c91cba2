//! Archive errors: each names the file and, where it applies, the TOC entry.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{}: not a pg_dump archive (no PGDMP header)", path.display())]
    NotAnArchive { path: PathBuf },

    #[error("{}: archive format version {major}.{minor} is not supported (this reader knows 1.12 to 1.16: pg_dump 11 to 18)", path.display())]
    UnsupportedVersion { path: PathBuf, major: u8, minor: u8 },

    #[error("{}: unsupported archive: {why}", path.display())]
    Unsupported { path: PathBuf, why: String },

    #[error("{}: archive truncated while reading {what}", path.display())]
    Truncated { path: PathBuf, what: String },

    #[error("{}: corrupt archive: {why}", path.display())]
    Corrupt { path: PathBuf, why: String },

    #[error("{}: TOC entry {dump_id} ({desc} {tag}): {why}", path.display())]
    Entry {
        path: PathBuf,
        dump_id: i32,
        desc: String,
        tag: String,
        why: String,
    },
}
