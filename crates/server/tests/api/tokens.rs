use serde_json::json;
use switchboard_testkit::{both_backends, TestDb};

use crate::helpers::TestApp;

async fn tokens_are_shown_once_and_revocable(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let created = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "crm", "role": "supervisor"}),
        )
        .await;
    let created = created.ok(201).clone();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sb_"));
    assert_eq!(created["role"], "supervisor");
    assert_eq!(created["prefix"], &secret[..10]);
    let id = created["id"].as_str().unwrap();

    let me = app.get("/api/v1/me", &secret).await;
    assert_eq!(me.ok(200)["role"], "supervisor");
    assert_eq!(me.body["user"], serde_json::Value::Null);
    assert!(me.body["permissions"]
        .as_array()
        .unwrap()
        .contains(&json!("users:read")));

    let list = app.get("/api/v1/tokens", &app.admin).await;
    let text = list.ok(200).to_string();
    assert!(!text.contains(&secret), "a secret is never listed");
    assert!(list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["id"] == id && t["last_used_at"].is_string()));

    app.delete(&format!("/api/v1/tokens/{id}"), &app.admin)
        .await
        .ok(204);
    app.get("/api/v1/me", &secret)
        .await
        .problem(401, "unauthorized");
    app.delete(&format!("/api/v1/tokens/{id}"), &app.admin)
        .await
        .problem(404, "not_found");
}

async fn a_user_token_acts_as_the_user_and_never_above_them(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (user_id, token) = app.user_with_token("agent").await;
    let me = app.get("/api/v1/me", &token).await;
    assert_eq!(me.ok(200)["user"]["id"], user_id.as_str());
    assert_eq!(me.body["role"], "agent");
    assert_eq!(me.body["token"]["user_id"], user_id.as_str());

    let too_strong = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "x", "user_id": user_id, "role": "admin"}),
        )
        .await;
    assert_eq!(
        too_strong.problem(422, "exceeds_user_role")["field"],
        "role"
    );

    let unknown = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "x", "user_id": "01900000-0000-7000-8000-000000000000"}),
        )
        .await;
    assert_eq!(
        unknown.problem(422, "unknown_reference")["field"],
        "user_id"
    );

    let missing_role = app
        .post("/api/v1/tokens", &app.admin, json!({"name": "x"}))
        .await;
    assert_eq!(missing_role.problem(422, "required")["field"], "role");

    let past = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "x", "role": "agent", "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(past.problem(422, "in_the_past")["field"], "expires_at");

    // Agents cannot mint tokens at all.
    let refused = app
        .post(
            "/api/v1/tokens",
            &token,
            json!({"name": "x", "role": "agent"}),
        )
        .await;
    assert_eq!(
        refused.problem(403, "forbidden")["permission"],
        "tokens:write"
    );
    app.get("/api/v1/tokens", &token)
        .await
        .problem(403, "forbidden");
}

async fn scopes_narrow_what_a_token_may_do(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let reader = app
        .service_token("admin", Some(vec!["contacts:read"]))
        .await;
    app.get("/api/v1/contacts", &reader).await.ok(200);
    let refused = app
        .post(
            "/api/v1/contacts",
            &reader,
            json!({"phone": "+442079460958"}),
        )
        .await;
    assert_eq!(
        refused.problem(403, "forbidden")["permission"],
        "contacts:write"
    );
    app.get("/api/v1/senders", &reader)
        .await
        .problem(403, "forbidden");

    let over = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "x", "role": "agent", "scopes": ["users:write"]}),
        )
        .await;
    assert_eq!(over.problem(422, "exceeds_role")["field"], "scopes");
    let unknown_scope = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "x", "role": "agent", "scopes": ["everything"]}),
        )
        .await;
    assert_eq!(
        unknown_scope.problem(422, "invalid_field")["field"],
        "scopes[0]"
    );
}

async fn lowering_a_users_role_lowers_their_tokens(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (user_id, token) = app.user_with_token("supervisor").await;
    app.get("/api/v1/users", &token).await.ok(200);
    app.patch(
        &format!("/api/v1/users/{user_id}"),
        &app.admin,
        json!({"role": "agent"}),
    )
    .await
    .ok(200);
    app.get("/api/v1/users", &token)
        .await
        .problem(403, "forbidden");
    assert_eq!(app.get("/api/v1/me", &token).await.ok(200)["role"], "agent");
}

/// A scoped token cannot mint a token with more than its scopes.
async fn a_scoped_token_cannot_escape_its_scopes(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let minter = app.service_token("admin", Some(vec!["tokens:write"])).await;
    let escape = app
        .post(
            "/api/v1/tokens",
            &minter,
            json!({"name": "x", "role": "admin"}),
        )
        .await;
    assert_eq!(
        escape.problem(422, "exceeds_own_permissions")["field"],
        "scopes"
    );
    app.post(
        "/api/v1/tokens",
        &minter,
        json!({"name": "x", "role": "admin", "scopes": ["contacts:read"]}),
    )
    .await
    .problem(422, "exceeds_own_permissions");
    app.post(
        "/api/v1/tokens",
        &minter,
        json!({"name": "x", "role": "admin", "scopes": ["tokens:write"]}),
    )
    .await
    .ok(201);
}

both_backends!(
    a_scoped_token_cannot_escape_its_scopes,
    tokens_are_shown_once_and_revocable,
    a_user_token_acts_as_the_user_and_never_above_them,
    scopes_narrow_what_a_token_may_do,
    lowering_a_users_role_lowers_their_tokens,
);
