//! Submitting WhatsApp templates to Meta's template API, against a fake Graph API on loopback
//! that records what it receives, and Meta's status webhooks applied to them.

use std::time::Duration as StdDuration;

use serde_json::{json, Value};
use switchboard_channels::signature::sign_meta;
use switchboard_testkit::fakes::GraphEndpoint;
use switchboard_testkit::{both_backends, FakeGraph, Reply, TestDb};

use crate::helpers::TestApp;

const WABA_ID: &str = "102290129340398";
const APP_SECRET: &str = "0123456789abcdef0123456789abcdef";

async fn fake_graph() -> (FakeGraph, String) {
    let fake = FakeGraph::start().await;
    let base = fake.api_base_url();
    (fake, base)
}

async fn whatsapp_sender(app: &TestApp, base: &str) -> String {
    app.post(
        "/api/v1/senders",
        &app.admin,
        json!({"channel": "whatsapp", "name": "WA", "provider": {
            "kind": "whatsapp_cloud", "phone_number_id": "106540352242922", "waba_id": WABA_ID,
            "access_token": "EAAGfaketoken", "app_secret": APP_SECRET, "verify_token": "verify",
            "api_base_url": base}}),
    )
    .await
    .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn template(app: &TestApp, sender: &str, name: &str) -> String {
    app.post(
        "/api/v1/templates",
        &app.admin,
        json!({"sender_id": sender, "name": name, "locale": "en_US", "category": "UTILITY",
               "body": "Order {{1}} has shipped to you, {{2}}.", "footer": "Reply STOP to opt out",
               "variable_mapping": {"2": "contact.name"}}),
    )
    .await
    .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn script(fake: &FakeGraph, status: u16, answer: Value) {
    fake.reply_next(GraphEndpoint::MessageTemplates, Reply::new(status, answer));
}

fn steps(template: &Value) -> Vec<(String, String, String)> {
    template["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap().to_owned(),
                t["to"].as_str().unwrap().to_owned(),
                t["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn templates_are_submitted_to_meta_and_follow_its_answers(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (fake, base) = fake_graph().await;
    let sender = whatsapp_sender(&app, &base).await;

    // Meta takes it for review: it is pending, with Meta's id, and the exact body went out.
    let id = template(&app, &sender, "order_update").await;
    script(
        &fake,
        200,
        json!({"id": "1689556908129832", "status": "PENDING", "category": "UTILITY"}),
    );
    let submitted = app
        .post(
            &format!("/api/v1/templates/{id}/submit"),
            &app.admin,
            json!({}),
        )
        .await;
    let submitted = submitted.ok(200);
    assert_eq!(submitted["status"], "pending");
    assert_eq!(submitted["provider_template_id"], "1689556908129832");
    {
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let (path, auth, body) = (
            &requests[0].path,
            requests[0].authorization(),
            requests[0].json(),
        );
        assert_eq!(path, &format!("/v23.0/{WABA_ID}/message_templates"));
        assert_eq!(auth, Some("Bearer EAAGfaketoken"));
        assert_eq!(
            body,
            json!({
                "name": "order_update",
                "language": "en_US",
                "category": "UTILITY",
                "components": [
                    {"type": "BODY", "text": "Order {{1}} has shipped to you, {{2}}.",
                     "example": {"body_text": [["example 1", "name"]]}},
                    {"type": "FOOTER", "text": "Reply STOP to opt out"},
                ],
            })
        );
    }
    let read = app
        .get(&format!("/api/v1/templates/{id}"), &app.admin)
        .await;
    let read = read.ok(200);
    assert_eq!(read["provider_template_id"], "1689556908129832");
    let first = &steps(read)[0];
    assert_eq!((first.0.as_str(), first.1.as_str()), ("draft", "pending"));
    assert!(first.2.starts_with("token:"), "{first:?}");
    assert!(read["transitions"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("1689556908129832"));

    // Meta's verdict arrives by webhook and finds the template by Meta's id, even under a
    // name that is not ours.
    let webhook = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{
        "id": WABA_ID, "time": 1751247548, "changes": [{"field": "message_template_status_update",
        "value": {"event": "APPROVED", "message_template_id": 1689556908129832_i64,
                  "message_template_name": "renamed_elsewhere", "message_template_language": "en_US",
                  "reason": "NONE", "message_template_category": "UTILITY"}}]}]}))
    .unwrap();
    let signature = sign_meta(APP_SECRET, &webhook);
    let status = app
        .post_webhook("/webhooks/whatsapp", &webhook, Some(signature))
        .await;
    assert_eq!(status, 200);
    let mut approved = Value::Null;
    for _ in 0..200 {
        approved = app
            .get(&format!("/api/v1/templates/{id}"), &app.admin)
            .await
            .body;
        if approved["status"] == "approved" {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    assert_eq!(approved["status"], "approved", "{approved:#}");
    assert_eq!(
        steps(&approved)[1],
        ("pending".into(), "approved".into(), "provider".into())
    );

    // Meta may decide at once: both steps are recorded.
    let quick = template(&app, &sender, "quick_yes").await;
    script(
        &fake,
        200,
        json!({"id": "200", "status": "APPROVED", "category": "UTILITY"}),
    );
    let answer = app
        .post(
            &format!("/api/v1/templates/{quick}/submit"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(answer.ok(200)["status"], "approved");
    let read = app
        .get(&format!("/api/v1/templates/{quick}"), &app.admin)
        .await;
    let pairs: Vec<(String, String)> = steps(&read.body)
        .into_iter()
        .map(|(from, to, _)| (from, to))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("draft".into(), "pending".into()),
            ("pending".into(), "approved".into())
        ]
    );

    let refused = template(&app, &sender, "quick_no").await;
    script(
        &fake,
        200,
        json!({"id": "201", "status": "REJECTED", "category": "UTILITY"}),
    );
    let answer = app
        .post(
            &format!("/api/v1/templates/{refused}/submit"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(answer.ok(200)["status"], "rejected");
    assert_eq!(answer.body["provider_template_id"], "201");
}

async fn a_refused_submission_leaves_a_draft_and_says_why(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (fake, base) = fake_graph().await;
    let sender = whatsapp_sender(&app, &base).await;
    let id = template(&app, &sender, "order_update").await;

    // Meta does not like the content: a 502 with Meta's code, and nothing changes.
    script(
        &fake,
        400,
        json!({"error": {"message": "Invalid parameter", "type": "OAuthException", "code": 100,
                         "error_subcode": 2388299, "fbtrace_id": "AbCdEf"}}),
    );
    let answer = app
        .post(
            &format!("/api/v1/templates/{id}/submit"),
            &app.admin,
            json!({}),
        )
        .await;
    let problem = answer.problem(502, "provider_error");
    assert_eq!(problem["provider_code"], "100");
    assert!(problem["detail"].as_str().unwrap().contains("Meta refused"));
    let read = app
        .get(&format!("/api/v1/templates/{id}"), &app.admin)
        .await;
    assert_eq!(read.body["status"], "draft");
    assert_eq!(read.body["provider_template_id"], Value::Null);
    assert_eq!(read.body["transitions"], json!([]));

    // An expired token: the sender is marked, as a failed send marks it.
    script(
        &fake,
        401,
        json!({"error": {"message": "Error validating access token: Session has expired",
                         "type": "OAuthException", "code": 190, "fbtrace_id": "AbCdEf"}}),
    );
    let answer = app
        .post(
            &format!("/api/v1/templates/{id}/submit"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(answer.problem(502, "token_expired")["provider_code"], "190");
    let read = app
        .get(&format!("/api/v1/templates/{id}"), &app.admin)
        .await;
    assert_eq!(read.body["status"], "draft");
    let sender_view = app
        .get(&format!("/api/v1/senders/{sender}"), &app.admin)
        .await;
    assert_eq!(sender_view.body["health"]["token_status"], "expired");

    // Meta unreachable: try again later.
    let dead = whatsapp_sender_at(&app, "http://127.0.0.1:9/v23.0").await;
    let other = template(&app, &dead, "order_update").await;
    let answer = app
        .post(
            &format!("/api/v1/templates/{other}/submit"),
            &app.admin,
            json!({}),
        )
        .await;
    answer.problem(502, "provider_unavailable");
    assert_eq!(fake.requests().len(), 2);

    // A sandbox sender's template only moves to pending; Meta hears nothing.
    let sandbox = app.sandbox_sender("whatsapp").await;
    let local = template(&app, &sandbox, "order_update").await;
    let answer = app
        .post(
            &format!("/api/v1/templates/{local}/submit"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(answer.ok(200)["status"], "pending");
    assert_eq!(answer.body["provider_template_id"], Value::Null);
    assert_eq!(fake.requests().len(), 2);
}

async fn whatsapp_sender_at(app: &TestApp, base: &str) -> String {
    app.post("/api/v1/senders", &app.admin, json!({"channel": "whatsapp", "name": "WA 2", "provider": {
            "kind": "whatsapp_cloud", "phone_number_id": "206540352242922", "waba_id": "202290129340398",
            "access_token": "EAAGother", "app_secret": APP_SECRET, "verify_token": "verify2",
            "api_base_url": base}}))
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

both_backends!(
    templates_are_submitted_to_meta_and_follow_its_answers,
    a_refused_submission_leaves_a_draft_and_says_why,
);
