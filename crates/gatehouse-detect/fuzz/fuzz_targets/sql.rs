//! Fuzzes the SQL detectors (queries and values) for crashes and for slow inputs: the input alone and repeated
//! up to 64 KiB must each be checked within 10 ms per KiB.
//! Run: `cargo fuzz run -s none sql` from crates/gatehouse-detect (stable toolchain).
#![no_main]

#[path = "budget.rs"]
mod budget;

use gatehouse_detect::inject::ArgKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    budget::run(ArgKind::SqlQuery, data);
    budget::run(ArgKind::SqlValue, data);
});
