//! Contacts: search and paging, the consent ledger per contact (R4.1), and CSV import.

use askama::Template;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use serde::Deserialize;
use switchboard_app::consent::{self, ConsentInput};
use switchboard_app::contacts::{self, ContactImport, ImportReport, NewContact, RowError};
use switchboard_app::{AppError, AppState};
use switchboard_core::consent::{ConsentSource, ConsentStatus};
use switchboard_core::contact::Contact;
use switchboard_core::{Channel, ContactId, Permission};
use switchboard_store::contacts::ContactFilter;
use switchboard_store::{Order, PageRequest};

use super::page::{
    channel_label, plain, render, when, Choice, Chrome, FormData, FormErrors, Section, Signed,
    WebError, WebResult,
};

/// The largest CSV file accepted: a few hundred thousand contacts. The file is imported as it
/// streams in, so the limit bounds the request's duration, not memory.
const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;
const PAGE_SIZE: u32 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/contacts", get(list).post(create))
        .route("/contacts/new", get(new_form))
        .route(
            "/contacts/import",
            get(import_form)
                .post(import)
                .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        )
        .route("/contacts/{id}", get(show))
        .route("/contacts/{id}/consent", post(record_consent))
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    cursor: Option<String>,
    notice: Option<String>,
}

struct ConsentBadge {
    channel: &'static str,
    channel_key: &'static str,
    status: &'static str,
    label: &'static str,
}

struct ContactRow {
    id: String,
    name: String,
    phone: String,
    locale: String,
    consent: Vec<ConsentBadge>,
}

#[derive(Template)]
#[template(path = "contacts.html")]
struct ContactsPage {
    chrome: Chrome,
    q: String,
    contacts: Vec<ContactRow>,
    next: Option<String>,
    can_write: bool,
}

fn status_label(status: ConsentStatus) -> (&'static str, &'static str) {
    match status {
        ConsentStatus::None => ("none", "No consent"),
        ConsentStatus::Requested => ("requested", "Asked"),
        ConsentStatus::OptedIn => ("opted_in", "Opted in"),
        ConsentStatus::OptedOut => ("opted_out", "Opted out"),
    }
}

fn badges(ledger: &consent::Ledger) -> Vec<ConsentBadge> {
    Channel::ALL
        .into_iter()
        .map(|c| {
            let status = ledger
                .current
                .get(c.as_str())
                .copied()
                .unwrap_or(ConsentStatus::None);
            let (status, label) = status_label(status);
            ConsentBadge {
                channel: channel_label(c),
                channel_key: c.as_str(),
                status,
                label,
            }
        })
        .collect()
}

fn display_name(contact: &Contact) -> String {
    contact
        .name
        .clone()
        .unwrap_or_else(|| "Unnamed contact".to_owned())
}

/// Cursors are the last contact's id, opaque to people in the same way as the API's.
fn encode_cursor(after: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(after)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|id| id.parse::<ContactId>().is_ok())
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    Query(query): Query<ListQuery>,
) -> WebResult {
    let principal = &signed.0.principal;
    let q = query.q.unwrap_or_default().trim().to_owned();
    let filter = ContactFilter {
        q: Some(q.clone()).filter(|q| !q.is_empty()),
        owner_id: None,
    };
    let page = PageRequest {
        limit: PAGE_SIZE,
        after: query.cursor.as_deref().and_then(decode_cursor),
        order: Order::Desc,
    };
    let found = contacts::list_contacts(&state, principal, &filter, &page).await?;
    let mut rows = Vec::with_capacity(found.items.len());
    for contact in &found.items {
        let ledger = consent::ledger(&state, principal, contact.id).await?;
        rows.push(ContactRow {
            id: contact.id.to_string(),
            name: display_name(contact),
            phone: contact
                .phone
                .as_ref()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            locale: contact
                .locale
                .as_ref()
                .map(|l| l.as_str().to_owned())
                .unwrap_or_default(),
            consent: badges(&ledger),
        });
    }
    let next = found.next_after.as_deref().map(|after| {
        let mut link = format!("/contacts?cursor={}", encode_cursor(after));
        if !q.is_empty() {
            link.push_str("&q=");
            link.push_str(&form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>());
        }
        link
    });
    Ok(render(&ContactsPage {
        chrome: Chrome::new(&signed, Section::Contacts, "Contacts")
            .with_notice(query.notice.as_deref()),
        q,
        contacts: rows,
        next,
        can_write: signed.can(Permission::ContactsWrite),
    }))
}

#[derive(Template)]
#[template(path = "contact_new.html")]
struct NewContactPage {
    chrome: Chrome,
    name: String,
    phone: String,
    locale: String,
    errors: FormErrors,
}

async fn new_form(signed: Signed) -> WebResult {
    Ok(render(&NewContactPage {
        chrome: Chrome::new(&signed, Section::Contacts, "New contact"),
        name: String::new(),
        phone: String::new(),
        locale: String::new(),
        errors: FormErrors::default(),
    }))
}

async fn create(State(state): State<AppState>, signed: Signed, form: FormData) -> WebResult {
    form.check_csrf(&signed)?;
    let input = NewContact {
        name: form.opt("name"),
        phone: form.opt("phone"),
        locale: form.opt("locale"),
        ..Default::default()
    };
    let errors = match contacts::create_contact(&state, &signed.0.principal, input, None).await {
        Ok(created) => {
            return Ok(Redirect::to(&format!(
                "/contacts/{}?notice=contact_created",
                created.value.id
            ))
            .into_response())
        }
        Err(e) => FormErrors::from_app(e, &["name", "phone", "locale"])?,
    };
    let mut response = render(&NewContactPage {
        chrome: Chrome::new(&signed, Section::Contacts, "New contact"),
        name: form.text("name"),
        phone: form.text("phone"),
        locale: form.text("locale"),
        errors,
    });
    *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    Ok(response)
}

struct LedgerRow {
    at: String,
    channel: &'static str,
    status: &'static str,
    label: &'static str,
    source: String,
    evidence: String,
    actor: String,
}

struct Detail {
    label: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "contact.html")]
struct ContactPage {
    chrome: Chrome,
    id: String,
    name: String,
    details: Vec<Detail>,
    fields: Vec<Detail>,
    consent: Vec<ConsentBadge>,
    ledger: Vec<LedgerRow>,
    can_write: bool,
    channels: Vec<Choice>,
    statuses: Vec<Choice>,
    sources: Vec<Choice>,
    evidence: String,
    errors: FormErrors,
}

const SOURCES: &[(ConsentSource, &str)] = &[
    (ConsentSource::Agent, "Told an agent"),
    (ConsentSource::Website, "Website form"),
    (ConsentSource::Ivr, "Phone menu (IVR)"),
    (ConsentSource::Ad, "Ad"),
    (ConsentSource::Import, "Imported list"),
    (ConsentSource::Api, "Another system (API)"),
];

fn source_key(source: ConsentSource) -> String {
    serde_json::to_value(source)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn contact_page(
    state: &AppState,
    signed: &Signed,
    id: ContactId,
    notice: Option<&str>,
    typed: Option<&FormData>,
    errors: FormErrors,
) -> WebResult {
    let principal = &signed.0.principal;
    let contact = contacts::get_contact(state, principal, id).await?;
    let ledger = consent::ledger(state, principal, id).await?;
    let mut details = Vec::new();
    let mut add = |label, value: Option<String>| {
        if let Some(value) = value {
            details.push(Detail { label, value });
        }
    };
    add(
        "Phone",
        contact.phone.as_ref().map(|p| p.as_str().to_owned()),
    );
    add(
        "WhatsApp user ID",
        contact.whatsapp_user_id.as_ref().map(|u| u.to_string()),
    );
    add(
        "Messenger ID",
        contact.messenger_psid.as_ref().map(|p| p.to_string()),
    );
    add(
        "Language",
        contact.locale.as_ref().map(|l| l.as_str().to_owned()),
    );
    add("Added", Some(when(contact.created_at)));
    let fields = contact
        .fields
        .iter()
        .map(|(k, v)| Detail {
            label: "",
            value: format!(
                "{k}: {}",
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            ),
        })
        .collect();
    // The ledger names people by id (`user:<id>`); show their names where they still exist.
    let mut names = std::collections::BTreeMap::new();
    for event in &ledger.events {
        if let Some(id) = event.actor.strip_prefix("user:") {
            if !names.contains_key(id) {
                if let Ok(user) = id.parse() {
                    if let Ok(user) = state.store().get_user(user).await {
                        names.insert(id.to_owned(), user.name);
                    }
                }
            }
        }
    }
    let actor_name = |actor: &str| {
        actor
            .strip_prefix("user:")
            .and_then(|id| names.get(id).cloned())
            .unwrap_or_else(|| actor.to_owned())
    };
    let ledger_rows = ledger
        .events
        .iter()
        .rev()
        .map(|e| {
            let (status, label) = status_label(e.status);
            LedgerRow {
                at: when(e.at),
                channel: channel_label(e.channel),
                status,
                label,
                source: source_key(e.source).replace('_', " "),
                evidence: e.evidence.clone().unwrap_or_default(),
                actor: actor_name(&e.actor),
            }
        })
        .collect();
    let typed_text = |name: &str, default: &str| {
        typed
            .map(|f| f.text(name))
            .unwrap_or_else(|| default.to_owned())
    };
    let channel = typed_text("channel", "whatsapp");
    let status = typed_text("status", "opted_in");
    let source = typed_text("source", "agent");
    let mut response = render(&ContactPage {
        chrome: Chrome::new(signed, Section::Contacts, display_name(&contact)).with_notice(notice),
        id: id.to_string(),
        name: display_name(&contact),
        details,
        fields,
        consent: badges(&ledger),
        ledger: ledger_rows,
        can_write: signed.can(Permission::ContactsWrite),
        channels: Channel::ALL
            .into_iter()
            .map(|c| Choice::new(c.as_str(), channel_label(c), c.as_str() == channel))
            .collect(),
        statuses: [("opted_in", "Opted in"), ("opted_out", "Opted out")]
            .into_iter()
            .map(|(v, l)| Choice::new(v, l, v == status))
            .collect(),
        sources: SOURCES
            .iter()
            .map(|(s, l)| {
                let key = source_key(*s);
                let selected = key == source;
                Choice::new(key, *l, selected)
            })
            .collect(),
        evidence: typed_text("evidence", ""),
        errors,
    });
    if typed.is_some() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

fn parse_id(raw: &str) -> WebResult<ContactId> {
    raw.parse()
        .map_err(|_| WebError::NotFound("That contact does not exist.".to_owned()))
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> WebResult {
    contact_page(
        &state,
        &signed,
        parse_id(&id)?,
        query.notice.as_deref(),
        None,
        FormErrors::default(),
    )
    .await
}

fn word<T: serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

async fn record_consent(
    State(state): State<AppState>,
    signed: Signed,
    Path(id): Path<String>,
    form: FormData,
) -> WebResult {
    form.check_csrf(&signed)?;
    let id = parse_id(&id)?;
    let mut errors = FormErrors::default();
    let channel = form.text("channel").parse::<Channel>().ok();
    let status = word::<ConsentStatus>(&form.text("status"));
    let source = word::<ConsentSource>(&form.text("source"));
    if channel.is_none() {
        errors.field("channel", "Choose a channel.");
    }
    if status.is_none() {
        errors.field("status", "Choose opted in or opted out.");
    }
    if source.is_none() {
        errors.field("source", "Choose where the consent came from.");
    }
    if let (Some(channel), Some(status), Some(source)) = (channel, status, source) {
        let input = ConsentInput {
            channel,
            status,
            source,
            evidence: form.opt("evidence"),
        };
        match consent::record_consent(&state, &signed.0.principal, id, input).await {
            Ok(_) => {
                return Ok(
                    Redirect::to(&format!("/contacts/{id}?notice=consent_recorded"))
                        .into_response(),
                )
            }
            Err(e) => {
                errors = FormErrors::from_app(e, &["channel", "status", "source", "evidence"])?
            }
        }
    }
    contact_page(&state, &signed, id, None, Some(&form), errors).await
}

#[derive(Template)]
#[template(path = "contact_import.html")]
struct ImportPage {
    chrome: Chrome,
    error: Option<String>,
    report: Option<ImportReport>,
    file_name: String,
}

impl ImportPage {
    fn shown_errors(&self) -> &[RowError] {
        self.report
            .as_ref()
            .map(|r| r.errors.as_slice())
            .unwrap_or(&[])
    }
}

async fn import_form(signed: Signed) -> WebResult {
    if !signed.can(Permission::ContactsWrite) {
        return Err(AppError::Forbidden {
            permission: Permission::ContactsWrite,
        }
        .into());
    }
    Ok(render(&ImportPage {
        chrome: Chrome::new(&signed, Section::Contacts, "Import contacts"),
        error: None,
        report: None,
        file_name: String::new(),
    }))
}

/// Imports the uploaded CSV as it streams in. The CSRF token is a form field before the file,
/// so it is checked before any row is imported.
async fn import(
    State(state): State<AppState>,
    signed: Signed,
    mut multipart: Multipart,
) -> WebResult {
    let page = |error: Option<String>, report: Option<ImportReport>, file_name: String| {
        let failed = error.is_some();
        let mut response = render(&ImportPage {
            chrome: Chrome::new(&signed, Section::Contacts, "Import contacts"),
            error,
            report,
            file_name,
        });
        if failed {
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        }
        response
    };
    let bad_upload = |e: axum::extract::multipart::MultipartError| {
        WebError::BadRequest(format!("The upload could not be read: {e}"))
    };
    let mut csrf_ok = false;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_upload)? {
        match field.name() {
            Some("csrf") => {
                let token = field.text().await.map_err(bad_upload)?;
                csrf_ok =
                    switchboard_app::sessions::secrets_match(&token, &signed.0.session.csrf_token);
            }
            Some("file") => {
                if !csrf_ok {
                    return Err(WebError::Forbidden(
                        "The form was out of date or did not come from this site. Reload the \
                         page and try again."
                            .to_owned(),
                    ));
                }
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let mut import = ContactImport::new(&state, &signed.0.principal, &file_name)?;
                let mut bytes = 0usize;
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            bytes += chunk.len();
                            if let Err(e) = import.feed(&chunk).await {
                                return Ok(page(Some(app_message(e)?), None, file_name));
                            }
                        }
                        Ok(None) => break,
                        Err(e) => return Err(bad_upload(e)),
                    }
                }
                if bytes == 0 {
                    return Ok(page(
                        Some("Choose a CSV file to import.".to_owned()),
                        None,
                        file_name,
                    ));
                }
                return match import.finish().await {
                    Ok(report) => Ok(page(None, Some(report), file_name)),
                    Err(e) => Ok(page(Some(app_message(e)?), None, file_name)),
                };
            }
            _ => {}
        }
    }
    if !csrf_ok {
        return Err(WebError::Forbidden(
            "The form was out of date or did not come from this site. Reload the page and try \
             again."
                .to_owned(),
        ));
    }
    Ok(page(
        Some("Choose a CSV file to import.".to_owned()),
        None,
        String::new(),
    ))
}

/// The message of an import refused as a whole (a bad header, say); other errors are the page's.
fn app_message(error: AppError) -> WebResult<String> {
    match error {
        AppError::Validation(errors) => Ok(errors
            .into_errors()
            .into_iter()
            .map(|e| plain(&e.detail))
            .collect::<Vec<_>>()
            .join(" ")),
        other => Err(other.into()),
    }
}
