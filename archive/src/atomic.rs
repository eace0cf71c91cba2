//! Files that appear under their final name only once complete.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::ArchiveError;

/// `dir/.name.cbtools-<pid>.tmp` beside `path`, on the same file system so rename is atomic.
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    path.with_file_name(format!(".{name}.cbtools-{}.tmp", std::process::id()))
}

/// Writes `path` through `fill` into a temporary file, syncs it and renames it into place; on
/// any error the temporary file is removed and `path` is untouched.
pub fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), ArchiveError> {
    let temp = temp_name(path);
    let result = (|| {
        let mut f = File::create(&temp)?;
        fill(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&temp);
        ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}
