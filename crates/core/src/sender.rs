//! Sender IDs (R1.1–R1.3): one business identity on one channel, with its provider credentials.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::channel::Channel;
use crate::ids::SenderId;
use crate::validation::{FieldError, ValidationErrors};

pub const DEFAULT_GRAPH_API_BASE_URL: &str = "https://graph.facebook.com/v23.0";
/// WhatsApp Cloud API's default throughput per registered number; Messenger and Twilio pace
/// differently, but a sender that needs more says so.
pub const DEFAULT_RATE_LIMIT_PER_SECOND: u32 = 80;
/// The highest rate a sender may be given: WhatsApp's upgraded throughput is 1,000 messages per
/// second; the rest of the range is for loopback benchmarks and private gateways.
pub const MAX_RATE_LIMIT_PER_SECOND: u32 = 100_000;
pub const DEFAULT_TWILIO_API_BASE_URL: &str = "https://api.twilio.com";

/// A credential. Its `Debug` never shows the value, so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the API shows instead of the value: enough to tell two credentials apart.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() >= 16 {
            let tail: String = chars[chars.len() - 4..].iter().collect();
            format!("****{tail}")
        } else {
            "****".to_owned()
        }
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProviderKind {
    WhatsappCloud,
    Messenger,
    Twilio,
    Sandbox,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::WhatsappCloud,
        ProviderKind::Messenger,
        ProviderKind::Twilio,
        ProviderKind::Sandbox,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::WhatsappCloud => "whatsapp_cloud",
            ProviderKind::Messenger => "messenger",
            ProviderKind::Twilio => "twilio",
            ProviderKind::Sandbox => "sandbox",
        }
    }

    /// Whether this provider can carry `channel`. The sandbox simulates every channel.
    pub fn serves(self, channel: Channel) -> bool {
        matches!(
            (self, channel),
            (ProviderKind::WhatsappCloud, Channel::Whatsapp)
                | (ProviderKind::Messenger, Channel::Messenger)
                | (ProviderKind::Twilio, Channel::Sms)
                | (ProviderKind::Sandbox, _)
        )
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown provider `{s}`: expected whatsapp_cloud, messenger, twilio or sandbox"
                )
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatsappCloudConfig {
    pub phone_number_id: String,
    pub waba_id: String,
    pub access_token: SecretText,
    pub app_secret: SecretText,
    pub verify_token: SecretText,
    pub api_base_url: String,
    pub display_phone_number: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessengerConfig {
    pub page_id: String,
    pub page_access_token: SecretText,
    pub app_secret: SecretText,
    pub verify_token: SecretText,
    pub api_base_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: SecretText,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub api_base_url: String,
}

/// A provider and its validated credentials. Stored as JSON, tagged by `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProviderConfig {
    WhatsappCloud(WhatsappCloudConfig),
    Messenger(MessengerConfig),
    Twilio(TwilioConfig),
    Sandbox,
}

impl Sender {
    /// The send rate that applies to this sender now.
    pub fn rate_limit(&self) -> u32 {
        self.rate_limit_per_second
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_SECOND)
    }
}

impl ProviderConfig {
    /// Whether the credentials used to call the provider differ between the two (a token
    /// replaced after the provider refused the old one).
    pub fn credentials_differ(&self, other: &ProviderConfig) -> bool {
        match (self, other) {
            (ProviderConfig::WhatsappCloud(a), ProviderConfig::WhatsappCloud(b)) => {
                a.access_token.expose() != b.access_token.expose()
            }
            (ProviderConfig::Messenger(a), ProviderConfig::Messenger(b)) => {
                a.page_access_token.expose() != b.page_access_token.expose()
            }
            (ProviderConfig::Twilio(a), ProviderConfig::Twilio(b)) => {
                a.account_sid != b.account_sid || a.auth_token.expose() != b.auth_token.expose()
            }
            (ProviderConfig::Sandbox, ProviderConfig::Sandbox) => false,
            _ => true,
        }
    }

    pub fn kind(&self) -> ProviderKind {
        match self {
            ProviderConfig::WhatsappCloud(_) => ProviderKind::WhatsappCloud,
            ProviderConfig::Messenger(_) => ProviderKind::Messenger,
            ProviderConfig::Twilio(_) => ProviderKind::Twilio,
            ProviderConfig::Sandbox => ProviderKind::Sandbox,
        }
    }

    /// The provider's own id for this identity, by which its webhooks are routed to the sender:
    /// the phone-number id, the page id, or the Twilio number / messaging service.
    pub fn external_id(&self) -> Option<String> {
        match self {
            ProviderConfig::WhatsappCloud(c) => Some(c.phone_number_id.clone()),
            ProviderConfig::Messenger(c) => Some(c.page_id.clone()),
            ProviderConfig::Twilio(c) => c.from.clone().or_else(|| c.messaging_service_sid.clone()),
            ProviderConfig::Sandbox => None,
        }
    }
}

/// Provider fields as a client writes them, before validation. Every field is optional here so
/// that each missing one can be reported by name, and so that a PATCH can carry just a few.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderInput {
    /// `whatsapp_cloud`, `messenger`, `twilio` or `sandbox`.
    pub kind: Option<ProviderKind>,
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
    pub access_token: Option<String>,
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
    pub display_phone_number: Option<String>,
    pub page_id: Option<String>,
    pub page_access_token: Option<String>,
    pub account_sid: Option<String>,
    pub auth_token: Option<String>,
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub api_base_url: Option<String>,
}

impl ProviderInput {
    /// The stored configuration as input, so that a PATCH can be laid over it and the result
    /// validated as a whole.
    pub fn from_config(config: &ProviderConfig) -> Self {
        let mut input = ProviderInput {
            kind: Some(config.kind()),
            ..Default::default()
        };
        match config {
            ProviderConfig::WhatsappCloud(c) => {
                input.phone_number_id = Some(c.phone_number_id.clone());
                input.waba_id = Some(c.waba_id.clone());
                input.access_token = Some(c.access_token.expose().to_owned());
                input.app_secret = Some(c.app_secret.expose().to_owned());
                input.verify_token = Some(c.verify_token.expose().to_owned());
                input.display_phone_number = c.display_phone_number.clone();
                input.api_base_url = Some(c.api_base_url.clone());
            }
            ProviderConfig::Messenger(c) => {
                input.page_id = Some(c.page_id.clone());
                input.page_access_token = Some(c.page_access_token.expose().to_owned());
                input.app_secret = Some(c.app_secret.expose().to_owned());
                input.verify_token = Some(c.verify_token.expose().to_owned());
                input.api_base_url = Some(c.api_base_url.clone());
            }
            ProviderConfig::Twilio(c) => {
                input.account_sid = Some(c.account_sid.clone());
                input.auth_token = Some(c.auth_token.expose().to_owned());
                input.from = c.from.clone();
                input.messaging_service_sid = c.messaging_service_sid.clone();
                input.api_base_url = Some(c.api_base_url.clone());
            }
            ProviderConfig::Sandbox => {}
        }
        input
    }

    /// Lays `patch` over `self`: each field the patch carries replaces the stored one.
    pub fn overlay(mut self, patch: ProviderInput) -> Self {
        macro_rules! take {
            ($($f:ident),*) => { $( if patch.$f.is_some() { self.$f = patch.$f; } )* };
        }
        take!(
            kind,
            phone_number_id,
            waba_id,
            access_token,
            app_secret,
            verify_token,
            display_phone_number,
            page_id,
            page_access_token,
            account_sid,
            auth_token,
            from,
            messaging_service_sid,
            api_base_url
        );
        self
    }

    /// Validates the fields that `kind` needs and refuses the ones it does not use. Field
    /// names in errors are prefixed with `provider.`.
    pub fn validate(self) -> Result<ProviderConfig, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let Some(kind) = self.kind else {
            return Err(FieldError::required("provider.kind").into());
        };
        let used: &[&str] = match kind {
            ProviderKind::WhatsappCloud => &[
                "phone_number_id",
                "waba_id",
                "access_token",
                "app_secret",
                "verify_token",
                "display_phone_number",
                "api_base_url",
            ],
            ProviderKind::Messenger => &[
                "page_id",
                "page_access_token",
                "app_secret",
                "verify_token",
                "api_base_url",
            ],
            ProviderKind::Twilio => &[
                "account_sid",
                "auth_token",
                "from",
                "messaging_service_sid",
                "api_base_url",
            ],
            ProviderKind::Sandbox => &[],
        };
        for (name, present) in self.present_fields() {
            if present && !used.contains(&name) {
                errors.push(FieldError::new(
                    format!("provider.{name}"),
                    "not_allowed",
                    format!("`{name}` does not apply to provider `{kind}`"),
                ));
            }
        }
        let config = match kind {
            ProviderKind::WhatsappCloud => {
                let phone_number_id =
                    errors.check(numeric_id("phone_number_id", &self.phone_number_id));
                let waba_id = errors.check(numeric_id("waba_id", &self.waba_id));
                let access_token = errors.check(secret("access_token", &self.access_token));
                let app_secret = errors.check(secret("app_secret", &self.app_secret));
                let verify_token = errors.check(secret("verify_token", &self.verify_token));
                let display = errors.check(
                    self.display_phone_number
                        .as_deref()
                        .map(|n| e164_shape("display_phone_number", n))
                        .transpose(),
                );
                let base = errors.check(base_url(&self.api_base_url, DEFAULT_GRAPH_API_BASE_URL));
                match (
                    phone_number_id,
                    waba_id,
                    access_token,
                    app_secret,
                    verify_token,
                    display,
                    base,
                ) {
                    (Some(p), Some(w), Some(a), Some(s), Some(v), Some(d), Some(b)) => {
                        Some(ProviderConfig::WhatsappCloud(WhatsappCloudConfig {
                            phone_number_id: p,
                            waba_id: w,
                            access_token: a,
                            app_secret: s,
                            verify_token: v,
                            api_base_url: b,
                            display_phone_number: d,
                        }))
                    }
                    _ => None,
                }
            }
            ProviderKind::Messenger => {
                let page_id = errors.check(numeric_id("page_id", &self.page_id));
                let token = errors.check(secret("page_access_token", &self.page_access_token));
                let app_secret = errors.check(secret("app_secret", &self.app_secret));
                let verify_token = errors.check(secret("verify_token", &self.verify_token));
                let base = errors.check(base_url(&self.api_base_url, DEFAULT_GRAPH_API_BASE_URL));
                match (page_id, token, app_secret, verify_token, base) {
                    (Some(p), Some(t), Some(s), Some(v), Some(b)) => {
                        Some(ProviderConfig::Messenger(MessengerConfig {
                            page_id: p,
                            page_access_token: t,
                            app_secret: s,
                            verify_token: v,
                            api_base_url: b,
                        }))
                    }
                    _ => None,
                }
            }
            ProviderKind::Twilio => {
                let sid =
                    errors.check(twilio_sid("account_sid", "AC", self.account_sid.as_deref()));
                let token = errors.check(secret("auth_token", &self.auth_token));
                let from = errors.check(
                    self.from
                        .as_deref()
                        .map(|n| e164_shape("from", n))
                        .transpose(),
                );
                let service = errors.check(
                    self.messaging_service_sid
                        .as_deref()
                        .map(|s| twilio_sid("messaging_service_sid", "MG", Some(s)))
                        .transpose(),
                );
                if self.from.is_none() && self.messaging_service_sid.is_none() {
                    errors.push(FieldError::new(
                        "provider.from",
                        "required",
                        "a Twilio sender needs `from` (a number) or `messaging_service_sid`",
                    ));
                }
                let base = errors.check(base_url(&self.api_base_url, DEFAULT_TWILIO_API_BASE_URL));
                match (sid, token, from, service, base) {
                    (Some(a), Some(t), Some(f), Some(m), Some(b)) => {
                        Some(ProviderConfig::Twilio(TwilioConfig {
                            account_sid: a,
                            auth_token: t,
                            from: f,
                            messaging_service_sid: m,
                            api_base_url: b,
                        }))
                    }
                    _ => None,
                }
            }
            ProviderKind::Sandbox => Some(ProviderConfig::Sandbox),
        };
        match config {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(errors),
        }
    }

    fn present_fields(&self) -> [(&'static str, bool); 13] {
        [
            ("phone_number_id", self.phone_number_id.is_some()),
            ("waba_id", self.waba_id.is_some()),
            ("access_token", self.access_token.is_some()),
            ("app_secret", self.app_secret.is_some()),
            ("verify_token", self.verify_token.is_some()),
            ("display_phone_number", self.display_phone_number.is_some()),
            ("page_id", self.page_id.is_some()),
            ("page_access_token", self.page_access_token.is_some()),
            ("account_sid", self.account_sid.is_some()),
            ("auth_token", self.auth_token.is_some()),
            ("from", self.from.is_some()),
            (
                "messaging_service_sid",
                self.messaging_service_sid.is_some(),
            ),
            ("api_base_url", self.api_base_url.is_some()),
        ]
    }
}

fn provider_field(name: &str) -> String {
    format!("provider.{name}")
}

fn numeric_id(name: &str, value: &Option<String>) -> Result<String, FieldError> {
    let field = provider_field(name);
    let value = value.as_deref().map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(FieldError::required(field));
    }
    if value.len() > 64 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FieldError::new(
            field,
            "invalid_format",
            format!("`{name}` must be the numeric id Meta shows for it"),
        ));
    }
    Ok(value.to_owned())
}

fn secret(name: &str, value: &Option<String>) -> Result<SecretText, FieldError> {
    let field = provider_field(name);
    let value = value.as_deref().unwrap_or_default();
    if value.trim().is_empty() {
        return Err(FieldError::required(field));
    }
    if value.len() > 4096 || value.chars().any(char::is_whitespace) {
        return Err(FieldError::new(
            field,
            "invalid_format",
            format!("`{name}` must be a single token without spaces"),
        ));
    }
    Ok(SecretText::new(value))
}

fn twilio_sid(name: &str, prefix: &str, value: Option<&str>) -> Result<String, FieldError> {
    let field = provider_field(name);
    let value = value.map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(FieldError::required(field));
    }
    let hex = value.strip_prefix(prefix).unwrap_or_default();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(FieldError::new(
            field,
            "invalid_format",
            format!("`{name}` must be `{prefix}` followed by 32 hexadecimal digits"),
        ));
    }
    Ok(value.to_owned())
}

/// Provider-owned numbers (including Twilio's magic test numbers) are checked for E.164 shape
/// only: the provider, not libphonenumber, is the authority on which of its numbers exist.
fn e164_shape(name: &str, value: &str) -> Result<String, FieldError> {
    let compact: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("+{digits}"))
    } else {
        Err(FieldError::new(
            provider_field(name),
            "invalid_address",
            format!("`{name}` must be a phone number in E.164 form, such as +14155552345"),
        ))
    }
}

fn base_url(value: &Option<String>, default: &str) -> Result<String, FieldError> {
    let Some(value) = value else {
        return Ok(default.to_owned());
    };
    let parsed = url::Url::parse(value.trim()).map_err(|e| {
        FieldError::new(
            provider_field("api_base_url"),
            "invalid_url",
            format!("`api_base_url` is not a URL: {e}"),
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(FieldError::new(
            provider_field("api_base_url"),
            "invalid_url",
            "`api_base_url` must be an http or https URL",
        ));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// Number health (R8.4), updated from provider webhooks by later work; set to its initial state
/// when the sender is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HealthStatus {
    Pending,
    Connected,
    Offline,
    Flagged,
    Restricted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum QualityRating {
    Unknown,
    Green,
    Yellow,
    Red,
}

/// Whether the provider last accepted the sender's credentials (R8.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TokenStatus {
    Unknown,
    Valid,
    Expired,
    Invalid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SenderHealth {
    pub status: HealthStatus,
    pub quality_rating: QualityRating,
    /// Unique users reachable by business-initiated messages in a rolling 24 hours; `None` is
    /// unlimited or not yet known.
    pub messaging_limit_tier: Option<i64>,
    pub token_status: TokenStatus,
}

impl SenderHealth {
    pub fn initial(kind: ProviderKind) -> Self {
        Self {
            // The sandbox needs no provider to confirm it; real senders wait for one.
            status: if kind == ProviderKind::Sandbox {
                HealthStatus::Connected
            } else {
                HealthStatus::Pending
            },
            quality_rating: QualityRating::Unknown,
            messaging_limit_tier: None,
            token_status: TokenStatus::Unknown,
        }
    }
}

pub const DEFAULT_MEDIA_SIZE_LIMIT_BYTES: i64 = 2_500_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    pub id: SenderId,
    pub channel: Channel,
    pub name: String,
    pub use_case: Option<String>,
    pub provider: ProviderConfig,
    pub health: SenderHealth,
    /// Messages per second this sender may send; `None` means
    /// [`DEFAULT_RATE_LIMIT_PER_SECOND`].
    pub rate_limit_per_second: Option<u32>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whatsapp_input() -> ProviderInput {
        ProviderInput {
            kind: Some(ProviderKind::WhatsappCloud),
            phone_number_id: Some("106540352242922".into()),
            waba_id: Some("102290129340398".into()),
            access_token: Some("EAAG-secret-token-value".into()),
            app_secret: Some("0123456789abcdef0123456789abcdef".into()),
            verify_token: Some("verify-me".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_complete_whatsapp_provider_validates_with_the_default_base_url() {
        let config = whatsapp_input().validate().unwrap();
        let ProviderConfig::WhatsappCloud(c) = &config else {
            panic!("wrong kind")
        };
        assert_eq!(c.api_base_url, DEFAULT_GRAPH_API_BASE_URL);
        assert_eq!(config.external_id().as_deref(), Some("106540352242922"));
    }

    #[test]
    fn every_missing_field_is_named() {
        let errors = ProviderInput {
            kind: Some(ProviderKind::WhatsappCloud),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        let fields: Vec<&str> = errors.errors().iter().map(|e| e.field.as_str()).collect();
        for f in [
            "provider.phone_number_id",
            "provider.waba_id",
            "provider.access_token",
            "provider.app_secret",
            "provider.verify_token",
        ] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
    }

    #[test]
    fn fields_of_another_provider_are_refused() {
        let mut input = whatsapp_input();
        input.page_id = Some("123".into());
        let errors = input.validate().unwrap_err();
        assert_eq!(errors.errors()[0].field, "provider.page_id");
        assert_eq!(errors.errors()[0].code, "not_allowed");
    }

    #[test]
    fn twilio_needs_a_number_or_a_service_and_well_formed_sids() {
        let base = ProviderInput {
            kind: Some(ProviderKind::Twilio),
            account_sid: Some(format!("AC{}", "a".repeat(32))),
            auth_token: Some("b".repeat(32)),
            ..Default::default()
        };
        assert!(base.clone().validate().is_err());
        let with_from = ProviderInput {
            from: Some("+15005550006".into()),
            ..base.clone()
        };
        let config = with_from.validate().unwrap();
        assert_eq!(config.external_id().as_deref(), Some("+15005550006"));
        let bad_sid = ProviderInput {
            account_sid: Some("AC123".into()),
            messaging_service_sid: Some(format!("MG{}", "c".repeat(32))),
            ..base
        };
        let errors = bad_sid.validate().unwrap_err();
        assert_eq!(errors.errors()[0].field, "provider.account_sid");
    }

    #[test]
    fn providers_fit_only_their_channels() {
        assert!(ProviderKind::WhatsappCloud.serves(Channel::Whatsapp));
        assert!(!ProviderKind::WhatsappCloud.serves(Channel::Sms));
        assert!(!ProviderKind::Twilio.serves(Channel::Messenger));
        assert!(ProviderKind::Messenger.serves(Channel::Messenger));
        for c in Channel::ALL {
            assert!(ProviderKind::Sandbox.serves(c));
        }
    }

    #[test]
    fn secrets_never_show_in_debug_and_are_masked() {
        let s = SecretText::new("EAAGsupersecretvalue1234");
        assert!(!format!("{s:?}").contains("supersecret"));
        assert_eq!(s.masked(), "****1234");
        assert_eq!(SecretText::new("short").masked(), "****");
    }

    #[test]
    fn a_patch_overlays_the_stored_config() {
        let stored = whatsapp_input().validate().unwrap();
        let patched = ProviderInput::from_config(&stored)
            .overlay(ProviderInput {
                access_token: Some("new-token-value".into()),
                ..Default::default()
            })
            .validate()
            .unwrap();
        let ProviderConfig::WhatsappCloud(c) = patched else {
            panic!()
        };
        assert_eq!(c.access_token.expose(), "new-token-value");
        assert_eq!(c.phone_number_id, "106540352242922");
    }
}
