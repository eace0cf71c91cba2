//! Large objects in archives: custom archives keep them in one block of type 3 (each object an
//! oid followed by its own compressed chunk stream, ending with oid 0); directory archives list
//! them in `blobs.toc` (`<oid> blob_<oid>.dat`) with one file each.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use crate::custom::BLK_BLOBS;
use crate::error::ArchiveError;
use crate::primitives::PrimReader;
use crate::toc::{entry_error, map_io, DataCodec, Extra, TocEntry};
use crate::Archive;

/// One large object: its oid and a reader of its decompressed contents.
pub type Blob = Result<(u32, Box<dyn Read + Send>), ArchiveError>;

/// Every large object of a BLOBS entry, in archive order. Readers are opened lazily, one at a
/// time, so memory stays flat whatever their sizes.
pub fn read_all(archive: &Archive, entry: &TocEntry) -> Result<Vec<Blob>, ArchiveError> {
    match archive {
        Archive::Directory(d) => {
            // blobs.toc before 1.16; blobs_<dumpId>.toc (one per BLOBS entry) after.
            let name = entry
                .file_name()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_else(|| "blobs.toc".into());
            if name.contains('/') || name.starts_with('.') {
                return Err(entry_error(
                    &d.dir,
                    entry,
                    format!("large-object list {name:?} leaves the archive directory"),
                ));
            }
            let toc = d.dir.join(name);
            let f = File::open(&toc).map_err(|source| ArchiveError::Io {
                path: toc.clone(),
                source,
            })?;
            let mut out = Vec::new();
            for line in BufReader::new(f).lines() {
                let line = line.map_err(|source| ArchiveError::Io {
                    path: toc.clone(),
                    source,
                })?;
                let mut parts = line.split_whitespace();
                let (Some(oid), Some(name)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let oid: u32 = oid.parse().map_err(|_| ArchiveError::Corrupt {
                    path: toc.clone(),
                    why: format!("bad line {line:?}"),
                })?;
                if name.contains('/') || name.starts_with('.') {
                    return Err(ArchiveError::Corrupt {
                        path: toc.clone(),
                        why: format!("file name {name:?} leaves the directory"),
                    });
                }
                let mut path = d.dir.join(name);
                for suffix in [".gz", ".zst"] {
                    let p = d.dir.join(format!("{name}{suffix}"));
                    if !path.exists() && p.exists() {
                        path = p;
                    }
                }
                let opener = move || {
                    crate::codec::open_decoded(&path)
                        .map(|(_, r)| r)
                        .map_err(|e| {
                            std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                        })
                };
                out.push(Ok((
                    oid,
                    Box::new(Lazy::new(opener)) as Box<dyn Read + Send>,
                )));
            }
            Ok(out)
        }
        Archive::Custom(c) => {
            let Extra::Offset { pos, .. } = entry.extra else {
                return Err(entry_error(&c.path, entry, "no data offset"));
            };
            let pos = if matches!(entry.extra, Extra::Offset { flag: 2, .. }) {
                pos
            } else {
                *c.scan_blocks()?
                    .get(&entry.dump_id)
                    .ok_or_else(|| entry_error(&c.path, entry, "has no data block"))?
            };
            let open = || {
                File::open(&c.path).map_err(|source| ArchiveError::Io {
                    path: c.path.clone(),
                    source,
                })
            };
            let mut f = open()?;
            f.seek(SeekFrom::Start(pos))
                .map_err(|e| map_io(e, &c.path, "a large-object block"))?;
            let mut r = PrimReader::new(BufReader::new(f));
            r.int_size = c.header.int_size as usize;
            r.off_size = c.header.off_size as usize;
            r.pos = pos;
            let kind = r
                .byte()
                .map_err(|e| map_io(e, &c.path, "a large-object block"))?;
            r.int()
                .map_err(|e| map_io(e, &c.path, "a large-object block"))?;
            if kind != BLK_BLOBS {
                return Err(entry_error(
                    &c.path,
                    entry,
                    format!("block type {kind} is not large objects"),
                ));
            }
            // Walk once to find where each object's chunks start.
            let mut starts = Vec::new();
            loop {
                let oid = r
                    .int()
                    .map_err(|e| map_io(e, &c.path, "a large-object block"))?;
                if oid == 0 {
                    break;
                }
                starts.push((oid as u32, r.pos));
                loop {
                    let len = r
                        .int()
                        .map_err(|e| map_io(e, &c.path, "a large-object chunk"))?;
                    if len == 0 {
                        break;
                    }
                    if len < 0 || len as u64 > c.file_len {
                        return Err(entry_error(&c.path, entry, format!("chunk length {len}")));
                    }
                    r.skip(len as u64)
                        .map_err(|e| map_io(e, &c.path, "a large-object chunk"))?;
                }
            }
            let codec = c.header.data_codec();
            if codec == DataCodec::Lz4 {
                return Err(entry_error(
                    &c.path,
                    entry,
                    "LZ4-compressed archives are not supported",
                ));
            }
            let path = c.path.clone();
            let (int_size, off_size) = (c.header.int_size as usize, c.header.off_size as usize);
            Ok(starts
                .into_iter()
                .map(|(oid, at)| {
                    let path = path.clone();
                    let opener = move || -> std::io::Result<Box<dyn Read + Send>> {
                        let mut f = File::open(&path)?;
                        f.seek(SeekFrom::Start(at))?;
                        let mut pr = PrimReader::new(BufReader::new(f));
                        pr.int_size = int_size;
                        pr.off_size = off_size;
                        crate::custom::decoder(codec, crate::custom::ChunkReader::new(pr, path))
                    };
                    Ok((oid, Box::new(Lazy::new(opener)) as Box<dyn Read + Send>))
                })
                .collect())
        }
    }
}

/// A reader opened on its first read, so listing thousands of objects holds no files open.
struct Lazy<F> {
    open: Option<F>,
    inner: Option<Box<dyn Read + Send>>,
}

impl<F> Lazy<F> {
    fn new(open: F) -> Self {
        Lazy {
            open: Some(open),
            inner: None,
        }
    }
}

impl<F: FnOnce() -> std::io::Result<Box<dyn Read + Send>>> Read for Lazy<F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.inner.is_none() {
            let open = self
                .open
                .take()
                .ok_or_else(|| std::io::Error::other("large object could not be opened"))?;
            self.inner = Some(open()?);
        }
        self.inner.as_mut().map_or(Ok(0), |r| r.read(buf))
    }
}
