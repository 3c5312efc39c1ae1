//! What the API answers. Domain values are mapped here so that what clients see is deliberate:
//! credentials are masked, times are RFC 3339 UTC, ids are strings.

use serde::Serialize;
use serde_json::{Map, Value};
use switchboard_core::consent::{ConsentEvent, ConsentSource, ConsentStatus};
use switchboard_core::contact::Contact;
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Direction, Media, Message, MessageError, StatusEvent,
    TemplateRef,
};
use switchboard_core::policy::{Decision, RefusalCode, Verdict, WindowState};
use switchboard_core::sender::{ProviderConfig, ProviderKind, Sender, SenderHealth};
use switchboard_core::template::{
    MessageTag, Template, TemplateButton, TemplateCategory, TemplateHeader, TemplateStatus,
    TemplateTransition,
};
use switchboard_core::user::{ApiToken, User};
use switchboard_core::{
    Channel, ConsentEventId, ContactId, ConversationId, MessageId, Permission, Role, SenderId,
    TemplateId, TokenId, UserId,
};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::extract::encode_cursor;

/// One page of a list.
#[derive(Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> ListResponse<T> {
    pub fn from_page<U>(page: switchboard_store::Page<U>, view: impl FnMut(U) -> T) -> Self {
        ListResponse {
            items: page.items.into_iter().map(view).collect(),
            next_cursor: encode_cursor(page.next_after),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UserView {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub default_sender_id: Option<SenderId>,
    /// Admins may use every sender, so theirs lists all.
    pub permitted_sender_ids: Vec<SenderId>,
    /// Whether the user can sign in to the web inbox with a password.
    pub has_password: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role,
            default_sender_id: u.default_sender_id,
            permitted_sender_ids: u.permitted_sender_ids,
            has_password: u.password_hash.is_some(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenView {
    pub id: TokenId,
    pub name: String,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub role: Role,
    pub scopes: Option<Vec<Permission>>,
    pub user_id: Option<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            prefix: t.prefix,
            role: t.role,
            scopes: t.scopes,
            user_id: t.user_id,
            created_at: t.created_at,
            last_used_at: t.last_used_at,
            expires_at: t.expires_at,
        }
    }
}

/// A token just created: the only answer that carries its secret.
#[derive(Serialize, ToSchema)]
pub struct CreatedTokenView {
    #[serde(flatten)]
    pub details: TokenView,
    /// The secret. Store it now: it is never shown again.
    pub token: String,
}

/// A sender's provider with its credentials masked (`****1234`).
#[derive(Serialize, ToSchema)]
pub struct ProviderView {
    pub kind: ProviderKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messaging_service_sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify_token: Option<String>,
}

impl From<&ProviderConfig> for ProviderView {
    fn from(p: &ProviderConfig) -> Self {
        let mut v = ProviderView {
            kind: p.kind(),
            phone_number_id: None,
            waba_id: None,
            display_phone_number: None,
            page_id: None,
            account_sid: None,
            from: None,
            messaging_service_sid: None,
            api_base_url: None,
            access_token: None,
            page_access_token: None,
            auth_token: None,
            app_secret: None,
            verify_token: None,
        };
        match p {
            ProviderConfig::WhatsappCloud(c) => {
                v.phone_number_id = Some(c.phone_number_id.clone());
                v.waba_id = Some(c.waba_id.clone());
                v.display_phone_number = c.display_phone_number.clone();
                v.api_base_url = Some(c.api_base_url.clone());
                v.access_token = Some(c.access_token.masked());
                v.app_secret = Some(c.app_secret.masked());
                v.verify_token = Some(c.verify_token.masked());
            }
            ProviderConfig::Messenger(c) => {
                v.page_id = Some(c.page_id.clone());
                v.api_base_url = Some(c.api_base_url.clone());
                v.page_access_token = Some(c.page_access_token.masked());
                v.app_secret = Some(c.app_secret.masked());
                v.verify_token = Some(c.verify_token.masked());
            }
            ProviderConfig::Twilio(c) => {
                v.account_sid = Some(c.account_sid.clone());
                v.from = c.from.clone();
                v.messaging_service_sid = c.messaging_service_sid.clone();
                v.api_base_url = Some(c.api_base_url.clone());
                v.auth_token = Some(c.auth_token.masked());
            }
            ProviderConfig::Sandbox => {}
        }
        v
    }
}

#[derive(Serialize, ToSchema)]
pub struct SenderView {
    pub id: SenderId,
    pub channel: Channel,
    pub name: String,
    pub use_case: Option<String>,
    pub provider: ProviderView,
    /// Number health (R8.4) and credential state (R8.5).
    pub health: SenderHealth,
    /// Messages per second the dispatcher sends through this sender.
    pub rate_limit_per_second: u32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Sender> for SenderView {
    fn from(s: Sender) -> Self {
        let rate_limit_per_second = s.rate_limit();
        SenderView {
            id: s.id,
            channel: s.channel,
            name: s.name,
            use_case: s.use_case,
            provider: ProviderView::from(&s.provider),
            rate_limit_per_second,
            health: s.health,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ContactView {
    pub id: ContactId,
    pub name: Option<String>,
    /// E.164.
    pub phone: Option<String>,
    /// WhatsApp business-scoped user id (BSUID).
    pub whatsapp_user_id: Option<String>,
    pub messenger_psid: Option<String>,
    pub locale: Option<String>,
    pub owner_id: Option<UserId>,
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        ContactView {
            id: c.id,
            name: c.name,
            phone: c.phone.map(|p| p.as_str().to_owned()),
            whatsapp_user_id: c.whatsapp_user_id.map(|u| u.as_str().to_owned()),
            messenger_psid: c.messenger_psid.map(|p| p.as_str().to_owned()),
            locale: c.locale.map(|l| l.as_str().to_owned()),
            owner_id: c.owner_id,
            fields: c.fields,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessageView {
    pub id: MessageId,
    pub direction: Direction,
    pub channel: Channel,
    pub sender_id: SenderId,
    pub contact_id: ContactId,
    pub conversation_id: Option<ConversationId>,
    pub text: Option<String>,
    pub template: Option<TemplateRef>,
    pub media: Option<Media>,
    pub channel_template_type: ChannelTemplateType,
    pub status: DeliveryStatus,
    /// Every status the message has had, oldest first.
    pub status_history: Vec<StatusEvent>,
    pub provider_message_id: Option<String>,
    pub error: Option<MessageError>,
    /// The Messenger tag it was sent with.
    pub tag: Option<MessageTag>,
    /// Sent outside a window the customer opened (counts against the messaging limit).
    pub business_initiated: bool,
    /// Data-loss prevention rewrote its text before sending.
    pub redacted: bool,
    /// For a scheduled message: when it will be sent.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub send_at: Option<OffsetDateTime>,
    /// When the customer sent it, by the provider's clock (inbound messages).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub provider_timestamp: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        MessageView {
            id: m.id,
            direction: m.direction,
            channel: m.channel,
            sender_id: m.sender_id,
            contact_id: m.contact_id,
            conversation_id: m.conversation_id,
            text: m.text,
            template: m.template,
            media: m.media,
            channel_template_type: m.channel_template_type,
            status: m.status,
            status_history: m.status_history,
            provider_message_id: m.provider_message_id,
            error: m.error,
            tag: m.tag,
            business_initiated: m.business_initiated,
            redacted: m.redacted,
            send_at: m.send_at,
            provider_timestamp: m.provider_timestamp,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TemplateView {
    pub id: TemplateId,
    pub sender_id: SenderId,
    pub name: String,
    pub locale: String,
    pub category: Option<TemplateCategory>,
    pub header: Option<TemplateHeader>,
    pub body: String,
    pub footer: Option<String>,
    pub buttons: Vec<TemplateButton>,
    /// Every variable the template uses, in order.
    pub variables: Vec<String>,
    pub variable_mapping: std::collections::BTreeMap<String, String>,
    /// The Messenger message tag (message-tag templates).
    pub tag: Option<MessageTag>,
    pub status: TemplateStatus,
    pub status_reason: Option<String>,
    /// The sender's one-click template for an expired window (R3.7).
    pub recontact: bool,
    /// Meta's id for the template, once it has been submitted.
    pub provider_template_id: Option<String>,
    /// Every status change, oldest first (only on single-template reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transitions: Option<Vec<TemplateTransition>>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<Template> for TemplateView {
    fn from(t: Template) -> Self {
        TemplateView {
            id: t.id,
            sender_id: t.sender_id,
            variables: t.content.variables(),
            name: t.content.name,
            locale: t.content.locale.as_str().to_owned(),
            category: t.content.category,
            header: t.content.header,
            body: t.content.body,
            footer: t.content.footer,
            buttons: t.content.buttons,
            variable_mapping: t.content.variable_mapping,
            tag: t.content.tag,
            status: t.status,
            status_reason: t.status_reason,
            recontact: t.recontact,
            provider_template_id: t.provider_template_id,
            transitions: None,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConsentEventView {
    pub id: ConsentEventId,
    pub channel: Channel,
    pub status: ConsentStatus,
    pub source: ConsentSource,
    pub evidence: Option<String>,
    /// Who recorded it: `user:<id>`, `token:<id>` or `system`.
    pub actor: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl From<ConsentEvent> for ConsentEventView {
    fn from(e: ConsentEvent) -> Self {
        ConsentEventView {
            id: e.id,
            channel: e.channel,
            status: e.status,
            source: e.source,
            evidence: e.evidence,
            actor: e.actor,
            at: e.at,
        }
    }
}

/// A contact's consent: where they stand on each channel, and the ledger behind it.
#[derive(Serialize, ToSchema)]
pub struct ConsentLedgerView {
    #[schema(value_type = Object)]
    pub current: std::collections::BTreeMap<&'static str, ConsentStatus>,
    pub events: Vec<ConsentEventView>,
}

/// What the policy decides for a send, without sending (R2.6).
#[derive(Serialize, ToSchema)]
pub struct PolicyCheckView {
    pub allowed: bool,
    /// The refusal code, when refused.
    pub code: Option<RefusalCode>,
    /// Why, in a sentence.
    pub reason: Option<String>,
    /// How the message would be sent, when allowed.
    pub kind: Option<ChannelTemplateType>,
    /// Sent outside a window the customer opened (counts against the messaging limit).
    pub business_initiated: Option<bool>,
    /// The text that would reach the provider after data-loss prevention.
    pub text: Option<String>,
    pub redacted: Option<bool>,
    /// The template version chosen, with its variables filled and its body rendered.
    #[schema(value_type = Option<Object>)]
    pub template: Option<serde_json::Value>,
    pub window: WindowState,
    pub allowed_kinds: Vec<ChannelTemplateType>,
    pub allowed_templates: Vec<String>,
}

impl From<Decision> for PolicyCheckView {
    fn from(d: Decision) -> Self {
        let mut view = PolicyCheckView {
            allowed: d.is_allowed(),
            code: None,
            reason: None,
            kind: None,
            business_initiated: None,
            text: None,
            redacted: None,
            template: None,
            window: d.window,
            allowed_kinds: d.allowed_kinds,
            allowed_templates: d.allowed_templates,
        };
        match d.verdict {
            Verdict::Allow(a) => {
                view.kind = Some(a.kind);
                view.business_initiated = Some(a.business_initiated);
                view.text = a.text;
                view.redacted = Some(a.redacted);
                view.template = a.template.and_then(|t| serde_json::to_value(t).ok());
            }
            Verdict::Refuse { code, reason } => {
                view.code = Some(code);
                view.reason = Some(reason);
            }
        }
        view
    }
}
