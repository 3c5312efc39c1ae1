//! Inbound media: downloaded from a fake Graph API (and a fake Twilio) on loopback with the
//! sender's credentials, kept under the data directory by content hash, served with auth.

use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchboard_channels::signature::sign_meta;
use switchboard_testkit::fakes::GraphEndpoint;
use switchboard_testkit::{both_backends, FakeGraph, FakeTwilio, Reply, TestDb};

use crate::helpers::TestApp;

const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";
const PHONE_NUMBER_ID: &str = "106540352242922";
const MEDIA_ID: &str = "1037543291543636";

/// A fake Graph API serving `bytes` as the media `MEDIA_ID`.
struct FakeFiles {
    graph: FakeGraph,
    bytes: Vec<u8>,
}

impl FakeFiles {
    /// (path, the `mid` of a download, authorization) of every request received.
    fn requests(&self) -> Vec<(String, Option<String>, String)> {
        self.graph
            .requests()
            .iter()
            .map(|r| {
                (
                    r.path.clone(),
                    r.query_param("mid"),
                    r.authorization().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

async fn fake_files(bytes: Vec<u8>, mime_type: &str) -> FakeFiles {
    let graph = FakeGraph::start().await;
    graph.add_media(MEDIA_ID, bytes.clone(), mime_type);
    FakeFiles { graph, bytes }
}

/// Bytes no text encoding would survive, and larger than one read or write.
fn picture() -> Vec<u8> {
    (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect()
}

async fn whatsapp_image(app: &TestApp, fake: &FakeFiles, message_id: &str) {
    let digest = Sha256::digest(fake.bytes.as_slice());
    let body = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "messages": [{"from": "16505551234", "id": message_id,
                          "timestamp": time::OffsetDateTime::now_utc().unix_timestamp().to_string(),
                          "type": "image", "image": {"id": MEDIA_ID, "mime_type": "image/jpeg",
                          "sha256": base64_of(&digest), "caption": "the broken part"}}]}}]}]}))
    .unwrap();
    let signature = sign_meta(APP_SECRET, &body);
    let status = app
        .post_webhook("/webhooks/whatsapp", &body, Some(signature))
        .await;
    assert_eq!(status, 200);
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn whatsapp_sender(app: &TestApp, fake: &FakeFiles) -> String {
    let base = fake.graph.api_base_url();
    app.post("/api/v1/senders", &app.admin, json!({"channel": "whatsapp", "name": "WA", "provider": {
            "kind": "whatsapp_cloud", "phone_number_id": PHONE_NUMBER_ID, "waba_id": "102290129340398",
            "access_token": "EAAGfaketoken", "app_secret": APP_SECRET, "verify_token": "verify",
            "api_base_url": base}}))
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits (boundedly) for the one inbound message to have its media stored.
async fn stored_media(app: &TestApp) -> Value {
    for _ in 0..400 {
        let list = app
            .get("/api/v1/messages?direction=inbound", &app.admin)
            .await;
        if let Some(message) = list.body["items"].as_array().and_then(|i| i.first()) {
            if message["media"]["download"] == "stored" {
                return message.clone();
            }
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    panic!("the media was never stored");
}

async fn whatsapp_media_is_downloaded_stored_by_hash_and_served(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = fake_files(picture(), "image/jpeg").await;
    whatsapp_sender(&app, &fake).await;
    whatsapp_image(&app, &fake, "wamid.MEDIA1").await;

    let message = stored_media(&app).await;
    let hash = hex::encode(Sha256::digest(fake.bytes.as_slice()));
    let media = &message["media"];
    assert_eq!(media["kind"], "image");
    assert_eq!(media["sha256"], hash.as_str());
    assert_eq!(media["size_bytes"], fake.bytes.len());
    assert_eq!(media["mime_type"], "image/jpeg");
    assert_eq!(media["provider_media_id"], MEDIA_ID);
    assert_eq!(media["caption"], "the broken part");

    // Both requests carried the sender's token: the description, then the bytes.
    assert_eq!(
        fake.requests(),
        vec![
            (
                format!("/v23.0/{MEDIA_ID}"),
                None,
                "Bearer EAAGfaketoken".to_owned()
            ),
            (
                "/whatsapp_business/attachments/".to_owned(),
                Some(MEDIA_ID.to_owned()),
                "Bearer EAAGfaketoken".to_owned()
            ),
        ]
    );

    // On disk under its hash, byte for byte, and nothing half-written beside it.
    let dir = app.data_dir().join("media");
    assert_eq!(std::fs::read(dir.join(&hash)).unwrap(), fake.bytes);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![hash.clone()]);

    // Served to a reader with its type and length; refused without a token.
    let (_, agent) = app.user_with_token("agent").await;
    let served = app
        .client
        .get(format!("{}/api/v1/media/{hash}", app.base))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/jpeg");
    assert_eq!(
        served.headers()["content-length"],
        fake.bytes.len().to_string().as_str()
    );
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        served.bytes().await.unwrap().as_ref(),
        fake.bytes.as_slice()
    );

    let anonymous = app
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/media/{hash}"),
            None,
            None,
        )
        .await;
    anonymous.problem(401, "unauthorized");
    let unknown = hex::encode(Sha256::digest(b"never stored"));
    app.get(&format!("/api/v1/media/{unknown}"), &agent)
        .await
        .problem(404, "not_found");
    app.get("/api/v1/media/..%2F..%2Fswitchboard.toml", &agent)
        .await
        .problem(404, "not_found");

    // The same picture again is the same file: one copy on disk.
    whatsapp_image(&app, &fake, "wamid.MEDIA2").await;
    let mut both = false;
    for _ in 0..400 {
        let list = app
            .get("/api/v1/messages?direction=inbound", &app.admin)
            .await;
        let items = list.body["items"].as_array().unwrap().clone();
        if items.len() == 2 && items.iter().all(|m| m["media"]["download"] == "stored") {
            assert!(items.iter().all(|m| m["media"]["sha256"] == hash.as_str()));
            both = true;
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    assert!(both, "the second copy was never stored");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

async fn a_failed_download_is_retried_and_the_message_kept(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = fake_files(b"%PDF-1.7 the invoice".to_vec(), "image/jpeg").await;
    fake.graph.reply_next(
        GraphEndpoint::MediaDownload,
        Reply::new(500, json!("try later")),
    );
    whatsapp_sender(&app, &fake).await;
    whatsapp_image(&app, &fake, "wamid.RETRY").await;

    // The message is there at once, its file on the way.
    let mut pending = Value::Null;
    for _ in 0..200 {
        let list = app
            .get("/api/v1/messages?direction=inbound", &app.admin)
            .await;
        if let Some(m) = list.body["items"].as_array().and_then(|i| i.first()) {
            pending = m.clone();
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    assert_eq!(
        pending["media"]["provider_media_id"], MEDIA_ID,
        "{pending:#}"
    );

    let message = stored_media(&app).await;
    let hash = hex::encode(Sha256::digest(fake.bytes.as_slice()));
    assert_eq!(message["media"]["sha256"], hash.as_str());
    let file_requests = fake
        .requests()
        .iter()
        .filter(|(path, _, _)| path.starts_with("/whatsapp_business/"))
        .count();
    assert_eq!(file_requests, 2, "failed once, then fetched");
    let served = app.get(&format!("/api/v1/media/{hash}"), &app.admin).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.body, "%PDF-1.7 the invoice");
}

async fn twilio_media_is_fetched_with_basic_auth(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let account_sid = format!("AC{}", "a".repeat(32));
    let fake = FakeTwilio::start(&account_sid, "twilio-auth-token").await;
    let bytes = b"GIF89a tiny".to_vec();
    app.post(
        "/api/v1/senders",
        &app.admin,
        json!({"channel": "sms", "name": "SMS", "provider": {
            "kind": "twilio", "account_sid": account_sid, "auth_token": "twilio-auth-token",
            "from": "+15005550006"}}),
    )
    .await
    .ok(201);
    let media_url = fake.add_media(
        "MM0123456789abcdef0123456789abcdef",
        bytes.clone(),
        "image/gif",
    );
    let params: Vec<(String, String)> = [
        ("MessageSid", "MM0123456789abcdef0123456789abcdef"),
        ("AccountSid", account_sid.as_str()),
        ("From", "+14155550123"),
        ("To", "+15005550006"),
        ("Body", ""),
        ("NumMedia", "1"),
        ("MediaContentType0", "image/gif"),
        ("MediaUrl0", media_url.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let url = format!("{}/webhooks/twilio", app.base);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let status = app
        .client
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "x-twilio-signature",
            switchboard_channels::signature::sign_twilio("twilio-auth-token", &url, &params),
        )
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    let message = stored_media(&app).await;
    assert_eq!(message["media"]["mime_type"], "image/gif");
    let expected = format!(
        "Basic {}",
        base64_of(format!("{account_sid}:twilio-auth-token").as_bytes())
    );
    let requests: Vec<(String, String)> = fake
        .requests()
        .iter()
        .map(|r| {
            (
                format!("{}{}", fake.base_url(), r.path),
                r.authorization().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(requests, vec![(media_url, expected)]);
    let hash = message["media"]["sha256"].as_str().unwrap();
    assert_eq!(
        std::fs::read(app.data_dir().join("media").join(hash)).unwrap(),
        bytes
    );
}

both_backends!(
    whatsapp_media_is_downloaded_stored_by_hash_and_served,
    a_failed_download_is_retried_and_the_message_kept,
    twilio_media_is_fetched_with_basic_auth,
);
