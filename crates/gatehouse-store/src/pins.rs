//! Tool and prompt pins: the definition an administrator trusts (by canonical hash), and a
//! changed or flagged definition waiting for review. What is not approved is not exposed.
//! The state machine is [`next`] (what a sighting does) and [`decided`] (what a review
//! does), pure functions both backends share: [`SqlitePins`] here and `PgPins` for a
//! cluster, behind the [`PinStore`] trait.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::rows;
use crate::rows::Columns;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinStatus {
    /// The upstream offers the pinned definition: exposed.
    Approved,
    /// First sight, waiting for review (review mode, or flagged by detection): hidden.
    Pending,
    /// The definition changed after it was pinned: hidden until reviewed.
    Quarantined,
    /// An administrator refused the proposed definition: hidden while it is offered.
    Rejected,
}

impl PinStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PinStatus::Approved => "approved",
            PinStatus::Pending => "pending",
            PinStatus::Quarantined => "quarantined",
            PinStatus::Rejected => "rejected",
        }
    }

    pub(crate) fn parse(s: &str) -> PinStatus {
        match s {
            "approved" => PinStatus::Approved,
            "pending" => PinStatus::Pending,
            "rejected" => PinStatus::Rejected,
            // Anything unreadable hides the tool.
            _ => PinStatus::Quarantined,
        }
    }
}

/// One pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRecord {
    pub upstream: String,
    /// `tool` or `prompt`.
    pub kind: String,
    /// The name on the upstream.
    pub name: String,
    pub status: PinStatus,
    /// The trusted definition's hash and JSON; empty before any approval.
    pub hash: String,
    pub definition: String,
    /// The definition waiting for review, when it differs from the trusted one.
    pub proposed_hash: String,
    pub proposed: String,
    /// Why it waits (`changed`, `first_sight`, detection findings), JSON.
    pub findings: String,
    pub first_seen_ms: u64,
    pub updated_ms: u64,
    pub decided_by: String,
    pub reason: String,
}

/// What observing a definition did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Offered as pinned: expose it.
    Trusted,
    /// Pinned just now on first sight: expose it.
    Pinned,
    /// Newly hidden (first sight under review, a change, or a flagged definition).
    Held(PinStatus),
    /// Was already hidden and still is.
    StillHeld(PinStatus),
    /// The upstream went back to the pinned definition: exposed again.
    Restored,
}

impl Observed {
    pub fn exposed(self) -> bool {
        matches!(
            self,
            Observed::Trusted | Observed::Pinned | Observed::Restored
        )
    }
}

/// What an observation is about.
#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    pub upstream: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub hash: &'a str,
    pub definition: &'a str,
    /// Trust it outright on first sight (when nothing flagged it).
    pub trust_first_sight: bool,
    /// Detection findings (JSON) that hold it for review whatever the mode; empty if none.
    pub flagged: &'a str,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pins (
    upstream TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    hash TEXT NOT NULL,
    definition TEXT NOT NULL,
    proposed_hash TEXT NOT NULL,
    proposed TEXT NOT NULL,
    findings TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    decided_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (upstream, kind, name)
);
";

/// Where pins are kept. Every replica of a cluster must see the same pins (otherwise a
/// rug pull approved on one host is still hidden on another, or one quarantined on one is
/// exposed on the next), so a cluster uses the PostgreSQL store.
pub trait PinStore: Send + Sync + std::fmt::Debug {
    fn get(&self, upstream: &str, kind: &str, name: &str) -> Result<Option<PinRecord>, StoreError>;

    /// Every pin, or those with `status`, ordered by upstream, kind and name.
    fn list(&self, status: Option<PinStatus>) -> Result<Vec<PinRecord>, StoreError>;

    /// Records that an upstream offers each sighting and says whether to expose it, in one
    /// transaction (one disk sync), serialised with every other observation and decision.
    fn observe_all(&self, all: &[Sighting<'_>], now_ms: u64) -> Result<Vec<Observed>, StoreError>;

    /// An administrator's decision on what waits for review. `expect_hash`, when given,
    /// must be the proposed definition's hash (what the administrator saw).
    fn decide(
        &self,
        upstream: &str,
        kind: &str,
        name: &str,
        d: &PinDecision<'_>,
        now_ms: u64,
    ) -> Result<PinRecord, PinDecideError>;

    /// [`PinStore::observe_all`] for one sighting.
    fn observe(&self, s: &Sighting<'_>, now_ms: u64) -> Result<Observed, StoreError> {
        self.observe_all(std::slice::from_ref(s), now_ms).map(|v| {
            v.into_iter()
                .next()
                .unwrap_or(Observed::Held(PinStatus::Quarantined))
        })
    }
}

/// Pins in the gateway's SQLite store.
pub struct SqlitePins {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqlitePins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqlitePins")
    }
}

const COLUMNS: &str = "upstream, kind, name, status, hash, definition, proposed_hash, proposed, findings, first_seen_ms, updated_ms, decided_by, reason";

/// An administrator's decision.
#[derive(Debug, Clone, Copy)]
pub struct PinDecision<'a> {
    pub approve: bool,
    /// The proposed hash the administrator reviewed; refused if it changed since.
    pub expect_hash: Option<&'a str>,
    pub by: &'a str,
    pub reason: &'a str,
}

/// Why a decision could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PinDecideError {
    #[error("no such pin")]
    NotFound,
    #[error("nothing waits for review")]
    NothingToReview,
    #[error("the definition changed since it was shown (now {0}); review it again")]
    Stale(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SqlitePins {
    pub fn open(path: &Path) -> Result<SqlitePins, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqlitePins {
            conn: Mutex::new(conn),
        })
    }

    /// An in-memory store (tests, or a gateway whose store file cannot be opened: nothing
    /// survives a restart, but changes are still caught while it runs).
    pub fn memory() -> Result<SqlitePins, StoreError> {
        let conn = Connection::open_in_memory()?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqlitePins {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn get_in(
    conn: &Connection,
    upstream: &str,
    kind: &str,
    name: &str,
) -> rusqlite::Result<Option<PinRecord>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM pins WHERE upstream = ?1 AND kind = ?2 AND name = ?3"),
        params![upstream, kind, name],
        |r| pin_row(r),
    )
    .optional()
}

fn put_in(conn: &Connection, p: &PinRecord) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO pins (upstream, kind, name, status, hash, definition, proposed_hash, proposed, findings, first_seen_ms, updated_ms, decided_by, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (upstream, kind, name) DO UPDATE SET status = ?4, hash = ?5, definition = ?6,
           proposed_hash = ?7, proposed = ?8, findings = ?9, first_seen_ms = ?10, updated_ms = ?11,
           decided_by = ?12, reason = ?13",
        params![
            p.upstream,
            p.kind,
            p.name,
            p.status.as_str(),
            p.hash,
            p.definition,
            p.proposed_hash,
            p.proposed,
            p.findings,
            p.first_seen_ms as i64,
            p.updated_ms as i64,
            p.decided_by,
            p.reason
        ],
    )
}

impl PinStore for SqlitePins {
    fn get(&self, upstream: &str, kind: &str, name: &str) -> Result<Option<PinRecord>, StoreError> {
        Ok(get_in(&self.conn(), upstream, kind, name)?)
    }

    fn list(&self, status: Option<PinStatus>) -> Result<Vec<PinRecord>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM pins WHERE ?1 IS NULL OR status = ?1 ORDER BY upstream, kind, name"
        ))?;
        let rows = st.query_map(params![status.map(PinStatus::as_str)], |r| pin_row(r))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn observe_all(&self, all: &[Sighting<'_>], now_ms: u64) -> Result<Vec<Observed>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = observe_each(
            all,
            now_ms,
            |s| get_in(&tx, s.upstream, s.kind, s.name),
            |p| put_in(&tx, p).map(drop),
        )?;
        tx.commit()?;
        Ok(out)
    }

    fn decide(
        &self,
        upstream: &str,
        kind: &str,
        name: &str,
        d: &PinDecision<'_>,
        now_ms: u64,
    ) -> Result<PinRecord, PinDecideError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let p = get_in(&tx, upstream, kind, name)
            .map_err(StoreError::from)?
            .ok_or(PinDecideError::NotFound)?;
        let out = decided(p, d, now_ms)?;
        put_in(&tx, &out).map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }
}

/// Observes each sighting in turn: reads the pin (`get`), runs [`next`], writes what it
/// says (`put`). Each backend supplies its reads and writes inside its own transaction.
pub(crate) fn observe_each<E>(
    all: &[Sighting<'_>],
    now_ms: u64,
    mut get: impl FnMut(&Sighting<'_>) -> Result<Option<PinRecord>, E>,
    mut put: impl FnMut(&PinRecord) -> Result<(), E>,
) -> Result<Vec<Observed>, E> {
    let mut out = Vec::with_capacity(all.len());
    for s in all {
        let current = get(s)?;
        let (observed, write) = next(current.as_ref(), s, now_ms);
        if let Some(p) = write {
            put(&p)?;
        }
        out.push(observed);
    }
    Ok(out)
}

/// What a review does to `p`: approve (the proposed definition becomes the trusted one) or
/// reject (held while it is offered). Refused when nothing waits or the administrator saw
/// another definition than the one waiting now.
pub(crate) fn decided(
    mut p: PinRecord,
    d: &PinDecision<'_>,
    now_ms: u64,
) -> Result<PinRecord, PinDecideError> {
    if p.proposed_hash.is_empty() {
        return Err(PinDecideError::NothingToReview);
    }
    if let Some(h) = d.expect_hash
        && h != p.proposed_hash
    {
        return Err(PinDecideError::Stale(p.proposed_hash));
    }
    if d.approve {
        p.status = PinStatus::Approved;
        p.hash = std::mem::take(&mut p.proposed_hash);
        p.definition = std::mem::take(&mut p.proposed);
        p.findings.clear();
    } else {
        p.status = PinStatus::Rejected;
    }
    p.updated_ms = now_ms;
    p.decided_by = d.by.to_owned();
    p.reason = d.reason.to_owned();
    Ok(p)
}

/// What a sighting does, given the pin as it is: whether to expose the definition, and the
/// record to write (none when nothing changes).
pub(crate) fn next(
    current: Option<&PinRecord>,
    s: &Sighting<'_>,
    now_ms: u64,
) -> (Observed, Option<PinRecord>) {
    // The record as written: decisions (who, why) kept from the current one.
    let put = |status: PinStatus,
               hash: &str,
               def: &str,
               proposed_hash: &str,
               proposed: &str,
               findings: &str,
               first_seen: u64| PinRecord {
        upstream: s.upstream.to_owned(),
        kind: s.kind.to_owned(),
        name: s.name.to_owned(),
        status,
        hash: hash.to_owned(),
        definition: def.to_owned(),
        proposed_hash: proposed_hash.to_owned(),
        proposed: proposed.to_owned(),
        findings: findings.to_owned(),
        first_seen_ms: first_seen,
        updated_ms: now_ms,
        decided_by: current.map(|p| p.decided_by.clone()).unwrap_or_default(),
        reason: current.map(|p| p.reason.clone()).unwrap_or_default(),
    };
    match current {
        None if s.trust_first_sight && s.flagged.is_empty() => (
            Observed::Pinned,
            Some(put(
                PinStatus::Approved,
                s.hash,
                s.definition,
                "",
                "",
                "",
                now_ms,
            )),
        ),
        None => {
            let why = if s.flagged.is_empty() {
                r#"{"reason":"first_sight"}"#
            } else {
                s.flagged
            };
            (
                Observed::Held(PinStatus::Pending),
                Some(put(
                    PinStatus::Pending,
                    "",
                    "",
                    s.hash,
                    s.definition,
                    why,
                    now_ms,
                )),
            )
        }
        Some(p) if p.hash == s.hash => {
            if p.status == PinStatus::Approved {
                if !s.flagged.is_empty() && p.decided_by.is_empty() {
                    // Trusted on first sight, never reviewed, and detection now holds it
                    // (stricter settings, new rules): reviewed like a first sighting.
                    // What an administrator approved stays approved.
                    (
                        Observed::Held(PinStatus::Pending),
                        Some(put(
                            PinStatus::Pending,
                            &p.hash,
                            &p.definition,
                            s.hash,
                            s.definition,
                            s.flagged,
                            p.first_seen_ms,
                        )),
                    )
                } else {
                    (Observed::Trusted, None)
                }
            } else if p.proposed_hash == s.hash {
                // Held as it is (flagged, or rejected): still held.
                (Observed::StillHeld(p.status), None)
            } else {
                // Back to the trusted definition: whatever was proposed is moot.
                (
                    Observed::Restored,
                    Some(put(
                        PinStatus::Approved,
                        &p.hash,
                        &p.definition,
                        "",
                        "",
                        "",
                        p.first_seen_ms,
                    )),
                )
            }
        }
        Some(p) if p.proposed_hash == s.hash && p.status != PinStatus::Approved => {
            (Observed::StillHeld(p.status), None)
        }
        Some(p) => {
            // A definition nobody approved: hidden until reviewed.
            let status = if p.hash.is_empty() {
                PinStatus::Pending
            } else {
                PinStatus::Quarantined
            };
            let why = if !s.flagged.is_empty() {
                s.flagged.to_owned()
            } else if p.hash.is_empty() {
                r#"{"reason":"first_sight"}"#.to_owned()
            } else {
                r#"{"reason":"changed"}"#.to_owned()
            };
            (
                Observed::Held(status),
                Some(put(
                    status,
                    &p.hash,
                    &p.definition,
                    s.hash,
                    s.definition,
                    &why,
                    p.first_seen_ms,
                )),
            )
        }
    }
}

/// `upstream, kind, name, status, hash, definition, proposed_hash, proposed, findings,
/// first_seen_ms, updated_ms, decided_by, reason`.
pub(crate) fn pin_row<R: Columns>(r: &R) -> Result<PinRecord, R::Error> {
    Ok(PinRecord {
        upstream: r.text(0)?,
        kind: r.text(1)?,
        name: r.text(2)?,
        status: PinStatus::parse(&r.text(3)?),
        hash: r.text(4)?,
        definition: r.text(5)?,
        proposed_hash: r.text(6)?,
        proposed: r.text(7)?,
        findings: r.text(8)?,
        first_seen_ms: rows::uint(r.int(9)?),
        updated_ms: rows::uint(r.int(10)?),
        decided_by: r.text(11)?,
        reason: r.text(12)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn see<'a>(hash: &'a str, def: &'a str, trust: bool, flagged: &'a str) -> Sighting<'a> {
        Sighting {
            upstream: "u",
            kind: "tool",
            name: "t",
            hash,
            definition: def,
            trust_first_sight: trust,
            flagged,
        }
    }

    fn dec(approve: bool, expect_hash: Option<&str>) -> PinDecision<'_> {
        PinDecision {
            approve,
            expect_hash,
            by: "admin",
            reason: "reviewed",
        }
    }

    type Make<'a> = &'a dyn Fn() -> Box<dyn PinStore>;

    fn sqlite() -> Box<dyn PinStore> {
        Box::new(SqlitePins::memory().unwrap_or_else(|e| panic!("{e}")))
    }

    #[cfg(feature = "postgres")]
    fn postgres() -> Box<dyn PinStore> {
        Box::new(crate::PgPins::new(&crate::pg_audit::tests::fresh_db(
            "pins",
        )))
    }

    // Each scenario runs on both backends: the state machine is shared, the storage is not.
    #[test]
    fn a_change_is_quarantined_until_reviewed_and_a_revert_restores() {
        change_quarantined(&sqlite);
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn a_change_is_quarantined_until_reviewed_and_a_revert_restores_in_postgres() {
        change_quarantined(&postgres);
    }

    #[test]
    fn a_pin_nobody_reviewed_is_held_when_detection_flags_it_later() {
        flagged_later(&sqlite);
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn a_pin_nobody_reviewed_is_held_when_detection_flags_it_later_in_postgres() {
        flagged_later(&postgres);
    }

    #[test]
    fn review_mode_and_flagged_definitions_wait_on_first_sight() {
        first_sight(&sqlite);
    }

    #[test]
    #[cfg(feature = "postgres")]
    fn review_mode_and_flagged_definitions_wait_on_first_sight_in_postgres() {
        first_sight(&postgres);
    }

    fn change_quarantined(mk: Make<'_>) {
        let s = mk();
        let ok = |r: Result<Observed, StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok(s.observe(&see("h1", "{1}", true, ""), 1)),
            Observed::Pinned
        );
        assert_eq!(
            ok(s.observe(&see("h1", "{1}", true, ""), 2)),
            Observed::Trusted
        );
        // Rug pull: hidden, and stays hidden on every later listing.
        assert_eq!(
            ok(s.observe(&see("h2", "{2}", true, ""), 3)),
            Observed::Held(PinStatus::Quarantined)
        );
        assert_eq!(
            ok(s.observe(&see("h2", "{2}", true, ""), 4)),
            Observed::StillHeld(PinStatus::Quarantined)
        );
        let p = s
            .get("u", "tool", "t")
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("pin"));
        assert_eq!((p.hash.as_str(), p.proposed_hash.as_str()), ("h1", "h2"));
        // The administrator saw h2; the upstream changes again to h3: the approval of h2
        // is refused as stale.
        assert_eq!(
            ok(s.observe(&see("h3", "{3}", true, ""), 5)),
            Observed::Held(PinStatus::Quarantined)
        );
        assert!(matches!(
            s.decide("u", "tool", "t", &dec(true, Some("h2")), 6),
            Err(PinDecideError::Stale(h)) if h == "h3"
        ));
        let p = s
            .decide("u", "tool", "t", &dec(true, Some("h3")), 7)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.status, p.hash.as_str()), (PinStatus::Approved, "h3"));
        assert_eq!(
            ok(s.observe(&see("h3", "{3}", true, ""), 8)),
            Observed::Trusted
        );
        // Rejected: stays hidden while offered; going back to the pinned one restores.
        ok(s.observe(&see("h4", "{4}", true, ""), 9));
        let p = s
            .decide("u", "tool", "t", &dec(false, None), 10)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.status, PinStatus::Rejected);
        assert_eq!(
            ok(s.observe(&see("h4", "{4}", true, ""), 11)),
            Observed::StillHeld(PinStatus::Rejected)
        );
        assert_eq!(
            ok(s.observe(&see("h3", "{3}", true, ""), 12)),
            Observed::Restored
        );
        assert!(matches!(
            s.decide("u", "tool", "t", &dec(true, None), 13),
            Err(PinDecideError::NothingToReview)
        ));
    }

    fn flagged_later(mk: Make<'_>) {
        let s = mk();
        let ok = |r: Result<Observed, StoreError>| r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok(s.observe(&see("h1", "{1}", true, ""), 1)),
            Observed::Pinned
        );
        let flag = "[\"tool.shadowing\"]";
        assert_eq!(
            ok(s.observe(&see("h1", "{1}", true, flag), 2)),
            Observed::Held(PinStatus::Pending)
        );
        assert_eq!(
            ok(s.observe(&see("h1", "{1}", true, flag), 3)),
            Observed::StillHeld(PinStatus::Pending)
        );
        // Rejected stays rejected while offered.
        let p = s
            .decide("u", "tool", "t", &dec(false, Some("h1")), 4)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.status, PinStatus::Rejected);
        assert_eq!(
            ok(s.observe(&see("h1", "{1}", true, flag), 5)),
            Observed::StillHeld(PinStatus::Rejected)
        );
        // Once an administrator approves it, it stays trusted however it is flagged.
        drop(s);
        let s = mk();
        assert_eq!(
            ok(s.observe(&see("h1", "{1}", true, flag), 1)),
            Observed::Held(PinStatus::Pending)
        );
        s.decide("u", "tool", "t", &dec(true, Some("h1")), 2)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            ok(s.observe(&see("h1", "{1}", true, flag), 3)),
            Observed::Trusted
        );
    }

    fn first_sight(mk: Make<'_>) {
        let s = mk();
        assert_eq!(
            s.observe(&see("h1", "{1}", false, ""), 1).ok(),
            Some(Observed::Held(PinStatus::Pending))
        );
        drop(s);
        let flagged = mk();
        assert_eq!(
            flagged
                .observe(&see("h1", "{1}", true, "[\"hidden.marker_tags\"]"), 1)
                .ok(),
            Some(Observed::Held(PinStatus::Pending))
        );
        let p = flagged.list(Some(PinStatus::Pending)).unwrap_or_default();
        assert_eq!(p.len(), 1);
        assert!(p[0].findings.contains("marker_tags"));
        assert!(matches!(
            flagged.decide("u", "tool", "nope", &dec(true, None), 2),
            Err(PinDecideError::NotFound)
        ));
    }
}
