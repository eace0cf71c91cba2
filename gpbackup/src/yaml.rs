//! YAML reading and writing for config.yaml and the toc files.
//!
//! Crate choice: `serde_norway`. gpbackup writes these files with Go's `gopkg.in/yaml.v2`, plain
//! block-style maps and lists, so any YAML 1.1/1.2 parser with serde support reads them; what
//! matters is maintenance and soundness. `serde_yaml` is archived and deprecated by its author
//! (RUSTSEC "unmaintained"), `serde_yml` carried unsound code (RUSTSEC-2025-0068) and is archived
//! too, `yaml-rust2` has no serde layer (we would hand-map every key of three schemas).
//! `serde_norway` is the maintained fork of `serde_yaml` with the same API and behaviour, so it
//! reads the quoting yaml.v2 produces (`'"corrupt-db"'`, `"20220908150145"`) exactly as before and
//! also serializes, which the test writer needs. Files are read through a `BufReader`; the parsed
//! structures are the only thing held (a toc is proportional to the object count, not the data).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

/// Parses one YAML file into `T`; errors carry the path and the parser's line/column.
pub(crate) fn read_file<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.len() == 0 {
        return Err(Error::Yaml {
            path: path.to_path_buf(),
            message: "file is empty".into(),
        });
    }
    serde_norway::from_reader(BufReader::new(file)).map_err(|e| Error::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes `value` as YAML to `path` through a temporary name renamed on success.
pub(crate) fn write_file<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_norway::to_string(value).map_err(|e| Error::Yaml {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    crate::fsutil::write_atomic(path, |f| f.write_all(text.as_bytes()))
}

/// Deserializes an explicit YAML `null` (or `~`) as the type's default, the way Go's yaml.v2
/// leaves a zero value; absent keys are handled by `#[serde(default)]`.
pub(crate) fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
