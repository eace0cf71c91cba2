//! Property tests of the SQL lexer, splitter and statement recognizer, through the public API:
//! token soups built from the constructs psql's lexer cares about, random bytes, and pagila's
//! schema mutated by flips, cuts, deletions, insertions and duplicated ranges.
//!
//! Properties: no panic; the splitter's items concatenate to the input byte for byte; the
//! items do not depend on how the input arrives (whole, or a few bytes per read); tokens cover
//! a statement exactly; every position the recognizer hands to the rewriter lies inside its
//! statement; the whole rewrite (collect, decide, apply, strip) never panics. Inputs are at
//! most a few tens of KB, so every case ends quickly by construction. `PROPTEST_CASES=N` for
//! longer runs.

use std::collections::HashMap;

use distfix::lexer::tokenize;
use distfix::parse::{parse, Stmt};
use distfix::splitter::{ItemKind, Splitter};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use testkit::Trickle;

fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// What a split gave: every item's kind and bytes, or the error's text.
type Split = Result<Vec<(ItemKind, Vec<u8>)>, String>;

fn split(reader: impl std::io::Read) -> Split {
    let mut sp = Splitter::new(reader);
    let mut items = Vec::new();
    loop {
        match sp.next_item() {
            Ok(Some(item)) => items.push((item.kind, item.bytes.to_vec())),
            Ok(None) => return Ok(items),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Statements the splitter found, merged with their neighbours' kinds (COPY data arrives in
/// slices whose size depends on the read buffer, so slices of one block are joined).
fn merged(items: &[(ItemKind, Vec<u8>)]) -> Vec<(ItemKind, Vec<u8>)> {
    let mut out: Vec<(ItemKind, Vec<u8>)> = Vec::new();
    for (kind, bytes) in items {
        match out.last_mut() {
            Some((k, b)) if *k == ItemKind::CopyData && *kind == ItemKind::CopyData => {
                b.extend_from_slice(bytes)
            }
            _ => out.push((*kind, bytes.clone())),
        }
    }
    out
}

/// The checks every input gets.
fn check(input: &[u8], step: usize) -> Result<(), TestCaseError> {
    let whole = split(input);
    let trickled = split(Trickle::new(input, step));
    match (&whole, &trickled) {
        (Ok(a), Ok(b)) => {
            prop_assert!(
                merged(a) == merged(b),
                "items differ when read {step} bytes at a time"
            );
            let joined: Vec<u8> = a.iter().flat_map(|(_, b)| b.iter().copied()).collect();
            prop_assert!(joined == input, "items do not concatenate to the input");
            for (kind, bytes) in a {
                if *kind == ItemKind::Statement {
                    check_statement(bytes)?;
                }
            }
        }
        (Err(a), Err(b)) => prop_assert_eq!(a, b, "errors differ when read {} at a time", step),
        _ => prop_assert!(
            false,
            "whole input: {:?}; {step} bytes at a time: {:?}",
            whole.as_ref().map(|v| v.len()),
            trickled.as_ref().map(|v| v.len())
        ),
    }
    Ok(())
}

fn check_statement(text: &[u8]) -> Result<(), TestCaseError> {
    for std_strings in [true, false] {
        if let Ok(tokens) = tokenize(text, std_strings) {
            let mut at = 0;
            for t in &tokens {
                prop_assert!(
                    t.start == at && t.end > t.start,
                    "token {t:?} after byte {at}"
                );
                at = t.end;
            }
            prop_assert_eq!(at, text.len());
        }
        let len = text.len();
        match parse(text, std_strings, "public") {
            Stmt::CreateTable(t) => {
                prop_assert!(t.splice_at <= len);
                if let Some(e) = t.existing {
                    prop_assert!(e.start <= e.end && e.end <= len);
                }
            }
            Stmt::CreateMatView(m) => {
                prop_assert!(m.splice_at <= len);
                if let Some(e) = m.existing {
                    prop_assert!(e.start <= e.end && e.end <= len);
                }
            }
            Stmt::UniqueIndex(u) => {
                let mut last = 0;
                for (a, b) in u.demote_cuts {
                    prop_assert!(last <= a && a <= b && b <= len, "cut {a}..{b} of {len}");
                    last = b;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The whole rewrite on an input: collect, decide, apply, strip. Errors are fine; panics not.
fn rewrite(input: &[u8]) {
    let Ok(catalog) = distfix::rewrite::collect(input) else {
        return;
    };
    let opts = distfix::policy::Options {
        default: None,
        on_conflict: Some(distfix::policy::OnConflict::DemoteUnique),
        force: true,
    };
    let file = distfix::policy::PolicyFile::default();
    if let Ok(plan) = distfix::policy::decide(&catalog, &file, &opts, &HashMap::new()) {
        let mut out = Vec::new();
        if distfix::rewrite::apply(input, &mut out, &plan).is_ok() {
            let _ = distfix::rewrite::strip(&out[..], &mut Vec::new());
        }
    }
}

/// Pieces psql's lexer treats specially, and some ordinary SQL around them.
const PIECES: &[&str] = &[
    "'",
    "''",
    "\"",
    "\"\"",
    "E'",
    "e'\\'",
    "U&'",
    "U&\"",
    "B'01'",
    "X'ff'",
    "$$",
    "$a$",
    "$1",
    "$a",
    "--",
    "/*",
    "*/",
    "/* /* */",
    ";",
    ";\n",
    "(",
    ")",
    "\\",
    "\\\\",
    "\\.\n",
    "\\;",
    "\n",
    "\r\n",
    " ",
    "\t",
    "COPY t (a) FROM stdin;\n",
    "1\tx\n",
    "\\N\n",
    "SET standard_conforming_strings = off;\n",
    "SET standard_conforming_strings = on;\n",
    "CREATE TABLE public.t (id int PRIMARY KEY, v text UNIQUE)",
    " DISTRIBUTED BY (id)",
    " DISTRIBUTED RANDOMLY",
    "CREATE UNIQUE INDEX i ON t USING btree (v) NULLS NOT DISTINCT",
    "ALTER TABLE ONLY t ADD CONSTRAINT c UNIQUE (v)",
    "CREATE MATERIALIZED VIEW m AS SELECT 1",
    "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql",
    "BEGIN ATOMIC SELECT 1; END",
    "CASE WHEN",
    "END",
    "\\connect db\n",
    "\\restrict k\n",
    "SET search_path = s, pg_catalog;\n",
    "CREATE TYPE e AS ENUM ('a')",
    "é",
    "\u{0}",
    "\u{ff}",
];

fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(PIECES).prop_map(|p| p.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 1..8),
        ],
        0..80,
    )
    .prop_map(|v| v.concat())
}

#[test]
fn token_soups_split_exactly_however_they_arrive() {
    TestRunner::new(config(400))
        .run(&(soup(), 1usize..9), |(input, step)| {
            check(&input, step)?;
            rewrite(&input);
            Ok(())
        })
        .unwrap();
}

#[test]
fn random_bytes_split_exactly() {
    TestRunner::new(config(300))
        .run(
            &(prop::collection::vec(any::<u8>(), 0..2000), 1usize..5),
            |(input, step)| check(&input, step),
        )
        .unwrap();
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop::sample::select(b"'\"$;()\\\n-/*E.\t".to_vec());
    prop_oneof![
        (any::<usize>(), special).prop_map(|(i, v)| Mutation::Set(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..200).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), soup()).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..400).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    if data.is_empty() {
        return;
    }
    let at = |i: usize| i % data.len();
    match m {
        Mutation::Set(i, v) => {
            let i = at(*i);
            data[i] = *v;
        }
        Mutation::Truncate(i) => data.truncate(at(*i)),
        Mutation::Delete(i, n) => {
            let i = at(*i);
            let end = (i + n).min(data.len());
            data.drain(i..end);
        }
        Mutation::Insert(i, v) => {
            let i = at(*i);
            data.splice(i..i, v.iter().copied());
        }
        Mutation::Duplicate(i, n) => {
            let i = at(*i);
            let end = (i + n).min(data.len());
            let piece = data[i..end].to_vec();
            data.splice(end..end, piece);
        }
    }
}

#[test]
fn mutated_pagila_splits_exactly_and_rewrites_without_panic() {
    let Some(fixtures) = testkit::shared_fixtures() else {
        eprintln!("skipping: no shared fixtures (pagila)");
        return;
    };
    let schema = std::fs::read(fixtures.join("pagila/pagila-schema.sql")).unwrap();
    // The start of the data file too: COPY blocks with their terminators.
    let mut data = std::fs::read(fixtures.join("pagila/pagila-data.sql")).unwrap();
    data.truncate(data.len().min(40_000));
    let sources = [schema, data];
    TestRunner::new(config(120))
        .run(
            &(
                any::<prop::sample::Index>(),
                any::<prop::sample::Index>(),
                8usize..20_000,
                prop::collection::vec(mutation(), 1..5),
                1usize..64,
            ),
            |(which, start, len, mutations, step)| {
                // A window of the source, so cases stay small and cover all of it.
                let src = &sources[which.index(sources.len())];
                let from = start.index(src.len());
                let mut input = src[from..(from + len).min(src.len())].to_vec();
                for m in &mutations {
                    apply(&mut input, m);
                }
                check(&input, step)?;
                rewrite(&input);
                Ok(())
            },
        )
        .unwrap();
}

/// Found by `token_soups_split_exactly_however_they_arrive`: a unique index ending in
/// `NULLS NOT DISTINCT` with no `;` after it (a script's last statement) indexed past the
/// statement's last token and panicked.
#[test]
fn unique_index_ending_in_nulls_not_distinct_without_semicolon() {
    for sql in [
        "CREATE UNIQUE INDEX i ON t USING btree (v) NULLS NOT DISTINCT",
        "CREATE UNIQUE INDEX i ON t (v) NULLS DISTINCT",
    ] {
        check(sql.as_bytes(), 1).unwrap();
        let Stmt::UniqueIndex(u) = parse(sql.as_bytes(), true, "public") else {
            panic!("{sql}: not recognized");
        };
        // `UNIQUE ` and `NULLS [NOT] DISTINCT`.
        assert_eq!(u.demote_cuts.len(), 2);
        let (a, b) = u.demote_cuts[1];
        assert!(
            sql[a..b].starts_with("NULLS") && b == sql.len(),
            "{}",
            &sql[a..b]
        );
        rewrite(sql.as_bytes());
    }
}
