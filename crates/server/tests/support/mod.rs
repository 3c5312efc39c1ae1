//! Running the `switchboard` binary as separate processes, for the tests that kill one or run
//! several against one database.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_testkit::TestDb;

pub fn switchboard(db: &TestDb, dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .current_dir(dir)
        .env_clear()
        .env("SWITCHBOARD_DATABASE_URL", db.url())
        .env("SWITCHBOARD_DATA_DIR", dir)
        .env("RUST_LOG", "warn");
    command
}

pub const BOOTSTRAP: &str = "kill-test-bootstrap-token-0123456789";
pub const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";

/// `serve` on a free port with short dispatch leases, ready to answer; returns it and its URL.
pub async fn serve(db: &TestDb, dir: &std::path::Path) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = switchboard(db, dir)
        .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
        .env("SWITCHBOARD_BOOTSTRAP_TOKEN", BOOTSTRAP)
        .env("SWITCHBOARD_SANDBOX_CUSTOMERS", "false")
        // A dead worker's sends are taken over 2 s after it claimed them, and a send that may
        // have reached Meta waits 8 s for Meta's statuses before it is sent again.
        .env("SWITCHBOARD_DISPATCH_LEASE_SECONDS", "2")
        .env("SWITCHBOARD_DISPATCH_IN_FLIGHT_GRACE_SECONDS", "8")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, base)
}

pub async fn api(client: &reqwest::Client, base: &str, path: &str, body: Option<Value>) -> Value {
    let request = match body {
        Some(body) => client.post(format!("{base}{path}")).json(&body),
        None => client.get(format!("{base}{path}")),
    };
    let response = request.bearer_auth(BOOTSTRAP).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}
