//! Liveness and the caller's own identity.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;
use switchboard_app::{users, AppState};
use switchboard_core::{Permission, Role};
use utoipa::openapi::OpenApi;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::Auth;
use super::views::{TokenView, UserView};

pub fn root_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(openapi_json))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}

#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok`, or `unavailable` when the database does not answer.
    status: &'static str,
    /// `sqlite` or `postgres`.
    database: &'static str,
    version: &'static str,
}

/// Liveness: answers 200 while the database answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let database = state.store().backend().as_str();
    let version = env!("CARGO_PKG_VERSION");
    match state.store().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                database,
                version,
            }),
        ),
        Err(error) => {
            tracing::warn!(?error, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    database,
                    version,
                }),
            )
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "system",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json(Extension(doc): Extension<Arc<OpenApi>>) -> Json<OpenApi> {
    Json(doc.as_ref().clone())
}

#[derive(Serialize, ToSchema)]
struct Me {
    token: TokenView,
    /// The user the token acts for; `null` for a service token.
    user: Option<UserView>,
    /// The effective role: a user's token never exceeds the user's role.
    role: Role,
    /// Everything this caller may do.
    permissions: Vec<Permission>,
}

/// Who the caller is and what they may do.
#[utoipa::path(get, path = "/me", tag = "system",
    responses((status = 200, body = Me), (status = 401, body = Problem)),
    security(("bearer" = [])))]
async fn me(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<Json<Me>> {
    let permissions = Permission::ALL
        .iter()
        .copied()
        .filter(|p| principal.can(*p))
        .collect();
    let user = match principal.user.clone() {
        Some(user) => Some(
            users::with_effective_senders(&state, vec![user])
                .await?
                .remove(0)
                .into(),
        ),
        None => None,
    };
    Ok(Json(Me {
        role: principal.role(),
        token: principal.token.into(),
        user,
        permissions,
    }))
}
