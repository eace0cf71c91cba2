//! Finding backup files on disk.
//!
//! gpbackup spreads a set over one directory per content (layouts A and B of the format doc), one
//! shared directory (layout C), or — once an operator has copied everything to one host — a flat
//! heap of files. Every file name carries the timestamp and (for segment files) the content id and
//! table oid, so discovery indexes by *name* alone: walk every root, classify each regular file
//! whose name starts with `gpbackup_`, and ignore directories entirely. That handles all layouts,
//! several roots (one per host) and mixtures the same way.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::config::Compression;
use crate::error::{Error, Result};

/// What one `gpbackup_*` file is, decoded from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// `gpbackup_<ts>_<suffix>` on the coordinator.
    Coordinator {
        timestamp: String,
        file: CoordinatorFile,
    },
    /// `gpbackup_<c>_<ts>_<oid><ext>`: one table on one segment (multiple-data-file mode).
    TableData {
        content: i32,
        timestamp: String,
        oid: u32,
        compression: Compression,
    },
    /// `gpbackup_<c>_<ts><ext>`: all tables of one segment (single-data-file mode).
    SegmentData {
        content: i32,
        timestamp: String,
        compression: Compression,
    },
    /// `gpbackup_<c>_<ts>_toc.yaml`: byte ranges inside the segment's single data file.
    SegmentToc { content: i32, timestamp: String },
}

/// The coordinator files of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CoordinatorFile {
    Config,
    Toc,
    Metadata,
    Statistics,
    Report,
    PluginConfig,
}

impl CoordinatorFile {
    pub fn suffix(self) -> &'static str {
        match self {
            CoordinatorFile::Config => "config.yaml",
            CoordinatorFile::Toc => "toc.yaml",
            CoordinatorFile::Metadata => "metadata.sql",
            CoordinatorFile::Statistics => "statistics.sql",
            CoordinatorFile::Report => "report",
            CoordinatorFile::PluginConfig => "plugin_config.yaml",
        }
    }

    fn from_suffix(s: &str) -> Option<CoordinatorFile> {
        [
            CoordinatorFile::Config,
            CoordinatorFile::Toc,
            CoordinatorFile::Metadata,
            CoordinatorFile::Statistics,
            CoordinatorFile::Report,
            CoordinatorFile::PluginConfig,
        ]
        .into_iter()
        .find(|c| c.suffix() == s)
    }
}

/// True for the 14-digit `YYYYMMDDHHMMSS` backup keys.
pub fn is_timestamp(s: &str) -> bool {
    s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit())
}

fn split_ext(s: &str) -> (&str, Compression) {
    if let Some(stem) = s.strip_suffix(".gz") {
        (stem, Compression::Gzip)
    } else if let Some(stem) = s.strip_suffix(".zst") {
        (stem, Compression::Zstd)
    } else {
        (s, Compression::None)
    }
}

fn small_number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Decodes a file name; `None` for anything that is not a backup file (gprestore reports, helper
/// pipes and scripts, unrelated files).
pub fn classify(name: &str) -> Option<FileKind> {
    let rest = name.strip_prefix("gpbackup_")?;
    let (first, after) = rest.split_once('_').unwrap_or((rest, ""));
    if is_timestamp(first) {
        let file = CoordinatorFile::from_suffix(after)?;
        return Some(FileKind::Coordinator {
            timestamp: first.to_string(),
            file,
        });
    }
    let content: i32 = small_number(first)?;
    if let Some(ts) = after.strip_suffix("_toc.yaml") {
        return is_timestamp(ts).then(|| FileKind::SegmentToc {
            content,
            timestamp: ts.to_string(),
        });
    }
    let (stem, compression) = split_ext(after);
    match stem.split_once('_') {
        None => is_timestamp(stem).then(|| FileKind::SegmentData {
            content,
            timestamp: stem.to_string(),
            compression,
        }),
        Some((ts, oid)) if is_timestamp(ts) => {
            small_number::<u32>(oid).map(|oid| FileKind::TableData {
                content,
                timestamp: ts.to_string(),
                oid,
                compression,
            })
        }
        Some(_) => None,
    }
}

/// A data file and the compression its name announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: PathBuf,
    pub compression: Compression,
}

/// Every file found for one backup timestamp.
#[derive(Debug, Clone, Default)]
pub struct SetFiles {
    pub timestamp: String,
    pub coordinator: BTreeMap<CoordinatorFile, PathBuf>,
    /// (content, oid) → file, multiple-data-file mode.
    pub table_files: BTreeMap<(i32, u32), DataFile>,
    /// content → file, single-data-file mode.
    pub segment_files: BTreeMap<i32, DataFile>,
    /// content → segment toc, single-data-file mode.
    pub segment_tocs: BTreeMap<i32, PathBuf>,
}

/// How the files of a set are arranged (informational; discovery does not depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutKind {
    /// One `.../backups/<date>/<ts>` directory per content (layouts A and B).
    PerContentDirs,
    /// All contents in one `.../backups/<date>/<ts>` directory (layout C, `--single-backup-dir`).
    SingleDir,
    /// Files outside the `backups/<date>/<ts>` structure, e.g. copied flat into one directory.
    Flat,
}

impl fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayoutKind::PerContentDirs => "one directory per content",
            LayoutKind::SingleDir => "single backup directory",
            LayoutKind::Flat => "flat directory",
        })
    }
}

impl SetFiles {
    pub fn coordinator_file(&self, which: CoordinatorFile) -> Option<&Path> {
        self.coordinator.get(&which).map(PathBuf::as_path)
    }

    /// Like [`SetFiles::coordinator_file`] but a typed error when absent.
    pub fn require(&self, which: CoordinatorFile) -> Result<&Path> {
        self.coordinator_file(which)
            .ok_or_else(|| Error::MissingCoordinatorFile {
                timestamp: self.timestamp.clone(),
                what: which.suffix(),
            })
    }

    /// Highest content id seen in any segment file name, plus one (for sets that do not record
    /// `segmentcount`).
    pub fn contents_seen(&self) -> u32 {
        let max = self
            .table_files
            .keys()
            .map(|(c, _)| *c)
            .chain(self.segment_files.keys().copied())
            .chain(self.segment_tocs.keys().copied())
            .max();
        max.map(|m| m as u32 + 1).unwrap_or(0)
    }

    /// Which layout the files are in.
    pub fn layout_kind(&self) -> LayoutKind {
        let in_backup_tree = |p: &Path| {
            let dir = p.parent();
            let ts = dir.and_then(|d| d.file_name()).and_then(|n| n.to_str());
            let date = dir
                .and_then(|d| d.parent())
                .and_then(|d| d.file_name())
                .and_then(|n| n.to_str());
            let backups = dir
                .and_then(|d| d.parent())
                .and_then(|d| d.parent())
                .and_then(|d| d.file_name())
                .and_then(|n| n.to_str());
            ts == Some(self.timestamp.as_str())
                && date == self.timestamp.get(..8)
                && backups == Some("backups")
        };
        let Some(coord) = self.coordinator.values().next() else {
            return LayoutKind::Flat;
        };
        if !in_backup_tree(coord) {
            return LayoutKind::Flat;
        }
        let coord_dir = coord.parent();
        let mut segment_paths = self
            .table_files
            .values()
            .chain(self.segment_files.values())
            .map(|f| f.path.as_path())
            .chain(self.segment_tocs.values().map(PathBuf::as_path));
        if segment_paths.all(|p| p.parent() == coord_dir) && self.contents_seen() > 0 {
            LayoutKind::SingleDir
        } else {
            LayoutKind::PerContentDirs
        }
    }
}

/// Everything found under the given roots, grouped by timestamp.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub roots: Vec<PathBuf>,
    pub sets: BTreeMap<String, SetFiles>,
}

/// Walks `roots` (following symlinks) and indexes every backup file by name.
pub fn discover<P: AsRef<Path>>(roots: &[P]) -> Result<Discovery> {
    let mut d = Discovery {
        roots: roots.iter().map(|r| r.as_ref().to_path_buf()).collect(),
        ..Default::default()
    };
    let mut seen_canonical = std::collections::HashSet::new();
    for root in roots {
        let root = root.as_ref();
        std::fs::metadata(root).map_err(|e| Error::io(root, e))?;
        // Hidden entries are skipped: a writer's private staging directory (cbdump's
        // `.cbdump-*`, left by a SIGKILL) holds a set that was never finished.
        let walk = WalkDir::new(root)
            .follow_links(true)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
        for entry in walk {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(root).to_path_buf();
                Error::io(
                    path,
                    e.into_io_error()
                        .unwrap_or_else(|| std::io::Error::other("symlink loop")),
                )
            })?;
            if !entry.file_type().is_file() {
                continue;
            }
            let Some(name) = entry.file_name().to_str() else {
                continue;
            };
            let Some(kind) = classify(name) else { continue };
            let path = entry.path().to_path_buf();
            // Overlapping roots or symlinks reach one file twice: that is not a duplicate.
            let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if !seen_canonical.insert(canonical) {
                continue;
            }
            d.add(name, kind, path)?;
        }
    }
    Ok(d)
}

fn insert_unique<K: Ord>(
    map: &mut BTreeMap<K, PathBuf>,
    key: K,
    name: &str,
    path: PathBuf,
) -> Result<()> {
    if let Some(first) = map.get(&key) {
        return Err(Error::DuplicateFile {
            name: name.to_string(),
            first: first.clone(),
            second: path,
        });
    }
    map.insert(key, path);
    Ok(())
}

fn insert_data<K: Ord>(
    map: &mut BTreeMap<K, DataFile>,
    key: K,
    name: &str,
    file: DataFile,
) -> Result<()> {
    if let Some(first) = map.get(&key) {
        return Err(Error::DuplicateFile {
            name: name.to_string(),
            first: first.path.clone(),
            second: file.path,
        });
    }
    map.insert(key, file);
    Ok(())
}

impl Discovery {
    fn set_mut(&mut self, ts: &str) -> &mut SetFiles {
        self.sets.entry(ts.to_string()).or_insert_with(|| SetFiles {
            timestamp: ts.to_string(),
            ..Default::default()
        })
    }

    fn add(&mut self, name: &str, kind: FileKind, path: PathBuf) -> Result<()> {
        match kind {
            FileKind::Coordinator { timestamp, file } => {
                insert_unique(&mut self.set_mut(&timestamp).coordinator, file, name, path)
            }
            FileKind::TableData {
                content,
                timestamp,
                oid,
                compression,
            } => insert_data(
                &mut self.set_mut(&timestamp).table_files,
                (content, oid),
                name,
                DataFile { path, compression },
            ),
            FileKind::SegmentData {
                content,
                timestamp,
                compression,
            } => insert_data(
                &mut self.set_mut(&timestamp).segment_files,
                content,
                name,
                DataFile { path, compression },
            ),
            FileKind::SegmentToc { content, timestamp } => insert_unique(
                &mut self.set_mut(&timestamp).segment_tocs,
                content,
                name,
                path,
            ),
        }
    }

    /// Timestamps of complete-looking sets (those with a coordinator toc or config), oldest first.
    pub fn timestamps(&self) -> Vec<String> {
        self.sets
            .values()
            .filter(|s| {
                s.coordinator.contains_key(&CoordinatorFile::Toc)
                    || s.coordinator.contains_key(&CoordinatorFile::Config)
            })
            .map(|s| s.timestamp.clone())
            .collect()
    }

    /// The set named by `timestamp`, or the only one when `None`; errors list the candidates.
    pub fn select(&self, timestamp: Option<&str>) -> Result<&SetFiles> {
        let candidates = self.timestamps();
        match timestamp {
            Some(ts) => {
                if !is_timestamp(ts) {
                    return Err(Error::InvalidTimestamp(ts.to_string()));
                }
                if !candidates.iter().any(|c| c == ts) {
                    return Err(Error::TimestampNotFound {
                        wanted: ts.to_string(),
                        candidates,
                    });
                }
                Ok(&self.sets[ts])
            }
            None => match candidates.as_slice() {
                [] => Err(Error::NoBackupSet {
                    roots: self.roots_text(),
                }),
                [only] => Ok(&self.sets[only]),
                _ => Err(Error::AmbiguousTimestamp { candidates }),
            },
        }
    }

    /// Files of another timestamp (an incremental's base), empty when nothing was found.
    pub fn files_for(&self, timestamp: &str) -> Option<&SetFiles> {
        self.sets.get(timestamp)
    }

    fn roots_text(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_names() {
        use FileKind::*;
        let ts = "20220908150145".to_string();
        assert_eq!(
            classify("gpbackup_20220908150145_toc.yaml"),
            Some(Coordinator {
                timestamp: ts.clone(),
                file: CoordinatorFile::Toc
            })
        );
        assert_eq!(
            classify("gpbackup_20220908150145_metadata.sql"),
            Some(Coordinator {
                timestamp: ts.clone(),
                file: CoordinatorFile::Metadata
            })
        );
        assert_eq!(
            classify("gpbackup_1_20220908150145_16388.gz"),
            Some(TableData {
                content: 1,
                timestamp: ts.clone(),
                oid: 16388,
                compression: Compression::Gzip
            })
        );
        assert_eq!(
            classify("gpbackup_12_20220908150145_16388"),
            Some(TableData {
                content: 12,
                timestamp: ts.clone(),
                oid: 16388,
                compression: Compression::None
            })
        );
        assert_eq!(
            classify("gpbackup_0_20220908150145.zst"),
            Some(SegmentData {
                content: 0,
                timestamp: ts.clone(),
                compression: Compression::Zstd
            })
        );
        assert_eq!(
            classify("gpbackup_0_20220908150145_toc.yaml"),
            Some(SegmentToc {
                content: 0,
                timestamp: ts.clone()
            })
        );
        for other in [
            "gprestore_20220908150145_20220908150200_report",
            "gpbackup_0_20220908150145_pipe_123_16388",
            "gpbackup_0_20220908150145_oid_123",
            "gpbackup_0_20220908150145_16388.bz2",
            "gpbackup_20220908150145_other",
            "gpbackup_history.db",
            "gpbackup_0_2022_16388.gz",
        ] {
            assert_eq!(classify(other), None, "{other}");
        }
    }
}
