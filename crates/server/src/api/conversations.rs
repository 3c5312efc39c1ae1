//! `/api/v1/conversations`: the shared inbox and its workflow (R5.2), and the live event stream
//! (R5.7).

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use base64::Engine;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use switchboard_app::conversations::{
    self, AssigneeFilter, ConversationDetail, ConversationQuery, ConversationView as AppView,
};
use switchboard_app::events::LiveEvent;
use switchboard_app::{AppState, Principal};
use switchboard_core::conversation::{Action, ConversationState};
use switchboard_core::policy::WindowState;
use switchboard_core::{Channel, ContactId, ConversationId, Permission, SenderId, UserId};
use switchboard_store::conversations::{ConversationEvent, ConversationSort, TabCounts};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ApiResult, Problem};
use super::extract::{path_id, ApiJson, ApiQuery, Auth};
use super::views::{ContactView, MessageView};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(conversation_counts))
        .routes(routes!(get_conversation))
        .routes(routes!(claim))
        .routes(routes!(unclaim))
        .routes(routes!(close))
        .routes(routes!(transfer))
        .routes(routes!(mark_read))
        .routes(routes!(event_stream))
}

/// Who a conversation is with, as the list shows it.
#[derive(Serialize, ToSchema)]
pub struct ConversationContact {
    pub id: ContactId,
    pub name: Option<String>,
    pub phone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationView {
    pub id: ConversationId,
    pub contact_id: ContactId,
    pub sender_id: SenderId,
    pub channel: Channel,
    pub state: ConversationState,
    pub assignee_id: Option<UserId>,
    pub contact: ConversationContact,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_message_at: Option<OffsetDateTime>,
    /// The customer's last message: the window runs from here.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_inbound_at: Option<OffsetDateTime>,
    /// Since when the customer has waited for an answer; `null` when the business spoke last.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub waiting_since: Option<OffsetDateTime>,
    pub unread_count: i64,
    /// The start of the latest message.
    pub preview: Option<String>,
    /// The customer-service window now (R2.6).
    pub window: WindowState,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<AppView> for ConversationView {
    fn from(v: AppView) -> Self {
        let c = v.conversation;
        ConversationView {
            id: c.id,
            contact_id: c.contact_id,
            sender_id: c.sender_id,
            channel: c.channel,
            state: c.state,
            assignee_id: c.assignee_id,
            contact: ConversationContact {
                id: c.contact_id,
                name: v.contact_name,
                phone: v.contact_phone,
            },
            last_message_at: c.last_message_at,
            last_inbound_at: c.last_inbound_at,
            waiting_since: c.waiting_since,
            unread_count: c.unread_count,
            preview: c.preview,
            window: v.window,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// One move in a conversation's history.
#[derive(Serialize, ToSchema)]
pub struct ConversationEventView {
    /// `claimed`, `unclaimed`, `transferred`, `closed` or `reopened`.
    pub action: String,
    pub from: ConversationState,
    pub to: ConversationState,
    pub assignee_id: Option<UserId>,
    /// `user:<id>`, `token:<id>`, or `contact` when the customer's message reopened it.
    pub actor: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl From<ConversationEvent> for ConversationEventView {
    fn from(e: ConversationEvent) -> Self {
        ConversationEventView {
            action: e.action,
            from: e.from,
            to: e.to,
            assignee_id: e.assignee_id,
            actor: e.actor,
            at: e.at,
        }
    }
}

/// A conversation with its messages (oldest first, the latest 200) and its history of moves.
#[derive(Serialize, ToSchema)]
pub struct ConversationDetailView {
    #[serde(flatten)]
    pub conversation: ConversationView,
    pub contact_details: ContactView,
    pub messages: Vec<MessageView>,
    pub events: Vec<ConversationEventView>,
}

impl From<ConversationDetail> for ConversationDetailView {
    fn from(d: ConversationDetail) -> Self {
        ConversationDetailView {
            conversation: d.view.into(),
            contact_details: d.contact.into(),
            messages: d.messages.into_iter().map(MessageView::from).collect(),
            events: d.events.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConversationListView {
    pub items: Vec<ConversationView>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// How many conversations each inbox tab holds for the caller.
#[derive(Serialize, ToSchema)]
pub struct TabCountsView {
    pub unclaimed: i64,
    /// Claimed by the caller.
    pub mine: i64,
    /// Claimed by anyone.
    pub claimed: i64,
    pub closed: i64,
}

impl From<TabCounts> for TabCountsView {
    fn from(c: TabCounts) -> Self {
        TabCountsView {
            unclaimed: c.unclaimed,
            mine: c.mine,
            claimed: c.claimed,
            closed: c.closed,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    state: Option<ConversationState>,
    channel: Option<Channel>,
    sender_id: Option<SenderId>,
    /// `me`, or a user id.
    assignee: Option<String>,
    /// Words in the contact's name or phone, or in a message of the conversation.
    q: Option<String>,
    /// `newest` (latest activity first, the default) or `waiting` (customers waiting for an
    /// answer, longest first).
    sort: Option<String>,
    /// Items per page, 1 to 200 (default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl ListQuery {
    fn into_query(self) -> Result<ConversationQuery, ApiError> {
        let assignee = match self.assignee.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("me") => Some(AssigneeFilter::Me),
            Some(id) => Some(AssigneeFilter::User(id.parse().map_err(|_| {
                ApiError::bad_request("invalid_query", "`assignee` is `me` or a user id")
                    .with_field("assignee")
            })?)),
        };
        let sort = match self.sort.as_deref() {
            None | Some("newest") => ConversationSort::NewestActivity,
            Some("waiting") => ConversationSort::OldestWaiting,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "`sort` is `newest` or `waiting`",
                )
                .with_field("sort"))
            }
        };
        let limit = self.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            return Err(
                ApiError::bad_request("invalid_query", "`limit` is between 1 and 200")
                    .with_field("limit"),
            );
        }
        let cursor = match self.cursor {
            None => None,
            Some(c) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&c)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_cursor",
                            "`cursor` is not one this API gave out",
                        )
                        .with_field("cursor")
                    })?,
            ),
        };
        Ok(ConversationQuery {
            state: self.state,
            channel: self.channel,
            sender_id: self.sender_id,
            assignee,
            q: self.q,
            sort,
            limit,
            cursor,
        })
    }
}

/// The inbox: conversations with filters, newest activity first (or customers waiting
/// longest). An agent sees the conversations of the senders they may use.
#[utoipa::path(get, path = "/conversations", tag = "conversations", params(ListQuery),
    responses((status = 200, body = ConversationListView), (status = 400, body = Problem)),
    security(("bearer" = [])))]
async fn list_conversations(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<ConversationListView>> {
    let (items, next) = conversations::list(&state, &principal, query.into_query()?).await?;
    Ok(Json(ConversationListView {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor: next.map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n)),
    }))
}

/// How many conversations each inbox tab holds: unclaimed, mine, all claimed, closed.
#[utoipa::path(get, path = "/conversations/counts", tag = "conversations",
    responses((status = 200, body = TabCountsView)),
    security(("bearer" = [])))]
async fn conversation_counts(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<Json<TabCountsView>> {
    Ok(Json(
        conversations::tab_counts(&state, &principal).await?.into(),
    ))
}

/// A conversation with its messages and history. Supervisors and admins read any
/// conversation without claiming it (R6.8).
#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations",
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = ConversationDetailView), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn get_conversation(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationDetailView>> {
    let id: ConversationId = path_id(&id, "conversation")?;
    Ok(Json(
        conversations::get(&state, &principal, id).await?.into(),
    ))
}

async fn act(
    state: &AppState,
    principal: &Principal,
    id: &str,
    action: Action,
) -> ApiResult<Json<ConversationView>> {
    let id: ConversationId = path_id(id, "conversation")?;
    Ok(Json(
        conversations::act(state, principal, id, action)
            .await?
            .into(),
    ))
}

/// Claim a conversation: the caller becomes the one agent who replies in it. Claiming one
/// someone else holds is a 409 `conversation_claimed`; claiming one's own again changes nothing.
#[utoipa::path(post, path = "/conversations/{id}/claim", tag = "conversations",
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = ConversationView), (status = 409, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn claim(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationView>> {
    act(&state, &principal, &id, Action::Claim).await
}

/// Release a claim: only the claimer, or an admin (403 `not_assignee` otherwise).
#[utoipa::path(post, path = "/conversations/{id}/unclaim", tag = "conversations",
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = ConversationView), (status = 409, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn unclaim(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationView>> {
    act(&state, &principal, &id, Action::Unclaim).await
}

/// Close a conversation: its assignee, or an admin or supervisor. The customer's next message
/// reopens it, unclaimed.
#[utoipa::path(post, path = "/conversations/{id}/close", tag = "conversations",
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 200, body = ConversationView), (status = 403, body = Problem)),
    security(("bearer" = [])))]
async fn close(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ConversationView>> {
    act(&state, &principal, &id, Action::Close).await
}

#[derive(Deserialize, ToSchema)]
pub struct TransferInput {
    /// The user who takes the conversation over; they must be permitted its sender.
    pub agent_id: UserId,
}

/// Hand a conversation to another agent, who then holds the claim. Admins and supervisors only
/// (403 `transfer_not_allowed`).
#[utoipa::path(post, path = "/conversations/{id}/transfer", tag = "conversations",
    params(("id" = String, Path, description = "conversation id")),
    request_body = TransferInput,
    responses((status = 200, body = ConversationView), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
async fn transfer(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    body: ApiJson<TransferInput>,
) -> ApiResult<Json<ConversationView>> {
    let to = body.value.agent_id;
    act(&state, &principal, &id, Action::Transfer { to }).await
}

/// Mark a conversation read: its unread count goes back to zero.
#[utoipa::path(post, path = "/conversations/{id}/read", tag = "conversations",
    params(("id" = String, Path, description = "conversation id")),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
async fn mark_read(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    let id: ConversationId = path_id(&id, "conversation")?;
    conversations::mark_read(&state, &principal, id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Server-sent events for live updates (R5.7): `message.created`, `message.status`,
/// `conversation.updated` and `campaign.progress` (with the hopper's counters), each with ids
/// and the new state, for the senders the caller sees.
/// A `lagged` event means some were missed: reload what is shown.
#[utoipa::path(get, path = "/events/stream", tag = "conversations",
    responses((status = 200, description = "text/event-stream")),
    security(("bearer" = [])))]
async fn event_stream(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    principal.require(Permission::MessagesRead)?;
    let visible = conversations::visible_senders(&principal);
    let campaigns = principal.can(Permission::CampaignsRead);
    let receiver = state.subscribe();
    let stream = futures_util::stream::unfold(receiver, move |mut receiver| {
        let visible = visible.clone();
        async move {
            loop {
                let event = match receiver.recv().await {
                    Ok(event) => event,
                    Err(RecvError::Lagged(missed)) => {
                        let event = Event::default().event("lagged").data(missed.to_string());
                        return Some((Ok(event), receiver));
                    }
                    Err(RecvError::Closed) => return None,
                };
                if visible
                    .as_ref()
                    .is_some_and(|senders| !senders.contains(&event.sender_id()))
                {
                    continue;
                }
                if !campaigns && matches!(event, LiveEvent::CampaignProgress { .. }) {
                    continue;
                }
                let data = serde_json::to_string(&event).unwrap_or_default();
                return Some((
                    Ok(Event::default().event(event.name()).data(data)),
                    receiver,
                ));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
