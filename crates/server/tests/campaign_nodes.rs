//! Campaigns across process deaths and nodes: `kill -9` mid-campaign loses and repeats nothing,
//! two nodes on one PostgreSQL database share a campaign without sending anyone twice, and
//! `switchboard campaign watch` shows the hopper.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_testkit::{both_backends, FakeGraph, TestDb};

mod support;
use support::{api, serve, switchboard, APP_SECRET, BOOTSTRAP};

const PHONE_NUMBER_ID: &str = "106540352242922";

/// A WhatsApp sender on the fake, fast enough for hundreds of sends a second, with an approved
/// template whose variable is the contact's name.
async fn sender_with_template(client: &reqwest::Client, base: &str, fake: &FakeGraph) -> String {
    let sender = api(
        client,
        base,
        "/api/v1/senders",
        Some(json!({"channel": "whatsapp", "name": "WA", "provider": {
            "kind": "whatsapp_cloud", "phone_number_id": PHONE_NUMBER_ID,
            "waba_id": "102290129340398", "access_token": "EAAGfaketoken",
            "app_secret": APP_SECRET, "verify_token": "verify",
            "api_base_url": fake.api_base_url()}})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patched = client
        .patch(format!("{base}/api/v1/senders/{sender}"))
        .bearer_auth(BOOTSTRAP)
        .json(&json!({"rate_limit_per_second": 2000}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success());
    let template = api(
        client,
        base,
        "/api/v1/templates",
        Some(json!({"sender_id": sender, "name": "news", "locale": "en",
                    "category": "MARKETING", "body": "Hi {{1}}, our news.",
                    "variable_mapping": {"1": "contact.name"}})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api(
        client,
        base,
        &format!("/api/v1/templates/{template}/submit"),
        Some(json!({})),
    )
    .await;
    api(
        client,
        base,
        &format!("/api/v1/templates/{template}/status"),
        Some(json!({"status": "approved"})),
    )
    .await;
    sender
}

/// A list of `count` contacts opted in on WhatsApp, imported from CSV.
async fn opted_in_list(client: &reqwest::Client, base: &str, count: usize) -> String {
    let list = api(
        client,
        base,
        "/api/v1/lists",
        Some(json!({"name": "Everyone"})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut csv = String::from("name,phone,opt_in_source,opt_in_at\n");
    for n in 0..count {
        csv.push_str(&format!(
            "Customer {n},+447700{n:06},website,2026-11-01T10:00:00Z\n"
        ));
    }
    let imported = client
        .post(format!("{base}/api/v1/lists/{list}/import"))
        .bearer_auth(BOOTSTRAP)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert!(imported.status().is_success());
    list
}

async fn start_campaign(client: &reqwest::Client, base: &str, sender: &str, list: &str) -> String {
    api(
        client,
        base,
        "/api/v1/campaigns",
        Some(json!({"name": "News", "sender_id": sender, "list_id": list,
                    "template": {"name": "news", "locale": "en"}, "start": true})),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until every recipient was sent to (or `within` passes), returning the campaign.
async fn all_sent(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    count: i64,
    within: Duration,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let c = api(client, base, &format!("/api/v1/campaigns/{id}"), None).await;
        let h = &c["hopper"];
        assert_eq!(h["failed"], 0, "{c:#}");
        if h["pending"] == count && h["in_flight"] == 0 {
            return c;
        }
        assert!(Instant::now() < deadline, "not all sent: {c:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every recipient was accepted by Meta exactly once, and every request carried a different
/// message of ours.
fn exactly_once(fake: &FakeGraph, count: usize) {
    // Where in the fake's record each recipient's sends are: a failure says which sends repeat.
    let mut per_recipient: HashMap<String, Vec<usize>> = HashMap::new();
    for (at, sent) in fake.sent().into_iter().enumerate() {
        per_recipient.entry(sent.recipient).or_default().push(at);
    }
    let twice: Vec<_> = per_recipient
        .iter()
        .filter(|(_, at)| at.len() > 1)
        .collect();
    assert!(twice.is_empty(), "sent twice (recipient, sends): {twice:?}");
    assert_eq!(per_recipient.len(), count);
    let requests = fake.message_requests();
    let mut ours: Vec<String> = requests
        .iter()
        .map(|r| {
            r.json()["biz_opaque_callback_data"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    ours.sort();
    ours.dedup();
    assert_eq!(
        ours.len(),
        requests.len(),
        "a message of ours was sent twice"
    );
}

/// The server is killed while Meta holds sends unanswered and most of the campaign is still to
/// go. After a restart on the same database, what reached Meta is recognised by its statuses
/// (which echo our ids) and everyone else is sent to: each recipient exactly once.
async fn a_killed_server_resumes_its_campaign_without_sending_twice(db: TestDb) {
    const COUNT: usize = 400;
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeGraph::start().await;
    let client = reqwest::Client::new();
    let (mut first, base) = serve(&db, dir.path()).await;
    let sender = sender_with_template(&client, &base, &fake).await;
    let list = opted_in_list(&client, &base, COUNT).await;
    // Meta takes each message but answers too late for this process to hear it.
    fake.set_delay(Some(Duration::from_secs(120)));
    let id = start_campaign(&client, &base, &sender, &list).await;
    fake.wait_for_messages(32, Duration::from_secs(30)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    // Sends it wrote just before it died are still to be read by the fake, yet they reached
    // Meta, which will send their statuses too.
    fake.settle(Duration::from_millis(500)).await;
    let at_kill = fake.sent().len();
    assert!((32..COUNT).contains(&at_kill), "{at_kill}");

    fake.set_delay(None);
    let (mut second, base) = serve(&db, dir.path()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for sent in fake.sent().iter().take(at_kill) {
        let status = fake.whatsapp_status(sent, "sent", now);
        let answer = fake
            .deliver(&format!("{base}/webhooks/whatsapp"), APP_SECRET, &status)
            .await;
        assert_eq!(answer, 200);
    }
    all_sent(&client, &base, &id, COUNT as i64, Duration::from_secs(120)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    exactly_once(&fake, COUNT);

    // The operator's view of it from the command line.
    let mut watch = switchboard(&db, dir.path());
    watch.args(["campaign", "watch", &id, "--once"]);
    let output = watch.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("News"), "{printed}");
    assert!(
        printed.contains(&format!("total {COUNT} · fresh 0 · pending {COUNT}")),
        "{printed}"
    );
}

/// Two `switchboard serve` processes on one PostgreSQL database run one campaign together:
/// between them everyone is sent to, nobody twice.
async fn two_nodes_share_one_campaign_without_sending_twice(db: TestDb) {
    const COUNT: usize = 1000;
    let fake = FakeGraph::start().await;
    // Sends that take a moment keep both nodes' workers busy at once.
    fake.set_delay(Some(Duration::from_millis(20)));
    let client = reqwest::Client::new();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut a, base_a) = serve(&db, dir_a.path()).await;
    let (mut b, base_b) = serve(&db, dir_b.path()).await;
    let sender = sender_with_template(&client, &base_a, &fake).await;
    let list = opted_in_list(&client, &base_b, COUNT).await;
    let id = start_campaign(&client, &base_a, &sender, &list).await;
    all_sent(
        &client,
        &base_b,
        &id,
        COUNT as i64,
        Duration::from_secs(120),
    )
    .await;
    a.kill().unwrap();
    b.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
    exactly_once(&fake, COUNT);
}

both_backends!(a_killed_server_resumes_its_campaign_without_sending_twice);

mod two_nodes {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        // Several nodes share a database only on PostgreSQL (SQLite is one process's file).
        if let Some(db) = switchboard_testkit::TestDb::postgres().await {
            super::two_nodes_share_one_campaign_without_sending_twice(db).await
        }
    }
}
