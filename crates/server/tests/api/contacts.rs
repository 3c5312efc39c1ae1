use serde_json::{json, Value};
use switchboard_testkit::{both_backends, TestDb};

use crate::helpers::TestApp;

async fn contacts_are_created_with_e164_phones(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (owner, agent) = app.user_with_token("agent").await;
    let created = app
        .post(
            "/api/v1/contacts",
            &agent,
            json!({
                "name": "Grace Hopper",
                "phone": "+44 20 7946 0958",
                "whatsapp_user_id": "US.13491208655302741918",
                "messenger_psid": "1254459154682919",
                "locale": "en-gb",
                "owner_id": owner,
                "fields": {"plan": "gold", "visits": 3},
            }),
        )
        .await;
    let contact = created.ok(201).clone();
    assert_eq!(contact["phone"], "+442079460958");
    assert_eq!(contact["whatsapp_user_id"], "US.13491208655302741918");
    assert_eq!(contact["messenger_psid"], "1254459154682919");
    assert_eq!(contact["locale"], "en_GB");
    assert_eq!(contact["owner_id"], owner.as_str());
    assert_eq!(contact["fields"], json!({"plan": "gold", "visits": 3}));
    assert!(contact["created_at"].as_str().unwrap().ends_with('Z'));
    let id = contact["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{id}"), &agent)
            .await
            .ok(200),
        &contact
    );

    // Known by BSUID alone (R1.7).
    app.post(
        "/api/v1/contacts",
        &agent,
        json!({"whatsapp_user_id": "US.ENT.11815799212886844830"}),
    )
    .await
    .ok(201);
}

async fn bad_and_duplicate_contacts_are_refused(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let no_country = app
        .post("/api/v1/contacts", &app.admin, json!({"phone": "5550001"}))
        .await;
    let problem = no_country.problem(422, "invalid_address");
    assert_eq!(problem["field"], "phone");

    let nothing = app
        .post("/api/v1/contacts", &app.admin, json!({"name": "Nobody"}))
        .await;
    assert_eq!(nothing.problem(422, "required")["field"], "phone");

    let bad = app
        .post(
            "/api/v1/contacts",
            &app.admin,
            json!({"phone": "+442079460958", "messenger_psid": "abc", "locale": "english",
                   "fields": {"Bad Key": 1}}),
        )
        .await;
    let fields: Vec<&str> = bad.problem(422, "invalid_address")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["messenger_psid", "locale", "fields.Bad Key"]);

    let ghost_owner = app
        .post(
            "/api/v1/contacts",
            &app.admin,
            json!({"phone": "+442079460958", "owner_id": "01900000-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(
        ghost_owner.problem(422, "unknown_reference")["field"],
        "owner_id"
    );

    let first = app.contact("+442079460958").await;
    let duplicate = app
        .post(
            "/api/v1/contacts",
            &app.admin,
            json!({"phone": "+44 20 7946 0958"}),
        )
        .await;
    let problem = duplicate.problem(409, "duplicate_contact");
    assert_eq!(problem["field"], "phone");
    assert_eq!(problem["existing_id"], first.as_str());
}

async fn contacts_are_searched_and_paged(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let phones = [
        "+442079460958",
        "+16505551234",
        "+33142685300",
        "+4930901820",
        "+61293744000",
    ];
    let mut ids = Vec::new();
    for (i, phone) in phones.iter().enumerate() {
        let name = if i == 1 {
            "Alan Turing".to_owned()
        } else {
            format!("Person {i}")
        };
        let id = app
            .post(
                "/api/v1/contacts",
                &app.admin,
                json!({"name": name, "phone": phone}),
            )
            .await
            .ok(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        ids.push(id);
    }
    let found = app.get("/api/v1/contacts?q=turing", &app.admin).await;
    assert_eq!(found.ok(200)["items"][0]["id"], ids[1].as_str());
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);
    let by_phone = app.get("/api/v1/contacts?q=7946", &app.admin).await;
    assert_eq!(by_phone.ok(200)["items"][0]["id"], ids[0].as_str());

    let mut seen = Vec::new();
    let mut path = "/api/v1/contacts?limit=2".to_owned();
    loop {
        let page = app.get(&path, &app.admin).await;
        let page = page.ok(200);
        for item in page["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/contacts?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let oldest = app
        .get("/api/v1/contacts?order=asc&limit=1", &app.admin)
        .await;
    assert_eq!(oldest.ok(200)["items"][0]["id"], ids[0].as_str());
}

async fn contacts_are_patched_and_deleted(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = app
        .post(
            "/api/v1/contacts",
            &app.admin,
            json!({"name": "Ada", "phone": "+442079460958", "locale": "en", "fields": {"plan": "gold", "visits": 1}}),
        )
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.contact("+16505551234").await;
    let path = format!("/api/v1/contacts/{id}");

    let patched = app
        .patch(
            &path,
            &app.admin,
            json!({"locale": null, "messenger_psid": "99887766", "fields": {"visits": 2, "plan": null, "tier": "b"}}),
        )
        .await;
    let patched = patched.ok(200);
    assert_eq!(patched["locale"], Value::Null);
    assert_eq!(patched["name"], "Ada");
    assert_eq!(patched["messenger_psid"], "99887766");
    assert_eq!(patched["fields"], json!({"visits": 2, "tier": "b"}));

    let taken = app
        .patch(&path, &app.admin, json!({"phone": "+1 650 555 1234"}))
        .await;
    assert_eq!(
        taken.problem(409, "duplicate_contact")["existing_id"],
        other.as_str()
    );
    app.patch(&path, &app.admin, json!({"phone": "12345"}))
        .await
        .problem(422, "invalid_address");
    app.patch(
        &path,
        &app.admin,
        json!({"phone": null, "messenger_psid": null}),
    )
    .await
    .problem(422, "required");

    app.delete(&path, &app.admin).await.ok(204);
    app.get(&path, &app.admin).await.problem(404, "not_found");
    app.patch(&path, &app.admin, json!({"name": "x"}))
        .await
        .problem(404, "not_found");
}

async fn idempotency_keys_make_creates_safe_to_retry(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let post = |key: &'static str, body: Value| {
        let request = app
            .client
            .post(format!("{}/api/v1/contacts", app.base))
            .bearer_auth(&app.admin)
            .header("idempotency-key", key)
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status().as_u16();
            let replayed = r.headers().get("idempotent-replayed").is_some();
            let body: Value = r.json().await.unwrap();
            (status, replayed, body)
        }
    };
    let body = json!({"name": "Ada", "phone": "+442079460958"});
    let (status, replayed, first) = post("order-42", body.clone()).await;
    assert_eq!((status, replayed), (201, false));
    let (status, replayed, again) = post("order-42", body.clone()).await;
    assert_eq!((status, replayed), (201, true));
    assert_eq!(again["id"], first["id"]);

    let (status, _, problem) =
        post("order-42", json!({"name": "Eve", "phone": "+16505551234"})).await;
    assert_eq!(status, 422);
    assert_eq!(problem["code"], "idempotency_key_reused");

    // Concurrent retries of one request create one contact.
    let racers = (0..8).map(|_| post("race-1", json!({"phone": "+33142685300"})));
    let results = futures_join_all(racers).await;
    let ids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|(status, _, body)| {
            assert_eq!(*status, 201, "{body}");
            body["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1);
    let all = app.get("/api/v1/contacts", &app.admin).await;
    assert_eq!(all.ok(200)["items"].as_array().unwrap().len(), 2);

    let bad_key = app
        .client
        .post(format!("{}/api/v1/contacts", app.base))
        .bearer_auth(&app.admin)
        .header("idempotency-key", "")
        .json(&json!({"phone": "+4930901820"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 400);
}

/// Runs the futures concurrently on the runtime and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

both_backends!(
    contacts_are_created_with_e164_phones,
    bad_and_duplicate_contacts_are_refused,
    contacts_are_searched_and_paged,
    contacts_are_patched_and_deleted,
    idempotency_keys_make_creates_safe_to_retry,
);
