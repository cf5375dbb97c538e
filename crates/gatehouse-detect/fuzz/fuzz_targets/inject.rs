//! Fuzzes the injection detectors (the SQL tokenizer above all) with arbitrary text: they
//! must never panic, whatever the kind.
//! Run: `cargo fuzz run -s none inject` from crates/gatehouse-detect (stable toolchain).
#![no_main]

use gatehouse_detect::inject::{ArgKind, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let roots = ["/srv/data".to_owned()];
    for kind in [ArgKind::SqlQuery, ArgKind::SqlValue, ArgKind::Shell, ArgKind::Path, ArgKind::Url] {
        let _ = check(kind, s, true, &roots);
        let _ = check(kind, s, false, &[]);
    }
});
