//! The message history (R3.8, R5.4). Sending arrives with the policy engine.

use switchboard_core::message::Message;
use switchboard_core::{MessageId, Permission};
use switchboard_store::messages::MessageFilter;
use switchboard_store::{Page, PageRequest};

use crate::{AppError, AppState, Principal, Result};

pub async fn get_message(
    state: &AppState,
    principal: &Principal,
    id: MessageId,
) -> Result<Message> {
    principal.require(Permission::MessagesRead)?;
    state
        .store()
        .get_message(id)
        .await
        .map_err(|e| AppError::from_store("message", e))
}

pub async fn list_messages(
    state: &AppState,
    principal: &Principal,
    filter: &MessageFilter,
    page: &PageRequest,
) -> Result<Page<Message>> {
    principal.require(Permission::MessagesRead)?;
    state
        .store()
        .list_messages(filter, page)
        .await
        .map_err(AppError::Internal)
}
