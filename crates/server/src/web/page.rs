//! What every page shares: the signed-in user, the layout's chrome, forms with their CSRF
//! token and field errors, and errors shown as pages rather than JSON.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use switchboard_app::sessions::{self, SignedIn};
use switchboard_app::{AppError, AppState};
use switchboard_core::{Permission, Role};

use super::cookies;

#[derive(Clone, Copy, Debug)]
pub struct WebConfig {
    pub secure_cookies: bool,
}

/// The signed-in user of a page; without a valid session the page answers with a redirect
/// to the sign-in form.
pub struct Signed(pub SignedIn);

impl FromRequestParts<AppState> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let secret = cookies::session_secret(&parts.headers).ok_or(WebError::SignIn)?;
        match sessions::resolve(state, &secret).await {
            Ok(signed) => Ok(Signed(signed)),
            Err(AppError::Unauthorized) => Err(WebError::SignIn),
            Err(other) => Err(other.into()),
        }
    }
}

impl axum::extract::OptionalFromRequestParts<AppState> for Signed {
    type Rejection = WebError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, WebError> {
        match <Signed as FromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(signed) => Ok(Some(signed)),
            Err(WebError::SignIn) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

impl Signed {
    pub fn can(&self, permission: Permission) -> bool {
        self.0.principal.can(permission)
    }
}

/// A page that could not be shown.
#[derive(Debug)]
pub enum WebError {
    /// Not signed in (or the session ended): go to the sign-in form.
    SignIn,
    Forbidden(String),
    NotFound(String),
    BadRequest(String),
    Internal,
}

impl From<AppError> for WebError {
    fn from(error: AppError) -> Self {
        match error {
            AppError::Unauthorized => WebError::SignIn,
            AppError::Forbidden { permission } => WebError::Forbidden(format!(
                "This needs the {permission} permission, which your role does not have."
            )),
            AppError::ForbiddenResource { detail, .. } => WebError::Forbidden(detail),
            AppError::NotFound { resource } => {
                WebError::NotFound(format!("That {resource} does not exist (any more)."))
            }
            AppError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error on a page");
                WebError::Internal
            }
            other => WebError::BadRequest(plain(&other.to_string())),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    title: &'static str,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            WebError::SignIn => return Redirect::to("/login").into_response(),
            WebError::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, "That did not work", m),
            WebError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side. It has been logged; please try again."
                    .to_owned(),
            ),
        };
        let mut response = render(&ErrorPage { title, message });
        *response.status_mut() = status;
        response
    }
}

pub type WebResult<T = Response> = Result<T, WebError>;

/// Renders a page with the headers every page carries: never cached (pages hold CSRF tokens
/// and customers' data), never framed, and scripts and styles only from this server.
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = Html(html).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                     script-src 'self'; frame-ancestors 'none'; form-action 'self'; \
                     base-uri 'none'",
                ),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("same-origin"),
            );
            response
        }
        Err(error) => {
            tracing::error!(?error, "rendering a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not render the page",
            )
                .into_response()
        }
    }
}

/// Text for people: the API's messages quote field names in backticks.
pub fn plain(text: &str) -> String {
    text.replace('`', "")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Inbox,
    Contacts,
    Campaigns,
    Templates,
    Senders,
    Users,
    Settings,
}

pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    /// Inline SVG, ours: decorative, hidden from screen readers next to the label.
    pub icon: &'static str,
    pub current: bool,
}

/// The layout's frame around every signed-in page.
pub struct Chrome {
    pub title: String,
    pub user_name: String,
    pub user_email: String,
    pub role: &'static str,
    pub initials: String,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub notice: Option<String>,
    pub asset_version: &'static str,
}

const ICON_INBOX: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M4 4h16v10h-5l-1.5 3h-3L9 14H4z" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"/><path d="M4 14v6h16v-6" fill="none" stroke="currentColor" stroke-width="2"/></svg>"#;
const ICON_CONTACTS: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="9" cy="8" r="4" fill="none" stroke="currentColor" stroke-width="2"/><path d="M2 21c0-4 3-6 7-6s7 2 7 6" fill="none" stroke="currentColor" stroke-width="2"/><path d="M16 4a4 4 0 0 1 0 8M19 15c2 1 3 3 3 6" fill="none" stroke="currentColor" stroke-width="2"/></svg>"#;
const ICON_CAMPAIGNS: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 10v4h4l7 5V5L7 10z" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"/><path d="M17 9a4 4 0 0 1 0 6M19.5 6.5a8 8 0 0 1 0 11" fill="none" stroke="currentColor" stroke-width="2"/></svg>"#;
const ICON_TEMPLATES: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="4" y="3" width="16" height="18" rx="2" fill="none" stroke="currentColor" stroke-width="2"/><path d="M8 8h8M8 12h8M8 16h5" stroke="currentColor" stroke-width="2"/></svg>"#;
const ICON_SENDERS: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M3 11l18-8-8 18-2-8z" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round"/></svg>"#;
const ICON_USERS: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="8" r="4" fill="none" stroke="currentColor" stroke-width="2"/><path d="M4 21c0-4 4-6 8-6s8 2 8 6" fill="none" stroke="currentColor" stroke-width="2"/></svg>"#;
const ICON_SETTINGS: &str = r#"<svg viewBox="0 0 24 24" aria-hidden="true"><circle cx="12" cy="12" r="3" fill="none" stroke="currentColor" stroke-width="2"/><path d="M12 2v3M12 19v3M2 12h3M19 12h3M4.9 4.9l2.1 2.1M17 17l2.1 2.1M4.9 19.1L7 17M17 7l2.1-2.1" stroke="currentColor" stroke-width="2"/></svg>"#;

impl Chrome {
    pub fn new(signed: &Signed, section: Section, title: impl Into<String>) -> Chrome {
        let principal = &signed.0.principal;
        let user = signed.0.user();
        let role = principal.role();
        // Senders, users and settings are for running the service: admins change them and
        // supervisors may look; agents are not shown them.
        let staff = role >= Role::Supervisor;
        let items: [(Section, &str, &str, &str, bool); 7] = [
            (
                Section::Inbox,
                "/inbox",
                "Inbox",
                ICON_INBOX,
                principal.can(Permission::MessagesRead),
            ),
            (
                Section::Contacts,
                "/contacts",
                "Contacts",
                ICON_CONTACTS,
                principal.can(Permission::ContactsRead),
            ),
            (
                Section::Campaigns,
                "/campaigns",
                "Campaigns",
                ICON_CAMPAIGNS,
                principal.can(Permission::CampaignsRead),
            ),
            (
                Section::Templates,
                "/templates",
                "Templates",
                ICON_TEMPLATES,
                principal.can(Permission::TemplatesRead),
            ),
            (
                Section::Senders,
                "/senders",
                "Senders",
                ICON_SENDERS,
                staff && principal.can(Permission::SendersRead),
            ),
            (
                Section::Users,
                "/users",
                "Users",
                ICON_USERS,
                staff && principal.can(Permission::UsersRead),
            ),
            (
                Section::Settings,
                "/settings",
                "Settings",
                ICON_SETTINGS,
                staff && principal.can(Permission::SettingsRead),
            ),
        ];
        let nav = items
            .into_iter()
            .filter(|item| item.4)
            .map(|(s, href, label, icon, _)| NavItem {
                href,
                label,
                icon,
                current: s == section,
            })
            .collect();
        let initials = user
            .name
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .take(2)
            .collect::<String>()
            .to_uppercase();
        Chrome {
            title: title.into(),
            user_name: user.name.clone(),
            user_email: user.email.clone(),
            role: role.as_str(),
            initials,
            csrf: signed.0.session.csrf_token.clone(),
            nav,
            notice: None,
            asset_version: super::assets::VERSION,
        }
    }

    /// Shows the outcome of the last change, named by a fixed code in the redirect's query so
    /// that a link cannot put words of its choosing on the page.
    pub fn with_notice(mut self, code: Option<&str>) -> Chrome {
        self.notice = code.and_then(notice_text).map(str::to_owned);
        self
    }
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "user_created" => "User created.",
        "user_saved" => "User saved.",
        "user_deleted" => "User deleted.",
        "sender_created" => "Sender created.",
        "sender_saved" => "Sender saved.",
        "template_created" => "Template created as a draft.",
        "template_submitted" => "Template submitted for approval.",
        "contact_created" => "Contact created.",
        "consent_recorded" => "Consent recorded.",
        "hours_saved" => "Business hours saved.",
        "hours_cleared" => "Business hours cleared: the business is always open.",
        "campaign_created" => "Campaign created.",
        "campaign_start" => "Campaign started.",
        "campaign_pause" => "Campaign paused: nobody new is sent to until you resume it.",
        "campaign_resume" => "Campaign resumed.",
        "campaign_stop" => "Campaign stopped.",
        "campaign_retry" => "Retry run started for the recipients that failed.",
        _ => return None,
    })
}

/// A submitted form, as name-value pairs in order (a name may repeat, as checkboxes do).
pub struct FormData(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for FormData {
    type Rejection = WebError;

    async fn from_request(req: Request, state: &S) -> Result<Self, WebError> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| WebError::BadRequest(format!("The form could not be read: {e}")))?;
        Ok(FormData(
            form_urlencoded::parse(&bytes).into_owned().collect(),
        ))
    }
}

impl FormData {
    /// Fields read some other way (a multipart form's text parts).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        FormData(pairs)
    }

    /// The field's value, trimmed; empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    }

    /// The field's value, trimmed, or `None` when absent or blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.text(name)).filter(|v| !v.is_empty())
    }

    /// The field's value exactly as typed (passwords keep their spaces).
    pub fn raw(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// Every field, in order, as submitted.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.0.clone()
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_owned())
            .collect()
    }

    /// Refuses a form that does not carry the session's CSRF token: the browser sends the
    /// cookie with any site's post, but only our pages know the token.
    pub fn check_csrf(&self, signed: &Signed) -> WebResult<()> {
        if sessions::secrets_match(&self.raw("csrf"), &signed.0.session.csrf_token) {
            Ok(())
        } else {
            Err(WebError::Forbidden(
                "The form was out of date or did not come from this site. Reload the page and \
                 try again."
                    .to_owned(),
            ))
        }
    }
}

/// Field errors to show next to the fields of a form, by field name.
#[derive(Debug, Default)]
pub struct FormErrors {
    fields: BTreeMap<String, String>,
    /// Errors that belong to no field on the form.
    pub general: Vec<String>,
}

impl FormErrors {
    /// Splits a use case's refusal into errors for the form; anything that is not about the
    /// input (a missing permission, a failure) is the page's error instead.
    pub fn from_app(error: AppError, fields_on_form: &[&str]) -> WebResult<FormErrors> {
        let mut errors = FormErrors::default();
        match error {
            AppError::Validation(list) => {
                for e in list.into_errors() {
                    errors.add(&e.field, &e.detail, fields_on_form);
                }
            }
            AppError::Conflict { field, detail, .. } => {
                errors.add(field.as_deref().unwrap_or(""), &detail, fields_on_form)
            }
            AppError::Provider { detail, .. } => errors.general.push(plain(&detail)),
            other => return Err(other.into()),
        }
        Ok(errors)
    }

    fn add(&mut self, field: &str, detail: &str, fields_on_form: &[&str]) {
        // `provider.access_token` and `permitted_sender_ids[1]` are shown at their form field.
        let name = field
            .split('[')
            .next()
            .unwrap_or(field)
            .trim_start_matches("provider.");
        if fields_on_form.contains(&name) && !self.fields.contains_key(name) {
            self.fields.insert(name.to_owned(), plain(detail));
        } else {
            self.general.push(plain(detail));
        }
    }

    pub fn field(&mut self, name: &str, message: impl Into<String>) {
        self.fields.insert(name.to_owned(), message.into());
    }

    pub fn of(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }
}

/// A `<select>` option.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> Choice {
        Choice {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// A date and time as pages show it (UTC, minutes).
pub fn when(t: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// A channel's label with its icon, for lists.
pub fn channel_label(channel: switchboard_core::Channel) -> &'static str {
    match channel {
        switchboard_core::Channel::Whatsapp => "WhatsApp",
        switchboard_core::Channel::Messenger => "Messenger",
        switchboard_core::Channel::Sms => "SMS",
    }
}
