//! The dispatcher against a fake Graph API on loopback that records requests and answers as
//! scripted, on both databases.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use switchboard_app::ManualClock;
use switchboard_testkit::fakes::{graph_error, GraphEndpoint};
use switchboard_testkit::{both_backends, FakeGraph, Reply, TestDb};

use crate::helpers::TestApp;

async fn fake_graph() -> (FakeGraph, String) {
    let fake = FakeGraph::start().await;
    let base = fake.api_base_url();
    (fake, base)
}

/// A WhatsApp Cloud sender with this phone-number id, talking to the fake Graph API at `base`.
async fn graph_sender(app: &TestApp, name: &str, phone_number_id: &str, base: &str) -> String {
    app.post(
        "/api/v1/senders",
        &app.admin,
        json!({"channel": "whatsapp", "name": name, "provider": {
        "kind": "whatsapp_cloud", "phone_number_id": phone_number_id, "waba_id": "102290129340398",
        "access_token": "EAAGfaketoken", "app_secret": "secret", "verify_token": "verify",
        "api_base_url": base}}),
    )
    .await
    .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn messages_leave_and_failures_are_classified(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (fake, base) = fake_graph().await;
    let sender = graph_sender(&app, "WA", "106540352242922", &base).await;
    let inbound = |from: &'static str| {
        let app = &app;
        let sender = sender.clone();
        async move {
            app.post(
                "/api/v1/messages/inbound",
                &app.admin,
                json!({"sender_id": sender, "from": from, "text": "hi"}),
            )
            .await
            .ok(201)["contact_id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let send = |contact: String, text: &'static str| {
        let app = &app;
        let sender = sender.clone();
        async move {
            app.post(
                "/api/v1/messages",
                &app.admin,
                json!({"sender_id": sender, "contact_id": contact, "text": text}),
            )
            .await
            .ok(202)["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };

    // A text leaves in WhatsApp's exact format and comes back with the provider's id.
    let ada = inbound("+442079460958").await;
    let id = send(ada.clone(), "Hello Ada").await;
    let sent = app.message_with_status(&id, "sent").await;
    let accepted = fake.sent();
    assert_eq!(sent["provider_message_id"], accepted[0].id.as_str());
    assert!(accepted[0].id.starts_with("wamid."));
    {
        let requests = fake.message_requests();
        let request = requests.last().unwrap();
        let (path, auth, body) = (
            &request.path,
            request.authorization().unwrap(),
            request.json(),
        );
        assert_eq!(path, "/v23.0/106540352242922/messages");
        assert_eq!(auth, "Bearer EAAGfaketoken");
        assert_eq!(body["messaging_product"], "whatsapp");
        assert_eq!(body["to"], "442079460958");
        assert_eq!(body["type"], "text");
        assert_eq!(body["text"]["body"], "Hello Ada");
    }

    // 131026: failed for good, and the contact is marked as not on WhatsApp (offer SMS).
    let bob = inbound("+16505551234").await;
    fake.reply_next(GraphEndpoint::Messages, Reply::whatsapp_undeliverable());
    let id = send(bob.clone(), "Hello Bob").await;
    let failed = app.message_with_status(&id, "failed").await;
    assert_eq!(failed["error"]["code"], "not_on_whatsapp");
    assert_eq!(failed["error"]["provider_code"], "131026");
    let ask = app
        .post(
            &format!("/api/v1/contacts/{bob}/opt-in-request"),
            &app.admin,
            json!({"sender_id": sender}),
        )
        .await;
    ask.problem(409, "no_whatsapp");

    // 190: the token expired; the message fails, the sender shows it, and sends stop there.
    // (Before the throttling below, which holds back every send of the sender for a while.)
    fake.reply_next(GraphEndpoint::Messages, Reply::graph_token_expired());
    let id = send(ada.clone(), "Expired").await;
    let failed = app.message_with_status(&id, "failed").await;
    assert_eq!(failed["error"]["code"], "token_expired");
    let health = app
        .get(&format!("/api/v1/senders/{sender}"), &app.admin)
        .await;
    assert_eq!(health.ok(200)["health"]["token_status"], "expired");
    app.post(
        "/api/v1/messages",
        &app.admin,
        json!({"sender_id": sender, "contact_id": ada, "text": "again"}),
    )
    .await
    .problem(422, "sender_unavailable");
    // Renaming it changes nothing; a new access token does, and sends resume.
    let renamed = app
        .patch(
            &format!("/api/v1/senders/{sender}"),
            &app.admin,
            json!({"name": "WA renamed"}),
        )
        .await;
    assert_eq!(renamed.ok(200)["health"]["token_status"], "expired");
    let replaced = app
        .patch(
            &format!("/api/v1/senders/{sender}"),
            &app.admin,
            json!({"provider": {"access_token": "EAAGnewtoken"}}),
        )
        .await;
    assert_ne!(replaced.ok(200)["health"]["token_status"], "expired");
    let id = send(ada.clone(), "Back again").await;
    app.message_with_status(&id, "sent").await;

    // 130429 on another number: throughput, retried later; the message waits, queued, with the
    // reason kept.
    let other = graph_sender(&app, "WA 2", "106540352242923", &base).await;
    app.post(
        "/api/v1/messages/inbound",
        &app.admin,
        json!({"sender_id": other, "from": "+442079460958", "text": "hi again"}),
    )
    .await
    .ok(201);
    fake.reply_next(GraphEndpoint::Messages, Reply::whatsapp_rate_limited());
    let id = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": other, "contact_id": ada, "text": "Throttled"}),
        )
        .await
        .ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut retried = None;
    for _ in 0..200 {
        let jobs = app.store().queued_jobs("outbound").await.unwrap();
        if let Some(job) = jobs.into_iter().find(|j| {
            j.payload["message_id"] == id.as_str() && j.attempt >= 1 && j.status == "queued"
        }) {
            retried = Some(job);
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    let job = retried.expect("the throttled send is scheduled again");
    assert!(job.last_error.unwrap().contains("Rate limit"));
    assert!(job.run_at > time::OffsetDateTime::now_utc());
    let waiting = app.get(&format!("/api/v1/messages/{id}"), &app.admin).await;
    assert_eq!(waiting.ok(200)["status"], "queued");
}

/// WhatsApp's pair limit (131056) holds back only that recipient: the next message to them waits,
/// in order, while other customers are still sent to.
async fn the_pair_limit_holds_back_one_recipient_only(db: TestDb) {
    one_recipient_held_back(db, Reply::whatsapp_pair_limit(), "pair rate limit").await;
}

/// A message retried after a temporary failure is not overtaken: the next message to the same
/// recipient waits for it, while other customers are still sent to.
async fn a_retried_message_is_not_overtaken(db: TestDb) {
    let unavailable = Reply::new(500, graph_error(2, "Service temporarily unavailable", None));
    one_recipient_held_back(db, unavailable, "temporarily unavailable").await;
}

/// `reply` to the first message to Ada makes it wait; her next one waits too (without counting
/// an attempt) while Bob's goes.
async fn one_recipient_held_back(db: TestDb, reply: Reply, reason: &str) {
    let app = TestApp::spawn(db).await;
    let (fake, base) = fake_graph().await;
    let sender = graph_sender(&app, "WA", "106540352242922", &base).await;
    let mut contacts = Vec::new();
    for from in ["+442079460958", "+16505551234"] {
        let contact = app
            .post(
                "/api/v1/messages/inbound",
                &app.admin,
                json!({"sender_id": sender, "from": from, "text": "hi"}),
            )
            .await
            .ok(201)["contact_id"]
            .as_str()
            .unwrap()
            .to_owned();
        contacts.push(contact);
    }
    let (ada, bob) = (&contacts[0], &contacts[1]);
    let send = |contact: &str, text: &str| {
        app.post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": sender, "contact_id": contact, "text": text}),
        )
    };
    let job_of = |id: String| {
        let app = &app;
        async move {
            for _ in 0..200 {
                let jobs = app.store().queued_jobs("outbound").await.unwrap();
                if let Some(job) = jobs.into_iter().find(|j| {
                    j.payload["message_id"] == id.as_str()
                        && j.status == "queued"
                        && j.run_at > time::OffsetDateTime::now_utc()
                }) {
                    return job;
                }
                tokio::time::sleep(StdDuration::from_millis(25)).await;
            }
            panic!("message {id} was never held back");
        }
    };
    fake.reply_next(GraphEndpoint::Messages, reply);
    let first = send(ada, "one").await.ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let retried = job_of(first).await;
    assert_eq!(retried.attempt, 1);
    let last_error = retried.last_error.unwrap();
    assert!(last_error.contains(reason), "{last_error}");

    let second = send(ada, "two").await.ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let to_bob = send(bob, "hello").await.ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.message_with_status(&to_bob, "sent").await;
    // Ada's next message waits for the pair limit without counting as a failed attempt.
    let held = job_of(second.clone()).await;
    assert_eq!(held.attempt, 0);
    let waiting = app
        .get(&format!("/api/v1/messages/{second}"), &app.admin)
        .await;
    assert_eq!(waiting.ok(200)["status"], "queued");
    let recipients: Vec<Value> = fake
        .message_requests()
        .iter()
        .map(|r| r.json()["to"].clone())
        .collect();
    assert_eq!(recipients, [json!("442079460958"), json!("16505551234")]);
}

/// A customer writes "hi" to the sender, opening its window; their contact's id.
async fn customer_wrote(app: &TestApp, sender: &str) -> String {
    app.post(
        "/api/v1/messages/inbound",
        &app.admin,
        json!({"sender_id": sender, "from": "+442079460958", "text": "hi"}),
    )
    .await
    .ok(201)["contact_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A scheduled message is checked again when it falls due: a customer who opted out meanwhile
/// does not get it.
async fn an_opt_out_before_sending_stops_the_message(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let sender = app.sandbox_sender("sms").await;
    let contact = customer_wrote(&app, &sender).await;
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let id = app
        .post("/api/v1/messages", &app.admin,
              json!({"sender_id": sender, "contact_id": contact, "text": "Reminder", "send_at": soon}))
        .await
        .ok(202)["id"].as_str().unwrap().to_owned();
    app.post(
        "/api/v1/messages/inbound",
        &app.admin,
        json!({"sender_id": sender, "from": "+442079460958", "text": "STOP"}),
    )
    .await
    .ok(201);
    let failed = app.message_with_status(&id, "failed").await;
    assert_eq!(failed["error"]["code"], "opted_out");
    assert_eq!(failed["provider_message_id"], Value::Null);
}

/// The window checked again when a message goes: a free-form message scheduled inside the
/// window but still waiting once it has closed is refused; one sent inside it goes.
async fn a_free_form_message_goes_only_while_the_window_is_open(db: TestDb) {
    let start = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::spawn_with_clock(db, clock.clone()).await;
    let sender = app.sandbox_sender("whatsapp").await;
    let contact = customer_wrote(&app, &sender).await;
    let send = |text: &str, send_at: Option<time::OffsetDateTime>| {
        let mut body = json!({"sender_id": sender, "contact_id": contact, "text": text});
        if let Some(at) = send_at {
            body["send_at"] = json!(at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap());
        }
        body
    };
    let now = app
        .post("/api/v1/messages", &app.admin, send("Now", None))
        .await
        .ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let late = app
        .post(
            "/api/v1/messages",
            &app.admin,
            send("Later", Some(start + time::Duration::hours(23))),
        )
        .await
        .ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.message_with_status(&now, "sent").await;
    // Due only after the window has closed (the server was down, say).
    clock.advance(time::Duration::hours(25));
    let failed = app.message_with_status(&late, "failed").await;
    assert_eq!(failed["error"]["code"], "window_closed");
    assert_eq!(failed["provider_message_id"], Value::Null);
}

/// The tier counted again when messages go (R8.4): a customer reached already still gets
/// theirs; of two new ones, a tier with one place left lets exactly one through.
async fn the_tier_is_counted_again_when_messages_go(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let sender = app.sandbox_sender("whatsapp").await;
    app.approved_template(
        json!({"sender_id": sender, "name": "shipped", "locale": "en",
                                 "category": "UTILITY", "body": "Your order has shipped."}),
    )
    .await;
    let mut contacts = Vec::new();
    for phone in ["+442079460001", "+442079460002", "+442079460003"] {
        let id = app.contact(phone).await;
        app.post(
            &format!("/api/v1/contacts/{id}/consent"),
            &app.admin,
            json!({"channel": "whatsapp", "status": "opted_in", "source": "website",
                   "evidence": "checkout"}),
        )
        .await
        .ok(201);
        contacts.push(id);
    }
    let template = |contact: &str, send_at: Option<String>| {
        let mut body = json!({"sender_id": sender, "contact_id": contact,
                              "template": {"name": "shipped", "locale": "en"}});
        if let Some(at) = send_at {
            body["send_at"] = json!(at);
        }
        body
    };
    let first = app
        .post("/api/v1/messages", &app.admin, template(&contacts[0], None))
        .await
        .ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.message_with_status(&first, "sent").await;
    // Accepted while the sender has no tier, to go in two seconds.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut ids = Vec::new();
    for contact in &contacts {
        let accepted = app
            .post(
                "/api/v1/messages",
                &app.admin,
                template(contact, Some(later.clone())),
            )
            .await;
        assert_eq!(accepted.ok(202)["status"], "scheduled");
        ids.push(accepted.body["id"].as_str().unwrap().to_owned());
    }
    // Meanwhile Meta gives the number a tier of two customers a day; one is reached already.
    let mut stored = app
        .store()
        .get_sender(sender.parse().unwrap())
        .await
        .unwrap();
    stored.health.messaging_limit_tier = Some(2);
    app.store().update_sender(&stored).await.unwrap();

    app.message_with_status(&ids[0], "sent").await;
    let mut outcomes = Vec::new();
    for id in &ids[1..] {
        let mut last = Value::Null;
        for _ in 0..400 {
            last = app
                .get(&format!("/api/v1/messages/{id}"), &app.admin)
                .await
                .body;
            if last["status"] == "sent" || last["status"] == "failed" {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(25)).await;
        }
        outcomes.push(last);
    }
    let sent = outcomes.iter().filter(|m| m["status"] == "sent").count();
    let refused: Vec<&Value> = outcomes
        .iter()
        .filter(|m| m["status"] == "failed")
        .collect();
    assert_eq!(sent, 1, "{outcomes:#?}");
    assert_eq!(refused.len(), 1, "{outcomes:#?}");
    assert_eq!(refused[0]["error"]["code"], "messaging_limit_reached");
}

/// Meta takes two messages but its answers never come: either may have gone, so neither is
/// sent again until WhatsApp's statuses have had their time. A status echoing our id settles
/// Ada's (it is never sent twice); Bob's, which no status speaks for, goes again after.
async fn a_send_left_unanswered_waits_for_statuses_before_going_again(db: TestDb) {
    let start = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let app = TestApp::spawn_configured(db, clock.clone(), |config| {
        config.dispatch.answer_timeout = StdDuration::from_millis(300);
    })
    .await;
    let grace = switchboard_app::dispatch::DispatchSettings::default().in_flight_grace;
    let (fake, base) = fake_graph().await;
    let sender = graph_sender(&app, "WA", "106540352242922", &base).await;
    let mut sent_ids = Vec::new();
    for (from, text) in [("+442079460958", "one"), ("+16505551234", "two")] {
        let contact = app
            .customer_wrote(&sender, from, time::Duration::minutes(5))
            .await;
        // Meta acts on the send at once; only its answer comes too late.
        fake.set_delay(Some(StdDuration::from_secs(5)));
        let id = app
            .post(
                "/api/v1/messages",
                &app.admin,
                json!({"sender_id": sender, "contact_id": contact, "text": text}),
            )
            .await
            .ok(202)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        sent_ids.push(id);
    }
    fake.wait_for_messages(2, StdDuration::from_secs(30)).await;
    // Each waits out the grace, counting an attempt, saying why.
    for id in &sent_ids {
        let mut waited = 0;
        let job = loop {
            let jobs = app.store().queued_jobs("outbound").await.unwrap();
            if let Some(job) = jobs.into_iter().find(|j| {
                j.payload["message_id"] == id.as_str() && j.status == "queued" && j.attempt == 1
            }) {
                break job;
            }
            waited += 1;
            assert!(waited < 400, "message {id} was never held back");
            tokio::time::sleep(StdDuration::from_millis(25)).await;
        };
        assert!(job.run_at >= start + grace, "{job:?}");
        let error = job.last_error.unwrap();
        assert!(error.contains("statuses are awaited"), "{error}");
    }
    fake.set_delay(None);
    let taken = fake.sent();
    let ada = taken
        .iter()
        .find(|s| s.recipient == "442079460958")
        .unwrap();
    let status = fake.whatsapp_status(ada, "sent", start.unix_timestamp());
    let url = format!("{}/webhooks/whatsapp", app.base);
    assert_eq!(fake.deliver(&url, "secret", &status).await, 200);
    let one = app.message_with_status(&sent_ids[0], "sent").await;
    assert_eq!(one["provider_message_id"], ada.id.as_str());

    clock.advance(grace + time::Duration::seconds(1));
    let two = app.message_with_status(&sent_ids[1], "sent").await;
    let bob: Vec<_> = fake
        .sent()
        .into_iter()
        .filter(|s| s.recipient == "16505551234")
        .collect();
    assert_eq!(bob.len(), 2, "{bob:?}");
    assert_eq!(two["provider_message_id"], bob[1].id.as_str());
    // Ada's job ends without a second request.
    for waited in 0.. {
        let jobs = app.store().queued_jobs("outbound").await.unwrap();
        let ada_job = jobs
            .iter()
            .find(|j| j.payload["message_id"] == sent_ids[0].as_str())
            .unwrap();
        if ada_job.status == "done" {
            break;
        }
        assert!(waited < 400, "{ada_job:?}");
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    let to_ada = fake
        .message_requests()
        .iter()
        .filter(|r| r.json()["to"] == "442079460958")
        .count();
    assert_eq!(to_ada, 1);
}

both_backends!(the_tier_is_counted_again_when_messages_go);

both_backends!(
    a_send_left_unanswered_waits_for_statuses_before_going_again,
    the_pair_limit_holds_back_one_recipient_only,
    a_retried_message_is_not_overtaken,
    messages_leave_and_failures_are_classified,
    an_opt_out_before_sending_stops_the_message,
    a_free_form_message_goes_only_while_the_window_is_open,
);
