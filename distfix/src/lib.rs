//! Distribution-clause rewriting of pg_dump output for Apache Cloudberry.
//!
//! Reading order: [`lexer`] (psql's token rules) → [`splitter`] (script → items, streaming) →
//! [`parse`] (the few statement shapes that matter) → [`catalog`] (pass 1: what the dump
//! defines) → [`policy`] (the per-table decision) → [`rewrite`] (pass 2: splice or strip).

pub mod lexer;
pub mod splitter;
