use fantoccini::key::Key;
use switchboard_testkit::TestDb;

use crate::harness::Browser;
use crate::helpers::TestApp;
use crate::{user, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_and_out() {
    let Some(mut browser) = Browser::start("signing_in_and_out").await else {
        return;
    };
    let app = TestApp::spawn(TestDb::sqlite()).await;
    user(&app, "ada@example.com", "Ada Lovelace", "agent").await;

    browser.goto(&app.base).await;
    assert_eq!(
        browser.path().await,
        "/login",
        "signed out, / is the sign-in form"
    );
    browser.screenshot("sign-in-form").await;

    browser.fill("#email", "ada@example.com").await;
    browser.fill("#password", "not the password").await;
    browser.click("button[type=submit]").await;
    let message = browser.text("[role=alert]").await;
    assert_eq!(
        message,
        "That e-mail address and password do not match an account."
    );
    assert_eq!(browser.path().await, "/login");
    browser.screenshot("wrong-password").await;

    // The e-mail stays filled in; only the password is typed again.
    browser.fill("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    for _ in 0..100 {
        if browser.path().await == "/inbox" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(browser.text("main h1").await, "Inbox");
    assert_eq!(browser.path().await, "/inbox");
    let who = browser.text(".me-name").await;
    assert_eq!(who, "Ada Lovelace");
    // An agent's navigation has no admin pages.
    let nav = browser.text("nav").await;
    assert!(nav.contains("Contacts") && !nav.contains("Users") && !nav.contains("Senders"));
    browser.screenshot("inbox").await;

    browser.click(".logout button").await;
    browser.find("#email").await;
    assert_eq!(browser.path().await, "/login");
    browser.goto(&format!("{}/inbox", app.base)).await;
    assert_eq!(browser.path().await, "/login", "signed out for good");
    browser.screenshot("signed-out").await;

    // With the keyboard alone: the e-mail field has focus, Tab moves on, Enter submits.
    browser.goto(&format!("{}/login", app.base)).await;
    // The browser focuses an `autofocus` field at its next rendering, which may come after
    // the page has loaded (CI once found nothing focused yet).
    browser
        .until(
            "the e-mail field to have focus",
            "document.activeElement && document.activeElement.id === 'email'",
        )
        .await;
    let enter = char::from(Key::Enter);
    let tab = char::from(Key::Tab);
    browser
        .find("#email")
        .await
        .send_keys(&format!("ada@example.com{tab}{PASSWORD}{enter}"))
        .await
        .unwrap();
    assert_eq!(browser.text("main h1").await, "Inbox");
    browser.close().await;
}
