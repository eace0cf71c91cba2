//! The connection layer against a real server: sockets, URIs, passwords, .pgpass, TLS modes.

use std::process::Command;

use cluster::copy_stream::CopySession;
use cluster::{connect, ClusterError, ConnParams, ConnectionArgs};
use testkit::TestServer;

fn env_for(server: &TestServer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PGHOST".to_string(),
            server.socket_dir().display().to_string(),
        ),
        ("PGPORT".to_string(), server.port().to_string()),
        ("PGUSER".to_string(), "postgres".to_string()),
        ("HOME".to_string(), server.scratch().display().to_string()),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

fn args(db: Option<&str>) -> ConnectionArgs {
    ConnectionArgs {
        dbname: db.map(str::to_string),
        ..Default::default()
    }
}

fn password_server() -> TestServer {
    let server = TestServer::start();
    server.psql(
        "postgres",
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE alice LOGIN PASSWORD 's3cr:et';",
    );
    server.set_hba(
        "local all all trust\n\
         host all alice 127.0.0.1/32 scram-sha-256\n\
         hostssl all all 127.0.0.1/32 trust\n\
         host all all 127.0.0.1/32 trust\n",
    );
    server
}

#[test]
fn socket_env_and_application_name() {
    let server = TestServer::start();
    let env = env_for(&server, &[("PGAPPNAME", "")]);
    let params = ConnParams::resolve_with_env(&args(Some("postgres")), "cbtest", &env).unwrap();
    let mut client = connect(&params).unwrap();
    let row = client
        .query_one(
            "SELECT current_setting('application_name'), current_user::text",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "cbtest");
    assert_eq!(row.get::<_, String>(1), "postgres");
}

#[test]
fn uri_over_tcp_and_passwords() {
    let server = password_server();
    let port = server.port();
    let env = env_for(&server, &[]);

    // Password in the URI.
    let uri = format!("postgresql://alice:s3cr%3Aet@127.0.0.1:{port}/postgres?sslmode=disable");
    let params = ConnParams::resolve_with_env(&args(Some(&uri)), "t", &env).unwrap();
    let mut c = connect(&params).unwrap();
    let user: String = c
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(user, "alice");

    // Wrong password: the error names the target, never the password.
    let uri = format!("postgresql://alice:wrongpw@127.0.0.1:{port}/postgres?sslmode=disable");
    let params = ConnParams::resolve_with_env(&args(Some(&uri)), "t", &env).unwrap();
    let err = connect(&params)
        .err()
        .expect("wrong password must fail")
        .to_string();
    assert!(
        err.contains("127.0.0.1") && err.contains("alice") && err.contains(&port.to_string()),
        "{err}"
    );
    assert!(!err.contains("wrongpw"), "{err}");

    // No password at all and -w: a clear message.
    let kv = format!("host=127.0.0.1 port={port} user=alice dbname=postgres sslmode=disable");
    let mut a = args(Some(&kv));
    a.no_password = true;
    let params = ConnParams::resolve_with_env(&a, "t", &env).unwrap();
    match connect(&params) {
        Err(ClusterError::PasswordMissing { target }) => assert!(target.contains("alice")),
        other => panic!("expected PasswordMissing, got {:?}", other.err()),
    }

    // PGPASSWORD.
    let env_pw = env_for(&server, &[("PGPASSWORD", "s3cr:et")]);
    let params = ConnParams::resolve_with_env(&a, "t", &env_pw).unwrap();
    connect(&params).unwrap();

    // ~/.pgpass (HOME is the scratch dir), honoured only with 0600.
    let pgpass = server.scratch().join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{port}:*:alice:s3cr\\:et\n")).unwrap();
    Command::new("chmod")
        .arg("0644")
        .arg(&pgpass)
        .status()
        .unwrap();
    let params = ConnParams::resolve_with_env(&a, "t", &env).unwrap();
    assert!(
        connect(&params).is_err(),
        "a group-readable .pgpass is ignored"
    );
    Command::new("chmod")
        .arg("0600")
        .arg(&pgpass)
        .status()
        .unwrap();
    let params = ConnParams::resolve_with_env(&a, "t", &env).unwrap();
    connect(&params).unwrap();

    // PGPASSFILE elsewhere.
    let other = server.scratch().join("passfile");
    std::fs::write(&other, "*:*:*:alice:s3cr\\:et\n").unwrap();
    Command::new("chmod")
        .arg("0600")
        .arg(&other)
        .status()
        .unwrap();
    let env_pf = env_for(
        &server,
        &[
            ("PGPASSFILE", other.to_str().unwrap()),
            ("HOME", "/nonexistent"),
        ],
    );
    let params = ConnParams::resolve_with_env(&a, "t", &env_pf).unwrap();
    connect(&params).unwrap();
}

#[test]
fn connection_refused_names_the_target() {
    let server = TestServer::start();
    let port = server.port();
    drop(server);
    let kv = format!(
        "host=127.0.0.1 port={port} user=postgres dbname=shop sslmode=disable connect_timeout=3"
    );
    let params = ConnParams::resolve_with_env(&args(Some(&kv)), "t", &[]).unwrap();
    let err = connect(&params).err().unwrap().to_string();
    assert!(
        err.contains(&port.to_string()) && err.contains("shop"),
        "{err}"
    );
}

/// Makes a CA and a server certificate for `localhost`/127.0.0.1 with the openssl CLI.
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=cbtools test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    // A second, unrelated CA for the negative case.
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=other CA",
        "-keyout",
        "other.key",
        "-out",
        "other.crt",
    ]);
}

#[test]
fn tls_modes_follow_libpq() {
    let server = password_server();
    let certs = server.scratch().join("certs");
    std::fs::create_dir(&certs).unwrap();
    make_certs(&certs);
    server.write_data_file(
        "server.crt",
        &std::fs::read(certs.join("server.crt")).unwrap(),
        0o644,
    );
    server.write_data_file(
        "server.key",
        &std::fs::read(certs.join("server.key")).unwrap(),
        0o600,
    );
    server.set_conf("ssl", "on");
    std::thread::sleep(std::time::Duration::from_millis(300));
    let port = server.port();
    let env = env_for(&server, &[]);
    let ssl_in_use = |host: &str, mode: &str, root: Option<&str>| -> Result<bool, String> {
        let mut kv =
            format!("host={host} port={port} user=postgres dbname=postgres sslmode={mode}");
        if let Some(r) = root {
            kv.push_str(&format!(" sslrootcert={r}"));
        }
        let params = ConnParams::resolve_with_env(&args(Some(&kv)), "t", &env).unwrap();
        let mut c = connect(&params).map_err(|e| e.to_string())?;
        Ok(c.query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0))
    };
    let ca = certs.join("ca.crt");
    let ca = ca.to_str().unwrap();
    let other = certs.join("other.crt");
    let other = other.to_str().unwrap();
    assert_eq!(ssl_in_use("127.0.0.1", "disable", None), Ok(false));
    assert_eq!(ssl_in_use("127.0.0.1", "prefer", None), Ok(true));
    assert_eq!(ssl_in_use("127.0.0.1", "require", None), Ok(true));
    assert_eq!(ssl_in_use("127.0.0.1", "verify-ca", Some(ca)), Ok(true));
    assert_eq!(ssl_in_use("localhost", "verify-full", Some(ca)), Ok(true));
    // The certificate is for localhost, not 127.0.0.1: verify-ca passes, verify-full does not.
    assert!(ssl_in_use("127.0.0.1", "verify-full", Some(ca)).is_err());
    // A root that did not sign the server certificate.
    assert!(ssl_in_use("localhost", "verify-ca", Some(other)).is_err());
    // require with a root certificate present verifies like verify-ca (libpq).
    assert!(ssl_in_use("127.0.0.1", "require", Some(other)).is_err());
    // verify-ca without any root certificate is refused before connecting.
    let err = ssl_in_use("127.0.0.1", "verify-ca", None).unwrap_err();
    assert!(err.contains("root certificate file"), "{err}");
    // Unix sockets never use TLS, whatever sslmode says.
    let sock = server.socket_dir().display().to_string();
    assert_eq!(ssl_in_use(&sock, "require", None), Ok(false));

    // CopySession takes the same decisions: TLS when verified, refused when not.
    let session_ssl = |host: &str, mode: &str, root: Option<&str>| -> Result<String, String> {
        let mut kv =
            format!("host={host} port={port} user=postgres dbname=postgres sslmode={mode}");
        if let Some(r) = root {
            kv.push_str(&format!(" sslrootcert={r}"));
        }
        let params = ConnParams::resolve_with_env(&args(Some(&kv)), "t", &env).unwrap();
        let mut s = CopySession::connect(&params).map_err(|e| e.to_string())?;
        let mut out = s
            .copy_out("COPY (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) TO STDOUT")
            .unwrap();
        let mut buf = [0u8; 16];
        let n = out.fill(&mut buf).unwrap();
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    assert_eq!(
        session_ssl("localhost", "verify-full", Some(ca)),
        Ok("t\n".into())
    );
    assert_eq!(session_ssl("127.0.0.1", "disable", None), Ok("f\n".into()));
    assert!(session_ssl("localhost", "verify-ca", Some(other)).is_err());
}

/// CopySession's buffers hold exactly the bytes the synchronous driver reads, across message
/// boundaries and small buffers; a server error mid-stream comes out as the server's message.
#[test]
fn copy_session_streams_like_the_driver() {
    let server = TestServer::start();
    let env = env_for(&server, &[]);
    let params = ConnParams::resolve_with_env(&args(Some("postgres")), "t", &env).unwrap();
    let sql = "COPY (SELECT g, repeat(chr(65 + g % 26), g % 300), E'tab\\there' FROM generate_series(1, 20000) g) TO STDOUT";
    let mut want = Vec::new();
    let mut c = connect(&params).unwrap();
    std::io::Read::read_to_end(&mut c.copy_out(sql).unwrap(), &mut want).unwrap();
    let mut s = CopySession::connect(&params).unwrap();
    for size in [7usize, 4096, 1 << 20] {
        let mut got = Vec::new();
        let mut out = s.copy_out(sql).unwrap();
        let mut buf = vec![0u8; size];
        loop {
            let n = out.fill(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out.fill(&mut buf).unwrap(), 0, "stays at the end");
        drop(out);
        assert_eq!(got, want, "buffer of {size}");
    }
    let mut out = s
        .copy_out("COPY (SELECT 1 / (g - 15000) FROM generate_series(1, 20000) g) TO STDOUT")
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let err = loop {
        match out.fill(&mut buf) {
            Ok(0) => panic!("the error must surface"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    let pg = err
        .get_ref()
        .and_then(|i| i.downcast_ref::<postgres::Error>())
        .expect("the driver's error inside");
    assert!(
        cluster::error::server_message(pg).contains("division by zero"),
        "{err}"
    );
    drop(out);
    // The session is usable after the error.
    s.batch_execute("SELECT 1").unwrap();
}

#[test]
fn server_messages_reach_the_user() {
    let server = password_server();
    let kv = format!(
        "host=127.0.0.1 port={} user=alice password=wrongpw dbname=postgres sslmode=disable",
        server.port()
    );
    let params = ConnParams::resolve_with_env(&args(Some(&kv)), "t", &[]).unwrap();
    let err = connect(&params).err().unwrap().to_string();
    assert!(
        err.contains("password authentication failed for user \"alice\""),
        "{err}"
    );
    let params =
        ConnParams::resolve_with_env(&args(Some("dbname=nosuchdb")), "t", &env_for(&server, &[]))
            .unwrap();
    let err = connect(&params).err().unwrap().to_string();
    assert!(
        err.contains("database \"nosuchdb\" does not exist"),
        "{err}"
    );
}
