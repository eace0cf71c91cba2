//! pg_dump/psql name patterns (`-t`, `-T`, `-n`, `-N`) turned into anchored regexes.
//!
//! The rules are psql's `patternToSQLRegex`: outside double quotes letters fold to lower case,
//! `*` is any sequence, `?` any one character, `.` separates schema from name, and other
//! characters keep their regex meaning (`[0-9]`, `(a|b)`, `+`) except `$`, which is literal;
//! inside double quotes everything is literal and case is kept, `""` is one quote.

use regex::Regex;

use crate::ClusterError;

/// A table pattern, optionally schema-qualified.
#[derive(Debug, Clone)]
pub struct NamePattern {
    pub text: String,
    schema: Option<Regex>,
    name: Regex,
    /// No wildcard or regex character: the pattern names one relation exactly.
    pub exact: bool,
}

/// A schema pattern (`-n`, `-N`): the whole pattern names schemas.
#[derive(Debug, Clone)]
pub struct SchemaPattern {
    pub text: String,
    name: Regex,
}

impl NamePattern {
    pub fn parse(text: &str) -> Result<NamePattern, ClusterError> {
        let parts = split(text)?;
        let (schema, name) = match parts.as_slice() {
            [name] => (None, name),
            [schema, name] => (Some(schema), name),
            _ => {
                return Err(ClusterError::BadPattern {
                    pattern: text.to_string(),
                    why: "improper qualified name (too many dotted names)".into(),
                })
            }
        };
        let exact = schema.is_none_or(|s| s.exact) && name.exact;
        Ok(NamePattern {
            text: text.to_string(),
            schema: schema.map(|s| compile(text, &s.regex)).transpose()?,
            name: compile(text, &name.regex)?,
            exact,
        })
    }

    pub fn matches(&self, schema: &str, name: &str) -> bool {
        self.schema.as_ref().is_none_or(|s| s.is_match(schema)) && self.name.is_match(name)
    }

    /// Whether the pattern names a schema; an unqualified pattern matches tables in any schema
    /// (pg_dump restricts it to the search path; with only visible tables that is the same for
    /// the common case, and a DBA exporting a whole database wants every schema searched).
    pub fn is_qualified(&self) -> bool {
        self.schema.is_some()
    }
}

impl SchemaPattern {
    pub fn parse(text: &str) -> Result<SchemaPattern, ClusterError> {
        let parts = split(text)?;
        match parts.as_slice() {
            [name] => Ok(SchemaPattern {
                text: text.to_string(),
                name: compile(text, &name.regex)?,
            }),
            _ => Err(ClusterError::BadPattern {
                pattern: text.to_string(),
                why: "a schema pattern cannot be qualified".into(),
            }),
        }
    }

    pub fn matches(&self, schema: &str) -> bool {
        self.name.is_match(schema)
    }
}

struct Part {
    regex: String,
    exact: bool,
}

fn split(text: &str) -> Result<Vec<Part>, ClusterError> {
    let mut parts = vec![Part {
        regex: String::new(),
        exact: true,
    }];
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let part = parts.last_mut().expect("one part at least");
        if c == '"' {
            if in_quotes && chars.peek() == Some(&'"') {
                chars.next();
                part.regex.push('"');
            } else {
                in_quotes = !in_quotes;
            }
        } else if in_quotes {
            part.regex.push_str(&regex::escape(&c.to_string()));
        } else if c == '.' {
            parts.push(Part {
                regex: String::new(),
                exact: true,
            });
        } else if c == '*' {
            part.regex.push_str(".*");
            part.exact = false;
        } else if c == '?' {
            part.regex.push('.');
            part.exact = false;
        } else if c == '$' {
            part.regex.push_str("\\$");
        } else if "|+()[]{}^\\".contains(c) {
            part.regex.push(c);
            part.exact = false;
        } else {
            for l in c.to_lowercase() {
                part.regex.push(l);
            }
        }
    }
    if in_quotes {
        return Err(ClusterError::BadPattern {
            pattern: text.to_string(),
            why: "unterminated double quote".into(),
        });
    }
    Ok(parts)
}

fn compile(text: &str, body: &str) -> Result<Regex, ClusterError> {
    Regex::new(&format!("^(?:{body})$")).map_err(|e| ClusterError::BadPattern {
        pattern: text.to_string(),
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_rules() {
        let p = NamePattern::parse("Sales.Order*").unwrap();
        assert!(p.matches("sales", "orders"));
        assert!(!p.matches("Sales", "orders"));
        assert!(!p.exact);
        let p = NamePattern::parse("\"My Schema\".\"Mixed.Case\"").unwrap();
        assert!(p.matches("My Schema", "Mixed.Case"));
        assert!(!p.matches("my schema", "mixed.case"));
        assert!(p.exact);
        let p = NamePattern::parse("t?").unwrap();
        assert!(p.matches("any", "t1") && !p.matches("any", "t12"));
        let p = NamePattern::parse("\"a\"\"b\"").unwrap();
        assert!(p.matches("s", "a\"b"));
        let p = NamePattern::parse("t_[0-9]+").unwrap();
        assert!(p.matches("s", "t_2024") && !p.matches("s", "t_x"));
        let p = NamePattern::parse("cost$").unwrap();
        assert!(p.matches("s", "cost$"));
        assert!(NamePattern::parse("a.b.c").is_err());
        assert!(NamePattern::parse("\"open").is_err());
        assert!(SchemaPattern::parse("a.b").is_err());
        assert!(SchemaPattern::parse("pub*").unwrap().matches("public"));
    }
}
