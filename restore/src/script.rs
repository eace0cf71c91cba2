//! `-f FILE`: the SQL a restore would run, written to a file (under a fresh `O_EXCL` temporary
//! name beside it, renamed when complete, so a failed run never leaves a half script under the
//! name) or to stdout with `-f -`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why writing the script failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct ScriptError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Where the script goes.
pub enum ScriptOut {
    File(std::io::BufWriter<tempfile::NamedTempFile>, PathBuf),
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

impl ScriptOut {
    pub fn create(path: &Path) -> Result<ScriptOut, ScriptError> {
        if path.as_os_str() == "-" {
            return Ok(ScriptOut::Stdout(
                std::io::BufWriter::new(std::io::stdout()),
            ));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temp = tempfile::Builder::new()
            .prefix(".cbrestore-")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|source| ScriptError {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(ScriptOut::File(
            std::io::BufWriter::with_capacity(256 * 1024, temp),
            path.to_path_buf(),
        ))
    }

    fn shown(&self) -> PathBuf {
        match self {
            ScriptOut::File(_, p) => p.clone(),
            ScriptOut::Stdout(_) => PathBuf::from("-"),
        }
    }

    pub fn write(&mut self, b: &[u8]) -> Result<(), ScriptError> {
        let r = match self {
            ScriptOut::File(w, _) => w.write_all(b),
            ScriptOut::Stdout(w) => w.write_all(b),
        };
        r.map_err(|source| ScriptError {
            path: self.shown(),
            source,
        })
    }

    /// Everything read from `r` into the script.
    pub fn copy_from(&mut self, r: &mut dyn std::io::Read) -> Result<(), ScriptError> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ScriptError {
                        path: self.shown(),
                        source,
                    })
                }
            };
            self.write(&buf[..n])?;
        }
    }

    /// Flushes and, for a file, puts it under its name.
    pub fn finish(self) -> Result<(), ScriptError> {
        match self {
            ScriptOut::Stdout(mut w) => w.flush().map_err(|source| ScriptError {
                path: PathBuf::from("-"),
                source,
            }),
            ScriptOut::File(w, path) => {
                let temp = w.into_inner().map_err(|e| ScriptError {
                    path: path.clone(),
                    source: e.into_error(),
                })?;
                temp.persist(&path).map(|_| ()).map_err(|e| ScriptError {
                    path,
                    source: e.error,
                })
            }
        }
    }
}
