//! `switchboard demo`: the server, sandbox senders on all three channels, simulated customers
//! with a little history, and a live feed of what happens, so a newcomer sees the product at
//! work without credentials.
//!
//! The sample data goes in through the public API, as an integrator's script would: the demo
//! shows nothing the API cannot do, and it exercises the same validation and policy.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use rand::Rng;
use serde_json::{json, Value};
use switchboard_app::auth::NewToken;
use switchboard_app::SystemClock;
use switchboard_core::Role;
use time::{Duration, OffsetDateTime};

use crate::{start, Config};

/// A client of the running server's API, acting with one token.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        Api {
            client: reqwest::Client::new(),
            base: base.into(),
            token: token.into(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The same server, with another token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Api {
            token: token.into(),
            ..self.clone()
        }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn create(&self, path: &str, body: Value) -> anyhow::Result<String> {
        let created = self.post(path, body).await?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("POST {path} answered no id: {created}"))
    }
}

/// A simulated customer of the demo.
pub struct Customer {
    pub name: &'static str,
    /// A phone (E.164) or, on Messenger, a page-scoped id.
    pub address: &'static str,
    pub channel: &'static str,
    pub persona: &'static str,
    pub locale: &'static str,
    /// Their first message, and how long before the demo started they wrote it.
    pub wrote: &'static str,
    pub ago: Duration,
}

pub const CUSTOMERS: [Customer; 6] = [
    Customer {
        name: "Ada Lovelace",
        address: "+442079460958",
        channel: "whatsapp",
        persona: "responsive",
        locale: "en_GB",
        wrote: "Hi! Is my order #1042 on its way?",
        ago: Duration::minutes(10),
    },
    Customer {
        name: "Grace Hopper",
        address: "+16505551234",
        channel: "whatsapp",
        persona: "quiet",
        locale: "en_US",
        wrote: "Could you send me the invoice for order #1038 again?",
        ago: Duration::hours(30),
    },
    Customer {
        name: "Dee Dubois",
        address: "+14155552671",
        channel: "whatsapp",
        persona: "declines",
        locale: "en_US",
        wrote: "Hello, what are your opening hours on Saturday?",
        ago: Duration::hours(1),
    },
    Customer {
        name: "Lou Laurent",
        address: "+33612345678",
        channel: "whatsapp",
        persona: "late",
        locale: "fr",
        wrote: "Bonjour, do you ship to France?",
        ago: Duration::hours(2),
    },
    Customer {
        name: "Noah Novak",
        address: "+447911123456",
        channel: "sms",
        persona: "no_whatsapp",
        locale: "en_GB",
        wrote: "Can I get a text when my parcel is ready to collect?",
        ago: Duration::minutes(20),
    },
    Customer {
        name: "Marta Rossi",
        address: "1254459154682919",
        channel: "messenger",
        persona: "responsive",
        locale: "it",
        wrote: "Hi, I'd like to change my delivery address",
        ago: Duration::days(2),
    },
];

/// What the demo's customers write on their own, now and then.
const WALK_INS: [&str; 6] = [
    "Do you deliver on Saturdays?",
    "Can I change the size of my order?",
    "Thanks for the quick help earlier!",
    "Is the blue one back in stock?",
    "What time do you open tomorrow?",
    "I never got the confirmation e-mail.",
];

/// The ids of what was seeded, by name.
pub struct Seeded {
    pub senders: HashMap<&'static str, String>,
    pub contacts: HashMap<&'static str, String>,
}

/// Seeds a fresh database through the API: senders, users, templates, customers with consent
/// and history, and a few outbound messages the simulated customers will react to.
pub async fn seed(api: &Api, now: OffsetDateTime) -> anyhow::Result<Seeded> {
    let mut senders = HashMap::new();
    for (channel, name, use_case) in [
        ("whatsapp", "Acme Support (WhatsApp)", "support"),
        ("messenger", "Acme on Messenger", "support"),
        ("sms", "Acme SMS", "notifications"),
    ] {
        let id = api
            .create(
                "/api/v1/senders",
                json!({"channel": channel, "name": name, "use_case": use_case,
                       "provider": {"kind": "sandbox"}}),
            )
            .await?;
        senders.insert(channel, id);
    }
    let all_senders: Vec<&String> = senders.values().collect();
    let mut users = Vec::new();
    for (email, name, role) in DEMO_USERS {
        let id = api
            .create(
                "/api/v1/users",
                json!({"email": email, "name": name, "role": role,
                       "default_sender_id": senders["whatsapp"],
                       "permitted_sender_ids": all_senders}),
            )
            .await?;
        users.push(id);
    }
    // The conversations are an agent's: replies as a person (HUMAN_AGENT is theirs alone).
    let issued = api
        .post(
            "/api/v1/tokens",
            json!({"name": "demo agent", "user_id": users[0]}),
        )
        .await?;
    let agent = api.with_token(issued["token"].as_str().context("no token")?);

    let whatsapp = &senders["whatsapp"];
    let template = |name: &str, category: &str, body: &str, extra: Value| {
        let mut t = json!({"sender_id": whatsapp, "name": name, "locale": "en",
                           "category": category, "body": body});
        if let (Some(t), Value::Object(extra)) = (t.as_object_mut(), extra) {
            t.extend(extra);
        }
        t
    };
    for (body, approve) in [
        (
            template(
                "order_update",
                "UTILITY",
                "Hi {{1}}, your order {{2}} has shipped and will arrive {{3}}.",
                json!({"variable_mapping": {"1": "contact.name"}}),
            ),
            true,
        ),
        (
            template(
                "follow_up",
                "UTILITY",
                "Hi {{1}}, we have an update on your request. Reply to this message to continue.",
                json!({"variable_mapping": {"1": "contact.name"}, "recontact": true}),
            ),
            true,
        ),
        (
            template(
                "appointment_reminder",
                "UTILITY",
                "Hi {{1}}, a reminder of your appointment on {{2}}.",
                json!({"variable_mapping": {"1": "contact.name"},
                       "buttons": [{"type": "QUICK_REPLY", "text": "Confirm"},
                                   {"type": "QUICK_REPLY", "text": "Reschedule"}]}),
            ),
            true,
        ),
        (
            template(
                "spring_sale",
                "MARKETING",
                "Spring sale: {{1}} off everything until Sunday.",
                json!({}),
            ),
            false,
        ),
    ] {
        let id = api.create("/api/v1/templates", body).await?;
        // The sale is left a draft, to show a template that cannot be sent yet.
        if !approve {
            continue;
        }
        api.post(&format!("/api/v1/templates/{id}/submit"), json!({}))
            .await?;
        api.post(
            &format!("/api/v1/templates/{id}/status"),
            json!({"status": "approved", "reason": "demo data"}),
        )
        .await?;
    }
    api.create(
        "/api/v1/templates",
        json!({"sender_id": senders["messenger"], "name": "order_shipped", "locale": "en",
               "tag": "POST_PURCHASE_UPDATE",
               "body": "Your order {{1}} has shipped. Track it in your account."}),
    )
    .await?;

    let mut contacts = HashMap::new();
    for c in &CUSTOMERS {
        let address = if c.channel == "messenger" {
            json!({"messenger_psid": c.address})
        } else {
            json!({"phone": c.address})
        };
        let mut body = json!({"name": c.name, "locale": c.locale,
                              "fields": {"sandbox_persona": c.persona}});
        if let (Some(b), Value::Object(a)) = (body.as_object_mut(), address) {
            b.extend(a);
        }
        let id = api.create("/api/v1/contacts", body).await?;
        let wrote = api
            .post(
                "/api/v1/messages/inbound",
                json!({"sender_id": senders[c.channel], "from": c.address, "text": c.wrote,
                       "timestamp": rfc3339(now - c.ago)}),
            )
            .await?;
        // The agent has taken these conversations on: one replies only in a claimed one.
        let conversation = wrote["conversation_id"]
            .as_str()
            .context("an inbound message without a conversation")?;
        agent
            .post(
                &format!("/api/v1/conversations/{conversation}/claim"),
                json!({}),
            )
            .await?;
        contacts.insert(c.name, id);
    }
    // Grace and Ada signed up for WhatsApp updates on the website.
    for name in ["Grace Hopper", "Ada Lovelace"] {
        api.post(
            &format!("/api/v1/contacts/{}/consent", contacts[name]),
            json!({"channel": "whatsapp", "status": "opted_in", "source": "website",
                   "evidence": "checkout form, 'WhatsApp me about my order' ticked"}),
        )
        .await?;
    }

    // Conversations under way: answers in the window, a template where it closed, an opt-in
    // request, a Messenger reply under HUMAN_AGENT, an SMS.
    let send = |sender: &str, contact: &str, extra: Value| {
        let mut body = json!({"sender_id": sender, "contact_id": contact});
        if let (Some(b), Value::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        agent.post("/api/v1/messages", body)
    };
    send(
        whatsapp,
        &contacts["Ada Lovelace"],
        json!({"text": "Hi Ada, it left our warehouse this morning and should be with you tomorrow."}),
    )
    .await?;
    send(
        whatsapp,
        &contacts["Grace Hopper"],
        json!({"template": {"name": "order_update",
                            "variables": {"2": "#1038", "3": "on Thursday"}}}),
    )
    .await?;
    agent
        .post(
            &format!("/api/v1/contacts/{}/opt-in-request", contacts["Dee Dubois"]),
            json!({"sender_id": whatsapp}),
        )
        .await?;
    send(
        whatsapp,
        &contacts["Lou Laurent"],
        json!({"text": "Bonjour Lou, yes: we ship to France in 3 to 5 days."}),
    )
    .await?;
    send(
        &senders["sms"],
        &contacts["Noah Novak"],
        json!({"text": "Hi Noah, we will text you as soon as it is ready."}),
    )
    .await?;
    send(
        &senders["messenger"],
        &contacts["Marta Rossi"],
        json!({"text": "Hi Marta, of course: what is the new address?", "tag": "HUMAN_AGENT"}),
    )
    .await?;
    seed_campaign(api, whatsapp).await?;
    Ok(Seeded { senders, contacts })
}

/// Newsletter subscribers and a campaign to them, running when the demo opens: most tap one of
/// its quick replies, some stay quiet, one says STOP (which reaches the inbox) and two have no
/// WhatsApp (failed, with the reason).
async fn seed_campaign(api: &Api, whatsapp: &str) -> anyhow::Result<()> {
    const FIRST: [&str; 8] = [
        "Amara", "Bruno", "Chloe", "Dmitri", "Elif", "Femi", "Greta", "Hiro",
    ];
    const LAST: [&str; 5] = ["Okafor", "Silva", "Martin", "Ivanova", "Yilmaz"];
    let template = api
        .create(
            "/api/v1/templates",
            json!({"sender_id": whatsapp, "name": "winter_news", "locale": "en",
                   "category": "MARKETING",
                   "body": "Hi {{1}}, our winter collection is in, with 20% off for subscribers this week. Want a look?",
                   "buttons": [{"type": "QUICK_REPLY", "text": "Show me"},
                               {"type": "QUICK_REPLY", "text": "Not now"}],
                   "variable_mapping": {"1": "contact.name"}}),
        )
        .await?;
    api.post(&format!("/api/v1/templates/{template}/submit"), json!({}))
        .await?;
    api.post(
        &format!("/api/v1/templates/{template}/status"),
        json!({"status": "approved", "reason": "demo data"}),
    )
    .await?;
    let mut subscribers = Vec::new();
    for n in 0..40 {
        let persona = match n % 20 {
            3 | 11 | 17 => "quiet",
            7 => "declines",
            13 => "no_whatsapp",
            _ => "responsive",
        };
        let name = format!(
            "{} {}",
            FIRST[n % FIRST.len()],
            LAST[(n / FIRST.len()) % LAST.len()]
        );
        let id = api
            .create(
                "/api/v1/contacts",
                json!({"name": name, "phone": format!("+447700{:06}", 900 + n), "locale": "en",
                       "fields": {"sandbox_persona": persona}}),
            )
            .await?;
        api.post(
            &format!("/api/v1/contacts/{id}/consent"),
            json!({"channel": "whatsapp", "status": "opted_in", "source": "website",
                   "evidence": "newsletter sign-up form, WhatsApp box ticked"}),
        )
        .await?;
        subscribers.push(id);
    }
    let list = api
        .create(
            "/api/v1/lists",
            json!({"name": "Newsletter subscribers", "contact_ids": subscribers}),
        )
        .await?;
    api.create(
        "/api/v1/campaigns",
        json!({"name": "Winter collection", "sender_id": whatsapp, "list_id": list,
               "template": {"name": "winter_news", "locale": "en"},
               "response_timeout_minutes": 60, "rate_limit_per_second": 2, "start": true}),
    )
    .await?;
    Ok(())
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The people of the demo, who sign in to the inbox: (e-mail, name, role). The first is the
/// agent whose conversations the demo starts.
const DEMO_USERS: [(&str, &str, &str); 3] = [
    ("sam@acme.example", "Sam Agent", "agent"),
    ("pat@acme.example", "Pat Supervisor", "supervisor"),
    ("alex@acme.example", "Alex Admin", "admin"),
];

/// Gives the demo's people a new password, printed at start: a demo left running on a
/// reachable address is not open to whoever read an old terminal or this source.
async fn demo_password(api: &Api) -> anyhow::Result<String> {
    let words = [
        "amber", "basil", "cedar", "delta", "ember", "fjord", "grove", "harbor", "indigo",
        "juniper", "kestrel", "lagoon", "maple", "nectar", "orchid", "pepper", "quartz", "raven",
        "saffron", "tundra", "umber", "violet", "willow", "yarrow",
    ];
    let mut rng = rand::thread_rng();
    let password = (0..4)
        .map(|_| words[rng.gen_range(0..words.len())])
        .collect::<Vec<_>>()
        .join("-")
        + &format!("-{:04}", rng.gen_range(0..10_000));
    let users = api.get("/api/v1/users?limit=200").await?;
    for user in users["items"].as_array().into_iter().flatten() {
        let demo = DEMO_USERS
            .iter()
            .any(|(email, _, _)| user["email"].as_str() == Some(email));
        if let (true, Some(id)) = (demo, user["id"].as_str()) {
            api.patch(
                &format!("/api/v1/users/{id}"),
                json!({"password": password}),
            )
            .await?;
        }
    }
    Ok(password)
}

/// `switchboard demo`: seeds an empty database, then runs like `serve` with a live feed.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let mut config = config;
    config.sandbox_customers = true;
    let (server, _) = start(&config, Arc::new(SystemClock)).await?;
    let state = server.state.clone();
    let issued = switchboard_app::auth::create_token_unchecked(
        &state,
        NewToken {
            name: "demo".to_owned(),
            role: Some(Role::Admin),
            scopes: None,
            user_id: None,
            // A new one is made at every start; old ones should not accumulate forever.
            expires_at: Some(state.now() + Duration::days(7)),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = format!("http://{}", server.addr);
    let api = Api::new(&base, &issued.secret);
    let fresh = api.get("/api/v1/senders?limit=1").await?["items"]
        .as_array()
        .is_none_or(Vec::is_empty);
    if fresh {
        seed(&api, state.now()).await.context("seeding the demo")?;
    }
    let password = demo_password(&api)
        .await
        .context("setting the demo password")?;
    let token = &issued.secret;
    let people = DEMO_USERS
        .iter()
        .map(|(email, _, role)| format!("{email} ({role})"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "\nSwitchboard demo: {base}\n\
         \n  Sign in to the inbox at {base}/login as {people}\
         \n  Password (new each start): {password}\n\
         \n  Admin API token (new each start): {token}\n\
         \n  Try:  curl -H 'Authorization: Bearer {token}' {base}/api/v1/messages\
         \n        curl -H 'Authorization: Bearer {token}' {base}/api/v1/contacts\
         \n  The API: {base}/api/v1/openapi.json\n\
         \n  Campaigns: {base}/campaigns (a fresh demo starts one to 40 newsletter subscribers)\n\
         \n  Simulated customers (sandbox senders on WhatsApp, Messenger and SMS):"
    );
    for c in &CUSTOMERS {
        println!("    {:<13} {:<10} {}", c.name, c.channel, c.persona);
    }
    if !fresh {
        println!("  (the database already had senders: nothing was seeded)");
    }
    println!("\nWhat happens, as it happens (Ctrl-C to stop):");
    let feed = tokio::spawn(feed(api.clone()));
    let walk_ins = tokio::spawn(walk_ins(api.clone()));
    crate::shutdown_signal().await;
    feed.abort();
    walk_ins.abort();
    server.stop().await
}

/// Now and then a customer writes in on their own.
async fn walk_ins(api: Api) {
    let mut n: usize = 0;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(20 + (n as u64 * 7) % 15)).await;
        n += 1;
        let talkative: Vec<&Customer> = CUSTOMERS
            .iter()
            .filter(|c| matches!(c.persona, "responsive" | "no_whatsapp"))
            .collect();
        let who = talkative[n % talkative.len()];
        let sender = match api
            .get(&format!("/api/v1/senders?channel={}&limit=1", who.channel))
            .await
        {
            Ok(page) => page["items"][0]["id"].as_str().map(str::to_owned),
            Err(_) => None,
        };
        let Some(sender) = sender else { continue };
        let text = WALK_INS[n % WALK_INS.len()];
        if let Err(error) = api
            .post(
                "/api/v1/messages/inbound",
                json!({"sender_id": sender, "from": who.address, "text": text}),
            )
            .await
        {
            tracing::warn!(?error, "a demo customer could not write in");
        }
    }
}

/// Prints new messages and status changes every second.
async fn feed(api: Api) {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    loop {
        if let Ok(page) = api.get("/api/v1/messages?limit=100").await {
            let mut items = page["items"].as_array().cloned().unwrap_or_default();
            items.reverse();
            for m in items {
                let (Some(id), Some(status)) = (m["id"].as_str(), m["status"].as_str()) else {
                    continue;
                };
                if seen.get(id).map(String::as_str) == Some(status) {
                    continue;
                }
                let first = seen.insert(id.to_owned(), status.to_owned()).is_none();
                let contact = m["contact_id"].as_str().unwrap_or_default().to_owned();
                if !names.contains_key(&contact) {
                    let name = api
                        .get(&format!("/api/v1/contacts/{contact}"))
                        .await
                        .ok()
                        .and_then(|c| c["name"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| "a customer".to_owned());
                    names.insert(contact.clone(), name);
                }
                println!("  {}", describe(&m, &names[&contact], first));
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// One line of the feed: who, which channel, what, and where it stands.
fn describe(m: &Value, name: &str, first: bool) -> String {
    let channel = m["channel"].as_str().unwrap_or_default();
    let what = match (m["text"].as_str(), m["template"]["name"].as_str()) {
        (Some(text), _) if text.chars().count() > 60 => {
            format!("\"{}...\"", text.chars().take(57).collect::<String>())
        }
        (Some(text), _) => format!("\"{text}\""),
        (None, Some(template)) => format!("template {template}"),
        _ => "media".to_owned(),
    };
    let status = m["status"].as_str().unwrap_or_default();
    if m["direction"] == "inbound" {
        format!("{name} ({channel}) wrote: {what}")
    } else if first {
        format!("to {name} ({channel}): {what} [{status}]")
    } else if status == "failed" {
        let reason = m["error"]["reason"].as_str().unwrap_or_default();
        format!("   ...to {name}: {what} failed: {reason}")
    } else {
        format!("   ...to {name}: {what} is {status}")
    }
}
