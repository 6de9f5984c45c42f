//! Builds the lwIP shim (src/exec/lwip_shim.c) when lwIP can be linked: on Linux, with
//! Debian's liblwip-dev headers in /usr/include/lwip. Elsewhere the cfg `closefuzz_lwip`
//! stays unset and `--platform lwip` says how to install it.

use std::path::Path;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(closefuzz_lwip)");
    println!("cargo:rerun-if-changed=src/exec/lwip_shim.c");
    println!("cargo:rerun-if-changed=/usr/include/lwip/lwipopts.h");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let host = std::env::var("HOST").unwrap_or_default();
    let target = std::env::var("TARGET").unwrap_or_default();
    let include = Path::new("/usr/include/lwip");
    if !linux || host != target || !include.join("lwip/sockets.h").is_file() {
        return;
    }
    cc::Build::new()
        .file("src/exec/lwip_shim.c")
        .include(include)
        .define("_GNU_SOURCE", None)
        .warnings(true)
        .compile("closefuzz_lwip_shim");
    println!("cargo:rustc-link-lib=dylib=lwip");
    println!("cargo:rustc-link-lib=dylib=pthread");
    // lwIP asks sys_now() for the time through its PLT; the shim's definition must be
    // in the executable's dynamic symbol table to take its place (virtual time).
    println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol=sys_now");
    // The same for tcpip_try_callback: the shim keeps looped-back traffic off the tcpip
    // thread (cf_settle delivers it), which saves two thread switches per segment.
    println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol=tcpip_try_callback");
    println!("cargo:rustc-cfg=closefuzz_lwip");
}
