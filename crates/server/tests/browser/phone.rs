use switchboard_testkit::TestDb;

use crate::harness::{Browser, PHONE};
use crate::helpers::TestApp;
use crate::{sign_in, user};

/// Agents answer from their phones: no page may scroll sideways at 390 px.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_fit_a_phone() {
    let Some(mut browser) = Browser::start("phone_width").await else {
        return;
    };
    let app = TestApp::spawn(TestDb::sqlite()).await;
    user(&app, "root@example.com", "Grace Hopper", "admin").await;
    app.sandbox_sender("whatsapp").await;
    app.contact("+442079460958").await;
    browser.viewport(PHONE).await;
    let width = browser.run("return window.innerWidth;").await;
    assert_eq!(width, 390, "the viewport is a phone's");

    browser.goto(&format!("{}/login", app.base)).await;
    assert!(!browser.scrolls_sideways().await, "/login");
    browser.screenshot("login").await;
    sign_in(&browser, &app, "root@example.com").await;
    for path in [
        "/inbox",
        "/users",
        "/senders",
        "/senders/new",
        "/templates",
        "/contacts",
        "/contacts/import",
        "/settings",
    ] {
        browser.goto(&format!("{}{path}", app.base)).await;
        assert!(!browser.scrolls_sideways().await, "{path} scrolls sideways");
        browser.screenshot(&path[1..].replace('/', "-")).await;
    }
    browser.close().await;
}
