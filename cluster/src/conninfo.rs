//! Parsing libpq connection strings: `key=value` lists and `postgresql://` URIs.
//!
//! Both forms end up as an ordered list of (keyword, value) pairs; which keywords win over
//! flags and environment is decided in [`crate::params`].

use crate::ClusterError;

/// True when a `-d` value is a connection string rather than a plain database name, by libpq's
/// rule: it has an `=` or starts with a URI scheme.
pub fn is_conninfo(s: &str) -> bool {
    s.starts_with("postgresql://") || s.starts_with("postgres://") || s.contains('=')
}

/// Parses either form.
pub fn parse(s: &str) -> Result<Vec<(String, String)>, ClusterError> {
    if s.starts_with("postgresql://") || s.starts_with("postgres://") {
        parse_uri(s)
    } else {
        parse_kv(s)
    }
}

/// `host=x port=5432 password='a b\'c'`: values may be single-quoted, with `\'` and `\\`.
pub fn parse_kv(s: &str) -> Result<Vec<(String, String)>, ClusterError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(ClusterError::BadConnInfo(format!(
                "missing \"=\" after \"{key}\""
            )));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(n) => value.push(n),
                        None => break,
                    },
                    '\'' => {
                        closed = true;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            if !closed {
                return Err(ClusterError::BadConnInfo(
                    "unterminated quoted string".to_string(),
                ));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if key.is_empty() {
            return Err(ClusterError::BadConnInfo("empty keyword".to_string()));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// `postgresql://user:pw@host1:5432,host2/db?sslmode=require&application_name=x`.
pub fn parse_uri(s: &str) -> Result<Vec<(String, String)>, ClusterError> {
    let rest = s
        .strip_prefix("postgresql://")
        .or_else(|| s.strip_prefix("postgres://"))
        .ok_or_else(|| ClusterError::BadConnInfo("not a postgresql:// URI".into()))?;
    let mut out = Vec::new();
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match main.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (main, None),
    };
    let hostspec = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, pw) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                out.push(("user".into(), decode(user)?));
            }
            if let Some(pw) = pw {
                out.push(("password".into(), decode(pw)?));
            }
            hosts
        }
        None => authority,
    };
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for part in hostspec.split(',') {
            let (host, port) = if let Some(v6) = part.strip_prefix('[') {
                let (h, after) = v6.split_once(']').ok_or_else(|| {
                    ClusterError::BadConnInfo(format!("missing \"]\" in IPv6 host {part:?}"))
                })?;
                (h.to_string(), after.strip_prefix(':').unwrap_or(""))
            } else {
                match part.split_once(':') {
                    Some((h, p)) => (h.to_string(), p),
                    None => (part.to_string(), ""),
                }
            };
            hosts.push(decode(&host)?);
            ports.push(port.to_string());
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            out.push(("host".into(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            out.push(("port".into(), ports.join(",")));
        }
    }
    if let Some(db) = path {
        if !db.is_empty() {
            out.push(("dbname".into(), decode(db)?));
        }
    }
    if let Some(q) = query {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ClusterError::BadConnInfo(format!("missing \"=\" in URI parameter {pair:?}"))
            })?;
            let (k, v) = (decode(k)?, decode(v)?);
            // libpq accepts the JDBC spelling `ssl=true` as sslmode=require.
            if k == "ssl" && v == "true" {
                out.push(("sslmode".into(), "require".into()));
            } else {
                out.push((k, v));
            }
        }
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, ClusterError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    ClusterError::BadConnInfo(format!("invalid percent-encoded token in {s:?}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| ClusterError::BadConnInfo(format!("{s:?} is not UTF-8 once decoded")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn keyword_values() {
        assert_eq!(
            parse("host=/tmp port = 5433 password='a b\\'c' dbname=x").unwrap(),
            kv(&[
                ("host", "/tmp"),
                ("port", "5433"),
                ("password", "a b'c"),
                ("dbname", "x")
            ])
        );
        assert!(parse("host").is_err());
        assert!(parse("password='abc").is_err());
    }

    #[test]
    fn uris() {
        assert_eq!(
            parse(
                "postgresql://u%40x:p%3Aw@h1:5432,[::1]:6000/my%20db?sslmode=verify-full&ssl=true"
            )
            .unwrap(),
            kv(&[
                ("user", "u@x"),
                ("password", "p:w"),
                ("host", "h1,::1"),
                ("port", "5432,6000"),
                ("dbname", "my db"),
                ("sslmode", "verify-full"),
                ("sslmode", "require"),
            ])
        );
        assert_eq!(
            parse("postgres://%2Fvar%2Frun%2Fpostgresql/db").unwrap(),
            kv(&[("host", "/var/run/postgresql"), ("dbname", "db")])
        );
        assert_eq!(parse("postgresql://").unwrap(), kv(&[]));
        assert!(parse("postgresql://h/db?x").is_err());
        assert!(parse("postgresql://h/%zz").is_err());
    }

    #[test]
    fn detects_conninfo() {
        assert!(is_conninfo("dbname=x"));
        assert!(is_conninfo("postgres://h"));
        assert!(!is_conninfo("shop"));
    }
}
