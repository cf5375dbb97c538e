//! Human approvals of held tool calls: pending requests, each approver's decision, and the
//! one use an approved call gets. Bound to the exact call by its argument digest.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for decisions.
    Pending,
    /// Enough approvals: the call may run once, before `expires_ms`.
    Approved,
    /// An approver refused it.
    Denied,
    /// Nobody decided in time, or an approved call was not used in time.
    Expired,
    /// The approved call ran.
    Used,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
            ApprovalStatus::Expired => "expired",
            ApprovalStatus::Used => "used",
        }
    }

    pub(crate) fn parse(s: &str) -> ApprovalStatus {
        match s {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "denied" => ApprovalStatus::Denied,
            "used" => ApprovalStatus::Used,
            // Anything unreadable counts as over: it can never let a call through.
            _ => ApprovalStatus::Expired,
        }
    }
}

/// One approver's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub approver: String,
    pub approve: bool,
    pub reason: String,
    pub time_ms: u64,
}

/// A held call and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// The reference clients, approvers and the audit use (`apr_…`).
    pub id: String,
    pub status: ApprovalStatus,
    pub principal: String,
    pub tenant: String,
    pub upstream: String,
    /// The tool's exposed name.
    pub tool: String,
    /// SHA-256 of the canonical arguments: the approval is valid for these only.
    pub args_digest: String,
    /// The arguments as approvers see them, secrets redacted (JSON).
    pub arguments: serde_json::Value,
    pub classification: String,
    /// Why the call needs approval (`policy:ID`, `tool_config`, `default_rule`…).
    pub reason: String,
    /// Roles any of which an approver must hold.
    pub approvers: Vec<String>,
    /// Approvals needed (N of the approver group).
    pub required: u32,
    pub created_ms: u64,
    /// Pending: decide by then. Approved: use by then.
    pub expires_ms: u64,
    /// The audit correlation id of the call that asked.
    pub correlation: String,
    pub client: String,
    pub decisions: Vec<ApprovalDecision>,
}

impl ApprovalRecord {
    pub fn approvals(&self) -> usize {
        self.decisions.iter().filter(|d| d.approve).count()
    }

    /// One approver's decision on this request, as every store records it: only while
    /// pending and unexpired, once per approver; a refusal denies, the `required`-th
    /// approval approves (usable until `use_by_ms`).
    pub(crate) fn apply(
        &mut self,
        decision: &ApprovalDecision,
        use_by_ms: u64,
    ) -> Result<(), DecideError> {
        if self.status == ApprovalStatus::Pending && self.expires_ms <= decision.time_ms {
            self.status = ApprovalStatus::Expired;
        }
        if self.status != ApprovalStatus::Pending {
            return Err(DecideError::Closed(self.status.as_str()));
        }
        if self
            .decisions
            .iter()
            .any(|d| d.approver == decision.approver)
        {
            return Err(DecideError::AlreadyDecided);
        }
        self.decisions.push(decision.clone());
        if !decision.approve {
            self.status = ApprovalStatus::Denied;
        } else if self.approvals() >= self.required.max(1) as usize {
            self.status = ApprovalStatus::Approved;
            self.expires_ms = use_by_ms;
        }
        Ok(())
    }
}

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no approval request {0}")]
    NotFound(String),
    #[error("the request is already {0}")]
    Closed(&'static str),
    #[error("this approver has already decided")]
    AlreadyDecided,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Approval storage.
///
/// Guarantees: every write is committed when it returns; decisions and uses are atomic
/// (two approvers deciding at once both count, an approved call runs at most once even
/// when several processes share the store); a record survives a restart.
pub trait ApprovalStore: Send + Sync {
    fn insert(&self, rec: &ApprovalRecord) -> Result<(), StoreError>;
    fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError>;
    /// Newest first; only `status` when given; at most `limit`.
    fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, StoreError>;
    /// The live record for this exact call (same principal, tenant, tool and argument
    /// digest) that is pending, approved or denied and not past its expiry: a retry joins
    /// it instead of asking again.
    fn live(
        &self,
        principal: &str,
        tenant: &str,
        tool: &str,
        args_digest: &str,
        now_ms: u64,
    ) -> Result<Option<ApprovalRecord>, StoreError>;
    /// How many unexpired requests this principal has pending (a bound on how many people
    /// one caller can keep busy).
    fn pending_of(&self, principal: &str, tenant: &str, now_ms: u64) -> Result<u64, StoreError>;
    /// Records a decision on a pending, unexpired request. A refusal denies it; the
    /// `required`-th approval approves it, valid until `use_by_ms`.
    fn decide(
        &self,
        id: &str,
        decision: &ApprovalDecision,
        use_by_ms: u64,
    ) -> Result<ApprovalRecord, DecideError>;
    /// Marks an approved, unexpired call used; false if it was not (someone used it first,
    /// or it expired): the call must not run.
    fn use_once(&self, id: &str, now_ms: u64) -> Result<bool, StoreError>;
    /// Expires pending and approved requests past their time; returns those it expired.
    fn expire(&self, now_ms: u64) -> Result<Vec<ApprovalRecord>, StoreError>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    principal TEXT NOT NULL,
    tenant TEXT NOT NULL,
    tool TEXT NOT NULL,
    args_digest TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_call ON approvals (principal, tenant, tool, args_digest);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, created_ms);
";

/// SQLite, in the gateway's store file.
pub struct SqliteApprovals {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteApprovals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteApprovals")
    }
}

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Unavailable(format!("unreadable approval record: {e}"))
}

fn read(status: &str, body: &str) -> Result<ApprovalRecord, StoreError> {
    let mut rec: ApprovalRecord = serde_json::from_str(body).map_err(corrupt)?;
    // The status column is the truth (uses and expiries update only it).
    rec.status = ApprovalStatus::parse(status);
    Ok(rec)
}

impl SqliteApprovals {
    pub fn open(path: &Path) -> Result<SqliteApprovals, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(SqliteApprovals {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ApprovalStore for SqliteApprovals {
    fn insert(&self, rec: &ApprovalRecord) -> Result<(), StoreError> {
        let body = serde_json::to_string(rec).map_err(corrupt)?;
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO approvals (id, status, principal, tenant, tool, args_digest, created_ms, expires_ms, body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                rec.id,
                rec.status.as_str(),
                rec.principal,
                rec.tenant,
                rec.tool,
                rec.args_digest,
                rec.created_ms as i64,
                rec.expires_ms as i64,
                body
            ],
        )?;
        if n == 0 {
            return Err(StoreError::Duplicate(rec.id.clone()));
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<ApprovalRecord>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT status, body FROM approvals WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(s, b)| read(&s, &b)).transpose()
    }

    fn list(
        &self,
        status: Option<ApprovalStatus>,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT status, body FROM approvals WHERE (?1 IS NULL OR status = ?1)
             ORDER BY created_ms DESC, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![status.map(ApprovalStatus::as_str), limit as i64],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            let (s, b) = row?;
            out.push(read(&s, &b)?);
        }
        Ok(out)
    }

    fn live(
        &self,
        principal: &str,
        tenant: &str,
        tool: &str,
        args_digest: &str,
        now_ms: u64,
    ) -> Result<Option<ApprovalRecord>, StoreError> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT status, body FROM approvals
                 WHERE principal = ?1 AND tenant = ?2 AND tool = ?3 AND args_digest = ?4
                   AND status IN ('pending', 'approved', 'denied') AND expires_ms > ?5
                 ORDER BY created_ms DESC LIMIT 1",
                params![principal, tenant, tool, args_digest, now_ms as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(s, b)| read(&s, &b)).transpose()
    }

    fn pending_of(&self, principal: &str, tenant: &str, now_ms: u64) -> Result<u64, StoreError> {
        let n: i64 = self.conn().query_row(
            "SELECT count(*) FROM approvals
             WHERE principal = ?1 AND tenant = ?2 AND status = 'pending' AND expires_ms > ?3",
            params![principal, tenant, now_ms as i64],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn decide(
        &self,
        id: &str,
        decision: &ApprovalDecision,
        use_by_ms: u64,
    ) -> Result<ApprovalRecord, DecideError> {
        let mut conn = self.conn();
        // IMMEDIATE: the read and the write are one step even across processes.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let row: Option<(String, String)> = tx
            .query_row(
                "SELECT status, body FROM approvals WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::from)?;
        let Some((status, body)) = row else {
            return Err(DecideError::NotFound(id.to_owned()));
        };
        let mut rec = read(&status, &body)?;
        rec.apply(decision, use_by_ms)?;
        let body = serde_json::to_string(&rec).map_err(corrupt)?;
        tx.execute(
            "UPDATE approvals SET status = ?2, expires_ms = ?3, body = ?4 WHERE id = ?1",
            params![id, rec.status.as_str(), rec.expires_ms as i64, body],
        )
        .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(rec)
    }

    fn use_once(&self, id: &str, now_ms: u64) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "UPDATE approvals SET status = 'used'
             WHERE id = ?1 AND status = 'approved' AND expires_ms > ?2",
            params![id, now_ms as i64],
        )?;
        Ok(n == 1)
    }

    fn expire(&self, now_ms: u64) -> Result<Vec<ApprovalRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::new();
        {
            let mut stmt = tx.prepare(
                "SELECT status, body FROM approvals
                 WHERE status IN ('pending', 'approved') AND expires_ms <= ?1",
            )?;
            let rows = stmt.query_map(params![now_ms as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?;
            for row in rows {
                let (s, b) = row?;
                out.push(read(&s, &b)?);
            }
        }
        tx.execute(
            "UPDATE approvals SET status = 'expired'
             WHERE status IN ('pending', 'approved') AND expires_ms <= ?1",
            params![now_ms as i64],
        )?;
        tx.commit()?;
        for r in &mut out {
            r.status = ApprovalStatus::Expired;
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    fn store() -> (SqliteApprovals, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "gatehouse-approvals-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        (SqliteApprovals::open(&path).unwrap(), path)
    }

    /// A pending request for tests of any store.
    pub(crate) fn rec(id: &str, required: u32) -> ApprovalRecord {
        ApprovalRecord {
            id: id.into(),
            status: ApprovalStatus::Pending,
            principal: "corp/eng".into(),
            tenant: String::new(),
            upstream: "ops".into(),
            tool: "deploy_service".into(),
            args_digest: "d1".into(),
            arguments: serde_json::json!({"service": "api"}),
            classification: "confidential".into(),
            reason: "default_rule".into(),
            approvers: vec!["approver".into()],
            required,
            created_ms: 1_000,
            expires_ms: 10_000,
            correlation: "c-1".into(),
            client: "cli".into(),
            decisions: vec![],
        }
    }

    fn yes(who: &str, at: u64) -> ApprovalDecision {
        ApprovalDecision {
            approver: who.into(),
            approve: true,
            reason: String::new(),
            time_ms: at,
        }
    }

    #[test]
    fn n_of_m_then_one_use_only() {
        let (s, _) = store();
        s.insert(&rec("apr_1", 2)).unwrap();
        assert!(matches!(
            s.insert(&rec("apr_1", 2)),
            Err(StoreError::Duplicate(_))
        ));
        assert_eq!(s.pending_of("corp/eng", "", 1_500).unwrap(), 1);
        assert_eq!(s.pending_of("corp/eng", "other", 1_500).unwrap(), 0);
        assert_eq!(
            s.pending_of("corp/eng", "", 10_000).unwrap(),
            0,
            "expired ones do not count"
        );
        let r = s.decide("apr_1", &yes("a", 2_000), 50_000).unwrap();
        assert_eq!(r.status, ApprovalStatus::Pending);
        // The same approver twice does not make two approvals.
        assert!(matches!(
            s.decide("apr_1", &yes("a", 2_100), 50_000),
            Err(DecideError::AlreadyDecided)
        ));
        assert!(
            !s.use_once("apr_1", 2_200).unwrap(),
            "pending is not usable"
        );
        let r = s.decide("apr_1", &yes("b", 2_300), 50_000).unwrap();
        assert_eq!(r.status, ApprovalStatus::Approved);
        assert_eq!(r.expires_ms, 50_000);
        // A second store on the same file (another process) sees it and races for the use.
        let other = SqliteApprovals::open(&std::env::temp_dir().join(format!(
            "gatehouse-approvals-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        )))
        .unwrap();
        assert_eq!(
            other
                .live("corp/eng", "", "deploy_service", "d1", 3_000)
                .unwrap()
                .map(|r| r.id),
            Some("apr_1".into())
        );
        assert!(other.use_once("apr_1", 3_000).unwrap());
        assert!(!s.use_once("apr_1", 3_000).unwrap(), "used once only");
        assert!(
            s.live("corp/eng", "", "deploy_service", "d1", 3_000)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            s.decide("apr_1", &yes("c", 3_100), 50_000),
            Err(DecideError::Closed("used"))
        ));
    }

    #[test]
    fn a_refusal_closes_it_and_time_expires_it() {
        let (s, _) = store();
        s.insert(&rec("apr_d", 2)).unwrap();
        let no = ApprovalDecision {
            approver: "a".into(),
            approve: false,
            reason: "not now".into(),
            time_ms: 2_000,
        };
        assert_eq!(
            s.decide("apr_d", &no, 0).unwrap().status,
            ApprovalStatus::Denied
        );
        assert!(matches!(
            s.decide("apr_d", &yes("b", 2_100), 50_000),
            Err(DecideError::Closed("denied"))
        ));
        // Another digest is another call.
        assert!(
            s.live("corp/eng", "", "deploy_service", "d2", 2_000)
                .unwrap()
                .is_none()
        );

        s.insert(&rec("apr_e", 1)).unwrap();
        assert!(matches!(
            s.decide("apr_e", &yes("a", 10_000), 50_000),
            Err(DecideError::Closed("expired"))
        ));
        let expired = s.expire(10_000).unwrap();
        assert_eq!(
            expired.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["apr_e"]
        );
        assert_eq!(
            s.get("apr_e").unwrap().unwrap().status,
            ApprovalStatus::Expired
        );
        assert!(s.expire(10_000).unwrap().is_empty());
        assert_eq!(s.list(Some(ApprovalStatus::Denied), 10).unwrap().len(), 1);
        assert!(matches!(
            s.decide("apr_x", &yes("a", 1), 1),
            Err(DecideError::NotFound(_))
        ));
    }
}
