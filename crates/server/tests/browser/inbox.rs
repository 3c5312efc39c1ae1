//! An agent's day in the inbox, in a real browser: a conversation arrives live, is claimed and
//! answered, the ticks move to read; a closed window leaves only templates and the recontact
//! template goes out; an agent cannot transfer, an admin can.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use switchboard_app::SystemClock;
use switchboard_testkit::TestDb;

use crate::harness::Browser;
use crate::helpers::TestApp;
use crate::{sign_in, user};

/// Waits for `condition` as `until` does, reloading the page now and then: for outcomes that
/// this test checks the page for, not the live updates that the agent's day covers.
async fn until_reloaded(browser: &Browser, what: &str, condition: &str) {
    for _ in 0..9 {
        let ready = browser.try_run(&format!("return !!({condition});")).await;
        if ready == Ok(Value::Bool(true)) {
            return;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        let _ = browser
            .try_run("window.location.reload(); return true;")
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    browser.until(what, condition).await;
}

/// Claims the open conversation and waits until it shows as Sam's.
pub(crate) async fn claim_as_sam(browser: &Browser) {
    browser.click("form[action$='/claim'] button").await;
    browser
        .until(
            "the claim",
            "document.getElementById('thread-state').innerText.includes('Sam Agent')",
        )
        .await;
}

/// Clicks the conversation row that names `who`.
pub(crate) async fn open_row(browser: &Browser, who: &str) {
    browser
        .run(&format!(
            "Array.from(document.querySelectorAll('a.conv')).find(a => a.innerText.includes('{who}')).click();"
        ))
        .await;
    browser.until("the conversation", &format!("document.querySelector('.thread-title h2') && document.querySelector('.thread-title h2').innerText === '{who}'")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_day_in_the_inbox() {
    let Some(mut browser) = Browser::start("inbox_day").await else {
        return;
    };
    // Simulated customers on: they receive, read and answer like real ones.
    let app = TestApp::spawn_with(TestDb::sqlite(), Arc::new(SystemClock), true).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let sam = user(&app, "sam@example.com", "Sam Agent", "agent").await;
    let bob = user(&app, "bob@example.com", "Bob Agent", "agent").await;
    user(&app, "root@example.com", "Rita Admin", "admin").await;
    for id in [&sam, &bob] {
        app.patch(
            &format!("/api/v1/users/{id}"),
            &app.admin,
            json!({"permitted_sender_ids": [wa]}),
        )
        .await
        .ok(200);
    }
    app.approved_template(
        json!({"sender_id": wa, "name": "follow_up", "locale": "en", "category": "UTILITY",
               "body": "Hi {{1}}, we have an update on your request. Reply to continue.",
               "variable_mapping": {"1": "contact.name"}, "recontact": true}),
    )
    .await;
    // Lou wrote 30 hours ago and signed up for updates: only templates may reach her now.
    let lou = app
        .post(
            "/api/v1/contacts",
            &app.admin,
            json!({"name": "Lou Laurent", "phone": "+33612345678", "locale": "en",
                   "fields": {"sandbox_persona": "quiet"}}),
        )
        .await;
    let lou = lou.ok(201)["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/contacts/{lou}/consent"),
        &app.admin,
        json!({"channel": "whatsapp", "status": "opted_in", "source": "website",
               "evidence": "signup form"}),
    )
    .await
    .ok(201);
    let long_ago = (time::OffsetDateTime::now_utc() - time::Duration::hours(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    app.post(
        "/api/v1/messages/inbound",
        &app.admin,
        json!({"sender_id": wa, "from": "+33612345678", "text": "Any news on my refund?",
               "timestamp": long_ago}),
    )
    .await
    .ok(201);
    app.post(
        "/api/v1/contacts",
        &app.admin,
        json!({"name": "Ada Lovelace", "phone": "+442079460958", "locale": "en",
               "fields": {"sandbox_persona": "responsive"}}),
    )
    .await
    .ok(201);

    // Sam signs in; the unclaimed tab holds Lou's old conversation.
    sign_in(&browser, &app, "sam@example.com").await;
    browser
        .until(
            "Lou's row",
            "document.getElementById('conversation-list').innerText.includes('Lou Laurent')",
        )
        .await;
    browser.screenshot("inbox").await;

    // Ada writes: her conversation appears without a reload.
    let marker = browser.run("window.__same_page = true; return true;").await;
    assert_eq!(marker, Value::Bool(true));
    app.post(
        "/api/v1/messages/inbound",
        &app.admin,
        json!({"sender_id": wa, "from": "+442079460958", "text": "Where is my order #1042?"}),
    )
    .await
    .ok(201);
    browser
        .until(
            "Ada's row, live",
            "document.getElementById('conversation-list').innerText.includes('Ada Lovelace')",
        )
        .await;
    assert_eq!(
        browser.run("return window.__same_page === true;").await,
        Value::Bool(true)
    );
    browser.screenshot("arrived-live").await;

    // Open and claim it.
    open_row(&browser, "Ada Lovelace").await;
    assert!(browser
        .text("#composer")
        .await
        .contains("Claim this conversation"));
    browser.screenshot("unclaimed-conversation").await;
    claim_as_sam(&browser).await;
    let window = browser.text("#window").await;
    assert!(
        window.starts_with("Window open: closes in 23 h"),
        "{window}"
    );
    browser.screenshot("claimed").await;

    // Reply; the ticks move to read as the customer reads, and her answer arrives.
    browser
        .fill("#reply-text", "Hi Ada, it left our warehouse this morning.")
        .await;
    browser.click("#reply-form button").await;
    browser.until("the reply", "Array.from(document.querySelectorAll('.bubble.out .text')).some(p => p.innerText.includes('left our warehouse'))").await;
    browser
        .until(
            "the read ticks",
            "document.querySelector('.bubble.out .ticks[data-status=read]')",
        )
        .await;
    browser
        .until(
            "Ada's answer",
            "document.querySelectorAll('.bubble.in').length >= 2",
        )
        .await;
    browser.screenshot("read-and-answered").await;

    // Lou's window closed 6 hours ago: the composer offers templates only, and the recontact one.
    browser
        .goto(&format!("{}/inbox?tab=unclaimed", app.base))
        .await;
    open_row(&browser, "Lou Laurent").await;
    claim_as_sam(&browser).await;
    let banner = browser.text("#composer-banner").await;
    assert!(
        banner.starts_with("The 24-hour window closed 6 h"),
        "{banner}"
    );
    assert_eq!(
        browser
            .run("return document.getElementById('reply-text') === null;")
            .await,
        Value::Bool(true)
    );
    assert!(browser
        .text("#template-picker summary")
        .await
        .contains("Templates allowed now"));
    browser.screenshot("window-closed").await;
    browser.click("#recontact-form button").await;
    browser.until("the template", "Array.from(document.querySelectorAll('.bubble.out .template-label')).some(p => p.innerText.includes('follow_up'))").await;
    browser.screenshot("recontact-sent").await;

    // An agent cannot hand the conversation over.
    browser.click("#transfer-button").await;
    let refusal = browser.text("#inbox-error").await;
    assert!(
        refusal.contains("Only admins and supervisors transfer"),
        "{refusal}"
    );
    browser.screenshot("transfer-refused").await;

    // An admin can.
    browser.click("form[action='/logout'] button").await;
    sign_in(&browser, &app, "root@example.com").await;
    browser
        .goto(&format!("{}/inbox?tab=claimed", app.base))
        .await;
    open_row(&browser, "Lou Laurent").await;
    browser
        .find("#transfer-to")
        .await
        .select_by_value(&bob)
        .await
        .expect("Bob is offered");
    browser.click("#transfer-button").await;
    browser
        .until(
            "the transfer",
            "document.getElementById('thread-state').innerText.includes('Bob Agent')",
        )
        .await;
    browser.screenshot("transferred").await;

    // At phone width the conversation fills the screen, without sideways scrolling.
    browser.viewport((390, 844)).await;
    assert!(!browser.scrolls_sideways().await);
    browser.screenshot("phone").await;
    browser.close().await;
}

/// The opt-in request's outcomes in the composer (R4.3): a contact who declines cannot be
/// written to; a contact without WhatsApp is offered SMS instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_in_outcomes_shape_the_composer() {
    let Some(mut browser) = Browser::start("opt_in_outcomes").await else {
        return;
    };
    let app = TestApp::spawn_with(TestDb::sqlite(), Arc::new(SystemClock), true).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let sms = app.sandbox_sender("sms").await;
    let sam = user(&app, "sam@example.com", "Sam Agent", "agent").await;
    app.patch(
        &format!("/api/v1/users/{sam}"),
        &app.admin,
        json!({"permitted_sender_ids": [wa, sms]}),
    )
    .await
    .ok(200);
    for (name, phone, persona) in [
        ("Dee Dubois", "+33698765432", "declines"),
        ("Nia Okafor", "+2348031234567", "no_whatsapp"),
    ] {
        app.post(
            "/api/v1/contacts",
            &app.admin,
            json!({"name": name, "phone": phone, "fields": {"sandbox_persona": persona}}),
        )
        .await
        .ok(201);
        app.post(
            "/api/v1/messages/inbound",
            &app.admin,
            json!({"sender_id": wa, "from": phone, "text": "Hello, a question"}),
        )
        .await
        .ok(201);
    }
    sign_in(&browser, &app, "sam@example.com").await;

    // Dee answers the request with NO: composing is disabled, and the banner says why.
    open_row(&browser, "Dee Dubois").await;
    claim_as_sam(&browser).await;
    browser.click("form[action$='/opt-in'] button").await;
    until_reloaded(&browser, "Dee's refusal", "document.getElementById('composer-banner') && document.getElementById('composer-banner').innerText.includes('declined')").await;
    assert_eq!(
        browser
            .run("return document.getElementById('reply-text') === null;")
            .await,
        Value::Bool(true)
    );
    browser.screenshot("declined").await;

    // Nia has no WhatsApp: the request fails, and the composer offers SMS.
    browser
        .goto(&format!("{}/inbox?tab=unclaimed", app.base))
        .await;
    open_row(&browser, "Nia Okafor").await;
    claim_as_sam(&browser).await;
    browser.click("form[action$='/opt-in'] button").await;
    until_reloaded(
        &browser,
        "the failed request",
        "document.querySelector('.bubble.out .ticks[data-status=failed]')",
    )
    .await;
    until_reloaded(&browser, "the SMS offer", "document.getElementById('composer-banner') && document.getElementById('composer-banner').innerText.includes('no WhatsApp')").await;
    let reason = browser
        .run("return document.querySelector('.bubble.out .ticks[data-status=failed]').getAttribute('title');")
        .await;
    assert!(reason.as_str().unwrap().contains("131026"), "{reason}");
    browser.screenshot("no-whatsapp").await;
    browser.click("form[action$='/switch'] button").await;
    browser.until("the SMS conversation", "document.querySelector('.thread-title p') && document.querySelector('.thread-title p').innerText.startsWith('SMS')").await;
    browser.screenshot("sms-conversation").await;
    browser.close().await;
}
