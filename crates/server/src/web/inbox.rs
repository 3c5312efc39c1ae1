//! The inbox page. For now a placeholder in the shared layout; the conversation list replaces it.

use askama::Template;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use switchboard_app::AppState;

use super::page::{render, Chrome, Section, Signed};

pub fn router() -> Router<AppState> {
    Router::new().route("/inbox", get(inbox))
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    chrome: Chrome,
}

async fn inbox(signed: Signed) -> Response {
    render(&InboxPage {
        chrome: Chrome::new(&signed, Section::Inbox, "Inbox"),
    })
}
