//! Sending (R2, R3, R4 enforced): every outbound message is decided by
//! `switchboard_core::policy::evaluate`, and only an allowed one is written, together with its
//! send job and the decision, in one transaction. `/policy/check` runs the same steps without
//! writing anything but the decision.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use switchboard_core::consent::{current_status, ConsentStatus};
use switchboard_core::contact::{Contact, Locale};
use switchboard_core::dlp::DlpRuleSet;
use switchboard_core::message::{
    DeliveryStatus, Direction, Media, MediaKind, Message, StatusEvent, TemplateRef,
};
use switchboard_core::policy::{
    evaluate, Content, Decision, FlowKind, Origin, PolicyContext, Recipient, SendRequest,
    SenderFacts, SystemPurpose, Verdict,
};
use switchboard_core::sender::Sender as SenderIdentity;
use switchboard_core::template::{MessageTag, Template};
use switchboard_core::validation::required_text;
use switchboard_core::{
    Channel, ContactId, ConversationId, FieldError, MessageId, MessengerPsid, Permission,
    PhoneNumber, Role, SenderId, ValidationErrors, WhatsappUserId,
};
use switchboard_store::decisions::DecisionRecord;
use switchboard_store::jobs::NewJob;
use switchboard_store::messages::{MessageFilter, OutboundRecord};
use switchboard_store::{PageRequest, StoreError};
use time::OffsetDateTime;

use crate::consent::actor_of;
use crate::idempotency::{earlier_result, lost_race, Created, IdempotencyRequest};
use crate::{AppError, AppState, Principal, Result};

/// The queue outbound sends wait in for the dispatcher.
pub const OUTBOUND_QUEUE: &str = "outbound";
pub const MAX_TEXT_CHARS: usize = 4096;

/// How to choose the sender when none is named (R1.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SenderMode {
    /// Reply where the customer last wrote.
    Auto,
    /// The default sender of the contact's owner.
    Owner,
}

/// What a send is for. Integrations that automate or send in bulk through the API say so, and
/// the rules for automation (R7.2, R7.4) and bulk (R6.7) bind them like the product's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Purpose {
    /// A person or an integration in a conversation (the default).
    #[default]
    Conversation,
    /// An automatic answer to an inbound message: free text or any allowed template.
    AutoReply,
    /// An automated message: approved templates only, within business hours.
    Automation,
    /// A notification to a customer: approved templates only, within business hours.
    Notification,
    /// One of many identical sends: opted-in contacts only, never on Messenger.
    Bulk,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateSend {
    pub name: String,
    /// Defaults to the contact's locale, with language fallback (R3.5).
    pub locale: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub variables: Map<String, Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MediaInput {
    /// How the file goes; for an uploaded file it defaults to what its type allows.
    pub kind: Option<MediaKind>,
    /// A public http(s) URL the provider fetches the file from...
    pub url: Option<String>,
    /// ...or a file uploaded with `POST /api/v1/media`, by its hash: exactly one of the two.
    pub sha256: Option<String>,
    /// Stated by the client for a URL; an uploaded file's own size is used instead.
    pub size_bytes: Option<i64>,
    pub caption: Option<String>,
    pub filename: Option<String>,
    pub mime_type: Option<String>,
}

/// A message to send: one recipient (`contact_id`, `to` or `conversation_id`), one sender
/// (`sender_id`, or `sender` = `auto` / `owner`, or the conversation's, or the caller's
/// default), and exactly one of `text`, `template`, `media`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendInput {
    pub sender_id: Option<SenderId>,
    pub sender: Option<SenderMode>,
    pub contact_id: Option<ContactId>,
    /// An address: E.164 phone, WhatsApp user id, or Messenger id.
    pub to: Option<String>,
    pub conversation_id: Option<ConversationId>,
    pub text: Option<String>,
    pub template: Option<TemplateSend>,
    pub media: Option<MediaInput>,
    /// Messenger message tag.
    pub tag: Option<MessageTag>,
    /// Send later (R6.9).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub send_at: Option<OffsetDateTime>,
    /// What the send is for (default `conversation`).
    pub purpose: Option<Purpose>,
}

/// Who a send is for: a caller of the API, or Switchboard itself (confirmations, R4.2, R4.3).
#[derive(Clone, Copy)]
pub(crate) enum Sender<'a> {
    Caller(&'a Principal),
    System(SystemPurpose),
}

impl Sender<'_> {
    fn actor(&self) -> String {
        match self {
            Sender::Caller(p) => actor_of(p),
            Sender::System(_) => "system".to_owned(),
        }
    }

    fn origin(&self, purpose: Purpose) -> Origin {
        match (self, purpose) {
            (Sender::System(system), _) => Origin::System(*system),
            (Sender::Caller(_), Purpose::AutoReply) => Origin::Flow(FlowKind::AutoReply),
            (Sender::Caller(_), Purpose::Automation) => Origin::Flow(FlowKind::Automation),
            (Sender::Caller(_), Purpose::Notification) => Origin::Flow(FlowKind::Notification),
            (Sender::Caller(_), Purpose::Bulk) => Origin::Campaign,
            (Sender::Caller(p), Purpose::Conversation) if p.user.is_some() => Origin::Agent,
            (Sender::Caller(_), Purpose::Conversation) => Origin::Api,
        }
    }
}

/// Everything a decision was made from, owned, so that a [`PolicyContext`] can borrow it.
struct Facts {
    sender: SenderIdentity,
    contact: Option<Contact>,
    to: Option<String>,
    permitted: bool,
    last_inbound_at: Option<OffsetDateTime>,
    consent: ConsentStatus,
    /// The recipient's conversation with the sender, when they have one already.
    conversation: Option<ConversationId>,
    templates: Vec<Template>,
    dlp: DlpRuleSet,
    hours: Option<switchboard_core::policy::HoursState>,
    /// The sender's reach in 24 hours and whether it includes this recipient; counted only
    /// for a sender with a messaging-limit tier, the only one it can hold back.
    reach: Option<(i64, bool)>,
    request: SendRequest,
    media: Option<MediaInput>,
    send_at: Option<OffsetDateTime>,
    media_limit_bytes: i64,
}

impl Facts {
    fn context(&self) -> PolicyContext<'_> {
        PolicyContext {
            sender: SenderFacts {
                id: self.sender.id,
                channel: self.sender.channel,
                health: self.sender.health.status,
                token_status: self.sender.health.token_status,
                messaging_limit: self.sender.health.messaging_limit_tier,
                business_initiated_recipients_24h: self.reach.map_or(0, |r| r.0),
                recipient_reached_24h: self.reach.is_some_and(|r| r.1),
                media_limit_bytes: self.media_limit_bytes,
            },
            sender_permitted: self.permitted,
            recipient: match (&self.contact, &self.to) {
                (Some(c), _) => Recipient::Known(c),
                (None, Some(to)) => Recipient::Unknown(to),
                (None, None) => Recipient::Unknown(""),
            },
            last_inbound_at: self.last_inbound_at,
            consent: self.consent,
            templates: &self.templates,
            dlp: &self.dlp,
            hours: self.hours,
        }
    }

    /// The facts as recorded with the decision, for the audit trail.
    fn summary(&self, decision: &Decision) -> Value {
        json!({
            "sender": {
                "id": self.sender.id,
                "channel": self.sender.channel,
                "health": self.sender.health,
            },
            "permitted": self.permitted,
            "contact_id": self.contact.as_ref().map(|c| c.id),
            "to": self.to,
            "last_inbound_at": self.last_inbound_at.map(rfc3339),
            "consent": self.consent,
            "business_initiated_reach_24h": self.reach.map(|r| r.0),
            "window": decision.window,
            "templates_considered": self.templates.len(),
            "dlp_rules": !self.dlp.is_empty(),
            "business_hours": self.hours.map(|h| json!({
                "open": h.open,
                "opens_at": h.opens_at.map(rfc3339),
            })),
        })
    }
}

/// When a send is decided for: its `send_at` when that lies ahead, else now. (The dispatcher
/// decides again when it sends, as consent or limits may have changed meanwhile.)
fn decision_time(send_at: Option<OffsetDateTime>, now: OffsetDateTime) -> OffsetDateTime {
    send_at.filter(|t| *t > now).unwrap_or(now)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn parse_content(
    input: &SendInput,
    errors: &mut ValidationErrors,
) -> Option<(Content, Option<MediaInput>)> {
    let given = [
        input.text.is_some(),
        input.template.is_some(),
        input.media.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if given != 1 {
        errors.push(FieldError::new(
            "text",
            "invalid_content",
            "send exactly one of `text`, `template` or `media`",
        ));
        return None;
    }
    if let Some(text) = &input.text {
        let text = errors.check(required_text("text", text, MAX_TEXT_CHARS))?;
        return Some((Content::Text(text), None));
    }
    if let Some(template) = &input.template {
        let name = errors.check(required_text("template.name", &template.name, 512))?;
        let locale = errors.check(
            template
                .locale
                .as_deref()
                .map(|l| Locale::parse("template.locale", l))
                .transpose(),
        )?;
        return Some((
            Content::Template {
                name,
                locale,
                variables: template.variables.clone(),
            },
            None,
        ));
    }
    let media = input.media.clone()?;
    match (&media.url, &media.sha256) {
        (Some(url), None) => {
            if !url_is_http(url) {
                errors.push(FieldError::new(
                    "media.url",
                    "invalid_url",
                    "`media.url` must be an http or https URL",
                ));
                return None;
            }
            if media.kind.is_none() {
                errors.push(FieldError::new(
                    "media.kind",
                    "required",
                    "say what the linked file is: `image`, `document`, `audio`, `video` or `sticker`",
                ));
                return None;
            }
        }
        (None, Some(_)) => {}
        _ => {
            errors.push(FieldError::new(
                "media",
                "invalid_media",
                "give the file as exactly one of `media.url` or `media.sha256`",
            ));
            return None;
        }
    }
    if media.size_bytes.is_some_and(|s| s < 0) {
        errors.push(FieldError::new(
            "media.size_bytes",
            "invalid_value",
            "`media.size_bytes` cannot be negative",
        ));
        return None;
    }
    Some((
        Content::Media {
            kind: media.kind.unwrap_or(MediaKind::Document),
            size_bytes: media.size_bytes,
            caption: media.caption.clone(),
        },
        Some(media),
    ))
}

fn url_is_http(url: &str) -> bool {
    let url = url.trim();
    (url.starts_with("https://") || url.starts_with("http://")) && url.len() > "https://".len()
}

/// Finds the contact an address names, trying each kind of address it could be.
async fn contact_by_address(state: &AppState, to: &str) -> Result<Option<Contact>> {
    let phone = PhoneNumber::parse("to", to).ok();
    let bsuid = WhatsappUserId::parse("to", to).ok();
    let psid = MessengerPsid::parse("to", to).ok();
    if phone.is_none() && bsuid.is_none() && psid.is_none() {
        return Ok(None);
    }
    state
        .lookups()
        .contact_by_address(phone.as_ref(), bsuid.as_ref(), psid.as_ref())
        .await
        .map_err(AppError::Internal)
}

async fn load_facts(state: &AppState, who: Sender<'_>, input: &SendInput) -> Result<Facts> {
    let mut errors = ValidationErrors::new();
    let recipients = [
        input.contact_id.is_some(),
        input.to.is_some(),
        input.conversation_id.is_some(),
    ]
    .iter()
    .filter(|g| **g)
    .count();
    if recipients != 1 {
        errors.push(FieldError::new(
            "to",
            "invalid_recipient",
            "name exactly one recipient: `contact_id`, `to` or `conversation_id`",
        ));
    }
    if input.sender_id.is_some() && input.sender.is_some() {
        errors.push(FieldError::new(
            "sender",
            "invalid_sender",
            "give `sender_id` or `sender`, not both",
        ));
    }
    let content = parse_content(input, &mut errors);
    let (Some((mut content, mut media)), true) = (content, errors.is_empty()) else {
        return Err(errors.into());
    };
    // An uploaded file is what it is: its own size is checked against the limit, and its
    // type decides how it goes unless the caller said.
    if let (
        Content::Media {
            kind, size_bytes, ..
        },
        Some(m),
    ) = (&mut content, &mut media)
    {
        if let Some(sha256) = m.sha256.as_deref() {
            let file = crate::uploads::stored_media(state, sha256).await?;
            let mime = file.mime_type.clone().unwrap_or_default();
            *kind = m.kind.unwrap_or_else(|| MediaKind::for_mime_type(&mime));
            *size_bytes = Some(file.size_bytes);
            m.kind = Some(*kind);
            m.size_bytes = Some(file.size_bytes);
            m.mime_type = file.mime_type;
        }
    }
    let store = state.store();

    let lookups = state.lookups();
    // The recipient; and beside it, when the caller named the sender, the sender and its
    // templates, which do not depend on who receives.
    let recipient = async {
        let (mut contact, mut conversation_sender) = (None, None);
        if let Some(id) = input.conversation_id {
            let (contact_id, sender_id) = store
                .conversation_pair(id)
                .await
                .map_err(crate::missing_reference("conversation_id", "conversation"))?;
            contact = Some(
                store
                    .get_contact(contact_id)
                    .await
                    .map_err(AppError::Internal)?,
            );
            conversation_sender = Some(sender_id);
        }
        if let Some(id) = input.contact_id {
            contact = Some(
                store
                    .get_contact(id)
                    .await
                    .map_err(crate::missing_reference("contact_id", "contact"))?,
            );
        }
        if let Some(to) = &input.to {
            contact = contact_by_address(state, to).await?;
        }
        Ok::<_, AppError>((contact, conversation_sender))
    };
    let named = async {
        match input.sender_id {
            Some(id) => Some(tokio::join!(
                lookups.sender(id),
                lookups.sender_templates(id)
            )),
            None => None,
        }
    };
    let (recipient, named) = tokio::join!(recipient, named);
    let (mut contact, conversation_sender) = recipient?;

    // The sender (R1.5).
    let sender_id = match (input.sender_id, input.sender, conversation_sender) {
        (Some(id), _, _) => id,
        (None, Some(SenderMode::Auto), _) => {
            let Some(c) = &contact else {
                return Err(FieldError::new(
                    "sender",
                    "no_auto_sender",
                    "`auto` replies where the contact last wrote, and this recipient never has",
                )
                .into());
            };
            let last = store
                .list_messages(
                    &MessageFilter {
                        contact_id: Some(c.id),
                        direction: Some(Direction::Inbound),
                        ..Default::default()
                    },
                    &PageRequest {
                        limit: 1,
                        ..Default::default()
                    },
                )
                .await
                .map_err(AppError::Internal)?;
            match last.items.first() {
                Some(m) => m.sender_id,
                None => {
                    return Err(FieldError::new(
                        "sender",
                        "no_auto_sender",
                        "`auto` replies where the contact last wrote, and they never have",
                    )
                    .into())
                }
            }
        }
        (None, Some(SenderMode::Owner), _) => {
            let owner = contact.as_ref().and_then(|c| c.owner_id);
            let default = match owner {
                Some(owner) => {
                    store
                        .get_user(owner)
                        .await
                        .map_err(AppError::Internal)?
                        .default_sender_id
                }
                None => None,
            };
            default.ok_or_else(|| {
                AppError::from(FieldError::new(
                    "sender",
                    "no_owner_sender",
                    "`owner` uses the default sender of the contact's owner, and there is none",
                ))
            })?
        }
        (None, None, Some(id)) => id,
        (None, None, None) => match who {
            Sender::Caller(p) => p.user.as_ref().and_then(|u| u.default_sender_id),
            Sender::System(_) => None,
        }
        .ok_or_else(|| AppError::from(FieldError::required("sender_id")))?,
    };
    let (sender, templates) = match named {
        Some((sender, templates)) => (sender, Some(templates)),
        None => (lookups.sender(sender_id).await, None),
    };
    let sender = sender.map_err(crate::missing_reference("sender_id", "sender"))?;
    // Messenger attachments carry no caption and there are no sticker attachments: an
    // uploaded WebP (taken for a sticker) goes as an image there; a caption is refused now
    // rather than failing at the provider later.
    if let (Channel::Messenger, Content::Media { kind, caption, .. }, Some(m)) =
        (sender.channel, &mut content, &mut media)
    {
        if caption.as_deref().is_some_and(|c| !c.trim().is_empty()) {
            return Err(FieldError::new(
                "media.caption",
                "caption_not_supported",
                "Messenger attachments carry no caption: send the text as a message of its own",
            )
            .into());
        }
        let stated = input.media.as_ref().and_then(|m| m.kind);
        if *kind == MediaKind::Sticker && m.sha256.is_some() && stated.is_none() {
            *kind = MediaKind::Image;
            m.kind = Some(MediaKind::Image);
        }
    }
    // A written address must suit the sender's channel (R1.4) even when it names a contact
    // known by another address too: the policy then judges it as written.
    if let Some(to) = &input.to {
        if !switchboard_core::policy::address_fits(sender.channel, to) {
            contact = None;
        }
    }

    let permitted = match who {
        Sender::Caller(
            p @ Principal {
                user: Some(user), ..
            },
        ) => p.role() == Role::Admin || user.permitted_sender_ids.contains(&sender.id),
        Sender::Caller(_) | Sender::System(_) => true,
    };
    // What is known of the recipient with this sender, and its templates if not read yet.
    let templates = async {
        match templates {
            Some(read) => read,
            None => lookups.sender_templates(sender.id).await,
        }
    };
    let (recipient, templates) = match &contact {
        Some(c) => {
            let (conversation, events, templates) = tokio::join!(
                lookups.conversation(c.id, sender.id),
                lookups.consent_events(c.id, sender.channel),
                templates,
            );
            let status = events.map(|events| current_status(&events, sender.channel));
            ((conversation, status), templates)
        }
        None => ((Ok(None), Ok(ConsentStatus::None)), templates.await),
    };
    let ((conversation, last_inbound_at), consent) = match recipient {
        (Ok(conversation), Ok(consent)) => (
            (
                conversation.map(|(id, _)| id),
                conversation.and_then(|(_, at)| at),
            ),
            consent,
        ),
        (Err(e), _) | (_, Err(e)) => return Err(AppError::Internal(e)),
    };
    let templates = templates.map_err(AppError::Internal)?;
    let now = state.now();
    let reach = match sender.health.messaging_limit_tier {
        Some(_) => Some(
            store
                .business_initiated_reach(
                    sender.id,
                    contact.as_ref().map(|c| c.id),
                    now - switchboard_core::policy::SERVICE_WINDOW,
                )
                .await
                .map_err(AppError::Internal)?,
        ),
        None => None,
    };
    let dlp = crate::settings::dlp_rules(state).await?;
    // Business hours and the window are judged at the time the message will go.
    let hours = crate::settings::hours_at(state, decision_time(input.send_at, now)).await?;
    let origin = who.origin(input.purpose.unwrap_or_default());
    Ok(Facts {
        sender,
        contact,
        to: input.to.clone(),
        permitted,
        last_inbound_at,
        consent,
        conversation,
        templates,
        dlp,
        hours,
        reach,
        request: SendRequest {
            content,
            tag: input.tag,
            origin,
        },
        media,
        send_at: input.send_at,
        media_limit_bytes: state.media_limit_bytes(),
    })
}

fn decision_record(
    who: Sender<'_>,
    facts: &Facts,
    decision: &Decision,
    message_id: Option<MessageId>,
    dry_run: bool,
    at: OffsetDateTime,
) -> DecisionRecord {
    let (allowed, code, reason, kind) = match &decision.verdict {
        Verdict::Allow(a) => (true, None, None, Some(a.kind.as_str().to_owned())),
        Verdict::Refuse { code, reason } => (
            false,
            Some(code.as_str().to_owned()),
            Some(reason.clone()),
            None,
        ),
    };
    let content = match &facts.request.content {
        Content::Text(_) => json!({"kind": "text"}),
        Content::Media {
            kind, size_bytes, ..
        } => {
            json!({"kind": "media", "media_kind": kind, "size_bytes": size_bytes})
        }
        Content::Template { name, locale, .. } => {
            json!({"kind": "template", "name": name, "locale": locale.as_ref().map(|l| l.as_str())})
        }
    };
    DecisionRecord {
        id: uuid_v7(),
        at,
        actor: who.actor(),
        sender_id: Some(facts.sender.id.to_string()),
        contact_id: facts.contact.as_ref().map(|c| c.id.to_string()),
        channel: Some(facts.sender.channel.as_str().to_owned()),
        allowed,
        code,
        reason,
        kind,
        message_id: message_id.map(|m| m.to_string()),
        dry_run,
        // The request's shape, not its text: the audit trail must not copy message bodies
        // that data-loss prevention may have had to redact.
        request: json!({
            "content": content,
            "tag": facts.request.tag,
            "origin": facts.request.origin,
            "send_at": facts.send_at.map(rfc3339),
        }),
        facts: facts.summary(decision),
    }
}

fn uuid_v7() -> String {
    MessageId::new().to_string()
}

/// What `/policy/check` answers: the decision, recorded as a dry run.
pub async fn check_policy(
    state: &AppState,
    principal: &Principal,
    input: &SendInput,
) -> Result<Decision> {
    let (decision, facts) = decide(state, principal, input).await?;
    let who = Sender::Caller(principal);
    let now = state.now();
    state
        .store()
        .record_decision(&decision_record(who, &facts, &decision, None, true, now))
        .await
        .map_err(AppError::Internal)?;
    Ok(decision)
}

/// What the policy decides for this send now, without recording it: what the inbox's composer
/// shows each time a conversation is drawn, which is no one's request to send.
pub async fn what_is_allowed(
    state: &AppState,
    principal: &Principal,
    input: &SendInput,
) -> Result<Decision> {
    Ok(decide(state, principal, input).await?.0)
}

async fn decide(
    state: &AppState,
    principal: &Principal,
    input: &SendInput,
) -> Result<(Decision, Facts)> {
    principal.require(Permission::MessagesSend)?;
    let facts = load_facts(state, Sender::Caller(principal), input).await?;
    let decision = evaluate(
        &facts.request,
        &facts.context(),
        decision_time(facts.send_at, state.now()),
    );
    Ok((decision, facts))
}

/// Sends a message: decided by the policy, then written with its send job in one transaction,
/// or refused with nothing written but the decision.
pub async fn send_message(
    state: &AppState,
    principal: &Principal,
    input: SendInput,
    idempotency: Option<IdempotencyRequest>,
) -> Result<Created<Message>> {
    principal.require(Permission::MessagesSend)?;
    let key = idempotency.map(|i| i.for_principal(principal));
    if let Some(key) = &key {
        if let Some(id) = earlier_result(state, key, "message").await? {
            return replay(state, &id).await;
        }
    }
    send_as(state, Sender::Caller(principal), input, key, None).await
}

/// Decides and, if allowed, writes a message with its job and decision, plus a consent event
/// when the send itself changes consent (an opt-in request), all in one transaction.
pub(crate) async fn send_as(
    state: &AppState,
    who: Sender<'_>,
    input: SendInput,
    key: Option<switchboard_store::IdempotencyKey>,
    consent: Option<switchboard_core::consent::ConsentEvent>,
) -> Result<Created<Message>> {
    let facts = load_facts(state, who, &input).await?;
    let now = state.now();
    let decision = evaluate(
        &facts.request,
        &facts.context(),
        decision_time(facts.send_at, now),
    );
    let allowed = match &decision.verdict {
        Verdict::Allow(allowed) => allowed.clone(),
        Verdict::Refuse { .. } => {
            state
                .store()
                .record_decision(&decision_record(who, &facts, &decision, None, false, now))
                .await
                .map_err(AppError::Internal)?;
            return Err(AppError::PolicyRefused(Box::new(decision)));
        }
    };
    let store = state.store();
    let contact = match &facts.contact {
        Some(c) => c.clone(),
        None => create_recipient(state, &facts).await?,
    };
    let conversation = match facts.conversation {
        Some(conversation) => conversation,
        None => store
            .ensure_conversation(contact.id, facts.sender.id, facts.sender.channel, now)
            .await
            .map_err(AppError::Internal)?,
    };
    // A person replies only in a conversation they hold (R5.2); checked again, atomically,
    // when the message is written.
    let guard = match who {
        Sender::Caller(principal) => {
            crate::conversations::reply_guard(state, principal, conversation, now).await?
        }
        Sender::System(_) => None,
    };
    let scheduled = facts.send_at.filter(|at| *at > now);
    let status = if scheduled.is_some() {
        DeliveryStatus::Scheduled
    } else {
        DeliveryStatus::Queued
    };
    let message_id = MessageId::new();
    let (text, media) = match (&facts.request.content, &facts.media) {
        (Content::Media { .. }, Some(m)) => (
            None,
            Some(Media {
                kind: m.kind.unwrap_or(MediaKind::Document),
                url: m.url.as_deref().map(|u| u.trim().to_owned()),
                provider_media_id: None,
                mime_type: m.mime_type.clone(),
                filename: m.filename.clone(),
                caption: allowed.text.clone(),
                size_bytes: m.size_bytes,
                sha256: m.sha256.clone(),
                provider_sha256: None,
                download: None,
            }),
        ),
        _ => (allowed.text.clone(), None),
    };
    let message = Message {
        id: message_id,
        direction: Direction::Outbound,
        channel: facts.sender.channel,
        sender_id: facts.sender.id,
        contact_id: contact.id,
        conversation_id: Some(conversation),
        text,
        template: allowed.template.as_ref().map(|t| TemplateRef {
            name: t.name.clone(),
            locale: t.locale.clone(),
            variables: t
                .variables
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        }),
        media,
        channel_template_type: allowed.kind,
        status,
        status_history: vec![StatusEvent {
            status,
            at: now,
            error: None,
        }],
        provider_message_id: None,
        error: None,
        provider_timestamp: None,
        tag: allowed.tag,
        business_initiated: allowed.business_initiated,
        redacted: allowed.redacted,
        send_at: scheduled,
        actor: Some(who.actor()),
        created_at: now,
        updated_at: now,
    };
    let job = NewJob {
        id: uuid_v7(),
        queue: OUTBOUND_QUEUE.to_owned(),
        kind: "send_message".to_owned(),
        payload: json!({"message_id": message_id}),
        dedupe_key: Some(format!("send:{message_id}")),
        run_at: scheduled.unwrap_or(now),
        expires_at: None,
    };
    let record = decision_record(who, &facts, &decision, Some(message_id), false, now);
    let consent = consent.map(|mut event| {
        event.contact_id = contact.id;
        event
    });
    let written = state
        .outbound()
        .commit(OutboundRecord {
            message: message.clone(),
            job,
            decision: record,
            idempotency: key.clone(),
            consent,
            guard: guard.clone(),
        })
        .await;
    match written {
        Ok(()) => {
            if scheduled.is_none() {
                state.wake_dispatcher();
            }
            state.publish(crate::events::LiveEvent::created(&message));
            if let Some(moved) = guard
                .as_ref()
                .and_then(|g| crate::conversations::moved_by_reply(g, message.sender_id))
            {
                state.publish(moved);
            }
            Ok(Created {
                value: message,
                replayed: false,
            })
        }
        Err(StoreError::Conflict { field, .. }) if field == "conversation_state" => {
            Err(AppError::Conflict {
                code: "conversation_changed",
                field: None,
                existing_id: None,
                detail: "the conversation was claimed or moved meanwhile; look again and retry"
                    .to_owned(),
            })
        }
        Err(e) if lost_race(&e) => {
            let key = key.expect("a key conflict needs a key");
            match earlier_result(state, &key, "message").await? {
                Some(id) => replay(state, &id).await,
                None => Err(AppError::Internal(e)),
            }
        }
        Err(e) => Err(AppError::Internal(e)),
    }
}

async fn replay(state: &AppState, id: &str) -> Result<Created<Message>> {
    let id: MessageId = id
        .parse()
        .map_err(|_| AppError::Internal(StoreError::Corrupt(format!("idempotent id {id}"))))?;
    let message = state
        .store()
        .get_message(id)
        .await
        .map_err(|e| AppError::from_store("message", e))?;
    Ok(Created {
        value: message,
        replayed: true,
    })
}

/// A recipient addressed by `to` whom the policy allowed (an SMS number, say) becomes a
/// contact, so that the message and its conversation have someone to belong to.
async fn create_recipient(state: &AppState, facts: &Facts) -> Result<Contact> {
    let to = facts.to.as_deref().unwrap_or_default();
    let now = state.now();
    let mut contact = Contact::unsaved();
    contact.id = ContactId::new();
    contact.created_at = now;
    contact.updated_at = now;
    match facts.sender.channel {
        Channel::Messenger => contact.messenger_psid = MessengerPsid::parse("to", to).ok(),
        Channel::Sms => contact.phone = PhoneNumber::parse("to", to).ok(),
        Channel::Whatsapp => {
            contact.phone = PhoneNumber::parse("to", to).ok();
            if contact.phone.is_none() {
                contact.whatsapp_user_id = WhatsappUserId::parse("to", to).ok();
            }
        }
    }
    match state.store().create_contact(&contact, None).await {
        Ok(()) => Ok(contact),
        // Created meanwhile by another request: use that one.
        Err(StoreError::Conflict {
            existing_id: Some(id),
            ..
        }) => {
            state
                .store()
                .get_contact(id.parse().map_err(|_| {
                    AppError::Internal(StoreError::Corrupt(format!("contact id {id}")))
                })?)
                .await
                .map_err(AppError::Internal)
        }
        Err(e) => Err(AppError::Internal(e)),
    }
}
