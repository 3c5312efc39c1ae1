//! WhatsApp Cloud API webhooks: signed, stored before answering, processed exactly once.

use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use switchboard_channels::signature::sign_meta;
use switchboard_core::message::{DeliveryStatus, Direction};
use switchboard_store::webhooks::WebhookEvent;
use switchboard_testkit::{both_backends, TestDb};
use time::OffsetDateTime;

use crate::helpers::{stored_message, TestApp};

const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";
const PHONE_NUMBER_ID: &str = "106540352242922";

async fn whatsapp_sender(app: &TestApp) -> String {
    app.post(
        "/api/v1/senders",
        &app.admin,
        json!({"channel": "whatsapp", "name": "Support", "provider": {
            "kind": "whatsapp_cloud", "phone_number_id": PHONE_NUMBER_ID, "waba_id": "102290129340398",
            "access_token": "EAAGtesttoken", "app_secret": APP_SECRET, "verify_token": "let-me-in"}}),
    )
    .await
    .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn envelope(value: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID}}
    }]}]})
    .as_object()
    .cloned()
    .map(|mut e| {
        let change = &mut e.get_mut("entry").unwrap()[0]["changes"][0]["value"];
        for (k, v) in value.as_object().unwrap() {
            change[k] = v.clone();
        }
        Value::Object(e)
    })
    .unwrap()
}

async fn post(app: &TestApp, body: &[u8], signature: Option<String>) -> u16 {
    app.post_webhook("/webhooks/whatsapp", body, signature)
        .await
}

/// Waits (boundedly) until the background processor has handled every stored webhook.
async fn drained(app: &TestApp) {
    for _ in 0..200 {
        if app.store().pending_webhooks(1).await.unwrap().is_empty() {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    panic!("webhooks were not processed");
}

async fn signed_webhooks_are_stored_once_and_become_messages(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let sender = whatsapp_sender(&app).await;

    // Meta's handshake.
    let ok = app
        .client
        .get(format!("{}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=let-me-in&hub.challenge=1158201444", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let refused = app
        .client
        .get(format!(
            "{}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    let sent_at = OffsetDateTime::now_utc().unix_timestamp() - 60;
    let body = serde_json::to_vec(&envelope(json!({
        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
        "messages": [{"from": "16505551234", "id": "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                      "timestamp": sent_at.to_string(), "type": "text", "text": {"body": "Caf\u{e9} open?"}}]
    })))
    .unwrap();

    // Unsigned or wrongly signed: 401, nothing stored.
    assert_eq!(post(&app, &body, None).await, 401);
    assert_eq!(
        post(&app, &body, Some(sign_meta("wrong-secret", &body))).await,
        401
    );
    // JSON of another shape names no sender of ours (401); what is not JSON is malformed (400).
    for odd in [
        json!({"object": "whatsapp_business_account", "entry": [{"id": 102290129340398_u64, "changes": null}]}),
        json!({"entry": {"id": "102290129340398"}}),
        json!([1, 2, 3]),
    ] {
        let odd = serde_json::to_vec(&odd).unwrap();
        assert_eq!(
            post(&app, &odd, Some(sign_meta(APP_SECRET, &odd))).await,
            401
        );
    }
    let garbage = b"{\"entry\": [".to_vec();
    assert_eq!(
        post(&app, &garbage, Some(sign_meta(APP_SECRET, &garbage))).await,
        400
    );
    assert_eq!(app.store().count_webhooks().await.unwrap(), 0);

    // Signed: stored, answered 200; delivered again: still one stored, one message.
    let signature = sign_meta(APP_SECRET, &body);
    assert_eq!(post(&app, &body, Some(signature.clone())).await, 200);
    assert_eq!(post(&app, &body, Some(signature)).await, 200);
    assert_eq!(app.store().count_webhooks().await.unwrap(), 1);
    drained(&app).await;
    let inbound = app
        .get("/api/v1/messages?direction=inbound", &app.admin)
        .await;
    let items = inbound.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["text"], "Café open?");
    assert_eq!(items[0]["sender_id"], sender.as_str());
    assert_eq!(
        OffsetDateTime::parse(
            items[0]["provider_timestamp"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .unwrap()
        .unix_timestamp(),
        sent_at
    );
    let contact = app
        .get(
            &format!(
                "/api/v1/contacts/{}",
                items[0]["contact_id"].as_str().unwrap()
            ),
            &app.admin,
        )
        .await;
    assert_eq!(contact.ok(200)["phone"], "+16505551234");
    assert_eq!(contact.body["name"], "Sheena Nelson");
    // The window is open from the provider's timestamp: free text is allowed.
    let check = app
        .post(
            "/api/v1/policy/check",
            &app.admin,
            json!({"sender_id": sender, "contact_id": items[0]["contact_id"], "text": "Yes!"}),
        )
        .await;
    assert_eq!(check.ok(200)["allowed"], true);
}

async fn every_status_applies_once_and_never_backwards(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let sender = whatsapp_sender(&app).await;
    let contact = app.contact("+16505551234").await;
    let now = switchboard_core::time::truncate_to_millis(OffsetDateTime::now_utc());
    let outbound = |provider_id: &str| {
        stored_message(
            switchboard_core::Channel::Whatsapp,
            Direction::Outbound,
            &sender,
            &contact,
            DeliveryStatus::Sent,
            Some(provider_id),
        )
    };
    let first = outbound("wamid.first");
    let second = outbound("wamid.second");
    app.store().insert_message(&first).await.unwrap();
    app.store().insert_message(&second).await.unwrap();
    let ts = |offset: i64| (now.unix_timestamp() + offset).to_string();
    // Two statuses in one payload: both apply.
    let body = serde_json::to_vec(&envelope(json!({"statuses": [
        {"id": "wamid.first", "status": "read", "timestamp": ts(2), "recipient_id": "16505551234"},
        {"id": "wamid.second", "status": "failed", "timestamp": ts(2), "recipient_id": "16505551234",
         "errors": [{"code": 131026, "title": "Message undeliverable"}]}
    ]})))
    .unwrap();
    assert_eq!(
        post(&app, &body, Some(sign_meta(APP_SECRET, &body))).await,
        200
    );
    drained(&app).await;
    // A late `delivered` after `read` changes nothing.
    let late = serde_json::to_vec(&envelope(json!({"statuses": [
        {"id": "wamid.first", "status": "delivered", "timestamp": ts(1), "recipient_id": "16505551234"}
    ]})))
    .unwrap();
    assert_eq!(
        post(&app, &late, Some(sign_meta(APP_SECRET, &late))).await,
        200
    );
    drained(&app).await;

    let read = app
        .get(&format!("/api/v1/messages/{}", first.id), &app.admin)
        .await;
    assert_eq!(read.ok(200)["status"], "read");
    let timeline: Vec<&str> = read.body["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["sent", "read"]);
    let failed = app
        .get(&format!("/api/v1/messages/{}", second.id), &app.admin)
        .await;
    assert_eq!(failed.ok(200)["status"], "failed");
    assert_eq!(failed.body["error"]["code"], "not_on_whatsapp");
    assert_eq!(failed.body["error"]["provider_code"], "131026");
}

async fn messenger_and_twilio_webhooks_are_verified_and_applied(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let page = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "messenger", "name": "Page", "provider": {
            "kind": "messenger", "page_id": "1234567890", "page_access_token": "EAAGpagetoken",
            "app_secret": "page-app-secret", "verify_token": "page-verify"}}),
        )
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sms = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "sms", "name": "SMS", "provider": {
            "kind": "twilio", "account_sid": format!("AC{}", "a".repeat(32)),
            "auth_token": "twilio-auth-token", "from": "+15005550006"}}),
        )
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Messenger: handshake, then a signed message.
    let challenge = app.client
        .get(format!("{}/webhooks/messenger?hub.mode=subscribe&hub.verify_token=page-verify&hub.challenge=42", app.base))
        .send().await.unwrap();
    assert_eq!(challenge.text().await.unwrap(), "42");
    let ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let body = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "1234567890", "time": ms,
        "messaging": [{"sender": {"id": "1254459154682919"}, "recipient": {"id": "1234567890"},
                       "timestamp": ms, "message": {"mid": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P", "text": "hello page"}}]}]}))
        .unwrap();
    let status = app
        .client
        .post(format!("{}/webhooks/messenger", app.base))
        .header("x-hub-signature-256", sign_meta("page-app-secret", &body))
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let unsigned = app
        .client
        .post(format!("{}/webhooks/messenger", app.base))
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(unsigned, 401);

    // Twilio: an inbound SMS signed over the URL it was sent to and the sorted form.
    let url = format!("{}/webhooks/twilio", app.base);
    let form = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let post_form = |params: Vec<(String, String)>, signature: String| {
        let client = app.client.clone();
        let url = url.clone();
        async move {
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(params.iter())
                .finish();
            client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let inbound = form(&[
        ("MessageSid", "SM2f0c9e5ad0b8e7a1c6f0d8a7b6c5d4e3"),
        ("SmsStatus", "received"),
        ("From", "+442079460958"),
        ("To", "+15005550006"),
        ("Body", "Ack"),
        ("NumMedia", "0"),
        ("AccountSid", &format!("AC{}", "a".repeat(32))),
        ("ApiVersion", "2010-04-01"),
    ]);
    let signature =
        switchboard_channels::signature::sign_twilio("twilio-auth-token", &url, &inbound);
    let answer = post_form(inbound.clone(), signature.clone()).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.unwrap().contains("<Response/>"));
    let mut tampered = inbound.clone();
    tampered[4].1 = "Ack!".into();
    assert_eq!(post_form(tampered, signature).await.status(), 401);
    drained(&app).await;

    let messenger_msgs = app
        .get(&format!("/api/v1/messages?sender_id={page}"), &app.admin)
        .await;
    assert_eq!(messenger_msgs.ok(200)["items"][0]["text"], "hello page");
    assert_eq!(messenger_msgs.body["items"][0]["channel"], "messenger");
    let sms_msgs = app
        .get(&format!("/api/v1/messages?sender_id={sms}"), &app.admin)
        .await;
    let sms_msg = sms_msgs.ok(200)["items"][0].clone();
    assert_eq!(sms_msg["text"], "Ack");
    assert_eq!(
        sms_msg["provider_message_id"],
        "SM2f0c9e5ad0b8e7a1c6f0d8a7b6c5d4e3"
    );

    // A Twilio status callback for one of our messages, with its error.
    let contact = sms_msg["contact_id"].as_str().unwrap().to_owned();
    let sent = stored_message(
        switchboard_core::Channel::Sms,
        Direction::Outbound,
        &sms,
        &contact,
        DeliveryStatus::Sent,
        Some("SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    );
    app.store().insert_message(&sent).await.unwrap();
    let callback = form(&[
        ("MessageSid", "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30006"),
        ("From", "+15005550006"),
        ("To", "+442079460958"),
        ("AccountSid", &format!("AC{}", "a".repeat(32))),
    ]);
    let signature =
        switchboard_channels::signature::sign_twilio("twilio-auth-token", &url, &callback);
    assert_eq!(post_form(callback, signature).await.status(), 200);
    drained(&app).await;
    let failed = app
        .get(&format!("/api/v1/messages/{}", sent.id), &app.admin)
        .await;
    assert_eq!(failed.ok(200)["status"], "failed");
    assert_eq!(failed.body["error"]["provider_code"], "30006");
}

/// A backlog of several batches: each batch is read while the one before is applied and
/// marked while the next is looked up, and still every webhook is applied once and each
/// customer's in the order received (of a STOP and a later START, the START stands).
async fn a_backlog_of_several_batches_is_applied_once_and_in_order(db: TestDb) {
    let app = TestApp::spawn(db).await;
    whatsapp_sender(&app).await;
    const BACKLOG: usize = 1_100;
    let customers = ["16505550001", "16505550002", "16505550003"];
    let sent_at = OffsetDateTime::now_utc().unix_timestamp() - 60;
    let body = |n: usize| {
        let (from, text) = match n {
            300 => (customers[0], "STOP".to_owned()),
            900 => (customers[0], "START".to_owned()),
            _ => (customers[n % 3], format!("message {n}")),
        };
        serde_json::to_vec(&envelope(json!({
            "contacts": [{"profile": {"name": "Backlog"}, "wa_id": from}],
            "messages": [{"from": from, "id": format!("wamid.backlog{n}"),
                          "timestamp": sent_at.to_string(), "type": "text", "text": {"body": text}}]
        })))
        .unwrap()
    };
    // Stored straight into the inbox, as if received while the processor was down.
    let first = OffsetDateTime::now_utc();
    let backlog: Vec<WebhookEvent> = (0..BACKLOG)
        .map(|n| WebhookEvent {
            id: format!("backlog-{n:05}"),
            provider: "whatsapp".to_owned(),
            sender_id: None,
            dedupe_key: format!("backlog-{n}"),
            body: String::from_utf8(body(n)).unwrap(),
            // Several share a millisecond: the id orders them.
            received_at: first + time::Duration::milliseconds((n / 4) as i64),
        })
        .collect();
    app.store().store_webhooks(&backlog).await.unwrap();
    // One more through the front door wakes the processor.
    let last = body(BACKLOG);
    assert_eq!(
        post(&app, &last, Some(sign_meta(APP_SECRET, &last))).await,
        200
    );
    for _ in 0..600 {
        if app.store().count_pending_webhooks().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    assert_eq!(app.store().count_pending_webhooks().await.unwrap(), 0);
    assert_eq!(
        app.store()
            .count_messages(Direction::Inbound, None)
            .await
            .unwrap(),
        BACKLOG as i64 + 1
    );
    let found = app.get("/api/v1/contacts?q=16505550001", &app.admin).await;
    let contact = found.ok(200)["items"][0]["id"].as_str().unwrap().to_owned();
    let ledger = app
        .get(&format!("/api/v1/contacts/{contact}/consent"), &app.admin)
        .await;
    assert_eq!(ledger.ok(200)["current"]["whatsapp"], "opted_in");
}

both_backends!(
    a_backlog_of_several_batches_is_applied_once_and_in_order,
    messenger_and_twilio_webhooks_are_verified_and_applied,
    signed_webhooks_are_stored_once_and_become_messages,
    every_status_applies_once_and_never_backwards,
);
