//! Distribution-clause rewriting of pg_dump output for Apache Cloudberry.
//!
//! Reading order: [`lexer`] (psql's token rules) → [`splitter`] (script → items, streaming) →
//! [`parse`] (the few statement shapes that matter) → [`catalog`] (pass 1: what the dump
//! defines) → [`policy`] (the per-table decision, optionally fed by [`stats`]) → [`rewrite`]
//! (pass 2: splice, demote or strip) → [`report`]. Compression comes from `archive::codec`; [`archive`] carries the same rewriting to custom and directory archives.

pub mod archive;
pub mod catalog;
pub mod clause;
pub mod cli;
pub mod lexer;
pub mod names;
pub mod parse;
pub mod policy;
pub mod report;
pub mod rewrite;
pub mod rules;
pub mod splitter;
pub mod sqltext;
pub mod stats;
pub mod translate;
pub mod types;
