//! The SQLite audit store's tests: chains, retention, durability levels, sink cursors,
//! the explorer's pages.

use gatehouse_audit::{AuditEvent, AuditStore, Durability, Tamper, verify_chain};

use super::SqliteAudit;

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
fn retention_prunes_to_a_signed_checkpoint_and_the_rest_still_verifies() {
    use gatehouse_audit::{
        Anchor, CheckpointError, Signer, verify_chain_from, verify_checkpoints_from,
    };
    let path = std::env::temp_dir().join(format!("gatehouse-prune-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let s = SqliteAudit::open(&path).expect("open");
    let (seed, public) = Signer::generate().expect("key");
    let signer = Signer::from_seed(&seed).expect("signer");
    // Ten records at times 1..=10; checkpoints at 4 and 8.
    for n in 1..=10 {
        let heads = s
            .append(&[event("", n)], Durability::Synced)
            .expect("append");
        if n == 4 || n == 8 {
            let (c, seq, h) = &heads[0];
            s.checkpoint(&[signer.sign(c, *seq, h, n)])
                .expect("checkpoint");
        }
    }
    // A sink that shipped only up to 6 holds retention at the checkpoint below it.
    s.advance("soc", &s.pending_for("soc", 6).expect("pending"))
        .expect("advance");
    let pruned = s.prune(9, &["soc".to_owned()]).expect("prune");
    assert_eq!(pruned, [("default".to_owned(), 4)]);
    let anchor = s.anchor("default").expect("anchor").expect("anchored");
    assert_eq!(anchor.seq, 4);
    let links = s.links("default").expect("links");
    assert_eq!(links.first().map(|l| l.seq), Some(5));
    assert_eq!(
        verify_chain_from(&links, Some(&anchor)).map(|(n, _)| n),
        Ok(10)
    );
    let cps = s.checkpoints("default").expect("checkpoints");
    assert_eq!(
        verify_checkpoints_from(&links, &cps, &public, Some(&anchor)),
        Ok(2)
    );
    // Without the anchor the remainder does not verify; a forged anchor is caught.
    assert!(verify_chain_from(&links, None).is_err());
    let forged = Anchor {
        seq: 4,
        hash: "0".repeat(64),
    };
    assert!(verify_chain_from(&links, Some(&forged)).is_err());
    let moved = Anchor {
        seq: 5,
        hash: links[0].hash.clone(),
    };
    assert_eq!(
        verify_checkpoints_from(&links[1..], &cps, &public, Some(&moved)),
        Err(CheckpointError::UnsignedAnchor { seq: 5 })
    );
    // With every sink caught up, retention reaches the newer checkpoint; never the head.
    s.advance("soc", &s.pending_for("soc", 100).expect("pending"))
        .expect("advance");
    assert_eq!(
        s.prune(100, &["soc".to_owned()]).expect("prune"),
        [("default".to_owned(), 8)]
    );
    assert_eq!(s.links("default").expect("links").len(), 2);
    assert!(
        s.prune(100, &[]).expect("prune").is_empty(),
        "no newer checkpoint below the head"
    );
}

#[test]
fn pages_newest_first_by_cursor_and_filters_use_their_index() {
    let path = std::env::temp_dir().join(format!("gatehouse-page-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let s = SqliteAudit::open(&path).expect("open");
    for n in 1..=25 {
        let mut e = event("", n);
        e.principal = if n % 5 == 0 { "corp/alice" } else { "corp/bob" }.into();
        s.append(&[e], Durability::Written).expect("append");
    }
    let mut q = super::AuditQuery {
        limit: 10,
        newest_first: true,
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = s.query(&q).expect("query");
        let Some(last) = page.last() else { break };
        let body: serde_json::Value = serde_json::from_str(&last.2).expect("json");
        q.cursor = Some((
            body["time_ms"].as_u64().expect("time"),
            last.0.clone(),
            last.1,
        ));
        seen.extend(page.iter().map(|r| r.1));
    }
    // Three pages, every record once, newest first.
    assert_eq!(seen, (1..=25).rev().collect::<Vec<u64>>());
    q = super::AuditQuery {
        principal: Some("corp/alice".into()),
        limit: 100,
        ..Default::default()
    };
    let alice: Vec<u64> = s.query(&q).expect("query").iter().map(|r| r.1).collect();
    assert_eq!(alice, [5, 10, 15, 20, 25]);
    // The filter reaches its expression index rather than scanning every record.
    let (sql, params) = q.sql("audit_events", super::Dialect::Sqlite);
    let conn = s.conn.lock().expect("lock");
    let plan: Vec<String> = conn
        .db
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("plan")
        .query_map(
            rusqlite::params_from_iter(params.iter().map(|p| match p {
                super::QueryParam::Text(t) => rusqlite::types::Value::Text(t.clone()),
                super::QueryParam::Int(i) => rusqlite::types::Value::Integer(*i),
            })),
            |r| r.get::<_, String>(3),
        )
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("plan rows");
    assert!(
        plan.iter().any(|l| l.contains("audit_events_principal")),
        "{plan:?}"
    );
    drop(conn);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn only_unsynced_appends_run_without_fsync_and_the_level_is_set_on_change_only() {
    let path = std::env::temp_dir().join(format!("gatehouse-sync-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let s = SqliteAudit::open(&path).unwrap();
    let level = |s: &SqliteAudit| -> i64 {
        let c = s.conn.lock().unwrap();
        c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(level(&s), 2, "FULL at open");
    s.append(&[event("", 1)], Durability::Written).unwrap();
    assert_eq!(level(&s), 1, "NORMAL for an unsynced append");
    s.append(&[event("", 2)], Durability::Written).unwrap();
    assert_eq!(level(&s), 1);
    // Every other write is synced, whatever ran before it.
    s.checkpoint(&[]).unwrap();
    assert_eq!(level(&s), 2, "FULL again for a checkpoint");
    s.append(&[event("", 3)], Durability::Written).unwrap();
    s.advance("siem", &[]).unwrap();
    assert_eq!(level(&s), 2, "FULL for a sink cursor");
    s.append(&[event("", 4)], Durability::Written).unwrap();
    s.append(&[event("", 5)], Durability::Synced).unwrap();
    assert_eq!(level(&s), 2);
    let chains = s.chains().unwrap();
    let stored: usize = chains.iter().map(|c| s.links(c).unwrap().len()).sum();
    assert_eq!(stored, 5);
    drop(s);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn sinks_read_their_own_cursor_per_chain() {
    let path = std::env::temp_dir().join(format!("gatehouse-sinkq-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let s = SqliteAudit::open(&path).expect("open");
    s.append(
        &[
            event("", 1),
            event("acme", 2),
            event("", 3),
            event("beta", 4),
        ],
        Durability::Written,
    )
    .expect("append");
    let all = s.pending_for("syslog", 100).expect("pending");
    assert_eq!(all.len(), 4);
    let first = s.pending_for("syslog", 2).expect("pending");
    assert_eq!(first.len(), 2);
    s.advance("syslog", &first).expect("advance");
    let rest = s.pending_for("syslog", 100).expect("pending");
    assert_eq!(rest.len(), 2);
    assert!(rest.iter().all(|p| !first.contains(p)));
    // Another sink has its own cursor; advancing backwards does nothing.
    assert_eq!(s.pending_for("webhook", 100).expect("pending").len(), 4);
    s.advance("syslog", &rest).expect("advance");
    s.advance("syslog", &first).expect("advance");
    assert!(s.pending_for("syslog", 100).expect("pending").is_empty());
    // New events appear after the cursor.
    s.append(&[event("acme", 5)], Durability::Synced)
        .expect("append");
    let next = s.pending_for("syslog", 100).expect("pending");
    assert_eq!(
        next.iter()
            .map(|p| (p.chain.as_str(), p.seq))
            .collect::<Vec<_>>(),
        [("acme", 2)]
    );
}

#[test]
fn chains_per_tenant_survive_reopening_and_show_tampering() {
    let dir = std::env::temp_dir().join(format!("gatehouse-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("audit.db");
    let _ = std::fs::remove_file(&path);
    {
        let s = SqliteAudit::open(&path).expect("open");
        s.append(
            &[event("", 1), event("acme", 2), event("", 3)],
            Durability::Written,
        )
        .expect("append");
    }
    let s = SqliteAudit::open(&path).expect("reopen");
    s.append(&[event("", 4)], Durability::Synced)
        .expect("append");
    assert_eq!(s.chains().expect("chains"), ["acme", "default"]);
    let links = s.links("default").expect("links");
    assert_eq!(links.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(verify_chain(&links).expect("intact").0, 3);
    // A second process sharing the file continues the same chain.
    let other = SqliteAudit::open(&path).expect("second handle");
    other
        .append(&[event("", 5)], Durability::Written)
        .expect("append");
    assert_eq!(
        verify_chain(&s.links("default").expect("links"))
            .expect("intact")
            .0,
        4
    );

    let raw = rusqlite::Connection::open(&path).expect("raw");
    raw.execute("UPDATE audit_events SET body = replace(body, 'call 3', 'call 9') WHERE chain = 'default' AND seq = 2", [])
        .expect("tamper");
    assert_eq!(
        verify_chain(&s.links("default").expect("links")),
        Err(Tamper::Altered { seq: 2 })
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A database path of this process's own in the temp directory, with no file, log or
/// shared memory left there from an earlier run.
fn fresh_file(tag: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("gatehouse-{tag}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

// Commits never checkpoint the log themselves (a checkpoint inside a commit made the
// request waiting for it wait milliseconds): the store's own thread moves the log into
// the database file while the store stays open.
#[test]
fn the_log_reaches_the_database_file_off_the_commit_path() {
    let path = fresh_file("wal");
    let s = SqliteAudit::open_writer(&path).unwrap();
    let auto: i64 = s
        .conn
        .lock()
        .unwrap()
        .db
        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(auto, 0, "commits must not checkpoint");
    let before = std::fs::metadata(&path).unwrap().len();
    let events: Vec<AuditEvent> = (1..=2000).map(|n| event("t", n)).collect();
    for chunk in events.chunks(20) {
        s.append(chunk, Durability::Written).unwrap();
    }
    // Without a checkpoint the rows stay in the log and the database file keeps its size.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::metadata(&path).unwrap().len() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint moved the log into the database file"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(s);
    let _ = std::fs::remove_file(&path);
}

// A passive checkpoint cannot rewind the log while commits keep coming: past its bound the
// checkpointer restarts it, so the log stays bounded under sustained writes.
#[test]
fn the_log_stays_bounded_while_commits_keep_coming() {
    let path = fresh_file("walb");
    let bounds = super::checkpointer::Bounds {
        passive: 16,
        restart: 64,
    };
    let s = SqliteAudit::open_with(&path, Some(bounds)).unwrap();
    let wal = format!("{}-wal", path.display());
    let started = std::time::Instant::now();
    let (mut n, mut largest) = (0, 0);
    while started.elapsed() < std::time::Duration::from_millis(2500) {
        let events: Vec<AuditEvent> = (n..n + 20).map(|k| event("t", k + 1)).collect();
        s.append(&events, Durability::Written).unwrap();
        n += 20;
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    let end = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    // 64 pages is 256 KiB; what commits add while a checkpoint runs comes on top.
    // (Without the restart the log grew past 150 MB here.)
    assert!(
        end < 24 << 20,
        "log grew to {end} bytes ({largest} at most) over {n} events"
    );
    drop(s);
    let _ = std::fs::remove_file(&path);
}

// A passive checkpoint that could not rewind the log (commits kept coming) is not run
// again at the next commit: the next waits for as many pages more. Run at every commit
// past the bound, it copied the same few pages and synced both files each time.
#[test]
fn one_record_at_a_time_does_not_checkpoint_at_every_commit() {
    let path = fresh_file("walc");
    let s = SqliteAudit::open_writer(&path).unwrap();
    // One record per commit, as a gateway answering one call at a time writes them: about
    // six log pages each (the table and its indexes), 12,000 pages in all.
    let records = 2000;
    for n in 1..=records {
        s.append(&[event("t", n)], Durability::Written).unwrap();
    }
    let runs = s._checkpointer.as_ref().map(|c| c.runs()).unwrap();
    // Every 1,000 pages of log, and a rewind past 4,096: about a dozen. (At every commit
    // past the bound it was hundreds here.)
    assert!(
        (1..=40).contains(&runs),
        "{runs} checkpoints for {records} single-record commits"
    );
    drop(s);
    let _ = std::fs::remove_file(&path);
}

// An append reuses the heads it committed last, but not after another connection wrote:
// two handles taking turns on one file still make one gap-free chain.
#[test]
fn handles_taking_turns_on_one_file_extend_one_chain() {
    let dir = std::env::temp_dir().join(format!("gatehouse-audit-turns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("audit.db");
    let _ = std::fs::remove_file(&path);
    let a = SqliteAudit::open(&path).expect("open");
    let b = SqliteAudit::open(&path).expect("second handle");
    for n in 0..6u64 {
        let (first, second) = if n % 3 == 0 { (&b, &a) } else { (&a, &b) };
        first
            .append(&[event("", 2 * n)], Durability::Written)
            .expect("append");
        second
            .append(
                &[event("", 2 * n + 1), event("acme", n)],
                Durability::Written,
            )
            .expect("append after the other handle");
    }
    let links = a.links("default").expect("links");
    assert_eq!(links.len(), 12);
    assert_eq!(verify_chain(&links).expect("intact").0, 12);
    assert_eq!(
        verify_chain(&b.links("acme").expect("links"))
            .expect("intact")
            .0,
        6
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_append_that_must_not_wait_steps_back_from_a_busy_file_and_writes_nothing() {
    let path = std::env::temp_dir().join(format!("gatehouse-try-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let s = SqliteAudit::open_writer(&path).expect("open");
    s.append(&[event("", 1)], Durability::Written)
        .expect("append");
    // Another process's write transaction holds the file.
    let other = rusqlite::Connection::open(&path).expect("second connection");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let t = std::time::Instant::now();
    assert!(s.try_append(&[event("", 2)], Durability::Written).is_none());
    assert!(
        t.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
    // This store's own connection in use (a commit, the checkpointer's rewind): the same.
    {
        let _held = s.conn.lock().unwrap();
        assert!(s.try_append(&[event("", 2)], Durability::Written).is_none());
    }
    other.execute_batch("COMMIT").expect("unlock");
    let heads = s
        .try_append(&[event("", 2)], Durability::Written)
        .expect("attempted")
        .expect("appended");
    // The chain has no gap where the refused attempts were.
    assert_eq!(heads[0].1, 2);
    // And waiting appends still wait out a lock held briefly.
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let unlock = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(200));
        other.execute_batch("COMMIT").expect("unlock");
    });
    s.append(&[event("", 3)], Durability::Written)
        .expect("waited, then appended");
    unlock.join().unwrap();
    let chains = s.chains().unwrap();
    assert_eq!(chains.len(), 1);
    assert_eq!(
        verify_chain(&s.links(&chains[0]).unwrap()).map(|h| h.0),
        Ok(3)
    );
    let _ = std::fs::remove_file(&path);
}
