//! cbclone killed with SIGKILL at points spread over its run, then `--resume`d: the target
//! ends equal to the source, with no row loaded twice.

mod common;

use std::time::{Duration, Instant};

use common::{assert_same, clone_cmd, generated_db, ok};
use testkit::TestServer;

fn resume(server: &TestServer, dst: &str, state: &std::path::Path) {
    let out = clone_cmd(
        server,
        "src",
        dst,
        &["-j", "3", "--resume", "--verify=checksum", "--state-dir"],
    )
    .arg(state)
    .output()
    .unwrap();
    ok(&out, &format!("cbclone --resume into {dst}"));
    assert_same(server, "src", dst);
}

#[test]
fn killed_anywhere_then_resumed_equals_the_source() {
    let server = TestServer::start();
    generated_db(&server, "src");
    // How long a whole run takes here, to spread the kills over it.
    server.create_db("timing");
    let started = Instant::now();
    ok(
        &clone_cmd(&server, "src", "timing", &["-j", "3"])
            .output()
            .unwrap(),
        "cbclone",
    );
    let whole = started.elapsed();
    for (i, fraction) in [0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95].iter().enumerate() {
        let dst = format!("dst{i}");
        server.create_db(&dst);
        let state = server.scratch().join(format!("state{i}"));
        let mut child = clone_cmd(&server, "src", &dst, &["-j", "3", "--state-dir"])
            .arg(&state)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(*fraction));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        eprintln!("{dst}: killed at {fraction} of {whole:?} ({status})");
        resume(&server, &dst, &state);
    }
}

#[test]
fn killed_during_copy_then_resumed_twice_equals_the_source() {
    let server = TestServer::start();
    generated_db(&server, "src");
    server.create_db("dst");
    let state = server.scratch().join("state");
    for _ in 0..2 {
        let mut child = clone_cmd(&server, "src", "dst", &["-j", "2", "--state-dir"])
            .arg(&state)
            .args(if state.exists() {
                &["--resume"][..]
            } else {
                &[][..]
            })
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let caught = server.wait_for_active(
            "datname = 'dst' AND application_name = 'cbclone'",
            "COPY \"public\".\"big\"",
            60,
        );
        assert!(caught, "no COPY into big seen");
        std::thread::sleep(Duration::from_millis(50));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    resume(&server, "dst", &state);
}

#[test]
fn sigterm_during_copy_exits_143_without_temp_files_then_resumes() {
    let server = TestServer::start();
    generated_db(&server, "src");
    server.create_db("dst");
    let state = server.scratch().join("state");
    let tmp = server.scratch().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let child = clone_cmd(&server, "src", "dst", &["-j", "2", "--state-dir"])
        .arg(&state)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        server.wait_for_active(
            "datname = 'dst' AND application_name = 'cbclone'",
            "COPY \"public\".\"big\"",
            60,
        ),
        "no COPY into big seen"
    );
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    resume(&server, "dst", &state);
}
