//! Restoring plain SQL dumps (any size, gzip/zstd or not, or stdin) the way psql runs them,
//! statement by statement, with COPY data streamed straight into `COPY ... FROM STDIN`.
//!
//! The statement splitter is cbdistfix's psql-compatible one, so quoting, dollar quotes,
//! `BEGIN ATOMIC` bodies and COPY blocks are cut exactly where psql cuts them. psql
//! meta-commands: `\restrict`/`\unrestrict` are accepted (nothing here interprets other
//! meta-commands, which is what restricted mode is for), `\connect DB` reconnects; any other
//! meta-command is an error naming its line.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use archive::Compression;
use distfix::splitter::{ItemKind, Splitter};
use serde::Serialize;

use cluster::ConnParams;

use crate::dump::Distribution;
use crate::RestoreError;

#[derive(Debug, Clone)]
pub struct PlainRestoreOptions {
    pub conn: ConnParams,
    /// A file, or `-` for stdin.
    pub input: PathBuf,
    pub single_transaction: bool,
    pub on_error_continue: bool,
    pub distribution: Distribution,
    /// `-f FILE`: write the statements (as rewritten) instead of running them.
    pub script: Option<PathBuf>,
    pub verbose: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct PlainRestoreReport {
    pub tool: &'static str,
    pub input: String,
    pub elapsed_seconds: f64,
    pub statements: u64,
    pub copy_blocks: u64,
    pub total_rows: u64,
    pub errors: Vec<String>,
    pub distribution_statements_changed: u64,
}

/// Opens the (decompressed) input; stdin is spooled to a temporary file when two passes are
/// needed (`--distribute`).
fn open(path: &std::path::Path) -> Result<Box<dyn Read + Send>, RestoreError> {
    let err = |e: std::io::Error| RestoreError::State(format!("{}: {e}", path.display()));
    let c = Compression::detect(path).map_err(err)?;
    let f = std::fs::File::open(path).map_err(err)?;
    c.decoder(BufReader::with_capacity(256 * 1024, f))
        .map_err(err)
}

pub fn run(
    o: &PlainRestoreOptions,
    abort: Arc<AtomicBool>,
) -> Result<PlainRestoreReport, RestoreError> {
    let started = Instant::now();
    let shown = o.input.display().to_string();
    // stdin: spooled, so it can be detected, decompressed and (with --distribute) read twice.
    let _spool;
    let path = if o.input.as_os_str() == "-" {
        let mut spool = tempfile::NamedTempFile::new()
            .map_err(|e| RestoreError::State(format!("spooling stdin: {e}")))?;
        std::io::copy(&mut std::io::stdin().lock(), spool.as_file_mut())
            .map_err(|e| RestoreError::State(format!("spooling stdin: {e}")))?;
        let p = spool.path().to_path_buf();
        _spool = spool;
        p
    } else {
        o.input.clone()
    };
    let plan = match &o.distribution {
        Distribution::Rewrite(rules) => {
            let catalog = distfix::rewrite::collect(open(&path)?)
                .map_err(|e| RestoreError::State(format!("{shown}: {e}")))?;
            Some(
                rules
                    .plan(&catalog, &HashMap::new(), false)
                    .map_err(|e| RestoreError::State(format!("{shown}: {e}")))?,
            )
        }
        _ => None,
    };
    let strip = matches!(o.distribution, Distribution::Strip);

    enum Out {
        Live(Box<postgres::Client>),
        Script(std::io::BufWriter<std::fs::File>),
    }
    let mut conn = o.conn.clone();
    let mut out = match &o.script {
        Some(p) => Out::Script(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| RestoreError::State(format!("{}: {e}", p.display())))?,
        )),
        None => Out::Live(Box::new(cluster::connect(&conn)?)),
    };
    let mut report = PlainRestoreReport {
        tool: "cbrestore",
        input: shown.clone(),
        ..Default::default()
    };
    if o.single_transaction {
        if let Out::Live(c) = &mut out {
            c.batch_execute("BEGIN")
                .map_err(|e| RestoreError::State(cluster::error::server_message(&e)))?;
        }
    }
    let mut sp = Splitter::new(open(&path)?);
    let mut ordinal = 0u64;
    let fail = |report: &mut PlainRestoreReport, msg: String| -> Result<(), RestoreError> {
        if o.on_error_continue {
            eprintln!("cbrestore: error (continuing): {msg}");
            report.errors.push(msg);
            Ok(())
        } else {
            Err(RestoreError::State(msg))
        }
    };
    loop {
        if abort.load(Ordering::SeqCst) {
            return Err(RestoreError::Interrupted);
        }
        let item = sp
            .next_item()
            .map_err(|e| RestoreError::State(format!("{shown}: {e}")))?;
        let Some(item) = item else { break };
        match item.kind {
            ItemKind::Trivia => {
                if let Out::Script(w) = &mut out {
                    w.write_all(item.bytes)
                        .map_err(|e| RestoreError::State(e.to_string()))?;
                }
            }
            ItemKind::Meta => {
                let text = String::from_utf8_lossy(item.bytes);
                let line = text.trim();
                let word = line.split_whitespace().next().unwrap_or("");
                if let Out::Script(w) = &mut out {
                    w.write_all(item.bytes)
                        .map_err(|e| RestoreError::State(e.to_string()))?;
                    continue;
                }
                match word {
                    "\\restrict" | "\\unrestrict" => {}
                    "\\connect" | "\\c" => {
                        let db = line.split_whitespace().last().unwrap_or("");
                        let db = db.trim_matches('"');
                        conn = conn.with_dbname(db);
                        out = Out::Live(Box::new(cluster::connect(&conn)?));
                    }
                    _ => {
                        return Err(RestoreError::State(format!(
                            "{shown}, line {}: psql meta-command {word} is not supported",
                            item.line
                        )))
                    }
                }
            }
            ItemKind::CopyData => {
                // Live COPY data is consumed right after its statement, below; here only the
                // script copy passes through.
                if let Out::Script(w) = &mut out {
                    w.write_all(item.bytes)
                        .map_err(|e| RestoreError::State(e.to_string()))?;
                }
            }
            ItemKind::Statement => {
                let mut bytes = item.bytes.to_vec();
                if let Some(plan) = &plan {
                    if let Some(edit) = plan.edits.get(&ordinal) {
                        if let Some(b) = distfix::rewrite::edit_statement(
                            &bytes,
                            item.standard_strings,
                            "public",
                            edit,
                        ) {
                            bytes = b;
                            report.distribution_statements_changed += 1;
                        }
                    }
                }
                if strip {
                    if let Some(b) =
                        distfix::rewrite::strip_statement(&bytes, item.standard_strings, "public")
                    {
                        if b != bytes {
                            report.distribution_statements_changed += 1;
                        }
                        bytes = b;
                    }
                }
                ordinal += 1;
                let line = item.line;
                let text = String::from_utf8(bytes).map_err(|_| {
                    RestoreError::State(format!(
                        "{shown}, line {line}: statement is not valid UTF-8"
                    ))
                })?;
                match &mut out {
                    Out::Script(w) => {
                        w.write_all(text.as_bytes())
                            .map_err(|e| RestoreError::State(e.to_string()))?;
                    }
                    Out::Live(client) => {
                        report.statements += 1;
                        let is_copy_in = {
                            let t = text.trim_start().to_ascii_uppercase();
                            t.starts_with("COPY ") && t.contains("FROM STDIN")
                        };
                        if is_copy_in {
                            report.copy_blocks += 1;
                            // The block's data follows; stream it into this COPY, in order.
                            let started_copy = client.copy_in(text.trim());
                            let mut writer = match started_copy {
                                Ok(w) => Some(w),
                                Err(e) => {
                                    fail(
                                        &mut report,
                                        format!(
                                            "{shown}, line {line}: {}\nstatement: {}",
                                            cluster::error::server_message(&e),
                                            text.trim()
                                        ),
                                    )?;
                                    None
                                }
                            };
                            let mut write_error = None;
                            loop {
                                let data = sp
                                    .next_item()
                                    .map_err(|e| RestoreError::State(format!("{shown}: {e}")))?
                                    .ok_or_else(|| RestoreError::State(format!("{shown}: the script ended inside the COPY data of line {line}")))?;
                                if data.kind == ItemKind::Trivia {
                                    // The line break after `FROM stdin;`.
                                    continue;
                                }
                                if data.kind != ItemKind::CopyData {
                                    return Err(RestoreError::State(format!(
                                        "{shown}, line {}: expected COPY data after line {line}",
                                        data.line
                                    )));
                                }
                                if let Some(w) = writer.as_mut() {
                                    if let Err(e) = w.write_all(data.bytes) {
                                        write_error = Some(e.to_string());
                                        // The server ended the COPY; its reason comes from finish().
                                    }
                                }
                                if data.complete {
                                    break;
                                }
                                if write_error.is_some() {
                                    // Drain the rest of the block without sending it.
                                    if let Some(w) = writer.take() {
                                        let msg = match w.finish() {
                                            Err(pe) => cluster::error::server_message(&pe),
                                            Ok(_) => write_error.clone().unwrap_or_default(),
                                        };
                                        fail(
                                            &mut report,
                                            format!("{shown}, line {line}: COPY: {msg}"),
                                        )?;
                                    }
                                }
                            }
                            if let Some(w) = writer {
                                match w.finish() {
                                    Ok(rows) => report.total_rows += rows,
                                    Err(e) => fail(
                                        &mut report,
                                        format!(
                                            "{shown}, line {line}: COPY: {}",
                                            cluster::error::server_message(&e)
                                        ),
                                    )?,
                                }
                            }
                        } else if let Err(e) = client.batch_execute(&text) {
                            fail(
                                &mut report,
                                format!(
                                    "{shown}, line {line}: {}\nstatement: {}",
                                    cluster::error::server_message(&e),
                                    text.trim()
                                ),
                            )?;
                        }
                    }
                }
            }
        }
    }
    match &mut out {
        Out::Live(c) => {
            if o.single_transaction {
                c.batch_execute("COMMIT")
                    .map_err(|e| RestoreError::State(cluster::error::server_message(&e)))?;
            }
        }
        Out::Script(w) => w.flush().map_err(|e| RestoreError::State(e.to_string()))?,
    }
    if o.verbose {
        eprintln!(
            "cbrestore: {} statements, {} COPY blocks",
            report.statements, report.copy_blocks
        );
    }
    report.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
