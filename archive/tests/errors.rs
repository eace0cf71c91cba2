//! Damaged input read through every reader gives an error that names the file (and the TOC
//! entry where there is one), never a panic or a silent short read.

use std::io::Read;
use std::path::Path;

use archive::custom::StreamReader;
use archive::toc::{Entries, Extra};
use archive::{Archive, ArchiveError, CustomArchive, DirectoryArchive};
use testkit::{PgInstall, TestServer};

fn server() -> TestServer {
    let s = TestServer::start_with(&PgInstall::system());
    s.create_db("src");
    s.psql(
        "src",
        "CREATE TABLE t (id int, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50000) g;",
    );
    s
}

fn dump(s: &TestServer, args: &[&str], out: &Path) {
    let st = s
        .command("pg_dump")
        .args(["-d", "src"])
        .args(args)
        .arg("-f")
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

/// Reads a stream to its end, returning the error it must end with.
fn read_error(mut r: impl Read) -> std::io::Error {
    let mut sink = vec![0u8; 1 << 16];
    loop {
        match r.read(&mut sink) {
            Ok(0) => panic!("damaged data read as complete"),
            Ok(_) => {}
            Err(e) => return e,
        }
    }
}

#[test]
fn corrupt_and_truncated_data_name_file_and_entry() {
    let s = server();
    let fc = s.scratch().join("a.dump");
    dump(&s, &["-Fc"], &fc);
    let a = CustomArchive::open(&fc).unwrap();
    let e = a.entries.find("TABLE DATA", None, "t").unwrap().clone();
    let Extra::Offset { pos, .. } = e.extra else {
        panic!("offset")
    };
    let original = std::fs::read(&fc).unwrap();

    // Bytes flipped inside the compressed stream (past the block and chunk headers).
    let mut bytes = original.clone();
    for i in 0..8 {
        bytes[pos as usize + 40 + i * 3] ^= 0x5a;
    }
    let bad = s.scratch().join("flipped.dump");
    std::fs::write(&bad, &bytes).unwrap();
    let b = CustomArchive::open(&bad).unwrap();
    let err = read_error(b.table_data(&e).unwrap()).to_string();
    eprintln!("flipped: {err}");
    assert!(
        err.contains("flipped.dump") && err.contains("TABLE DATA t") && err.contains("gzip"),
        "{err}"
    );

    // The same bytes through the sequential reader.
    let mut r = StreamReader::new(&bytes[..], Path::new("flipped.dump")).unwrap();
    let blk = r.next_block().unwrap().unwrap();
    assert_eq!(blk.dump_id, e.dump_id);
    assert!(r.data().unwrap().read_to_end(&mut Vec::new()).is_err());

    // Truncated in the middle of the block: file reader and stream reader.
    let cut = s.scratch().join("cut.dump");
    std::fs::write(&cut, &original[..pos as usize + 5000]).unwrap();
    match CustomArchive::open(&cut) {
        Err(err) => assert!(err.to_string().contains("cut.dump"), "{err}"),
        Ok(c) => {
            let err = read_error(c.table_data(&e).unwrap()).to_string();
            assert!(
                err.contains("cut.dump") && err.contains("TABLE DATA t"),
                "{err}"
            );
        }
    }
    let mut r = StreamReader::new(&original[..pos as usize + 5000], Path::new("-")).unwrap();
    r.next_block().unwrap().unwrap();
    let err = read_error(r.data().unwrap());
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof, "{err}");
    // Skipping a truncated block is an error too, not an end of archive.
    let mut r = StreamReader::new(&original[..pos as usize + 5000], Path::new("-")).unwrap();
    r.next_block().unwrap().unwrap();
    match r.next_block() {
        Err(ArchiveError::Truncated { .. }) => {}
        other => panic!("expected Truncated, got {other:?}"),
    }

    // Cut inside the TOC, and an unknown version, through the stream reader.
    match StreamReader::new(&original[..300], Path::new("-")) {
        Err(ArchiveError::Truncated { what, .. }) => assert!(what.contains("TOC"), "{what}"),
        other => panic!("expected Truncated, got {:?}", other.err()),
    }
    let mut newer = original.clone();
    newer[6] = 17;
    assert!(matches!(
        StreamReader::new(&newer[..], Path::new("-")),
        Err(ArchiveError::UnsupportedVersion { minor: 17, .. })
    ));
    let mut older = original.clone();
    older[6] = 11;
    assert!(matches!(
        CustomArchive::open(&{
            let p = s.scratch().join("old.dump");
            std::fs::write(&p, &older).unwrap();
            p
        }),
        Err(ArchiveError::UnsupportedVersion { minor: 11, .. })
    ));

    // A directory archive whose gzip data file is damaged.
    let fd = s.scratch().join("dir");
    dump(&s, &["-Fd"], &fd);
    let d = DirectoryArchive::open(&fd).unwrap();
    let e = d.entries.find("TABLE DATA", None, "t").unwrap().clone();
    let file = d.data_file(&e).unwrap().unwrap();
    assert!(file.to_string_lossy().ends_with(".dat.gz"));
    let mut gz = std::fs::read(&file).unwrap();
    let mid = gz.len() / 2;
    for i in 0..8 {
        gz[mid + i * 5] ^= 0xa5;
    }
    std::fs::write(&file, gz).unwrap();
    let err = read_error(d.table_data(&e).unwrap()).to_string();
    eprintln!("directory: {err}");
    assert!(
        err.contains(&*file.to_string_lossy()) && err.contains("corrupt gzip data"),
        "{err}"
    );
    // Through the Archive enum as cbrestore opens it.
    let a = Archive::open(&fd).unwrap().unwrap();
    assert!(a
        .table_data(&e)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .is_err());
}
