//! Connection service files (`PGSERVICE`, `~/.pg_service.conf`, `pg_service.conf` in
//! `PGSYSCONFDIR`): INI sections of libpq keywords. The user's file is searched first; a service
//! found there is not looked up in the system file, as in libpq.

use std::path::PathBuf;

use crate::ClusterError;

/// (keyword, value) pairs of one service section.
pub type Keywords = Vec<(String, String)>;

/// The keywords of service `name`, or an error when no file defines it.
pub fn lookup(name: &str) -> Result<Vec<(String, String)>, ClusterError> {
    for path in candidate_files() {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(ClusterError::File { path, source }),
        };
        if let Some(found) =
            parse(&text, name).map_err(|(line, why)| ClusterError::ServiceFile {
                path: path.clone(),
                line,
                why,
            })?
        {
            return Ok(found);
        }
    }
    Err(ClusterError::UnknownService(name.to_string()))
}

fn candidate_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("PGSERVICEFILE") {
        files.push(PathBuf::from(f));
    } else if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".pg_service.conf"));
    }
    let sysconf = std::env::var_os("PGSYSCONFDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/postgresql-common"));
    files.push(sysconf.join("pg_service.conf"));
    files
}

/// The keywords of section `name` in one file's text; `Err((line, why))` on a malformed line
/// inside that section.
pub fn parse(text: &str, name: &str) -> Result<Option<Keywords>, (usize, String)> {
    let mut in_section = false;
    let mut found: Option<Vec<(String, String)>> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            if found.is_some() && in_section {
                break;
            }
            let section = section
                .strip_suffix(']')
                .ok_or((i + 1, "missing \"]\"".to_string()))?;
            in_section = section == name;
            if in_section {
                found = Some(Vec::new());
            }
            continue;
        }
        if in_section {
            let (k, v) = line
                .split_once('=')
                .ok_or((i + 1, format!("syntax error in line {:?}", raw)))?;
            let k = k.trim();
            if k == "service" {
                return Err((i + 1, "nested service specifications not supported".into()));
            }
            found
                .as_mut()
                .expect("section started")
                .push((k.to_string(), v.trim().to_string()));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        let text = "[a]\nhost=h1\n\n[shop]\n# c\nhost = db.example\nport=6000\n[z]\nhost=x\n";
        let got = parse(text, "shop").unwrap().unwrap();
        assert_eq!(
            got,
            vec![
                ("host".to_string(), "db.example".to_string()),
                ("port".to_string(), "6000".to_string())
            ]
        );
        assert_eq!(parse(text, "none").unwrap(), None);
        assert!(parse("[s]\nbad line\n", "s").is_err());
    }
}
