//! The row mappings SQLite and PostgreSQL share: each record is read column by column
//! through [`Columns`], which both backends' rows implement, so a record's columns and
//! their conversions are written once. A column of the wrong type is an error, never a
//! panic.

use crate::{ApiKeyRecord, DirectoryUser, PinRecord, PinStatus, RefreshRecord};

/// One result row, read by column index.
pub(crate) trait Columns {
    type Error;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    /// A yes/no column: an integer in SQLite, a boolean in PostgreSQL.
    fn flag(&self, i: usize) -> Result<bool, Self::Error>;
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn flag(&self, i: usize) -> rusqlite::Result<bool> {
        Ok(self.get::<_, i64>(i)? != 0)
    }
}

#[cfg(feature = "postgres")]
impl Columns for postgres::Row {
    type Error = postgres::Error;
    fn text(&self, i: usize) -> Result<String, postgres::Error> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, postgres::Error> {
        self.try_get(i)
    }
    fn int(&self, i: usize) -> Result<i64, postgres::Error> {
        self.try_get(i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, postgres::Error> {
        self.try_get(i)
    }
    fn flag(&self, i: usize) -> Result<bool, postgres::Error> {
        self.try_get(i)
    }
}

/// A time or count as SQL stores it (saturating: no `u64` the gateway holds is that big).
pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored time or count; a negative one (never written) reads as 0.
pub(crate) fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A list of names as one JSON text column.
pub(crate) fn list_to_sql(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// A JSON text column as a list of names; an unreadable one is empty (it grants nothing).
pub(crate) fn list_from_sql(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// `id, hash, principal, app, tenant, roles, servers, tools, created_at, expires_at,
/// revoked_at, last_used_at, rotated_from`.
pub(crate) fn api_key<R: Columns>(r: &R) -> Result<ApiKeyRecord, R::Error> {
    Ok(ApiKeyRecord {
        id: r.text(0)?,
        hash: r.text(1)?,
        principal: r.text(2)?,
        app: r.text(3)?,
        tenant: r.opt_text(4)?,
        roles: list_from_sql(&r.text(5)?),
        servers: list_from_sql(&r.text(6)?),
        tools: list_from_sql(&r.text(7)?),
        created_at: r.opt_int(8)?.map_or(0, uint),
        expires_at: r.opt_int(9)?.map(uint),
        revoked_at: r.opt_int(10)?.map(uint),
        last_used_at: r.opt_int(11)?.map(uint),
        rotated_from: r.opt_text(12)?,
    })
}

/// `id, user_name, external_id, active, updated_at`.
pub(crate) fn directory_user<R: Columns>(r: &R) -> Result<DirectoryUser, R::Error> {
    Ok(DirectoryUser {
        id: r.text(0)?,
        user_name: r.text(1)?,
        external_id: r.opt_text(2)?,
        active: r.flag(3)?,
        updated_at: uint(r.int(4)?),
    })
}

/// `hash, family, client_id, claims, scope, resource, issued_at, expires_at, used_at,
/// revoked_at`.
pub(crate) fn refresh<R: Columns>(r: &R) -> Result<RefreshRecord, R::Error> {
    Ok(RefreshRecord {
        hash: r.text(0)?,
        family: r.text(1)?,
        client_id: r.text(2)?,
        claims: r.text(3)?,
        scope: r.text(4)?,
        resource: r.text(5)?,
        issued_at: uint(r.int(6)?),
        expires_at: uint(r.int(7)?),
        used_at: r.opt_int(8)?.map(uint),
        revoked_at: r.opt_int(9)?.map(uint),
    })
}

/// `upstream, kind, name, status, hash, definition, proposed_hash, proposed, findings,
/// first_seen_ms, updated_ms, decided_by, reason`.
pub(crate) fn pin<R: Columns>(r: &R) -> Result<PinRecord, R::Error> {
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
        first_seen_ms: uint(r.int(9)?),
        updated_ms: uint(r.int(10)?),
        decided_by: r.text(11)?,
        reason: r.text(12)?,
    })
}
