//! Checks before data is used: cbdump's `manifest.json` (every data file's sha256 and row
//! count), and `--verify-only`, which reads a whole archive without a server.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use archive::{Archive, TocEntry};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Why an archive's data cannot be trusted; each names the file, table or large object.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a cbdump manifest: {source}")]
    NotManifest {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: table entry without dump_id/sha256/rows")]
    ManifestEntry { path: PathBuf },
    #[error("{table}: no data file")]
    NoDataFile { table: String },
    #[error("{path}: checksum mismatch for table {table}: manifest.json records {recorded}, the file has {found}")]
    Checksum {
        path: PathBuf,
        table: String,
        recorded: String,
        found: String,
    },
    #[error("{table}: manifest.json records {recorded} rows, the data holds {found}")]
    Rows {
        table: String,
        recorded: u64,
        found: u64,
    },
    #[error("{table} (TOC entry {dump_id}): {source}")]
    Read {
        table: String,
        dump_id: i32,
        source: std::io::Error,
    },
    #[error("{table} (TOC entry {dump_id}): {source}")]
    Archive {
        table: String,
        dump_id: i32,
        source: Box<archive::ArchiveError>,
    },
    #[error("large object {oid}: {source}")]
    LargeObject { oid: u32, source: std::io::Error },
}

/// `schema.name` of an entry, for messages.
fn label(e: &TocEntry) -> String {
    format!("{}.{}", e.namespace(), e.tag())
}

fn archive_error(e: &TocEntry) -> impl FnOnce(archive::ArchiveError) -> VerifyError + '_ {
    move |source| VerifyError::Archive {
        table: label(e),
        dump_id: e.dump_id,
        source: Box::new(source),
    }
}

/// What a cbdump manifest records of one table.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub table: String,
    pub sha256: String,
    pub rows: u64,
}

/// The manifest of a directory archive, by dump id; empty for archives without one.
#[derive(Debug, Default)]
pub struct Manifest {
    by_id: HashMap<i32, Recorded>,
}

impl Manifest {
    pub fn load(archive: &Archive) -> Result<Manifest, VerifyError> {
        let Archive::Directory(d) = archive else {
            return Ok(Manifest::default());
        };
        let path = d.dir.join("manifest.json");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Manifest::default()),
            Err(source) => return Err(VerifyError::File { path, source }),
        };
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| VerifyError::NotManifest {
                path: path.clone(),
                source,
            })?;
        let mut by_id = HashMap::new();
        for t in v["tables"].as_array().into_iter().flatten() {
            let (Some(id), Some(sha), Some(rows)) = (
                t["dump_id"].as_i64(),
                t["sha256"].as_str(),
                t["rows"].as_u64(),
            ) else {
                return Err(VerifyError::ManifestEntry { path });
            };
            by_id.insert(
                id as i32,
                Recorded {
                    table: t["table"].as_str().unwrap_or("?").to_string(),
                    sha256: sha.to_string(),
                    rows,
                },
            );
        }
        Ok(Manifest { by_id })
    }

    pub fn get(&self, dump_id: i32) -> Option<&Recorded> {
        self.by_id.get(&dump_id)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// sha256 of a file, streaming.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Compares a data file with the manifest before it is loaded.
pub fn check_file(archive: &Archive, e: &TocEntry, manifest: &Manifest) -> Result<(), VerifyError> {
    let (Some(rec), Archive::Directory(d)) = (manifest.get(e.dump_id), archive) else {
        return Ok(());
    };
    let path =
        d.data_file(e)
            .map_err(archive_error(e))?
            .ok_or_else(|| VerifyError::NoDataFile {
                table: rec.table.clone(),
            })?;
    let found = match sha256_file(&path) {
        Ok(f) => f,
        Err(source) => return Err(VerifyError::File { path, source }),
    };
    if found != rec.sha256 {
        return Err(VerifyError::Checksum {
            path,
            table: rec.table.clone(),
            recorded: rec.sha256.clone(),
            found,
        });
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Verified {
    pub table: String,
    pub rows: u64,
    pub bytes: u64,
    pub checksum: &'static str,
    /// What proves a directory archive's data file complete without a manifest: "end
    /// member" (cbdump's gzip), "gzip trailer only", "zstd frames", "none"; empty for a
    /// custom archive (its blocks have lengths).
    pub end_check: &'static str,
    #[serde(skip)]
    pub file: String,
}

/// `--verify-only`: every table's data read to the end (decompression checked), row counts and
/// checksums compared with the manifest when there is one, large-object blocks walked.
pub fn verify_only(archive: &Archive) -> Result<Vec<Verified>, Vec<VerifyError>> {
    let manifest = Manifest::load(archive).map_err(|e| vec![e])?;
    let mut ok = Vec::new();
    let mut problems = Vec::new();
    for e in archive.entries() {
        if e.is("BLOBS") {
            walk_blobs(archive, e, &mut problems);
        } else if e.is("TABLE DATA") {
            match verify_table(archive, e, &manifest) {
                Ok(v) => ok.push(v),
                Err(p) => problems.push(p),
            }
        }
    }
    if problems.is_empty() {
        Ok(ok)
    } else {
        Err(problems)
    }
}

/// Reads every large object of a `BLOBS` entry to its end.
fn walk_blobs(archive: &Archive, e: &TocEntry, problems: &mut Vec<VerifyError>) {
    let blobs = match archive::blobs::read_all(archive, e) {
        Ok(b) => b,
        Err(x) => return problems.push(archive_error(e)(x)),
    };
    for b in blobs {
        match b {
            Ok((oid, mut r)) => {
                if let Err(source) = std::io::copy(&mut r, &mut std::io::sink()) {
                    problems.push(VerifyError::LargeObject { oid, source });
                }
            }
            Err(x) => problems.push(archive_error(e)(x)),
        }
    }
}

/// One table's data read to its end, its rows counted and compared with the manifest.
fn verify_table(
    archive: &Archive,
    e: &TocEntry,
    manifest: &Manifest,
) -> Result<Verified, VerifyError> {
    let label = label(e);
    check_file(archive, e, manifest)?;
    let checksum = if manifest.get(e.dump_id).is_some() {
        "ok"
    } else {
        "not recorded"
    };
    let (end_check, file) = end_check(archive, e);
    let mut data = archive.table_data(e).map_err(archive_error(e))?;
    let mut buf = vec![0u8; 256 * 1024];
    let (mut rows, mut bytes) = (0u64, 0u64);
    loop {
        match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                rows += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
                bytes += n as u64;
            }
            Err(source) => {
                return Err(VerifyError::Read {
                    table: label,
                    dump_id: e.dump_id,
                    source,
                })
            }
        }
    }
    // pg_dump's terminator `\.` and two blank lines are not rows.
    let rows = rows.saturating_sub(3);
    if let Some(rec) = manifest.get(e.dump_id) {
        if rec.rows != rows {
            return Err(VerifyError::Rows {
                table: label,
                recorded: rec.rows,
                found: rows,
            });
        }
    }
    Ok(Verified {
        table: label,
        rows,
        bytes,
        checksum,
        end_check,
        file,
    })
}

/// What marks the end of a directory archive's data file (see `archive::codec::EndCheck`).
fn end_check(archive: &Archive, e: &TocEntry) -> (&'static str, String) {
    use archive::codec::EndCheck;
    let Archive::Directory(d) = archive else {
        return ("", String::new());
    };
    let Ok(Some(path)) = d.data_file(e) else {
        return ("", String::new());
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let check = match EndCheck::of_file(&path) {
        Ok(EndCheck::GzipEndMember) => "end member",
        Ok(EndCheck::GzipTrailerOnly) => "gzip trailer only",
        Ok(EndCheck::ZstdFrames) => "zstd frames",
        Ok(EndCheck::Uncompressed) => "none",
        Err(_) => "",
    };
    (check, name)
}
