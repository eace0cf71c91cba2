//! Property tests of the gzip member reader (`archive::inflate::gzip`, behind every directory
//! archive's data files, copyout's and distfix's outputs and gpbackup's data files): random
//! bytes, random headers and mutated files of our own marked members never panic or hang, and
//! whatever reads without error is exactly what was written. Both inflaters run (ISA-L when the
//! build has it, then zlib-rs). `PROPTEST_CASES=N` for longer runs.

use std::io::{Read, Write};

use archive::Compression;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

mod common;
use common::{apply, config, mutation};

/// At most this much output is read from one case: inputs are small, so this bounds memory
/// and time even for a crafted stream that expands well.
const OUTPUT_CAP: u64 = 64 << 20;

/// Reads through the public decoder; Ok with the bytes, or the error's text.
fn decode(file: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let r = Compression::Gzip(6)
        .decoder(file)
        .map_err(|e| e.to_string())?;
    r.take(OUTPUT_CAP)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Our marked file of `chunks`, one member per chunk (flush ends a member).
fn ours(chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Compression::Gzip(1).encoder(Vec::new()).unwrap();
    for c in chunks {
        w.write_all(c).unwrap();
        w.flush().unwrap();
    }
    w.finish().unwrap()
}

fn chunks() -> impl Strategy<Value = Vec<Vec<u8>>> {
    // Text-like bytes compress into real Huffman blocks; a few raw bytes too.
    let text = prop::collection::vec(
        prop::sample::select(b"ab\t\n\\.,0123456789xyz".to_vec()),
        0..3000,
    );
    prop::collection::vec(
        prop_oneof![text, prop::collection::vec(any::<u8>(), 0..300)],
        1..6,
    )
}

/// Mutated files of ours: never a panic, and never wrong data without an error.
fn mutated_files_read_whole_or_fail(runner: &mut TestRunner) {
    let strategy = (chunks(), prop::collection::vec(mutation(), 1..4));
    runner
        .run(&strategy, |(chunks, mutations)| {
            let mut file = ours(&chunks);
            for m in &mutations {
                apply(&mut file, m);
            }
            if let Ok(out) = decode(&file) {
                prop_assert!(
                    out == chunks.concat(),
                    "read {} bytes without error, but not what was written",
                    out.len()
                );
            }
            Ok(())
        })
        .unwrap();
}

/// Random bytes, and random bytes behind a gzip magic with random flags: never a panic.
fn random_input_never_panics(runner: &mut TestRunner) {
    let strategy = (
        any::<bool>(),
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..4096),
    );
    runner
        .run(&strategy, |(magic, flags, mut bytes)| {
            if magic {
                let mut head = vec![0x1f, 0x8b, 8, flags & 0x1f, 0, 0, 0, 0, 0, 3];
                head.append(&mut bytes);
                bytes = head;
            }
            let _ = decode(&bytes);
            Ok(())
        })
        .unwrap();
}

/// One test, so switching the inflater through the environment races with nothing.
#[test]
fn gzip_reader_survives_random_and_mutated_input() {
    let backends: &[Option<&str>] = &[None, Some("zlib-rs")];
    for backend in backends {
        if let Some(b) = backend {
            std::env::set_var("CBTOOLS_INFLATE", b);
        }
        eprintln!("inflater: {}", archive::inflate::backend());
        mutated_files_read_whole_or_fail(&mut TestRunner::new(config(300)));
        random_input_never_panics(&mut TestRunner::new(config(300)));
    }
    std::env::remove_var("CBTOOLS_INFLATE");
}
