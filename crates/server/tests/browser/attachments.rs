//! Attachments in the composer (R5.5, R5.6), in a real browser: a file over the limit is
//! refused before it is sent (and by the server when the page's check is bypassed); a picture
//! within it goes with its caption and shows in the thread.

use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_app::SystemClock;
use switchboard_testkit::TestDb;

use crate::harness::Browser;
use crate::helpers::TestApp;
use crate::inbox::{claim_as_sam, open_row};
use crate::{sign_in, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_attaches_a_picture_within_the_limit() {
    let Some(mut browser) = Browser::start("attachments").await else {
        return;
    };
    let app = TestApp::spawn_configured(TestDb::sqlite(), Arc::new(SystemClock), |config| {
        config.sandbox_customers = true;
        config.media_limit_bytes = 1_000_000;
    })
    .await;
    let wa = app.sandbox_sender("whatsapp").await;
    let sam = user(&app, "sam@example.com", "Sam Agent", "agent").await;
    app.patch(
        &format!("/api/v1/users/{sam}"),
        &app.admin,
        json!({"permitted_sender_ids": [wa]}),
    )
    .await
    .ok(200);
    app.post(
        "/api/v1/contacts",
        &app.admin,
        json!({"name": "Ada Lovelace", "phone": "+442079460958", "locale": "en",
               "fields": {"sandbox_persona": "responsive"}}),
    )
    .await
    .ok(201);
    app.post(
        "/api/v1/messages/inbound",
        &app.admin,
        json!({"sender_id": wa, "from": "+442079460958", "text": "The lamp arrived broken. Can you see?"}),
    )
    .await
    .ok(201);

    sign_in(&browser, &app, "sam@example.com").await;
    open_row(&browser, "Ada Lovelace").await;
    claim_as_sam(&browser).await;
    let hint = browser.text("#reply-file-hint").await;
    assert_eq!(hint, "Up to 1 MB");
    // The picture to send: the page itself, as Chromium draws it.
    let picture = browser.screenshot("composer-with-attach").await;
    let picture_bytes = std::fs::read(&picture).unwrap();
    assert!(picture_bytes.len() < 1_000_000, "{}", picture_bytes.len());

    // A file over the limit is named and refused before anything is sent.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("catalogue.pdf");
    std::fs::write(&big, vec![b'x'; 1_200_000]).unwrap();
    browser.choose_file("#reply-file", &big).await;
    browser.until("the size refusal",
        "document.getElementById('reply-file-hint').innerText.includes('catalogue.pdf is 1.2 MB: attachments may be up to 1 MB')",
    )
    .await;
    assert_eq!(
        browser
            .run("return document.querySelector('#reply-form button[type=submit]').disabled;")
            .await,
        Value::Bool(true)
    );
    browser.screenshot("too-large-in-page").await;

    // The server refuses it too, should the page's check be bypassed.
    browser
        .run("var b = document.querySelector('#reply-form button[type=submit]'); b.disabled = false; document.getElementById('reply-text').required = false; b.click(); return true;")
        .await;
    browser.until("the server's refusal",
        "document.getElementById('inbox-error') && document.getElementById('inbox-error').innerText.includes('larger than attachments may be')",
    )
    .await;
    browser.screenshot("too-large-refused").await;
    let sent = app
        .get("/api/v1/messages?direction=outbound", &app.admin)
        .await;
    assert_eq!(
        sent.ok(200)["items"].as_array().unwrap().len(),
        0,
        "{:#}",
        sent.body
    );

    // A picture within the limit goes, with the text as its caption.
    browser.choose_file("#reply-file", &picture).await;
    browser
        .until(
            "the chosen picture",
            "/\\.png \\(\\d+ KB\\)$/.test(document.getElementById('reply-file-hint').innerText)",
        )
        .await;
    browser
        .fill("#reply-text", "Is this the lamp you mean?")
        .await;
    browser.screenshot("picture-chosen").await;
    browser.click("#reply-form button[type=submit]").await;
    browser.until("the picture in the thread",
        "Array.from(document.querySelectorAll('.bubble.out img.media')).some(i => i.complete && i.naturalWidth > 0)",
    )
    .await;
    browser.until("the caption and the ticks",
        "Array.from(document.querySelectorAll('.bubble.out')).some(b => b.innerText.includes('Is this the lamp you mean?') && b.querySelector('.ticks[data-status=read], .ticks[data-status=delivered]'))",
    )
    .await;
    browser.screenshot("picture-sent").await;

    let sent = app
        .get("/api/v1/messages?direction=outbound", &app.admin)
        .await;
    let items = sent.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:#?}");
    let media = &items[0]["media"];
    assert_eq!(media["kind"], "image");
    assert_eq!(media["mime_type"], "image/png");
    assert_eq!(media["size_bytes"], picture_bytes.len());
    assert_eq!(media["caption"], "Is this the lamp you mean?");
    assert!(media["filename"].as_str().unwrap().ends_with(".png"));

    // At phone width the composer with its attach button still fits.
    browser.viewport((390, 844)).await;
    assert!(!browser.scrolls_sideways().await);
    browser.screenshot("phone").await;
    browser.close().await;
}
