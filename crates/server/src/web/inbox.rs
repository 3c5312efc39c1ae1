//! The agent inbox (R5): the conversation list with its tabs, filters and search, one
//! conversation with the contact's whole history, and a composer that offers only what the
//! channel allows now and says why (R2.6, R5.5). Live updates arrive over the event stream;
//! every action is also a plain form, so the inbox works without JavaScript.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{Map, Value};
use switchboard_app::consent::{self, OptInRequestInput};
use switchboard_app::conversations::{
    self, AssigneeFilter, ConversationDetail, ConversationQuery, ConversationView,
};
use switchboard_app::sending::{self, MediaInput, SendInput, TemplateSend};
use switchboard_app::uploads::{Upload, UploadWriter};
use switchboard_app::{AppError, AppState, Principal};
use switchboard_core::consent::{check_opt_in_request, current_status, ConsentStatus};
use switchboard_core::conversation::{self as workflow, Action, Actor, ConversationState};
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Direction, MediaKind, Message,
};
use switchboard_core::policy::Verdict;
use switchboard_core::sender::ProviderConfig;
use switchboard_core::template::{MessageTag, Template as MessageTemplate, TemplateStatus};
use switchboard_core::{Channel, ConversationId, Role, SenderId, UserId};
use switchboard_store::conversations::ConversationSort;
use switchboard_store::templates::TemplateFilter;
use switchboard_store::PageRequest;
use time::{Duration, OffsetDateTime};

use super::page::{
    channel_label, plain, render, when, Choice, Chrome, FormData, Section, Signed, WebError,
    WebResult,
};

const PAGE_SIZE: u32 = 50;

/// A conversation id from a path; anything else names no conversation.
fn conversation_id(raw: &str) -> WebResult<ConversationId> {
    raw.parse()
        .map_err(|_| WebError::NotFound("That conversation does not exist.".to_owned()))
}
/// How much of the contact's history the conversation view shows.
const HISTORY: u32 = 200;

/// Room in the composer's form beside its file: the reply's text and the hidden fields.
const FORM_ALLOWANCE: usize = 1 << 20;

pub fn router(media_limit_bytes: i64) -> Router<AppState> {
    let form_limit = usize::try_from(media_limit_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(FORM_ALLOWANCE);
    Router::new()
        .route("/inbox", get(list_page))
        .route("/inbox/{id}", get(conversation_page))
        .route("/inbox/{id}/claim", post(claim))
        .route("/inbox/{id}/unclaim", post(unclaim))
        .route("/inbox/{id}/close", post(close))
        .route("/inbox/{id}/transfer", post(transfer))
        .route(
            "/inbox/{id}/send",
            // A file is counted against the attachment limit as it arrives; the form as a
            // whole is bounded a little above it.
            post(send).layer(DefaultBodyLimit::max(form_limit)),
        )
        .route("/inbox/{id}/opt-in", post(request_opt_in))
        .route("/inbox/{id}/switch", post(switch_sender))
}

#[derive(Clone, Debug, Default, Deserialize)]
struct InboxQuery {
    tab: Option<String>,
    channel: Option<String>,
    sender_id: Option<String>,
    q: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
    /// A refusal to show, as a fixed code (never free text from the link).
    error: Option<String>,
}

impl InboxQuery {
    fn tab(&self) -> &str {
        match self.tab.as_deref() {
            Some(t @ ("mine" | "claimed" | "closed")) => t,
            _ => "unclaimed",
        }
    }

    /// The list's own parameters, to keep them when moving between conversations.
    fn keep(&self) -> String {
        let mut pairs = form_urlencoded::Serializer::new(String::new());
        pairs.append_pair("tab", self.tab());
        for (key, value) in [
            ("channel", &self.channel),
            ("sender_id", &self.sender_id),
            ("q", &self.q),
            ("sort", &self.sort),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                pairs.append_pair(key, v);
            }
        }
        pairs.finish()
    }
}

struct Tab {
    key: &'static str,
    label: &'static str,
    count: i64,
    current: bool,
    href: String,
}

struct Row {
    href: String,
    current: bool,
    channel_key: String,
    channel: &'static str,
    name: String,
    phone: String,
    preview: String,
    ago: String,
    at: String,
    unread: i64,
    assignee: String,
    waiting: bool,
}

struct Bubble {
    inbound: bool,
    text: String,
    template: String,
    media_kind: String,
    media_src: String,
    media_image: bool,
    media_name: String,
    at: String,
    status_key: &'static str,
    status_label: String,
    failure: String,
    /// Shown when the message went through another sender than this conversation's.
    via: String,
    tag: String,
}

struct TemplateChoice {
    name: String,
    locale: String,
    body: String,
    /// The variables the agent fills; mapped ones come from the contact.
    fields: Vec<String>,
    recontact: bool,
}

struct Thread {
    id: String,
    name: String,
    phone: String,
    contact_href: String,
    channel_key: String,
    channel: &'static str,
    state: &'static str,
    assignee: String,
    mine: bool,
    can_claim: bool,
    can_unclaim: bool,
    can_close: bool,
    transfer_allowed: bool,
    agents: Vec<Choice>,
    bubbles: Vec<Bubble>,
    /// Open, closed or none; the countdown's deadline as RFC 3339.
    window_state: &'static str,
    window_text: String,
    closes_at: String,
    composer: Composer,
}

/// What the composer offers, decided by the policy.
struct Composer {
    /// Why the agent cannot write at all, if they cannot.
    blocked: Option<String>,
    /// The banner above the composer: why only templates, what happened to the opt-in.
    banner: Option<String>,
    banner_tone: &'static str,
    free_text: bool,
    tags: Vec<Choice>,
    templates: Vec<TemplateChoice>,
    recontact: Option<TemplateChoice>,
    /// The opt-in request button, with its hint.
    opt_in: Option<String>,
    /// An SMS sender to offer when the contact has no WhatsApp.
    sms_offer: Option<String>,
    /// Whether a file may go with a reply: the provider can be handed one.
    attach: bool,
    /// The attachment limit in bytes, and as people read it.
    attach_limit: i64,
    attach_limit_text: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
struct InboxPage {
    chrome: Chrome,
    tabs: Vec<Tab>,
    tab: String,
    keep: String,
    q: String,
    channels: Vec<Choice>,
    senders: Vec<Choice>,
    sorts: Vec<Choice>,
    rows: Vec<Row>,
    next: Option<String>,
    thread: Option<Thread>,
    error: Option<String>,
}

fn ago(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let d = now - t;
    if d < Duration::minutes(1) {
        "now".to_owned()
    } else if d < Duration::hours(1) {
        format!("{} min", d.whole_minutes())
    } else if d < Duration::days(1) {
        format!("{} h", d.whole_hours())
    } else {
        format!("{} d", d.whole_days())
    }
}

fn span(d: Duration) -> String {
    let minutes = d.whole_minutes().max(0);
    if minutes >= 60 {
        format!("{} h {} min", minutes / 60, minutes % 60)
    } else {
        format!("{minutes} min")
    }
}

fn channel_key(c: Channel) -> &'static str {
    c.as_str()
}

fn state_label(s: ConversationState) -> &'static str {
    match s {
        ConversationState::Unclaimed => "Unclaimed",
        ConversationState::Claimed => "Claimed",
        ConversationState::Closed => "Closed",
    }
}

/// Refusal codes the inbox explains after a redirect; only these words reach the page.
fn error_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "conversation_claimed" => "Another agent has claimed this conversation.",
        "conversation_not_claimed" => {
            "Claim the conversation first: an agent replies only in a conversation they hold."
        }
        "not_assignee" => "Only the agent who claimed this conversation, or an admin, may do that.",
        "transfer_not_allowed" => {
            "Only admins and supervisors transfer conversations. Ask one to hand it over."
        }
        "sender_not_permitted" => "That person may not use this conversation's sender.",
        "conversation_changed" => "The conversation changed meanwhile. Look again and retry.",
        "window_closed" => "The 24-hour window has closed: send an approved template.",
        "template_required" => "Only an approved template may start this conversation.",
        "opted_out" => "The contact opted out of these messages.",
        "consent_required" => "The contact has not opted in to these messages.",
        "empty_message" => "Write a message first.",
        "media_too_large" => "That file is larger than attachments may be. Send a smaller one.",
        "empty_file" => "That file is empty.",
        "send_failed" => "The message could not be sent. Check the fields and try again.",
        _ => return None,
    })
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "claimed" => "You claimed this conversation.",
        "unclaimed" => "You released this conversation.",
        "closed" => "Conversation closed.",
        "transferred" => "Conversation transferred.",
        "sent" => "Message queued.",
        "opt_in_sent" => "Opt-in request sent.",
        _ => return None,
    })
}

async fn user_names(state: &AppState) -> HashMap<UserId, String> {
    match state
        .store()
        .list_users(&PageRequest {
            limit: 200,
            ..Default::default()
        })
        .await
    {
        Ok(page) => page.items.into_iter().map(|u| (u.id, u.name)).collect(),
        Err(_) => HashMap::new(),
    }
}

async fn list_view(
    state: &AppState,
    principal: &Principal,
    query: &InboxQuery,
    selected: Option<ConversationId>,
    names: &HashMap<UserId, String>,
) -> WebResult<(Vec<Tab>, Vec<Row>, Option<String>)> {
    let counts = conversations::tab_counts(state, principal).await?;
    let tab = query.tab();
    let (filter_state, assignee) = match tab {
        "mine" => (ConversationState::Claimed, Some(AssigneeFilter::Me)),
        "claimed" => (ConversationState::Claimed, None),
        "closed" => (ConversationState::Closed, None),
        _ => (ConversationState::Unclaimed, None),
    };
    let channel = query
        .channel
        .as_deref()
        .filter(|c| !c.is_empty())
        .and_then(|c| c.parse().ok());
    let sender_id = query
        .sender_id
        .as_deref()
        .filter(|c| !c.is_empty())
        .and_then(|c| c.parse().ok());
    let sort = match query.sort.as_deref() {
        Some("waiting") => ConversationSort::OldestWaiting,
        _ => ConversationSort::NewestActivity,
    };
    let result = conversations::list(
        state,
        principal,
        ConversationQuery {
            state: Some(filter_state),
            channel,
            sender_id,
            assignee,
            q: query.q.clone().filter(|q| !q.trim().is_empty()),
            sort,
            limit: PAGE_SIZE,
            cursor: query.cursor.clone(),
        },
    )
    .await;
    let (items, next) = match result {
        Ok(found) => found,
        // A stale or hand-made cursor starts the list again rather than failing the page.
        Err(AppError::Validation(_)) => (Vec::new(), None),
        Err(other) => return Err(other.into()),
    };
    let keep_without_tab = {
        let mut q = query.clone();
        q.tab = None;
        q
    };
    let tabs = [
        ("unclaimed", "Unclaimed", counts.unclaimed),
        ("mine", "Mine", counts.mine),
        ("claimed", "All claimed", counts.claimed),
        ("closed", "Closed", counts.closed),
    ]
    .into_iter()
    .map(|(key, label, count)| {
        let mut q = keep_without_tab.clone();
        q.tab = Some(key.to_owned());
        Tab {
            key,
            label,
            count,
            current: key == tab,
            href: format!("/inbox?{}", q.keep()),
        }
    })
    .collect();
    let now = state.now();
    let keep = query.keep();
    let rows = items
        .into_iter()
        .map(|v| row(v, &keep, selected, names, now))
        .collect();
    Ok((tabs, rows, next))
}

fn row(
    v: ConversationView,
    keep: &str,
    selected: Option<ConversationId>,
    names: &HashMap<UserId, String>,
    now: OffsetDateTime,
) -> Row {
    let c = &v.conversation;
    // When the customer spoke last, by their clock: a message delivered late still shows
    // when it was written.
    let last = match (c.waiting_since, c.last_inbound_at) {
        (Some(_), Some(inbound)) => inbound,
        _ => c.last_message_at.unwrap_or(c.created_at),
    };
    Row {
        href: format!("/inbox/{}?{keep}", c.id),
        current: selected == Some(c.id),
        channel_key: channel_key(c.channel).to_owned(),
        channel: channel_label(c.channel),
        name: v
            .contact_name
            .clone()
            .or_else(|| v.contact_phone.clone())
            .unwrap_or_else(|| "Unknown contact".to_owned()),
        phone: v.contact_phone.clone().unwrap_or_default(),
        preview: c.preview.clone().unwrap_or_default(),
        ago: ago(last, now),
        at: when(last),
        unread: c.unread_count,
        assignee: c
            .assignee_id
            .and_then(|a| names.get(&a).cloned())
            .unwrap_or_default(),
        waiting: c.waiting_since.is_some(),
    }
}

fn filter_choices(
    query: &InboxQuery,
    senders: &[switchboard_core::sender::Sender],
) -> (Vec<Choice>, Vec<Choice>, Vec<Choice>) {
    let channel = query.channel.clone().unwrap_or_default();
    let mut channels = vec![Choice::new("", "All channels", channel.is_empty())];
    for c in [Channel::Whatsapp, Channel::Messenger, Channel::Sms] {
        channels.push(Choice::new(
            c.as_str(),
            channel_label(c),
            channel == c.as_str(),
        ));
    }
    let sender = query.sender_id.clone().unwrap_or_default();
    let mut sender_choices = vec![Choice::new("", "All senders", sender.is_empty())];
    for s in senders {
        sender_choices.push(Choice::new(
            s.id.to_string(),
            format!("{} ({})", s.name, channel_label(s.channel)),
            sender == s.id.to_string(),
        ));
    }
    let sort = query.sort.clone().unwrap_or_default();
    let sorts = vec![
        Choice::new("newest", "Newest activity", sort != "waiting"),
        Choice::new("waiting", "Waiting longest", sort == "waiting"),
    ];
    (channels, sender_choices, sorts)
}

async fn visible_sender_list(
    state: &AppState,
    principal: &Principal,
) -> Vec<switchboard_core::sender::Sender> {
    let all = state
        .store()
        .list_senders(
            &Default::default(),
            &PageRequest {
                limit: 200,
                ..Default::default()
            },
        )
        .await
        .map(|p| p.items)
        .unwrap_or_default();
    match conversations::visible_senders(principal) {
        Some(visible) => all
            .into_iter()
            .filter(|s| visible.contains(&s.id))
            .collect(),
        None => all,
    }
}

async fn page(
    state: &AppState,
    signed: &Signed,
    query: InboxQuery,
    selected: Option<ConversationId>,
) -> WebResult<Response> {
    let principal = &signed.0.principal;
    let names = user_names(state).await;
    let (tabs, rows, next) = list_view(state, principal, &query, selected, &names).await?;
    let senders = visible_sender_list(state, principal).await;
    let thread = match selected {
        Some(id) => Some(thread(state, signed, id, &names, &senders, &query.keep()).await?),
        None => None,
    };
    let (channels, sender_choices, sorts) = filter_choices(&query, &senders);
    let title = thread
        .as_ref()
        .map(|t| t.name.clone())
        .unwrap_or_else(|| "Inbox".to_owned());
    let next = next.map(|cursor| {
        let mut q = form_urlencoded::Serializer::new(query.keep());
        q.append_pair("cursor", &cursor);
        format!("/inbox?{}", q.finish())
    });
    Ok(render(&InboxPage {
        chrome: {
            let mut chrome = Chrome::new(signed, Section::Inbox, title);
            chrome.notice = query
                .notice
                .as_deref()
                .and_then(notice_text)
                .map(str::to_owned);
            chrome
        },
        tab: query.tab().to_owned(),
        keep: query.keep(),
        q: query.q.clone().unwrap_or_default(),
        tabs,
        channels,
        senders: sender_choices,
        sorts,
        rows,
        next,
        thread,
        error: query
            .error
            .as_deref()
            .and_then(error_text)
            .map(str::to_owned),
    }))
}

async fn list_page(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<InboxQuery>,
) -> WebResult<Response> {
    page(&state, &signed, query, None).await
}

async fn conversation_page(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(query): Query<InboxQuery>,
) -> WebResult<Response> {
    let id = conversation_id(&id)?;
    page(&state, &signed, query, Some(id)).await
}

/// The body a template message carried, as the contact read it.
fn rendered_template(
    m: &Message,
    templates: &[MessageTemplate],
    contact: &switchboard_core::contact::Contact,
) -> Option<String> {
    let sent = m.template.as_ref()?;
    let template = templates
        .iter()
        .find(|t| t.content.name == sent.name && t.content.locale.as_str() == sent.locale)
        .or_else(|| templates.iter().find(|t| t.content.name == sent.name))?;
    let values = template
        .content
        .resolve_variables(&sent.variables, contact)
        .unwrap_or_default();
    Some(template.content.render(&values))
}

/// A template's body with what the contact's fields already fill, for the composer's preview.
fn preview_for(template: &MessageTemplate, contact: &switchboard_core::contact::Contact) -> String {
    let placeholders: Map<String, Value> = template
        .content
        .variables()
        .into_iter()
        .filter(|v| !template.content.variable_mapping.contains_key(v))
        .map(|v| {
            let shown = format!("{{{{{v}}}}}");
            (v, Value::String(shown))
        })
        .collect();
    let values = template
        .content
        .resolve_variables(&placeholders, contact)
        .unwrap_or_default();
    template.content.render(&values)
}

fn bubble(
    m: Message,
    sender: SenderId,
    senders: &[switchboard_core::sender::Sender],
    templates: &[MessageTemplate],
    contact: &switchboard_core::contact::Contact,
) -> Bubble {
    let inbound = m.direction == Direction::Inbound;
    let (status_key, status_label) = match m.status {
        DeliveryStatus::Scheduled => ("scheduled", "Scheduled"),
        DeliveryStatus::Queued => ("queued", "Queued"),
        DeliveryStatus::Sent => ("sent", "Sent"),
        DeliveryStatus::Delivered => ("delivered", "Delivered"),
        DeliveryStatus::Read => ("read", "Read"),
        DeliveryStatus::Failed => ("failed", "Failed"),
        _ => ("received", "Received"),
    };
    let failure = m
        .error
        .as_ref()
        .map(|e| match &e.provider_code {
            Some(code) => format!("{} ({}, provider code {code})", plain(&e.reason), e.code),
            None => format!("{} ({})", plain(&e.reason), e.code),
        })
        .unwrap_or_default();
    let (media_kind, media_src, media_image, media_name) = match &m.media {
        Some(media) => {
            let src = media
                .sha256
                .as_ref()
                .map(|sha| format!("/api/v1/media/{sha}"))
                .or_else(|| media.url.clone().filter(|_| !inbound))
                .unwrap_or_default();
            (
                media.kind.as_str().to_owned(),
                src,
                matches!(media.kind, MediaKind::Image | MediaKind::Sticker),
                media
                    .filename
                    .clone()
                    .unwrap_or_else(|| media.kind.as_str().to_owned()),
            )
        }
        None => Default::default(),
    };
    let text = m
        .text
        .clone()
        .or_else(|| m.media.as_ref().and_then(|x| x.caption.clone()))
        .or_else(|| rendered_template(&m, templates, contact))
        .unwrap_or_default();
    let template = match (&m.template, m.channel_template_type) {
        (Some(t), _) => format!("Template {} ({})", t.name, t.locale),
        (None, ChannelTemplateType::MessageTag) => String::new(),
        _ => String::new(),
    };
    let via = if m.sender_id == sender {
        String::new()
    } else {
        let name = senders
            .iter()
            .find(|s| s.id == m.sender_id)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        format!("{} · {}", channel_label(m.channel), name)
    };
    Bubble {
        inbound,
        text,
        template,
        media_kind,
        media_src,
        media_image,
        media_name,
        at: when(
            m.provider_timestamp
                .filter(|_| inbound)
                .unwrap_or(m.created_at),
        ),
        status_key,
        status_label: status_label.to_owned(),
        failure,
        via,
        tag: m
            .tag
            .map(|t| {
                format!(
                    "Tag {}",
                    serde_json::to_value(t)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_default(),
    }
}

async fn thread(
    state: &AppState,
    signed: &Signed,
    id: ConversationId,
    names: &HashMap<UserId, String>,
    senders: &[switchboard_core::sender::Sender],
    keep: &str,
) -> WebResult<Thread> {
    let principal = &signed.0.principal;
    let ConversationDetail { view, contact, .. } = conversations::get(state, principal, id).await?;
    let mut history = conversations::contact_history(state, principal, id, HISTORY).await?;
    history.reverse();
    let c = &view.conversation;
    let now = state.now();
    let me = principal.user_id();
    let actor = Actor {
        user: me,
        role: principal.role(),
    };
    let assignment = c.assignment();
    let mine = c.assignee_id.is_some() && c.assignee_id == me;
    let can_claim = c.state != ConversationState::Claimed
        || (!mine && workflow::transition(assignment, actor, Action::Claim).is_ok());
    let can_unclaim = workflow::transition(assignment, actor, Action::Unclaim).is_ok();
    let can_close = c.state != ConversationState::Closed
        && workflow::transition(assignment, actor, Action::Close).is_ok();
    let transfer_allowed = principal.role() >= Role::Supervisor;
    let agents = if transfer_allowed {
        let mut users = state
            .store()
            .list_users(&PageRequest {
                limit: 200,
                ..Default::default()
            })
            .await
            .map(|p| p.items)
            .unwrap_or_default();
        users.retain(|u| u.role == Role::Admin || u.permitted_sender_ids.contains(&c.sender_id));
        users
            .into_iter()
            .map(|u| Choice::new(u.id.to_string(), u.name, c.assignee_id == Some(u.id)))
            .collect()
    } else {
        Vec::new()
    };
    let (window_state, window_text, closes_at) = match (c.channel, view.window.closes_at) {
        (Channel::Sms, _) => ("none", "SMS has no window".to_owned(), String::new()),
        (_, None) => (
            "closed",
            "No customer message yet: only templates".to_owned(),
            String::new(),
        ),
        (_, Some(at)) if view.window.open => (
            "open",
            format!("Window open: closes in {}", span(at - now)),
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        ),
        (_, Some(at)) => (
            "closed",
            format!("Window closed {} ago", span(now - at)),
            String::new(),
        ),
    };
    let reply_allowed = workflow::reply(assignment, actor, c.last_message_at.is_none());
    let composer = composer(
        state,
        principal,
        &view,
        &contact,
        reply_allowed.err(),
        senders,
    )
    .await?;
    let templates = sender_templates(state, c.sender_id).await;
    let bubbles = history
        .into_iter()
        .map(|m| bubble(m, c.sender_id, senders, &templates, &contact))
        .collect();
    let name = contact
        .name
        .clone()
        .or_else(|| contact.phone.as_ref().map(ToString::to_string))
        .unwrap_or_else(|| "Unknown contact".to_owned());
    let _ = keep;
    Ok(Thread {
        id: c.id.to_string(),
        name,
        phone: contact
            .phone
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| {
                contact
                    .messenger_psid
                    .as_ref()
                    .map(|p| p.as_str().to_owned())
            })
            .unwrap_or_default(),
        contact_href: format!("/contacts/{}", contact.id),
        channel_key: channel_key(c.channel).to_owned(),
        channel: channel_label(c.channel),
        state: state_label(c.state),
        assignee: c
            .assignee_id
            .and_then(|a| names.get(&a).cloned())
            .unwrap_or_default(),
        mine,
        can_claim: can_claim && me.is_some(),
        can_unclaim,
        can_close,
        transfer_allowed,
        agents,
        bubbles,
        window_state,
        window_text,
        closes_at,
        composer,
    })
}

/// The sender's approved templates, in every locale.
async fn sender_templates(state: &AppState, sender: SenderId) -> Vec<MessageTemplate> {
    state
        .store()
        .list_templates(
            &TemplateFilter {
                sender_id: Some(sender),
                name: None,
                status: Some(TemplateStatus::Approved),
            },
            &PageRequest {
                limit: 200,
                ..Default::default()
            },
        )
        .await
        .map(|p| p.items)
        .unwrap_or_default()
}

/// Asks the policy what may be sent now, as the composer must offer (R5.5).
async fn composer(
    state: &AppState,
    principal: &Principal,
    view: &ConversationView,
    contact: &switchboard_core::contact::Contact,
    reply_refusal: Option<workflow::Refusal>,
    senders: &[switchboard_core::sender::Sender],
) -> WebResult<Composer> {
    let c = &view.conversation;
    let mut composer = Composer {
        blocked: None,
        banner: None,
        banner_tone: "warn",
        free_text: false,
        tags: Vec::new(),
        templates: Vec::new(),
        recontact: None,
        opt_in: None,
        sms_offer: None,
        attach: false,
        attach_limit: state.media_limit_bytes(),
        attach_limit_text: switchboard_app::uploads::human_size(state.media_limit_bytes()),
    };
    if let Some(refusal) = reply_refusal {
        composer.blocked = Some(match refusal {
            workflow::Refusal::ClaimedByOther => {
                "Another agent holds this conversation: you are reading it without claiming it."
                    .to_owned()
            }
            _ => "Claim this conversation to reply.".to_owned(),
        });
        return Ok(composer);
    }
    let probe = SendInput {
        conversation_id: Some(c.id),
        text: Some("…".to_owned()),
        ..SendInput::default()
    };
    let decision = sending::what_is_allowed(state, principal, &probe).await?;
    composer.free_text = decision
        .allowed_kinds
        .contains(&ChannelTemplateType::Session)
        && matches!(decision.verdict, Verdict::Allow(_));
    // WhatsApp takes an upload; Twilio and Messenger fetch a link, which needs a public URL.
    composer.attach = composer.free_text
        && senders
            .iter()
            .find(|s| s.id == c.sender_id)
            .is_some_and(|s| match s.provider {
                ProviderConfig::WhatsappCloud(_) | ProviderConfig::Sandbox => true,
                ProviderConfig::Twilio(_) | ProviderConfig::Messenger(_) => {
                    state.public_url().is_some()
                }
            });
    let now = state.now();
    if !composer.free_text {
        composer.banner = Some(match (&decision.verdict, view.window.closes_at) {
            (Verdict::Refuse { code, .. }, _) if code.as_str() == "opted_out" => {
                composer.banner_tone = "bad";
                "The contact declined these messages. Composing is disabled; they can opt in \
                 any time by replying YES."
                    .to_owned()
            }
            (_, Some(at)) if at <= now => format!(
                "The 24-hour window closed {} ago: send an approved template.",
                span(now - at)
            ),
            (Verdict::Refuse { reason, .. }, _) => plain(reason),
            _ => "Free text is not allowed now: send an approved template.".to_owned(),
        });
    }
    if c.channel == Channel::Messenger
        && decision
            .allowed_kinds
            .contains(&ChannelTemplateType::MessageTag)
    {
        let human = view
            .window
            .human_agent_until
            .is_some_and(|until| now < until);
        for tag in [
            MessageTag::HumanAgent,
            MessageTag::AccountUpdate,
            MessageTag::ConfirmedEventUpdate,
            MessageTag::PostPurchaseUpdate,
        ] {
            if tag == MessageTag::HumanAgent && !human {
                continue;
            }
            let wire = serde_json::to_value(tag)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            composer.tags.push(Choice::new(wire.clone(), wire, false));
        }
    }
    // Templates allowed now, with the fields the agent fills.
    let allowed: Vec<String> = decision.allowed_templates.clone();
    let templates = sender_templates(state, c.sender_id).await;
    let locale = contact.locale.as_ref().map(|l| l.as_str().to_owned());
    let mut seen = Vec::new();
    for name in &allowed {
        if seen.contains(name) {
            continue;
        }
        seen.push(name.clone());
        let candidates: Vec<&MessageTemplate> = templates
            .iter()
            .filter(|t| &t.content.name == name)
            .collect();
        let Some(t) = candidates
            .iter()
            .find(|t| Some(t.content.locale.as_str().to_owned()) == locale)
            .or_else(|| candidates.first())
        else {
            continue;
        };
        let choice = TemplateChoice {
            name: t.content.name.clone(),
            locale: t.content.locale.as_str().to_owned(),
            body: preview_for(t, contact),
            fields: t
                .content
                .variables()
                .into_iter()
                .filter(|v| !t.content.variable_mapping.contains_key(v))
                .collect(),
            recontact: t.recontact,
        };
        if t.recontact && !view.window.open {
            composer.recontact = Some(TemplateChoice {
                fields: choice.fields.clone(),
                name: choice.name.clone(),
                locale: choice.locale.clone(),
                body: choice.body.clone(),
                recontact: true,
            });
        }
        composer.templates.push(choice);
    }
    // WhatsApp opt-in (R4.3): what the request button may do now, and its outcomes.
    if c.channel == Channel::Whatsapp {
        let store = state.store();
        let events = store
            .consent_events(contact.id, Some(Channel::Whatsapp))
            .await
            .map_err(|e| WebError::from(AppError::Internal(e)))?;
        let status = current_status(&events, Channel::Whatsapp);
        let last_request_at = events
            .iter()
            .filter(|e| e.status == ConsentStatus::Requested)
            .map(|e| e.at)
            .max();
        let no_whatsapp = store
            .whatsapp_unavailable_since(contact.id)
            .await
            .map_err(|e| WebError::from(AppError::Internal(e)))?
            .is_some();
        if no_whatsapp {
            composer.banner_tone = "bad";
            composer.banner = Some("This contact has no WhatsApp. Send by SMS instead?".to_owned());
            composer.sms_offer = senders
                .iter()
                .find(|s| s.channel == Channel::Sms)
                .map(|s| s.id.to_string());
            composer.free_text = false;
            composer.templates.clear();
            composer.recontact = None;
        } else if status == ConsentStatus::OptedOut {
            composer.banner_tone = "bad";
            composer.banner = Some(
                "The contact declined WhatsApp messages. Composing and templates are disabled; \
                 they can opt in any time by replying YES."
                    .to_owned(),
            );
            composer.free_text = false;
            composer.templates.clear();
            composer.recontact = None;
        } else {
            match check_opt_in_request(status, last_request_at, no_whatsapp, now) {
                Ok(()) => {
                    composer.opt_in = Some(match status {
                        ConsentStatus::Requested => {
                            "No answer to the last request for a day: you may ask again.".to_owned()
                        }
                        _ => "The contact has not opted in to WhatsApp notifications.".to_owned(),
                    })
                }
                Err(refusal) => {
                    if status == ConsentStatus::Requested {
                        composer.opt_in = None;
                        if composer.banner.is_none() {
                            composer.banner_tone = "info";
                        }
                        composer
                            .banner
                            .get_or_insert_with(|| plain(&refusal.reason()));
                    }
                }
            }
        }
    }
    Ok(composer)
}

/// The list's filters a form carried back, re-encoded from the known keys only, so that
/// nothing else reaches the redirect.
fn kept(form: &FormData) -> String {
    let keep = form.text("keep");
    let mut query = InboxQuery::default();
    for (key, value) in form_urlencoded::parse(keep.as_bytes()) {
        let value = Some(value.into_owned());
        match key.as_ref() {
            "tab" => query.tab = value,
            "channel" => query.channel = value,
            "sender_id" => query.sender_id = value,
            "q" => query.q = value,
            "sort" => query.sort = value,
            _ => {}
        }
    }
    query.keep()
}

/// Where to go after an action: back to the conversation, keeping the list's filters.
fn back(id: &str, form: &FormData, outcome: Result<&str, &str>) -> Redirect {
    let id = id
        .parse::<ConversationId>()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let mut q = form_urlencoded::Serializer::new(kept(form));
    match outcome {
        Ok(notice) => q.append_pair("notice", notice),
        Err(code) => q.append_pair("error", code),
    };
    Redirect::to(&format!("/inbox/{id}?{}", q.finish()))
}

fn refusal_code(error: &AppError) -> Option<&'static str> {
    match error {
        AppError::Conflict { code, .. } | AppError::ForbiddenResource { code, .. } => Some(code),
        AppError::Validation(errors) => {
            let first = errors.clone().into_errors().into_iter().next()?;
            ["sender_not_permitted"]
                .into_iter()
                .find(|c| *c == first.code)
        }
        AppError::PolicyRefused(decision) => {
            let (code, _) = decision.refusal()?;
            [
                "window_closed",
                "template_required",
                "opted_out",
                "consent_required",
                "media_too_large",
            ]
            .into_iter()
            .find(|c| *c == code.as_str())
            .or(Some("send_failed"))
        }
        _ => None,
    }
}

async fn act(
    state: AppState,
    signed: Signed,
    id: String,
    form: FormData,
    action: impl FnOnce(&FormData) -> WebResult<Action>,
    notice: &'static str,
) -> WebResult<Redirect> {
    form.check_csrf(&signed)?;
    let conversation = conversation_id(&id)?;
    let action = action(&form)?;
    match conversations::act(&state, &signed.0.principal, conversation, action).await {
        Ok(_) => Ok(back(&id, &form, Ok(notice))),
        Err(e) => match refusal_code(&e) {
            Some(code) => Ok(back(&id, &form, Err(code))),
            None => Err(e.into()),
        },
    }
}

async fn claim(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult<Redirect> {
    act(state, signed, id, form, |_| Ok(Action::Claim), "claimed").await
}

async fn unclaim(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult<Redirect> {
    act(
        state,
        signed,
        id,
        form,
        |_| Ok(Action::Unclaim),
        "unclaimed",
    )
    .await
}

async fn close(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult<Redirect> {
    act(state, signed, id, form, |_| Ok(Action::Close), "closed").await
}

async fn transfer(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult<Redirect> {
    // The form is shown to agents too, so that the refusal says who may transfer.
    if form.text("agent_id").is_empty() && signed.0.principal.role() < Role::Supervisor {
        form.check_csrf(&signed)?;
        return Ok(back(&id, &form, Err("transfer_not_allowed")));
    }
    act(
        state,
        signed,
        id,
        form,
        |form| {
            let to: UserId = form.text("agent_id").parse().map_err(|_| {
                WebError::BadRequest("Choose who takes the conversation over.".to_owned())
            })?;
            Ok(Action::Transfer { to })
        },
        "transferred",
    )
    .await
}

/// The composer's form: plain, or multipart when it may carry a file.
async fn read_send_form(
    state: &AppState,
    signed: &Signed,
    request: Request,
) -> WebResult<(FormData, Option<Result<Upload, AppError>>)> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    if !multipart {
        let form = FormData::from_request(request, state).await?;
        form.check_csrf(signed)?;
        return Ok((form, None));
    }
    let bad_upload = |e: axum::extract::multipart::MultipartError| {
        WebError::BadRequest(format!("The upload could not be read: {e}"))
    };
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| WebError::BadRequest(format!("The form could not be read: {e}")))?;
    let mut pairs = Vec::new();
    let mut upload = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_upload)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name != "attachment" {
            pairs.push((name, field.text().await.map_err(bad_upload)?));
            continue;
        }
        // One file a reply: a second part is not kept.
        if upload.is_some() {
            continue;
        }
        // The CSRF token comes before the file in the form, so nothing is kept for a forged
        // request; an empty file input is no attachment.
        FormData::from_pairs(pairs.clone()).check_csrf(signed)?;
        let mime_type = field.content_type().map(str::to_owned);
        let filename = field.file_name().map(str::to_owned).unwrap_or_default();
        if filename.is_empty() {
            while field.chunk().await.map_err(bad_upload)?.is_some() {}
            continue;
        }
        let mut writer = UploadWriter::start(state, &signed.0.principal).await?;
        let received = crate::api::media::receive(&mut writer, &mut field).await;
        match received {
            Ok(Ok(())) => {
                upload = Some(
                    writer
                        .finish(state, mime_type.as_deref(), Some(&filename))
                        .await,
                );
            }
            // Refused, or cut off at the form's bound (which only a file over the limit
            // reaches): the fields before the file are all the answer needs.
            Ok(Err(refused)) => {
                upload = Some(Err(refused));
                break;
            }
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                upload = Some(Err(switchboard_app::uploads::too_large(
                    state.media_limit_bytes(),
                )));
                break;
            }
            Err(e) => return Err(bad_upload(e)),
        }
    }
    let form = FormData::from_pairs(pairs);
    form.check_csrf(signed)?;
    Ok((form, upload))
}

async fn send(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    request: Request,
) -> WebResult<Redirect> {
    let conversation = conversation_id(&id)?;
    let (form, upload) = read_send_form(&state, &signed, request).await?;
    if let Some(upload) = upload {
        return send_file(&state, &signed, &id, conversation, &form, upload).await;
    }
    let mut input = SendInput {
        conversation_id: Some(conversation),
        ..SendInput::default()
    };
    if let Some(name) = form.opt("template") {
        let mut variables = Map::new();
        for (key, value) in form_pairs(&form) {
            if let Some(var) = key.strip_prefix("var_") {
                if !value.trim().is_empty() {
                    variables.insert(var.to_owned(), Value::String(value.trim().to_owned()));
                }
            }
        }
        input.template = Some(TemplateSend {
            name,
            locale: form.opt("locale"),
            variables,
        });
    } else {
        let Some(text) = form.opt("text") else {
            return Ok(back(&id, &form, Err("empty_message")));
        };
        input.text = Some(text);
        input.tag = form
            .opt("tag")
            .and_then(|t| serde_json::from_value::<MessageTag>(Value::String(t)).ok());
    }
    match sending::send_message(&state, &signed.0.principal, input, None).await {
        Ok(_) => Ok(back(&id, &form, Ok("sent"))),
        Err(e) => match refusal_code(&e) {
            Some(code) => Ok(back(&id, &form, Err(code))),
            None => match e {
                AppError::Validation(_) => Ok(back(&id, &form, Err("send_failed"))),
                other => Err(other.into()),
            },
        },
    }
}

/// Sends an attached file, the text as its caption. Audio and stickers carry no caption on
/// any channel, so their text follows as a message of its own.
async fn send_file(
    state: &AppState,
    signed: &Signed,
    id: &str,
    conversation: ConversationId,
    form: &FormData,
    upload: Result<Upload, AppError>,
) -> WebResult<Redirect> {
    let upload = match upload {
        Ok(upload) => upload,
        Err(AppError::TooLarge { code, .. }) => return Ok(back(id, form, Err(code))),
        Err(AppError::Validation(errors))
            if errors
                .clone()
                .into_errors()
                .iter()
                .any(|e| e.code == "empty_file") =>
        {
            return Ok(back(id, form, Err("empty_file")))
        }
        Err(other) => return Err(other.into()),
    };
    let text = form.opt("text");
    // Messenger attachments carry no caption either.
    let (_, sender) = state
        .store()
        .conversation_pair(conversation)
        .await
        .map_err(|_| WebError::NotFound("That conversation does not exist.".to_owned()))?;
    let messenger = state
        .store()
        .get_sender(sender)
        .await
        .map_err(AppError::Internal)?
        .channel
        == Channel::Messenger;
    let captioned = !messenger && !matches!(upload.kind, MediaKind::Audio | MediaKind::Sticker);
    let file = SendInput {
        conversation_id: Some(conversation),
        media: Some(MediaInput {
            kind: Some(upload.kind),
            url: None,
            sha256: Some(upload.sha256),
            size_bytes: None,
            caption: text.clone().filter(|_| captioned),
            filename: upload.filename,
            mime_type: None,
        }),
        ..SendInput::default()
    };
    let mut sends = vec![file];
    if let Some(text) = text.filter(|_| !captioned) {
        sends.push(SendInput {
            conversation_id: Some(conversation),
            text: Some(text),
            ..SendInput::default()
        });
    }
    for input in sends {
        if let Err(e) = sending::send_message(state, &signed.0.principal, input, None).await {
            return match refusal_code(&e) {
                Some(code) => Ok(back(id, form, Err(code))),
                None => match e {
                    AppError::Validation(_) => Ok(back(id, form, Err("send_failed"))),
                    other => Err(other.into()),
                },
            };
        }
    }
    Ok(back(id, form, Ok("sent")))
}

fn form_pairs(form: &FormData) -> Vec<(String, String)> {
    form.pairs()
}

async fn request_opt_in(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult<Redirect> {
    form.check_csrf(&signed)?;
    let conversation = conversation_id(&id)?;
    let principal = &signed.0.principal;
    let detail = conversations::get(&state, principal, conversation).await?;
    let c = &detail.view.conversation;
    match consent::request_opt_in(
        &state,
        principal,
        c.contact_id,
        OptInRequestInput {
            sender_id: c.sender_id,
            text: None,
        },
    )
    .await
    {
        Ok(_) => Ok(back(&id, &form, Ok("opt_in_sent"))),
        Err(e) => match refusal_code(&e) {
            Some(code) => Ok(back(&id, &form, Err(code))),
            None => Err(e.into()),
        },
    }
}

/// Opens (or starts) the contact's conversation on another sender, such as SMS for a contact
/// without WhatsApp.
async fn switch_sender(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult<Redirect> {
    form.check_csrf(&signed)?;
    let conversation = conversation_id(&id)?;
    let sender: SenderId = form
        .text("sender_id")
        .parse()
        .map_err(|_| WebError::BadRequest("Choose a sender.".to_owned()))?;
    let other =
        conversations::open_with_sender(&state, &signed.0.principal, conversation, sender).await?;
    Ok(Redirect::to(&format!(
        "/inbox/{other}?{}",
        form.text("keep")
    )))
}
