//! Memory stays flat with one very large value: the restore streams it (its peak RSS does not
//! grow with the value), from a custom and a directory archive and from a plain script, for
//! a text value (which the binary COPY converter would otherwise hold whole, see binary.rs's
//! `LONGEST_ROW`) and a bytea one. The bound is generous (the flat figure is 12-26 MiB, the
//! value 96 MiB, its COPY text up to 192 MiB); no timing is measured.

use std::path::PathBuf;
use std::process::Command;

use testkit::TestServer;

const VALUE_MIB: u64 = 96;
const BOUND_MIB: i64 = 64;

/// Runs `cmd` to its end; its peak RSS in KiB (`wait4`'s `ru_maxrss` of this child only).
fn peak_rss_kib(mut cmd: Command) -> i64 {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("starting cbrestore");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills; `pid` is our child, reaped here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let out = child.wait_with_output();
    assert_eq!(rc, pid, "waiting for cbrestore");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "cbrestore failed: {:?}",
        out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
    );
    usage.ru_maxrss
}

fn dumps(server: &TestServer) -> Vec<(&'static str, PathBuf)> {
    let mut files = Vec::new();
    for (format, flag) in [("custom", "c"), ("directory", "d"), ("plain", "p")] {
        let path = server.scratch().join(format!("wide.{format}"));
        let out = server
            .command("pg_dump")
            .args(["-d", "src", "-Z", "0", "-F", flag, "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        files.push((format, path));
    }
    files
}

#[test]
fn one_huge_value_streams() {
    let server = TestServer::start();
    server.create_db("src");
    server.psql(
        "src",
        &format!(
            "CREATE TABLE public.wide_text (id int PRIMARY KEY, v text);
             CREATE TABLE public.wide_bytea (id int PRIMARY KEY, v bytea);
             INSERT INTO public.wide_text SELECT 1, repeat(md5('t'), {VALUE_MIB} * 32768);
             INSERT INTO public.wide_bytea SELECT 1, convert_to(repeat(md5('b'), {VALUE_MIB} * 16384), 'UTF8');
             INSERT INTO public.wide_text SELECT g, md5(g::text) FROM generate_series(2, 1000) g;"
        ),
    );
    let want = server.table_fingerprints("src", &['r']);
    for (format, path) in dumps(&server) {
        let db = format!("into_{format}");
        server.create_db(&db);
        let mut cmd = server.tool(env!("CARGO_BIN_EXE_cbrestore"));
        cmd.args(["-d", &db]).arg(&path);
        let kib = peak_rss_kib(cmd);
        assert!(
            kib < BOUND_MIB * 1024,
            "{format}: peak RSS {} MiB with a {VALUE_MIB} MiB value",
            kib / 1024
        );
        assert_eq!(server.table_fingerprints(&db, &['r']), want, "{format}");
    }
}
