//! Finding row boundaries in COPY output without parsing fields.
//!
//! Text format escapes newlines inside values, so every `\n` ends a row. CSV does not: a quoted
//! field may hold raw newlines, so the scanner tracks whether it is inside quotes, honouring an
//! ESCAPE character that differs from QUOTE. State carries across buffer boundaries, so any
//! chunking of the stream gives the same answer. It jumps between interesting bytes with
//! `memchr`, which keeps it near memory speed.
//!
//! Limitation: with a client-only multibyte `--encoding` (SJIS, BIG5, GBK, UHC, GB18030) whose
//! trailing bytes can equal a non-ASCII-letter escape byte such as `\`, a CSV `--escape '\'`
//! could be misread; the default escape (the quote character, 0x22) never collides.

/// How rows are delimited in one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowSyntax {
    Text,
    Csv { quote: u8, escape: u8 },
}

/// Incremental row-end finder.
#[derive(Debug, Clone)]
pub struct RowScanner {
    syntax: RowSyntax,
    in_quotes: bool,
    /// The previous buffer ended on the escape byte (inside quotes) or on a quote that might be
    /// the first of a doubled pair.
    pending: Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    Escape,
    Quote,
}

impl RowScanner {
    pub fn new(syntax: RowSyntax) -> RowScanner {
        RowScanner {
            syntax,
            in_quotes: false,
            pending: Pending::None,
        }
    }

    /// Offsets just past each row end (`\n` outside quotes) in `buf`, appended to `ends`.
    pub fn scan(&mut self, buf: &[u8], ends: &mut Vec<usize>) {
        match self.syntax {
            RowSyntax::Text => ends.extend(memchr::memchr_iter(b'\n', buf).map(|i| i + 1)),
            RowSyntax::Csv { quote, escape } => self.scan_csv(buf, quote, escape, ends),
        }
    }

    fn scan_csv(&mut self, buf: &[u8], quote: u8, escape: u8, ends: &mut Vec<usize>) {
        let mut i = 0;
        // Resolve what the previous buffer left undecided.
        match self.pending {
            Pending::None => {}
            Pending::Escape => {
                // The escape byte escapes a following quote or escape byte; anything else is an
                // ordinary byte and is examined normally.
                self.pending = Pending::None;
                if let Some(&b) = buf.first() {
                    if b == quote || b == escape {
                        i = 1;
                    }
                } else {
                    self.pending = Pending::Escape;
                    return;
                }
            }
            Pending::Quote => {
                // A quote inside quotes: doubled (stay inside) or closing.
                self.pending = Pending::None;
                match buf.first() {
                    Some(&b) if b == quote => i = 1,
                    Some(_) => self.in_quotes = false,
                    None => {
                        self.pending = Pending::Quote;
                        return;
                    }
                }
            }
        }
        while i < buf.len() {
            if !self.in_quotes {
                match memchr::memchr2(b'\n', quote, &buf[i..]) {
                    None => return,
                    Some(off) => {
                        let at = i + off;
                        if buf[at] == b'\n' {
                            ends.push(at + 1);
                        } else {
                            self.in_quotes = true;
                        }
                        i = at + 1;
                    }
                }
            } else {
                let found = if escape == quote {
                    memchr::memchr(quote, &buf[i..])
                } else {
                    memchr::memchr2(quote, escape, &buf[i..])
                };
                match found {
                    None => return,
                    Some(off) => {
                        let at = i + off;
                        let b = buf[at];
                        if b == escape && escape != quote {
                            match buf.get(at + 1) {
                                Some(&n) if n == quote || n == escape => i = at + 2,
                                Some(_) => i = at + 1,
                                None => {
                                    self.pending = Pending::Escape;
                                    return;
                                }
                            }
                        } else {
                            // b == quote
                            match buf.get(at + 1) {
                                Some(&n) if n == quote && escape == quote => i = at + 2,
                                Some(_) => {
                                    self.in_quotes = false;
                                    i = at + 1;
                                }
                                None => {
                                    if escape == quote {
                                        self.pending = Pending::Quote;
                                    } else {
                                        self.in_quotes = false;
                                    }
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(syntax: RowSyntax, data: &[u8], piece: usize) -> Vec<usize> {
        let mut s = RowScanner::new(syntax);
        let mut ends = Vec::new();
        let mut base = 0;
        for chunk in data.chunks(piece.max(1)) {
            let mut local = Vec::new();
            s.scan(chunk, &mut local);
            ends.extend(local.into_iter().map(|e| e + base));
            base += chunk.len();
        }
        ends
    }

    #[test]
    fn csv_quotes_hide_newlines_whatever_the_buffer_size() {
        let csv = RowSyntax::Csv {
            quote: b'"',
            escape: b'"',
        };
        let data = b"1,\"a\nb\"\n2,\"x\"\"\n\"\"y\"\n3,\"\"\n4,plain\n";
        let want = vec![8, 20, 25, 33];
        for piece in 1..data.len() + 1 {
            assert_eq!(rows(csv, data, piece), want, "piece {piece}");
        }
    }

    #[test]
    fn csv_with_backslash_escape() {
        let csv = RowSyntax::Csv {
            quote: b'"',
            escape: b'\\',
        };
        let data = b"\"a\\\"\nb\",1\n\"c\\\\\"\n\"x\\y\"\n";
        let want = vec![10, 16, 22];
        for piece in 1..data.len() + 1 {
            assert_eq!(rows(csv, data, piece), want, "piece {piece}");
        }
    }

    #[test]
    fn text_counts_newlines() {
        assert_eq!(rows(RowSyntax::Text, b"a\\nb\tc\nd\n", 3), vec![7, 9]);
    }
}
