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
    hex::encode(ctx.finish())
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
    verify_chain_from(links, None)
}

/// Where a pruned chain now starts: the last record retention removed, vouched for by a
/// signed checkpoint at the same sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    pub seq: u64,
    pub hash: String,
}

/// [`verify_chain`] for a chain whose records up to `anchor` were pruned: the first
/// remaining record must link to the anchor's hash.
pub fn verify_chain_from(links: &[Link], anchor: Option<&Anchor>) -> Result<(u64, String), Tamper> {
    let mut expected_seq = anchor.map_or(1, |a| a.seq + 1);
    let mut prev = anchor.map_or_else(|| GENESIS.to_owned(), |a| a.hash.clone());
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

/// A signed statement that a chain's record `seq` had hash `hash`: kept beside the chain
/// and exportable for anchoring elsewhere. A chain rewritten from a record on (hashes
/// recomputed) or cut short no longer matches its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub chain: String,
    pub seq: u64,
    pub hash: String,
    pub time_ms: u64,
    /// Ed25519 signature (hex) over [`checkpoint_message`].
    pub signature: String,
}

/// The bytes a checkpoint signs.
pub fn checkpoint_message(chain: &str, seq: u64, hash: &str) -> Vec<u8> {
    let mut m = b"gatehouse-audit-checkpoint-v1".to_vec();
    for part in [chain.as_bytes(), &seq.to_be_bytes(), hash.as_bytes()] {
        m.extend_from_slice(&(part.len() as u64).to_be_bytes());
        m.extend_from_slice(part);
    }
    m
}

/// Lower-case hex; decoding accepts exactly two hex digits per byte (no sign, no
/// whitespace), so a digest or signature has one encoding.
fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

/// Signs chain heads with the audit key.
pub struct Signer(aws_lc_rs::signature::Ed25519KeyPair);

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer")
    }
}

impl Signer {
    /// From a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8]) -> Option<Signer> {
        aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .ok()
            .map(Signer)
    }

    /// A new random key: (seed, public key).
    pub fn generate() -> Option<(Vec<u8>, Vec<u8>)> {
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).ok()?;
        let public = Signer::from_seed(&seed)?.public_key();
        Some((seed.to_vec(), public))
    }

    pub fn public_key(&self) -> Vec<u8> {
        use aws_lc_rs::signature::KeyPair;
        self.0.public_key().as_ref().to_vec()
    }

    pub fn sign(&self, chain: &str, seq: u64, hash: &str, time_ms: u64) -> Checkpoint {
        Checkpoint {
            chain: chain.to_owned(),
            seq,
            hash: hash.to_owned(),
            time_ms,
            signature: hex(self.0.sign(&checkpoint_message(chain, seq, hash)).as_ref()),
        }
    }
}

/// How a chain disagrees with its checkpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint at record {seq}: signature does not verify with this public key")]
    BadSignature { seq: u64 },
    #[error(
        "record {seq}: differs from the signed checkpoint (chain rewritten from here or earlier)"
    )]
    Rewritten { seq: u64 },
    #[error("chain ends at record {present} but a checkpoint vouches for record {seq} (truncated)")]
    Truncated { seq: u64, present: u64 },
    #[error(
        "the chain starts after record {seq}, which no signed checkpoint vouches for (pruning anchor forged)"
    )]
    UnsignedAnchor { seq: u64 },
}

/// Checks a verified chain against its checkpoints. Returns how many checkpoints matched.
pub fn verify_checkpoints(
    links: &[Link],
    checkpoints: &[Checkpoint],
    public_key: &[u8],
) -> Result<usize, CheckpointError> {
    verify_checkpoints_from(links, checkpoints, public_key, None)
}

/// [`verify_checkpoints`] for a pruned chain: the anchor must match a signed checkpoint;
/// checkpoints of pruned records are checked for their signature only.
pub fn verify_checkpoints_from(
    links: &[Link],
    checkpoints: &[Checkpoint],
    public_key: &[u8],
    anchor: Option<&Anchor>,
) -> Result<usize, CheckpointError> {
    if let Some(a) = anchor
        && !checkpoints.iter().any(|c| c.seq == a.seq)
    {
        return Err(CheckpointError::UnsignedAnchor { seq: a.seq });
    }
    let key =
        aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, public_key);
    for c in checkpoints {
        let sig = unhex(&c.signature).unwrap_or_default();
        if key
            .verify(&checkpoint_message(&c.chain, c.seq, &c.hash), &sig)
            .is_err()
        {
            return Err(CheckpointError::BadSignature { seq: c.seq });
        }
        if let Some(a) = anchor
            && c.seq <= a.seq
        {
            if c.seq == a.seq && c.hash != a.hash {
                return Err(CheckpointError::Rewritten { seq: c.seq });
            }
            continue;
        }
        let present = links.last().map_or(0, |l| l.seq);
        match links.iter().find(|l| l.seq == c.seq) {
            None => {
                return Err(CheckpointError::Truncated {
                    seq: c.seq,
                    present,
                });
            }
            Some(l) if l.hash != c.hash => return Err(CheckpointError::Rewritten { seq: c.seq }),
            Some(_) => {}
        }
    }
    Ok(checkpoints.len())
}
