//! `/api/v1/messages`: the message history with its delivery timelines.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use serde::Deserialize;
use switchboard_app::inbound::{self, InboundInput};
use switchboard_app::sending::{self, SendInput};
use switchboard_app::{messages, AppState};
use switchboard_core::message::{DeliveryStatus, Direction};
use switchboard_core::{Channel, ContactId, ConversationId, MessageId, SenderId};
use switchboard_store::messages::MessageFilter;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{path_id, ApiJson, ApiQuery, Auth, IdempotencyKey, PageParams};
use super::views::{ListResponse, MessageView, PolicyCheckView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, send_message))
        .routes(routes!(get_message))
        .routes(routes!(receive_message))
        .routes(routes!(check_policy))
}

/// Send a message. The policy decides first: a refusal is a 422 whose `code` is one of API.md's
/// refusal codes, with the window and what is allowed instead, and nothing is written but the
/// recorded decision. An allowed message is written with its send job in one transaction and
/// answered `202` as `queued` (or `scheduled` with `send_at`). Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/messages", tag = "messages", request_body = SendInput,
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    responses(
        (status = 202, body = MessageView),
        (status = 422, description = "refused by the policy, or invalid", body = Problem),
    ),
    security(("bearer" = [])))]
async fn send_message(
    State(state): State<AppState>,
    Auth(principal): Auth,
    idempotency: IdempotencyKey,
    body: ApiJson<SendInput>,
) -> ApiResult<(StatusCode, HeaderMap, Json<MessageView>)> {
    let idempotency = idempotency.with_body_hash(body.body_hash);
    let created = sending::send_message(&state, &principal, body.value, idempotency).await?;
    let mut headers = HeaderMap::new();
    if created.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok((StatusCode::ACCEPTED, headers, Json(created.value.into())))
}

/// Record an inbound message from a customer (providers' webhooks, the sandbox, importers):
/// it opens the window from `timestamp`, creates the contact on first contact, reopens the
/// conversation and applies consent keywords. A repeated `provider_message_id` is recorded once.
#[utoipa::path(post, path = "/messages/inbound", tag = "messages", request_body = InboundInput,
    responses((status = 201, body = MessageView), (status = 200, description = "already recorded", body = MessageView), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn receive_message(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<InboundInput>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let created = inbound::receive_message(&state, &principal, body.value).await?;
    let status = if created.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(created.value.into())))
}

/// What the policy decides for this send, without sending: allowed or the refusal code and
/// reason, the window, and what kinds and templates are allowed now (R2.6).
#[utoipa::path(post, path = "/policy/check", tag = "messages", request_body = SendInput,
    responses((status = 200, body = PolicyCheckView), (status = 422, description = "invalid request", body = Problem)),
    security(("bearer" = [])))]
async fn check_policy(
    State(state): State<AppState>,
    Auth(principal): Auth,
    body: ApiJson<SendInput>,
) -> ApiResult<Json<PolicyCheckView>> {
    let decision = sending::check_policy(&state, &principal, &body.value).await?;
    Ok(Json(decision.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct MessageQuery {
    contact_id: Option<ContactId>,
    sender_id: Option<SenderId>,
    conversation_id: Option<ConversationId>,
    channel: Option<Channel>,
    direction: Option<Direction>,
    status: Option<DeliveryStatus>,
    /// Created at or after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
    /// Created before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<OffsetDateTime>,
}

/// The message history, newest first, with filters.
#[utoipa::path(get, path = "/messages", tag = "messages", params(MessageQuery, PageParams),
    responses((status = 200, body = ListResponse<MessageView>), (status = 400, body = Problem)),
    security(("bearer" = [])))]
async fn list_messages(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<MessageQuery>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<ListResponse<MessageView>>> {
    let filter = MessageFilter {
        contact_id: query.contact_id,
        sender_id: query.sender_id,
        conversation_id: query.conversation_id,
        channel: query.channel,
        direction: query.direction,
        status: query.status,
        since: query.since,
        until: query.until,
    };
    let page = messages::list_messages(&state, &principal, &filter, &page.to_request()?).await?;
    Ok(Json(ListResponse::from_page(page, MessageView::from)))
}

/// One message with its status timeline and failure reason.
#[utoipa::path(get, path = "/messages/{id}", tag = "messages",
    params(("id" = String, Path, description = "message id")),
    responses((status = 200, body = MessageView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_message(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageView>> {
    let id: MessageId = path_id(&id, "message")?;
    Ok(Json(
        messages::get_message(&state, &principal, id).await?.into(),
    ))
}
