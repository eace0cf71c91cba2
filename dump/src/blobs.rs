//! Large objects of pg_dump's directory archive, for the custom archive we build from it.
//!
//! pg_dump up to 16 lists every object of its one BLOBS entry in `blobs.toc`; from 17 on there
//! is one BLOBS entry per group of objects, each listed in `blobs_<dumpId>.toc`. Each line is
//! `<oid> <file>`, the file (`blob_<oid>.dat`, with `.gz`/`.zst` when compressed) holding the
//! object's bytes. Files are opened one at a time as the custom writer reaches them, so neither
//! memory nor open files grow with the number of objects.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use archive::TocEntry;

use crate::DumpError;

/// The (oid, file) list of one BLOBS entry.
pub fn list(dir: &Path, entry: &TocEntry) -> Result<Vec<(u32, PathBuf)>, DumpError> {
    let own = dir.join(format!("blobs_{}.toc", entry.dump_id));
    let toc = if own.is_file() {
        own
    } else {
        dir.join("blobs.toc")
    };
    let f = File::open(&toc).map_err(|e| DumpError::io(&toc, e))?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| DumpError::io(&toc, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = || {
            DumpError::Usage(format!(
                "{} line {}: not \"<oid> <file>\": {line:?}",
                toc.display(),
                n + 1
            ))
        };
        let mut parts = line.split_whitespace();
        let oid: u32 = parts.next().and_then(|o| o.parse().ok()).ok_or_else(bad)?;
        let name = parts.next().ok_or_else(bad)?;
        if name.contains('/') {
            return Err(bad());
        }
        let path = ["", ".gz", ".zst"]
            .iter()
            .map(|s| dir.join(format!("{name}{s}")))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                DumpError::Usage(format!(
                    "{}: large object {oid}: {name} is missing",
                    dir.display()
                ))
            })?;
        out.push((oid, path));
    }
    Ok(out)
}

/// A large object's decoded bytes, its file opened on the first read.
pub struct LazyBlob {
    path: PathBuf,
    inner: Option<Box<dyn Read + Send>>,
}

impl LazyBlob {
    pub fn new(path: PathBuf) -> LazyBlob {
        LazyBlob { path, inner: None }
    }
}

impl Read for LazyBlob {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.inner.is_none() {
            let (_, r) = archive::codec::open_decoded(&self.path)?;
            self.inner = Some(r);
        }
        self.inner.as_mut().expect("opened").read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_both_layouts_and_reads_lazily() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("blobs_7.toc"), "16400 blob_16400.dat\n").unwrap();
        std::fs::write(d.join("blobs.toc"), "1 blob_1.dat\n\n").unwrap();
        {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(
                File::create(d.join("blob_16400.dat.gz")).unwrap(),
                flate2::Compression::fast(),
            );
            e.write_all(b"hello").unwrap();
            e.finish().unwrap();
        }
        std::fs::write(d.join("blob_1.dat"), b"raw").unwrap();
        let entry = |id| TocEntry {
            dump_id: id,
            had_dumper: 1,
            table_oid: None,
            oid: None,
            tag: None,
            desc: Some(b"BLOBS".to_vec()),
            section: 3,
            defn: None,
            drop_stmt: None,
            copy_stmt: None,
            namespace: None,
            tablespace: None,
            tableam: None,
            relkind: 0,
            owner: None,
            with_oids: None,
            deps: Vec::new(),
            extra: archive::toc::Extra::File(None),
        };
        let l = list(d, &entry(7)).unwrap();
        assert_eq!(l, vec![(16400, d.join("blob_16400.dat.gz"))]);
        let mut s = String::new();
        LazyBlob::new(l[0].1.clone())
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "hello");
        let l = list(d, &entry(3)).unwrap();
        assert_eq!(l, vec![(1, d.join("blob_1.dat"))]);
        std::fs::write(d.join("blobs_9.toc"), "x blob.dat\n").unwrap();
        let err = list(d, &entry(9)).unwrap_err().to_string();
        assert!(err.contains("blobs_9.toc line 1"), "{err}");
    }
}
