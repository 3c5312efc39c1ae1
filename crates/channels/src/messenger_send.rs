//! Messenger Send API requests (PROTOCOLS.md B.1-B.2) and the success response.

use serde_json::{json, Value};
use switchboard_core::template::MessageTag;

use crate::outbound::{
    check_text, parse_json, str_field, BuildError, HttpRequest, MediaKind, MediaSource,
    OutboundBody, OutboundRequest, ParseError, Recipient, RequestBody, SendReceipt, SenderAction,
};
use crate::whatsapp_send::check_reply_buttons;

/// Meta documents 2,000 characters for a text message.
pub const MAX_TEXT_CHARS: usize = 2000;
pub const MAX_BUTTON_TEMPLATE_TEXT_CHARS: usize = 640;
pub const MAX_BUTTON_TITLE_CHARS: usize = 20;
pub const MAX_QUICK_REPLIES: usize = 13;

/// Why the page may send (PROTOCOLS.md B.2): in answer to the user within the 24-hour window,
/// an update the user asked for within it, or a tagged message outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessagingType {
    Response,
    Update,
    MessageTag(MessageTag),
}

impl MessagingType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessagingType::Response => "RESPONSE",
            MessagingType::Update => "UPDATE",
            MessagingType::MessageTag(_) => "MESSAGE_TAG",
        }
    }
}

/// `POST /{page-id}/messages?access_token=...` for `request`.
pub fn messenger_request(
    page_id: &str,
    page_access_token: &str,
    request: &OutboundRequest,
    messaging: MessagingType,
) -> Result<HttpRequest, BuildError> {
    let token: String = form_urlencoded::byte_serialize(page_access_token.as_bytes()).collect();
    Ok(HttpRequest {
        method: "POST",
        path: format!("/{page_id}/messages?access_token={token}"),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: RequestBody::Json(messenger_body(request, messaging)?),
    })
}

/// The JSON body of a send. Sender actions carry no `messaging_type`.
pub fn messenger_body(
    request: &OutboundRequest,
    messaging: MessagingType,
) -> Result<Value, BuildError> {
    let recipient = match &request.to {
        Recipient::MessengerPsid(psid) => json!({"id": psid.as_str()}),
        other => {
            return Err(BuildError::unsupported(
                "to",
                format!("Messenger cannot send to {}", other.kind()),
            ))
        }
    };
    let action = |action: &str| json!({"recipient": recipient, "sender_action": action});

    let message = match &request.body {
        OutboundBody::SenderAction(a) => return Ok(action(a.as_str())),
        OutboundBody::MarkRead { typing: false, .. } => {
            return Ok(action(SenderAction::MarkSeen.as_str()))
        }
        OutboundBody::MarkRead { typing: true, .. } => {
            return Err(BuildError::unsupported(
                "body.typing",
                "Messenger marks seen and shows typing in two requests: send `mark_seen`, then \
                 `typing_on`",
            ))
        }
        OutboundBody::Reaction { message_id, emoji } => {
            crate::outbound::check_required("body.message_id", message_id)?;
            // Reactions are sender actions: no `message`, no `messaging_type`.
            return Ok(if emoji.is_empty() {
                json!({"recipient": recipient, "sender_action": "unreact",
                       "payload": {"message_id": message_id}})
            } else {
                json!({"recipient": recipient, "sender_action": "react",
                       "payload": {"message_id": message_id, "reaction": emoji}})
            });
        }
        OutboundBody::Text { text, .. } => {
            check_text("body.text", text, MAX_TEXT_CHARS)?;
            json!({ "text": text })
        }
        OutboundBody::Media(media) => {
            let kind = match media.kind {
                MediaKind::Image => "image",
                MediaKind::Audio => "audio",
                MediaKind::Video => "video",
                MediaKind::Document => "file",
                MediaKind::Sticker => {
                    return Err(BuildError::unsupported(
                        "body.kind",
                        "Messenger has no sticker attachments",
                    ))
                }
            };
            if media.caption.as_deref().is_some_and(|c| !c.is_empty()) {
                return Err(BuildError::unsupported(
                    "body.caption",
                    "Messenger attachments have no caption: send the text separately",
                ));
            }
            let payload = match media.source("body.link")? {
                MediaSource::Link(url) => json!({"url": url, "is_reusable": true}),
                MediaSource::Id(id) => json!({ "attachment_id": id }),
            };
            json!({"attachment": {"type": kind, "payload": payload}})
        }
        OutboundBody::Buttons(b) => {
            if b.header.is_some() || b.footer.is_some() {
                return Err(BuildError::unsupported(
                    "body.header",
                    "Messenger button templates have no header or footer",
                ));
            }
            check_text("body.text", &b.text, MAX_BUTTON_TEMPLATE_TEXT_CHARS)?;
            check_reply_buttons(b, MAX_BUTTON_TITLE_CHARS)?;
            let buttons: Vec<Value> = b
                .buttons
                .iter()
                .map(|b| json!({"type": "postback", "title": b.title, "payload": b.id}))
                .collect();
            json!({"attachment": {"type": "template", "payload": {
                "template_type": "button",
                "text": b.text,
                "buttons": buttons,
            }}})
        }
        OutboundBody::QuickReplies { text, replies } => {
            check_text("body.text", text, MAX_TEXT_CHARS)?;
            if replies.is_empty() {
                return Err(BuildError::new(
                    "body.replies",
                    "required",
                    "at least one quick reply is required",
                ));
            }
            if replies.len() > MAX_QUICK_REPLIES {
                return Err(BuildError::new(
                    "body.replies",
                    "too_many",
                    format!("at most {MAX_QUICK_REPLIES} quick replies"),
                ));
            }
            let mut items = Vec::new();
            for (i, r) in replies.iter().enumerate() {
                // Meta truncates long titles rather than refusing them.
                crate::outbound::check_required(&format!("body.replies[{i}].title"), &r.title)?;
                crate::outbound::check_required(&format!("body.replies[{i}].payload"), &r.payload)?;
                let mut item =
                    json!({"content_type": "text", "title": r.title, "payload": r.payload});
                if let Some(url) = r.image_url.as_deref().filter(|u| !u.is_empty()) {
                    item["image_url"] = json!(url);
                }
                items.push(item);
            }
            json!({"text": text, "quick_replies": items})
        }
        other @ (OutboundBody::Template(_)
        | OutboundBody::List(_)
        | OutboundBody::MediaGroup { .. }) => {
            return Err(BuildError::unsupported(
                "body",
                format!(
                    "Messenger has no `{}` messages{}",
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

    let mut body = json!({
        "recipient": recipient,
        "messaging_type": messaging.as_str(),
        "message": message,
    });
    if let MessagingType::MessageTag(tag) = messaging {
        body["tag"] = serde_json::to_value(tag).unwrap_or(Value::Null);
    }
    Ok(body)
}

/// A response to a message: `{"recipient_id", "message_id"}` (PROTOCOLS.md B.1).
pub fn parse_messenger_success(body: &[u8]) -> Result<SendReceipt, ParseError> {
    let v = parse_json(body)?;
    let message_id = str_field(&v["message_id"])
        .ok_or_else(|| ParseError("response has no `message_id`".into()))?;
    Ok(SendReceipt {
        message_id,
        recipient_id: str_field(&v["recipient_id"]),
        whatsapp_user_id: None,
        status: None,
    })
}

/// A response to a sender action or reaction: `{"recipient_id"}`, without a message id.
pub fn parse_messenger_ack(body: &[u8]) -> Result<Option<String>, ParseError> {
    let v = parse_json(body)?;
    if !v.is_object() || v.get("error").is_some() {
        return Err(ParseError("response is not an acknowledgement".into()));
    }
    Ok(str_field(&v["recipient_id"]))
}
