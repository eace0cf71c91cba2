//! Just enough SQL lexing to edit DDL safely: hide literals, quoted identifiers, comments and
//! dollar-quoted bodies, and split a chunk into statements.
//!
//! [`mask`] returns a copy of the same length in which every byte *inside* a string literal,
//! quoted identifier or dollar-quoted body is `_` and every comment byte is a space. Patterns are
//! matched on the masked copy and the resulting byte ranges edited in the original, so a function
//! body or a string that happens to contain `DISTRIBUTED BY` is never touched.

/// Masks literals, quoted identifiers, dollar bodies and comments (see module doc).
pub fn mask(sql: &[u8]) -> Vec<u8> {
    let mut out = sql.to_vec();
    let n = sql.len();
    let mut i = 0;
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
    while i < n {
        let b = sql[i];
        match b {
            b'\'' => {
                let escapes =
                    i > 0 && matches!(sql[i - 1], b'E' | b'e') && (i < 2 || !is_ident(sql[i - 2]));
                let mut j = i + 1;
                while j < n {
                    if escapes && sql[j] == b'\\' {
                        j += 2;
                        continue;
                    }
                    if sql[j] == b'\'' {
                        if j + 1 < n && sql[j + 1] == b'\'' {
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    j += 1;
                }
                let end = j.min(n);
                out[i + 1..end].fill(b'_');
                i = end + 1;
            }
            b'"' => {
                let mut j = i + 1;
                while j < n {
                    if sql[j] == b'"' {
                        if j + 1 < n && sql[j + 1] == b'"' {
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    j += 1;
                }
                let end = j.min(n);
                out[i + 1..end].fill(b'_');
                i = end + 1;
            }
            b'-' if sql.get(i + 1) == Some(&b'-') => {
                let end = memchr::memchr(b'\n', &sql[i..]).map(|p| i + p).unwrap_or(n);
                out[i..end].fill(b' ');
                i = end;
            }
            b'/' if sql.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                let mut j = i;
                while j < n {
                    if sql[j] == b'/' && sql.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if sql[j] == b'*' && sql.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                let end = j.min(n);
                out[i..end].fill(b' ');
                i = end;
            }
            b'$' if i == 0 || !is_ident(sql[i - 1]) => {
                // $tag$ or $$; `$1` parameters are not quotes.
                let mut j = i + 1;
                while j < n && is_ident(sql[j]) {
                    j += 1;
                }
                let tag_ok =
                    j < n && sql[j] == b'$' && (j == i + 1 || !sql[i + 1].is_ascii_digit());
                if !tag_ok {
                    i += 1;
                    continue;
                }
                let tag = &sql[i..=j];
                let body_start = j + 1;
                let close = memchr::memmem::find(&sql[body_start..], tag).map(|p| body_start + p);
                let body_end = close.unwrap_or(n);
                out[body_start..body_end].fill(b'_');
                i = close.map(|c| c + tag.len()).unwrap_or(n);
            }
            _ => i += 1,
        }
    }
    out
}

/// Splits a chunk into statements at top-level semicolons (found in the masked text). Each
/// range includes the whitespace before the statement and its `;`; trailing text after the
/// last `;` is a final range.
pub fn split_statements(masked: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for pos in memchr::memchr_iter(b';', masked) {
        out.push(start..pos + 1);
        start = pos + 1;
    }
    if start < masked.len() {
        out.push(start..masked.len());
    }
    out
}

/// Index just past the parenthesis closing the one at `open` (masked text), if balanced.
pub fn matching_paren(masked: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in masked.iter().enumerate().skip(open) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Top-level comma-separated items of `masked[range]`, as ranges.
pub fn split_top_level_commas(
    masked: &[u8],
    range: std::ops::Range<usize>,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = range.start;
    for i in range.clone() {
        match masked[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth == 0 => {
                out.push(start..i);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(start..range.end);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_everything_that_is_not_code() {
        let sql =
            b"SELECT 'a;''b', \"x;y\", E'\\';' -- c;\n/* d; /* e */ ; */ $f$ ; $f$, $$;$$, $1;";
        let m = mask(sql);
        assert_eq!(m.len(), sql.len());
        let semis: Vec<_> = m
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b';')
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            semis,
            vec![sql.len() - 1,],
            "{}",
            String::from_utf8_lossy(&m)
        );
        assert_eq!(split_statements(&mask(b"A; B;\n")), vec![0..2, 2..5, 5..6]);
        let m = mask(b"f(a, (b, c)), d");
        assert_eq!(matching_paren(&m, 1), Some(12));
        assert_eq!(split_top_level_commas(&m, 2..11), vec![2..3, 4..11]);
    }
}
