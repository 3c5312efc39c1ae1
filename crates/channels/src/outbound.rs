//! What to send, independent of the provider, and the HTTP request a provider needs for it.
//!
//! The builders in `whatsapp_send`, `messenger_send` and `twilio_send` turn an
//! [`OutboundRequest`] into an [`HttpRequest`]: a plain value that the HTTP layer executes
//! against the sender's `api_base_url`. Nothing here performs I/O. Builders refuse what the
//! provider would refuse (too many buttons, over-long texts, a message kind the channel does not
//! have) with a [`BuildError`], so a bad message fails before it costs a request.

use std::fmt;

use serde::{Deserialize, Serialize};
use switchboard_core::{MessengerPsid, PhoneNumber, WhatsappUserId};

/// Who receives the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// E.164; WhatsApp gets its digits, Twilio the `+` form.
    Phone(PhoneNumber),
    /// A WhatsApp business-scoped user id (BSUID), sent as `recipient`.
    WhatsappUser(WhatsappUserId),
    /// A Messenger page-scoped id.
    MessengerPsid(MessengerPsid),
}

impl Recipient {
    /// Short name for errors.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Recipient::Phone(_) => "a phone number",
            Recipient::WhatsappUser(_) => "a WhatsApp user id",
            Recipient::MessengerPsid(_) => "a Messenger PSID",
        }
    }
}

/// One message to one recipient.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundRequest {
    pub to: Recipient,
    pub body: OutboundBody,
    /// The provider id of the message this one answers. WhatsApp quotes it (`context`); the
    /// other providers have no quoting and ignore it.
    pub reply_to: Option<String>,
    /// Our own reference, which WhatsApp echoes in every status of the message
    /// (`biz_opaque_callback_data`, at most 512 bytes). It lets a send whose answer was lost be
    /// matched to its message by the statuses that follow.
    pub callback_data: Option<String>,
}

/// WhatsApp's limit on `biz_opaque_callback_data`.
pub const MAX_CALLBACK_DATA_BYTES: usize = 512;

impl OutboundRequest {
    pub fn new(to: Recipient, body: OutboundBody) -> Self {
        Self {
            to,
            body,
            reply_to: None,
            callback_data: None,
        }
    }
}

/// The content of a message.
#[derive(Clone, Debug, PartialEq)]
pub enum OutboundBody {
    Text {
        text: String,
        /// WhatsApp: render a preview of the first URL.
        preview_url: bool,
    },
    Media(Media),
    /// Several media by URL with an optional text, as one MMS (Twilio only).
    MediaGroup {
        text: Option<String>,
        links: Vec<String>,
    },
    /// An approved WhatsApp template with its parameters. Messenger and SMS templates are sent
    /// as their rendered text.
    Template(TemplateMessage),
    /// A reaction to a message; an empty emoji removes it.
    Reaction {
        message_id: String,
        emoji: String,
    },
    /// Text with up to three reply buttons (WhatsApp reply buttons, a Messenger button
    /// template with postback buttons).
    Buttons(Buttons),
    /// A WhatsApp list message.
    List(List),
    /// Text with Messenger quick replies (up to 13).
    QuickReplies {
        text: String,
        replies: Vec<QuickReply>,
    },
    /// Marks a received message as read; on WhatsApp, optionally shows a typing indicator.
    MarkRead {
        message_id: String,
        typing: bool,
    },
    /// A Messenger sender action (typing indicator, seen).
    SenderAction(SenderAction),
}

impl OutboundBody {
    /// `Text` without a link preview.
    pub fn text(text: impl Into<String>) -> Self {
        OutboundBody::Text {
            text: text.into(),
            preview_url: false,
        }
    }

    /// The name of the kind, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            OutboundBody::Text { .. } => "text",
            OutboundBody::Media(_) => "media",
            OutboundBody::MediaGroup { .. } => "media_group",
            OutboundBody::Template(_) => "template",
            OutboundBody::Reaction { .. } => "reaction",
            OutboundBody::Buttons(_) => "buttons",
            OutboundBody::List(_) => "list",
            OutboundBody::QuickReplies { .. } => "quick_replies",
            OutboundBody::MarkRead { .. } => "mark_read",
            OutboundBody::SenderAction(_) => "sender_action",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Document,
    Audio,
    Video,
    Sticker,
}

impl MediaKind {
    /// WhatsApp's `type` and object name.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Document => "document",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Sticker => "sticker",
        }
    }
}

/// One media item, by public HTTPS URL (`link`) or by the provider's id for uploaded media
/// (`media_id`): exactly one of the two.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    pub kind: MediaKind,
    pub link: Option<String>,
    pub media_id: Option<String>,
    /// Image, video and document only.
    pub caption: Option<String>,
    /// Document only (WhatsApp); other providers ignore it.
    pub filename: Option<String>,
    /// Audio only: WhatsApp plays it as a voice note.
    pub voice: bool,
}

impl Media {
    pub fn link(kind: MediaKind, url: impl Into<String>) -> Self {
        Self {
            kind,
            link: Some(url.into()),
            media_id: None,
            caption: None,
            filename: None,
            voice: false,
        }
    }

    pub fn id(kind: MediaKind, media_id: impl Into<String>) -> Self {
        Self {
            kind,
            link: None,
            media_id: Some(media_id.into()),
            caption: None,
            filename: None,
            voice: false,
        }
    }

    pub fn with_caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    pub fn with_filename(mut self, filename: impl Into<String>) -> Self {
        self.filename = Some(filename.into());
        self
    }
}

/// Where a media item comes from, once checked: exactly one of link or id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MediaSource<'a> {
    Link(&'a str),
    Id(&'a str),
}

impl Media {
    pub(crate) fn source(&self, field: &str) -> Result<MediaSource<'_>, BuildError> {
        fn present(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.trim().is_empty())
        }
        match (present(&self.link), present(&self.media_id)) {
            (Some(link), None) => Ok(MediaSource::Link(link)),
            (None, Some(id)) => Ok(MediaSource::Id(id)),
            (Some(_), Some(_)) => Err(BuildError::new(
                field,
                "conflict",
                "give either a link or a media id, not both",
            )),
            (None, None) => Err(BuildError::new(
                field,
                "required",
                "a link or a media id is required",
            )),
        }
    }
}

/// A WhatsApp reply button, or a Messenger postback button.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyButton {
    /// Returned when the button is pressed.
    pub id: String,
    pub title: String,
}

impl ReplyButton {
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buttons {
    pub header: Option<String>,
    pub text: String,
    pub footer: Option<String>,
    /// One to three.
    pub buttons: Vec<ReplyButton>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct List {
    pub header: Option<String>,
    pub text: String,
    pub footer: Option<String>,
    /// The label of the button that opens the list.
    pub button_label: String,
    pub sections: Vec<ListSection>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListSection {
    /// Required when there is more than one section.
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

/// A Messenger quick reply (`content_type: text`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuickReply {
    pub title: String,
    pub payload: String,
    pub image_url: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SenderAction {
    TypingOn,
    TypingOff,
    MarkSeen,
}

impl SenderAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SenderAction::TypingOn => "typing_on",
            SenderAction::TypingOff => "typing_off",
            SenderAction::MarkSeen => "mark_seen",
        }
    }
}

/// A WhatsApp template send: the approved template's name and language and the values of its
/// variables. Parameters are all positional (`name: None`, in order) or all named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateMessage {
    pub name: String,
    /// `en_US`...
    pub language: String,
    pub header: Option<HeaderParameter>,
    pub body_parameters: Vec<TextParameter>,
    pub button_parameters: Vec<ButtonParameter>,
}

/// A text value for a template variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextParameter {
    /// The variable's name for named templates (`first_name`); `None` for `{{1}}`-style ones.
    pub name: Option<String>,
    pub text: String,
}

impl TextParameter {
    pub fn positional(text: impl Into<String>) -> Self {
        Self {
            name: None,
            text: text.into(),
        }
    }

    pub fn named(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            text: text.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderParameter {
    Text(TextParameter),
    /// Image, video or document, by link or id; caption and filename are not used.
    Media(Media),
}

/// The value for one template button, by its zero-based position in the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ButtonParameter {
    pub index: usize,
    pub value: ButtonValue,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ButtonValue {
    /// The payload returned when a quick-reply button is pressed.
    QuickReply(String),
    /// The dynamic suffix of a URL button.
    Url(String),
    /// The code a copy-code button copies.
    CopyCode(String),
}

/// An HTTP request for the HTTP layer to perform.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRequest {
    pub method: &'static str,
    /// Appended to the sender's `api_base_url` (without its trailing `/`); starts with `/` and
    /// may carry a query string.
    pub path: String,
    /// Includes credentials: never log them.
    pub headers: Vec<(String, String)>,
    pub body: RequestBody,
}

impl HttpRequest {
    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum RequestBody {
    /// `application/json`.
    Json(serde_json::Value),
    /// `application/x-www-form-urlencoded`; names may repeat.
    Form(Vec<(String, String)>),
    /// `multipart/form-data`: text fields, then one file (an upload).
    Multipart(Multipart),
    /// No body (a `GET`).
    Empty,
}

/// A `multipart/form-data` body carrying one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Multipart {
    pub fields: Vec<(String, String)>,
    /// The file part's form name (`file` for the Graph API).
    pub file_field: String,
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl Multipart {
    /// Derived from the file's hash, so the same upload encodes the same way every time, and
    /// a boundary that a file would have to contain its own hash to break.
    fn boundary(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&self.bytes);
        format!("switchboard-{}", hex::encode(&digest[..16]))
    }

    fn encode(&self) -> Vec<u8> {
        let boundary = self.boundary();
        let mut out = Vec::with_capacity(self.bytes.len() + 512);
        for (name, value) in &self.fields {
            out.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{value}\r\n",
                    quoted(name)
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\n\
                 Content-Type: {}\r\n\r\n",
                quoted(&self.file_field),
                quoted(&self.filename),
                self.content_type.replace(['\r', '\n'], "")
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.bytes);
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        out
    }
}

/// A name inside a quoted header parameter: quotes and line breaks would end it early.
fn quoted(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            '\r' | '\n' => ' ',
            c => c,
        })
        .collect()
}

impl RequestBody {
    /// The bytes to send.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RequestBody::Json(v) => serde_json::to_vec(v).unwrap_or_default(),
            RequestBody::Form(pairs) => form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into_bytes(),
            RequestBody::Multipart(multipart) => multipart.encode(),
            RequestBody::Empty => Vec::new(),
        }
    }

    /// The `Content-Type` to send, if the request has a body.
    pub fn content_type(&self) -> Option<String> {
        match self {
            RequestBody::Json(_) => Some("application/json".to_owned()),
            RequestBody::Form(_) => Some("application/x-www-form-urlencoded".to_owned()),
            RequestBody::Multipart(multipart) => Some(format!(
                "multipart/form-data; boundary={}",
                multipart.boundary()
            )),
            RequestBody::Empty => None,
        }
    }
}

/// A message the provider would refuse, or a kind the channel does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    /// Where in the request: `body.buttons[3].title`...
    pub field: String,
    /// `unsupported`, `required`, `too_long`, `too_many`, `duplicate`, `conflict`, `invalid`.
    pub code: &'static str,
    pub message: String,
}

impl BuildError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(field, "unsupported", message)
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for BuildError {}

/// What a provider said when it accepted a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReceipt {
    /// `wamid...`, `m_...`, `SM...`.
    pub message_id: String,
    /// The recipient as the provider knows it: WhatsApp `wa_id` (or `user_id` when addressed
    /// by BSUID), Messenger `recipient_id`, Twilio `to`.
    pub recipient_id: Option<String>,
    /// WhatsApp `user_id` (BSUID) when the response carries one.
    pub whatsapp_user_id: Option<String>,
    /// WhatsApp `message_status` (`accepted`, `held_for_quality_assessment`), Twilio `status`.
    pub status: Option<String>,
}

/// A success response that does not have the expected shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

pub(crate) fn parse_json(body: &[u8]) -> Result<serde_json::Value, ParseError> {
    serde_json::from_slice(body).map_err(|e| ParseError(format!("response is not JSON: {e}")))
}

/// A string field, or a number written as one.
pub(crate) fn str_field(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

// Checks shared by the builders.

pub(crate) fn chars(s: &str) -> usize {
    s.chars().count()
}

pub(crate) fn check_max(field: &str, text: &str, max: usize) -> Result<(), BuildError> {
    if chars(text) > max {
        return Err(BuildError::new(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

pub(crate) fn check_required(field: &str, text: &str) -> Result<(), BuildError> {
    if text.trim().is_empty() {
        return Err(BuildError::new(field, "required", "must not be empty"));
    }
    Ok(())
}

/// Non-empty and at most `max` characters.
pub(crate) fn check_text(field: &str, text: &str, max: usize) -> Result<(), BuildError> {
    check_required(field, text)?;
    check_max(field, text, max)
}
