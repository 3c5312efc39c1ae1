//! The consent ledger through the API (R4.1).

use std::collections::BTreeMap;

use serde::Deserialize;
use switchboard_core::consent::{
    check_opt_in_request, current_status, validate_manual_change, ConsentEvent, ConsentSource,
    ConsentStatus, OptInRequestRefusal,
};
use switchboard_core::message::Message;
use switchboard_core::validation::required_text;
use switchboard_core::{Channel, ConsentEventId, ContactId, FieldError, Permission, SenderId};

use crate::sending::{send_as, SendInput, Sender};
use crate::{AppError, AppState, Principal, Result};

/// What an opt-in request says unless the agent words it otherwise.
pub const DEFAULT_OPT_IN_REQUEST: &str = "Would you like to receive updates from us here on \
    WhatsApp? Reply YES to agree or NO to decline. You can reply STOP at any time.";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OptInRequestInput {
    /// The WhatsApp sender to ask from.
    pub sender_id: SenderId,
    /// The question, if not the default.
    pub text: Option<String>,
}

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
    // R4.2: an opt-out is the customer's; only an admin may record their coming back (a
    // customer who asked by phone, say), and only with evidence (checked above).
    if input.status == ConsentStatus::OptedIn && principal.role() != switchboard_core::Role::Admin {
        let events = state
            .store()
            .consent_events(contact, Some(input.channel))
            .await
            .map_err(AppError::Internal)?;
        if current_status(&events, input.channel) == ConsentStatus::OptedOut {
            return Err(AppError::Conflict {
                code: "opted_out_by_contact",
                field: Some("status".to_owned()),
                existing_id: None,
                detail:
                    "the contact opted out; they opt in again themselves (by replying START or \
                         YES), or an admin records it with evidence"
                        .to_owned(),
            });
        }
    }
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

/// Sends the WhatsApp opt-in request (R4.3) and records the contact as `requested`, in one
/// transaction. The request is an ordinary message under the policy: it goes inside a window
/// the customer opened (asking a stranger out of the blue is what opt-in exists to prevent).
/// Refused when the contact already opted in, opted out (they opt in themselves by replying
/// YES), has no WhatsApp (offer SMS), or was asked less than 24 hours ago.
pub async fn request_opt_in(
    state: &AppState,
    principal: &Principal,
    contact: ContactId,
    input: OptInRequestInput,
) -> Result<Message> {
    principal.require(Permission::ContactsWrite)?;
    principal.require(Permission::MessagesSend)?;
    let store = state.store();
    let sender = store
        .get_sender(input.sender_id)
        .await
        .map_err(crate::missing_reference("sender_id", "sender"))?;
    if sender.channel != Channel::Whatsapp {
        return Err(FieldError::new(
            "sender_id",
            "channel_mismatch",
            "opt-in requests are sent on WhatsApp",
        )
        .into());
    }
    let text = match &input.text {
        Some(text) => required_text("text", text, 1024)?,
        None => DEFAULT_OPT_IN_REQUEST.to_owned(),
    };
    store
        .get_contact(contact)
        .await
        .map_err(|e| AppError::from_store("contact", e))?;
    let events = store
        .consent_events(contact, Some(Channel::Whatsapp))
        .await
        .map_err(AppError::Internal)?;
    let status = current_status(&events, Channel::Whatsapp);
    let last_request_at = events
        .iter()
        .filter(|e| e.status == ConsentStatus::Requested)
        .map(|e| e.at)
        .max();
    let no_whatsapp = store
        .whatsapp_unavailable_since(contact)
        .await
        .map_err(AppError::Internal)?
        .is_some();
    let now = state.now();
    if let Err(refusal) = check_opt_in_request(status, last_request_at, no_whatsapp, now) {
        let detail = match &refusal {
            OptInRequestRefusal::NoWhatsapp => {
                format!("{}; send it by SMS instead", refusal.reason())
            }
            _ => refusal.reason(),
        };
        return Err(AppError::Conflict {
            code: refusal.code(),
            field: None,
            existing_id: None,
            detail,
        });
    }
    let event = ConsentEvent {
        id: ConsentEventId::new(),
        contact_id: contact,
        channel: Channel::Whatsapp,
        status: ConsentStatus::Requested,
        source: ConsentSource::WhatsappThread,
        evidence: Some(text.clone()),
        actor: actor_of(principal),
        at: now,
    };
    let input = SendInput {
        sender_id: Some(sender.id),
        contact_id: Some(contact),
        text: Some(text),
        ..Default::default()
    };
    let sent = send_as(state, Sender::Caller(principal), input, None, Some(event)).await?;
    Ok(sent.value)
}
