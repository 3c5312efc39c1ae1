//! Sending under the policy, through the API, on both databases.

use serde_json::{json, Value};
use switchboard_core::sender::TokenStatus;
use switchboard_testkit::{both_backends, TestDb};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::helpers::TestApp;

fn ago(d: Duration) -> String {
    (OffsetDateTime::now_utc() - d).format(&Rfc3339).unwrap()
}

async fn inbound(app: &TestApp, sender: &str, from: &str, text: &str, age: Duration) -> Value {
    app.post(
        "/api/v1/messages/inbound",
        &app.admin,
        json!({"sender_id": sender, "from": from, "text": text, "timestamp": ago(age),
               "name": "Grace"}),
    )
    .await
    .ok(201)
    .clone()
}

async fn approved_template(
    app: &TestApp,
    sender: &str,
    name: &str,
    locale: &str,
    body: &str,
) -> String {
    let created = app
        .post(
            "/api/v1/templates",
            &app.admin,
            json!({"sender_id": sender, "name": name, "locale": locale, "category": "UTILITY",
                   "body": body, "variable_mapping": {"1": "contact.name"}}),
        )
        .await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["status"], "draft");
    app.post(
        &format!("/api/v1/templates/{id}/submit"),
        &app.admin,
        json!({}),
    )
    .await
    .ok(200);
    app.post(
        &format!("/api/v1/templates/{id}/status"),
        &app.admin,
        json!({"status": "approved"}),
    )
    .await
    .ok(200);
    id
}

async fn counts(app: &TestApp) -> (usize, usize, i64) {
    let messages = app.get("/api/v1/messages?limit=200", &app.admin).await.body["items"]
        .as_array()
        .unwrap()
        .len();
    let jobs = app.store().queued_jobs("outbound").await.unwrap().len();
    let decisions = app.store().count_decisions().await.unwrap();
    (messages, jobs, decisions)
}

/// The window runs from the customer's message as the provider timestamped it.
async fn the_window_follows_provider_timestamps(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let old = inbound(&app, &wa, "+442079460958", "hello?", Duration::hours(25)).await;
    let contact = old["contact_id"].as_str().unwrap().to_owned();
    assert_eq!(old["direction"], "inbound");
    assert_eq!(old["status"], "received");

    let refused = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": wa, "contact_id": contact, "text": "Sorry for the wait"}),
        )
        .await;
    let problem = refused.problem(422, "window_closed");
    assert_eq!(problem["window"]["open"], false);
    assert!(problem["detail"].as_str().unwrap().contains("template"));

    let fresh = inbound(
        &app,
        &wa,
        "+442079460958",
        "still there?",
        Duration::minutes(5),
    )
    .await;
    let check = app
        .post(
            "/api/v1/policy/check",
            &app.admin,
            json!({"sender_id": wa, "contact_id": contact, "text": "Yes!"}),
        )
        .await;
    let check = check.ok(200);
    assert_eq!(check["allowed"], true);
    assert_eq!(check["kind"], "session");
    let sent_at =
        OffsetDateTime::parse(fresh["provider_timestamp"].as_str().unwrap(), &Rfc3339).unwrap();
    let closes =
        OffsetDateTime::parse(check["window"]["closes_at"].as_str().unwrap(), &Rfc3339).unwrap();
    assert_eq!(closes - sent_at, Duration::hours(24));
    assert_eq!(check["allowed_kinds"], json!(["session", "template"]));

    let sent = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": wa, "contact_id": contact, "text": "Yes!"}),
        )
        .await;
    let sent = sent.ok(202);
    assert_eq!(sent["status"], "queued");
    assert_eq!(sent["channel_template_type"], "session");
    assert_eq!(sent["business_initiated"], false);
    assert_eq!(sent["conversation_id"], fresh["conversation_id"]);
    let jobs = app.store().queued_jobs("outbound").await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload["message_id"], sent["id"]);
}

/// Refusals write nothing but their decision; an allowed send writes the message, its job and
/// its decision together.
async fn a_refused_send_leaves_only_its_decision(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let contact = app.contact("+442079460958").await;
    let before = counts(&app).await;
    app.post(
        "/api/v1/messages",
        &app.admin,
        json!({"sender_id": wa, "contact_id": contact, "text": "hi"}),
    )
    .await
    .problem(422, "window_closed");
    let after = counts(&app).await;
    assert_eq!(
        (after.0, after.1),
        (before.0, before.1),
        "no message, no job"
    );
    assert_eq!(after.2, before.2 + 1, "one recorded decision");
    let decisions = app
        .store()
        .decisions_for_contact(&contact, 10)
        .await
        .unwrap();
    assert_eq!(decisions[0].code.as_deref(), Some("window_closed"));
    assert!(!decisions[0].allowed);
    assert_eq!(decisions[0].facts["consent"], "none");
    // A dry run is recorded as one too.
    app.post(
        "/api/v1/policy/check",
        &app.admin,
        json!({"sender_id": wa, "contact_id": contact, "text": "hi"}),
    )
    .await
    .ok(200);
    let decisions = app
        .store()
        .decisions_for_contact(&contact, 10)
        .await
        .unwrap();
    assert!(decisions[0].dry_run);
    assert_eq!(counts(&app).await.1, before.1);
}

/// Each refusal code this issue owns, produced through the API.
async fn every_refusal_code_is_reachable_through_the_api(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let sms = app.sandbox_sender("sms").await;
    let messenger = app.sandbox_sender("messenger").await;
    let send = |body: Value| {
        let app = &app;
        async move { app.post("/api/v1/messages", &app.admin, body).await }
    };

    // A known contact who wrote an hour ago: the window is open.
    let grace = inbound(&app, &wa, "+442079460958", "hi", Duration::hours(1)).await["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(json!({"sender_id": wa, "contact_id": grace, "text": "fine"}))
        .await
        .ok(202);

    // unknown_recipient: a number nobody has heard from, on WhatsApp.
    send(json!({"sender_id": wa, "to": "+16505551234", "text": "hi"}))
        .await
        .problem(422, "unknown_recipient");
    // invalid_address / channel_mismatch.
    send(json!({"sender_id": sms, "to": "12345", "text": "hi"}))
        .await
        .problem(422, "invalid_address");
    send(json!({"sender_id": messenger, "to": "+16505551234", "text": "hi"}))
        .await
        .problem(422, "channel_mismatch");
    send(json!({"sender_id": messenger, "contact_id": grace, "text": "hi"}))
        .await
        .problem(422, "channel_mismatch");
    // tag_not_allowed: tags are Messenger's.
    send(json!({"sender_id": wa, "contact_id": grace, "text": "hi", "tag": "ACCOUNT_UPDATE"}))
        .await
        .problem(422, "tag_not_allowed");
    // media_too_large: over the 2.5 MB default.
    send(json!({"sender_id": wa, "contact_id": grace,
                "media": {"kind": "document", "url": "https://example.com/a.pdf", "size_bytes": 2_600_000}}))
        .await
        .problem(422, "media_too_large");
    send(json!({"sender_id": wa, "contact_id": grace,
                "media": {"kind": "document", "url": "https://example.com/a.pdf", "size_bytes": 2_500_000}}))
        .await
        .ok(202);

    // Templates: not found, not approved, variables missing.
    send(json!({"sender_id": wa, "contact_id": grace, "template": {"name": "nope"}}))
        .await
        .problem(422, "template_not_found");
    let draft = app
        .post("/api/v1/templates", &app.admin,
              json!({"sender_id": wa, "name": "draft_one", "locale": "en", "category": "UTILITY", "body": "Hi there"}))
        .await;
    draft.ok(201);
    send(json!({"sender_id": wa, "contact_id": grace, "template": {"name": "draft_one"}}))
        .await
        .problem(422, "template_not_approved");
    let created = app
        .post(
            "/api/v1/templates",
            &app.admin,
            json!({"sender_id": wa, "name": "order_update", "locale": "en", "category": "UTILITY",
                     "body": "Order {{1}} has shipped to you"}),
        )
        .await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/templates/{id}/submit"),
        &app.admin,
        json!({}),
    )
    .await
    .ok(200);
    app.post(
        &format!("/api/v1/templates/{id}/status"),
        &app.admin,
        json!({"status": "approved"}),
    )
    .await
    .ok(200);
    send(json!({"sender_id": wa, "contact_id": grace, "template": {"name": "order_update"}}))
        .await
        .problem(422, "template_variables_missing");
    let ok = send(json!({"sender_id": wa, "contact_id": grace,
                         "template": {"name": "order_update", "variables": {"1": "A-42"}}}))
    .await;
    assert_eq!(ok.ok(202)["channel_template_type"], "template");
    assert_eq!(ok.body["template"]["variables"]["1"], "A-42");

    // consent_required: a template outside the window to a known contact without opt-in.
    let quiet = inbound(&app, &wa, "+33142685300", "bonjour", Duration::hours(30)).await
        ["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(json!({"sender_id": wa, "contact_id": quiet, "template": {"name": "order_update", "variables": {"1": "A"}}}))
        .await
        .problem(422, "consent_required");
    app.post(
        &format!("/api/v1/contacts/{quiet}/consent"),
        &app.admin,
        json!({"channel": "whatsapp", "status": "opted_in", "source": "website",
                    "evidence": "https://shop.example/checkout#optin"}),
    )
    .await
    .ok(201);
    let initiated = send(json!({"sender_id": wa, "contact_id": quiet,
                                "template": {"name": "order_update", "variables": {"1": "A"}}}))
    .await;
    assert_eq!(initiated.ok(202)["business_initiated"], true);

    // messaging_limit_reached: a tier of 1 is used up by `quiet`; a new recipient is refused.
    let mut sender = app.store().get_sender(wa.parse().unwrap()).await.unwrap();
    sender.health.messaging_limit_tier = Some(1);
    app.store().update_sender(&sender).await.unwrap();
    let third = inbound(&app, &wa, "+4930901820", "hallo", Duration::hours(48)).await["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/api/v1/contacts/{third}/consent"),
        &app.admin,
        json!({"channel": "whatsapp", "status": "opted_in", "source": "agent",
               "evidence": "asked on the phone, call 2026-11-22 10:04"}),
    )
    .await
    .ok(201);
    send(json!({"sender_id": wa, "contact_id": third, "template": {"name": "order_update", "variables": {"1": "B"}}}))
        .await
        .problem(422, "messaging_limit_reached");

    // opted_out: STOP from the customer is honoured at once.
    inbound(&app, &wa, "+442079460958", " stop ", Duration::minutes(1)).await;
    let ledger = app
        .get(&format!("/api/v1/contacts/{grace}/consent"), &app.admin)
        .await;
    assert_eq!(ledger.ok(200)["current"]["whatsapp"], "opted_out");
    assert_eq!(ledger.body["events"][0]["source"], "keyword");
    let opted_out = send(json!({"sender_id": wa, "contact_id": grace, "text": "wait!"})).await;
    let problem = opted_out.problem(422, "opted_out");
    assert_eq!(problem["allowed_kinds"], json!([]));

    // dlp_blocked.
    app.send(
        reqwest::Method::PUT,
        "/api/v1/settings/dlp",
        Some(&app.admin),
        Some(json!({"rules": [{"name": "cards", "kind": "payment_card", "action": "block"}]})),
    )
    .await
    .ok(200);
    let sms_contact = app.contact("+61293744000").await;
    send(json!({"sender_id": sms, "contact_id": sms_contact, "text": "card 4111 1111 1111 1111"}))
        .await
        .problem(422, "dlp_blocked");

    // sender_not_permitted: an agent using a sender not assigned to them.
    let (_, agent) = app.user_with_token("agent").await;
    let refused = app
        .post(
            "/api/v1/messages",
            &agent,
            json!({"sender_id": sms, "contact_id": sms_contact, "text": "hi"}),
        )
        .await;
    refused.problem(422, "sender_not_permitted");

    // sender_unavailable: the provider said the token expired.
    let mut expired = app.store().get_sender(sms.parse().unwrap()).await.unwrap();
    expired.health.token_status = TokenStatus::Expired;
    app.store().update_sender(&expired).await.unwrap();
    send(json!({"sender_id": sms, "contact_id": sms_contact, "text": "hi"}))
        .await
        .problem(422, "sender_unavailable");
}

async fn dlp_redacts_before_anything_is_stored_or_sent(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let sms = app.sandbox_sender("sms").await;
    let contact = app.contact("+442079460958").await;
    app.send(
        reqwest::Method::PUT,
        "/api/v1/settings/dlp",
        Some(&app.admin),
        Some(
            json!({"rules": [{"name": "cards", "kind": "payment_card", "action": "redact"},
                                   {"name": "ibans", "kind": "iban", "action": "redact"}]}),
        ),
    )
    .await
    .ok(200);
    let sent = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": sms, "contact_id": contact,
                     "text": "Card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32"}),
        )
        .await;
    let sent = sent.ok(202);
    assert_eq!(sent["redacted"], true);
    let text = sent["text"].as_str().unwrap();
    assert!(!text.contains("4111") && !text.contains("WEST"), "{text}");
    assert!(text.contains("[redacted payment card]"), "{text}");
    let stored = app
        .get(
            &format!("/api/v1/messages/{}", sent["id"].as_str().unwrap()),
            &app.admin,
        )
        .await;
    assert_eq!(stored.ok(200)["text"], text);

    let bad_rules = app
        .send(reqwest::Method::PUT, "/api/v1/settings/dlp", Some(&app.admin),
              Some(json!({"rules": [{"name": "x", "kind": "custom", "pattern": "([", "action": "block"}]})))
        .await;
    assert_eq!(
        bad_rules.problem(422, "invalid_pattern")["field"],
        "rules[0].pattern"
    );
    let (_, agent) = app.user_with_token("agent").await;
    app.send(
        reqwest::Method::PUT,
        "/api/v1/settings/dlp",
        Some(&agent),
        Some(json!({"rules": []})),
    )
    .await
    .problem(403, "forbidden");
}

async fn senders_are_chosen_by_mode_and_sends_are_idempotent(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let sms = app.sandbox_sender("sms").await;
    let first = inbound(
        &app,
        &sms,
        "+442079460958",
        "hi by sms",
        Duration::minutes(3),
    )
    .await;
    let contact = first["contact_id"].as_str().unwrap().to_owned();
    // `auto` answers where the customer last wrote.
    let auto = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender": "auto", "contact_id": contact, "text": "hello"}),
        )
        .await;
    assert_eq!(auto.ok(202)["sender_id"], sms.as_str());
    // `conversation_id` implies its sender.
    let conversation = first["conversation_id"].as_str().unwrap();
    let in_thread = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"conversation_id": conversation, "text": "more"}),
        )
        .await;
    assert_eq!(in_thread.ok(202)["sender_id"], sms.as_str());
    // `owner` needs an owner with a default sender.
    app.post(
        "/api/v1/messages",
        &app.admin,
        json!({"sender": "owner", "contact_id": contact, "text": "x"}),
    )
    .await
    .problem(422, "no_owner_sender");
    // A service token must name a sender.
    app.post(
        "/api/v1/messages",
        &app.admin,
        json!({"contact_id": contact, "text": "x"}),
    )
    .await
    .problem(422, "required");
    app.post(
        "/api/v1/messages",
        &app.admin,
        json!({"sender_id": wa, "contact_id": contact, "text": "x", "template": {"name": "y"}}),
    )
    .await
    .problem(422, "invalid_content");

    let post = |key: &'static str, body: Value| {
        let request = app
            .client
            .post(format!("{}/api/v1/messages", app.base))
            .bearer_auth(&app.admin)
            .header("idempotency-key", key)
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            let replayed = r.headers().contains_key("idempotent-replayed");
            (
                r.status().as_u16(),
                replayed,
                r.json::<Value>().await.unwrap(),
            )
        }
    };
    let body = json!({"sender_id": sms, "contact_id": contact, "text": "your code is 1234"});
    let (status, replayed, a) = post("otp-1", body.clone()).await;
    assert_eq!((status, replayed), (202, false));
    let (status, replayed, b) = post("otp-1", body.clone()).await;
    assert_eq!((status, replayed), (202, true));
    assert_eq!(a["id"], b["id"]);
    let jobs = app.store().queued_jobs("outbound").await.unwrap();
    assert_eq!(
        jobs.iter()
            .filter(|j| j.payload["message_id"] == a["id"])
            .count(),
        1
    );

    // A scheduled message waits.
    let later = (OffsetDateTime::now_utc() + Duration::hours(2))
        .format(&Rfc3339)
        .unwrap();
    let scheduled = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": sms, "contact_id": contact, "text": "reminder", "send_at": later}),
        )
        .await;
    assert_eq!(scheduled.ok(202)["status"], "scheduled");
    let job = app
        .store()
        .queued_jobs("outbound")
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.payload["message_id"] == scheduled.body["id"])
        .unwrap();
    assert!(job.run_at > OffsetDateTime::now_utc() + Duration::minutes(110));
}

async fn templates_are_validated_and_move_through_their_lifecycle(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let messenger = app.sandbox_sender("messenger").await;
    let invalid = app
        .post("/api/v1/templates", &app.admin,
              json!({"sender_id": wa, "name": "Bad Name", "locale": "en", "category": "MARKETING",
                     "body": "{{1}} starts with a variable",
                     "buttons": [{"type": "QUICK_REPLY", "text": "Yes"}, {"type": "URL", "text": "Go", "url": "https://x.com"}]}))
        .await;
    let problem = invalid.problem(422, "invalid_name");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"body") && fields.contains(&"buttons"),
        "{fields:?}"
    );

    let id = approved_template(
        &app,
        &wa,
        "shipping",
        "en_GB",
        "Hello {{1}}, your parcel is on its way",
    )
    .await;
    let fetched = app
        .get(&format!("/api/v1/templates/{id}"), &app.admin)
        .await;
    let fetched = fetched.ok(200);
    assert_eq!(fetched["status"], "approved");
    assert_eq!(fetched["variables"], json!(["1"]));
    let steps: Vec<(&str, &str)> = fetched["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["from"].as_str().unwrap(), t["to"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("draft", "pending"), ("pending", "approved")]);
    assert!(fetched["transitions"][0]["actor"]
        .as_str()
        .unwrap()
        .starts_with("token:"));

    // Approved WhatsApp templates do not change under Meta's approval.
    app.patch(
        &format!("/api/v1/templates/{id}"),
        &app.admin,
        json!({"body": "Changed {{1}} text"}),
    )
    .await
    .problem(409, "template_locked");
    app.post(
        &format!("/api/v1/templates/{id}/status"),
        &app.admin,
        json!({"status": "draft"}),
    )
    .await
    .problem(409, "invalid_transition");
    let paused = app
        .post(
            &format!("/api/v1/templates/{id}/status"),
            &app.admin,
            json!({"status": "paused", "reason": "quality RED"}),
        )
        .await;
    assert_eq!(paused.ok(200)["status_reason"], "quality RED");

    // Messenger tag templates need a tag, no approval, and no promotion.
    let promo = app
        .post("/api/v1/templates", &app.admin,
              json!({"sender_id": messenger, "name": "promo", "locale": "en", "tag": "POST_PURCHASE_UPDATE",
                     "body": "Huge sale: 50% off everything"}))
        .await;
    promo.problem(422, "promotional_content");
    let update = app
        .post("/api/v1/templates", &app.admin,
              json!({"sender_id": messenger, "name": "shipped", "locale": "en", "tag": "POST_PURCHASE_UPDATE",
                     "body": "Your order has shipped"}))
        .await;
    assert_eq!(update.ok(201)["status"], "approved");
    app.post(
        &format!(
            "/api/v1/templates/{}/submit",
            update.body["id"].as_str().unwrap()
        ),
        &app.admin,
        json!({}),
    )
    .await
    .problem(409, "no_approval_needed");

    let (_, agent) = app.user_with_token("agent").await;
    app.get("/api/v1/templates", &agent).await.ok(200);
    app.post(
        "/api/v1/templates",
        &agent,
        json!({"sender_id": wa, "name": "x", "locale": "en", "category": "UTILITY", "body": "Hi"}),
    )
    .await
    .problem(403, "forbidden");
}

/// R4.3: the opt-in request and its outcomes; R4.2: STOP is confirmed, then nothing more.
async fn the_opt_in_request_flow(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let sms = app.sandbox_sender("sms").await;
    let contact = inbound(&app, &wa, "+442079460958", "hi", Duration::minutes(10)).await
        ["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask = |body: Value| {
        let app = &app;
        let contact = contact.clone();
        async move {
            app.post(
                &format!("/api/v1/contacts/{contact}/opt-in-request"),
                &app.admin,
                body,
            )
            .await
        }
    };
    ask(json!({"sender_id": sms}))
        .await
        .problem(422, "channel_mismatch");
    let request = ask(json!({"sender_id": wa})).await;
    assert!(request.ok(202)["text"]
        .as_str()
        .unwrap()
        .contains("Reply YES"));
    let ledger = app
        .get(&format!("/api/v1/contacts/{contact}/consent"), &app.admin)
        .await;
    assert_eq!(ledger.ok(200)["current"]["whatsapp"], "requested");
    // (d) No answer yet: not again within 24 hours.
    ask(json!({"sender_id": wa}))
        .await
        .problem(409, "opt_in_request_too_soon");

    // (c) The customer declines: opted out, told they can reply YES, composing disabled.
    inbound(&app, &wa, "+442079460958", "No", Duration::ZERO).await;
    let ledger = app
        .get(&format!("/api/v1/contacts/{contact}/consent"), &app.admin)
        .await;
    assert_eq!(ledger.ok(200)["current"]["whatsapp"], "opted_out");
    let history = app
        .get(
            &format!("/api/v1/messages?contact_id={contact}&direction=outbound"),
            &app.admin,
        )
        .await;
    let confirmation = history.ok(200)["items"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        confirmation.to_lowercase().contains("yes"),
        "{confirmation}"
    );
    let check = app
        .post(
            "/api/v1/policy/check",
            &app.admin,
            json!({"sender_id": wa, "contact_id": contact, "text": "hi"}),
        )
        .await;
    assert_eq!(check.ok(200)["code"], "opted_out");
    assert_eq!(check.body["allowed_kinds"], json!([]));
    ask(json!({"sender_id": wa}))
        .await
        .problem(409, "opted_out");

    // Any time later, YES opts them in (keyword after an opt-out), and they are told so.
    inbound(&app, &wa, "+442079460958", "yes", Duration::ZERO).await;
    let ledger = app
        .get(&format!("/api/v1/contacts/{contact}/consent"), &app.admin)
        .await;
    assert_eq!(ledger.ok(200)["current"]["whatsapp"], "opted_in");
    ask(json!({"sender_id": wa}))
        .await
        .problem(409, "already_opted_in");

    // STOP: opted out at once, confirmed once, and then nothing else goes out.
    let before = app
        .get(
            &format!("/api/v1/messages?contact_id={contact}&direction=outbound"),
            &app.admin,
        )
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .len();
    inbound(&app, &wa, "+442079460958", "STOP", Duration::ZERO).await;
    let after = app
        .get(
            &format!("/api/v1/messages?contact_id={contact}&direction=outbound"),
            &app.admin,
        )
        .await;
    let items = after.ok(200)["items"].as_array().unwrap();
    assert_eq!(items.len(), before + 1);
    assert!(items[0]["text"].as_str().unwrap().contains("unsubscribed"));
    app.post(
        "/api/v1/messages",
        &app.admin,
        json!({"sender_id": wa, "contact_id": contact, "text": "but wait"}),
    )
    .await
    .problem(422, "opted_out");

    // (a) A contact known to have no WhatsApp is offered SMS instead.
    let other = app.contact("+16505551234").await;
    app.store()
        .set_whatsapp_unavailable(other.parse().unwrap(), Some(OffsetDateTime::now_utc()))
        .await
        .unwrap();
    let refused = app
        .post(
            &format!("/api/v1/contacts/{other}/opt-in-request"),
            &app.admin,
            json!({"sender_id": wa}),
        )
        .await;
    assert!(refused.problem(409, "no_whatsapp")["detail"]
        .as_str()
        .unwrap()
        .contains("SMS"));
}

/// Integrations that automate or send in bulk say so with `purpose`, and the rules for
/// automation (R7.2, R7.4) and bulk (R6.7) bind them.
async fn automated_and_bulk_purposes_follow_their_rules(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let messenger = app.sandbox_sender("messenger").await;
    let contact = inbound(&app, &wa, "+442079460958", "hi", Duration::hours(1)).await["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let fan = inbound(
        &app,
        &messenger,
        "1254459154682919",
        "hello page",
        Duration::hours(1),
    )
    .await["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    approved_template(
        &app,
        &wa,
        "reminder",
        "en",
        "Hi {{1}}, a reminder about your booking",
    )
    .await;
    let send = |body: Value| {
        let app = &app;
        async move { app.post("/api/v1/messages", &app.admin, body).await }
    };
    // template_required: notifications and automations send approved templates only.
    send(json!({"sender_id": wa, "contact_id": contact, "text": "Reminder!", "purpose": "notification"}))
        .await
        .problem(422, "template_required");
    send(json!({"sender_id": wa, "contact_id": contact, "text": "Thanks, we got it", "purpose": "auto_reply"}))
        .await
        .ok(202);
    // bulk_not_allowed: no bulk on Messenger.
    send(json!({"sender_id": messenger, "contact_id": fan, "text": "News for all", "purpose": "bulk"}))
        .await
        .problem(422, "bulk_not_allowed");
    // Bulk needs opt-in even inside a window.
    send(
        json!({"sender_id": wa, "contact_id": contact, "purpose": "bulk",
                "template": {"name": "reminder"}}),
    )
    .await
    .problem(422, "consent_required");

    // outside_business_hours: a schedule with no open hours holds automation, not people.
    let put_hours = |body: Value| {
        let app = &app;
        async move {
            app.send(
                reqwest::Method::PUT,
                "/api/v1/settings/business-hours",
                Some(&app.admin),
                Some(body),
            )
            .await
        }
    };
    let bad = put_hours(json!({"time_zone": "Mars/Base", "weekly": {}})).await;
    assert_eq!(bad.problem(422, "invalid_time_zone")["field"], "time_zone");
    // R4.4: a support conversation is not consent to notifications.
    send(
        json!({"sender_id": wa, "contact_id": contact, "purpose": "notification",
                "template": {"name": "reminder"}}),
    )
    .await
    .problem(422, "consent_required");
    app.post(
        &format!("/api/v1/contacts/{contact}/consent"),
        &app.admin,
        json!({"channel": "whatsapp", "status": "opted_in", "source": "website",
                    "evidence": "https://shop.example/preferences#whatsapp"}),
    )
    .await
    .ok(201);
    put_hours(json!({"time_zone": "Europe/London", "weekly": {}, "holidays": ["2026-12-25"]}))
        .await
        .ok(200);
    let held = send(
        json!({"sender_id": wa, "contact_id": contact, "purpose": "notification",
                           "template": {"name": "reminder"}}),
    )
    .await;
    assert!(held.problem(422, "outside_business_hours")["detail"]
        .as_str()
        .unwrap()
        .contains("business hours"));
    // Messenger and people are not held by business hours.
    send(json!({"sender_id": wa, "contact_id": contact, "text": "An agent answers any time"}))
        .await
        .ok(202);
    send(json!({"sender_id": messenger, "contact_id": fan, "text": "Thanks!", "purpose": "auto_reply"}))
        .await
        .ok(202);
    // Open all week round the clock: the notification goes.
    let always = json!([{"opens": "00:00", "closes": "24:00"}]);
    put_hours(json!({"time_zone": "Europe/London", "weekly": {
        "monday": always, "tuesday": always, "wednesday": always, "thursday": always,
        "friday": always, "saturday": always, "sunday": always}}))
    .await
    .ok(200);
    send(
        json!({"sender_id": wa, "contact_id": contact, "purpose": "notification",
                "template": {"name": "reminder"}}),
    )
    .await
    .ok(202);
    app.send(
        reqwest::Method::DELETE,
        "/api/v1/settings/business-hours",
        Some(&app.admin),
        None,
    )
    .await
    .ok(204);
    assert_eq!(
        app.get("/api/v1/settings/business-hours", &app.admin)
            .await
            .ok(200),
        &Value::Null
    );
}

/// Regressions from review: consent cannot be forged or overridden, future timestamps cannot
/// hold a window open, a written address must suit the channel, scheduled sends are judged at
/// their time, and WhatsApp verdicts are Meta's.
async fn the_rules_cannot_be_talked_around(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let messenger = app.sandbox_sender("messenger").await;
    let contact = inbound(&app, &wa, "+442079460958", "hi", Duration::hours(23)).await
        ["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The same person on Messenger.
    app.patch(
        &format!("/api/v1/contacts/{contact}"),
        &app.admin,
        json!({"messenger_psid": "1254459154682919"}),
    )
    .await
    .ok(200);

    // A free text scheduled past the window's end is judged then, and refused.
    let late = (OffsetDateTime::now_utc() + Duration::hours(30))
        .format(&Rfc3339)
        .unwrap();
    app.post(
        "/api/v1/messages",
        &app.admin,
        json!({"sender_id": wa, "contact_id": contact, "text": "later", "send_at": late}),
    )
    .await
    .problem(422, "window_closed");

    // A future timestamp counts as now: the window runs 24 hours from now, not from 9999.
    let future = app
        .post(
            "/api/v1/messages/inbound",
            &app.admin,
            json!({"sender_id": wa, "from": "+442079460958", "text": "from the future",
                     "timestamp": "9999-01-01T00:00:00Z"}),
        )
        .await;
    let stamped = OffsetDateTime::parse(
        future.ok(201)["provider_timestamp"].as_str().unwrap(),
        &Rfc3339,
    )
    .unwrap();
    assert!(stamped <= OffsetDateTime::now_utc());

    // A phone written on a Messenger send is a mismatch, though it names a contact with a PSID.
    app.post(
        "/api/v1/messages",
        &app.admin,
        json!({"sender_id": messenger, "to": "+442079460958", "text": "hi"}),
    )
    .await
    .problem(422, "channel_mismatch");

    // Consent: the system's sources cannot be claimed, a manual opt-in needs evidence, and an
    // agent cannot undo a customer's STOP.
    let (_, agent) = app.user_with_token("agent").await;
    let consent = |token: String, body: Value| {
        let app = &app;
        let contact = contact.clone();
        async move {
            app.post(&format!("/api/v1/contacts/{contact}/consent"), &token, body)
                .await
        }
    };
    consent(agent.clone(), json!({"channel": "whatsapp", "status": "opted_in", "source": "whatsapp_thread", "evidence": "yes"}))
        .await
        .problem(422, "reserved_source");
    consent(
        agent.clone(),
        json!({"channel": "whatsapp", "status": "opted_in", "source": "agent"}),
    )
    .await
    .problem(422, "evidence_required");
    inbound(&app, &wa, "+442079460958", "STOP", Duration::ZERO).await;
    consent(agent.clone(), json!({"channel": "whatsapp", "status": "opted_in", "source": "agent", "evidence": "said so"}))
        .await
        .problem(409, "opted_out_by_contact");
    consent(app.admin.clone(), json!({"channel": "whatsapp", "status": "opted_in", "source": "ivr", "evidence": "call CA123 recording"}))
        .await
        .ok(201);

    // WhatsApp approval is Meta's: never straight from draft, and not recorded by supervisors.
    let draft = app
        .post("/api/v1/templates", &app.admin,
              json!({"sender_id": wa, "name": "skipper", "locale": "en", "category": "UTILITY", "body": "Hi there"}))
        .await;
    let id = draft.ok(201)["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/templates/{id}/status"),
        &app.admin,
        json!({"status": "approved"}),
    )
    .await
    .problem(409, "invalid_transition");
    let (_, supervisor) = app.user_with_token("supervisor").await;
    app.post(
        &format!("/api/v1/templates/{id}/submit"),
        &supervisor,
        json!({}),
    )
    .await
    .ok(200);
    app.post(
        &format!("/api/v1/templates/{id}/status"),
        &supervisor,
        json!({"status": "approved"}),
    )
    .await
    .problem(403, "forbidden");
}

both_backends!(
    the_rules_cannot_be_talked_around,
    automated_and_bulk_purposes_follow_their_rules,
    the_opt_in_request_flow,
    the_window_follows_provider_timestamps,
    a_refused_send_leaves_only_its_decision,
    every_refusal_code_is_reachable_through_the_api,
    dlp_redacts_before_anything_is_stored_or_sent,
    senders_are_chosen_by_mode_and_sends_are_idempotent,
    templates_are_validated_and_move_through_their_lifecycle,
);
