//! Approvals in PostgreSQL, so every replica of a cluster sees the same requests and any
//! can take a decision: the same records and guarantees as the SQLite store (a decision
//! under a row lock, one use per approval by a conditional update).

use postgres::Client;

use crate::StoreError;
use crate::approvals::{
    ApprovalDecision, ApprovalRecord, ApprovalStatus, ApprovalStore, DecideError,
};
use crate::pg_audit::PgAudit;

/// PostgreSQL-backed [`ApprovalStore`] (the tables of the shared Gatehouse schema).
#[derive(Debug)]
pub struct PgApprovals {
    db: PgAudit,
}

impl PgApprovals {
    /// Does not connect: the first call does (from a blocking thread).
    pub fn new(url: &str) -> PgApprovals {
        PgApprovals {
            db: PgAudit::new(url),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        self.db.with(f).map_err(|e| {
            let gatehouse_audit::AuditError::Unavailable(m) = e;
            StoreError::Unavailable(m)
        })
    }
}

fn read(status: &str, body: &str) -> Result<ApprovalRecord, StoreError> {
    let mut rec: ApprovalRecord = serde_json::from_str(body)
        .map_err(|e| StoreError::Unavailable(format!("unreadable approval record: {e}")))?;
    rec.status = ApprovalStatus::parse(status);
    Ok(rec)
}

fn body(rec: &ApprovalRecord) -> Result<String, StoreError> {
    serde_json::to_string(rec).map_err(|e| StoreError::Unavailable(e.to_string()))
}

impl ApprovalStore for PgApprovals {
    fn insert(&self, rec: &ApprovalRecord) -> Result<(), StoreError> {
        let b = body(rec)?;
        let n = self.with(|c| {
            c.execute(
                "INSERT INTO gatehouse_approvals (id, status, principal, tenant, tool, args_digest, created_ms, expires_ms, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
                &[
                    &rec.id,
                    &rec.status.as_str(),
                    &rec.principal,
                    &rec.tenant,
                    &rec.tool,
                    &rec.args_digest,
                    &(rec.created_ms as i64),
                    &(rec.expires_ms as i64),
                    &b,
                ],
            )
        })?;
        if n == 0 {
            return Err(StoreError::Duplicate(rec.id.clone()));
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let row = self.with(|c| {
            c.query_opt(
                "SELECT status, body FROM gatehouse_approvals WHERE id = $1",
                &[&id],
            )
        })?;
        row.map(|r| read(r.get(0), r.get(1))).transpose()
    }

    fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT status, body FROM gatehouse_approvals WHERE ($1::text IS NULL OR status = $1)
                 ORDER BY created_ms DESC, id LIMIT $2",
                &[&status.map(ApprovalStatus::as_str), &(limit as i64)],
            )
        })?;
        rows.iter().map(|r| read(r.get(0), r.get(1))).collect()
    }

    fn live(
        &self,
        principal: &str,
        tenant: &str,
        tool: &str,
        args_digest: &str,
        now_ms: u64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let row = self.with(|c| {
            c.query_opt(
                "SELECT status, body FROM gatehouse_approvals
                 WHERE principal = $1 AND tenant = $2 AND tool = $3 AND args_digest = $4
                   AND status IN ('pending', 'approved', 'denied') AND expires_ms > $5
                 ORDER BY created_ms DESC LIMIT 1",
                &[&principal, &tenant, &tool, &args_digest, &(now_ms as i64)],
            )
        })?;
        row.map(|r| read(r.get(0), r.get(1))).transpose()
    }

    fn pending_of(&self, principal: &str, tenant: &str, now_ms: u64) -> Result<u64, StoreError> {
        let n: i64 = self.with(|c| {
            Ok(c.query_one(
                "SELECT count(*) FROM gatehouse_approvals
                 WHERE principal = $1 AND tenant = $2 AND status = 'pending' AND expires_ms > $3",
                &[&principal, &tenant, &(now_ms as i64)],
            )?
            .get(0))
        })?;
        Ok(n as u64)
    }

    fn decide(
        &self,
        id: &str,
        decision: &ApprovalDecision,
        use_by_ms: u64,
    ) -> Result<ApprovalRecord, DecideError> {
        // The outcome inside the transaction, the store error outside.
        self.with(|c| {
            let mut tx = c.transaction()?;
            let Some(row) = tx.query_opt(
                "SELECT status, body FROM gatehouse_approvals WHERE id = $1 FOR UPDATE",
                &[&id],
            )?
            else {
                return Ok(Err(DecideError::NotFound(id.to_owned())));
            };
            let mut rec = match read(row.get(0), row.get(1)) {
                Ok(r) => r,
                Err(e) => return Ok(Err(DecideError::Store(e))),
            };
            if let Err(e) = rec.apply(decision, use_by_ms) {
                return Ok(Err(e));
            }
            let b = match body(&rec) {
                Ok(b) => b,
                Err(e) => return Ok(Err(DecideError::Store(e))),
            };
            tx.execute(
                "UPDATE gatehouse_approvals SET status = $2, expires_ms = $3, body = $4 WHERE id = $1",
                &[&id, &rec.status.as_str(), &(rec.expires_ms as i64), &b],
            )?;
            tx.commit()?;
            Ok(Ok(rec))
        })?
    }

    fn use_once(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE gatehouse_approvals SET status = 'used'
                 WHERE id = $1 AND status = 'approved' AND expires_ms > $2",
                &[&id, &(now_ms as i64)],
            )
        })?;
        Ok(n == 1)
    }

    fn expire(&self, now_ms: u64) -> Result<Vec<ApprovalRecord>, StoreError> {
        let rows = self.with(|c| {
            c.query(
                "UPDATE gatehouse_approvals SET status = 'expired'
                 WHERE status IN ('pending', 'approved') AND expires_ms <= $1
                 RETURNING body",
                &[&(now_ms as i64)],
            )
        })?;
        rows.iter().map(|r| read("expired", r.get(0))).collect()
    }
}

/// Against the PostgreSQL on this machine, in a database of their own.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::approvals::tests::rec;

    fn fresh_db() -> String {
        crate::pg_audit::tests::fresh_db("approvals")
    }

    fn decision(who: &str, approve: bool, at: u64) -> ApprovalDecision {
        ApprovalDecision {
            approver: who.into(),
            approve,
            reason: String::new(),
            time_ms: at,
        }
    }

    #[test]
    fn replicas_share_requests_decisions_and_the_one_use() {
        let url = fresh_db();
        let (a, b) = (PgApprovals::new(&url), PgApprovals::new(&url));
        a.insert(&rec("apr_1", 2)).unwrap();
        assert!(matches!(
            a.insert(&rec("apr_1", 2)),
            Err(StoreError::Duplicate(_))
        ));
        assert_eq!(b.pending_of("corp/eng", "", 1_500).unwrap(), 1);
        // Decisions from both replicas count, once per approver.
        assert_eq!(
            a.decide("apr_1", &decision("x", true, 2_000), 50_000)
                .unwrap()
                .status,
            ApprovalStatus::Pending
        );
        assert!(matches!(
            b.decide("apr_1", &decision("x", true, 2_100), 50_000),
            Err(DecideError::AlreadyDecided)
        ));
        let approved = b
            .decide("apr_1", &decision("y", true, 2_200), 50_000)
            .unwrap();
        assert_eq!(
            (approved.status, approved.expires_ms),
            (ApprovalStatus::Approved, 50_000)
        );
        assert_eq!(
            a.live("corp/eng", "", "deploy_service", "d1", 3_000)
                .unwrap()
                .map(|r| r.id),
            Some("apr_1".into())
        );
        // One use, whichever replica asks first.
        assert!(b.use_once("apr_1", 3_000).unwrap());
        assert!(!a.use_once("apr_1", 3_000).unwrap());
        assert!(matches!(
            a.decide("apr_1", &decision("z", true, 3_100), 50_000),
            Err(DecideError::Closed("used"))
        ));
        // Denial and expiry.
        a.insert(&rec("apr_2", 1)).unwrap();
        assert_eq!(
            b.decide("apr_2", &decision("x", false, 2_000), 0)
                .unwrap()
                .status,
            ApprovalStatus::Denied
        );
        a.insert(&rec("apr_3", 1)).unwrap();
        let expired = b.expire(10_000).unwrap();
        assert_eq!(
            expired.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["apr_3"]
        );
        assert_eq!(
            a.get("apr_3").unwrap().unwrap().status,
            ApprovalStatus::Expired
        );
        assert_eq!(a.list(Some(ApprovalStatus::Denied), 10).unwrap().len(), 1);
        assert_eq!(a.list(None, 10).unwrap().len(), 3);
        assert!(matches!(
            a.decide("apr_x", &decision("x", true, 1), 1),
            Err(DecideError::NotFound(_))
        ));
    }
}
