//! `/api/v1/messages`: the message history with its delivery timelines.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use switchboard_app::{messages, AppState};
use switchboard_core::message::{DeliveryStatus, Direction};
use switchboard_core::{Channel, ContactId, ConversationId, MessageId, SenderId};
use switchboard_store::messages::MessageFilter;
use time::OffsetDateTime;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiResult, Problem};
use super::extract::{path_id, ApiQuery, Auth, PageParams};
use super::views::{ListResponse, MessageView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages))
        .routes(routes!(get_message))
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
