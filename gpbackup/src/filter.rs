//! gprestore's include/exclude filters (`--include-table`, `--exclude-schema`, ...), applied to
//! data entries and metadata entries the way gprestore does: relations match by `schema.name`,
//! dependent objects (indexes, triggers, constraints) follow the relation in `referenceobject`,
//! `SEQUENCE OWNER` needs both sides, and schema filters apply to everything in the schema.

use crate::toc::{MetadataEntry, Section};

/// Include/exclude lists. Names may be given quoted (`"My Schema"."T"`) or as plain text
/// (`My Schema.T`); both match the quoted identifiers stored in the toc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub include_schemas: Vec<String>,
    pub exclude_schemas: Vec<String>,
    /// `schema.table`
    pub include_tables: Vec<String>,
    /// `schema.table`
    pub exclude_tables: Vec<String>,
}

const RELATION_TYPES: &[&str] = &[
    "TABLE",
    "VIEW",
    "MATERIALIZED VIEW",
    "SEQUENCE",
    "FOREIGN TABLE",
    "EXTERNAL TABLE",
    "STATISTICS",
];

/// Removes identifier quoting: `"a""b"` → `a"b`; unquoted text is returned unchanged.
pub fn unquote_ident(s: &str) -> String {
    match s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_string(),
    }
}

/// Splits `schema.name` (quoted identifiers allowed) at the first dot outside quotes.
pub fn split_fqn(fqn: &str) -> Option<(&str, &str)> {
    let mut in_quotes = false;
    for (i, c) in fqn.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '.' if !in_quotes => return Some((&fqn[..i], &fqn[i + 1..])),
            _ => {}
        }
    }
    None
}

fn same_schema(given: &str, toc_schema: &str) -> bool {
    given == toc_schema || given == unquote_ident(toc_schema)
}

fn same_table(given: &str, schema: &str, name: &str) -> bool {
    given == format!("{schema}.{name}")
        || given == format!("{}.{}", unquote_ident(schema), unquote_ident(name))
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.include_schemas.is_empty()
            && self.exclude_schemas.is_empty()
            && self.include_tables.is_empty()
            && self.exclude_tables.is_empty()
    }

    fn schema_included(&self, schema: &str) -> bool {
        if self.exclude_schemas.iter().any(|s| same_schema(s, schema)) {
            return false;
        }
        self.include_schemas.is_empty()
            || self.include_schemas.iter().any(|s| same_schema(s, schema))
    }

    /// Whether a relation's data and definition are restored.
    pub fn table_included(&self, schema: &str, name: &str) -> bool {
        if !self.schema_included(schema) {
            return false;
        }
        if self
            .exclude_tables
            .iter()
            .any(|t| same_table(t, schema, name))
        {
            return false;
        }
        self.include_tables.is_empty()
            || self
                .include_tables
                .iter()
                .any(|t| same_table(t, schema, name))
    }

    fn relation_fqn_included(&self, fqn: &str) -> bool {
        match split_fqn(fqn) {
            Some((schema, name)) => self.table_included(schema, name),
            None => self.include_tables.is_empty(),
        }
    }

    /// Whether a metadata entry is restored. Globals are not filtered here (that is
    /// `--with-globals`' business).
    pub fn entry_included(&self, section: Section, e: &MetadataEntry) -> bool {
        if self.is_empty() || section == Section::Global {
            return true;
        }
        let base_type = e.objecttype.trim_end_matches(" METADATA");
        if e.objecttype == "SEQUENCE OWNER" {
            return self.table_included(&e.schema, &e.name)
                && self.relation_fqn_included(&e.referenceobject);
        }
        if e.objecttype == "PUBLICATION TABLE" {
            // The publication itself is schema-less, so a table list leaves it out (as it
            // leaves functions out): its membership follows both the publication and the table.
            return self.include_tables.is_empty()
                && self.relation_fqn_included(&e.referenceobject);
        }
        if RELATION_TYPES.contains(&base_type) {
            return self.table_included(&e.schema, &e.name);
        }
        if !e.referenceobject.is_empty() {
            return self.relation_fqn_included(&e.referenceobject);
        }
        if base_type == "SCHEMA" {
            if !self.schema_included(&e.name) {
                return false;
            }
            // With table filters only the schemas of named tables are needed.
            return self.include_tables.is_empty()
                || self
                    .include_tables
                    .iter()
                    .any(|t| split_fqn(t).is_some_and(|(s, _)| same_schema(s, &e.name)));
        }
        // Functions, types, ... belong to their schema; a table list excludes them.
        self.include_tables.is_empty() && (e.schema.is_empty() || self.schema_included(&e.schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(t: &str, schema: &str, name: &str, reference: &str) -> MetadataEntry {
        MetadataEntry {
            objecttype: t.into(),
            schema: schema.into(),
            name: name.into(),
            referenceobject: reference.into(),
            ..Default::default()
        }
    }

    #[test]
    fn filters_like_gprestore() {
        let f = Filter {
            include_tables: vec!["Odd Schema.t".into()],
            ..Default::default()
        };
        assert!(f.table_included("\"Odd Schema\"", "t"));
        assert!(!f.table_included("\"Odd Schema\"", "u"));
        assert!(f.entry_included(
            Section::Postdata,
            &entry("INDEX", "\"Odd Schema\"", "i", "\"Odd Schema\".t")
        ));
        assert!(!f.entry_included(
            Section::Postdata,
            &entry("INDEX", "\"Odd Schema\"", "j", "\"Odd Schema\".u")
        ));
        assert!(!f.entry_included(
            Section::Predata,
            &entry("FUNCTION", "\"Odd Schema\"", "f()", "")
        ));
        assert!(f.entry_included(
            Section::Predata,
            &entry("SCHEMA", "\"Odd Schema\"", "\"Odd Schema\"", "")
        ));
        assert!(!f.entry_included(Section::Predata, &entry("SCHEMA", "public", "public", "")));
        let f = Filter {
            exclude_schemas: vec!["public".into()],
            ..Default::default()
        };
        assert!(!f.table_included("public", "t"));
        assert!(f.entry_included(Section::Predata, &entry("FUNCTION", "s", "f()", "")));
        assert!(!f.entry_included(Section::Predata, &entry("FUNCTION", "public", "f()", "")));
        assert_eq!(split_fqn("\"a.b\".c"), Some(("\"a.b\"", "c")));
        let membership = entry("PUBLICATION TABLE", "s", "p", "s.t");
        assert!(f.entry_included(Section::Postdata, &membership));
        let f = Filter {
            exclude_tables: vec!["s.t".into()],
            ..Default::default()
        };
        assert!(!f.entry_included(Section::Postdata, &membership));
        let f = Filter {
            include_tables: vec!["s.t".into()],
            ..Default::default()
        };
        assert!(!f.entry_included(Section::Postdata, &membership));
    }
}
