//! How fast the inbox list answers on SQLite with 100,000 conversations and 1,000,000
//! messages (issue 5):
//!
//!     RUST_LOG=error cargo run --release -p switchboard --example inbox_bench
//!
//! The database is made by the server's own start (so every migration runs), its senders,
//! users and tokens through the API, and the bulk of it (contacts, conversations, messages
//! with their status timelines, conversation moves) by multi-row INSERTs of the rows the app
//! itself writes, because a million messages through the API would take hours. The server is
//! then started again on it, as after a restart, and each inbox query is timed through the
//! HTTP API from this process, as an inbox user meets it, then once through the store alone.
//!
//! `INBOX_BENCH_DB=path` keeps the database there and reuses it on the next run (skipping the
//! seeding); `INBOX_BENCH_CONVERSATIONS` scales the data (ten messages per conversation).
//!
//! The server and this load generator share the machine's cores: the figures are for
//! comparing changes on one machine, not promises.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use switchboard::config::{Config, FlagOverrides};
use switchboard_app::SystemClock;
use switchboard_core::conversation::ConversationState;
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Direction, Message, StatusEvent,
};
use switchboard_core::{Channel, MessageId, SenderId};
use switchboard_store::conversations::{ConversationFilter, ConversationSort};

const TOKEN: &str = "inbox-bench-bootstrap-token-0123456789abcdef";
const DAY_MS: i64 = 86_400_000;
/// Sequential requests timed per case, after the warm-up.
const SAMPLES: usize = 30;
const WARM_UP: usize = 3;
/// A word put in one message of every `RARE_EVERY`th conversation, and nowhere else.
const RARE_WORD: &str = "quokka";
const RARE_EVERY: usize = 8_000;
const AGENTS: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let conversations: usize = std::env::var("INBOX_BENCH_CONVERSATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let messages = conversations * 10;
    let temp = tempfile::tempdir()?;
    let kept = std::env::var_os("INBOX_BENCH_DB").map(PathBuf::from);
    let db_path = kept.clone().unwrap_or_else(|| temp.path().join("inbox.db"));
    let reuse = db_path.exists();
    let url = format!("sqlite://{}", db_path.display());
    println!(
        "switchboard inbox bench: SQLite, {conversations} conversations, {messages} messages, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let config = config(&url, temp.path());
    let people = if reuse {
        println!("reusing {}", db_path.display());
        None
    } else {
        let (server, _) = switchboard::start(&config, Arc::new(SystemClock)).await?;
        let people = setup_people(&format!("http://{}", server.addr)).await?;
        server.stop().await?;
        let started = Instant::now();
        seed(&db_path, &people, conversations, messages).await?;
        println!(
            "seeded in {:.1} s; database {:.0} MB",
            started.elapsed().as_secs_f64(),
            size_mb(&db_path)
        );
        Some(people)
    };

    // Started again on the full database, as a deployment would be after a restart.
    let started = Instant::now();
    let (server, _) = switchboard::start(&config, Arc::new(SystemClock)).await?;
    println!(
        "server started on it in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let people = match people {
        Some(p) => p,
        None => find_people(&client, &base).await?,
    };
    let admin = token_for(&client, &base, &people.admin).await?;
    let agent = token_for(&client, &base, &people.agents[0]).await?;

    // The seeded rows read back through the API as the app's own do.
    let first = get(&client, &base, &admin, &[("state", "closed".into())]).await?;
    let id = first["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let detail: Value = client
        .get(format!("{base}/api/v1/conversations/{id}"))
        .bearer_auth(&admin)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    anyhow::ensure!(
        detail["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "a seeded conversation reads back without messages: {detail}"
    );

    let name = people.search_name.clone();
    let phone = people.search_phone.clone();
    let mut cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("Unclaimed tab", vec![("state", "unclaimed".into())]),
        (
            "Mine tab",
            vec![("assignee", "me".into()), ("state", "claimed".into())],
        ),
        ("All claimed tab", vec![("state", "claimed".into())]),
        ("Closed tab", vec![("state", "closed".into())]),
        ("Everything, newest first", vec![]),
        (
            "Oldest waiting (sort=waiting)",
            vec![("sort", "waiting".into())],
        ),
        (
            "Unclaimed, oldest waiting",
            vec![("state", "unclaimed".into()), ("sort", "waiting".into())],
        ),
        ("Channel sms", vec![("channel", "sms".into())]),
        (
            "Sender (WhatsApp), no tab",
            vec![("sender_id", people.senders[0].clone())],
        ),
        (
            "Sender (WhatsApp), oldest waiting",
            vec![
                ("sender_id", people.senders[0].clone()),
                ("sort", "waiting".into()),
            ],
        ),
        (
            "Sender (SMS) and closed",
            vec![
                ("sender_id", people.senders[2].clone()),
                ("state", "closed".into()),
            ],
        ),
        ("Search: contact name", vec![("q", name)]),
        ("Search: phone prefix", vec![("q", phone)]),
        (
            "Search: rare word in messages",
            vec![("q", RARE_WORD.to_owned())],
        ),
        ("Search: common word", vec![("q", "refund".into())]),
        (
            "Search: common word, closed",
            vec![("q", "refund".into()), ("state", "closed".into())],
        ),
    ];
    if people.senders.len() < 3 {
        cases.retain(|(label, _)| !label.starts_with("Sender"));
    }

    println!(
        "\nGET /api/v1/conversations, {WARM_UP} warm-up then {SAMPLES} sequential requests, \
         50 a page (ms)"
    );
    print_header();
    for (label, query) in &cases {
        let a = time_http(&client, &base, &admin, query).await?;
        let b = time_http(&client, &base, &agent, query).await?;
        print_row(label, &a, &b);
    }
    // Page 2 of the unclaimed tab: each viewer's own cursor.
    let page2 = |token: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let first = get(&client, &base, &token, &[("state", "unclaimed".into())]).await?;
            let cursor = first["next_cursor"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("no second page"))?
                .to_owned();
            time_http(
                &client,
                &base,
                &token,
                &[("state", "unclaimed".into()), ("cursor", cursor)],
            )
            .await
        }
    };
    let (a, b) = (page2(admin.clone()).await?, page2(agent.clone()).await?);
    print_row("Unclaimed tab, page 2 (cursor)", &a, &b);
    let a = time_path(&client, &base, &admin, "/api/v1/conversations/counts").await?;
    let b = time_path(&client, &base, &agent, "/api/v1/conversations/counts").await?;
    print_row("GET /conversations/counts", &a, &b);

    // The same main tab without HTTP, JSON or authentication: what the store alone costs.
    let store = server.state.store().clone();
    let agent_senders: Vec<SenderId> = people.agent_senders.clone();
    let mut store_times = Vec::new();
    for visible in [None, Some(agent_senders)] {
        let filter = ConversationFilter {
            state: Some(ConversationState::Unclaimed),
            visible_senders: visible,
            sort: ConversationSort::NewestActivity,
            ..Default::default()
        };
        let mut times = Vec::new();
        let mut items = 0;
        for i in 0..WARM_UP + SAMPLES {
            let t = Instant::now();
            let (page, _) = store.list_conversations(&filter, 50, None).await?;
            if i >= WARM_UP {
                times.push(t.elapsed());
            }
            items = page.len();
        }
        store_times.push(Timing::of(times, items));
    }
    println!();
    print_row(
        "Store::list_conversations, unclaimed",
        &store_times[0],
        &store_times[1],
    );
    server.stop().await?;
    if kept.is_some() {
        println!("\nkept {}", db_path.display());
    }
    Ok(())
}

fn config(url: &str, dir: &Path) -> Config {
    let empty = dir.join("switchboard.toml");
    let _ = std::fs::write(&empty, "");
    let env = [
        ("SWITCHBOARD_DATABASE_URL", url.to_owned()),
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

fn size_mb(db: &Path) -> f64 {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    (size(db) + size(&wal)) as f64 / 1e6
}

// ---------------------------------------------------------------------------------------------
// Timing

struct Timing {
    items: usize,
    p50: f64,
    p95: f64,
    max: f64,
}

impl Timing {
    fn of(mut times: Vec<Duration>, items: usize) -> Self {
        times.sort();
        let at = |p: f64| {
            let i = ((times.len() as f64 - 1.0) * p).round() as usize;
            times.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        Timing {
            items,
            p50: at(0.5),
            p95: at(0.95),
            max: at(1.0),
        }
    }
}

fn print_header() {
    println!(
        "{:<38} {:>27}   {:>27}",
        "", "admin (all senders)", "agent (2 of 3 senders)"
    );
    println!(
        "{:<38} {:>6} {:>6} {:>6} {:>6}   {:>6} {:>6} {:>6} {:>6}",
        "case", "items", "p50", "p95", "max", "items", "p50", "p95", "max"
    );
}

fn print_row(label: &str, a: &Timing, b: &Timing) {
    println!(
        "{label:<38} {:>6} {:>6.1} {:>6.1} {:>6.1}   {:>6} {:>6.1} {:>6.1} {:>6.1}",
        a.items, a.p50, a.p95, a.max, b.items, b.p50, b.p95, b.max
    );
}

async fn get(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Value> {
    let response = client
        .get(format!("{base}/api/v1/conversations"))
        .query(query)
        .bearer_auth(token)
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "{query:?} answered {status}: {body}");
    Ok(body)
}

async fn time_http(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Timing> {
    let mut times = Vec::new();
    let mut items = 0;
    for i in 0..WARM_UP + SAMPLES {
        let t = Instant::now();
        let body = get(client, base, token, query).await?;
        if i >= WARM_UP {
            times.push(t.elapsed());
        }
        items = body["items"].as_array().map_or(0, Vec::len);
    }
    Ok(Timing::of(times, items))
}

async fn time_path(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
) -> anyhow::Result<Timing> {
    let mut times = Vec::new();
    for i in 0..WARM_UP + SAMPLES {
        let t = Instant::now();
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.bytes().await?;
        if i >= WARM_UP {
            times.push(t.elapsed());
        }
    }
    Ok(Timing::of(times, 0))
}

// ---------------------------------------------------------------------------------------------
// Senders, users and tokens, through the API

struct Person {
    id: String,
    email: String,
}

struct People {
    /// WhatsApp, Messenger, SMS.
    senders: Vec<String>,
    channels: Vec<Channel>,
    admin: Person,
    agents: Vec<Person>,
    /// The senders of `agents[0]`, the agent whose view is timed.
    agent_senders: Vec<SenderId>,
    /// Which senders each agent may use, by index into `senders`.
    permitted: Vec<Vec<usize>>,
    search_name: String,
    search_phone: String,
}

fn permitted_senders(agent: usize) -> Vec<usize> {
    // Everyone answers WhatsApp; half the team also SMS, the other half Messenger.
    if agent < AGENTS / 2 {
        vec![0, 2]
    } else {
        vec![0, 1]
    }
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> anyhow::Result<Value> {
    let response = client
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "POST {url}: {status} {answer}");
    Ok(answer)
}

fn id_of(v: &Value) -> anyhow::Result<String> {
    v["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no id in {v}"))
}

async fn setup_people(base: &str) -> anyhow::Result<People> {
    let client = reqwest::Client::new();
    let channels = vec![Channel::Whatsapp, Channel::Messenger, Channel::Sms];
    let mut senders = Vec::new();
    for channel in &channels {
        let sender = post(
            &client,
            format!("{base}/api/v1/senders"),
            json!({"channel": channel.as_str(), "name": format!("Acme {channel}"),
                   "provider": {"kind": "sandbox"}}),
        )
        .await?;
        senders.push(id_of(&sender)?);
    }
    let user = |email: String, name: String, role: &str, permitted: Vec<String>| {
        let client = client.clone();
        let role = role.to_owned();
        async move {
            let v = post(
                &client,
                format!("{base}/api/v1/users"),
                json!({"email": email, "name": name, "role": role,
                       "permitted_sender_ids": permitted}),
            )
            .await?;
            anyhow::Ok(Person {
                id: id_of(&v)?,
                email,
            })
        }
    };
    let admin = user(
        "admin@acme.example".into(),
        "Ada Admin".into(),
        "admin",
        Vec::new(),
    )
    .await?;
    user(
        "supervisor@acme.example".into(),
        "Sam Supervisor".into(),
        "supervisor",
        senders.clone(),
    )
    .await?;
    let mut agents = Vec::new();
    let mut permitted = Vec::new();
    for a in 0..AGENTS {
        let mine = permitted_senders(a);
        let ids = mine.iter().map(|&i| senders[i].clone()).collect();
        agents.push(
            user(
                format!("agent{a}@acme.example"),
                format!(
                    "{} {}",
                    FIRST[a * 7 % FIRST.len()],
                    LAST[a * 11 % LAST.len()]
                ),
                "agent",
                ids,
            )
            .await?,
        );
        permitted.push(mine);
    }
    let agent_senders = permitted[0]
        .iter()
        .map(|&i| senders[i].parse())
        .collect::<Result<_, _>>()?;
    Ok(People {
        search_name: contact_name(SEARCHED_CONTACT),
        search_phone: phone_search(SEARCHED_CONTACT),
        senders,
        channels,
        admin,
        agents,
        agent_senders,
        permitted,
    })
}

/// The people of a database seeded by an earlier run.
async fn find_people(client: &reqwest::Client, base: &str) -> anyhow::Result<People> {
    let list: Value = client
        .get(format!("{base}/api/v1/users?limit=200"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let users = list["items"].as_array().cloned().unwrap_or_default();
    let find = |email: &str| -> anyhow::Result<(Person, Vec<String>)> {
        let u = users
            .iter()
            .find(|u| u["email"] == email)
            .ok_or_else(|| anyhow::anyhow!("no user {email} in the kept database"))?;
        let senders = u["permitted_sender_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok((
            Person {
                id: id_of(u)?,
                email: email.to_owned(),
            },
            senders,
        ))
    };
    let (admin, _) = find("admin@acme.example")?;
    let (agent, agent_senders) = find("agent0@acme.example")?;
    let senders: Value = client
        .get(format!("{base}/api/v1/senders?limit=10"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let mut by_channel = Vec::new();
    for channel in [Channel::Whatsapp, Channel::Messenger, Channel::Sms] {
        if let Some(s) = senders["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["channel"] == channel.as_str())
        {
            by_channel.push(id_of(s)?);
        }
    }
    Ok(People {
        search_name: contact_name(SEARCHED_CONTACT),
        search_phone: phone_search(SEARCHED_CONTACT),
        senders: by_channel,
        channels: Vec::new(),
        admin,
        agents: vec![agent],
        agent_senders: agent_senders
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?,
        permitted: Vec::new(),
    })
}

async fn token_for(
    client: &reqwest::Client,
    base: &str,
    person: &Person,
) -> anyhow::Result<String> {
    let token = post(
        client,
        format!("{base}/api/v1/tokens"),
        json!({"name": format!("bench {}", person.email), "user_id": person.id}),
    )
    .await?;
    token["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no token in {token}"))
}

// ---------------------------------------------------------------------------------------------
// The data: rows as the app writes them (migrations 0001 to 0007), made in bulk

/// splitmix64: small, fast and seeded, so every run makes the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low + 1) as u64) as i64
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FIRST: [&str; 60] = [
    "Maria",
    "José",
    "Anna",
    "Mohammed",
    "Fatima",
    "Wei",
    "Li",
    "Aisha",
    "Juan",
    "Sofia",
    "Lucas",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Mia",
    "Ahmed",
    "Yuki",
    "Hiro",
    "Chen",
    "Priya",
    "Arjun",
    "Olga",
    "Ivan",
    "Amara",
    "Kwame",
    "Chloé",
    "Louis",
    "Giulia",
    "Marco",
    "Sven",
    "Ingrid",
    "Pedro",
    "Ana",
    "Tomás",
    "Lucía",
    "David",
    "Sarah",
    "James",
    "Grace",
    "Omar",
    "Leila",
    "Daniel",
    "Hannah",
    "Mateo",
    "Valentina",
    "Kofi",
    "Ama",
    "Ravi",
    "Nadia",
    "Jonas",
    "Lea",
    "Felix",
    "Clara",
    "Diego",
    "Camila",
    "Samuel",
    "Zoe",
    "Elias",
    "Nora",
];

const LAST: [&str; 60] = [
    "García",
    "Müller",
    "Smith",
    "Nguyen",
    "Kowalski",
    "Rossi",
    "Dubois",
    "Silva",
    "Kim",
    "Wang",
    "Okafor",
    "Mensah",
    "Patel",
    "Sharma",
    "Ivanova",
    "Lindqvist",
    "Hansen",
    "Jensen",
    "Fernández",
    "López",
    "Martin",
    "Bernard",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Johnson",
    "Brown",
    "Taylor",
    "Wilson",
    "Tanaka",
    "Suzuki",
    "Sato",
    "Ali",
    "Khan",
    "Hassan",
    "Moreau",
    "Laurent",
    "Romano",
    "Conti",
    "Costa",
    "Pereira",
    "Santos",
    "Novak",
    "Horvat",
    "Popescu",
    "Nagy",
    "Kovács",
    "Andersson",
    "Nilsson",
    "O'Brien",
    "Murphy",
    "Walsh",
    "Cohen",
    "Levi",
    "Mendoza",
    "Reyes",
    "Cruz",
    "Herrera",
    "Okonkwo",
];

/// The contact whose name and phone the searches look for.
const SEARCHED_CONTACT: usize = 4_242;

fn contact_name(i: usize) -> String {
    format!(
        "{} {}",
        FIRST[i % FIRST.len()],
        LAST[(i / FIRST.len()) % LAST.len()]
    )
}

/// Mobile number prefixes of a few countries, with how many digits follow each.
const PHONE_PREFIXES: [(&str, u32); 12] = [
    ("+1415", 7),
    ("+1212", 7),
    ("+1646", 7),
    ("+1312", 7),
    ("+1617", 7),
    ("+447700", 6),
    ("+447911", 6),
    ("+49151", 8),
    ("+49176", 8),
    ("+336", 8),
    ("+346", 8),
    ("+52155", 8),
];

/// A distinct E.164 number for each contact: multiplying by a number prime to ten is one to
/// one on the subscriber digits, and scatters them.
fn phone_parts(i: usize) -> (&'static str, String) {
    let (prefix, digits) = PHONE_PREFIXES[i % PHONE_PREFIXES.len()];
    let q = (i / PHONE_PREFIXES.len()) as u64;
    let width = digits as usize;
    let sub = (q * 7_919 + 1_234) % 10u64.pow(digits);
    (prefix, format!("{sub:0width$}"))
}

fn phone(i: usize) -> String {
    let (prefix, sub) = phone_parts(i);
    format!("{prefix}{sub}")
}

/// A search by the start of a number: the prefix and two digits, a few dozen contacts.
fn phone_search(i: usize) -> String {
    let (prefix, sub) = phone_parts(i);
    format!("{prefix}{}", &sub[..2])
}

const INBOUND: [&str; 18] = [
    "Hi, where is my order #{n}?",
    "It was supposed to arrive yesterday.",
    "Can I change the delivery address to my office?",
    "The package arrived damaged, the box was completely crushed.",
    "Thanks!",
    "Do you have the blue one in a larger size?",
    "I would like a refund please.",
    "My tracking number doesn't work on your website.",
    "Are you open on Sunday?",
    "Could someone call me back this afternoon?",
    "I have been waiting for an answer since this morning.",
    "The app keeps logging me out when I try to pay.",
    "ok",
    "Great, thank you so much for your help",
    "Hello",
    "Is it possible to pick it up in the store instead?",
    "I was charged twice for order #{n}.",
    "When will it be back in stock?",
];

const OUTBOUND: [&str; 11] = [
    "Hello {first}, thanks for reaching out!",
    "Let me check that for you, one moment please.",
    "Your order #{n} left our warehouse and should arrive within two business days.",
    "I have issued a refund; it will show on your statement in 3 to 5 business days.",
    "Could you send me a photo of the damage?",
    "Is there anything else I can help you with?",
    "Have a great day!",
    "I have updated the delivery address on order #{n}.",
    "Our stores are open Monday to Saturday, 9 am to 7 pm.",
    "Sorry for the wait, we are receiving more messages than usual today.",
    "You can follow the parcel here: https://track.acme.example/{n}",
];

/// One to three sentences mostly, now and then a long message.
fn text(rng: &mut Rng, direction: Direction, first: &str) -> String {
    let sentences = match rng.below(100) {
        0..=49 => 1,
        50..=84 => 2,
        85..=97 => 3,
        _ => rng.between(6, 10),
    };
    let pool: &[&str] = match direction {
        Direction::Inbound => &INBOUND,
        Direction::Outbound => &OUTBOUND,
    };
    let mut out = String::new();
    for _ in 0..sentences {
        if !out.is_empty() {
            out.push(' ');
        }
        let order = rng.between(100_000, 999_999).to_string();
        out.push_str(
            &rng.pick(pool)
                .replace("{n}", &order)
                .replace("{first}", first),
        );
    }
    out
}

/// A UUIDv7 carrying `ms`, as the app's ids made at that moment would.
fn v7(ms: i64, rng: &mut Rng) -> String {
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&rng.next().to_be_bytes());
    random[8..].copy_from_slice(&rng.next().to_be_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(ms as u64, &random)
        .into_uuid()
        .to_string()
}

/// A bound value of a multi-row INSERT.
enum V {
    Text(String),
    Maybe(Option<String>),
    Int(i64),
    MaybeInt(Option<i64>),
    Bool(bool),
}

impl From<String> for V {
    fn from(s: String) -> Self {
        V::Text(s)
    }
}
impl From<&str> for V {
    fn from(s: &str) -> Self {
        V::Text(s.to_owned())
    }
}
impl From<Option<String>> for V {
    fn from(s: Option<String>) -> Self {
        V::Maybe(s)
    }
}
impl From<i64> for V {
    fn from(n: i64) -> Self {
        V::Int(n)
    }
}
impl From<Option<i64>> for V {
    fn from(n: Option<i64>) -> Self {
        V::MaybeInt(n)
    }
}
impl From<bool> for V {
    fn from(b: bool) -> Self {
        V::Bool(b)
    }
}

/// Rows waiting to go into one table.
struct Rows {
    table: &'static str,
    columns: &'static [&'static str],
    values: Vec<V>,
    written: u64,
}

impl Rows {
    fn new(table: &'static str, columns: &'static [&'static str]) -> Self {
        Rows {
            table,
            columns,
            values: Vec::new(),
            written: 0,
        }
    }

    fn push(&mut self, row: Vec<V>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.values.extend(row);
    }

    /// Writes what is waiting, as many rows a statement as SQLite's limit of 32,766 bound
    /// values allows.
    async fn flush(&mut self, db: &mut SqliteConnection) -> anyhow::Result<()> {
        let width = self.columns.len();
        let per_statement = 32_766 / width;
        let values = std::mem::take(&mut self.values);
        let mut values = values.into_iter().peekable();
        while values.peek().is_some() {
            let chunk: Vec<V> = values.by_ref().take(per_statement * width).collect();
            let rows = chunk.len() / width;
            let row = format!("({})", vec!["?"; width].join(","));
            let sql = format!(
                "INSERT INTO {} ({}) VALUES {}",
                self.table,
                self.columns.join(", "),
                vec![row.as_str(); rows].join(",")
            );
            let mut query = sqlx::query(&sql);
            for v in chunk {
                query = match v {
                    V::Text(s) => query.bind(s),
                    V::Maybe(s) => query.bind(s),
                    V::Int(n) => query.bind(n),
                    V::MaybeInt(n) => query.bind(n),
                    V::Bool(b) => query.bind(b),
                };
            }
            query.execute(&mut *db).await?;
            self.written += rows as u64;
        }
        Ok(())
    }
}

/// What one conversation will hold.
struct Plan {
    state: ConversationState,
    channel: usize,
    last_at: i64,
    waiting: bool,
    messages: usize,
}

fn plan(rng: &mut Rng, conversations: usize, messages: usize, now: i64) -> Vec<Plan> {
    let mut plans: Vec<Plan> = (0..conversations)
        .map(|i| {
            let state = match rng.below(100) {
                0..=19 => ConversationState::Unclaimed,
                20..=49 => ConversationState::Claimed,
                _ => ConversationState::Closed,
            };
            // Customers waiting are recent; closed threads reach back three months.
            let (age_days, waiting) = match state {
                ConversationState::Unclaimed => (3, true),
                ConversationState::Claimed => (14, rng.chance(0.45)),
                ConversationState::Closed => (90, false),
            };
            let last_at = now - rng.between(60_000, age_days * DAY_MS);
            let messages = rng.between(if waiting { 1 } else { 2 }, 19) as usize;
            let channel = match i % 10 {
                0..=5 => 0,
                6 | 7 => 1,
                _ => 2,
            };
            Plan {
                state,
                channel,
                last_at,
                waiting,
                messages,
            }
        })
        .collect();
    // Exactly the number asked for, with each thread keeping its minimum.
    let mut total: usize = plans.iter().map(|p| p.messages).sum();
    while total != messages {
        let p = &mut plans[rng.below(conversations as u64) as usize];
        if total < messages && p.messages < 30 {
            p.messages += 1;
            total += 1;
        } else if total > messages && p.messages > 2 {
            p.messages -= 1;
            total -= 1;
        }
    }
    plans
}

const CONTACT_COLUMNS: &[&str] = &[
    "id",
    "name",
    "phone",
    "whatsapp_user_id",
    "messenger_psid",
    "locale",
    "owner_id",
    "fields",
    "created_at",
    "updated_at",
];
const CONVERSATION_COLUMNS: &[&str] = &[
    "id",
    "contact_id",
    "sender_id",
    "channel",
    "state",
    "assignee_id",
    "last_message_at",
    "last_inbound_at",
    "created_at",
    "updated_at",
    "activity_at",
    "waiting_since",
    "unread_count",
    "preview",
    "preview_direction",
];
const MESSAGE_COLUMNS: &[&str] = &[
    "id",
    "direction",
    "channel",
    "sender_id",
    "contact_id",
    "conversation_id",
    "text",
    "template",
    "media",
    "channel_template_type",
    "status",
    "provider_message_id",
    "error_code",
    "error_provider_code",
    "error_reason",
    "provider_timestamp",
    "tag",
    "business_initiated",
    "redacted",
    "send_at",
    "actor",
    "created_at",
    "updated_at",
];
const STATUS_COLUMNS: &[&str] = &[
    "message_id",
    "seq",
    "status",
    "at",
    "error_code",
    "error_provider_code",
    "error_reason",
];
const EVENT_COLUMNS: &[&str] = &[
    "id",
    "conversation_id",
    "action",
    "from_state",
    "to_state",
    "assignee_id",
    "actor",
    "at",
];

/// One seeded message, enough to write its row and its timeline.
struct Seeded {
    id: String,
    direction: Direction,
    at: i64,
    text: String,
}

async fn seed(
    db_path: &Path,
    people: &People,
    conversations: usize,
    messages: usize,
) -> anyhow::Result<()> {
    let mut db = SqliteConnectOptions::new()
        .filename(db_path)
        .foreign_keys(true)
        .connect()
        .await?;
    // A one-off load: durability of each commit does not matter, memory is plentiful.
    for pragma in [
        "PRAGMA synchronous = OFF",
        "PRAGMA cache_size = -1000000",
        "PRAGMA temp_store = MEMORY",
    ] {
        sqlx::query(pragma).execute(&mut db).await?;
    }
    let mut rng = Rng(5);
    let now = switchboard_core::time::to_millis(time::OffsetDateTime::now_utc());
    let plans = plan(&mut rng, conversations, messages, now);
    let mut contacts = Rows::new("contacts", CONTACT_COLUMNS);
    let mut threads = Rows::new("conversations", CONVERSATION_COLUMNS);
    let mut rows = Rows::new("messages", MESSAGE_COLUMNS);
    let mut statuses = Rows::new("message_status_events", STATUS_COLUMNS);
    let mut events = Rows::new("conversation_events", EVENT_COLUMNS);
    // Which agents answer on each sender.
    let answering: Vec<Vec<&Person>> = (0..people.senders.len())
        .map(|s| {
            people
                .agents
                .iter()
                .zip(&people.permitted)
                .filter(|(_, p)| p.contains(&s))
                .map(|(a, _)| a)
                .collect()
        })
        .collect();
    let started = Instant::now();
    const BLOCK: usize = 5_000;
    for (block, chunk) in plans.chunks(BLOCK).enumerate() {
        for (j, p) in chunk.iter().enumerate() {
            let i = block * BLOCK + j;
            seed_conversation(
                &mut rng,
                i,
                p,
                people,
                &answering[p.channel],
                now,
                [
                    &mut contacts,
                    &mut threads,
                    &mut rows,
                    &mut statuses,
                    &mut events,
                ],
            );
        }
        let mut tx = db.begin().await?;
        for table in [
            &mut contacts,
            &mut threads,
            &mut rows,
            &mut statuses,
            &mut events,
        ] {
            table.flush(&mut tx).await?;
        }
        tx.commit().await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "seeded {} contacts, {} conversations, {} messages, {} status events, {} conversation \
         events in {seconds:.1} s ({:.0} rows/s)",
        contacts.written,
        threads.written,
        rows.written,
        statuses.written,
        events.written,
        (contacts.written + threads.written + rows.written + statuses.written + events.written)
            as f64
            / seconds
    );
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut db)
        .await?;
    db.close().await?;
    Ok(())
}

fn seed_conversation(
    rng: &mut Rng,
    i: usize,
    p: &Plan,
    people: &People,
    answering: &[&Person],
    now: i64,
    [contacts, threads, rows, statuses, events]: [&mut Rows; 5],
) {
    let channel = people.channels[p.channel];
    let sender = &people.senders[p.channel];
    let first = FIRST[i % FIRST.len()];
    let agent = answering[rng.below(answering.len() as u64) as usize];
    let user = format!("user:{}", agent.id);

    // The thread backwards from its last message: the customer wrote first, and the last
    // word is theirs exactly when they are waiting.
    let mut times = vec![p.last_at];
    for _ in 1..p.messages {
        let gap = if rng.chance(0.05) {
            rng.between(DAY_MS / 2, 3 * DAY_MS)
        } else {
            rng.between(20_000, 3 * 3_600_000)
        };
        times.push(times[times.len() - 1] - gap);
    }
    times.reverse();
    let mut directions = vec![Direction::Inbound; p.messages];
    for k in 1..p.messages {
        let previous = directions[k - 1];
        directions[k] = match (rng.chance(0.6), previous) {
            (true, Direction::Inbound) => Direction::Outbound,
            (true, Direction::Outbound) => Direction::Inbound,
            (false, d) => d,
        };
    }
    if let Some(last) = directions.last_mut() {
        *last = if p.waiting {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
    }
    let created_at = times[0];
    let contact_id = v7(created_at, rng);
    let conversation_id = v7(created_at, rng);
    let psid = (channel == Channel::Messenger)
        .then(|| (7_000_000_000_000_000u64 + i as u64 * 37).to_string());
    contacts.push(vec![
        contact_id.clone().into(),
        Some(contact_name(i)).into(),
        Some(phone(i)).into(),
        None::<String>.into(),
        psid.into(),
        None::<String>.into(),
        None::<String>.into(),
        "{}".into(),
        created_at.into(),
        created_at.into(),
    ]);

    let mut seeded = Vec::with_capacity(p.messages);
    for (k, (&at, &direction)) in times.iter().zip(&directions).enumerate() {
        let mut body = text(rng, direction, first);
        if k == 0 && i % RARE_EVERY == RARE_EVERY / 2 {
            body.push_str(" Is the Quokka plush still part of the bundle?");
        }
        seeded.push(Seeded {
            id: v7(at, rng),
            direction,
            at,
            text: body,
        });
    }
    let mut last_inbound = None;
    for m in &seeded {
        let provider_id = match channel {
            Channel::Whatsapp => format!("wamid.HBgL{:016X}{:016X}", rng.next(), rng.next()),
            Channel::Messenger => format!("m_{:016x}{:016x}", rng.next(), rng.next()),
            Channel::Sms => format!("SM{:016x}{:016x}", rng.next(), rng.next()),
        };
        let (status, provider_timestamp, actor, timeline) = match m.direction {
            Direction::Inbound => {
                let sent = m.at - rng.between(0, 1_500);
                last_inbound = Some(sent);
                (
                    DeliveryStatus::Received,
                    Some(sent),
                    None,
                    vec![(DeliveryStatus::Received, m.at)],
                )
            }
            Direction::Outbound => {
                let sent = m.at + rng.between(200, 900);
                let delivered = sent + rng.between(500, 4_000);
                let read = delivered + rng.between(10_000, 2 * 3_600_000);
                let mut timeline =
                    vec![(DeliveryStatus::Queued, m.at), (DeliveryStatus::Sent, sent)];
                if delivered < now {
                    timeline.push((DeliveryStatus::Delivered, delivered));
                }
                // SMS has no read receipts; some customers never open the message.
                if channel != Channel::Sms && read < now && rng.chance(0.8) {
                    timeline.push((DeliveryStatus::Read, read));
                }
                let status = timeline[timeline.len() - 1].0;
                (status, None, Some(user.clone()), timeline)
            }
        };
        let updated_at = timeline[timeline.len() - 1].1;
        rows.push(vec![
            m.id.clone().into(),
            m.direction.as_str().into(),
            channel.as_str().into(),
            sender.clone().into(),
            contact_id.clone().into(),
            Some(conversation_id.clone()).into(),
            Some(m.text.clone()).into(),
            None::<String>.into(),
            None::<String>.into(),
            ChannelTemplateType::Session.as_str().into(),
            status.as_str().into(),
            Some(provider_id).into(),
            None::<String>.into(),
            None::<String>.into(),
            None::<String>.into(),
            provider_timestamp.into(),
            None::<String>.into(),
            false.into(),
            false.into(),
            None::<i64>.into(),
            actor.into(),
            m.at.into(),
            updated_at.into(),
        ]);
        for (seq, (status, at)) in timeline.into_iter().enumerate() {
            statuses.push(vec![
                m.id.clone().into(),
                (seq as i64 + 1).into(),
                status.as_str().into(),
                at.into(),
                None::<String>.into(),
                None::<String>.into(),
                None::<String>.into(),
            ]);
        }
    }

    // The workflow's moves: claimed before the first answer, closed after the last one, and
    // reopened by the customer writing again.
    let first_answer = seeded
        .iter()
        .find(|m| m.direction == Direction::Outbound)
        .map(|m| m.at);
    let last_answer = seeded
        .iter()
        .rev()
        .find(|m| m.direction == Direction::Outbound)
        .map(|m| m.at);
    let mut moves: Vec<Move> = Vec::new();
    let claimed_at = first_answer.map_or(created_at + 60_000, |t| t - 30_000);
    let claimed = (
        "claimed",
        ConversationState::Unclaimed,
        ConversationState::Claimed,
        Some(agent.id.as_str()),
        user.clone(),
        claimed_at,
    );
    match (p.state, last_answer) {
        (ConversationState::Claimed, _) => moves.push(claimed),
        (ConversationState::Closed, Some(last)) => {
            moves.push(claimed);
            let closed_at = (last + rng.between(60_000, 3_600_000)).min(now);
            moves.push((
                "closed",
                ConversationState::Claimed,
                ConversationState::Closed,
                None,
                user.clone(),
                closed_at,
            ));
        }
        (ConversationState::Unclaimed, Some(last)) => {
            moves.push(claimed);
            moves.push((
                "closed",
                ConversationState::Claimed,
                ConversationState::Closed,
                None,
                user.clone(),
                last + 60_000,
            ));
            if let Some(back) = seeded.iter().find(|m| m.at > last + 60_000) {
                moves.push((
                    "reopened",
                    ConversationState::Closed,
                    ConversationState::Unclaimed,
                    None,
                    "contact".to_owned(),
                    back.at,
                ));
            }
        }
        _ => {}
    }
    for (action, from, to, assignee, actor, at) in &moves {
        events.push(vec![
            v7(*at, rng).into(),
            conversation_id.clone().into(),
            (*action).into(),
            from.as_str().into(),
            to.as_str().into(),
            assignee.map(str::to_owned).into(),
            actor.clone().into(),
            (*at).into(),
        ]);
    }

    // What the inbox shows, as the store keeps it up to date message by message.
    let last = &seeded[seeded.len() - 1];
    let trailing = seeded
        .iter()
        .rev()
        .take_while(|m| m.direction == Direction::Inbound)
        .count();
    let waiting_since = p.waiting.then(|| seeded[seeded.len() - trailing].at);
    let unread = match p.state {
        ConversationState::Unclaimed => trailing,
        ConversationState::Claimed if rng.chance(0.5) => trailing,
        _ => 0,
    };
    let preview = switchboard_core::conversation::preview(&Message {
        text: Some(last.text.clone()),
        ..preview_message()
    });
    let updated_at = moves
        .iter()
        .map(|m| m.5)
        .chain([last.at])
        .max()
        .unwrap_or(last.at);
    threads.push(vec![
        conversation_id.clone().into(),
        contact_id.into(),
        sender.clone().into(),
        channel.as_str().into(),
        p.state.as_str().into(),
        (p.state == ConversationState::Claimed)
            .then(|| agent.id.clone())
            .into(),
        Some(last.at).into(),
        last_inbound.into(),
        created_at.into(),
        updated_at.into(),
        last.at.into(),
        waiting_since.into(),
        (unread as i64).into(),
        Some(preview).into(),
        Some(last.direction.as_str().to_owned()).into(),
    ]);
}

/// A conversation event: action, from, to, assignee, actor, time.
type Move<'a> = (
    &'a str,
    ConversationState,
    ConversationState,
    Option<&'a str>,
    String,
    i64,
);

/// A message to make a preview of; only its text matters.
fn preview_message() -> Message {
    let now = time::OffsetDateTime::now_utc();
    Message {
        id: MessageId::new(),
        direction: Direction::Inbound,
        channel: Channel::Whatsapp,
        sender_id: SenderId::new(),
        contact_id: switchboard_core::ContactId::new(),
        conversation_id: None,
        text: None,
        template: None,
        media: None,
        channel_template_type: ChannelTemplateType::Session,
        status: DeliveryStatus::Received,
        status_history: Vec::<StatusEvent>::new(),
        provider_message_id: None,
        error: None,
        provider_timestamp: None,
        tag: None,
        business_initiated: false,
        redacted: false,
        send_at: None,
        actor: None,
        created_at: now,
        updated_at: now,
    }
}
