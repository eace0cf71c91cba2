//! The session settings pg_dump gives its own connection before it copies data, for ours.
//!
//! `COPY ... TO` writes values the way the session is configured: a database or role with
//! `DateStyle = 'SQL, DMY'` would put `25/11/2026` into the archive, which a restore under MDY
//! reads as another date or rejects; the driver's forced `client_encoding = UTF8` would put UTF-8
//! bytes under pg_dump's `SET client_encoding = 'LATIN1'`; and with `row_security` on, a
//! non-owner would silently dump only the rows a policy lets it see. pg_dump avoids all of that
//! (pg_dump.c `setup_connection`), and so must we, or our data would not mean what pg_dump's
//! schema part says it means.

use postgres::Client;

use cluster::{quote, ClusterError};

/// What the workers need to know to match pg_dump's connection.
#[derive(Debug, Clone)]
pub struct Session {
    /// The database's encoding (pg_dump's default `client_encoding`), e.g. `LATIN1`.
    pub encoding: String,
    /// `server_version_num`.
    pub server_version_num: i32,
}

impl Session {
    /// Reads the database's encoding on the leader's connection.
    pub fn of(client: &mut Client, server_version_num: i32) -> Result<Session, ClusterError> {
        let encoding: String = client
            .query_one(
                "SELECT pg_catalog.pg_encoding_to_char(encoding)::text FROM pg_catalog.pg_database WHERE datname = current_database()",
                &[],
            )
            .map_err(ClusterError::query("reading the database encoding"))?
            .get(0);
        Ok(Session {
            encoding,
            server_version_num,
        })
    }

    /// The `SET`s a worker runs before it imports the snapshot.
    pub fn statements(&self) -> String {
        let v = self.server_version_num;
        let mut sql = vec![
            format!("SET client_encoding = {}", quote::literal(&self.encoding)),
            "SET DateStyle = ISO".to_string(),
            "SET extra_float_digits TO 3".to_string(),
            "SET statement_timeout = 0".to_string(),
            "SET synchronize_seqscans TO off".to_string(),
        ];
        if v >= 80400 {
            sql.push("SET IntervalStyle = postgres".into());
        }
        if v >= 90300 {
            sql.push("SET lock_timeout = 0".into());
        }
        if v >= 90500 {
            // An error instead of a silently filtered table, as pg_dump without
            // --enable-row-security.
            sql.push("SET row_security = off".into());
        }
        if v >= 90600 {
            sql.push("SET idle_in_transaction_session_timeout = 0".into());
        }
        sql.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::Session;

    #[test]
    fn settings_follow_the_server_version() {
        let s = Session {
            encoding: "LATIN1".into(),
            server_version_num: 150018,
        };
        let sql = s.statements();
        assert!(sql.starts_with("SET client_encoding = 'LATIN1'; SET DateStyle = ISO;"));
        assert!(sql.contains("SET row_security = off"));
        let old = Session {
            encoding: "UTF8".into(),
            server_version_num: 90426,
        }
        .statements();
        assert!(!old.contains("row_security") && old.contains("lock_timeout"));
    }
}
