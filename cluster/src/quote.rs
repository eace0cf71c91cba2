//! Quoting for SQL text we build ourselves.
//!
//! Nothing user-supplied is ever interpolated unquoted: identifiers go through [`ident`],
//! values through [`literal`]. User *expressions* (`--where`, `--query`) are the exception by
//! design and are passed through as SQL text.

/// A double-quoted identifier, embedded quotes doubled. Always quoted: case and keywords are
/// then never a question.
pub fn ident(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 2);
    s.push('"');
    for c in name.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// `schema.name`, both parts quoted.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// An identifier as reports and messages show it, and as SQL accepts it: bare when it is a
/// lower-case name that is no keyword (what PostgreSQL's `quote_ident` and pg_dump's `fmtId`
/// leave alone), quoted otherwise. Every tool spells table names this way (issue 15: cbdump
/// said `public.actor` where cbrestore said `"public"."actor"`, and `Mixed Case.t.1` could
/// not be told from a three-part name).
pub fn name(identifier: &str) -> String {
    let plain = identifier
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && identifier
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain && KEYWORDS.binary_search(&identifier).is_err() {
        identifier.to_string()
    } else {
        ident(identifier)
    }
}

/// `schema.table` for reports and messages: [`name`] of each part (`public.actor`,
/// `"Mixed Case"."t.1"`).
pub fn display(schema: &str, table: &str) -> String {
    format!("{}.{}", name(schema), name(table))
}

/// The keywords a bare identifier cannot be everywhere: PostgreSQL 18's reserved, column-name
/// and type-or-function-name keywords (`kwlist.h`, all but UNRESERVED_KEYWORD) and those the
/// MPP's grammar adds (with `randomly` and `replicated`, which a DISTRIBUTED clause cannot take
/// bare); sorted for the binary search.
const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "decode",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "distributed",
    "do",
    "else",
    "end",
    "except",
    "exclude",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "following",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "group_id",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "json",
    "json_array",
    "json_arrayagg",
    "json_exists",
    "json_object",
    "json_objectagg",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_table",
    "json_value",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "log",
    "median",
    "merge_action",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "partition",
    "placing",
    "position",
    "preceding",
    "precision",
    "primary",
    "randomly",
    "real",
    "references",
    "replicated",
    "returning",
    "right",
    "row",
    "scatter",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "unbounded",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

/// A string literal that is right whatever `standard_conforming_strings` says: an `E''` literal
/// when backslashes are present, a plain one otherwise.
pub fn literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(qualified("S", "t x"), "\"S\".\"t x\"");
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(literal("a\\b'"), "E'a\\\\b'''");
    }

    #[test]
    fn names_are_quoted_only_where_sql_needs_it() {
        assert_eq!(display("public", "plain"), "public.plain");
        assert_eq!(display("Mixed Case", "t.1"), "\"Mixed Case\".\"t.1\"");
        assert_eq!(display("s", "order"), "s.\"order\"");
        assert_eq!(display("s", "distributed"), "s.\"distributed\"");
        assert_eq!(name("t_1"), "t_1");
        assert_eq!(name("t$"), "\"t$\"");
        assert_eq!(name("1t"), "\"1t\"");
        assert_eq!(name("Big"), "\"Big\"");
        assert_eq!(name("a\"b"), "\"a\"\"b\"");
        assert_eq!(name(""), "\"\"");
        assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]));
    }
}
