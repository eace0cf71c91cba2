//! A command run with a pseudo-terminal as its controlling terminal and stdin, for what only a
//! terminal gets: the password prompt of `-W`, or of a server asking for a password without
//! `-w` (read from `/dev/tty`, as libpq's tools read it).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Runs `cmd` on a new pseudo-terminal. With `password`, its `Password: ` prompt is answered
/// (and must come within 30 seconds); without, a prompt kills the command and fails the test.
/// Returns the command's output and what it wrote to the terminal.
pub fn run_on_tty(cmd: Command, password: Option<&str>) -> (Output, String) {
    let (mut child, master, prompted, echo) = spawn_on_tty(cmd, None);
    let mut master = master;
    match password {
        Some(pw) => {
            prompted
                .recv_timeout(Duration::from_secs(30))
                .expect("a password prompt on the terminal");
            master
                .write_all(format!("{pw}\n").as_bytes())
                .expect("typing the password");
        }
        None => {
            // Either the command ends (the sender goes with the echo thread) or it prompts.
            if prompted.recv_timeout(Duration::from_secs(60)).is_ok() {
                let _ = child.kill();
                panic!("the command prompted for a password");
            }
        }
    }
    let out = child.wait_with_output().expect("waiting for the command");
    drop(master);
    let terminal = echo.join().unwrap_or_default();
    (out, terminal)
}

/// Runs `cmd` on a new pseudo-terminal, typing `password` at every `Password: ` prompt; returns
/// the output, the terminal's text and how many times it prompted.
pub fn run_on_tty_answering(cmd: Command, password: &str) -> (Output, String, usize) {
    let (child, master, _prompted, echo) = spawn_on_tty(cmd, Some(password.to_string()));
    let out = child.wait_with_output().expect("waiting for the command");
    drop(master);
    let terminal = echo.join().unwrap_or_default();
    let prompts = terminal.matches("Password: ").count();
    (out, terminal, prompts)
}

type Spawned = (
    std::process::Child,
    File,
    mpsc::Receiver<()>,
    std::thread::JoinHandle<String>,
);

/// `cmd` started with a new terminal as its controlling terminal and stdin, and a thread that
/// collects what it writes there: it tells the first prompt on the channel, and types `answer`
/// at every prompt when given.
fn spawn_on_tty(mut cmd: Command, answer: Option<String>) -> Spawned {
    let (master, slave) = open_pty();
    let slave_fd = slave.as_raw_fd();
    cmd.stdin(Stdio::from(slave.try_clone().expect("terminal descriptor")))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec: a new session, then the
    // terminal (an inherited descriptor) made its controlling terminal.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawning the command on a terminal");
    drop(slave);
    // The Command keeps its copy of the terminal in `stdin` until dropped.
    drop(cmd);
    let master = File::from(master);
    let mut reader = master.try_clone().expect("terminal descriptor");
    let mut typist = master.try_clone().expect("terminal descriptor");
    let (prompted_tx, prompted) = mpsc::channel();
    let echo = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        let mut answered = 0;
        // EIO once the child has closed the terminal.
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            let prompts = String::from_utf8_lossy(&seen).matches("Password: ").count();
            if prompts > 0 && answered == 0 && answer.is_none() {
                let _ = prompted_tx.send(());
                answered = prompts;
            }
            if let Some(pw) = &answer {
                while answered < prompts {
                    let _ = typist.write_all(format!("{pw}\n").as_bytes());
                    answered += 1;
                }
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    (child, master, prompted, echo)
}

fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; the name and settings pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor just opened; the child gets the terminal, not its master side.
    unsafe { libc::fcntl(master, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: both descriptors were just opened and are owned here alone.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}
