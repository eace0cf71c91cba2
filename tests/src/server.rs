//! One throwaway PostgreSQL server.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::PgInstall;

/// A running server in its own temporary directory; stopped and removed on drop.
pub struct TestServer {
    install: PgInstall,
    // Dropped last (fields drop in order), after `Drop::drop` has stopped the server.
    port: u16,
    data: PathBuf,
    socket: PathBuf,
    scratch: PathBuf,
    log: PathBuf,
    _root: tempfile::TempDir,
}

const OS_USER: &str = "postgres";

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

impl TestServer {
    /// A PostgreSQL 15 server (the system's).
    pub fn start() -> TestServer {
        TestServer::start_with(&PgInstall::system())
    }

    /// A server of the given installation (16 and 18 come from [`PgInstall::major`]).
    pub fn start_with(install: &PgInstall) -> TestServer {
        let root = tempfile::Builder::new()
            .prefix("cbtools-pg-")
            .tempdir()
            .expect("creating a temporary directory");
        let base = root.path().to_path_buf();
        set_mode(&base, 0o755);
        let data = base.join("data");
        let socket = base.join("sock");
        let logs = base.join("log");
        let scratch = base.join("scratch");
        for dir in [&data, &socket, &logs, &scratch] {
            std::fs::create_dir(dir).expect("creating server directories");
        }
        set_mode(&data, 0o700);
        // Server-side COPY TO/FROM files land here in some tests: both users may write.
        set_mode(&scratch, 0o777);
        if running_as_root() {
            let (uid, gid) = postgres_ids();
            for dir in [&data, &socket, &logs] {
                std::os::unix::fs::chown(dir, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let log = logs.join("server.log");

        let out = as_server_user(install.bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .expect("running initdb");
        check(&out, "initdb");

        let conf = format!(
            "\n# cbtools test harness\n\
             unix_socket_directories = '{}'\n\
             listen_addresses = '127.0.0.1'\n\
             fsync = off\nfull_page_writes = off\nsynchronous_commit = off\n\
             shared_buffers = 32MB\nmax_connections = 60\n\
             wal_level = minimal\nmax_wal_senders = 0\n\
             logging_collector = off\nlog_min_messages = warning\n",
            socket.display()
        );
        append(&data.join("postgresql.conf"), &conf);

        // A port picked from the OS can be taken by a parallel test before our server binds it:
        // try a few times with fresh ports.
        let mut last_error = String::new();
        for _ in 0..8 {
            let port = free_port();
            let out = as_server_user(install.bin("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o"])
                .arg(format!("-p {port}"))
                .arg("start")
                .output()
                .expect("running pg_ctl start");
            if out.status.success() {
                return TestServer {
                    install: install.clone(),
                    port,
                    data,
                    socket,
                    scratch,
                    log,
                    _root: root,
                };
            }
            last_error = std::fs::read_to_string(&log).unwrap_or_default();
            if !last_error.contains("could not bind") && !last_error.contains("already in use") {
                break;
            }
        }
        panic!("the test server did not start:\n{last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the unix socket (a libpq `host` starting with `/`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// A directory for the test's own files, writable by the test and by the server.
    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The server's log (statements appear here after `set_conf("log_statement", "all")`).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn install(&self) -> &PgInstall {
        &self.install
    }

    /// A libpq keyword/value string for the superuser over the unix socket.
    pub fn conn_string(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={}",
            self.socket.display(),
            self.port,
            db
        )
    }

    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.conn_string(db), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to the test server ({db}): {e}"))
    }

    pub fn create_db(&self, name: &str) {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        self.client("postgres")
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {quoted}: {e}"));
    }

    /// Runs SQL through the real psql (`-X -q -At -v ON_ERROR_STOP=1`), returning its stdout:
    /// unaligned tuples, one row a line, `|` between columns.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command("psql")
            .args([
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-f",
                "-",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running psql");
        child
            .stdin
            .take()
            .expect("psql stdin")
            .write_all(sql.as_bytes())
            .expect("writing to psql");
        let out = child.wait_with_output().expect("waiting for psql");
        check(&out, "psql");
        String::from_utf8(out.stdout).expect("psql output is UTF-8")
    }

    /// A command for one of this installation's programs with PGHOST, PGPORT and PGUSER pointing
    /// at this server, and the caller's other PG* variables removed so they cannot leak in.
    pub fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(self.install.bin(tool));
        self.apply_env(&mut cmd);
        cmd
    }

    /// Points any command (our own binaries too) at this server through the PG* variables.
    pub fn apply_env(&self, cmd: &mut Command) {
        for (key, _) in std::env::vars() {
            if key.starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.env("PGHOST", &self.socket)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", "postgres")
            .env("PGCONNECT_TIMEOUT", "10");
    }

    /// One of our own binaries (`cbrestore`, ...) pointed at this server, run in its scratch
    /// directory.
    pub fn tool(&self, exe: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(exe);
        self.apply_env(&mut cmd);
        cmd.current_dir(&self.scratch);
        // State directories (cbrestore --resume) inside the scratch directory, not the home.
        cmd.env("XDG_STATE_HOME", self.scratch.join("xdg-state"));
        cmd
    }

    /// Waits (up to `seconds`) until a session whose `WHERE` matches `condition` over
    /// `pg_stat_activity` runs an active statement starting with `query_prefix`: how tests catch
    /// a tool in the middle of its data phase to kill or interrupt it.
    pub fn wait_for_active(&self, condition: &str, query_prefix: &str, seconds: u64) -> bool {
        let mut c = self.client("postgres");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        let mut pattern = String::new();
        for c in query_prefix.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        while std::time::Instant::now() < deadline {
            let n: i64 = c
                .query_one(
                    &format!(
                        "SELECT count(*) FROM pg_stat_activity WHERE {condition} AND query LIKE $1 AND state = 'active'"
                    ),
                    &[&pattern],
                )
                .expect("querying pg_stat_activity")
                .get(0);
            if n > 0 {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    }

    /// Loads the shared pagila fixture into a new database `db`; `false` (and a note on
    /// stderr) when the fixtures are not beside the project, so the test can skip itself.
    pub fn load_pagila(&self, db: &str) -> bool {
        let Some(dir) = crate::shared_fixtures().map(|f| f.join("pagila")) else {
            eprintln!("skipping: no shared fixtures");
            return false;
        };
        if !dir.join("pagila-schema.sql").is_file() {
            eprintln!("skipping: no pagila fixture");
            return false;
        }
        self.create_db(db);
        for f in ["pagila-schema.sql", "pagila-data.sql"] {
            let out = self
                .command("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-f"])
                .arg(dir.join(f))
                .output()
                .expect("running psql");
            expect_success(&out, f);
        }
        true
    }

    /// `ALTER SYSTEM SET name = value` and a reload.
    pub fn set_conf(&self, name: &str, value: &str) {
        let mut client = self.client("postgres");
        let literal = value.replace('\'', "''");
        // Two statements: ALTER SYSTEM refuses to run inside the implicit transaction of a
        // multi-statement query.
        client
            .batch_execute(&format!("ALTER SYSTEM SET {name} = '{literal}'"))
            .unwrap_or_else(|e| panic!("setting {name}: {e:?}"));
        client
            .batch_execute("SELECT pg_reload_conf()")
            .unwrap_or_else(|e| panic!("reloading after setting {name}: {e:?}"));
    }

    /// Restarts the server on its port (settings that need a restart, after
    /// [`TestServer::set_conf`]).
    pub fn restart(&self) {
        let out = as_server_user(self.install.bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60", "-m", "fast", "-o"])
            .arg(format!("-p {}", self.port))
            .arg("restart")
            .output()
            .expect("running pg_ctl restart");
        check(&out, "pg_ctl restart");
    }

    /// Replaces pg_hba.conf and reloads, for authentication tests.
    pub fn set_hba(&self, content: &str) {
        let path = self.data.join("pg_hba.conf");
        std::fs::write(&path, content).expect("writing pg_hba.conf");
        self.client("postgres")
            .batch_execute("SELECT pg_reload_conf()")
            .expect("reloading the configuration");
        // The postmaster rereads the file asynchronously after the signal.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// Writes a file into the data directory readable by the server (certificates, keys).
    pub fn write_data_file(&self, name: &str, content: &[u8], mode: u32) {
        let path = self.data.join(name);
        std::fs::write(&path, content).expect("writing into the data directory");
        set_mode(&path, mode);
        if running_as_root() {
            let (uid, gid) = postgres_ids();
            std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = as_server_user(self.install.bin("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .output();
    }
}

fn as_server_user(program: PathBuf) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", OS_USER, "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn postgres_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&OS_USER) && f.len() > 3)
                .then(|| (f[2].parse().ok(), f[3].parse().ok()))
                .and_then(|(u, g)| Some((u?, g?)))
        })
        .expect(
            "running as root needs a `postgres` OS user (apt-get install postgresql-15 makes one)",
        )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port")
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("opening postgresql.conf");
    f.write_all(text.as_bytes())
        .expect("writing postgresql.conf");
}

fn check(out: &Output, what: &str) {
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Output of a command that must have succeeded, as text; panics with its stderr otherwise.
pub fn expect_success(out: &Output, what: &str) -> String {
    check(out, what);
    String::from_utf8_lossy(&out.stdout).into_owned()
}
