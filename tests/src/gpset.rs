//! Realistic gpbackup sets from a live PostgreSQL database, for tests, the demo and benchmarks.
//!
//! [`PgSplitSource`] plays an N-segment cluster on plain PostgreSQL: each table's rows are spread
//! over contents 0..N-1 by a hash of the row (`COPY (SELECT ... WHERE mod(hash, N) = c) TO STDOUT
//! (FORMAT csv)`, the CSV dialect gpbackup uses); replicated tables get a full copy in every
//! content. The set's files are written by `gpbackup::writer`, which knows only the formats.

use std::io::{self, Write};
use std::process::Command;

use gpbackup::data::RowCounter;
use gpbackup::writer::{SequenceValue, SetSource, SourceTable, WriterOptions, WrittenSet};
use gpbackup::{Error, Result};
use postgres::Client;

/// A PostgreSQL database seen as the source of an N-segment gpbackup set.
pub struct PgSplitSource<'a> {
    pub client: &'a mut Client,
    /// A pg_dump command already pointed at the database.
    pub pg_dump: &'a dyn Fn() -> Command,
    /// Tables (quoted `schema.table`) written as DISTRIBUTED REPLICATED.
    pub replicated: Vec<String>,
}

fn werr(msg: impl Into<String>) -> Error {
    Error::Writer(msg.into())
}

impl PgSplitSource<'_> {
    /// The same session settings gpbackup's backup connections use, and no parallel scans: a
    /// content's rows keep the table's physical order (a Gather would interleave blocks).
    fn prepare(&mut self) -> Result<()> {
        self.client.batch_execute(
            "SET datestyle = ISO; SET intervalstyle = postgres; SET extra_float_digits = 3; \
             SET client_encoding = 'UTF8'; SET max_parallel_workers_per_gather = 0",
        )?;
        Ok(())
    }
}

impl SetSource for PgSplitSource<'_> {
    fn database(&mut self) -> Result<(String, String)> {
        let row = self
            .client
            .query_one("SELECT quote_ident(current_database()), version()", &[])?;
        Ok((row.get(0), row.get(1)))
    }

    fn tables(&mut self) -> Result<Vec<SourceTable>> {
        self.prepare()?;
        let rows = self.client.query(
            "SELECT c.oid, quote_ident(n.nspname), quote_ident(c.relname),
                    coalesce((SELECT '(' || string_agg(quote_ident(a.attname), ',' ORDER BY a.attnum) || ')'
                              FROM pg_attribute a
                              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''), '')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
             ORDER BY n.nspname, c.relname",
            &[],
        )?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (schema, name): (String, String) = (r.get(1), r.get(2));
                let replicated = self.replicated.contains(&format!("{schema}.{name}"));
                SourceTable {
                    oid: r.get(0),
                    schema,
                    name,
                    attributestring: r.get(3),
                    replicated,
                }
            })
            .collect())
    }

    fn sequences(&mut self) -> Result<Vec<SequenceValue>> {
        let seqs = self.client.query(
            "SELECT quote_ident(schemaname), quote_ident(sequencename) FROM pg_sequences ORDER BY 1, 2",
            &[],
        )?;
        let mut out = Vec::new();
        for s in seqs {
            let (schema, name): (String, String) = (s.get(0), s.get(1));
            let row = self.client.query_one(
                &format!("SELECT last_value, is_called FROM {schema}.{name}"),
                &[],
            )?;
            out.push(SequenceValue {
                schema,
                name,
                last_value: row.get(0),
                is_called: row.get(1),
            });
        }
        Ok(out)
    }

    fn quote_ident(&mut self, name: &str) -> Result<String> {
        Ok(self
            .client
            .query_one("SELECT quote_ident($1)", &[&name])?
            .get(0))
    }

    fn pg_dump(&mut self) -> Result<Command> {
        Ok((self.pg_dump)())
    }

    fn content_rows(
        &mut self,
        t: &SourceTable,
        c: usize,
        n: usize,
        out: &mut dyn Write,
    ) -> Result<u64> {
        let cols = t
            .attributestring
            .trim_start_matches('(')
            .trim_end_matches(')');
        let filter = if t.replicated {
            String::new()
        } else {
            format!(" WHERE mod(abs(hashtext(r::text)::bigint), {n}) = {c}")
        };
        let sql = format!(
            "COPY (SELECT {cols} FROM {} r{filter}) TO STDOUT WITH (FORMAT csv, DELIMITER ',')",
            t.fqn()
        );
        let mut reader = self.client.copy_out(&sql)?;
        let mut counter = RowCounter::default();
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let k = io::Read::read(&mut reader, &mut buf)
                .map_err(|e| werr(format!("COPY of {}: {e}", t.fqn())))?;
            if k == 0 {
                break;
            }
            counter.feed(&buf[..k]);
            out.write_all(&buf[..k])
                .map_err(|e| werr(format!("writing {}: {e}", t.fqn())))?;
        }
        Ok(counter.rows())
    }
}

/// Writes a set of the database `client` is connected to, spread over `opts.segments` contents.
pub fn write_backup_set(
    client: &mut Client,
    pg_dump: &dyn Fn() -> Command,
    root: &std::path::Path,
    opts: &WriterOptions,
) -> Result<WrittenSet> {
    write_backup_set_replicated(client, pg_dump, root, opts, &[])
}

/// [`write_backup_set`] with `replicated` tables (quoted `schema.table`) holding a full copy in
/// every content, as DISTRIBUTED REPLICATED tables do.
pub fn write_backup_set_replicated(
    client: &mut Client,
    pg_dump: &dyn Fn() -> Command,
    root: &std::path::Path,
    opts: &WriterOptions,
    replicated: &[String],
) -> Result<WrittenSet> {
    let mut source = PgSplitSource {
        client,
        pg_dump,
        replicated: replicated.to_vec(),
    };
    gpbackup::writer::write_backup_set(&mut source, root, opts)
}

/// Unpacks the shared fixture set `name` (`../shared/fixtures/gpbackup/NAME.tar.gz`, written by
/// real gpbackup) into `into/NAME`; `None` when the fixtures are not there.
pub fn unpack_fixture(name: &str, into: &std::path::Path) -> Option<std::path::PathBuf> {
    let tarball = crate::shared_fixtures()?
        .join("gpbackup")
        .join(format!("{name}.tar.gz"));
    if !tarball.is_file() {
        return None;
    }
    let dir = into.join(name);
    std::fs::create_dir_all(&dir).expect("creating the fixture's directory");
    let st = Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .status()
        .expect("running tar");
    assert!(st.success(), "unpacking {}", tarball.display());
    Some(dir)
}
