//! Messenger request bodies against PROTOCOLS.md B.1.

use serde_json::{json, Value};
use switchboard_channels::messenger_send::parse_messenger_ack;
use switchboard_channels::outbound::{
    Buttons, Media, MediaKind, QuickReply, ReplyButton, SenderAction, TemplateMessage,
};
use switchboard_channels::{
    messenger_request, parse_messenger_success, BuildError, MessagingType, OutboundBody,
    OutboundRequest, Recipient, RequestBody,
};
use switchboard_core::template::MessageTag;
use switchboard_core::{MessengerPsid, PhoneNumber};

fn to_psid(body: OutboundBody) -> OutboundRequest {
    OutboundRequest::new(
        Recipient::MessengerPsid(MessengerPsid::parse("to", "1254477777772919").unwrap()),
        body,
    )
}

fn json_of(request: &OutboundRequest, messaging: MessagingType) -> Value {
    match messenger_request("1789", "EAAG", request, messaging)
        .unwrap()
        .body
    {
        RequestBody::Json(v) => v,
        _ => panic!("Messenger sends JSON"),
    }
}

fn refused(body: OutboundBody) -> BuildError {
    messenger_request("1", "t", &to_psid(body), MessagingType::Response).unwrap_err()
}

#[test]
fn transport_puts_the_page_token_in_the_query() {
    let http = messenger_request(
        "1789",
        "EAAG+/=",
        &to_psid(OutboundBody::text("Hi")),
        MessagingType::Response,
    )
    .unwrap();
    assert_eq!(http.method, "POST");
    assert_eq!(http.path, "/1789/messages?access_token=EAAG%2B%2F%3D");
    assert_eq!(http.header("Authorization"), None);
    assert_eq!(http.header("content-type"), Some("application/json"));
}

#[test]
fn quick_replies() {
    let body = OutboundBody::QuickReplies {
        text: "Pick a color:".into(),
        replies: vec![QuickReply {
            title: "Red".into(),
            payload: "COLOR_RED".into(),
            image_url: Some("http://example.com/red.png".into()),
        }],
    };
    assert_eq!(
        json_of(&to_psid(body), MessagingType::Response),
        json!({"recipient":{"id":"1254477777772919"},"messaging_type":"RESPONSE",
         "message":{"text":"Pick a color:","quick_replies":[
           {"content_type":"text","title":"Red","payload":"COLOR_RED","image_url":"http://example.com/red.png"}]}})
    );
    let many = (0..14)
        .map(|i| QuickReply {
            title: format!("R{i}"),
            payload: format!("P{i}"),
            image_url: None,
        })
        .collect();
    let e = refused(OutboundBody::QuickReplies {
        text: "x".into(),
        replies: many,
    });
    assert_eq!((e.field.as_str(), e.code), ("body.replies", "too_many"));
    let e = refused(OutboundBody::QuickReplies {
        text: "x".into(),
        replies: vec![],
    });
    assert_eq!(e.code, "required");
}

#[test]
fn tagged_text() {
    assert_eq!(
        json_of(
            &to_psid(OutboundBody::text("Hello!")),
            MessagingType::MessageTag(MessageTag::ConfirmedEventUpdate)
        ),
        json!({"recipient":{"id":"1254477777772919"},"messaging_type":"MESSAGE_TAG",
               "tag":"CONFIRMED_EVENT_UPDATE","message":{"text":"Hello!"}})
    );
    for (tag, name) in [
        (MessageTag::PostPurchaseUpdate, "POST_PURCHASE_UPDATE"),
        (MessageTag::AccountUpdate, "ACCOUNT_UPDATE"),
        (MessageTag::HumanAgent, "HUMAN_AGENT"),
    ] {
        let v = json_of(
            &to_psid(OutboundBody::text("x")),
            MessagingType::MessageTag(tag),
        );
        assert_eq!(v["tag"], json!(name));
    }
    assert_eq!(
        refused(OutboundBody::text("x".repeat(2001))).code,
        "too_long"
    );
}

#[test]
fn attachments() {
    let image = Media::link(MediaKind::Image, "https://example.com/a.png");
    assert_eq!(
        json_of(&to_psid(OutboundBody::Media(image)), MessagingType::Update),
        json!({"recipient":{"id":"1254477777772919"},"messaging_type":"UPDATE",
         "message":{"attachment":{"type":"image","payload":{"url":"https://example.com/a.png","is_reusable":true}}}})
    );
    let file = Media::id(MediaKind::Document, "1857777774821032").with_filename("a.pdf");
    assert_eq!(
        json_of(&to_psid(OutboundBody::Media(file)), MessagingType::Response)["message"],
        json!({"attachment":{"type":"file","payload":{"attachment_id":"1857777774821032"}}})
    );
    for (kind, name) in [(MediaKind::Audio, "audio"), (MediaKind::Video, "video")] {
        let v = json_of(
            &to_psid(OutboundBody::Media(Media::link(kind, "https://x.com/m"))),
            MessagingType::Response,
        );
        assert_eq!(v["message"]["attachment"]["type"], json!(name));
    }
    assert_eq!(
        refused(OutboundBody::Media(Media::id(MediaKind::Sticker, "1"))).code,
        "unsupported"
    );
    assert_eq!(
        refused(OutboundBody::Media(
            Media::id(MediaKind::Image, "1").with_caption("c")
        ))
        .field,
        "body.caption"
    );
}

#[test]
fn buttons_become_a_button_template() {
    let b = Buttons {
        header: None,
        text: "What do you want to do next?".into(),
        footer: None,
        buttons: vec![
            ReplyButton::new("START_CHAT", "Start Chatting"),
            ReplyButton::new("HELP", "Help"),
        ],
    };
    assert_eq!(
        json_of(
            &to_psid(OutboundBody::Buttons(b.clone())),
            MessagingType::Response
        ),
        json!({"recipient":{"id":"1254477777772919"},"messaging_type":"RESPONSE",
         "message":{"attachment":{"type":"template","payload":{
           "template_type":"button","text":"What do you want to do next?",
           "buttons":[{"type":"postback","title":"Start Chatting","payload":"START_CHAT"},
                      {"type":"postback","title":"Help","payload":"HELP"}]}}}})
    );
    let mut four = b.clone();
    four.buttons = (0..4)
        .map(|i| ReplyButton::new(format!("b{i}"), format!("B{i}")))
        .collect();
    assert_eq!(refused(OutboundBody::Buttons(four)).code, "too_many");
    let mut long = b.clone();
    long.text = "x".repeat(641);
    assert_eq!(refused(OutboundBody::Buttons(long)).code, "too_long");
    let mut header = b;
    header.header = Some("h".into());
    assert_eq!(refused(OutboundBody::Buttons(header)).code, "unsupported");
}

#[test]
fn sender_actions_and_reactions() {
    for (action, name) in [
        (SenderAction::TypingOn, "typing_on"),
        (SenderAction::TypingOff, "typing_off"),
        (SenderAction::MarkSeen, "mark_seen"),
    ] {
        assert_eq!(
            json_of(
                &to_psid(OutboundBody::SenderAction(action)),
                MessagingType::Response
            ),
            json!({"recipient":{"id":"1254477777772919"},"sender_action":name})
        );
    }
    let read = OutboundBody::MarkRead {
        message_id: "m_1".into(),
        typing: false,
    };
    assert_eq!(
        json_of(&to_psid(read), MessagingType::Response),
        json!({"recipient":{"id":"1254477777772919"},"sender_action":"mark_seen"})
    );
    let read_and_type = OutboundBody::MarkRead {
        message_id: "m_1".into(),
        typing: true,
    };
    assert_eq!(refused(read_and_type).code, "unsupported");
    let react = OutboundBody::Reaction {
        message_id: "m_1".into(),
        emoji: "\u{2764}".into(),
    };
    assert_eq!(
        json_of(&to_psid(react), MessagingType::Response),
        json!({"recipient":{"id":"1254477777772919"},"sender_action":"react",
               "payload":{"message_id":"m_1","reaction":"\u{2764}"}})
    );
    let unreact = OutboundBody::Reaction {
        message_id: "m_1".into(),
        emoji: String::new(),
    };
    assert_eq!(
        json_of(&to_psid(unreact), MessagingType::Response),
        json!({"recipient":{"id":"1254477777772919"},"sender_action":"unreact",
               "payload":{"message_id":"m_1"}})
    );
}

#[test]
fn whatsapp_and_sms_kinds_and_addresses_are_refused() {
    let template = OutboundBody::Template(TemplateMessage {
        name: "t".into(),
        language: "en".into(),
        header: None,
        body_parameters: vec![],
        button_parameters: vec![],
    });
    assert_eq!(refused(template).code, "unsupported");
    let group = OutboundBody::MediaGroup {
        text: None,
        links: vec!["https://x.com/a.png".into()],
    };
    assert_eq!(refused(group).code, "unsupported");
    let phone = OutboundRequest::new(
        Recipient::Phone(PhoneNumber::parse("to", "+16505551234").unwrap()),
        OutboundBody::text("x"),
    );
    let e = messenger_request("1", "t", &phone, MessagingType::Response).unwrap_err();
    assert_eq!((e.field.as_str(), e.code), ("to", "unsupported"));
}

#[test]
fn success_responses() {
    let receipt = parse_messenger_success(
        br#"{"recipient_id":"1254477777772919","message_id":"m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"}"#,
    )
    .unwrap();
    assert_eq!(
        receipt.message_id,
        "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"
    );
    assert_eq!(receipt.recipient_id.as_deref(), Some("1254477777772919"));
    // Addressed by user_ref: no recipient id.
    let receipt = parse_messenger_success(br#"{"message_id":"m_1"}"#).unwrap();
    assert_eq!(receipt.recipient_id, None);
    assert!(parse_messenger_success(br#"{"recipient_id":"1"}"#).is_err());
    assert_eq!(
        parse_messenger_ack(br#"{"recipient_id":"1254477777772919"}"#),
        Ok(Some("1254477777772919".into()))
    );
    assert!(parse_messenger_ack(br#"{"error":{"code":2}}"#).is_err());
}
