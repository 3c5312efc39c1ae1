//! Live updates (R5.7): what changed, published after its commit to every open inbox.
//!
//! The bus is in-process: each node tells the inboxes connected to it. An event carries ids and
//! the new state only; a client that wants more reads it through the API, with its own rights.

use serde::Serialize;
use switchboard_core::campaign::{CampaignState, Held, Hopper};
use switchboard_core::conversation::ConversationState;
use switchboard_core::message::{DeliveryStatus, Direction};
use switchboard_core::{CampaignId, ContactId, ConversationId, MessageId, SenderId, UserId};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum LiveEvent {
    #[serde(rename = "message.created")]
    MessageCreated {
        message_id: MessageId,
        conversation_id: Option<ConversationId>,
        contact_id: ContactId,
        sender_id: SenderId,
        direction: Direction,
    },
    #[serde(rename = "message.status")]
    MessageStatus {
        message_id: MessageId,
        conversation_id: Option<ConversationId>,
        sender_id: SenderId,
        status: DeliveryStatus,
    },
    #[serde(rename = "conversation.updated")]
    ConversationUpdated {
        conversation_id: ConversationId,
        sender_id: SenderId,
        state: ConversationState,
        assignee_id: Option<UserId>,
    },
    /// A campaign moved, or its hopper's counters changed (R6.3).
    #[serde(rename = "campaign.progress")]
    CampaignProgress {
        campaign_id: CampaignId,
        sender_id: SenderId,
        state: CampaignState,
        hopper: Hopper,
        /// What holds it back just now, if anything.
        held: Option<Held>,
    },
}

impl LiveEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            LiveEvent::MessageCreated { .. } => "message.created",
            LiveEvent::MessageStatus { .. } => "message.status",
            LiveEvent::ConversationUpdated { .. } => "conversation.updated",
            LiveEvent::CampaignProgress { .. } => "campaign.progress",
        }
    }

    /// Whose event it is: only those who may use this sender hear it.
    pub fn sender_id(&self) -> SenderId {
        match self {
            LiveEvent::MessageCreated { sender_id, .. }
            | LiveEvent::MessageStatus { sender_id, .. }
            | LiveEvent::ConversationUpdated { sender_id, .. }
            | LiveEvent::CampaignProgress { sender_id, .. } => *sender_id,
        }
    }

    pub fn created(message: &switchboard_core::message::Message) -> Self {
        LiveEvent::MessageCreated {
            message_id: message.id,
            conversation_id: message.conversation_id,
            contact_id: message.contact_id,
            sender_id: message.sender_id,
            direction: message.direction,
        }
    }
}
