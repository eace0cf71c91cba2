//! Opening a session from resolved parameters.

use std::io::{BufRead, Write};
use std::sync::Mutex;

use postgres::config::SslMode as DriverSslMode;
use postgres::{Client, Config};

use crate::params::{ConnParams, SslMode};
use crate::{quote, tls, ClusterError};

/// Connects with libpq's behaviour: TLS per `sslmode` (never over unix sockets), multiple hosts
/// tried in order, `allow` trying plain first, a password prompt on a terminal when the server
/// wants one and `-w` was not given, and `SET ROLE` when `--role` was.
pub fn connect(params: &ConnParams) -> Result<Client, ClusterError> {
    let mut params = params.clone();
    if params.force_prompt && params.password().is_none() {
        if let Some(pw) = prompt_password()? {
            params.set("password", &pw);
        }
    }
    let mut client = match connect_once(&params) {
        Err(ClusterError::PasswordMissing { .. })
            if !params.no_password && stdin_is_tty() && params.password().is_none() =>
        {
            prompt_then_connect(&mut params)?
        }
        other => other?,
    };
    if let Some(role) = &params.role {
        client
            .batch_execute(&format!("SET ROLE {}", quote::ident(role)))
            .map_err(ClusterError::query(format!("SET ROLE {role}")))?;
    }
    Ok(client)
}

/// Passwords typed at a prompt in this process, by server and user, as libpq keeps the one it
/// was given on a connection for pg_dump's and pg_restore's parallel workers: without it,
/// `cbrestore -j 4` on a server asking for a password (no ~/.pgpass, no `-W`) prompted once per
/// connection, five times.
static PROMPTED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn identity(params: &ConnParams) -> String {
    format!(
        "{:?} {:?} {:?}",
        params.hosts(),
        params.ports(),
        params.user()
    )
}

/// The password typed earlier in this process for `params`' server and user.
pub(crate) fn remembered_password(params: &ConnParams) -> Option<String> {
    let cache = PROMPTED.lock().unwrap_or_else(|p| p.into_inner());
    let me = identity(params);
    cache
        .iter()
        .find(|(who, _)| *who == me)
        .map(|(_, pw)| pw.clone())
}

/// Prompts (once per server and user: connections racing here wait, then use what was typed)
/// and connects; the password is kept only when the server accepted it.
fn prompt_then_connect(params: &mut ConnParams) -> Result<Client, ClusterError> {
    let mut cache = PROMPTED.lock().unwrap_or_else(|p| p.into_inner());
    let me = identity(params);
    let known = cache
        .iter()
        .find(|(who, _)| *who == me)
        .map(|(_, pw)| pw.clone());
    let typed = match known {
        Some(pw) => pw,
        None => match prompt_password()? {
            Some(pw) => pw,
            None => {
                // No terminal after all: the server's own answer (connect_once reads the cache).
                drop(cache);
                return connect_once(params);
            }
        },
    };
    params.set("password", &typed);
    let client = connect_once(params)?;
    if !cache.iter().any(|(who, _)| *who == me) {
        cache.push((me, typed));
    }
    Ok(client)
}

fn connect_once(params: &ConnParams) -> Result<Client, ClusterError> {
    establish(params, |config, tls| {
        let config = Config::from(config.clone());
        match tls {
            Some(connector) => config.connect(connector),
            None => config.connect(postgres::NoTls),
        }
    })
}

/// The driver configuration for `params`, without TLS decisions.
fn driver_config(params: &ConnParams) -> Result<tokio_postgres::Config, ClusterError> {
    let mut config = tokio_postgres::Config::new();
    for h in &params.hosts() {
        config.host(h);
    }
    for p in &params.ports() {
        config.port(*p);
    }
    if let Some(addr) = params.get("hostaddr") {
        for a in addr.split(',') {
            let ip = a.parse().map_err(|_| ClusterError::BadParam {
                key: "hostaddr",
                value: a.to_string(),
                why: "not an IP address",
            })?;
            config.hostaddr(ip);
        }
    }
    config.user(params.user());
    config.dbname(params.dbname());
    if let Some(pw) = params.password() {
        config.password(pw);
    }
    config.application_name(params.application_name());
    if let Some(o) = params.get("options") {
        config.options(o);
    }
    if let Some(t) = params.connect_timeout() {
        config.connect_timeout(t);
    }
    if params.get("target_session_attrs") == Some("read-write") {
        config.target_session_attrs(postgres::config::TargetSessionAttrs::ReadWrite);
    }
    Ok(config)
}

/// One connection attempt sequence with libpq's `sslmode` rules, through `attempt` (the sync
/// client or an async session): `attempt` gets the configuration and the TLS connector to use,
/// or `None` for a plain connection.
pub(crate) fn establish<T>(
    params: &ConnParams,
    attempt: impl Fn(
        &tokio_postgres::Config,
        Option<postgres_openssl::MakeTlsConnector>,
    ) -> Result<T, postgres::Error>,
) -> Result<T, ClusterError> {
    let mut config = driver_config(params)?;
    let all_sockets = params
        .hosts()
        .iter()
        .all(|h| h.starts_with('/') || h.is_empty());
    let mode = params.ssl_mode();
    let result = if all_sockets || mode == SslMode::Disable {
        // libpq ignores sslmode on unix-domain sockets.
        config.ssl_mode(DriverSslMode::Disable);
        attempt(&config, None)
    } else {
        let connector = tls::connector(params)?;
        match mode {
            SslMode::Allow => {
                config.ssl_mode(DriverSslMode::Disable);
                match attempt(&config, None) {
                    Ok(c) => Ok(c),
                    Err(_) => {
                        config.ssl_mode(DriverSslMode::Prefer);
                        attempt(&config, Some(connector))
                    }
                }
            }
            SslMode::Prefer => {
                config.ssl_mode(DriverSslMode::Prefer);
                attempt(&config, Some(connector))
            }
            _ => {
                config.ssl_mode(DriverSslMode::Require);
                attempt(&config, Some(connector))
            }
        }
    };
    result.map_err(|source| {
        // The driver reports a missing password as a configuration error whose cause says so.
        let cause = std::error::Error::source(&source)
            .map(|c| c.to_string())
            .unwrap_or_default();
        if cause.contains("password missing") {
            ClusterError::PasswordMissing {
                target: params.target(),
            }
        } else {
            ClusterError::Connect {
                target: params.target(),
                message: crate::error::server_message(&source),
                cause: source,
            }
        }
    })
}

fn stdin_is_tty() -> bool {
    // SAFETY: isatty on a fixed descriptor.
    unsafe { libc::isatty(0) == 1 }
}

/// Reads a password from the terminal without echo, like libpq's `simple_prompt`.
pub(crate) fn prompt_password() -> Result<Option<String>, ClusterError> {
    use std::os::unix::io::AsRawFd;
    let tty = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    let fd = tty.as_raw_fd();
    let mut term: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open terminal; termios is plain data.
    let have_term = unsafe { libc::tcgetattr(fd, &mut term) } == 0;
    let saved = term;
    if have_term {
        term.c_lflag &= !libc::ECHO;
        // SAFETY: as above.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &term) };
    }
    let mut writer = &tty;
    let _ = writer.write_all(b"Password: ");
    let _ = writer.flush();
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if have_term {
        // SAFETY: restoring the saved settings on the same descriptor.
        unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &saved) };
    }
    let _ = writer.write_all(b"\n");
    read.map_err(|source| ClusterError::File {
        path: "/dev/tty".into(),
        source,
    })?;
    Ok(Some(line.trim_end_matches(['\n', '\r']).to_string()))
}

/// Asks the server to cancel whatever `token`'s session is running (a COPY we no longer want),
/// over the same kind of transport the session used.
pub fn cancel(token: &postgres::CancelToken, params: &ConnParams) {
    let sockets = params
        .hosts()
        .iter()
        .all(|h| h.starts_with('/') || h.is_empty());
    if sockets || params.ssl_mode() == SslMode::Disable {
        let _ = token.cancel_query(postgres::NoTls);
    } else if let Ok(connector) = tls::connector(params) {
        let _ = token.cancel_query(connector);
    }
}
