//! One table's rows as a single stream: the decompressed pieces of contents 0..N-1 concatenated.
//!
//! Each piece is either a whole per-table file (multiple-data-file mode) or a byte range of a
//! segment's single data file (single-data-file mode). Every piece ends at a row boundary, so
//! plain concatenation is valid CSV for one `COPY ... FROM STDIN`. Pieces are opened lazily, one
//! at a time, so memory stays at one decoder plus buffers whatever the table size.
//!
//! Single data files are one compressed stream per segment; reaching a table's range means
//! decompressing everything before it. [`DecoderCache`] keeps each segment's decoder where the
//! previous table ended, so reading tables in toc order decompresses every file exactly once.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::config::Compression;
use crate::error::{DataProblem, Error};
use crate::layout::DataFile;

/// Where one content's part of a table comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PieceSource {
    /// A whole per-table file.
    Whole(DataFile),
    /// `[start, end)` of a segment's uncompressed single-data-file stream.
    Slice {
        file: DataFile,
        start: u64,
        end: u64,
    },
    /// The file the toc promises is not there; reading reports it.
    Missing { expected: PathBuf },
}

/// One content's part of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub content: i32,
    pub source: PieceSource,
}

impl Piece {
    /// The file this piece reads (or would read).
    pub fn path(&self) -> &std::path::Path {
        match &self.source {
            PieceSource::Whole(f) | PieceSource::Slice { file: f, .. } => &f.path,
            PieceSource::Missing { expected } => expected,
        }
    }
}

type Decoder = Box<dyn Read + Send>;

/// Open single-data-file decoders parked at the uncompressed position where a table ended.
#[derive(Default)]
pub struct DecoderCache {
    parked: Mutex<HashMap<PathBuf, (u64, Decoder)>>,
}

impl std::fmt::Debug for DecoderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecoderCache")
    }
}

impl DecoderCache {
    /// A decoder for `file` positioned at or before `start`, with its position.
    fn take(&self, file: &DataFile, start: u64) -> io::Result<(u64, Decoder)> {
        if let Ok(mut parked) = self.parked.lock() {
            if let Some((pos, _)) = parked.get(&file.path) {
                if *pos <= start {
                    if let Some(found) = parked.remove(&file.path) {
                        return Ok(found);
                    }
                }
            }
        }
        Ok((0, open_decoder(file)?))
    }

    fn park(&self, path: PathBuf, pos: u64, decoder: Decoder) {
        if let Ok(mut parked) = self.parked.lock() {
            parked.insert(path, (pos, decoder));
        }
    }
}

/// Opens a data file through the decompressor its compression calls for. gzip accepts
/// concatenated members and zstd concatenated frames, as the format doc advises.
pub fn open_decoder(file: &DataFile) -> io::Result<Decoder> {
    let f = BufReader::with_capacity(128 * 1024, File::open(&file.path)?);
    Ok(match file.compression {
        Compression::None => Box::new(f),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(f)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(f)?),
    })
}

/// Counts CSV records (newlines outside quoted fields) in a byte stream fed in chunks.
#[derive(Debug, Clone, Default)]
pub struct RowCounter {
    in_quotes: bool,
    rows: u64,
}

impl RowCounter {
    pub fn feed(&mut self, buf: &[u8]) {
        for i in memchr::memchr2_iter(b'"', b'\n', buf) {
            if buf[i] == b'"' {
                // A doubled quote inside a quoted field toggles twice: no net change.
                self.in_quotes = !self.in_quotes;
            } else if !self.in_quotes {
                self.rows += 1;
            }
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// True when the stream so far ends outside a quoted field.
    pub fn balanced(&self) -> bool {
        !self.in_quotes
    }
}

struct Current {
    path: PathBuf,
    decoder: Decoder,
    /// Bytes still to deliver for a slice; `None` for whole files.
    remaining: Option<u64>,
    slice_start: u64,
    slice_end: u64,
    last_byte: Option<u8>,
}

/// The merged, decompressed data of one table. Its `Read` errors wrap [`Error::TableData`]
/// (recover it with [`Error::from_io`]) naming the table and file.
pub struct TableReader {
    table: String,
    pieces: std::vec::IntoIter<Piece>,
    current: Option<Current>,
    cache: Option<Arc<DecoderCache>>,
    counter: RowCounter,
    bytes: u64,
    files: Vec<PathBuf>,
}

impl TableReader {
    /// Reads `pieces` in order; `cache` lets slices continue a segment's decoder.
    pub fn new(
        table: impl Into<String>,
        pieces: Vec<Piece>,
        cache: Option<Arc<DecoderCache>>,
    ) -> TableReader {
        TableReader {
            table: table.into(),
            pieces: pieces.into_iter(),
            current: None,
            cache,
            counter: RowCounter::default(),
            bytes: 0,
            files: Vec::new(),
        }
    }

    /// CSV rows delivered so far.
    pub fn rows(&self) -> u64 {
        self.counter.rows()
    }

    /// Bytes delivered so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Files opened so far, in order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    fn fail(&self, path: PathBuf, problem: DataProblem) -> io::Error {
        io::Error::other(Error::TableData {
            table: self.table.clone(),
            file: path,
            problem,
        })
    }

    fn decode_error(&self, path: PathBuf, e: io::Error) -> io::Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return e;
        }
        self.fail(path, DataProblem::Corrupt(e.to_string()))
    }

    fn open(&mut self, piece: Piece) -> io::Result<Current> {
        let path = piece.path().to_path_buf();
        self.files.push(path.clone());
        match piece.source {
            PieceSource::Missing { expected } => Err(self.fail(expected, DataProblem::Missing)),
            PieceSource::Whole(file) => {
                let decoder = open_decoder(&file).map_err(|e| self.open_error(&file.path, e))?;
                Ok(Current {
                    path,
                    decoder,
                    remaining: None,
                    slice_start: 0,
                    slice_end: 0,
                    last_byte: None,
                })
            }
            PieceSource::Slice { file, start, end } => {
                let (pos, mut decoder) = match &self.cache {
                    Some(cache) => cache.take(&file, start),
                    None => open_decoder(&file).map(|d| (0, d)),
                }
                .map_err(|e| self.open_error(&file.path, e))?;
                let skip = start - pos;
                let skipped = io::copy(&mut (&mut decoder).take(skip), &mut io::sink())
                    .map_err(|e| self.decode_error(path.clone(), e))?;
                if skipped < skip {
                    return Err(self.fail(
                        path,
                        DataProblem::OffsetsBeyondEnd {
                            start,
                            end,
                            len: pos + skipped,
                        },
                    ));
                }
                Ok(Current {
                    path,
                    decoder,
                    remaining: Some(end - start),
                    slice_start: start,
                    slice_end: end,
                    last_byte: None,
                })
            }
        }
    }

    fn open_error(&self, path: &std::path::Path, e: io::Error) -> io::Error {
        if e.kind() == io::ErrorKind::NotFound {
            self.fail(path.to_path_buf(), DataProblem::Missing)
        } else {
            self.fail(path.to_path_buf(), DataProblem::Read(e.to_string()))
        }
    }

    /// Ends the current piece: checks the row boundary and parks a slice decoder for reuse.
    fn finish_current(&mut self) -> io::Result<()> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        if cur.last_byte.is_some_and(|b| b != b'\n') {
            return Err(self.fail(cur.path, DataProblem::NotAtRowBoundary));
        }
        if cur.remaining.is_some() {
            if let Some(cache) = &self.cache {
                cache.park(cur.path, cur.slice_end, cur.decoder);
            }
        }
        Ok(())
    }
}

impl Read for TableReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.current.is_none() {
                let Some(piece) = self.pieces.next() else {
                    return Ok(0);
                };
                self.current = Some(self.open(piece)?);
            }
            let Some(cur) = self.current.as_mut() else {
                continue;
            };
            let want = match cur.remaining {
                Some(0) => 0,
                Some(r) => buf.len().min(usize::try_from(r).unwrap_or(usize::MAX)),
                None => buf.len(),
            };
            let n = if want == 0 {
                0
            } else {
                match cur.decoder.read(&mut buf[..want]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let path = cur.path.clone();
                        self.current = None;
                        return Err(self.decode_error(path, e));
                    }
                }
            };
            if n == 0 {
                if let Some(r) = cur.remaining.filter(|r| *r > 0) {
                    let (start, end, path) = (cur.slice_start, cur.slice_end, cur.path.clone());
                    self.current = None;
                    return Err(self.fail(
                        path,
                        DataProblem::OffsetsBeyondEnd {
                            start,
                            end,
                            len: end - r,
                        },
                    ));
                }
                self.finish_current()?;
                continue;
            }
            if let Some(r) = cur.remaining.as_mut() {
                *r -= n as u64;
            }
            cur.last_byte = Some(buf[n - 1]);
            self.counter.feed(&buf[..n]);
            self.bytes += n as u64;
            return Ok(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn counts_rows_respecting_quotes() {
        let mut c = RowCounter::default();
        c.feed(b"1,\"a\nb\"\n2,\"x\"\"");
        c.feed(b"y\"\n3,\n");
        assert_eq!(c.rows(), 3);
        assert!(c.balanced());
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn merges_whole_and_slices_and_reports_problems() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.gz");
        std::fs::write(&a, gz(b"1,x\n2,y\n")).unwrap();
        let b = dir.path().join("b.zst");
        std::fs::write(&b, zstd::encode_all(&b"skip\n3,z\nrest\n"[..], 3).unwrap()).unwrap();
        let cache = Arc::new(DecoderCache::default());
        let pieces = vec![
            Piece {
                content: 0,
                source: PieceSource::Whole(DataFile {
                    path: a.clone(),
                    compression: Compression::Gzip,
                }),
            },
            Piece {
                content: 1,
                source: PieceSource::Slice {
                    file: DataFile {
                        path: b.clone(),
                        compression: Compression::Zstd,
                    },
                    start: 5,
                    end: 9,
                },
            },
        ];
        let mut r = TableReader::new("s.t", pieces, Some(cache.clone()));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"1,x\n2,y\n3,z\n");
        assert_eq!(r.rows(), 3);
        // The parked decoder continues at 9.
        let next = Piece {
            content: 1,
            source: PieceSource::Slice {
                file: DataFile {
                    path: b.clone(),
                    compression: Compression::Zstd,
                },
                start: 9,
                end: 14,
            },
        };
        let mut r = TableReader::new("s.u", vec![next], Some(cache));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"rest\n");

        // Beyond the end.
        let beyond = Piece {
            content: 1,
            source: PieceSource::Slice {
                file: DataFile {
                    path: b.clone(),
                    compression: Compression::Zstd,
                },
                start: 9,
                end: 40,
            },
        };
        let e = TableReader::new("s.v", vec![beyond], None)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        let e = Error::from_io(e, &b);
        assert!(
            matches!(
                &e,
                Error::TableData {
                    problem: DataProblem::OffsetsBeyondEnd {
                        start: 9,
                        end: 40,
                        len: 14
                    },
                    ..
                }
            ),
            "{e}"
        );

        // Truncated gzip.
        let t = dir.path().join("t.gz");
        let full = gz(&b"9,abc\n".repeat(1000));
        std::fs::write(&t, &full[..full.len() / 2]).unwrap();
        let p = Piece {
            content: 0,
            source: PieceSource::Whole(DataFile {
                path: t.clone(),
                compression: Compression::Gzip,
            }),
        };
        let e = TableReader::new("s.w", vec![p], None)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        let e = Error::from_io(e, &t);
        assert!(
            matches!(
                &e,
                Error::TableData {
                    problem: DataProblem::Corrupt(_),
                    ..
                }
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("table s.w") && e.to_string().contains("t.gz"),
            "{e}"
        );

        // Cut mid-row.
        let m = dir.path().join("m");
        std::fs::write(&m, b"1,x\n2,").unwrap();
        let p = Piece {
            content: 0,
            source: PieceSource::Whole(DataFile {
                path: m.clone(),
                compression: Compression::None,
            }),
        };
        let e = Error::from_io(
            TableReader::new("s.x", vec![p], None)
                .read_to_end(&mut Vec::new())
                .unwrap_err(),
            &m,
        );
        assert!(
            matches!(
                &e,
                Error::TableData {
                    problem: DataProblem::NotAtRowBoundary,
                    ..
                }
            ),
            "{e}"
        );
    }
}

#[cfg(test)]
mod truncation_tests {
    use super::*;

    fn read_whole(path: &std::path::Path, compression: Compression) -> Result<Vec<u8>, Error> {
        let p = Piece {
            content: 0,
            source: PieceSource::Whole(DataFile {
                path: path.to_path_buf(),
                compression,
            }),
        };
        let mut out = Vec::new();
        TableReader::new("s.t", vec![p], None)
            .read_to_end(&mut out)
            .map_err(|e| Error::from_io(e, path))?;
        Ok(out)
    }

    #[test]
    fn truncated_zstd_and_empty_compressed_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let z = dir.path().join("t.zst");
        let full = zstd::encode_all(&b"1,abcdef\n".repeat(5000)[..], 3).unwrap();
        std::fs::write(&z, &full[..full.len() - 5]).unwrap();
        let e = read_whole(&z, Compression::Zstd).unwrap_err();
        assert!(
            matches!(
                &e,
                Error::TableData {
                    problem: DataProblem::Corrupt(_),
                    ..
                }
            ),
            "{e}"
        );
        for (name, c) in [("e.gz", Compression::Gzip), ("e.zst", Compression::Zstd)] {
            let p = dir.path().join(name);
            std::fs::write(&p, b"").unwrap();
            let e = read_whole(&p, c).unwrap_err();
            assert!(
                matches!(
                    &e,
                    Error::TableData {
                        problem: DataProblem::Corrupt(_),
                        ..
                    }
                ),
                "{name}: {e}"
            );
        }
    }
}
