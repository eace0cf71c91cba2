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
        Compression::Gzip => archive::inflate::gzip(f),
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

/// The decompressed data of pieces read one after the other. Its `Read` errors wrap
/// [`Error::TableData`] (recover it with [`Error::from_io`]) naming the table and file.
pub struct PiecesReader {
    table: String,
    pieces: std::vec::IntoIter<Piece>,
    current: Option<Current>,
    cache: Option<Arc<DecoderCache>>,
    counter: RowCounter,
    bytes: u64,
    files: Vec<PathBuf>,
}

impl PiecesReader {
    /// Reads `pieces` in order; `cache` lets slices continue a segment's decoder.
    pub fn new(
        table: impl Into<String>,
        pieces: Vec<Piece>,
        cache: Option<Arc<DecoderCache>>,
    ) -> PiecesReader {
        PiecesReader {
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

impl Read for PiecesReader {
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

/// Rows handed out from one content before the next content's turn.
const ROWS_PER_TURN: usize = 16;

/// Most contents read side by side: each holds a file open, and `-j` tables at once on a
/// cluster of hundreds of segments would run past the usual 1024 open files. Bigger tables'
/// contents are read one after the other.
pub const SIDE_BY_SIDE: usize = 64;

/// The merged, decompressed data of one table: its contents' pieces read side by side.
///
/// Segments hold a hash-distributed share of the table, each in the order the source table was
/// scanned. One content after the other reaches an index in scattered key order (every content
/// spans the whole key range): loading 3M rows into a table with its primary key took 5.0-5.3 s
/// that way against 4.0 s in key order. So while every content's rows start with an integer
/// (a serial key, the common case) the contents are merged on it, which gives back the source's
/// order; otherwise they advance at the same pace, 16 rows at a
/// time from whichever content has handed out the fewest rows per byte of its piece. The
/// restored heap is close to the source's physical order either way. Tables of more than
/// [`SIDE_BY_SIDE`] contents are read content after content. Errors wrap [`Error::TableData`]
/// naming the table and file.
pub struct TableReader {
    parts: Vec<Part>,
    turn: usize,
    rows_in_turn: usize,
    /// Still merging by leading integer keys (see [`TableReader::smallest_key`]).
    merge: bool,
    /// The last call stopped inside a row of `parts[turn]`.
    mid_row: bool,
    files: Vec<PathBuf>,
    /// What it was made from, for [`TableReader::again`].
    origin: (String, Vec<Piece>, Option<Arc<DecoderCache>>),
}

/// One content's reader and the rows read ahead from it.
struct Part {
    reader: PiecesReader,
    buf: Vec<u8>,
    /// Bytes before this were handed out.
    start: usize,
    /// Bytes before this were scanned for row ends.
    scanned: usize,
    in_quotes: bool,
    /// End of the row being handed out, once found.
    row_end: Option<usize>,
    eof: bool,
    /// Size of the piece as stored (its share of the table), and rows handed out from it.
    weight: f64,
    handed: u64,
    /// Leading integer of the next row (key-order merging).
    head_key: Option<i64>,
}

impl Part {
    fn exhausted(&self) -> bool {
        self.eof && self.start == self.buf.len()
    }

    /// End of the next row (exclusive) in `buf`, reading ahead as needed; `None` once the
    /// reader is at its end (what is left, if anything, is handed out as it is: the reader has
    /// already reported a piece that does not end at a row boundary).
    fn next_row_end(&mut self) -> io::Result<Option<usize>> {
        if let Some(e) = self.row_end {
            return Ok(Some(e));
        }
        loop {
            for i in memchr::memchr2_iter(b'"', b'\n', &self.buf[self.scanned..]) {
                let at = self.scanned + i;
                if self.buf[at] == b'"' {
                    // A doubled quote toggles twice: no net change.
                    self.in_quotes = !self.in_quotes;
                } else if !self.in_quotes {
                    self.scanned = at + 1;
                    self.row_end = Some(at + 1);
                    return Ok(self.row_end);
                }
            }
            self.scanned = self.buf.len();
            if self.eof {
                return Ok(None);
            }
            // Keep what was not handed out yet; read more behind it.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.scanned -= self.start;
                self.start = 0;
            }
            let have = self.buf.len();
            self.buf.resize(have + 64 * 1024, 0);
            let n = loop {
                match self.reader.read(&mut self.buf[have..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf.truncate(have);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(have + n);
            if n == 0 {
                self.eof = true;
            }
        }
    }
}

impl TableReader {
    /// Reads `pieces` (one per content) side by side; `cache` lets single-data-file slices
    /// continue their segment's decoder.
    pub fn new(
        table: impl Into<String>,
        pieces: Vec<Piece>,
        cache: Option<Arc<DecoderCache>>,
    ) -> TableReader {
        let table = table.into();
        let origin = (table.clone(), pieces.clone(), cache.clone());
        let groups: Vec<Vec<Piece>> = if pieces.len() > SIDE_BY_SIDE {
            vec![pieces]
        } else {
            pieces.into_iter().map(|p| vec![p]).collect()
        };
        let parts = groups
            .into_iter()
            .map(|group| {
                let p = &group[0];
                let weight = match &p.source {
                    PieceSource::Whole(f) => std::fs::metadata(&f.path).map_or(1, |m| m.len()),
                    PieceSource::Slice { start, end, .. } => end - start,
                    PieceSource::Missing { .. } => 1,
                };
                let weight: u64 = if group.len() == 1 { weight } else { 1 };
                Part {
                    reader: PiecesReader::new(table.clone(), group, cache.clone()),
                    buf: Vec::new(),
                    start: 0,
                    scanned: 0,
                    in_quotes: false,
                    row_end: None,
                    eof: false,
                    weight: weight.max(1) as f64,
                    handed: 0,
                    head_key: None,
                }
            })
            .collect();
        TableReader {
            parts,
            turn: 0,
            rows_in_turn: 0,
            merge: true,
            mid_row: false,
            files: Vec::new(),
            origin,
        }
    }

    /// A new reader of the same table from its first row (files are opened as it reads; a
    /// single-data-file segment is decoded again from its start if its decoder has moved past
    /// this table). For loading the table again another way.
    pub fn again(&self) -> TableReader {
        let (table, pieces, cache) = self.origin.clone();
        TableReader::new(table, pieces, cache)
    }

    /// CSV rows delivered so far.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.reader.rows()).sum()
    }

    /// Bytes read from the decoders so far.
    pub fn bytes_read(&self) -> u64 {
        self.parts.iter().map(|p| p.reader.bytes_read()).sum()
    }

    /// Files opened so far, in content order.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = self.files.clone();
        for p in &self.parts {
            out.extend(p.reader.files().iter().cloned());
        }
        out
    }

    /// The content furthest behind (fewest rows handed out per byte) that has data left;
    /// ties go to the lowest content.
    fn next_turn(&mut self) {
        let mut best: Option<(usize, f64)> = None;
        for (i, p) in self.parts.iter().enumerate() {
            if p.exhausted() {
                continue;
            }
            let pace = p.handed as f64 / p.weight;
            if best.is_none_or(|(_, b)| pace < b) {
                best = Some((i, pace));
            }
        }
        self.turn = best.map_or(0, |(i, _)| i);
        self.rows_in_turn = 0;
    }
}

impl TableReader {
    /// The part whose row goes next, with that row located; `None` when every part is done.
    fn choose(&mut self) -> io::Result<Option<usize>> {
        if self.merge {
            match self.smallest_key()? {
                Merge::Part(i) => return Ok(Some(i)),
                Merge::Done => return Ok(None),
                Merge::Unordered => self.merge = false,
            }
        }
        // By pace: stay for a turn's rows, then the content furthest behind.
        for _ in 0..=self.parts.len() {
            if self.rows_in_turn >= ROWS_PER_TURN || self.parts[self.turn].exhausted() {
                self.next_turn();
            }
            let part = &mut self.parts[self.turn];
            if part.next_row_end()?.is_some() || part.start < part.buf.len() {
                return Ok(Some(self.turn));
            }
            // At its end now; try another.
            self.rows_in_turn = ROWS_PER_TURN;
        }
        Ok(None)
    }

    /// While every content's rows start with an integer, the content whose next row has the
    /// smallest one: contents scanned in key order (a serial key, the common case) merge back
    /// into key order, and a row out of place (an updated one) does not end the merge. A
    /// first field that is not an integer ends merging for good.
    fn smallest_key(&mut self) -> io::Result<Merge> {
        let mut best: Option<(usize, i64)> = None;
        for i in 0..self.parts.len() {
            let part = &mut self.parts[i];
            let Some(end) = part.next_row_end()? else {
                if part.start == part.buf.len() {
                    continue; // done
                }
                return Ok(Merge::Unordered); // a last row without its line end: the reader says so
            };
            let key = match part.head_key {
                Some(k) => k,
                None => {
                    let Some(k) = leading_integer(&part.buf[part.start..end]) else {
                        return Ok(Merge::Unordered);
                    };
                    part.head_key = Some(k);
                    k
                }
            };
            if best.is_none_or(|(_, b)| key < b) {
                best = Some((i, key));
            }
        }
        Ok(best.map_or(Merge::Done, |(i, _)| Merge::Part(i)))
    }
}

enum Merge {
    Part(usize),
    Done,
    Unordered,
}

/// The first CSV field as an integer, when it is one (unquoted, optional minus, up to 18
/// digits).
fn leading_integer(row: &[u8]) -> Option<i64> {
    let field = match memchr::memchr2(b',', b'\n', row) {
        Some(i) => &row[..i],
        None => row,
    };
    let (neg, digits) = match field.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits
        .iter()
        .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'));
    Some(if neg { -v } else { v })
}

impl Read for TableReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < out.len() {
            if !self.mid_row {
                match self.choose()? {
                    Some(i) => self.turn = i,
                    None => break,
                }
            }
            let part = &mut self.parts[self.turn];
            let end = part.next_row_end()?.unwrap_or(part.buf.len());
            let n = (end - part.start).min(out.len() - written);
            out[written..written + n].copy_from_slice(&part.buf[part.start..part.start + n]);
            part.start += n;
            written += n;
            if part.start < end {
                // `out` is full in the middle of a row: the row goes on next call.
                self.mid_row = true;
                break;
            }
            self.mid_row = false;
            part.row_end = None;
            part.head_key = None;
            part.handed += 1;
            self.rows_in_turn += 1;
        }
        Ok(written)
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

    fn whole_gz(dir: &std::path::Path, name: &str, data: &[u8], content: i32) -> Piece {
        let path = dir.join(name);
        std::fs::write(&path, gz(data)).unwrap();
        Piece {
            content,
            source: PieceSource::Whole(DataFile {
                path,
                compression: Compression::Gzip,
            }),
        }
    }

    #[test]
    fn contents_are_interleaved_by_whole_rows() {
        let dir = tempfile::tempdir().unwrap();
        let rows = |tag: &str, n: usize| -> Vec<String> {
            (0..n)
                .map(|i| {
                    if i % 5 == 0 {
                        format!("{tag}{i},\"two\nlines, \"\"q\"\"\"\n")
                    } else {
                        format!("{tag}{i},plain\n")
                    }
                })
                .collect()
        };
        let (a, b, c) = (rows("a", 40), rows("b", 3), rows("c", 20));
        let pieces = vec![
            whole_gz(dir.path(), "a.gz", a.concat().as_bytes(), 0),
            whole_gz(dir.path(), "b.gz", b.concat().as_bytes(), 1),
            whole_gz(dir.path(), "c.gz", c.concat().as_bytes(), 2),
        ];
        let mut want = Vec::new();
        want.extend_from_slice(&a[..16]);
        want.extend_from_slice(&b[..]);
        want.extend_from_slice(&c[..16]);
        want.extend_from_slice(&a[16..32]);
        want.extend_from_slice(&c[16..]);
        want.extend_from_slice(&a[32..]);
        let want = want.concat();
        // Any buffer size gives the same stream (a row may straddle two reads).
        for size in [1usize, 7, 4096] {
            let mut r = TableReader::new("s.t", pieces.clone(), None);
            let mut got = Vec::new();
            let mut buf = vec![0u8; size];
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(String::from_utf8(got).unwrap(), want, "buffer {size}");
            assert_eq!(r.rows(), 63);
            assert_eq!(r.files().len(), 3);
        }
    }

    #[test]
    fn contents_sorted_on_a_leading_integer_merge_back_into_order() {
        let dir = tempfile::tempdir().unwrap();
        // Rows 1..=300 spread over three contents by a hash, each content in key order.
        let mut parts = [String::new(), String::new(), String::new()];
        for k in 1..=300u64 {
            let c = (k.wrapping_mul(2654435761) >> 7) as usize % 3;
            let v = if k % 9 == 0 { "\"a,\nb\"" } else { "x" };
            parts[c].push_str(&format!("{k},{v}\n"));
        }
        let pieces: Vec<Piece> = parts
            .iter()
            .enumerate()
            .map(|(c, text)| whole_gz(dir.path(), &format!("{c}.gz"), text.as_bytes(), c as i32))
            .collect();
        let mut got = Vec::new();
        let mut r = TableReader::new("s.t", pieces.clone(), None);
        let mut buf = [0u8; 5];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        let want: String = (1..=300u64)
            .map(|k| format!("{k},{}\n", if k % 9 == 0 { "\"a,\nb\"" } else { "x" }))
            .collect();
        assert_eq!(String::from_utf8(got).unwrap(), want);

        // One content out of order: merged as it comes, every row once.
        let shuffled = whole_gz(dir.path(), "s.gz", b"5,x\n2,x\n9,x\n", 3);
        let mut all = pieces;
        all.push(shuffled);
        let mut out = String::new();
        let mut r = TableReader::new("s.t", all, None);
        r.read_to_string(&mut out).unwrap();
        assert_eq!(r.rows(), 303);
        let mut lines: Vec<&str> = out.split_inclusive('\n').collect();
        lines.sort();
        let mut expect: Vec<String> = want.split_inclusive('\n').map(str::to_string).collect();
        expect.extend(["5,x\n".to_string(), "2,x\n".into(), "9,x\n".into()]);
        expect.sort();
        assert_eq!(lines.concat(), expect.concat());
    }

    #[test]
    fn many_contents_are_read_one_after_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let n = SIDE_BY_SIDE + 6;
        // Keys descending by content: a side-by-side merge would reverse them.
        let pieces: Vec<Piece> = (0..n)
            .map(|c| {
                let row = format!("{},x\n", n - c);
                whole_gz(dir.path(), &format!("{c}.gz"), row.as_bytes(), c as i32)
            })
            .collect();
        let mut out = String::new();
        let mut r = TableReader::new("s.t", pieces, None);
        r.read_to_string(&mut out).unwrap();
        let want: String = (0..n).map(|c| format!("{},x\n", n - c)).collect();
        assert_eq!(out, want);
        assert_eq!(r.files().len(), n);
    }

    #[test]
    fn an_interleaved_content_cut_mid_row_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let pieces = vec![
            whole_gz(dir.path(), "a.gz", b"1,x\n2,y\n", 0),
            whole_gz(dir.path(), "b.gz", b"3,z\n4,\"unfinished", 1),
        ];
        let mut out = Vec::new();
        let e = TableReader::new("s.t", pieces, None)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains("b.gz"), "{e}");
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
