//! The admin API authenticates on its own: its token, not the SCIM directory, decides, so
//! pin review and audit queries answer while the directory store is down, and its refusals
//! are the admin API's own JSON, not SCIM's.

// Tests read their own local gateway's answers: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{free_port, fresh_database, gatehouse_bin, python, repo, start_gateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_answers_while_the_directory_is_down() {
    let admin = "admin-token-for-the-control-tests-0123456789";
    let dir = std::env::temp_dir().join(format!("gatehouse-control-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("admin.token"), admin).expect("token");
    // Nothing listens on port 1: the directory store cannot open.
    let gw = start_gateway(&format!(
        "dev_mode: true\nstore: {{sqlite: {db}}}\nadmin: {{token: \"file:{tok}\"}}\ndirectory: {{postgres: \"host=127.0.0.1 port=1 user=gatehouse dbname=none connect_timeout=1\"}}\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\n",
        db = dir.join("gatehouse.db").display(),
        tok = dir.join("admin.token").display(),
        bin = gatehouse_bin()
    ))
    .await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let pins = format!("{}/admin/v1/pins", gw.base);

    let r = http
        .get(&pins)
        .bearer_auth(admin)
        .send()
        .await
        .expect("pins");
    assert_eq!(r.status(), StatusCode::OK);
    let listed: Value = r.json().await.expect("json");
    assert!(listed.to_string().contains("demo"), "{listed}");

    let r = http
        .get(&pins)
        .bearer_auth("not-the-admin-token-0123456789")
        .send()
        .await
        .expect("pins");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let refused: Value = r.json().await.expect("json");
    assert_eq!(refused["error"], "unauthorized", "{refused}");
    assert!(
        refused.get("schemas").is_none(),
        "not a SCIM error: {refused}"
    );

    // Revocations live in the directory: those say it is unavailable.
    let r = http
        .get(format!("{}/admin/v1/revocations/alice", gw.base))
        .bearer_auth(admin)
        .send()
        .await
        .expect("revocation status");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// Two replicas sharing `store.postgres` share their pins: a tool one of them held for
/// review shows as held on the other, and an administrator's approval on one is what the
/// other sees. (Pins in each host's own file would let a tool quarantined on one replica be
/// exposed by the next.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_postgres_share_their_pins() {
    let admin = "admin-token-for-the-control-tests-0123456789";
    let db = format!("gatehouse_it_pins_{}", std::process::id());
    fresh_database(&db).await;
    let dir = std::env::temp_dir().join(format!("gatehouse-control-pins-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("admin.token"), admin).expect("token");
    let state = dir.join("notes-version");
    std::fs::write(&state, "1").expect("state");
    let replica = |name: &str| {
        format!(
            "dev_mode: true\nstore: {{sqlite: {sqlite}, postgres: 'host=127.0.0.1 port=5432 user=postgres dbname={db}'}}\nadmin: {{token: \"file:{tok}\"}}\nupstreams:\n  poisoned:\n    command: {py}\n    args: ['{server}', '{state}']\n",
            sqlite = dir.join(format!("{name}.db")).display(),
            tok = dir.join("admin.token").display(),
            py = python(),
            server = repo().join("testdata/servers/poisoned_server.py").display(),
            state = state.display(),
        )
    };
    let a = start_gateway(&replica("a")).await;
    let b = start_gateway(&replica("b")).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let pin = |base: &str| {
        let (http, base) = (http.clone(), base.to_owned());
        async move {
            let r = http
                .get(format!("{base}/admin/v1/pins"))
                .bearer_auth(admin)
                .send()
                .await
                .expect("pins");
            assert_eq!(r.status(), StatusCode::OK);
            let v: Value = r.json().await.expect("json");
            v["pins"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == "add")
                .cloned()
                .unwrap_or(Value::Null)
        }
    };
    let held = pin(&b.base).await;
    assert_eq!(held["status"], "pending", "{held}");
    let proposed = held["proposed_hash"].as_str().unwrap_or("").to_owned();
    let r = http
        .post(format!(
            "{}/admin/v1/pins/poisoned/tool/add/approve",
            a.base
        ))
        .bearer_auth(admin)
        .json(&serde_json::json!({"hash": proposed, "reason": "reviewed on replica a"}))
        .send()
        .await
        .expect("approve");
    assert_eq!(r.status(), StatusCode::OK);
    let seen = pin(&b.base).await;
    assert_eq!(seen["status"], "approved", "{seen}");
    assert_eq!(seen["reason"], "reviewed on replica a", "{seen}");
}

/// Control endpoints read bodies with the edge's reader: a sender that never finishes its
/// body is answered 408 after `limits.body_timeout_secs`, not waited on forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_to_a_control_endpoint_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let admin = "admin-token-for-the-control-tests-0123456789";
    let dir = std::env::temp_dir().join(format!("gatehouse-control-slow-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("admin.token"), admin).expect("token");
    let gw = start_gateway(&format!(
        "dev_mode: true\nstore: {{sqlite: {db}}}\nadmin: {{token: \"file:{tok}\"}}\nlimits: {{body_timeout_secs: 1}}\nupstreams:\n  demo:\n    command: {bin}\n    args: [demo-server]\n",
        db = dir.join("gatehouse.db").display(),
        tok = dir.join("admin.token").display(),
        bin = gatehouse_bin()
    ))
    .await;
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /admin/v1/revocations HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {admin}\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{{\"subject\":"
    );
    conn.write_all(head.as_bytes()).await.expect("send");
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("answered before the test's own deadline")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}
