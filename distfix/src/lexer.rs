//! One token at a time, by psql's lexical rules (PostgreSQL 15 `psqlscan.l`).
//!
//! The same function serves the streaming splitter (which hands it a window of its read buffer
//! and may get [`Lexed::NeedMore`] back) and the statement recognizer (which hands it a whole
//! statement with `eof = true`). Keeping a single implementation means the splitter and the
//! parser can never disagree about where a string or comment ends.

/// What a token is, as far as splitting and recognizing statements needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// Spaces, tabs, newlines, form feeds.
    Whitespace,
    /// `--` up to (not including) the end of the line.
    LineComment,
    /// `/* ... */`, nested.
    BlockComment,
    /// Unquoted identifier or keyword (may contain `$` after the first byte).
    Ident,
    /// `"..."` or `U&"..."`.
    QuotedIdent,
    /// `'...'`, `E'...'`, `B'...'`, `X'...'`, `U&'...'`, including continuation segments.
    String,
    /// `$tag$ ... $tag$`.
    DollarString,
    /// Numeric literal (with any trailing junk PostgreSQL would glue to it).
    Number,
    /// `$1`, `$2`, ...
    Param,
    Semicolon,
    LParen,
    RParen,
    /// A backslash outside quotes: the start of a psql meta-command.
    Backslash,
    /// Any other single byte (operators, commas, dots, brackets), or `\;` / `\:`.
    Other,
}

impl TokenKind {
    /// Whitespace and comments: never part of the meaning of a statement.
    pub fn is_trivia(self) -> bool {
        matches!(
            self,
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment
        )
    }
}

/// A construct that ran to the end of the input without being closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unclosed {
    String,
    QuotedIdent,
    DollarString,
    BlockComment,
}

impl Unclosed {
    pub fn describe(self) -> &'static str {
        match self {
            Unclosed::String => "quoted string",
            Unclosed::QuotedIdent => "quoted identifier",
            Unclosed::DollarString => "dollar-quoted string",
            Unclosed::BlockComment => "/* comment",
        }
    }
}

/// Result of lexing at the start of a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lexed {
    /// A token of this kind and length (in bytes) starts the window.
    Token(TokenKind, usize),
    /// The window ends before the token can be decided; supply more input.
    NeedMore,
    /// End of input inside an unclosed construct.
    Unclosed(Unclosed),
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

fn is_dollar_tag_cont(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit()
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b)
}

fn is_horiz_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0c | 0x0b)
}

/// Lex one token at the start of `input` (which must not be empty).
///
/// `eof` says that nothing follows `input`; `standard_strings` is the current value of
/// `standard_conforming_strings` (when off, backslash escapes apply inside plain `'...'`).
pub fn lex(input: &[u8], eof: bool, standard_strings: bool) -> Lexed {
    debug_assert!(!input.is_empty());
    let b = input[0];
    let at = |i: usize| input.get(i).copied();
    let need = |i: usize| -> bool { i >= input.len() && !eof };
    match b {
        _ if is_space(b) => {
            let n = input
                .iter()
                .position(|&c| !is_space(c))
                .unwrap_or(input.len());
            Lexed::Token(TokenKind::Whitespace, n)
        }
        b'-' if need(1) => Lexed::NeedMore,
        b'-' if at(1) == Some(b'-') => match memchr::memchr2(b'\n', b'\r', input) {
            Some(n) => Lexed::Token(TokenKind::LineComment, n),
            None if eof => Lexed::Token(TokenKind::LineComment, input.len()),
            None => Lexed::NeedMore,
        },
        b'/' if need(1) => Lexed::NeedMore,
        b'/' if at(1) == Some(b'*') => block_comment(input, eof),
        b'\'' => quoted_string(input, 1, !standard_strings, eof),
        b'"' => quoted_ident(input, 1, eof),
        b'$' => dollar(input, eof),
        b'0'..=b'9' => number(input, eof),
        b'.' if need(1) => Lexed::NeedMore,
        b'.' if at(1).is_some_and(|c| c.is_ascii_digit()) => number(input, eof),
        _ if is_ident_start(b) => ident(input, eof),
        b';' => Lexed::Token(TokenKind::Semicolon, 1),
        b'(' => Lexed::Token(TokenKind::LParen, 1),
        b')' => Lexed::Token(TokenKind::RParen, 1),
        b'\\' if need(1) => Lexed::NeedMore,
        b'\\' if matches!(at(1), Some(b';') | Some(b':')) => Lexed::Token(TokenKind::Other, 2),
        b'\\' => Lexed::Token(TokenKind::Backslash, 1),
        _ => Lexed::Token(TokenKind::Other, 1),
    }
}

fn block_comment(input: &[u8], eof: bool) -> Lexed {
    let mut depth = 0usize;
    let mut i = 0;
    while i + 1 < input.len() {
        match (input[i], input[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Lexed::Token(TokenKind::BlockComment, i);
                }
            }
            _ => i += 1,
        }
    }
    if eof {
        Lexed::Unclosed(Unclosed::BlockComment)
    } else {
        Lexed::NeedMore
    }
}

/// A string body starting at `start` (just after the opening quote). With `escapes`, a
/// backslash escapes the next byte. Handles `''` doubling and psql's quote continuation
/// (`'a'` newline `'b'` is one literal, lexed in the same mode).
fn quoted_string(input: &[u8], mut start: usize, escapes: bool, eof: bool) -> Lexed {
    loop {
        let mut i = start;
        let close = loop {
            let rel = if escapes {
                memchr::memchr2(b'\'', b'\\', &input[i..])
            } else {
                memchr::memchr(b'\'', &input[i..])
            };
            let Some(rel) = rel else {
                return unclosed_or_more(eof, Unclosed::String);
            };
            let j = i + rel;
            if input[j] == b'\\' {
                if j + 1 >= input.len() {
                    return unclosed_or_more(eof, Unclosed::String);
                }
                i = j + 2;
                continue;
            }
            // A quote: doubled, or the end of this segment.
            match input.get(j + 1) {
                Some(b'\'') => i = j + 2,
                Some(_) => break j + 1,
                None if eof => break j + 1,
                None => return Lexed::NeedMore,
            }
        };
        match continuation(input, close, eof) {
            Continuation::No => return Lexed::Token(TokenKind::String, close),
            Continuation::NeedMore => return Lexed::NeedMore,
            Continuation::At(next) => start = next,
        }
    }
}

fn unclosed_or_more(eof: bool, what: Unclosed) -> Lexed {
    if eof {
        Lexed::Unclosed(what)
    } else {
        Lexed::NeedMore
    }
}

enum Continuation {
    No,
    NeedMore,
    /// Continues with a new segment whose body starts at this offset.
    At(usize),
}

/// psql's `quotecontinue`: horizontal space, a newline, then any mix of whitespace and
/// `--` comments, then a quote.
fn continuation(input: &[u8], mut i: usize, eof: bool) -> Continuation {
    while i < input.len() && is_horiz_space(input[i]) {
        i += 1;
    }
    match input.get(i) {
        None if eof => return Continuation::No,
        None => return Continuation::NeedMore,
        Some(b'\n') | Some(b'\r') => i += 1,
        Some(_) => return Continuation::No,
    }
    loop {
        match input.get(i) {
            None if eof => return Continuation::No,
            None => return Continuation::NeedMore,
            Some(&c) if is_space(c) => i += 1,
            Some(b'-') => match input.get(i + 1) {
                None if eof => return Continuation::No,
                None => return Continuation::NeedMore,
                Some(b'-') => match memchr::memchr2(b'\n', b'\r', &input[i..]) {
                    // The comment must be followed by a newline to continue.
                    Some(n) => i += n + 1,
                    None if eof => return Continuation::No,
                    None => return Continuation::NeedMore,
                },
                Some(_) => return Continuation::No,
            },
            Some(b'\'') => return Continuation::At(i + 1),
            Some(_) => return Continuation::No,
        }
    }
}

fn quoted_ident(input: &[u8], start: usize, eof: bool) -> Lexed {
    let mut i = start;
    loop {
        let Some(rel) = memchr::memchr(b'"', &input[i..]) else {
            return unclosed_or_more(eof, Unclosed::QuotedIdent);
        };
        let j = i + rel;
        match input.get(j + 1) {
            Some(b'"') => i = j + 2,
            Some(_) => return Lexed::Token(TokenKind::QuotedIdent, j + 1),
            None if eof => return Lexed::Token(TokenKind::QuotedIdent, j + 1),
            None => return Lexed::NeedMore,
        }
    }
}

fn dollar(input: &[u8], eof: bool) -> Lexed {
    match input.get(1) {
        None if eof => return Lexed::Token(TokenKind::Other, 1),
        None => return Lexed::NeedMore,
        Some(c) if c.is_ascii_digit() => {
            let n = 1 + input[1..]
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(input.len() - 1);
            if n == input.len() && !eof {
                return Lexed::NeedMore;
            }
            return Lexed::Token(TokenKind::Param, n);
        }
        Some(&c) if c != b'$' && !is_ident_start(c) => return Lexed::Token(TokenKind::Other, 1),
        _ => {}
    }
    let tag_end = 1 + input[1..]
        .iter()
        .position(|&c| !is_dollar_tag_cont(c))
        .unwrap_or(input.len() - 1);
    match input.get(tag_end) {
        None if eof => return Lexed::Token(TokenKind::Other, 1),
        None => return Lexed::NeedMore,
        Some(b'$') => {}
        Some(_) => return Lexed::Token(TokenKind::Other, 1),
    }
    let delim = &input[..=tag_end];
    let body = tag_end + 1;
    match memchr::memmem::find(&input[body..], delim) {
        Some(rel) => Lexed::Token(TokenKind::DollarString, body + rel + delim.len()),
        None => unclosed_or_more(eof, Unclosed::DollarString),
    }
}

fn number(input: &[u8], eof: bool) -> Lexed {
    let digits = |from: usize| {
        from + input[from..]
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(input.len() - from)
    };
    let mut i = digits(0);
    if input.get(i) == Some(&b'.') && input.get(i + 1) != Some(&b'.') {
        i = digits(i + 1);
    }
    if matches!(input.get(i), Some(b'e') | Some(b'E')) {
        i += 1;
        if matches!(input.get(i), Some(b'+') | Some(b'-')) {
            i += 1;
        }
        i = digits(i);
    }
    // Trailing identifier bytes glue onto the number (PostgreSQL 15 "trailing junk").
    while i < input.len() && is_ident_cont(input[i]) {
        i += 1;
    }
    if i >= input.len() && !eof {
        return Lexed::NeedMore;
    }
    Lexed::Token(TokenKind::Number, i)
}

fn ident(input: &[u8], eof: bool) -> Lexed {
    let n = input
        .iter()
        .position(|&c| !is_ident_cont(c))
        .unwrap_or(input.len());
    if n == input.len() && !eof {
        return Lexed::NeedMore;
    }
    if n == 1 {
        let next = input.get(1).copied();
        match (input[0].to_ascii_lowercase(), next) {
            (b'e', Some(b'\'')) => return quoted_string(input, 2, true, eof),
            (b'b' | b'x', Some(b'\'')) => return quoted_string(input, 2, false, eof),
            (b'u', Some(b'&')) => match input.get(2) {
                None if !eof => return Lexed::NeedMore,
                Some(b'\'') => return quoted_string(input, 3, false, eof),
                Some(b'"') => return quoted_ident(input, 3, eof),
                _ => {}
            },
            _ => {}
        }
    }
    Lexed::Token(TokenKind::Ident, n)
}

/// A token of a complete statement, with its byte range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

/// All tokens of a complete text. Stops at the first unclosed construct and reports it.
pub fn tokenize(text: &[u8], standard_strings: bool) -> Result<Vec<Token>, Unclosed> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        match lex(&text[pos..], true, standard_strings) {
            Lexed::Token(kind, len) => {
                out.push(Token {
                    kind,
                    start: pos,
                    end: pos + len,
                });
                pos += len;
            }
            Lexed::Unclosed(u) => return Err(u),
            Lexed::NeedMore => unreachable!("lex never asks for more input at end of input"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str, scs: bool) -> Vec<(TokenKind, String)> {
        tokenize(s.as_bytes(), scs)
            .unwrap()
            .into_iter()
            .filter(|t| t.kind != TokenKind::Whitespace)
            .map(|t| (t.kind, s[t.start..t.end].to_string()))
            .collect()
    }

    #[test]
    fn strings_follow_standard_conforming_strings() {
        let on = kinds(r"SELECT 'a\';'b'", true);
        assert_eq!(on[1], (TokenKind::String, r"'a\'".to_string()));
        assert_eq!(on[2], (TokenKind::Semicolon, ";".to_string()));
        let off = kinds(r"SELECT 'a\';' x", false);
        assert_eq!(off[1], (TokenKind::String, r"'a\';'".to_string()));
    }

    #[test]
    fn prefixed_strings() {
        let t = kinds(r"E'x\'y' U&'d\0061t' B'101' X'1f' N'a''b' e'\\'", true);
        let strs: Vec<_> = t.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            strs,
            [
                r"E'x\'y'",
                r"U&'d\0061t'",
                "B'101'",
                "X'1f'",
                "N",
                "'a''b'",
                r"e'\\'"
            ]
        );
        // An identifier ending in e is not an E-string prefix.
        let t = kinds(r"some'\';'x'", true);
        assert_eq!(t[1].1, r"'\'");
    }

    #[test]
    fn quote_continuation_keeps_escape_mode() {
        let s = "E'a'\n  -- note\n'b\\'c;' x";
        let t = kinds(s, true);
        assert_eq!(t[0].0, TokenKind::String);
        assert_eq!(t[0].1, "E'a'\n  -- note\n'b\\'c;'");
        assert_eq!(t[1].1, "x");
        // Without a newline there is no continuation.
        let t = kinds("'a' 'b'", true);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn dollar_quotes() {
        let s = "$fn$ a $$ b $f$ ; $fn$ $$x;$$ $1 a$b$c";
        let t = kinds(s, true);
        assert_eq!(
            t[0],
            (TokenKind::DollarString, "$fn$ a $$ b $f$ ; $fn$".into())
        );
        assert_eq!(t[1], (TokenKind::DollarString, "$$x;$$".into()));
        assert_eq!(t[2], (TokenKind::Param, "$1".into()));
        assert_eq!(t[3], (TokenKind::Ident, "a$b$c".into()));
    }

    #[test]
    fn comments_nest() {
        let t = kinds("/* a /* b */ ; */ x -- y; z\n w", true);
        assert_eq!(t[0].0, TokenKind::BlockComment);
        assert_eq!(t[1].1, "x");
        assert_eq!(t[2], (TokenKind::LineComment, "-- y; z".into()));
        assert_eq!(t[3].1, "w");
    }

    #[test]
    fn quoted_identifiers() {
        let t = kinds(r#""Weird;Name" "col ""x""" U&"d\0061t""#, true);
        assert_eq!(t[0].1, r#""Weird;Name""#);
        assert_eq!(t[1].1, r#""col ""x""""#);
        assert_eq!(t[2], (TokenKind::QuotedIdent, r#"U&"d\0061t""#.into()));
    }

    #[test]
    fn unclosed_constructs() {
        assert_eq!(tokenize(b"'abc", true), Err(Unclosed::String));
        assert_eq!(tokenize(b"\"abc", true), Err(Unclosed::QuotedIdent));
        assert_eq!(tokenize(b"$a$ x $b$", true), Err(Unclosed::DollarString));
        assert_eq!(tokenize(b"/* /* */", true), Err(Unclosed::BlockComment));
    }

    #[test]
    fn need_more_at_window_end() {
        assert_eq!(lex(b"ab", false, true), Lexed::NeedMore);
        assert_eq!(lex(b"E", false, true), Lexed::NeedMore);
        assert_eq!(lex(b"-", false, true), Lexed::NeedMore);
        assert_eq!(lex(b"'a'", false, true), Lexed::NeedMore);
        assert_eq!(
            lex(b"'a' x", false, true),
            Lexed::Token(TokenKind::String, 3)
        );
        assert_eq!(lex(b"$a", false, true), Lexed::NeedMore);
    }

    #[test]
    fn numbers_and_backslashes() {
        let t = kinds(r"1.5e3 1..2 .5 \; \x", true);
        assert_eq!(t[0], (TokenKind::Number, "1.5e3".into()));
        assert_eq!(t[1], (TokenKind::Number, "1".into()));
        assert_eq!(t[4].1, ".5");
        assert_eq!(t[5], (TokenKind::Other, r"\;".into()));
        assert_eq!(t[6], (TokenKind::Backslash, r"\".into()));
    }
}
