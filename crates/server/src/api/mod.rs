//! The REST API of API.md, with its OpenAPI document generated from the handlers.

mod campaigns;
mod consent;
mod contacts;
mod conversations;
pub mod error;
pub mod extract;
mod lists;
pub(crate) mod media;
mod messages;
mod senders;
mod settings;
mod system;
mod templates;
mod tokens;
mod users;
pub mod views;

use axum::http::StatusCode;
use std::sync::Arc;

use axum::{Extension, Router};
use switchboard_app::AppState;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "A self-hosted business messaging hub for WhatsApp, Messenger and SMS. \
            Errors are application/problem+json with a stable `code`."
    ),
    modifiers(&BearerAuth),
    components(schemas(error::Problem)),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes and the OpenAPI document describing them.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .merge(system::router())
        .merge(users::router())
        .merge(tokens::router())
        .merge(senders::router())
        .merge(contacts::router())
        .merge(conversations::router())
        .merge(messages::router())
        .merge(media::router())
        .merge(templates::router())
        .merge(consent::router())
        .merge(lists::router())
        .merge(settings::router())
        .merge(campaigns::router());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(system::root_router())
        .nest("/api/v1", v1)
        .split_for_parts()
}

/// The whole application: the API, its OpenAPI document, and problem+json fallbacks.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = routes();
    router
        .merge(media::public_router())
        .layer(Extension(Arc::new(openapi)))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not accept that method",
            )
        })
        .with_state(state)
}
