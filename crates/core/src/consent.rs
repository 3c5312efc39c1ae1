//! The consent ledger (R4): per contact and channel, every change with its time, source and
//! evidence; opt-in and opt-out keywords; the WhatsApp opt-in request flow (R4.3).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::channel::Channel;
use crate::ids::{ConsentEventId, ContactId};

/// Where a contact stands on one channel. A rejected opt-in request (R4.3c) is `opted_out`
/// with source `whatsapp_thread`: the contact receives nothing until they opt in again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConsentStatus {
    None,
    Requested,
    OptedIn,
    OptedOut,
}

/// How a consent change came about (R4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConsentSource {
    Website,
    Ivr,
    WhatsappThread,
    Ad,
    Agent,
    Import,
    Api,
    /// An inbound keyword such as STOP or START.
    Keyword,
    /// The provider reported it (WhatsApp 131050, Twilio 21610).
    Provider,
}

/// One entry of the ledger. Entries are only ever appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    pub id: ConsentEventId,
    pub contact_id: ContactId,
    pub channel: Channel,
    pub status: ConsentStatus,
    pub source: ConsentSource,
    /// What proves it: a form URL, a call recording id, the keyword message text...
    pub evidence: Option<String>,
    /// Who recorded it: a user or token id, or `system`.
    pub actor: String,
    pub at: OffsetDateTime,
}

/// What an inbound message asks for, when it is a consent keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeywordIntent {
    OptOut,
    OptIn,
}

/// The four outcomes of a WhatsApp opt-in request (R4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OptInOutcome {
    /// (a) The contact has no WhatsApp: offer SMS instead.
    NoWhatsapp,
    /// (b) Accepted: both sides get a confirmation.
    Accepted,
    /// (c) Rejected: composing and templates are disabled; the contact may reply "yes" later.
    Rejected,
    /// (d) No answer yet: a new request may be sent 24 hours after the last.
    NoAnswer,
}
