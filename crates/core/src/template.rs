//! Message templates (R3): WhatsApp templates submitted to Meta for approval, Messenger
//! message-tag templates, and SMS templates, with their variables and lifecycle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::contact::Locale;
use crate::ids::{SenderId, TemplateId};

/// Meta's template categories. Messenger and SMS templates have none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TemplateCategory {
    Marketing,
    Utility,
    Authentication,
}

/// Where a template is in its life (R3.3). Only `approved` templates can be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TemplateStatus {
    Draft,
    Pending,
    Approved,
    Rejected,
    Paused,
    Disabled,
}

/// Messenger message tags (PROTOCOLS.md B.2): personally relevant, non-promotional updates
/// allowed outside the 24-hour window. `HUMAN_AGENT` lets a person reply for 7 days.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MessageTag {
    ConfirmedEventUpdate,
    PostPurchaseUpdate,
    AccountUpdate,
    HumanAgent,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HeaderFormat {
    Text,
    Image,
    Document,
    Video,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateHeader {
    pub format: HeaderFormat,
    /// For `TEXT` headers: at most 60 characters and one variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// For media headers: an example (a URL or an upload handle) Meta reviews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ButtonType {
    QuickReply,
    Url,
    PhoneNumber,
    CopyCode,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateButton {
    #[serde(rename = "type")]
    pub kind: ButtonType,
    /// The label (at most 25 characters).
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// For `COPY_CODE`: the example code; for a `URL` with a variable: an example value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// A template as a client writes it, before validation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateInput {
    /// Lower-case letters, digits and `_`, at most 512 characters.
    pub name: String,
    /// `en`, `en_US`...
    pub locale: String,
    /// Required on WhatsApp; not used on Messenger or SMS.
    pub category: Option<TemplateCategory>,
    pub header: Option<TemplateHeader>,
    /// At most 1,024 characters; variables are `{{1}}`, `{{2}}`... or named `{{first_name}}`.
    pub body: String,
    pub footer: Option<String>,
    #[serde(default)]
    pub buttons: Vec<TemplateButton>,
    /// Variable -> contact field: `contact.name`, `contact.phone`, `contact.locale`,
    /// `contact.fields.<key>`.
    #[serde(default)]
    pub variable_mapping: BTreeMap<String, String>,
    /// Messenger only, and required there.
    pub tag: Option<MessageTag>,
}

/// A validated template's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateContent {
    pub name: String,
    pub locale: Locale,
    pub category: Option<TemplateCategory>,
    pub header: Option<TemplateHeader>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<TemplateButton>,
    pub variable_mapping: BTreeMap<String, String>,
    pub tag: Option<MessageTag>,
}

/// A stored template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub id: TemplateId,
    pub sender_id: SenderId,
    pub content: TemplateContent,
    pub status: TemplateStatus,
    /// Why it was rejected, paused or disabled, as the provider said.
    pub status_reason: Option<String>,
    /// The sender's one-click template for an expired window (R3.7).
    pub recontact: bool,
    /// Meta's id once submitted.
    pub provider_template_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One step of a template's lifecycle, kept for the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateTransition {
    pub from: TemplateStatus,
    pub to: TemplateStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// Who made it: a user or token id, or `provider` for a webhook.
    pub actor: String,
    pub reason: Option<String>,
}
