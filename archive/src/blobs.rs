//! Large objects in archives: custom archives keep them in one block of type 3 (each object an
//! oid followed by its own compressed chunk stream, ending with oid 0); directory archives list
//! them in `blobs.toc` (`<oid> blob_<oid>.dat`) with one file each.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::custom::BLK_BLOBS;
use crate::error::ArchiveError;
use crate::primitives::PrimReader;
use crate::toc::{entry_error, map_io, DataCodec, Extra, TocEntry};
use crate::{Archive, CustomArchive};

/// One large object: its oid and a reader of its decompressed contents.
pub type Blob = Result<(u32, Box<dyn Read + Send>), ArchiveError>;

/// Every large object of a BLOBS entry, in archive order. Readers are opened lazily, one at a
/// time, so memory stays flat whatever their sizes.
pub fn read_all(archive: &Archive, entry: &TocEntry) -> Result<Vec<Blob>, ArchiveError> {
    match archive {
        Archive::Directory(d) => directory_blobs(&d.dir, entry),
        Archive::Custom(c) => custom_blobs(c, entry),
    }
}

/// A directory archive's objects: `blobs.toc` before format 1.16, `blobs_<dumpId>.toc` (one
/// per BLOBS entry) after; each line `<oid> <file>`, the file possibly compressed.
fn directory_blobs(dir: &Path, entry: &TocEntry) -> Result<Vec<Blob>, ArchiveError> {
    let name = entry
        .file_name()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_else(|| "blobs.toc".into());
    if leaves_directory(&name) {
        return Err(entry_error(
            dir,
            entry,
            format!("large-object list {name:?} leaves the archive directory"),
        ));
    }
    let toc = dir.join(name);
    let io = |source| ArchiveError::Io {
        path: toc.clone(),
        source,
    };
    let f = File::open(&toc).map_err(io)?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(io)?;
        let mut parts = line.split_whitespace();
        let (Some(oid), Some(name)) = (parts.next(), parts.next()) else {
            continue;
        };
        let corrupt = |why: String| ArchiveError::Corrupt {
            path: toc.clone(),
            why,
        };
        let oid: u32 = oid
            .parse()
            .map_err(|_| corrupt(format!("bad line {line:?}")))?;
        if leaves_directory(name) {
            return Err(corrupt(format!("file name {name:?} leaves the directory")));
        }
        let path = stored_file(dir, name);
        let opener = move || {
            crate::codec::open_decoded(&path)
                .map(|(_, r)| r)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        out.push(Ok((
            oid,
            Box::new(Lazy::new(opener)) as Box<dyn Read + Send>,
        )));
    }
    Ok(out)
}

fn leaves_directory(name: &str) -> bool {
    name.contains('/') || name.starts_with('.')
}

/// `name` in `dir`, or its `.gz` / `.zst` form when only that exists.
fn stored_file(dir: &Path, name: &str) -> PathBuf {
    let mut path = dir.join(name);
    for suffix in [".gz", ".zst"] {
        let p = dir.join(format!("{name}{suffix}"));
        if !path.exists() && p.exists() {
            path = p;
        }
    }
    path
}

/// A custom archive's objects: one pass over the block records where each object's chunk
/// stream starts; each reader then seeks there and decodes on its own file handle.
fn custom_blobs(c: &CustomArchive, entry: &TocEntry) -> Result<Vec<Blob>, ArchiveError> {
    let codec = c.header.data_codec();
    if codec == DataCodec::Lz4 {
        return Err(entry_error(
            &c.path,
            entry,
            "LZ4-compressed archives are not supported",
        ));
    }
    let starts = object_starts(c, entry)?;
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

/// Each object's oid and the offset of its first chunk, walking the entry's block once.
fn object_starts(c: &CustomArchive, entry: &TocEntry) -> Result<Vec<(u32, u64)>, ArchiveError> {
    let mut r = open_block(c, entry)?;
    let block = |e| map_io(e, &c.path, "a large-object block");
    let chunk = |e| map_io(e, &c.path, "a large-object chunk");
    let mut starts = Vec::new();
    loop {
        let oid = r.int().map_err(block)?;
        if oid == 0 {
            return Ok(starts);
        }
        starts.push((oid as u32, r.pos));
        loop {
            let len = r.int().map_err(chunk)?;
            if len == 0 {
                break;
            }
            if len < 0 || len as u64 > c.file_len {
                return Err(entry_error(&c.path, entry, format!("chunk length {len}")));
            }
            r.skip(len as u64).map_err(chunk)?;
        }
    }
}

/// A reader positioned after the entry's block header (its type checked: large objects).
fn open_block(
    c: &CustomArchive,
    entry: &TocEntry,
) -> Result<PrimReader<BufReader<File>>, ArchiveError> {
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
    let mut f = File::open(&c.path).map_err(|source| ArchiveError::Io {
        path: c.path.clone(),
        source,
    })?;
    let block = |e| map_io(e, &c.path, "a large-object block");
    f.seek(SeekFrom::Start(pos)).map_err(block)?;
    let mut r = PrimReader::new(BufReader::new(f));
    r.int_size = c.header.int_size as usize;
    r.off_size = c.header.off_size as usize;
    r.pos = pos;
    let kind = r.byte().map_err(block)?;
    r.int().map_err(block)?;
    if kind != BLK_BLOBS {
        return Err(entry_error(
            &c.path,
            entry,
            format!("block type {kind} is not large objects"),
        ));
    }
    Ok(r)
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
