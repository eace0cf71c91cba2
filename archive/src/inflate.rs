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

/// A reader of the decompressed content of every gzip member in `inner`, back to back.
pub fn gzip<'a, R: BufRead + Send + 'a>(inner: R) -> Box<dyn Read + Send + 'a> {
    gzip_via(inner, isal_enabled())
}

fn gzip_via<'a, R: BufRead + Send + 'a>(inner: R, use_isal: bool) -> Box<dyn Read + Send + 'a> {
    #[cfg(isal)]
    if use_isal {
        return Box::new(isal::Inflater::new(inner, isal::Wrapper::Gzip));
    }
    let _ = use_isal;
    Box::new(flate2::bufread::MultiGzDecoder::new(inner))
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

    /// ISA-L's `crc_flag` values that parse the header and verify the trailer.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Wrapper {
        Gzip = 1,
        Zlib = 3,
    }

    /// Owns one `struct inflate_state` (about 50 KB, so it lives on the C heap).
    struct Handle(NonNull<State>);

    // The state is only ever used through `&mut Inflater`.
    unsafe impl Send for Handle {}

    impl Drop for Handle {
        fn drop(&mut self) {
            // SAFETY: allocated by cbtools_isal_new and freed once, here.
            unsafe { cbtools_isal_free(self.0.as_ptr()) }
        }
    }

    pub struct Inflater<R> {
        inner: R,
        state: Option<Handle>,
        wrapper: Wrapper,
        /// Inside a stream: input ending now means the stream was cut short.
        in_stream: bool,
        /// Nothing more to return: the zlib stream ended, or the input did between gzip members.
        ended: bool,
        /// A stream was started. Input that ends before any is an error for gzip (a gzip file
        /// holds at least one member) but no data for zlib (pg_dump writes nothing at all for
        /// an empty table), as zlib-rs sees it too.
        started: bool,
    }

    impl<R: BufRead> Inflater<R> {
        pub fn new(inner: R, wrapper: Wrapper) -> Self {
            Inflater {
                inner,
                state: None,
                wrapper,
                in_stream: false,
                ended: false,
                started: false,
            }
        }

        fn state(&mut self) -> io::Result<*mut State> {
            if let Some(h) = &self.state {
                return Ok(h.0.as_ptr());
            }
            // SAFETY: returns a freshly initialised state or null.
            let p = NonNull::new(unsafe { cbtools_isal_new() }).ok_or_else(|| {
                io::Error::new(io::ErrorKind::OutOfMemory, "no memory for the inflater")
            })?;
            Ok(self.state.insert(Handle(p)).0.as_ptr())
        }
    }

    fn corrupt(rc: c_int, wrapper: Wrapper) -> io::Error {
        let what = match wrapper {
            Wrapper::Gzip => "gzip",
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

    impl<R: BufRead> Read for Inflater<R> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if out.is_empty() || self.ended {
                return Ok(0);
            }
            let out_len = out.len().min(u32::MAX as usize) as u32;
            loop {
                let state = self.state()?;
                let input = self.inner.fill_buf()?;
                let at_eof = input.is_empty();
                if at_eof && !self.in_stream {
                    self.ended = true;
                    if !self.started && self.wrapper == Wrapper::Gzip {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "empty input: a gzip file holds at least one member",
                        ));
                    }
                    return Ok(0);
                }
                if !self.in_stream {
                    // SAFETY: `state` is a live state owned by self.
                    unsafe { cbtools_isal_reset(state, self.wrapper as u32) };
                    self.in_stream = true;
                    self.started = true;
                }
                let in_len = input.len().min(u32::MAX as usize) as u32;
                let (mut consumed, mut produced, mut done) = (0u32, 0u32, 0 as c_int);
                // SAFETY: the pointers and lengths describe live buffers that outlive the call;
                // the shim writes only the three out-parameters and `out[..out_len]`.
                let rc = unsafe {
                    cbtools_isal_inflate(
                        state,
                        input.as_ptr(),
                        in_len,
                        &mut consumed,
                        out.as_mut_ptr(),
                        out_len,
                        &mut produced,
                        &mut done,
                    )
                };
                self.inner.consume(consumed as usize);
                if rc < 0 || rc == 6 {
                    self.ended = true;
                    return Err(corrupt(rc, self.wrapper));
                }
                if done != 0 {
                    self.in_stream = false;
                    if self.wrapper == Wrapper::Zlib {
                        self.ended = true;
                    }
                }
                if produced > 0 {
                    return Ok(produced as usize);
                }
                if done == 0 && at_eof {
                    // ISA-L had been handed all the input and has no more output from it.
                    self.ended = true;
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "compressed stream ends before its end marker (file truncated?)",
                    ));
                }
                if done == 0 && consumed == 0 {
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

    #[test]
    fn names_its_backend() {
        assert!(["isa-l", "zlib-rs"].contains(&backend()));
        if cfg!(isal) && std::env::var_os("CBTOOLS_INFLATE").is_none() {
            assert_eq!(backend(), "isa-l");
        }
    }
}
