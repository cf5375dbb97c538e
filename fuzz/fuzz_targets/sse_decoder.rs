//! Any SSE stream an upstream sends, split anywhere: never panics, never buffers past its
//! limit, and chunking does not change the events.
#![no_main]

use gatehouse_protocol::SseDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let mut whole = SseDecoder::new(4096);
    let a = whole.feed(rest);
    let mut split = SseDecoder::new(4096);
    let mut b = Ok(Vec::new());
    for chunk in rest.chunks(usize::from(cut).max(1)) {
        match (split.feed(chunk), &mut b) {
            (Ok(evs), Ok(all)) => all.extend(evs),
            (Err(e), _) => {
                b = Err(e);
                break;
            }
            _ => {}
        }
    }
    if let (Ok(a), Ok(b)) = (a, b) {
        assert_eq!(a, b);
    }
});
