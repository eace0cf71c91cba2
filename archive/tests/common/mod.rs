//! What the property tests share: case counts (`PROPTEST_CASES` overrides) and byte mutations.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;

pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn config(default: u32) -> Config {
    Config {
        cases: cases(default),
        failure_persistence: None,
        ..Config::default()
    }
}

#[derive(Debug, Clone)]
pub enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Mutation::Set(i, v)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..200).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

pub fn apply(file: &mut Vec<u8>, m: &Mutation) {
    if file.is_empty() {
        return;
    }
    let at = |i: usize| i % file.len();
    match m {
        Mutation::Flip(i, b) => {
            let i = at(*i);
            file[i] ^= 1 << b;
        }
        Mutation::Set(i, v) => {
            let i = at(*i);
            file[i] = *v;
        }
        Mutation::Truncate(i) => file.truncate(at(*i)),
        Mutation::Delete(i, n) => {
            let i = at(*i);
            let end = (i + n).min(file.len());
            file.drain(i..end);
        }
        Mutation::Insert(i, v) => {
            let i = at(*i);
            file.splice(i..i, v.iter().copied());
        }
        Mutation::Duplicate(i, n) => {
            let i = at(*i);
            let end = (i + n).min(file.len());
            let piece = file[i..end].to_vec();
            file.splice(end..end, piece);
        }
    }
}
