//! Every error code of PROTOCOLS.md A.5, B.4 and C.6 with its classification.

use serde_json::json;
use switchboard_channels::errors::{
    classify_messenger, classify_twilio, classify_twilio_error_code, classify_whatsapp,
    classify_whatsapp_error, codes,
};
use switchboard_channels::{RetryScope, SendError};
use time::Duration;

/// What a classification should be: retryable with a scope, or permanent with our code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Retry(RetryScope),
    Fail(&'static str),
}
use RetryScope::{Message, Recipient, Sender};
use Want::{Fail, Retry};

const PROVIDER: Want = Fail(codes::PROVIDER_ERROR);

fn verdict(e: &SendError) -> Want {
    match e {
        SendError::Retryable { scope, .. } => Retry(*scope),
        SendError::Permanent { code, .. } => Fail(code),
    }
}

fn graph_body(code: i64, subcode: Option<i64>, message: &str, details: &str) -> Vec<u8> {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
    });
    if let Some(sub) = subcode {
        error["error_subcode"] = json!(sub);
    }
    serde_json::to_vec(&json!({ "error": error })).unwrap()
}

/// PROTOCOLS.md A.5, every row, with the HTTP status the mirrors give (400 where unknown).
const WHATSAPP: &[(i64, u16, Want)] = &[
    (0, 401, Fail(codes::TOKEN_EXPIRED)),
    (1, 400, Retry(Message)),
    (2, 503, Retry(Message)),
    (3, 500, PROVIDER),
    (4, 429, Retry(Sender)),
    (4, 400, Retry(Sender)),
    (10, 403, PROVIDER),
    (33, 400, PROVIDER),
    (100, 400, PROVIDER),
    (190, 401, Fail(codes::TOKEN_EXPIRED)),
    (200, 403, PROVIDER),
    (250, 403, PROVIDER),
    (299, 403, PROVIDER),
    (368, 400, PROVIDER),
    (80007, 400, Retry(Sender)),
    (130429, 429, Retry(Sender)),
    (130472, 400, PROVIDER),
    (130497, 400, PROVIDER),
    (131000, 500, Retry(Message)),
    (131005, 403, PROVIDER),
    (131008, 400, PROVIDER),
    (131009, 400, PROVIDER),
    (131016, 503, Retry(Message)),
    (131021, 400, PROVIDER),
    (131026, 400, Fail(codes::NOT_ON_WHATSAPP)),
    (131031, 400, PROVIDER),
    (131037, 400, PROVIDER),
    (131042, 400, PROVIDER),
    (131045, 400, PROVIDER),
    (131047, 400, Fail(codes::WINDOW_CLOSED)),
    (131048, 400, PROVIDER),
    (131049, 400, Retry(Recipient)),
    (131050, 400, Fail(codes::OPTED_OUT)),
    (131051, 400, PROVIDER),
    (131052, 400, PROVIDER),
    (131053, 400, PROVIDER),
    (131056, 400, Retry(Recipient)),
    (131057, 400, Retry(Sender)),
    (131063, 400, PROVIDER),
    (131064, 400, PROVIDER),
    (132000, 400, PROVIDER),
    (132001, 404, Fail(codes::TEMPLATE_NOT_FOUND)),
    (132005, 400, PROVIDER),
    (132007, 400, PROVIDER),
    (132012, 400, PROVIDER),
    (132015, 400, Fail(codes::TEMPLATE_NOT_APPROVED)),
    (132016, 400, Fail(codes::TEMPLATE_NOT_APPROVED)),
    (132018, 400, PROVIDER),
    (132068, 400, PROVIDER),
    (132069, 400, Retry(Message)),
    (133010, 400, PROVIDER),
    (133016, 400, Retry(Sender)),
    (135000, 400, PROVIDER),
    (137000, 400, PROVIDER),
    // Template creation.
    (2388019, 400, PROVIDER),
    (2388040, 400, PROVIDER),
    (2388047, 400, PROVIDER),
    (2388072, 400, PROVIDER),
    (2388073, 400, PROVIDER),
    (2388293, 400, PROVIDER),
    (2388299, 400, PROVIDER),
];

#[test]
fn whatsapp_table() {
    for &(code, status, want) in WHATSAPP {
        let body = graph_body(code, None, &format!("(#{code}) Title"), "Some details");
        let e = classify_whatsapp(status, &body, None);
        assert_eq!(verdict(&e), want, "code {code}");
        // The provider's code and message are kept.
        assert_eq!(e.provider_code(), Some(code.to_string().as_str()), "{code}");
        assert!(e.reason().contains(&format!("(#{code}) Title")), "{code}");
        assert!(e.reason().contains("Some details"), "{code}");
        // The same code in a webhook classifies the same, whatever the HTTP status would be.
        let asynchronous = classify_whatsapp_error(code, "Title", "Some details");
        assert_eq!(verdict(&asynchronous), want, "webhook code {code}");
    }
}

#[test]
fn whatsapp_sample_error_response() {
    // PROTOCOLS.md A.4.
    let body = br#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,
      "error_data":{"messaging_product":"whatsapp","details":"Message failed to send because there were too many messages sent from this phone number in a short period of time"},
      "error_subcode":2494055,"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}"#;
    let e = classify_whatsapp(429, body, Some("30"));
    assert_eq!(
        e,
        SendError::Retryable {
            after: Some(Duration::seconds(30)),
            scope: Sender,
            provider_code: Some("130429".into()),
            reason: "(#130429) Rate limit hit: Message failed to send because there were too \
                     many messages sent from this phone number in a short period of time \
                     (subcode 2494055) (fbtrace_id Az8or2yhqkZfEZ-_4Qn_Bam)"
                .into(),
        }
    );
}

#[test]
fn whatsapp_special_cases() {
    // The pair limit backs off that recipient for about 6 s unless told otherwise.
    let pair = graph_body(131056, None, "(#131056) Pair rate limit hit", "");
    match classify_whatsapp(400, &pair, None) {
        SendError::Retryable { after, scope, .. } => {
            assert_eq!((after, scope), (Some(Duration::seconds(6)), Recipient))
        }
        other => panic!("{other:?}"),
    }
    match classify_whatsapp(400, &pair, Some("12")) {
        SendError::Retryable { after, .. } => assert_eq!(after, Some(Duration::seconds(12))),
        other => panic!("{other:?}"),
    }
    // 131049 waits a day.
    match classify_whatsapp(400, &graph_body(131049, None, "x", ""), None) {
        SendError::Retryable { after, .. } => assert_eq!(after, Some(Duration::hours(24))),
        other => panic!("{other:?}"),
    }
    // 131009 about the phone number is an invalid address.
    let e = classify_whatsapp(
        400,
        &graph_body(
            131009,
            None,
            "(#131009) Parameter value is not valid",
            "Recipient phone number not in allowed list",
        ),
        None,
    );
    assert_eq!(verdict(&e), Fail(codes::INVALID_ADDRESS));
    // 131053 is transient when the media host answered 429 or 5xx.
    for (details, want) in [
        (
            "Downloading media from weblink failed with http code 429, status message Too Many Requests",
            Retry(Message),
        ),
        ("Downloading media from weblink failed with http code 503", Retry(Message)),
        ("Downloading media from weblink failed with http code 404", PROVIDER),
        ("Unsupported media type", PROVIDER),
    ] {
        let e = classify_whatsapp(400, &graph_body(131053, None, "(#131053)", details), None);
        assert_eq!(verdict(&e), want, "{details}");
    }
    // Token errors with a subcode, string codes and error_data as a plain string.
    let e = classify_whatsapp(
        401,
        &graph_body(190, Some(463), "Session expired", ""),
        None,
    );
    assert_eq!(verdict(&e), Fail(codes::TOKEN_EXPIRED));
    assert!(e.reason().contains("subcode 463"));
    let e = classify_whatsapp(
        400,
        br#"{"error":{"message":"Invalid parameter","code":"100","error_data":"Template name is too long"}}"#,
        None,
    );
    assert_eq!(verdict(&e), PROVIDER);
    assert_eq!(e.reason(), "Invalid parameter: Template name is too long");
}

#[test]
fn unknown_codes_and_bodies_fall_back_on_the_http_status() {
    type Classify = fn(u16, &[u8], Option<&str>) -> SendError;
    let graph_unknown = graph_body(999_999, None, "New error", "");
    let twilio_unknown = br#"{"code":99999,"message":"New error","status":400}"#.to_vec();
    let cases: [(Classify, Vec<u8>); 3] = [
        (classify_whatsapp, graph_unknown.clone()),
        (classify_messenger, graph_unknown),
        (classify_twilio, twilio_unknown),
    ];
    for (classify, known_shape) in cases {
        for body in [known_shape.as_slice(), b"<html>Bad gateway</html>", b""] {
            assert_eq!(verdict(&classify(500, body, None)), Retry(Message));
            assert_eq!(verdict(&classify(503, body, None)), Retry(Message));
            assert_eq!(verdict(&classify(429, body, None)), Retry(Sender));
            assert_eq!(verdict(&classify(400, body, None)), PROVIDER);
            assert_eq!(verdict(&classify(404, body, None)), PROVIDER);
            assert_eq!(
                verdict(&classify(401, body, None)),
                Fail(codes::TOKEN_EXPIRED)
            );
        }
        let e = classify(502, b"<html>Bad gateway</html>", Some("7"));
        assert_eq!(
            e,
            SendError::Retryable {
                after: Some(Duration::seconds(7)),
                scope: Message,
                provider_code: None,
                reason: "HTTP 502: <html>Bad gateway</html>".into(),
            }
        );
    }
    // Graph's is_transient makes an unknown 4xx retryable.
    let transient = br#"{"error":{"message":"Try later","code":999999,"is_transient":true}}"#;
    assert_eq!(
        verdict(&classify_whatsapp(400, transient, None)),
        Retry(Message)
    );
    // Unknown codes from webhooks are permanent.
    assert_eq!(
        verdict(&classify_whatsapp_error(999_999, "x", "")),
        PROVIDER
    );
    assert_eq!(verdict(&classify_twilio_error_code(99999, "x")), PROVIDER);
}

/// PROTOCOLS.md B.4, every row.
const MESSENGER: &[(i64, Option<i64>, u16, Want)] = &[
    (2, None, 500, Retry(Message)),
    (2, None, 400, Retry(Message)),
    (2, Some(2018344), 503, Retry(Message)),
    (4, None, 429, Retry(Sender)),
    (4, None, 400, Retry(Sender)),
    (613, None, 400, Retry(Sender)),
    (10, Some(2018278), 400, Fail(codes::WINDOW_CLOSED)),
    (10, Some(2018108), 400, PROVIDER),
    (10, None, 403, PROVIDER),
    (100, Some(2018001), 400, Fail(codes::INVALID_ADDRESS)),
    (100, None, 400, PROVIDER),
    (190, None, 401, Fail(codes::TOKEN_EXPIRED)),
    (190, Some(460), 400, Fail(codes::TOKEN_EXPIRED)),
    (199, None, 400, PROVIDER),
    (200, Some(1545041), 400, PROVIDER),
    (551, Some(1545041), 400, PROVIDER),
];

#[test]
fn messenger_table() {
    for &(code, subcode, status, want) in MESSENGER {
        let body = graph_body(code, subcode, "(#x) Messenger says no", "");
        let e = classify_messenger(status, &body, None);
        assert_eq!(verdict(&e), want, "code {code} subcode {subcode:?}");
        assert_eq!(e.provider_code(), Some(code.to_string().as_str()));
        assert!(e.reason().starts_with("(#x) Messenger says no"));
        if let Some(sub) = subcode {
            assert!(e.reason().contains(&format!("subcode {sub}")));
        }
    }
}

/// PROTOCOLS.md C.6, every row, with the HTTP status for API errors.
const TWILIO: &[(i64, u16, Want)] = &[
    (20003, 401, Fail(codes::TOKEN_EXPIRED)),
    (20429, 429, Retry(Sender)),
    (21211, 400, Fail(codes::INVALID_ADDRESS)),
    (21408, 400, PROVIDER),
    (21606, 400, PROVIDER),
    (21608, 400, PROVIDER),
    (21610, 400, Fail(codes::OPTED_OUT)),
    (21611, 400, Retry(Sender)),
    (21612, 400, PROVIDER),
    (21614, 400, Fail(codes::INVALID_ADDRESS)),
    (21617, 400, PROVIDER),
    (21635, 400, Fail(codes::INVALID_ADDRESS)),
    (30001, 400, Retry(Sender)),
    (30002, 400, PROVIDER),
    (30003, 400, Retry(Recipient)),
    (30004, 400, PROVIDER),
    (30005, 400, Fail(codes::INVALID_ADDRESS)),
    (30006, 400, Fail(codes::INVALID_ADDRESS)),
    (30007, 400, PROVIDER),
    (30008, 400, Retry(Message)),
];

#[test]
fn twilio_table() {
    for &(code, status, want) in TWILIO {
        let body = serde_json::to_vec(&json!({
            "code": code,
            "message": "Twilio says no",
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }))
        .unwrap();
        let e = classify_twilio(status, &body, None);
        assert_eq!(verdict(&e), want, "code {code}");
        assert_eq!(e.provider_code(), Some(code.to_string().as_str()));
        assert_eq!(
            e.reason(),
            format!("Twilio says no (https://www.twilio.com/docs/errors/{code})")
        );
        // Status callbacks carry the same codes.
        assert_eq!(
            verdict(&classify_twilio_error_code(code, "x")),
            want,
            "callback {code}"
        );
    }
}

#[test]
fn twilio_error_shapes() {
    // The legacy sample of PROTOCOLS.md C.1.
    let legacy = br#"{"code":21211,"message":"The 'To' number +1555 is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#;
    assert_eq!(
        classify_twilio(400, legacy, None),
        SendError::Permanent {
            code: codes::INVALID_ADDRESS,
            provider_code: Some("21211".into()),
            reason: "The 'To' number +1555 is not a valid phone number. \
                     (https://www.twilio.com/docs/errors/21211)"
                .into(),
        }
    );
    // RFC 9457.
    let problem = br#"{"type":"https://www.twilio.com/docs/errors/20429","title":"Too Many Requests","status":429,"code":20429,"detail":"Slow down","instance":"/x"}"#;
    match classify_twilio(429, problem, Some("2")) {
        SendError::Retryable {
            after,
            scope,
            provider_code,
            reason,
        } => {
            assert_eq!(after, Some(Duration::seconds(2)));
            assert_eq!(scope, Sender);
            assert_eq!(provider_code.as_deref(), Some("20429"));
            assert_eq!(reason, "Slow down");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stable_codes_are_the_documented_set() {
    assert_eq!(
        codes::ALL,
        [
            "token_expired",
            "not_on_whatsapp",
            "window_closed",
            "opted_out",
            "template_not_approved",
            "template_not_found",
            "invalid_address",
            "provider_error",
        ]
    );
    let e = classify_whatsapp(400, &graph_body(131047, None, "Re-engagement", ""), None);
    assert_eq!(
        e.to_string(),
        "window_closed [131047]: Re-engagement (fbtrace_id Az8or2yhqkZfEZ-_4Qn_Bam)"
    );
    assert!(!e.is_retryable());
    assert_eq!(e.code(), Some("window_closed"));
}
