//! Twilio webhook shapes from PROTOCOLS.md C.2 / C.3.

use switchboard_channels::events::{DeliveryStatus, InboundEvent, MessageKind, ParseError};
use switchboard_channels::{parse_form, parse_twilio};

/// The real captured inbound body quoted in PROTOCOLS.md C.2 (SIDs elided there with `...`).
const CAPTURED: &str = "ToCountry=GB&ToState=&SmsMessageSid=SM2f0c...&NumMedia=0&ToCity=&FromZip=&SmsSid=SM2f0c...&FromState=&SmsStatus=received&FromCity=&Body=Ack&FromCountry=GB&To=%2B447700900000&ToZip=&NumSegments=1&MessageSid=SM2f0c...&AccountSid=AC...&From=%2B447700900513&ApiVersion=2010-04-01";

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn captured_inbound_body() {
    let params = parse_form(CAPTURED.as_bytes());
    assert_eq!(params.len(), 19);
    assert!(params.contains(&("To".into(), "+447700900000".into())));
    let InboundEvent::Message(m) = parse_twilio(&params).unwrap() else {
        panic!()
    };
    assert_eq!(m.provider_message_id, "SM2f0c...");
    assert_eq!(m.business_id, "+447700900000");
    assert_eq!(m.customer.address.as_deref(), Some("+447700900513"));
    assert_eq!(m.account_id.as_deref(), Some("AC..."));
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text.as_deref(), Some("Ack"));
    assert!(m.media.is_empty());
    assert_eq!(m.timestamp, None);
    assert_eq!(m.raw["FromCountry"], "GB");
}

#[test]
fn inbound_media() {
    let params = form(&[
        ("MessageSid", "MM1"),
        ("From", "whatsapp:+14155550100"),
        ("To", "whatsapp:+14155550199"),
        ("Body", ""),
        ("NumMedia", "2"),
        ("MediaUrl0", "https://api.twilio.com/m/0"),
        ("MediaContentType0", "image/jpeg"),
        ("MediaUrl1", "https://api.twilio.com/m/1"),
        ("MediaContentType1", "application/pdf"),
        ("ProfileName", "Ann"),
        ("WaId", "14155550100"),
        ("SmsStatus", "received"),
    ]);
    let InboundEvent::Message(m) = parse_twilio(&params).unwrap() else {
        panic!()
    };
    assert_eq!(m.kind, MessageKind::Image);
    assert_eq!(m.text, None);
    assert_eq!(m.media.len(), 2);
    assert_eq!(
        m.media[1].url.as_deref(),
        Some("https://api.twilio.com/m/1")
    );
    assert_eq!(m.media[1].mime_type.as_deref(), Some("application/pdf"));
    assert_eq!(m.customer.name.as_deref(), Some("Ann"));
}

#[test]
fn inbound_whatsapp_button_and_reply() {
    let params = form(&[
        ("MessageSid", "SM2"),
        ("From", "whatsapp:+14155550100"),
        ("To", "whatsapp:+14155550199"),
        ("Body", "Yes"),
        ("NumMedia", "0"),
        ("ButtonPayload", "CONFIRM"),
        ("ButtonText", "Yes"),
        ("OriginalRepliedMessageSid", "SM1"),
        ("SmsStatus", "received"),
    ]);
    let InboundEvent::Message(m) = parse_twilio(&params).unwrap() else {
        panic!()
    };
    assert_eq!(m.kind, MessageKind::QuickReply);
    assert_eq!(m.payload.as_deref(), Some("CONFIRM"));
    assert_eq!(m.reply_to.as_deref(), Some("SM1"));
}

#[test]
fn status_callback_table() {
    let cases = [
        ("queued", DeliveryStatus::Queued),
        ("accepted", DeliveryStatus::Queued),
        ("sending", DeliveryStatus::Queued),
        ("sent", DeliveryStatus::Sent),
        ("delivered", DeliveryStatus::Delivered),
        ("read", DeliveryStatus::Read),
        ("undelivered", DeliveryStatus::Failed),
        ("failed", DeliveryStatus::Failed),
        ("canceled", DeliveryStatus::Canceled),
    ];
    for (word, expected) in cases {
        // The observed callback parameter set (C.3).
        let params = form(&[
            ("SmsSid", "SM3"),
            ("SmsStatus", word),
            ("MessageStatus", word),
            ("To", "+14155550100"),
            ("MessageSid", "SM3"),
            ("AccountSid", "AC1"),
            ("From", "+14155550199"),
            ("ApiVersion", "2010-04-01"),
        ]);
        let InboundEvent::Status(s) = parse_twilio(&params).unwrap() else {
            panic!("{word}")
        };
        assert_eq!(s.status, expected, "{word}");
        assert_eq!(s.raw_status, word);
        assert_eq!(s.message_id(), Some("SM3"));
        assert_eq!(s.recipient.address.as_deref(), Some("+14155550100"));
        assert_eq!(s.business_id, "+14155550199");
        assert!(s.errors.is_empty());
    }
}

#[test]
fn status_callback_with_error_code() {
    let body = "SmsSid=SM4&SmsStatus=undelivered&MessageStatus=undelivered&To=%2B14155550100\
        &MessageSid=SM4&AccountSid=AC1&From=%2B14155550199&ApiVersion=2010-04-01\
        &ErrorCode=30003&RawDlrDoneDate=2302011200";
    let InboundEvent::Status(s) = parse_twilio(&parse_form(body.as_bytes())).unwrap() else {
        panic!()
    };
    assert_eq!(s.status, DeliveryStatus::Failed);
    assert_eq!(s.raw_status, "undelivered");
    assert_eq!(s.errors.len(), 1);
    assert_eq!(s.errors[0].code, Some(30003));
    assert_eq!(s.raw["RawDlrDoneDate"], "2302011200");
}

#[test]
fn errors() {
    assert_eq!(
        parse_twilio(&form(&[("From", "+1"), ("To", "+2"), ("Body", "x")])),
        Err(ParseError::MissingField("MessageSid"))
    );
    assert_eq!(
        parse_twilio(&form(&[("MessageSid", "SM1"), ("To", "+2"), ("Body", "x")])),
        Err(ParseError::MissingField("From"))
    );
    // Neither a message nor a status.
    assert_eq!(
        parse_twilio(&form(&[
            ("MessageSid", "SM1"),
            ("From", "+1"),
            ("To", "+2")
        ])),
        Err(ParseError::MissingField("MessageStatus"))
    );
    assert!(parse_form(b"").is_empty());
}
