//! Large objects' contents (`BLOBS` and `BLOB DATA` entries): written with `lo_open`/`lowrite`
//! into the objects their metadata entries created, or into a script as pg_restore writes them.
//! One object is read at a time, in pieces: memory stays flat whatever their sizes.

use std::io::Read;

use archive::blobs::Blob;
use postgres::GenericClient;

use crate::script::{ScriptError, ScriptOut};
use crate::state::CommitError;

/// Why a large object could not be restored; each names the object.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The archive's large-object data (its file, its block) cannot be read.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    #[error("large object {oid}: {source}")]
    Read { oid: u32, source: std::io::Error },
    #[error("large object {oid}: {message}")]
    Server { oid: u32, message: String },
    /// The entry's transaction could not start.
    #[error("{0}")]
    Begin(String),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Script(#[from] ScriptError),
}

/// Writes every object of `blobs` on `tx`; how many.
pub fn write_all<C: GenericClient>(tx: &mut C, blobs: Vec<Blob>) -> Result<usize, BlobError> {
    let mut n = 0;
    let mut buf = vec![0u8; 256 * 1024];
    for blob in blobs {
        let (oid, mut reader) = blob?;
        let at = |x: postgres::Error| BlobError::Server {
            oid,
            message: cluster::error::server_message(&x),
        };
        let fd: i32 = tx
            .query_one("SELECT pg_catalog.lo_open($1, 131072)", &[&oid])
            .map_err(at)?
            .get(0);
        loop {
            let k = reader
                .read(&mut buf)
                .map_err(|source| BlobError::Read { oid, source })?;
            if k == 0 {
                break;
            }
            tx.execute("SELECT pg_catalog.lowrite($1, $2)", &[&fd, &&buf[..k]])
                .map_err(at)?;
        }
        tx.execute("SELECT pg_catalog.lo_close($1)", &[&fd])
            .map_err(at)?;
        n += 1;
    }
    Ok(n)
}

/// `-f`: the objects as pg_restore writes them into a script, after `header` (the entry's
/// comment): one transaction (unless the script is one already: `single`), `lo_open`, a
/// `lowrite` per 16 kB, `lo_close`; how many.
pub fn script(
    s: &mut ScriptOut,
    header: String,
    blobs: Vec<Blob>,
    single: bool,
) -> Result<usize, BlobError> {
    let mut text = header;
    if !single {
        text.push_str("BEGIN;\n\n");
    }
    let mut n = 0;
    let mut buf = vec![0u8; 16 * 1024];
    for blob in blobs {
        let (oid, mut reader) = blob?;
        text.push_str(&format!("SELECT pg_catalog.lo_open('{oid}', 131072);\n"));
        s.write(std::mem::take(&mut text).as_bytes())?;
        loop {
            let k = reader
                .read(&mut buf)
                .map_err(|source| BlobError::Read { oid, source })?;
            if k == 0 {
                break;
            }
            let line = format!(
                "SELECT pg_catalog.lowrite(0, '\\x{}');\n",
                hex::encode(&buf[..k])
            );
            s.write(line.as_bytes())?;
        }
        text.push_str("SELECT pg_catalog.lo_close(0);\n\n");
        n += 1;
    }
    if !single {
        text.push_str("COMMIT;\n\n");
    }
    s.write(text.as_bytes())?;
    Ok(n)
}
