//! Throughput and latency of the two hot paths, on SQLite and on PostgreSQL, beside this
//! machine's own limits measured in the same run:
//!
//!     cargo run --release -p switchboard --example bench
//!
//! PostgreSQL is measured when `SWITCHBOARD_TEST_DATABASE_URL` names a server (a fresh
//! database is made there). `BENCH_WEBHOOKS` and `BENCH_MESSAGES` set the counts.
//!
//! Everything runs in this one process on loopback: the server, the load generator (64
//! concurrent senders) and a fake provider, so they share the machine's cores as a real
//! deployment's load balancer and provider would not. The figures are for comparing changes
//! on one machine, not promises.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use switchboard::config::{Config, FlagOverrides};
use switchboard_app::SystemClock;
use switchboard_core::message::{DeliveryStatus, Direction};
use switchboard_store::webhooks::WebhookEvent;
use switchboard_testkit::TestDb;

const CONCURRENCY: usize = 64;
const APP_SECRET: &str = "bench-app-secret";
const PHONE_NUMBER_ID: &str = "106540352242922";
const CUSTOMERS: usize = 2_000;

fn count(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Default)]
struct Figures {
    bare_http: f64,
    bare_insert: f64,
    answers: f64,
    p50_ms: f64,
    p99_ms: f64,
    ingest: f64,
    /// Cores this process kept busy while ingesting and while sending (PostgreSQL's own
    /// processes are not counted).
    ingest_cores: f64,
    outbound: f64,
    outbound_cores: f64,
    dispatch: f64,
    dispatch_cores: f64,
}

/// CPU time this process has used, user and system, in seconds (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name, which is in parentheses and may hold spaces: the
    // user and system times (fields 14 and 15) are the 12th and 13th, in ticks of 1/100 s.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Quiet unless RUST_LOG asks (`RUST_LOG=sqlx::query=debug` times every statement).
    switchboard::telemetry::init(switchboard::config::LogFormat::Text, "error");
    let webhooks = count("BENCH_WEBHOOKS", 20_000);
    let messages = count("BENCH_MESSAGES", 10_000);
    // The sends are free text, allowed only to customers who wrote in: every one must have.
    anyhow::ensure!(
        webhooks >= CUSTOMERS,
        "BENCH_WEBHOOKS must be at least {CUSTOMERS}, one webhook from each customer the \
         outbound phase writes to"
    );
    println!(
        "switchboard bench: {webhooks} webhooks, {messages} messages, {CONCURRENCY} concurrent \
         senders, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut results = Vec::new();
    // BENCH_ONLY=sqlite or =postgres runs one of them, for profiling.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only != "postgres" {
        let sqlite = TestDb::sqlite();
        results.push(("SQLite", run(&sqlite, webhooks, messages).await?));
    }
    match TestDb::postgres().await.filter(|_| only != "sqlite") {
        Some(pg) => results.push(("PostgreSQL", run(&pg, webhooks, messages).await?)),
        None => println!("(PostgreSQL skipped: set SWITCHBOARD_TEST_DATABASE_URL)"),
    }
    print_table(&results);
    Ok(())
}

fn print_table(results: &[(&str, Figures)]) {
    println!();
    print!("{:<52}", "");
    for (name, _) in results {
        print!("{name:>12}");
    }
    println!();
    type Row = (&'static str, fn(&Figures) -> String);
    let rows: [Row; 11] = [
        ("bare axum endpoint answering 200 (requests/s)", |f| {
            format!("{:.0}", f.bare_http)
        }),
        ("bare batched insert of the payloads (rows/s)", |f| {
            format!("{:.0}", f.bare_insert)
        }),
        ("signed webhooks answered (requests/s)", |f| {
            format!("{:.0}", f.answers)
        }),
        ("webhook answer latency p50 (ms)", |f| {
            format!("{:.1}", f.p50_ms)
        }),
        ("webhook answer latency p99 (ms)", |f| {
            format!("{:.1}", f.p99_ms)
        }),
        ("webhooks ingested end to end (webhooks/s)", |f| {
            format!("{:.0}", f.ingest)
        }),
        ("  cores busy meanwhile (of the machine's)", |f| {
            format!("{:.2}", f.ingest_cores)
        }),
        (
            "outbound: policy, queue, dispatcher, provider (msg/s)",
            |f| format!("{:.0}", f.outbound),
        ),
        ("  cores busy meanwhile (of the machine's)", |f| {
            format!("{:.2}", f.outbound_cores)
        }),
        ("dispatch of sends due at once (msg/s)", |f| {
            format!("{:.0}", f.dispatch)
        }),
        ("  cores busy meanwhile (of the machine's)", |f| {
            format!("{:.2}", f.dispatch_cores)
        }),
    ];
    for (label, value) in rows {
        print!("{label:<52}");
        for (_, f) in results {
            print!("{:>12}", value(f));
        }
        println!();
    }
}

async fn run(db: &TestDb, webhooks: usize, messages: usize) -> anyhow::Result<Figures> {
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
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()?;
    let provider = fake_provider().await;
    let api = |path: &str| format!("{base}{path}");
    let sender: Value = client
        .post(api("/api/v1/senders"))
        .bearer_auth(TOKEN)
        .json(
            &json!({"channel": "whatsapp", "name": "Bench", "rate_limit_per_second": 100_000,
                      "provider": {"kind": "whatsapp_cloud", "phone_number_id": PHONE_NUMBER_ID,
                                   "waba_id": "102290129340398", "access_token": "EAAGbench",
                                   "app_secret": APP_SECRET, "verify_token": "bench",
                                   "api_base_url": provider.base}}),
        )
        .send()
        .await?
        .json()
        .await?;
    let sender_id = sender["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no sender: {sender}"))?
        .to_owned();

    let mut figures = Figures::default();
    let bodies: Vec<Vec<u8>> = (0..webhooks).map(webhook_body).collect();

    // This machine's limit for HTTP alone: the same load against an endpoint that does nothing.
    let bare = bare_endpoint().await;
    let (elapsed, _) = load(&client, &bare, &bodies).await;
    figures.bare_http = webhooks as f64 / elapsed.as_secs_f64();
    println!("bare endpoint: {:.0} requests/s", figures.bare_http);

    // And for the database alone: the same payloads in batched inserts, nothing else.
    let store = server.state.store().clone();
    let started = Instant::now();
    let mut bare_ids = Vec::with_capacity(webhooks);
    for chunk in bodies.chunks(512) {
        let events: Vec<WebhookEvent> = chunk
            .iter()
            .map(|body| {
                let body = String::from_utf8_lossy(body).into_owned();
                WebhookEvent {
                    id: switchboard_core::MessageId::new().to_string(),
                    provider: "bench".to_owned(),
                    sender_id: None,
                    dedupe_key: switchboard_core::MessageId::new().to_string(),
                    body,
                    received_at: time::OffsetDateTime::now_utc(),
                }
            })
            .collect();
        store.store_webhooks(&events).await?;
        bare_ids.extend(events.into_iter().map(|e| e.id));
    }
    figures.bare_insert = webhooks as f64 / started.elapsed().as_secs_f64();
    println!("bare batched insert: {:.0} rows/s", figures.bare_insert);
    // Out of the processor's way: it would otherwise read and mark each of them (as of no
    // provider it knows) amid the webhooks measured next.
    let done: Vec<(String, String)> = bare_ids
        .into_iter()
        .map(|id| (id, "bench: bare insert".to_owned()))
        .collect();
    for chunk in done.chunks(512) {
        store
            .mark_webhooks_processed(chunk, time::OffsetDateTime::now_utc())
            .await?;
    }

    // Signed WhatsApp webhooks, each a customer's text message, answered and then processed.
    let started = Instant::now();
    let cpu = cpu_seconds();
    let (elapsed, mut latencies) =
        load(&client, &format!("{base}/webhooks/whatsapp"), &bodies).await;
    figures.answers = webhooks as f64 / elapsed.as_secs_f64();
    latencies.sort();
    figures.p50_ms = percentile(&latencies, 0.50);
    figures.p99_ms = percentile(&latencies, 0.99);
    println!(
        "webhooks answered: {:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
        figures.answers, figures.p50_ms, figures.p99_ms
    );
    // Every webhook was stored before it was answered, so none pending means all processed.
    // The wait asks only whether one is (counting them, or the messages, on every poll took
    // the server's own cores from it: on PostgreSQL 2.3 ms a poll, the processed rows' stale
    // index entries read each time), and counts the messages once, after the clock stops.
    let deadline = Instant::now() + Duration::from_secs(600);
    while store.any_pending_webhooks().await? {
        anyhow::ensure!(
            Instant::now() < deadline,
            "ingest stalled with {} webhooks to process",
            store.count_pending_webhooks().await?
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    figures.ingest = webhooks as f64 / started.elapsed().as_secs_f64();
    figures.ingest_cores = (cpu_seconds() - cpu) / started.elapsed().as_secs_f64();
    let received = store.count_messages(Direction::Inbound, None).await?;
    anyhow::ensure!(
        received as usize >= webhooks,
        "every webhook was processed, yet {received} messages of {webhooks} were recorded"
    );
    println!(
        "ingested into messages end to end: {:.0} webhooks/s",
        figures.ingest
    );

    // Outbound: each customer wrote in, so free text is allowed; every send goes through the
    // policy, the queue and the dispatcher to the loopback provider.
    let sends: Vec<Vec<u8>> = (0..messages)
        .map(|i| {
            serde_json::to_vec(&json!({"sender_id": sender_id, "to": phone(i % CUSTOMERS),
                                       "text": format!("Your order {i} has shipped")}))
            .unwrap_or_default()
        })
        .collect();
    let started = Instant::now();
    let cpu = cpu_seconds();
    let (accepted, _) = load_authorised(&client, &api("/api/v1/messages"), &sends).await;
    println!(
        "sends accepted: {:.0}/s",
        messages as f64 / accepted.as_secs_f64()
    );
    all_sent(&store, &provider, messages as u64, deadline).await?;
    figures.outbound = messages as f64 / started.elapsed().as_secs_f64();
    figures.outbound_cores = (cpu_seconds() - cpu) / started.elapsed().as_secs_f64();
    println!(
        "outbound, accepted to recorded as sent: {:.0} messages/s (the provider saw {})",
        figures.outbound,
        provider.received.load(Ordering::Relaxed)
    );

    // Dispatch alone: as many sends again, accepted beforehand and scheduled for one moment
    // (R6.9), timed from that moment until the last is recorded as sent. Above, the callers'
    // requests set the pace; here the queue, the dispatcher's re-check of each message, the
    // provider and the recording of its answers do.
    let lead = Duration::from_secs_f64(2.0 * accepted.as_secs_f64() + 1.0);
    let due = time::OffsetDateTime::now_utc() + lead;
    let due_at = Instant::now() + lead;
    let send_at = due
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| anyhow::anyhow!("send_at: {e}"))?;
    let scheduled: Vec<Vec<u8>> = (0..messages)
        .map(|i| {
            serde_json::to_vec(&json!({"sender_id": sender_id, "to": phone(i % CUSTOMERS),
                                       "text": format!("Your invoice {i} is ready"),
                                       "send_at": send_at}))
            .unwrap_or_default()
        })
        .collect();
    load_authorised(&client, &api("/api/v1/messages"), &scheduled).await;
    anyhow::ensure!(
        Instant::now() < due_at,
        "the scheduled sends were still being accepted when they fell due"
    );
    tokio::time::sleep_until(due_at.into()).await;
    let cpu = cpu_seconds();
    let deadline = Instant::now() + Duration::from_secs(600);
    all_sent(&store, &provider, 2 * messages as u64, deadline).await?;
    figures.dispatch = messages as f64 / due_at.elapsed().as_secs_f64();
    figures.dispatch_cores = (cpu_seconds() - cpu) / due_at.elapsed().as_secs_f64();
    println!(
        "dispatch of sends scheduled for one moment, due to recorded as sent: {:.0} messages/s",
        figures.dispatch
    );
    server.stop().await?;
    Ok(figures)
}

/// Waits until the provider has received `count` sends and as many are recorded as sent.
/// The provider's own count is free to read; the messages are counted only once it has seen
/// them all, for the moments until each is recorded.
async fn all_sent(
    store: &switchboard_store::Store,
    provider: &FakeProvider,
    count: u64,
    deadline: Instant,
) -> anyhow::Result<()> {
    while provider.received.load(Ordering::Relaxed) < count {
        anyhow::ensure!(
            Instant::now() < deadline,
            "dispatch stalled at {} messages received by the provider",
            provider.received.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    loop {
        let sent = store
            .count_messages(Direction::Outbound, Some(DeliveryStatus::Sent))
            .await?;
        if sent as u64 >= count {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "dispatch stalled at {sent} messages sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const TOKEN: &str = "bench-bootstrap-token-0123456789abcdef";

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

fn phone(customer: usize) -> String {
    format!("+1650555{:04}", customer % 10_000)
}

/// A customer's text message as WhatsApp delivers it (about 1 KB), unique per `n`.
fn webhook_body(n: usize) -> Vec<u8> {
    let from = phone(n % CUSTOMERS);
    let digits = from.trim_start_matches('+');
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550783881",
                                 "phone_number_id": PHONE_NUMBER_ID},
                    "contacts": [{"profile": {"name": format!("Customer {}", n % CUSTOMERS)},
                                  "wa_id": digits}],
                    "messages": [{
                        "from": digits,
                        "id": format!("wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTdCNUM2RDdFOEY5{n:012}"),
                        "timestamp": time::OffsetDateTime::now_utc().unix_timestamp().to_string(),
                        "type": "text",
                        "text": {"body": format!("Hello, I have a question about my order number {n}. \
                                  Could you tell me when it will arrive? Thank you very much!")}
                    }]
                }
            }]
        }]
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Posts every body to `url` as a signed webhook from 64 concurrent senders; the time it took
/// and each request's latency.
async fn load(
    client: &reqwest::Client,
    url: &str,
    bodies: &[Vec<u8>],
) -> (Duration, Vec<Duration>) {
    send_all(client, url, bodies, false).await
}

async fn load_authorised(
    client: &reqwest::Client,
    url: &str,
    bodies: &[Vec<u8>],
) -> (Duration, Vec<Duration>) {
    send_all(client, url, bodies, true).await
}

async fn send_all(
    client: &reqwest::Client,
    url: &str,
    bodies: &[Vec<u8>],
    api: bool,
) -> (Duration, Vec<Duration>) {
    let bodies = Arc::new(bodies.to_vec());
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, bodies, next) =
            (client.clone(), url.to_owned(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(body) = bodies.get(i) else { break };
                let mut request = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone());
                request = if api {
                    request.bearer_auth(TOKEN)
                } else {
                    request.header(
                        "x-hub-signature-256",
                        switchboard_channels::signature::sign_meta(APP_SECRET, body),
                    )
                };
                let t = Instant::now();
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                    }
                    Ok(response) => {
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        panic!("request {i} answered {status}: {text}");
                    }
                    Err(error) => panic!("request {i} failed: {error}"),
                }
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::with_capacity(bodies.len());
    for task in tasks {
        if let Ok(l) = task.await {
            latencies.extend(l);
        }
    }
    (started.elapsed(), latencies)
}

async fn bare_endpoint() -> String {
    let app = Router::new().route("/", post(|| async { "" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

struct FakeProvider {
    base: String,
    received: Arc<AtomicU64>,
}

/// Answers every send like the Graph API, at once.
async fn fake_provider() -> FakeProvider {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = Router::new().route(
        "/v23.0/{phone_number_id}/messages",
        post(move |Json(body): Json<Value>| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                Json(json!({"messaging_product": "whatsapp",
                            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                            "messages": [{"id": format!("wamid.BENCH{n}")}]}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeProvider {
        base: format!("http://{addr}/v23.0"),
        received,
    }
}
