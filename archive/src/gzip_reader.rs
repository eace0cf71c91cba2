//! Reading gzip files member by member: each header parsed here (so its FEXTRA marks are
//! seen), each body inflated by the build's inflater ([`crate::inflate`]), and the marks of
//! [`crate::gzip_members`] enforced: once a member carries our mark, the file must reach our
//! end member, whose counts must match what was read. That turns a file cut at a member
//! boundary, which is a valid gzip stream, into an error; unmarked files read as before.

use std::io::{self, BufRead, Read};

use crate::gzip_members::Mark;

/// One step of inflating a member's body (raw deflate, then its CRC-32 and length trailer).
pub(crate) struct Step {
    pub consumed: usize,
    pub produced: usize,
    /// The trailer was read and verified: the member is complete.
    pub done: bool,
}

/// An inflater of member bodies: zlib-rs or ISA-L.
pub(crate) trait MemberBody: Send {
    /// Prepares for a new member's body.
    fn start(&mut self) -> io::Result<()>;
    /// Inflates from `input` into `out` (non-empty); an empty `input` means the input ended,
    /// and the body still hands out what it holds.
    fn step(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<Step>;
}

enum Phase {
    /// Before a member, or after the last one.
    Between,
    Header(HeaderParser),
    Body,
    Ended,
    Failed(io::ErrorKind, String),
}

/// The decompressed content of every member of a gzip stream, back to back.
pub(crate) struct GzipReader<R, B> {
    inner: R,
    body: B,
    phase: Phase,
    marks: MarkCheck,
    member_bytes: u64,
    started: bool,
}

impl<R: BufRead, B: MemberBody> GzipReader<R, B> {
    pub fn new(inner: R, body: B) -> Self {
        GzipReader {
            inner,
            body,
            phase: Phase::Between,
            marks: MarkCheck::default(),
            member_bytes: 0,
            started: false,
        }
    }

    /// Advances by one step; `Some(n)` when `n` bytes were produced into `out` or the stream
    /// ended (`n` = 0).
    fn advance(&mut self, out: &mut [u8]) -> io::Result<Option<usize>> {
        match &mut self.phase {
            Phase::Ended => Ok(Some(0)),
            Phase::Failed(kind, msg) => Err(io::Error::new(*kind, msg.clone())),
            Phase::Between => {
                if self.inner.fill_buf()?.is_empty() {
                    if !self.started {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "empty input: a gzip file holds at least one member",
                        ));
                    }
                    self.marks.at_end()?;
                    self.phase = Phase::Ended;
                    return Ok(Some(0));
                }
                self.started = true;
                self.phase = Phase::Header(HeaderParser::default());
                Ok(None)
            }
            Phase::Header(parser) => {
                let input = self.inner.fill_buf()?;
                if input.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "truncated: the data ends inside the header of gzip member {}",
                            self.marks.index + 1
                        ),
                    ));
                }
                let used = parser.feed(input)?;
                self.inner.consume(used);
                if let Some(mark) = parser.mark()? {
                    self.marks.begin(mark)?;
                    self.body.start()?;
                    self.member_bytes = 0;
                    self.phase = Phase::Body;
                }
                Ok(None)
            }
            Phase::Body => {
                let input = self.inner.fill_buf()?;
                let at_eof = input.is_empty();
                let s = self.body.step(input, out)?;
                self.inner.consume(s.consumed);
                self.member_bytes += s.produced as u64;
                if s.done {
                    self.marks.end(self.member_bytes)?;
                    self.phase = Phase::Between;
                } else if s.produced == 0 && at_eof {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "truncated: compressed data ends inside gzip member {} (file cut short?)",
                            self.marks.index
                        ),
                    ));
                } else if s.produced == 0 && s.consumed == 0 {
                    // Every inflater takes what it is given; looping would never end.
                    return Err(io::Error::other("the inflater stopped making progress"));
                }
                Ok((s.produced > 0).then_some(s.produced))
            }
        }
    }
}

impl<R: BufRead, B: MemberBody> Read for GzipReader<R, B> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.advance(out) {
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(e) => {
                    // Later reads repeat the error rather than pretend the stream ended.
                    self.phase = Phase::Failed(e.kind(), e.to_string());
                    return Err(e);
                }
            }
        }
    }
}

/// What the marks seen so far require.
#[derive(Default)]
struct MarkCheck {
    /// Members begun so far (1-based index of the current one).
    index: u64,
    /// The mark of the member being read.
    current: Option<Mark>,
    /// Inside a marked file: data members and bytes since its start or the last end member.
    open: Option<(u64, u64)>,
}

impl MarkCheck {
    fn begin(&mut self, mark: Mark) -> io::Result<()> {
        self.index += 1;
        match (mark, self.open) {
            (Mark::Member, None) => self.open = Some((0, 0)),
            (Mark::None, Some((members, _))) => {
                return Err(invalid(format!(
                    "gzip member {} carries no cbtools mark though the {members} before it do: \
                     the file was spliced or damaged",
                    self.index
                )))
            }
            _ => {}
        }
        self.current = Some(mark);
        Ok(())
    }

    fn end(&mut self, bytes: u64) -> io::Result<()> {
        match self.current.take() {
            Some(Mark::Member) => {
                let (m, b) = self.open.get_or_insert((0, 0));
                *m += 1;
                *b += bytes;
            }
            Some(Mark::End {
                members,
                bytes: want,
            }) => {
                let (m, b) = self.open.take().unwrap_or((0, 0));
                if bytes != 0 || m != members || b != want {
                    return Err(invalid(format!(
                        "the end mark (gzip member {}) counts {members} members of {want} bytes \
                         before it, but {m} members of {b} bytes were read: members are missing \
                         or the file was spliced",
                        self.index
                    )));
                }
            }
            Some(Mark::None) | None => {}
        }
        Ok(())
    }

    fn at_end(&self) -> io::Result<()> {
        match self.open {
            Some((members, bytes)) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "truncated: the file ends after {members} gzip members ({bytes} bytes) \
                     without the end member cbtools writes last: it was cut short"
                ),
            )),
            None => Ok(()),
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;
const FHCRC: u8 = 2;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    #[default]
    Fixed,
    XLen,
    Extra,
    Name,
    Comment,
    HCrc,
    Done,
}

/// A gzip member header (RFC 1952 2.3) parsed from input that may arrive a byte at a time.
/// Memory is bounded by FEXTRA's 64 KiB: names and comments are only scanned.
#[derive(Default)]
struct HeaderParser {
    stage: Stage,
    flags: u8,
    /// The bytes of the current fixed-length stage.
    buf: Vec<u8>,
    xlen: usize,
    extra: Vec<u8>,
    crc: libdeflater::Crc,
}

impl HeaderParser {
    /// Takes header bytes from `input`; returns how many were used.
    fn feed(&mut self, input: &[u8]) -> io::Result<usize> {
        let mut used = 0;
        while self.stage != Stage::Done && used < input.len() {
            let rest = &input[used..];
            let n = match self.stage {
                Stage::Name | Stage::Comment => match rest.iter().position(|&b| b == 0) {
                    Some(i) => i + 1,
                    None => rest.len(),
                },
                _ => {
                    let n = (self.need() - self.buf.len()).min(rest.len());
                    self.buf.extend_from_slice(&rest[..n]);
                    n
                }
            };
            if self.stage != Stage::HCrc {
                self.crc.update(&rest[..n]);
            }
            used += n;
            let complete = match self.stage {
                Stage::Name | Stage::Comment => rest[n - 1] == 0,
                _ => self.buf.len() == self.need(),
            };
            if complete {
                self.complete_stage()?;
            }
        }
        Ok(used)
    }

    fn need(&self) -> usize {
        match self.stage {
            Stage::Fixed => 10,
            Stage::XLen | Stage::HCrc => 2,
            Stage::Extra => self.xlen,
            Stage::Name | Stage::Comment | Stage::Done => 0,
        }
    }

    fn complete_stage(&mut self) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        match self.stage {
            Stage::Fixed => {
                if buf[..2] != [0x1f, 0x8b] {
                    return Err(invalid(
                        "not a gzip member header (not gzip, or garbage after the last member)"
                            .into(),
                    ));
                }
                if buf[2] != 8 {
                    return Err(invalid(format!(
                        "gzip header names compression method {} (only 8, deflate, exists)",
                        buf[2]
                    )));
                }
                if buf[3] & 0xe0 != 0 {
                    return Err(invalid("gzip header sets reserved flag bits".into()));
                }
                self.flags = buf[3];
            }
            Stage::XLen => {
                self.xlen = u16::from_le_bytes([buf[0], buf[1]]) as usize;
                self.buf = Vec::with_capacity(self.xlen);
                self.stage = Stage::Extra;
                if self.xlen > 0 {
                    return Ok(());
                }
            }
            Stage::Extra => self.extra = buf,
            Stage::HCrc => {
                if u16::from_le_bytes([buf[0], buf[1]]) != self.crc.sum() as u16 {
                    return Err(invalid("gzip header checksum mismatch".into()));
                }
            }
            Stage::Name | Stage::Comment | Stage::Done => {}
        }
        self.stage = self.next_stage();
        Ok(())
    }

    /// The stage after the current one, skipping fields the flags leave out.
    fn next_stage(&self) -> Stage {
        let order = [
            (Stage::XLen, FEXTRA),
            (Stage::Name, FNAME),
            (Stage::Comment, FCOMMENT),
            (Stage::HCrc, FHCRC),
        ];
        let after = match self.stage {
            Stage::Fixed => 0,
            Stage::XLen | Stage::Extra => 1,
            Stage::Name => 2,
            Stage::Comment => 3,
            Stage::HCrc | Stage::Done => 4,
        };
        order[after..]
            .iter()
            .find(|(_, flag)| self.flags & flag != 0)
            .map_or(Stage::Done, |(s, _)| *s)
    }

    /// Once the header is complete: our mark in it, if any.
    fn mark(&self) -> io::Result<Option<Mark>> {
        if self.stage != Stage::Done {
            return Ok(None);
        }
        Mark::from_extra(&self.extra)
            .map(Some)
            .map_err(|e| invalid(e.to_string()))
    }
}

/// zlib-rs (through flate2) inflating member bodies; the trailer is checked here.
pub(crate) struct Flate2Body {
    inflater: flate2::Decompress,
    crc: libdeflater::Crc,
    len: u32,
    trailer: Vec<u8>,
    in_trailer: bool,
}

impl Flate2Body {
    pub fn new() -> Self {
        Flate2Body {
            inflater: flate2::Decompress::new(false),
            crc: libdeflater::Crc::new(),
            len: 0,
            trailer: Vec::with_capacity(8),
            in_trailer: false,
        }
    }
}

impl MemberBody for Flate2Body {
    fn start(&mut self) -> io::Result<()> {
        self.inflater.reset(false);
        self.crc = libdeflater::Crc::new();
        self.len = 0;
        self.trailer.clear();
        self.in_trailer = false;
        Ok(())
    }

    fn step(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<Step> {
        let (mut consumed, mut produced) = (0, 0);
        if !self.in_trailer {
            let (i0, o0) = (self.inflater.total_in(), self.inflater.total_out());
            let status = self
                .inflater
                .decompress(input, out, flate2::FlushDecompress::None)
                .map_err(|e| invalid(format!("corrupt gzip stream: {e}")))?;
            consumed = (self.inflater.total_in() - i0) as usize;
            produced = (self.inflater.total_out() - o0) as usize;
            self.crc.update(&out[..produced]);
            self.len = self.len.wrapping_add(produced as u32);
            self.in_trailer = status == flate2::Status::StreamEnd;
        }
        if self.in_trailer {
            let rest = &input[consumed..];
            let take = (8 - self.trailer.len()).min(rest.len());
            self.trailer.extend_from_slice(&rest[..take]);
            consumed += take;
        }
        let done = self.trailer.len() == 8;
        if done {
            let crc = u32::from_le_bytes(self.trailer[..4].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(self.trailer[4..].try_into().expect("4 bytes"));
            if crc != self.crc.sum() || len != self.len {
                return Err(invalid(
                    "corrupt gzip stream: checksum mismatch: the data is corrupt".into(),
                ));
            }
        }
        Ok(Step {
            consumed,
            produced,
            done,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u8, extra: &[u8], name: &[u8], comment: &[u8]) -> Vec<u8> {
        let mut h = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3];
        if flags & FEXTRA != 0 {
            h.extend((extra.len() as u16).to_le_bytes());
            h.extend(extra);
        }
        if flags & FNAME != 0 {
            h.extend(name);
            h.push(0);
        }
        if flags & FCOMMENT != 0 {
            h.extend(comment);
            h.push(0);
        }
        if flags & FHCRC != 0 {
            let crc = libdeflater::crc32(&h) as u16;
            h.extend(crc.to_le_bytes());
        }
        h
    }

    #[test]
    fn headers_of_every_shape_parse_in_any_pieces() {
        let ours = [b'C', b'b', 2, 0, 1, b'M'];
        for flags in 0..32u8 {
            let h = header(flags, &ours, b"name.txt", b"a comment");
            for step in [1, 2, 3, 7, h.len()] {
                let mut p = HeaderParser::default();
                let mut used = 0;
                for piece in h.chunks(step) {
                    assert_eq!(p.feed(piece).unwrap(), piece.len());
                    used += piece.len();
                }
                assert_eq!(used, h.len());
                let want = if flags & FEXTRA != 0 {
                    Mark::Member
                } else {
                    Mark::None
                };
                assert_eq!(p.mark().unwrap(), Some(want), "flags {flags} step {step}");
            }
        }
    }

    #[test]
    fn a_header_stops_at_its_end() {
        let mut h = header(FNAME, b"", b"x", b"");
        let len = h.len();
        h.extend(b"deflate data");
        let mut p = HeaderParser::default();
        assert_eq!(p.feed(&h).unwrap(), len);
        assert_eq!(p.mark().unwrap(), Some(Mark::None));
    }

    #[test]
    fn bad_headers_are_errors() {
        let mut bad_crc = header(FHCRC, b"", b"", b"");
        let n = bad_crc.len();
        bad_crc[n - 1] ^= 1;
        for h in [
            vec![0x1f, 0x8c, 8, 0, 0, 0, 0, 0, 0, 0],
            vec![0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0],
            vec![0x1f, 0x8b, 8, 0x20, 0, 0, 0, 0, 0, 0],
            bad_crc,
            header(FEXTRA, &[b'C', b'b', 2, 0, 9, b'M'], b"", b""),
        ] {
            let mut p = HeaderParser::default();
            let r = p.feed(&h).and_then(|_| p.mark());
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidData, "{h:?}");
        }
    }
}
