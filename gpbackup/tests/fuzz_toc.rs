//! Property tests of the backup-set readers: a real gpbackup set (the shared fixtures'
//! `2-segment-db-single-data-file`: coordinator toc.yaml, config.yaml, metadata.sql, segment
//! tocs and data files) with one file mutated by flips, sets, cuts, deletions, insertions and
//! duplicated ranges, and YAML-like soups given to the toc and config readers. Opening the set,
//! planning it, checking its files, reading every metadata entry and every table's rows gives
//! results or errors, never a panic, a hang or a runaway allocation (inputs are a few KB and
//! every read is capped). `PROPTEST_CASES=N` for longer runs.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use gpbackup::toc::SegmentToc;
use gpbackup::{BackupConfig, BackupSet, Section, Toc};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const READ_CAP: u64 = 16 << 20;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b"0123456789:-'\"\n #|>&*![]{}~".to_vec())
        )
            .prop_map(|(i, v)| Mutation::Set(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..80).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), yaml_soup()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..300).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    if data.is_empty() {
        return;
    }
    let at = |i: usize| i % data.len();
    match m {
        Mutation::Flip(i, b) => {
            let i = at(*i);
            data[i] ^= 1 << b;
        }
        Mutation::Set(i, v) => {
            let i = at(*i);
            data[i] = *v;
        }
        Mutation::Truncate(i) => data.truncate(at(*i)),
        Mutation::Delete(i, n) => {
            let i = at(*i);
            let end = (i + n).min(data.len());
            data.drain(i..end);
        }
        Mutation::Insert(i, v) => {
            let i = at(*i);
            data.splice(i..i, v.iter().copied());
        }
        Mutation::Duplicate(i, n) => {
            let i = at(*i);
            let end = (i + n).min(data.len());
            let piece = data[i..end].to_vec();
            data.splice(end..end, piece);
        }
    }
}

/// Pieces of the YAML gpbackup writes and of YAML it does not.
const PIECES: &[&str] = &[
    "globalentries:\n",
    "predataentries:\n",
    "postdataentries:\n",
    "dataentries:\n",
    "statisticsentries:\n",
    "incrementalmetadata:\n",
    "- schema: public\n",
    "  name: t\n",
    "  objecttype: TABLE\n",
    "  startbyte: 0\n",
    "  endbyte: 18446744073709551615\n",
    "  oid: 16388\n",
    "  attributestring: (a, b)\n",
    "  rowscopied: 7\n",
    "  16388:\n",
    "    startbyte: 5\n",
    "    endbyte: 3\n",
    "  isreplicated: true\n",
    "  distbyenum: false\n",
    "segmentcount: 2\n",
    "compressed: true\n",
    "compressiontype: zstd\n",
    "backupversion: 1.30.0\n",
    "databaseversion: 6.21.1 build commitNumber:\n",
    "timestamp: \"20220908150159\"\n",
    "singledatafile: true\n",
    "- ",
    "  ",
    "\t",
    "\n",
    ": ",
    "'",
    "''",
    "\"",
    "\\\"",
    "|\n",
    ">-\n",
    "# c\n",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "null",
    "~",
    "&a ",
    "*a",
    "!!str ",
    "---\n",
    "...\n",
    "-1",
    "1e400",
    "0x1f",
    "é",
    "\u{0}",
    "\u{feff}",
];

fn yaml_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::sample::select(PIECES).prop_map(|p| p.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 1..6),
        ],
        0..60,
    )
    .prop_map(|v| v.concat())
}

fn drain(r: impl Read) {
    let _ = std::io::copy(&mut r.take(READ_CAP), &mut std::io::sink());
}

/// Everything cbrestore reads from a set, errors ignored.
fn read_set(root: &Path) {
    let Ok(set) = BackupSet::open_roots(&[root], None) else {
        return;
    };
    let _ = set.missing_files();
    let _ = set.check_files();
    let _ = set.session_gucs();
    if let Ok(mut meta) = set.metadata() {
        let sections = [Section::Global, Section::Predata, Section::Postdata];
        let _ = meta.check_offsets(&set.toc, &sections);
        for section in sections {
            for (i, e) in set.toc.entries(section).iter().enumerate() {
                let _ = meta.read_entry(section, i, e);
            }
        }
    }
    for t in set.tables() {
        drain(set.table_reader(t));
    }
}

/// The set's files: (path, original bytes).
fn files_of(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn mutated_backup_sets_never_panic() {
    let Some((_tmp, root)) = common::unpack("2-segment-db-single-data-file") else {
        return;
    };
    // The untouched set reads in full.
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    assert_eq!(set.tables().len(), 8);
    read_set(&root);
    let files = files_of(&root);
    TestRunner::new(config(200))
        .run(
            &(
                any::<prop::sample::Index>(),
                prop::collection::vec(mutation(), 1..4),
            ),
            |(which, mutations)| {
                let (path, original) = &files[which.index(files.len())];
                let mut bytes = original.clone();
                for m in &mutations {
                    apply(&mut bytes, m);
                }
                std::fs::write(path, &bytes).unwrap();
                read_set(&root);
                std::fs::write(path, original).unwrap();
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn yaml_soups_never_panic_the_toc_and_config_readers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.yaml");
    TestRunner::new(config(400))
        .run(&yaml_soup(), |yaml| {
            std::fs::write(&path, &yaml).unwrap();
            let _ = Toc::read(&path);
            let _ = SegmentToc::read(&path);
            let _ = BackupConfig::read(&path);
            Ok(())
        })
        .unwrap();
}
