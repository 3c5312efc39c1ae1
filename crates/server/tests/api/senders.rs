use serde_json::{json, Value};
use switchboard_core::message::{DeliveryStatus, Direction};
use switchboard_testkit::{both_backends, TestDb};

use crate::helpers::{stored_message, TestApp};

fn whatsapp(phone_number_id: &str) -> Value {
    json!({
        "channel": "whatsapp",
        "name": "Transactions",
        "use_case": "transactions",
        "provider": {
            "kind": "whatsapp_cloud",
            "phone_number_id": phone_number_id,
            "waba_id": "102290129340398",
            "access_token": "EAAGsecretaccesstoken0001",
            "app_secret": "0123456789abcdef0123456789abcdef",
            "verify_token": "verify-token-value",
            "display_phone_number": "+1 555 078 3881",
        }
    })
}

async fn every_provider_kind_is_created_with_its_secrets_masked(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let bodies = [
        whatsapp("106540352242922"),
        json!({"channel": "messenger", "name": "Page", "provider": {
            "kind": "messenger", "page_id": "1234567890", "page_access_token": "EAAGpagetokensecret0002",
            "app_secret": "fedcba9876543210fedcba9876543210", "verify_token": "verify-me-please",
            "api_base_url": "http://127.0.0.1:9/v23.0/"}}),
        json!({"channel": "sms", "name": "SMS", "provider": {
            "kind": "twilio", "account_sid": format!("AC{}", "a".repeat(32)),
            "auth_token": "b".repeat(32), "from": "+15005550006"}}),
        json!({"channel": "sms", "name": "Sandbox SMS", "provider": {"kind": "sandbox"}}),
    ];
    let secrets = [
        "EAAGsecretaccesstoken0001",
        "0123456789abcdef0123456789abcdef",
        "EAAGpagetokensecret0002",
        "fedcba9876543210fedcba9876543210",
        &"b".repeat(32),
    ];
    let mut ids = Vec::new();
    for body in bodies {
        let created = app.post("/api/v1/senders", &app.admin, body).await;
        let created = created.ok(201).clone();
        ids.push(created["id"].as_str().unwrap().to_owned());
        let fetched = app
            .get(
                &format!("/api/v1/senders/{}", ids.last().unwrap()),
                &app.admin,
            )
            .await;
        for text in [created.to_string(), fetched.ok(200).to_string()] {
            for secret in &secrets {
                assert!(!text.contains(secret), "secret leaked in {text}");
            }
        }
    }
    let wa = app
        .get(&format!("/api/v1/senders/{}", ids[0]), &app.admin)
        .await;
    let wa = wa.ok(200);
    assert_eq!(wa["provider"]["kind"], "whatsapp_cloud");
    assert_eq!(wa["provider"]["phone_number_id"], "106540352242922");
    assert_eq!(wa["provider"]["access_token"], "****0001");
    assert_eq!(wa["provider"]["display_phone_number"], "+15550783881");
    assert_eq!(
        wa["provider"]["api_base_url"],
        "https://graph.facebook.com/v23.0"
    );
    assert_eq!(wa["use_case"], "transactions");
    assert_eq!(wa["health"]["status"], "pending");
    assert_eq!(wa["health"]["quality_rating"], "unknown");
    assert_eq!(wa["health"]["token_status"], "unknown");
    let page = app
        .get(&format!("/api/v1/senders/{}", ids[1]), &app.admin)
        .await;
    assert_eq!(
        page.body["provider"]["api_base_url"],
        "http://127.0.0.1:9/v23.0"
    );
    let sandbox = app
        .get(&format!("/api/v1/senders/{}", ids[3]), &app.admin)
        .await;
    assert_eq!(sandbox.body["health"]["status"], "connected");

    let sms = app.get("/api/v1/senders?channel=sms", &app.admin).await;
    assert_eq!(sms.ok(200)["items"].as_array().unwrap().len(), 2);
    app.get("/api/v1/senders?channel=fax", &app.admin)
        .await
        .problem(400, "invalid_query");
}

async fn bad_senders_are_refused_by_field(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let mismatch = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "sms", "name": "x", "provider": whatsapp("1")["provider"]}),
        )
        .await;
    assert_eq!(
        mismatch.problem(422, "channel_mismatch")["field"],
        "provider.kind"
    );

    let incomplete = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "whatsapp", "name": "x", "provider": {"kind": "whatsapp_cloud", "phone_number_id": "12a"}}),
        )
        .await;
    let problem = incomplete.problem(422, "invalid_format");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "provider.phone_number_id",
            "provider.waba_id",
            "provider.access_token",
            "provider.app_secret",
            "provider.verify_token"
        ]
    );

    let foreign_field = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "sms", "name": "x", "provider": {"kind": "sandbox", "page_id": "1"}}),
        )
        .await;
    assert_eq!(
        foreign_field.problem(422, "not_allowed")["field"],
        "provider.page_id"
    );

    let twilio = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "sms", "name": "x", "provider": {"kind": "twilio", "account_sid": "AC1", "auth_token": "t"}}),
        )
        .await;
    assert_eq!(
        twilio.problem(422, "invalid_format")["field"],
        "provider.account_sid"
    );

    let bad_url = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "whatsapp", "name": "x", "provider": {
                "kind": "whatsapp_cloud", "phone_number_id": "1", "waba_id": "2", "access_token": "a",
                "app_secret": "b", "verify_token": "c", "api_base_url": "ftp://example.com"}}),
        )
        .await;
    assert_eq!(
        bad_url.problem(422, "invalid_url")["field"],
        "provider.api_base_url"
    );

    app.post("/api/v1/senders", &app.admin, whatsapp("777"))
        .await
        .ok(201);
    let duplicate = app
        .post("/api/v1/senders", &app.admin, whatsapp("777"))
        .await;
    duplicate.problem(409, "duplicate_sender");

    let unknown_kind = app
        .post(
            "/api/v1/senders",
            &app.admin,
            json!({"channel": "whatsapp", "name": "x", "provider": {"kind": "carrier_pigeon"}}),
        )
        .await;
    assert_eq!(
        unknown_kind.problem(422, "invalid_field")["field"],
        "provider.kind"
    );
}

async fn senders_are_patched_and_deleted_by_admins_only(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app
        .post("/api/v1/senders", &app.admin, whatsapp("5550001"))
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/senders/{id}");

    let patched = app
        .patch(
            &path,
            &app.admin,
            json!({"name": "Notifications", "use_case": null, "provider": {"access_token": "EAAGrotatedtokenvalue9999"}}),
        )
        .await;
    let patched = patched.ok(200);
    assert_eq!(patched["name"], "Notifications");
    assert_eq!(patched["use_case"], Value::Null);
    assert_eq!(patched["provider"]["access_token"], "****9999");
    assert_eq!(patched["provider"]["phone_number_id"], "5550001", "kept");

    // The send rate: WhatsApp's 80 per second unless the sender is given its own.
    assert_eq!(patched["rate_limit_per_second"], 80);
    let faster = app
        .patch(&path, &app.admin, json!({"rate_limit_per_second": 1000}))
        .await;
    assert_eq!(faster.ok(200)["rate_limit_per_second"], 1000);
    assert_eq!(
        app.get(&path, &app.admin).await.ok(200)["rate_limit_per_second"],
        1000
    );
    app.patch(&path, &app.admin, json!({"rate_limit_per_second": 0}))
        .await
        .problem(422, "out_of_range");
    let reset = app
        .patch(&path, &app.admin, json!({"rate_limit_per_second": null}))
        .await;
    assert_eq!(reset.ok(200)["rate_limit_per_second"], 80);

    app.patch(&path, &app.admin, json!({"channel": "sms"}))
        .await
        .problem(422, "immutable");
    app.patch(
        &path,
        &app.admin,
        json!({"provider": {"kind": "messenger"}}),
    )
    .await
    .problem(422, "required");

    let (_, agent) = app.user_with_token("agent").await;
    app.get(&path, &agent).await.ok(200);
    assert_eq!(
        app.get("/api/v1/senders", &agent).await.ok(200)["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.patch(&path, &agent, json!({"name": "x"}))
            .await
            .problem(403, "forbidden")["permission"],
        "senders:write"
    );
    app.post("/api/v1/senders", &agent, whatsapp("1"))
        .await
        .problem(403, "forbidden");
    app.delete(&path, &agent).await.problem(403, "forbidden");

    // A sender with history is kept for the archive.
    let used = app.sandbox_sender("whatsapp").await;
    let contact = app.contact("+442079460958").await;
    let message = stored_message(
        switchboard_core::Channel::Whatsapp,
        Direction::Inbound,
        &used,
        &contact,
        DeliveryStatus::Received,
        None,
    );
    app.store().insert_message(&message).await.unwrap();
    app.delete(&format!("/api/v1/senders/{used}"), &app.admin)
        .await
        .problem(409, "sender_in_use");

    app.delete(&path, &app.admin).await.ok(204);
    app.get(&path, &app.admin).await.problem(404, "not_found");
    app.patch(&path, &app.admin, json!({"name": "x"}))
        .await
        .problem(404, "not_found");
}

both_backends!(
    every_provider_kind_is_created_with_its_secrets_masked,
    bad_senders_are_refused_by_field,
    senders_are_patched_and_deleted_by_admins_only,
);
