//! What end-to-end tests compare: a database's schema as pg_dump sees it, and the contents of
//! its tables, so "restored equals source" is one assertion.

use std::collections::BTreeMap;
use std::process::Output;

use crate::TestServer;

impl TestServer {
    /// `pg_dump -s` of `db`, with a fixed `\restrict` key so two dumps compare byte for byte.
    pub fn schema_dump(&self, db: &str) -> String {
        let out = self
            .command("pg_dump")
            .args(["-s", "--restrict-key", "cbtools", "-d", db])
            .output()
            .expect("running pg_dump -s");
        String::from_utf8(success(&out, "pg_dump -s").into_bytes()).expect("UTF-8 schema")
    }

    /// pg_dump of `db` with `args` (`-Fc`, `-Fd` ...) into `to`; `to` again.
    pub fn pg_dump_to(&self, db: &str, args: &[&str], to: &std::path::Path) -> std::path::PathBuf {
        let out = self
            .command("pg_dump")
            .args(["-d", db])
            .args(args)
            .arg("-f")
            .arg(to)
            .output()
            .expect("running pg_dump");
        success(&out, "pg_dump");
        to.to_path_buf()
    }

    /// `schema.table` → `rows:md5` of the rows in a fixed order, for every relation of the given
    /// kinds (`'r'`, `'m'` ...) outside the system schemas; populated materialized views only.
    pub fn table_fingerprints(&self, db: &str, kinds: &[char]) -> BTreeMap<String, String> {
        let mut c = self.client(db);
        let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        let tables: Vec<(String, String)> = c
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind::text = ANY($1) AND (c.relkind <> 'm' OR c.relispopulated) \
                    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'",
                &[&kinds],
            )
            .expect("listing tables")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        tables
            .into_iter()
            .map(|(s, t)| {
                let q = format!(
                    "SELECT count(*)::text || ':' || coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '') FROM \"{}\".\"{}\" x",
                    s.replace('"', "\"\""),
                    t.replace('"', "\"\"")
                );
                let v: String = c.query_one(&q, &[]).expect("fingerprint").get(0);
                (format!("{s}.{t}"), v)
            })
            .collect()
    }

    /// Count and md5 of every large object's contents.
    pub fn large_object_fingerprint(&self, db: &str) -> String {
        self.client(db)
            .query_one(
                "SELECT count(*)::text || ':' || coalesce(md5(string_agg(md5(lo_get(oid)), ',' ORDER BY oid)), '') FROM pg_largeobject_metadata",
                &[],
            )
            .expect("large objects")
            .get(0)
    }
}

/// Stdout of a command that must have succeeded; panics with its stderr otherwise.
pub fn success(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
