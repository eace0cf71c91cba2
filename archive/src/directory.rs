//! pg_dump directory-format (`-Fd`) archives: `toc.dat` (header + TOC whose entries name their
//! data files) and one file per data entry, `<dumpId>.dat` plus `.gz`/`.zst`/`.lz4` when
//! compressed; large objects in `blobs.toc` and `blob_<oid>.dat`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::codec::Compression;
use crate::error::ArchiveError;
use crate::primitives::{PrimReader, PrimWriter};
use crate::toc::{
    entry_error, read_entries, validate, write_entries, DataCodec, Extra, Header, TocEntry, TocKind,
};

#[derive(Debug, Clone)]
pub struct DirectoryArchive {
    pub dir: PathBuf,
    pub header: Header,
    pub entries: Vec<TocEntry>,
}

impl DirectoryArchive {
    pub fn toc_path(dir: &Path) -> PathBuf {
        dir.join("toc.dat")
    }

    /// Whether `dir` looks like a directory archive.
    pub fn is_archive(dir: &Path) -> bool {
        Self::toc_path(dir).is_file()
    }

    pub fn open(dir: &Path) -> Result<DirectoryArchive, ArchiveError> {
        let path = Self::toc_path(dir);
        let file = File::open(&path).map_err(|source| ArchiveError::Io {
            path: path.clone(),
            source,
        })?;
        let len = file
            .metadata()
            .map_err(|source| ArchiveError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        let mut r = PrimReader::new(BufReader::new(file));
        let header = Header::read(&mut r, &path)?;
        let entries = read_entries(&mut r, &header, TocKind::Directory, &path, len)?;
        validate(&entries, &path)?;
        if r.pos != len {
            return Err(ArchiveError::Corrupt {
                path,
                why: format!("{} bytes follow the TOC", len - r.pos),
            });
        }
        Ok(DirectoryArchive {
            dir: dir.to_path_buf(),
            header,
            entries,
        })
    }

    /// The data file of an entry as it exists on disk (the TOC names `N.dat`; the writer adds
    /// the compression suffix), or `None` for entries without data.
    pub fn data_file(&self, entry: &TocEntry) -> Result<Option<PathBuf>, ArchiveError> {
        let Some(name) = entry.file_name() else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(name).into_owned();
        if name.contains('/') || name.starts_with('.') {
            return Err(entry_error(
                &self.dir,
                entry,
                format!("data file name {name:?} leaves the archive directory"),
            ));
        }
        for suffix in ["", ".gz", ".zst", ".lz4"] {
            let p = self.dir.join(format!("{name}{suffix}"));
            if p.is_file() {
                return Ok(Some(p));
            }
        }
        Err(entry_error(
            &self.dir,
            entry,
            format!("data file {name} (or {name}.gz/.zst) is missing"),
        ))
    }

    /// Every entry's data file that exists, in TOC order: table data files and large-object
    /// TOC files (`blobs.toc`, or `blobs_<dumpId>.toc` from 1.16 on).
    pub fn data_files(&self) -> Result<Vec<(&TocEntry, PathBuf)>, ArchiveError> {
        let mut out = Vec::new();
        for e in &self.entries {
            if let Some(p) = self.data_file(e)? {
                out.push((e, p));
            }
        }
        Ok(out)
    }

    /// The decompressed data of a TABLE DATA entry.
    pub fn table_data(&self, entry: &TocEntry) -> Result<Box<dyn Read + Send>, ArchiveError> {
        self.table_data_watched(entry, crate::watch::unwatched())
    }

    /// [`DirectoryArchive::table_data`], telling `on_read` the bytes of the data file read.
    pub fn table_data_watched(
        &self,
        entry: &TocEntry,
        on_read: crate::watch::OnRead,
    ) -> Result<Box<dyn Read + Send>, ArchiveError> {
        let path = self
            .data_file(entry)?
            .ok_or_else(|| entry_error(&self.dir, entry, "has no data file"))?;
        if path.extension().is_some_and(|e| e == "lz4") {
            return Err(entry_error(
                &self.dir,
                entry,
                "LZ4-compressed data files are not supported; re-dump with -Z gzip or -Z zstd",
            ));
        }
        let c = Compression::detect(&path).map_err(|source| ArchiveError::Io {
            path: path.clone(),
            source,
        })?;
        let f = File::open(&path).map_err(|source| ArchiveError::Io {
            path: path.clone(),
            source,
        })?;
        let r = BufReader::with_capacity(256 * 1024, crate::watch::Watched::new(f, on_read));
        let d = c.decoder(r).map_err(|source| ArchiveError::Io {
            path: path.clone(),
            source,
        })?;
        let d = crate::codec::NamedReader::new(d, &path, c);
        if entry.copy_stmt.as_ref().is_some_and(|s| !s.is_empty()) {
            return Ok(Box::new(CopyEnd::new(d, &path, entry.dump_id)));
        }
        Ok(Box::new(d))
    }

    /// Writes `toc.dat` of `dir` with this header and these entries (temporary name, rename).
    pub fn write_toc(
        dir: &Path,
        header: &Header,
        entries: &[TocEntry],
    ) -> Result<(), ArchiveError> {
        let path = Self::toc_path(dir);
        crate::atomic::write_file(&path, |file| {
            let mut w = PrimWriter::new(
                BufWriter::new(file),
                header.int_size as usize,
                header.off_size as usize,
            );
            header.write(&mut w)?;
            write_entries(&mut w, header, entries, &path).map_err(io::Error::other)?;
            w.inner.flush()
        })
    }
}

/// COPY data that must end with its `\\.` line (then blank lines), as pg_dump and cbdump
/// write every data file of a COPY entry.
///
/// Why: a data file cut at a line end decodes cleanly when nothing else marks its end:
/// uncompressed files, zstd files cut between two frames, gzip files of several members
/// without our end mark (an older cbdump's). pg_restore then loads the rows before the cut
/// and exits 0. Requiring the terminator catches all of these, for any writer.
struct CopyEnd<R> {
    inner: R,
    path: PathBuf,
    dump_id: i32,
    /// The last three bytes before the trailing line ends.
    tail: Vec<u8>,
    /// Line ends after the last other byte.
    newlines: usize,
    total: u64,
}

impl<R: Read> CopyEnd<R> {
    fn new(inner: R, path: &Path, dump_id: i32) -> Self {
        CopyEnd {
            inner,
            path: path.to_path_buf(),
            dump_id,
            tail: Vec::with_capacity(8),
            newlines: 0,
            total: 0,
        }
    }

    fn note(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let Some(i) = data.iter().rposition(|&b| b != b'\n') else {
            self.newlines += data.len();
            return;
        };
        // The last three bytes before the trailing line ends, across reads.
        let mut w = std::mem::take(&mut self.tail);
        w.resize(w.len() + self.newlines.min(3), b'\n');
        w.extend_from_slice(&data[i.saturating_sub(2)..=i]);
        self.tail = w[w.len().saturating_sub(3)..].to_vec();
        self.newlines = data.len() - 1 - i;
    }

    /// Whether what was read ends with a `\\.` line and only line ends after it (the whole
    /// data is `\\.` for an empty table).
    fn complete(&self) -> bool {
        let content = self.total - self.newlines as u64;
        self.newlines > 0 && (self.tail == b"\n\\." || (self.tail == b"\\." && content == 2))
    }
}

impl<R: Read> Read for CopyEnd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.note(&buf[..n]);
        } else if !buf.is_empty() && !self.complete() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: truncated: the COPY data of TOC entry {} ends without its \\. line \
                     ({} bytes read): the file was cut short",
                    self.path.display(),
                    self.dump_id,
                    self.total
                ),
            ));
        }
        Ok(n)
    }
}

/// The suffix pg_dump gives data files of a codec.
pub fn data_suffix(codec: DataCodec) -> &'static str {
    match codec {
        DataCodec::None => "",
        DataCodec::Gzip => ".gz",
        DataCodec::Lz4 => ".lz4",
        DataCodec::Zstd => ".zst",
    }
}

/// Builds a new directory archive in a temporary directory beside `dir`, renamed into place
/// by [`finish`](Self::finish): data files compressed as the header says (gzip files for
/// gzip, zstd frames for zstd), large objects as `blob_<oid>.dat` with their TOC file, and
/// `toc.dat` last with every written entry's file name.
pub struct DirectoryWriter {
    dir: PathBuf,
    temp: PathBuf,
    header: Header,
    entries: Vec<TocEntry>,
    compression: Compression,
}

impl DirectoryWriter {
    /// `dir` must not exist or be an empty directory (as pg_dump requires).
    pub fn create(
        dir: &Path,
        header: Header,
        entries: Vec<TocEntry>,
    ) -> Result<DirectoryWriter, ArchiveError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ArchiveError::Io { path, source }
        };
        if dir.exists() {
            let mut list = std::fs::read_dir(dir).map_err(io(dir))?;
            if list.next().is_some() {
                return Err(ArchiveError::Io {
                    path: dir.to_path_buf(),
                    source: io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "directory exists and is not empty",
                    ),
                });
            }
        }
        let compression = match header.data_codec() {
            DataCodec::None => Compression::None,
            DataCodec::Gzip => Compression::Gzip(crate::custom::header_level(&header) as u32),
            DataCodec::Zstd => Compression::Zstd(crate::custom::header_level(&header)),
            DataCodec::Lz4 => {
                return Err(ArchiveError::Unsupported {
                    path: dir.to_path_buf(),
                    why: "writing LZ4-compressed archives is not supported".into(),
                })
            }
        };
        let temp = crate::atomic::temp_name(dir);
        let _ = std::fs::remove_dir_all(&temp);
        std::fs::create_dir(&temp).map_err(io(&temp))?;
        let entries = entries
            .into_iter()
            .map(|mut e| {
                e.extra = Extra::File(Some(Vec::new()));
                e
            })
            .collect();
        Ok(DirectoryWriter {
            dir: dir.to_path_buf(),
            temp,
            header,
            entries,
            compression,
        })
    }

    /// Where files are being written until `finish`.
    pub fn temp_dir(&self) -> &Path {
        &self.temp
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn set_file(&mut self, dump_id: i32, name: String) -> Result<(), ArchiveError> {
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.dump_id == dump_id)
            .ok_or_else(|| ArchiveError::Corrupt {
                path: self.temp.clone(),
                why: format!("no TOC entry with dump id {dump_id}"),
            })?;
        e.extra = Extra::File(Some(name.into_bytes()));
        Ok(())
    }

    /// A writer of `<dumpId>.dat` (plus the codec's suffix); call `finish` on it.
    pub fn data_writer(
        &mut self,
        dump_id: i32,
    ) -> Result<crate::codec::Encoder<BufWriter<File>>, ArchiveError> {
        let name = format!("{dump_id}.dat");
        self.set_file(dump_id, name.clone())?;
        self.create_compressed(&name)
    }

    fn create_compressed(
        &self,
        name: &str,
    ) -> Result<crate::codec::Encoder<BufWriter<File>>, ArchiveError> {
        let path = self
            .temp
            .join(format!("{name}{}", data_suffix(self.header.data_codec())));
        let f = File::create(&path).map_err(|source| ArchiveError::Io {
            path: path.clone(),
            source,
        })?;
        self.compression
            .encoder(BufWriter::with_capacity(256 * 1024, f))
            .map_err(|source| ArchiveError::Io { path, source })
    }

    /// Writes the data file of a TABLE DATA entry from `data` (COPY text ending with `\.`).
    /// Returns the uncompressed bytes.
    pub fn write_table_data(
        &mut self,
        dump_id: i32,
        data: &mut dyn Read,
    ) -> Result<u64, ArchiveError> {
        let path = self.temp.join(format!("{dump_id}.dat"));
        let io = |source| ArchiveError::Io {
            path: path.clone(),
            source,
        };
        let mut w = self.data_writer(dump_id)?;
        let n = io::copy(data, &mut w).map_err(io)?;
        w.finish().map_err(io)?.flush().map_err(io)?;
        Ok(n)
    }

    /// Writes the large objects of a BLOBS entry: one `blob_<oid>.dat` each and the list
    /// file pg_restore reads (`blobs.toc` before 1.16, `blobs_<dumpId>.toc` after).
    pub fn write_blobs(
        &mut self,
        dump_id: i32,
        blobs: impl IntoIterator<Item = io::Result<(u32, Box<dyn Read + Send>)>>,
    ) -> Result<(), ArchiveError> {
        let list_name = if self.header.minor >= 16 {
            format!("blobs_{dump_id}.toc")
        } else {
            "blobs.toc".to_string()
        };
        self.set_file(dump_id, list_name.clone())?;
        let list_path = self.temp.join(&list_name);
        let list_err = |source| ArchiveError::Io {
            path: list_path.clone(),
            source,
        };
        let mut list = BufWriter::new(File::create(&list_path).map_err(list_err)?);
        for blob in blobs {
            let (oid, mut r) = blob.map_err(list_err)?;
            let name = format!("blob_{oid}.dat");
            let path = self.temp.join(&name);
            let mut w = self.create_compressed(&name)?;
            io::copy(&mut r, &mut w)
                .and_then(|_| w.finish()?.flush())
                .map_err(|source| ArchiveError::Io { path, source })?;
            writeln!(list, "{oid} {name}").map_err(list_err)?;
        }
        list.flush().map_err(list_err)
    }

    /// Writes `toc.dat`, syncs every file and renames the directory into place.
    pub fn finish(self) -> Result<(), ArchiveError> {
        let mut header = self.header.clone();
        // pg_dump marks toc.dat with the tar format code.
        header.format = 3;
        DirectoryArchive::write_toc(&self.temp, &header, &self.entries)?;
        let sync = |path: &Path| -> io::Result<()> {
            for f in std::fs::read_dir(path)? {
                File::open(f?.path())?.sync_all()?;
            }
            File::open(path)?.sync_all()
        };
        sync(&self.temp).map_err(|source| ArchiveError::Io {
            path: self.temp.clone(),
            source,
        })?;
        if self.dir.exists() {
            std::fs::remove_dir(&self.dir).map_err(|source| ArchiveError::Io {
                path: self.dir.clone(),
                source,
            })?;
        }
        std::fs::rename(&self.temp, &self.dir).map_err(|source| ArchiveError::Io {
            path: self.dir.clone(),
            source,
        })
    }

    /// Removes the temporary directory (after an error).
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.temp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(data: &[u8], step: usize) -> io::Result<Vec<u8>> {
        let r = CopyEnd::new(testkit::Trickle::new(data, step), Path::new("3.dat"), 3);
        let mut out = Vec::new();
        io::BufReader::with_capacity(step, r).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn copy_data_must_end_with_its_terminator_line() {
        let complete: &[&[u8]] = &[
            b"\\.\n\n\n",
            b"\\.\n",
            b"1\tx\n2\ty\n\\.\n\n\n",
            b"1\tx\n\\.\n",
            b"\n\n\\.\n",
        ];
        let cut: &[&[u8]] = &[
            b"",
            b"1\tx\n",
            b"1\tx\n2\ty\n",
            b"1\tx\n\\.",
            b"a\\\\.\n",
            b"x\\.\n\n\n",
            b"\n\n\n",
        ];
        for step in [1, 2, 3, 5, 64] {
            for data in complete {
                assert_eq!(read(data, step).unwrap(), *data, "{data:?} step {step}");
            }
            for data in cut {
                let err = read(data, step).unwrap_err();
                assert_eq!(
                    err.kind(),
                    io::ErrorKind::UnexpectedEof,
                    "{data:?} step {step}"
                );
                assert!(err.to_string().contains("truncated: "), "{err}");
            }
        }
    }
}
