//! Senders: the business identities messages go out from, with their number health (R8.4) and
//! credential state (R8.5).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use switchboard_app::senders::{self, NewSender, SenderPatch};
use switchboard_app::AppState;
use switchboard_core::sender::{
    HealthStatus, ProviderInput, ProviderKind, QualityRating, Sender, TokenStatus,
};
use switchboard_core::{Channel, Permission, SenderId};
use switchboard_store::senders::SenderFilter;
use switchboard_store::{Order, PageRequest};

use super::page::{
    channel_label, render, Choice, Chrome, FormData, FormErrors, Section, Signed, WebError,
    WebResult,
};
use super::users::NoticeQuery;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/senders", get(list).post(create))
        .route("/senders/new", get(new_form))
        .route("/senders/{id}", get(edit).post(update))
}

/// A provider field of the form: its name (as the API names it), label, whether it is a
/// credential (never shown back), and the providers that use it.
struct FieldSpec {
    name: &'static str,
    label: &'static str,
    secret: bool,
    kinds: &'static [ProviderKind],
}

const WA: ProviderKind = ProviderKind::WhatsappCloud;
const MSG: ProviderKind = ProviderKind::Messenger;
const TW: ProviderKind = ProviderKind::Twilio;

const PROVIDER_FIELDS: &[FieldSpec] = &[
    FieldSpec {
        name: "phone_number_id",
        label: "Phone number ID",
        secret: false,
        kinds: &[WA],
    },
    FieldSpec {
        name: "waba_id",
        label: "WhatsApp Business account ID",
        secret: false,
        kinds: &[WA],
    },
    FieldSpec {
        name: "display_phone_number",
        label: "Display phone number",
        secret: false,
        kinds: &[WA],
    },
    FieldSpec {
        name: "page_id",
        label: "Page ID",
        secret: false,
        kinds: &[MSG],
    },
    FieldSpec {
        name: "access_token",
        label: "Access token",
        secret: true,
        kinds: &[WA],
    },
    FieldSpec {
        name: "page_access_token",
        label: "Page access token",
        secret: true,
        kinds: &[MSG],
    },
    FieldSpec {
        name: "app_secret",
        label: "App secret",
        secret: true,
        kinds: &[WA, MSG],
    },
    FieldSpec {
        name: "verify_token",
        label: "Webhook verify token",
        secret: true,
        kinds: &[WA, MSG],
    },
    FieldSpec {
        name: "account_sid",
        label: "Account SID",
        secret: false,
        kinds: &[TW],
    },
    FieldSpec {
        name: "auth_token",
        label: "Auth token",
        secret: true,
        kinds: &[TW],
    },
    FieldSpec {
        name: "from",
        label: "From number",
        secret: false,
        kinds: &[TW],
    },
    FieldSpec {
        name: "messaging_service_sid",
        label: "Messaging service SID",
        secret: false,
        kinds: &[TW],
    },
    FieldSpec {
        name: "api_base_url",
        label: "API base URL",
        secret: false,
        kinds: &[WA, MSG, TW],
    },
];

struct ProviderField {
    name: &'static str,
    label: &'static str,
    secret: bool,
    value: String,
    /// For a stored credential: its masked form, so the admin can tell it is set.
    placeholder: String,
    /// Space-separated provider kinds, for the script that shows only the relevant fields.
    kinds: String,
    error: Option<String>,
}

struct SenderForm {
    name: String,
    use_case: String,
    rate: String,
    channels: Vec<Choice>,
    kinds: Vec<Choice>,
    fields: Vec<ProviderField>,
}

struct SenderRow {
    id: String,
    name: String,
    channel: &'static str,
    channel_key: &'static str,
    provider: &'static str,
    use_case: String,
    status: &'static str,
    status_tone: &'static str,
    quality: &'static str,
    quality_tone: &'static str,
    limit: String,
    token: &'static str,
    token_tone: &'static str,
    token_expired: bool,
}

#[derive(Template)]
#[template(path = "senders.html")]
struct SendersPage {
    chrome: Chrome,
    senders: Vec<SenderRow>,
    can_write: bool,
}

#[derive(Template)]
#[template(path = "sender_form.html")]
struct SenderFormPage {
    chrome: Chrome,
    /// `None` for a new sender.
    id: Option<String>,
    health: Option<SenderRow>,
    form: SenderForm,
    errors: FormErrors,
    can_write: bool,
}

const FORM_FIELDS: &[&str] = &[
    "name",
    "use_case",
    "rate_limit_per_second",
    "channel",
    "kind",
    "phone_number_id",
    "waba_id",
    "display_phone_number",
    "page_id",
    "access_token",
    "page_access_token",
    "app_secret",
    "verify_token",
    "account_sid",
    "auth_token",
    "from",
    "messaging_service_sid",
    "api_base_url",
];

fn provider_label(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::WhatsappCloud => "WhatsApp Cloud API",
        ProviderKind::Messenger => "Messenger Platform",
        ProviderKind::Twilio => "Twilio",
        ProviderKind::Sandbox => "Sandbox (simulated)",
    }
}

fn row(sender: &Sender) -> SenderRow {
    let h = &sender.health;
    let (status, status_tone) = match h.status {
        HealthStatus::Pending => ("Pending", "neutral"),
        HealthStatus::Connected => ("Connected", "good"),
        HealthStatus::Offline => ("Offline", "bad"),
        HealthStatus::Flagged => ("Flagged", "warn"),
        HealthStatus::Restricted => ("Restricted", "bad"),
    };
    let (quality, quality_tone) = match h.quality_rating {
        QualityRating::Unknown => ("Unknown", "neutral"),
        QualityRating::Green => ("Green", "good"),
        QualityRating::Yellow => ("Yellow", "warn"),
        QualityRating::Red => ("Red", "bad"),
    };
    let (token, token_tone) = match h.token_status {
        TokenStatus::Unknown => ("Not checked yet", "neutral"),
        TokenStatus::Valid => ("Valid", "good"),
        TokenStatus::Expired => ("Expired: replace it", "bad"),
        TokenStatus::Invalid => ("Invalid: replace it", "bad"),
    };
    SenderRow {
        id: sender.id.to_string(),
        name: sender.name.clone(),
        channel: channel_label(sender.channel),
        channel_key: sender.channel.as_str(),
        provider: provider_label(sender.provider.kind()),
        use_case: sender.use_case.clone().unwrap_or_default(),
        status,
        status_tone,
        quality,
        quality_tone,
        limit: match h.messaging_limit_tier {
            Some(n) => format!("{n} users / 24 h"),
            None => "Unlimited or unknown".to_owned(),
        },
        token,
        token_tone,
        token_expired: matches!(h.token_status, TokenStatus::Expired | TokenStatus::Invalid),
    }
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<NoticeQuery>,
) -> WebResult {
    let page = PageRequest {
        limit: 200,
        after: None,
        order: Order::Asc,
    };
    let senders =
        senders::list_senders(&state, &signed.0.principal, &SenderFilter::default(), &page)
            .await?
            .items;
    Ok(render(&SendersPage {
        chrome: Chrome::new(&signed, Section::Senders, "Senders")
            .with_notice(query.notice.as_deref()),
        senders: senders.iter().map(row).collect(),
        can_write: signed.can(Permission::SendersWrite),
    }))
}

/// The form filled from what was typed (`form`) or, for an existing sender, from its stored
/// configuration (credentials are never put back into the page).
fn sender_form(
    form: Option<&FormData>,
    stored: Option<&Sender>,
    errors: &FormErrors,
) -> SenderForm {
    let stored_input = stored.map(|s| ProviderInput::from_config(&s.provider));
    let masked = |name: &str| -> String {
        let Some(sender) = stored else {
            return String::new();
        };
        use switchboard_core::sender::ProviderConfig as C;
        let secret = match (&sender.provider, name) {
            (C::WhatsappCloud(c), "access_token") => Some(&c.access_token),
            (C::WhatsappCloud(c), "app_secret") => Some(&c.app_secret),
            (C::WhatsappCloud(c), "verify_token") => Some(&c.verify_token),
            (C::Messenger(c), "page_access_token") => Some(&c.page_access_token),
            (C::Messenger(c), "app_secret") => Some(&c.app_secret),
            (C::Messenger(c), "verify_token") => Some(&c.verify_token),
            (C::Twilio(c), "auth_token") => Some(&c.auth_token),
            _ => None,
        };
        secret
            .map(|s| format!("{} (leave empty to keep)", s.masked()))
            .unwrap_or_default()
    };
    let stored_value = |name: &str| -> String {
        let Some(input) = &stored_input else {
            return String::new();
        };
        let value = match name {
            "phone_number_id" => &input.phone_number_id,
            "waba_id" => &input.waba_id,
            "display_phone_number" => &input.display_phone_number,
            "page_id" => &input.page_id,
            "account_sid" => &input.account_sid,
            "from" => &input.from,
            "messaging_service_sid" => &input.messaging_service_sid,
            "api_base_url" => &input.api_base_url,
            _ => &None,
        };
        value.clone().unwrap_or_default()
    };
    let value = |name: &str| match form {
        Some(f) => f.text(name),
        None => stored_value(name),
    };
    // A stored sender's channel is fixed (its select is disabled, so not posted back).
    let channel = match (form, stored) {
        (_, Some(s)) => s.channel.as_str().to_owned(),
        (Some(f), None) => f.text("channel"),
        (None, None) => "whatsapp".to_owned(),
    };
    let kind = match (form, stored) {
        (Some(f), _) => f.text("kind"),
        (None, Some(s)) => s.provider.kind().as_str().to_owned(),
        (None, None) => "whatsapp_cloud".to_owned(),
    };
    SenderForm {
        name: match (form, stored) {
            (Some(f), _) => f.text("name"),
            (None, Some(s)) => s.name.clone(),
            _ => String::new(),
        },
        use_case: match (form, stored) {
            (Some(f), _) => f.text("use_case"),
            (None, Some(s)) => s.use_case.clone().unwrap_or_default(),
            _ => String::new(),
        },
        rate: match (form, stored) {
            (Some(f), _) => f.text("rate_limit_per_second"),
            (None, Some(s)) => s
                .rate_limit_per_second
                .map(|r| r.to_string())
                .unwrap_or_default(),
            _ => String::new(),
        },
        channels: Channel::ALL
            .into_iter()
            .map(|c| Choice::new(c.as_str(), channel_label(c), c.as_str() == channel))
            .collect(),
        kinds: ProviderKind::ALL
            .into_iter()
            .map(|k| Choice::new(k.as_str(), provider_label(k), k.as_str() == kind))
            .collect(),
        fields: PROVIDER_FIELDS
            .iter()
            .map(|spec| ProviderField {
                name: spec.name,
                label: spec.label,
                secret: spec.secret,
                value: if spec.secret {
                    String::new()
                } else {
                    value(spec.name)
                },
                placeholder: if spec.secret {
                    masked(spec.name)
                } else {
                    String::new()
                },
                kinds: spec
                    .kinds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                error: errors.of(spec.name).map(str::to_owned),
            })
            .collect(),
    }
}

/// The provider fields typed into the form; blank ones are left out, so on an edit they keep
/// their stored values.
fn provider_input(form: &FormData, errors: &mut FormErrors) -> ProviderInput {
    let kind = match form.text("kind").parse() {
        Ok(kind) => Some(kind),
        Err(_) => {
            errors.field("kind", "Choose a provider.");
            None
        }
    };
    // Fields of other providers are ignored: the form shows them all when scripts are off.
    let used = |name: &str| {
        kind.is_some_and(|k| {
            PROVIDER_FIELDS
                .iter()
                .any(|f| f.name == name && f.kinds.contains(&k))
        })
    };
    let get = |name: &str| form.opt(name).filter(|_| used(name));
    ProviderInput {
        kind,
        phone_number_id: get("phone_number_id"),
        waba_id: get("waba_id"),
        access_token: get("access_token"),
        app_secret: get("app_secret"),
        verify_token: get("verify_token"),
        display_phone_number: get("display_phone_number"),
        page_id: get("page_id"),
        page_access_token: get("page_access_token"),
        account_sid: get("account_sid"),
        auth_token: get("auth_token"),
        from: get("from"),
        messaging_service_sid: get("messaging_service_sid"),
        api_base_url: get("api_base_url"),
    }
}

fn rate(form: &FormData, errors: &mut FormErrors) -> Option<u32> {
    let text = form.opt("rate_limit_per_second")?;
    match text.parse() {
        Ok(rate) => Some(rate),
        Err(_) => {
            errors.field(
                "rate_limit_per_second",
                "A whole number of messages per second.",
            );
            None
        }
    }
}

fn form_page(
    signed: &Signed,
    stored: Option<&Sender>,
    form: Option<&FormData>,
    errors: FormErrors,
) -> WebResult {
    let title = stored
        .map(|s| s.name.clone())
        .unwrap_or_else(|| "New sender".to_owned());
    let page = SenderFormPage {
        chrome: Chrome::new(signed, Section::Senders, title),
        id: stored.map(|s| s.id.to_string()),
        health: stored.map(row),
        form: sender_form(form, stored, &errors),
        errors,
        can_write: signed.can(Permission::SendersWrite),
    };
    let mut response = render(&page);
    if form.is_some() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

async fn new_form(signed: Signed) -> WebResult {
    if !signed.can(Permission::SendersWrite) {
        return Err(WebError::Forbidden("Only admins add senders.".to_owned()));
    }
    form_page(&signed, None, None, FormErrors::default())
}

async fn create(State(state): State<AppState>, signed: Signed, form: FormData) -> WebResult {
    form.check_csrf(&signed)?;
    let mut errors = FormErrors::default();
    let channel = match form.text("channel").parse::<Channel>() {
        Ok(c) => Some(c),
        Err(_) => {
            errors.field("channel", "Choose a channel.");
            None
        }
    };
    let rate = rate(&form, &mut errors);
    let provider = provider_input(&form, &mut errors);
    if let (Some(channel), true) = (channel, errors.is_empty()) {
        let input = NewSender {
            channel,
            name: form.text("name"),
            use_case: form.opt("use_case"),
            rate_limit_per_second: rate,
            provider,
        };
        match senders::create_sender(&state, &signed.0.principal, input).await {
            Ok(_) => return Ok(Redirect::to("/senders?notice=sender_created").into_response()),
            Err(e) => errors = FormErrors::from_app(e, FORM_FIELDS)?,
        }
    }
    form_page(&signed, None, Some(&form), errors)
}

fn parse_id(raw: &str) -> WebResult<SenderId> {
    raw.parse()
        .map_err(|_| WebError::NotFound("That sender does not exist.".to_owned()))
}

async fn edit(State(state): State<AppState>, signed: Signed, Path(id): Path<String>) -> WebResult {
    let sender = senders::get_sender(&state, &signed.0.principal, parse_id(&id)?).await?;
    form_page(&signed, Some(&sender), None, FormErrors::default())
}

async fn update(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult {
    form.check_csrf(&signed)?;
    let id = parse_id(&id)?;
    let mut errors = FormErrors::default();
    let rate = rate(&form, &mut errors);
    let provider = provider_input(&form, &mut errors);
    if errors.is_empty() {
        let patch = SenderPatch {
            channel: form.text("channel").parse().ok(),
            name: Some(form.text("name")),
            use_case: Some(form.opt("use_case")),
            rate_limit_per_second: Some(rate),
            provider: Some(provider),
        };
        match senders::update_sender(&state, &signed.0.principal, id, patch).await {
            Ok(_) => return Ok(Redirect::to("/senders?notice=sender_saved").into_response()),
            Err(e) => errors = FormErrors::from_app(e, FORM_FIELDS)?,
        }
    }
    let sender = senders::get_sender(&state, &signed.0.principal, id).await?;
    form_page(&signed, Some(&sender), Some(&form), errors)
}
