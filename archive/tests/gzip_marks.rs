//! The marks our gzip members carry (archive::gzip_members): gzip, zcat and pg_restore read
//! marked files exactly as unmarked ones, while our reader refuses a data file cut at a member
//! boundary, which every other gzip reader takes for a complete (shorter) file.

use std::io::Read;
use std::path::Path;
use std::process::Command;

use archive::directory::DirectoryWriter;
use archive::DirectoryArchive;
use testkit::TestServer;

/// 100,000 rows of about 50 bytes: 5 MiB of COPY text, so several 1 MiB members.
const SCHEMA: &str = "CREATE TABLE public.t (id int, v text);
INSERT INTO public.t SELECT g, md5(g::text) || ' ' || repeat('x', g % 20) FROM generate_series(1, 100000) g;";

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn data_of(a: &DirectoryArchive) -> std::io::Result<Vec<u8>> {
    let e = a.entries.iter().find(|e| e.is("TABLE DATA")).unwrap();
    let mut out = Vec::new();
    a.table_data(e).unwrap().read_to_end(&mut out)?;
    Ok(out)
}

fn data_file(a: &DirectoryArchive) -> std::path::PathBuf {
    let e = a.entries.iter().find(|e| e.is("TABLE DATA")).unwrap();
    a.data_file(e).unwrap().unwrap()
}

/// Offsets where each gzip member of `file` starts (the last is the file's length).
fn member_starts(file: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    let mut rest = file;
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        std::io::copy(&mut d, &mut std::io::sink()).unwrap();
        rest = d.into_inner();
        starts.push(file.len() - rest.len());
    }
    starts
}

fn restore_sql(s: &TestServer, dir: &Path) -> Vec<u8> {
    let mut cmd = s.command("pg_restore");
    cmd.args(["-a", "-f", "-"]).arg(dir);
    let help = run(s.command("pg_restore").arg("--help")).stdout;
    if String::from_utf8_lossy(&help).contains("--restrict-key") {
        cmd.args(["--restrict-key", "cbtoolstest"]);
    }
    run(&mut cmd).stdout
}

#[test]
fn marked_files_read_everywhere_and_cut_ones_fail_only_for_us() {
    let s = TestServer::start();
    s.create_db("src");
    s.psql("src", SCHEMA);
    let theirs = s.scratch().join("theirs.dir");
    run(s
        .command("pg_dump")
        .args(["-d", "src", "-F", "d", "-Z", "6", "-f"])
        .arg(&theirs));
    let src = DirectoryArchive::open(&theirs).unwrap();
    let copy_text = data_of(&src).unwrap();
    assert!(copy_text.len() > 3 << 20, "{}", copy_text.len());

    // Our writer: the same archive with our marked members.
    let ours = s.scratch().join("ours.dir");
    let mut w = DirectoryWriter::create(&ours, src.header.clone(), src.entries.clone()).unwrap();
    for e in src.entries.iter().filter(|e| e.is("TABLE DATA")) {
        w.write_table_data(e.dump_id, &mut src.table_data(e).unwrap())
            .unwrap();
    }
    w.finish().unwrap();
    let a = DirectoryArchive::open(&ours).unwrap();
    let file = data_file(&a);
    let bytes = std::fs::read(&file).unwrap();
    let starts = member_starts(&bytes);
    assert!(starts.len() >= 6, "members at {starts:?}");

    // gzip -t, zcat and pg_restore read the marked file as any other.
    run(Command::new("gzip").arg("-t").arg(&file));
    assert!(run(Command::new("zcat").arg(&file)).stdout == copy_text);
    assert!(data_of(&a).unwrap() == copy_text);
    assert!(restore_sql(&s, &ours) == restore_sql(&s, &theirs));

    // Cut at a member boundary: still a valid gzip file to gzip -t, an error for us.
    let cut = starts[starts.len() / 2];
    std::fs::write(&file, &bytes[..cut]).unwrap();
    run(Command::new("gzip").arg("-t").arg(&file));
    let err = data_of(&a).unwrap_err().to_string();
    assert!(err.contains("truncated: "), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    eprintln!("cut at byte {cut} of {}: {err}", bytes.len());

    // pg_dump's own single-stream files read as before.
    assert!(data_of(&src).unwrap() == copy_text);
}

/// Nothing marks the end of an uncompressed data file but its `\.` line: a file cut at a line
/// end (pg_dump's or ours) is an error for our reader too.
#[test]
fn uncompressed_data_files_cut_at_a_line_end_fail() {
    let s = TestServer::start();
    s.create_db("src");
    s.psql("src", SCHEMA);
    let dir = s.scratch().join("plain.dir");
    run(s
        .command("pg_dump")
        .args(["-d", "src", "-F", "d", "-Z", "0", "-f"])
        .arg(&dir));
    let a = DirectoryArchive::open(&dir).unwrap();
    let file = data_file(&a);
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        bytes.ends_with(b"\n\\.\n\n\n"),
        "pg_dump ends COPY data with \\."
    );
    assert!(data_of(&a).unwrap() == bytes);
    let cut = bytes[..bytes.len() / 2]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    std::fs::write(&file, &bytes[..cut]).unwrap();
    let err = data_of(&a).unwrap_err().to_string();
    assert!(err.contains("truncated: "), "{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
}
