//! Every archive variant real pg_dump 15, 16 and 18 write (formats 1.14, 1.15, 1.16; custom
//! gzip / none / zstd; directory), checked against what the real pg_restore makes of them:
//! data blocks equal `pg_restore -a` output, pipes read front to back, unchanged rewrites are
//! identical, our writers' archives restore to the same SQL and the same rows.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use archive::blobs;
use archive::custom::{rewrite_toc, rewrite_toc_stream, CustomWriter, StreamReader, StreamWriter};
use archive::directory::DirectoryWriter;
use archive::toc::{Entries, Extra, Section};
use archive::{Archive, CustomArchive, DirectoryArchive, TocEntry};
use testkit::{PgInstall, TestServer};

const SCHEMA: &str = r#"
CREATE SCHEMA app;
CREATE TABLE app.customers (id int PRIMARY KEY, name text NOT NULL UNIQUE, note text);
INSERT INTO app.customers SELECT g, 'customer ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE E'tab\there \\ ' || md5(g::text) END
  FROM generate_series(1, 3000) g;
CREATE TABLE app.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer int NOT NULL REFERENCES app.customers (id), amount numeric(10,2) CHECK (amount >= 0), placed date);
INSERT INTO app.orders (customer, amount, placed)
  SELECT 1 + g % 3000, (g % 1000) / 3.0, date '2024-01-01' + g % 365 FROM generate_series(1, 30000) g;
CREATE INDEX orders_customer ON app.orders (customer);
CREATE TABLE app.events (at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO app.events SELECT date '2024-06-01' + g, 'event ' || g FROM generate_series(1, 400) g;
CREATE TABLE app.empty (x int);
CREATE TABLE public."Odd ""name""" (x text);
INSERT INTO public."Odd ""name""" VALUES ('a'), (E'back\\slash'), (NULL), (E'line\nbreak');
CREATE SEQUENCE app.ticket; SELECT setval('app.ticket', 42);
CREATE VIEW app.big_orders AS SELECT * FROM app.orders WHERE amount > 300;
CREATE MATERIALIZED VIEW app.totals AS SELECT customer, sum(amount) AS total FROM app.orders GROUP BY customer;
CREATE UNIQUE INDEX totals_customer ON app.totals (customer);
SELECT lo_from_bytea(0, 'small large object');
SELECT lo_from_bytea(0, decode(string_agg(md5(g::text), ''), 'hex')) FROM generate_series(1, 20000) g;
"#;

/// What each major's pg_dump writes.
fn expected_minor(major: u32) -> u8 {
    match major {
        11 => 13,
        12..=15 => 14,
        16 => 15,
        _ => 16,
    }
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

fn has_restrict_key(s: &TestServer) -> bool {
    String::from_utf8_lossy(&run(s.command("pg_restore").arg("--help"))).contains("--restrict-key")
}

/// `pg_restore -f -` of an archive, with extra arguments.
fn restore_sql(s: &TestServer, archive: &Path, extra: &[&str]) -> Vec<u8> {
    let mut cmd = s.command("pg_restore");
    cmd.args(["-f", "-"]).args(extra).arg(archive);
    if has_restrict_key(s) {
        cmd.args(["--restrict-key", "cbtoolstest"]);
    }
    run(&mut cmd)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

/// The server's large objects, by oid.
fn large_objects(s: &TestServer) -> Vec<(u32, Vec<u8>)> {
    s.client("src")
        .query(
            "SELECT oid::int8, lo_get(oid) FROM pg_largeobject_metadata ORDER BY oid",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, r.get::<_, Vec<u8>>(1)))
        .collect()
}

fn blobs_of(a: &Archive) -> Vec<(u32, Vec<u8>)> {
    let mut all = Vec::new();
    for e in a.entries().by_desc("BLOBS") {
        for b in blobs::read_all(a, e).unwrap() {
            let (oid, r) = b.unwrap();
            all.push((oid, read_all(r)));
        }
    }
    all.sort();
    all
}

/// Every TABLE DATA payload of an archive, keyed by dump id, checked to appear verbatim after
/// its COPY statement in `pg_restore -a` output.
fn check_data_against_pg_restore(s: &TestServer, a: &Archive, path: &Path) -> Vec<(i32, Vec<u8>)> {
    let data_sql = restore_sql(s, path, &["-a"]);
    let mut payloads = Vec::new();
    for e in a.entries().by_desc("TABLE DATA") {
        let payload = read_all(a.table_data(e).unwrap());
        // pg_dump ends the COPY text with the `\.` line and blank lines.
        let trimmed = payload.trim_ascii_end();
        assert!(
            trimmed.ends_with(b"\n\\.") || trimmed == b"\\.",
            "{} ends with the terminator: {:?}",
            e.tag(),
            String::from_utf8_lossy(&payload[payload.len().saturating_sub(20)..])
        );
        let mut expected = e.copy_stmt.clone().unwrap();
        expected.extend_from_slice(&payload);
        assert!(
            find(&data_sql, &expected).is_some(),
            "{}: our data of {} is not what pg_restore -a prints",
            path.display(),
            e.tag()
        );
        payloads.push((e.dump_id, payload));
    }
    assert!(payloads.len() >= 6, "tables with data: {}", payloads.len());
    payloads
}

fn check_toc_model(a: &Archive, major: u32) {
    let entries = a.entries();
    for desc in [
        "SCHEMA",
        "TABLE",
        "TABLE DATA",
        "CONSTRAINT",
        "FK CONSTRAINT",
        "INDEX",
        "SEQUENCE",
        "SEQUENCE SET",
        "VIEW",
        "MATERIALIZED VIEW",
        "MATERIALIZED VIEW DATA",
        "TABLE ATTACH",
        "BLOBS",
    ] {
        assert!(
            entries.by_desc(desc).next().is_some(),
            "pg_dump {major}: no {desc} entry"
        );
    }
    let orders = entries.find("TABLE", Some("app"), "orders").unwrap();
    let data = entries.data_of(orders).unwrap();
    assert_eq!(data.section(), Section::Data);
    assert_eq!(entries.dependencies_of(data), vec![orders]);
    assert!(entries.dependents_of(orders.dump_id).contains(&data));
    let fk = entries.by_desc("FK CONSTRAINT").next().unwrap();
    assert_eq!(fk.section(), Section::PostData);
    assert!(entries.by_section(Section::PreData).any(|e| e.is("TABLE")));
    assert_eq!(
        entries.next_dump_id(),
        entries.iter().map(|e| e.dump_id).max().unwrap() + 1
    );
    if expected_minor(major) >= 16 {
        // 1.16 stores relkind; pg_dump fills it for relations.
        assert_eq!(orders.relkind, b'r' as i64, "relkind of a table");
    }
    // Our TABLE DATA entries are shaped like pg_dump's own.
    for data in entries.by_desc("TABLE DATA") {
        let table = entries
            .dependencies_of(data)
            .into_iter()
            .find(|t| t.is("TABLE") || t.is("MATERIALIZED VIEW"))
            .unwrap();
        let ours = TocEntry::table_data_for(
            table,
            data.dump_id,
            data.copy_stmt.as_deref().unwrap(),
            data.extra.clone(),
        );
        assert_eq!(
            &ours,
            data,
            "pg_dump {major}: TABLE DATA of {}",
            table.tag()
        );
    }
}

struct Variant {
    name: &'static str,
    args: &'static [&'static str],
    min_major: u32,
}

const CUSTOM_VARIANTS: &[Variant] = &[
    Variant {
        name: "gzip",
        args: &["-Fc"],
        min_major: 0,
    },
    Variant {
        name: "none",
        args: &["-Fc", "-Z0"],
        min_major: 0,
    },
    Variant {
        name: "zstd",
        args: &["-Fc", "-Z", "zstd"],
        min_major: 16,
    },
];

/// Runs pg_dump; `false` (with a message) when this build lacks the asked compression.
fn dump_or_skip(s: &TestServer, args: &[&str], out: &Path) -> bool {
    let o = s
        .command("pg_dump")
        .args(["-d", "src"])
        .args(args)
        .arg("-f")
        .arg(out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && err.contains("does not support compression") {
        eprintln!("skipping pg_dump {args:?}: {}", err.trim());
        return false;
    }
    assert!(o.status.success(), "pg_dump {args:?}: {err}");
    true
}

/// Our zstd archives (1.15+), custom and directory, built from `a`'s plain data and read
/// back by our readers (no pg_restore here is built with zstd, so only we can read them).
fn check_our_zstd(a: &Archive, los: &[(u32, Vec<u8>)], payloads: &[(i32, Vec<u8>)], dir: &Path) {
    let mut header = a.header().clone();
    header.compression = archive::toc::HeaderCompression::Algorithm(3);
    header.format = 1;
    let entries: Vec<TocEntry> = a
        .entries()
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.extra = if e.has_data() {
                archive::custom::pending_offset()
            } else {
                Extra::Offset { flag: 3, pos: 0 }
            };
            e
        })
        .collect();
    let path = dir.join("ours-zstd.dump");
    let mut w = CustomWriter::create(&path, header.clone(), entries.clone()).unwrap();
    let mut dw = DirectoryWriter::create(&dir.join("ours-zstd.dir"), header, entries).unwrap();
    for e in a.entries().with_data() {
        if e.is("BLOBS") {
            let list = || {
                blobs::read_all(a, e)
                    .unwrap()
                    .into_iter()
                    .map(|b| b.map_err(std::io::Error::other))
            };
            w.write_blobs(e.dump_id, list()).unwrap();
            dw.write_blobs(e.dump_id, list()).unwrap();
        } else {
            w.write_table_data(e.dump_id, &mut a.table_data(e).unwrap())
                .unwrap();
            dw.write_table_data(e.dump_id, &mut a.table_data(e).unwrap())
                .unwrap();
        }
    }
    w.finish().unwrap();
    dw.finish().unwrap();
    for ours in [path.clone(), dir.join("ours-zstd.dir")] {
        let b = Archive::open(&ours).unwrap().unwrap();
        assert_eq!(b.header().data_codec(), archive::toc::DataCodec::Zstd);
        let mut got: Vec<(i32, Vec<u8>)> = b
            .entries()
            .by_desc("TABLE DATA")
            .map(|e| (e.dump_id, read_all(b.table_data(e).unwrap())))
            .collect();
        got.sort();
        let mut want = payloads.to_vec();
        want.sort();
        assert_eq!(got, want, "{}", ours.display());
        assert_eq!(blobs_of(&b), los, "{}", ours.display());
    }
    let bytes = std::fs::read(&path).unwrap();
    // The data really is zstd: every table block starts with the zstd magic after its
    // header and first chunk length.
    let c = CustomArchive::open(&path).unwrap();
    for e in c.entries.by_desc("TABLE DATA") {
        let Extra::Offset { flag: 2, pos } = e.extra else {
            panic!("offset")
        };
        let at = pos as usize + 1 + 5 + 5;
        assert_eq!(&bytes[at..at + 4], &[0x28, 0xb5, 0x2f, 0xfd], "{}", e.tag());
    }
}

fn check_install(install: &PgInstall) {
    let major = install.major_version();
    let s = TestServer::start_with(install);
    s.create_db("src");
    s.psql("src", SCHEMA);
    let dir = s.scratch().to_path_buf();
    let los = large_objects(&s);
    assert_eq!(los.len(), 2);

    let mut reference_payloads = None;
    for v in CUSTOM_VARIANTS.iter().filter(|v| major >= v.min_major) {
        let fc = dir.join(format!("{}.dump", v.name));
        if !dump_or_skip(&s, v.args, &fc) {
            continue;
        }
        let a = Archive::open(&fc).unwrap().unwrap();
        assert_eq!(a.header().minor, expected_minor(major), "{}", v.name);
        check_toc_model(&a, major);
        let payloads = check_data_against_pg_restore(&s, &a, &fc);
        assert_eq!(blobs_of(&a), los, "{} large objects", v.name);
        match &reference_payloads {
            None => reference_payloads = Some(payloads.clone()),
            Some(r) => assert_eq!(&payloads, r, "{}: same data whatever the codec", v.name),
        }
        let Archive::Custom(custom) = &a else {
            panic!("custom")
        };

        // Unchanged rewrites, file and stream: identical bytes.
        let same = dir.join(format!("{}.same", v.name));
        rewrite_toc(custom, &custom.entries, &same).unwrap();
        assert!(std::fs::read(&same).unwrap() == std::fs::read(&fc).unwrap());
        let mut streamed = Vec::new();
        let n = rewrite_toc_stream(
            std::fs::File::open(&fc).unwrap(),
            &fc,
            &mut streamed,
            |_, _| {},
        )
        .unwrap();
        assert_eq!(n as usize, streamed.len());
        assert!(streamed == std::fs::read(&fc).unwrap(), "stream rewrite");

        // A changed statement (stream rewrite): only that statement differs for pg_restore.
        let changed = dir.join(format!("{}.changed", v.name));
        let mut old_defn = String::new();
        let mut new_defn = String::new();
        let out = std::fs::File::create(&changed).unwrap();
        rewrite_toc_stream(std::fs::File::open(&fc).unwrap(), &fc, out, |_, entries| {
            let e = entries
                .iter_mut()
                .find(|e| e.is("TABLE") && e.tag() == "customers")
                .unwrap();
            old_defn = e.defn().into_owned();
            new_defn = old_defn.replacen(");\n", ")\nWITH (fillfactor = 70);\n", 1);
            e.defn = Some(new_defn.clone().into_bytes());
        })
        .unwrap();
        assert_ne!(old_defn, new_defn);
        run(s.command("pg_restore").arg("-l").arg(&changed));
        let before = String::from_utf8(restore_sql(&s, &fc, &[])).unwrap();
        let after = String::from_utf8(restore_sql(&s, &changed, &[])).unwrap();
        assert_eq!(after, before.replacen(&old_defn, &new_defn, 1));

        // Our writer: the TOC as is, every data block written by us from plain data
        // (compressed per the header), large objects too.
        let rebuilt = dir.join(format!("{}.rebuilt", v.name));
        let entries: Vec<TocEntry> = custom.entries.clone();
        let mut w = CustomWriter::create(&rebuilt, custom.header.clone(), entries).unwrap();
        for e in custom.entries.with_data() {
            if e.is("TABLE DATA") {
                let mut r = custom.table_data(e).unwrap();
                w.write_table_data(e.dump_id, &mut r).unwrap();
            } else if e.is("BLOBS") {
                let list = blobs::read_all(&a, e).unwrap();
                w.write_blobs(
                    e.dump_id,
                    list.into_iter().map(|b| b.map_err(std::io::Error::other)),
                )
                .unwrap();
            } else {
                w.copy_block_from(custom, e).unwrap();
            }
        }
        w.finish().unwrap();
        assert_eq!(
            restore_sql(&s, &rebuilt, &[]),
            restore_sql(&s, &fc, &[]),
            "{}: rebuilt archive restores to the same SQL",
            v.name
        );

        // The stream writer, to a pipe-like Vec: offsets not set, pg_restore reads it from
        // its standard input.
        let mut piped = Vec::new();
        let mut sw =
            StreamWriter::new(&mut piped, custom.header.clone(), &custom.entries, &fc).unwrap();
        for e in custom.entries.with_data() {
            if e.is("TABLE DATA") {
                let mut r = custom.table_data(e).unwrap();
                sw.write_table_data(e.dump_id, &mut r).unwrap();
            } else {
                let list = blobs::read_all(&a, e).unwrap();
                sw.write_blobs(
                    e.dump_id,
                    list.into_iter().map(|b| b.map_err(std::io::Error::other)),
                )
                .unwrap();
            }
        }
        sw.finish().unwrap();
        let mut cmd = s.command("pg_restore");
        cmd.args(["-f", "-"]);
        if has_restrict_key(&s) {
            cmd.args(["--restrict-key", "cbtoolstest"]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &piped));
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.stdout,
            restore_sql(&s, &fc, &[]),
            "{}: streamed archive",
            v.name
        );

        // Restored for real into an empty database: same rows, same large objects.
        if v.name == "gzip" || v.name == "zstd" {
            let db = format!("copy_{}", v.name);
            s.create_db(&db);
            run(s.command("pg_restore").args(["-d", &db]).arg(&rebuilt));
            assert_eq!(
                s.table_fingerprints(&db, &['r', 'm']),
                s.table_fingerprints("src", &['r', 'm'])
            );
            assert_eq!(
                s.large_object_fingerprint(&db),
                s.large_object_fingerprint("src")
            );
        }
    }
    let payloads = reference_payloads.unwrap();
    if expected_minor(major) >= 15 {
        let fc = dir.join("gzip.dump");
        let a = Archive::open(&fc).unwrap().unwrap();
        check_our_zstd(&a, &los, &payloads, &dir);
    }

    // pg_dump writing to a pipe, read as it arrives: every block in order, data and large
    // objects equal to the file's.
    let mut child = s
        .command("pg_dump")
        .args(["-d", "src", "-Fc"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = StreamReader::new(child.stdout.take().unwrap(), Path::new("-")).unwrap();
    assert_eq!(r.header.minor, expected_minor(major));
    let mut seen = Vec::new();
    let mut streamed_los = Vec::new();
    while let Some(b) = r.next_block().unwrap() {
        if b.kind == archive::custom::BLK_DATA {
            seen.push((b.dump_id, read_all(r.data().unwrap())));
        } else {
            while let Some(oid) = r.next_blob().unwrap() {
                streamed_los.push((oid, read_all(r.data().unwrap())));
            }
        }
    }
    assert!(child.wait().unwrap().success());
    let data_ids: Vec<i32> = r.entries.by_desc("TABLE DATA").map(|e| e.dump_id).collect();
    seen.retain(|(id, _)| data_ids.contains(id));
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    let mut want = payloads.clone();
    want.sort();
    assert_eq!(seen_sorted, want, "pipe: table data");
    streamed_los.sort();
    assert_eq!(streamed_los, los, "pipe: large objects");

    // Skipping blocks without reading them still lands on the next one.
    let bytes = run(s.command("pg_dump").args(["-d", "src", "-Fc"]));
    let mut r = StreamReader::new(&bytes[..], Path::new("-")).unwrap();
    let mut n = 0;
    while r.next_block().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, r.entries.with_data().count());
    assert_eq!(r.position(), bytes.len() as u64);
    // The piped archive read through the file reader (offsets not set: blocks walked).
    let piped = dir.join("piped.dump");
    std::fs::write(&piped, &bytes).unwrap();
    let p = Archive::open(&piped).unwrap().unwrap();
    assert!(p
        .entries()
        .with_data()
        .all(|e| matches!(e.extra, Extra::Offset { flag: 1, .. })));
    assert_eq!(check_data_against_pg_restore(&s, &p, &piped), payloads);
    assert_eq!(blobs_of(&p), los);

    // Directory archives, gzip and uncompressed (and zstd from 16 on).
    let mut dir_variants = vec![("dir-gzip", vec!["-Fd"]), ("dir-none", vec!["-Fd", "-Z0"])];
    if major >= 16 {
        dir_variants.push(("dir-zstd", vec!["-Fd", "-Z", "zstd"]));
    }
    for (name, args) in dir_variants {
        let fd = dir.join(name);
        if !dump_or_skip(&s, &args, &fd) {
            continue;
        }
        let d = DirectoryArchive::open(&fd).unwrap();
        assert_eq!(d.header.minor, expected_minor(major));
        let files = d.data_files().unwrap();
        assert_eq!(
            files.len(),
            d.entries.with_data().count(),
            "{name}: data files"
        );
        let toc_before = std::fs::read(fd.join("toc.dat")).unwrap();
        DirectoryArchive::write_toc(&fd, &d.header, &d.entries).unwrap();
        assert_eq!(
            std::fs::read(fd.join("toc.dat")).unwrap(),
            toc_before,
            "{name}: toc.dat"
        );
        let a = Archive::Directory(d.clone());
        check_toc_model(&a, major);
        assert_eq!(
            check_data_against_pg_restore(&s, &a, &fd),
            payloads,
            "{name}"
        );
        assert_eq!(blobs_of(&a), los, "{name}: large objects");

        // Our directory writer, from the archive's plain data: pg_restore gives the same SQL.
        let ours = dir.join(format!("{name}-ours"));
        let mut w = DirectoryWriter::create(&ours, d.header.clone(), d.entries.clone()).unwrap();
        for e in d.entries.with_data() {
            if e.is("BLOBS") {
                let list = blobs::read_all(&a, e).unwrap();
                w.write_blobs(
                    e.dump_id,
                    list.into_iter().map(|b| b.map_err(std::io::Error::other)),
                )
                .unwrap();
            } else {
                let mut r = d.table_data(e).unwrap();
                w.write_table_data(e.dump_id, &mut r).unwrap();
            }
        }
        w.finish().unwrap();
        assert_eq!(
            std::fs::read(ours.join("toc.dat")).unwrap(),
            toc_before,
            "{name}: our toc.dat names the same files"
        );
        assert_eq!(
            restore_sql(&s, &ours, &[]),
            restore_sql(&s, &fd, &[]),
            "{name}"
        );
    }
}

#[test]
fn postgresql_15() {
    check_install(&PgInstall::system());
}

#[test]
fn postgresql_16() {
    match PgInstall::major(16) {
        Some(i) => check_install(&i),
        None => eprintln!("skipping PostgreSQL 16: not available"),
    }
}

#[test]
fn postgresql_18() {
    match PgInstall::major(18) {
        Some(i) => check_install(&i),
        None => eprintln!("skipping PostgreSQL 18: not available"),
    }
}
