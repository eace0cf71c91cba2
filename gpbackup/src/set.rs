//! A backup set ready to restore: config, toc, the resolved restore plan (which backup timestamp
//! supplies each table) and, per table, where each content's rows are.
//!
//! Everything that can be checked without reading data is checked in [`BackupSet::open`] and
//! [`BackupSet::check_files`], so a loader can refuse a broken set before touching the target.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::{BackupConfig, Compression};
use crate::data::{DecoderCache, Piece, PieceSource, TableReader};
use crate::error::{DataProblem, Error, MissingFile, Result};
use crate::filter::Filter;
use crate::layout::{CoordinatorFile, DataFile, Discovery, SetFiles};
use crate::metadata::MetadataFile;
use crate::toc::{DataEntry, SegmentToc, Toc};

/// One table to load: its data entry (from the backup that holds its rows) and its pieces.
#[derive(Debug, Clone)]
pub struct PlannedTable {
    /// The data entry from `source_timestamp`'s toc (its oid names the files).
    pub entry: DataEntry,
    /// The backup whose files hold the rows (differs from the set's own timestamp for tables an
    /// incremental backup did not re-dump).
    pub source_timestamp: String,
    /// Content pieces in content order (only content 0 for replicated tables).
    pub pieces: Vec<Piece>,
    /// Rows the merged stream must contain: `rowscopied`, divided by the segment count for
    /// replicated tables (each segment holds a full copy).
    pub expected_rows: u64,
}

impl PlannedTable {
    pub fn fqn(&self) -> String {
        self.entry.fqn()
    }

    /// The COPY statement for the merged stream.
    pub fn copy_statement(&self) -> String {
        self.entry.copy_from_stdin()
    }
}

/// One backup timestamp involved in the restore (the set itself or an incremental's base).
#[derive(Debug, Clone)]
pub struct SourceBackup {
    pub timestamp: String,
    pub files: SetFiles,
    pub config: BackupConfig,
    pub toc: Toc,
    pub segment_count: u32,
    pub compression: Compression,
}

/// A backup set opened for restore.
#[derive(Debug)]
pub struct BackupSet {
    pub timestamp: String,
    pub config: BackupConfig,
    pub toc: Toc,
    pub files: SetFiles,
    /// Primary segment count (config `segmentcount`, or inferred from file names in old sets).
    pub segment_count: u32,
    /// Non-fatal remarks (old version without backupversion, inferred segment count, ...).
    pub warnings: Vec<String>,
    /// Every backup the restore plan reads from, by timestamp.
    pub sources: BTreeMap<String, SourceBackup>,
    tables: Vec<PlannedTable>,
    missing: Vec<MissingFile>,
    cache: Arc<DecoderCache>,
}

fn load_source(files: &SetFiles, warnings: &mut Vec<String>) -> Result<SourceBackup> {
    let config_path = files.require(CoordinatorFile::Config)?;
    let (config, warning) = BackupConfig::read(config_path)?;
    if let Some(w) = warning {
        warnings.push(w.0);
    }
    let toc = Toc::read(files.require(CoordinatorFile::Toc)?)?;
    let compression = config.compression().map_err(|e| Error::InvalidConfig {
        path: config_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let segment_count = match config.segment_count() {
        Some(n) => n,
        None => {
            let seen = files.contents_seen();
            if seen > 0 && !config.metadataonly {
                warnings.push(format!(
                    "backup {}: config.yaml records no segmentcount; using {seen}, the highest content id found in file names plus one",
                    files.timestamp
                ));
            }
            seen
        }
    };
    Ok(SourceBackup {
        timestamp: files.timestamp.clone(),
        files: files.clone(),
        config,
        toc,
        segment_count,
        compression,
    })
}

impl BackupSet {
    /// Opens the set `timestamp` (or the only one) found by `discovery`, resolving its restore
    /// plan. Missing data files do not fail here; see [`BackupSet::check_files`].
    pub fn open(discovery: &Discovery, timestamp: Option<&str>) -> Result<BackupSet> {
        let files = discovery.select(timestamp)?;
        let mut warnings = Vec::new();
        let own = load_source(files, &mut warnings)?;
        let plan = if own.config.metadataonly {
            Vec::new()
        } else {
            own.config
                .restore_plan(own.toc.dataentries.iter().map(DataEntry::fqn))
        };
        let mut sources = BTreeMap::new();
        sources.insert(own.timestamp.clone(), own.clone());
        let cache = Arc::new(DecoderCache::default());
        let mut tables = Vec::new();
        let mut missing = Vec::new();
        for step in &plan {
            if step.tablefqns.is_empty() {
                continue;
            }
            if !sources.contains_key(&step.timestamp) {
                let base = discovery.files_for(&step.timestamp).ok_or_else(|| {
                    Error::MissingCoordinatorFile {
                        timestamp: step.timestamp.clone(),
                        what: CoordinatorFile::Toc.suffix(),
                    }
                })?;
                sources.insert(step.timestamp.clone(), load_source(base, &mut warnings)?);
            }
            let source = &sources[&step.timestamp];
            let wanted: HashSet<&str> = step.tablefqns.iter().map(String::as_str).collect();
            for fqn in &step.tablefqns {
                if source.toc.data_entry(fqn).is_none() {
                    return Err(Error::PlanTableMissing {
                        timestamp: own.timestamp.clone(),
                        source_timestamp: step.timestamp.clone(),
                        table: fqn.clone(),
                    });
                }
            }
            let seg_tocs = read_segment_tocs(source, &mut missing)?;
            // Toc order is dump order, which is single-data-file offset order.
            for entry in source
                .toc
                .dataentries
                .iter()
                .filter(|d| wanted.contains(d.fqn().as_str()))
            {
                tables.push(plan_table(source, entry, &seg_tocs, &mut missing)?);
            }
        }
        missing.sort();
        missing.dedup();
        Ok(BackupSet {
            timestamp: own.timestamp.clone(),
            config: own.config,
            toc: own.toc,
            files: own.files,
            segment_count: own.segment_count,
            warnings,
            sources,
            tables,
            missing,
            cache,
        })
    }

    /// Shorthand: discover under `roots` and open.
    pub fn open_roots<P: AsRef<Path>>(roots: &[P], timestamp: Option<&str>) -> Result<BackupSet> {
        BackupSet::open(&crate::layout::discover(roots)?, timestamp)
    }

    /// Every (table, content) file the tocs promise but that is absent, across all backups of
    /// the restore plan.
    pub fn missing_files(&self) -> &[MissingFile] {
        &self.missing
    }

    /// Fails with [`Error::MissingDataFiles`] listing every absent file, or when metadata.sql is
    /// missing or its toc offsets point beyond it.
    pub fn check_files(&self) -> Result<()> {
        if !self.missing.is_empty() {
            return Err(Error::MissingDataFiles {
                missing: self.missing.clone(),
            });
        }
        let meta = MetadataFile::open(self.metadata_path()?)?;
        meta.check_offsets(
            &self.toc,
            &[
                crate::toc::Section::Global,
                crate::toc::Section::Predata,
                crate::toc::Section::Postdata,
            ],
        )
    }

    /// Tables to load, in load order.
    pub fn tables(&self) -> &[PlannedTable] {
        &self.tables
    }

    /// Tables passing `filter`.
    pub fn tables_filtered<'a>(
        &'a self,
        filter: &'a Filter,
    ) -> impl Iterator<Item = &'a PlannedTable> + 'a {
        self.tables
            .iter()
            .filter(|t| filter.table_included(&t.entry.schema, &t.entry.name))
    }

    /// The merged data stream of one table.
    pub fn table_reader(&self, table: &PlannedTable) -> TableReader {
        TableReader::new(table.fqn(), table.pieces.clone(), Some(self.cache.clone()))
    }

    pub fn metadata_path(&self) -> Result<&Path> {
        self.files.require(CoordinatorFile::Metadata)
    }

    /// Opens metadata.sql for reading statements.
    pub fn metadata(&self) -> Result<MetadataFile> {
        MetadataFile::open(self.metadata_path()?)
    }

    /// Opens statistics.sql (present only for `--with-stats` sets).
    pub fn statistics(&self) -> Result<MetadataFile> {
        MetadataFile::open(self.files.require(CoordinatorFile::Statistics)?)
    }

    /// The SESSION GUCS statement (client_encoding) to run on every connection before loading.
    pub fn session_gucs(&self) -> Result<Option<String>> {
        let mut meta = self.metadata()?;
        for (index, entry) in self.toc.globalentries.iter().enumerate() {
            if entry.objecttype == "SESSION GUCS" {
                let sql = meta.read_entry(crate::toc::Section::Global, index, entry)?;
                return Ok(Some(String::from_utf8_lossy(&sql).trim().to_string()));
            }
        }
        Ok(None)
    }
}

fn expected_name(content: i32, ts: &str, oid: Option<u32>, compression: Compression) -> String {
    match oid {
        Some(oid) => format!("gpbackup_{content}_{ts}_{oid}{}", compression.extension()),
        None => format!("gpbackup_{content}_{ts}{}", compression.extension()),
    }
}

fn check_compression(file: &DataFile, expected: Compression) -> Result<()> {
    if file.compression != expected {
        return Err(Error::CompressionMismatch {
            path: file.path.clone(),
            expected: expected.name().to_string(),
            found: file.compression.name().to_string(),
        });
    }
    Ok(())
}

/// Segment tocs of a single-data-file source, by content; records missing ones.
fn read_segment_tocs(
    source: &SourceBackup,
    missing: &mut Vec<MissingFile>,
) -> Result<BTreeMap<i32, SegmentToc>> {
    let mut tocs = BTreeMap::new();
    if !source.config.singledatafile {
        return Ok(tocs);
    }
    for content in 0..source.segment_count as i32 {
        match source.files.segment_tocs.get(&content) {
            Some(path) => {
                tocs.insert(content, SegmentToc::read(path)?);
            }
            None => missing.push(MissingFile {
                timestamp: source.timestamp.clone(),
                content,
                table: None,
                file_name: format!("gpbackup_{content}_{}_toc.yaml", source.timestamp),
            }),
        }
        if !source.files.segment_files.contains_key(&content) {
            missing.push(MissingFile {
                timestamp: source.timestamp.clone(),
                content,
                table: None,
                file_name: expected_name(content, &source.timestamp, None, source.compression),
            });
        }
    }
    Ok(tocs)
}

fn plan_table(
    source: &SourceBackup,
    entry: &DataEntry,
    seg_tocs: &BTreeMap<i32, SegmentToc>,
    missing: &mut Vec<MissingFile>,
) -> Result<PlannedTable> {
    let n = source.segment_count;
    let contents: Vec<i32> = if entry.isreplicated {
        (0..n.min(1) as i32).collect()
    } else {
        (0..n as i32).collect()
    };
    let ts = &source.timestamp;
    let mut pieces = Vec::with_capacity(contents.len());
    for content in contents {
        let source_kind =
            if source.config.singledatafile {
                let name = expected_name(content, ts, None, source.compression);
                match (
                    source.files.segment_files.get(&content),
                    seg_tocs.get(&content),
                ) {
                    (Some(file), Some(seg_toc)) => {
                        check_compression(file, source.compression)?;
                        let range = seg_toc.dataentries.get(&entry.oid).ok_or_else(|| {
                            Error::TableData {
                                table: entry.fqn(),
                                file: source
                                    .files
                                    .segment_tocs
                                    .get(&content)
                                    .cloned()
                                    .unwrap_or_default(),
                                problem: DataProblem::NotInSegmentToc { oid: entry.oid },
                            }
                        })?;
                        PieceSource::Slice {
                            file: file.clone(),
                            start: range.startbyte,
                            end: range.endbyte,
                        }
                    }
                    // Recorded once per segment by read_segment_tocs.
                    _ => PieceSource::Missing {
                        expected: PathBuf::from(name),
                    },
                }
            } else {
                match source.files.table_files.get(&(content, entry.oid)) {
                    Some(file) => {
                        check_compression(file, source.compression)?;
                        PieceSource::Whole(file.clone())
                    }
                    None => {
                        let name = expected_name(content, ts, Some(entry.oid), source.compression);
                        missing.push(MissingFile {
                            timestamp: ts.clone(),
                            content,
                            table: Some(entry.fqn()),
                            file_name: name.clone(),
                        });
                        PieceSource::Missing {
                            expected: PathBuf::from(name),
                        }
                    }
                }
            };
        pieces.push(Piece {
            content,
            source: source_kind,
        });
    }
    if n == 0 {
        missing.push(MissingFile {
            timestamp: ts.clone(),
            content: 0,
            table: Some(entry.fqn()),
            file_name: expected_name(
                0,
                ts,
                (!source.config.singledatafile).then_some(entry.oid),
                source.compression,
            ),
        });
    }
    let rows = entry.rowscopied.max(0) as u64;
    let expected_rows = if entry.isreplicated && n > 0 {
        rows / u64::from(n)
    } else {
        rows
    };
    Ok(PlannedTable {
        entry: entry.clone(),
        source_timestamp: ts.clone(),
        pieces,
        expected_rows,
    })
}
