//! Chain construction and every kind of tampering the verifier must name.

use crate::{
    AuditEvent, CheckpointError, GENESIS, Link, Signer, Tamper, link_hash, verify_chain,
    verify_checkpoints,
};

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

/// Re-links a chain from `from` on, as someone who can write the store but lacks the key.
fn relink(links: &mut [Link], from: usize) {
    for i in from..links.len() {
        let prev = if i == 0 {
            GENESIS.to_owned()
        } else {
            links[i - 1].hash.clone()
        };
        links[i].prev = prev;
        links[i].hash = link_hash(
            &links[i].chain,
            links[i].seq,
            &links[i].prev,
            &links[i].body,
        );
    }
}

#[test]
fn signed_checkpoints_catch_a_recomputed_chain_and_a_cut_tail() {
    let (seed, public) = Signer::generate().expect("key");
    let signer = Signer::from_seed(&seed).expect("signer");
    assert_eq!(signer.public_key(), public);
    let links = chain(6);
    let cps = vec![
        signer.sign("default", 3, &links[2].hash, 1),
        signer.sign("default", 6, &links[5].hash, 2),
    ];
    assert_eq!(verify_checkpoints(&links, &cps, &public), Ok(2));

    // Edited and every later hash recomputed: the chain alone verifies, the checkpoint not.
    let mut rewritten = chain(6);
    rewritten[1].body = rewritten[1].body.replace("#2", "#7");
    relink(&mut rewritten, 1);
    assert!(verify_chain(&rewritten).is_ok());
    assert_eq!(
        verify_checkpoints(&rewritten, &cps, &public),
        Err(CheckpointError::Rewritten { seq: 3 })
    );

    let mut cut = chain(6);
    cut.truncate(4);
    assert_eq!(
        verify_checkpoints(&cut, &cps, &public),
        Err(CheckpointError::Truncated { seq: 6, present: 4 })
    );

    let (_, other) = Signer::generate().expect("key");
    assert_eq!(
        verify_checkpoints(&links, &cps, &other),
        Err(CheckpointError::BadSignature { seq: 3 })
    );
    let mut forged = cps.clone();
    forged[0].hash = rewritten[2].hash.clone();
    assert_eq!(
        verify_checkpoints(&rewritten, &forged, &public),
        Err(CheckpointError::BadSignature { seq: 3 })
    );
}

/// A signature has one encoding: `+b` decodes to the same byte as `0b` in a lenient
/// parser, so a re-encoded signature must not verify.
#[test]
fn a_signature_in_a_non_canonical_encoding_is_refused() {
    let (seed, public) = Signer::generate().expect("key");
    let signer = Signer::from_seed(&seed).expect("signer");
    let links = chain(3);
    // Time stamps change the message: find a signature with a byte below 0x10.
    let (cp, at) = (1..1000)
        .find_map(|t| {
            let cp = signer.sign("default", 3, &links[2].hash, t);
            let at = (0..cp.signature.len())
                .step_by(2)
                .find(|&i| cp.signature.as_bytes()[i] == b'0')?;
            Some((cp, at))
        })
        .expect("a signature with a small byte");
    assert_eq!(
        verify_checkpoints(&links, std::slice::from_ref(&cp), &public),
        Ok(1)
    );
    let mut odd = cp.clone();
    odd.signature.replace_range(at..at + 1, "+");
    assert!(verify_checkpoints(&links, &[odd], &public).is_err());
    let mut spaced = cp;
    spaced.signature = format!(" {}", spaced.signature);
    assert!(verify_checkpoints(&links, &[spaced], &public).is_err());
}
