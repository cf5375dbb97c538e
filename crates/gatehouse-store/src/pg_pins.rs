//! Pins in PostgreSQL, so every replica of a cluster hides and exposes the same tools: the
//! same records and state machine as the SQLite store ([`crate::pins::next`] and
//! [`crate::pins::decided`]); each observation or decision is one transaction under an
//! advisory lock, so two replicas listing the same upstream at once never race.

use postgres::GenericClient;

use crate::StoreError;
use crate::pg_audit::PgAudit;
use crate::pins::{
    Observed, PinDecideError, PinDecision, PinRecord, PinStatus, PinStore, Sighting, decided,
    observe_each,
};

/// The advisory lock every pin transaction holds.
const PINS_LOCK: i64 = 727_247_007;

const COLUMNS: &str = "upstream, kind, name, status, hash, definition, proposed_hash, proposed, findings, first_seen_ms, updated_ms, decided_by, reason";

/// PostgreSQL-backed [`PinStore`] (a table of the shared Gatehouse schema).
#[derive(Debug)]
pub struct PgPins {
    db: PgAudit,
}

impl PgPins {
    /// Does not connect: the first call does (from a blocking thread).
    pub fn new(url: &str) -> PgPins {
        PgPins {
            db: PgAudit::new(url),
        }
    }

    /// Runs `f` on a thread of its own: the synchronous client must never run on an async
    /// worker, and pins are checked from one (at every list).
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, StoreError> {
        self.db.on_own_thread("pin store", f)
    }
}

fn get_in(
    c: &mut impl GenericClient,
    upstream: &str,
    kind: &str,
    name: &str,
) -> Result<Option<PinRecord>, postgres::Error> {
    c.query_opt(
        &format!(
            "SELECT {COLUMNS} FROM gatehouse_pins WHERE upstream = $1 AND kind = $2 AND name = $3"
        ),
        &[&upstream, &kind, &name],
    )?
    .as_ref()
    .map(crate::pins::pin_row)
    .transpose()
}

fn put_in(c: &mut impl GenericClient, p: &PinRecord) -> Result<u64, postgres::Error> {
    c.execute(
        "INSERT INTO gatehouse_pins (upstream, kind, name, status, hash, definition, proposed_hash, proposed, findings, first_seen_ms, updated_ms, decided_by, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (upstream, kind, name) DO UPDATE SET status = $4, hash = $5, definition = $6,
           proposed_hash = $7, proposed = $8, findings = $9, first_seen_ms = $10, updated_ms = $11,
           decided_by = $12, reason = $13",
        &[
            &p.upstream,
            &p.kind,
            &p.name,
            &p.status.as_str(),
            &p.hash,
            &p.definition,
            &p.proposed_hash,
            &p.proposed,
            &p.findings,
            &(p.first_seen_ms as i64),
            &(p.updated_ms as i64),
            &p.decided_by,
            &p.reason,
        ],
    )
}

impl PinStore for PgPins {
    fn get(&self, upstream: &str, kind: &str, name: &str) -> Result<Option<PinRecord>, StoreError> {
        self.with(|c| get_in(c, upstream, kind, name))
    }

    fn list(&self, status: Option<PinStatus>) -> Result<Vec<PinRecord>, StoreError> {
        self.with(|c| {
            c.query(
                &format!(
                    "SELECT {COLUMNS} FROM gatehouse_pins WHERE ($1::text IS NULL OR status = $1)
                     ORDER BY upstream, kind, name"
                ),
                &[&status.map(PinStatus::as_str)],
            )?
            .iter()
            .map(crate::pins::pin_row)
            .collect()
        })
    }

    fn observe_all(&self, all: &[Sighting<'_>], now_ms: u64) -> Result<Vec<Observed>, StoreError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PINS_LOCK])?;
            let tx = std::cell::RefCell::new(tx);
            let out = observe_each(
                all,
                now_ms,
                |s| get_in(&mut *tx.borrow_mut(), s.upstream, s.kind, s.name),
                |p| put_in(&mut *tx.borrow_mut(), p).map(drop),
            )?;
            tx.into_inner().commit()?;
            Ok(out)
        })
    }

    fn decide(
        &self,
        upstream: &str,
        kind: &str,
        name: &str,
        d: &PinDecision<'_>,
        now_ms: u64,
    ) -> Result<PinRecord, PinDecideError> {
        let outcome = self.with(|c| {
            let mut tx = c.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PINS_LOCK])?;
            let Some(p) = get_in(&mut tx, upstream, kind, name)? else {
                return Ok(Err(PinDecideError::NotFound));
            };
            let out = match decided(p, d, now_ms) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            put_in(&mut tx, &out)?;
            tx.commit()?;
            Ok(Ok(out))
        });
        outcome?
    }
}
