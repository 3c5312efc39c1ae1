//! Twilio request forms against PROTOCOLS.md C.1.

use switchboard_channels::outbound::{Media, MediaKind, ReplyButton};
use switchboard_channels::twilio_send::basic_auth;
use switchboard_channels::{
    parse_twilio_success, twilio_request, BuildError, OutboundBody, OutboundRequest, Recipient,
    RequestBody, TwilioSender,
};
use switchboard_core::{PhoneNumber, WhatsappUserId};

const SID: &str = "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn to_phone(body: OutboundBody) -> OutboundRequest {
    OutboundRequest::new(
        Recipient::Phone(PhoneNumber::parse("to", "+14155552345").unwrap()),
        body,
    )
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn form_of(
    sender: TwilioSender<'_>,
    callback: Option<&str>,
    request: &OutboundRequest,
) -> Vec<(String, String)> {
    match twilio_request(SID, "token", sender, callback, request)
        .unwrap()
        .body
    {
        RequestBody::Form(f) => f,
        _ => panic!("Twilio takes forms"),
    }
}

fn refused(body: OutboundBody) -> BuildError {
    twilio_request(SID, "t", TwilioSender::From("+1"), None, &to_phone(body)).unwrap_err()
}

#[test]
fn text_with_from_and_status_callback() {
    let request = to_phone(OutboundBody::text("Hello! \u{1F44D}"));
    let http = twilio_request(
        SID,
        "your_auth_token",
        TwilioSender::From("+15005550006"),
        Some("https://hooks.example.com/twilio/status"),
        &request,
    )
    .unwrap();
    assert_eq!(http.method, "POST");
    assert_eq!(
        http.path,
        "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages.json"
    );
    // base64("ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:your_auth_token")
    assert_eq!(
        http.header("Authorization"),
        Some("Basic QUNhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYTp5b3VyX2F1dGhfdG9rZW4=")
    );
    assert_eq!(
        http.header("Content-Type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        http.body,
        RequestBody::Form(pairs(&[
            ("To", "+14155552345"),
            ("From", "+15005550006"),
            ("Body", "Hello! \u{1F44D}"),
            ("StatusCallback", "https://hooks.example.com/twilio/status"),
        ]))
    );
    assert_eq!(
        String::from_utf8(http.body.encode()).unwrap(),
        "To=%2B14155552345&From=%2B15005550006&Body=Hello%21+%F0%9F%91%8D\
         &StatusCallback=https%3A%2F%2Fhooks.example.com%2Ftwilio%2Fstatus"
    );
    assert_eq!(basic_auth("user", "pass"), "Basic dXNlcjpwYXNz");
}

#[test]
fn media_through_a_messaging_service() {
    let image = Media::link(MediaKind::Image, "https://example.com/a.png").with_caption("Look");
    assert_eq!(
        form_of(
            TwilioSender::MessagingService("MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            None,
            &to_phone(OutboundBody::Media(image))
        ),
        pairs(&[
            ("To", "+14155552345"),
            ("MessagingServiceSid", "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("Body", "Look"),
            ("MediaUrl", "https://example.com/a.png"),
        ])
    );
    let group = OutboundBody::MediaGroup {
        text: None,
        links: vec!["https://x.com/1.png".into(), "https://x.com/2.png".into()],
    };
    assert_eq!(
        form_of(TwilioSender::From("+15005550006"), None, &to_phone(group)),
        pairs(&[
            ("To", "+14155552345"),
            ("From", "+15005550006"),
            ("MediaUrl", "https://x.com/1.png"),
            ("MediaUrl", "https://x.com/2.png"),
        ])
    );
}

#[test]
fn refusals() {
    assert!(twilio_request(
        SID,
        "t",
        TwilioSender::From("+1"),
        None,
        &to_phone(OutboundBody::text("x".repeat(1600)))
    )
    .is_ok());
    let e = refused(OutboundBody::text("x".repeat(1601)));
    assert_eq!((e.field.as_str(), e.code), ("body.text", "too_long"));
    assert_eq!(refused(OutboundBody::text("")).code, "required");
    let e = refused(OutboundBody::Media(Media::id(MediaKind::Image, "1")));
    assert_eq!(e.code, "unsupported");
    let e = refused(OutboundBody::MediaGroup {
        text: Some("x".into()),
        links: (0..11).map(|i| format!("https://x.com/{i}.png")).collect(),
    });
    assert_eq!(e.code, "too_many");
    let buttons = OutboundBody::Buttons(switchboard_channels::outbound::Buttons {
        header: None,
        text: "x".into(),
        footer: None,
        buttons: vec![ReplyButton::new("a", "A")],
    });
    assert_eq!(refused(buttons).code, "unsupported");
    let e = twilio_request(
        SID,
        "t",
        TwilioSender::From("+1"),
        Some("https://my_host.example.com/cb"),
        &to_phone(OutboundBody::text("x")),
    )
    .unwrap_err();
    assert_eq!((e.field.as_str(), e.code), ("status_callback", "invalid"));
    let bsuid = OutboundRequest::new(
        Recipient::WhatsappUser(WhatsappUserId::parse("to", "US.1").unwrap()),
        OutboundBody::text("x"),
    );
    let e = twilio_request(SID, "t", TwilioSender::From("+1"), None, &bsuid).unwrap_err();
    assert_eq!((e.field.as_str(), e.code), ("to", "unsupported"));
}

#[test]
fn created_response() {
    let body = br#"{"account_sid":"ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","api_version":"2010-04-01","body":"Hello! \ud83d\udc4d",
 "date_created":"Thu, 30 Jul 2015 20:12:31 +0000","date_sent":"Thu, 30 Jul 2015 20:12:33 +0000",
 "date_updated":"Thu, 30 Jul 2015 20:12:33 +0000","direction":"outbound-api","error_code":null,"error_message":null,
 "from":"+14155552345","messaging_service_sid":"MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","num_media":"0","num_segments":"1",
 "price":null,"price_unit":null,"sid":"SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"sent",
 "subresource_uris":{"media":"/2010-04-01/Accounts/AC.../Messages/SM.../Media.json"},"tags":{},
 "to":"+14155552345","uri":"/2010-04-01/Accounts/AC.../Messages/SM....json"}"#;
    let receipt = parse_twilio_success(body).unwrap();
    assert_eq!(receipt.message_id, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_eq!(receipt.status.as_deref(), Some("sent"));
    assert_eq!(receipt.recipient_id.as_deref(), Some("+14155552345"));
    assert!(parse_twilio_success(br#"{"status":"queued"}"#).is_err());
}
