//! Property tests of the TOC readers: real pg_dump archives of a small database (custom, read
//! by offset and as a stream; directory, its toc.dat and data files), mutated by flips, sets,
//! cuts, deletions, insertions and duplicated ranges. Opening and reading every entry's data
//! gives results or errors, never a panic, a hang or a runaway allocation (inputs are a few
//! KB; every read is capped). `PROPTEST_CASES=N` for longer runs.

use std::io::Read;
use std::path::Path;

use archive::custom::StreamReader;
use archive::{Archive, CustomArchive, DirectoryArchive};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use testkit::TestServer;

mod common;
use common::{apply, config, mutation};

const SCHEMA: &str = r#"
CREATE TABLE public.t (id int PRIMARY KEY, v text, n numeric);
INSERT INTO public.t SELECT g, 'row ' || g, g / 7.0 FROM generate_series(1, 300) g;
CREATE TABLE public."Odd ""name""" (x text);
INSERT INTO public."Odd ""name""" VALUES ('a'), (E'back\\slash'), (NULL);
CREATE VIEW public.v AS SELECT id FROM public.t WHERE id < 10;
CREATE INDEX t_v ON public.t (v);
SELECT lo_from_bytea(0, 'large object bytes');
"#;

/// Caps every data read: a mutated length field must not make a test read forever.
const READ_CAP: u64 = 16 << 20;

fn drain(r: impl Read) {
    let _ = std::io::copy(&mut r.take(READ_CAP), &mut std::io::sink());
}

/// Every entry's data and large objects, of whichever kind of archive.
fn read_everything(a: &Archive) {
    for e in a.entries() {
        if e.is("BLOBS") {
            if let Ok(blobs) = archive::blobs::read_all(a, e) {
                for (_, r) in blobs.into_iter().flatten() {
                    drain(r);
                }
            }
        } else if e.is("TABLE DATA") {
            if let Ok(r) = a.table_data(e) {
                drain(r);
            }
        }
        let _ = a.stored_size(e);
    }
}

/// The custom archive as a stream (what `cbrestore -` and pipes read): every block, capped.
fn stream_everything(bytes: &[u8]) {
    let Ok(mut s) = StreamReader::new(bytes, Path::new("-")) else {
        return;
    };
    let _ = s.toc();
    // A block per TOC entry at most, plus a few: a mutated stream cannot loop us.
    for _ in 0..s.entries.len() + 4 {
        match s.next_block() {
            Ok(Some(b)) if b.kind == 3 => {
                for _ in 0..8 {
                    match s.next_blob() {
                        Ok(Some(_)) => {
                            if let Ok(d) = s.data() {
                                drain(d);
                            }
                        }
                        _ => break,
                    }
                }
            }
            Ok(Some(_)) => {
                if let Ok(d) = s.data() {
                    drain(d);
                }
            }
            _ => break,
        }
    }
}

fn pg_dump(s: &TestServer, args: &[&str], out: &Path) {
    let status = s
        .command("pg_dump")
        .args(["-d", "src"])
        .args(args)
        .arg("-f")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn toc_readers_survive_mutated_archives() {
    let s = TestServer::start();
    s.create_db("src");
    s.psql("src", SCHEMA);
    let scratch = s.scratch().to_path_buf();

    // Custom archives, gzip and uncompressed: opened from a file and read as a stream.
    for z in ["6", "0"] {
        let fc = scratch.join(format!("a{z}.dump"));
        pg_dump(&s, &["-F", "c", "-Z", z], &fc);
        let original = std::fs::read(&fc).unwrap();
        // The unchanged archive reads in full.
        let a = Archive::Custom(CustomArchive::open(&fc).unwrap());
        read_everything(&a);
        let target = scratch.join(format!("m{z}.dump"));
        let mut runner = TestRunner::new(config(100));
        runner
            .run(&prop::collection::vec(mutation(), 1..4), |mutations| {
                let mut b = original.clone();
                for m in &mutations {
                    apply(&mut b, m);
                }
                std::fs::write(&target, &b).unwrap();
                if let Ok(a) = CustomArchive::open(&target) {
                    let _ = a.scan_blocks();
                    read_everything(&Archive::Custom(a));
                }
                stream_everything(&b);
                Ok(())
            })
            .unwrap();
    }

    // A directory archive: toc.dat and the data files mutated.
    let fd = scratch.join("a.dir");
    pg_dump(&s, &["-F", "d", "-Z", "6"], &fd);
    let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&fd)
        .unwrap()
        .map(|f| {
            let f = f.unwrap();
            (
                f.file_name().to_string_lossy().into_owned(),
                std::fs::read(f.path()).unwrap(),
            )
        })
        .collect();
    read_everything(&Archive::Directory(DirectoryArchive::open(&fd).unwrap()));
    let target = scratch.join("m.dir");
    let mut runner = TestRunner::new(config(100));
    let strategy = (
        any::<prop::sample::Index>(),
        prop::collection::vec(mutation(), 1..4),
    );
    runner
        .run(&strategy, |(which, mutations)| {
            let _ = std::fs::remove_dir_all(&target);
            std::fs::create_dir(&target).unwrap();
            let victim = which.index(files.len());
            for (i, (name, bytes)) in files.iter().enumerate() {
                let mut b = bytes.clone();
                if i == victim {
                    for m in &mutations {
                        apply(&mut b, m);
                    }
                }
                std::fs::write(target.join(name), &b).unwrap();
            }
            if let Ok(Some(a)) = Archive::open(&target) {
                read_everything(&a);
            }
            Ok(())
        })
        .unwrap();
}
