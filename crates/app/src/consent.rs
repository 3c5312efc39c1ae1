//! The consent ledger through the API (R4.1).

use std::collections::BTreeMap;

use serde::Deserialize;
use switchboard_core::consent::{
    current_status, validate_manual_change, ConsentEvent, ConsentSource, ConsentStatus,
};
use switchboard_core::{Channel, ConsentEventId, ContactId, Permission};

use crate::{AppError, AppState, Principal, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentInput {
    pub channel: Channel,
    pub status: ConsentStatus,
    pub source: ConsentSource,
    /// What proves it (required for an opt-in from a website, IVR, ad, import or the API).
    pub evidence: Option<String>,
}

/// A contact's current standing per channel, and every change that led there.
#[derive(Clone, Debug)]
pub struct Ledger {
    pub current: BTreeMap<&'static str, ConsentStatus>,
    pub events: Vec<ConsentEvent>,
}

pub(crate) fn actor_of(principal: &Principal) -> String {
    match principal.user_id() {
        Some(user) => format!("user:{user}"),
        None => format!("token:{}", principal.token.id),
    }
}

pub async fn record_consent(
    state: &AppState,
    principal: &Principal,
    contact: ContactId,
    input: ConsentInput,
) -> Result<ConsentEvent> {
    principal.require(Permission::ContactsWrite)?;
    validate_manual_change(input.status, input.source, input.evidence.as_deref())?;
    state
        .store()
        .get_contact(contact)
        .await
        .map_err(|e| AppError::from_store("contact", e))?;
    let event = ConsentEvent {
        id: ConsentEventId::new(),
        contact_id: contact,
        channel: input.channel,
        status: input.status,
        source: input.source,
        evidence: input
            .evidence
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty()),
        actor: actor_of(principal),
        at: state.now(),
    };
    state
        .store()
        .append_consent(&event)
        .await
        .map_err(AppError::Internal)?;
    Ok(event)
}

pub async fn ledger(state: &AppState, principal: &Principal, contact: ContactId) -> Result<Ledger> {
    principal.require(Permission::ContactsRead)?;
    state
        .store()
        .get_contact(contact)
        .await
        .map_err(|e| AppError::from_store("contact", e))?;
    let events = state
        .store()
        .consent_events(contact, None)
        .await
        .map_err(AppError::Internal)?;
    let current = Channel::ALL
        .into_iter()
        .map(|c| (c.as_str(), current_status(&events, c)))
        .collect();
    Ok(Ledger { current, events })
}
