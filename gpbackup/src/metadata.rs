//! Statements of metadata.sql (and statistics.sql), cut out by the toc's byte ranges.
//!
//! Sections are not contiguous in the file (constraints sit among predata, gaps of whitespace
//! exist), so the file is never split by text: each entry is read with one seek and exactly
//! `endbyte - startbyte` bytes. Only one statement is in memory at a time.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::toc::{MetadataEntry, Section, Toc};

/// One statement chunk with the toc entry describing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub section: Section,
    /// Position of the entry in its toc section list.
    pub index: usize,
    pub entry: MetadataEntry,
    /// The raw bytes, in the backup's client encoding (usually UTF-8). A chunk may hold several
    /// statements (a ROLE chunk is `CREATE ROLE` + `ALTER ROLE`).
    pub sql: Vec<u8>,
}

impl Statement {
    /// The text as UTF-8, for clients that need `&str`.
    pub fn sql_str(&self) -> std::result::Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.sql)
    }

    /// True when the chunk holds nothing but whitespace (gpbackup writes a few such entries).
    pub fn is_blank(&self) -> bool {
        self.sql.iter().all(u8::is_ascii_whitespace)
    }
}

/// An open metadata.sql (or statistics.sql) that statements are read from.
#[derive(Debug)]
pub struct MetadataFile {
    path: PathBuf,
    file: File,
    len: u64,
}

impl MetadataFile {
    pub fn open(path: &Path) -> Result<MetadataFile> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(MetadataFile {
            path: path.to_path_buf(),
            file,
            len,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks every entry of `sections` lies inside the file, before anything is executed.
    pub fn check_offsets(&self, toc: &Toc, sections: &[Section]) -> Result<()> {
        for &section in sections {
            for (index, entry) in toc.entries(section).iter().enumerate() {
                self.check_entry(section, index, entry)?;
            }
        }
        Ok(())
    }

    fn check_entry(&self, section: Section, index: usize, entry: &MetadataEntry) -> Result<()> {
        if entry.endbyte > self.len || entry.startbyte > entry.endbyte {
            return Err(Error::MetadataOffset {
                path: self.path.clone(),
                section: section.name(),
                index,
                objecttype: entry.objecttype.clone(),
                name: entry.fqn(),
                start: entry.startbyte,
                end: entry.endbyte,
                len: self.len,
            });
        }
        Ok(())
    }

    /// Reads one entry's bytes.
    pub fn read_entry(
        &mut self,
        section: Section,
        index: usize,
        entry: &MetadataEntry,
    ) -> Result<Vec<u8>> {
        self.check_entry(section, index, entry)?;
        let n = entry.endbyte - entry.startbyte;
        let mut sql = Vec::with_capacity(usize::try_from(n).unwrap_or(0).min(1 << 20));
        self.file
            .seek(SeekFrom::Start(entry.startbyte))
            .map_err(|e| Error::io(&self.path, e))?;
        let got = (&mut self.file)
            .take(n)
            .read_to_end(&mut sql)
            .map_err(|e| Error::io(&self.path, e))?;
        if (got as u64) < n {
            // The file shrank after opening.
            return Err(Error::MetadataOffset {
                path: self.path.clone(),
                section: section.name(),
                index,
                objecttype: entry.objecttype.clone(),
                name: entry.fqn(),
                start: entry.startbyte,
                end: entry.endbyte,
                len: entry.startbyte + got as u64,
            });
        }
        Ok(sql)
    }

    /// Entry `index` of `section` as a statement; `None` past the section's end. A cursor
    /// for callers that keep their own position (the restore order of to_sql.rs owns this
    /// file and cannot hold a [`Statements`] borrowing it).
    pub fn statement(
        &mut self,
        toc: &Toc,
        section: Section,
        index: usize,
    ) -> Option<Result<Statement>> {
        let entry = toc.entries(section).get(index)?;
        Some(self.read_entry(section, index, entry).map(|sql| Statement {
            section,
            index,
            entry: entry.clone(),
            sql,
        }))
    }

    /// Iterates the statements of `section` in toc order (which is gpbackup's restore order
    /// within a section).
    pub fn statements<'a>(&'a mut self, toc: &'a Toc, section: Section) -> Statements<'a> {
        Statements {
            file: self,
            toc,
            section,
            next: 0,
        }
    }
}

/// Iterator over one section's statements; see [`MetadataFile::statements`].
pub struct Statements<'a> {
    file: &'a mut MetadataFile,
    toc: &'a Toc,
    section: Section,
    next: usize,
}

impl Iterator for Statements<'_> {
    type Item = Result<Statement>;

    fn next(&mut self) -> Option<Self::Item> {
        let statement = self.file.statement(self.toc, self.section, self.next)?;
        self.next += 1;
        Some(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_by_offsets_and_refuses_beyond_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.sql");
        std::fs::write(
            &p,
            "\nSET client_encoding = 'UTF8';\n\n\nCREATE SCHEMA s;\n",
        )
        .unwrap();
        let e = |t: &str, s, e| MetadataEntry {
            objecttype: t.into(),
            startbyte: s,
            endbyte: e,
            ..Default::default()
        };
        let toc = Toc {
            globalentries: vec![e("SESSION GUCS", 0, 31)],
            predataentries: vec![e("SCHEMA", 33, 50), e("TABLE", 50, 99)],
            ..Default::default()
        };
        let mut f = MetadataFile::open(&p).unwrap();
        let g: Vec<_> = f
            .statements(&toc, Section::Global)
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(g[0].sql, b"\nSET client_encoding = 'UTF8';\n");
        let mut it = f.statements(&toc, Section::Predata);
        assert_eq!(it.next().unwrap().unwrap().sql, b"CREATE SCHEMA s;\n");
        let err = it.next().unwrap().unwrap_err();
        assert!(
            matches!(
                err,
                Error::MetadataOffset {
                    index: 1,
                    end: 99,
                    len: 50,
                    ..
                }
            ),
            "{err}"
        );
        let f = MetadataFile::open(&p).unwrap();
        assert!(f.check_offsets(&toc, &[Section::Global]).is_ok());
        assert!(f.check_offsets(&toc, &[Section::Predata]).is_err());
    }
}
