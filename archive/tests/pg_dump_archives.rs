//! Archives written by real pg_dump (15 from Debian; 16 and 18 from PyPI wheels when available):
//! read, rewritten unchanged (identical bytes), rewritten with a changed statement (pg_restore
//! accepts it and only that statement differs), rebuilt by our writer, and broken on purpose.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use archive::custom::{pending_offset, rewrite_toc, CustomWriter};
use archive::toc::Extra;
use archive::{Archive, ArchiveError, CustomArchive, DirectoryArchive};
use testkit::{PgInstall, TestServer};

const SCHEMA: &str = r#"
CREATE TABLE public.t (id int PRIMARY KEY, v text, n numeric);
INSERT INTO public.t SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE E'row\t' || g END, g / 7.0 FROM generate_series(1, 20000) g;
CREATE TABLE public."Odd ""name""" (x text);
INSERT INTO public."Odd ""name""" VALUES ('a'), (E'back\\slash'), (NULL);
CREATE SEQUENCE public.s; SELECT setval('public.s', 42);
CREATE VIEW public.v AS SELECT id FROM public.t WHERE id < 10;
CREATE INDEX t_v ON public.t (v);
SELECT lo_from_bytea(0, 'large object bytes');
"#;

fn server(install: &PgInstall) -> TestServer {
    let s = TestServer::start_with(install);
    s.create_db("src");
    s.psql("src", SCHEMA);
    s
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn pg_dump(s: &TestServer, format: &str, out: &Path) {
    run(s
        .command("pg_dump")
        .args(["-d", "src", "-F", format, "-f"])
        .arg(out));
}

fn restore_sql(s: &TestServer, archive: &Path) -> Vec<u8> {
    // --restrict-key keeps the output comparable between runs (pg_dump ≥ 15.14 adds \restrict).
    let mut cmd = s.command("pg_restore");
    cmd.args(["-f", "-"]).arg(archive);
    let help = run(s.command("pg_restore").arg("--help"));
    if String::from_utf8_lossy(&help).contains("--restrict-key") {
        cmd.args(["--restrict-key", "cbtoolstest"]);
    }
    run(&mut cmd)
}

fn reference_copy(s: &TestServer, sql: &str) -> Vec<u8> {
    let mut c = s.client("src");
    let mut out = Vec::new();
    c.copy_out(sql).unwrap().read_to_end(&mut out).unwrap();
    out
}

fn table_entry<'a>(a: &'a Archive, desc: &str, tag: &str) -> &'a archive::TocEntry {
    a.entries()
        .iter()
        .find(|e| e.desc() == desc && e.tag() == tag)
        .unwrap_or_else(|| panic!("no {desc} {tag}"))
}

fn check_install(install: &PgInstall) {
    let s = server(install);
    let dir = s.scratch().to_path_buf();
    let fc = dir.join("a.dump");
    pg_dump(&s, "c", &fc);

    // Read, and data equal to the server's COPY output followed by the `\.` terminator.
    let a = Archive::open(&fc).unwrap().unwrap();
    let data_entry = table_entry(&a, "TABLE DATA", "t");
    let mut data = Vec::new();
    a.table_data(data_entry)
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    let want = reference_copy(&s, "COPY (SELECT * FROM public.t ORDER BY id) TO STDOUT");
    assert!(
        data.starts_with(&want) && data[want.len()..].starts_with(b"\\."),
        "table data"
    );

    // Unchanged rewrite: identical bytes.
    let Archive::Custom(custom) = &a else {
        panic!("custom")
    };
    let same = dir.join("same.dump");
    rewrite_toc(custom, &custom.entries, &same).unwrap();
    assert!(
        std::fs::read(&same).unwrap() == std::fs::read(&fc).unwrap(),
        "byte-identical rewrite"
    );

    // A changed statement: pg_restore accepts it and only that statement differs.
    let mut entries = custom.entries.clone();
    let i = entries
        .iter()
        .position(|e| e.desc() == "TABLE" && e.tag() == "t")
        .unwrap();
    let defn = entries[i].defn().into_owned();
    let changed_defn = defn.replacen(");\n", ")\nWITH (fillfactor = 90);\n", 1);
    assert_ne!(defn, changed_defn);
    entries[i].defn = Some(changed_defn.clone().into_bytes());
    let changed = dir.join("changed.dump");
    rewrite_toc(custom, &entries, &changed).unwrap();
    run(s.command("pg_restore").arg("-l").arg(&changed));
    let before = String::from_utf8(restore_sql(&s, &fc)).unwrap();
    let after = String::from_utf8(restore_sql(&s, &changed)).unwrap();
    assert_eq!(after, before.replacen(&defn, &changed_defn, 1));
    assert_ne!(after, before);

    // Our writer: same TOC, blocks copied or re-encoded, restores to the same SQL.
    let rebuilt = dir.join("rebuilt.dump");
    let entries: Vec<_> = custom
        .entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            if matches!(e.extra, Extra::Offset { flag: 2, .. }) {
                e.extra = pending_offset();
            }
            e
        })
        .collect();
    let mut w = CustomWriter::create(&rebuilt, custom.header.clone(), entries).unwrap();
    for e in &custom.entries {
        if !matches!(e.extra, Extra::Offset { flag: 2, .. }) {
            continue;
        }
        if e.desc() == "TABLE DATA" {
            // Decode and re-encode: exercises write_block with our own compressor.
            let mut raw = Vec::new();
            custom.table_data(e).unwrap().read_to_end(&mut raw).unwrap();
            let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(1));
            std::io::Write::write_all(&mut enc, &raw).unwrap();
            let z = enc.finish().unwrap();
            w.write_block(e.dump_id, archive::custom::BLK_DATA, &mut &z[..])
                .unwrap();
        } else {
            w.copy_block_from(custom, e).unwrap();
        }
    }
    w.finish().unwrap();
    assert_eq!(restore_sql(&s, &rebuilt), restore_sql(&s, &fc));

    // Written to a pipe: no offsets; blocks are found by walking them.
    let piped = dir.join("piped.dump");
    let bytes = run(s.command("pg_dump").args(["-d", "src", "-Fc"]));
    std::fs::write(&piped, bytes).unwrap();
    let p = Archive::open(&piped).unwrap().unwrap();
    let mut data2 = Vec::new();
    p.table_data(table_entry(&p, "TABLE DATA", "t"))
        .unwrap()
        .read_to_end(&mut data2)
        .unwrap();
    assert_eq!(data2, data);

    // Directory archives.
    let fd = dir.join("dir");
    pg_dump(&s, "d", &fd);
    let d = DirectoryArchive::open(&fd).unwrap();
    let toc_before = std::fs::read(fd.join("toc.dat")).unwrap();
    DirectoryArchive::write_toc(&fd, &d.header, &d.entries).unwrap();
    assert_eq!(std::fs::read(fd.join("toc.dat")).unwrap(), toc_before);
    let a = Archive::Directory(d);
    let mut data3 = Vec::new();
    a.table_data(table_entry(&a, "TABLE DATA", "t"))
        .unwrap()
        .read_to_end(&mut data3)
        .unwrap();
    assert_eq!(data3, data);
}

#[test]
fn postgresql_15_archives() {
    check_install(&PgInstall::system());
}

#[test]
fn postgresql_16_and_18_archives() {
    for major in [16, 18] {
        match PgInstall::major(major) {
            Some(i) => check_install(&i),
            None => eprintln!("skipping PostgreSQL {major}: not available"),
        }
    }
}

fn corrupt(original: &Path, name: &str, f: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(original).unwrap();
    f(&mut bytes);
    let p = original.with_file_name(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bad_archives_are_clear_errors() {
    let s = server(&PgInstall::system());
    let fc = s.scratch().join("a.dump");
    pg_dump(&s, "c", &fc);
    let len = std::fs::metadata(&fc).unwrap().len() as usize;

    let p = corrupt(&fc, "newer.dump", |b| b[6] = 17);
    match CustomArchive::open(&p) {
        Err(ArchiveError::UnsupportedVersion { minor: 17, .. }) => {}
        other => panic!("expected UnsupportedVersion, got {other:?}"),
    }
    let p = corrupt(&fc, "short.dump", |b| b.truncate(200));
    let err = CustomArchive::open(&p).unwrap_err().to_string();
    assert!(
        err.contains("short.dump") && err.contains("truncated"),
        "{err}"
    );
    let p = corrupt(&fc, "nomagic.dump", |b| b[0] = b'X');
    assert!(matches!(
        CustomArchive::open(&p),
        Err(ArchiveError::NotAnArchive { .. })
    ));

    // Cut inside the data block of table t: the TOC still reads, that table's data fails
    // clearly (truncated zlib stream) and names the file.
    let a = CustomArchive::open(&fc).unwrap();
    let t = a
        .entries
        .iter()
        .find(|e| e.desc() == "TABLE DATA" && e.tag() == "t")
        .unwrap();
    let Extra::Offset { pos, .. } = t.extra else {
        panic!("offset")
    };
    let p = corrupt(&fc, "cut.dump", |b| b.truncate(pos as usize + 300));
    match CustomArchive::open(&p) {
        Err(e) => assert!(e.to_string().contains("cut.dump"), "{e}"),
        Ok(cut) => {
            let e = cut
                .entries
                .iter()
                .find(|e| e.desc() == "TABLE DATA" && e.tag() == "t")
                .unwrap();
            let mut sink = Vec::new();
            let r = cut.table_data(e).map(|mut r| r.read_to_end(&mut sink));
            match r {
                Err(err) => assert!(err.to_string().contains("cut.dump"), "{err}"),
                Ok(Err(io)) => assert!(
                    io.kind() == std::io::ErrorKind::UnexpectedEof
                        || io.to_string().contains("cut.dump"),
                    "{io}"
                ),
                Ok(Ok(_)) => panic!("a cut block must not read as complete"),
            }
        }
    }
    let _ = len;

    // An offset beyond the file.
    let a = CustomArchive::open(&fc).unwrap();
    let mut entries = a.entries.clone();
    let i = entries
        .iter()
        .position(|e| e.desc() == "TABLE DATA")
        .unwrap();
    entries[i].extra = Extra::Offset {
        flag: 2,
        pos: 10_000_000,
    };
    let bad = s.scratch().join("offset.dump");
    // Build it by hand: header + TOC with the bad offset, then the original data region.
    let mut w = archive::primitives::PrimWriter::new(Vec::new(), 4, 8);
    a.header.write(&mut w).unwrap();
    archive::toc::write_entries(&mut w, &a.header, &entries, &bad).unwrap();
    let mut bytes = w.inner;
    bytes.extend_from_slice(&std::fs::read(&fc).unwrap()[a.toc_end as usize..]);
    std::fs::write(&bad, bytes).unwrap();
    let err = CustomArchive::open(&bad).unwrap_err().to_string();
    assert!(
        err.contains("offset.dump") && err.contains("TABLE DATA") && err.contains("outside"),
        "{err}"
    );

    // Directory archive with a missing data file.
    let fd = s.scratch().join("dir");
    pg_dump(&s, "d", &fd);
    let d = DirectoryArchive::open(&fd).unwrap();
    let e = d
        .entries
        .iter()
        .find(|e| e.desc() == "TABLE DATA" && e.tag() == "t")
        .unwrap()
        .clone();
    let file = d.data_file(&e).unwrap().unwrap();
    std::fs::remove_file(&file).unwrap();
    let err = d.table_data(&e).err().unwrap().to_string();
    assert!(
        err.contains("missing") && err.contains("TABLE DATA t"),
        "{err}"
    );
}

/// Deterministic mangling (truncations and byte flips all over a real archive): opening and
/// reading every entry's data gives results or errors, never a panic or a runaway allocation.
#[test]
fn mangled_archives_never_panic() {
    let s = server(&PgInstall::system());
    let fc = s.scratch().join("a.dump");
    pg_dump(&s, "c", &fc);
    let original = std::fs::read(&fc).unwrap();
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let target = s.scratch().join("m.dump");
    for round in 0..400 {
        let mut b = original.clone();
        if round % 3 == 0 {
            b.truncate((next() % original.len() as u64) as usize);
        } else {
            // Most flips land in header and TOC, where parsing decisions are made.
            let region = if round % 2 == 0 {
                2048.min(b.len())
            } else {
                b.len()
            };
            for _ in 0..1 + next() % 4 {
                let i = (next() % region as u64) as usize;
                b[i] ^= 1 << (next() % 8);
            }
        }
        std::fs::write(&target, &b).unwrap();
        if let Ok(a) = CustomArchive::open(&target) {
            for e in &a.entries {
                if e.desc() == "TABLE DATA" {
                    if let Ok(mut r) = a.table_data(e) {
                        let _ = std::io::copy(&mut r, &mut std::io::sink());
                    }
                }
            }
        }
    }
}
