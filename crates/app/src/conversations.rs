//! The shared inbox (R5): listing conversations, reading one, and moving it through the
//! workflow of claim, release, transfer and close.

use switchboard_core::contact::Contact;
use switchboard_core::conversation::{self, Action, Actor, Conversation, ConversationState};
use switchboard_core::message::Message;
use switchboard_core::policy::{window_state, WindowState};
use switchboard_core::{Channel, ConversationId, FieldError, Permission, Role, SenderId, UserId};
use switchboard_store::conversations::{
    ConversationEvent, ConversationFilter, ConversationSort, ListedConversation, ReplyGuard,
    TabCounts,
};
use switchboard_store::messages::MessageFilter;
use switchboard_store::{Order, PageRequest, StoreError};
use time::OffsetDateTime;

use crate::consent::actor_of;
use crate::events::LiveEvent;
use crate::{AppError, AppState, Principal, Result};

/// The most messages a conversation is read with; older ones page through the message API.
pub const HISTORY_LIMIT: u32 = 200;
/// How many times a move is decided again when another request moved the conversation first.
const MOVE_ATTEMPTS: usize = 3;

/// Whose conversations to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssigneeFilter {
    /// The caller's own.
    Me,
    User(UserId),
}

#[derive(Clone, Debug, Default)]
pub struct ConversationQuery {
    pub state: Option<ConversationState>,
    pub channel: Option<Channel>,
    pub sender_id: Option<SenderId>,
    pub assignee: Option<AssigneeFilter>,
    pub q: Option<String>,
    pub sort: ConversationSort,
    pub limit: u32,
    pub cursor: Option<String>,
}

/// A conversation with who it is with and its window now.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationView {
    pub conversation: Conversation,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    pub window: WindowState,
}

/// One conversation as the inbox opens it.
#[derive(Clone, Debug)]
pub struct ConversationDetail {
    pub view: ConversationView,
    pub contact: Contact,
    /// This conversation's latest messages, oldest first.
    pub messages: Vec<Message>,
    /// Its moves, oldest first.
    pub events: Vec<ConversationEvent>,
}

fn actor(principal: &Principal) -> Actor {
    Actor {
        user: principal.user_id(),
        role: principal.role(),
    }
}

/// The senders whose conversations the caller sees: an agent those they may use; admins,
/// supervisors (who watch every conversation, R6.8) and services all.
pub fn visible_senders(principal: &Principal) -> Option<Vec<SenderId>> {
    match &principal.user {
        Some(user) if principal.role() == Role::Agent => Some(user.permitted_sender_ids.clone()),
        _ => None,
    }
}

fn may_see(principal: &Principal, sender: SenderId) -> bool {
    visible_senders(principal).is_none_or(|senders| senders.contains(&sender))
}

fn view(listed: ListedConversation, now: OffsetDateTime) -> ConversationView {
    let window = window_state(
        listed.conversation.channel,
        listed.conversation.last_inbound_at,
        now,
    );
    ConversationView {
        conversation: listed.conversation,
        contact_name: listed.contact_name,
        contact_phone: listed.contact_phone,
        window,
    }
}

pub async fn list(
    state: &AppState,
    principal: &Principal,
    query: ConversationQuery,
) -> Result<(Vec<ConversationView>, Option<String>)> {
    principal.require(Permission::MessagesRead)?;
    let assignee_id = match query.assignee {
        Some(AssigneeFilter::Me) => Some(principal.user_id().ok_or_else(|| {
            FieldError::new(
                "assignee",
                "user_required",
                "`me` needs a token that acts for a user",
            )
        })?),
        Some(AssigneeFilter::User(id)) => Some(id),
        None => None,
    };
    let filter = ConversationFilter {
        state: query.state,
        channel: query.channel,
        sender_id: query.sender_id,
        assignee_id,
        contact_id: None,
        visible_senders: visible_senders(principal),
        search: query.q,
        sort: query.sort,
    };
    let (items, next) = state
        .store()
        .list_conversations(&filter, query.limit.clamp(1, 200), query.cursor.as_deref())
        .await
        .map_err(|e| match e {
            StoreError::Config(_) => {
                FieldError::new("cursor", "invalid_cursor", "`cursor` is not one we gave").into()
            }
            other => AppError::Internal(other),
        })?;
    let now = state.now();
    Ok((items.into_iter().map(|l| view(l, now)).collect(), next))
}

/// How many conversations each inbox tab holds for the caller.
pub async fn tab_counts(state: &AppState, principal: &Principal) -> Result<TabCounts> {
    principal.require(Permission::MessagesRead)?;
    state
        .store()
        .conversation_tab_counts(principal.user_id(), visible_senders(principal).as_deref())
        .await
        .map_err(AppError::Internal)
}

async fn load(state: &AppState, principal: &Principal, id: ConversationId) -> Result<Conversation> {
    let conversation = state
        .store()
        .get_conversation(id)
        .await
        .map_err(|e| AppError::from_store("conversation", e))?;
    // A conversation on a sender the caller may not use is, to them, not there.
    if !may_see(principal, conversation.sender_id) {
        return Err(AppError::NotFound {
            resource: "conversation",
        });
    }
    Ok(conversation)
}

async fn view_of(
    state: &AppState,
    conversation: Conversation,
) -> Result<(ConversationView, Contact)> {
    let contact = state
        .store()
        .get_contact(conversation.contact_id)
        .await
        .map_err(AppError::Internal)?;
    let view = view(
        ListedConversation {
            contact_name: contact.name.clone(),
            contact_phone: contact.phone.as_ref().map(ToString::to_string),
            conversation,
        },
        state.now(),
    );
    Ok((view, contact))
}

pub async fn get(
    state: &AppState,
    principal: &Principal,
    id: ConversationId,
) -> Result<ConversationDetail> {
    principal.require(Permission::MessagesRead)?;
    let conversation = load(state, principal, id).await?;
    let store = state.store();
    let page = store
        .list_messages(
            &MessageFilter {
                conversation_id: Some(id),
                ..Default::default()
            },
            &PageRequest {
                limit: HISTORY_LIMIT,
                after: None,
                order: Order::Desc,
            },
        )
        .await
        .map_err(AppError::Internal)?;
    let mut messages = page.items;
    messages.reverse();
    let events = store
        .conversation_events(id)
        .await
        .map_err(AppError::Internal)?;
    let (view, contact) = view_of(state, conversation).await?;
    Ok(ConversationDetail {
        view,
        contact,
        messages,
        events,
    })
}

/// The whole history of the conversation's contact across every sender and channel (R5.3),
/// newest first, within the senders the caller sees.
pub async fn contact_history(
    state: &AppState,
    principal: &Principal,
    id: ConversationId,
    limit: u32,
) -> Result<Vec<Message>> {
    principal.require(Permission::MessagesRead)?;
    let conversation = load(state, principal, id).await?;
    let page = state
        .store()
        .list_messages(
            &MessageFilter {
                contact_id: Some(conversation.contact_id),
                ..Default::default()
            },
            &PageRequest {
                limit: limit.clamp(1, 500),
                after: None,
                order: Order::Desc,
            },
        )
        .await
        .map_err(AppError::Internal)?;
    Ok(page
        .items
        .into_iter()
        .filter(|m| may_see(principal, m.sender_id))
        .collect())
}

fn refused(refusal: conversation::Refusal) -> AppError {
    if refusal.is_conflict() {
        AppError::Conflict {
            code: refusal.code(),
            field: None,
            existing_id: None,
            detail: refusal.reason().to_owned(),
        }
    } else {
        AppError::ForbiddenResource {
            code: refusal.code(),
            detail: refusal.reason().to_owned(),
        }
    }
}

/// Checks that a transfer's new assignee exists and may use the conversation's sender.
async fn check_transfer_target(state: &AppState, to: UserId, sender: SenderId) -> Result<()> {
    let user = state
        .store()
        .get_user(to)
        .await
        .map_err(crate::missing_reference("agent_id", "user"))?;
    if user.role != Role::Admin && !user.permitted_sender_ids.contains(&sender) {
        return Err(FieldError::new(
            "agent_id",
            "sender_not_permitted",
            format!("{} may not use this conversation's sender", user.name),
        )
        .into());
    }
    Ok(())
}

/// Moves a conversation through the workflow (R5.2). Two agents claiming at once: one wins,
/// the other hears `conversation_claimed` (409).
pub async fn act(
    state: &AppState,
    principal: &Principal,
    id: ConversationId,
    action: Action,
) -> Result<ConversationView> {
    principal.require(Permission::MessagesSend)?;
    let actor = actor(principal);
    for _ in 0..MOVE_ATTEMPTS {
        let conversation = load(state, principal, id).await?;
        let now = conversation.assignment();
        let next = conversation::transition(now, actor, action).map_err(refused)?;
        // Only someone allowed to transfer learns anything about the target.
        if let Action::Transfer { to } = action {
            check_transfer_target(state, to, conversation.sender_id).await?;
        }
        let at = state.now();
        let event = ConversationEvent {
            id: switchboard_core::ConversationEventId::new(),
            conversation_id: id,
            action: action.as_str().to_owned(),
            from: now.state,
            to: next.state,
            assignee_id: next.assignee,
            actor: actor_of(principal),
            at,
        };
        let moved = state
            .store()
            .move_conversation(now, next, &event)
            .await
            .map_err(AppError::Internal)?;
        if moved {
            if now != next {
                state.publish(LiveEvent::ConversationUpdated {
                    conversation_id: id,
                    sender_id: conversation.sender_id,
                    state: next.state,
                    assignee_id: next.assignee,
                });
            }
            let conversation = Conversation {
                state: next.state,
                assignee_id: next.assignee,
                updated_at: if now == next {
                    conversation.updated_at
                } else {
                    at
                },
                ..conversation
            };
            return Ok(view_of(state, conversation).await?.0);
        }
    }
    Err(AppError::Conflict {
        code: "conversation_busy",
        field: None,
        existing_id: None,
        detail: "the conversation kept changing; try again".to_owned(),
    })
}

/// Marks a conversation read: its unread count goes back to zero.
pub async fn mark_read(state: &AppState, principal: &Principal, id: ConversationId) -> Result<()> {
    principal.require(Permission::MessagesRead)?;
    let conversation = load(state, principal, id).await?;
    if conversation.unread_count > 0 {
        state
            .store()
            .mark_conversation_read(id)
            .await
            .map_err(AppError::Internal)?;
        state.publish(LiveEvent::ConversationUpdated {
            conversation_id: id,
            sender_id: conversation.sender_id,
            state: conversation.state,
            assignee_id: conversation.assignee_id,
        });
    }
    Ok(())
}

/// What a person's send does to the conversation it goes into: refused when someone else holds
/// it or it waits to be claimed; claimed for the writer when they start or reopen it. `None`
/// for services and system messages, which write anywhere.
pub(crate) async fn reply_guard(
    state: &AppState,
    principal: &Principal,
    conversation: ConversationId,
    now: OffsetDateTime,
) -> Result<Option<ReplyGuard>> {
    if principal.user.is_none() {
        return Ok(None);
    }
    let current = state
        .store()
        .get_conversation(conversation)
        .await
        .map_err(AppError::Internal)?;
    let fresh = current.last_message_at.is_none();
    let expected = current.assignment();
    let actor = actor(principal);
    let next = conversation::reply(expected, actor, fresh).map_err(refused)?;
    Ok(Some(ReplyGuard {
        expected,
        next,
        event: ConversationEvent {
            id: switchboard_core::ConversationEventId::new(),
            conversation_id: conversation,
            action: Action::Claim.as_str().to_owned(),
            from: expected.state,
            to: next.state,
            assignee_id: next.assignee,
            actor: actor_of(principal),
            at: now,
        },
    }))
}

/// The live event for a send that moved its conversation.
pub(crate) fn moved_by_reply(guard: &ReplyGuard, sender: SenderId) -> Option<LiveEvent> {
    (guard.expected != guard.next).then_some(LiveEvent::ConversationUpdated {
        conversation_id: guard.event.conversation_id,
        sender_id: sender,
        state: guard.next.state,
        assignee_id: guard.next.assignee,
    })
}

/// The conversation of a conversation's contact with another sender the caller may use,
/// started if there is none: where an agent goes to write by SMS to a contact who has no
/// WhatsApp (R4.3).
pub async fn open_with_sender(
    state: &AppState,
    principal: &Principal,
    from: ConversationId,
    sender: SenderId,
) -> Result<ConversationId> {
    principal.require(Permission::MessagesSend)?;
    let conversation = load(state, principal, from).await?;
    if !may_see(principal, sender) {
        return Err(FieldError::new(
            "sender_id",
            "sender_not_permitted",
            "you may not use that sender",
        )
        .into());
    }
    let sender = state
        .sender(sender)
        .await
        .map_err(crate::missing_reference("sender_id", "sender"))?;
    state
        .store()
        .ensure_conversation(
            conversation.contact_id,
            sender.id,
            sender.channel,
            state.now(),
        )
        .await
        .map_err(AppError::Internal)
}
