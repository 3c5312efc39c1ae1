use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use switchboard_app::SystemClock;
use switchboard_testkit::{both_backends, TestDb};

use crate::helpers::{test_config, TestApp};

async fn health_answers_with_the_backend(db: TestDb) {
    let postgres = db.is_postgres();
    let app = TestApp::spawn(db).await;
    let health = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.ok(200)["status"], "ok");
    assert_eq!(
        health.body["database"],
        if postgres { "postgres" } else { "sqlite" }
    );
    assert!(health.headers.contains_key("x-request-id"));
}

/// Every route of the foundation is in the OpenAPI document with the methods it serves.
async fn the_openapi_document_covers_every_route(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let doc = app
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let doc = doc.ok(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected: &[(&str, &[&str])] = &[
        ("/healthz", &["get"]),
        ("/api/v1/openapi.json", &["get"]),
        ("/api/v1/me", &["get"]),
        ("/api/v1/users", &["get", "post"]),
        ("/api/v1/users/{id}", &["get", "patch", "delete"]),
        ("/api/v1/tokens", &["get", "post"]),
        ("/api/v1/tokens/{id}", &["delete"]),
        ("/api/v1/senders", &["get", "post"]),
        ("/api/v1/senders/{id}", &["get", "patch", "delete"]),
        ("/api/v1/contacts", &["get", "post"]),
        ("/api/v1/contacts/{id}", &["get", "patch", "delete"]),
        ("/api/v1/messages", &["get", "post"]),
        ("/api/v1/messages/{id}", &["get"]),
        ("/api/v1/messages/inbound", &["post"]),
        ("/api/v1/media", &["post"]),
        ("/api/v1/media/{sha256}", &["get"]),
        ("/api/v1/policy/check", &["post"]),
        ("/api/v1/templates", &["get", "post"]),
        ("/api/v1/templates/{id}", &["get", "patch", "delete"]),
        ("/api/v1/templates/{id}/submit", &["post"]),
        ("/api/v1/templates/{id}/status", &["post"]),
        ("/api/v1/contacts/{id}/consent", &["get", "post"]),
        ("/api/v1/contacts/{id}/opt-in-request", &["post"]),
        ("/api/v1/lists", &["get", "post"]),
        ("/api/v1/lists/{id}", &["get", "delete"]),
        ("/api/v1/lists/{id}/contacts", &["get", "post"]),
        ("/api/v1/lists/{id}/contacts/{contact_id}", &["delete"]),
        ("/api/v1/lists/{id}/import", &["post"]),
        ("/api/v1/settings/dlp", &["get", "put"]),
        ("/api/v1/settings/keywords", &["get", "put"]),
        ("/api/v1/settings/business-hours", &["get", "put", "delete"]),
        ("/api/v1/conversations", &["get"]),
        ("/api/v1/conversations/counts", &["get"]),
        ("/api/v1/conversations/{id}", &["get"]),
        ("/api/v1/conversations/{id}/claim", &["post"]),
        ("/api/v1/conversations/{id}/unclaim", &["post"]),
        ("/api/v1/conversations/{id}/close", &["post"]),
        ("/api/v1/conversations/{id}/transfer", &["post"]),
        ("/api/v1/conversations/{id}/read", &["post"]),
        ("/api/v1/events/stream", &["get"]),
        ("/api/v1/campaigns", &["get", "post"]),
        ("/api/v1/campaigns/{id}", &["get"]),
        ("/api/v1/campaigns/{id}/start", &["post"]),
        ("/api/v1/campaigns/{id}/pause", &["post"]),
        ("/api/v1/campaigns/{id}/resume", &["post"]),
        ("/api/v1/campaigns/{id}/stop", &["post"]),
        ("/api/v1/campaigns/{id}/retry", &["post"]),
        ("/api/v1/campaigns/{id}/recipients", &["get"]),
        ("/api/v1/campaigns/{id}/answers", &["get"]),
        ("/api/v1/campaigns/{id}/export", &["get"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in expected {
        let item = paths.get(*path).unwrap_or_else(|| panic!("{path} missing"));
        for method in *methods {
            assert!(item.get(*method).is_some(), "{method} {path} missing");
        }
        // Every route the document lists answers something other than "no such route". The
        // event stream never ends; its own test reads it.
        if *path == "/api/v1/events/stream" {
            continue;
        }
        for method in *methods {
            let concrete = path.replace("{id}", "00000000-0000-7000-8000-000000000000");
            let answer = app
                .send(
                    method.to_uppercase().parse().unwrap(),
                    &concrete,
                    Some(&app.admin),
                    None,
                )
                .await;
            assert_ne!(answer.body["detail"], "route not found", "{method} {path}");
            assert_ne!(answer.status, 405, "{method} {path}");
        }
    }
    assert_eq!(
        paths.len(),
        expected.len(),
        "undocumented extras: {:?}",
        paths.keys()
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
}

async fn unknown_routes_and_methods_are_problems(db: TestDb) {
    let app = TestApp::spawn(db).await;
    app.get("/api/v1/nothing-here", &app.admin)
        .await
        .problem(404, "not_found");
    app.send(Method::PUT, "/api/v1/contacts", Some(&app.admin), None)
        .await
        .problem(405, "method_not_allowed");
}

async fn every_api_route_needs_a_valid_token(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let id = "00000000-0000-7000-8000-000000000000";
    let routes = [
        (Method::GET, "/api/v1/me".to_owned()),
        (Method::GET, "/api/v1/users".to_owned()),
        (Method::POST, "/api/v1/users".to_owned()),
        (Method::GET, format!("/api/v1/users/{id}")),
        (Method::PATCH, format!("/api/v1/users/{id}")),
        (Method::DELETE, format!("/api/v1/users/{id}")),
        (Method::GET, "/api/v1/tokens".to_owned()),
        (Method::POST, "/api/v1/tokens".to_owned()),
        (Method::DELETE, format!("/api/v1/tokens/{id}")),
        (Method::GET, "/api/v1/senders".to_owned()),
        (Method::POST, "/api/v1/senders".to_owned()),
        (Method::GET, format!("/api/v1/senders/{id}")),
        (Method::PATCH, format!("/api/v1/senders/{id}")),
        (Method::DELETE, format!("/api/v1/senders/{id}")),
        (Method::GET, "/api/v1/contacts".to_owned()),
        (Method::POST, "/api/v1/contacts".to_owned()),
        (Method::GET, format!("/api/v1/contacts/{id}")),
        (Method::PATCH, format!("/api/v1/contacts/{id}")),
        (Method::DELETE, format!("/api/v1/contacts/{id}")),
        (Method::GET, "/api/v1/messages".to_owned()),
        (Method::POST, "/api/v1/messages".to_owned()),
        (Method::GET, format!("/api/v1/messages/{id}")),
        (Method::POST, "/api/v1/messages/inbound".to_owned()),
        (Method::POST, "/api/v1/policy/check".to_owned()),
        (Method::GET, "/api/v1/templates".to_owned()),
        (Method::POST, "/api/v1/templates".to_owned()),
        (Method::GET, format!("/api/v1/templates/{id}")),
        (Method::PATCH, format!("/api/v1/templates/{id}")),
        (Method::DELETE, format!("/api/v1/templates/{id}")),
        (Method::POST, format!("/api/v1/templates/{id}/submit")),
        (Method::POST, format!("/api/v1/templates/{id}/status")),
        (Method::GET, format!("/api/v1/contacts/{id}/consent")),
        (Method::POST, format!("/api/v1/contacts/{id}/consent")),
        (
            Method::POST,
            format!("/api/v1/contacts/{id}/opt-in-request"),
        ),
        (Method::GET, "/api/v1/lists".to_owned()),
        (Method::POST, "/api/v1/lists".to_owned()),
        (Method::GET, format!("/api/v1/lists/{id}")),
        (Method::DELETE, format!("/api/v1/lists/{id}")),
        (Method::GET, format!("/api/v1/lists/{id}/contacts")),
        (Method::POST, format!("/api/v1/lists/{id}/contacts")),
        (Method::DELETE, format!("/api/v1/lists/{id}/contacts/{id}")),
        (Method::POST, format!("/api/v1/lists/{id}/import")),
        (Method::GET, "/api/v1/settings/dlp".to_owned()),
        (Method::PUT, "/api/v1/settings/dlp".to_owned()),
        (Method::GET, "/api/v1/settings/keywords".to_owned()),
        (Method::PUT, "/api/v1/settings/keywords".to_owned()),
        (Method::GET, "/api/v1/settings/business-hours".to_owned()),
        (Method::PUT, "/api/v1/settings/business-hours".to_owned()),
        (Method::DELETE, "/api/v1/settings/business-hours".to_owned()),
    ];
    for (method, path) in routes {
        let body = matches!(method, Method::POST | Method::PATCH | Method::PUT).then(|| json!({}));
        let none = app.send(method.clone(), &path, None, body.clone()).await;
        none.problem(401, "unauthorized");
        assert_eq!(
            none.headers.get("www-authenticate").unwrap(),
            "Bearer",
            "{method} {path}"
        );
        app.send(method.clone(), &path, Some("sb_not-a-real-token"), body)
            .await
            .problem(401, "unauthorized");
    }
    // A malformed header is the same as none.
    let answer = app
        .client
        .get(format!("{}/api/v1/me", app.base))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
}

async fn bad_bodies_are_clear_problems_not_panics(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let url = format!("{}/api/v1/contacts", app.base);
    let send = |body: &'static str, content_type: &'static str| {
        let client = app.client.clone();
        let url = url.clone();
        let admin = app.admin.clone();
        async move {
            let r = client
                .post(&url)
                .bearer_auth(admin)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, ct, body)
        }
    };
    let (status, ct, body) = send("{\"name\": \"x\", ", "application/json").await;
    assert_eq!((status, ct.as_str()), (400, "application/problem+json"));
    assert_eq!(body["code"], "malformed_json");

    let (status, _, body) = send("{\"phone\": \"+442079460958\"}", "text/plain").await;
    assert_eq!(status, 415);
    assert_eq!(body["code"], "unsupported_media_type");

    let (status, _, body) = send("{\"phone\": 44}", "application/json").await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "invalid_field");
    assert_eq!(body["field"], "phone");

    let (status, _, body) = send("{\"telephone\": \"+44\"}", "application/json").await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "invalid_field");
    assert!(body["detail"].as_str().unwrap().contains("telephone"));

    let (status, _, body) = send("[]", "application/json").await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "invalid_field");

    app.get("/api/v1/contacts?limit=0", &app.admin)
        .await
        .problem(400, "invalid_query");
    app.get("/api/v1/contacts?limit=many", &app.admin)
        .await
        .problem(400, "invalid_query");
    app.get("/api/v1/contacts?cursor=bogus", &app.admin)
        .await
        .problem(400, "invalid_cursor");
    app.get("/api/v1/contacts?order=sideways", &app.admin)
        .await
        .problem(400, "invalid_query");
    // Nothing was written by any of it.
    assert_eq!(
        app.get("/api/v1/contacts", &app.admin).await.ok(200)["items"],
        json!([])
    );
}

async fn data_survives_a_restart(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let sender = app.sandbox_sender("whatsapp").await;
    let contact = app.contact("+442079460958").await;
    let (user, token) = app.user_with_token("agent").await;
    let app = app.restart().await;
    app.get(&format!("/api/v1/senders/{sender}"), &app.admin)
        .await
        .ok(200);
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{contact}"), &app.admin)
            .await
            .ok(200)["phone"],
        "+442079460958"
    );
    // The agent's token still works after the restart.
    assert_eq!(
        app.get("/api/v1/me", &token).await.ok(200)["user"]["id"],
        user.as_str()
    );
}

/// With no bootstrap token and an empty database, start-up makes one admin token and hands it
/// over once; later starts make none.
async fn a_first_start_without_configuration_is_not_locked_out(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(db.url(), dir.path());
    config.bootstrap_token = None;
    let (server, generated) = switchboard::start(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    let secret = generated.expect("a generated admin token");
    let me = reqwest::Client::new()
        .get(format!("http://{}/api/v1/me", server.addr))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    server.stop().await.unwrap();
    let (server, generated) = switchboard::start(&config, Arc::new(SystemClock))
        .await
        .unwrap();
    assert!(generated.is_none());
    server.stop().await.unwrap();
}

/// A revoked bootstrap token does not come back with the next start.
async fn a_revoked_bootstrap_token_stays_revoked(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let other = app.service_token("admin", None).await;
    let bootstrap = app.get("/api/v1/me", &app.admin).await.ok(200)["token"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("/api/v1/tokens/{bootstrap}"), &other)
        .await
        .ok(204);
    let app = app.restart().await;
    app.get("/api/v1/me", &app.admin)
        .await
        .problem(401, "unauthorized");
    app.get("/api/v1/me", &other).await.ok(200);
}

both_backends!(
    a_revoked_bootstrap_token_stays_revoked,
    health_answers_with_the_backend,
    the_openapi_document_covers_every_route,
    unknown_routes_and_methods_are_problems,
    every_api_route_needs_a_valid_token,
    bad_bodies_are_clear_problems_not_panics,
    data_survives_a_restart,
    a_first_start_without_configuration_is_not_locked_out,
);
