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

/// Why a header cannot be written as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("archive version 1.{minor} is outside 1.{MIN_MINOR}..1.{MAX_MINOR}")]
    Version { minor: u8 },
    #[error("zstd compression needs archive version 1.15 (pg_dump 16) or later")]
    ZstdBefore115,
}

impl HeaderCompression {
    /// The header field that says `compression` in archive version 1.`minor`; zstd needs 1.15
    /// or later.
    pub fn for_version(
        minor: u8,
        compression: crate::codec::Compression,
    ) -> Result<HeaderCompression, HeaderError> {
        use crate::codec::Compression;
        Ok(if minor >= 15 {
            HeaderCompression::Algorithm(match compression {
                Compression::None => 0,
                Compression::Gzip(_) => 1,
                Compression::Zstd(_) => 3,
            })
        } else {
            HeaderCompression::Level(match compression {
                Compression::None => 0,
                Compression::Gzip(level) => level as i64,
                Compression::Zstd(_) => return Err(HeaderError::ZstdBefore115),
            })
        })
    }
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

    /// A header for a new archive of format version 1.`minor` (12 to 16), stamped with
    /// `created` (local broken-down time as pg_dump stores it: sec, min, hour, mday, mon 0-11,
    /// year-1900, isdst). `compression` becomes the version's compression field; zstd needs
    /// 1.15 or later.
    pub fn new(
        minor: u8,
        format: u8,
        compression: crate::codec::Compression,
        created: [i64; 7],
        dbname: &str,
        server_version: &str,
        dump_version: &str,
    ) -> Result<Header, HeaderError> {
        if !(MIN_MINOR..=MAX_MINOR).contains(&minor) {
            return Err(HeaderError::Version { minor });
        }
        let compression = HeaderCompression::for_version(minor, compression)?;
        let s = |v: &str| Some(v.as_bytes().to_vec());
        Ok(Header {
            major: 1,
            minor,
            rev: 0,
            int_size: 4,
            off_size: 8,
            format,
            compression,
            created,
            dbname: s(dbname),
            server_version: s(server_version),
            dump_version: s(dump_version),
        })
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

/// What a TOC entry's `section` says about when pg_restore runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// Comments, ACLs and other entries that follow the object they belong to.
    None,
    PreData,
    Data,
    PostData,
    /// A value no pg_dump writes; kept so the entry still round-trips.
    Other(i64),
}

impl Section {
    pub fn from_code(code: i64) -> Section {
        match code {
            1 => Section::None,
            2 => Section::PreData,
            3 => Section::Data,
            4 => Section::PostData,
            n => Section::Other(n),
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Section::None => SECTION_NONE as i64,
            Section::PreData => SECTION_PRE_DATA as i64,
            Section::Data => SECTION_DATA as i64,
            Section::PostData => SECTION_POST_DATA as i64,
            Section::Other(n) => n,
        }
    }
}

impl TocEntry {
    pub fn section(&self) -> Section {
        Section::from_code(self.section)
    }

    /// Whether `desc` is exactly `desc` ("TABLE", "TABLE DATA", "FK CONSTRAINT", ...).
    pub fn is(&self, desc: &str) -> bool {
        self.desc.as_deref() == Some(desc.as_bytes())
    }

    pub fn owner(&self) -> Cow<'_, str> {
        text(&self.owner)
    }

    pub fn drop_stmt(&self) -> Cow<'_, str> {
        text(&self.drop_stmt)
    }

    /// Whether the archive holds data for this entry: a set or not-yet-set offset in a custom
    /// archive, a non-empty file name in a directory archive.
    pub fn has_data(&self) -> bool {
        match &self.extra {
            Extra::Offset { flag, .. } => {
                *flag == crate::primitives::OFFSET_SET || *flag == crate::primitives::OFFSET_NOT_SET
            }
            Extra::File(Some(name)) => !name.is_empty(),
            Extra::File(None) => false,
        }
    }

    /// The directory-format data file name the TOC stores (`3339.dat`, `blobs_12.toc`), `None`
    /// for entries without one (pg_dump writes an empty string for those).
    pub fn file_name(&self) -> Option<&[u8]> {
        match &self.extra {
            Extra::File(Some(name)) if !name.is_empty() => Some(name),
            _ => None,
        }
    }

    /// A TABLE DATA entry for `table` (a TABLE entry of the same archive), shaped the way
    /// pg_dump shapes its own: catalog id `0`/table oid, the table's tag, schema and owner, NULL
    /// `defn`/`dropStmt`, the COPY statement, one dependency on the table. `extra` says where the data
    /// will live ([`crate::custom::pending_offset`] or [`Extra::File`]).
    pub fn table_data_for(
        table: &TocEntry,
        dump_id: i32,
        copy_stmt: &[u8],
        extra: Extra,
    ) -> TocEntry {
        TocEntry {
            dump_id,
            had_dumper: 1,
            table_oid: Some(b"0".to_vec()),
            oid: table.oid.clone(),
            tag: table.tag.clone(),
            desc: Some(b"TABLE DATA".to_vec()),
            section: SECTION_DATA as i64,
            // pg_dump passes no SQL for data entries: stored as NULL strings.
            defn: None,
            drop_stmt: None,
            copy_stmt: Some(copy_stmt.to_vec()),
            namespace: table.namespace.clone(),
            tablespace: None,
            tableam: None,
            relkind: 0,
            owner: table.owner.clone(),
            with_oids: Some(b"false".to_vec()),
            deps: vec![table.dump_id.to_string().into_bytes()],
            extra,
        }
    }
}

/// Look-ups over a TOC, for any slice of entries (an archive's `entries`, a [`Toc`]'s).
pub trait Entries {
    /// Entries whose `desc` is exactly `desc`, in TOC order.
    fn by_desc<'a>(&'a self, desc: &'a str) -> Box<dyn Iterator<Item = &'a TocEntry> + 'a>;
    /// Entries of one section, in TOC order.
    fn by_section(&self, section: Section) -> Box<dyn Iterator<Item = &TocEntry> + '_>;
    /// The entry with this dump id.
    fn by_id(&self, dump_id: i32) -> Option<&TocEntry>;
    /// The entry `desc` named `tag` in schema `namespace` (`None`: any schema).
    fn find(&self, desc: &str, namespace: Option<&str>, tag: &str) -> Option<&TocEntry>;
    /// The entries `entry` depends on (ids that name no entry are skipped, as pg_restore does).
    fn dependencies_of(&self, entry: &TocEntry) -> Vec<&TocEntry>;
    /// The entries that depend directly on `dump_id`.
    fn dependents_of(&self, dump_id: i32) -> Vec<&TocEntry>;
    /// The TABLE DATA entry of a TABLE entry.
    fn data_of(&self, table: &TocEntry) -> Option<&TocEntry>;
    /// Entries with data in the archive (TABLE DATA, SEQUENCE SET has none, BLOBS, ...).
    fn with_data(&self) -> Box<dyn Iterator<Item = &TocEntry> + '_>;
    /// One more than the highest dump id: the first free id for entries added to this TOC.
    fn next_dump_id(&self) -> i32;
}

impl Entries for [TocEntry] {
    fn by_desc<'a>(&'a self, desc: &'a str) -> Box<dyn Iterator<Item = &'a TocEntry> + 'a> {
        Box::new(self.iter().filter(move |e| e.is(desc)))
    }

    fn by_section(&self, section: Section) -> Box<dyn Iterator<Item = &TocEntry> + '_> {
        Box::new(self.iter().filter(move |e| e.section() == section))
    }

    fn by_id(&self, dump_id: i32) -> Option<&TocEntry> {
        self.iter().find(|e| e.dump_id == dump_id)
    }

    fn find(&self, desc: &str, namespace: Option<&str>, tag: &str) -> Option<&TocEntry> {
        self.iter().find(|e| {
            e.is(desc)
                && e.tag.as_deref() == Some(tag.as_bytes())
                && match namespace {
                    None => true,
                    Some(n) => e.namespace.as_deref() == Some(n.as_bytes()),
                }
        })
    }

    fn dependencies_of(&self, entry: &TocEntry) -> Vec<&TocEntry> {
        entry
            .dependencies()
            .into_iter()
            .filter_map(|id| self.by_id(id))
            .collect()
    }

    fn dependents_of(&self, dump_id: i32) -> Vec<&TocEntry> {
        self.iter()
            .filter(|e| e.dependencies().contains(&dump_id))
            .collect()
    }

    fn data_of(&self, table: &TocEntry) -> Option<&TocEntry> {
        self.iter().find(|e| {
            e.is("TABLE DATA")
                && e.tag == table.tag
                && e.namespace == table.namespace
                && e.dependencies().contains(&table.dump_id)
        })
    }

    fn with_data(&self) -> Box<dyn Iterator<Item = &TocEntry> + '_> {
        Box::new(self.iter().filter(|e| e.has_data()))
    }

    fn next_dump_id(&self) -> i32 {
        self.iter().map(|e| e.dump_id).max().unwrap_or(0) + 1
    }
}

/// A header with its TOC: what `toc.dat` holds, and the front of a custom archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toc {
    pub header: Header,
    pub entries: Vec<TocEntry>,
}

impl Toc {
    /// Reads header and TOC from `r`; `max_len` bounds string lengths (use the file size, or a
    /// generous bound for pipes).
    pub fn read<R: Read>(
        r: &mut PrimReader<R>,
        kind: TocKind,
        path: &Path,
        max_len: u64,
    ) -> Result<Toc, ArchiveError> {
        let header = Header::read(r, path)?;
        let entries = read_entries(r, &header, kind, path, max_len)?;
        validate(&entries, path)?;
        Ok(Toc { header, entries })
    }

    /// Writes header and TOC exactly as [`read`](Self::read) parses them.
    pub fn write<W: Write>(&self, w: W, path: &Path) -> Result<W, ArchiveError> {
        let mut pw = PrimWriter::new(
            w,
            self.header.int_size as usize,
            self.header.off_size as usize,
        );
        self.header
            .write(&mut pw)
            .map_err(|source| ArchiveError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        write_entries(&mut pw, &self.header, &self.entries, path)?;
        Ok(pw.inner)
    }

    /// How many bytes [`write`](Self::write) produces.
    pub fn encoded_len(&self) -> u64 {
        let mut counter = CountingSink(0);
        // Writing to a counter cannot fail.
        let _ = self.write(&mut counter, Path::new(""));
        counter.0
    }
}

impl std::ops::Deref for Toc {
    type Target = [TocEntry];

    fn deref(&self) -> &[TocEntry] {
        &self.entries
    }
}

struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Compression;

    fn sample(minor: u8, kind: TocKind) -> Toc {
        let header = Header::new(
            minor,
            1,
            Compression::Gzip(5),
            [1, 2, 3, 4, 5, 125, 0],
            "db",
            "15.1",
            "15.1",
        )
        .unwrap();
        let s = |v: &str| Some(v.as_bytes().to_vec());
        let table = TocEntry {
            dump_id: 7,
            had_dumper: 0,
            table_oid: s("1259"),
            oid: s("16384"),
            tag: s("t"),
            desc: s("TABLE"),
            section: SECTION_PRE_DATA as i64,
            defn: s("CREATE TABLE public.t (a int);\n"),
            drop_stmt: s("DROP TABLE public.t;\n"),
            copy_stmt: None,
            namespace: s("public"),
            tablespace: s(""),
            tableam: if minor >= 14 { s("heap") } else { None },
            relkind: if minor >= 16 { b'r' as i64 } else { 0 },
            owner: s("postgres"),
            with_oids: s("false"),
            deps: vec![],
            extra: match kind {
                TocKind::Custom => Extra::Offset { flag: 3, pos: 0 },
                TocKind::Directory => Extra::File(s("")),
            },
        };
        let extra = match kind {
            TocKind::Custom => Extra::Offset { flag: 2, pos: 4096 },
            TocKind::Directory => Extra::File(s("8.dat")),
        };
        let data = TocEntry::table_data_for(&table, 8, b"COPY public.t (a) FROM stdin;\n", extra);
        Toc {
            header,
            entries: vec![table, data],
        }
    }

    #[test]
    fn every_version_round_trips_and_differs_where_pg_dump_does() {
        let mut lens = Vec::new();
        for minor in MIN_MINOR..=MAX_MINOR {
            for kind in [TocKind::Custom, TocKind::Directory] {
                let toc = sample(minor, kind);
                let bytes = toc.write(Vec::new(), Path::new("x")).unwrap();
                assert_eq!(bytes.len() as u64, toc.encoded_len());
                let mut r = PrimReader::new(&bytes[..]);
                let back = Toc::read(&mut r, kind, Path::new("x"), 1 << 20).unwrap();
                assert_eq!(back, toc, "1.{minor} {kind:?}");
                assert_eq!(r.pos, bytes.len() as u64);
                if kind == TocKind::Custom {
                    lens.push(bytes.len());
                }
            }
        }
        // 1.12 → 1.13: same layout; 1.14 adds tableam strings; 1.15 turns the 5-byte level
        // into one algorithm byte; 1.16 adds a relkind int per entry.
        assert_eq!(lens[1], lens[0]);
        assert_eq!(lens[2], lens[1] + 2 * 5 + 4);
        assert_eq!(lens[3], lens[2] - 4);
        assert_eq!(lens[4], lens[3] + 2 * 5);
    }

    #[test]
    fn look_ups_and_new_headers() {
        let toc = sample(14, TocKind::Custom);
        let table = toc.find("TABLE", Some("public"), "t").unwrap();
        assert!(toc.find("TABLE", Some("other"), "t").is_none());
        let data = toc.data_of(table).unwrap();
        assert_eq!(data.dump_id, 8);
        assert_eq!(toc.dependencies_of(data), vec![table]);
        assert_eq!(toc.dependents_of(7), vec![data]);
        assert_eq!(toc.by_section(Section::Data).count(), 1);
        assert_eq!(toc.with_data().count(), 1);
        assert_eq!(toc.next_dump_id(), 9);
        assert!(data.defn.is_none() && data.drop_stmt.is_none());
        assert_eq!(Section::from_code(4), Section::PostData);
        assert_eq!(Section::Other(9).code(), 9);
        assert_eq!(toc.header.compression, HeaderCompression::Level(5));
        assert!(Header::new(14, 1, Compression::Zstd(3), [0; 7], "", "", "").is_err());
        assert!(Header::new(11, 1, Compression::None, [0; 7], "", "", "").is_err());
        let h = Header::new(16, 1, Compression::Zstd(3), [0; 7], "", "", "").unwrap();
        assert_eq!(h.data_codec(), DataCodec::Zstd);
    }
}
