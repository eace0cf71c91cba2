//! What an input looked like when a restore started, so `--resume` refuses an input that
//! changed since: the size and modification time of every file read, the content of the small
//! files that define the input (a gpbackup toc and config), and the target.

use std::path::Path;
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

/// Accumulates what identifies an input; [`Fingerprint::finish`] gives a short hex digest.
pub struct Fingerprint {
    hash: Sha256,
    label: String,
}

impl Fingerprint {
    /// `label` stays readable in the state file and in the refusal message.
    pub fn new(label: impl Into<String>) -> Fingerprint {
        let label = label.into();
        let mut hash = Sha256::new();
        hash.update(label.as_bytes());
        Fingerprint { hash, label }
    }

    /// Arbitrary text (the target, options that change what is restored).
    pub fn text(&mut self, s: &str) -> &mut Self {
        self.hash.update((s.len() as u64).to_le_bytes());
        self.hash.update(s.as_bytes());
        self
    }

    /// A file's path, size and modification time (data files: reading them all would cost a
    /// whole pass over the backup).
    pub fn file_meta(&mut self, path: &Path) -> std::io::Result<&mut Self> {
        let m = std::fs::metadata(path)?;
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        self.text(&path.to_string_lossy());
        self.hash.update(m.len().to_le_bytes());
        self.hash.update(mtime.to_le_bytes());
        Ok(self)
    }

    /// A file's whole content (small files that define the input: toc, config).
    pub fn file_content(&mut self, path: &Path) -> std::io::Result<&mut Self> {
        self.file_meta(path)?;
        let mut f = std::fs::File::open(path)?;
        std::io::copy(&mut f, &mut self.hash)?;
        Ok(self)
    }

    /// Raw bytes (a digest of stdin computed while it was spooled).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.hash.update(b);
        self
    }

    pub fn finish(&self) -> String {
        let digest = self.hash.clone().finalize();
        format!("{} #{}", self.label, hex::encode(&digest[..12]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("toc.yaml");
        std::fs::write(&p, "a").unwrap();
        let a = Fingerprint::new("x").file_content(&p).unwrap().finish();
        let again = Fingerprint::new("x").file_content(&p).unwrap().finish();
        assert_eq!(a, again);
        std::fs::write(&p, "ab").unwrap();
        let b = Fingerprint::new("x").file_content(&p).unwrap().finish();
        assert_ne!(a, b);
        assert!(b.starts_with("x #"));
    }
}
