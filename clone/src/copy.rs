//! STEP 3's unit of work: one chunk of one table, streamed from the source's `COPY ... TO
//! STDOUT` straight into the target's `COPY ... FROM STDIN` inside one target transaction.
//!
//! Nothing is parsed or stored on the way: the source's buffers (256 KiB, four in flight, see
//! `pipeline::buffers`) are read on one thread and written to the target on another, so
//! memory stays flat whatever the table's size and both servers work at once.

use std::io::Write;
use std::time::Instant;

use cluster::copy_stream::CopySession;
use cluster::Client;
use pipeline::plan::Chunk;
use pipeline::progress::InFlight;

use crate::state::{Event, State};
use crate::tables::{describe_chunk, Table};
use crate::{interrupt, CloneError};

/// One worker's two sessions.
pub struct Worker {
    pub source: CopySession,
    pub target: Client,
}

/// How a chunk is loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoadMode {
    /// Empty the table in the chunk's own transaction first: only for a table this clone
    /// created, and loaded as one chunk (other chunks would be emptied too).
    pub truncate: bool,
    /// `COPY ... FREEZE`, which PostgreSQL allows exactly when the table was emptied in the
    /// same transaction: rows arrive frozen and all-visible, so the index builds and the first
    /// VACUUM after the clone do not rewrite every page (pg_restore -j does the same).
    pub freeze: bool,
}

/// What a chunk did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Copied {
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Copies `chunk` (the `index`-th) of `table` and commits it, logging the transaction id before
/// the commit and the chunk after it. `flight` is told the bytes and rows that went by, for
/// the progress line.
pub fn copy_chunk(
    worker: &mut Worker,
    table: &Table,
    index: usize,
    chunk: &Chunk,
    mode: LoadMode,
    state: &State,
    flight: &InFlight,
) -> Result<Copied, CloneError> {
    let started = Instant::now();
    let label = table.label();
    let fail = |message: String| CloneError::Table {
        table: format!("{label} ({})", describe_chunk(chunk)),
        message,
    };
    let server = |e: postgres::Error| fail(cluster::error::server_message(&e));
    let mut tx = worker.target.transaction().map_err(server)?;
    if mode.truncate {
        tx.batch_execute(&format!("TRUNCATE ONLY {}", table.relation().qualified()))
            .map_err(server)?;
    }
    let mut writer = tx
        .copy_in(&table.copy_in_sql(mode.freeze))
        .map_err(server)?;
    let mut out = worker
        .source
        .copy_out(&table.copy_out_sql(chunk))
        .map_err(server)?;
    let mut sent = 0u64;
    let (consumed, read) = pipeline::pipelined(
        |buf| {
            if interrupt::requested() {
                return Err(std::io::Error::other("interrupted"));
            }
            out.fill(buf)
        },
        |data| {
            writer.write_all(data)?;
            sent += data.len() as u64;
            flight.add(data.len() as u64, 0);
            Ok(())
        },
    );
    interrupt::check()?;
    read.map_err(|e| fail(format!("reading from the source: {}", io_message(&e))))?;
    consumed.map_err(|e| fail(format!("writing to the target: {}", io_message(&e))))?;
    drop(out);
    let rows = writer.finish().map_err(server)?;
    flight.add(0, rows);
    let xid: String = tx
        .query_one("SELECT txid_current()::text", &[])
        .map_err(server)?
        .get(0);
    state.record(Event::Pending {
        table: label.clone(),
        chunk: index,
        xid,
    })?;
    tx.commit().map_err(server)?;
    state.record(Event::Chunk {
        table: label.clone(),
        chunk: index,
    })?;
    Ok(Copied {
        rows,
        bytes: sent,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The server's words when an I/O error wraps a driver error.
fn io_message(e: &std::io::Error) -> String {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<postgres::Error>())
    {
        Some(pg) => cluster::error::server_message(pg),
        None => e.to_string(),
    }
}
