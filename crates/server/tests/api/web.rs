//! The web pages over HTTP: signing in and out, the session cookie on the API, and CSRF.
//! (The browser tests in tests/browser drive the same pages through Chromium.)

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;
use switchboard_testkit::{both_backends, TestDb};

use crate::helpers::TestApp;

const PASSWORD: &str = "correct horse battery";

/// A browser-like client that does not follow redirects, so the tests see them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The `value` of the hidden `csrf` field of a page.
fn csrf_field(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

/// `name=value` of the cookie `name` in a response's `Set-Cookie` headers, with its attributes.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn user_with_password(app: &TestApp, email: &str, role: &str) {
    app.post(
        "/api/v1/users",
        &app.admin,
        json!({"email": email, "name": "Ada Lovelace", "role": role, "password": PASSWORD}),
    )
    .await
    .ok(201);
}

/// Signs in through the form; the session cookie pair and the page's CSRF token.
async fn sign_in(app: &TestApp, email: &str) -> (String, String) {
    let client = client();
    let form = client
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let login_cookie = cookie_pair(&set_cookie(&form, "sb_login_csrf").unwrap());
    let csrf = csrf_field(&form.text().await.unwrap());
    let answer = client
        .post(format!("{}/login", app.base))
        .header(COOKIE, login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", email),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let session = cookie_pair(&set_cookie(&answer, "sb_session").unwrap());
    let inbox = client
        .get(format!("{}/inbox", app.base))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(inbox.status(), 200);
    let page_csrf = csrf_field(&inbox.text().await.unwrap());
    (session, page_csrf)
}

async fn signing_in_and_out(db: TestDb) {
    let app = TestApp::spawn(db).await;
    user_with_password(&app, "ada@example.com", "agent").await;
    let client = client();

    let root = client.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(root.headers()[LOCATION], "/login");
    let inbox = client
        .get(format!("{}/inbox", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(inbox.headers()[LOCATION], "/login", "pages need a session");

    let form = client
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let login_cookie = set_cookie(&form, "sb_login_csrf").unwrap();
    assert!(login_cookie.contains("HttpOnly") && login_cookie.contains("SameSite=Lax"));
    let login_cookie = cookie_pair(&login_cookie);
    let csrf = csrf_field(&form.text().await.unwrap());

    // A wrong password and an unknown e-mail get the same answer.
    for (email, password) in [
        ("ada@example.com", "not the password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let answer = client
            .post(format!("{}/login", app.base))
            .header(COOKIE, &login_cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
        assert!(set_cookie(&answer, "sb_session").is_none());
        let page = answer.text().await.unwrap();
        assert!(
            page.contains("That e-mail address and password do not match an account."),
            "{page}"
        );
    }

    // Without the login form's token (another site's form), nobody is signed in.
    let forged = client
        .post(format!("{}/login", app.base))
        .form(&[
            ("csrf", "guess"),
            ("email", "ada@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, "sb_session").is_none());

    let answer = client
        .post(format!("{}/login", app.base))
        .header(COOKIE, &login_cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", " ADA@example.com "),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()[LOCATION], "/inbox");
    let session = set_cookie(&answer, "sb_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "plain http: {session}");
    let session = cookie_pair(&session);

    let root = client
        .get(format!("{}/", app.base))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(root.headers()[LOCATION], "/inbox");
    let inbox = client
        .get(format!("{}/inbox", app.base))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(inbox.status(), 200);
    assert_eq!(inbox.headers()["cache-control"], "no-store");
    let page = inbox.text().await.unwrap();
    assert!(page.contains(">Inbox</h1>") && page.contains("Ada Lovelace"));
    // An agent is not shown the admin pages.
    assert!(!page.contains("href=\"/users\"") && !page.contains("href=\"/senders\""));
    let page_csrf = csrf_field(&page);

    // Signing out needs the page's token too.
    let forged = client
        .post(format!("{}/logout", app.base))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let out = client
        .post(format!("{}/logout", app.base))
        .header(COOKIE, &session)
        .form(&[("csrf", page_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.headers()[LOCATION], "/login");
    assert!(set_cookie(&out, "sb_session")
        .unwrap()
        .contains("Max-Age=0"));
    let after = client
        .get(format!("{}/inbox", app.base))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.headers()[LOCATION],
        "/login",
        "the old cookie is dead"
    );
}

async fn the_api_accepts_the_session_with_its_csrf_token(db: TestDb) {
    let app = TestApp::spawn(db).await;
    user_with_password(&app, "agent@example.com", "agent").await;
    let (session, csrf) = sign_in(&app, "agent@example.com").await;
    let client = client();

    let me = client
        .get(format!("{}/api/v1/me", app.base))
        .header(COOKIE, &session)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["user"]["email"], "agent@example.com", "{me:#}");

    let contact = json!({"name": "Grace", "phone": "+442079460123"});
    let refused = client
        .post(format!("{}/api/v1/contacts", app.base))
        .header(COOKIE, &session)
        .json(&contact)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "csrf_failed");
    let wrong = client
        .post(format!("{}/api/v1/contacts", app.base))
        .header(COOKIE, &session)
        .header("x-csrf-token", "not-the-token")
        .json(&contact)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);

    let created = client
        .post(format!("{}/api/v1/contacts", app.base))
        .header(COOKIE, &session)
        .header("x-csrf-token", &csrf)
        .json(&contact)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    // The session can do what the user's role can, and no more.
    let forbidden = client
        .post(format!("{}/api/v1/users", app.base))
        .header(COOKIE, &session)
        .header("x-csrf-token", &csrf)
        .json(&json!({"email": "x@example.com", "name": "X", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);
    let problem: serde_json::Value = forbidden.json().await.unwrap();
    assert_eq!(problem["code"], "forbidden");

    let unknown = client
        .get(format!("{}/api/v1/me", app.base))
        .header(COOKIE, "sb_session=sbs_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
}

async fn admin_forms_refuse_posts_without_the_token(db: TestDb) {
    let app = TestApp::spawn(db).await;
    user_with_password(&app, "root@example.com", "admin").await;
    let (session, csrf) = sign_in(&app, "root@example.com").await;
    let client = client();
    let user = [
        ("email", "new@example.com"),
        ("name", "New"),
        ("role", "agent"),
    ];

    let forged = client
        .post(format!("{}/users", app.base))
        .header(COOKIE, &session)
        .form(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let list = app.get("/api/v1/users", &app.admin).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 1);

    let mut with_token = user.to_vec();
    with_token.push(("csrf", csrf.as_str()));
    let created = client
        .post(format!("{}/users", app.base))
        .header(COOKIE, &session)
        .form(&with_token)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 303);
    let list = app.get("/api/v1/users", &app.admin).await;
    assert_eq!(list.ok(200)["items"].as_array().unwrap().len(), 2);

    // A bad field comes back on the form, next to the field.
    let bad = client
        .post(format!("{}/users", app.base))
        .header(COOKIE, &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "not an address"),
            ("name", "Bad"),
            ("role", "agent"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    let page = bad.text().await.unwrap();
    assert!(page.contains("id=\"email-error\""), "{page}");
    assert!(page.contains("value=\"not an address\""));
}

/// A multipart body with the CSRF token and one file.
fn upload(csrf: &str, file_name: &str, csv: &str) -> (String, Vec<u8>) {
    let boundary = "----switchboard-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
         Content-Type: text/csv\r\n\r\n{csv}\r\n--{boundary}--\r\n"
    );
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

async fn contacts_import_from_csv_reporting_bad_rows(db: TestDb) {
    let app = TestApp::spawn(db).await;
    user_with_password(&app, "root@example.com", "admin").await;
    let (session, csrf) = sign_in(&app, "root@example.com").await;
    let existing = app.contact("+442079460001").await;
    let csv = "name,phone,locale,plan,opt_in_source,opt_in_at\n\
               Ada,+44 20 7946 0002,en_GB,gold,website signup,2024-05-01\n\
               Bad Number,12345,,,,\n\
               \"Grace, Admiral\",+442079460001,,silver,,\n\
               Future,+442079460003,,,shop,2999-01-01\n\
               Short,+442079460004\n";
    let (content_type, body) = upload(&csrf, "customers.csv", csv);
    let answer = client()
        .post(format!("{}/contacts/import", app.base))
        .header(COOKIE, &session)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let page = answer.text().await.unwrap();
    assert!(page.contains("<strong>Line 3:</strong>"), "{page}");
    assert!(
        page.contains("<strong>Line 5:</strong> opt_in_at: is in the future"),
        "{page}"
    );
    assert!(
        page.contains("<strong>Line 6:</strong> the row has 2 columns"),
        "{page}"
    );

    let found = app.get("/api/v1/contacts?q=Ada", &app.admin).await;
    let ada = &found.ok(200)["items"][0];
    assert_eq!(ada["phone"], "+442079460002");
    assert_eq!(ada["locale"], "en_GB");
    assert_eq!(ada["fields"]["plan"], "gold");
    let ledger = app
        .get(
            &format!("/api/v1/contacts/{}/consent", ada["id"].as_str().unwrap()),
            &app.admin,
        )
        .await;
    let ledger = ledger.ok(200).to_string();
    assert!(
        ledger.contains("opted_in") && ledger.contains("customers.csv, line 2"),
        "{ledger}"
    );
    // The existing contact with the same phone was updated, not duplicated.
    let grace = app
        .get(&format!("/api/v1/contacts/{existing}"), &app.admin)
        .await;
    assert_eq!(grace.ok(200)["name"], "Grace, Admiral");
    assert_eq!(grace.body["fields"]["plan"], "silver");

    // Without the token nothing is imported.
    let (content_type, body) = upload("forged", "more.csv", "name,phone\nEve,+442079460009\n");
    let forged = client()
        .post(format!("{}/contacts/import", app.base))
        .header(COOKIE, &session)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let eve = app.get("/api/v1/contacts?q=Eve", &app.admin).await;
    assert!(eve.ok(200)["items"].as_array().unwrap().is_empty());
}

async fn cookies_are_secure_behind_https(db: TestDb) {
    let app = TestApp::spawn_with_public_url(db, "https://inbox.example.com/").await;
    let form = client()
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    assert!(set_cookie(&form, "sb_login_csrf")
        .unwrap()
        .ends_with("; Secure"));
}

/// A multipart body with the given text fields, then a file as `attachment`.
fn multipart(fields: &[(&str, &str)], file: (&str, &str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "----web-test-boundary-4f1c";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let (filename, content_type, bytes) = file;
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"attachment\"; \
             filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The composer's file goes only with the page's token, and then with the text as its caption.
async fn a_composer_attachment_needs_the_token(db: TestDb) {
    let app = TestApp::spawn(db).await;
    user_with_password(&app, "root@example.com", "admin").await;
    let sender = app.sandbox_sender("whatsapp").await;
    let inbound = app
        .post(
            "/api/v1/messages/inbound",
            &app.admin,
            json!({"sender_id": sender, "from": "+442079460958", "text": "Photo please"}),
        )
        .await;
    let conversation = inbound.ok(201)["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (session, csrf) = sign_in(&app, "root@example.com").await;
    let client = client();
    let claimed = client
        .post(format!("{}/inbox/{conversation}/claim", app.base))
        .header(COOKIE, &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(claimed.status(), 303);
    let media_dir = app.data_dir().join("media");
    let kept = || {
        std::fs::read_dir(&media_dir)
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let post = |content_type: String, body: Vec<u8>| {
        client
            .post(format!("{}/inbox/{conversation}/send", app.base))
            .header(COOKIE, &session)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let (content_type, body) = multipart(
        &[("text", "Here it is")],
        ("lamp.png", "image/png", b"\x89PNG not really"),
    );
    let forged = post(content_type, body).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(kept(), 0, "a forged form left a file");

    let (content_type, body) = multipart(
        &[("csrf", csrf.as_str()), ("text", "Here it is")],
        ("lamp.png", "image/png", b"\x89PNG not really"),
    );
    let sent = post(content_type, body).await.unwrap();
    assert_eq!(sent.status(), 303);
    let location = sent.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.contains("notice=sent"), "{location}");
    assert_eq!(kept(), 1);
    let messages = app
        .get("/api/v1/messages?direction=outbound", &app.admin)
        .await;
    let items = messages.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["media"]["caption"], "Here it is");
    assert_eq!(items[0]["media"]["filename"], "lamp.png");

    // An empty file input is no attachment: the text goes alone.
    let (content_type, body) = multipart(
        &[("csrf", csrf.as_str()), ("text", "And a note")],
        ("", "application/octet-stream", b""),
    );
    let text_only = post(content_type, body).await.unwrap();
    assert_eq!(text_only.status(), 303);
    let messages = app
        .get("/api/v1/messages?direction=outbound", &app.admin)
        .await;
    let items = messages.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert!(
        items
            .iter()
            .any(|m| m["text"] == "And a note" && m["media"].is_null()),
        "{items:#?}"
    );
}

both_backends!(a_composer_attachment_needs_the_token);

both_backends!(
    signing_in_and_out,
    the_api_accepts_the_session_with_its_csrf_token,
    admin_forms_refuse_posts_without_the_token,
    contacts_import_from_csv_reporting_bad_rows,
    cookies_are_secure_behind_https,
);

/// A new password signs the user out everywhere: a reset after a leak shuts the old sessions.
async fn a_new_password_ends_every_session(db: TestDb) {
    let app = TestApp::spawn(db).await;
    user_with_password(&app, "agent@example.com", "agent").await;
    let (session, _) = sign_in(&app, "agent@example.com").await;
    let me = |session: String| {
        let request = client()
            .get(format!("{}/api/v1/me", app.base))
            .header(COOKIE, session);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(me(session.clone()).await, 200);
    let users = app.get("/api/v1/users", &app.admin).await;
    let id = users.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "agent@example.com")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/api/v1/users/{id}"),
        &app.admin,
        json!({"password": "a brand new passphrase"}),
    )
    .await
    .ok(200);
    assert_eq!(me(session).await, 401);
}

both_backends!(a_new_password_ends_every_session);
