//! `/api/v1/senders`: sender IDs and their provider credentials (masked when read).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use switchboard_app::senders::{self, NewSender, SenderPatch};
use switchboard_app::AppState;
use switchboard_core::{Channel, SenderId};
use switchboard_store::senders::SenderFilter;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{path_id, ApiJson, ApiQuery, Auth, PageParams};
use super::views::{ListResponse, SenderView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_senders, create_sender))
        .routes(routes!(get_sender, update_sender, delete_sender))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SenderQuery {
    /// Only senders on this channel.
    channel: Option<Channel>,
}

/// Create a sender (admins).
#[utoipa::path(post, path = "/senders", tag = "senders", request_body = NewSender,
    responses(
        (status = 201, body = SenderView),
        (status = 409, description = "provider identity in use", body = Problem),
        (status = 422, body = Problem),
    ),
    security(("bearer" = [])))]
async fn create_sender(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<NewSender>,
) -> ApiResult<(StatusCode, Json<SenderView>)> {
    let sender = senders::create_sender(&state, &principal, body.value).await?;
    Ok((StatusCode::CREATED, Json(sender.into())))
}

/// List senders.
#[utoipa::path(get, path = "/senders", tag = "senders", params(SenderQuery, PageParams),
    responses((status = 200, body = ListResponse<SenderView>)),
    security(("bearer" = [])))]
async fn list_senders(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<SenderQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<ListResponse<SenderView>>> {
    let filter = SenderFilter {
        channel: query.channel,
    };
    let page = senders::list_senders(&state, &principal, &filter, &page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, SenderView::from)))
}

/// One sender.
#[utoipa::path(get, path = "/senders/{id}", tag = "senders",
    params(("id" = String, Path, description = "sender id")),
    responses((status = 200, body = SenderView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_sender(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<SenderView>> {
    let id: SenderId = path_id(&id, "sender")?;
    Ok(Json(
        senders::get_sender(&state, &principal, id).await?.into(),
    ))
}

/// Change a sender (admins). Provider fields left out keep their values.
#[utoipa::path(patch, path = "/senders/{id}", tag = "senders", request_body = SenderPatch,
    params(("id" = String, Path, description = "sender id")),
    responses((status = 200, body = SenderView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn update_sender(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: ApiJson<SenderPatch>,
) -> ApiResult<Json<SenderView>> {
    let id: SenderId = path_id(&id, "sender")?;
    Ok(Json(
        senders::update_sender(&state, &principal, id, body.value)
            .await?
            .into(),
    ))
}

/// Delete a sender with no history (admins).
#[utoipa::path(delete, path = "/senders/{id}", tag = "senders",
    params(("id" = String, Path, description = "sender id")),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
async fn delete_sender(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: SenderId = path_id(&id, "sender")?;
    senders::delete_sender(&state, &principal, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
