//! The connections a clone opens and the settings each gets.
//!
//! Text COPY writes and reads values the way the session is configured, so both ends get
//! pg_dump's settings (ISO dates, `postgres` intervals, exact floats) and the source database's
//! encoding as `client_encoding`: then a text row leaves the source meaning exactly what the
//! target reads. Binary COPY converts text values to the client encoding too, so the same
//! settings serve both formats.

use cluster::copy_stream::CopySession;
use cluster::{quote, snapshot, Client, ConnParams};

use crate::CloneError;

/// The `SET`s of every data session, for a server of `version_num`.
pub fn settings(version_num: i32, encoding: &str) -> String {
    let mut sql = vec![
        format!("SET client_encoding = {}", quote::literal(encoding)),
        "SET DateStyle = ISO".to_string(),
        "SET extra_float_digits TO 3".to_string(),
        "SET statement_timeout = 0".to_string(),
        "SET IntervalStyle = postgres".to_string(),
        "SET lock_timeout = 0".to_string(),
        "SET TimeZone = 'UTC'".to_string(),
    ];
    if version_num >= 90500 {
        // An error instead of rows a policy hides, as pg_dump without --enable-row-security.
        sql.push("SET row_security = off".into());
    }
    if version_num >= 90600 {
        sql.push("SET idle_in_transaction_session_timeout = 0".into());
    }
    sql.join("; ")
}

/// The source database's encoding.
pub fn encoding(client: &mut Client) -> Result<String, CloneError> {
    Ok(client
        .query_one(
            "SELECT pg_catalog.pg_encoding_to_char(encoding)::text FROM pg_catalog.pg_database WHERE datname = current_database()",
            &[],
        )
        .map_err(CloneError::query("reading the database encoding"))?
        .get(0))
}

/// A source session inside the shared snapshot, for COPY streams.
pub fn source_stream(
    params: &ConnParams,
    settings: &str,
    snapshot_id: &str,
) -> Result<CopySession, CloneError> {
    let mut s = CopySession::connect(params)?;
    s.batch_execute(settings)
        .map_err(CloneError::query("configuring a source session"))?;
    snapshot::import_into(&mut s, snapshot_id)?;
    Ok(s)
}

/// A source session inside the shared snapshot, for queries.
pub fn source_client(
    params: &ConnParams,
    settings: &str,
    snapshot_id: &str,
) -> Result<Client, CloneError> {
    let mut c = cluster::connect(params)?;
    c.batch_execute(settings)
        .map_err(CloneError::query("configuring a source session"))?;
    snapshot::import(&mut c, snapshot_id)?;
    Ok(c)
}

/// A target session.
pub fn target_client(params: &ConnParams, settings: &str) -> Result<Client, CloneError> {
    let mut c = cluster::connect(params)?;
    c.batch_execute(settings)
        .map_err(CloneError::query("configuring a target session"))?;
    Ok(c)
}
