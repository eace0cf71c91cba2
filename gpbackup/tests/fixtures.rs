//! The real gpbackup sets of `shared/fixtures/gpbackup`: discovery, plan, merged row counts,
//! restores into a real PostgreSQL 15, and bad-input errors. Skipped when the fixtures are absent.

mod common;

use std::collections::BTreeMap;

use common::*;
use gpbackup::to_sql::{write_sql, Target, ToSqlOptions};
use gpbackup::{discover, BackupSet, DataProblem, Error, LayoutKind};

#[test]
fn discovers_every_fixture_and_its_layout() {
    let cases = [
        ("1-segment-db", vec!["20220908150735"], 1, 8),
        ("2-segment-db", vec!["20220908150145"], 2, 8),
        (
            "2-segment-db-single-data-file",
            vec!["20220908150159"],
            2,
            8,
        ),
        ("1-segment-db-replicated", vec!["20221104023842"], 1, 1),
        (
            "2-segment-db-incremental",
            vec!["20220909150612", "20220909150622"],
            2,
            8,
        ),
        ("corrupt-db", vec!["20190809230424"], 3, 3),
    ];
    for (name, stamps, segments, tables) in cases {
        let Some((_tmp, root)) = unpack(name) else {
            return;
        };
        let d = discover(&[&root]).unwrap();
        assert_eq!(d.timestamps(), stamps, "{name}");
        let ts = *stamps.last().unwrap();
        let set = BackupSet::open(&d, Some(ts)).unwrap();
        assert_eq!(set.segment_count, segments, "{name}");
        assert_eq!(set.tables().len(), tables, "{name}");
        assert_eq!(
            set.files.layout_kind(),
            LayoutKind::PerContentDirs,
            "{name}"
        );
        assert!(
            set.missing_files().is_empty(),
            "{name}: {:?}",
            set.missing_files()
        );
        set.check_files().unwrap();
    }
}

#[test]
fn old_set_without_segmentcount_infers_it_and_warns() {
    let Some((_tmp, root)) = unpack("corrupt-db") else {
        return;
    };
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    assert_eq!(set.config.segment_count(), None);
    assert_eq!(set.segment_count, 3);
    assert!(
        set.warnings.iter().any(|w| w.contains("no segmentcount")),
        "{:?}",
        set.warnings
    );
    assert_eq!(
        set.config.compression().unwrap(),
        gpbackup::Compression::Gzip
    );
}

#[test]
fn merged_row_counts_match_rowcounts_files_and_rowscopied() {
    for name in [
        "1-segment-db",
        "2-segment-db",
        "2-segment-db-single-data-file",
    ] {
        let Some((_tmp, root)) = unpack(name) else {
            return;
        };
        let set = BackupSet::open_roots(&[&root], None).unwrap();
        let source = rowcounts(if name.starts_with('1') {
            "1-segment-db"
        } else {
            "2-segment-db"
        });
        let merged = merged_rows(&set);
        assert_eq!(merged.len(), 8);
        for t in set.tables() {
            assert_eq!(merged[&t.fqn()], source[&t.fqn()], "{name} {}", t.fqn());
            assert_eq!(
                merged[&t.fqn()],
                t.entry.rowscopied as u64,
                "{name} {}",
                t.fqn()
            );
        }
    }
}

#[test]
fn single_data_file_set_equals_its_multiple_file_twin() {
    let (Some((_a, mdf)), Some((_b, sdf))) = (
        unpack("2-segment-db"),
        unpack("2-segment-db-single-data-file"),
    ) else {
        return;
    };
    let mdf = BackupSet::open_roots(&[&mdf], None).unwrap();
    let sdf = BackupSet::open_roots(&[&sdf], None).unwrap();
    assert!(sdf.config.singledatafile && !mdf.config.singledatafile);
    let names: Vec<String> = mdf.tables().iter().map(|t| t.fqn()).collect();
    assert_eq!(
        names,
        sdf.tables().iter().map(|t| t.fqn()).collect::<Vec<_>>()
    );
    for name in names {
        let mut a: Vec<Vec<u8>> = merged_bytes(&mdf, &name)
            .split(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        let mut b: Vec<Vec<u8>> = merged_bytes(&sdf, &name)
            .split(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{name}");
    }
}

#[test]
fn incremental_follows_restoreplan() {
    let Some((_tmp, root)) = unpack("2-segment-db-incremental") else {
        return;
    };
    let d = discover(&[&root]).unwrap();
    let e = BackupSet::open(&d, None).unwrap_err();
    assert!(
        matches!(&e, Error::AmbiguousTimestamp { candidates } if candidates.len() == 2),
        "{e}"
    );
    assert!(
        e.to_string().contains("20220909150612, 20220909150622"),
        "{e}"
    );
    let e = BackupSet::open(&d, Some("20220909150000")).unwrap_err();
    assert!(
        e.to_string().contains("20220909150612, 20220909150622"),
        "{e}"
    );

    let inc = BackupSet::open(&d, Some("20220909150622")).unwrap();
    assert!(inc.config.incremental);
    assert!(inc
        .tables()
        .iter()
        .all(|t| t.source_timestamp == "20220909150622"));
    let rows = merged_rows(&inc);
    assert_eq!(rows["schematwo.tableone"], 100_001);
    assert_eq!(rows["schemaone.tablefour"], 10_000);
    let full = BackupSet::open(&d, Some("20220909150612")).unwrap();
    assert_eq!(merged_rows(&full)["schematwo.tableone"], 1);
}

#[test]
fn incremental_plan_reads_unchanged_tables_from_the_base_backup() {
    // The fixture's incremental re-dumped every (heap) table; rewrite its plan so the base
    // supplies schemaone.* as it would for unchanged AO tables, and remove the incremental's own
    // files for them to prove they are not read.
    let Some((_tmp, root)) = unpack("2-segment-db-incremental") else {
        return;
    };
    let config = find_file(&root, "gpbackup_20220909150622_config.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let plan_start = text.find("restoreplan:").unwrap();
    let plan_end = text.find("singledatafile:").unwrap();
    let plan = "restoreplan:\n- timestamp: \"20220909150612\"\n  tablefqns:\n  - schemaone.tableone\n  - schemaone.tablefour\n- timestamp: \"20220909150622\"\n  tablefqns:\n  - schematwo.tableone\n";
    std::fs::write(
        &config,
        format!("{}{plan}{}", &text[..plan_start], &text[plan_end..]),
    )
    .unwrap();
    let set = BackupSet::open_roots(&[&root], Some("20220909150622")).unwrap();
    let by_name: BTreeMap<String, String> = set
        .tables()
        .iter()
        .map(|t| (t.fqn(), t.source_timestamp.clone()))
        .collect();
    assert_eq!(by_name.len(), 3);
    assert_eq!(by_name["schemaone.tableone"], "20220909150612");
    assert_eq!(by_name["schemaone.tablefour"], "20220909150612");
    assert_eq!(by_name["schematwo.tableone"], "20220909150622");
    assert!(set.sources.contains_key("20220909150612"));
    let rows = merged_rows(&set);
    assert_eq!(rows["schemaone.tablefour"], 10_000);
    assert_eq!(rows["schematwo.tableone"], 100_001);
    for t in set.tables() {
        if t.source_timestamp == "20220909150612" {
            assert!(t
                .pieces
                .iter()
                .all(|p| p.path().to_string_lossy().contains("20220909150612")));
        }
    }
}

#[test]
fn replicated_table_is_read_from_one_content() {
    let Some((_tmp, root)) = unpack("1-segment-db-replicated") else {
        return;
    };
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let t = &set.tables()[0];
    assert!(t.entry.isreplicated);
    assert_eq!(t.pieces.len(), 1);
    assert_eq!(t.expected_rows, 100);
    assert_eq!(merged_rows(&set)["schemaone.test_table"], 100);
}

#[test]
fn replicated_table_with_more_segments_keeps_one_copy() {
    // Make the replicated fixture a 3-segment set (each segment holds the full copy, rowscopied
    // = rows x segments, as gpbackup writes it) and check only content 0 is read.
    let Some((_tmp, root)) = unpack("1-segment-db-replicated") else {
        return;
    };
    let f0 = find_file(&root, "gpbackup_0_20221104023842_16388.gz");
    for c in 1..3 {
        let dir = root.join(format!("demoDataDir{c}/backups/20221104/20221104023842"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(
            &f0,
            dir.join(format!("gpbackup_{c}_20221104023842_16388.gz")),
        )
        .unwrap();
    }
    let config = find_file(&root, "gpbackup_20221104023842_config.yaml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("segmentcount: 1", "segmentcount: 3");
    std::fs::write(&config, text).unwrap();
    let toc = find_file(&root, "gpbackup_20221104023842_toc.yaml");
    let text = std::fs::read_to_string(&toc)
        .unwrap()
        .replace("rowscopied: 100", "rowscopied: 300");
    std::fs::write(&toc, text).unwrap();
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let t = &set.tables()[0];
    assert_eq!((t.pieces.len(), t.expected_rows), (1, 100));
    assert_eq!(merged_rows(&set)["schemaone.test_table"], 100);
}

#[test]
fn flat_copy_and_one_root_per_host_are_found() {
    let Some((_tmp, root)) = unpack("2-segment-db") else {
        return;
    };
    // Several roots: one per content directory, as if each host's directory were mounted.
    let roots: Vec<_> = ["demoDataDir-1", "demoDataDir0", "demoDataDir1"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    let set = BackupSet::open_roots(&roots, None).unwrap();
    assert_eq!(merged_rows(&set)["schemaone.tablefour"], 10_000);
    // Everything copied flat into one directory.
    let flat = tempfile::tempdir().unwrap();
    for p in walk(&root) {
        std::fs::copy(&p, flat.path().join(p.file_name().unwrap())).unwrap();
    }
    let set = BackupSet::open_roots(&[flat.path()], None).unwrap();
    assert_eq!(set.files.layout_kind(), LayoutKind::Flat);
    assert_eq!(merged_rows(&set)["schemaone.tablefour"], 10_000);
    // The same file reachable through two overlapping roots is not a duplicate ...
    assert!(BackupSet::open_roots(&[root.clone(), root.join("demoDataDir0")], None).is_ok());
    // ... but a second copy is.
    let e = BackupSet::open_roots(&[root.as_path(), flat.path()], None).unwrap_err();
    assert!(matches!(e, Error::DuplicateFile { .. }), "{e}");
}

#[test]
fn missing_segment_files_are_listed_exactly() {
    let Some((_tmp, root)) = unpack("2-segment-db") else {
        return;
    };
    std::fs::remove_file(find_file(&root, "gpbackup_1_20220908150145_16397.gz")).unwrap();
    std::fs::remove_file(find_file(&root, "gpbackup_0_20220908150145_16409.gz")).unwrap();
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let missing: Vec<String> = set.missing_files().iter().map(|m| m.to_string()).collect();
    assert_eq!(
        missing,
        vec![
            "content 0: table schematwo.tablefour: gpbackup_0_20220908150145_16409.gz",
            "content 1: table schemaone.tablefour: gpbackup_1_20220908150145_16397.gz",
        ]
    );
    let e = set.check_files().unwrap_err();
    assert!(
        e.to_string()
            .starts_with("2 data file(s) promised by the toc are missing"),
        "{e}"
    );
    // Reading the table anyway names table and file.
    let t = set
        .tables()
        .iter()
        .find(|t| t.fqn() == "schemaone.tablefour")
        .unwrap();
    let err = std::io::copy(&mut set.table_reader(t), &mut std::io::sink()).unwrap_err();
    let err = Error::from_io(err, "");
    assert!(
        matches!(&err, Error::TableData { problem: DataProblem::Missing, table, .. } if table == "schemaone.tablefour"),
        "{err}"
    );

    let Some((_tmp2, sdf)) = unpack("2-segment-db-single-data-file") else {
        return;
    };
    std::fs::remove_file(find_file(&sdf, "gpbackup_1_20220908150159.gz")).unwrap();
    let set = BackupSet::open_roots(&[&sdf], None).unwrap();
    let missing: Vec<String> = set.missing_files().iter().map(|m| m.to_string()).collect();
    assert_eq!(
        missing,
        vec!["content 1: all tables: gpbackup_1_20220908150159.gz"]
    );
}

#[test]
fn truncated_gzip_is_a_clear_error() {
    let Some((_tmp, root)) = unpack("2-segment-db") else {
        return;
    };
    let f = find_file(&root, "gpbackup_0_20220908150145_16397.gz");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let t = set
        .tables()
        .iter()
        .find(|t| t.fqn() == "schemaone.tablefour")
        .unwrap();
    let err = Error::from_io(
        std::io::copy(&mut set.table_reader(t), &mut std::io::sink()).unwrap_err(),
        "",
    );
    assert!(
        matches!(&err, Error::TableData { problem: DataProblem::Corrupt(_), file, .. } if *file == f),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("table schemaone.tablefour")
            && msg.contains("gpbackup_0_20220908150145_16397.gz"),
        "{msg}"
    );
}

#[test]
fn segment_toc_offsets_beyond_the_file_are_a_clear_error() {
    let Some((_tmp, root)) = unpack("2-segment-db-single-data-file") else {
        return;
    };
    let toc = find_file(&root, "gpbackup_0_20220908150159_toc.yaml");
    let text = std::fs::read_to_string(&toc)
        .unwrap()
        .replace("endbyte: 53252", "endbyte: 99999");
    std::fs::write(&toc, text).unwrap();
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let t = set
        .tables()
        .iter()
        .find(|t| t.fqn() == "schematwo.tablefour")
        .unwrap();
    let err = Error::from_io(
        std::io::copy(&mut set.table_reader(t), &mut std::io::sink()).unwrap_err(),
        "",
    );
    assert!(
        matches!(
            &err,
            Error::TableData {
                problem: DataProblem::OffsetsBeyondEnd {
                    start: 28753,
                    end: 99999,
                    len: 53252
                },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("gpbackup_0_20220908150159.gz"),
        "{err}"
    );
}

#[test]
fn metadata_offsets_beyond_the_file_are_a_clear_error() {
    let Some((_tmp, root)) = unpack("2-segment-db") else {
        return;
    };
    let toc = find_file(&root, "gpbackup_20220908150145_toc.yaml");
    let text = std::fs::read_to_string(&toc)
        .unwrap()
        .replace("endbyte: 3559", "endbyte: 9000");
    std::fs::write(&toc, text).unwrap();
    let set = BackupSet::open_roots(&[&root], None).unwrap();
    let e = set.check_files().unwrap_err();
    assert!(
        matches!(
            &e,
            Error::MetadataOffset {
                end: 9000,
                len: 3559,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("predataentries entry #25 (TABLE schematwo.tablefour)"),
        "{e}"
    );
}

#[test]
fn newer_unknown_config_version_is_refused() {
    let Some((_tmp, root)) = unpack("2-segment-db") else {
        return;
    };
    let config = find_file(&root, "gpbackup_20220908150145_config.yaml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "backupversion: 1.24.0+dev.27.gb6a5a8b",
        "backupversion: 7.0.1",
    );
    std::fs::write(&config, text).unwrap();
    let e = BackupSet::open_roots(&[&root], None).unwrap_err();
    assert!(matches!(e, Error::UnsupportedVersion { .. }), "{e}");
    assert!(
        e.to_string().contains("7.0.1") && e.to_string().contains("config.yaml"),
        "{e}"
    );
}

#[test]
fn every_fixture_restores_into_postgres_with_the_right_counts() {
    for (name, ts) in [
        ("1-segment-db", None),
        ("2-segment-db", None),
        ("2-segment-db-single-data-file", None),
        ("1-segment-db-replicated", None),
        ("2-segment-db-incremental", Some("20220909150622")),
        ("corrupt-db", None),
    ] {
        let Some((_tmp, root)) = unpack(name) else {
            return;
        };
        let set = BackupSet::open_roots(&[&root], ts).unwrap();
        set.check_files().unwrap();
        let server = testkit::TestServer::start();
        server.create_db("target");
        let mut client = server.client("target");
        let loaded = load(&set, &mut client, true);
        let in_db = counts(&set, &mut client);
        assert_eq!(loaded, in_db, "{name}");
        for t in set.tables() {
            assert_eq!(in_db[&t.fqn()], t.expected_rows, "{name} {}", t.fqn());
        }
        if name == "corrupt-db" {
            // Every row, including the one stock gprestore rejects for sitting on the wrong segment.
            assert_eq!(in_db.values().sum::<u64>(), 30);
        }
        if name == "1-segment-db-replicated" {
            assert_eq!(in_db["schemaone.test_table"], 100);
        }
    }
}

#[test]
fn to_sql_output_loads_with_psql_into_the_same_tables() {
    for (name, ts, gz) in [
        ("2-segment-db", None, true),
        ("2-segment-db-single-data-file", None, false),
        ("2-segment-db-incremental", Some("20220909150622"), true),
        ("corrupt-db", None, false),
        ("1-segment-db-replicated", None, false),
    ] {
        let Some((_tmp, root)) = unpack(name) else {
            return;
        };
        let set = BackupSet::open_roots(&[&root], ts).unwrap();
        let server = testkit::TestServer::start();
        let out = server
            .scratch()
            .join(if gz { "set.sql.gz" } else { "set.sql" });
        let opts = ToSqlOptions {
            target: Target::Postgres,
            with_globals: true,
            create_db: true,
            ..Default::default()
        };
        let report = write_sql(&set, &out, &opts).unwrap();
        assert_eq!(report.tables.len(), set.tables().len());
        assert!(
            report
                .translation
                .iter()
                .any(|r| r.detail.contains("DISTRIBUTED")),
            "{name}"
        );
        assert!(
            report
                .translation
                .iter()
                .any(|r| r.objecttype == "RESOURCE QUEUE"),
            "{name}"
        );
        // No temp file left behind.
        let leftovers: Vec<_> = std::fs::read_dir(server.scratch())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        let script = if gz {
            let mut s = Vec::new();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap()),
                &mut s,
            )
            .unwrap();
            s
        } else {
            std::fs::read(&out).unwrap()
        };
        let plain = server.scratch().join("plain.sql");
        std::fs::write(&plain, &script).unwrap();
        let output = server
            .command("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-f"])
            .arg(&plain)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: psql failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let db = gpbackup::filter::unquote_ident(&set.config.databasename);
        let mut client = server.client(&db);
        let in_db = counts(&set, &mut client);
        for t in set.tables() {
            assert_eq!(in_db[&t.fqn()], t.expected_rows, "{name} {}", t.fqn());
            let written = report.tables.iter().find(|w| w.name == t.fqn()).unwrap();
            assert_eq!(written.rows, t.expected_rows);
        }
        // Same content as a direct load through the library.
        server.create_db("direct");
        let mut direct = server.client("direct");
        load(&set, &mut direct, false);
        assert_eq!(
            checksums(&set, &mut client),
            checksums(&set, &mut direct),
            "{name}"
        );
    }
}
