//! Twilio Messaging webhooks: inbound messages and status callbacks (form-encoded).
//!
//! A status callback carries `MessageStatus` (other than `received`); an inbound message
//! carries `SmsStatus=received` and/or `Body` / `NumMedia`. Twilio adds parameters without
//! notice, so unknown ones are ignored (and kept in `raw`).

use serde_json::{Map, Value};

use crate::events::{
    DeliveryStatus, InboundEvent, InboundMessage, Location, Media, MessageKind, ParseError, Party,
    Provider, ProviderError, StatusUpdate,
};

/// Decodes an `application/x-www-form-urlencoded` body into its pairs, in order (repeated
/// names kept). Never fails: malformed percent-escapes are decoded leniently.
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// Parses one Twilio webhook request's parameters.
pub fn parse_twilio(form: &[(String, String)]) -> Result<InboundEvent, ParseError> {
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let non_empty = |name: &str| get(name).filter(|v| !v.is_empty()).map(str::to_owned);
    let raw = raw_of(form);

    let sid = non_empty("MessageSid")
        .or_else(|| non_empty("SmsMessageSid"))
        .or_else(|| non_empty("SmsSid"))
        .ok_or(ParseError::MissingField("MessageSid"))?;
    let from = non_empty("From").ok_or(ParseError::MissingField("From"))?;
    let to = non_empty("To").ok_or(ParseError::MissingField("To"))?;

    let message_status = get("MessageStatus").map(str::to_ascii_lowercase);
    let sms_status = get("SmsStatus").map(str::to_ascii_lowercase);
    let inbound_word =
        |s: &Option<String>| matches!(s.as_deref(), Some("received") | Some("receiving"));
    let is_status = match &message_status {
        Some(_) => !inbound_word(&message_status),
        None => {
            // No MessageStatus: a message if it says so or carries content.
            !(inbound_word(&sms_status) || get("Body").is_some() || get("NumMedia").is_some())
                && sms_status.is_some()
        }
    };

    if is_status {
        let raw_status = message_status
            .or(sms_status)
            .ok_or(ParseError::MissingField("MessageStatus"))?;
        let mut errors = Vec::new();
        if let Some(code) = non_empty("ErrorCode") {
            let message = non_empty("ErrorMessage");
            errors.push(match code.trim().parse::<i64>() {
                Ok(n) => ProviderError {
                    code: Some(n),
                    message,
                    ..ProviderError::default()
                },
                // Not a number: keep the text rather than drop it.
                Err(_) => ProviderError {
                    code: None,
                    title: Some(code),
                    message,
                    ..ProviderError::default()
                },
            });
        }
        return Ok(InboundEvent::Status(StatusUpdate {
            provider: Provider::Twilio,
            provider_message_ids: vec![sid],
            business_id: from,
            account_id: non_empty("AccountSid"),
            status: DeliveryStatus::from_provider(&raw_status),
            raw_status,
            timestamp: None,
            watermark: None,
            recipient: Party::address(to),
            recipient_type: None,
            group_participant: None,
            errors,
            pricing: None,
            conversation: None,
            biz_opaque_callback_data: None,
            raw,
        }));
    }

    if !(inbound_word(&sms_status)
        || inbound_word(&message_status)
        || get("Body").is_some()
        || get("NumMedia").is_some())
    {
        return Err(ParseError::MissingField("MessageStatus"));
    }

    let mut msg = InboundMessage::new(Provider::Twilio, sid, to, MessageKind::Text, raw);
    msg.account_id = non_empty("AccountSid");
    msg.customer = Party {
        address: Some(from),
        name: non_empty("ProfileName"),
        ..Party::default()
    };
    msg.text = non_empty("Body");
    msg.reply_to = non_empty("OriginalRepliedMessageSid");

    let num_media: usize = get("NumMedia")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    // Twilio allows at most 10 media items; don't trust a larger count.
    for n in 0..num_media.min(10) {
        let url = non_empty(&format!("MediaUrl{n}"));
        let mime = non_empty(&format!("MediaContentType{n}"));
        if url.is_none() && mime.is_none() {
            continue;
        }
        msg.media.push(Media {
            url,
            mime_type: mime,
            ..Media::default()
        });
    }
    msg.kind = if let Some(first) = msg.media.first() {
        match first.mime_type.as_deref().and_then(|m| m.split('/').next()) {
            Some("image") => MessageKind::Image,
            Some("video") => MessageKind::Video,
            Some("audio") => MessageKind::Audio,
            _ => MessageKind::Document,
        }
    } else if let Some(payload) = non_empty("ButtonPayload") {
        msg.payload = Some(payload);
        msg.text = non_empty("ButtonText").or(msg.text);
        MessageKind::QuickReply
    } else if let (Some(latitude), Some(longitude)) = (
        get("Latitude").and_then(|v| v.trim().parse::<f64>().ok()),
        get("Longitude").and_then(|v| v.trim().parse::<f64>().ok()),
    ) {
        msg.location = Some(Location {
            latitude,
            longitude,
            name: non_empty("Label"),
            address: non_empty("Address"),
            url: None,
        });
        MessageKind::Location
    } else {
        MessageKind::Text
    };
    Ok(InboundEvent::Message(msg))
}

/// The form as a JSON object; a repeated name becomes an array of its values.
fn raw_of(form: &[(String, String)]) -> Value {
    let mut map = Map::new();
    for (k, v) in form {
        match map.get_mut(k) {
            None => {
                map.insert(k.clone(), Value::String(v.clone()));
            }
            Some(Value::Array(values)) => values.push(Value::String(v.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v.clone())]);
            }
        }
    }
    Value::Object(map)
}
