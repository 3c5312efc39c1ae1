//! A supervisor runs a campaign from the web pages: creates it with the form, watches the
//! hopper fill in live as simulated customers receive it and tap its quick replies, pauses
//! and resumes it, and reads the answers.

use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_app::SystemClock;
use switchboard_testkit::TestDb;

use crate::harness::Browser;
use crate::helpers::TestApp;
use crate::{sign_in, user};

fn count(key: &str) -> String {
    format!("Number(document.querySelector('.hopper [data-count=\"{key}\"]').innerText)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_runs_a_campaign() {
    let Some(mut browser) = Browser::start("campaign").await else {
        return;
    };
    let app = TestApp::spawn_with(TestDb::sqlite(), Arc::new(SystemClock), true).await;
    let wa = app.sandbox_sender("whatsapp").await;
    user(&app, "sue@example.com", "Sue Supervisor", "supervisor").await;
    app.approved_template(json!({"sender_id": wa, "name": "winter_sale", "locale": "en",
                   "category": "MARKETING", "body": "Hi {{1}}, our winter sale starts today. Interested?",
                   "buttons": [{"type": "QUICK_REPLY", "text": "Yes please"},
                               {"type": "QUICK_REPLY", "text": "No thanks"}],
                   "variable_mapping": {"1": "contact.name"}})).await;
    // Twelve customers who signed up on the website: one has since said stop, and two never
    // answer (so the campaign is still running, waiting for them, when it is paused).
    let mut contacts = Vec::new();
    for n in 0..12 {
        let persona = if n == 4 || n == 8 {
            "quiet"
        } else {
            "responsive"
        };
        let id = app
            .post(
                "/api/v1/contacts",
                &app.admin,
                json!({"name": format!("Customer {n}"), "phone": format!("+447700{n:06}"),
                       "fields": {"sandbox_persona": persona}}),
            )
            .await
            .ok(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let status = if n == 11 { "opted_out" } else { "opted_in" };
        app.post(
            &format!("/api/v1/contacts/{id}/consent"),
            &app.admin,
            json!({"channel": "whatsapp", "status": status, "source": "website",
                   "evidence": "winter newsletter signup"}),
        )
        .await
        .ok(201);
        contacts.push(id);
    }
    app.post(
        "/api/v1/lists",
        &app.admin,
        json!({"name": "Newsletter", "contact_ids": contacts}),
    )
    .await
    .ok(201);

    sign_in(&browser, &app, "sue@example.com").await;
    browser.goto(&format!("{}/campaigns", app.base)).await;
    browser.find("#new-campaign").await;
    browser.screenshot("campaigns-empty").await;

    // The form: a name, the approved template, the list, start now.
    browser.fill("#cname", "Winter sale").await;
    browser
        .run(
            "const t = document.getElementById('template'); t.selectedIndex = 1; \
             const l = document.getElementById('list_id'); l.selectedIndex = 1; return true;",
        )
        .await;
    browser.click("input[name=start]").await;
    browser.screenshot("new-campaign-form").await;
    browser
        .click("section[aria-labelledby=new-campaign] button[type=submit]")
        .await;
    browser
        .until(
            "the campaign's page",
            "location.pathname.startsWith('/campaigns/') && document.querySelector('.hopper')",
        )
        .await;
    assert!(browser.text("h1").await.contains("Winter sale"));
    let marker = browser.run("window.__same_page = true; return true;").await;
    assert_eq!(marker, Value::Bool(true));

    // The hopper moves live: everyone sent to but the one who said stop, then the taps come.
    browser
        .until(
            "everyone sent to",
            &format!(
                "{} + {} === 11 && {} === 1",
                count("pending"),
                count("closed"),
                count("skipped")
            ),
        )
        .await;
    browser.screenshot("sent-live").await;
    browser
        .until("the answers", &format!("{} >= 6", count("closed")))
        .await;
    assert_eq!(
        browser.run("return window.__same_page === true;").await,
        Value::Bool(true),
        "the counters moved without a reload"
    );
    browser.screenshot("answers-live").await;

    // Pause and resume with the buttons.
    browser.click("form[action$='/pause'] button").await;
    browser
        .until(
            "paused",
            "document.querySelector('h1 .pill').innerText.trim().toLowerCase() === 'paused'",
        )
        .await;
    assert!(browser.text(".notice").await.contains("paused"));
    browser.screenshot("paused").await;
    browser.click("form[action$='/resume'] button").await;
    browser
        .until(
            "running again",
            "document.querySelector('h1 .pill').innerText.trim().toLowerCase() !== 'paused'",
        )
        .await;

    // The answers, each tap counted, and the skipped recipient with its reason.
    browser
        .until(
            "every answer",
            &format!("{} === 9 && {} === 2", count("closed"), count("pending")),
        )
        .await;
    browser.goto(&browser_url(&browser).await).await;
    // Drawn as the page loads, not only by live events.
    browser
        .until(
            "the bar on a fresh page",
            "document.querySelector('.hopper .seg-closed').getBoundingClientRect().width > 100",
        )
        .await;
    let answers = browser.text("#answers + ul").await;
    assert!(
        answers.contains("Yes please") || answers.contains("No thanks"),
        "{answers}"
    );
    browser.click(".filters a[href$='state=skipped']").await;
    browser
        .until(
            "the skipped recipient",
            "document.querySelector('table.table tbody').innerText.includes('opted_out')",
        )
        .await;
    browser.screenshot("skipped-recipient").await;

    // The list of campaigns shows it with its progress; at phone width too.
    browser.goto(&format!("{}/campaigns", app.base)).await;
    assert!(browser
        .text("#campaign-list + ul")
        .await
        .contains("Winter sale"));
    browser.viewport((390, 844)).await;
    assert!(!browser.scrolls_sideways().await);
    browser.screenshot("campaigns-phone").await;
    browser.close().await;
}

async fn browser_url(browser: &Browser) -> String {
    browser
        .run("return location.href;")
        .await
        .as_str()
        .unwrap()
        .to_owned()
}
