//! Links the functions a call runs next to each other: lld orders them first in `.text`
//! from `hot-code.txt` (written by `scripts/hot-code`). The binary holds about 33 MB of
//! code; a call runs about 2 MB of it, spread over the whole file, and the kernel maps
//! 64 KB around every page it faults in, so under load nearly all of it was resident.
//! A name the build does not have (the list went stale) is skipped without a warning:
//! the order then helps less, and nothing else changes.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=hot-code.txt");
    println!("cargo:rerun-if-env-changed=GATEHOUSE_NO_CODE_ORDER");
    // lld is rustc's linker on this target (Rust 1.90 and later); the flag would stop
    // another linker, so nothing is passed elsewhere or when it is turned off.
    let target = std::env::var("TARGET").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu" || std::env::var_os("GATEHOUSE_NO_CODE_ORDER").is_some()
    {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let list = Path::new(&dir).join("hot-code.txt");
    if !list.exists() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        list.display()
    );
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}
