//! `/api/v1/settings`: data-loss prevention rules and consent keywords.

use axum::extract::State;
use axum::Json;
use switchboard_app::settings::{self, DlpSettings};
use switchboard_app::AppState;
use switchboard_core::consent::KeywordConfig;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{ApiJson, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_dlp, put_dlp))
        .routes(routes!(get_keywords, put_keywords))
}

/// The data-loss prevention rules every outbound text is scanned with (R8.2).
#[utoipa::path(get, path = "/settings/dlp", tag = "settings",
    responses((status = 200, body = DlpSettings), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn get_dlp(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<Json<DlpSettings>> {
    Ok(Json(settings::get_dlp(&state, &principal).await?))
}

/// Replace the data-loss prevention rules (admins). Every rule is checked before any is saved.
#[utoipa::path(put, path = "/settings/dlp", tag = "settings", request_body = DlpSettings,
    responses((status = 200, body = DlpSettings), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn put_dlp(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<DlpSettings>,
) -> ApiResult<Json<DlpSettings>> {
    Ok(Json(
        settings::put_dlp(&state, &principal, body.value).await?,
    ))
}

/// The opt-out and opt-in keywords applied to inbound messages (R4.2).
#[utoipa::path(get, path = "/settings/keywords", tag = "settings",
    responses((status = 200, body = KeywordConfig), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn get_keywords(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<Json<KeywordConfig>> {
    Ok(Json(settings::get_keywords(&state, &principal).await?))
}

/// Replace the consent keywords (admins). STOP-style opt-out cannot be switched off.
#[utoipa::path(put, path = "/settings/keywords", tag = "settings", request_body = KeywordConfig,
    responses((status = 200, body = KeywordConfig), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn put_keywords(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<KeywordConfig>,
) -> ApiResult<Json<KeywordConfig>> {
    Ok(Json(
        settings::put_keywords(&state, &principal, body.value).await?,
    ))
}
