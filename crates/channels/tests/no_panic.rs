//! The parsers never panic, whatever arrives.

use proptest::prelude::*;
use serde_json::{json, Value};
use switchboard_channels::{parse_form, parse_messenger, parse_twilio, parse_whatsapp};

/// Arbitrary JSON, biased towards the keys the parsers look at.
fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("object".to_owned()),
        Just("entry".to_owned()),
        Just("changes".to_owned()),
        Just("messaging".to_owned()),
        Just("standby".to_owned()),
        Just("field".to_owned()),
        Just("value".to_owned()),
        Just("messages".to_owned()),
        Just("statuses".to_owned()),
        Just("type".to_owned()),
        Just("id".to_owned()),
        Just("timestamp".to_owned()),
        Just("message".to_owned()),
        Just("delivery".to_owned()),
        Just("watermark".to_owned()),
        Just("text".to_owned()),
        Just("interactive".to_owned()),
        Just("contacts".to_owned()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("whatsapp_business_account".to_owned()),
            Just("page".to_owned()),
            Just("messages".to_owned()),
            Just("text".to_owned()),
            Just("interactive".to_owned()),
            Just("9999999999999999999".to_owned()),
            ".{0,6}",
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn whatsapp_never_panics(v in arb_json(), object_wa in any::<bool>()) {
        let mut v = v;
        if object_wa {
            if let Some(o) = v.as_object_mut() {
                o.insert("object".into(), "whatsapp_business_account".into());
            }
        }
        let _ = parse_whatsapp(&serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn messenger_never_panics(v in arb_json(), object_page in any::<bool>()) {
        let mut v = v;
        if object_page {
            if let Some(o) = v.as_object_mut() {
                o.insert("object".into(), "page".into());
            }
        }
        let _ = parse_messenger(&serde_json::to_vec(&v).unwrap());
    }

    #[test]
    fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_whatsapp(&bytes);
        let _ = parse_messenger(&bytes);
        let _ = parse_twilio(&parse_form(&bytes));
    }

    #[test]
    fn twilio_never_panics(
        pairs in prop::collection::vec(
            (prop_oneof![
                Just("MessageSid".to_owned()), Just("From".to_owned()), Just("To".to_owned()),
                Just("Body".to_owned()), Just("NumMedia".to_owned()), Just("MediaUrl0".to_owned()),
                Just("MediaContentType0".to_owned()), Just("SmsStatus".to_owned()),
                Just("MessageStatus".to_owned()), Just("ErrorCode".to_owned()),
                Just("Latitude".to_owned()), Just("Longitude".to_owned()), "[A-Za-z0-9]{0,10}",
            ], ".{0,12}"),
            0..16,
        )
    ) {
        let _ = parse_twilio(&pairs);
    }
}
