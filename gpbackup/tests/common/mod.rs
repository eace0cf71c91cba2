//! Shared helpers of the integration tests: fixture unpacking and a minimal coordinator loader
//! (what `cbrestore` does, in a few lines, to prove the library is enough for it).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use gpbackup::translate::Translator;
use gpbackup::{BackupSet, Section};

/// Unpacks `name.tar.gz` from the shared fixtures into a fresh temp dir; `None` (test skipped)
/// when the fixtures are not present.
pub fn unpack(name: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = testkit::shared_fixtures()?.join("gpbackup");
    let tarball = dir.join(format!("{name}.tar.gz"));
    if !tarball.is_file() {
        eprintln!("skipping: {} not present", tarball.display());
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(tmp.path())
        .status()
        .expect("running tar");
    assert!(status.success(), "unpacking {}", tarball.display());
    let root = tmp.path().to_path_buf();
    Some((tmp, root))
}

/// `schema.table` → rows, summed over segments, from a `*-rowcounts.txt` psql table.
pub fn rowcounts(name: &str) -> BTreeMap<String, u64> {
    let path = testkit::shared_fixtures()
        .unwrap()
        .join("gpbackup")
        .join(format!("{name}-rowcounts.txt"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() == 4 {
            if let Ok(n) = cols[3].parse::<u64>() {
                *out.entry(format!("{}.{}", cols[0], cols[1])).or_default() += n;
            }
        }
    }
    out
}

/// Merged rows of every table of the set, read through the library (CSV-aware count).
pub fn merged_rows(set: &BackupSet) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for t in set.tables() {
        let mut r = set.table_reader(t);
        std::io::copy(&mut r, &mut std::io::sink()).unwrap_or_else(|e| panic!("{}: {e}", t.fqn()));
        out.insert(t.fqn(), r.rows());
    }
    out
}

/// Merged bytes of one table.
pub fn merged_bytes(set: &BackupSet, fqn: &str) -> Vec<u8> {
    let t = set.tables().iter().find(|t| t.fqn() == fqn).unwrap();
    let mut v = Vec::new();
    set.table_reader(t).read_to_end(&mut v).unwrap();
    v
}

/// Loads a set into `db` through one connection, translating for PostgreSQL: globals if asked
/// (minus database statements), predata, data via COPY FROM STDIN, postdata. Returns rows loaded per
/// table as reported by the server.
pub fn load(
    set: &BackupSet,
    client: &mut postgres::Client,
    globals: bool,
) -> BTreeMap<String, u64> {
    let mut meta = set.metadata().unwrap();
    let mut tr = Translator::new();
    if let Some(g) = set.session_gucs().unwrap() {
        client.batch_execute(&g).unwrap();
    }
    fn run(
        set: &BackupSet,
        client: &mut postgres::Client,
        section: Section,
        meta: &mut gpbackup::metadata::MetadataFile,
        tr: &mut Translator,
    ) {
        for stmt in meta.statements(&set.toc, section) {
            let stmt = stmt.unwrap();
            if section == Section::Global
                && matches!(
                    stmt.entry.objecttype.as_str(),
                    "SESSION GUCS" | "DATABASE" | "DATABASE METADATA" | "DATABASE GUC"
                )
            {
                continue;
            }
            if let Some(sql) = tr.translate(&stmt).unwrap() {
                let sql = String::from_utf8(sql).unwrap();
                client
                    .batch_execute(&sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }
    if globals {
        run(set, client, Section::Global, &mut meta, &mut tr);
    }
    run(set, client, Section::Predata, &mut meta, &mut tr);
    let mut loaded = BTreeMap::new();
    for t in set.tables() {
        let mut w = client.copy_in(&t.copy_statement()).unwrap();
        let mut r = set.table_reader(t);
        std::io::copy(&mut r, &mut w).unwrap_or_else(|e| panic!("{}: {e}", t.fqn()));
        let n = w.finish().unwrap();
        assert_eq!(n, r.rows(), "{}: server count vs CSV count", t.fqn());
        assert_eq!(n, t.expected_rows, "{}: loaded vs rowscopied", t.fqn());
        loaded.insert(t.fqn(), n);
    }
    run(set, client, Section::Postdata, &mut meta, &mut tr);
    loaded
}

/// `count(*)` of every table of the set in the target.
pub fn counts(set: &BackupSet, client: &mut postgres::Client) -> BTreeMap<String, u64> {
    set.tables()
        .iter()
        .map(|t| {
            let n: i64 = client
                .query_one(&format!("SELECT count(*) FROM {}", t.fqn()), &[])
                .unwrap()
                .get(0);
            (t.fqn(), n as u64)
        })
        .collect()
}

pub fn find_file(root: &Path, name: &str) -> PathBuf {
    walk(root)
        .into_iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("{name} not under {}", root.display()))
}

pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Per table: row count and an order-independent md5 of all rows' text.
pub fn checksums(
    set: &BackupSet,
    client: &mut postgres::Client,
) -> BTreeMap<String, (i64, String)> {
    set.tables()
        .iter()
        .map(|t| {
            let row = client
                .query_one(
                    &format!("SELECT count(*), coalesce(md5(string_agg(x.t, E'\\n' ORDER BY x.t)), '') FROM (SELECT r::text AS t FROM {} r) x", t.fqn()),
                    &[],
                )
                .unwrap();
            (t.fqn(), (row.get(0), row.get(1)))
        })
        .collect()
}
