//! Switchboard against the testkit's fake providers, end to end: what leaves for each provider
//! byte for byte, how its answers are acted on, and its signed webhooks coming back.

use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use switchboard_testkit::fakes::{GraphEndpoint, SentGraphMessage};
use switchboard_testkit::{both_backends, FakeGraph, FakeTwilio, Reply, TestDb};
use time::{Duration, OffsetDateTime};

use crate::conversations::next_event;
use crate::helpers::TestApp;

const PHONE_NUMBER_ID: &str = "106540352242922";
const PAGE_ID: &str = "1234567890";
const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";
const PUBLIC_URL: &str = "https://switchboard.example.com";

fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

async fn whatsapp_sender(app: &TestApp, fake: &FakeGraph) -> String {
    id_of(app.post("/api/v1/senders", &app.admin, json!({"channel": "whatsapp", "name": "WA", "provider": {
            "kind": "whatsapp_cloud", "phone_number_id": PHONE_NUMBER_ID, "waba_id": "102290129340398",
            "access_token": "EAAGfaketoken", "app_secret": APP_SECRET, "verify_token": "verify",
            "api_base_url": fake.api_base_url()}}))
        .await
        .ok(201))
}

async fn send(app: &TestApp, token: &str, body: Value) -> String {
    id_of(app.post("/api/v1/messages", token, body).await.ok(202))
}

/// Waits (boundedly) until the background processor has handled every stored webhook.
async fn drained(app: &TestApp) {
    for _ in 0..400 {
        if app.store().pending_webhooks(1).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    panic!("webhooks were not processed");
}

/// The one accepted Graph message carrying `message_id` as its callback data.
fn graph_sent(fake: &FakeGraph, message_id: &str) -> SentGraphMessage {
    let matching: Vec<SentGraphMessage> = fake
        .sent()
        .into_iter()
        .filter(|s| s.callback_data.as_deref() == Some(message_id))
        .collect();
    assert_eq!(matching.len(), 1, "{matching:#?}");
    matching.into_iter().next().unwrap()
}

fn timeline(message: &Value) -> Vec<String> {
    message["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_owned())
        .collect()
}

/// Every kind of WhatsApp message the API sends leaves as exactly this JSON.
async fn whatsapp_request_bodies_are_exact(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = FakeGraph::start().await;
    let sender = whatsapp_sender(&app, &fake).await;
    let ada = app
        .customer_wrote(&sender, "+442079460958", Duration::minutes(5))
        .await;

    let template = id_of(app.post("/api/v1/templates", &app.admin,
        json!({"sender_id": sender, "name": "order_update", "locale": "en_US", "category": "UTILITY",
               "header": {"format": "TEXT", "text": "Order {{1}}"},
               "body": "Your order {{1}} has shipped, {{2}}. Thank you!"}))
        .await
        .ok(201));
    fake.reply_next(
        GraphEndpoint::MessageTemplates,
        Reply::new(
            200,
            json!({"id": "1689556908129832", "status": "APPROVED", "category": "UTILITY"}),
        ),
    );
    let submitted = app
        .post(
            &format!("/api/v1/templates/{template}/submit"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(submitted.ok(200)["status"], "approved");

    let text = send(
        &app,
        &app.admin,
        json!({"sender_id": sender, "contact_id": ada, "text": "Hello Ada ✓"}),
    )
    .await;
    let templated = send(&app, &app.admin, json!({"sender_id": sender, "contact_id": ada,
        "template": {"name": "order_update", "locale": "en_US", "variables": {"1": "A-42", "2": "Ada"}}}))
        .await;
    let image = send(&app, &app.admin, json!({"sender_id": sender, "contact_id": ada,
        "media": {"kind": "image", "url": "https://cdn.example.com/receipt.jpg", "caption": "Your receipt"}}))
        .await;
    let document = send(&app, &app.admin, json!({"sender_id": sender, "contact_id": ada,
        "media": {"kind": "document", "url": "https://cdn.example.com/a.pdf", "filename": "invoice.pdf",
                  "caption": "Invoice"}}))
        .await;
    for id in [&text, &templated, &image, &document] {
        let sent = app.message_with_status(id, "sent").await;
        assert_eq!(
            sent["provider_message_id"],
            graph_sent(&fake, id).id.as_str()
        );
    }

    let body_of = |id: &str| {
        let sent = graph_sent(&fake, id);
        assert_eq!(
            sent.request.path,
            format!("/v23.0/{PHONE_NUMBER_ID}/messages")
        );
        assert_eq!(sent.request.authorization(), Some("Bearer EAAGfaketoken"));
        assert_eq!(
            sent.request.header("content-type"),
            Some("application/json")
        );
        sent.request.json()
    };
    assert_eq!(
        body_of(&text),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "442079460958", "biz_opaque_callback_data": text,
               "type": "text", "text": {"body": "Hello Ada ✓"}})
    );
    assert_eq!(
        body_of(&templated),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "442079460958", "biz_opaque_callback_data": templated,
               "type": "template", "template": {
                   "name": "order_update", "language": {"code": "en_US", "policy": "deterministic"},
                   "components": [
                       {"type": "header", "parameters": [{"type": "text", "text": "A-42"}]},
                       {"type": "body", "parameters": [{"type": "text", "text": "A-42"},
                                                       {"type": "text", "text": "Ada"}]}]}})
    );
    assert_eq!(
        body_of(&image),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "442079460958", "biz_opaque_callback_data": image,
               "type": "image", "image": {"link": "https://cdn.example.com/receipt.jpg",
                                          "caption": "Your receipt"}})
    );
    assert_eq!(
        body_of(&document),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "442079460958", "biz_opaque_callback_data": document,
               "type": "document", "document": {"link": "https://cdn.example.com/a.pdf",
                                                "caption": "Invoice", "filename": "invoice.pdf"}})
    );
    assert_eq!(fake.message_requests().len(), 4);
}

/// Messenger: a reply in the window, a tagged update outside it, and a person's HUMAN_AGENT
/// answer within 7 days, each as exactly this JSON, with the page token in the query.
async fn messenger_request_bodies_are_exact(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = FakeGraph::start().await;
    let page = id_of(app.post("/api/v1/senders", &app.admin, json!({"channel": "messenger", "name": "Page", "provider": {
            "kind": "messenger", "page_id": PAGE_ID, "page_access_token": "EAAGpage/token+1",
            "app_secret": APP_SECRET, "verify_token": "page-verify", "api_base_url": fake.api_base_url()}}))
        .await
        .ok(201));
    let recent = app
        .customer_wrote(&page, "1254459154682919", Duration::minutes(5))
        .await;
    let lapsed = app
        .customer_wrote(&page, "6254459154682911", Duration::hours(30))
        .await;
    let days = app
        .customer_wrote(&page, "7254459154682912", Duration::days(3))
        .await;

    let (agent_id, agent) = app.user_with_token("agent").await;
    app.patch(
        &format!("/api/v1/users/{agent_id}"),
        &app.admin,
        json!({"permitted_sender_ids": [page]}),
    )
    .await
    .ok(200);

    let response = send(
        &app,
        &app.admin,
        json!({"sender_id": page, "contact_id": recent, "text": "Thanks for writing!"}),
    )
    .await;
    let tagged = send(
        &app,
        &app.admin,
        json!({"sender_id": page, "contact_id": lapsed,
        "text": "Your account password was changed", "tag": "ACCOUNT_UPDATE"}),
    )
    .await;
    // The agent answers in a conversation they hold (R5.2).
    let theirs = app
        .get(
            &format!("/api/v1/conversations?sender_id={page}&state=unclaimed&limit=200"),
            &agent,
        )
        .await;
    let theirs = theirs.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["contact_id"] == days.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        &format!("/api/v1/conversations/{theirs}/claim"),
        &agent,
        json!({}),
    )
    .await
    .ok(200);
    let human = send(
        &app,
        &agent,
        json!({"sender_id": page, "contact_id": days,
        "text": "Sorry for the wait, I have checked your order", "tag": "HUMAN_AGENT"}),
    )
    .await;

    let mut bodies = Vec::new();
    for id in [&response, &tagged, &human] {
        let sent = app.message_with_status(id, "sent").await;
        let provider_id = sent["provider_message_id"].as_str().unwrap().to_owned();
        let accepted = fake.sent();
        let request = &accepted
            .iter()
            .find(|s| s.id == provider_id)
            .unwrap()
            .request;
        assert_eq!(request.path, format!("/v23.0/{PAGE_ID}/messages"));
        assert_eq!(
            request.query_param("access_token").as_deref(),
            Some("EAAGpage/token+1")
        );
        assert_eq!(request.authorization(), None);
        bodies.push(request.json());
    }
    assert_eq!(
        bodies,
        [
            json!({"recipient": {"id": "1254459154682919"}, "messaging_type": "RESPONSE",
                   "message": {"text": "Thanks for writing!"}}),
            json!({"recipient": {"id": "6254459154682911"}, "messaging_type": "MESSAGE_TAG",
                   "tag": "ACCOUNT_UPDATE", "message": {"text": "Your account password was changed"}}),
            json!({"recipient": {"id": "7254459154682912"}, "messaging_type": "MESSAGE_TAG",
                   "tag": "HUMAN_AGENT",
                   "message": {"text": "Sorry for the wait, I have checked your order"}}),
        ]
    );
}

/// Twilio: a number's text and a Messaging Service's MMS, each as exactly this form, with
/// Basic auth; Twilio's signed status callbacks then move them on.
async fn twilio_request_bodies_are_exact(db: TestDb) {
    let app = TestApp::spawn_with_public_url(db, PUBLIC_URL).await;
    let account_sid = format!("AC{}", "b".repeat(32));
    let fake = FakeTwilio::start(&account_sid, "twilio-auth-token").await;
    let sms = |name: &str, sender: Value| {
        let mut provider = json!({"kind": "twilio", "account_sid": account_sid,
                                  "auth_token": "twilio-auth-token", "api_base_url": fake.base_url()});
        for (k, v) in sender.as_object().unwrap() {
            provider[k] = v.clone();
        }
        json!({"channel": "sms", "name": name, "provider": provider})
    };
    let number = id_of(
        app.post(
            "/api/v1/senders",
            &app.admin,
            sms("Number", json!({"from": "+15005550006"})),
        )
        .await
        .ok(201),
    );
    let service_sid = format!("MG{}", "c".repeat(32));
    let service = id_of(
        app.post(
            "/api/v1/senders",
            &app.admin,
            sms("Service", json!({"messaging_service_sid": service_sid})),
        )
        .await
        .ok(201),
    );
    let grace = app
        .customer_wrote(&number, "+442079460958", Duration::minutes(5))
        .await;
    app.customer_wrote(&service, "+442079460958", Duration::minutes(5))
        .await;

    let text = send(
        &app,
        &app.admin,
        json!({"sender_id": number, "contact_id": grace, "text": "Your table is ready"}),
    )
    .await;
    let mms = send(&app, &app.admin, json!({"sender_id": service, "contact_id": grace,
        "media": {"kind": "image", "url": "https://cdn.example.com/menu.png", "caption": "Tonight's menu"}}))
        .await;
    let text_sent = app.message_with_status(&text, "sent").await;
    let mms_sent = app.message_with_status(&mms, "sent").await;

    let sent = fake.sent();
    let by_sid = |sid: &Value| {
        sent.iter()
            .find(|s| s.sid == sid.as_str().unwrap())
            .unwrap()
    };
    let (first, second) = (
        by_sid(&text_sent["provider_message_id"]),
        by_sid(&mms_sent["provider_message_id"]),
    );
    let callback = format!("{PUBLIC_URL}/webhooks/twilio");
    let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        first.request.form(),
        pairs(&[
            ("To", "+442079460958"),
            ("From", "+15005550006"),
            ("Body", "Your table is ready"),
            ("StatusCallback", &callback),
        ])
    );
    assert_eq!(
        second.request.form(),
        pairs(&[
            ("To", "+442079460958"),
            ("MessagingServiceSid", &service_sid),
            ("Body", "Tonight's menu"),
            ("MediaUrl", "https://cdn.example.com/menu.png"),
            ("StatusCallback", &callback),
        ])
    );
    for request in [&first.request, &second.request] {
        assert_eq!(
            request.path,
            format!("/2010-04-01/Accounts/{account_sid}/Messages.json")
        );
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(
            request.authorization().map(str::to_owned),
            Some(switchboard_channels::twilio_send::basic_auth(
                &account_sid,
                "twilio-auth-token"
            ))
        );
    }

    // Twilio calls back where it was told to; a proxy forwards it here.
    let webhook = format!("{}/webhooks/twilio", app.base);
    let delivered = fake.status_callback(first, "delivered", None);
    assert_eq!(fake.deliver(&webhook, &callback, &delivered).await, 200);
    let undelivered = fake.status_callback(second, "undelivered", Some("30006"));
    assert_eq!(fake.deliver(&webhook, &callback, &undelivered).await, 200);
    app.message_with_status(&text, "delivered").await;
    let failed = app.message_with_status(&mms, "failed").await;
    assert_eq!(failed["error"]["provider_code"], "30006");
}

/// Twilio's status callback can beat its answer to the send: the status, for a message not
/// yet known by that id, is kept and applied as the send is recorded, so the message still
/// ends delivered, and the inbox hears so.
async fn a_twilio_status_before_the_answer_to_its_send_is_kept(db: TestDb) {
    let app = TestApp::spawn_with_public_url(db, PUBLIC_URL).await;
    let account_sid = format!("AC{}", "b".repeat(32));
    let fake = FakeTwilio::start(&account_sid, "twilio-auth-token").await;
    let number = id_of(
        app.post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "sms", "name": "Number", "provider": {"kind": "twilio",
                   "account_sid": account_sid, "auth_token": "twilio-auth-token",
                   "api_base_url": fake.base_url(), "from": "+15005550006"}}),
        )
        .await
        .ok(201),
    );
    let grace = app
        .customer_wrote(&number, "+442079460958", Duration::minutes(5))
        .await;
    let mut events = app
        .client
        .get(format!("{}/api/v1/events/stream", app.base))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    // Twilio takes the send at once and answers it late.
    fake.set_delay(Some(std::time::Duration::from_secs(5)));
    let text = send(
        &app,
        &app.admin,
        json!({"sender_id": number, "contact_id": grace, "text": "Your table is ready"}),
    )
    .await;
    let mut waited = 0;
    let sms = loop {
        if let Some(sms) = fake.sent().pop() {
            break sms;
        }
        waited += 1;
        assert!(waited < 400, "the send never reached Twilio");
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    };
    let callback = format!("{PUBLIC_URL}/webhooks/twilio");
    let webhook = format!("{}/webhooks/twilio", app.base);
    let delivered = fake.status_callback(&sms, "delivered", None);
    assert_eq!(fake.deliver(&webhook, &callback, &delivered).await, 200);
    // Processed while the answer is still on its way: the message does not know its id yet.
    while app.store().count_pending_webhooks().await.unwrap() > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let waiting = app
        .get(&format!("/api/v1/messages/{text}"), &app.admin)
        .await;
    assert_eq!(waiting.ok(200)["provider_message_id"], Value::Null);

    let done = app.message_with_status(&text, "delivered").await;
    assert_eq!(done["provider_message_id"], sms.sid.as_str());
    // Its one status event says where it is now, not the `sent` the send itself came to.
    let mut buffer = String::new();
    let status = loop {
        let event = next_event(&mut events, &mut buffer, "message.status").await;
        if event["message_id"] == text.as_str() {
            break event;
        }
    };
    assert_eq!(status["status"], "delivered");
}

/// The fake's signed webhooks: statuses for what it accepted, echoing our id, move a message
/// to read and never back, and a webhook delivered twice is stored and applied once.
async fn statuses_move_forward_and_duplicates_apply_once(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = FakeGraph::start().await;
    let sender = whatsapp_sender(&app, &fake).await;
    let ada = app
        .customer_wrote(&sender, "+442079460958", Duration::minutes(5))
        .await;
    let id = send(
        &app,
        &app.admin,
        json!({"sender_id": sender, "contact_id": ada, "text": "Your order shipped"}),
    )
    .await;
    app.message_with_status(&id, "sent").await;
    let sent = graph_sent(&fake, &id);
    let url = format!("{}/webhooks/whatsapp", app.base);
    let t = OffsetDateTime::now_utc().unix_timestamp();
    let webhooks_before = app.store().count_webhooks().await.unwrap();

    let delivered = fake.whatsapp_status(&sent, "delivered", t + 1);
    let read = fake.whatsapp_status(&sent, "read", t + 2);
    assert_eq!(fake.deliver(&url, APP_SECRET, &delivered).await, 200);
    assert_eq!(fake.deliver(&url, APP_SECRET, &read).await, 200);
    // Meta delivers again, and out of order: the same `read`, then the `delivered` again.
    assert_eq!(fake.deliver(&url, APP_SECRET, &read).await, 200);
    assert_eq!(fake.deliver(&url, APP_SECRET, &delivered).await, 200);
    // A wrong secret is refused and stores nothing.
    assert_eq!(fake.deliver(&url, "not-the-secret", &read).await, 401);
    drained(&app).await;
    assert_eq!(
        app.store().count_webhooks().await.unwrap() - webhooks_before,
        2
    );
    let message = app.message_with_status(&id, "read").await;
    assert_eq!(timeline(&message), ["queued", "sent", "delivered", "read"]);

    // A customer's message delivered twice is one message.
    let wamid = "wamid.HBgLNDQyMDc5NDYwOTU4FQIAEhgUM0VCMDQ2QjM0RkE1NjhEMTI0QUYA";
    let inbound =
        FakeGraph::whatsapp_text(PHONE_NUMBER_ID, "442079460958", wamid, "Danke schön", t);
    assert_eq!(fake.deliver(&url, APP_SECRET, &inbound).await, 200);
    assert_eq!(fake.deliver(&url, APP_SECRET, &inbound).await, 200);
    drained(&app).await;
    let received = app
        .get(
            &format!("/api/v1/messages?direction=inbound&sender_id={sender}"),
            &app.admin,
        )
        .await;
    let texts: Vec<&str> = received.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Danke schön", "hi"]);
}

/// 130429 is throughput: the same message is sent again after the provider's Retry-After and
/// goes. 131026 is for good: the message fails after one request and is never sent again.
async fn throughput_is_retried_and_undeliverable_is_not(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = FakeGraph::start().await;
    let sender = whatsapp_sender(&app, &fake).await;
    let ada = app
        .customer_wrote(&sender, "+442079460958", Duration::minutes(5))
        .await;
    let bob = app
        .customer_wrote(&sender, "+16505551234", Duration::minutes(5))
        .await;

    fake.reply_next(
        GraphEndpoint::Messages,
        Reply::whatsapp_rate_limited().retry_after(1),
    );
    let throttled = send(
        &app,
        &app.admin,
        json!({"sender_id": sender, "contact_id": ada, "text": "Throttled once"}),
    )
    .await;
    let sent = app.message_with_status(&throttled, "sent").await;
    let attempts: Vec<Value> = fake
        .message_requests()
        .iter()
        .map(|r| r.json())
        .filter(|b| b["biz_opaque_callback_data"] == throttled.as_str())
        .collect();
    assert_eq!(attempts.len(), 2, "refused once, then accepted");
    assert_eq!(attempts[0], attempts[1]);
    assert_eq!(
        sent["provider_message_id"],
        graph_sent(&fake, &throttled).id.as_str()
    );

    fake.reply_next(GraphEndpoint::Messages, Reply::whatsapp_undeliverable());
    let undeliverable = send(
        &app,
        &app.admin,
        json!({"sender_id": sender, "contact_id": bob, "text": "Are you there?"}),
    )
    .await;
    let failed = app.message_with_status(&undeliverable, "failed").await;
    assert_eq!(failed["error"]["code"], "not_on_whatsapp");
    assert_eq!(failed["error"]["provider_code"], "131026");
    let job = app
        .store()
        .queued_jobs("outbound")
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.payload["message_id"] == undeliverable.as_str())
        .unwrap();
    assert_eq!((job.status.as_str(), job.attempt), ("dead", 1));
    let requests = fake
        .message_requests()
        .iter()
        .filter(|r| r.json()["biz_opaque_callback_data"] == undeliverable.as_str())
        .count();
    assert_eq!(requests, 1);
}

/// Credentials the provider refuses mark the sender on every provider, and the sender then
/// refuses new sends.
async fn token_errors_surface_on_the_sender(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let graph = FakeGraph::start().await;
    let account_sid = format!("AC{}", "d".repeat(32));
    let twilio = FakeTwilio::start(&account_sid, "the-real-token").await;
    let page = id_of(app.post("/api/v1/senders", &app.admin, json!({"channel": "messenger", "name": "Page", "provider": {
            "kind": "messenger", "page_id": PAGE_ID, "page_access_token": "EAAGexpired",
            "app_secret": APP_SECRET, "verify_token": "page-verify", "api_base_url": graph.api_base_url()}}))
        .await
        .ok(201));
    // Twilio itself refuses this token (20003), nothing scripted.
    let sms = id_of(
        app.post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "sms", "name": "SMS", "provider": {
            "kind": "twilio", "account_sid": account_sid, "auth_token": "an-old-token",
            "from": "+15005550006", "api_base_url": twilio.base_url()}}),
        )
        .await
        .ok(201),
    );
    let psid = app
        .customer_wrote(&page, "1254459154682919", Duration::minutes(5))
        .await;
    let phone = app
        .customer_wrote(&sms, "+442079460958", Duration::minutes(5))
        .await;

    graph.reply_next(GraphEndpoint::Messages, Reply::graph_token_expired());
    let on_messenger = send(
        &app,
        &app.admin,
        json!({"sender_id": page, "contact_id": psid, "text": "Hello"}),
    )
    .await;
    let on_sms = send(
        &app,
        &app.admin,
        json!({"sender_id": sms, "contact_id": phone, "text": "Hello"}),
    )
    .await;
    for (message, sender, provider_code) in
        [(&on_messenger, &page, "190"), (&on_sms, &sms, "20003")]
    {
        let failed = app.message_with_status(message, "failed").await;
        assert_eq!(failed["error"]["code"], "token_expired");
        assert_eq!(failed["error"]["provider_code"], provider_code);
        let health = app
            .get(&format!("/api/v1/senders/{sender}"), &app.admin)
            .await;
        assert_eq!(health.ok(200)["health"]["token_status"], "expired");
    }
    let again = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": sms, "contact_id": phone, "text": "again"}),
        )
        .await;
    again.problem(422, "sender_unavailable");
    assert_eq!(twilio.requests().len(), 1);
    assert!(twilio.sent().is_empty());
}

/// twilio-python's published vector (PROTOCOLS.md C.4): token `12345`, its five parameters and
/// its query string. Switchboard signs over its public URL and its own path, so the vector's
/// URL is rebased there; the signer is first shown to give the published signature.
async fn a_twilio_signature_vector_is_accepted_and_tampering_refused(db: TestDb) {
    let app = TestApp::spawn_with_public_url(db, "https://mycompany.com").await;
    app.post(
        "/api/v1/senders",
        &app.admin,
        json!({"channel": "sms", "name": "Vector", "provider": {
            "kind": "twilio", "account_sid": format!("AC{}", "e".repeat(32)), "auth_token": "12345",
            "from": "+18005551212"}}),
    )
    .await
    .ok(201);
    let params: Vec<(String, String)> = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sign = |url: &str| switchboard_channels::signature::sign_twilio("12345", url, &params);
    assert_eq!(
        sign("https://mycompany.com/myapp.php?foo=1&bar=2"),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
    assert_eq!(
        sign("https://mycompany.com:443/myapp.php?foo=1&bar=2"),
        "kvajT1Ptam85bY51eRf/AJRuM3w="
    );

    let post_to = format!("{}/webhooks/twilio?foo=1&bar=2", app.base);
    let client = reqwest::Client::new();
    let deliver = |signature: String, params: Vec<(String, String)>| {
        let (client, post_to) = (client.clone(), post_to.clone());
        async move {
            switchboard_testkit::fakes::twilio_webhook(&client, &post_to, &signature, &params).await
        }
    };
    let signed = "https://mycompany.com/webhooks/twilio?foo=1&bar=2";
    // Twilio is inconsistent about the default port: either form is accepted.
    assert_eq!(deliver(sign(signed), params.clone()).await, 200);
    let mut again = params.clone();
    again[1].1 = "5678".into();
    let with_port = switchboard_channels::signature::sign_twilio(
        "12345",
        "https://mycompany.com:443/webhooks/twilio?foo=1&bar=2",
        &again,
    );
    assert_eq!(deliver(with_port, again).await, 200);
    assert_eq!(app.store().count_webhooks().await.unwrap(), 2);

    // One parameter changed after signing: refused, nothing stored.
    let mut tampered = params.clone();
    tampered[1].1 = "9999".into();
    assert_eq!(deliver(sign(signed), tampered).await, 401);
    // Signed over another query string: refused.
    assert_eq!(
        deliver(
            sign("https://mycompany.com/webhooks/twilio?foo=1&bar=3"),
            params.clone()
        )
        .await,
        401
    );
    assert_eq!(app.store().count_webhooks().await.unwrap(), 2);
}

both_backends!(
    a_twilio_status_before_the_answer_to_its_send_is_kept,
    whatsapp_request_bodies_are_exact,
    messenger_request_bodies_are_exact,
    twilio_request_bodies_are_exact,
    statuses_move_forward_and_duplicates_apply_once,
    throughput_is_retried_and_undeliverable_is_not,
    token_errors_surface_on_the_sender,
    a_twilio_signature_vector_is_accepted_and_tampering_refused,
);
