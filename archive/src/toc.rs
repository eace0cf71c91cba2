//! The archive header and table of contents, shared by the custom format and the directory
//! format's `toc.dat`. Every field is kept as stored (strings as bytes, NULL distinct from
//! empty), so reading and writing an unchanged TOC reproduces it byte for byte.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::ArchiveError;
use crate::primitives::{PrimReader, PrimWriter};

/// Lowest and highest archive versions understood: 1.12 (pg_dump 11) to 1.16 (pg_dump 17/18).
pub const MIN_MINOR: u8 = 12;
pub const MAX_MINOR: u8 = 16;

/// `section` values of a TOC entry.
pub const SECTION_NONE: i32 = 1;
pub const SECTION_PRE_DATA: i32 = 2;
pub const SECTION_DATA: i32 = 3;
pub const SECTION_POST_DATA: i32 = 4;

/// How the archive compresses data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCompression {
    /// Versions before 1.15: a zlib level (-1 default, 0 none).
    Level(i64),
    /// 1.15 on: 0 none, 1 gzip, 2 lz4, 3 zstd.
    Algorithm(u8),
}

/// What a data stream inside the archive is encoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataCodec {
    None,
    /// zlib streams in custom archives, gzip files in directory archives.
    Gzip,
    Lz4,
    Zstd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub major: u8,
    pub minor: u8,
    pub rev: u8,
    pub int_size: u8,
    pub off_size: u8,
    /// 1 custom; pg_dump also writes 3 in a directory archive's toc.dat.
    pub format: u8,
    pub compression: HeaderCompression,
    /// sec, min, hour, mday, mon, year-1900, isdst.
    pub created: [i64; 7],
    pub dbname: Option<Vec<u8>>,
    pub server_version: Option<Vec<u8>>,
    pub dump_version: Option<Vec<u8>>,
}

impl Header {
    pub fn data_codec(&self) -> DataCodec {
        match self.compression {
            HeaderCompression::Level(0) => DataCodec::None,
            HeaderCompression::Level(_) => DataCodec::Gzip,
            HeaderCompression::Algorithm(0) => DataCodec::None,
            HeaderCompression::Algorithm(1) => DataCodec::Gzip,
            HeaderCompression::Algorithm(2) => DataCodec::Lz4,
            HeaderCompression::Algorithm(_) => DataCodec::Zstd,
        }
    }

    pub fn version(&self) -> (u8, u8) {
        (self.major, self.minor)
    }

    /// Reads the header, refusing versions outside 1.12–1.16.
    pub fn read<R: Read>(r: &mut PrimReader<R>, path: &Path) -> Result<Header, ArchiveError> {
        let trunc = |what: &str| {
            let what = what.to_string();
            let path = path.to_path_buf();
            move |e: io::Error| map_io(e, &path, &what)
        };
        let magic = r.bytes(5).map_err(trunc("the header"))?;
        if magic != b"PGDMP" {
            return Err(ArchiveError::NotAnArchive {
                path: path.to_path_buf(),
            });
        }
        let major = r.byte().map_err(trunc("the header"))?;
        let minor = r.byte().map_err(trunc("the header"))?;
        let rev = r.byte().map_err(trunc("the header"))?;
        if major != 1 || !(MIN_MINOR..=MAX_MINOR).contains(&minor) {
            return Err(ArchiveError::UnsupportedVersion {
                path: path.to_path_buf(),
                major,
                minor,
            });
        }
        let int_size = r.byte().map_err(trunc("the header"))?;
        let off_size = r.byte().map_err(trunc("the header"))?;
        if !(1..=8).contains(&int_size) || !(1..=16).contains(&off_size) {
            return Err(ArchiveError::Corrupt {
                path: path.to_path_buf(),
                why: format!("integer size {int_size} / offset size {off_size}"),
            });
        }
        r.int_size = int_size as usize;
        r.off_size = off_size as usize;
        let format = r.byte().map_err(trunc("the header"))?;
        let compression = if minor >= 15 {
            HeaderCompression::Algorithm(r.byte().map_err(trunc("the header"))?)
        } else {
            HeaderCompression::Level(r.int().map_err(trunc("the header"))?)
        };
        let mut created = [0i64; 7];
        for c in created.iter_mut() {
            *c = r.int().map_err(trunc("the header"))?;
        }
        let max = 1 << 20;
        let dbname = r.string(max).map_err(trunc("the header"))?;
        let server_version = r.string(max).map_err(trunc("the header"))?;
        let dump_version = r.string(max).map_err(trunc("the header"))?;
        Ok(Header {
            major,
            minor,
            rev,
            int_size,
            off_size,
            format,
            compression,
            created,
            dbname,
            server_version,
            dump_version,
        })
    }

    pub fn write<W: Write>(&self, w: &mut PrimWriter<W>) -> io::Result<()> {
        w.bytes(b"PGDMP")?;
        w.byte(self.major)?;
        w.byte(self.minor)?;
        w.byte(self.rev)?;
        w.byte(self.int_size)?;
        w.byte(self.off_size)?;
        w.byte(self.format)?;
        match self.compression {
            HeaderCompression::Algorithm(a) => w.byte(a)?,
            HeaderCompression::Level(l) => w.int(l)?,
        }
        for c in self.created {
            w.int(c)?;
        }
        w.string(self.dbname.as_deref())?;
        w.string(self.server_version.as_deref())?;
        w.string(self.dump_version.as_deref())
    }
}

/// The format-specific last field of a TOC entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// Custom format: where the entry's data block starts.
    Offset { flag: u8, pos: u64 },
    /// Directory format: the data file name (`3339.dat`), `None` when the entry has no data.
    File(Option<Vec<u8>>),
}

/// One TOC entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    pub dump_id: i32,
    pub had_dumper: i64,
    pub table_oid: Option<Vec<u8>>,
    pub oid: Option<Vec<u8>>,
    pub tag: Option<Vec<u8>>,
    pub desc: Option<Vec<u8>>,
    pub section: i64,
    pub defn: Option<Vec<u8>>,
    pub drop_stmt: Option<Vec<u8>>,
    pub copy_stmt: Option<Vec<u8>>,
    pub namespace: Option<Vec<u8>>,
    pub tablespace: Option<Vec<u8>>,
    /// 1.14 on.
    pub tableam: Option<Vec<u8>>,
    /// 1.16 on.
    pub relkind: i64,
    pub owner: Option<Vec<u8>>,
    pub with_oids: Option<Vec<u8>>,
    /// Dump ids this entry depends on, as the decimal strings stored.
    pub deps: Vec<Vec<u8>>,
    pub extra: Extra,
}

fn text(b: &Option<Vec<u8>>) -> Cow<'_, str> {
    match b {
        Some(v) => String::from_utf8_lossy(v),
        None => Cow::Borrowed(""),
    }
}

impl TocEntry {
    pub fn desc(&self) -> Cow<'_, str> {
        text(&self.desc)
    }

    pub fn tag(&self) -> Cow<'_, str> {
        text(&self.tag)
    }

    pub fn namespace(&self) -> Cow<'_, str> {
        text(&self.namespace)
    }

    pub fn defn(&self) -> Cow<'_, str> {
        text(&self.defn)
    }

    pub fn copy_stmt(&self) -> Cow<'_, str> {
        text(&self.copy_stmt)
    }

    pub fn dependencies(&self) -> Vec<i32> {
        self.deps
            .iter()
            .filter_map(|d| std::str::from_utf8(d).ok()?.trim().parse().ok())
            .collect()
    }

    /// `(catalog oid, object oid)` as numbers, 0 when absent.
    pub fn catalog_id(&self) -> (u32, u32) {
        let n = |b: &Option<Vec<u8>>| {
            b.as_ref()
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                .unwrap_or(0)
        };
        (n(&self.table_oid), n(&self.oid))
    }

    fn label(&self) -> (String, String) {
        (self.desc().into_owned(), self.tag().into_owned())
    }
}

/// Which extra field the TOC's entries carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TocKind {
    Custom,
    Directory,
}

/// Reads the entry count and every entry. `max_len` bounds string lengths (the file size), so
/// a corrupt length is an error, not an allocation of gigabytes.
pub fn read_entries<R: Read>(
    r: &mut PrimReader<R>,
    header: &Header,
    kind: TocKind,
    path: &Path,
    max_len: u64,
) -> Result<Vec<TocEntry>, ArchiveError> {
    let count = r
        .int()
        .map_err(|e| map_io(e, path, "the TOC entry count"))?;
    if count < 0 || count as u64 > max_len {
        return Err(ArchiveError::Corrupt {
            path: path.to_path_buf(),
            why: format!("TOC entry count {count}"),
        });
    }
    let mut entries = Vec::with_capacity(count.min(1 << 16) as usize);
    for i in 0..count {
        let what = format!("TOC entry {} of {count}", i + 1);
        let e = read_entry(r, header, kind, max_len).map_err(|e| map_io(e, path, &what))?;
        entries.push(e);
    }
    Ok(entries)
}

fn read_entry<R: Read>(
    r: &mut PrimReader<R>,
    header: &Header,
    kind: TocKind,
    max: u64,
) -> io::Result<TocEntry> {
    let dump_id = r.int()? as i32;
    let had_dumper = r.int()?;
    let table_oid = r.string(max)?;
    let oid = r.string(max)?;
    let tag = r.string(max)?;
    let desc = r.string(max)?;
    let section = r.int()?;
    let defn = r.string(max)?;
    let drop_stmt = r.string(max)?;
    let copy_stmt = r.string(max)?;
    let namespace = r.string(max)?;
    let tablespace = r.string(max)?;
    let tableam = if header.minor >= 14 {
        r.string(max)?
    } else {
        None
    };
    let relkind = if header.minor >= 16 { r.int()? } else { 0 };
    let owner = r.string(max)?;
    let with_oids = r.string(max)?;
    let mut deps = Vec::new();
    while let Some(d) = r.string(max)? {
        deps.push(d);
    }
    let extra = match kind {
        TocKind::Custom => {
            let (flag, pos) = r.offset()?;
            Extra::Offset { flag, pos }
        }
        TocKind::Directory => Extra::File(r.string(max)?),
    };
    Ok(TocEntry {
        dump_id,
        had_dumper,
        table_oid,
        oid,
        tag,
        desc,
        section,
        defn,
        drop_stmt,
        copy_stmt,
        namespace,
        tablespace,
        tableam,
        relkind,
        owner,
        with_oids,
        deps,
        extra,
    })
}

/// Writes the entry count and the entries, version-aware like [`read_entries`].
pub fn write_entries<W: Write>(
    w: &mut PrimWriter<W>,
    header: &Header,
    entries: &[TocEntry],
    path: &Path,
) -> Result<(), ArchiveError> {
    let run = |w: &mut PrimWriter<W>| -> io::Result<()> {
        w.int(entries.len() as i64)?;
        for e in entries {
            w.int(e.dump_id as i64)?;
            w.int(e.had_dumper)?;
            w.string(e.table_oid.as_deref())?;
            w.string(e.oid.as_deref())?;
            w.string(e.tag.as_deref())?;
            w.string(e.desc.as_deref())?;
            w.int(e.section)?;
            w.string(e.defn.as_deref())?;
            w.string(e.drop_stmt.as_deref())?;
            w.string(e.copy_stmt.as_deref())?;
            w.string(e.namespace.as_deref())?;
            w.string(e.tablespace.as_deref())?;
            if header.minor >= 14 {
                w.string(e.tableam.as_deref())?;
            }
            if header.minor >= 16 {
                w.int(e.relkind)?;
            }
            w.string(e.owner.as_deref())?;
            w.string(e.with_oids.as_deref())?;
            for d in &e.deps {
                w.string(Some(d))?;
            }
            w.string(None)?;
            match &e.extra {
                Extra::Offset { flag, pos } => w.offset(*flag, *pos)?,
                Extra::File(f) => w.string(f.as_deref())?,
            }
        }
        Ok(())
    };
    run(w).map_err(|source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Checks what a reader must be able to rely on: unique dump ids and dependencies that exist.
pub fn validate(entries: &[TocEntry], path: &Path) -> Result<(), ArchiveError> {
    let mut ids: Vec<i32> = entries.iter().map(|e| e.dump_id).collect();
    ids.sort_unstable();
    for w in ids.windows(2) {
        if w[0] == w[1] {
            return Err(ArchiveError::Corrupt {
                path: path.to_path_buf(),
                why: format!("dump id {} appears twice in the TOC", w[0]),
            });
        }
    }
    for e in entries {
        if e.dump_id <= 0 {
            let (desc, tag) = e.label();
            return Err(ArchiveError::Entry {
                path: path.to_path_buf(),
                dump_id: e.dump_id,
                desc,
                tag,
                why: "invalid dump id".into(),
            });
        }
    }
    Ok(())
}

pub(crate) fn map_io(e: io::Error, path: &Path, what: &str) -> ArchiveError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ArchiveError::Truncated {
            path: path.to_path_buf(),
            what: what.to_string(),
        }
    } else if e.kind() == io::ErrorKind::InvalidData {
        ArchiveError::Corrupt {
            path: path.to_path_buf(),
            why: format!("{what}: {e}"),
        }
    } else {
        ArchiveError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

pub(crate) fn entry_error(path: &Path, e: &TocEntry, why: impl Into<String>) -> ArchiveError {
    let (desc, tag) = e.label();
    ArchiveError::Entry {
        path: path.to_path_buf(),
        dump_id: e.dump_id,
        desc,
        tag,
        why: why.into(),
    }
}
