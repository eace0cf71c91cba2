//! A 240 MB archive: the TOC rewrite copies its data region exactly, reading and rewriting it
//! keeps memory flat, and stock pg_restore reads what we wrote. The rewrite's speed is printed,
//! not asserted: CI is not a benchmark (`bench` measures it).
//! (One test in this binary, so the process's peak memory is this test's.)

use std::io::{self, Read};
use std::path::Path;
use std::time::Instant;

use archive::custom::{pending_offset, rewrite_toc, rewrite_toc_stream, CustomWriter};
use archive::toc::{Entries, Extra, Header, TocEntry, SECTION_DATA, SECTION_PRE_DATA};
use archive::{Compression, CustomArchive};
use testkit::PgInstall;

const MB: u64 = 1 << 20;
const SIZE: u64 = 240 * MB;

/// COPY text of `total` bytes: numbered lines from a repeating pattern, then `\.`.
struct Rows {
    left: u64,
    line: u64,
    pending: Vec<u8>,
}

impl Read for Rows {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            if self.left == 0 {
                return Ok(0);
            }
            self.line += 1;
            let mut l =
                format!("{}\tsome text for row {} ", self.line, self.line % 977).into_bytes();
            l.resize(l.len() + (self.line % 200) as usize, b'x');
            l.push(b'\n');
            if self.left <= l.len() as u64 + 3 {
                l = b"\\.\n".to_vec();
                self.left = 0;
            } else {
                self.left -= l.len() as u64;
            }
            self.pending = l;
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

fn entry(
    id: i32,
    desc: &str,
    section: i32,
    defn: Option<&str>,
    copy: Option<&str>,
    extra: Extra,
) -> TocEntry {
    let s = |v: &str| Some(v.as_bytes().to_vec());
    TocEntry {
        dump_id: id,
        had_dumper: i64::from(copy.is_some()),
        table_oid: s(if copy.is_some() { "0" } else { "1259" }),
        oid: s("16400"),
        tag: s("big"),
        desc: s(desc),
        section: section as i64,
        defn: defn.and_then(s),
        drop_stmt: defn.and(s("DROP TABLE public.big;\n")),
        copy_stmt: copy.and_then(s),
        namespace: s("public"),
        tablespace: s(""),
        tableam: if copy.is_some() { None } else { s("heap") },
        relkind: 0,
        owner: s("postgres"),
        with_oids: s("false"),
        deps: if copy.is_some() {
            vec![b"1".to_vec()]
        } else {
            vec![]
        },
        extra,
    }
}

fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

/// Compares two streams chunk by chunk without holding either.
fn same_stream(mut a: impl Read, mut b: impl Read) -> u64 {
    let mut x = vec![0u8; 1 << 16];
    let mut y = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            assert_eq!(b.read(&mut y[..1]).unwrap(), 0, "second stream is longer");
            return total;
        }
        b.read_exact(&mut y[..n]).unwrap();
        assert!(x[..n] == y[..n], "streams differ near byte {total}");
        total += n as u64;
    }
}

fn pg_restore(args: &[&str], path: &Path) -> Vec<u8> {
    let out = std::process::Command::new(PgInstall::system().bin("pg_restore"))
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn big_archive_rewrites_exactly_with_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.dump");
    let header = Header::new(
        14,
        1,
        Compression::None,
        [0, 0, 12, 1, 0, 125, 0],
        "big",
        "15.0",
        "15.0",
    )
    .unwrap();
    let entries = vec![
        entry(
            1,
            "TABLE",
            SECTION_PRE_DATA,
            Some("CREATE TABLE public.big (\n    id integer,\n    t text\n);\n"),
            None,
            Extra::Offset { flag: 3, pos: 0 },
        ),
        entry(
            2,
            "TABLE DATA",
            SECTION_DATA,
            None,
            Some("COPY public.big (id, t) FROM stdin;\n"),
            pending_offset(),
        ),
    ];
    let mut w = CustomWriter::create(&path, header, entries).unwrap();
    let rows = || Rows {
        left: SIZE,
        line: 0,
        pending: Vec::new(),
    };
    w.write_table_data(2, &mut rows()).unwrap();
    w.finish().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > SIZE, "{len}");

    // Stock pg_restore lists it and reads the whole data block.
    let list = String::from_utf8(pg_restore(&["-l"], &path)).unwrap();
    assert!(list.contains("TABLE DATA public big postgres"), "{list}");
    let sql = pg_restore(&["-s", "-f", "-"], &path);
    assert!(String::from_utf8_lossy(&sql).contains("CREATE TABLE public.big"));
    let status = std::process::Command::new(PgInstall::system().bin("pg_restore"))
        .args(["-a", "-f", "/dev/null"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());

    let a = CustomArchive::open(&path).unwrap();
    let data = a.entries.by_desc("TABLE DATA").next().unwrap().clone();
    assert!(same_stream(a.table_data(&data).unwrap(), rows()) > SIZE - 4096);

    // A longer defn: the TOC grows, the data region moves, copied by the kernel.
    let mut changed = a.entries.clone();
    let t = changed.iter_mut().find(|e| e.is("TABLE")).unwrap();
    let old_len = t.defn.as_ref().unwrap().len() as u64;
    t.defn = Some(
        b"CREATE TABLE public.big (\n    id integer,\n    t text\n)\nDISTRIBUTED BY (id);\n"
            .to_vec(),
    );
    let grown = t.defn.as_ref().unwrap().len() as u64 - old_len;
    let out = dir.path().join("rewritten.dump");
    let started = Instant::now();
    rewrite_toc(&a, &changed, &out).unwrap();
    let took = started.elapsed().as_secs_f64();
    let per_100mb = took / (len as f64 / (100 * MB) as f64);
    eprintln!("rewrite_toc: {len} bytes in {took:.3}s ({per_100mb:.3}s per 100 MB)");

    let b = CustomArchive::open(&out).unwrap();
    assert_eq!(b.toc_end, a.toc_end + grown);
    let Extra::Offset { pos: old, .. } = data.extra else {
        panic!()
    };
    let moved = b.entries.by_id(2).unwrap();
    assert_eq!(
        moved.extra,
        Extra::Offset {
            flag: 2,
            pos: old + grown
        }
    );
    assert!(same_stream(b.table_data(moved).unwrap(), rows()) > SIZE - 4096);
    assert!(
        String::from_utf8_lossy(&pg_restore(&["-s", "-f", "-"], &out))
            .contains("DISTRIBUTED BY (id)")
    );

    // The same through the stream rewrite (a user-space copy, for pipes).
    let started = Instant::now();
    let piped = dir.path().join("piped.dump");
    rewrite_toc_stream(
        std::fs::File::open(&path).unwrap(),
        &path,
        std::fs::File::create(&piped).unwrap(),
        |_, e| *e = changed.clone(),
    )
    .unwrap();
    eprintln!(
        "rewrite_toc_stream: {:.3}s",
        started.elapsed().as_secs_f64()
    );
    same_stream(
        std::fs::File::open(&out).unwrap(),
        std::fs::File::open(&piped).unwrap(),
    );

    let peak = peak_rss_mb();
    eprintln!("peak resident memory: {peak} MB");
    assert!(peak < 80, "peak memory {peak} MB for a {len}-byte archive");
}
