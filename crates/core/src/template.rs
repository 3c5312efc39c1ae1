//! Message templates (R3): WhatsApp templates submitted to Meta for approval, Messenger
//! message-tag templates, and SMS templates, with their variables and lifecycle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::contact::{Contact, Locale};
use crate::ids::{SenderId, TemplateId};
use crate::validation::{FieldError, ValidationErrors};

/// WhatsApp's body limit (R3.2); applied on every channel so a template reads the same anywhere.
pub const MAX_BODY_CHARS: usize = 1024;
/// Meta's limit of template names per WhatsApp Business Account (PROTOCOLS.md A.8); enforced
/// where templates are stored, not here.
pub const MAX_TEMPLATES_PER_WHATSAPP_SENDER: usize = 250;
pub const MAX_NAME_CHARS: usize = 512;
pub const MAX_HEADER_TEXT_CHARS: usize = 60;
pub const MAX_FOOTER_CHARS: usize = 60;
pub const MAX_BUTTONS: usize = 10;
pub const MAX_BUTTON_TEXT_CHARS: usize = 25;
pub const MAX_URL_CHARS: usize = 2000;
pub const MAX_COPY_CODE_CHARS: usize = 15;
/// Upload handles are opaque and can be long; the cap only keeps requests bounded.
pub const MAX_MEDIA_EXAMPLE_CHARS: usize = 4096;

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

impl TemplateStatus {
    /// The wire name (`approved`), for messages to people.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::Draft => "draft",
            TemplateStatus::Pending => "pending",
            TemplateStatus::Approved => "approved",
            TemplateStatus::Rejected => "rejected",
            TemplateStatus::Paused => "paused",
            TemplateStatus::Disabled => "disabled",
        }
    }

    pub const ALL: [TemplateStatus; 6] = [
        TemplateStatus::Draft,
        TemplateStatus::Pending,
        TemplateStatus::Approved,
        TemplateStatus::Rejected,
        TemplateStatus::Paused,
        TemplateStatus::Disabled,
    ];

    /// The lifecycle of R3.3. `Draft -> Approved` exists because Messenger and SMS templates
    /// need nobody's approval; `Rejected -> Draft` lets an author take a rejected template back
    /// to edit it before resubmitting. Staying in place is not a transition.
    pub fn can_transition_to(self, next: TemplateStatus) -> bool {
        use TemplateStatus::*;
        matches!(
            (self, next),
            (Draft, Pending)
                | (Draft, Approved)
                | (Pending, Approved)
                | (Pending, Rejected)
                | (Rejected, Pending)
                | (Rejected, Draft)
                | (Approved, Paused)
                | (Approved, Disabled)
                | (Paused, Approved)
                | (Paused, Disabled)
        )
    }

    /// Only approved templates can be sent (R3.3).
    pub fn is_sendable(self) -> bool {
        self == TemplateStatus::Approved
    }
}

/// Words and phrases that mark a text as promotional, matched case-insensitively on word
/// boundaries (`sale` does not match `wholesale` or `sales`). Messenger refuses promotional
/// content under a message tag (R3.6), and a refused send costs the page its standing, so this
/// list errs towards phrases that are rarely anything but selling; it is a first line, not
/// Meta's classifier.
pub const PROMOTIONAL_PHRASES: &[&str] = &[
    "sale",
    "% off",
    "percent off",
    "discount",
    "discounts",
    "discounted",
    "promo",
    "promos",
    "promo code",
    "coupon",
    "coupons",
    "limited time",
    "buy now",
    "shop now",
    "deal",
    "deals",
    "offer ends",
    "special offer",
    "exclusive offer",
    "free shipping",
    "clearance",
    "black friday",
    "cyber monday",
];

/// Everyday phrases that contain a promotional word but are not selling: "we will deal with
/// your request" is a typical human-agent reply.
const BENIGN_PHRASES: &[&str] = &["deal with", "deals with"];

/// Whether `text` reads like an advertisement; see [`PROMOTIONAL_PHRASES`].
pub fn looks_promotional(text: &str) -> bool {
    // One space between words, so "Limited\n time" and "limited-time" match "limited time".
    let mut haystack = String::with_capacity(text.len());
    let mut in_gap = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_whitespace() || c == '-' {
            if !in_gap {
                haystack.push(' ');
            }
            in_gap = true;
        } else {
            haystack.push(c);
            in_gap = false;
        }
    }
    for benign in BENIGN_PHRASES {
        haystack = haystack.replace(benign, " ");
    }
    PROMOTIONAL_PHRASES
        .iter()
        .any(|phrase| contains_phrase(&haystack, phrase))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Like a regex `\b` around the phrase, but only at ends that are word characters, so that
/// `% off` matches in `25% off`.
fn contains_phrase(haystack: &str, phrase: &str) -> bool {
    let bounded_start = phrase.starts_with(is_word_char);
    let bounded_end = phrase.ends_with(is_word_char);
    haystack.match_indices(phrase).any(|(at, _)| {
        let start_ok = !bounded_start || !haystack[..at].ends_with(is_word_char);
        let end_ok = !bounded_end || !haystack[at + phrase.len()..].starts_with(is_word_char);
        start_ok && end_ok
    })
}

/// A piece of a text with variables: literal text or a variable's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VarKind {
    Positional(u32),
    Named,
}

/// A text split into pieces. Malformed braces stay in the text as they were written, so that
/// joining the pieces back gives the original, and the first of them is kept for the error.
struct Scan<'a> {
    pieces: Vec<Piece<'a>>,
    malformed: Option<&'a str>,
}

impl<'a> Scan<'a> {
    fn vars(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(name) => Some(*name),
            Piece::Text(_) => None,
        })
    }
}

/// `1`..`9999` (four digits are far more than a 1,024-character body can hold) or a lower-case
/// name starting with a letter. `0`, `01` and anything with spaces are not variables.
fn variable_kind(inner: &str) -> Option<VarKind> {
    let bytes = inner.as_bytes();
    match bytes.first()? {
        b'1'..=b'9' if bytes.len() <= 4 && bytes.iter().all(u8::is_ascii_digit) => {
            inner.parse().ok().map(VarKind::Positional)
        }
        b'a'..=b'z'
            if bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_') =>
        {
            Some(VarKind::Named)
        }
        _ => None,
    }
}

fn push_text<'a>(pieces: &mut Vec<Piece<'a>>, text: &'a str) {
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
}

fn scan(text: &str) -> Scan<'_> {
    let mut pieces = Vec::new();
    let mut malformed = None;
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            malformed.get_or_insert(&rest[open..]);
            break;
        };
        let inner = &after[..close];
        if variable_kind(inner).is_some() {
            push_text(&mut pieces, &rest[..open]);
            pieces.push(Piece::Var(inner));
            rest = &after[close + 2..];
        } else {
            malformed.get_or_insert(&rest[open..open + close + 4]);
            push_text(&mut pieces, &rest[..open + 2]);
            rest = after;
        }
    }
    push_text(&mut pieces, rest);
    Scan { pieces, malformed }
}

/// A short, readable excerpt of a malformed variable for an error message.
fn excerpt(s: &str) -> String {
    const MAX: usize = 20;
    if s.chars().count() > MAX {
        let head: String = s.chars().take(MAX).collect();
        format!("{head}…")
    } else {
        s.to_owned()
    }
}

fn too_long(field: &str, max: usize) -> FieldError {
    FieldError::new(
        field,
        "too_long",
        format!("`{field}` must be at most {max} characters"),
    )
}

fn not_allowed(field: &str, why: &str) -> FieldError {
    FieldError::new(
        field,
        "not_allowed",
        format!("`{field}` is not allowed {why}"),
    )
}

fn check_len(errors: &mut ValidationErrors, field: &str, text: &str, max: usize) {
    if text.chars().count() > max {
        errors.push(too_long(field, max));
    }
}

/// A trimmed optional text, with blank counting as absent: forms send `""` for unused fields.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Refuses variables in texts that cannot carry them (footers, button labels).
fn check_no_variables(errors: &mut ValidationErrors, field: &str, text: &str) {
    let scanned = scan(text);
    if let Some(bad) = scanned.malformed {
        errors.push(invalid_variable(field, bad));
    } else if scanned.vars().next().is_some() {
        errors.push(FieldError::new(
            field,
            "too_many_variables",
            format!("`{field}` cannot contain variables"),
        ));
    }
}

fn invalid_variable(field: &str, bad: &str) -> FieldError {
    FieldError::new(
        field,
        "invalid_variable",
        format!(
            "`{field}` has a malformed variable `{}`: write `{{{{1}}}}` or `{{{{first_name}}}}`",
            excerpt(bad)
        ),
    )
}

fn is_custom_field_key(key: &str) -> bool {
    // The same rule as contact custom fields (contact::validate_custom_fields).
    key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

pub fn is_contact_path(path: &str) -> bool {
    match path.strip_prefix("contact.") {
        Some("name" | "phone" | "locale" | "whatsapp_user_id" | "messenger_psid") => true,
        Some(rest) => rest
            .strip_prefix("fields.")
            .is_some_and(is_custom_field_key),
        None => false,
    }
}

/// The text a JSON scalar stands for in a message; arrays, objects and null have none.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Blank values count as missing: a message saying "Hello ," is worse than no message.
fn non_blank(value: String) -> Option<String> {
    (!value.trim().is_empty()).then_some(value)
}

pub fn contact_value(contact: &Contact, path: &str) -> Option<String> {
    let value = match path.strip_prefix("contact.")? {
        "name" => contact.name.clone(),
        "phone" => contact.phone.as_ref().map(|p| p.as_str().to_owned()),
        "locale" => contact.locale.as_ref().map(|l| l.as_str().to_owned()),
        "whatsapp_user_id" => contact
            .whatsapp_user_id
            .as_ref()
            .map(|u| u.as_str().to_owned()),
        "messenger_psid" => contact
            .messenger_psid
            .as_ref()
            .map(|p| p.as_str().to_owned()),
        other => other
            .strip_prefix("fields.")
            .and_then(|key| contact.fields.get(key))
            .and_then(scalar_text),
    };
    value.and_then(non_blank)
}

fn is_e164_shape(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// An http(s) URL whose optional variable comes last and cannot change the host: the static
/// part is what Meta reviews, so a variable must not be able to point the button elsewhere.
fn check_url(errors: &mut ValidationErrors, field: &str, url: &str) {
    check_len(errors, field, url, MAX_URL_CHARS);
    let invalid_url = |detail: &str| FieldError::new(field, "invalid_url", detail);
    let scanned = scan(url);
    if let Some(bad) = scanned.malformed {
        errors.push(invalid_variable(field, bad));
        return;
    }
    if url.chars().any(char::is_whitespace) {
        errors.push(invalid_url("a button URL cannot contain spaces"));
        return;
    }
    let vars = scanned.vars().count();
    if vars > 1 {
        errors.push(FieldError::new(
            field,
            "too_many_variables",
            format!("`{field}` can have one variable, at its end"),
        ));
        return;
    }
    if vars == 1 && !matches!(scanned.pieces.last(), Some(Piece::Var(_))) {
        errors.push(invalid_url("a button URL's variable must be at its end"));
        return;
    }
    let prefix = match scanned.pieces.first() {
        Some(Piece::Text(t)) => *t,
        _ => "",
    };
    let web_host = |candidate: &str| {
        url::Url::parse(candidate).ok().and_then(|u| {
            matches!(u.scheme(), "http" | "https")
                .then(|| u.host_str().map(str::to_owned))
                .flatten()
        })
    };
    let host_ok = if vars == 0 {
        web_host(url).is_some()
    } else {
        // Two different values for the variable must land on the same host.
        let one = web_host(&format!("{prefix}x"));
        one.is_some() && one == web_host(&format!("{prefix}y"))
    };
    if !host_ok {
        errors.push(invalid_url(
            "a button URL must be an http:// or https:// address with a fixed host",
        ));
    }
}

/// The variables of one component, checked on their own and then against the others.
struct Component<'a> {
    field: String,
    scan: Scan<'a>,
    /// False where the malformed variable was reported already (button URLs).
    report_malformed: bool,
}

fn check_button(
    errors: &mut ValidationErrors,
    index: usize,
    button: &TemplateButton,
) -> TemplateButton {
    let field = |name: &str| format!("buttons[{index}].{name}");
    let text = button.text.trim();
    if text.is_empty() {
        errors.push(FieldError::required(field("text")));
    } else {
        check_len(errors, &field("text"), text, MAX_BUTTON_TEXT_CHARS);
        check_no_variables(errors, &field("text"), text);
    }
    let url = present(&button.url);
    let phone_number = present(&button.phone_number);
    let example = present(&button.example);
    let kind = button.kind;
    let belongs = |name: &str| {
        matches!(
            (kind, name),
            (ButtonType::Url, "url" | "example")
                | (ButtonType::PhoneNumber, "phone_number")
                | (ButtonType::CopyCode, "example")
        )
    };
    for (name, value) in [
        ("url", url),
        ("phone_number", phone_number),
        ("example", example),
    ] {
        if value.is_some() && !belongs(name) {
            errors.push(not_allowed(&field(name), "on this type of button"));
        }
    }
    match kind {
        ButtonType::Url => match url {
            None => errors.push(FieldError::required(field("url"))),
            Some(url) => check_url(errors, &field("url"), url),
        },
        ButtonType::PhoneNumber => match phone_number {
            None => errors.push(FieldError::required(field("phone_number"))),
            Some(phone) if !is_e164_shape(phone) => errors.push(FieldError::new(
                field("phone_number"),
                "invalid_phone_number",
                "a button's phone number must be in E.164 form, such as +15550051310",
            )),
            Some(_) => {}
        },
        ButtonType::CopyCode => match example {
            None => errors.push(FieldError::required(field("example"))),
            Some(code) => check_len(errors, &field("example"), code, MAX_COPY_CODE_CHARS),
        },
        ButtonType::QuickReply => {}
    }
    if kind == ButtonType::Url {
        if let Some(example) = example {
            check_len(errors, &field("example"), example, MAX_URL_CHARS);
        }
    }
    TemplateButton {
        kind,
        text: text.to_owned(),
        url: url.filter(|_| belongs("url")).map(str::to_owned),
        phone_number: phone_number
            .filter(|_| belongs("phone_number"))
            .map(str::to_owned),
        example: example.filter(|_| belongs("example")).map(str::to_owned),
    }
}

/// The button rules of R3.2 and Meta's components page (PROTOCOLS.md A.8).
fn check_button_set(errors: &mut ValidationErrors, buttons: &[TemplateButton]) {
    let count = |kind| buttons.iter().filter(|b| b.kind == kind).count();
    let too_many = |detail: String| FieldError::new("buttons", "too_many_buttons", detail);
    if buttons.len() > MAX_BUTTONS {
        errors.push(too_many(format!("at most {MAX_BUTTONS} buttons")));
    }
    for (kind, label) in [
        (ButtonType::PhoneNumber, "PHONE_NUMBER"),
        (ButtonType::Url, "URL"),
        (ButtonType::CopyCode, "COPY_CODE"),
    ] {
        if count(kind) > 1 {
            errors.push(too_many(format!("at most one {label} button")));
        }
    }
    let quick_replies = count(ButtonType::QuickReply);
    let calls = count(ButtonType::Url) + count(ButtonType::PhoneNumber);
    if quick_replies > 0 && calls > 0 {
        errors.push(FieldError::new(
            "buttons",
            "mixed_buttons",
            "buttons are either quick replies or calls to action (URL, PHONE_NUMBER), never both",
        ));
    } else if quick_replies > 0 {
        // Meta refuses quick replies interleaved with other buttons (a COPY_CODE between them).
        let first = buttons
            .iter()
            .position(|b| b.kind == ButtonType::QuickReply);
        let last = buttons
            .iter()
            .rposition(|b| b.kind == ButtonType::QuickReply);
        if let (Some(first), Some(last)) = (first, last) {
            if last - first + 1 != quick_replies {
                errors.push(FieldError::new(
                    "buttons",
                    "mixed_buttons",
                    "quick replies must be next to each other, not split by other buttons",
                ));
            }
        }
    }
}

fn check_header(errors: &mut ValidationErrors, header: &TemplateHeader) -> TemplateHeader {
    let text = present(&header.text);
    let example = present(&header.example);
    match header.format {
        HeaderFormat::Text => match text {
            None => errors.push(FieldError::required("header.text")),
            Some(text) => check_len(errors, "header.text", text, MAX_HEADER_TEXT_CHARS),
        },
        HeaderFormat::Image | HeaderFormat::Document | HeaderFormat::Video => {
            if text.is_some() {
                errors.push(not_allowed("header.text", "on a media header"));
            }
            match example {
                None => errors.push(FieldError::new(
                    "header.example",
                    "required",
                    "a media header needs an `example` (a URL or an upload handle) for review",
                )),
                Some(example) => {
                    check_len(errors, "header.example", example, MAX_MEDIA_EXAMPLE_CHARS)
                }
            }
        }
    }
    if let (HeaderFormat::Text, Some(example)) = (header.format, example) {
        check_len(errors, "header.example", example, MAX_HEADER_TEXT_CHARS);
    }
    TemplateHeader {
        format: header.format,
        text: text.map(str::to_owned),
        example: example.map(str::to_owned),
    }
}

/// Checks variables within and across components: each is well formed, one template uses one
/// style (as Meta's `parameter_format` is per template), and positional ones count 1..n within
/// their component (as Meta numbers them per component).
fn check_variables(errors: &mut ValidationErrors, components: &[Component<'_>]) {
    // The body is listed first, so its style is the one the others are held to.
    let mut style: Option<bool> = None;
    for component in components {
        let field = component.field.as_str();
        if let (true, Some(bad)) = (component.report_malformed, component.scan.malformed) {
            errors.push(invalid_variable(field, bad));
        }
        let mut numbers: Vec<u32> = Vec::new();
        let mut named = false;
        for var in component.scan.vars() {
            match variable_kind(var) {
                Some(VarKind::Positional(n)) => numbers.push(n),
                Some(VarKind::Named) => named = true,
                None => {}
            }
        }
        let positional = !numbers.is_empty();
        let mixed = FieldError::new(
            field,
            "mixed_variables",
            "a template uses either numbered variables ({{1}}) or named ones ({{first_name}}), \
             not both",
        );
        if positional && named {
            errors.push(mixed);
            continue;
        }
        if !(positional || named) {
            continue;
        }
        match style {
            Some(style_positional) if style_positional != positional => errors.push(mixed),
            Some(_) => {}
            None => style = Some(positional),
        }
        numbers.sort_unstable();
        numbers.dedup();
        let gapless = numbers
            .iter()
            .zip(1u32..)
            .all(|(n, expected)| *n == expected);
        if !gapless {
            errors.push(FieldError::new(
                field,
                "variable_gap",
                format!("`{field}` must number its variables {{{{1}}}}, {{{{2}}}}... without gaps"),
            ));
        }
    }
}

/// Validates a template for `channel`, reporting every problem at once.
pub fn validate_template(
    input: TemplateInput,
    channel: Channel,
) -> Result<TemplateContent, ValidationErrors> {
    let mut errors = ValidationErrors::new();
    let whatsapp = channel == Channel::Whatsapp;
    let on_channel = format!("on {channel} templates");

    let name = input.name.trim();
    if name.is_empty() {
        errors.push(FieldError::required("name"));
    } else if name.chars().count() > MAX_NAME_CHARS
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        errors.push(FieldError::new(
            "name",
            "invalid_name",
            format!(
                "`name` is lower-case letters, digits and `_`, at most {MAX_NAME_CHARS} characters"
            ),
        ));
    }

    let locale = if input.locale.trim().is_empty() {
        errors.push(FieldError::required("locale"));
        None
    } else {
        errors.check(Locale::parse("locale", &input.locale))
    };

    match (channel, input.category) {
        (Channel::Whatsapp, None) => errors.push(FieldError::required("category")),
        (Channel::Messenger | Channel::Sms, Some(_)) => {
            errors.push(not_allowed("category", &on_channel))
        }
        _ => {}
    }
    match (channel, input.tag) {
        (Channel::Messenger, None) => errors.push(FieldError::required("tag")),
        (Channel::Whatsapp | Channel::Sms, Some(_)) => errors.push(not_allowed("tag", &on_channel)),
        _ => {}
    }

    let header = match &input.header {
        Some(_) if !whatsapp => {
            errors.push(not_allowed("header", &on_channel));
            None
        }
        Some(header) => Some(check_header(&mut errors, header)),
        None => None,
    };

    let body = input.body.trim();
    if body.is_empty() {
        errors.push(FieldError::required("body"));
    }
    check_len(&mut errors, "body", body, MAX_BODY_CHARS);

    let footer = present(&input.footer);
    if let Some(footer) = footer {
        if whatsapp {
            check_len(&mut errors, "footer", footer, MAX_FOOTER_CHARS);
            check_no_variables(&mut errors, "footer", footer);
        } else {
            errors.push(not_allowed("footer", &on_channel));
        }
    }

    let buttons = if input.buttons.is_empty() {
        Vec::new()
    } else if whatsapp {
        check_button_set(&mut errors, &input.buttons);
        input
            .buttons
            .iter()
            .enumerate()
            .map(|(i, b)| check_button(&mut errors, i, b))
            .collect()
    } else {
        errors.push(not_allowed("buttons", &on_channel));
        Vec::new()
    };

    let body_scan = scan(body);
    if whatsapp {
        // Meta error 2388299: a variable may not open or close the body.
        let at_edge = |p: Option<&Piece<'_>>| matches!(p, Some(Piece::Var(_)));
        if at_edge(body_scan.pieces.first()) || at_edge(body_scan.pieces.last()) {
            errors.push(FieldError::new(
                "body",
                "variable_at_edge",
                "a WhatsApp body may not start or end with a variable; add text around it",
            ));
        }
    }
    if channel == Channel::Messenger && looks_promotional(body) {
        errors.push(FieldError::new(
            "body",
            "promotional_content",
            "Messenger message tags are for non-promotional updates; this body reads as an offer",
        ));
    }

    let mut components = vec![Component {
        field: "body".to_owned(),
        scan: body_scan,
        report_malformed: true,
    }];
    if let Some(text) = header.as_ref().and_then(|h| h.text.as_deref()) {
        let scanned = scan(text);
        if scanned.vars().count() > 1 {
            errors.push(FieldError::new(
                "header.text",
                "too_many_variables",
                "a header can have at most one variable",
            ));
        }
        components.push(Component {
            field: "header.text".to_owned(),
            scan: scanned,
            report_malformed: true,
        });
    }
    for (i, button) in buttons.iter().enumerate() {
        if let (ButtonType::Url, Some(url)) = (button.kind, button.url.as_deref()) {
            components.push(Component {
                field: format!("buttons[{i}].url"),
                scan: scan(url),
                report_malformed: false,
            });
        }
    }
    check_variables(&mut errors, &components);

    // A mapping for a variable that was mistyped is reported once, as the malformed variable.
    let all_well_formed = components.iter().all(|c| c.scan.malformed.is_none());
    let known: Vec<&str> = components.iter().flat_map(|c| c.scan.vars()).collect();
    let mut variable_mapping = BTreeMap::new();
    for (key, path) in &input.variable_mapping {
        let field = format!("variable_mapping.{key}");
        if all_well_formed && !known.contains(&key.as_str()) {
            errors.push(FieldError::new(
                field.as_str(),
                "unknown_variable",
                format!("`{key}` is not a variable of this template"),
            ));
        }
        let path = path.trim();
        if !is_contact_path(path) {
            errors.push(FieldError::new(
                field.as_str(),
                "invalid_mapping",
                "map a variable to contact.name, contact.phone, contact.locale, \
                 contact.whatsapp_user_id, contact.messenger_psid or contact.fields.<key>",
            ));
        }
        variable_mapping.insert(key.clone(), path.to_owned());
    }

    match locale {
        Some(locale) if errors.is_empty() => Ok(TemplateContent {
            name: name.to_owned(),
            locale,
            category: input.category,
            header,
            body: body.to_owned(),
            footer: footer.map(str::to_owned),
            buttons,
            variable_mapping,
            tag: input.tag,
        }),
        _ => Err(errors),
    }
}

impl TemplateContent {
    /// Every variable in the header, body and URL buttons, in order of first appearance.
    /// Variables with the same name share one value, in whichever component they appear.
    pub fn variables(&self) -> Vec<String> {
        let header = self.header.as_ref().and_then(|h| h.text.as_deref());
        let urls = self
            .buttons
            .iter()
            .filter(|b| b.kind == ButtonType::Url)
            .filter_map(|b| b.url.as_deref());
        let mut names: Vec<String> = Vec::new();
        for text in header.into_iter().chain([self.body.as_str()]).chain(urls) {
            for var in scan(text).vars() {
                if !names.iter().any(|n| n == var) {
                    names.push(var.to_owned());
                }
            }
        }
        names
    }

    /// A value for every variable: the one supplied with the send, else the mapped contact
    /// field (R3.4). `Err` lists the variables still without a value, in order.
    pub fn resolve_variables(
        &self,
        supplied: &Map<String, Value>,
        contact: &Contact,
    ) -> Result<BTreeMap<String, String>, Vec<String>> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for name in self.variables() {
            let value = supplied
                .get(&name)
                .and_then(scalar_text)
                .and_then(non_blank)
                .or_else(|| {
                    self.variable_mapping
                        .get(&name)
                        .and_then(|path| contact_value(contact, path))
                });
            match value {
                Some(value) => {
                    values.insert(name, value);
                }
                None => missing.push(name),
            }
        }
        if missing.is_empty() {
            Ok(values)
        } else {
            Err(missing)
        }
    }

    /// The body as the contact reads it, for message history. A variable without a value stays
    /// as written, so a gap is visible rather than silently empty.
    pub fn render(&self, values: &BTreeMap<String, String>) -> String {
        let mut out = String::with_capacity(self.body.len());
        for piece in scan(&self.body).pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(name) => match values.get(name) {
                    Some(value) => out.push_str(value),
                    None => {
                        out.push_str("{{");
                        out.push_str(name);
                        out.push_str("}}");
                    }
                },
            }
        }
        out
    }

    /// Whether the template sells something: it is filed as marketing, or its body reads so.
    pub fn is_promotional(&self) -> bool {
        self.category == Some(TemplateCategory::Marketing) || looks_promotional(&self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{MessengerPsid, PhoneNumber, WhatsappUserId};
    use crate::ids::ContactId;
    use proptest::prelude::*;
    use serde_json::json;

    const CODES: &[&str] = &[
        "required",
        "invalid_name",
        "invalid_locale",
        "not_allowed",
        "too_long",
        "mixed_variables",
        "variable_gap",
        "invalid_variable",
        "variable_at_edge",
        "too_many_variables",
        "too_many_buttons",
        "mixed_buttons",
        "invalid_url",
        "invalid_phone_number",
        "unknown_variable",
        "invalid_mapping",
        "promotional_content",
    ];

    fn whatsapp() -> TemplateInput {
        TemplateInput {
            name: "order_update".into(),
            locale: "en_US".into(),
            category: Some(TemplateCategory::Utility),
            body: "Hello {{1}}, your order {{2}} has shipped.".into(),
            ..Default::default()
        }
    }

    fn messenger() -> TemplateInput {
        TemplateInput {
            name: "order_update".into(),
            locale: "en".into(),
            tag: Some(MessageTag::PostPurchaseUpdate),
            body: "Hi {{first_name}}, your order has shipped.".into(),
            ..Default::default()
        }
    }

    fn sms() -> TemplateInput {
        TemplateInput {
            name: "order_update".into(),
            locale: "en".into(),
            body: "Your order {{1}} has shipped.".into(),
            ..Default::default()
        }
    }

    fn button(kind: ButtonType, text: &str) -> TemplateButton {
        TemplateButton {
            kind,
            text: text.into(),
            url: None,
            phone_number: None,
            example: None,
        }
    }

    fn quick_reply(text: &str) -> TemplateButton {
        button(ButtonType::QuickReply, text)
    }

    fn url_button(url: &str) -> TemplateButton {
        TemplateButton {
            url: Some(url.into()),
            ..button(ButtonType::Url, "Track")
        }
    }

    fn phone_button(phone: &str) -> TemplateButton {
        TemplateButton {
            phone_number: Some(phone.into()),
            ..button(ButtonType::PhoneNumber, "Call us")
        }
    }

    fn copy_code(code: &str) -> TemplateButton {
        TemplateButton {
            example: Some(code.into()),
            ..button(ButtonType::CopyCode, "Copy code")
        }
    }

    fn header(format: HeaderFormat, text: Option<&str>, example: Option<&str>) -> TemplateHeader {
        TemplateHeader {
            format,
            text: text.map(Into::into),
            example: example.map(Into::into),
        }
    }

    fn with(mut input: TemplateInput, change: impl FnOnce(&mut TemplateInput)) -> TemplateInput {
        change(&mut input);
        input
    }

    fn errors(input: TemplateInput, channel: Channel) -> Vec<(String, String)> {
        match validate_template(input, channel) {
            Ok(_) => Vec::new(),
            Err(e) => {
                let mut found: Vec<_> = e
                    .into_errors()
                    .into_iter()
                    .map(|e| (e.field, e.code))
                    .collect();
                found.sort();
                found
            }
        }
    }

    /// What a case is, where it is validated, the input, and the (field, code) pairs expected.
    type Case<'a> = (&'a str, Channel, TemplateInput, Vec<(&'a str, &'a str)>);

    fn check_table(cases: Vec<Case<'_>>) {
        for (what, channel, input, expected) in cases {
            let mut expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(f, c)| (f.to_owned(), c.to_owned()))
                .collect();
            expected.sort();
            assert_eq!(errors(input, channel), expected, "{what}");
        }
    }

    fn mapping(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn body(text: &str) -> TemplateInput {
        with(whatsapp(), |t| t.body = text.into())
    }

    #[test]
    fn limits_are_meta_s() {
        assert_eq!(MAX_BODY_CHARS, 1024);
        assert_eq!(MAX_TEMPLATES_PER_WHATSAPP_SENDER, 250);
    }

    #[test]
    #[rustfmt::skip]
    fn names_and_locales() {
        use Channel::Whatsapp as W;
        check_table(vec![
            ("valid", W, whatsapp(), vec![]),
            ("padded name", W, with(whatsapp(), |t| t.name = "  order_2  ".into()), vec![]),
            ("blank name", W, with(whatsapp(), |t| t.name = "  ".into()), vec![("name", "required")]),
            ("upper case", W, with(whatsapp(), |t| t.name = "Order".into()), vec![("name", "invalid_name")]),
            ("space", W, with(whatsapp(), |t| t.name = "order update".into()), vec![("name", "invalid_name")]),
            ("dash", W, with(whatsapp(), |t| t.name = "order-update".into()), vec![("name", "invalid_name")]),
            ("accent", W, with(whatsapp(), |t| t.name = "commandé".into()), vec![("name", "invalid_name")]),
            ("512", W, with(whatsapp(), |t| t.name = "a".repeat(512)), vec![]),
            ("513", W, with(whatsapp(), |t| t.name = "a".repeat(513)), vec![("name", "invalid_name")]),
            ("blank locale", W, with(whatsapp(), |t| t.locale = "".into()), vec![("locale", "required")]),
            ("bad locale", W, with(whatsapp(), |t| t.locale = "english".into()), vec![("locale", "invalid_locale")]),
            ("dashed locale", W, with(whatsapp(), |t| t.locale = "pt-br".into()), vec![]),
        ]);
        let content = validate_template(
            with(whatsapp(), |t| {
                t.name = " order_2 ".into();
                t.locale = "pt-br".into();
            }),
            Channel::Whatsapp,
        )
        .unwrap();
        assert_eq!(content.name, "order_2");
        assert_eq!(content.locale.as_str(), "pt_BR");
    }

    #[test]
    #[rustfmt::skip]
    fn each_channel_has_its_own_fields() {
        use Channel::{Messenger as M, Sms as S, Whatsapp as W};
        let with_header =
            |t: &mut TemplateInput| t.header = Some(header(HeaderFormat::Text, Some("Hi"), None));
        let with_footer = |t: &mut TemplateInput| t.footer = Some("Thanks".into());
        let with_buttons = |t: &mut TemplateInput| t.buttons = vec![quick_reply("Stop")];
        check_table(vec![
            ("whatsapp without category", W, with(whatsapp(), |t| t.category = None), vec![("category", "required")]),
            ("whatsapp with tag", W, with(whatsapp(), |t| t.tag = Some(MessageTag::AccountUpdate)), vec![("tag", "not_allowed")]),
            (
                "whatsapp marketing",
                W,
                with(whatsapp(), |t| {
                    t.category = Some(TemplateCategory::Marketing)
                }),
                vec![],
            ),
            ("messenger", M, messenger(), vec![]),
            ("messenger human agent", M, with(messenger(), |t| t.tag = Some(MessageTag::HumanAgent)), vec![]),
            ("messenger without tag", M, with(messenger(), |t| t.tag = None), vec![("tag", "required")]),
            (
                "messenger with category",
                M,
                with(messenger(), |t| {
                    t.category = Some(TemplateCategory::Utility)
                }),
                vec![("category", "not_allowed")],
            ),
            ("messenger header", M, with(messenger(), with_header), vec![("header", "not_allowed")]),
            ("messenger footer", M, with(messenger(), with_footer), vec![("footer", "not_allowed")]),
            ("messenger blank footer", M, with(messenger(), |t| t.footer = Some(" ".into())), vec![]),
            ("messenger buttons", M, with(messenger(), with_buttons), vec![("buttons", "not_allowed")]),
            ("sms", S, sms(), vec![]),
            ("sms with category", S, with(sms(), |t| t.category = Some(TemplateCategory::Marketing)), vec![("category", "not_allowed")]),
            ("sms with tag", S, with(sms(), |t| t.tag = Some(MessageTag::AccountUpdate)), vec![("tag", "not_allowed")]),
            ("sms header", S, with(sms(), with_header), vec![("header", "not_allowed")]),
            ("sms footer", S, with(sms(), with_footer), vec![("footer", "not_allowed")]),
            ("sms buttons", S, with(sms(), with_buttons), vec![("buttons", "not_allowed")]),
            (
                "sms may sell",
                S,
                with(sms(), |t| {
                    t.body = "Summer sale: 20% off order {{1}}!".into()
                }),
                vec![],
            ),
            // 2388299 is Meta's rule; our own renderer has no trouble with an opening variable.
            (
                "messenger edge",
                M,
                with(messenger(), |t| {
                    t.body = "{{first_name}}, it shipped".into()
                }),
                vec![],
            ),
            ("sms edge", S, with(sms(), |t| t.body = "Order {{1}}".into()), vec![]),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn messenger_refuses_promotions_under_a_tag() {
        use Channel::Messenger as M;
        check_table(vec![
            (
                "sale",
                M,
                with(messenger(), |t| {
                    t.body = "Our summer SALE is on, {{first_name}}!".into()
                }),
                vec![("body", "promotional_content")],
            ),
            ("percent", M, with(messenger(), |t| t.body = "Get 25% off today.".into()), vec![("body", "promotional_content")]),
            ("coupon", M, with(messenger(), |t| t.body = "Here is your coupon.".into()), vec![("body", "promotional_content")]),
            (
                "plain update",
                M,
                with(messenger(), |t| {
                    t.body = "Your appointment is confirmed for Tuesday.".into()
                }),
                vec![],
            ),
            (
                "deal with",
                M,
                with(messenger(), |t| {
                    t.body = "An agent will deal with your request.".into()
                }),
                vec![],
            ),
            (
                "and no tag",
                M,
                with(messenger(), |t| {
                    t.tag = None;
                    t.body = "Buy now!".into();
                }),
                vec![("tag", "required"), ("body", "promotional_content")],
            ),
        ]);
    }

    #[test]
    fn promotional_phrases_match_whole_words_in_any_case() {
        let promotional = [
            "Summer Sale ends soon",
            "sale!",
            "get 25% off",
            "25 percent off",
            "a DISCOUNT for you",
            "use promo code X",
            "Limited-time only",
            "limited\n  time",
            "Buy now",
            "shop now through November",
            "deal of the day",
            "Best grocery deals on WhatsApp!",
            "Offer ends September 30",
            "free shipping on all orders",
            "Black Friday",
        ];
        for text in promotional {
            assert!(looks_promotional(text), "{text}");
        }
        let plain = [
            "",
            "Your order has shipped",
            "wholesale prices",
            "our sales team will call you",
            "the dealer is closed",
            "an ideal time",
            "we will deal with it",
            "this deals with your account",
            "promotional emails are off",
            "turn off notifications",
            "{{deal_id}} was updated",
        ];
        for text in plain {
            assert!(!looks_promotional(text), "{text}");
        }
    }

    #[test]
    #[rustfmt::skip]
    fn body_length_and_whitespace() {
        use Channel::Whatsapp as W;
        let sized = |n: usize| body(&format!("Hi {}.", "a".repeat(n - 4)));
        check_table(vec![
            ("blank", W, body(" \n "), vec![("body", "required")]),
            ("1024", W, sized(1024), vec![]),
            ("1025", W, sized(1025), vec![("body", "too_long")]),
            ("1024 after trimming", W, body(&format!("  {}  ", "a".repeat(1024))), vec![]),
            ("multibyte counts characters", W, body(&"é".repeat(1024)), vec![]),
        ]);
        let content = validate_template(body("  Hello {{1}}, bye {{2}}.\n"), W).unwrap();
        assert_eq!(content.body, "Hello {{1}}, bye {{2}}.");
    }

    #[test]
    #[rustfmt::skip]
    fn body_variables() {
        use Channel::Whatsapp as W;
        check_table(vec![
            ("none", W, body("Your order has shipped."), vec![]),
            ("named", W, body("Hi {{first_name}}, order {{order_2}} shipped."), vec![]),
            ("repeated", W, body("Hi {{1}}, yes {{1}}, order {{2}}."), vec![]),
            ("out of order", W, body("Hi {{2}}, order {{1}}."), vec![]),
            ("mixed", W, body("Hi {{1}}, order {{order}}."), vec![("body", "mixed_variables")]),
            ("gap", W, body("Hi {{1}}, order {{3}}."), vec![("body", "variable_gap")]),
            ("not from 1", W, body("Hi {{2}}."), vec![("body", "variable_gap")]),
            ("empty", W, body("Hi {{}} there."), vec![("body", "invalid_variable")]),
            ("spaces", W, body("Hi {{ 1 }} there."), vec![("body", "invalid_variable")]),
            ("zero", W, body("Hi {{0}} there."), vec![("body", "invalid_variable")]),
            ("leading zero", W, body("Hi {{01}} there."), vec![("body", "invalid_variable")]),
            ("capital", W, body("Hi {{Name}} there."), vec![("body", "invalid_variable")]),
            ("underscore first", W, body("Hi {{_name}} there."), vec![("body", "invalid_variable")]),
            ("digit then letter", W, body("Hi {{1a}} there."), vec![("body", "invalid_variable")]),
            ("five digits", W, body("Hi {{10000}} there."), vec![("body", "invalid_variable")]),
            ("triple braces", W, body("Hi {{{1}}} there."), vec![("body", "invalid_variable")]),
            ("unclosed", W, body("Hi {{1 there."), vec![("body", "invalid_variable")]),
            ("single braces are text", W, body("Hi {1} and {name}."), vec![]),
            ("closing braces alone are text", W, body("Hi }} there."), vec![]),
            ("starts with variable", W, body("{{1}} is your code."), vec![("body", "variable_at_edge")]),
            ("ends with variable", W, body("Your code is {{1}}"), vec![("body", "variable_at_edge")]),
            ("ends with variable before spaces", W, body("Your code is {{1}}  \n"), vec![("body", "variable_at_edge")]),
            ("only a variable", W, body("{{1}}"), vec![("body", "variable_at_edge")]),
            ("punctuation guards the edge", W, body("Code: {{1}}."), vec![]),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn headers() {
        use Channel::Whatsapp as W;
        use HeaderFormat::*;
        let h = |format, text: Option<&str>, example: Option<&str>| {
            with(whatsapp(), |t| {
                t.header = Some(header(format, text, example))
            })
        };
        check_table(vec![
            ("text", W, h(Text, Some("Your order"), None), vec![]),
            ("text with variable", W, h(Text, Some("Order {{1}}"), Some("A-1")), vec![]),
            ("text without text", W, h(Text, None, None), vec![("header.text", "required")]),
            ("blank text", W, h(Text, Some("  "), None), vec![("header.text", "required")]),
            ("60", W, h(Text, Some(&"a".repeat(60)), None), vec![]),
            ("61", W, h(Text, Some(&"a".repeat(61)), None), vec![("header.text", "too_long")]),
            ("two variables", W, h(Text, Some("{{1}} and {{2}}"), None), vec![("header.text", "too_many_variables")]),
            ("same variable twice", W, h(Text, Some("{{1}} or {{1}}"), None), vec![("header.text", "too_many_variables")]),
            ("numbered from 2", W, h(Text, Some("Order {{2}}"), None), vec![("header.text", "variable_gap")]),
            ("malformed", W, h(Text, Some("Order {{ 1 }}"), None), vec![("header.text", "invalid_variable")]),
            ("named beside numbered body", W, h(Text, Some("Hi {{name}}"), None), vec![("header.text", "mixed_variables")]),
            ("image", W, h(Image, None, Some("4::aW...")), vec![]),
            ("document", W, h(Document, None, Some("https://example.com/r.pdf")), vec![]),
            ("video", W, h(Video, None, Some("4::dm...")), vec![]),
            ("image without example", W, h(Image, None, None), vec![("header.example", "required")]),
            ("image with text", W, h(Image, Some("Look"), Some("4::aW...")), vec![("header.text", "not_allowed")]),
            ("long handle", W, h(Video, None, Some(&"h".repeat(MAX_MEDIA_EXAMPLE_CHARS + 1))), vec![("header.example", "too_long")]),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn footers() {
        use Channel::Whatsapp as W;
        let f = |text: &str| with(whatsapp(), |t| t.footer = Some(text.into()));
        check_table(vec![
            ("plain", W, f("Reply STOP to opt out"), vec![]),
            ("60", W, f(&"a".repeat(60)), vec![]),
            ("61", W, f(&"a".repeat(61)), vec![("footer", "too_long")]),
            ("variable", W, f("Sent to {{1}}"), vec![("footer", "too_many_variables")]),
            ("malformed", W, f("Sent to {{}}"), vec![("footer", "invalid_variable")]),
        ]);
        let blank = validate_template(f("   "), W).unwrap();
        assert_eq!(blank.footer, None);
        let padded = validate_template(f("  Thanks  "), W).unwrap();
        assert_eq!(padded.footer.as_deref(), Some("Thanks"));
    }

    #[test]
    #[rustfmt::skip]
    fn button_sets() {
        use ButtonType::*;
        use Channel::Whatsapp as W;
        let b = |buttons: Vec<TemplateButton>| with(whatsapp(), |t| t.buttons = buttons);
        let url = || url_button("https://example.com/track");
        let phone = || phone_button("+15550051310");
        check_table(vec![
            ("ten quick replies", W, b(vec![quick_reply("Yes"); 10]), vec![]),
            ("eleven quick replies", W, b(vec![quick_reply("Yes"); 11]), vec![("buttons", "too_many_buttons")]),
            ("url and phone", W, b(vec![url(), phone()]), vec![]),
            ("calls and a code", W, b(vec![copy_code("SAVE10"), url(), phone()]), vec![]),
            ("quick replies and a code", W, b(vec![quick_reply("Stop"), quick_reply("Later"), copy_code("SAVE10")]), vec![]),
            ("quick reply and url", W, b(vec![quick_reply("Stop"), url()]), vec![("buttons", "mixed_buttons")]),
            ("quick reply and phone", W, b(vec![phone(), quick_reply("Stop")]), vec![("buttons", "mixed_buttons")]),
            ("quick replies split", W, b(vec![quick_reply("Stop"), copy_code("SAVE10"), quick_reply("More")]), vec![("buttons", "mixed_buttons")]),
            ("two urls", W, b(vec![url(), url()]), vec![("buttons", "too_many_buttons")]),
            ("two phones", W, b(vec![phone(), phone()]), vec![("buttons", "too_many_buttons")]),
            ("two codes", W, b(vec![copy_code("A"), copy_code("B")]), vec![("buttons", "too_many_buttons")]),
            (
                "too many of everything",
                W,
                b(vec![
                    url(),
                    url(),
                    phone(),
                    phone(),
                    copy_code("A"),
                    copy_code("B"),
                    url(),
                    url(),
                    url(),
                    url(),
                    url(),
                ]),
                vec![
                    ("buttons", "too_many_buttons"),
                    ("buttons", "too_many_buttons"),
                    ("buttons", "too_many_buttons"),
                    ("buttons", "too_many_buttons"),
                ],
            ),
            ("label required", W, b(vec![quick_reply(" ")]), vec![("buttons[0].text", "required")]),
            ("label 25", W, b(vec![quick_reply(&"a".repeat(25))]), vec![]),
            ("label 26", W, b(vec![quick_reply(&"a".repeat(26))]), vec![("buttons[0].text", "too_long")]),
            ("label variable", W, b(vec![quick_reply("Hi {{1}}")]), vec![("buttons[0].text", "too_many_variables")]),
            ("second label", W, b(vec![quick_reply("Yes"), quick_reply("")]), vec![("buttons[1].text", "required")]),
            (
                "code label required",
                W,
                b(vec![TemplateButton {
                    text: "".into(),
                    ..copy_code("A")
                }]),
                vec![("buttons[0].text", "required")],
            ),
            (
                "fields of other types",
                W,
                b(vec![
                    TemplateButton {
                        url: Some("https://x.com".into()),
                        phone_number: Some("+15550051310".into()),
                        example: Some("x".into()),
                        ..quick_reply("Yes")
                    },
                    TemplateButton {
                        phone_number: Some("+15550051310".into()),
                        ..url()
                    },
                    TemplateButton {
                        url: Some("https://x.com".into()),
                        example: Some("x".into()),
                        ..phone()
                    },
                    TemplateButton {
                        url: Some("https://x.com".into()),
                        phone_number: Some("+15550051310".into()),
                        ..copy_code("A")
                    },
                ]),
                vec![
                    ("buttons", "mixed_buttons"),
                    ("buttons[0].url", "not_allowed"),
                    ("buttons[0].phone_number", "not_allowed"),
                    ("buttons[0].example", "not_allowed"),
                    ("buttons[1].phone_number", "not_allowed"),
                    ("buttons[2].url", "not_allowed"),
                    ("buttons[2].example", "not_allowed"),
                    ("buttons[3].phone_number", "not_allowed"),
                    ("buttons[3].url", "not_allowed"),
                ],
            ),
            (
                "blank fields of other types are absent",
                W,
                b(vec![TemplateButton {
                    url: Some(" ".into()),
                    example: Some("".into()),
                    ..button(QuickReply, "Yes")
                }]),
                vec![],
            ),
        ]);
        let content = validate_template(
            b(vec![TemplateButton {
                url: Some("".into()),
                ..quick_reply("  Yes  ")
            }]),
            W,
        )
        .unwrap();
        assert_eq!(content.buttons, vec![quick_reply("Yes")]);
    }

    #[test]
    #[rustfmt::skip]
    fn url_buttons() {
        use Channel::Whatsapp as W;
        let u = |url: &str| with(whatsapp(), |t| t.buttons = vec![url_button(url)]);
        check_table(vec![
            ("https", W, u("https://example.com/support"), vec![]),
            ("http", W, u("http://example.com"), vec![]),
            ("padded", W, u("  https://example.com  "), vec![]),
            ("variable at end", W, u("https://x.com/track/{{1}}"), vec![]),
            ("variable as query value", W, u("https://x.com/offers?code={{1}}"), vec![]),
            (
                "example for the variable",
                W,
                with(whatsapp(), |t| {
                    t.buttons = vec![TemplateButton {
                        example: Some("https://x.com/track/A1".into()),
                        ..url_button("https://x.com/track/{{1}}")
                    }]
                }),
                vec![],
            ),
            (
                "missing",
                W,
                with(whatsapp(), |t| {
                    t.buttons = vec![button(ButtonType::Url, "Go")]
                }),
                vec![("buttons[0].url", "required")],
            ),
            ("ftp", W, u("ftp://example.com/file"), vec![("buttons[0].url", "invalid_url")]),
            ("no scheme", W, u("example.com/track"), vec![("buttons[0].url", "invalid_url")]),
            ("javascript", W, u("javascript:alert(1)"), vec![("buttons[0].url", "invalid_url")]),
            ("spaces", W, u("https://example.com/a b"), vec![("buttons[0].url", "invalid_url")]),
            ("variable in the middle", W, u("https://x.com/{{1}}/status"), vec![("buttons[0].url", "invalid_url")]),
            ("variable as host", W, u("https://{{1}}"), vec![("buttons[0].url", "invalid_url")]),
            ("variable extends host", W, u("https://x.com{{1}}"), vec![("buttons[0].url", "invalid_url")]),
            ("two variables", W, u("https://x.com/{{1}}{{2}}"), vec![("buttons[0].url", "too_many_variables")]),
            ("malformed variable", W, u("https://x.com/{{ 1 }}"), vec![("buttons[0].url", "invalid_variable")]),
            ("numbered from 2", W, u("https://x.com/t/{{2}}"), vec![("buttons[0].url", "variable_gap")]),
            ("named beside numbered body", W, u("https://x.com/t/{{code}}"), vec![("buttons[0].url", "mixed_variables")]),
            ("2000", W, u(&format!("https://x.com/{}", "a".repeat(2000 - 14))), vec![]),
            ("2001", W, u(&format!("https://x.com/{}", "a".repeat(2001 - 14))), vec![("buttons[0].url", "too_long")]),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn phone_and_copy_code_buttons() {
        use Channel::Whatsapp as W;
        let p = |phone: &str| with(whatsapp(), |t| t.buttons = vec![phone_button(phone)]);
        let c = |code: &str| with(whatsapp(), |t| t.buttons = vec![copy_code(code)]);
        check_table(vec![
            ("e164", W, p("+15550051310"), vec![]),
            ("8 digits", W, p("+12345678"), vec![]),
            ("15 digits", W, p("+123456789012345"), vec![]),
            ("padded", W, p(" +442079460958 "), vec![]),
            (
                "missing",
                W,
                with(whatsapp(), |t| {
                    t.buttons = vec![button(ButtonType::PhoneNumber, "Call")]
                }),
                vec![("buttons[0].phone_number", "required")],
            ),
            ("no plus", W, p("15550051310"), vec![("buttons[0].phone_number", "invalid_phone_number")]),
            ("spaces", W, p("+1 555 005 1310"), vec![("buttons[0].phone_number", "invalid_phone_number")]),
            ("7 digits", W, p("+1234567"), vec![("buttons[0].phone_number", "invalid_phone_number")]),
            ("16 digits", W, p("+1234567890123456"), vec![("buttons[0].phone_number", "invalid_phone_number")]),
            ("country 0", W, p("+0123456789"), vec![("buttons[0].phone_number", "invalid_phone_number")]),
            ("code", W, c("SAVE25"), vec![]),
            ("code 15", W, c(&"A".repeat(15)), vec![]),
            ("code 16", W, c(&"A".repeat(16)), vec![("buttons[0].example", "too_long")]),
            (
                "code missing",
                W,
                with(whatsapp(), |t| {
                    t.buttons = vec![button(ButtonType::CopyCode, "Copy")]
                }),
                vec![("buttons[0].example", "required")],
            ),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn variable_mappings() {
        use Channel::Whatsapp as W;
        let m = |pairs: &[(&str, &str)]| with(whatsapp(), |t| t.variable_mapping = mapping(pairs));
        check_table(vec![
            (
                "every contact field",
                W,
                with(whatsapp(), |t| {
                    t.body = "A {{1}} {{2}} {{3}} {{4}} {{5}} {{6}} {{7}}.".into();
                    t.variable_mapping = mapping(&[
                        ("1", "contact.name"),
                        ("2", "contact.phone"),
                        ("3", "contact.locale"),
                        ("4", "contact.whatsapp_user_id"),
                        ("5", "contact.messenger_psid"),
                        ("6", "contact.fields.plan"),
                        ("7", " contact.fields.visits_2 "),
                    ]);
                }),
                vec![],
            ),
            (
                "header variable",
                W,
                with(whatsapp(), |t| {
                    t.header = Some(header(HeaderFormat::Text, Some("For {{1}}"), None));
                    t.body = "Hello there, all is well.".into();
                    t.variable_mapping = mapping(&[("1", "contact.name")]);
                }),
                vec![],
            ),
            (
                "url variable",
                W,
                with(whatsapp(), |t| {
                    t.body = "Hello there, all is well.".into();
                    t.buttons = vec![url_button("https://x.com/t/{{1}}")];
                    t.variable_mapping = mapping(&[("1", "contact.fields.order_id")]);
                }),
                vec![],
            ),
            (
                "named",
                W,
                with(messenger(), |t| {
                    t.tag = None;
                    t.category = Some(TemplateCategory::Utility);
                    t.variable_mapping = mapping(&[("first_name", "contact.name")]);
                }),
                vec![],
            ),
            ("unknown", W, m(&[("3", "contact.name")]), vec![("variable_mapping.3", "unknown_variable")]),
            ("unknown name", W, m(&[("first_name", "contact.name")]), vec![("variable_mapping.first_name", "unknown_variable")]),
            ("not a contact path", W, m(&[("1", "name")]), vec![("variable_mapping.1", "invalid_mapping")]),
            ("unknown contact field", W, m(&[("1", "contact.email")]), vec![("variable_mapping.1", "invalid_mapping")]),
            ("custom field with capitals", W, m(&[("1", "contact.fields.Plan")]), vec![("variable_mapping.1", "invalid_mapping")]),
            ("custom field without key", W, m(&[("1", "contact.fields.")]), vec![("variable_mapping.1", "invalid_mapping")]),
            ("nested custom field", W, m(&[("1", "contact.fields.a.b")]), vec![("variable_mapping.1", "invalid_mapping")]),
            ("both wrong", W, m(&[("9", "x")]), vec![("variable_mapping.9", "unknown_variable"), ("variable_mapping.9", "invalid_mapping")]),
            // The mistyped variable is the one problem to fix, not its mapping too.
            (
                "after a malformed variable",
                W,
                with(whatsapp(), |t| {
                    t.body = "Hi {{ 1 }} there.".into();
                    t.variable_mapping = mapping(&[("1", "contact.name")]);
                }),
                vec![("body", "invalid_variable")],
            ),
        ]);
        let content = validate_template(m(&[("1", "  contact.name ")]), W).unwrap();
        assert_eq!(content.variable_mapping, mapping(&[("1", "contact.name")]));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let input = TemplateInput {
            name: "Bad Name".into(),
            locale: "english".into(),
            category: None,
            header: Some(header(HeaderFormat::Image, Some("x"), None)),
            body: "{{1}} and {{3}}".into(),
            footer: Some("{{1}}".into()),
            buttons: vec![quick_reply(""), url_button("ftp://x")],
            variable_mapping: mapping(&[("9", "contact.email")]),
            tag: Some(MessageTag::AccountUpdate),
        };
        let mut expected = vec![
            ("name", "invalid_name"),
            ("locale", "invalid_locale"),
            ("category", "required"),
            ("tag", "not_allowed"),
            ("header.text", "not_allowed"),
            ("header.example", "required"),
            ("footer", "too_many_variables"),
            ("buttons", "mixed_buttons"),
            ("buttons[0].text", "required"),
            ("buttons[1].url", "invalid_url"),
            ("body", "variable_at_edge"),
            ("body", "variable_gap"),
            ("variable_mapping.9", "unknown_variable"),
            ("variable_mapping.9", "invalid_mapping"),
        ];
        expected.sort();
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(f, c)| (f.into(), c.into()))
            .collect();
        assert_eq!(errors(input, Channel::Whatsapp), expected);
    }

    #[test]
    fn statuses_follow_the_lifecycle() {
        use TemplateStatus::*;
        let allowed = [
            (Draft, Pending),
            (Draft, Approved),
            (Pending, Approved),
            (Pending, Rejected),
            (Rejected, Pending),
            (Rejected, Draft),
            (Approved, Paused),
            (Approved, Disabled),
            (Paused, Approved),
            (Paused, Disabled),
        ];
        for from in TemplateStatus::ALL {
            for to in TemplateStatus::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from:?} -> {to:?}"
                );
            }
            assert_eq!(from.is_sendable(), from == Approved, "{from:?}");
        }
        assert!(TemplateStatus::ALL
            .iter()
            .all(|to| !Disabled.can_transition_to(*to)));
    }

    fn contact() -> Contact {
        Contact {
            id: ContactId::new(),
            name: Some("Ada".into()),
            phone: Some(PhoneNumber::from_trusted("+442079460958".into())),
            whatsapp_user_id: Some(WhatsappUserId::from_trusted("US.123456".into())),
            messenger_psid: Some(MessengerPsid::from_trusted("1254459154682919".into())),
            locale: Some(Locale::from_trusted("en_GB".into())),
            owner_id: None,
            fields: json!({"plan": "gold", "visits": 3, "vip": true, "note": null, "blank": " "})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn content(body: &str) -> TemplateContent {
        TemplateContent {
            name: "t".into(),
            locale: Locale::from_trusted("en".into()),
            category: Some(TemplateCategory::Utility),
            header: None,
            body: body.into(),
            footer: None,
            buttons: Vec::new(),
            variable_mapping: BTreeMap::new(),
            tag: None,
        }
    }

    fn supplied(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn variables_in_order_of_appearance() {
        let mut c = content("Hi {{2}}, {{1}} and {{2}} again {{3}}.");
        c.header = Some(header(HeaderFormat::Text, Some("For {{3}}"), None));
        c.buttons = vec![
            quick_reply("{{9}}"),
            url_button("https://x.com/{{4}}"),
            TemplateButton {
                example: Some("{{8}}".into()),
                ..copy_code("x")
            },
        ];
        assert_eq!(c.variables(), ["3", "2", "1", "4"]);
        assert!(content("No variables {here}.").variables().is_empty());
        assert_eq!(content("{{a}} {{ b }} {{c}}").variables(), ["a", "c"]);
    }

    #[test]
    fn values_come_from_the_send_then_the_contact() {
        let mut c = content("A {{1}} {{2}} {{3}} {{4}} {{5}} {{6}} {{7}} {{8}} {{9}}.");
        c.variable_mapping = mapping(&[
            ("1", "contact.name"),
            ("2", "contact.phone"),
            ("3", "contact.locale"),
            ("4", "contact.whatsapp_user_id"),
            ("5", "contact.messenger_psid"),
            ("6", "contact.fields.plan"),
            ("7", "contact.fields.visits"),
            ("8", "contact.fields.vip"),
            ("9", "contact.name"),
        ]);
        let values = c
            .resolve_variables(
                &supplied(json!({"9": "Grace", "extra": "ignored"})),
                &contact(),
            )
            .unwrap();
        let expected = mapping(&[
            ("1", "Ada"),
            ("2", "+442079460958"),
            ("3", "en_GB"),
            ("4", "US.123456"),
            ("5", "1254459154682919"),
            ("6", "gold"),
            ("7", "3"),
            ("8", "true"),
            ("9", "Grace"),
        ]);
        assert_eq!(values, expected);
        assert_eq!(
            c.render(&values),
            "A Ada +442079460958 en_GB US.123456 1254459154682919 gold 3 true Grace."
        );
    }

    #[test]
    fn supplied_scalars_and_missing_values() {
        let mut c = content("A {{1}} {{2}} {{3}} {{4}} {{5}} {{6}} {{7}} {{8}}.");
        c.variable_mapping = mapping(&[
            ("3", "contact.name"),
            ("4", "contact.fields.note"),
            ("5", "contact.fields.blank"),
            ("6", "contact.fields.absent"),
        ]);
        let sent = supplied(json!({
            "1": 2.5, "2": false, "3": null, "4": "", "5": "  ", "7": [1], "8": {"a": 1}
        }));
        assert_eq!(
            c.resolve_variables(&sent, &contact()),
            Err(vec![
                "4".into(),
                "5".into(),
                "6".into(),
                "7".into(),
                "8".into()
            ])
        );
        let mut nobody = contact();
        nobody.name = None;
        assert_eq!(
            c.resolve_variables(&sent, &nobody).unwrap_err()[0],
            "3".to_owned()
        );
        let all = supplied(
            json!({"1": "a", "2": "b", "3": "c", "4": "d", "5": "e", "6": "f", "7": "g", "8": "h"}),
        );
        assert_eq!(
            c.render(&c.resolve_variables(&all, &nobody).unwrap()),
            "A a b c d e f g h."
        );
        assert!(content("No variables.")
            .resolve_variables(&Map::new(), &contact())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn render_keeps_what_it_cannot_fill() {
        let c = content("Hi {{1}}, code {{2}}, {{ 3 }} and {{x");
        let values = mapping(&[("1", "{{2}}")]);
        // A value is not re-read for variables, and a gap stays visible.
        assert_eq!(c.render(&values), "Hi {{2}}, code {{2}}, {{ 3 }} and {{x");
    }

    #[test]
    fn promotional_templates() {
        let mut c = content("Your order has shipped.");
        assert!(!c.is_promotional());
        c.category = Some(TemplateCategory::Marketing);
        assert!(c.is_promotional());
        c.category = None;
        c.body = "Flash sale today only.".into();
        assert!(c.is_promotional());
    }

    /// pywa's template examples (github david-lev/pywa 0bcf2f19, tests/data/templates), as Meta's
    /// create-template bodies.
    const PYWA_EXAMPLES: &str = r#"[
{"name": "seasonal_promotion", "language": "en_US", "category": "MARKETING", "components": [{"type": "HEADER", "format": "TEXT", "text": "Our {{1}} is on!", "example": {"header_text": ["Summer Sale"]}}, {"type": "BODY", "text": "Shop now through {{1}} and use code {{2}} to get {{3}} off of all merchandise.", "example": {"body_text": [["the end of August", "25OFF", "25%"]]}}, {"type": "FOOTER", "text": "Use the buttons below to manage your MARKETING subscriptions"}, {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Unsubscribe from Promos"}, {"type": "QUICK_REPLY", "text": "Unsubscribe from All"}]}]},
{"name": "order_confirmation", "language": "en_US", "category": "UTILITY", "components": [{"type": "HEADER", "format": "DOCUMENT", "example": {"header_handle": ["4::YX..."]}}, {"type": "BODY", "text": "Thank you for your order, {{1}}! Your order number is {{2}}. Tap the PDF linked above to view your receipt. If you have any questions, please use the buttons below to contact support. Thank you for being a customer!", "example": {"body_text": [["Pablo", "860198-230332"]]}}, {"type": "BUTTONS", "buttons": [{"type": "PHONE_NUMBER", "text": "Call", "phone_number": "15550051310"}, {"type": "URL", "text": "Contact Support", "url": "https://www.luckyshrub.com/support"}]}]},
{"name": "order_delivery_update", "language": "en_US", "category": "UTILITY", "components": [{"type": "HEADER", "format": "LOCATION"}, {"type": "BODY", "text": "Good news {{1}}! Your order #{{2}} is on its way to the location above. Thank you for your order!", "example": {"body_text": [["Mark", "566701"]]}}, {"type": "FOOTER", "text": "To stop receiving delivery updates, tap the button below."}, {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Stop Delivery Updates"}]}]},
{"name": "abandoned_cart_offer", "language": "en_US", "category": "MARKETING", "components": [{"type": "HEADER", "format": "PRODUCT"}, {"type": "BODY", "text": "Use code {{1}} to get {{2}} off our newest succulent!", "example": {"body_text": [["25OFF", "25%"]]}}, {"type": "FOOTER", "text": "Offer ends September 30, 2024"}, {"type": "BUTTONS", "buttons": [{"type": "SPM", "text": "View"}]}]},
{"name": "intro_catalog_offer", "language": "en_US", "category": "MARKETING", "components": [{"type": "BODY", "text": "Now shop for your favourite products right here on WhatsApp! Get Rs {{1}} off on all orders above {{2}}Rs! Valid for your first {{3}} orders placed on WhatsApp!", "example": {"body_text": [["100", "400", "3"]]}}, {"type": "FOOTER", "text": "Best grocery deals on WhatsApp!"}, {"type": "BUTTONS", "buttons": [{"type": "CATALOG", "text": "View catalog"}]}]},
{"name": "coupon_code_fall2023_25off", "language": "en_US", "category": "MARKETING", "components": [{"type": "HEADER", "format": "TEXT", "text": "Our Fall Sale is on!"}, {"type": "BODY", "text": "Shop now through November and use code {{1}} to get {{2}} off of all merchandise!", "example": {"body_text": [["25OFF", "25%"]]}}, {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Unsubscribe"}, {"type": "COPY_CODE", "example": "250FF"}]}]},
{"name": "abandoned_cart", "language": "en_US", "category": "MARKETING", "components": [{"type": "HEADER", "format": "TEXT", "text": "Forget something, {{1}}?", "example": {"header_text": ["Pablo"]}}, {"type": "BODY", "text": "Looks like you left these items in your cart, still interested? Use code {{1}} to get 10% off!", "example": {"body_text": [["10OFF"]]}}, {"type": "BUTTONS", "buttons": [{"type": "MPM", "text": "View items"}]}]},
{"name": "limited_time_offer_caribbean_pkg_2023", "language": "en_US", "category": "MARKETING", "components": [{"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW..."]}}, {"type": "LIMITED_TIME_OFFER", "limited_time_offer": {"text": "Expiring offer!", "has_expiration": true}}, {"type": "BODY", "text": "Good news, {{1}}! Use code {{2}} to get 25% off all Caribbean Destination packages!", "example": {"body_text": [["Pablo", "CARIBE25"]]}}, {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "example": "CARIBE25"}, {"type": "URL", "text": "Book now!", "url": "https://awesomedestinations.com/offers?code={{1}}", "example": ["https://awesomedestinations.com/offers?ref=n3mtql"]}]}]}
]"#;

    fn example(name: &str) -> Value {
        let all: Value = serde_json::from_str(PYWA_EXAMPLES).unwrap_or_default();
        all.as_array()
            .and_then(|a| a.iter().find(|t| t["name"] == name))
            .cloned()
            .unwrap_or_default()
    }

    /// Meta's create body as our input, or the component that our model does not cover.
    /// COPY_CODE has a fixed label at Meta; our buttons always carry one, so it gets Meta's.
    fn from_meta(meta: &Value) -> Result<TemplateInput, String> {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let mut input = TemplateInput {
            name: text(&meta["name"]).unwrap_or_default(),
            locale: text(&meta["language"]).unwrap_or_default(),
            category: serde_json::from_value(meta["category"].clone()).ok(),
            ..Default::default()
        };
        for component in meta["components"].as_array().into_iter().flatten() {
            match component["type"].as_str().unwrap_or_default() {
                "HEADER" => {
                    let format = serde_json::from_value(component["format"].clone())
                        .map_err(|_| format!("header {}", component["format"]))?;
                    input.header = Some(TemplateHeader {
                        format,
                        text: text(&component["text"]),
                        example: text(&component["example"]["header_handle"][0])
                            .or_else(|| text(&component["example"]["header_text"][0])),
                    });
                }
                "BODY" => input.body = text(&component["text"]).unwrap_or_default(),
                "FOOTER" => input.footer = text(&component["text"]),
                "BUTTONS" => {
                    for b in component["buttons"].as_array().into_iter().flatten() {
                        let kind: ButtonType = serde_json::from_value(b["type"].clone())
                            .map_err(|_| format!("button {}", b["type"]))?;
                        let label = match kind {
                            ButtonType::CopyCode => Some("Copy offer code".to_owned()),
                            _ => text(&b["text"]),
                        };
                        input.buttons.push(TemplateButton {
                            kind,
                            text: label.unwrap_or_default(),
                            url: text(&b["url"]),
                            phone_number: text(&b["phone_number"]),
                            example: text(&b["example"]).or_else(|| text(&b["example"][0])),
                        });
                    }
                }
                other => return Err(other.to_owned()),
            }
        }
        Ok(input)
    }

    #[test]
    fn pywa_seasonal_promotion_is_whatsapp_marketing() {
        let input = from_meta(&example("seasonal_promotion")).unwrap();
        let c = validate_template(input, Channel::Whatsapp).unwrap();
        assert_eq!(c.category, Some(TemplateCategory::Marketing));
        assert_eq!(
            c.header.as_ref().map(|h| h.format),
            Some(HeaderFormat::Text)
        );
        assert_eq!(c.buttons.len(), 2);
        assert_eq!(c.variables(), ["1", "2", "3"]);
        assert!(c.is_promotional());
        let values = c
            .resolve_variables(
                &supplied(json!({"1": "the end of August", "2": "25OFF", "3": "25%"})),
                &contact(),
            )
            .unwrap();
        assert_eq!(
            c.render(&values),
            "Shop now through the end of August and use code 25OFF to get 25% off of all \
             merchandise."
        );
        // The same body under a Messenger tag is an advertisement, which tags may not carry.
        let tagged = TemplateInput {
            body: c.body.clone(),
            tag: Some(MessageTag::AccountUpdate),
            ..messenger()
        };
        assert_eq!(
            errors(tagged, Channel::Messenger),
            [("body".to_owned(), "promotional_content".to_owned())]
        );
    }

    #[test]
    fn pywa_examples_that_fit_our_model_validate() {
        for name in ["seasonal_promotion", "coupon_code_fall2023_25off"] {
            let input = from_meta(&example(name)).unwrap();
            assert_eq!(errors(input, Channel::Whatsapp), [], "{name}");
        }
        // Meta's own example writes the number without `+`; we hold buttons to E.164.
        let mut order = from_meta(&example("order_confirmation")).unwrap();
        assert_eq!(
            errors(order.clone(), Channel::Whatsapp),
            [(
                "buttons[0].phone_number".to_owned(),
                "invalid_phone_number".to_owned()
            )]
        );
        order.buttons[0].phone_number = Some("+15550051310".into());
        let c = validate_template(order, Channel::Whatsapp).unwrap();
        assert_eq!(
            c.header.and_then(|h| h.example).as_deref(),
            Some("4::YX...")
        );

        // The limited-time-offer component is not ours; the rest of the template is.
        let mut offer = example("limited_time_offer_caribbean_pkg_2023");
        if let Some(components) = offer["components"].as_array_mut() {
            components.retain(|c| c["type"] != "LIMITED_TIME_OFFER");
        }
        let c = validate_template(from_meta(&offer).unwrap(), Channel::Whatsapp).unwrap();
        assert_eq!(c.variables(), ["1", "2"]);
        assert_eq!(
            c.buttons[1].example.as_deref(),
            Some("https://awesomedestinations.com/offers?ref=n3mtql")
        );

        // The bodies of the rest fit once their location, product and catalog parts are gone.
        for (name, unsupported) in [
            ("order_delivery_update", "header \"LOCATION\""),
            ("abandoned_cart_offer", "header \"PRODUCT\""),
            ("intro_catalog_offer", "button \"CATALOG\""),
            ("abandoned_cart", "button \"MPM\""),
        ] {
            let meta = example(name);
            assert_eq!(from_meta(&meta).unwrap_err(), unsupported, "{name}");
            let mut bare = meta.clone();
            if let Some(components) = bare["components"].as_array_mut() {
                components.retain(|c| c["type"] == "BODY" || c["type"] == "FOOTER");
            }
            assert_eq!(
                errors(from_meta(&bare).unwrap(), Channel::Whatsapp),
                [],
                "{name}"
            );
        }
    }

    fn input_of(c: &TemplateContent) -> TemplateInput {
        TemplateInput {
            name: c.name.clone(),
            locale: c.locale.as_str().to_owned(),
            category: c.category,
            header: c.header.clone(),
            body: c.body.clone(),
            footer: c.footer.clone(),
            buttons: c.buttons.clone(),
            variable_mapping: c.variable_mapping.clone(),
            tag: c.tag,
        }
    }

    /// Texts that reach the interesting cases: arbitrary strings, and fragments of
    /// well-formed, malformed and promotional text with variables.
    fn text() -> impl Strategy<Value = String> {
        let fragment = prop_oneof![
            "[A-Za-z ,.!é]{1,8}",
            Just("{{1}}".to_owned()),
            Just("{{2}}".to_owned()),
            Just("{{name}}".to_owned()),
            Just("{{".to_owned()),
            Just("}}".to_owned()),
            Just("{{ 1 }}".to_owned()),
            Just(" sale ".to_owned()),
            Just("https://x.com/".to_owned()),
        ];
        prop_oneof![
            any::<String>(),
            "[a-z_]{1,12}",
            proptest::collection::vec(fragment, 0..8).prop_map(|v| v.concat()),
        ]
    }

    fn channel() -> impl Strategy<Value = Channel> {
        proptest::sample::select(Channel::ALL.to_vec())
    }

    fn arbitrary_button() -> impl Strategy<Value = TemplateButton> {
        let kind = proptest::sample::select(vec![
            ButtonType::QuickReply,
            ButtonType::Url,
            ButtonType::PhoneNumber,
            ButtonType::CopyCode,
        ]);
        let url = prop_oneof![text(), Just("https://x.com/t/{{1}}".to_owned())];
        let phone = prop_oneof![text(), Just("+15550051310".to_owned())];
        (
            kind,
            text(),
            proptest::option::of(url),
            proptest::option::of(phone),
            proptest::option::of(text()),
        )
            .prop_map(|(kind, text, url, phone_number, example)| TemplateButton {
                kind,
                text,
                url,
                phone_number,
                example,
            })
    }

    fn arbitrary_input() -> impl Strategy<Value = TemplateInput> {
        let header = (
            proptest::sample::select(vec![
                HeaderFormat::Text,
                HeaderFormat::Image,
                HeaderFormat::Document,
                HeaderFormat::Video,
            ]),
            proptest::option::of(text()),
            proptest::option::of(text()),
        )
            .prop_map(|(format, text, example)| TemplateHeader {
                format,
                text,
                example,
            });
        let category = proptest::option::of(proptest::sample::select(vec![
            TemplateCategory::Marketing,
            TemplateCategory::Utility,
            TemplateCategory::Authentication,
        ]));
        let tag = proptest::option::of(proptest::sample::select(vec![
            MessageTag::ConfirmedEventUpdate,
            MessageTag::PostPurchaseUpdate,
            MessageTag::AccountUpdate,
            MessageTag::HumanAgent,
        ]));
        let locale = prop_oneof![
            text(),
            proptest::sample::select(vec!["en".to_owned(), "en_US".to_owned()])
        ];
        let path = prop_oneof![
            text(),
            Just("contact.name".to_owned()),
            Just("contact.fields.plan".to_owned())
        ];
        let key = prop_oneof![text(), Just("1".to_owned()), Just("name".to_owned())];
        (
            text(),
            locale,
            category,
            proptest::option::of(header),
            text(),
            proptest::option::of(text()),
            proptest::collection::vec(arbitrary_button(), 0..4),
            proptest::collection::btree_map(key, path, 0..3),
            tag,
        )
            .prop_map(
                |(name, locale, category, header, body, footer, buttons, variable_mapping, tag)| {
                    TemplateInput {
                        name,
                        locale,
                        category,
                        header,
                        body,
                        footer,
                        buttons,
                        variable_mapping,
                        tag,
                    }
                },
            )
    }

    /// A body of plain text and well-formed variables, all of one style.
    fn well_formed_body() -> impl Strategy<Value = String> {
        let var = prop_oneof![
            (1u32..6).prop_map(|n| format!("{{{{{n}}}}}")),
            "[a-z][a-z0-9_]{0,5}".prop_map(|n| format!("{{{{{n}}}}}")),
        ];
        proptest::collection::vec(("[^{}]{0,10}", var), 0..6).prop_map(|parts| {
            parts
                .into_iter()
                .map(|(text, var)| format!("{text}{var}"))
                .collect()
        })
    }

    /// Inputs close to valid for `channel`, so that many are accepted.
    fn plausible_input(channel: Channel) -> impl Strategy<Value = TemplateInput> {
        let whatsapp = channel == Channel::Whatsapp;
        let buttons = proptest::collection::vec(
            proptest::sample::select(vec![
                quick_reply(" Yes "),
                quick_reply("No"),
                url_button("https://x.com/t/{{1}}"),
                url_button("https://x.com/help"),
                phone_button("+15550051310"),
                copy_code("SAVE10"),
            ]),
            0..3,
        );
        let header = proptest::option::of(proptest::sample::select(vec![
            header(HeaderFormat::Text, Some("Order {{1}}"), None),
            header(HeaderFormat::Text, Some("Hello {{name}}"), None),
            header(HeaderFormat::Image, None, Some("4::aW")),
        ]));
        let mapping = proptest::collection::btree_map(
            proptest::sample::select(vec!["1".to_owned(), "2".to_owned(), "name".to_owned()]),
            proptest::sample::select(vec![
                "contact.name".to_owned(),
                "contact.fields.plan".to_owned(),
            ]),
            0..2,
        );
        (
            "[a-z_]{1,12}",
            proptest::sample::select(vec!["en", "en-us", "pt_BR"]),
            well_formed_body(),
            proptest::option::of("[A-Za-z ]{0,20}"),
            buttons,
            header,
            mapping,
        )
            .prop_map(
                move |(name, locale, body, footer, buttons, header, variable_mapping)| {
                    TemplateInput {
                        name,
                        locale: locale.to_owned(),
                        category: whatsapp.then_some(TemplateCategory::Utility),
                        header: header.filter(|_| whatsapp),
                        body: format!(" Hi {body}. "),
                        footer: footer.filter(|_| whatsapp),
                        buttons: if whatsapp { buttons } else { Vec::new() },
                        variable_mapping,
                        tag: (channel == Channel::Messenger).then_some(MessageTag::AccountUpdate),
                    }
                },
            )
    }

    proptest! {
        /// What is accepted is accepted again unchanged: validation is idempotent, so stored
        /// templates can be re-validated after an edit without drifting.
        #[test]
        fn accepted_templates_are_stable(
            (channel, input) in channel().prop_flat_map(|c| (Just(c), plausible_input(c)))
        ) {
            if let Ok(c) = validate_template(input, channel) {
                prop_assert_eq!(validate_template(input_of(&c), channel), Ok(c.clone()));
                prop_assert_eq!(c.body.trim(), c.body.as_str());
            }
        }

        #[test]
        fn plain_bodies_have_no_variables(body in "[^{]*") {
            let c = content(&body);
            prop_assert!(c.variables().is_empty());
            prop_assert_eq!(c.render(&BTreeMap::new()), body);
        }

        /// Nothing is lost: without values, rendering gives back the body exactly, however
        /// its braces are written.
        #[test]
        fn rendering_without_values_is_the_identity(body in text()) {
            prop_assert_eq!(content(&body).render(&BTreeMap::new()), body);
        }

        #[test]
        fn rendering_with_every_value_leaves_no_variable(
            body in well_formed_body(),
            values in proptest::collection::vec("[^{}]{0,10}", 16),
        ) {
            let c = content(&body);
            let names = c.variables();
            let sent: Map<String, Value> = names
                .iter()
                .zip(values.iter().cycle())
                .map(|(n, v)| (n.clone(), Value::String(format!("<{v}>"))))
                .collect();
            let resolved = c.resolve_variables(&sent, &contact()).unwrap();
            prop_assert_eq!(resolved.keys().cloned().collect::<Vec<_>>().len(), names.len());
            let rendered = c.render(&resolved);
            prop_assert!(!rendered.contains("{{"), "{}", rendered);
        }

        /// Any input gets an answer, never a panic; every refusal names a field and uses a
        /// known code; and what is accepted is accepted again unchanged.
        #[test]
        fn validation_is_total_and_stable(input in arbitrary_input(), channel in channel()) {
            match validate_template(input, channel) {
                Ok(c) => {
                    prop_assert_eq!(validate_template(input_of(&c), channel), Ok(c.clone()));
                    if channel == Channel::Messenger {
                        prop_assert!(!looks_promotional(&c.body));
                    }
                    let _ = c.render(&BTreeMap::new());
                }
                Err(e) => {
                    prop_assert!(!e.is_empty());
                    for error in e.errors() {
                        prop_assert!(!error.field.is_empty());
                        prop_assert!(CODES.contains(&error.code.as_str()), "{}", error.code);
                    }
                }
            }
        }

        /// Well-formed bodies on simple templates are accepted as long as they keep to one style
        /// of variables, number them without gaps and keep them off the edges.
        #[test]
        fn well_formed_bodies_are_accepted(body in well_formed_body()) {
            let padded = format!("Hi {body}.");
            let result = validate_template(with(whatsapp(), |t| t.body = padded.clone()), Channel::Whatsapp);
            let c = content(&padded);
            let names = c.variables();
            let positional: Vec<u32> = names.iter().filter_map(|n| n.parse().ok()).collect();
            let mut sorted = positional.clone();
            sorted.sort_unstable();
            let consistent = positional.is_empty() || positional.len() == names.len();
            let gapless = sorted.iter().zip(1u32..).all(|(n, e)| *n == e);
            let fits = padded.trim().chars().count() <= MAX_BODY_CHARS;
            prop_assert_eq!(result.is_ok(), consistent && gapless && fits, "{}", padded);
        }
    }
}
