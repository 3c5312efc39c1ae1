//! The sandbox's simulated customers, on a clock the test moves: each persona receives, reads
//! and answers (or not) through the same paths as real webhooks, on both databases.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use switchboard_app::ManualClock;
use switchboard_testkit::{both_backends, TestDb};
use time::{Duration, OffsetDateTime};

use crate::helpers::TestApp;

struct Sandbox {
    app: TestApp,
    clock: Arc<ManualClock>,
    whatsapp: String,
}

impl Sandbox {
    async fn start(db: TestDb) -> Sandbox {
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let app = TestApp::spawn_with(db, clock.clone(), true).await;
        let whatsapp = app.sandbox_sender("whatsapp").await;
        Sandbox {
            app,
            clock,
            whatsapp,
        }
    }

    /// A customer who wrote to the WhatsApp sender just now, playing `persona`.
    async fn customer(&self, phone: &str, persona: &str) -> String {
        let app = &self.app;
        let contact = app
            .post(
                "/api/v1/messages/inbound",
                &app.admin,
                json!({"sender_id": self.whatsapp, "from": phone, "text": "Hello"}),
            )
            .await
            .ok(201)["contact_id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.patch(
            &format!("/api/v1/contacts/{contact}"),
            &app.admin,
            json!({"fields": {"sandbox_persona": persona}}),
        )
        .await
        .ok(200);
        contact
    }

    async fn send(&self, contact: &str, text: &str) -> String {
        let app = &self.app;
        app.post(
            "/api/v1/messages",
            &app.admin,
            json!({"sender_id": self.whatsapp, "contact_id": contact, "text": text}),
        )
        .await
        .ok(202)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Waits (boundedly, in real time) until `check` holds for what `path` answers.
    async fn until(&self, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..400 {
            let answer = self.app.get(path, &self.app.admin).await;
            if check(&answer.body) {
                return answer.body;
            }
            tokio::time::sleep(StdDuration::from_millis(25)).await;
        }
        panic!("{what} never happened ({path})");
    }

    async fn status(&self, message: &str, want: &'static str) -> Value {
        self.until(
            &format!("/api/v1/messages/{message}"),
            &format!("status {want}"),
            |m| m["status"] == want,
        )
        .await
    }

    /// The customer's messages, oldest first.
    async fn inbound(&self, contact: &str) -> Vec<String> {
        let page = self
            .app
            .get(
                &format!("/api/v1/messages?contact_id={contact}&direction=inbound&order=asc"),
                &self.app.admin,
            )
            .await;
        page.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    async fn consent(&self, contact: &str) -> Value {
        let ledger = self
            .app
            .get(
                &format!("/api/v1/contacts/{contact}/consent"),
                &self.app.admin,
            )
            .await;
        ledger.ok(200)["current"]["whatsapp"].clone()
    }
}

/// A responsive customer receives, reads and answers; asked to opt in, they say YES.
async fn a_responsive_customer_reads_and_answers(db: TestDb) {
    let sb = Sandbox::start(db).await;
    let ada = sb.customer("+442079460958", "responsive").await;
    let id = sb.send(&ada, "Your table is booked for 8pm.").await;
    let sent = sb.status(&id, "sent").await;
    assert!(sent["provider_message_id"]
        .as_str()
        .unwrap()
        .starts_with("sandbox."));
    // Nothing happens before its time.
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(sb.inbound(&ada).await, ["Hello"]);

    sb.clock.advance(Duration::seconds(2));
    sb.status(&id, "delivered").await;
    sb.clock.advance(Duration::seconds(15));
    let read = sb.status(&id, "read").await;
    let timeline: Vec<&str> = read["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["queued", "sent", "delivered", "read"]);
    let path = format!("/api/v1/messages?contact_id={ada}&direction=inbound");
    sb.until(&path, "an answer", |page| {
        page["items"].as_array().unwrap().len() == 2
    })
    .await;

    let request = sb
        .app
        .post(
            &format!("/api/v1/contacts/{ada}/opt-in-request"),
            &sb.app.admin,
            json!({"sender_id": sb.whatsapp}),
        )
        .await;
    request.ok(202);
    sb.until(
        &format!("/api/v1/messages?contact_id={ada}&direction=inbound"),
        "YES",
        |p| {
            sb.clock.advance(Duration::seconds(1));
            p["items"][0]["text"] == "YES"
        },
    )
    .await;
    assert_eq!(sb.consent(&ada).await, "opted_in");
}

/// A customer who declines says NO to the opt-in request and is opted out; one without
/// WhatsApp is refused as Meta refuses them, and the opt-in request then offers SMS.
async fn customers_who_decline_or_have_no_whatsapp(db: TestDb) {
    let sb = Sandbox::start(db).await;
    let dee = sb.customer("+16505551234", "declines").await;
    sb.app
        .post(
            &format!("/api/v1/contacts/{dee}/opt-in-request"),
            &sb.app.admin,
            json!({"sender_id": sb.whatsapp}),
        )
        .await
        .ok(202);
    sb.until(
        &format!("/api/v1/messages?contact_id={dee}&direction=inbound"),
        "NO",
        |p| {
            sb.clock.advance(Duration::seconds(1));
            p["items"][0]["text"] == "NO"
        },
    )
    .await;
    sb.until(&format!("/api/v1/contacts/{dee}/consent"), "opt-out", |l| {
        l["current"]["whatsapp"] == "opted_out"
    })
    .await;

    let noa = sb.customer("+14155552671", "no_whatsapp").await;
    let id = sb.send(&noa, "Hello?").await;
    let failed = sb.status(&id, "failed").await;
    assert_eq!(failed["error"]["provider_code"], "131026");
    sb.app
        .post(
            &format!("/api/v1/contacts/{noa}/opt-in-request"),
            &sb.app.admin,
            json!({"sender_id": sb.whatsapp}),
        )
        .await
        .problem(409, "no_whatsapp");
}

/// A late customer reads after a while and answers a day later, reopening the window that had
/// closed meanwhile; a quiet one reads and never answers.
async fn late_and_quiet_customers(db: TestDb) {
    let sb = Sandbox::start(db).await;
    let lou = sb.customer("+442079460959", "late").await;
    let quinn = sb.customer("+442079460957", "quiet").await;
    let to_lou = sb.send(&lou, "Are you still interested?").await;
    let to_quinn = sb.send(&quinn, "Are you still interested?").await;
    sb.status(&to_lou, "sent").await;
    sb.status(&to_quinn, "sent").await;
    sb.clock.advance(Duration::minutes(5));
    sb.status(&to_lou, "read").await;
    sb.status(&to_quinn, "read").await;

    sb.clock.advance(Duration::hours(24));
    let check = sb
        .app
        .post(
            "/api/v1/policy/check",
            &sb.app.admin,
            json!({"sender_id": sb.whatsapp, "contact_id": lou, "text": "hi"}),
        )
        .await;
    assert_eq!(check.ok(200)["code"], "window_closed");

    sb.clock.advance(Duration::hours(1) + Duration::seconds(5));
    let path = format!("/api/v1/messages?contact_id={lou}&direction=inbound");
    sb.until(&path, "a late answer", |p| {
        p["items"].as_array().unwrap().len() == 2
    })
    .await;
    let check = sb
        .app
        .post(
            "/api/v1/policy/check",
            &sb.app.admin,
            json!({"sender_id": sb.whatsapp, "contact_id": lou, "text": "hi"}),
        )
        .await;
    assert_eq!(check.ok(200)["allowed"], true);
    assert_eq!(sb.inbound(&quinn).await, ["Hello"]);
}

/// The sandbox reviews a submitted template like Meta: pending, then approved a little later.
async fn the_sandbox_approves_submitted_templates(db: TestDb) {
    let sb = Sandbox::start(db).await;
    let app = &sb.app;
    let id = app
        .post(
            "/api/v1/templates",
            &app.admin,
            json!({"sender_id": sb.whatsapp, "name": "order_update", "locale": "en",
                   "category": "UTILITY", "body": "Your order {{1}} has shipped."}),
        )
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let submitted = app
        .post(
            &format!("/api/v1/templates/{id}/submit"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(submitted.ok(200)["status"], "pending");
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    let still = app
        .get(&format!("/api/v1/templates/{id}"), &app.admin)
        .await;
    assert_eq!(still.ok(200)["status"], "pending");
    sb.clock.advance(Duration::seconds(6));
    sb.until(&format!("/api/v1/templates/{id}"), "approval", |t| {
        t["status"] == "approved"
    })
    .await;
}

both_backends!(
    the_sandbox_approves_submitted_templates,
    a_responsive_customer_reads_and_answers,
    customers_who_decline_or_have_no_whatsapp,
    late_and_quiet_customers,
);
