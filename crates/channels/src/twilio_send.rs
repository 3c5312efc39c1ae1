//! Twilio Messages API requests (PROTOCOLS.md C.1) and the success response.

use base64::Engine;

use crate::outbound::{
    check_max, parse_json, str_field, BuildError, HttpRequest, MediaSource, OutboundBody,
    OutboundRequest, ParseError, Recipient, RequestBody, SendReceipt,
};

pub const MAX_BODY_CHARS: usize = 1600;
pub const MAX_MEDIA_URLS: usize = 10;

/// Who sends: a Twilio number (`From`) or a Messaging Service (`MessagingServiceSid`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwilioSender<'a> {
    From(&'a str),
    MessagingService(&'a str),
}

/// `Authorization: Basic base64(user:password)`.
pub fn basic_auth(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// `POST /2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, with HTTP Basic auth.
pub fn twilio_request(
    account_sid: &str,
    auth_token: &str,
    sender: TwilioSender<'_>,
    status_callback: Option<&str>,
    request: &OutboundRequest,
) -> Result<HttpRequest, BuildError> {
    Ok(HttpRequest {
        method: "POST",
        path: format!("/2010-04-01/Accounts/{account_sid}/Messages.json"),
        headers: vec![
            ("Authorization".into(), basic_auth(account_sid, auth_token)),
            (
                "Content-Type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
        ],
        body: RequestBody::Form(twilio_form(sender, status_callback, request)?),
    })
}

/// The form fields of a send, in a stable order: `To`, `From` or `MessagingServiceSid`,
/// `Body`, each `MediaUrl`, `StatusCallback`.
pub fn twilio_form(
    sender: TwilioSender<'_>,
    status_callback: Option<&str>,
    request: &OutboundRequest,
) -> Result<Vec<(String, String)>, BuildError> {
    let to = match &request.to {
        Recipient::Phone(phone) => phone.as_str(),
        other => {
            return Err(BuildError::unsupported(
                "to",
                format!("SMS cannot be sent to {}", other.kind()),
            ))
        }
    };
    let (text, links): (Option<&str>, Vec<&str>) = match &request.body {
        OutboundBody::Text { text, .. } => (Some(text.as_str()), Vec::new()),
        OutboundBody::Media(media) => match media.source("body.link")? {
            MediaSource::Link(link) => (media.caption.as_deref(), vec![link]),
            MediaSource::Id(_) => {
                return Err(BuildError::unsupported(
                    "body.media_id",
                    "MMS media must be given by URL",
                ))
            }
        },
        OutboundBody::MediaGroup { text, links } => {
            (text.as_deref(), links.iter().map(String::as_str).collect())
        }
        other => {
            return Err(BuildError::unsupported(
                "body",
                format!(
                    "SMS has no `{}` messages{}",
                    other.kind(),
                    if matches!(other, OutboundBody::Template(_)) {
                        ": send the template's rendered text"
                    } else {
                        ""
                    }
                ),
            ))
        }
    };
    let text = text.filter(|t| !t.is_empty());
    if links.len() > MAX_MEDIA_URLS {
        return Err(BuildError::new(
            "body.links",
            "too_many",
            format!("at most {MAX_MEDIA_URLS} media URLs"),
        ));
    }
    if let Some(i) = links.iter().position(|l| l.trim().is_empty()) {
        return Err(BuildError::new(
            format!("body.links[{i}]"),
            "required",
            "must not be empty",
        ));
    }
    if text.is_none_or(|t| t.trim().is_empty()) && links.is_empty() {
        return Err(BuildError::new(
            "body.text",
            "required",
            "a text or media is required",
        ));
    }

    let mut form = vec![("To".to_owned(), to.to_owned())];
    match sender {
        TwilioSender::From(from) => form.push(("From".into(), from.into())),
        TwilioSender::MessagingService(sid) => {
            form.push(("MessagingServiceSid".into(), sid.into()))
        }
    }
    if let Some(text) = text {
        check_max("body.text", text, MAX_BODY_CHARS)?;
        form.push(("Body".into(), text.into()));
    }
    for link in links {
        form.push(("MediaUrl".into(), link.into()));
    }
    if let Some(url) = status_callback.filter(|u| !u.is_empty()) {
        check_callback(url)?;
        form.push(("StatusCallback".into(), url.into()));
    }
    Ok(form)
}

/// Twilio wants an http(s) URL whose host has no underscores.
fn check_callback(url: &str) -> Result<(), BuildError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() && !host.contains('_') => Ok(()),
        _ => Err(BuildError::new(
            "status_callback",
            "invalid",
            "must be an http(s) URL whose host has no underscores",
        )),
    }
}

/// The 201 response: the message `sid`, `status` and `to` (PROTOCOLS.md C.1).
pub fn parse_twilio_success(body: &[u8]) -> Result<SendReceipt, ParseError> {
    let v = parse_json(body)?;
    let message_id =
        str_field(&v["sid"]).ok_or_else(|| ParseError("response has no `sid`".into()))?;
    Ok(SendReceipt {
        message_id,
        recipient_id: str_field(&v["to"]),
        whatsapp_user_id: None,
        status: str_field(&v["status"]),
    })
}
