//! The web pages: sign-in, the agent inbox and the admin pages, rendered on the server with
//! askama; the CSS and the little JavaScript there is are embedded in the binary.
//!
//! Every page acts through the same `switchboard_app` use cases as the API, with the signed-in
//! user's [`switchboard_app::Principal`], so a page can never do more than the API would allow
//! that user. Forms carry the session's CSRF token; a post without it changes nothing.

mod assets;
mod auth;
mod campaigns;
mod contacts;
pub mod cookies;
mod inbox;
mod page;
mod senders;
mod settings;
mod templates;
mod users;

use axum::routing::get;
use axum::{Extension, Router};
use switchboard_app::AppState;

pub use page::WebConfig;

/// The pages' routes. `secure_cookies` marks the cookies `Secure`, for a server reached over
/// https (the public URL says so).
/// The pages. `media_limit_bytes` is the attachment limit: the composer's form may carry a
/// file that large and a little more.
pub fn router(secure_cookies: bool, media_limit_bytes: i64) -> Router<AppState> {
    Router::new()
        .route("/", get(auth::root))
        .merge(auth::router())
        .merge(assets::router())
        .merge(inbox::router(media_limit_bytes))
        .merge(users::router())
        .merge(senders::router())
        .merge(templates::router())
        .merge(contacts::router())
        .merge(campaigns::router())
        .merge(settings::router())
        .layer(Extension(WebConfig { secure_cookies }))
}
