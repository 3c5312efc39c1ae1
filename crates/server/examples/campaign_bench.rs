//! A campaign to a million recipients on SQLite, against a loopback fake Graph API with no
//! rate cap: messages per second from start to the last one sent, and the peak resident
//! memory while it ran.
//!
//!     RUST_LOG=error cargo run --release -p switchboard --example campaign_bench
//!
//! `BENCH_RECIPIENTS` sets the count (default 1,000,000); `SWITCHBOARD_TEST_DATABASE_URL`
//! with `BENCH_POSTGRES=1` runs it on PostgreSQL too. Everything shares this one process and
//! the machine's cores: the server, the fake provider and the importer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use switchboard::config::{Config, FlagOverrides};
use switchboard_app::SystemClock;
use switchboard_testkit::TestDb;

const TOKEN: &str = "bench-bootstrap-token-0123456789abcdef";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Quiet unless RUST_LOG asks (`RUST_LOG=switchboard_store::tx=debug` times every write).
    switchboard::telemetry::init(switchboard::config::LogFormat::Text, "error");
    let recipients: usize = std::env::var("BENCH_RECIPIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!(
        "campaign bench: {recipients} recipients, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let sqlite = TestDb::sqlite();
    run(&sqlite, recipients).await?;
    if std::env::var("BENCH_POSTGRES").is_ok() {
        if let Some(pg) = TestDb::postgres().await {
            run(&pg, recipients).await?;
        }
    }
    Ok(())
}

async fn run(db: &TestDb, recipients: usize) -> anyhow::Result<()> {
    let backend = if db.is_postgres() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!("\n== {backend}");
    let dir = tempfile::tempdir()?;
    let config = config(db.url(), dir.path());
    let (server, _) = switchboard::start(&config, Arc::new(SystemClock)).await?;
    let base = format!("http://{}", server.addr);
    let provider = fake_provider().await;
    let client = reqwest::Client::new();

    let sender = call(
        &client,
        "POST",
        &format!("{base}/api/v1/senders"),
        json!({"channel": "whatsapp", "name": "Bench", "provider": {
            "kind": "whatsapp_cloud", "phone_number_id": "106540352242922",
            "waba_id": "102290129340398", "access_token": "EAAGbench", "app_secret": "secret",
            "verify_token": "verify", "api_base_url": provider.base}}),
    )
    .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // No rate cap but the provider's own speed.
    call(
        &client,
        "PATCH",
        &format!("{base}/api/v1/senders/{sender}"),
        json!({"rate_limit_per_second": 100_000}),
    )
    .await?;
    let template = call(
        &client,
        "POST",
        &format!("{base}/api/v1/templates"),
        json!({"sender_id": sender, "name": "bench_offer", "locale": "en",
               "category": "MARKETING", "body": "Hi {{1}}, this week's offer is in.",
               "variable_mapping": {"1": "contact.name"}}),
    )
    .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    call(
        &client,
        "POST",
        &format!("{base}/api/v1/templates/{template}/submit"),
        json!({}),
    )
    .await?;
    call(
        &client,
        "POST",
        &format!("{base}/api/v1/templates/{template}/status"),
        json!({"status": "approved"}),
    )
    .await?;

    // The list, imported from a CSV generated as it streams.
    let list = call(
        &client,
        "POST",
        &format!("{base}/api/v1/lists"),
        json!({"name": "Everyone"}),
    )
    .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let started = Instant::now();
    // About 50 MB: built whole, as a client would upload a file, and dropped before the
    // campaign's memory is measured.
    let mut csv = String::with_capacity(recipients * 52 + 64);
    csv.push_str("name,phone,opt_in_source,opt_in_at\n");
    for n in 0..recipients {
        csv.push_str(&format!("Customer {n},+4475{n:08},website,2026-11-01\n"));
    }
    let imported = client
        .post(format!("{base}/api/v1/lists/{list}/import"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?;
    let report: Value = imported.json().await?;
    println!(
        "imported {recipients} contacts into the list in {:.1} s ({:.0} rows/s): {}",
        started.elapsed().as_secs_f64(),
        recipients as f64 / started.elapsed().as_secs_f64(),
        report
    );

    // The campaign, measured from the start to the last message accepted by the provider.
    reset_peak_memory();
    let before = resident_mb();
    let started = Instant::now();
    let campaign = call(
        &client,
        "POST",
        &format!("{base}/api/v1/campaigns"),
        json!({"name": "Bench", "sender_id": sender, "list_id": list,
               "template": {"name": "bench_offer", "locale": "en"}, "start": true}),
    )
    .await?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut last_report = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let c = call(
            &client,
            "GET",
            &format!("{base}/api/v1/campaigns/{campaign}"),
            Value::Null,
        )
        .await?;
        let h = &c["hopper"];
        let pending = h["pending"].as_i64().unwrap_or(0);
        let in_flight = h["in_flight"].as_i64().unwrap_or(0);
        let sent = pending - in_flight;
        if last_report.elapsed() > Duration::from_secs(10) {
            println!(
                "  {:>5.0} s: {sent} sent, {} fresh, {in_flight} in flight, {:.0} msg/s, {:.0} MB",
                started.elapsed().as_secs_f64(),
                h["fresh"],
                sent as f64 / started.elapsed().as_secs_f64(),
                resident_mb()
            );
            last_report = Instant::now();
        }
        if h["fresh"] == 0 && h["retry"] == 0 && in_flight == 0 {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let received = provider.received.load(Ordering::Relaxed);
    println!(
        "campaign: {received} messages accepted by the provider in {elapsed:.1} s: {:.0} \
         messages/s; peak resident memory {:.0} MB (was {before:.0} MB before it started)",
        received as f64 / elapsed,
        peak_mb()
    );
    server.stop().await?;
    Ok(())
}

async fn call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let request = match method {
        "POST" => client.post(url).json(&body),
        "PATCH" => client.patch(url).json(&body),
        _ => client.get(url),
    };
    let response = request.bearer_auth(TOKEN).send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{method} {url}: {status} {body}");
    Ok(body)
}

fn config(db_url: &str, dir: &std::path::Path) -> Config {
    let empty = dir.join("switchboard.toml");
    let _ = std::fs::write(&empty, "");
    let env = [
        ("SWITCHBOARD_DATABASE_URL", db_url.to_owned()),
        ("SWITCHBOARD_LISTEN", "127.0.0.1:0".to_owned()),
        ("SWITCHBOARD_BOOTSTRAP_TOKEN", TOKEN.to_owned()),
        ("SWITCHBOARD_DATA_DIR", dir.display().to_string()),
        ("SWITCHBOARD_SANDBOX_CUSTOMERS", "false".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    match Config::load(Some(&empty), env, FlagOverrides::default()) {
        Ok(config) => config,
        Err(problems) => panic!("bench configuration: {problems:?}"),
    }
}

struct FakeProvider {
    base: String,
    received: Arc<AtomicU64>,
}

/// Answers sends and template submissions like the Graph API, at once, keeping nothing but a
/// count (a million recorded requests would measure the fake, not us).
async fn fake_provider() -> FakeProvider {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = Router::new()
        .route(
            "/v23.0/{phone_number_id}/messages",
            post(move |Json(body): Json<Value>| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                async move {
                    Json(json!({"messaging_product": "whatsapp",
                                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                "messages": [{"id": format!("wamid.BENCH{n}")}]}))
                }
            }),
        )
        .route(
            "/v23.0/{waba_id}/message_templates",
            post(|| async {
                Json(json!({"id": "594425479261596", "status": "PENDING",
                            "category": "MARKETING"}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeProvider {
        // The connectors add paths after the versioned base, as Meta's documentation writes
        // them.
        base: format!("http://{addr}/v23.0"),
        received,
    }
}

fn status_kb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0)
}

fn resident_mb() -> f64 {
    status_kb("VmRSS:") / 1024.0
}

fn peak_mb() -> f64 {
    status_kb("VmHWM:") / 1024.0
}

/// Starts the peak over from now (Linux: writing 5 to clear_refs resets VmHWM), so the import
/// before the campaign does not count.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
