//! The same rewriting for pg_dump custom and directory archives, whose statements live in the
//! `defn` strings of TOC entries instead of a script. The statements of all entries are numbered
//! in TOC order exactly like a plain script's, so one catalog, one decision and one plan serve
//! both; only the carrier differs. Data is never touched.

use archive::TocEntry;

use crate::catalog::Catalog;
use crate::parse::{parse, Stmt};
use crate::policy::Plan;
use crate::rewrite::{edit_parsed, strip_parsed, RewriteError};
use crate::splitter::{ItemKind, Splitter};

/// One piece of a `defn`: its bytes, whether it is a statement, and the
/// `standard_conforming_strings` it was lexed under.
type Piece = (Vec<u8>, bool, bool);

/// The pieces of one entry's `defn`, and the setting in effect after it.
fn statements(defn: &[u8], scs: bool) -> Result<(Vec<Piece>, bool), RewriteError> {
    let mut sp = Splitter::new(defn).with_standard_strings(scs);
    let mut out = Vec::new();
    while let Some(item) = sp.next_item()? {
        out.push((
            item.bytes.to_vec(),
            item.kind == ItemKind::Statement,
            item.standard_strings,
        ));
    }
    let after = sp.standard_strings();
    Ok((out, after))
}

fn schema_of(e: &TocEntry) -> String {
    match e.namespace() {
        ns if ns.is_empty() => "public".to_string(),
        ns => ns.into_owned(),
    }
}

/// Pass 1 over a TOC: what the archive defines. Row counts come from the caller (archives are
/// not scanned for data here).
pub fn collect(entries: &[TocEntry]) -> Result<Catalog, RewriteError> {
    let mut catalog = Catalog::default();
    let mut ordinal = 0u64;
    let mut scs = true;
    for e in entries {
        let Some(defn) = &e.defn else { continue };
        let (items, after) = statements(defn, scs)?;
        scs = after;
        let schema = schema_of(e);
        for (bytes, is_stmt, item_scs) in items {
            if !is_stmt {
                continue;
            }
            let stmt = parse(&bytes, item_scs, &schema);
            catalog.add(ordinal, e.dump_id.max(0) as u64, &stmt)?;
            ordinal += 1;
        }
    }
    Ok(catalog)
}

/// Pass 2: the entries with the plan's edits applied to their `defn`, and how many statements
/// changed.
pub fn apply(entries: &[TocEntry], plan: &Plan) -> Result<(Vec<TocEntry>, u64), RewriteError> {
    transform(entries, |ordinal, bytes, scs, schema| {
        match plan.edits.get(&ordinal) {
            Some(edit) => {
                let stmt = parse(bytes, scs, schema);
                edit_parsed(bytes, &stmt, edit)
                    .map(Some)
                    .ok_or(RewriteError::Changed { line: 0, ordinal })
            }
            None => Ok(None),
        }
    })
}

/// `--strip` for archives: DISTRIBUTED clauses removed, nothing else.
pub fn strip(entries: &[TocEntry]) -> Result<(Vec<TocEntry>, u64), RewriteError> {
    transform(entries, |_, bytes, scs, schema| {
        let stmt = parse(bytes, scs, schema);
        Ok(match stmt {
            Stmt::Other => None,
            _ => strip_parsed(bytes, &stmt),
        })
    })
}

type Edit<'a> = dyn FnMut(u64, &[u8], bool, &str) -> Result<Option<Vec<u8>>, RewriteError> + 'a;

fn transform(
    entries: &[TocEntry],
    mut edit: impl FnMut(u64, &[u8], bool, &str) -> Result<Option<Vec<u8>>, RewriteError>,
) -> Result<(Vec<TocEntry>, u64), RewriteError> {
    let edit: &mut Edit = &mut edit;
    let mut out = Vec::with_capacity(entries.len());
    let mut ordinal = 0u64;
    let mut changed = 0u64;
    let mut scs = true;
    for e in entries {
        let mut e = e.clone();
        if let Some(defn) = &e.defn {
            let (items, after) = statements(defn, scs)?;
            scs = after;
            let schema = schema_of(&e);
            let mut new = Vec::with_capacity(defn.len() + 32);
            let mut touched = false;
            for (bytes, is_stmt, item_scs) in items {
                if is_stmt {
                    match edit(ordinal, &bytes, item_scs, &schema)? {
                        Some(b) if b != bytes => {
                            new.extend_from_slice(&b);
                            touched = true;
                            changed += 1;
                        }
                        _ => new.extend_from_slice(&bytes),
                    }
                    ordinal += 1;
                } else {
                    new.extend_from_slice(&bytes);
                }
            }
            if touched {
                e.defn = Some(new);
            }
        }
        out.push(e);
    }
    Ok((out, changed))
}
