//! `gpbackup_<ts>_toc.yaml` (coordinator) and `gpbackup_<c>_<ts>_toc.yaml` (per segment, single
//! data file mode).
//!
//! The coordinator toc indexes metadata.sql by byte ranges and lists one data entry per table;
//! the segment toc maps each table oid to its byte range in that segment's *uncompressed* stream.
//! Keys absent in older versions (`tier`, `isreplicated`, `distbyenum`, ...) take zero values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::yaml::null_default;

/// The coordinator toc.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Toc {
    #[serde(deserialize_with = "null_default")]
    pub globalentries: Vec<MetadataEntry>,
    #[serde(deserialize_with = "null_default")]
    pub predataentries: Vec<MetadataEntry>,
    #[serde(deserialize_with = "null_default")]
    pub postdataentries: Vec<MetadataEntry>,
    #[serde(deserialize_with = "null_default")]
    pub statisticsentries: Vec<MetadataEntry>,
    #[serde(deserialize_with = "null_default")]
    pub dataentries: Vec<DataEntry>,
    #[serde(deserialize_with = "null_default")]
    pub incrementalmetadata: IncrementalMetadata,
}

/// One chunk of metadata.sql (or statistics.sql): `[startbyte, endbyte)`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct MetadataEntry {
    /// Quoted schema name; empty for globals.
    #[serde(deserialize_with = "null_default")]
    pub schema: String,
    /// Quoted object name (functions carry their argument list).
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    /// `TABLE`, `SCHEMA`, `RESOURCE QUEUE`, `INDEX METADATA`, ...
    #[serde(deserialize_with = "null_default")]
    pub objecttype: String,
    /// FQN of the relation this entry depends on (indexes, triggers, constraints, ...).
    #[serde(deserialize_with = "null_default")]
    pub referenceobject: String,
    #[serde(deserialize_with = "null_default")]
    pub startbyte: u64,
    #[serde(deserialize_with = "null_default")]
    pub endbyte: u64,
    /// `[dependency tier, cohort]` in newer versions; `None` means `[0, 0]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<Vec<u32>>,
}

impl MetadataEntry {
    /// `schema.name`, or just the name for globals.
    pub fn fqn(&self) -> String {
        if self.schema.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }
}

/// One table whose rows were dumped.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct DataEntry {
    #[serde(deserialize_with = "null_default")]
    pub schema: String,
    #[serde(deserialize_with = "null_default")]
    pub name: String,
    #[serde(deserialize_with = "null_default")]
    pub oid: u32,
    /// `(col1,col2)` with quoted names, or empty when the table has no columns.
    #[serde(deserialize_with = "null_default")]
    pub attributestring: String,
    /// Rows the backup COPY reported, summed over segments (× segments for replicated tables).
    #[serde(deserialize_with = "null_default")]
    pub rowscopied: i64,
    #[serde(deserialize_with = "null_default")]
    pub partitionroot: String,
    #[serde(deserialize_with = "null_default")]
    pub isreplicated: bool,
    #[serde(deserialize_with = "null_default")]
    pub distbyenum: bool,
}

impl DataEntry {
    /// `schema.table` as used in `restoreplan` and COPY statements.
    pub fn fqn(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// `COPY schema.table (cols) FROM STDIN WITH (FORMAT csv, DELIMITER ',')` — the statement
    /// that loads this table's merged stream through one connection.
    pub fn copy_from_stdin(&self) -> String {
        let cols = if self.attributestring.is_empty() {
            String::new()
        } else {
            format!(" {}", self.attributestring)
        };
        format!(
            "COPY {}{cols} FROM STDIN WITH (FORMAT csv, DELIMITER ',')",
            self.fqn()
        )
    }
}

/// `incrementalmetadata:` — AO tables' modification state, used by incremental backups.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct IncrementalMetadata {
    #[serde(deserialize_with = "null_default")]
    pub ao: BTreeMap<String, AoEntry>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct AoEntry {
    #[serde(deserialize_with = "null_default")]
    pub modcount: i64,
    #[serde(deserialize_with = "null_default")]
    pub lastddltimestamp: String,
}

/// The sections of metadata.sql (and statistics.sql) in restore order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    Global,
    Predata,
    Postdata,
    /// Entries point into statistics.sql, not metadata.sql.
    Statistics,
}

impl Section {
    pub fn name(self) -> &'static str {
        match self {
            Section::Global => "globalentries",
            Section::Predata => "predataentries",
            Section::Postdata => "postdataentries",
            Section::Statistics => "statisticsentries",
        }
    }
}

impl Toc {
    /// Reads and sanity-checks a coordinator toc.
    pub fn read(path: &Path) -> Result<Toc> {
        let toc: Toc = crate::yaml::read_file(path)?;
        toc.validate(path)?;
        Ok(toc)
    }

    pub fn entries(&self, section: Section) -> &[MetadataEntry] {
        match section {
            Section::Global => &self.globalentries,
            Section::Predata => &self.predataentries,
            Section::Postdata => &self.postdataentries,
            Section::Statistics => &self.statisticsentries,
        }
    }

    /// The data entry of `schema.table`, if the table's rows were dumped in this backup.
    pub fn data_entry(&self, fqn: &str) -> Option<&DataEntry> {
        self.dataentries.iter().find(|d| d.fqn() == fqn)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        for section in [
            Section::Global,
            Section::Predata,
            Section::Postdata,
            Section::Statistics,
        ] {
            for (i, e) in self.entries(section).iter().enumerate() {
                if e.startbyte > e.endbyte {
                    return Err(Error::InvalidToc {
                        path: path.to_path_buf(),
                        message: format!(
                            "{} entry #{i} ({} {}) has startbyte {} after endbyte {}",
                            section.name(),
                            e.objecttype,
                            e.fqn(),
                            e.startbyte,
                            e.endbyte
                        ),
                    });
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.dataentries {
            if !seen.insert(d.oid) {
                return Err(Error::InvalidToc {
                    path: path.to_path_buf(),
                    message: format!("two data entries share oid {} ({})", d.oid, d.fqn()),
                });
            }
            if d.rowscopied < 0 {
                return Err(Error::InvalidToc {
                    path: path.to_path_buf(),
                    message: format!("data entry {} has negative rowscopied", d.fqn()),
                });
            }
        }
        Ok(())
    }
}

/// A segment toc: oid → byte range in the segment's uncompressed data stream.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct SegmentToc {
    #[serde(deserialize_with = "null_default")]
    pub dataentries: BTreeMap<u32, SegmentDataEntry>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct SegmentDataEntry {
    #[serde(deserialize_with = "null_default")]
    pub startbyte: u64,
    #[serde(deserialize_with = "null_default")]
    pub endbyte: u64,
}

impl SegmentToc {
    pub fn read(path: &Path) -> Result<SegmentToc> {
        let toc: SegmentToc = crate::yaml::read_file(path)?;
        for (oid, r) in &toc.dataentries {
            if r.startbyte > r.endbyte {
                return Err(Error::InvalidToc {
                    path: path.to_path_buf(),
                    message: format!(
                        "oid {oid}: startbyte {} after endbyte {}",
                        r.startbyte, r.endbyte
                    ),
                });
            }
        }
        Ok(toc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_minimal_and_full_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.yaml");
        std::fs::write(
            &p,
            "globalentries:\n- schema: \"\"\n  name: \"\"\n  objecttype: SESSION GUCS\n  referenceobject: \"\"\n  startbyte: 0\n  endbyte: 31\n  tier:\n  - 0\n  - 0\n\
             predataentries: []\npostdataentries:\n- {schema: s, name: i, objecttype: INDEX, referenceobject: s.t, startbyte: 31, endbyte: 40}\n\
             dataentries:\n- schema: s\n  name: t\n  oid: 16388\n  attributestring: (a,\"B c\")\n  rowscopied: 300\n  isreplicated: true\n\
             incrementalmetadata:\n  ao:\n    s.t:\n      modcount: 3\n      lastddltimestamp: \"2022\"\n",
        )
        .unwrap();
        let toc = Toc::read(&p).unwrap();
        assert_eq!(toc.globalentries[0].tier, Some(vec![0, 0]));
        assert_eq!(toc.postdataentries[0].referenceobject, "s.t");
        let d = &toc.dataentries[0];
        assert!(d.isreplicated && !d.distbyenum);
        assert_eq!(d.partitionroot, "");
        assert_eq!(
            d.copy_from_stdin(),
            "COPY s.t (a,\"B c\") FROM STDIN WITH (FORMAT csv, DELIMITER ',')"
        );
        assert_eq!(toc.incrementalmetadata.ao["s.t"].modcount, 3);
    }

    #[test]
    fn rejects_inverted_ranges() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.yaml");
        std::fs::write(&p, "predataentries:\n- {schema: s, name: t, objecttype: TABLE, startbyte: 9, endbyte: 3}\n").unwrap();
        let e = Toc::read(&p).unwrap_err();
        assert!(
            e.to_string()
                .contains("predataentries entry #0 (TABLE s.t)"),
            "{e}"
        );
        let p2 = dir.path().join("s.yaml");
        std::fs::write(
            &p2,
            "dataentries:\n  16388:\n    startbyte: 0\n    endbyte: 2\n",
        )
        .unwrap();
        assert_eq!(
            SegmentToc::read(&p2).unwrap().dataentries[&16388].endbyte,
            2
        );
    }
}
