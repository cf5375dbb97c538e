use gatehouse_protocol::{Message, Notification};

use super::{EventId, Hub, REPLAY, STANDALONE};

fn note(n: &str) -> Message {
    Notification::new(n, None).into()
}

fn methods(events: &[super::Event]) -> Vec<String> {
    events
        .iter()
        .map(|(_, m)| m.method().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn standalone_reconnect_replays_what_was_missed_and_nothing_else() {
    let hub = Hub::default();
    let (_, rx) = hub.open_standalone("s", None);
    hub.broadcast(&note("a"));
    drop(rx);
    hub.broadcast(&note("b"));
    hub.broadcast(&note("c"));
    let (replay, _rx) = hub.open_standalone("s", Some(1));
    assert_eq!(methods(&replay), ["b", "c"]);
    assert_eq!(
        replay[0].0,
        EventId {
            stream: STANDALONE,
            seq: 2
        }
    );
}

#[test]
fn a_post_stream_resumes_on_its_own_and_never_mixes_with_others() {
    let hub = Hub::default();
    let (_, _get) = hub.open_standalone("s", None);
    let (one, rx1) = hub.open_call("s");
    let (two, _rx2) = hub.open_call("s");
    hub.push("s", one, note("progress-1"));
    drop(rx1); // connection lost
    hub.push("s", one, note("progress-2"));
    hub.push("s", two, note("other-call"));
    hub.broadcast(&note("list-changed"));
    hub.push("s", one, note("final"));
    hub.finish("s", one);
    let (replay, _rx, finished) = hub
        .resume(
            "s",
            EventId {
                stream: one,
                seq: 1,
            },
        )
        .expect("stream kept");
    assert_eq!(methods(&replay), ["progress-2", "final"]);
    assert!(finished);
    assert!(hub.resume("s", EventId { stream: 99, seq: 0 }).is_none());
    assert!(
        hub.resume(
            "other-session",
            EventId {
                stream: one,
                seq: 0
            }
        )
        .is_none(),
        "streams are per session"
    );
}

#[test]
fn replay_is_bounded_and_forget_drops_it() {
    let hub = Hub::default();
    let (_, rx) = hub.open_standalone("s", None);
    drop(rx);
    for _ in 0..200 {
        hub.broadcast(&note("x"));
    }
    let (replay, _rx) = hub.open_standalone("s", Some(0));
    assert_eq!(replay.len(), REPLAY);
    hub.forget("s");
    assert!(!hub.send("s", note("y")));
}

#[test]
fn event_ids_parse_only_their_own_form() {
    assert_eq!(EventId::parse("3:17"), Some(EventId { stream: 3, seq: 17 }));
    assert_eq!(
        EventId::parse("3:17").map(|e| e.to_string()).as_deref(),
        Some("3:17")
    );
    for bad in ["", "3", "a:1", "1:b", "1:2:3", "-1:2"] {
        assert_eq!(EventId::parse(bad), None, "{bad}");
    }
}
