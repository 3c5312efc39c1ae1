//! Messenger webhook shapes from PROTOCOLS.md B.3.

use serde_json::{json, Value};
use switchboard_channels::events::{DeliveryStatus, InboundEvent, MessageKind, ParseError};
use switchboard_channels::parse_messenger;

const PAGE: &str = "PAGE_ID";
const PSID: &str = "1254477777772919";

fn user_event(extra: Value) -> Value {
    let mut ev =
        json!({"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1458692752478_i64});
    for (k, v) in extra.as_object().unwrap() {
        ev[k] = v.clone();
    }
    ev
}

fn body(events: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "page", "entry": [
        {"id": PAGE, "time": 1458692752478_i64, "messaging": events}]}))
    .unwrap()
}

fn one(ev: Value) -> InboundEvent {
    let mut events = parse_messenger(&body(vec![ev])).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

#[test]
fn text_message() {
    let InboundEvent::Message(m) = one(user_event(
        json!({"message": {"mid": "m_1", "text": "hello"}}),
    )) else {
        panic!()
    };
    assert_eq!(m.provider_message_id, "m_1");
    assert_eq!(m.business_id, PAGE);
    assert_eq!(m.customer.address.as_deref(), Some(PSID));
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text.as_deref(), Some("hello"));
    // Milliseconds.
    assert_eq!(
        m.timestamp.unwrap().unix_timestamp_nanos(),
        1458692752478_i128 * 1_000_000
    );
    assert!(!m.is_echo && !m.standby);
}

#[test]
fn message_table() {
    let cases: Vec<(Value, MessageKind, Option<&str>, Option<&str>)> = vec![
        (
            json!({"mid": "m", "text": "Red", "quick_reply": {"payload": "COLOR_RED"}}),
            MessageKind::QuickReply,
            Some("Red"),
            Some("COLOR_RED"),
        ),
        (
            json!({"mid": "m", "attachments": [{"type": "image", "payload": {"url": "https://x/a.png"}}]}),
            MessageKind::Image,
            None,
            None,
        ),
        (
            json!({"mid": "m", "attachments": [{"type": "file", "payload": {"url": "https://x/a.pdf"}}]}),
            MessageKind::Document,
            None,
            None,
        ),
        (
            json!({"mid": "m", "attachments": [{"type": "audio", "payload": {"url": "https://x/a.mp4"}}]}),
            MessageKind::Audio,
            None,
            None,
        ),
        (
            json!({"mid": "m", "attachments": [{"type": "video", "payload": {"url": "https://x/v.mp4"}}]}),
            MessageKind::Video,
            None,
            None,
        ),
        (
            json!({"mid": "m", "attachments": [{"type": "ig_reel", "payload": {"url": "https://x/r"}}]}),
            MessageKind::Other("ig_reel".into()),
            None,
            None,
        ),
        (
            json!({"mid": "m", "attachments": [{"type": "fallback", "payload": {"url": "https://x"}}]}),
            MessageKind::Other("fallback".into()),
            None,
            None,
        ),
    ];
    for (message, kind, text, payload) in cases {
        let InboundEvent::Message(m) = one(user_event(json!({ "message": message.clone() })))
        else {
            panic!("{message}")
        };
        assert_eq!(m.kind, kind, "{message}");
        assert_eq!(m.text.as_deref(), text, "{message}");
        assert_eq!(m.payload.as_deref(), payload, "{message}");
        if message.get("attachments").is_some() {
            assert!(m.media[0].url.as_deref().unwrap().starts_with("https://x"));
            assert!(m.media[0].attachment_type.is_some());
        }
    }
}

#[test]
fn reply_to() {
    let InboundEvent::Message(m) = one(user_event(json!({"message": {
        "mid": "m_2", "text": "yes", "reply_to": {"mid": "m_1", "is_self_reply": false}}})))
    else {
        panic!()
    };
    assert_eq!(m.reply_to.as_deref(), Some("m_1"));
}

#[test]
fn echo_is_marked_and_customer_is_the_recipient() {
    let ev = json!({"sender": {"id": PAGE}, "recipient": {"id": PSID}, "timestamp": 1458692752478_i64,
        "message": {"is_echo": true, "app_id": 1517776481860111_i64, "metadata": "DEVELOPER_DEFINED",
                    "mid": "m_echo", "text": "from the page"}});
    let InboundEvent::Message(m) = one(ev) else {
        panic!()
    };
    assert!(m.is_echo);
    assert_eq!(m.business_id, PAGE);
    assert_eq!(m.customer.address.as_deref(), Some(PSID));
}

#[test]
fn delivery_with_and_without_mids() {
    let InboundEvent::Status(s) = one(user_event(json!({"delivery": {
        "mids": ["m_1", "m_2"], "watermark": 1458668856253_i64}})))
    else {
        panic!()
    };
    assert_eq!(s.status, DeliveryStatus::Delivered);
    assert_eq!(s.provider_message_ids, ["m_1", "m_2"]);
    assert_eq!(s.message_id(), None);
    assert_eq!(
        s.watermark.unwrap().unix_timestamp_nanos(),
        1458668856253_i128 * 1_000_000
    );
    assert_eq!(s.recipient.address.as_deref(), Some(PSID));
    assert_eq!(s.business_id, PAGE);

    // A delivery may come without mids or timestamp: watermark only.
    let ev = json!({"sender": {"id": PSID}, "recipient": {"id": PAGE},
                    "delivery": {"watermark": 1458668856253_i64}});
    let InboundEvent::Status(s) = one(ev) else {
        panic!()
    };
    assert!(s.provider_message_ids.is_empty());
    assert!(s.watermark.is_some());
    assert!(s.timestamp.is_none());
}

#[test]
fn read() {
    let InboundEvent::Status(s) = one(user_event(
        json!({"read": {"watermark": 1458668856253_i64}}),
    )) else {
        panic!()
    };
    assert_eq!(s.status, DeliveryStatus::Read);
    assert_eq!(s.raw_status, "read");
    assert!(s.provider_message_ids.is_empty());
    assert!(s.watermark.is_some());
}

#[test]
fn reactions() {
    let InboundEvent::Reaction(r) = one(user_event(json!({"reaction": {
        "reaction": "love", "emoji": "\u{2764}", "action": "react", "mid": "m_1"}})))
    else {
        panic!()
    };
    assert_eq!(r.target_message_id, "m_1");
    assert_eq!(r.emoji.as_deref(), Some("\u{2764}"));
    assert_eq!(r.reaction_name.as_deref(), Some("love"));
    assert!(!r.removed);

    let InboundEvent::Reaction(r) = one(user_event(json!({"reaction": {
        "reaction": "love", "action": "unreact", "mid": "m_1"}})))
    else {
        panic!()
    };
    assert!(r.removed);
    assert_eq!(r.emoji, None);
}

#[test]
fn postback() {
    let InboundEvent::Message(m) = one(user_event(json!({"postback": {
        "mid": "m_pb", "title": "Get Started", "payload": "GET_STARTED",
        "referral": {"ref": "x", "source": "SHORTLINK", "type": "OPEN_THREAD"}}})))
    else {
        panic!()
    };
    assert_eq!(m.kind, MessageKind::Postback);
    assert_eq!(m.provider_message_id, "m_pb");
    assert_eq!(m.payload.as_deref(), Some("GET_STARTED"));
    assert_eq!(m.text.as_deref(), Some("Get Started"));
    assert!(m.referral.is_some());

    // Without a mid the id is derived from sender and timestamp, so redelivery dedupes.
    let InboundEvent::Message(m) = one(user_event(
        json!({"postback": {"title": "Go", "payload": "GO"}}),
    )) else {
        panic!()
    };
    assert_eq!(
        m.provider_message_id,
        format!("postback:{PSID}:1458692752478")
    );
}

#[test]
fn optin() {
    let InboundEvent::OptIn(o) = one(user_event(json!({"optin": {
        "type": "notification_messages", "payload": "ADDITIONAL-INFORMATION",
        "notification_messages_token": "TOKEN", "notification_messages_timezone": "UTC",
        "token_expiry_timestamp": 1700000000000_i64, "user_token_status": "NOT_REFRESHED",
        "notification_messages_status": "STOP_NOTIFICATIONS", "title": "Weekly deals"}})))
    else {
        panic!()
    };
    assert_eq!(o.optin_type.as_deref(), Some("notification_messages"));
    assert_eq!(o.notification_messages_token.as_deref(), Some("TOKEN"));
    assert_eq!(
        o.notification_messages_status.as_deref(),
        Some("STOP_NOTIFICATIONS")
    );
    assert_eq!(o.token_expiry.unwrap().unix_timestamp(), 1700000000);
    assert_eq!(o.customer.address.as_deref(), Some(PSID));
}

#[test]
fn standby_and_unknown_events() {
    let body = serde_json::to_vec(&json!({"object": "page", "entry": [
        {"id": PAGE, "time": 1, "standby": [user_event(json!({"message": {"mid": "m_s", "text": "hi"}}))]},
        {"id": PAGE, "time": 1, "messaging": [
            user_event(json!({"pass_thread_control": {"new_owner_app_id": "123"}}))]},
        {"id": PAGE, "time": 1, "changes": [{"field": "feed", "value": {}}]}]}))
    .unwrap();
    let events = parse_messenger(&body).unwrap();
    assert_eq!(events.len(), 3);
    let InboundEvent::Message(m) = &events[0] else {
        panic!()
    };
    assert!(m.standby);
    assert!(
        matches!(&events[1], InboundEvent::Unknown { kind, .. } if kind == "pass_thread_control")
    );
    assert!(matches!(&events[2], InboundEvent::Unknown { kind, .. } if kind == "page.changes"));
}

#[test]
fn several_entries_and_events() {
    let body = serde_json::to_vec(&json!({"object": "page", "entry": [
        {"id": PAGE, "time": 1, "messaging": [
            user_event(json!({"message": {"mid": "a", "text": "1"}})),
            user_event(json!({"read": {"watermark": 5}}))]},
        {"id": PAGE, "time": 2, "messaging": [user_event(json!({"message": {"mid": "b", "text": "2"}}))]}]}))
    .unwrap();
    assert_eq!(parse_messenger(&body).unwrap().len(), 3);
}

#[test]
fn envelope_errors() {
    assert!(matches!(
        parse_messenger(b"{"),
        Err(ParseError::InvalidJson(_))
    ));
    assert!(matches!(
        parse_messenger(br#"{"object":"whatsapp_business_account","entry":[]}"#),
        Err(ParseError::UnexpectedEnvelope(_))
    ));
    assert!(matches!(
        parse_messenger(br#"{"object":"page"}"#),
        Err(ParseError::UnexpectedEnvelope(_))
    ));
}
