//! Streaming, byte-exact split of a psql script into items, the way psql itself would run it.
//!
//! Concatenating every item's bytes gives back the input exactly. Statements are held one at a
//! time; COPY data is handed out in slices of the read buffer and never tokenized, so memory stays
//! at the buffer size plus the largest single statement.

use std::io::{self, Read};

use crate::lexer::{lex, tokenize, Lexed, TokenKind};

/// Initial (and usual) read buffer size.
const BUF_SIZE: usize = 256 * 1024;

/// What an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// Whitespace and comments between statements.
    Trivia,
    /// One SQL statement from its first token through its terminating `;`.
    Statement,
    /// A psql meta-command line (`\restrict KEY`, `\connect db`, ...), newline included.
    Meta,
    /// A slice of COPY data; the last slice of a block ends with the `\.` line.
    CopyData,
}

/// One piece of the script, borrowed from the splitter until the next call.
#[derive(Debug)]
pub struct Item<'a> {
    pub kind: ItemKind,
    pub bytes: &'a [u8],
    /// 1-based line number of the first byte.
    pub line: u64,
    /// `standard_conforming_strings` in effect for this item (needed to re-lex a statement).
    pub standard_strings: bool,
    /// For statements: whether a `;` ends it (only the last statement of a script may lack one).
    /// For COPY data: whether this slice ends the block.
    pub complete: bool,
    /// Line breaks in `bytes` for COPY data (counted anyway for line numbers; the row count of
    /// a block is the sum less its terminator line), 0 for other items.
    pub newlines: u64,
}

/// A script that psql could not run as intended.
#[derive(Debug, thiserror::Error)]
pub enum SplitError {
    #[error("line {line}: unterminated {what}")]
    Unclosed { line: u64, what: &'static str },
    #[error("line {line}: unbalanced parentheses at end of input in the statement starting here")]
    OpenParen { line: u64 },
    #[error("line {line}: COPY data starting here ends without a \\. line")]
    UnterminatedCopy { line: u64 },
    #[error("line {line}: psql meta-command inside a SQL statement is not supported")]
    MetaInStatement { line: u64 },
    #[error("line {line}: unexpected text after COPY ... FROM stdin; on the same line")]
    TextAfterCopy { line: u64 },
    #[error("read error: {0}")]
    Io(#[from] io::Error),
}

/// A token (kind, length), or the description of an unclosed construct.
type Lexeme = Result<(TokenKind, usize), &'static str>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Normal,
    /// Just after `COPY ... FROM stdin;`: the rest of the line, then data.
    AfterCopy,
    CopyData {
        line_start: bool,
        block_line: u64,
    },
}

/// Splits a psql script read from `R` into [`Item`]s.
pub struct Splitter<R> {
    reader: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    line: u64,
    standard_strings: bool,
    state: State,
    item: Vec<u8>,
}

impl<R: Read> Splitter<R> {
    pub fn new(reader: R) -> Self {
        Splitter {
            reader,
            buf: vec![0; BUF_SIZE],
            pos: 0,
            end: 0,
            eof: false,
            line: 1,
            standard_strings: true,
            state: State::Normal,
            item: Vec::new(),
        }
    }

    /// Current `standard_conforming_strings` setting as tracked from the script.
    /// Starts with `standard_conforming_strings` as given (a TOC entry's text is lexed under
    /// the setting the archive's earlier entries established).
    pub fn with_standard_strings(mut self, on: bool) -> Self {
        self.standard_strings = on;
        self
    }

    /// Ends splitting: the bytes read ahead but not yet returned, and the reader positioned
    /// just after them. Callers that need no more items (a rewrite past its last edit) copy the
    /// rest raw, without looking at it.
    pub fn into_rest(self) -> (Vec<u8>, R) {
        (self.buf[self.pos..self.end].to_vec(), self.reader)
    }

    pub fn standard_strings(&self) -> bool {
        self.standard_strings
    }

    /// Read more input, keeping unconsumed bytes. Returns false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            // One token is larger than the buffer: grow geometrically so re-lexing stays linear.
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        loop {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Lex one token at the read position, reading more input as needed. `None` at end of input.
    fn next_token(&mut self) -> Result<Option<Lexeme>, SplitError> {
        loop {
            if self.pos == self.end && !self.fill()? {
                return Ok(None);
            }
            match lex(
                &self.buf[self.pos..self.end],
                self.eof,
                self.standard_strings,
            ) {
                Lexed::Token(kind, len) => return Ok(Some(Ok((kind, len)))),
                Lexed::Unclosed(u) => return Ok(Some(Err(u.describe()))),
                Lexed::NeedMore => {
                    self.fill()?;
                }
            }
        }
    }

    /// Move `len` bytes from the buffer into the current item.
    fn take(&mut self, len: usize) {
        let bytes = &self.buf[self.pos..self.pos + len];
        self.line += memchr::memchr_iter(b'\n', bytes).count() as u64;
        self.item.extend_from_slice(bytes);
        self.pos += len;
    }

    /// The next item, or `None` after the last one.
    pub fn next_item(&mut self) -> Result<Option<Item<'_>>, SplitError> {
        match self.state {
            State::Normal => self.normal(),
            State::AfterCopy => self.after_copy(),
            State::CopyData {
                line_start,
                block_line,
            } => self.copy_data(line_start, block_line),
        }
    }

    fn item(&self, kind: ItemKind, line: u64, complete: bool) -> Option<Item<'_>> {
        Some(Item {
            kind,
            bytes: &self.item,
            line,
            standard_strings: self.standard_strings,
            complete,
            newlines: 0,
        })
    }

    fn normal(&mut self) -> Result<Option<Item<'_>>, SplitError> {
        self.item.clear();
        let start_line = self.line;
        // Trivia first: whitespace and comments until something else.
        loop {
            match self.next_token()? {
                None => break,
                Some(Err(what)) => {
                    return Err(SplitError::Unclosed {
                        line: self.line,
                        what,
                    })
                }
                Some(Ok((kind, len))) if kind.is_trivia() => self.take(len),
                Some(Ok(_)) => break,
            }
        }
        if !self.item.is_empty() {
            return Ok(self.item(ItemKind::Trivia, start_line, true));
        }
        match self.next_token()? {
            None => Ok(None),
            Some(Ok((TokenKind::Backslash, _))) => self.meta(),
            Some(_) => self.statement(),
        }
    }

    /// A meta-command: from the backslash through the end of its line.
    fn meta(&mut self) -> Result<Option<Item<'_>>, SplitError> {
        let line = self.line;
        loop {
            if self.pos == self.end && !self.fill()? {
                break;
            }
            match memchr::memchr(b'\n', &self.buf[self.pos..self.end]) {
                Some(n) => {
                    self.take(n + 1);
                    break;
                }
                None => {
                    let n = self.end - self.pos;
                    self.take(n);
                }
            }
        }
        let words = meta_words(&self.item);
        match words.first().map(String::as_str) {
            // A new session starts with the server default (on since PostgreSQL 9.1).
            Some("connect") | Some("c") => self.standard_strings = true,
            Some("copy")
                if words.windows(2).any(|w| {
                    w[0].eq_ignore_ascii_case("from") && w[1].eq_ignore_ascii_case("stdin")
                }) =>
            {
                self.state = State::CopyData {
                    line_start: true,
                    block_line: self.line,
                };
            }
            _ => {}
        }
        Ok(self.item(ItemKind::Meta, line, true))
    }

    fn statement(&mut self) -> Result<Option<Item<'_>>, SplitError> {
        let line = self.line;
        let mut paren_depth = 0u32;
        let mut begin = BeginTracker::default();
        let mut complete = false;
        loop {
            let (kind, len) = match self.next_token()? {
                None => break,
                Some(Err(what)) => return Err(SplitError::Unclosed { line, what }),
                Some(Ok(t)) => t,
            };
            match kind {
                TokenKind::Backslash => {
                    return Err(SplitError::MetaInStatement { line: self.line })
                }
                TokenKind::LParen => paren_depth += 1,
                TokenKind::RParen => paren_depth = paren_depth.saturating_sub(1),
                TokenKind::Ident => {
                    let word = &self.buf[self.pos..self.pos + len];
                    begin.ident(word, paren_depth);
                }
                TokenKind::Semicolon if paren_depth == 0 && begin.depth == 0 => {
                    self.take(len);
                    complete = true;
                    break;
                }
                _ => {}
            }
            self.take(len);
        }
        if !complete && paren_depth > 0 {
            return Err(SplitError::OpenParen { line });
        }
        let effect = statement_effect(&self.item, self.standard_strings);
        // The statement itself was lexed under the setting in force before it.
        let standard_strings = self.standard_strings;
        match effect {
            Effect::StandardStrings(on) => self.standard_strings = on,
            Effect::CopyFromStdin if complete => self.state = State::AfterCopy,
            Effect::CopyFromStdin => return Err(SplitError::UnterminatedCopy { line }),
            Effect::None => {}
        }
        Ok(Some(Item {
            kind: ItemKind::Statement,
            bytes: &self.item,
            line,
            standard_strings,
            complete,
            newlines: 0,
        }))
    }

    /// The rest of the `COPY ... FROM stdin;` line: only spaces or a `--` comment may follow.
    fn after_copy(&mut self) -> Result<Option<Item<'_>>, SplitError> {
        self.item.clear();
        let line = self.line;
        loop {
            if self.pos == self.end && !self.fill()? {
                return Err(SplitError::UnterminatedCopy { line });
            }
            let b = self.buf[self.pos];
            if b == b'\n' {
                self.take(1);
                break;
            }
            if is_line_space(b) {
                self.take(1);
                continue;
            }
            match self.next_token()? {
                Some(Ok((TokenKind::LineComment, len))) => self.take(len),
                _ => return Err(SplitError::TextAfterCopy { line }),
            }
        }
        self.state = State::CopyData {
            line_start: true,
            block_line: self.line,
        };
        Ok(self.item(ItemKind::Trivia, line, true))
    }

    fn copy_data(
        &mut self,
        mut line_start: bool,
        block_line: u64,
    ) -> Result<Option<Item<'_>>, SplitError> {
        loop {
            if self.pos == self.end && !self.fill()? {
                return Err(SplitError::UnterminatedCopy { line: block_line });
            }
            let data = &self.buf[self.pos..self.end];
            if line_start {
                match terminator(data, self.eof) {
                    Term::Yes(n) => return Ok(self.copy_chunk(n, true, block_line)),
                    Term::NeedMore => {
                        if !self.fill()? && self.pos == self.end {
                            return Err(SplitError::UnterminatedCopy { line: block_line });
                        }
                        continue;
                    }
                    Term::No => {}
                }
            }
            let mut from = 0;
            let mut cut = None;
            while let Some(rel) = memchr::memmem::find(&data[from..], b"\n\\.") {
                let h = from + rel;
                match terminator(&data[h + 1..], self.eof) {
                    Term::Yes(n) => return Ok(self.copy_chunk(h + 1 + n, true, block_line)),
                    Term::No => from = h + 1,
                    Term::NeedMore => {
                        cut = Some((h + 1, true));
                        break;
                    }
                }
            }
            let (n, next_line_start) = cut.unwrap_or_else(|| match memchr::memrchr(b'\n', data) {
                // A short tail after the last newline might be the start of `\.`: keep it.
                Some(i) if data.len() - (i + 1) < 2 => (i + 1, true),
                _ => (data.len(), false),
            });
            if n == 0 {
                // Only an undecidable line start is buffered: read more and look again.
                if !self.fill()? {
                    return Err(SplitError::UnterminatedCopy { line: block_line });
                }
                line_start = true;
                continue;
            }
            self.state = State::CopyData {
                line_start: next_line_start,
                block_line,
            };
            return Ok(self.copy_chunk(n, false, block_line));
        }
    }

    fn copy_chunk(&mut self, n: usize, last: bool, block_line: u64) -> Option<Item<'_>> {
        let line = self.line;
        let start = self.pos;
        let newlines = memchr::memchr_iter(b'\n', &self.buf[start..start + n]).count() as u64;
        self.line += newlines;
        self.pos += n;
        if last {
            self.state = State::Normal;
        }
        let _ = block_line;
        Some(Item {
            kind: ItemKind::CopyData,
            bytes: &self.buf[start..start + n],
            line,
            standard_strings: self.standard_strings,
            complete: last,
            newlines,
        })
    }
}

fn is_line_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | 0x0b | 0x0c)
}

enum Term {
    Yes(usize),
    No,
    NeedMore,
}

/// Does `d` (at a line start) begin with the end-of-data line `\.`?
fn terminator(d: &[u8], eof: bool) -> Term {
    let undecided = if eof { Term::No } else { Term::NeedMore };
    match d.first() {
        None => return undecided,
        Some(b'\\') => {}
        Some(_) => return Term::No,
    }
    match d.get(1) {
        None => return undecided,
        Some(b'.') => {}
        Some(_) => return Term::No,
    }
    match d.get(2) {
        None if eof => Term::Yes(2),
        None => Term::NeedMore,
        Some(b'\n') => Term::Yes(3),
        Some(b'\r') => match d.get(3) {
            None if eof => Term::Yes(3),
            None => Term::NeedMore,
            Some(b'\n') => Term::Yes(4),
            Some(_) => Term::No,
        },
        Some(_) => Term::No,
    }
}

/// psql's heuristic for SQL-standard function bodies: after `CREATE [OR REPLACE] FUNCTION` or
/// `PROCEDURE`, `BEGIN` opens a block (and `CASE` inside one), `END` closes one, all at
/// parenthesis depth 0; `;` inside an open block does not end the statement.
#[derive(Default)]
struct BeginTracker {
    identifiers: [u8; 4],
    count: usize,
    depth: u32,
}

impl BeginTracker {
    fn ident(&mut self, word: &[u8], paren_depth: u32) {
        const MARKERS: [&[u8]; 5] = [b"create", b"function", b"procedure", b"or", b"replace"];
        if MARKERS.iter().any(|m| word.eq_ignore_ascii_case(m)) && self.count < 4 {
            self.identifiers[self.count] = word[0].to_ascii_lowercase();
        }
        self.count += 1;
        let id = self.identifiers;
        let is_routine = id[0] == b'c'
            && (id[1] == b'f'
                || id[1] == b'p'
                || (id[1] == b'o' && id[2] == b'r' && (id[3] == b'f' || id[3] == b'p')));
        if !is_routine || paren_depth != 0 {
            return;
        }
        if word.eq_ignore_ascii_case(b"begin") {
            self.depth += 1;
        } else if word.eq_ignore_ascii_case(b"case") {
            if self.depth >= 1 {
                self.depth += 1;
            }
        } else if word.eq_ignore_ascii_case(b"end") && self.depth > 0 {
            self.depth -= 1;
        }
    }
}

enum Effect {
    None,
    StandardStrings(bool),
    CopyFromStdin,
}

/// Statements that change how the rest of the script is split.
fn statement_effect(stmt: &[u8], standard_strings: bool) -> Effect {
    let Ok(tokens) = tokenize(stmt, standard_strings) else {
        return Effect::None;
    };
    let words: Vec<(TokenKind, &[u8], u32)> = {
        let mut depth = 0u32;
        let mut v = Vec::new();
        for t in tokens.iter().filter(|t| !t.kind.is_trivia()) {
            match t.kind {
                TokenKind::LParen => depth += 1,
                TokenKind::RParen => depth = depth.saturating_sub(1),
                _ => {}
            }
            v.push((t.kind, &stmt[t.start..t.end], depth));
        }
        v
    };
    let is = |i: usize, w: &str| {
        words
            .get(i)
            .is_some_and(|(k, b, _)| *k == TokenKind::Ident && b.eq_ignore_ascii_case(w.as_bytes()))
    };
    if is(0, "copy") {
        let from_stdin = words.windows(2).any(|w| {
            w[0].2 == 0
                && w[0].1.eq_ignore_ascii_case(b"from")
                && w[1].0 == TokenKind::Ident
                && w[1].1.eq_ignore_ascii_case(b"stdin")
        });
        return if from_stdin {
            Effect::CopyFromStdin
        } else {
            Effect::None
        };
    }
    if is(0, "set") {
        let mut i = 1;
        if is(1, "session") || is(1, "local") {
            i = 2;
        }
        if is(i, "standard_conforming_strings") {
            let value = words.get(i + 2).map(|(_, b, _)| {
                let s = String::from_utf8_lossy(b).to_ascii_lowercase();
                s.trim_matches('\'').to_string()
            });
            return match value.as_deref() {
                Some("on") | Some("true") | Some("1") | Some("yes") | Some("default") => {
                    Effect::StandardStrings(true)
                }
                Some("off") | Some("false") | Some("0") | Some("no") => {
                    Effect::StandardStrings(false)
                }
                _ => Effect::None,
            };
        }
    }
    if is(0, "reset") && (is(1, "standard_conforming_strings") || is(1, "all")) {
        return Effect::StandardStrings(true);
    }
    Effect::None
}

/// Words of a meta-command line, without the leading backslash.
fn meta_words(line: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(line.strip_prefix(b"\\").unwrap_or(line))
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn split_with(
        input: &[u8],
        n: usize,
    ) -> Result<Vec<(ItemKind, String, u64)>, SplitError> {
        let mut sp = Splitter::new(testkit::Trickle::new(input, n));
        let mut out: Vec<(ItemKind, String, u64)> = Vec::new();
        while let Some(item) = sp.next_item()? {
            let text = String::from_utf8_lossy(item.bytes).into_owned();
            // Merge COPY slices so results do not depend on read sizes.
            if let (ItemKind::CopyData, Some(last)) = (item.kind, out.last_mut()) {
                if last.0 == ItemKind::CopyData && !last.1.ends_with("\\.\n") {
                    last.1.push_str(&text);
                    continue;
                }
            }
            out.push((item.kind, text, item.line));
        }
        Ok(out)
    }

    /// Split with several read sizes; all must agree and round-trip exactly.
    fn split(input: &str) -> Vec<(ItemKind, String, u64)> {
        let full = split_with(input.as_bytes(), usize::MAX).unwrap();
        for n in [1, 2, 3, 5, 7, 64] {
            let part = split_with(input.as_bytes(), n).unwrap();
            assert_eq!(part, full, "read size {n}");
        }
        let joined: String = full.iter().map(|i| i.1.as_str()).collect();
        assert_eq!(joined, input, "round trip");
        full
    }

    fn statements(input: &str) -> Vec<String> {
        split(input)
            .into_iter()
            .filter(|i| i.0 == ItemKind::Statement)
            .map(|i| i.1)
            .collect()
    }

    #[test]
    fn plain_statements_and_trivia() {
        let items = split("-- c\nSELECT 1;\n\nSELECT 2; SELECT 3;\n");
        let kinds: Vec<_> = items.iter().map(|i| (i.0, i.1.as_str(), i.2)).collect();
        assert_eq!(
            kinds,
            [
                (ItemKind::Trivia, "-- c\n", 1),
                (ItemKind::Statement, "SELECT 1;", 2),
                (ItemKind::Trivia, "\n\n", 2),
                (ItemKind::Statement, "SELECT 2;", 4),
                (ItemKind::Trivia, " ", 4),
                (ItemKind::Statement, "SELECT 3;", 4),
                (ItemKind::Trivia, "\n", 4),
            ]
        );
    }

    #[test]
    fn standard_conforming_strings_switch() {
        let s = "SET standard_conforming_strings = off;\nSELECT 'a\\';x';\nSET standard_conforming_strings = on;\nSELECT 'a\\';'x';\n";
        let st = statements(s);
        assert_eq!(st[1], "SELECT 'a\\';x';");
        assert_eq!(st[3], "SELECT 'a\\';");
        assert_eq!(st[4], "'x';");
    }

    #[test]
    fn string_forms_hide_semicolons() {
        let st = statements(
            "SELECT E'x\\';y', U&'a;b' UESCAPE '!', B'1', X'ff', \"Weird;Name\", 'it''s;';\nSELECT 2;",
        );
        assert_eq!(st.len(), 2);
    }

    #[test]
    fn dollar_quotes_and_comments() {
        let s = "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; -- ; $x$ $body$ LANGUAGE sql;\n/* a /* ; */ ; */ SELECT 1; -- tail;\n";
        let st = statements(s);
        assert_eq!(st.len(), 2);
        assert!(st[0].ends_with("LANGUAGE sql;"));
        assert_eq!(st[1], "SELECT 1;");
    }

    #[test]
    fn begin_atomic_bodies() {
        let s = "CREATE OR REPLACE FUNCTION public.f(a int) RETURNS int\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT CASE WHEN a > 0 THEN 1 ELSE 2 END;\n SELECT 3;\nEND;\nCREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;\nBEGIN;\nSELECT 1;\n";
        let st = statements(s);
        assert_eq!(st.len(), 4, "{st:#?}");
        assert!(st[0].ends_with("END;"));
        assert!(st[1].ends_with("END;"));
        assert_eq!(st[2], "BEGIN;");
    }

    #[test]
    fn multi_action_rules() {
        let s = "CREATE RULE r AS ON INSERT TO t DO ( INSERT INTO a VALUES (1); INSERT INTO b VALUES (2); );\nSELECT 1;";
        let st = statements(s);
        assert_eq!(st.len(), 2);
        assert!(st[0].ends_with("(2); );"));
    }

    #[test]
    fn meta_commands_are_items() {
        let s = "\\restrict abc\nSET x = 1;\n\\connect - postgres\n\\unrestrict abc\n";
        let items = split(s);
        let kinds: Vec<_> = items.iter().map(|i| i.0).collect();
        assert_eq!(
            kinds,
            [
                ItemKind::Meta,
                ItemKind::Statement,
                ItemKind::Trivia,
                ItemKind::Meta,
                ItemKind::Meta
            ]
        );
        assert_eq!(items[0].1, "\\restrict abc\n");
    }

    #[test]
    fn copy_data_is_opaque() {
        let s = "COPY public.t (a, b) FROM stdin;\n1\t'x;\n\\\\.\t$$\n\\.\nSELECT 1;\n";
        let items = split(s);
        let kinds: Vec<_> = items.iter().map(|i| (i.0, i.1.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (ItemKind::Statement, "COPY public.t (a, b) FROM stdin;"),
                (ItemKind::Trivia, "\n"),
                (ItemKind::CopyData, "1\t'x;\n\\\\.\t$$\n\\.\n"),
                (ItemKind::Statement, "SELECT 1;"),
                (ItemKind::Trivia, "\n"),
            ]
        );
        assert_eq!(items[3].2, 5, "line numbers continue after the data");
    }

    #[test]
    fn copy_edge_cases() {
        // Empty data block, CRLF terminator, terminator at EOF without newline.
        split(
            "COPY t FROM stdin;\n\\.\nCOPY t FROM STDIN;\r\na\r\n\\.\r\nCOPY t FROM stdin;\nx\n\\.",
        );
        // COPY TO stdout has no data block.
        assert_eq!(statements("COPY t TO stdout;\nSELECT 1;").len(), 2);
        // \copy from stdin reads inline data too.
        let items = split("\\copy t from stdin\n1\n\\.\nSELECT 1;");
        assert_eq!(items[1].0, ItemKind::CopyData);
    }

    #[test]
    fn errors_name_lines() {
        let e = split_with(b"SELECT 1;\nSELECT 'abc;\n", 4).unwrap_err();
        assert!(matches!(e, SplitError::Unclosed { line: 2, .. }), "{e}");
        let e = split_with(b"COPY t FROM stdin;\n1\n2\n", 3).unwrap_err();
        assert!(matches!(e, SplitError::UnterminatedCopy { line: 2 }), "{e}");
        let e = split_with(b"SELECT 1 \\g\n", 3).unwrap_err();
        assert!(matches!(e, SplitError::MetaInStatement { .. }), "{e}");
        let e = split_with(b"COPY t FROM stdin; SELECT 1;\n\\.\n", 3).unwrap_err();
        assert!(matches!(e, SplitError::TextAfterCopy { .. }), "{e}");
        let e = split_with(b"CREATE TABLE t (a int", 3).unwrap_err();
        assert!(matches!(e, SplitError::OpenParen { line: 1 }), "{e}");
    }

    #[test]
    fn unterminated_last_statement_is_kept() {
        let items = split_with(b"SELECT 1;\nSELECT 2", 2).unwrap();
        assert_eq!(items.last().unwrap().1, "SELECT 2");
    }

    #[test]
    fn large_copy_blocks_stream() {
        let mut s = String::from("COPY t FROM stdin;\n");
        for i in 0..200_000 {
            s.push_str(&format!("{i}\tvalue {i}\n"));
        }
        s.push_str("\\.\nSELECT 1;\n");
        let mut sp = Splitter::new(s.as_bytes());
        let mut max_chunk = 0;
        let mut total = 0;
        let mut last_line = 0;
        while let Some(item) = sp.next_item().unwrap() {
            if item.kind == ItemKind::CopyData {
                max_chunk = max_chunk.max(item.bytes.len());
            }
            total += item.bytes.len();
            last_line = item.line;
        }
        assert_eq!(total, s.len());
        assert!(max_chunk <= BUF_SIZE);
        assert_eq!(last_line, 200_003);
    }
}
