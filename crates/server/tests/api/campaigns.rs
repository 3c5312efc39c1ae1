//! Campaigns end to end against the fake Graph API, on both databases: exactly one template per
//! opted-in recipient, the opted-out skipped, rate limits retried, answers captured, counters
//! that add up, and the lifecycle on an injected clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use switchboard_app::ManualClock;
use switchboard_testkit::fakes::GraphEndpoint;
use switchboard_testkit::{both_backends, FakeGraph, Reply, TestDb};
use time::{Duration, OffsetDateTime};

use crate::helpers::TestApp;

const PHONE_NUMBER_ID: &str = "106540352242922";
const APP_SECRET: &str = "campaign-app-secret";

async fn graph_sender(app: &TestApp, base: &str) -> String {
    let id = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "whatsapp", "name": "Promotions", "provider": {
            "kind": "whatsapp_cloud", "phone_number_id": PHONE_NUMBER_ID,
            "waba_id": "102290129340398", "access_token": "EAAGfaketoken",
            "app_secret": APP_SECRET, "verify_token": "verify", "api_base_url": base}}),
        )
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Fast enough that 2,000 messages take seconds, not the default 80 a second's 25.
    app.patch(
        &format!("/api/v1/senders/{id}"),
        &app.admin,
        json!({"rate_limit_per_second": 1000}),
    )
    .await
    .ok(200);
    id
}

/// An approved marketing template with two quick replies and its variable mapped to the name.
async fn offer_template(app: &TestApp, sender: &str) {
    app.approved_template(
        json!({"sender_id": sender, "name": "spring_offer", "locale": "en",
               "category": "MARKETING", "body": "Hi {{1}}, spring prices are here. Interested?",
               "buttons": [{"type": "QUICK_REPLY", "text": "Yes"},
                           {"type": "QUICK_REPLY", "text": "No"}],
               "variable_mapping": {"1": "contact.name"}}),
    )
    .await;
}

/// A UK mobile number, distinct for each `n`.
fn phone(n: usize) -> String {
    format!("+447700{n:06}")
}

/// A list imported from CSV: `count` contacts opted in on WhatsApp with the website as evidence.
async fn imported_list(app: &TestApp, name: &str, count: usize) -> String {
    let list = app
        .post("/api/v1/lists", &app.admin, json!({"name": name}))
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut csv = String::from("name,phone,opt_in_source,opt_in_at\n");
    for n in 0..count {
        csv.push_str(&format!(
            "Customer {n},{},website,2026-11-01T10:00:00Z\n",
            phone(n)
        ));
    }
    let response = app
        .client
        .post(format!("{}/api/v1/lists/{list}/import", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    list
}

async fn add_to_list(app: &TestApp, list: &str, contacts: &[String]) {
    app.post(
        &format!("/api/v1/lists/{list}/contacts"),
        &app.admin,
        json!({"contact_ids": contacts}),
    )
    .await
    .ok(200);
}

async fn campaign(app: &TestApp, body: Value) -> Value {
    app.post("/api/v1/campaigns", &app.admin, body)
        .await
        .ok(201)
        .clone()
}

/// Polls the campaign until `done` holds (boundedly), checking on every look that the counters
/// add up.
async fn wait_for(app: &TestApp, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1200 {
        let c = app
            .get(&format!("/api/v1/campaigns/{id}"), &app.admin)
            .await
            .ok(200)
            .clone();
        assert_adds_up(&c["hopper"]);
        if done(&c) {
            return c;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    panic!("campaign {id} never reached: {what}");
}

#[track_caller]
fn assert_adds_up(h: &Value) {
    let sum: i64 = ["fresh", "pending", "retry", "closed", "failed", "skipped"]
        .iter()
        .map(|k| h[k].as_i64().unwrap())
        .sum();
    assert_eq!(sum, h["total"].as_i64().unwrap(), "{h:#}");
}

/// A WhatsApp quick-reply tap on a template, as Meta delivers it.
fn button_reply(from: &str, wamid: &str, label: &str, context: &str, ts: i64) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Customer"}, "wa_id": from}],
        "messages": [{"context": {"from": "15550783881", "id": context}, "from": from,
                      "id": wamid, "timestamp": ts.to_string(), "type": "button",
                      "button": {"payload": label, "text": label}}]}}]}]})
}

async fn a_campaign_sends_once_to_each_and_captures_answers(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = FakeGraph::start().await;
    let sender = graph_sender(&app, &fake.api_base_url()).await;
    offer_template(&app, &sender).await;
    let list = imported_list(&app, "Spring customers", 2000).await;
    // Twenty more who said stop: they are in the list but must never be sent to.
    let mut opted_out = Vec::new();
    for n in 2000..2020 {
        let id = app.contact(&phone(n)).await;
        app.post(
            &format!("/api/v1/contacts/{id}/consent"),
            &app.admin,
            json!({"channel": "whatsapp", "status": "opted_out", "source": "agent"}),
        )
        .await
        .ok(201);
        opted_out.push(id);
    }
    add_to_list(&app, &list, &opted_out).await;
    // Meta throttles the first sends: they are retried, not lost and not failed.
    for _ in 0..3 {
        fake.reply_next(GraphEndpoint::Messages, Reply::whatsapp_rate_limited());
    }

    // A mapping for a variable the template does not have is refused at creation.
    let unmapped = app
        .post(
            "/api/v1/campaigns",
            &app.admin,
            json!({"name": "x", "sender_id": sender, "list_id": list,
                   "template": {"name": "spring_offer", "locale": "en"},
                   "variable_mapping": {"2": "contact.name"}}),
        )
        .await;
    assert_eq!(
        unmapped.problem(422, "unknown_variable")["field"],
        "variable_mapping.2"
    );

    let created = campaign(
        &app,
        json!({"name": "Spring offer", "sender_id": sender, "list_id": list,
               "template": {"name": "spring_offer", "locale": "en"},
               "response_timeout_minutes": 60, "start": true}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["state"], "running");
    assert_eq!(created["hopper"]["total"], 2020);
    assert_adds_up(&created["hopper"]);

    let sent = wait_for(&app, &id, "every recipient sent or skipped", |c| {
        let h = &c["hopper"];
        h["fresh"] == 0 && h["retry"] == 0 && h["in_flight"] == 0 && h["pending"] == 2000
    })
    .await;
    assert_eq!(sent["hopper"]["skipped"], 20, "{sent:#}");
    assert_eq!(sent["hopper"]["failed"], 0);
    assert_eq!(sent["state"], "running", "answers are still awaited");

    // Exactly one template accepted per opted-in recipient; the opted-out never asked for.
    let accepted = fake.sent();
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for s in &accepted {
        *per_recipient.entry(s.recipient.clone()).or_default() += 1;
    }
    assert_eq!(accepted.len(), 2000);
    assert_eq!(per_recipient.len(), 2000);
    assert!(per_recipient.values().all(|n| *n == 1));
    let requests = fake.message_requests();
    assert_eq!(
        requests.len(),
        2003,
        "three throttled attempts and 2,000 sends"
    );
    for n in 2000..2020 {
        let to = phone(n).trim_start_matches('+').to_owned();
        assert!(requests.iter().all(|r| r.json()["to"] != to.as_str()));
    }
    // The template as WhatsApp expects it, its variable filled from the contact's name.
    let first = requests
        .iter()
        .find(|r| r.json()["to"] == "447700000007")
        .unwrap()
        .json();
    assert_eq!(first["type"], "template");
    assert_eq!(first["template"]["name"], "spring_offer");
    assert_eq!(first["template"]["language"]["code"], "en");
    assert_eq!(
        first["template"]["components"][0]["parameters"][0]["text"],
        "Customer 7"
    );

    // Skipped recipients say why.
    let skipped = app
        .get(
            &format!("/api/v1/campaigns/{id}/recipients?state=skipped"),
            &app.admin,
        )
        .await
        .ok(200)
        .clone();
    let skipped = skipped["items"].as_array().unwrap();
    assert_eq!(skipped.len(), 20);
    assert!(
        skipped.iter().all(|r| r["code"] == "opted_out"),
        "{skipped:#?}"
    );

    // Answers: two taps on Yes and one on No are recorded; a free-text answer goes to the inbox.
    let wamid_for = |n: usize| {
        let to = phone(n).trim_start_matches('+').to_owned();
        accepted
            .iter()
            .find(|s| s.recipient == to)
            .unwrap()
            .id
            .clone()
    };
    let webhook = format!("{}/webhooks/whatsapp", app.base);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for (n, label) in [(1, "Yes"), (2, "Yes"), (3, "No")] {
        let from = phone(n).trim_start_matches('+').to_owned();
        let payload = button_reply(
            &from,
            &format!("wamid.answer{n}"),
            label,
            &wamid_for(n),
            now,
        );
        assert_eq!(fake.deliver(&webhook, APP_SECRET, &payload).await, 200);
    }
    let from = phone(4).trim_start_matches('+').to_owned();
    let text = FakeGraph::whatsapp_text(
        PHONE_NUMBER_ID,
        &from,
        "wamid.answer4",
        "What does it cost?",
        now,
    );
    assert_eq!(fake.deliver(&webhook, APP_SECRET, &text).await, 200);
    let answered = wait_for(&app, &id, "four answers", |c| c["hopper"]["closed"] == 4).await;
    assert_eq!(answered["hopper"]["pending"], 1996);
    let breakdown = app
        .get(&format!("/api/v1/campaigns/{id}/answers"), &app.admin)
        .await
        .ok(200)
        .clone();
    assert_eq!(
        breakdown,
        json!([{"answer": "Yes", "count": 2}, {"answer": "No", "count": 1}])
    );
    let closed = app
        .get(
            &format!("/api/v1/campaigns/{id}/recipients?state=closed"),
            &app.admin,
        )
        .await
        .ok(200)
        .clone();
    let outcomes: HashMap<String, (Value, Value)> = closed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["phone"].as_str().unwrap().to_owned(),
                (r["outcome"].clone(), r["answer"].clone()),
            )
        })
        .collect();
    assert_eq!(outcomes[&phone(1)], (json!("answered"), json!("Yes")));
    assert_eq!(outcomes[&phone(3)], (json!("answered"), json!("No")));
    assert_eq!(outcomes[&phone(4)], (json!("free_text"), Value::Null));

    // Only the free-text answer waits for an agent, with the campaign message in its thread.
    let unclaimed = app
        .get("/api/v1/conversations?state=unclaimed", &app.admin)
        .await
        .ok(200)
        .clone();
    let unclaimed = unclaimed["items"].as_array().unwrap();
    assert_eq!(unclaimed.len(), 1, "{unclaimed:#?}");
    let conversation = unclaimed[0]["id"].as_str().unwrap();
    let thread = app
        .get(&format!("/api/v1/conversations/{conversation}"), &app.admin)
        .await
        .ok(200)
        .clone();
    let messages = thread["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert_eq!(messages[0]["template"]["name"], "spring_offer");
    assert_eq!(messages[0]["template"]["variables"]["1"], "Customer 4");
    assert_eq!(messages[1]["text"], "What does it cost?");

    // The history exports as CSV, one row per recipient.
    let export = app
        .client
        .get(format!("{}/api/v1/campaigns/{id}/export", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    assert!(export.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = export.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2021, "a header and 2,020 rows");
    assert!(lines[0].starts_with("seq,contact_id,name,phone,state"));
    assert!(lines
        .iter()
        .any(|l| l.contains(&phone(1)) && l.contains("answered,Yes")));
}

/// A small campaign on a clock the test moves: scheduled start, pause and resume, the response
/// timeout, completion, a retry run, and R6.5's one interaction at a time.
async fn the_lifecycle_runs_on_the_clock(db: TestDb) {
    let start = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    let fake = FakeGraph::start().await;
    let sender = graph_sender(&app, &fake.api_base_url()).await;
    offer_template(&app, &sender).await;
    let list = imported_list(&app, "Five", 5).await;

    // Messenger campaigns are refused by policy.
    let page = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "messenger", "name": "Page", "provider": {"kind": "sandbox"}}),
        )
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        "/api/v1/campaigns",
        &app.admin,
        json!({"name": "m", "sender_id": page, "list_id": list,
               "template": {"name": "spring_offer", "locale": "en"}}),
    )
    .await
    .problem(422, "bulk_not_allowed");

    let at = |d: Duration| {
        (start + d)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let created = campaign(
        &app,
        json!({"name": "Later", "sender_id": sender, "list_id": list,
               "template": {"name": "spring_offer", "locale": "en"},
               "start_at": at(Duration::hours(1)), "response_timeout_minutes": 30}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["state"], "draft");
    let started = app
        .post(
            &format!("/api/v1/campaigns/{id}/start"),
            &app.admin,
            json!({}),
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(started["state"], "scheduled");
    app.post(
        &format!("/api/v1/campaigns/{id}/resume"),
        &app.admin,
        json!({}),
    )
    .await
    .problem(409, "invalid_campaign_state");

    // Nothing goes before its time.
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    assert!(fake.sent().is_empty());
    // When its time comes the business is closed: it runs, held, and says why (R6.7, R7.4).
    let hours = |weekly: Value| {
        let app = &app;
        async move {
            app.send(
                reqwest::Method::PUT,
                "/api/v1/settings/business-hours",
                Some(&app.admin),
                Some(json!({"time_zone": "Europe/London", "weekly": weekly})),
            )
            .await
            .ok(200);
        }
    };
    hours(json!({})).await;
    clock.advance(Duration::hours(1));
    let held = wait_for(&app, &id, "held by business hours", |c| {
        c["held"]["code"] == "outside_business_hours"
    })
    .await;
    assert_eq!(held["state"], "running");
    assert_eq!(held["hopper"]["fresh"], 5);
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    assert!(fake.sent().is_empty());
    let always = json!([{"opens": "00:00", "closes": "24:00"}]);
    hours(
        json!({"monday": always, "tuesday": always, "wednesday": always,
                 "thursday": always, "friday": always, "saturday": always, "sunday": always}),
    )
    .await;
    clock.advance(Duration::minutes(2));
    let running = wait_for(&app, &id, "all five sent", |c| {
        c["hopper"]["pending"] == 5 && c["hopper"]["in_flight"] == 0
    })
    .await;
    assert_eq!(running["state"], "running");
    assert_eq!(running["held"], Value::Null);
    assert_eq!(fake.sent().len(), 5);

    // A second campaign to the same list waits while the first's interactions are open (R6.5).
    let second = campaign(
        &app,
        json!({"name": "Again", "sender_id": sender, "list_id": list,
               "template": {"name": "spring_offer", "locale": "en"}, "start": true}),
    )
    .await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    let waiting = app
        .get(&format!("/api/v1/campaigns/{second_id}"), &app.admin)
        .await
        .ok(200)
        .clone();
    assert_eq!(waiting["hopper"]["fresh"], 5, "{waiting:#}");
    assert_eq!(fake.sent().len(), 5);
    app.post(
        &format!("/api/v1/campaigns/{second_id}/pause"),
        &app.admin,
        json!({}),
    )
    .await
    .ok(200);

    // Half an hour without answers: every interaction times out and the campaign completes.
    clock.advance(Duration::minutes(31));
    let completed = wait_for(&app, &id, "completed", |c| c["state"] == "completed").await;
    assert_eq!(completed["hopper"]["closed"], 5);
    let recipients = app
        .get(&format!("/api/v1/campaigns/{id}/recipients"), &app.admin)
        .await
        .ok(200)
        .clone();
    assert!(recipients["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["outcome"] == "timed_out"));

    // The second resumes now that the first is done, and sends once to each.
    app.post(
        &format!("/api/v1/campaigns/{second_id}/resume"),
        &app.admin,
        json!({}),
    )
    .await
    .ok(200);
    clock.advance(Duration::minutes(2));
    wait_for(&app, &second_id, "second sent", |c| {
        c["hopper"]["pending"] == 5 && c["hopper"]["in_flight"] == 0
    })
    .await;
    assert_eq!(fake.sent().len(), 10);

    // Stopping leaves the state final; only a retry run sends again.
    let stopped = app
        .post(
            &format!("/api/v1/campaigns/{second_id}/stop"),
            &app.admin,
            json!({}),
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(stopped["state"], "stopped");
    app.post(
        &format!("/api/v1/campaigns/{second_id}/start"),
        &app.admin,
        json!({}),
    )
    .await
    .problem(409, "invalid_campaign_state");
}

/// A recipient whose number is not on WhatsApp fails for good with the reason; a retry run
/// sends to it once more.
async fn permanent_failures_fail_and_a_retry_run_tries_again(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = FakeGraph::start().await;
    let sender = graph_sender(&app, &fake.api_base_url()).await;
    offer_template(&app, &sender).await;
    let list = imported_list(&app, "Three", 3).await;
    // A template whose variable nothing maps cannot be sent to a list.
    app.approved_template(
        json!({"sender_id": sender, "name": "bare_offer", "locale": "en",
                   "category": "MARKETING", "body": "Hi {{1}}, new prices."}),
    )
    .await;
    let refused = app
        .post(
            "/api/v1/campaigns",
            &app.admin,
            json!({"name": "x", "sender_id": sender, "list_id": list,
                   "template": {"name": "bare_offer", "locale": "en"}}),
        )
        .await;
    assert_eq!(
        refused.problem(422, "template_variables_missing")["field"],
        "variable_mapping.1"
    );
    fake.reply_next(GraphEndpoint::Messages, Reply::whatsapp_undeliverable());
    let created = campaign(
        &app,
        json!({"name": "Three", "sender_id": sender, "list_id": list,
               "template": {"name": "spring_offer", "locale": "en"}, "start": true,
               "rate_limit_per_second": 5}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let done = wait_for(&app, &id, "one failed, two sent", |c| {
        c["hopper"]["failed"] == 1 && c["hopper"]["pending"] == 2 && c["hopper"]["in_flight"] == 0
    })
    .await;
    assert_eq!(done["rate_limit_per_second"], 5);
    let failed = app
        .get(
            &format!("/api/v1/campaigns/{id}/recipients?state=failed"),
            &app.admin,
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(failed["items"][0]["code"], "not_on_whatsapp", "{failed:#}");
    assert!(failed["items"][0]["reason"].as_str().unwrap().len() > 5);

    let retried = app
        .post(
            &format!("/api/v1/campaigns/{id}/retry"),
            &app.admin,
            json!({}),
        )
        .await
        .ok(200)
        .clone();
    assert_eq!(retried["round"], 1);
    wait_for(&app, &id, "the retry sent", |c| {
        c["hopper"]["pending"] == 3 && c["hopper"]["in_flight"] == 0
    })
    .await;
    assert_eq!(fake.sent().len(), 3);
    assert_eq!(fake.message_requests().len(), 4);
}

/// The sender's messaging-limit tier holds the campaign back once it has reached that many
/// customers in a day (R8.4), and the campaign says so rather than skipping the rest.
async fn the_messaging_limit_holds_a_campaign(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = FakeGraph::start().await;
    let sender = graph_sender(&app, &fake.api_base_url()).await;
    offer_template(&app, &sender).await;
    let list = imported_list(&app, "Five", 5).await;
    let mut stored = app
        .store()
        .get_sender(sender.parse().unwrap())
        .await
        .unwrap();
    stored.health.messaging_limit_tier = Some(2);
    app.store().update_sender(&stored).await.unwrap();
    // Written behind the app's back, as Meta's webhook would be on another node: the sender
    // cache forgets it within two seconds.
    tokio::time::sleep(StdDuration::from_millis(2100)).await;
    let created = campaign(
        &app,
        json!({"name": "Limited", "sender_id": sender, "list_id": list,
               "template": {"name": "spring_offer", "locale": "en"}, "start": true}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let held = wait_for(&app, &id, "held by the limit", |c| {
        c["held"]["code"] == "messaging_limit_reached"
            && c["hopper"]["pending"] == 2
            && c["hopper"]["in_flight"] == 0
    })
    .await;
    assert_eq!(held["hopper"]["fresh"], 3, "{held:#}");
    assert_eq!(held["hopper"]["skipped"], 0);
    assert!(held["held"]["until"].is_string());
    tokio::time::sleep(StdDuration::from_millis(600)).await;
    assert_eq!(fake.sent().len(), 2);
}

/// Pausing withdraws what waits in the outbound queue: nothing goes after the button, and a
/// resumed campaign still reaches everyone exactly once.
async fn pausing_withdraws_what_waits_in_the_queue(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = FakeGraph::start().await;
    let sender = graph_sender(&app, &fake.api_base_url()).await;
    // The sender paces two a second: the campaign's messages wait in the queue for their turn.
    app.patch(
        &format!("/api/v1/senders/{sender}"),
        &app.admin,
        json!({"rate_limit_per_second": 2}),
    )
    .await
    .ok(200);
    offer_template(&app, &sender).await;
    let list = imported_list(&app, "Twelve", 12).await;
    let created = campaign(
        &app,
        json!({"name": "Twelve", "sender_id": sender, "list_id": list,
               "template": {"name": "spring_offer", "locale": "en"}, "start": true}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    wait_for(&app, &id, "one sent, the rest queued", |c| {
        c["hopper"]["fresh"] == 0
            && c["hopper"]["in_flight"].as_i64().unwrap() >= 6
            && !fake.sent().is_empty()
    })
    .await;
    app.post(
        &format!("/api/v1/campaigns/{id}/pause"),
        &app.admin,
        json!({}),
    )
    .await
    .ok(200);
    let paused = wait_for(&app, &id, "nothing in the queue", |c| {
        c["hopper"]["in_flight"] == 0
    })
    .await;
    let sent = fake.sent().len();
    assert!(sent < 12, "{sent} went");
    assert_eq!(paused["hopper"]["pending"], sent as i64, "{paused:#}");
    assert_eq!(paused["hopper"]["fresh"], 12 - sent as i64, "{paused:#}");
    tokio::time::sleep(StdDuration::from_millis(1500)).await;
    assert_eq!(fake.sent().len(), sent, "a withdrawn message went");
    let withdrawn = app
        .get("/api/v1/messages?status=failed&limit=100", &app.admin)
        .await
        .ok(200)["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(withdrawn.len(), 12 - sent, "{withdrawn:#?}");
    assert!(withdrawn
        .iter()
        .all(|m| m["error"]["code"] == "campaign_paused"));

    app.post(
        &format!("/api/v1/campaigns/{id}/resume"),
        &app.admin,
        json!({}),
    )
    .await
    .ok(200);
    wait_for(&app, &id, "everyone reached", |c| {
        c["hopper"]["pending"] == 12 && c["hopper"]["in_flight"] == 0
    })
    .await;
    let mut recipients: Vec<String> = fake.sent().iter().map(|s| s.recipient.clone()).collect();
    assert_eq!(recipients.len(), 12);
    recipients.sort();
    recipients.dedup();
    assert_eq!(recipients.len(), 12, "someone got two");
}

both_backends!(pausing_withdraws_what_waits_in_the_queue);

both_backends!(
    the_messaging_limit_holds_a_campaign,
    a_campaign_sends_once_to_each_and_captures_answers,
    the_lifecycle_runs_on_the_clock,
    permanent_failures_fail_and_a_retry_run_tries_again,
);
