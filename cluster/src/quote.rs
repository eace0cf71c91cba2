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
}
