use serde_json::json;
use switchboard_testkit::{both_backends, TestDb};

use crate::helpers::TestApp;

async fn admins_manage_users_and_their_senders(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let sms = app.sandbox_sender("sms").await;

    let created = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({
                "email": " Ada@Example.com ",
                "name": "Ada",
                "role": "agent",
                "password": "a long enough password",
                "default_sender_id": wa,
                "permitted_sender_ids": [sms],
            }),
        )
        .await;
    let user = created.ok(201).clone();
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["role"], "agent");
    assert_eq!(user["default_sender_id"], wa.as_str());
    assert_eq!(user["has_password"], true);
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());
    // The default sender is always among the permitted ones.
    let mut permitted: Vec<String> =
        serde_json::from_value(user["permitted_sender_ids"].clone()).unwrap();
    permitted.sort();
    let mut both = vec![wa.clone(), sms.clone()];
    both.sort();
    assert_eq!(permitted, both);
    let id = user["id"].as_str().unwrap();

    let fetched = app.get(&format!("/api/v1/users/{id}"), &app.admin).await;
    assert_eq!(fetched.ok(200)["email"], "ada@example.com");

    let updated = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &app.admin,
            json!({"name": "Ada Lovelace", "role": "supervisor", "default_sender_id": null, "permitted_sender_ids": [wa]}),
        )
        .await;
    let updated = updated.ok(200);
    assert_eq!(updated["name"], "Ada Lovelace");
    assert_eq!(updated["role"], "supervisor");
    assert_eq!(updated["default_sender_id"], serde_json::Value::Null);
    assert_eq!(updated["permitted_sender_ids"], json!([wa]));
    assert_eq!(updated["email"], "ada@example.com", "untouched fields stay");

    // An admin may use every sender, whatever was assigned.
    let admin = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "root@example.com", "name": "Root", "role": "admin"}),
        )
        .await;
    let mut admin_senders: Vec<String> =
        serde_json::from_value(admin.ok(201)["permitted_sender_ids"].clone()).unwrap();
    admin_senders.sort();
    assert_eq!(admin_senders, both);

    let list = app.get("/api/v1/users?order=asc", &app.admin).await;
    let items = list.ok(200)["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], id);

    app.delete(&format!("/api/v1/users/{id}"), &app.admin)
        .await
        .ok(204);
    app.get(&format!("/api/v1/users/{id}"), &app.admin)
        .await
        .problem(404, "not_found");
    app.delete(&format!("/api/v1/users/{id}"), &app.admin)
        .await
        .problem(404, "not_found");
    app.get("/api/v1/users/not-an-id", &app.admin)
        .await
        .problem(404, "not_found");
}

async fn bad_users_are_refused_by_field(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.post(
        "/api/v1/users",
        &app.admin,
        json!({"email": "a@example.com", "name": "A", "role": "agent"}),
    )
    .await
    .ok(201);
    let first = app.get("/api/v1/users", &app.admin).await.body["items"][0]["id"].clone();

    let duplicate = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "A@example.com", "name": "B", "role": "agent"}),
        )
        .await;
    let problem = duplicate.problem(409, "duplicate_email");
    assert_eq!(problem["field"], "email");
    assert_eq!(problem["existing_id"], first);

    let bad = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "nope", "name": " ", "role": "agent", "password": "short"}),
        )
        .await;
    let problem = bad.problem(422, "invalid_email");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "name", "password"]);

    let bad_role = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "c@example.com", "name": "C", "role": "boss"}),
        )
        .await;
    assert_eq!(bad_role.problem(422, "invalid_field")["field"], "role");

    let ghost_sender = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "d@example.com", "name": "D", "role": "agent",
                   "permitted_sender_ids": ["01900000-0000-7000-8000-000000000000"]}),
        )
        .await;
    assert_eq!(
        ghost_sender.problem(422, "unknown_reference")["field"],
        "permitted_sender_ids"
    );
    let not_uuid = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": "e@example.com", "name": "E", "role": "agent",
                   "permitted_sender_ids": ["x"]}),
        )
        .await;
    assert_eq!(
        not_uuid.problem(422, "invalid_field")["field"],
        "permitted_sender_ids[0]"
    );
}

async fn roles_decide_who_may_touch_users(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (agent_id, agent) = app.user_with_token("agent").await;
    let (_, supervisor) = app.user_with_token("supervisor").await;
    let (admin_id, admin) = app.user_with_token("admin").await;

    let refused = app
        .post(
            "/api/v1/users",
            &agent,
            json!({"email": "x@example.com", "name": "X", "role": "agent"}),
        )
        .await;
    assert_eq!(
        refused.problem(403, "forbidden")["permission"],
        "users:write"
    );
    assert!(refused.body["detail"]
        .as_str()
        .unwrap()
        .contains("users:write"));
    assert_eq!(
        app.get("/api/v1/users", &agent)
            .await
            .problem(403, "forbidden")["permission"],
        "users:read"
    );
    // An agent reads their own record, and no one else's.
    app.get(&format!("/api/v1/users/{agent_id}"), &agent)
        .await
        .ok(200);
    app.get(&format!("/api/v1/users/{admin_id}"), &agent)
        .await
        .problem(403, "forbidden");

    // Supervisors read users but do not change them.
    app.get("/api/v1/users", &supervisor).await.ok(200);
    app.patch(
        &format!("/api/v1/users/{agent_id}"),
        &supervisor,
        json!({"name": "Renamed"}),
    )
    .await
    .problem(403, "forbidden");
    app.delete(&format!("/api/v1/users/{agent_id}"), &supervisor)
        .await
        .problem(403, "forbidden");

    // An admin acting as a user cannot delete or demote themselves.
    app.delete(&format!("/api/v1/users/{admin_id}"), &admin)
        .await
        .problem(409, "cannot_delete_self");
    app.patch(
        &format!("/api/v1/users/{admin_id}"),
        &admin,
        json!({"role": "agent"}),
    )
    .await
    .problem(422, "cannot_demote_self");
    app.delete(&format!("/api/v1/users/{agent_id}"), &admin)
        .await
        .ok(204);
    // The deleted agent's token no longer works.
    app.get("/api/v1/me", &agent)
        .await
        .problem(401, "unauthorized");
}

both_backends!(
    admins_manage_users_and_their_senders,
    bad_users_are_refused_by_field,
    roles_decide_who_may_touch_users,
);
