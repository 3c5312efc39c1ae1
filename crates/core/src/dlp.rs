//! Data-loss prevention (R8.2): rules that find payment card numbers, IBANs, US social security
//! numbers or custom patterns in message text, and either redact them or block the message.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DlpKind {
    /// 13 to 19 digits (spaces or dashes allowed between groups) passing the Luhn check.
    PaymentCard,
    /// An IBAN passing the ISO 13616 mod-97 check.
    Iban,
    /// A US social security number (AAA-GG-SSSS, with the invalid ranges excluded).
    UsSsn,
    /// A regular expression of the account's own.
    Custom,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DlpAction {
    /// Send with each finding replaced; the original never reaches the provider.
    Redact,
    /// Refuse the message with `dlp_blocked`.
    Block,
}

/// One rule as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DlpRule {
    pub name: String,
    pub kind: DlpKind,
    /// The regular expression, for `custom` rules only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub action: DlpAction,
    /// Whether inbound text is scanned too (outbound always is).
    #[serde(default)]
    pub inbound: bool,
}
