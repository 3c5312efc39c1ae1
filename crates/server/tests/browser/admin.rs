use serde_json::json;
use switchboard_testkit::TestDb;

use crate::harness::Browser;
use crate::helpers::TestApp;
use crate::{sign_in, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_pages_render_and_create() {
    let Some(mut browser) = Browser::start("admin_pages").await else {
        return;
    };
    let app = TestApp::spawn(TestDb::sqlite()).await;
    user(&app, "root@example.com", "Grace Hopper", "admin").await;
    let wa = app.sandbox_sender("whatsapp").await;
    app.sandbox_sender("sms").await;
    app.post(
        "/api/v1/templates",
        &app.admin,
        json!({"sender_id": wa, "name": "order_ready", "locale": "en", "category": "UTILITY",
               "body": "Hello {{1}}, your order is ready."}),
    )
    .await
    .ok(201);
    sign_in(&browser, &app, "root@example.com").await;

    // Every admin page renders in the layout.
    for (path, heading) in [
        ("/users", "Users"),
        ("/senders", "Senders"),
        ("/templates", "Templates"),
        ("/contacts", "Contacts"),
        ("/settings", "Settings"),
    ] {
        browser.goto(&format!("{}{path}", app.base)).await;
        assert_eq!(browser.text("main h1").await, heading, "{path}");
        let current = browser.text("nav a[aria-current=page]").await;
        assert_eq!(current, heading);
        browser.screenshot(&heading.to_lowercase()).await;
    }

    // The sender form shows only the chosen provider's fields.
    browser.goto(&format!("{}/senders/new", app.base)).await;
    let shown = |id: &'static str| {
        let browser = &browser;
        async move {
            browser
                .run(&format!(
                    "return !document.getElementById('{id}').closest('[data-kinds]').hidden;"
                ))
                .await
        }
    };
    assert_eq!(shown("phone_number_id").await, true);
    assert_eq!(shown("account_sid").await, false);
    browser
        .find("#kind")
        .await
        .select_by_value("twilio")
        .await
        .unwrap();
    assert_eq!(shown("phone_number_id").await, false);
    assert_eq!(shown("account_sid").await, true);
    browser.screenshot("sender-form-twilio").await;

    // Create a user: a bad e-mail first, shown next to the field, then a good one.
    browser.goto(&format!("{}/users", app.base)).await;
    browser.fill("#email", "not-an-email").await;
    browser.fill("#name", "Alan Turing").await;
    browser.fill("#password", "a long enough password").await;
    browser
        .click("form[action='/users'] button[type=submit]")
        .await;
    let error = browser.text("#email-error").await;
    assert!(error.contains("must be an e-mail address"), "{error}");
    assert_eq!(
        browser
            .find("#email")
            .await
            .attr("aria-invalid")
            .await
            .unwrap(),
        Some("true".to_owned())
    );
    browser.screenshot("user-invalid").await;
    browser.fill("#email", "alan@example.com").await;
    browser.fill("#password", "a long enough password").await;
    browser.click("input[name=permitted_sender_ids]").await;
    browser
        .click("form[action='/users'] button[type=submit]")
        .await;
    browser.text_becomes("[role=status]", "User created.").await;
    let table = browser.text("table").await;
    assert!(
        table.contains("Alan Turing") && table.contains("alan@example.com"),
        "{table}"
    );
    browser.screenshot("user-created").await;
    let users = app.get("/api/v1/users", &app.admin).await;
    let alan = users.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "alan@example.com")
        .cloned()
        .expect("the user was created");
    assert_eq!(alan["role"], "agent");
    assert_eq!(alan["permitted_sender_ids"].as_array().unwrap().len(), 1);

    // A contact by hand.
    browser.goto(&format!("{}/contacts/new", app.base)).await;
    browser.fill("#name", "Ada Customer").await;
    browser.fill("#phone", "12345").await;
    browser.click("main button[type=submit]").await;
    assert!(browser.text("#phone-error").await.contains("phone"));
    browser.fill("#phone", "+44 20 7946 0958").await;
    browser.click("main button[type=submit]").await;
    browser
        .text_becomes("[role=status]", "Contact created.")
        .await;
    assert_eq!(browser.text("main h1").await, "Ada Customer");
    // Record an opt-in with evidence; it appears in the ledger.
    browser
        .fill("#evidence", "https://example.com/signup/42")
        .await;
    browser
        .click("form[action$='/consent'] button[type=submit]")
        .await;
    browser
        .text_becomes("[role=status]", "Consent recorded.")
        .await;
    let ledger = browser.text("table").await;
    assert!(ledger.contains("https://example.com/signup/42"), "{ledger}");
    browser.screenshot("contact").await;

    // CSV import with one bad row: the report names its line.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("customers.csv");
    std::fs::write(
        &csv,
        "name,phone,locale,plan,opt_in_source,opt_in_at\n\
         Charles Babbage,+442079460100,en_GB,gold,website form,2024-05-01\n\
         Broken Row,not a phone,,,,\n\
         Mary Somerville,+442079460101,,silver,,\n",
    )
    .unwrap();
    browser.goto(&format!("{}/contacts/import", app.base)).await;
    browser.choose_file("#file", &csv).await;
    browser.screenshot("import-form").await;
    browser.click("main form button[type=submit]").await;
    let report = browser.text("#import-report").await;
    assert!(report.contains("Line 3:"), "{report}");
    assert!(report.to_lowercase().contains("created\n2"), "{report}");
    browser.screenshot("import-report").await;

    browser
        .goto(&format!("{}/contacts?q=Babbage", app.base))
        .await;
    let list = browser.text("table").await;
    assert!(
        list.contains("Charles Babbage") && list.contains("Opted in"),
        "{list}"
    );
    browser.screenshot("contacts-search").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_reads_but_does_not_change() {
    let Some(mut browser) = Browser::start("supervisor_read_only").await else {
        return;
    };
    let app = TestApp::spawn(TestDb::sqlite()).await;
    user(&app, "sup@example.com", "Sam Supervisor", "supervisor").await;
    sign_in(&browser, &app, "sup@example.com").await;
    browser.goto(&format!("{}/users", app.base)).await;
    assert!(browser
        .client
        .find(fantoccini::Locator::Css("form[action='/users']"))
        .await
        .is_err());
    browser.goto(&format!("{}/settings", app.base)).await;
    assert!(browser
        .find("#time_zone")
        .await
        .attr("disabled")
        .await
        .unwrap()
        .is_some());
    browser.screenshot("settings-read-only").await;
    browser.close().await;
}
