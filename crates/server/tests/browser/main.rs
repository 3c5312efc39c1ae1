//! Browser tests: the real server and headless Chromium over WebDriver (fantoccini).
//!
//! These run on SQLite only: what the pages store goes through the same app and store code
//! that the API tests cover on both databases, and a browser per backend would double the
//! slowest tests for no new coverage.

// The API tests' black-box helpers (`TestApp`), shared rather than copied; the browser tests
// use only some of them.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod harness;

mod admin;
mod attachments;
mod campaigns;

mod inbox;
mod phone;
mod sign_in;

use serde_json::json;

use harness::Browser;
use helpers::TestApp;

pub const PASSWORD: &str = "correct horse battery";

/// A user with a password, made through the API.
pub async fn user(app: &TestApp, email: &str, name: &str, role: &str) -> String {
    let user = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": email, "name": name, "role": role, "password": PASSWORD}),
        )
        .await;
    user.ok(201)["id"].as_str().unwrap().to_owned()
}

/// Signs in through the form and waits for the inbox.
pub async fn sign_in(browser: &Browser, app: &TestApp, email: &str) {
    // A page still arriving from the step before (a sign-out's redirect) can hand the form a
    // sign-in token that its cookie no longer matches: then the form is simply filled again.
    for _ in 0..3 {
        browser.goto(&format!("{}/login", app.base)).await;
        browser.fill("#email", email).await;
        browser.fill("#password", PASSWORD).await;
        browser.click("button[type=submit]").await;
        // The password check takes a moment (argon2); wait for the redirect, not the old page.
        for _ in 0..100 {
            if browser.path().await == "/inbox" {
                browser.find("main h1").await;
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    panic!("{email} could not sign in");
}
