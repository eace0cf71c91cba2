//! Resolving the final connection parameters the way libpq does.
//!
//! Precedence, highest first (libpq's, which pg_dump users rely on):
//! 1. keywords inside a conninfo/URI given as `-d` (libpq expands `dbname` last, so they override
//!    `-h -p -U`);
//! 2. the `-h -p -U` flags and a plain `-d NAME`;
//! 3. the service named by `service=` or `PGSERVICE`, for keywords still unset;
//! 4. the `PG*` environment variables, for keywords still unset;
//! 5. built-in defaults (socket directory, port 5432, the OS user, dbname = user);
//!
//! and the password last: explicit, `PGPASSWORD`, then the password file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::{conninfo, pgpass, service, ClusterError, ConnectionArgs};

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<SslMode, ClusterError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(ClusterError::BadParam {
                    key: "sslmode",
                    value: s.to_string(),
                    why: "expected disable, allow, prefer, require, verify-ca or verify-full",
                })
            }
        })
    }
}

/// The environment variables libpq reads, with the keyword each one fills.
const ENV_KEYWORDS: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGDATABASE", "dbname"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGAPPNAME", "application_name"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGOPTIONS", "options"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
];

const KNOWN_KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "service",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "application_name",
    "fallback_application_name",
    "connect_timeout",
    "options",
    "target_session_attrs",
    "client_encoding",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "gssencmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "krbsrvname",
    "gsslib",
    "channel_binding",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "load_balance_hosts",
    "require_auth",
    "sslnegotiation",
    "tcp_user_timeout",
];

/// Fully resolved connection parameters.
#[derive(Clone)]
pub struct ConnParams {
    values: BTreeMap<String, String>,
    /// `-w`: never prompt for a password.
    pub no_password: bool,
    /// `-W`: prompt before connecting.
    pub force_prompt: bool,
    /// `--role`: `SET ROLE` right after connecting, as pg_dump does.
    pub role: Option<String>,
}

// Hand-written so a password never reaches a log through `{:?}`.
impl std::fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&String, &str> = self
            .values
            .iter()
            .map(|(k, v)| {
                (
                    k,
                    if k == "password" {
                        "********"
                    } else {
                        v.as_str()
                    },
                )
            })
            .collect();
        f.debug_struct("ConnParams")
            .field("values", &shown)
            .finish()
    }
}

impl ConnParams {
    /// Resolves flags, conninfo, service file, environment, defaults and password file.
    /// `tool` becomes the default `application_name` (libpq's `fallback_application_name`).
    ///
    /// `-W` prompts here, once: every connection of the run (workers, and the pg_dump or
    /// pg_restore it starts) then has the password, where a prompt per connection asked for
    /// it again or left the workers without it.
    pub fn resolve(args: &ConnectionArgs, tool: &str) -> Result<ConnParams, ClusterError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let mut params = Self::resolve_with_env(args, tool, &env)?;
        if params.force_prompt && params.password().is_none() {
            if let Some(pw) = crate::connect::prompt_password()? {
                params.set("password", &pw);
            }
        }
        Ok(params)
    }

    /// [`resolve`](Self::resolve) with an explicit environment, so tests need not touch the
    /// process's own.
    pub fn resolve_with_env(
        args: &ConnectionArgs,
        tool: &str,
        env: &[(String, String)],
    ) -> Result<ConnParams, ClusterError> {
        let getenv = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        if let Some(h) = &args.host {
            values.insert("host".into(), h.clone());
        }
        if let Some(p) = &args.port {
            values.insert("port".into(), p.clone());
        }
        if let Some(u) = &args.username {
            values.insert("user".into(), u.clone());
        }
        if let Some(d) = &args.dbname {
            if conninfo::is_conninfo(d) {
                for (k, v) in conninfo::parse(d)? {
                    if !KNOWN_KEYWORDS.contains(&k.as_str()) {
                        return Err(ClusterError::BadConnInfo(format!(
                            "invalid connection option \"{k}\""
                        )));
                    }
                    values.insert(k, v);
                }
            } else {
                values.insert("dbname".into(), d.clone());
            }
        }
        let service_name = values
            .get("service")
            .cloned()
            .or_else(|| getenv("PGSERVICE"));
        if let Some(name) = service_name {
            for (k, v) in service::lookup(&name)? {
                values.entry(k).or_insert(v);
            }
        }
        for (var, key) in ENV_KEYWORDS {
            if let Some(v) = getenv(var) {
                values.entry((*key).to_string()).or_insert(v);
            }
        }
        values
            .entry("host".into())
            .or_insert_with(default_socket_dir);
        values.entry("port".into()).or_insert_with(|| "5432".into());
        if !values.contains_key("user") {
            values.insert("user".into(), os_user_name()?);
        }
        if !values.contains_key("dbname") {
            let user = values["user"].clone();
            values.insert("dbname".into(), user);
        }
        values
            .entry("sslmode".into())
            .or_insert_with(|| "prefer".into());
        values
            .entry("fallback_application_name".into())
            .or_insert_with(|| tool.to_string());
        let params = ConnParams {
            values,
            no_password: args.no_password,
            force_prompt: args.password_prompt,
            role: args.role.clone(),
        };
        params.validate()?;
        let mut params = params;
        if !params.values.contains_key("password") {
            if let Some(pw) = params.password_from_file(&getenv("HOME")) {
                params.values.insert("password".into(), pw);
            }
        }
        Ok(params)
    }

    fn validate(&self) -> Result<(), ClusterError> {
        SslMode::parse(self.get("sslmode").unwrap_or("prefer"))?;
        for port in self.get("port").unwrap_or("").split(',') {
            if !port.is_empty() && port.parse::<u16>().is_err() {
                return Err(ClusterError::BadParam {
                    key: "port",
                    value: port.to_string(),
                    why: "not a port number",
                });
            }
        }
        if let Some(t) = self.get("connect_timeout") {
            if t.trim().parse::<i64>().is_err() {
                return Err(ClusterError::BadParam {
                    key: "connect_timeout",
                    value: t.to_string(),
                    why: "not a number of seconds",
                });
            }
        }
        Ok(())
    }

    fn password_from_file(&self, home: &Option<String>) -> Option<String> {
        let path = match self.get("passfile") {
            Some(p) => PathBuf::from(p),
            None => PathBuf::from(home.as_ref()?).join(".pgpass"),
        };
        let host = self.hosts().into_iter().next().unwrap_or_default();
        let port = self.ports().into_iter().next().unwrap_or(5432);
        // libpq matches a connection over the default socket directory as `localhost`.
        let host_for_match = if host.is_empty() || host == default_socket_dir() {
            "localhost".to_string()
        } else {
            host
        };
        pgpass::lookup(
            &path,
            &host_for_match,
            &port.to_string(),
            self.dbname(),
            self.user(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// Sets a keyword after resolution (tests, or tools that connect to a second database).
    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_string(), value.to_string());
    }

    pub fn hosts(&self) -> Vec<String> {
        self.get("host")
            .unwrap_or("")
            .split(',')
            .map(str::to_string)
            .collect()
    }

    pub fn ports(&self) -> Vec<u16> {
        self.get("port")
            .unwrap_or("5432")
            .split(',')
            .map(|p| p.parse().unwrap_or(5432))
            .collect()
    }

    pub fn user(&self) -> &str {
        self.get("user").unwrap_or("")
    }

    pub fn dbname(&self) -> &str {
        self.get("dbname").unwrap_or("")
    }

    /// The password given (flag, conninfo, `PGPASSWORD`, password file), else the one typed at
    /// a prompt earlier in this process for the same server and user (so the pg_dump and
    /// pg_restore runs a tool starts get it too).
    pub fn password(&self) -> Option<String> {
        self.get("password")
            .map(str::to_string)
            .or_else(|| crate::connect::remembered_password(self))
    }

    pub fn ssl_mode(&self) -> SslMode {
        SslMode::parse(self.get("sslmode").unwrap_or("prefer")).unwrap_or(SslMode::Prefer)
    }

    pub fn connect_timeout(&self) -> Option<Duration> {
        // libpq: zero or negative means wait forever; anything below 2 s is raised to 2 s.
        let secs: i64 = self.get("connect_timeout")?.trim().parse().ok()?;
        (secs > 0).then(|| Duration::from_secs(secs.max(2) as u64))
    }

    pub fn application_name(&self) -> &str {
        self.get("application_name")
            .or_else(|| self.get("fallback_application_name"))
            .unwrap_or("cbtools")
    }

    /// `user@host:port/dbname` for messages; never the password.
    pub fn target(&self) -> String {
        let hosts = self.get("host").unwrap_or("");
        let ports = self.get("port").unwrap_or("");
        format!(
            "server at \"{hosts}\", port {ports}, user \"{}\", database \"{}\"",
            self.user(),
            self.dbname()
        )
    }

    /// The same parameters for another database on the same server.
    pub fn with_dbname(&self, dbname: &str) -> ConnParams {
        let mut p = self.clone();
        p.values.insert("dbname".into(), dbname.to_string());
        p
    }
}

/// Debian's libpq looks for the socket in /var/run/postgresql; builds from source use /tmp.
fn default_socket_dir() -> String {
    if std::path::Path::new("/var/run/postgresql").is_dir() {
        "/var/run/postgresql".into()
    } else {
        "/tmp".into()
    }
}

fn os_user_name() -> Result<String, ClusterError> {
    // SAFETY: getpwuid returns a pointer into static storage or NULL; we copy the name out
    // immediately and do not call it concurrently from this function.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return Err(ClusterError::BadParam {
                key: "user",
                value: String::new(),
                why: "no user name given and the OS user has no name",
            });
        }
        Ok(std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn args(host: Option<&str>, db: Option<&str>) -> ConnectionArgs {
        ConnectionArgs {
            host: host.map(str::to_string),
            dbname: db.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn precedence_conninfo_over_flags_over_env() {
        let e = env(&[
            ("PGHOST", "envhost"),
            ("PGPORT", "7000"),
            ("PGUSER", "envuser"),
            ("PGAPPNAME", "myapp"),
            ("HOME", "/nonexistent"),
        ]);
        let p = ConnParams::resolve_with_env(
            &args(Some("flaghost"), Some("host=infohost dbname=shop")),
            "cbcopyout",
            &e,
        )
        .unwrap();
        assert_eq!(p.get("host"), Some("infohost"));
        assert_eq!(p.ports(), vec![7000]);
        assert_eq!(p.user(), "envuser");
        assert_eq!(p.dbname(), "shop");
        assert_eq!(p.application_name(), "myapp");

        let p =
            ConnParams::resolve_with_env(&args(Some("flaghost"), None), "cbcopyout", &e).unwrap();
        assert_eq!(p.get("host"), Some("flaghost"));
        assert_eq!(p.dbname(), "envuser", "dbname defaults to the user");
    }

    #[test]
    fn bad_values_are_rejected() {
        let e = env(&[("PGSSLMODE", "sometimes")]);
        assert!(ConnParams::resolve_with_env(&args(None, None), "t", &e).is_err());
        let e = env(&[("PGPORT", "port")]);
        assert!(ConnParams::resolve_with_env(&args(None, None), "t", &e).is_err());
        assert!(ConnParams::resolve_with_env(&args(None, Some("bogus=1")), "t", &[]).is_err());
    }

    #[test]
    fn debug_hides_the_password() {
        let p =
            ConnParams::resolve_with_env(&args(None, Some("password=hunter2")), "t", &[]).unwrap();
        assert_eq!(p.password().as_deref(), Some("hunter2"));
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!p.target().contains("hunter2"));
    }
}
