//! `/api/v1/contacts/{id}/consent`: the consent ledger (R4.1).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use switchboard_app::consent::{self, ConsentInput, OptInRequestInput};
use switchboard_app::AppState;
use switchboard_core::ContactId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{path_id, ApiJson, Auth};
use super::views::{ConsentEventView, ConsentLedgerView, MessageView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_ledger, record_consent))
        .routes(routes!(request_opt_in))
}

/// Send the WhatsApp opt-in request (R4.3) and mark the contact `requested`. The reply decides:
/// YES opts in, NO opts out (composing is then disabled), and both get a confirmation.
/// Refused with `already_opted_in`, `opted_out`, `no_whatsapp` (offer SMS) or
/// `opt_in_request_too_soon` (24 hours between requests), or by the policy like any message.
#[utoipa::path(post, path = "/contacts/{id}/opt-in-request", tag = "consent", request_body = OptInRequestInput,
    params(("id" = String, Path, description = "contact id")),
    responses(
        (status = 202, body = MessageView),
        (status = 409, body = Problem),
        (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
async fn request_opt_in(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: ApiJson<OptInRequestInput>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let id: ContactId = path_id(&id, "contact")?;
    let message = consent::request_opt_in(&state, &principal, id, body.value).await?;
    Ok((StatusCode::ACCEPTED, Json(message.into())))
}

/// A contact's consent on each channel and every change behind it, oldest first.
#[utoipa::path(get, path = "/contacts/{id}/consent", tag = "consent",
    params(("id" = String, Path, description = "contact id")),
    responses((status = 200, body = ConsentLedgerView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_ledger(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ConsentLedgerView>> {
    let id: ContactId = path_id(&id, "contact")?;
    let ledger = consent::ledger(&state, &principal, id).await?;
    Ok(Json(ConsentLedgerView {
        current: ledger.current,
        events: ledger.events.into_iter().map(Into::into).collect(),
    }))
}

/// Record an opt-in, opt-out or request, with its source and evidence. An opt-in from a
/// website, IVR, ad, import or the API needs evidence.
#[utoipa::path(post, path = "/contacts/{id}/consent", tag = "consent", request_body = ConsentInput,
    params(("id" = String, Path, description = "contact id")),
    responses((status = 201, body = ConsentEventView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn record_consent(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: ApiJson<ConsentInput>,
) -> ApiResult<(StatusCode, Json<ConsentEventView>)> {
    let id: ContactId = path_id(&id, "contact")?;
    let event = consent::record_consent(&state, &principal, id, body.value).await?;
    Ok((StatusCode::CREATED, Json(event.into())))
}
