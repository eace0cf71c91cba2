//! What a restore shows while it loads (`--progress`): the bytes there are to read are the
//! stored sizes of the data to load — a custom archive's data block lengths where its offsets
//! give them, a directory archive's or backup set's data file sizes, a script's file size —
//! and each table in flight reports how many of its stored bytes it consumed (exact whatever
//! the compression; for a backup set, whose files are read through gpbackup's reader, its
//! rows against the rows the set records), the rows and bytes of COPY data it read so far,
//! and its share of the whole. Issue 15: the load of a 2M-row table showed nothing for
//! minutes.

use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use archive::watch::Watched;
use archive::{Archive, ArchiveError, Compression, TocEntry};
use pipeline::progress::{Display, InFlight, Progress};

use crate::RestoreError;

/// The run's progress display: `tables` tables, `total` stored bytes to read.
pub fn start(tables: usize, total: u64, display: Display) -> Progress {
    Progress::with_display(tables, false, display)
        .named("cbrestore")
        .expecting(total)
}

/// The stored bytes of the TABLE DATA among `entries`, where the archive tells (custom
/// archives written to a pipe have no offsets: their tables count 0, and are shown by rows).
pub fn archive_total<'e>(archive: &Archive, entries: impl Iterator<Item = &'e TocEntry>) -> u64 {
    entries
        .filter(|e| e.is("TABLE DATA"))
        .filter_map(|e| archive.stored_size(e))
        .sum()
}

/// A TABLE DATA entry's rows, shown in `progress` as `label` while they are read. Dropping the
/// reader counts the table's share as read.
pub fn table_data(
    progress: &Progress,
    archive: &Archive,
    entry: &TocEntry,
    label: &str,
) -> Result<Box<dyn Read + Send>, ArchiveError> {
    let expected = archive.stored_size(entry).unwrap_or(0);
    let flight = Arc::new(progress.begin(label, expected, 0.0));
    let input = Arc::clone(&flight);
    let data = archive.table_data_watched(entry, Box::new(move |n| input.input(n)))?;
    Ok(Box::new(Counted::new(data, flight)))
}

/// A TABLE DATA entry not loaded by this run (an earlier run did, or it has no rows): its
/// share counts as read, so the ETA covers what is left and the last figure is the total.
pub fn skipped(progress: &Progress, archive: &Archive, entry: &TocEntry, label: &str) {
    drop(progress.begin(label, archive.stored_size(entry).unwrap_or(0), 0.0));
    progress.table_done(label);
}

/// A plain script, decompressed as it is read, shown as one item whose share is the file's
/// size and whose progress is the file bytes read (compressed or not). Its bytes shown are
/// the script's text; no rows are counted (its lines are mostly not rows).
pub fn script(progress: &Progress, path: &Path) -> Result<Box<dyn Read + Send>, RestoreError> {
    let err = |source: std::io::Error| RestoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(err)?.len();
    progress.expect_more(size);
    let flight = Arc::new(progress.begin(&path.display().to_string(), size, 0.0));
    let input = Arc::clone(&flight);
    let c = Compression::detect(path).map_err(err)?;
    let f = std::fs::File::open(path).map_err(err)?;
    let f = Watched::new(f, Box::new(move |n| input.input(n)));
    let text = c
        .decoder(BufReader::with_capacity(256 * 1024, f))
        .map_err(err)?;
    Ok(Box::new(Counted {
        rows: false,
        ..Counted::new(text, flight)
    }))
}

/// COPY data on its way to the server, counted into its item: bytes, and rows as lines that
/// are neither empty nor pg_dump's `\.` end line (a text or CSV value with a line break in it
/// counts twice: this is a display, the report has the server's count). Whoever reads the
/// stored source reports the item's input.
pub struct Counted<R> {
    inner: R,
    flight: Arc<InFlight>,
    /// Lines are rows (COPY data, not a script).
    rows: bool,
    /// The current line so far: its length and first two bytes.
    line_len: usize,
    line_head: [u8; 2],
}

impl<R> Counted<R> {
    pub fn new(inner: R, flight: Arc<InFlight>) -> Counted<R> {
        Counted {
            inner,
            flight,
            rows: true,
            line_len: 0,
            line_head: [0; 2],
        }
    }

    fn count_rows(&mut self, buf: &[u8]) -> u64 {
        let mut rows = 0;
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', buf) {
            self.extend_line(&buf[start..end]);
            let terminator = self.line_len == 2 && self.line_head == *b"\\.";
            rows += u64::from(self.line_len > 0 && !terminator);
            self.line_len = 0;
            start = end + 1;
        }
        self.extend_line(&buf[start..]);
        rows
    }

    fn extend_line(&mut self, part: &[u8]) {
        for (i, &b) in part.iter().take(2).enumerate() {
            if let Some(head) = self.line_head.get_mut(self.line_len + i) {
                *head = b;
            }
        }
        self.line_len = self.line_len.saturating_add(part.len());
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let rows = match self.rows {
            true => self.count_rows(&buf[..n]),
            false => 0,
        };
        self.flight.add(n as u64, rows);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_script_is_measured_by_the_file_bytes_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sql.gz");
        let text = "SELECT 1;\n".repeat(10_000);
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();

        let p = start(0, 0, Display::None);
        let mut r = script(&p, &path).unwrap();
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        let s = p.snapshot();
        assert_eq!(s.total, size);
        // The whole compressed file is in the first buffer: done is judged by file bytes
        // (never past 99% before the end), shown bytes are the text.
        assert_eq!(s.done, size * 99 / 100);
        assert_eq!((s.bytes, s.rows), (10, 0));
        std::io::copy(&mut r, &mut std::io::sink()).unwrap();
        assert_eq!(p.snapshot().bytes, text.len() as u64);
        drop(r);
        assert_eq!(p.snapshot().done, size);
    }

    #[test]
    fn copy_data_counts_rows_as_lines() {
        let p = start(1, 100, Display::None);
        let flight = Arc::new(p.begin("public.t", 100, 10.0));
        // pg_dump's end line and the empty lines after it are no rows; lines split across
        // reads are counted once.
        let mut data = b"1\ta\n2\tb\n".repeat(5);
        data.extend_from_slice(b"\\.\n\n\n");
        let mut r = Counted::new(&data[..], flight);
        let mut buf = [0u8; 3];
        while r.read(&mut buf).unwrap() > 0 {}
        let s = p.snapshot();
        assert_eq!((s.bytes, s.rows), (45, 10));
        // Without an input measure, rows against the expected rows: all there, not yet done.
        assert_eq!(s.done, 99);
    }
}
