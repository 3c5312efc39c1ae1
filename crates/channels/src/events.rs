//! Provider-neutral inbound events.
//!
//! The webhook parsers ([`crate::whatsapp_webhook`], [`crate::messenger_webhook`],
//! [`crate::twilio_webhook`]) turn provider payloads into these values; the rest of the system
//! applies them. Everything here is plain data: no storage, no HTTP.
//!
//! Conventions:
//! - Identifiers (message ids, template ids, phone-number ids, page ids) are kept as strings,
//!   even where a provider sends a JSON number.
//! - Numeric provider codes (error codes) are kept exactly as received, as `i64`.
//! - `raw` fields hold the provider's own JSON for the item (for Twilio, an object of the form
//!   parameters), so nothing a provider sent is lost.

use serde_json::Value;
use time::OffsetDateTime;

/// Which provider an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    WhatsApp,
    Messenger,
    Twilio,
}

/// One thing a webhook told us.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundEvent {
    /// A message from a customer, or an echo of one the business sent from elsewhere
    /// (`is_echo`).
    Message(InboundMessage),
    /// A delivery status for a message the business sent.
    Status(StatusUpdate),
    /// A reaction added to or removed from a message.
    Reaction(Reaction),
    /// WhatsApp `message_template_status_update`.
    TemplateStatus(TemplateStatusUpdate),
    /// WhatsApp `message_template_quality_update`.
    TemplateQuality(TemplateQualityUpdate),
    /// WhatsApp `template_category_update`.
    TemplateCategory(TemplateCategoryUpdate),
    /// WhatsApp `message_template_components_update`.
    TemplateComponents(TemplateComponentsUpdate),
    /// WhatsApp `phone_number_quality_update`: quality flag and messaging limit tier.
    PhoneNumberQuality(PhoneNumberQualityUpdate),
    /// WhatsApp `account_update`.
    AccountUpdate(AccountUpdate),
    /// WhatsApp `user_preferences` (marketing message stop/resume/signup).
    MarketingPreference(MarketingPreference),
    /// Messenger `messaging_optins`.
    OptIn(OptIn),
    /// Anything well-formed that is not modelled; `kind` names what it was (the WhatsApp
    /// change `field`, a Messenger event key, ...), `raw` is the provider's JSON.
    Unknown { kind: String, raw: Value },
}

/// One side of a conversation as the provider identified it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    /// WhatsApp phone digits (`from` / `wa_id` / `recipient_id`), Messenger PSID, Twilio
    /// address (`+447700900513`, `whatsapp:+1...`).
    pub address: Option<String>,
    /// WhatsApp business-scoped user id (BSUID: `user_id` / `from_user_id`).
    pub user_id: Option<String>,
    /// WhatsApp parent BSUID (`parent_user_id`).
    pub parent_user_id: Option<String>,
    /// Profile name (WhatsApp `contacts[].profile.name`, Twilio `ProfileName`).
    pub name: Option<String>,
    /// WhatsApp username (`contacts[].profile.username`).
    pub username: Option<String>,
}

impl Party {
    /// A party known only by its address.
    pub fn address(address: impl Into<String>) -> Self {
        Party {
            address: Some(address.into()),
            ..Party::default()
        }
    }
}

/// What kind of message arrived.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Text,
    Image,
    Video,
    /// Audio; `Media::voice` says whether it was a recorded voice note.
    Audio,
    /// Document / Messenger `file` / Twilio media of a non-image/video/audio type.
    Document,
    Sticker,
    Location,
    Contacts,
    /// WhatsApp `interactive.button_reply`: `payload` is the button id, `text` its title.
    ButtonReply,
    /// WhatsApp `interactive.list_reply`: `payload` is the row id, `text` its title.
    ListReply,
    /// WhatsApp `interactive.nfm_reply` (Flow completion): `payload` is `response_json`.
    FlowReply,
    /// WhatsApp `interactive.call_permission_reply`: `payload` is `accept` / `reject`.
    CallPermissionReply,
    /// WhatsApp `button` (template quick-reply tap), Messenger `quick_reply`, Twilio
    /// `ButtonPayload`: `payload` is the button payload, `text` its label.
    QuickReply,
    /// Messenger postback: `payload` and `text` (the button title).
    Postback,
    Order,
    /// WhatsApp `system` (number or identity changed); see `InboundMessage::system`.
    System,
    /// WhatsApp `edit`: `original_message_id` is the edited message, the new content is in
    /// `text` / `media`.
    Edit,
    /// WhatsApp `revoke`: `original_message_id` was deleted by the sender.
    Revoke,
    /// WhatsApp `request_welcome`.
    RequestWelcome,
    /// WhatsApp `unsupported` (the errors say why).
    Unsupported,
    /// Any other type, as the provider named it (e.g. `interactive` with no known subtype,
    /// Messenger `fallback` / `reel`).
    Other(String),
}

/// An inbound (or echoed) message.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub provider: Provider,
    /// WhatsApp `wamid`, Messenger `mid`, Twilio `MessageSid`. For a Messenger postback that
    /// carries no `mid`, a deterministic `postback:<psid>:<timestamp ms>`.
    pub provider_message_id: String,
    /// The business identity the conversation is with: WhatsApp `metadata.phone_number_id`,
    /// Messenger page id, Twilio `To` (inbound) / `From` (echo).
    pub business_id: String,
    /// WhatsApp `metadata.display_phone_number`.
    pub business_display: Option<String>,
    /// WhatsApp WABA id (`entry[].id`), Messenger `entry[].id`, Twilio `AccountSid`.
    pub account_id: Option<String>,
    /// The customer side: the sender of an inbound message, the recipient of an echo.
    pub customer: Party,
    /// Provider timestamp (Twilio inbound has none).
    pub timestamp: Option<OffsetDateTime>,
    pub kind: MessageKind,
    /// Text body, media caption, button / list title, Flow `body`, system `body`.
    pub text: Option<String>,
    pub media: Vec<Media>,
    pub location: Option<Location>,
    pub shared_contacts: Vec<SharedContact>,
    pub order: Option<Order>,
    pub system: Option<SystemChange>,
    /// Quick-reply / button payload, interactive reply id, Flow `response_json`.
    pub payload: Option<String>,
    /// The message this one replies to (WhatsApp `context.id`, Messenger `reply_to.mid`,
    /// Twilio `OriginalRepliedMessageSid`).
    pub reply_to: Option<String>,
    /// WhatsApp `context.from`.
    pub reply_to_from: Option<String>,
    pub forwarded: bool,
    pub frequently_forwarded: bool,
    /// For `Edit` / `Revoke`: the message that was changed.
    pub original_message_id: Option<String>,
    /// Click-to-WhatsApp / Messenger referral object, as received.
    pub referral: Option<Value>,
    /// Sent by the business (Messenger `is_echo`, WhatsApp `smb_message_echoes`): ignore or
    /// record, but never treat as customer input.
    pub is_echo: bool,
    /// Delivered through Messenger `standby` (another app owns the thread).
    pub standby: bool,
    /// Errors attached to the message (or to the change that carried it).
    pub errors: Vec<ProviderError>,
    pub raw: Value,
}

impl InboundMessage {
    pub(crate) fn new(
        provider: Provider,
        provider_message_id: String,
        business_id: String,
        kind: MessageKind,
        raw: Value,
    ) -> Self {
        InboundMessage {
            provider,
            provider_message_id,
            business_id,
            business_display: None,
            account_id: None,
            customer: Party::default(),
            timestamp: None,
            kind,
            text: None,
            media: Vec::new(),
            location: None,
            shared_contacts: Vec::new(),
            order: None,
            system: None,
            payload: None,
            reply_to: None,
            reply_to_from: None,
            forwarded: false,
            frequently_forwarded: false,
            original_message_id: None,
            referral: None,
            is_echo: false,
            standby: false,
            errors: Vec::new(),
            raw,
        }
    }
}

/// An attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Media {
    /// WhatsApp media id (fetch via `GET /{media-id}`).
    pub id: Option<String>,
    /// Direct URL (Messenger payload url, Twilio `MediaUrl{N}`, newer WhatsApp `url`).
    pub url: Option<String>,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub filename: Option<String>,
    /// Messenger attachment `type` (`image`, `file`, `reel`, ...).
    pub attachment_type: Option<String>,
    /// WhatsApp audio `voice`.
    pub voice: bool,
    /// WhatsApp sticker `animated`.
    pub animated: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
    pub url: Option<String>,
}

/// A contact card shared in a WhatsApp `contacts` message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedContact {
    pub formatted_name: Option<String>,
    pub phones: Vec<SharedPhone>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedPhone {
    pub phone: Option<String>,
    pub wa_id: Option<String>,
    pub phone_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Order {
    pub catalog_id: Option<String>,
    pub text: Option<String>,
    pub items: Vec<OrderItem>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderItem {
    pub product_retailer_id: Option<String>,
    pub quantity: Option<f64>,
    pub item_price: Option<f64>,
    pub currency: Option<String>,
}

/// WhatsApp `system` message detail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemChange {
    /// `user_changed_number`, `customer_identity_changed`, `user_changed_user_id`, ...
    pub change_type: Option<String>,
    /// The new `wa_id` after a number change.
    pub new_wa_id: Option<String>,
    /// The new BSUID after a user-id change.
    pub new_user_id: Option<String>,
    /// `identity.hash` for identity changes.
    pub identity_hash: Option<String>,
}

/// Normalised delivery status. `raw_status` on [`StatusUpdate`] keeps the provider's word.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Accepted but not yet handed on: Twilio `queued`, `accepted`, `scheduled`, `sending`.
    Queued,
    Sent,
    /// Also Twilio `partially_delivered`.
    Delivered,
    Read,
    /// WhatsApp voice message `played`.
    Played,
    /// WhatsApp `failed`; Twilio `failed` and `undelivered`.
    Failed,
    /// Twilio `canceled` (a scheduled message that was cancelled).
    Canceled,
    /// Anything else, lower-cased.
    Other(String),
}

impl DeliveryStatus {
    /// Maps a provider status word (any case) to a normalised status.
    pub fn from_provider(status: &str) -> Self {
        match status.to_ascii_lowercase().as_str() {
            "queued" | "accepted" | "scheduled" | "sending" => DeliveryStatus::Queued,
            "sent" => DeliveryStatus::Sent,
            "delivered" | "partially_delivered" => DeliveryStatus::Delivered,
            "read" => DeliveryStatus::Read,
            "played" => DeliveryStatus::Played,
            "failed" | "undelivered" => DeliveryStatus::Failed,
            "canceled" | "cancelled" => DeliveryStatus::Canceled,
            other => DeliveryStatus::Other(other.to_owned()),
        }
    }

    /// Progress rank for applying out-of-order webhooks monotonically: a status should only
    /// replace a stored one of lower rank. Failures and cancellations are terminal (highest);
    /// unknown statuses rank 0.
    pub fn rank(&self) -> u8 {
        match self {
            DeliveryStatus::Other(_) => 0,
            DeliveryStatus::Queued => 1,
            DeliveryStatus::Sent => 2,
            DeliveryStatus::Delivered => 3,
            DeliveryStatus::Read => 4,
            DeliveryStatus::Played => 5,
            DeliveryStatus::Failed | DeliveryStatus::Canceled => 6,
        }
    }
}

/// A delivery status for one or more messages the business sent.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub provider: Provider,
    /// The messages this status is about: one for WhatsApp and Twilio; Messenger deliveries
    /// list `mids` when given, and reads never do (see `watermark`).
    pub provider_message_ids: Vec<String>,
    pub business_id: String,
    pub account_id: Option<String>,
    pub status: DeliveryStatus,
    /// The provider's status word as received.
    pub raw_status: String,
    pub timestamp: Option<OffsetDateTime>,
    /// Messenger: every message sent before this instant is delivered / read.
    pub watermark: Option<OffsetDateTime>,
    /// The customer the message went to.
    pub recipient: Party,
    /// WhatsApp `recipient_type` (`individual`, `group`).
    pub recipient_type: Option<String>,
    /// WhatsApp group statuses: the participant the status is about.
    pub group_participant: Option<Party>,
    pub errors: Vec<ProviderError>,
    pub pricing: Option<Pricing>,
    pub conversation: Option<ConversationInfo>,
    /// WhatsApp `biz_opaque_callback_data` echoed back from the send.
    pub biz_opaque_callback_data: Option<String>,
    pub raw: Value,
}

impl StatusUpdate {
    /// The single message id, when the status names exactly one message.
    pub fn message_id(&self) -> Option<&str> {
        match self.provider_message_ids.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// A provider error as received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderError {
    /// The numeric code exactly as received (WhatsApp `code`, Twilio `ErrorCode`).
    pub code: Option<i64>,
    pub title: Option<String>,
    pub message: Option<String>,
    /// WhatsApp `error_data.details`.
    pub details: Option<String>,
    pub href: Option<String>,
}

/// WhatsApp `pricing`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pricing {
    pub billable: Option<bool>,
    /// `CBP`, `PMP`.
    pub pricing_model: Option<String>,
    /// `service`, `marketing`, `utility`, `authentication`, ...
    pub category: Option<String>,
    /// PMP `type` (e.g. `regular`, `free_customer_service`).
    pub pricing_type: Option<String>,
}

/// WhatsApp `conversation`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationInfo {
    pub id: Option<String>,
    pub origin_type: Option<String>,
    pub expires_at: Option<OffsetDateTime>,
}

/// A reaction (WhatsApp `reaction` message, Messenger `message_reactions`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction {
    pub provider: Provider,
    /// WhatsApp gives the reaction its own `wamid`; Messenger does not.
    pub provider_message_id: Option<String>,
    pub business_id: String,
    pub account_id: Option<String>,
    /// Who reacted.
    pub customer: Party,
    pub timestamp: Option<OffsetDateTime>,
    /// The message reacted to.
    pub target_message_id: String,
    /// The emoji; `None` when the reaction was removed.
    pub emoji: Option<String>,
    /// Messenger reaction name (`smile`, `love`, ...).
    pub reaction_name: Option<String>,
    /// True when this removes a reaction (WhatsApp empty or missing emoji, Messenger
    /// `action: unreact`).
    pub removed: bool,
    pub standby: bool,
}

/// WhatsApp `message_template_status_update`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateStatusUpdate {
    /// WABA id.
    pub account_id: Option<String>,
    pub time: Option<OffsetDateTime>,
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    pub language: Option<String>,
    /// The new status (`event`): `APPROVED`, `REJECTED`, `PAUSED`, ...
    pub status: String,
    /// `reason` (`NONE`, `INVALID_FORMAT`, ...).
    pub reason: Option<String>,
    pub category: Option<String>,
    /// `rejection_info.reason` / `.recommendation`.
    pub rejection_detail: Option<String>,
    pub rejection_recommendation: Option<String>,
}

/// WhatsApp `message_template_quality_update`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateQualityUpdate {
    pub account_id: Option<String>,
    pub time: Option<OffsetDateTime>,
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    pub language: Option<String>,
    pub previous_quality: Option<String>,
    pub new_quality: Option<String>,
}

/// WhatsApp `template_category_update`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateCategoryUpdate {
    pub account_id: Option<String>,
    pub time: Option<OffsetDateTime>,
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    pub language: Option<String>,
    pub previous_category: Option<String>,
    pub new_category: Option<String>,
    pub correct_category: Option<String>,
}

/// WhatsApp `message_template_components_update`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateComponentsUpdate {
    pub account_id: Option<String>,
    pub time: Option<OffsetDateTime>,
    pub template_id: Option<String>,
    pub template_name: Option<String>,
    pub language: Option<String>,
    pub title: Option<String>,
    /// The body text (`message_template_element`).
    pub body: Option<String>,
    pub footer: Option<String>,
    pub buttons: Vec<TemplateButton>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateButton {
    pub button_type: Option<String>,
    pub text: Option<String>,
    pub url: Option<String>,
    pub phone_number: Option<String>,
}

/// WhatsApp `phone_number_quality_update`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhoneNumberQualityUpdate {
    pub account_id: Option<String>,
    pub time: Option<OffsetDateTime>,
    pub display_phone_number: Option<String>,
    /// `FLAGGED`, `UNFLAGGED`, `UPGRADE`, `DOWNGRADE`, `THROUGHPUT_UPGRADE`, `ONBOARDING`.
    pub event: String,
    /// The messaging limit tier now in force: `current_limit` (e.g. `TIER_1K`), falling back
    /// to `max_daily_conversations_per_business` where `current_limit` is absent.
    pub current_limit: Option<String>,
    pub old_limit: Option<String>,
    /// `max_daily_conversations_per_business` as received (string or number).
    pub max_daily_conversations_per_business: Option<String>,
    pub raw: Value,
}

/// WhatsApp `account_update`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountUpdate {
    pub account_id: Option<String>,
    pub time: Option<OffsetDateTime>,
    /// `ACCOUNT_VIOLATION`, `ACCOUNT_RESTRICTION`, `DISABLED_UPDATE`, `PARTNER_ADDED`, ...
    pub event: String,
    pub restrictions: Vec<AccountRestriction>,
    pub violation_type: Option<String>,
    pub ban_state: Option<String>,
    /// The whole `value`, for the many event-specific shapes.
    pub raw: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountRestriction {
    pub restriction_type: Option<String>,
    pub expiration: Option<OffsetDateTime>,
}

/// WhatsApp `user_preferences`: a user stopped, resumed or signed up for marketing messages.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketingPreference {
    pub business_id: String,
    pub account_id: Option<String>,
    pub customer: Party,
    /// `marketing_messages`.
    pub category: Option<String>,
    /// `stop`, `resume`, `signup`.
    pub value: String,
    pub detail: Option<String>,
    pub timestamp: Option<OffsetDateTime>,
    pub raw: Value,
}

/// Messenger `messaging_optins`.
#[derive(Debug, Clone, PartialEq)]
pub struct OptIn {
    pub provider: Provider,
    pub business_id: String,
    pub customer: Party,
    pub timestamp: Option<OffsetDateTime>,
    /// `notification_messages`, ...
    pub optin_type: Option<String>,
    pub payload: Option<String>,
    pub notification_messages_token: Option<String>,
    pub token_expiry: Option<OffsetDateTime>,
    pub user_token_status: Option<String>,
    /// `STOP_NOTIFICATIONS` / `RESUME_NOTIFICATIONS` (only on change).
    pub notification_messages_status: Option<String>,
    pub notification_messages_timezone: Option<String>,
    pub title: Option<String>,
    pub standby: bool,
    pub raw: Value,
}

/// Why a webhook body could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The body is not JSON.
    InvalidJson(String),
    /// The JSON is not the expected envelope (wrong or missing `object`, no `entry` list).
    UnexpectedEnvelope(String),
    /// A required field is missing or has the wrong type (Twilio forms).
    MissingField(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::InvalidJson(e) => write!(f, "webhook body is not JSON: {e}"),
            ParseError::UnexpectedEnvelope(e) => write!(f, "unexpected webhook envelope: {e}"),
            ParseError::MissingField(name) => write!(f, "webhook is missing `{name}`"),
        }
    }
}

impl std::error::Error for ParseError {}

// Helpers shared by the parsers.

/// A string field; numbers and booleans are rendered as text (ids sometimes arrive as numbers).
pub(crate) fn str_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn i64_of(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn f64_of(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn bool_of(v: &Value, key: &str) -> Option<bool> {
    match v.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn array_of<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Unix seconds (number or numeric string).
pub(crate) fn secs_of(v: &Value, key: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(i64_of(v, key)?).ok()
}

/// Unix milliseconds (number or numeric string).
pub(crate) fn millis_of(v: &Value, key: &str) -> Option<OffsetDateTime> {
    let ms = i64_of(v, key)?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `errors[]` in Meta's shape.
pub(crate) fn meta_errors(v: &Value) -> Vec<ProviderError> {
    array_of(v, "errors")
        .iter()
        .map(|e| ProviderError {
            code: i64_of(e, "code"),
            title: str_of(e, "title"),
            message: str_of(e, "message"),
            details: e.get("error_data").and_then(|d| str_of(d, "details")),
            href: str_of(e, "href"),
        })
        .collect()
}

/// The entries of a Meta webhook envelope (`{"object": .., "entry": [..]}`), once its `object`
/// is checked: WhatsApp and Messenger share this shape.
pub(crate) fn meta_entries(body: &[u8], expected_object: &str) -> Result<Vec<Value>, ParseError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| ParseError::InvalidJson(e.to_string()))?;
    let object = root
        .get("object")
        .and_then(Value::as_str)
        .ok_or_else(|| ParseError::UnexpectedEnvelope("no `object`".into()))?;
    if object != expected_object {
        return Err(ParseError::UnexpectedEnvelope(format!(
            "object is `{object}`, not `{expected_object}`"
        )));
    }
    root.get("entry")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ParseError::UnexpectedEnvelope("no `entry` list".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_map_and_rank() {
        assert_eq!(DeliveryStatus::from_provider("SENT"), DeliveryStatus::Sent);
        assert_eq!(
            DeliveryStatus::from_provider("undelivered"),
            DeliveryStatus::Failed
        );
        assert_eq!(
            DeliveryStatus::from_provider("sending"),
            DeliveryStatus::Queued
        );
        assert_eq!(
            DeliveryStatus::from_provider("weird"),
            DeliveryStatus::Other("weird".into())
        );
        assert!(DeliveryStatus::Read.rank() > DeliveryStatus::Delivered.rank());
        assert!(DeliveryStatus::Failed.rank() > DeliveryStatus::Read.rank());
    }

    #[test]
    fn timestamps_out_of_range_are_none() {
        let v = serde_json::json!({"a": i64::MAX, "b": "1697043223", "c": "x"});
        assert_eq!(secs_of(&v, "a"), None);
        assert_eq!(millis_of(&v, "a"), None);
        assert_eq!(
            secs_of(&v, "b").map(|t| t.unix_timestamp()),
            Some(1697043223)
        );
        assert_eq!(secs_of(&v, "c"), None);
    }
}
