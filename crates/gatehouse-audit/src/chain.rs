//! The hash chain: each event's link is SHA-256 over its chain name, sequence number, the
//! previous link's hash and its canonical body, so an edited, deleted, inserted or
//! reordered record breaks the chain at that record.

use serde::{Deserialize, Serialize};

/// The `prev` of a chain's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub chain: String,
    /// 1, 2, 3… within the chain.
    pub seq: u64,
    pub prev: String,
    pub hash: String,
    pub body: String,
}

/// The hash of a record (lowercase hex).
pub fn link_hash(chain: &str, seq: u64, prev: &str, body: &str) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    // Length-prefixed fields: no two field lists hash the same.
    for part in [
        chain.as_bytes(),
        &seq.to_be_bytes(),
        prev.as_bytes(),
        body.as_bytes(),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where a chain first stops being intact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tamper {
    #[error("record {seq}: its content does not match its hash (altered)")]
    Altered { seq: u64 },
    #[error("record {found} follows record {after}: record(s) missing (deleted)")]
    Missing { after: u64, found: u64 },
    #[error("record {seq}: does not follow its predecessor (inserted or reordered)")]
    Unlinked { seq: u64 },
}

/// Checks one chain's links, in the order given (the store's sequence order). Returns the
/// number of records verified and the last hash, or the first break.
pub fn verify_chain(links: &[Link]) -> Result<(u64, String), Tamper> {
    let mut expected_seq = 1u64;
    let mut prev = GENESIS.to_owned();
    for l in links {
        if l.seq != expected_seq {
            if l.seq > expected_seq {
                return Err(Tamper::Missing {
                    after: expected_seq - 1,
                    found: l.seq,
                });
            }
            return Err(Tamper::Unlinked { seq: l.seq });
        }
        if l.prev != prev {
            return Err(Tamper::Unlinked { seq: l.seq });
        }
        if link_hash(&l.chain, l.seq, &l.prev, &l.body) != l.hash {
            return Err(Tamper::Altered { seq: l.seq });
        }
        prev.clone_from(&l.hash);
        expected_seq += 1;
    }
    Ok((expected_seq - 1, prev))
}
