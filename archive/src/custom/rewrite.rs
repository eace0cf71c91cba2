//! Rewriting a custom archive's TOC text without touching its data: the new header and TOC,
//! then the data region copied byte for byte, every set offset moved by the change in TOC
//! length (offsets are fixed width, so that change is known before anything is written).

use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{CustomArchive, StreamReader};
use crate::error::ArchiveError;
use crate::primitives::OFFSET_SET;
use crate::toc::{entry_error, Extra, Header, Toc, TocEntry};

/// Checks that `entries` only change TOC text of `old` and returns them with their data
/// offsets moved for a TOC that now ends at a different place than `old_end`.
pub(crate) fn shifted_entries(
    header: &Header,
    old: &[TocEntry],
    old_end: u64,
    entries: &[TocEntry],
    out: &Path,
) -> Result<Vec<TocEntry>, ArchiveError> {
    if entries.len() != old.len() {
        return Err(ArchiveError::Unsupported {
            path: out.to_path_buf(),
            why: format!(
                "a TOC rewrite keeps the archive's {} entries (got {}); to drop one, empty its defn and dropStmt",
                old.len(),
                entries.len()
            ),
        });
    }
    for (new, old) in entries.iter().zip(old) {
        if new.extra != old.extra || new.dump_id != old.dump_id {
            return Err(entry_error(
                out,
                new,
                "a TOC rewrite changes TOC text only; data offsets and dump ids must stay",
            ));
        }
    }
    let toc = Toc {
        header: header.clone(),
        entries: entries.to_vec(),
    };
    let shift = toc.encoded_len() as i128 - old_end as i128;
    Ok(toc
        .entries
        .into_iter()
        .map(|mut e| {
            if let Extra::Offset {
                flag: OFFSET_SET,
                pos,
            } = e.extra
            {
                e.extra = Extra::Offset {
                    flag: OFFSET_SET,
                    pos: (pos as i128 + shift) as u64,
                };
            }
            e
        })
        .collect())
}

/// Writes `archive` with `entries` as its TOC (same entries in the same order, usually only
/// `defn` strings changed) to `out`, written under a temporary name and renamed. The data
/// region is copied by the kernel (`copy_file_range`), so the cost is the disk's, not ours.
pub fn rewrite_toc(
    archive: &CustomArchive,
    entries: &[TocEntry],
    out: &Path,
) -> Result<(), ArchiveError> {
    let shifted = shifted_entries(
        &archive.header,
        &archive.entries,
        archive.toc_end,
        entries,
        out,
    )?;
    let toc = Toc {
        header: archive.header.clone(),
        entries: shifted,
    };
    crate::atomic::write_file(out, |file| {
        let w = toc
            .write(BufWriter::with_capacity(1 << 20, &mut *file), out)
            .map_err(io::Error::other)?;
        w.into_inner().map_err(|e| e.into_error())?;
        let mut src = File::open(&archive.path)?;
        src.seek(SeekFrom::Start(archive.toc_end))?;
        // File to file: std uses copy_file_range, no user-space copy of the data blocks.
        let copied = io::copy(&mut src, file)?;
        if copied != archive.file_len - archive.toc_end {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive changed while it was copied",
            ));
        }
        Ok(())
    })
}

/// The same for archives read from and written to streams (`cbdistfix < in > out`): reads
/// header and TOC from `input`, lets `edit` change the entries' text, writes the new TOC to
/// `out` and copies the rest of `input`. Returns the bytes written.
pub fn rewrite_toc_stream<R: Read, W: Write>(
    input: R,
    name: &Path,
    out: W,
    edit: impl FnOnce(&Header, &mut Vec<TocEntry>),
) -> Result<u64, ArchiveError> {
    let reader = StreamReader::new(input, name)?;
    let mut entries = reader.entries.clone();
    edit(&reader.header, &mut entries);
    reader.rewrite(&entries, out)
}
