//! PostgreSQL audit store tests against the local server: chains, retention, TLS, the pool.

use super::*;
use gatehouse_audit::{Tamper, verify_chain};

/// A new, empty database on the local PostgreSQL; its connection string.
pub(crate) fn fresh_db(tag: &str) -> String {
    let name = format!("gatehouse_store_{tag}_{}", std::process::id());
    let mut admin = Client::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        NoTls,
    )
    .expect("PostgreSQL on 127.0.0.1:5432");
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .unwrap();
    format!("host=127.0.0.1 port=5432 user=postgres dbname={name}")
}

/// TLS as the connection string asks: encrypted and verified against `sslrootcert`
/// (the Debian PostgreSQL's own certificate, issued to `localhost`); a wrong root or
/// a name the certificate does not carry fails closed.
#[test]
fn tls_connections_are_encrypted_and_verified() {
    let db = fresh_db("tls");
    let snakeoil = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let local = db.replace("host=127.0.0.1", "host=localhost");
    for url in [
        format!("{local} sslmode=verify-full sslrootcert={snakeoil}"),
        format!(
            "postgres://postgres@localhost:5432/{}?sslmode=require&sslrootcert={}",
            db.rsplit('=').next().unwrap(),
            snakeoil.replace('/', "%2F")
        ),
    ] {
        let s = PgAudit::new(&url);
        let ssl: bool = s
            .with(|c| {
                c.query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .map(|r| r.get(0))
            })
            .unwrap_or_else(|e| panic!("{url}: {e:?}"));
        assert!(ssl, "{url}");
    }
    for url in [
        format!("{local} sslmode=require sslrootcert=/etc/ssl/certs/ca-certificates.crt"),
        format!("{db} sslmode=verify-full sslrootcert={snakeoil}"),
    ] {
        let s = PgAudit::new(&url);
        assert!(s.with(|c| c.batch_execute("SELECT 1")).is_err(), "{url}");
    }
    assert!(
        PgAudit::new(&format!("{db} sslrootcert={snakeoil}"))
            .with(|c| c.batch_execute("SELECT 1"))
            .is_err(),
        "a root certificate without TLS is a mistake, not a clear-text connection"
    );
}

/// Calls run side by side on their own connections (one mutex-guarded connection
/// would let only one of them in at a time).
#[test]
fn calls_share_a_pool_of_connections() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let s = PgAudit::new(&fresh_db("pool"));
    let inside = AtomicUsize::new(0);
    let pids: Vec<i32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    s.with(|c| {
                        inside.fetch_add(1, Ordering::SeqCst);
                        let deadline =
                            std::time::Instant::now() + std::time::Duration::from_secs(10);
                        while inside.load(Ordering::SeqCst) < 4
                            && std::time::Instant::now() < deadline
                        {
                            std::thread::sleep(std::time::Duration::from_millis(5));
                        }
                        c.query_one("SELECT pg_backend_pid()", &[])
                            .map(|r| r.get(0))
                    })
                    .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(inside.load(Ordering::SeqCst), 4);
    let distinct: std::collections::BTreeSet<i32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 4, "{pids:?}");
}

fn event(tenant: &str, n: u64) -> AuditEvent {
    AuditEvent {
        v: 1,
        tenant: tenant.into(),
        method: format!("call {n}"),
        time_ms: n,
        ..AuditEvent::default()
    }
}

#[test]
fn sink_cursors_and_checkpointed_retention_work_on_postgres() {
    use gatehouse_audit::{Signer, verify_chain_from, verify_checkpoints_from};
    let s = PgAudit::new(&fresh_db("prune"));
    let (seed, public) = Signer::generate().unwrap();
    let signer = Signer::from_seed(&seed).unwrap();
    for n in 1..=10 {
        let heads = s.append(&[event("", n)], Durability::Synced).unwrap();
        if n == 4 || n == 8 {
            let (c, seq, h) = &heads[0];
            s.checkpoint(&[signer.sign(c, *seq, h, n)]).unwrap();
        }
    }
    let first = s.pending_for("soc", 6).unwrap();
    assert_eq!(first.len(), 6);
    s.advance("soc", &first).unwrap();
    assert_eq!(s.pending_for("soc", 100).unwrap().len(), 4);
    assert_eq!(
        s.prune(9, &["soc".to_owned()]).unwrap(),
        [("default".to_owned(), 4)]
    );
    let anchor = s.anchor("default").unwrap().unwrap();
    let links = s.links("default").unwrap();
    assert_eq!(links.first().map(|l| l.seq), Some(5));
    assert_eq!(
        verify_chain_from(&links, Some(&anchor)).map(|(n, _)| n),
        Ok(10)
    );
    let cps = s.checkpoints("default").unwrap();
    assert_eq!(
        verify_checkpoints_from(&links, &cps, &public, Some(&anchor)),
        Ok(2)
    );
    // Appends continue the chain after pruning.
    s.append(&[event("", 11)], Durability::Synced).unwrap();
    let links = s.links("default").unwrap();
    assert_eq!(
        verify_chain_from(&links, Some(&anchor)).map(|(n, _)| n),
        Ok(11)
    );
}

#[test]
fn gateways_sharing_postgres_extend_one_chain_and_tampering_is_named() {
    let url = fresh_db("chain");
    // Two gateways (two handles, two threads) appending to the same chains at once.
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || {
                let s = PgAudit::new(&url);
                for n in 0..50 {
                    s.append(
                        &[event("", n), event("acme", n + 100 * t)],
                        Durability::Synced,
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = PgAudit::new(&url);
    assert_eq!(s.chains().unwrap(), ["acme", "default"]);
    for chain in ["acme", "default"] {
        assert_eq!(
            verify_chain(&s.links(chain).unwrap()).map(|(n, _)| n),
            Ok(100),
            "{chain}"
        );
    }
    let mut sql = Client::connect(&url, NoTls).unwrap();
    let check = |s: &PgAudit| verify_chain(&s.links("default").unwrap());
    // Altered: a body edited in place.
    sql.execute("UPDATE gatehouse_audit_events SET body = replace(body, 'call', 'CALL') WHERE chain = 'default' AND seq = 30", &[]).unwrap();
    assert_eq!(check(&s), Err(Tamper::Altered { seq: 30 }));
    sql.execute("UPDATE gatehouse_audit_events SET body = replace(body, 'CALL', 'call') WHERE chain = 'default' AND seq = 30", &[]).unwrap();
    assert!(check(&s).is_ok());
    // Reordered: two records' contents swapped.
    sql.batch_execute(
        "UPDATE gatehouse_audit_events SET seq = -1 WHERE chain = 'default' AND seq = 20;
         UPDATE gatehouse_audit_events SET seq = 20 WHERE chain = 'default' AND seq = 21;
         UPDATE gatehouse_audit_events SET seq = 21 WHERE chain = 'default' AND seq = -1;",
    )
    .unwrap();
    assert!(
        matches!(
            check(&s),
            Err(Tamper::Unlinked { seq: 20 }) | Err(Tamper::Altered { seq: 20 })
        ),
        "{:?}",
        check(&s)
    );
    sql.batch_execute(
        "UPDATE gatehouse_audit_events SET seq = -1 WHERE chain = 'default' AND seq = 20;
         UPDATE gatehouse_audit_events SET seq = 20 WHERE chain = 'default' AND seq = 21;
         UPDATE gatehouse_audit_events SET seq = 21 WHERE chain = 'default' AND seq = -1;",
    )
    .unwrap();
    assert!(check(&s).is_ok());
    // Inserted: a fabricated record in the middle (later ones renumbered).
    sql.batch_execute(
        "UPDATE gatehouse_audit_events SET seq = seq + 1000 WHERE chain = 'default' AND seq >= 40;
         UPDATE gatehouse_audit_events SET seq = seq - 999 WHERE chain = 'default' AND seq >= 1040;
         INSERT INTO gatehouse_audit_events (chain, seq, prev, hash, time_ms, body)
           SELECT chain, 40, hash, hash, time_ms, body FROM gatehouse_audit_events WHERE chain = 'default' AND seq = 39;",
    )
    .unwrap();
    assert_eq!(check(&s), Err(Tamper::Altered { seq: 40 }));
    // Deleted: the fabricated one removed again, and a real one too.
    sql.batch_execute(
        "DELETE FROM gatehouse_audit_events WHERE chain = 'default' AND seq = 40;
         UPDATE gatehouse_audit_events SET seq = seq - 1 WHERE chain = 'default' AND seq > 40;
         DELETE FROM gatehouse_audit_events WHERE chain = 'default' AND seq = 10;",
    )
    .unwrap();
    assert_eq!(
        check(&s),
        Err(Tamper::Missing {
            after: 9,
            found: 11
        })
    );
    // Queries read the same records SQLite's would.
    let rows = s
        .query(&AuditQuery {
            tenant: Some("acme".into()),
            limit: 5,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 5);
}

/// An upgrade: a database the previous release left (schema one version behind, records
/// in its chain) is migrated in place on first use; the old records still verify and new
/// ones extend the same chain.
#[test]
fn a_database_at_the_previous_schema_version_is_upgraded_in_place() {
    let db = fresh_db("upgrade");
    let previous = MIGRATIONS.len() - 1;
    let mut c = Client::connect(&db, NoTls).expect("connect");
    // The previous release's migrator: its migrations, each recorded.
    c.batch_execute("CREATE TABLE gatehouse_schema_migrations (version INT PRIMARY KEY)")
        .unwrap();
    for (i, m) in MIGRATIONS[..previous].iter().enumerate() {
        c.batch_execute(m).unwrap();
        c.execute(
            "INSERT INTO gatehouse_schema_migrations (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .unwrap();
    }
    // Two records it wrote, linked as every release links them.
    let mut prev = GENESIS.to_owned();
    let chain = event("", 1).chain().to_owned();
    for seq in 1..=2u64 {
        let body = event("", seq).body();
        let hash = link_hash(&chain, seq, &prev, &body);
        c.execute(
            "INSERT INTO gatehouse_audit_events (chain, seq, prev, hash, time_ms, body) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&chain, &(seq as i64), &prev, &hash, &(seq as i64), &body],
        )
        .unwrap();
        prev = hash;
    }
    drop(c);

    // This release opens it: migrated to the latest version, history intact, chain extended.
    let s = PgAudit::new(&db);
    s.append(&[event("", 3)], Durability::Synced)
        .expect("append after upgrade");
    let version: i32 = s
        .with(|c| {
            c.query_one("SELECT max(version) FROM gatehouse_schema_migrations", &[])
                .map(|r| r.get(0))
        })
        .unwrap();
    assert_eq!(version as usize, MIGRATIONS.len());
    let links = s.links(&chain).unwrap();
    assert_eq!(links.len(), 3);
    assert_eq!(verify_chain(&links).map(|(n, _)| n), Ok(3));
}
