//! `gpbackup_<ts>_config.yaml`: how the set was taken (compression, file mode, segment count) and
//! which backup supplies each table's data (`restoreplan`).
//!
//! Keys follow Go's yaml.v2 convention (field names lower-cased). Every key is optional and takes
//! Go's zero value when absent, because sets from gpbackup 1.12 lack `segmentcount`,
//! `compressiontype`, `status`, `endtime` and carry the retired `deleted` flag, while newer ones add
//! keys we do not know yet (ignored).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::yaml::null_default;

/// The newest gpbackup major version whose format this reader was written against; a config from
/// a later major is refused instead of misread.
pub const NEWEST_KNOWN_MAJOR: u64 = 2;
const NEWEST_KNOWN_TEXT: &str = "gpbackup 2.x";

/// The parsed config.yaml. Field names and order are those gpbackup writes.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct BackupConfig {
    #[serde(deserialize_with = "null_default")]
    pub backupdir: String,
    #[serde(deserialize_with = "null_default")]
    pub backupversion: String,
    #[serde(deserialize_with = "null_default")]
    pub compressed: bool,
    #[serde(deserialize_with = "null_default")]
    pub compressiontype: String,
    #[serde(deserialize_with = "null_default")]
    pub databasename: String,
    #[serde(deserialize_with = "null_default")]
    pub databaseversion: String,
    #[serde(deserialize_with = "null_default")]
    pub segmentcount: i64,
    #[serde(deserialize_with = "null_default")]
    pub dataonly: bool,
    #[serde(deserialize_with = "null_default")]
    pub datedeleted: String,
    #[serde(deserialize_with = "null_default")]
    pub excluderelations: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub excludeschemafiltered: bool,
    #[serde(deserialize_with = "null_default")]
    pub excludeschemas: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub excludetablefiltered: bool,
    #[serde(deserialize_with = "null_default")]
    pub includerelations: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub includeschemafiltered: bool,
    #[serde(deserialize_with = "null_default")]
    pub includeschemas: Vec<String>,
    #[serde(deserialize_with = "null_default")]
    pub includetablefiltered: bool,
    #[serde(deserialize_with = "null_default")]
    pub incremental: bool,
    #[serde(deserialize_with = "null_default")]
    pub leafpartitiondata: bool,
    #[serde(deserialize_with = "null_default")]
    pub metadataonly: bool,
    #[serde(deserialize_with = "null_default")]
    pub plugin: String,
    #[serde(deserialize_with = "null_default")]
    pub pluginversion: String,
    /// `None` in sets older than the incremental feature: then one entry covering every toc data
    /// entry is synthesized (see [`BackupConfig::restore_plan`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restoreplan: Option<Vec<RestorePlanEntry>>,
    #[serde(deserialize_with = "null_default")]
    pub singledatafile: bool,
    #[serde(deserialize_with = "null_default")]
    pub timestamp: String,
    #[serde(deserialize_with = "null_default")]
    pub endtime: String,
    #[serde(deserialize_with = "null_default")]
    pub withoutglobals: bool,
    #[serde(deserialize_with = "null_default")]
    pub withstatistics: bool,
    /// `Success`, `Failure`, `In Progress`; empty in sets older than the key.
    #[serde(deserialize_with = "null_default")]
    pub status: String,
    /// Which tool wrote the set, when it was not gpbackup (`cbdump 0.1.0`). gprestore reads
    /// config.yaml leniently (unknown keys are ignored), so `backupversion` can stay a gpbackup
    /// version it accepts while the set still says who made it.
    #[serde(
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub writtenby: String,
    /// Retired flag of gpbackup ≤ 1.12 (replaced by `datedeleted`).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_false")]
    pub deleted: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One `restoreplan` item: the backup `timestamp` whose files hold these tables' data.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct RestorePlanEntry {
    #[serde(deserialize_with = "null_default")]
    pub timestamp: String,
    /// `schema.table` with quoted identifiers, as in the toc.
    #[serde(deserialize_with = "null_default")]
    pub tablefqns: Vec<String>,
}

/// How data files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// File name extension gpbackup uses (`""`, `.gz`, `.zst`).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    /// The compression a file extension announces.
    pub fn from_extension(ext: &str) -> Option<Compression> {
        match ext {
            "" => Some(Compression::None),
            ".gz" => Some(Compression::Gzip),
            ".zst" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The program gpbackup pipes each segment's COPY through (level 1, its default).
    pub fn compress_command(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip -c -1",
            Compression::Zstd => "zstd --compress -1 -c",
            Compression::None => "cat -",
        }
    }

    /// The program that gives a data file's CSV back (`cat` for an uncompressed one).
    pub fn decompress_command(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip -d -c",
            Compression::Zstd => "zstd --decompress -c",
            Compression::None => "cat",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "no compression",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// A version-compatibility remark that is not fatal (e.g. a newer minor release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionWarning(pub String);

/// A `compressiontype` this reader does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compressiontype {0:?} (known: gzip, zstd)")]
pub struct UnknownCompression(pub String);

impl BackupConfig {
    /// Reads and validates a config.yaml: refuses unknown newer majors and unsuccessful backups.
    pub fn read(path: &Path) -> Result<(BackupConfig, Option<VersionWarning>)> {
        let config: BackupConfig = crate::yaml::read_file(path)?;
        let warning = config.check_version(path)?;
        config.check_status(path)?;
        if config.segmentcount < 0 {
            return Err(Error::InvalidConfig {
                path: path.to_path_buf(),
                message: format!("segmentcount is negative ({})", config.segmentcount),
            });
        }
        Ok((config, warning))
    }

    /// Compression of the data files: `compressed` decides, then `compressiontype` (empty in old
    /// sets, which only knew gzip).
    pub fn compression(&self) -> std::result::Result<Compression, UnknownCompression> {
        if !self.compressed {
            return Ok(Compression::None);
        }
        match self.compressiontype.as_str() {
            "" | "gzip" => Ok(Compression::Gzip),
            "zstd" => Ok(Compression::Zstd),
            other => Err(UnknownCompression(other.to_string())),
        }
    }

    /// `segmentcount` when recorded (gpbackup ≥ 1.26), else `None`.
    pub fn segment_count(&self) -> Option<u32> {
        u32::try_from(self.segmentcount).ok().filter(|n| *n > 0)
    }

    /// The restore plan, synthesizing the single self entry of pre-incremental sets from the
    /// given table list (the toc's data entries).
    pub fn restore_plan(&self, toc_tables: impl Iterator<Item = String>) -> Vec<RestorePlanEntry> {
        match &self.restoreplan {
            Some(plan) if !plan.is_empty() => plan.clone(),
            _ => vec![RestorePlanEntry {
                timestamp: self.timestamp.clone(),
                tablefqns: toc_tables.collect(),
            }],
        }
    }

    fn check_version(&self, path: &Path) -> Result<Option<VersionWarning>> {
        let v = self.backupversion.trim();
        if v.is_empty() {
            return Ok(Some(VersionWarning(format!(
                "{}: no backupversion recorded; reading it as an old gpbackup 1.x set",
                path.display()
            ))));
        }
        let Some((major, _minor)) = parse_major_minor(v) else {
            return Err(Error::InvalidConfig {
                path: path.to_path_buf(),
                message: format!("backupversion {v:?} is not a version number"),
            });
        };
        if major > NEWEST_KNOWN_MAJOR {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                version: v.to_string(),
                known: NEWEST_KNOWN_TEXT,
            });
        }
        Ok(None)
    }

    fn check_status(&self, path: &Path) -> Result<()> {
        match self.status.as_str() {
            "" | "Success" => Ok(()),
            other => Err(Error::BackupNotSuccessful {
                path: path.to_path_buf(),
                status: other.to_string(),
            }),
        }
    }
}

/// `1.24.0+dev.27.gb6a5a8b` → (1, 24).
fn parse_major_minor(v: &str) -> Option<(u64, u64)> {
    let core = v.split(['+', '-']).next()?;
    let mut parts = core.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map(|m| m.parse().ok()).unwrap_or(Some(0))?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(BackupConfig, Option<VersionWarning>)> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gpbackup_20200101000000_config.yaml");
        std::fs::write(&p, text).unwrap();
        BackupConfig::read(&p)
    }

    #[test]
    fn old_1_12_keys_take_defaults() {
        let (c, w) = parse(
            "backupdir: /tmp/corrupt-db\nbackupversion: 1.12.1\ncompressed: true\n\
             databasename: '\"corrupt-db\"'\ndeleted: false\nsingledatafile: true\n\
             timestamp: \"20190809230424\"\nrestoreplan:\n- timestamp: \"20190809230424\"\n  tablefqns:\n  - public.t\n",
        )
        .unwrap();
        assert!(w.is_none());
        assert_eq!(c.compression().unwrap(), Compression::Gzip);
        assert_eq!(c.segment_count(), None);
        assert_eq!(c.databasename, "\"corrupt-db\"");
        assert_eq!(c.status, "");
        assert_eq!(
            c.restoreplan.as_ref().unwrap()[0].tablefqns,
            vec!["public.t"]
        );
    }

    #[test]
    fn compressed_false_wins_over_type() {
        let (c, _) =
            parse("backupversion: 1.30.5\ncompressed: false\ncompressiontype: gzip\nsegmentcount: 4\nfuturekey: 3\n")
                .unwrap();
        assert_eq!(c.compression().unwrap(), Compression::None);
        assert_eq!(c.segment_count(), Some(4));
        let (c, _) =
            parse("backupversion: 1.30.5\ncompressed: true\ncompressiontype: zstd\n").unwrap();
        assert_eq!(c.compression().unwrap(), Compression::Zstd);
    }

    #[test]
    fn newer_major_is_refused_and_bad_status_too() {
        let e = parse("backupversion: 3.0.0\ncompressed: true\n").unwrap_err();
        assert!(matches!(e, Error::UnsupportedVersion { .. }), "{e}");
        assert!(e.to_string().contains("3.0.0"), "{e}");
        let e = parse("backupversion: 1.30.0\nstatus: Failure\n").unwrap_err();
        assert!(matches!(e, Error::BackupNotSuccessful { .. }), "{e}");
        let e = parse("backupversion: banana\n").unwrap_err();
        assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
        let e = parse("backupversion: [1\n").unwrap_err();
        assert!(matches!(e, Error::Yaml { .. }), "{e}");
    }

    #[test]
    fn legacy_plan_is_synthesized() {
        let (c, _) = parse("backupversion: 1.12.0\ntimestamp: \"20190101000000\"\n").unwrap();
        let plan = c.restore_plan(["a.b".to_string()].into_iter());
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].timestamp, "20190101000000");
        assert_eq!(plan[0].tablefqns, vec!["a.b"]);
    }
}
