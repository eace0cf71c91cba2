//! Loading one table: `COPY ... FROM STDIN` inside its own transaction.
//!
//! Either every row of the stream is committed or none is: a read error (truncated gzip, missing
//! file), a server error, or a row count other than the expected one rolls the transaction back,
//! so a table is never left half loaded. `truncate` empties the table in the same transaction
//! first, which makes re-running a load (after a crash, with `--resume`) exact.

use std::io::{self, Read, Write};

use postgres::Client;

/// What one load did.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub rows: u64,
    pub bytes: u64,
}

/// Why a load failed, as text naming the table (the caller adds context).
#[derive(Debug)]
pub enum LoadError {
    /// The source could not be read; the source's own error (it names the file).
    Read(io::Error),
    /// The server refused the data or the statement.
    Server(String),
    /// The server loaded a different number of rows than the source promised.
    Count { loaded: u64, expected: u64 },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read(e) => write!(f, "reading the data failed: {e}"),
            LoadError::Server(m) => write!(f, "{m}"),
            LoadError::Count { loaded, expected } => write!(
                f,
                "loaded {loaded} rows but the backup records {expected}; rolled back"
            ),
        }
    }
}

/// Loads `source` into the table with `copy_sql`, in one transaction.
pub fn load_table(
    client: &mut Client,
    copy_sql: &str,
    truncate: Option<&str>,
    source: &mut dyn Read,
    expected_rows: Option<u64>,
) -> Result<Loaded, LoadError> {
    let server = |e: postgres::Error| LoadError::Server(cluster::error::server_message(&e));
    let mut tx = client.transaction().map_err(server)?;
    if let Some(table) = truncate {
        tx.batch_execute(&format!("TRUNCATE TABLE ONLY {table}"))
            .map_err(server)?;
    }
    let mut writer = tx.copy_in(copy_sql).map_err(server)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Dropping the writer unfinished aborts the COPY; the transaction rolls back.
            Err(e) => return Err(LoadError::Read(e)),
        };
        if let Err(e) = writer.write_all(&buf[..n]) {
            // The server ended the COPY early (bad row): its message is in the finish error.
            return Err(match writer.finish() {
                Err(pe) => server(pe),
                Ok(_) => LoadError::Server(e.to_string()),
            });
        }
        bytes += n as u64;
    }
    let rows = writer.finish().map_err(server)?;
    if let Some(expected) = expected_rows {
        if rows != expected {
            return Err(LoadError::Count {
                loaded: rows,
                expected,
            });
        }
    }
    tx.commit().map_err(server)?;
    Ok(Loaded { rows, bytes })
}
