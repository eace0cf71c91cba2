//! pg_dump's text COPY rows turned into binary COPY rows on our side, for tables whose every
//! column has a type we convert exactly.
//!
//! The server parses text COPY input with each type's input function: for a 3M-row table of
//! bigint, text, numeric and timestamptz that is 2.0 s of its CPU, against 1.16 s for the same
//! rows in binary. On a restore that saturates the server (every core busy with COPYs and index
//! builds) those cycles are the time. The conversion runs on our reader thread instead.
//!
//! gpbackup's CSV data files are converted the same way (COPY's CSV with `,` and `"`, an
//! unquoted empty field for NULL), so backup sets get the same saving.
//!
//! Only what pg_dump writes is converted (ISO dates, canonical numbers); anything else —
//! an unexpected spelling, a year outside 1..9999, a BC date — is a [`Unconvertible`] error,
//! and the caller loads the table again as text: the binary attempt never commits anything.

use std::io::{self, Read};

/// Types we convert, by their fixed pg_type OIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Bool,
    Int2,
    Int4,
    Int8,
    /// text, varchar, bpchar: the bytes after unescaping (the server checks encoding and
    /// length).
    Text,
    /// json: its text, as json_send writes it (the server validates it).
    Json,
    /// jsonb: a version byte (1) and the text, as jsonb_send writes it. The server still parses
    /// the JSON, but COPY's text field splitting and the other columns' parsing are saved.
    Jsonb,
    Numeric,
    Date,
    Timestamp,
    TimestampTz,
}

impl ColumnType {
    pub fn from_oid(oid: u32) -> Option<ColumnType> {
        Some(match oid {
            16 => ColumnType::Bool,
            21 => ColumnType::Int2,
            23 => ColumnType::Int4,
            20 => ColumnType::Int8,
            25 | 1043 | 1042 => ColumnType::Text,
            114 => ColumnType::Json,
            3802 => ColumnType::Jsonb,
            1700 => ColumnType::Numeric,
            1082 => ColumnType::Date,
            1114 => ColumnType::Timestamp,
            1184 => ColumnType::TimestampTz,
            _ => return None,
        })
    }
}

/// A value pg_dump would not have written this way (or outside what we convert).
#[derive(Debug)]
pub struct Unconvertible(pub String);

impl std::fmt::Display for Unconvertible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot convert to binary COPY: {}", self.0)
    }
}

impl std::error::Error for Unconvertible {}

fn bad(what: &str, text: &[u8]) -> io::Error {
    io::Error::other(Unconvertible(format!(
        "{what} {:?}",
        String::from_utf8_lossy(&text[..text.len().min(80)])
    )))
}

/// Whether an I/O error is a conversion refusal (load the table as text instead).
pub fn is_unconvertible(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<Unconvertible>())
}

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// A row longer than this is not converted: a binary tuple gives each field's length before
/// its bytes, so a row is held whole, as text and as binary, while it is converted. One
/// 200 MiB text value made a restore peak at 467 MiB (pg_restore: 8 MiB); past this size the
/// table is loaded as text instead (see [`is_unconvertible`]), which streams any value, and
/// the server's parsing, which binary saves, is a small part of such a row's cost.
pub const LONGEST_ROW: usize = 8 << 20;

/// The text form rows arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// pg_dump's COPY text: tab-separated, backslash escapes, `\N` for NULL.
    Text,
    /// COPY's CSV as gpbackup writes it: `,` between fields, `"` to quote and to escape a quote,
    /// an unquoted empty field for NULL, no backslash escapes.
    Csv,
}

/// The converter's type of every column a `COPY name (cols) FROM STDIN ...` statement names,
/// looked up in the target's catalog; `None` unless every column has one (or without a column
/// list).
pub fn copy_columns(client: &mut postgres::Client, copy: &str) -> Option<Vec<ColumnType>> {
    let target = crate::load::copy_target(copy)?;
    let after = copy.trim_start()[5..].trim_start()[target.len()..].trim_start();
    after.strip_prefix('(')?;
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid::oid FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&target],
        )
        .ok()?;
    let known: Vec<(String, u32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    columns_of(copy, &known)
}

/// As [`copy_columns`], from the target's `(name, type oid)` pairs the caller has already
/// asked for (see `load::Probe`).
pub fn columns_of(copy: &str, known: &[(String, u32)]) -> Option<Vec<ColumnType>> {
    let names = copy_column_names(copy)?;
    let by_name: std::collections::HashMap<&str, u32> =
        known.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    names
        .iter()
        .map(|n| {
            by_name
                .get(n.as_str())
                .copied()
                .and_then(ColumnType::from_oid)
        })
        .collect()
}

/// `COPY name (cols) FROM STDIN ...` as the same COPY in binary format (its options replaced,
/// the rest as written).
pub fn binary_statement(copy: &str) -> Option<String> {
    const FROM: &str = " from stdin";
    let body = copy.trim().trim_end_matches(';');
    let at = body.to_ascii_lowercase().find(FROM)? + FROM.len();
    Some(format!("{} WITH (FORMAT binary);", &body[..at]))
}

/// The column list of `COPY name (cols) FROM ...`, unquoted; `None` without one.
pub fn copy_column_names(copy: &str) -> Option<Vec<String>> {
    let target = crate::load::copy_target(copy)?;
    let after = copy.trim_start()[5..].trim_start()[target.len()..].trim_start();
    column_names(after.strip_prefix('(')?)
}

/// `a, "B c", "d""e")...` → the names, unquoted (unquoted ones folded to lower case), up to
/// the closing parenthesis.
fn column_names(list: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut cur = String::new();
    let mut chars = list.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if in_quotes && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => in_quotes = !in_quotes,
            ',' | ')' if !in_quotes => {
                let name = cur.trim();
                if name.is_empty() {
                    return None;
                }
                names.push(name.to_string());
                cur.clear();
                if c == ')' {
                    return Some(names);
                }
            }
            c if !in_quotes && c.is_ascii_uppercase() => cur.push(c.to_ascii_lowercase()),
            c => cur.push(c),
        }
    }
    None
}

/// Reads text COPY rows from `inner` and yields the binary COPY stream of the same rows.
pub struct BinaryRows<R> {
    inner: R,
    columns: Vec<ColumnType>,
    syntax: Input,
    input: Vec<u8>,
    /// Input bytes before this were converted.
    start: usize,
    output: Vec<u8>,
    out_pos: usize,
    header_done: bool,
    ended: bool,
    field: Vec<u8>,
}

impl<R: Read> BinaryRows<R> {
    pub fn new(inner: R, columns: Vec<ColumnType>, syntax: Input) -> BinaryRows<R> {
        BinaryRows {
            inner,
            columns,
            syntax,
            input: Vec::with_capacity(256 * 1024),
            start: 0,
            output: Vec::with_capacity(256 * 1024),
            out_pos: 0,
            header_done: false,
            ended: false,
            field: Vec::new(),
        }
    }

    /// Converts the next batch of whole rows into `output`.
    fn refill(&mut self) -> io::Result<()> {
        self.output.clear();
        self.out_pos = 0;
        if !self.header_done {
            self.output.extend_from_slice(HEADER);
            self.header_done = true;
        }
        loop {
            if self.syntax == Input::Csv {
                if self.convert_csv_rows()? {
                    return Ok(());
                }
            } else if let Some(nl) = memchr::memrchr(b'\n', &self.input[self.start..]) {
                // Whole rows present.
                let end = self.start + nl + 1;
                let mut pos = self.start;
                while pos < end {
                    let line_end =
                        pos + memchr::memchr(b'\n', &self.input[pos..end]).expect("a line end");
                    let line = &self.input[pos..line_end];
                    if line == b"\\." {
                        // pg_dump's end-of-data line: the rest is not data.
                        self.ended = true;
                        self.output.extend_from_slice(&(-1i16).to_be_bytes());
                        self.input.clear();
                        self.start = 0;
                        return Ok(());
                    }
                    convert_row(line, &self.columns, &mut self.output, &mut self.field)?;
                    pos = line_end + 1;
                }
                self.input.drain(..end);
                self.start = 0;
                return Ok(());
            }
            // Read more: fill as much as is pending (at least 256 KiB), so a row far longer
            // than one read is scanned a logarithmic number of times, not once per read.
            let have = self.input.len();
            if have - self.start > LONGEST_ROW {
                return Err(io::Error::other(Unconvertible(format!(
                    "a row longer than {} MiB",
                    LONGEST_ROW >> 20
                ))));
            }
            let more = (256 * 1024).max(have - self.start);
            self.input.resize(have + more, 0);
            let mut n = 0;
            while n < more {
                match self.inner.read(&mut self.input[have + n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.input.truncate(have);
                        return Err(e);
                    }
                }
            }
            self.input.truncate(have + n);
            if n == 0 {
                if self.input.len() > self.start {
                    return Err(bad(
                        "a last row without its line end",
                        &self.input[self.start..],
                    ));
                }
                self.ended = true;
                self.output.extend_from_slice(&(-1i16).to_be_bytes());
                return Ok(());
            }
        }
    }
}

impl<R> BinaryRows<R> {
    /// Converts the whole CSV rows at the front of the input; false when there is none yet.
    /// (A CSV row may hold quoted line feeds, so rows are found by parsing, not by `\n`.)
    fn convert_csv_rows(&mut self) -> io::Result<bool> {
        let mut pos = self.start;
        let mut any = false;
        while pos < self.input.len() {
            let rest = &self.input[pos..];
            if rest.starts_with(b"\\.\n") {
                // COPY's end-of-data line: the rest is not data.
                self.ended = true;
                self.output.extend_from_slice(&(-1i16).to_be_bytes());
                self.input.clear();
                self.start = 0;
                return Ok(true);
            }
            let mark = self.output.len();
            match convert_csv_row(rest, &self.columns, &mut self.output, &mut self.field)? {
                Some(n) => {
                    pos += n;
                    any = true;
                }
                None => {
                    // Incomplete: wait for more input.
                    self.output.truncate(mark);
                    break;
                }
            }
        }
        if any {
            self.input.drain(..pos);
            self.start = 0;
        }
        Ok(any)
    }
}

impl<R: Read> Read for BinaryRows<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.out_pos == self.output.len() {
            if self.ended {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = buf.len().min(self.output.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.output[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

/// One text row (without its line feed) as one binary tuple.
fn convert_row(
    line: &[u8],
    columns: &[ColumnType],
    out: &mut Vec<u8>,
    field: &mut Vec<u8>,
) -> io::Result<()> {
    out.extend_from_slice(&(columns.len() as i16).to_be_bytes());
    let mut tabs = memchr::memchr_iter(b'\t', line);
    let mut from = 0;
    for (i, &ty) in columns.iter().enumerate() {
        let to = match tabs.next() {
            Some(t) => t,
            None if i + 1 == columns.len() => line.len(),
            None => return Err(bad("a row with too few columns", line)),
        };
        if i + 1 == columns.len() && to != line.len() {
            return Err(bad("a row with too many columns", line));
        }
        let raw = &line[from..to];
        from = to + 1;
        if raw == b"\\N" {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        }
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        match ty {
            ColumnType::Text | ColumnType::Json | ColumnType::Jsonb => {
                if ty == ColumnType::Jsonb {
                    out.push(1);
                }
                if memchr::memchr(b'\\', raw).is_none() {
                    out.extend_from_slice(raw);
                } else {
                    unescape(raw, field).map_err(|_| bad("an escape", raw))?;
                    out.extend_from_slice(field);
                }
            }
            other => {
                if raw.contains(&b'\\') {
                    return Err(bad("an escaped non-text value", raw));
                }
                encode_scalar(other, raw, out)?;
            }
        }
        let len = (out.len() - len_at - 4) as i32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

/// One CSV row at the start of `buf` as one binary tuple: `Some(bytes consumed)`, with its line
/// feed, or `None` when `buf` ends before the row does. Anything COPY TO would not have
/// written (a quote inside an unquoted field, a bare carriage return) is unconvertible.
fn convert_csv_row(
    buf: &[u8],
    columns: &[ColumnType],
    out: &mut Vec<u8>,
    field: &mut Vec<u8>,
) -> io::Result<Option<usize>> {
    out.extend_from_slice(&(columns.len() as i16).to_be_bytes());
    let mut pos = 0;
    for (i, &ty) in columns.iter().enumerate() {
        let terminator = if i + 1 == columns.len() { b'\n' } else { b',' };
        let quoted = buf.get(pos) == Some(&b'"');
        let value: Option<&[u8]> = if quoted {
            field.clear();
            let mut p = pos + 1;
            loop {
                let Some(q) = memchr::memchr(b'"', &buf[p..]) else {
                    return Ok(None);
                };
                let q = p + q;
                field.extend_from_slice(&buf[p..q]);
                match buf.get(q + 1) {
                    None => return Ok(None),
                    Some(b'"') => {
                        field.push(b'"');
                        p = q + 2;
                    }
                    Some(_) => {
                        pos = q + 1;
                        break;
                    }
                }
            }
            match buf.get(pos) {
                None => return Ok(None),
                Some(&c) if c == terminator => pos += 1,
                Some(_) => return Err(bad("a CSV row with other text after a quoted field", buf)),
            }
            Some(&field[..])
        } else {
            let Some(e) = memchr::memchr2(b',', b'\n', &buf[pos..]) else {
                return Ok(None);
            };
            let e = pos + e;
            if buf[e] != terminator {
                let what = if terminator == b'\n' {
                    "a CSV row with too many columns"
                } else {
                    "a CSV row with too few columns"
                };
                return Err(bad(what, &buf[..e]));
            }
            let raw = &buf[pos..e];
            if memchr::memchr2(b'"', b'\r', raw).is_some() {
                return Err(bad(
                    "an unquoted CSV field with a quote or carriage return",
                    raw,
                ));
            }
            pos = e + 1;
            (!raw.is_empty()).then_some(raw)
        };
        let Some(value) = value else {
            out.extend_from_slice(&(-1i32).to_be_bytes());
            continue;
        };
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        match ty {
            ColumnType::Text | ColumnType::Json | ColumnType::Jsonb => {
                if ty == ColumnType::Jsonb {
                    out.push(1);
                }
                out.extend_from_slice(value);
            }
            other => encode_scalar(other, value, out)?,
        }
        let len = (out.len() - len_at - 4) as i32;
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    }
    Ok(Some(pos))
}

/// COPY text unescaping, as the server's reader does it.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let Some(off) = memchr::memchr(b'\\', &raw[i..]) else {
            out.extend_from_slice(&raw[i..]);
            break;
        };
        out.extend_from_slice(&raw[i..i + off]);
        i += off + 1;
        let Some(&c) = raw.get(i) else {
            return Err(()); // a lone backslash at the end
        };
        i += 1;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d) if d.is_ascii_hexdigit() => {
                            v = v * 16 + (*d as char).to_digit(16).expect("hex digit");
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    Ok(())
}

fn encode_scalar(ty: ColumnType, raw: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    match ty {
        ColumnType::Bool => match raw {
            b"t" => out.push(1),
            b"f" => out.push(0),
            _ => return Err(bad("a boolean", raw)),
        },
        ColumnType::Int2 => {
            let v = int(raw).and_then(|v| i16::try_from(v).ok());
            out.extend_from_slice(&v.ok_or_else(|| bad("a smallint", raw))?.to_be_bytes());
        }
        ColumnType::Int4 => {
            let v = int(raw).and_then(|v| i32::try_from(v).ok());
            out.extend_from_slice(&v.ok_or_else(|| bad("an integer", raw))?.to_be_bytes());
        }
        ColumnType::Int8 => {
            let v = int(raw).ok_or_else(|| bad("a bigint", raw))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        ColumnType::Numeric => numeric(raw, out).ok_or_else(|| bad("a numeric", raw))?,
        ColumnType::Date => {
            let days = match raw {
                b"infinity" => i32::MAX,
                b"-infinity" => i32::MIN,
                _ => {
                    let (y, m, d) = date(raw).ok_or_else(|| bad("a date", raw))?;
                    days_since_2000(y, m, d) as i32
                }
            };
            out.extend_from_slice(&days.to_be_bytes());
        }
        ColumnType::Timestamp | ColumnType::TimestampTz => {
            let micros = match raw {
                b"infinity" => i64::MAX,
                b"-infinity" => i64::MIN,
                _ => timestamp(raw, ty == ColumnType::TimestampTz)
                    .ok_or_else(|| bad("a timestamp", raw))?,
            };
            out.extend_from_slice(&micros.to_be_bytes());
        }
        ColumnType::Text | ColumnType::Json | ColumnType::Jsonb => {
            unreachable!("text types are unescaped by the caller")
        }
    }
    Ok(())
}

/// A canonical decimal integer (optional minus, digits, no leading zeros beyond "0").
fn int(raw: &[u8]) -> Option<i64> {
    let (neg, digits) = match raw.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i128 = 0;
    for d in digits {
        v = v * 10 + i128::from(d - b'0');
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

/// numeric_out's output as numeric_send would write it: ndigits, weight, sign, dscale, then
/// base-10000 digits, most significant first, without leading or trailing zero digits.
fn numeric(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    const POS: u16 = 0x0000;
    const NEG: u16 = 0x4000;
    let special = |sign: u16, out: &mut Vec<u8>| {
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&0i16.to_be_bytes());
    };
    match raw {
        b"NaN" => {
            special(0xC000, out);
            return Some(());
        }
        b"Infinity" => {
            special(0xD000, out);
            return Some(());
        }
        b"-Infinity" => {
            special(0xF000, out);
            return Some(());
        }
        _ => {}
    }
    let (sign, body) = match raw.split_first()? {
        (b'-', rest) => (NEG, rest),
        _ => (POS, raw),
    };
    let (int_part, frac_part) = match memchr::memchr(b'.', body) {
        Some(p) => (&body[..p], &body[p + 1..]),
        None => (body, &body[..0]),
    };
    if int_part.is_empty()
        || !int_part.iter().all(u8::is_ascii_digit)
        || !frac_part.iter().all(u8::is_ascii_digit)
        || (body.contains(&b'.') && frac_part.is_empty())
    {
        return None;
    }
    let dscale = i16::try_from(frac_part.len()).ok()?;
    // Integer digits grouped by four from the decimal point leftwards, fraction rightwards.
    let int_groups = int_part.len().div_ceil(4);
    let lead_pad = int_groups * 4 - int_part.len();
    let frac_groups = frac_part.len().div_ceil(4);
    let padded = std::iter::repeat_n(&b'0', lead_pad)
        .chain(int_part)
        .chain(frac_part)
        .chain(std::iter::repeat_n(
            &b'0',
            frac_groups * 4 - frac_part.len(),
        ));
    let mut digits: Vec<i16> = Vec::with_capacity(int_groups + frac_groups);
    let mut acc = 0i16;
    for (i, &d) in padded.enumerate() {
        acc = acc * 10 + i16::from(d - b'0');
        if i % 4 == 3 {
            digits.push(acc);
            acc = 0;
        }
    }
    let mut weight = int_groups as i32 - 1;
    let lead = digits.iter().take_while(|&&d| d == 0).count();
    let trail = digits[lead..].iter().rev().take_while(|&&d| d == 0).count();
    let kept = &digits[lead..digits.len() - trail];
    weight -= lead as i32;
    let (sign, weight) = if kept.is_empty() {
        (POS, 0)
    } else {
        (sign, weight)
    };
    out.extend_from_slice(&i16::try_from(kept.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&i16::try_from(weight).ok()?.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for d in kept {
        out.extend_from_slice(&d.to_be_bytes());
    }
    Some(())
}

/// `YYYY-MM-DD`, years 1..=9999 (anything else goes as text).
fn date(raw: &[u8]) -> Option<(i64, u32, u32)> {
    if raw.len() != 10 || raw[4] != b'-' || raw[7] != b'-' {
        return None;
    }
    let y = digits_value(&raw[0..4])?;
    let m = digits_value(&raw[5..7])? as u32;
    let d = digits_value(&raw[8..10])? as u32;
    let dim = days_in_month(y, m)?;
    (y >= 1 && (1..=dim).contains(&d)).then_some((y, m, d))
}

fn digits_value(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
}

fn days_in_month(y: i64, m: u32) -> Option<u32> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    Some(match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    })
}

/// Days from 2000-01-01 in the proleptic Gregorian calendar (as PostgreSQL counts them).
fn days_since_2000(y: i64, m: u32, d: u32) -> i64 {
    // Howard Hinnant's days_from_civil, shifted to the 2000-01-01 epoch.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 - 10_957
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` and, with a zone, `±HH[:MM[:SS]]`, as microseconds from
/// 2000-01-01 00:00 (UTC for timestamptz).
fn timestamp(raw: &[u8], with_zone: bool) -> Option<i64> {
    if raw.len() < 19 || raw[10] != b' ' || raw[13] != b':' || raw[16] != b':' {
        return None;
    }
    let (y, mo, d) = date(&raw[..10])?;
    let h = digits_value(&raw[11..13])?;
    let mi = digits_value(&raw[14..16])?;
    let s = digits_value(&raw[17..19])?;
    if h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut rest = &raw[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 6 {
            return None;
        }
        micros = digits_value(&frac[..n])? * 10i64.pow(6 - n as u32);
        rest = &frac[n..];
    }
    let mut offset = 0i64;
    if with_zone {
        let (sign, zone) = match rest.split_first()? {
            (b'+', z) => (1, z),
            (b'-', z) => (-1, z),
            _ => return None,
        };
        let mut parts = zone.split(|&c| c == b':');
        let zh = parts
            .next()
            .filter(|p| p.len() == 2)
            .and_then(digits_value)?;
        let zm = match parts.next() {
            Some(p) if p.len() == 2 => digits_value(p)?,
            Some(_) => return None,
            None => 0,
        };
        let zs = match parts.next() {
            Some(p) if p.len() == 2 => digits_value(p)?,
            Some(_) => return None,
            None => 0,
        };
        if parts.next().is_some() || zm > 59 || zs > 59 {
            return None;
        }
        offset = sign * (zh * 3600 + zm * 60 + zs);
    } else if !rest.is_empty() {
        return None;
    }
    let secs = days_since_2000(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::Trickle;

    fn num(text: &str) -> Vec<u8> {
        let mut v = Vec::new();
        numeric(text.as_bytes(), &mut v).unwrap();
        v
    }

    fn words(v: &[u8]) -> Vec<i16> {
        v.chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numerics_as_numeric_send_writes_them() {
        // ndigits, weight, sign, dscale, digits
        assert_eq!(words(&num("1234.56")), vec![2, 0, 0, 2, 1234, 5600]);
        assert_eq!(words(&num("-0.05")), vec![1, -1, 0x4000, 2, 500]);
        assert_eq!(words(&num("0")), vec![0, 0, 0, 0]);
        assert_eq!(words(&num("0.00")), vec![0, 0, 0, 2]);
        assert_eq!(words(&num("10000")), vec![1, 1, 0, 0, 1]);
        assert_eq!(
            words(&num("12345678.9")),
            vec![3, 1, 0, 1, 1234, 5678, 9000]
        );
        assert_eq!(words(&num("0.00001")), vec![1, -2, 0, 5, 1000]);
        assert_eq!(words(&num("NaN")), vec![0, 0, 0xC000u16 as i16, 0]);
        let mut v = Vec::new();
        for bad in ["", "-", "1.", ".5", "1e5", "1,5", " 1"] {
            assert!(numeric(bad.as_bytes(), &mut v).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn times_count_from_2000_in_utc() {
        assert_eq!(timestamp(b"2000-01-01 00:00:00+00", true), Some(0));
        assert_eq!(timestamp(b"2000-01-01 01:00:00+01", true), Some(0));
        assert_eq!(
            timestamp(b"1999-12-31 23:59:59.5-00:00:30", true),
            Some(-500_000 + 30_000_000)
        );
        assert_eq!(
            timestamp(b"2024-02-29 12:30:00.000001", false),
            Some((days_since_2000(2024, 2, 29) * 86_400 + 45_000) * 1_000_000 + 1)
        );
        assert_eq!(days_since_2000(2024, 1, 1), 8766);
        assert_eq!(days_since_2000(1970, 1, 1), -10_957);
        assert_eq!(days_since_2000(1, 1, 1), -730_119);
        for bad in [
            "2024-02-30 00:00:00+00",
            "2024-01-01 24:00:00+00",
            "2024-01-01 00:00:00",
            "0044-03-15 00:00:00+00 BC",
            "2024-01-01T00:00:00+00",
        ] {
            assert_eq!(timestamp(bad.as_bytes(), true), None, "{bad}");
        }
    }

    #[test]
    fn rows_become_tuples_and_unescape_text() {
        let cols = vec![ColumnType::Int4, ColumnType::Text, ColumnType::Bool];
        let input = b"7\ta\\tb\\\\c\\nd\\101\\x41\tt\n8\t\\N\tf\n\\.\n\nignored";
        let mut out = Vec::new();
        BinaryRows::new(&input[..], cols, Input::Text)
            .read_to_end(&mut out)
            .unwrap();
        let mut want = HEADER.to_vec();
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice(&7i32.to_be_bytes());
        let text = b"a\tb\\c\ndAA";
        want.extend_from_slice(&(text.len() as i32).to_be_bytes());
        want.extend_from_slice(text);
        want.extend_from_slice(&1i32.to_be_bytes());
        want.push(1);
        want.extend_from_slice(&3i16.to_be_bytes());
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice(&8i32.to_be_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.extend_from_slice(&1i32.to_be_bytes());
        want.push(0);
        want.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(out, want);
    }

    #[test]
    fn anything_unexpected_is_unconvertible() {
        let cols = vec![ColumnType::Int8, ColumnType::Date];
        let inputs: [&[u8]; 5] = [
            &b"1\t2024-01-01\textra\n"[..],
            b"1\n",
            b"x\t2024-01-01\n",
            b"1\t0044-03-15 BC\n",
            b"1\t2024-01-01",
        ];
        refused(&cols, Input::Text, &inputs);
    }

    /// A row longer than [`LONGEST_ROW`] is refused (the table then loads as text, which
    /// streams), before more than about twice that much is held, in either syntax.
    #[test]
    fn a_longer_row_is_refused_before_it_is_held() {
        for (syntax, cols) in [
            (Input::Text, vec![ColumnType::Int4, ColumnType::Text]),
            (Input::Csv, vec![ColumnType::Int4, ColumnType::Text]),
        ] {
            let mut row = b"1\t".to_vec();
            if syntax == Input::Csv {
                row = b"1,".to_vec();
            }
            row.resize(3 * LONGEST_ROW, b'x');
            row.push(b'\n');
            let mut rows = BinaryRows::new(&row[..], cols, syntax);
            let e = rows.read_to_end(&mut Vec::new()).unwrap_err();
            assert!(is_unconvertible(&e), "{e}");
            assert!(e.to_string().contains("longer than 8 MiB"), "{e}");
            assert!(rows.input.capacity() <= 2 * LONGEST_ROW + (1 << 20));
        }
    }

    /// Every input fails to convert, as a conversion refusal (not some other error).
    fn refused(cols: &[ColumnType], syntax: Input, inputs: &[&[u8]]) {
        for input in inputs {
            let e = BinaryRows::new(*input, cols.to_vec(), syntax)
                .read_to_end(&mut Vec::new())
                .unwrap_err();
            assert!(is_unconvertible(&e), "{input:?}: {e}");
        }
    }

    fn tuple(fields: &[Option<&[u8]>]) -> Vec<u8> {
        let mut v = (fields.len() as i16).to_be_bytes().to_vec();
        for f in fields {
            match f {
                None => v.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(b) => {
                    v.extend_from_slice(&(b.len() as i32).to_be_bytes());
                    v.extend_from_slice(b);
                }
            }
        }
        v
    }

    #[test]
    fn csv_rows_become_tuples() {
        let cols = vec![ColumnType::Int4, ColumnType::Text, ColumnType::Jsonb];
        let input = b"1,plain,\"{\"\"a\"\": 1}\"\n2,,\"\"\n3,\"a,b\nc \"\"q\"\"\r\",[]\n";
        let mut want = HEADER.to_vec();
        want.extend(tuple(&[
            Some(&1i32.to_be_bytes()),
            Some(b"plain"),
            Some(b"\x01{\"a\": 1}"),
        ]));
        want.extend(tuple(&[Some(&2i32.to_be_bytes()), None, Some(b"\x01")]));
        want.extend(tuple(&[
            Some(&3i32.to_be_bytes()),
            Some(b"a,b\nc \"q\"\r"),
            Some(b"\x01[]"),
        ]));
        want.extend_from_slice(&(-1i16).to_be_bytes());
        for step in [1, 2, 5, 7, 1 << 20] {
            let mut out = Vec::new();
            BinaryRows::new(Trickle::new(input, step), cols.clone(), Input::Csv)
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, want, "step {step}");
        }
        // The end-of-data line ends the rows.
        let mut out = Vec::new();
        BinaryRows::new(&b"4,x,1\n\\.\nignored"[..], cols.clone(), Input::Csv)
            .read_to_end(&mut out)
            .unwrap();
        let mut want = HEADER.to_vec();
        want.extend(tuple(&[
            Some(&4i32.to_be_bytes()),
            Some(b"x"),
            Some(b"\x011"),
        ]));
        want.extend_from_slice(&(-1i16).to_be_bytes());
        assert_eq!(out, want);
    }

    #[test]
    fn rows_longer_than_many_reads() {
        let long: Vec<u8> = (0..3_000_000u32)
            .map(|i| {
                if i % 1000 == 999 {
                    b'\n'
                } else {
                    b'a' + (i % 26) as u8
                }
            })
            .collect();
        let mut csv = b"1,\"".to_vec();
        csv.extend(&long);
        csv.extend(b"\"\n2,x\n");
        let cols = vec![ColumnType::Int4, ColumnType::Text];
        let mut want = HEADER.to_vec();
        want.extend(tuple(&[Some(&1i32.to_be_bytes()), Some(&long)]));
        want.extend(tuple(&[Some(&2i32.to_be_bytes()), Some(b"x")]));
        want.extend_from_slice(&(-1i16).to_be_bytes());
        let mut out = Vec::new();
        BinaryRows::new(Trickle::new(&csv, 4096), cols.clone(), Input::Csv)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, want);
        // The same value in text COPY (line feeds escaped).
        let mut text = b"1\t".to_vec();
        for &b in &long {
            if b == b'\n' {
                text.extend(b"\\n");
            } else {
                text.push(b);
            }
        }
        text.extend(b"\n2\tx\n");
        let mut out = Vec::new();
        BinaryRows::new(Trickle::new(&text, 4096), cols, Input::Text)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn csv_that_copy_would_not_write_is_unconvertible() {
        let cols = vec![ColumnType::Int8, ColumnType::Text];
        let inputs: [&[u8]; 8] = [
            &b"1,a,b\n"[..],
            b"1\n",
            b"1,a\"b\n",
            b"1,\"a\"b\n",
            b"1,a\rb\n",
            b"\"x\",a\n",
            b"1,\"unterminated\n",
            b"1,a",
        ];
        refused(&cols, Input::Csv, &inputs);
    }

    #[test]
    fn statements_and_column_lists() {
        assert_eq!(
            binary_statement(
                "COPY s.\"T x\" (a, \"B\") FROM STDIN WITH (FORMAT csv, DELIMITER ',')"
            )
            .as_deref(),
            Some("COPY s.\"T x\" (a, \"B\") FROM STDIN WITH (FORMAT binary);")
        );
        assert_eq!(
            column_names("a, \"B c\", \"d\"\"e\", Fold) FROM"),
            Some(vec!["a".into(), "B c".into(), "d\"e".into(), "fold".into()])
        );
        assert_eq!(column_names("a, , b)"), None);
    }
}
