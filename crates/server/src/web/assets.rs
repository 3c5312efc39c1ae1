//! The stylesheet and script, compiled into the binary so a deployment is one file.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use switchboard_app::AppState;

const CSS: &str = include_str!("../../assets/app.css");
const JS: &str = include_str!("../../assets/app.js");
const INBOX_CSS: &str = include_str!("../../assets/inbox.css");
const INBOX_JS: &str = include_str!("../../assets/inbox.js");
const CAMPAIGNS_JS: &str = include_str!("../../assets/campaigns.js");

/// The pages name the assets with a version query (`app.css?v=...`), so a new release is
/// fetched at once while browsers may keep an asset for a day without asking again.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const CACHE: &str = "public, max-age=86400";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js))
        .route(
            "/assets/inbox.css",
            get(|| async { asset("text/css", INBOX_CSS) }),
        )
        .route(
            "/assets/inbox.js",
            get(|| async { asset("text/javascript", INBOX_JS) }),
        )
        .route(
            "/assets/campaigns.js",
            get(|| async { asset("text/javascript", CAMPAIGNS_JS) }),
        )
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE),
        ],
        JS,
    )
}

fn asset(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
            (header::CACHE_CONTROL, CACHE.to_owned()),
        ],
        body,
    )
}
