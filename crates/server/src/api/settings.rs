//! `/api/v1/settings`: data-loss prevention rules and consent keywords.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use switchboard_app::settings::{self, DlpSettings};
use switchboard_app::AppState;
use switchboard_core::consent::KeywordConfig;
use switchboard_core::hours::BusinessHours;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{ApiJson, Auth};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_dlp, put_dlp))
        .routes(routes!(get_keywords, put_keywords))
        .routes(routes!(
            get_business_hours,
            put_business_hours,
            clear_business_hours
        ))
}

/// The account's business hours (R7.4), or `null` when it keeps none.
#[utoipa::path(get, path = "/settings/business-hours", tag = "settings",
    responses((status = 200, body = Option<BusinessHours>), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn get_business_hours(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<Json<Option<BusinessHours>>> {
    Ok(Json(
        settings::get_business_hours(&state, &principal).await?,
    ))
}

/// Set business hours (admins): automated WhatsApp and SMS messages wait for opening.
#[utoipa::path(put, path = "/settings/business-hours", tag = "settings", request_body = BusinessHours,
    responses((status = 200, body = BusinessHours), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn put_business_hours(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<BusinessHours>,
) -> ApiResult<Json<BusinessHours>> {
    Ok(Json(
        settings::put_business_hours(&state, &principal, body.value).await?,
    ))
}

/// Stop keeping business hours (admins).
#[utoipa::path(delete, path = "/settings/business-hours", tag = "settings",
    responses((status = 204), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn clear_business_hours(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<StatusCode> {
    settings::clear_business_hours(&state, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
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
