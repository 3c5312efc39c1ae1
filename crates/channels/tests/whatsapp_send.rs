//! WhatsApp request bodies against PROTOCOLS.md A.2, A.3 and A.8.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use switchboard_channels::outbound::{
    ButtonParameter, ButtonValue, Buttons, HeaderParameter, List, ListRow, ListSection, Media,
    MediaKind, ReplyButton, TemplateMessage, TextParameter,
};
use switchboard_channels::whatsapp_send::{
    parse_whatsapp_ack, whatsapp_template_submission_with_examples,
};
use switchboard_channels::{
    parse_whatsapp_success, whatsapp_request, whatsapp_template_submission, BuildError,
    OutboundBody, OutboundRequest, Recipient, RequestBody,
};
use switchboard_core::contact::Locale;
use switchboard_core::template::{
    ButtonType, HeaderFormat, TemplateButton, TemplateCategory, TemplateContent, TemplateHeader,
};
use switchboard_core::{MessengerPsid, PhoneNumber, WhatsappUserId};

fn phone() -> Recipient {
    Recipient::Phone(PhoneNumber::parse("to", "+16505551234").unwrap())
}

fn to_phone(body: OutboundBody) -> OutboundRequest {
    OutboundRequest::new(phone(), body)
}

fn json_of(request: &OutboundRequest) -> Value {
    let http = whatsapp_request("106540352242922", "EAAtoken", request).unwrap();
    match http.body {
        RequestBody::Json(v) => v,
        _ => panic!("WhatsApp sends JSON"),
    }
}

fn refused(request: &OutboundRequest) -> BuildError {
    whatsapp_request("1", "t", request).unwrap_err()
}

#[test]
fn transport_is_a_bearer_post_to_the_phone_numbers_messages() {
    let http = whatsapp_request(
        "106540352242922",
        "EAAtoken",
        &to_phone(OutboundBody::text("Hi")),
    )
    .unwrap();
    assert_eq!(http.method, "POST");
    assert_eq!(http.path, "/106540352242922/messages");
    assert_eq!(http.header("authorization"), Some("Bearer EAAtoken"));
    assert_eq!(http.header("Content-Type"), Some("application/json"));
    assert_eq!(
        http.body.content_type().as_deref(),
        Some("application/json")
    );
}

#[test]
fn text() {
    let body = OutboundBody::Text {
        text: "Hello https://example.com".into(),
        preview_url: true,
    };
    assert_eq!(
        json_of(&to_phone(body)),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",
               "type":"text","text":{"body":"Hello https://example.com","preview_url":true}})
    );
    assert_eq!(
        json_of(&to_phone(OutboundBody::text("Hi"))),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",
               "type":"text","text":{"body":"Hi"}})
    );
}

#[test]
fn a_bsuid_is_sent_as_recipient_and_a_reply_quotes_its_message() {
    let user = WhatsappUserId::parse("to", "US.13491208655302741918").unwrap();
    let mut request = OutboundRequest::new(Recipient::WhatsappUser(user), OutboundBody::text("Hi"));
    request.reply_to = Some("wamid.HBgL".into());
    assert_eq!(
        json_of(&request),
        json!({"messaging_product":"whatsapp","recipient_type":"individual",
               "recipient":"US.13491208655302741918","context":{"message_id":"wamid.HBgL"},
               "type":"text","text":{"body":"Hi"}})
    );
}

#[test]
fn text_limits() {
    assert_eq!(refused(&to_phone(OutboundBody::text(""))).code, "required");
    assert!(whatsapp_request("1", "t", &to_phone(OutboundBody::text("a".repeat(4096)))).is_ok());
    let e = refused(&to_phone(OutboundBody::text("a".repeat(4097))));
    assert_eq!((e.field.as_str(), e.code), ("body.text", "too_long"));
    let psid = MessengerPsid::parse("to", "1254477777772919").unwrap();
    let e = refused(&OutboundRequest::new(
        Recipient::MessengerPsid(psid),
        OutboundBody::text("Hi"),
    ));
    assert_eq!((e.field.as_str(), e.code), ("to", "unsupported"));
}

#[test]
fn media_by_id_and_by_link() {
    let image = Media::id(MediaKind::Image, "1234567890").with_caption("Receipt");
    assert_eq!(
        json_of(&to_phone(OutboundBody::Media(image))),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",
               "type":"image","image":{"id":"1234567890","caption":"Receipt"}})
    );
    let document = Media::link(MediaKind::Document, "https://example.com/a.pdf")
        .with_filename("a.pdf")
        .with_caption("Invoice");
    assert_eq!(
        json_of(&to_phone(OutboundBody::Media(document))),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",
               "type":"document",
               "document":{"link":"https://example.com/a.pdf","filename":"a.pdf","caption":"Invoice"}})
    );
    let audio = Media {
        voice: true,
        ..Media::id(MediaKind::Audio, "987")
    };
    assert_eq!(
        json_of(&to_phone(OutboundBody::Media(audio))),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",
               "type":"audio","audio":{"id":"987","voice":true}})
    );
    for (kind, name) in [(MediaKind::Video, "video"), (MediaKind::Sticker, "sticker")] {
        assert_eq!(
            json_of(&to_phone(OutboundBody::Media(Media::link(
                kind,
                "https://x.com/m"
            )))),
            json!({"messaging_product":"whatsapp","recipient_type":"individual",
                   "to":"16505551234","type":name,name:{"link":"https://x.com/m"}})
        );
    }
}

#[test]
fn media_refusals() {
    let both = Media {
        media_id: Some("1".into()),
        ..Media::link(MediaKind::Image, "https://x.com/a.png")
    };
    assert_eq!(
        refused(&to_phone(OutboundBody::Media(both))).code,
        "conflict"
    );
    let neither = Media {
        link: None,
        ..Media::link(MediaKind::Image, "")
    };
    assert_eq!(
        refused(&to_phone(OutboundBody::Media(neither))).code,
        "required"
    );
    let sticker = Media::id(MediaKind::Sticker, "1").with_caption("no");
    let e = refused(&to_phone(OutboundBody::Media(sticker)));
    assert_eq!((e.field.as_str(), e.code), ("body.caption", "unsupported"));
    let audio = Media::id(MediaKind::Audio, "1").with_caption("no");
    assert_eq!(
        refused(&to_phone(OutboundBody::Media(audio))).field,
        "body.caption"
    );
    let image = Media::id(MediaKind::Image, "1").with_filename("a.png");
    assert_eq!(
        refused(&to_phone(OutboundBody::Media(image))).field,
        "body.filename"
    );
    let video = Media {
        voice: true,
        ..Media::id(MediaKind::Video, "1")
    };
    assert_eq!(
        refused(&to_phone(OutboundBody::Media(video))).field,
        "body.voice"
    );
}

#[test]
fn reaction() {
    let body = OutboundBody::Reaction {
        message_id: "wamid.HBgL...".into(),
        emoji: "\u{1F600}".into(),
    };
    assert_eq!(
        json_of(&to_phone(body)),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",
               "type":"reaction","reaction":{"message_id":"wamid.HBgL...","emoji":"\u{1F600}"}})
    );
    // An empty emoji removes the reaction.
    let body = OutboundBody::Reaction {
        message_id: "wamid.X".into(),
        emoji: String::new(),
    };
    assert_eq!(json_of(&to_phone(body))["reaction"]["emoji"], json!(""));
}

fn buttons(labels: &[(&str, &str)]) -> Buttons {
    Buttons {
        header: Some("Order #123".into()),
        text: "Confirm delivery slot?".into(),
        footer: Some("Reply below".into()),
        buttons: labels
            .iter()
            .map(|(id, title)| ReplyButton::new(*id, *title))
            .collect(),
    }
}

#[test]
fn reply_buttons() {
    let b = buttons(&[("slot_am", "Morning"), ("slot_pm", "Afternoon")]);
    assert_eq!(
        json_of(&to_phone(OutboundBody::Buttons(b))),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",
               "type":"interactive",
               "interactive":{"type":"button",
                "header":{"type":"text","text":"Order #123"},
                "body":{"text":"Confirm delivery slot?"},
                "footer":{"text":"Reply below"},
                "action":{"buttons":[
                  {"type":"reply","reply":{"id":"slot_am","title":"Morning"}},
                  {"type":"reply","reply":{"id":"slot_pm","title":"Afternoon"}}]}}})
    );
}

#[test]
fn reply_button_limits() {
    let check = |b: Buttons| refused(&to_phone(OutboundBody::Buttons(b)));
    let e = check(buttons(&[("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]));
    assert_eq!((e.field.as_str(), e.code), ("body.buttons", "too_many"));
    assert_eq!(check(buttons(&[])).code, "required");
    let e = check(buttons(&[("a", "A"), ("a", "B")]));
    assert_eq!(
        (e.field.as_str(), e.code),
        ("body.buttons[1].id", "duplicate")
    );
    let e = check(buttons(&[("a", "Same"), ("b", "Same")]));
    assert_eq!(
        (e.field.as_str(), e.code),
        ("body.buttons[1].title", "duplicate")
    );
    let e = check(buttons(&[(" a", "A")]));
    assert_eq!(
        (e.field.as_str(), e.code),
        ("body.buttons[0].id", "invalid")
    );
    let long_title = "t".repeat(21);
    let e = check(buttons(&[("a", long_title.as_str())]));
    assert_eq!(
        (e.field.as_str(), e.code),
        ("body.buttons[0].title", "too_long")
    );
    let long_id = "i".repeat(257);
    assert_eq!(check(buttons(&[(long_id.as_str(), "A")])).code, "too_long");
    let mut b = buttons(&[("a", "A")]);
    b.text = "x".repeat(1025);
    assert_eq!(check(b).field, "body.text");
    let mut b = buttons(&[("a", "A")]);
    b.footer = Some("f".repeat(61));
    assert_eq!(check(b).field, "body.footer");
    let mut b = buttons(&[("a", "A")]);
    b.header = Some("h".repeat(61));
    assert_eq!(check(b).field, "body.header");
}

fn row(id: &str, title: &str) -> ListRow {
    ListRow {
        id: id.into(),
        title: title.into(),
        description: None,
    }
}

fn list(sections: Vec<ListSection>) -> List {
    List {
        header: Some("Menu".into()),
        text: "Pick one".into(),
        footer: Some("...".into()),
        button_label: "View options".into(),
        sections,
    }
}

#[test]
fn list_message() {
    let l = list(vec![ListSection {
        title: Some("Drinks".into()),
        rows: vec![ListRow {
            description: Some("Hot".into()),
            ..row("tea", "Tea")
        }],
    }]);
    assert_eq!(
        json_of(&to_phone(OutboundBody::List(l))),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",
               "type":"interactive","interactive":{"type":"list",
                "header":{"type":"text","text":"Menu"},"body":{"text":"Pick one"},
                "footer":{"text":"..."},
                "action":{"button":"View options","sections":[
                  {"title":"Drinks","rows":[{"id":"tea","title":"Tea","description":"Hot"}]}]}}})
    );
}

#[test]
fn list_limits() {
    let check = |l: List| refused(&to_phone(OutboundBody::List(l)));
    let section = |title: Option<&str>, n: usize, start: usize| ListSection {
        title: title.map(str::to_owned),
        rows: (start..start + n)
            .map(|i| row(&format!("r{i}"), &format!("Row {i}")))
            .collect(),
    };
    // Ten rows across sections are fine; eleven are not.
    assert!(whatsapp_request(
        "1",
        "t",
        &to_phone(OutboundBody::List(list(vec![
            section(Some("A"), 5, 0),
            section(Some("B"), 5, 5)
        ])))
    )
    .is_ok());
    let e = check(list(vec![
        section(Some("A"), 6, 0),
        section(Some("B"), 5, 6),
    ]));
    assert_eq!((e.field.as_str(), e.code), ("body.sections", "too_many"));
    let eleven: Vec<ListSection> = (0..11).map(|i| section(Some("S"), 0, i)).collect();
    assert_eq!(check(list(eleven)).code, "too_many");
    assert_eq!(check(list(vec![])).code, "required");
    let e = check(list(vec![section(Some("A"), 1, 0), section(None, 1, 1)]));
    assert_eq!(
        (e.field.as_str(), e.code),
        ("body.sections[1].title", "required")
    );
    // One section may go untitled.
    assert!(whatsapp_request(
        "1",
        "t",
        &to_phone(OutboundBody::List(list(vec![section(None, 1, 0)])))
    )
    .is_ok());
    let e = check(list(vec![section(Some(&"s".repeat(25)), 1, 0)]));
    assert_eq!(e.code, "too_long");
    let e = check(list(vec![
        section(Some("A"), 1, 0),
        section(Some("B"), 1, 0),
    ]));
    assert_eq!(
        (e.field.as_str(), e.code),
        ("body.sections[1].rows[0].id", "duplicate")
    );
    let mut l = list(vec![section(None, 1, 0)]);
    l.button_label = "b".repeat(21);
    assert_eq!(check(l).field, "body.button_label");
    let long = |f: fn(&mut ListRow)| {
        let mut r = row("a", "A");
        f(&mut r);
        check(list(vec![ListSection {
            title: None,
            rows: vec![r],
        }]))
        .field
    };
    assert_eq!(
        long(|r| r.id = "i".repeat(201)),
        "body.sections[0].rows[0].id"
    );
    assert_eq!(
        long(|r| r.title = "t".repeat(25)),
        "body.sections[0].rows[0].title"
    );
    assert_eq!(
        long(|r| r.description = Some("d".repeat(73))),
        "body.sections[0].rows[0].description"
    );
}

#[test]
fn template_with_header_body_and_buttons() {
    let t = TemplateMessage {
        name: "order_update".into(),
        language: "en_US".into(),
        header: Some(HeaderParameter::Media(Media::link(
            MediaKind::Image,
            "https://example.com/h.jpg",
        ))),
        body_parameters: vec![TextParameter::positional("Pablo")],
        button_parameters: vec![
            ButtonParameter {
                index: 0,
                value: ButtonValue::QuickReply("STOP_PROMOS".into()),
            },
            ButtonParameter {
                index: 1,
                value: ButtonValue::Url("order/123".into()),
            },
            ButtonParameter {
                index: 2,
                value: ButtonValue::CopyCode("SAVE20".into()),
            },
        ],
    };
    assert_eq!(
        json_of(&to_phone(OutboundBody::Template(t))),
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",
         "type":"template",
         "template":{"name":"order_update","language":{"code":"en_US","policy":"deterministic"},
          "components":[
           {"type":"header","parameters":[{"type":"image","image":{"link":"https://example.com/h.jpg"}}]},
           {"type":"body","parameters":[{"type":"text","text":"Pablo"}]},
           {"type":"button","sub_type":"quick_reply","index":0,"parameters":[{"type":"payload","payload":"STOP_PROMOS"}]},
           {"type":"button","sub_type":"url","index":1,"parameters":[{"type":"text","text":"order/123"}]},
           {"type":"button","sub_type":"copy_code","index":2,"parameters":[{"type":"coupon_code","coupon_code":"SAVE20"}]}]}})
    );
}

fn template(body: Vec<TextParameter>) -> TemplateMessage {
    TemplateMessage {
        name: "welcome".into(),
        language: "en".into(),
        header: None,
        body_parameters: body,
        button_parameters: vec![],
    }
}

#[test]
fn template_with_named_parameters_and_without_any() {
    let mut t = template(vec![TextParameter::named("first_name", "Pablo")]);
    t.header = Some(HeaderParameter::Text(TextParameter::named(
        "sale", "Summer",
    )));
    assert_eq!(
        json_of(&to_phone(OutboundBody::Template(t)))["template"],
        json!({"name":"welcome","language":{"code":"en","policy":"deterministic"},
               "components":[
                 {"type":"header","parameters":[{"type":"text","text":"Summer","parameter_name":"sale"}]},
                 {"type":"body","parameters":[{"type":"text","text":"Pablo","parameter_name":"first_name"}]}]})
    );
    assert_eq!(
        json_of(&to_phone(OutboundBody::Template(template(vec![]))))["template"],
        json!({"name":"welcome","language":{"code":"en","policy":"deterministic"}})
    );
}

#[test]
fn template_refusals() {
    let check = |t: TemplateMessage| refused(&to_phone(OutboundBody::Template(t)));
    let mixed = template(vec![
        TextParameter::named("a", "x"),
        TextParameter::positional("y"),
    ]);
    assert_eq!(check(mixed).code, "conflict");
    assert_eq!(
        check(template(vec![TextParameter::named("First", "x")])).code,
        "invalid"
    );
    assert_eq!(
        check(template(vec![TextParameter::positional("")])).code,
        "required"
    );
    // A body-only template takes long parameters; one with a header does not.
    let long = TextParameter::positional("x".repeat(2000));
    assert!(whatsapp_request(
        "1",
        "t",
        &to_phone(OutboundBody::Template(template(vec![long.clone()])))
    )
    .is_ok());
    let mut t = template(vec![long]);
    t.header = Some(HeaderParameter::Text(TextParameter::positional("h")));
    assert_eq!(check(t).code, "too_long");
    let mut t = template(vec![]);
    t.header = Some(HeaderParameter::Text(TextParameter::positional(
        "h".repeat(61),
    )));
    assert_eq!(check(t).field, "body.header");
    let mut t = template(vec![]);
    t.header = Some(HeaderParameter::Media(Media::id(MediaKind::Audio, "1")));
    assert_eq!(check(t).code, "unsupported");
    let mut t = template(vec![]);
    t.button_parameters = vec![
        ButtonParameter {
            index: 0,
            value: ButtonValue::Url("a".into()),
        },
        ButtonParameter {
            index: 0,
            value: ButtonValue::Url("b".into()),
        },
    ];
    assert_eq!(check(t).code, "duplicate");
    let mut t = template(vec![]);
    t.button_parameters = vec![ButtonParameter {
        index: 10,
        value: ButtonValue::QuickReply("a".into()),
    }];
    assert_eq!(check(t).code, "invalid");
    let mut t = template(vec![]);
    t.button_parameters = vec![ButtonParameter {
        index: 0,
        value: ButtonValue::CopyCode("C".repeat(16)),
    }];
    assert_eq!(check(t).code, "too_long");
}

#[test]
fn mark_as_read_with_typing_indicator() {
    let body = OutboundBody::MarkRead {
        message_id: "wamid.HBgL...".into(),
        typing: true,
    };
    assert_eq!(
        json_of(&to_phone(body)),
        json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.HBgL...",
               "typing_indicator":{"type":"text"}})
    );
    let body = OutboundBody::MarkRead {
        message_id: "wamid.X".into(),
        typing: false,
    };
    assert_eq!(
        json_of(&to_phone(body)),
        json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.X"})
    );
    assert_eq!(parse_whatsapp_ack(br#"{"success":true}"#), Ok(()));
    assert!(parse_whatsapp_ack(br#"{"success":false}"#).is_err());
}

#[test]
fn messenger_and_sms_kinds_are_refused() {
    for body in [
        OutboundBody::SenderAction(switchboard_channels::outbound::SenderAction::TypingOn),
        OutboundBody::QuickReplies {
            text: "a".into(),
            replies: vec![],
        },
        OutboundBody::MediaGroup {
            text: None,
            links: vec!["https://x.com/a.png".into()],
        },
    ] {
        assert_eq!(refused(&to_phone(body)).code, "unsupported");
    }
}

#[test]
fn success_response() {
    let body = br#"{"messaging_product":"whatsapp",
      "contacts":[{"input":"16505551234","wa_id":"16505551234"}],
      "messages":[{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI...","message_status":"accepted"}]}"#;
    let receipt = parse_whatsapp_success(body).unwrap();
    assert_eq!(receipt.message_id, "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI...");
    assert_eq!(receipt.recipient_id.as_deref(), Some("16505551234"));
    assert_eq!(receipt.whatsapp_user_id, None);
    assert_eq!(receipt.status.as_deref(), Some("accepted"));

    let by_bsuid = br#"{"messaging_product":"whatsapp",
      "contacts":[{"input":"US.1","user_id":"US.1"}],"messages":[{"id":"wamid.2"}]}"#;
    let receipt = parse_whatsapp_success(by_bsuid).unwrap();
    assert_eq!(receipt.recipient_id.as_deref(), Some("US.1"));
    assert_eq!(receipt.whatsapp_user_id.as_deref(), Some("US.1"));
    assert_eq!(receipt.status, None);

    assert!(parse_whatsapp_success(br#"{"messages":[]}"#).is_err());
    assert!(parse_whatsapp_success(b"<html>").is_err());
}

// Template submission.

fn content(
    name: &str,
    header: Option<TemplateHeader>,
    body: &str,
    footer: Option<&str>,
    buttons: Vec<TemplateButton>,
) -> TemplateContent {
    TemplateContent {
        name: name.into(),
        locale: Locale::parse("locale", "en_US").unwrap(),
        category: Some(TemplateCategory::Marketing),
        header,
        body: body.into(),
        footer: footer.map(str::to_owned),
        buttons,
        variable_mapping: BTreeMap::new(),
        tag: None,
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

fn body_of(request: switchboard_channels::HttpRequest) -> Value {
    match request.body {
        RequestBody::Json(v) => v,
        _ => panic!("templates are JSON"),
    }
}

#[test]
fn template_submission_matches_pywas_seasonal_promotion() {
    let template = content(
        "seasonal_promotion",
        Some(TemplateHeader {
            format: HeaderFormat::Text,
            text: Some("Our {{1}} is on!".into()),
            example: Some("Summer Sale".into()),
        }),
        "Shop now through {{1}} and use code {{2}} to get {{3}} off of all merchandise.",
        Some("Use the buttons below to manage your MARKETING subscriptions"),
        vec![
            button(ButtonType::QuickReply, "Unsubscribe from Promos"),
            button(ButtonType::QuickReply, "Unsubscribe from All"),
        ],
    );
    let examples: BTreeMap<String, String> =
        [("1", "the end of August"), ("2", "25OFF"), ("3", "25%")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let request =
        whatsapp_template_submission_with_examples("102290129340398", "EAAt", &template, &examples);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/102290129340398/message_templates");
    assert_eq!(request.header("Authorization"), Some("Bearer EAAt"));
    // pywa tests/data/templates/buttons/examples.json, `seasonal_promotion`, exactly.
    assert_eq!(
        body_of(request),
        json!({"name":"seasonal_promotion","language":"en_US","category":"MARKETING",
         "components":[
          {"type":"HEADER","format":"TEXT","text":"Our {{1}} is on!","example":{"header_text":["Summer Sale"]}},
          {"type":"BODY","text":"Shop now through {{1}} and use code {{2}} to get {{3}} off of all merchandise.",
           "example":{"body_text":[["the end of August","25OFF","25%"]]}},
          {"type":"FOOTER","text":"Use the buttons below to manage your MARKETING subscriptions"},
          {"type":"BUTTONS","buttons":[{"type":"QUICK_REPLY","text":"Unsubscribe from Promos"},
                                       {"type":"QUICK_REPLY","text":"Unsubscribe from All"}]}]})
    );

    // Without the header's own example, the header takes the given one, and without any the
    // placeholders are made from the names.
    let mut bare = template.clone();
    bare.header.as_mut().unwrap().example = None;
    let body = body_of(whatsapp_template_submission_with_examples(
        "1", "t", &bare, &examples,
    ));
    assert_eq!(
        body["components"][0]["example"],
        json!({"header_text":["the end of August"]})
    );
    let body = body_of(whatsapp_template_submission("1", "t", &bare));
    assert_eq!(
        body["components"][0]["example"],
        json!({"header_text":["example 1"]})
    );
    assert_eq!(
        body["components"][1]["example"],
        json!({"body_text":[["example 1","example 2","example 3"]]})
    );
}

#[test]
fn template_submission_without_examples_uses_placeholders() {
    let mut template = content(
        "order_ready",
        Some(TemplateHeader {
            format: HeaderFormat::Document,
            text: None,
            example: Some("4::YX...".into()),
        }),
        "Hi {{1}}, order {{2}} is ready.",
        None,
        vec![
            TemplateButton {
                phone_number: Some("+15550051310".into()),
                ..button(ButtonType::PhoneNumber, "Call")
            },
            TemplateButton {
                url: Some("https://x.com/o/{{1}}".into()),
                ..button(ButtonType::Url, "Track")
            },
            TemplateButton {
                example: Some("SAVE10".into()),
                ..button(ButtonType::CopyCode, "Copy code")
            },
        ],
    );
    template.category = Some(TemplateCategory::Utility);
    template
        .variable_mapping
        .insert("1".into(), "contact.name".into());
    template
        .variable_mapping
        .insert("2".into(), "contact.fields.order_id".into());
    assert_eq!(
        body_of(whatsapp_template_submission("1", "t", &template)),
        json!({"name":"order_ready","language":"en_US","category":"UTILITY","components":[
          {"type":"HEADER","format":"DOCUMENT","example":{"header_handle":["4::YX..."]}},
          {"type":"BODY","text":"Hi {{1}}, order {{2}} is ready.",
           "example":{"body_text":[["name","order id"]]}},
          {"type":"BUTTONS","buttons":[
            {"type":"PHONE_NUMBER","text":"Call","phone_number":"15550051310"},
            {"type":"URL","text":"Track","url":"https://x.com/o/{{1}}","example":["https://x.com/o/name"]},
            {"type":"COPY_CODE","example":"SAVE10"}]}]})
    );
}

#[test]
fn template_submission_with_named_parameters() {
    let template = content(
        "named",
        Some(TemplateHeader {
            format: HeaderFormat::Text,
            text: Some("Hello {{first_name}}".into()),
            example: None,
        }),
        "Your plan {{plan_name}} renews for {{first_name}}.",
        None,
        vec![TemplateButton {
            url: Some("https://x.com/{{1}}".into()),
            example: Some("https://x.com/abc".into()),
            ..button(ButtonType::Url, "Open")
        }],
    );
    let examples: BTreeMap<String, String> = [("plan_name".to_owned(), "Gold".to_owned())].into();
    assert_eq!(
        body_of(whatsapp_template_submission_with_examples(
            "1", "t", &template, &examples
        )),
        json!({"name":"named","language":"en_US","category":"MARKETING",
          "parameter_format":"NAMED","components":[
          {"type":"HEADER","format":"TEXT","text":"Hello {{first_name}}",
           "example":{"header_text_named_params":[{"param_name":"first_name","example":"first name"}]}},
          {"type":"BODY","text":"Your plan {{plan_name}} renews for {{first_name}}.",
           "example":{"body_text_named_params":[
             {"param_name":"plan_name","example":"Gold"},
             {"param_name":"first_name","example":"first name"}]}},
          {"type":"BUTTONS","buttons":[
            {"type":"URL","text":"Open","url":"https://x.com/{{1}}","example":["https://x.com/abc"]}]}]})
    );
}

#[test]
fn template_submission_answers_and_media_descriptions_are_read() {
    use switchboard_channels::{parse_media_info, parse_template_submitted};
    let answer = parse_template_submitted(
        br#"{"id":"1689556908129832","status":"PENDING","category":"UTILITY"}"#,
    )
    .unwrap();
    assert_eq!(answer.id, "1689556908129832");
    assert_eq!(answer.status, "PENDING");
    assert_eq!(answer.category.as_deref(), Some("UTILITY"));
    // A numeric id, no status: under review.
    let bare = parse_template_submitted(br#"{"id":594425479261596}"#).unwrap();
    assert_eq!(
        (bare.id.as_str(), bare.status.as_str()),
        ("594425479261596", "PENDING")
    );
    assert!(parse_template_submitted(b"{}").is_err());
    assert!(parse_template_submitted(b"<html>").is_err());

    let info = parse_media_info(
        br#"{"messaging_product":"whatsapp","url":"https://lookaside.fbsbx.com/x?mid=1","mime_type":"image/jpeg","sha256":"abc","file_size":"303833","id":"1037543291543636"}"#,
    )
    .unwrap();
    assert_eq!(info.url, "https://lookaside.fbsbx.com/x?mid=1");
    assert_eq!(info.mime_type.as_deref(), Some("image/jpeg"));
    assert_eq!(info.file_size, Some(303_833));
    assert!(parse_media_info(br#"{"id":"1"}"#).is_err());
}

#[test]
fn media_ids_cannot_leave_their_path() {
    use switchboard_channels::whatsapp_media_info_request;
    let request = whatsapp_media_info_request("1037543291543636", "EAAtoken").unwrap();
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/1037543291543636");
    assert_eq!(request.header("authorization"), Some("Bearer EAAtoken"));
    assert_eq!(request.body.content_type(), None);
    for bad in ["", "../me", "1/messages", "1?fields=x", ".hidden", "1 2"] {
        assert!(whatsapp_media_info_request(bad, "t").is_err(), "{bad:?}");
    }
}

#[test]
fn a_media_upload_is_one_multipart_form_with_the_file_last() {
    use switchboard_channels::{parse_media_uploaded, whatsapp_media_upload_request, UploadFile};
    let bytes = b"\x89PNG\r\n\x1a\n--not-a-boundary\r\n".to_vec();
    let request = whatsapp_media_upload_request(
        "106540352242922",
        "EAAtoken",
        UploadFile {
            filename: "re\"ceipt.png".into(),
            content_type: "image/png".into(),
            bytes: bytes.clone(),
        },
    );
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/106540352242922/media");
    // Only the token: a JSON content type here would contradict the body's own.
    assert_eq!(request.headers.len(), 1);
    assert_eq!(request.header("authorization"), Some("Bearer EAAtoken"));
    let content_type = request.body.content_type().unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap()
        .to_owned();
    // The same file encodes the same way every time.
    assert_eq!(request.body.encode(), request.body.encode());
    let mut expected = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nimage/png\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"re'ceipt.png\"\r\n\
         Content-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    expected.extend_from_slice(&bytes);
    expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert_eq!(request.body.encode(), expected);

    assert_eq!(
        parse_media_uploaded(br#"{"id":"1037543291543636"}"#).unwrap(),
        "1037543291543636"
    );
    assert!(parse_media_uploaded(br#"{"success":true}"#).is_err());
}
