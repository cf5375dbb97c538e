//! The admin API authenticates on its own: its token, not the SCIM directory, decides, so
//! pin review and audit queries answer while the directory store is down, and its refusals
//! are the admin API's own JSON, not SCIM's.

// Tests read their own local gateway's answers: unbounded reads are fine here.
#![allow(clippy::disallowed_methods)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{free_port, gatehouse_bin, start_gateway};

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
