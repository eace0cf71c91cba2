//! Builds the ISA-L inflate shim when libisal's headers are installed (Debian: `libisal-dev`);
//! without them the crate inflates with zlib-rs alone. `CBTOOLS_NO_ISAL=1` forces that.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(isal)");
    println!("cargo:rerun-if-changed=csrc/isal_inflate.c");
    println!("cargo:rerun-if-env-changed=CBTOOLS_NO_ISAL");
    if std::env::var_os("CBTOOLS_NO_ISAL").is_some_and(|v| v != "0") {
        return;
    }
    let built = cc::Build::new()
        .file("csrc/isal_inflate.c")
        .opt_level(2)
        .cargo_warnings(false)
        .try_compile("cbtools_isal");
    if built.is_ok() {
        println!("cargo:rustc-link-lib=isal");
        println!("cargo:rustc-cfg=isal");
    } else {
        println!("cargo:warning=libisal headers not found (apt-get install libisal-dev): gzip/zlib inflate falls back to zlib-rs");
    }
}
