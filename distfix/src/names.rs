//! SQL names as PostgreSQL resolves them: unquoted identifiers fold to lower case, quoted ones
//! keep their bytes (with `""` undoubled), `U&"..."` decodes its escapes.

use std::fmt;

use serde::Serialize;

/// A schema-qualified relation or type name, in its catalog (folded, unquoted) form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct QualName {
    pub schema: String,
    pub name: String,
}

impl QualName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualName {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// Parse `schema.table` written with SQL identifier rules (quotes allowed); an unqualified
    /// name gets `default_schema`.
    pub fn parse(text: &str, default_schema: &str) -> Option<QualName> {
        let tokens = crate::lexer::tokenize(text.as_bytes(), true).ok()?;
        let parts: Vec<_> = tokens.iter().filter(|t| !t.kind.is_trivia()).collect();
        let ident = |t: &crate::lexer::Token| identifier(t.kind, &text.as_bytes()[t.start..t.end]);
        match parts.as_slice() {
            [n] => Some(QualName::new(default_schema, ident(n)?)),
            [s, dot, n] if &text[dot.start..dot.end] == "." => {
                Some(QualName::new(ident(s)?, ident(n)?))
            }
            _ => None,
        }
    }
}

impl fmt::Display for QualName {
    /// Written back as SQL, quoting only where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            quote_ident(&self.schema),
            quote_ident(&self.name)
        )
    }
}

/// The catalog form of an identifier token, or `None` if the token is not an identifier.
pub fn identifier(kind: crate::lexer::TokenKind, bytes: &[u8]) -> Option<String> {
    use crate::lexer::TokenKind;
    match kind {
        TokenKind::Ident => Some(String::from_utf8_lossy(bytes).to_ascii_lowercase()),
        TokenKind::QuotedIdent if bytes.first() == Some(&b'"') => {
            Some(String::from_utf8_lossy(&bytes[1..bytes.len() - 1]).replace("\"\"", "\""))
        }
        TokenKind::QuotedIdent => {
            // U&"..." with the default escape character.
            let inner = String::from_utf8_lossy(&bytes[3..bytes.len() - 1]).replace("\"\"", "\"");
            Some(decode_unicode_escapes(&inner))
        }
        _ => None,
    }
}

fn decode_unicode_escapes(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            if chars.get(i + 1) == Some(&'\\') {
                out.push('\\');
                i += 2;
                continue;
            }
            let (digits, skip) = if chars.get(i + 1) == Some(&'+') {
                (6, 2)
            } else {
                (4, 1)
            };
            let hex: String = chars.iter().skip(i + skip).take(digits).collect();
            if hex.len() == digits {
                if let Some(c) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(c);
                    i += skip + digits;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Quote an identifier unless it is a plain lower-case name that is not a keyword: the one
/// rule every tool spells names with ([`cluster::quote::name`]).
pub fn quote_ident(s: &str) -> String {
    cluster::quote::name(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_and_quoting() {
        assert_eq!(
            QualName::parse("App.\"Weird;Name\"", "public"),
            Some(QualName::new("app", "Weird;Name"))
        );
        assert_eq!(
            QualName::parse("Orders", "public"),
            Some(QualName::new("public", "orders"))
        );
        assert_eq!(QualName::parse("a.b.c", "public"), None);
        assert_eq!(
            QualName::new("app", "Weird;Name").to_string(),
            "app.\"Weird;Name\""
        );
        assert_eq!(quote_ident("order"), "\"order\"");
        assert_eq!(quote_ident("col \"x\""), "\"col \"\"x\"\"\"");
        assert_eq!(quote_ident("id"), "id");
        assert_eq!(
            identifier(crate::lexer::TokenKind::QuotedIdent, br#"U&"d\0061t""#),
            Some("dat".into())
        );
    }
}
