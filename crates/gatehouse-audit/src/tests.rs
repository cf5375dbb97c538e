//! Chain construction and every kind of tampering the verifier must name.

use crate::{AuditEvent, GENESIS, Link, Tamper, link_hash, verify_chain};

fn chain(n: u64) -> Vec<Link> {
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let body = AuditEvent {
                v: 1,
                method: format!("tools/call #{seq}"),
                ..AuditEvent::default()
            }
            .body();
            let hash = link_hash("default", seq, &prev, &body);
            let l = Link {
                chain: "default".into(),
                seq,
                prev: prev.clone(),
                hash: hash.clone(),
                body,
            };
            prev = hash;
            l
        })
        .collect()
}

#[test]
fn an_intact_chain_verifies() {
    let links = chain(5);
    let (n, head) = verify_chain(&links).expect("intact");
    assert_eq!(n, 5);
    assert_eq!(head, links[4].hash);
    assert_eq!(verify_chain(&[]).expect("empty").0, 0);
}

#[test]
fn each_tampering_is_named_at_the_first_bad_record() {
    let mut edited = chain(5);
    edited[2].body = edited[2].body.replace("#3", "#9");
    assert_eq!(verify_chain(&edited), Err(Tamper::Altered { seq: 3 }));

    let mut deleted = chain(5);
    deleted.remove(1);
    assert_eq!(
        verify_chain(&deleted),
        Err(Tamper::Missing { after: 1, found: 3 })
    );

    let mut inserted = chain(5);
    let mut extra = inserted[1].clone();
    extra.body = extra.body.replace("#2", "#2b");
    inserted.insert(2, extra);
    assert!(matches!(
        verify_chain(&inserted),
        Err(Tamper::Unlinked { seq: 2 })
    ));

    let mut reordered = chain(5);
    reordered.swap(1, 3);
    assert_eq!(
        verify_chain(&reordered),
        Err(Tamper::Missing { after: 1, found: 4 })
    );

    // Renumbering a swapped pair keeps the sequence but breaks the links.
    let mut renumbered = chain(5);
    renumbered.swap(1, 3);
    renumbered[1].seq = 2;
    renumbered[3].seq = 4;
    assert_eq!(verify_chain(&renumbered), Err(Tamper::Unlinked { seq: 2 }));

    // Deleting the tail is visible only against a known head (checkpoints); the rest holds.
    let mut truncated = chain(5);
    truncated.truncate(3);
    assert_eq!(verify_chain(&truncated).expect("prefix").0, 3);
}

#[test]
fn bodies_are_canonical_and_fields_cannot_run_together() {
    let e = AuditEvent {
        v: 1,
        principal: "a".into(),
        tenant: "t".into(),
        ..AuditEvent::default()
    };
    assert_eq!(e.body(), e.clone().body());
    assert!(e.body().find("\"tenant\"") < e.body().find("\"principal\""));
    assert_ne!(link_hash("ab", 1, "c", "d"), link_hash("a", 1, "bc", "d"));
}
