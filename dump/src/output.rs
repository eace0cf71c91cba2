//! STEP 8 of a dump: the archive written in the staging directory and renamed into place.
//!
//! Directory archives are pg_dump's own `-Fd` output completed in place; custom archives and
//! plain scripts are written beside it. The output name is the last thing to appear: globals
//! first, then one rename.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use archive::custom::{pending_offset, CustomWriter, BLK_DATA};
use archive::toc::{Extra, HeaderCompression};
use archive::{Compression, DirectoryArchive, Header, TocEntry};
use cluster::ConnParams;
use interrupt::Interrupt;

use crate::blobs;
use crate::build::{archive_header, dies_with_us, terminate, Assembled, DumpOptions, Format, Run};
use crate::data;
use crate::pgdump::{self, PgDump};
use crate::DumpError;

/// Writes the archive of `a` and publishes it under the output name.
pub(crate) fn publish(run: &Run, a: &Assembled) -> Result<(), DumpError> {
    let o = run.o;
    let header = archive_header(&a.schema, run.compression)?;
    match o.format {
        Format::Directory => {
            let dir = run.schema_dir();
            DirectoryArchive::write_toc(&dir, &header, &a.toc)?;
            let manifest = serde_json::to_vec_pretty(&a.report).expect("report serializes");
            let m = dir.join("manifest.json");
            std::fs::write(&m, manifest).map_err(|e| DumpError::io(&m, e))?;
            if let Some(g) = &o.globals {
                let name = g.file_name().unwrap_or("globals.sql".as_ref());
                pg_dumpall_globals(run.pg_dump, &o.conn, &dir.join(name))?;
            }
            sync_dir_files(&dir)?;
            run.interrupt
                .rename_into_place(&dir, &o.output)
                .map_err(|e| DumpError::io(&o.output, e))
        }
        Format::Custom => {
            let file = run.work.join("archive.dump");
            write_custom(&file, header, a, run.compression)?;
            publish_file(run, &file)
        }
        Format::Plain => {
            let archive = run.work.join("plain.dump");
            let mut h = header;
            h.compression = HeaderCompression::for_version(h.minor, Compression::None)
                .map_err(|e| DumpError::Usage(e.to_string()))?;
            // Rendered from an uncompressed custom archive by the real pg_restore.
            write_custom(&archive, h, a, Compression::None)?;
            if o.output == Path::new("-") {
                return render_plain(run, &archive, None);
            }
            let script = run.work.join("script.sql");
            render_plain(run, &archive, Some(&script))?;
            publish_file(run, &script)
        }
    }
}

/// Renames a finished file of the staging directory to the output name, after the globals
/// (which are taken back if the rename fails).
fn publish_file(run: &Run, file: &Path) -> Result<(), DumpError> {
    let o = run.o;
    if let Some(g) = &o.globals {
        let temp = run.work.join("globals.sql");
        pg_dumpall_globals(run.pg_dump, &o.conn, &temp)?;
        run.interrupt
            .rename_into_place(&temp, g)
            .map_err(|e| DumpError::io(g, e))?;
    }
    run.interrupt
        .rename_into_place(file, &o.output)
        .map_err(|e| {
            if let Some(g) = &o.globals {
                let _ = std::fs::remove_file(g);
            }
            DumpError::io(&o.output, e)
        })
}

impl DumpOptions {
    /// Plain output is compressed as asked or as its name says; the data inside is not.
    fn output_compression(&self) -> Compression {
        self.compress
            .or_else(|| Compression::from_file_name(&self.output.to_string_lossy()))
            .unwrap_or(Compression::None)
    }
}

/// A custom archive at `out`: pg_dump's entries and ours, every data block in TOC order.
fn write_custom(
    out: &Path,
    mut header: Header,
    a: &Assembled,
    compression: Compression,
) -> Result<(), DumpError> {
    header.format = 1;
    let entries: Vec<TocEntry> = a
        .toc
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.extra = if has_data_file(&e) {
                pending_offset()
            } else {
                Extra::Offset { flag: 3, pos: 0 }
            };
            e
        })
        .collect();
    let mut w = CustomWriter::create(out, header, entries)?;
    let by_id: HashMap<i32, &data::TableData> = a
        .written
        .iter()
        .map(|d| (a.new_entries[d.index].dump_id, d))
        .collect();
    let result = a
        .toc
        .iter()
        .try_for_each(|e| write_block(&mut w, e, by_id.get(&e.dump_id), a, compression));
    match result {
        Ok(()) => Ok(w.finish()?),
        Err(e) => {
            w.abandon();
            Err(e)
        }
    }
}

/// One entry's data block: our data file as it is, pg_dump's large objects each encoded as
/// they are copied, or data pg_dump wrote itself (extension configuration tables) re-encoded
/// from its file into one stream.
fn write_block(
    w: &mut CustomWriter,
    e: &TocEntry,
    ours: Option<&&data::TableData>,
    a: &Assembled,
    compression: Compression,
) -> Result<(), DumpError> {
    if let Some(d) = ours {
        let mut f = std::fs::File::open(&d.path).map_err(|x| DumpError::io(&d.path, x))?;
        w.write_block(e.dump_id, BLK_DATA, &mut f)?;
    } else if e.desc() == "BLOBS" {
        let mut encoded = Vec::new();
        for (oid, path) in blobs::list(&a.schema.dir, e)? {
            let r: Box<dyn std::io::Read + Send> = Box::new(blobs::LazyBlob::new(path));
            let r = encoding_reader(r, compression)
                .map_err(|x| DumpError::Data(format!("large object {oid}"), x.to_string()))?;
            encoded.push((oid, r));
        }
        w.write_blobs_block(e.dump_id, encoded)?;
    } else if has_data_file(e) {
        let r = a.schema.table_data(e)?;
        let mut r = encoding_reader(r, compression)
            .map_err(|x| DumpError::Data(e.tag().into_owned(), x.to_string()))?;
        w.write_block(e.dump_id, BLK_DATA, &mut r)?;
    }
    Ok(())
}

/// A directory archive's entry that has a data file (the others carry an empty name).
fn has_data_file(e: &TocEntry) -> bool {
    matches!(&e.extra, Extra::File(Some(name)) if !name.is_empty())
}

/// `r`'s bytes as one stream of a custom archive's codec: zlib for gzip, a zstd frame, or as is.
fn encoding_reader(
    r: Box<dyn std::io::Read + Send>,
    compression: Compression,
) -> std::io::Result<Box<dyn std::io::Read + Send>> {
    Ok(match compression {
        Compression::None => r,
        Compression::Gzip(level) => Box::new(flate2::read::ZlibEncoder::new(
            r,
            flate2::Compression::new(level),
        )),
        Compression::Zstd(level) => Box::new(zstd::stream::read::Encoder::new(r, level)?),
    })
}

/// The plain script: pg_restore renders our archive (schema, COPY blocks, post-data) into
/// `script`, or onto stdout for `None`. A closed stdout ends the tool quietly (the
/// `interrupt` crate's rule, as `pg_dump | head`).
fn render_plain(run: &Run, archive: &Path, script: Option<&Path>) -> Result<(), DumpError> {
    let pg_restore = run.pg_dump.path.with_file_name("pg_restore");
    let mut child = dies_with_us(&mut Command::new(&pg_restore))
        .args(&run.o.script_flags)
        .arg("-f")
        .arg("-")
        .arg(archive)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| DumpError::PgDump(format!("running {}: {e}", pg_restore.display())))?;
    let pid = child.id();
    let stop_child = run.interrupt.on_signal(move || terminate(pid));
    let rendered = child.stdout.take().expect("piped stdout");
    let compression = run.o.output_compression();
    let copied = copy_script(run.interrupt, rendered, script, compression);
    // The pipe is closed by now (`copy_script` took it), so pg_restore cannot block on it.
    let status = child
        .wait_with_output()
        .map_err(|e| DumpError::PgDump(e.to_string()))?;
    drop(stop_child);
    copied.map_err(|e| DumpError::io(script.unwrap_or("-".as_ref()), e))?;
    if !status.status.success() {
        return Err(DumpError::PgDump(format!(
            "pg_restore could not render the script: {}",
            String::from_utf8_lossy(&status.stderr)
        )));
    }
    Ok(())
}

fn copy_script(
    interrupt: &Interrupt,
    mut rendered: std::process::ChildStdout,
    script: Option<&Path>,
    compression: Compression,
) -> std::io::Result<()> {
    let Some(path) = script else {
        let out = std::io::BufWriter::with_capacity(256 * 1024, interrupt.stdout());
        let mut enc = compression.encoder(out)?;
        std::io::copy(&mut rendered, &mut enc)?;
        use std::io::Write;
        return enc.finish()?.flush();
    };
    let f = std::fs::File::create(path)?;
    let mut enc = compression.encoder(std::io::BufWriter::new(f))?;
    std::io::copy(&mut rendered, &mut enc)?;
    let f = enc.finish()?.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()
}

fn sync_dir_files(dir: &Path) -> Result<(), DumpError> {
    for e in std::fs::read_dir(dir).map_err(|x| DumpError::io(dir, x))? {
        let p = e.map_err(|x| DumpError::io(dir, x))?.path();
        if p.is_file() {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|x| DumpError::io(&p, x))?;
        }
    }
    Ok(())
}

/// Roles and tablespaces — what `pg_dumpall --globals-only` writes — into `out`, through a
/// private staging directory beside it (renamed when complete, removed on failure).
pub fn dump_globals(
    pg_dump: &PgDump,
    conn: &ConnParams,
    out: &Path,
    interrupt: &Interrupt,
) -> Result<(), DumpError> {
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let staging = interrupt
        .staging_dir(dir, ".globals.cbdump-")
        .map_err(|e| DumpError::Usage(e.to_string()))?;
    let temp = staging.path().join("globals.sql");
    pg_dumpall_globals(pg_dump, conn, &temp)?;
    interrupt
        .rename_into_place(&temp, out)
        .map_err(|e| DumpError::io(out, e))
}

/// `pg_dumpall --globals-only -f file`; `file` is in a directory of ours.
fn pg_dumpall_globals(pg_dump: &PgDump, conn: &ConnParams, file: &Path) -> Result<(), DumpError> {
    let pg_dumpall = pg_dump.path.with_file_name("pg_dumpall");
    let (conninfo, password) = pgdump::conninfo(conn);
    let mut cmd = Command::new(&pg_dumpall);
    cmd.arg(format!("--dbname={conninfo}"))
        .arg("--globals-only")
        .arg("-f")
        .arg(file);
    if let Some(pw) = password {
        cmd.env("PGPASSWORD", pw);
    }
    let res = dies_with_us(&mut cmd)
        .output()
        .map_err(|e| DumpError::PgDump(format!("running {}: {e}", pg_dumpall.display())))?;
    if !res.status.success() {
        return Err(DumpError::PgDump(format!(
            "{} --globals-only failed: {}",
            pg_dumpall.display(),
            String::from_utf8_lossy(&res.stderr).trim()
        )));
    }
    Ok(())
}
