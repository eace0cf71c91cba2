//! Inflating gzip and zlib streams: every compressed archive, data file and backup set is read
//! through here.
//!
//! Restores are CPU-bound, and inflating is most of the client's share: zlib-rs spends about
//! 0.6 s of a core on pg_dump's 97 MB gzip file of 333 MB of COPY text. ISA-L's igzip does the
//! same in about half that, so when libisal was found at build time (Debian: `libisal-dev`) it
//! does the inflating; otherwise, or with `CBTOOLS_INFLATE=zlib-rs` in the environment, zlib-rs
//! does. Both check every member's checksum and read any number of gzip members back to back.

use std::io::{BufRead, BufReader, Read};

/// Which inflater this build uses: `"isa-l"` or `"zlib-rs"`.
pub fn backend() -> &'static str {
    if isal_enabled() {
        "isa-l"
    } else {
        "zlib-rs"
    }
}

fn isal_enabled() -> bool {
    cfg!(isal) && std::env::var("CBTOOLS_INFLATE").map_or(true, |v| v != "zlib-rs")
}

/// A reader of the decompressed content of every gzip member in `inner`, back to back. Files
/// we wrote must reach their end member ([`crate::gzip_members`]): one cut short is an error
/// starting with "truncated:".
pub fn gzip<'a, R: BufRead + Send + 'a>(inner: R) -> Box<dyn Read + Send + 'a> {
    gzip_via(inner, isal_enabled())
}

fn gzip_via<'a, R: BufRead + Send + 'a>(inner: R, use_isal: bool) -> Box<dyn Read + Send + 'a> {
    use crate::gzip_reader::{Flate2Body, GzipReader};
    #[cfg(isal)]
    if use_isal {
        return Box::new(GzipReader::new(inner, isal::GzipBody::default()));
    }
    let _ = use_isal;
    Box::new(GzipReader::new(inner, Flate2Body::new()))
}

/// A reader of the decompressed content of the one zlib stream at the start of `inner` (what
/// pg_dump's custom format keeps per data block); bytes after its end are not read.
pub fn zlib<'a, R: Read + Send + 'a>(inner: R) -> Box<dyn Read + Send + 'a> {
    zlib_via(inner, isal_enabled())
}

fn zlib_via<'a, R: Read + Send + 'a>(inner: R, use_isal: bool) -> Box<dyn Read + Send + 'a> {
    #[cfg(isal)]
    if use_isal {
        return Box::new(isal::Inflater::new(
            BufReader::with_capacity(256 * 1024, inner),
            isal::Wrapper::Zlib,
        ));
    }
    let _ = use_isal;
    Box::new(flate2::bufread::ZlibDecoder::new(BufReader::with_capacity(
        256 * 1024,
        inner,
    )))
}

#[cfg(isal)]
mod isal {
    //! The igzip inflater behind a narrow C shim (csrc/isal_inflate.c), which keeps ISA-L's
    //! state layout out of Rust.

    use std::io::{self, BufRead, Read};
    use std::os::raw::c_int;
    use std::ptr::NonNull;

    use crate::gzip_reader::{MemberBody, Step};

    #[repr(C)]
    struct State {
        _opaque: [u8; 0],
    }

    extern "C" {
        fn cbtools_isal_new() -> *mut State;
        fn cbtools_isal_free(s: *mut State);
        fn cbtools_isal_reset(s: *mut State, wrapper: u32);
        fn cbtools_isal_inflate(
            s: *mut State,
            input: *const u8,
            in_len: u32,
            consumed: *mut u32,
            out: *mut u8,
            out_len: u32,
            produced: *mut u32,
            done: *mut c_int,
        ) -> c_int;
    }

    /// ISA-L's `crc_flag` values that verify the trailer: a zlib stream with its header, or a
    /// gzip member's body after its header (which [`crate::gzip_reader`] parses, for our marks).
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Wrapper {
        GzipBody = 6,
        Zlib = 3,
    }

    /// Owns one `struct inflate_state` (about 50 KB, so it lives on the C heap).
    struct Handle(NonNull<State>);

    // The state is only ever used through `&mut` of its one owner.
    unsafe impl Send for Handle {}

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: allocated by cbtools_isal_new and freed once, here.
            unsafe { cbtools_isal_free(self.0.as_ptr()) }
        }
    }

    impl Handle {
        fn new() -> io::Result<Handle> {
            // SAFETY: returns a freshly initialised state or null.
            NonNull::new(unsafe { cbtools_isal_new() })
                .map(Handle)
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::OutOfMemory, "no memory for the inflater")
                })
        }

        fn reset(&mut self, wrapper: Wrapper) {
            // SAFETY: a live state owned by self.
            unsafe { cbtools_isal_reset(self.0.as_ptr(), wrapper as u32) };
        }

        /// One step: (consumed, produced, the stream and its trailer are complete).
        fn inflate(
            &mut self,
            input: &[u8],
            out: &mut [u8],
            wrapper: Wrapper,
        ) -> io::Result<(usize, usize, bool)> {
            let in_len = input.len().min(u32::MAX as usize) as u32;
            let out_len = out.len().min(u32::MAX as usize) as u32;
            let (mut consumed, mut produced, mut done) = (0u32, 0u32, 0 as c_int);
            // SAFETY: the pointers and lengths describe live buffers that outlive the call;
            // the shim writes only the three out-parameters and `out[..out_len]`.
            let rc = unsafe {
                cbtools_isal_inflate(
                    self.0.as_ptr(),
                    input.as_ptr(),
                    in_len,
                    &mut consumed,
                    out.as_mut_ptr(),
                    out_len,
                    &mut produced,
                    &mut done,
                )
            };
            if rc < 0 || rc == 6 {
                return Err(corrupt(rc, wrapper));
            }
            Ok((consumed as usize, produced as usize, done != 0))
        }
    }

    fn corrupt(rc: c_int, wrapper: Wrapper) -> io::Error {
        let what = match wrapper {
            Wrapper::GzipBody => "gzip",
            Wrapper::Zlib => "zlib",
        };
        let msg = match rc {
            -1 => "invalid deflate block",
            -2 => "invalid deflate symbol",
            -3 => "invalid back-reference distance",
            -4 => "not a valid header (not this format, or garbage after the last member)",
            -5 => "the header names an unsupported compression method",
            -6 => "checksum mismatch: the data is corrupt",
            6 => "the stream needs a preset dictionary",
            _ => "undecodable data",
        };
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("corrupt {what} stream: {msg} (isa-l status {rc})"),
        )
    }

    /// Gzip member bodies (raw deflate and trailer, verified by ISA-L).
    #[derive(Default)]
    pub struct GzipBody {
        state: Option<Handle>,
    }

    impl MemberBody for GzipBody {
        fn start(&mut self) -> io::Result<()> {
            let h = match &mut self.state {
                Some(h) => h,
                None => self.state.insert(Handle::new()?),
            };
            h.reset(Wrapper::GzipBody);
            Ok(())
        }

        fn step(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<Step> {
            let h = self.state.as_mut().expect("start runs first");
            let (consumed, produced, done) = h.inflate(input, out, Wrapper::GzipBody)?;
            Ok(Step {
                consumed,
                produced,
                done,
            })
        }
    }

    /// One zlib stream (pg_dump's custom-format data blocks).
    pub struct Inflater<R> {
        inner: R,
        state: Option<Handle>,
        wrapper: Wrapper,
        /// Inside the stream: input ending now means the stream was cut short.
        in_stream: bool,
        /// Nothing more to return: the stream ended. Input that ends before it starts is no
        /// data (pg_dump writes nothing at all for an empty table), as zlib-rs sees it too.
        ended: bool,
    }

    impl<R: BufRead> Inflater<R> {
        pub fn new(inner: R, wrapper: Wrapper) -> Self {
            Inflater {
                inner,
                state: None,
                wrapper,
                in_stream: false,
                ended: false,
            }
        }
    }

    impl<R: BufRead> Read for Inflater<R> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if out.is_empty() || self.ended {
                return Ok(0);
            }
            loop {
                let h = match &mut self.state {
                    Some(h) => h,
                    None => self.state.insert(Handle::new()?),
                };
                let input = self.inner.fill_buf()?;
                let at_eof = input.is_empty();
                if at_eof && !self.in_stream {
                    self.ended = true;
                    return Ok(0);
                }
                if !self.in_stream {
                    h.reset(self.wrapper);
                    self.in_stream = true;
                }
                let r = h.inflate(input, out, self.wrapper);
                let (consumed, produced, done) = r.inspect_err(|_| self.ended = true)?;
                self.inner.consume(consumed);
                if done {
                    self.in_stream = false;
                    self.ended = true;
                }
                if produced > 0 {
                    return Ok(produced);
                }
                if !done && at_eof {
                    // ISA-L had been handed all the input and has no more output from it.
                    self.ended = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "compressed stream ends before its end marker (file truncated?)",
                    ));
                }
                if !done && consumed == 0 {
                    // ISA-L takes all the input it is given (buffering partial headers itself),
                    // so this cannot happen with a sound library; looping would never end.
                    self.ended = true;
                    return Err(io::Error::other("the inflater stopped making progress"));
                }
                if self.ended {
                    return Ok(0);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Write};
    use testkit::Trickle;

    /// Every inflater this build has: zlib-rs always, ISA-L when it was found.
    fn backends() -> Vec<bool> {
        if cfg!(isal) {
            vec![false, true]
        } else {
            vec![false]
        }
    }

    fn sample(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n * 40);
        for i in 0..n {
            writeln!(v, "{i}\tname {}\t{}", i % 977, i as f64 / 7.0).unwrap();
        }
        v
    }

    fn gz(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zl(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(mut r: Box<dyn Read + Send + '_>) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    /// Reads with an output buffer of `n` bytes: the inflater must hand out what it holds even
    /// after its input has run dry.
    fn read_by(mut r: Box<dyn Read + Send + '_>, n: usize) -> io::Result<Vec<u8>> {
        let (mut v, mut buf) = (Vec::new(), vec![0u8; n]);
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(v),
                k => v.extend_from_slice(&buf[..k]),
            }
        }
    }

    #[test]
    fn gzip_members_back_to_back_in_any_read_sizes() {
        for isal in backends() {
            let a = sample(50_000);
            let b = sample(7);
            let mut file = gz(&a, 6);
            file.extend(gz(b"", 1));
            file.extend(gz(&b, 1));
            let mut want = a.clone();
            want.extend(&b);
            assert_eq!(read_all(gzip_via(&file[..], isal)).unwrap(), want);
            for step in [1, 3, 17, 4096] {
                let r = BufReader::with_capacity(step, Trickle::new(&file, step));
                assert_eq!(read_all(gzip_via(r, isal)).unwrap(), want, "step {step}");
            }
            for n in [1, 7, 32, 65536] {
                assert_eq!(
                    read_by(gzip_via(&file[..], isal), n).unwrap(),
                    want,
                    "buffer {n}"
                );
            }
            // Members written by our own encoder (libdeflate, 1 MiB each).
            let mut enc = crate::Compression::Gzip(6).encoder(Vec::new()).unwrap();
            let big = sample(200_000);
            enc.write_all(&big).unwrap();
            assert_eq!(
                read_all(gzip_via(&enc.finish().unwrap()[..], isal)).unwrap(),
                big
            );
            let err = read_all(gzip_via(&b""[..], isal)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        }
    }

    #[test]
    fn zlib_stream_ends_at_its_end() {
        for isal in backends() {
            let a = sample(30_000);
            let mut file = zl(&a);
            file.extend(b"not part of the stream");
            assert_eq!(read_all(zlib_via(&file[..], isal)).unwrap(), a);
            assert_eq!(read_all(zlib_via(Trickle::new(&file, 5), isal)).unwrap(), a);
            for n in [1, 32, 4096] {
                assert_eq!(
                    read_by(zlib_via(&file[..], isal), n).unwrap(),
                    a,
                    "buffer {n}"
                );
            }
            // An empty table's stream (pg_dump 15 writes one).
            assert!(read_all(zlib_via(&zl(b"")[..], isal)).unwrap().is_empty());
            assert!(read_all(gzip_via(&gz(b"", 6)[..], isal))
                .unwrap()
                .is_empty());
        }
    }

    #[test]
    fn damage_is_an_error_never_short_data() {
        for isal in backends() {
            let a = sample(20_000);
            let file = gz(&a, 6);
            // Cut anywhere, including inside the trailer: UnexpectedEof.
            for cut in [5, 100, file.len() / 2, file.len() - 5, file.len() - 1] {
                let err = read_all(gzip_via(&file[..cut], isal)).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut {cut}: {err}");
            }
            // A flipped byte in the data or the checksum: InvalidData.
            for at in [file.len() / 2, file.len() - 6] {
                let mut bad = file.clone();
                bad[at] ^= 0x55;
                let err = read_all(gzip_via(&bad[..], isal)).unwrap_err();
                assert!(
                    matches!(
                        err.kind(),
                        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
                    ),
                    "flip at {at}: {err}"
                );
            }
            // Garbage after the last member.
            let mut tail = file.clone();
            tail.extend(b"garbage!");
            assert!(read_all(gzip_via(&tail[..], isal)).is_err());
            let z = zl(&a);
            let err = read_all(zlib_via(&z[..z.len() - 3], isal)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        }
    }

    /// Offsets where each member of `file` starts, and the file's length.
    fn member_starts(file: &[u8]) -> Vec<usize> {
        let mut starts = vec![0];
        let mut rest = file;
        while !rest.is_empty() {
            let mut d = flate2::bufread::GzDecoder::new(rest);
            io::copy(&mut d, &mut io::sink()).unwrap();
            rest = d.into_inner();
            starts.push(file.len() - rest.len());
        }
        starts
    }

    fn ours(data: &[u8]) -> Vec<u8> {
        let mut enc = crate::Compression::Gzip(1).encoder(Vec::new()).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn our_files_cut_at_any_member_boundary_are_truncated() {
        let data = sample(150_000);
        let file = ours(&data);
        let starts = member_starts(&file);
        assert!(starts.len() >= 5, "{starts:?}");
        for isal in backends() {
            assert_eq!(read_all(gzip_via(&file[..], isal)).unwrap(), data);
            for &cut in &starts[1..starts.len() - 1] {
                let err = read_all(gzip_via(&file[..cut], isal)).unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut {cut}: {err}");
                assert!(err.to_string().starts_with("truncated: "), "{err}");
            }
            // A member left out in the middle: the end member's counts disagree.
            let mut holed = file[..starts[1]].to_vec();
            holed.extend(&file[starts[2]..]);
            let err = read_all(gzip_via(&holed[..], isal)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
            // Someone else's member spliced in after ours.
            let mut spliced = file[..starts[1]].to_vec();
            spliced.extend(gz(b"foreign", 6));
            spliced.extend(&file[starts[1]..]);
            let err = read_all(gzip_via(&spliced[..], isal)).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        }
    }

    #[test]
    fn whole_files_concatenated_and_foreign_files_read_as_before() {
        let (a, b) = (sample(1000), sample(77));
        let mut two = ours(&a);
        two.extend(ours(&b));
        let mut mixed = gz(&b, 6);
        mixed.extend(ours(&a));
        for isal in backends() {
            assert_eq!(
                read_all(gzip_via(&two[..], isal)).unwrap(),
                [&a[..], &b].concat()
            );
            assert_eq!(
                read_all(gzip_via(&mixed[..], isal)).unwrap(),
                [&b[..], &a].concat()
            );
            // An empty file of ours is its end member alone.
            assert!(read_all(gzip_via(&ours(b"")[..], isal)).unwrap().is_empty());
            let r = BufReader::with_capacity(1, Trickle::new(&two, 1));
            assert_eq!(read_all(gzip_via(r, isal)).unwrap(), [&a[..], &b].concat());
        }
    }

    #[test]
    fn joined_files_cut_at_a_piece_boundary_are_truncated() {
        let pieces = [sample(40_000), sample(30_000), sample(5)];
        let mut join = crate::gzip_members::Join::default();
        let (mut file, mut boundaries) = (Vec::new(), Vec::new());
        for p in &pieces {
            let c = crate::Compression::Gzip(1);
            c.append_piece(&mut io::Cursor::new(ours(p)), &mut file, &mut join)
                .unwrap();
            boundaries.push(file.len());
        }
        let mut enc = crate::Compression::Gzip(1)
            .encoder_after(file, join)
            .unwrap();
        enc.write_all(b"\\.\n").unwrap();
        let file = enc.finish().unwrap();
        let mut want = pieces.concat();
        want.extend(b"\\.\n");
        for isal in backends() {
            assert_eq!(read_all(gzip_via(&file[..], isal)).unwrap(), want);
            for &cut in &boundaries {
                let err = read_all(gzip_via(&file[..cut], isal)).unwrap_err();
                assert!(err.to_string().starts_with("truncated: "), "{err}");
            }
        }
    }

    #[test]
    fn names_its_backend() {
        assert!(["isa-l", "zlib-rs"].contains(&backend()));
        if cfg!(isal) && std::env::var_os("CBTOOLS_INFLATE").is_none() {
            assert_eq!(backend(), "isa-l");
        }
    }
}
