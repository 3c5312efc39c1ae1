//! Provider webhooks: verify, store durably, answer. Processing happens off the request path.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use switchboard_app::webhooks::{self, Rejected};
use switchboard_app::AppState;

use crate::api::error::ApiError;

/// Meta allows webhook bodies up to about 3 MB.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks/whatsapp",
            get(whatsapp_handshake).post(whatsapp_event),
        )
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Meta's verification: answer `hub.challenge` when `hub.verify_token` is one of our senders'.
async fn whatsapp_handshake(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    match webhooks::whatsapp_handshake(
        &state,
        field("hub.mode"),
        field("hub.verify_token"),
        field("hub.challenge"),
    )
    .await
    {
        Ok(Some(challenge)) => (StatusCode::OK, challenge).into_response(),
        Ok(None) => ApiError::new(
            StatusCode::FORBIDDEN,
            "verification_failed",
            "the verify token is not one of this server's senders'",
        )
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// A WhatsApp Cloud API notification: 401 unless signed by the sender's app secret; otherwise
/// stored before `200` is answered, so a crash after the answer loses nothing.
async fn whatsapp_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    match webhooks::accept_whatsapp(&state, signature, &body).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok").into_response(),
        Ok(Err(Rejected::Unauthorized)) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "the X-Hub-Signature-256 header is missing or does not match the sender's app secret",
        )
        .into_response(),
        Ok(Err(Rejected::Malformed(detail))) => {
            ApiError::bad_request("malformed_webhook", detail).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
