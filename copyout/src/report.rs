//! The run's record: `--manifest FILE.json` and the `--json` report on stdout share it.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::compress::Compression;
use crate::format::CopyFormat;
use crate::ExportError;
use cluster::ServerInfo;
use pipeline::sink::PartFile;

#[derive(Debug, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    pub server: String,
    pub server_version_num: i32,
    /// The exported snapshot every worker read from.
    pub snapshot: Option<String>,
    pub finished_at: String,
    pub elapsed_seconds: f64,
    pub format: String,
    pub copy_options: String,
    pub compression: &'static str,
    pub total_rows: u64,
    pub total_raw_bytes: u64,
    pub total_file_bytes: u64,
    pub tables: Vec<TableReport>,
    pub files: Vec<FileReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    pub table: String,
    pub rows: u64,
    /// COPY output bytes before compression.
    pub raw_bytes: u64,
    pub file_bytes: u64,
    pub files: usize,
    /// How many slices were read in parallel.
    pub chunks: usize,
    /// From its first slice's COPY to its last one's end.
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    pub table: String,
    pub path: String,
    pub part: Option<usize>,
    pub rows: u64,
    pub raw_bytes: u64,
    pub bytes: u64,
    pub sha256: String,
    pub compression: &'static str,
}

impl FileReport {
    pub fn new(
        table: &str,
        path: &str,
        part: Option<usize>,
        p: &PartFile,
        compression: Compression,
    ) -> FileReport {
        FileReport {
            table: table.to_string(),
            path: path.to_string(),
            part,
            rows: p.rows,
            raw_bytes: p.raw_bytes,
            bytes: p.file_bytes,
            sha256: hex::encode(p.sha256),
            compression: compression.name(),
        }
    }
}

impl Report {
    pub fn new(
        server: &ServerInfo,
        snapshot: Option<String>,
        format: &CopyFormat,
        compression: Compression,
        elapsed: Duration,
        tables: Vec<TableReport>,
        files: Vec<FileReport>,
    ) -> Report {
        Report {
            tool: "cbcopyout",
            version: env!("CARGO_PKG_VERSION"),
            server: server.describe(),
            server_version_num: server.version_num,
            snapshot,
            finished_at: utc_now(),
            elapsed_seconds: elapsed.as_secs_f64(),
            format: format.extension().to_string(),
            copy_options: format.sql_options(),
            compression: compression.name(),
            total_rows: tables.iter().map(|t| t.rows).sum(),
            total_raw_bytes: tables.iter().map(|t| t.raw_bytes).sum(),
            total_file_bytes: tables.iter().map(|t| t.file_bytes).sum(),
            tables,
            files,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }

    /// Writes the manifest under a temporary name and renames it.
    /// Writes the manifest through a temporary file (exclusive creation, a random name,
    /// removed on failure or signal) renamed into place: its presence marks a finished export.
    pub fn write_manifest(
        &self,
        path: &Path,
        interrupt: &interrupt::Interrupt,
    ) -> Result<(), ExportError> {
        use std::io::Write;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let (mut file, temp) = interrupt
            .temp_file(&dir, ".cbcopyout-manifest-")
            .map_err(|e| ExportError::Staging(e.to_string()))?;
        file.write_all((self.to_json() + "\n").as_bytes())
            .and_then(|_| file.sync_all())
            .map_err(|e| ExportError::io(temp.path(), e))?;
        // Temporary files are made 0600; a manifest is an ordinary file.
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(temp.path(), mode).map_err(|e| ExportError::io(path, e))?;
        }
        temp.persist(path).map_err(|e| ExportError::io(path, e))
    }
}

/// RFC 3339 UTC time without pulling in a date crate: days-from-civil arithmetic.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
