//! The `switchboard` binary as an operator uses it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_testkit::{both_backends, FakeGraph, TestDb};

mod support;
use support::{api, serve, switchboard, APP_SECRET};

fn run(mut command: Command, stdin: Option<&str>) -> (bool, String, String) {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn switchboard");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn operators_create_users_and_tokens_from_the_command_line(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut migrate = switchboard(&db, dir.path());
    migrate.arg("migrate");
    let (ok, out, err) = run(migrate, None);
    assert!(ok, "{err}");
    assert!(out.contains("schema is up to date"));

    let mut user = switchboard(&db, dir.path());
    user.args([
        "user",
        "create",
        "--email",
        "Ops@Example.com",
        "--name",
        "Ops",
        "--role",
        "supervisor",
        "--password-stdin",
    ]);
    let (ok, out, err) = run(user, Some("a long enough password\n"));
    assert!(ok, "{err}");
    let user_id = out.trim().to_owned();
    assert_eq!(user_id.len(), 36, "{out}");

    let mut token = switchboard(&db, dir.path());
    token.args([
        "token",
        "create",
        "--user",
        "ops@example.com",
        "--name",
        "ops laptop",
    ]);
    let (ok, out, err) = run(token, None);
    assert!(ok, "{err}");
    let secret = out.trim().to_owned();
    assert!(secret.starts_with("sb_"), "{out}");

    let mut admin = switchboard(&db, dir.path());
    admin.args([
        "token",
        "create",
        "--role",
        "admin",
        "--scopes",
        "contacts:read,contacts:write",
    ]);
    let (ok, out, err) = run(admin, None);
    assert!(ok, "{err}");
    assert!(out.trim().starts_with("sb_"));

    let mut bad = switchboard(&db, dir.path());
    bad.args(["token", "create", "--user", "nobody@example.com"]);
    let (ok, _, err) = run(bad, None);
    assert!(!ok);
    assert!(err.contains("no user with e-mail"), "{err}");

    // The token works against a running server on the same database.
    let store = switchboard_store::Store::open(db.url()).await.unwrap();
    let state =
        switchboard_app::AppState::new(store, std::sync::Arc::new(switchboard_app::SystemClock));
    let principal = switchboard_app::auth::authenticate(&state, &secret)
        .await
        .unwrap();
    assert_eq!(principal.user_id().map(|u| u.to_string()), Some(user_id));
    assert_eq!(principal.role(), switchboard_core::Role::Supervisor);
}

async fn bad_configuration_is_reported_whole(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = switchboard(&db, dir.path());
    command
        .env("SWITCHBOARD_LISTEN", "nowhere")
        .env("SWITCHBOARD_LOG_FORMAT", "xml")
        .arg("serve");
    let (ok, _, err) = run(command, None);
    assert!(!ok);
    assert!(
        err.contains("listen") && err.contains("log_format"),
        "{err}"
    );
}

/// `serve` on an empty database prints a first admin token, answers, and exits cleanly on
/// SIGTERM.
async fn serve_starts_with_no_setup_and_stops_gracefully(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = switchboard(&db, dir.path())
        .env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut token = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(t) = line.split_whitespace().find(|w| w.starts_with("sb_")) {
            token.get_or_insert_with(|| t.to_owned());
        }
        if line.contains("is listening") || Instant::now() > deadline {
            break;
        }
    }
    let token = token.expect("a first-start token on stdout");
    let client = reqwest::Client::new();
    let me = client
        .get(format!("http://127.0.0.1:{port}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}

/// Starts `switchboard demo` and hands its stdout lines over a channel, so waits can time out.
fn start_demo(
    db: &TestDb,
    dir: &std::path::Path,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = switchboard(db, dir)
        .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until one satisfies `want`; all lines read so far come back with it.
fn read_until(rx: &std::sync::mpsc::Receiver<String>, want: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = want(&line);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!(
        "the demo never printed what was awaited; it printed:\n{}",
        seen.join("\n")
    );
}

fn terminate(mut child: std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit}");
}

/// `demo` seeds a fresh database, prints how to reach it, and its simulated customers come
/// alive: messages are read and answered, a customer declines the opt-in request. A second
/// start keeps what is there.
async fn the_demo_comes_alive(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let (child, rx) = start_demo(&db, dir.path());
    let banner = read_until(&rx, |l| l.contains("as it happens"));
    let base = banner
        .iter()
        .find_map(|l| l.strip_prefix("Switchboard demo: "))
        .expect("the demo's URL")
        .to_owned();
    let token = banner
        .iter()
        .find_map(|l| l.split_whitespace().find(|w| w.starts_with("sb_")))
        .expect("an API token")
        .to_owned();
    let feed = read_until(&rx, |l| l.contains("Dee Dubois (whatsapp) wrote: \"NO\""));
    assert!(feed.iter().any(|l| l.contains("is read")), "{feed:#?}");
    let client = reqwest::Client::new();
    // Six customers with conversations, and 40 newsletter subscribers for the campaign.
    let contacts: serde_json::Value = client
        .get(format!("{base}/api/v1/contacts?limit=100"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(contacts["items"].as_array().unwrap().len(), 46);
    let campaigns: serde_json::Value = client
        .get(format!("{base}/api/v1/campaigns"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let campaign = &campaigns["items"][0];
    assert_eq!(campaign["name"], "Winter collection");
    assert_eq!(campaign["state"], "running");
    assert_eq!(campaign["hopper"]["total"], 40);
    terminate(child);

    let (child, rx) = start_demo(&db, dir.path());
    let banner = read_until(&rx, |l| l.contains("as it happens"));
    assert!(
        banner.iter().any(|l| l.contains("nothing was seeded")),
        "{banner:#?}"
    );
    terminate(child);
}

/// The process is killed with sends at Meta unanswered and more waiting in the queue. After a
/// restart on the same database every message is sent exactly once: what reached Meta is
/// recognised by its statuses (which echo our id), the rest is sent, nothing twice.
async fn a_killed_server_loses_nothing_and_sends_nothing_twice(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGraph::start().await;
    // Meta takes each message at once but answers too late for this process to hear it.
    fake.set_delay(Some(Duration::from_secs(120)));
    let client = reqwest::Client::new();
    let (mut first, base) = serve(&db, dir.path()).await;
    let sender = api(
        &client,
        &base,
        "/api/v1/senders",
        Some(json!({"channel": "whatsapp", "name": "WA",
        "provider": {"kind": "whatsapp_cloud", "phone_number_id": "106540352242922",
                     "waba_id": "102290129340398", "access_token": "EAAGfaketoken",
                     "app_secret": APP_SECRET, "verify_token": "verify",
                     "api_base_url": fake.api_base_url()}})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut contacts = Vec::new();
    for from in [
        "+442079460958",
        "+16505551234",
        "+33142685300",
        "+4930901820",
    ] {
        let inbound = api(
            &client,
            &base,
            "/api/v1/messages/inbound",
            Some(json!({"sender_id": sender, "from": from, "text": "hi"})),
        )
        .await;
        contacts.push(inbound["contact_id"].as_str().unwrap().to_owned());
    }
    // Two messages per customer fall due together, so one claim takes them all: the first of
    // each customer goes to Meta, the second waits behind it.
    let due = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut ids = Vec::new();
    for round in 1..=2 {
        for contact in &contacts {
            let message = api(
                &client,
                &base,
                "/api/v1/messages",
                Some(json!({
                "sender_id": sender, "contact_id": contact, "text": format!("message {round}"),
                "send_at": due})),
            )
            .await;
            ids.push(message["id"].as_str().unwrap().to_owned());
        }
    }
    fake.wait_for_messages(contacts.len(), Duration::from_secs(30))
        .await;
    // Queued while the dispatcher waits on Meta: never claimed before the kill.
    for contact in &contacts {
        let message = api(
            &client,
            &base,
            "/api/v1/messages",
            Some(json!({"sender_id": sender, "contact_id": contact, "text": "message 3"})),
        )
        .await;
        ids.push(message["id"].as_str().unwrap().to_owned());
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // Sends it wrote just before it died are still to be read by the fake, yet they reached
    // Meta, which will send their statuses too.
    fake.settle(Duration::from_millis(500)).await;
    let at_kill = fake.sent().len();
    assert!(
        at_kill >= contacts.len() && at_kill < ids.len(),
        "{at_kill}"
    );

    fake.set_delay(None);
    let (mut second, base) = serve(&db, dir.path()).await;
    // Meta's statuses for what it took before the kill, echoing our ids.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for sent in fake.sent().iter().take(at_kill) {
        let status = fake.whatsapp_status(sent, "sent", now);
        let answer = fake
            .deliver(&format!("{base}/webhooks/whatsapp"), APP_SECRET, &status)
            .await;
        assert_eq!(answer, 200);
    }

    let deadline = Instant::now() + Duration::from_secs(90);
    let messages = loop {
        let list = api(
            &client,
            &base,
            "/api/v1/messages?direction=outbound&limit=100",
            None,
        )
        .await;
        let items = list["items"].as_array().unwrap().clone();
        assert!(items.iter().all(|m| m["status"] != "failed"), "{items:#?}");
        if items.len() == ids.len() && items.iter().all(|m| m["status"] == "sent") {
            break items;
        }
        assert!(Instant::now() < deadline, "not all sent: {items:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    second.kill().unwrap();
    second.wait().unwrap();

    // Exactly one request per message reached Meta, and each message has Meta's id for it.
    let requests = fake.message_requests();
    let mut echoed: Vec<String> = requests
        .iter()
        .map(|r| {
            r.json()["biz_opaque_callback_data"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    echoed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(echoed, expected);
    let sent = fake.sent();
    for message in &messages {
        let id = message["id"].as_str().unwrap();
        let accepted = sent
            .iter()
            .find(|s| s.callback_data.as_deref() == Some(id))
            .unwrap();
        assert_eq!(message["provider_message_id"], accepted.id.as_str());
    }
}

both_backends!(
    a_killed_server_loses_nothing_and_sends_nothing_twice,
    the_demo_comes_alive,
    operators_create_users_and_tokens_from_the_command_line,
    bad_configuration_is_reported_whole,
    serve_starts_with_no_setup_and_stops_gracefully,
);
