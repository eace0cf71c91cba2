//! `~/.pgpass`, read the way libpq reads it.
//!
//! Lines are `host:port:database:user:password`, `*` matches anything in the first four fields,
//! `\` escapes `:` and `\`, the first matching line wins, and the file is ignored (with a
//! warning) unless only its owner can read it — the same rule, so a file libpq ignores is
//! ignored here too.

use std::path::{Path, PathBuf};

/// Where the password file is: `passfile` parameter, `PGPASSFILE`, else `~/.pgpass`.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

/// The password for a connection, if a line matches. `host` is the host as libpq would match
/// it: a socket directory equal to the default one, or no host, matches as `localhost`.
pub fn lookup(path: &Path, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        logline::say!(
            "WARNING: password file \"{}\" is not a plain file",
            path.display()
        );
        return None;
    }
    if meta.mode() & 0o077 != 0 {
        logline::say!(
            "WARNING: password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    find(&text, host, port, dbname, user)
}

/// The matching logic on the file's text, separate so it can be tested without files.
pub fn find(text: &str, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields = split_fields(line);
        if fields.len() < 5 {
            continue;
        }
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        if matches(&fields[0], host)
            && matches(&fields[1], port)
            && matches(&fields[2], dbname)
            && matches(&fields[3], user)
        {
            // The password is the rest of the line: it may itself contain unescaped colons only
            // if escaped, but libpq takes everything after the fourth separator.
            return Some(fields[4..].join(":"));
        }
    }
    None
}

fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("at least one field").push(n);
                }
            }
            ':' => fields.push(String::new()),
            _ => fields.last_mut().expect("at least one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:*:nope\nlocalhost:5432:shop:alice:s3cr\\:et\n*:*:*:alice:fallback\n";
        assert_eq!(
            find(text, "localhost", "5432", "shop", "alice").as_deref(),
            Some("s3cr:et")
        );
        assert_eq!(
            find(text, "db1", "6000", "x", "alice").as_deref(),
            Some("fallback")
        );
        assert_eq!(find(text, "db1", "6000", "x", "bob"), None);
    }

    #[test]
    fn permissions_are_checked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup(&path, "h", "1", "d", "u"), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup(&path, "h", "1", "d", "u").as_deref(), Some("pw"));
    }
}
