//! Provider webhooks: verify, store durably, answer. Processing happens off the request path.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use switchboard_app::webhooks::{self, Rejected};
use switchboard_app::AppState;
use switchboard_core::sender::ProviderKind;

use crate::api::error::ApiError;

/// Meta allows webhook bodies up to about 3 MB.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The webhook routes. `public_url` is the address providers were given, which Twilio signs.
pub fn router(public_url: Option<url::Url>) -> Router<AppState> {
    Router::new()
        .route(
            "/webhooks/whatsapp",
            get(whatsapp_handshake).post(whatsapp_event),
        )
        .route(
            "/webhooks/messenger",
            get(messenger_handshake).post(messenger_event),
        )
        .route("/webhooks/twilio", axum::routing::post(twilio_event))
        .layer(axum::Extension(PublicUrl(public_url)))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

#[derive(Clone)]
struct PublicUrl(Option<url::Url>);

async fn whatsapp_handshake(
    state: State<AppState>,
    query: Query<HashMap<String, String>>,
) -> Response {
    handshake(state, query, ProviderKind::WhatsappCloud).await
}

async fn messenger_handshake(
    state: State<AppState>,
    query: Query<HashMap<String, String>>,
) -> Response {
    handshake(state, query, ProviderKind::Messenger).await
}

/// Meta's verification: answer `hub.challenge` when `hub.verify_token` is one of our senders'.
async fn handshake(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    kind: ProviderKind,
) -> Response {
    let field = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    match webhooks::meta_handshake(
        &state,
        kind,
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
    answer(
        webhooks::accept_whatsapp(&state, signature, &body).await,
        "X-Hub-Signature-256",
    )
}

/// A Messenger Platform notification: the same scheme as WhatsApp, routed by page id.
async fn messenger_event(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    answer(
        webhooks::accept_messenger(&state, signature, &body).await,
        "X-Hub-Signature-256",
    )
}

/// A Twilio inbound SMS or status callback, signed over the URL Twilio requested and the sorted
/// form parameters. Answered with an empty TwiML response: no automatic reply.
async fn twilio_event(
    State(state): State<AppState>,
    axum::Extension(PublicUrl(public_url)): axum::Extension<PublicUrl>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/webhooks/twilio".to_owned());
    // Behind a proxy only the configured public URL is what Twilio signed.
    let url = match public_url {
        Some(base) => format!("{}{path_and_query}", base.as_str().trim_end_matches('/')),
        None => {
            let host = headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}{path_and_query}")
        }
    };
    match webhooks::accept_twilio(&state, signature, &url, &body).await {
        Ok(Ok(_)) => (
            StatusCode::OK,
            [(axum::http::header::CONTENT_TYPE, "text/xml")],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>",
        )
            .into_response(),
        other => answer(other, "X-Twilio-Signature"),
    }
}

fn answer(
    result: Result<Result<bool, Rejected>, switchboard_app::AppError>,
    header: &str,
) -> Response {
    match result {
        Ok(Ok(_)) => (StatusCode::OK, "ok").into_response(),
        Ok(Err(Rejected::Unauthorized)) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            format!("the {header} header is missing or does not match the sender's secret"),
        )
        .into_response(),
        Ok(Err(Rejected::Malformed(detail))) => {
            ApiError::bad_request("malformed_webhook", detail).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
