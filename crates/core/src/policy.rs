//! The policy engine: the one place where a send is allowed or refused.
//!
//! [`evaluate`] is a pure function of the request, the facts the caller loaded, and the time.
//! Every send path calls it (an agent in the inbox, the API, campaigns, automations), and the
//! same answer tells the composer what is allowed now. Rules are checked in a fixed order and
//! the first refusal wins, so a decision is reproducible and explainable from its inputs.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use time::{Duration, OffsetDateTime};

use crate::address::{MessengerPsid, PhoneNumber, WhatsappUserId};
use crate::channel::Channel;
use crate::consent::ConsentStatus;
use crate::contact::{Contact, Locale};
use crate::dlp::{DlpRuleSet, ScanDirection};
use crate::ids::{ContactId, SenderId, TemplateId};
use crate::message::{ChannelTemplateType, MediaKind};
use crate::sender::{HealthStatus, TokenStatus};
use crate::template::{looks_promotional, MessageTag, Template};

/// The customer-service window (R2.1).
pub const SERVICE_WINDOW: Duration = Duration::hours(24);
/// Messenger's HUMAN_AGENT tag lets a person answer for this long (R2.1).
pub const HUMAN_AGENT_WINDOW: Duration = Duration::days(7);

/// Why a send is refused. The wire names are the stable codes of API.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum RefusalCode {
    WindowClosed,
    TemplateRequired,
    TemplateNotFound,
    TemplateNotApproved,
    TemplateVariablesMissing,
    UnknownRecipient,
    ConsentRequired,
    OptedOut,
    ChannelMismatch,
    InvalidAddress,
    SenderNotPermitted,
    TagNotAllowed,
    BulkNotAllowed,
    OutsideBusinessHours,
    MessagingLimitReached,
    MediaTooLarge,
    DlpBlocked,
    SenderUnavailable,
}

impl RefusalCode {
    pub const ALL: [RefusalCode; 18] = [
        RefusalCode::WindowClosed,
        RefusalCode::TemplateRequired,
        RefusalCode::TemplateNotFound,
        RefusalCode::TemplateNotApproved,
        RefusalCode::TemplateVariablesMissing,
        RefusalCode::UnknownRecipient,
        RefusalCode::ConsentRequired,
        RefusalCode::OptedOut,
        RefusalCode::ChannelMismatch,
        RefusalCode::InvalidAddress,
        RefusalCode::SenderNotPermitted,
        RefusalCode::TagNotAllowed,
        RefusalCode::BulkNotAllowed,
        RefusalCode::OutsideBusinessHours,
        RefusalCode::MessagingLimitReached,
        RefusalCode::MediaTooLarge,
        RefusalCode::DlpBlocked,
        RefusalCode::SenderUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::WindowClosed => "window_closed",
            RefusalCode::TemplateRequired => "template_required",
            RefusalCode::TemplateNotFound => "template_not_found",
            RefusalCode::TemplateNotApproved => "template_not_approved",
            RefusalCode::TemplateVariablesMissing => "template_variables_missing",
            RefusalCode::UnknownRecipient => "unknown_recipient",
            RefusalCode::ConsentRequired => "consent_required",
            RefusalCode::OptedOut => "opted_out",
            RefusalCode::ChannelMismatch => "channel_mismatch",
            RefusalCode::InvalidAddress => "invalid_address",
            RefusalCode::SenderNotPermitted => "sender_not_permitted",
            RefusalCode::TagNotAllowed => "tag_not_allowed",
            RefusalCode::BulkNotAllowed => "bulk_not_allowed",
            RefusalCode::OutsideBusinessHours => "outside_business_hours",
            RefusalCode::MessagingLimitReached => "messaging_limit_reached",
            RefusalCode::MediaTooLarge => "media_too_large",
            RefusalCode::DlpBlocked => "dlp_blocked",
            RefusalCode::SenderUnavailable => "sender_unavailable",
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a message carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    Text(String),
    Media {
        kind: MediaKind,
        size_bytes: Option<i64>,
        caption: Option<String>,
    },
    Template {
        name: String,
        /// A locale asked for explicitly; otherwise the contact's is used (R3.5).
        locale: Option<Locale>,
        variables: Map<String, Value>,
    },
}

/// The kinds of automation flow (R7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// May answer with free text or any template allowed at the time.
    AutoReply,
    /// Approved templates only.
    Automation,
    /// Approved templates only.
    Notification,
}

/// Messages Switchboard sends on its own behalf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemPurpose {
    /// The one message an opted-out contact may still receive (R4.2).
    OptOutConfirmation,
    /// The answer to an opt-in request's reply (R4.3b, c).
    OptInConfirmation,
}

/// Who is sending.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Origin {
    /// A person: an agent in the inbox, or a token acting for a user.
    Agent,
    /// An integration through a service token.
    Api,
    /// One recipient of a bulk campaign.
    Campaign,
    Flow(FlowKind),
    System(SystemPurpose),
}

impl Origin {
    fn is_human(self) -> bool {
        self == Origin::Agent
    }

    fn is_bulk(self) -> bool {
        self == Origin::Campaign
    }

    /// Automated sends that business hours hold back (R7.4).
    fn is_automated(self) -> bool {
        matches!(
            self,
            Origin::Campaign | Origin::Flow(FlowKind::Automation | FlowKind::Notification)
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SendRequest {
    pub content: Content,
    /// A Messenger message tag for sends outside the standard window.
    pub tag: Option<MessageTag>,
    pub origin: Origin,
}

/// What the policy needs to know of the sender.
#[derive(Clone, Debug, PartialEq)]
pub struct SenderFacts {
    pub id: SenderId,
    pub channel: Channel,
    pub health: HealthStatus,
    pub token_status: TokenStatus,
    /// Unique users reachable with business-initiated messages in a rolling 24 h (R8.4);
    /// `None` is unlimited or unknown.
    pub messaging_limit: Option<i64>,
    /// Unique users this sender reached with business-initiated messages in the last 24 h.
    pub business_initiated_recipients_24h: i64,
    /// Whether this recipient is already among them (reaching them again costs nothing).
    pub recipient_reached_24h: bool,
    pub media_limit_bytes: i64,
}

/// Who the message is for.
#[derive(Clone, Debug, PartialEq)]
pub enum Recipient<'a> {
    /// A contact on record.
    Known(&'a Contact),
    /// An address with no contact on record (`to` in the API).
    Unknown(&'a str),
}

/// Whether the account's business hours are open now (R7.4); computed by the caller from the
/// account's schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoursState {
    pub open: bool,
    pub opens_at: Option<OffsetDateTime>,
}

/// The facts a decision depends on, loaded by the caller.
#[derive(Clone, Debug)]
pub struct PolicyContext<'a> {
    pub sender: SenderFacts,
    /// Whether the acting user may use this sender (R1.3); always true for services.
    pub sender_permitted: bool,
    pub recipient: Recipient<'a>,
    /// When the customer last wrote to this sender, by the provider's timestamp.
    pub last_inbound_at: Option<OffsetDateTime>,
    /// The contact's consent on this channel.
    pub consent: ConsentStatus,
    /// This sender's templates, every status and locale.
    pub templates: &'a [Template],
    pub dlp: &'a DlpRuleSet,
    /// `None` when the account keeps no business hours.
    pub hours: Option<HoursState>,
}

/// The customer-service window of a (contact, sender) pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WindowState {
    /// Whether free-form messages may be sent now. Always true on SMS, which has no window.
    pub open: bool,
    /// When the standard window closes (or closed); `null` with no inbound message, and on SMS.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub closes_at: Option<OffsetDateTime>,
    /// Messenger: until when a person may still answer with the HUMAN_AGENT tag.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub human_agent_until: Option<OffsetDateTime>,
}

/// A template chosen for the send, with its variables filled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResolvedTemplate {
    pub id: TemplateId,
    pub name: String,
    pub locale: String,
    pub variables: BTreeMap<String, String>,
    /// The body as the customer will read it.
    pub rendered: String,
    pub tag: Option<MessageTag>,
}

/// What is sent when the decision allows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Allowed {
    pub kind: ChannelTemplateType,
    /// The text (or caption) to hand the provider, after redaction.
    pub text: Option<String>,
    /// Whether data-loss prevention rewrote the text.
    pub redacted: bool,
    pub template: Option<ResolvedTemplate>,
    /// The Messenger tag to send with, if any.
    pub tag: Option<MessageTag>,
    /// Sent outside a window the customer opened: counts against the messaging limit.
    pub business_initiated: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Verdict {
    Allow(Allowed),
    Refuse { code: RefusalCode, reason: String },
}

/// A decision with everything needed to explain it (R2.6).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub window: WindowState,
    /// What could be sent to this recipient now: `session`, `template`, `message_tag`.
    pub allowed_kinds: Vec<ChannelTemplateType>,
    /// The templates that could be sent to this recipient now.
    pub allowed_templates: Vec<String>,
    /// The contact the decision was about, if known.
    pub contact_id: Option<ContactId>,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self.verdict, Verdict::Allow(_))
    }

    pub fn refusal(&self) -> Option<(RefusalCode, &str)> {
        match &self.verdict {
            Verdict::Refuse { code, reason } => Some((*code, reason.as_str())),
            Verdict::Allow(_) => None,
        }
    }
}

/// Decides a send. Pure: the same request, context and time always give the same decision.
pub fn evaluate(request: &SendRequest, ctx: &PolicyContext<'_>, now: OffsetDateTime) -> Decision {
    let window = window_state(ctx.sender.channel, ctx.last_inbound_at, now);
    let contact = match ctx.recipient {
        Recipient::Known(c) => Some(c),
        Recipient::Unknown(_) => None,
    };
    let verdict = match decide(request, ctx, &window, now) {
        Ok(allowed) => Verdict::Allow(allowed),
        Err(Refusal(code, reason)) => Verdict::Refuse { code, reason },
    };
    let (allowed_kinds, allowed_templates) = what_is_allowed(ctx, &window);
    Decision {
        verdict,
        window,
        allowed_kinds,
        allowed_templates,
        contact_id: contact.map(|c| c.id),
    }
}

/// The window of a pair from the customer's last message. Open means strictly before
/// `last + 24 h`: at the exact instant it closes, free text is no longer allowed.
pub fn window_state(
    channel: Channel,
    last_inbound_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> WindowState {
    if channel == Channel::Sms {
        return WindowState {
            open: true,
            closes_at: None,
            human_agent_until: None,
        };
    }
    // Saturating: an absurd timestamp (year 9999) must not panic the send path.
    let closes_at = last_inbound_at.map(|t| t.saturating_add(SERVICE_WINDOW));
    WindowState {
        open: closes_at.is_some_and(|c| now < c),
        closes_at,
        human_agent_until: (channel == Channel::Messenger)
            .then(|| last_inbound_at.map(|t| t.saturating_add(HUMAN_AGENT_WINDOW)))
            .flatten(),
    }
}

struct Refusal(RefusalCode, String);

fn refuse<T>(code: RefusalCode, reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(code, reason.into()))
}

fn decide(
    request: &SendRequest,
    ctx: &PolicyContext<'_>,
    window: &WindowState,
    now: OffsetDateTime,
) -> Result<Allowed, Refusal> {
    let channel = ctx.sender.channel;
    let origin = request.origin;

    // Who may send from where.
    if !ctx.sender_permitted {
        return refuse(
            RefusalCode::SenderNotPermitted,
            "you are not permitted to use this sender; ask an admin to assign it to you",
        );
    }
    check_sender_available(&ctx.sender)?;
    check_address(channel, &ctx.recipient)?;
    if origin.is_bulk() && channel == Channel::Messenger {
        return refuse(
            RefusalCode::BulkNotAllowed,
            "Messenger does not allow bulk sends: its messages must be one-to-one replies or \
             personally relevant tagged updates",
        );
    }

    // Consent (R4.2): an opted-out contact gets nothing but the confirmation of opting out.
    if ctx.consent == ConsentStatus::OptedOut
        && origin != Origin::System(SystemPurpose::OptOutConfirmation)
        && origin != Origin::System(SystemPurpose::OptInConfirmation)
    {
        return refuse(
            RefusalCode::OptedOut,
            format!(
                "the contact opted out of {channel} messages; they must opt in again (for \
                 example by replying START or YES) before anything else is sent"
            ),
        );
    }

    // R7.2 and R6.2: automations, notifications and campaigns send approved templates only.
    let is_template = matches!(request.content, Content::Template { .. });
    if !is_template
        && matches!(
            origin,
            Origin::Campaign | Origin::Flow(FlowKind::Automation | FlowKind::Notification)
        )
    {
        return refuse(
            RefusalCode::TemplateRequired,
            "automations, notifications and campaigns may only send approved templates",
        );
    }

    if let Content::Media {
        size_bytes: Some(size),
        ..
    } = request.content
    {
        if size > ctx.sender.media_limit_bytes {
            return refuse(
                RefusalCode::MediaTooLarge,
                format!(
                    "the file is {size} bytes; this sender accepts at most {} bytes",
                    ctx.sender.media_limit_bytes
                ),
            );
        }
    }

    let template = match &request.content {
        Content::Template {
            name,
            locale,
            variables,
        } => Some(resolve_template(ctx, name, locale.as_ref(), variables)?),
        _ => None,
    };
    let tag = check_tag(request, ctx, window, template.as_ref(), now)?;

    // R6.7 and R4.4: campaigns, automations and notifications go only to contacts who opted
    // in, on every channel and even inside a window a support conversation opened.
    let needs_opt_in = origin.is_bulk()
        || matches!(
            origin,
            Origin::Flow(FlowKind::Automation | FlowKind::Notification)
        );
    if needs_opt_in && ctx.consent != ConsentStatus::OptedIn {
        return refuse(
            RefusalCode::ConsentRequired,
            format!(
                "campaigns, automations and notifications on {channel} go only to contacts with \
                 a recorded opt-in; a support conversation is not consent"
            ),
        );
    }
    let (kind, business_initiated) = match channel {
        Channel::Sms => {
            let kind = if template.is_some() {
                ChannelTemplateType::Template
            } else {
                ChannelTemplateType::Session
            };
            (kind, false)
        }
        Channel::Whatsapp => whatsapp_kind(ctx, window, template.is_some())?,
        Channel::Messenger => messenger_kind(ctx, window, tag)?,
    };
    // Messaging-limit tiers and restriction are WhatsApp's (R8.4); a Messenger tag is
    // business-initiated too but bounded by its use case, not by a tier.
    if business_initiated && channel == Channel::Whatsapp {
        check_messaging_limit(&ctx.sender)?;
    }

    if origin.is_automated() && channel != Channel::Messenger {
        if let Some(hours) = ctx.hours.filter(|h| !h.open) {
            let when = hours
                .opens_at
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .map(|t| format!("; they open at {t}: schedule it then with `send_at`"))
                .unwrap_or_default();
            return refuse(
                RefusalCode::OutsideBusinessHours,
                format!("automated messages wait for business hours{when}"),
            );
        }
    }

    let (text, redacted, template) = apply_dlp(request, ctx.dlp, ctx.templates, template)?;
    Ok(Allowed {
        kind,
        text,
        redacted,
        template,
        tag: (kind == ChannelTemplateType::MessageTag)
            .then_some(tag)
            .flatten(),
        business_initiated,
    })
}

fn check_sender_available(sender: &SenderFacts) -> Result<(), Refusal> {
    match sender.token_status {
        TokenStatus::Expired => {
            return refuse(
                RefusalCode::SenderUnavailable,
                "the sender's access token has expired; an admin must renew it",
            )
        }
        TokenStatus::Invalid => {
            return refuse(
                RefusalCode::SenderUnavailable,
                "the provider rejected the sender's credentials; an admin must correct them",
            )
        }
        TokenStatus::Unknown | TokenStatus::Valid => {}
    }
    if sender.health == HealthStatus::Offline {
        return refuse(
            RefusalCode::SenderUnavailable,
            "the sender is offline at the provider",
        );
    }
    Ok(())
}

/// The recipient must have an address of the sender's channel (R1.4), and a written address
/// must be well formed for it.
fn check_address(channel: Channel, recipient: &Recipient<'_>) -> Result<(), Refusal> {
    match recipient {
        Recipient::Known(contact) => {
            let has = match channel {
                Channel::Whatsapp => contact.phone.is_some() || contact.whatsapp_user_id.is_some(),
                Channel::Sms => contact.phone.is_some(),
                Channel::Messenger => contact.messenger_psid.is_some(),
            };
            if has {
                Ok(())
            } else {
                let needed = match channel {
                    Channel::Whatsapp => "a phone number or WhatsApp user id",
                    Channel::Sms => "a phone number",
                    Channel::Messenger => "a Messenger id",
                };
                refuse(
                    RefusalCode::ChannelMismatch,
                    format!("the contact has no {needed}, so it cannot be reached on {channel}"),
                )
            }
        }
        Recipient::Unknown(to) => {
            let to = to.trim();
            let phone = PhoneNumber::parse("to", to);
            let bsuid = WhatsappUserId::parse("to", to);
            let psid = MessengerPsid::parse("to", to);
            let fits = match channel {
                Channel::Whatsapp => phone.is_ok() || bsuid.is_ok(),
                Channel::Sms => phone.is_ok(),
                Channel::Messenger => psid.is_ok(),
            };
            if fits {
                return Ok(());
            }
            // A valid address of another channel is a mismatch; anything else is malformed.
            // Bare digits look like a Messenger id but on a phone channel they are far more
            // likely a number missing its country prefix, so they count as malformed there.
            let other_channel = match channel {
                Channel::Whatsapp => None,
                Channel::Sms => bsuid.is_ok().then_some("a WhatsApp user id"),
                Channel::Messenger => phone
                    .is_ok()
                    .then_some("a phone number")
                    .or(bsuid.is_ok().then_some("a WhatsApp user id")),
            };
            match other_channel {
                Some(what) => refuse(
                    RefusalCode::ChannelMismatch,
                    format!("`to` is {what}, which cannot be reached on {channel}"),
                ),
                None => refuse(
                    RefusalCode::InvalidAddress,
                    match channel {
                        Channel::Messenger => {
                            "`to` must be a Messenger page-scoped id (digits)".to_owned()
                        }
                        Channel::Whatsapp => "`to` must be an E.164 phone number with its \
                                              country prefix, or a WhatsApp user id"
                            .to_owned(),
                        Channel::Sms => {
                            "`to` must be an E.164 phone number with its country prefix".to_owned()
                        }
                    },
                ),
            }
        }
    }
}

/// Whether `to` is an address of `channel`'s kind (a phone for SMS, a PSID for Messenger...).
pub fn address_fits(channel: Channel, to: &str) -> bool {
    check_address(channel, &Recipient::Unknown(to)).is_ok()
}

/// The locales to try for a template, best first (R3.5): the one asked for, else the
/// contact's; then its language alone (`en` for `en_GB`); then other regions of the same
/// language in alphabetical order. With no locale to go by, every locale in alphabetical order.
fn locale_preference<'t>(templates: &[&'t Template], wanted: Option<&Locale>) -> Vec<&'t Template> {
    let mut ordered: Vec<&Template> = templates.to_vec();
    ordered.sort_by(|a, b| a.content.locale.as_str().cmp(b.content.locale.as_str()));
    let Some(wanted) = wanted else {
        return ordered;
    };
    let rank = |t: &Template| -> Option<u8> {
        let l = &t.content.locale;
        if l == wanted {
            Some(0)
        } else if l.as_str() == wanted.language() {
            Some(1)
        } else if l.language() == wanted.language() {
            Some(2)
        } else {
            None
        }
    };
    let mut ranked: Vec<(u8, &Template)> = ordered
        .into_iter()
        .filter_map(|t| rank(t).map(|r| (r, t)))
        .collect();
    ranked.sort_by_key(|(r, _)| *r);
    ranked.into_iter().map(|(_, t)| t).collect()
}

fn contact_locale<'a>(ctx: &'a PolicyContext<'_>) -> Option<&'a Locale> {
    match ctx.recipient {
        Recipient::Known(c) => c.locale.as_ref(),
        Recipient::Unknown(_) => None,
    }
}

fn resolve_template(
    ctx: &PolicyContext<'_>,
    name: &str,
    locale: Option<&Locale>,
    supplied: &Map<String, Value>,
) -> Result<ResolvedTemplate, Refusal> {
    let named: Vec<&Template> = ctx
        .templates
        .iter()
        .filter(|t| t.content.name == name)
        .collect();
    if named.is_empty() {
        return refuse(
            RefusalCode::TemplateNotFound,
            format!("this sender has no template named `{name}`"),
        );
    }
    let wanted = locale.or_else(|| contact_locale(ctx));
    let candidates = locale_preference(&named, wanted);
    let Some(best) = candidates.first() else {
        let wanted = wanted.map(Locale::as_str).unwrap_or_default();
        let have: Vec<&str> = named.iter().map(|t| t.content.locale.as_str()).collect();
        return refuse(
            RefusalCode::TemplateNotFound,
            format!(
                "template `{name}` has no version in {wanted} or its language (it has {})",
                have.join(", ")
            ),
        );
    };
    // Send the best approved version in the contact's language (en_GB pending but en_US
    // approved sends en_US, rather than nothing); report the best one's status when no
    // version in that language is sendable.
    let chosen = candidates
        .iter()
        .find(|t| t.status.is_sendable())
        .copied()
        .unwrap_or(best);
    if !chosen.status.is_sendable() {
        let reason = chosen
            .status_reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        return refuse(
            RefusalCode::TemplateNotApproved,
            format!(
                "template `{name}` ({}) is {}{reason}; only approved templates can be sent",
                chosen.content.locale.as_str(),
                chosen.status.as_str()
            ),
        );
    }
    let placeholder;
    let contact = match ctx.recipient {
        Recipient::Known(c) => c,
        Recipient::Unknown(_) => {
            placeholder = Contact::unsaved();
            &placeholder
        }
    };
    let values = chosen
        .content
        .resolve_variables(supplied, contact)
        .or_else(|missing| {
            refuse(
                RefusalCode::TemplateVariablesMissing,
                format!(
                    "template `{name}` needs a value for {{{{{}}}}}: supply it in `variables` \
                     or map it to a contact field",
                    missing.join("}}, {{")
                ),
            )
        })?;
    Ok(ResolvedTemplate {
        id: chosen.id,
        name: chosen.content.name.clone(),
        locale: chosen.content.locale.as_str().to_owned(),
        rendered: chosen.content.render(&values),
        variables: values,
        tag: chosen.content.tag,
    })
}

/// Messenger tags (R2.1, R3.6): only on Messenger, HUMAN_AGENT only for people and only within
/// 7 days, never on promotional content. Returns the tag that applies to the send.
fn check_tag(
    request: &SendRequest,
    ctx: &PolicyContext<'_>,
    window: &WindowState,
    template: Option<&ResolvedTemplate>,
    now: OffsetDateTime,
) -> Result<Option<MessageTag>, Refusal> {
    let tag = request.tag.or(template.and_then(|t| t.tag));
    let Some(tag) = tag else {
        return Ok(None);
    };
    if ctx.sender.channel != Channel::Messenger {
        return refuse(
            RefusalCode::TagNotAllowed,
            format!(
                "message tags exist only on Messenger, not on {}",
                ctx.sender.channel
            ),
        );
    }
    if tag == MessageTag::HumanAgent {
        if !request.origin.is_human() {
            return refuse(
                RefusalCode::TagNotAllowed,
                "HUMAN_AGENT is for a person's own reply; automations and integrations may not \
                 use it",
            );
        }
        if window.human_agent_until.is_none_or(|until| now >= until) {
            return refuse(
                RefusalCode::TagNotAllowed,
                "HUMAN_AGENT allows a reply up to 7 days after the customer's last message, and \
                 that time has passed",
            );
        }
    }
    let promotional = match (&request.content, template) {
        (_, Some(t)) => {
            let chosen = ctx.templates.iter().find(|c| c.id == t.id);
            chosen.is_some_and(|c| c.content.is_promotional()) || looks_promotional(&t.rendered)
        }
        (Content::Text(text), None) => looks_promotional(text),
        (
            Content::Media {
                caption: Some(caption),
                ..
            },
            None,
        ) => looks_promotional(caption),
        _ => false,
    };
    if promotional {
        return refuse(
            RefusalCode::TagNotAllowed,
            "message tags are for personally relevant updates; promotional content cannot be \
             sent under a tag",
        );
    }
    Ok(Some(tag))
}

/// WhatsApp: anything inside the window; outside it only approved templates, and a business
/// may start a conversation only with a known contact who opted in (R2.2–R2.4, R4.4).
fn whatsapp_kind(
    ctx: &PolicyContext<'_>,
    window: &WindowState,
    is_template: bool,
) -> Result<(ChannelTemplateType, bool), Refusal> {
    let kind = if is_template {
        ChannelTemplateType::Template
    } else {
        ChannelTemplateType::Session
    };
    if window.open {
        return Ok((kind, false));
    }
    let known = matches!(ctx.recipient, Recipient::Known(_));
    if !known {
        return refuse(
            RefusalCode::UnknownRecipient,
            "a business may not start a WhatsApp conversation with an unknown recipient: reply \
             to a message they sent, or add them as a contact with a recorded opt-in",
        );
    }
    if !is_template {
        return refuse(
            RefusalCode::WindowClosed,
            window_closed_reason(window, "send an approved template instead"),
        );
    }
    if ctx.consent != ConsentStatus::OptedIn {
        let why = if ctx.last_inbound_at.is_some() {
            "a support conversation is not consent to be contacted (R4.4): "
        } else {
            ""
        };
        return refuse(
            RefusalCode::ConsentRequired,
            format!(
                "{why}a template outside the 24-hour window needs the contact's recorded \
                 opt-in; send an opt-in request first"
            ),
        );
    }
    Ok((kind, true))
}

/// Messenger: anything inside the standard window; outside it only tagged messages (R2.3).
fn messenger_kind(
    ctx: &PolicyContext<'_>,
    window: &WindowState,
    tag: Option<MessageTag>,
) -> Result<(ChannelTemplateType, bool), Refusal> {
    if window.open {
        return Ok((ChannelTemplateType::Session, false));
    }
    if ctx.last_inbound_at.is_none() {
        return refuse(
            RefusalCode::UnknownRecipient,
            "a Page may message a person only after they have written to it",
        );
    }
    if tag.is_some() {
        return Ok((ChannelTemplateType::MessageTag, true));
    }
    refuse(
        RefusalCode::WindowClosed,
        window_closed_reason(
            window,
            "send a message-tag template (a person may use HUMAN_AGENT for 7 days)",
        ),
    )
}

fn window_closed_reason(window: &WindowState, advice: &str) -> String {
    match window.closes_at.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    }) {
        Some(at) => format!("the 24-hour customer-service window closed at {at}; {advice}"),
        None => format!(
            "the customer has not written to this sender, so there is no open window; {advice}"
        ),
    }
}

/// R8.4: a restricted number sends no business-initiated messages; otherwise each new
/// recipient counts against the rolling 24-hour tier.
fn check_messaging_limit(sender: &SenderFacts) -> Result<(), Refusal> {
    if sender.health == HealthStatus::Restricted {
        return refuse(
            RefusalCode::MessagingLimitReached,
            "the number is restricted: it may answer customers but not start conversations \
             until its 24-hour limit resets",
        );
    }
    if let Some(limit) = sender.messaging_limit {
        if !sender.recipient_reached_24h && sender.business_initiated_recipients_24h >= limit {
            return refuse(
                RefusalCode::MessagingLimitReached,
                format!(
                    "the sender has reached its messaging limit of {limit} customers in 24 hours \
                     for business-initiated messages"
                ),
            );
        }
    }
    Ok(())
}

type DlpApplied = (Option<String>, bool, Option<ResolvedTemplate>);

/// R8.2: every outbound text is scanned; a block refuses, a redaction rewrites what is sent.
fn apply_dlp(
    request: &SendRequest,
    dlp: &DlpRuleSet,
    templates: &[Template],
    template: Option<ResolvedTemplate>,
) -> Result<DlpApplied, Refusal> {
    let scan = |text: &str| -> Result<(String, bool), Refusal> {
        let outcome = dlp.scan(text, ScanDirection::Outbound);
        if let Some(rule) = outcome.blocked_by {
            return refuse(
                RefusalCode::DlpBlocked,
                format!("the message contains data that rule `{rule}` does not allow to be sent"),
            );
        }
        match outcome.redacted {
            Some(redacted) => Ok((redacted, true)),
            None => Ok((text.to_owned(), false)),
        }
    };
    match (&request.content, template) {
        (Content::Text(text), _) => {
            let (text, redacted) = scan(text)?;
            Ok((Some(text), redacted, None))
        }
        (Content::Media { caption, .. }, _) => match caption {
            Some(caption) => {
                let (caption, redacted) = scan(caption)?;
                Ok((Some(caption), redacted, None))
            }
            None => Ok((None, false, None)),
        },
        (Content::Template { .. }, Some(mut template)) => {
            let mut any = false;
            for value in template.variables.values_mut() {
                let (clean, redacted) = scan(value)?;
                any |= redacted;
                *value = clean;
            }
            if any {
                // The rendering must show what is really sent.
                if let Some(stored) = templates.iter().find(|t| t.id == template.id) {
                    template.rendered = stored.content.render(&template.variables);
                }
            }
            Ok((None, any, Some(template)))
        }
        (Content::Template { .. }, None) => Ok((None, false, None)),
    }
}

/// What could be sent now, for the composer and `/policy/check` (R2.6, R5.5).
fn what_is_allowed(
    ctx: &PolicyContext<'_>,
    window: &WindowState,
) -> (Vec<ChannelTemplateType>, Vec<String>) {
    let blocked = !ctx.sender_permitted
        || check_sender_available(&ctx.sender).is_err()
        || check_address(ctx.sender.channel, &ctx.recipient).is_err()
        || ctx.consent == ConsentStatus::OptedOut;
    if blocked {
        return (Vec::new(), Vec::new());
    }
    let known = matches!(ctx.recipient, Recipient::Known(_));
    let kinds = match ctx.sender.channel {
        Channel::Sms => vec![ChannelTemplateType::Session, ChannelTemplateType::Template],
        Channel::Whatsapp if window.open => {
            vec![ChannelTemplateType::Session, ChannelTemplateType::Template]
        }
        Channel::Whatsapp => {
            let can_initiate = known
                && ctx.consent == ConsentStatus::OptedIn
                && check_messaging_limit(&ctx.sender).is_ok();
            if can_initiate {
                vec![ChannelTemplateType::Template]
            } else {
                Vec::new()
            }
        }
        Channel::Messenger if window.open => {
            vec![
                ChannelTemplateType::Session,
                ChannelTemplateType::MessageTag,
            ]
        }
        Channel::Messenger if ctx.last_inbound_at.is_some() => {
            vec![ChannelTemplateType::MessageTag]
        }
        Channel::Messenger => Vec::new(),
    };
    let templates_allowed = kinds.iter().any(|k| {
        matches!(
            k,
            ChannelTemplateType::Template | ChannelTemplateType::MessageTag
        )
    });
    let mut names: Vec<String> = Vec::new();
    if templates_allowed {
        let wanted = contact_locale(ctx);
        let mut by_name: BTreeMap<&str, Vec<&Template>> = BTreeMap::new();
        for t in ctx.templates {
            by_name.entry(t.content.name.as_str()).or_default().push(t);
        }
        for (name, versions) in by_name {
            let sendable = locale_preference(&versions, wanted)
                .iter()
                .any(|t| t.status.is_sendable());
            if sendable {
                names.push(name.to_owned());
            }
        }
    }
    (kinds, names)
}
