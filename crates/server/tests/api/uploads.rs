//! Outbound files (R5.6): uploaded, checked against the configured limit as they arrive, kept by
//! hash, and handed to each provider the way it takes a file: WhatsApp's media upload, a
//! signed link for Twilio and Messenger.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use switchboard_app::SystemClock;
use switchboard_testkit::{both_backends, FakeGraph, FakeTwilio, TestDb};

use crate::helpers::TestApp;

const PHONE_NUMBER_ID: &str = "106540352242922";
const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";
const PUBLIC_URL: &str = "https://switchboard.example.com";

/// Bytes no text encoding would survive, larger than one read, and containing what a naive
/// multipart reader might take for a boundary.
fn picture(len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len as u64).map(|i| (i * 7919 % 251) as u8).collect();
    bytes[1000..1006].copy_from_slice(b"\r\n--sw");
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

/// What is in the media directory: kept files and any partial upload left behind.
fn media_dir_entries(app: &TestApp) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(app.data_dir().join("media"))
        .map(|dir| {
            dir.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

async fn whatsapp_uploads_the_file_and_sends_it_by_id(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let fake = FakeGraph::start().await;
    let sender = id_of(app.post("/api/v1/senders", &app.admin, json!({"channel": "whatsapp", "name": "WA", "provider": {
            "kind": "whatsapp_cloud", "phone_number_id": PHONE_NUMBER_ID, "waba_id": "102290129340398",
            "access_token": "EAAGfaketoken", "app_secret": APP_SECRET, "verify_token": "verify",
            "api_base_url": fake.api_base_url()}}))
        .await
        .ok(201));
    let contact = app
        .customer_wrote(&sender, "+16505551234", time::Duration::minutes(1))
        .await;
    let (_, agent) = app.user_with_token("agent").await;

    let bytes = picture(300_000);
    let upload = app
        .upload(&agent, "file", "receipt.png", "image/png", &bytes)
        .await;
    let kept = upload.ok(201).clone();
    assert_eq!(
        kept,
        json!({"sha256": sha256_hex(&bytes), "kind": "image", "mime_type": "image/png",
               "size_bytes": 300_000, "filename": "receipt.png"})
    );
    // The same bytes again are the same file.
    let again = app
        .upload(&app.admin, "file", "copy.png", "image/png", &bytes)
        .await;
    assert_eq!(again.ok(201)["sha256"], kept["sha256"]);
    assert_eq!(media_dir_entries(&app), vec![sha256_hex(&bytes)]);

    let sent = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": sender, "contact_id": contact,
                   "media": {"sha256": kept["sha256"], "caption": "Your receipt"}}),
        )
        .await;
    let message = sent.ok(202).clone();
    assert_eq!(message["media"]["kind"], "image");
    assert_eq!(message["media"]["sha256"], kept["sha256"]);
    assert_eq!(message["media"]["size_bytes"], 300_000);
    assert_eq!(message["media"]["mime_type"], "image/png");
    let id = id_of(&message);
    app.message_with_status(&id, "sent").await;

    let uploads = fake.uploads();
    assert_eq!(uploads.len(), 1, "{uploads:#?}");
    let uploaded = &uploads[0];
    assert_eq!(uploaded.phone_number_id, PHONE_NUMBER_ID);
    assert_eq!(uploaded.messaging_product.as_deref(), Some("whatsapp"));
    assert_eq!(uploaded.type_field.as_deref(), Some("image/png"));
    assert_eq!(uploaded.file_field, "file");
    assert_eq!(uploaded.content_type.as_deref(), Some("image/png"));
    assert_eq!(
        uploaded.authorization.as_deref(),
        Some("Bearer EAAGfaketoken")
    );
    assert!(uploaded.bytes == bytes, "the uploaded bytes differ");
    let messages = fake.message_requests();
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].json(),
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "16505551234", "type": "image",
               "image": {"id": uploaded.id, "caption": "Your receipt"},
               "biz_opaque_callback_data": id})
    );

    // The inbox shows the file it sent.
    let served = app
        .client
        .get(format!(
            "{}/api/v1/media/{}",
            app.base,
            kept["sha256"].as_str().unwrap()
        ))
        .bearer_auth(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert!(served.bytes().await.unwrap().as_ref() == bytes.as_slice());

    // A refused upload gets the provider's classified error; the message fails, nothing
    // goes out without its file.
    fake.reply_next(
        switchboard_testkit::fakes::GraphEndpoint::MediaUpload,
        switchboard_testkit::Reply::new(
            400,
            switchboard_testkit::fakes::graph_error(131053, "Media upload error", None),
        ),
    );
    let doc = app
        .upload(
            &app.admin,
            "file",
            "terms.pdf",
            "application/pdf",
            b"%PDF-1.4 terms",
        )
        .await
        .ok(201)
        .clone();
    assert_eq!(doc["kind"], "document");
    let refused = id_of(
        app.post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": sender, "contact_id": contact, "media": {"sha256": doc["sha256"]}}),
        )
        .await
        .ok(202),
    );
    let failed = app.message_with_status(&refused, "failed").await;
    assert_eq!(failed["error"]["provider_code"], "131053", "{failed:#}");
    assert_eq!(fake.message_requests().len(), 1);
}

async fn uploads_are_checked_against_the_configured_limit(db: TestDb) {
    let app = TestApp::spawn_configured(db, std::sync::Arc::new(SystemClock), |config| {
        config.media_limit_bytes = 100_000;
    })
    .await;
    let sender = app.sandbox_sender("whatsapp").await;
    let contact = app
        .customer_wrote(&sender, "+16505550199", time::Duration::minutes(1))
        .await;

    // One byte over: refused while it arrives, and nothing of it is kept.
    let over = app
        .upload(
            &app.admin,
            "file",
            "big.png",
            "image/png",
            &picture(100_001),
        )
        .await;
    let problem = over.problem(413, "media_too_large");
    assert_eq!(problem["field"], "file");
    assert!(
        problem["detail"].as_str().unwrap().contains("100 KB"),
        "{problem:#}"
    );
    // Far over: still a clear answer, not a broken connection.
    let far = app
        .upload(
            &app.admin,
            "file",
            "huge.bin",
            "application/octet-stream",
            &picture(3_000_000),
        )
        .await;
    far.problem(413, "media_too_large");
    assert!(
        media_dir_entries(&app).is_empty(),
        "{:?}",
        media_dir_entries(&app)
    );

    // Exactly the limit is fine.
    let at_limit = app
        .upload(
            &app.admin,
            "file",
            "ok.jpg",
            "image/jpeg",
            &picture(100_000),
        )
        .await;
    assert_eq!(at_limit.ok(201)["size_bytes"], 100_000);

    app.upload(&app.admin, "file", "empty.txt", "text/plain", b"")
        .await
        .problem(422, "empty_file");
    app.upload(&app.admin, "document", "a.txt", "text/plain", b"abc")
        .await
        .problem(422, "required");
    // A type's parameters are dropped; a type that is not one is kept as a plain document.
    let plain = app
        .upload(
            &app.admin,
            "file",
            "a.txt",
            "text/plain; charset=utf-8",
            b"notes",
        )
        .await;
    assert_eq!(plain.ok(201)["mime_type"], "text/plain");
    let odd = app
        .upload(&app.admin, "file", "a.bin", "text html", b"<p>")
        .await;
    assert_eq!(odd.ok(201)["mime_type"], "application/octet-stream");
    assert_eq!(odd.body["kind"], "document");
    // Reading the API needs a token.
    let anonymous = app
        .client
        .post(format!("{}/api/v1/media", app.base))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let bad = |media: Value| {
        let app = &app;
        let (sender, contact) = (sender.clone(), contact.clone());
        async move {
            app.post(
                "/api/v1/messages",
                &app.admin,
                json!({"sender_id": sender, "contact_id": contact, "media": media}),
            )
            .await
        }
    };
    let unknown = bad(json!({"sha256": "0".repeat(64)})).await;
    assert_eq!(
        unknown.problem(422, "unknown_reference")["field"],
        "media.sha256"
    );
    let both = bad(json!({"sha256": "0".repeat(64), "url": "https://cdn.example.com/a.png"})).await;
    assert_eq!(both.problem(422, "invalid_media")["field"], "media");
    let kindless = bad(json!({"url": "https://cdn.example.com/a.png"})).await;
    assert_eq!(kindless.problem(422, "required")["field"], "media.kind");
}

async fn twilio_fetches_an_uploaded_file_by_a_signed_link(db: TestDb) {
    let clock = std::sync::Arc::new(switchboard_app::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let app = TestApp::spawn_configured(db, clock.clone(), |config| {
        config.public_url = Some(PUBLIC_URL.parse().unwrap())
    })
    .await;
    let account_sid = format!("AC{}", "d".repeat(32));
    let fake = FakeTwilio::start(&account_sid, "twilio-auth-token").await;
    let sender = id_of(app.post("/api/v1/senders", &app.admin, json!({"channel": "sms", "name": "Number",
            "provider": {"kind": "twilio", "account_sid": account_sid, "auth_token": "twilio-auth-token",
                         "from": "+15005550006", "api_base_url": fake.base_url()}}))
        .await
        .ok(201));
    let contact = app
        .customer_wrote(&sender, "+442079460958", time::Duration::minutes(1))
        .await;
    let bytes = picture(50_000);
    let kept = app
        .upload(&app.admin, "file", "menu.jpg", "image/jpeg", &bytes)
        .await
        .ok(201)
        .clone();
    let sha = kept["sha256"].as_str().unwrap().to_owned();
    let id = id_of(
        app.post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": sender, "contact_id": contact,
                   "media": {"sha256": sha, "caption": "Tonight's menu"}}),
        )
        .await
        .ok(202),
    );
    app.message_with_status(&id, "sent").await;
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    let form = sent[0].request.form();
    let field = |name: &str| -> Vec<String> {
        form.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(field("Body"), vec!["Tonight's menu".to_owned()]);
    let links = field("MediaUrl");
    assert_eq!(links.len(), 1, "{form:?}");
    let link = &links[0];
    let prefix = format!("{PUBLIC_URL}/media/{sha}?expires=");
    assert!(link.starts_with(&prefix), "{link}");

    // The provider fetches it with no credentials, from the address it was given (here the
    // public URL stands for this server).
    let local = link.replacen(PUBLIC_URL, &app.base, 1);
    let fetched = app.client.get(&local).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "image/jpeg");
    assert!(fetched.bytes().await.unwrap().as_ref() == bytes.as_slice());

    // A link altered in any part, or none at all, opens nothing: another kept file with this
    // file's signature, a later expiry, one digit of the signature changed.
    let other = app
        .upload(
            &app.admin,
            "file",
            "other.jpg",
            "image/jpeg",
            &picture(3_000),
        )
        .await
        .ok(201)["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let signature = local.split("signature=").nth(1).unwrap().to_owned();
    let flipped = {
        let mut chars: Vec<char> = signature.chars().collect();
        chars[10] = if chars[10] == '0' { '1' } else { '0' };
        chars.into_iter().collect::<String>()
    };
    let expires: i64 = local
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let tampered = [
        local.replace(&signature, &flipped),
        local.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 3600),
        ),
        local.replace(&sha, &other),
        format!("{}/media/{sha}", app.base),
    ];
    for url in tampered {
        let answer = app.client.get(&url).send().await.unwrap();
        assert_eq!(answer.status(), 404, "{url}");
    }

    // A link lasts a day.
    clock.advance(time::Duration::hours(24) + time::Duration::seconds(1));
    assert_eq!(app.client.get(&local).send().await.unwrap().status(), 404);
    // It is signed with a key kept in the database, which every node shares: after a restart
    // (on the real clock again) it opens as before.
    let app = app.restart().await;
    let local = link.replacen(PUBLIC_URL, &app.base, 1);
    assert_eq!(app.client.get(&local).send().await.unwrap().status(), 200);
}

async fn messenger_gets_a_link_and_no_caption(db: TestDb) {
    let app = TestApp::spawn_with_public_url(db, PUBLIC_URL).await;
    let fake = FakeGraph::start().await;
    let page = id_of(app.post("/api/v1/senders", &app.admin, json!({"channel": "messenger", "name": "Page", "provider": {
            "kind": "messenger", "page_id": "1234567890", "page_access_token": "EAAGpage",
            "app_secret": APP_SECRET, "verify_token": "page-verify", "api_base_url": fake.api_base_url()}}))
        .await
        .ok(201));
    let contact = app
        .customer_wrote(&page, "1254459154682919", time::Duration::minutes(1))
        .await;
    // A WebP picture: a sticker to WhatsApp, an image to Messenger, which has no stickers.
    let kept = app
        .upload(
            &app.admin,
            "file",
            "lamp.webp",
            "image/webp",
            &picture(4_000),
        )
        .await
        .ok(201)
        .clone();
    assert_eq!(kept["kind"], "sticker");
    let sha = kept["sha256"].as_str().unwrap().to_owned();
    let captioned = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": page, "contact_id": contact,
                   "media": {"sha256": sha, "caption": "Is this it?"}}),
        )
        .await;
    assert_eq!(
        captioned.problem(422, "caption_not_supported")["field"],
        "media.caption"
    );
    let message = app
        .post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": page, "contact_id": contact, "media": {"sha256": sha}}),
        )
        .await
        .ok(202)
        .clone();
    assert_eq!(message["media"]["kind"], "image");
    app.message_with_status(&id_of(&message), "sent").await;
    let sent = fake.message_requests();
    assert_eq!(sent.len(), 1);
    let body = sent[0].json();
    assert_eq!(body["message"]["attachment"]["type"], "image");
    let url = body["message"]["attachment"]["payload"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        url.starts_with(&format!("{PUBLIC_URL}/media/{sha}?expires=")),
        "{url}"
    );
    let fetched = app
        .client
        .get(url.replacen(PUBLIC_URL, &app.base, 1))
        .send()
        .await
        .unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "image/webp");
}

async fn without_a_public_url_a_link_provider_fails_the_file_clearly(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let account_sid = format!("AC{}", "e".repeat(32));
    let fake = FakeTwilio::start(&account_sid, "twilio-auth-token").await;
    let sender = id_of(app.post("/api/v1/senders", &app.admin, json!({"channel": "sms", "name": "Number",
            "provider": {"kind": "twilio", "account_sid": account_sid, "auth_token": "twilio-auth-token",
                         "from": "+15005550006", "api_base_url": fake.base_url()}}))
        .await
        .ok(201));
    let contact = app
        .customer_wrote(&sender, "+442079460959", time::Duration::minutes(1))
        .await;
    let kept = app
        .upload(
            &app.admin,
            "file",
            "menu.jpg",
            "image/jpeg",
            &picture(2_000),
        )
        .await
        .ok(201)
        .clone();
    let id = id_of(
        app.post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": sender, "contact_id": contact, "media": {"sha256": kept["sha256"]}}),
        )
        .await
        .ok(202),
    );
    let failed = app.message_with_status(&id, "failed").await;
    assert!(
        failed["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("SWITCHBOARD_PUBLIC_URL"),
        "{failed:#}"
    );
    assert!(fake.sent().is_empty());
}

both_backends!(
    whatsapp_uploads_the_file_and_sends_it_by_id,
    uploads_are_checked_against_the_configured_limit,
    twilio_fetches_an_uploaded_file_by_a_signed_link,
    messenger_gets_a_link_and_no_caption,
    without_a_public_url_a_link_provider_fails_the_file_clearly,
);
