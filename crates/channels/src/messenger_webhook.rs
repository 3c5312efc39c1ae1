//! Messenger Platform webhook bodies (`object: "page"`).
//!
//! Each `entry[].messaging[]` (and `entry[].standby[]`, for a secondary receiver under
//! handover) event becomes one [`InboundEvent`]: messages (echoes marked `is_echo`),
//! deliveries and reads (as [`StatusUpdate`]s with a watermark), reactions, postbacks and
//! opt-ins. Timestamps are milliseconds. Anything else is [`InboundEvent::Unknown`].

use serde_json::Value;

use crate::events::{
    array_of, bool_of, f64_of, millis_of, str_of, DeliveryStatus, InboundEvent, InboundMessage,
    Location, Media, MessageKind, OptIn, ParseError, Party, Provider, Reaction, StatusUpdate,
};

/// Parses a Messenger webhook body into events, in payload order.
pub fn parse_messenger(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let entries = crate::events::meta_entries(body, "page")?;

    let mut events = Vec::new();
    for entry in &entries {
        let page_id = str_of(entry, "id");
        let messaging = entry.get("messaging").and_then(Value::as_array);
        let standby = entry.get("standby").and_then(Value::as_array);
        if messaging.is_none() && standby.is_none() {
            let kind = if entry.get("changes").is_some() {
                "page.changes"
            } else {
                "page.entry"
            };
            events.push(InboundEvent::Unknown {
                kind: kind.into(),
                raw: entry.clone(),
            });
            continue;
        }
        for ev in messaging.into_iter().flatten() {
            events.push(parse_event(page_id.as_deref(), ev, false));
        }
        for ev in standby.into_iter().flatten() {
            events.push(parse_event(page_id.as_deref(), ev, true));
        }
    }
    Ok(events)
}

fn unknown(kind: &str, raw: &Value) -> InboundEvent {
    InboundEvent::Unknown {
        kind: kind.to_owned(),
        raw: raw.clone(),
    }
}

fn parse_event(page_id: Option<&str>, ev: &Value, standby: bool) -> InboundEvent {
    let sender = ev.get("sender").and_then(|s| str_of(s, "id"));
    let recipient = ev.get("recipient").and_then(|s| str_of(s, "id"));
    let timestamp = millis_of(ev, "timestamp");

    if let Some(m) = ev.get("message").filter(|m| m.is_object()) {
        return parse_message(page_id, sender, recipient, timestamp, ev, m, standby)
            .unwrap_or_else(|| unknown("message", ev));
    }
    // For everything but echoes the user is the sender and the page the recipient.
    let page = recipient.clone().or_else(|| page_id.map(str::to_owned));
    let (Some(psid), Some(page)) = (sender, page) else {
        return unknown(first_event_key(ev), ev);
    };
    if let Some(d) = ev.get("delivery").filter(|d| d.is_object()) {
        return status(
            page,
            page_id,
            psid,
            timestamp,
            d,
            DeliveryStatus::Delivered,
            "delivery",
            ev,
        );
    }
    if let Some(r) = ev.get("read").filter(|r| r.is_object()) {
        return status(
            page,
            page_id,
            psid,
            timestamp,
            r,
            DeliveryStatus::Read,
            "read",
            ev,
        );
    }
    if let Some(r) = ev.get("reaction").filter(|r| r.is_object()) {
        let Some(target) = str_of(r, "mid") else {
            return unknown("reaction", ev);
        };
        let removed = r.get("action").and_then(Value::as_str) == Some("unreact");
        return InboundEvent::Reaction(Reaction {
            provider: Provider::Messenger,
            provider_message_id: None,
            business_id: page,
            account_id: page_id.map(str::to_owned),
            customer: Party::address(psid),
            timestamp,
            target_message_id: target,
            emoji: if removed {
                None
            } else {
                str_of(r, "emoji").filter(|e| !e.is_empty())
            },
            reaction_name: str_of(r, "reaction"),
            removed,
            standby,
        });
    }
    if let Some(p) = ev.get("postback").filter(|p| p.is_object()) {
        let id = str_of(p, "mid").unwrap_or_else(|| {
            format!(
                "postback:{psid}:{}",
                ev.get("timestamp")
                    .map(Value::to_string)
                    .unwrap_or_default()
            )
        });
        let mut msg = InboundMessage::new(
            Provider::Messenger,
            id,
            page,
            MessageKind::Postback,
            ev.clone(),
        );
        msg.account_id = page_id.map(str::to_owned);
        msg.customer = Party::address(psid);
        msg.timestamp = timestamp;
        msg.payload = str_of(p, "payload");
        msg.text = str_of(p, "title");
        msg.referral = p.get("referral").cloned();
        msg.standby = standby;
        return InboundEvent::Message(msg);
    }
    if let Some(o) = ev.get("optin").filter(|o| o.is_object()) {
        return InboundEvent::OptIn(OptIn {
            provider: Provider::Messenger,
            business_id: page,
            customer: Party::address(psid),
            timestamp,
            optin_type: str_of(o, "type"),
            payload: str_of(o, "payload"),
            notification_messages_token: str_of(o, "notification_messages_token"),
            token_expiry: millis_of(o, "token_expiry_timestamp"),
            user_token_status: str_of(o, "user_token_status"),
            notification_messages_status: str_of(o, "notification_messages_status"),
            notification_messages_timezone: str_of(o, "notification_messages_timezone"),
            title: str_of(o, "title"),
            standby,
            raw: ev.clone(),
        });
    }
    unknown(first_event_key(ev), ev)
}

/// The event's distinguishing key (`referral`, `pass_thread_control`, ...), for `Unknown`.
fn first_event_key(ev: &Value) -> &str {
    ev.as_object()
        .and_then(|o| {
            o.keys()
                .map(String::as_str)
                .find(|k| !matches!(*k, "sender" | "recipient" | "timestamp"))
        })
        .unwrap_or("messaging")
}

#[allow(clippy::too_many_arguments)]
fn status(
    page: String,
    page_id: Option<&str>,
    psid: String,
    timestamp: Option<time::OffsetDateTime>,
    body: &Value,
    status: DeliveryStatus,
    raw_status: &str,
    ev: &Value,
) -> InboundEvent {
    InboundEvent::Status(StatusUpdate {
        provider: Provider::Messenger,
        provider_message_ids: array_of(body, "mids")
            .iter()
            .filter_map(|m| m.as_str().map(str::to_owned))
            .collect(),
        business_id: page,
        account_id: page_id.map(str::to_owned),
        status,
        raw_status: raw_status.to_owned(),
        timestamp,
        watermark: millis_of(body, "watermark"),
        recipient: Party::address(psid),
        recipient_type: None,
        group_participant: None,
        errors: Vec::new(),
        pricing: None,
        conversation: None,
        biz_opaque_callback_data: None,
        raw: ev.clone(),
    })
}

fn parse_message(
    page_id: Option<&str>,
    sender: Option<String>,
    recipient: Option<String>,
    timestamp: Option<time::OffsetDateTime>,
    ev: &Value,
    m: &Value,
    standby: bool,
) -> Option<InboundEvent> {
    let mid = str_of(m, "mid")?;
    let is_echo = bool_of(m, "is_echo").unwrap_or(false);
    // An echo is sent by the page to the user.
    let (page, customer) = if is_echo {
        (sender, recipient)
    } else {
        (recipient, sender)
    };
    let page = page.or_else(|| page_id.map(str::to_owned))?;
    let customer = customer?;

    let mut msg = InboundMessage::new(
        Provider::Messenger,
        mid,
        page,
        MessageKind::Text,
        ev.clone(),
    );
    msg.account_id = page_id.map(str::to_owned);
    msg.customer = Party::address(customer);
    msg.timestamp = timestamp;
    msg.is_echo = is_echo;
    msg.standby = standby;
    msg.text = str_of(m, "text");
    msg.reply_to = m.get("reply_to").and_then(|r| str_of(r, "mid"));
    msg.referral = m.get("referral").or_else(|| ev.get("referral")).cloned();

    let mut kind = None;
    for a in array_of(m, "attachments") {
        let a_type = str_of(a, "type").unwrap_or_default();
        let payload = a.get("payload").unwrap_or(&Value::Null);
        if a_type == "location" {
            if let Some(c) = payload.get("coordinates") {
                if let (Some(latitude), Some(longitude)) = (f64_of(c, "lat"), f64_of(c, "long")) {
                    msg.location = Some(Location {
                        latitude,
                        longitude,
                        name: str_of(a, "title"),
                        address: None,
                        url: str_of(a, "url"),
                    });
                }
            }
        } else {
            msg.media.push(Media {
                url: str_of(payload, "url"),
                attachment_type: Some(a_type.clone()),
                ..Media::default()
            });
        }
        kind.get_or_insert(match a_type.as_str() {
            "image" if m.get("sticker_id").is_some() => MessageKind::Sticker,
            "image" => MessageKind::Image,
            "video" => MessageKind::Video,
            "audio" => MessageKind::Audio,
            "file" => MessageKind::Document,
            "location" => MessageKind::Location,
            other => MessageKind::Other(other.to_owned()),
        });
    }
    if let Some(qr) = m.get("quick_reply") {
        msg.payload = str_of(qr, "payload");
        kind = Some(MessageKind::QuickReply);
    }
    msg.kind = kind.unwrap_or(MessageKind::Text);
    Some(InboundEvent::Message(msg))
}
