//! Every pywa webhook sample in `shared/fixtures/pywa/updates/` parses, plus targeted checks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use switchboard_channels::events::{DeliveryStatus, InboundEvent, MessageKind};
use switchboard_channels::parse_whatsapp;

fn updates_dir() -> PathBuf {
    match std::env::var_os("SWITCHBOARD_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir).join("fixtures/pywa/updates"),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/pywa/updates"
        )),
    }
}

/// Collects webhook bodies (objects with `object` and `entry`) from a sample value. A sample
/// may nest a further full body under another key (`template_components_update.json` has one
/// under `all`); each body found counts as one sample.
fn collect_bodies<'a>(v: &'a Value, name: String, out: &mut Vec<(String, &'a Value)>) {
    let Some(obj) = v.as_object() else { return };
    if obj.contains_key("object") && obj.contains_key("entry") {
        out.push((name.clone(), v));
    }
    for (k, inner) in obj {
        if k != "entry" && inner.is_object() {
            collect_bodies(inner, format!("{name}/{k}"), out);
        }
    }
}

/// (file stem, sample name) -> body, for all files.
fn load_all() -> BTreeMap<(String, String), Value> {
    let dir = updates_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "reading {}: {e}; the fixtures live in the shared folder beside the repository \
                 (set SWITCHBOARD_SHARED_DIR to the folder holding fixtures/)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        19,
        "expected 19 fixture files in {}",
        dir.display()
    );
    let mut all = BTreeMap::new();
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut bodies = Vec::new();
        for (name, sample) in doc.as_object().expect("file is a map of samples") {
            collect_bodies(sample, name.clone(), &mut bodies);
        }
        for (name, body) in bodies {
            all.insert((stem.clone(), name), body.clone());
        }
    }
    all
}

fn parse(body: &Value) -> Vec<InboundEvent> {
    parse_whatsapp(&serde_json::to_vec(body).unwrap()).expect("parses")
}

fn sample(all: &BTreeMap<(String, String), Value>, file: &str, name: &str) -> Vec<InboundEvent> {
    parse(
        all.get(&(file.to_owned(), name.to_owned()))
            .unwrap_or_else(|| panic!("no sample {file}/{name}")),
    )
}

fn kind_name(ev: &InboundEvent) -> String {
    match ev {
        InboundEvent::Message(m) if m.is_echo => format!("Message(echo {:?})", m.kind),
        InboundEvent::Message(m) => format!("Message({:?})", m.kind),
        InboundEvent::Status(s) => format!("Status({:?})", s.status),
        InboundEvent::Reaction(_) => "Reaction".into(),
        InboundEvent::TemplateStatus(_) => "TemplateStatus".into(),
        InboundEvent::TemplateQuality(_) => "TemplateQuality".into(),
        InboundEvent::TemplateCategory(_) => "TemplateCategory".into(),
        InboundEvent::TemplateComponents(_) => "TemplateComponents".into(),
        InboundEvent::PhoneNumberQuality(_) => "PhoneNumberQuality".into(),
        InboundEvent::AccountUpdate(_) => "AccountUpdate".into(),
        InboundEvent::MarketingPreference(_) => "MarketingPreference".into(),
        InboundEvent::OptIn(_) => "OptIn".into(),
        InboundEvent::Unknown { kind, .. } => format!("Unknown({kind})"),
    }
}

#[test]
fn every_sample_parses() {
    let all = load_all();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for ((file, name), body) in &all {
        let raw = serde_json::to_vec(body).unwrap();
        let events = parse_whatsapp(&raw).unwrap_or_else(|e| panic!("{file}/{name}: {e}"));
        assert!(!events.is_empty(), "{file}/{name} gave no events");
        for ev in &events {
            *kinds.entry(kind_name(ev)).or_default() += 1;
        }
    }
    eprintln!("{} samples; events by kind:", all.len());
    for (k, n) in &kinds {
        eprintln!("  {n:3} {k}");
    }
    assert_eq!(all.len(), 75);
    // The only things deliberately left unmodelled are calls.
    let unknown: Vec<_> = kinds.keys().filter(|k| k.starts_with("Unknown")).collect();
    assert_eq!(unknown, ["Unknown(calls)"]);
}

#[test]
fn text_message() {
    let all = load_all();
    let events = sample(&all, "message", "text");
    let [InboundEvent::Message(m)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.provider_message_id, "wamid.xyzxyz");
    assert_eq!(m.business_id, "1122334455667");
    assert_eq!(m.business_display.as_deref(), Some("972123456789"));
    assert_eq!(m.account_id.as_deref(), Some("1234567890987654321"));
    assert_eq!(m.customer.address.as_deref(), Some("972987654321"));
    assert_eq!(m.customer.name.as_deref(), Some("Test Name"));
    assert_eq!(m.timestamp.unwrap().unix_timestamp(), 1697043223);
    assert_eq!(m.text.as_deref(), Some("Body Text"));
    assert!(!m.is_echo);
}

#[test]
fn bsuid_fields_are_carried() {
    let all = load_all();
    // From the contacts[] entry matched by wa_id.
    let events = sample(&all, "message", "text");
    let InboundEvent::Message(m) = &events[0] else {
        panic!()
    };
    assert_eq!(
        m.customer.user_id.as_deref(),
        Some("US.13491208655302741918")
    );
    assert_eq!(
        m.customer.parent_user_id.as_deref(),
        Some("US.ENT.11815799212886844830")
    );
    // From the message's own from_user_id.
    let events = sample(&all, "callback_button", "quick_reply_without_context");
    let InboundEvent::Message(m) = &events[0] else {
        panic!()
    };
    assert_eq!(
        m.customer.user_id.as_deref(),
        Some("US.13491208655302741918")
    );
    assert_eq!(m.kind, MessageKind::QuickReply);
    assert_eq!(m.payload.as_deref(), Some("callback_data"));
    assert_eq!(m.text.as_deref(), Some("title"));
    // Group status: the participant's BSUIDs.
    let events = sample(&all, "message_status", "group");
    let InboundEvent::Status(s) = &events[0] else {
        panic!()
    };
    assert_eq!(s.recipient_type.as_deref(), Some("group"));
    let p = s.group_participant.as_ref().unwrap();
    assert_eq!(p.user_id.as_deref(), Some("US.123456"));
    assert_eq!(p.parent_user_id.as_deref(), Some("<PARENT_BSUID>"));
    // Echo: the customer is the recipient, with to_user_id.
    let events = sample(&all, "outgoing_message", "text");
    let InboundEvent::Message(m) = &events[0] else {
        panic!()
    };
    assert!(m.is_echo);
    assert_eq!(
        m.customer.address.as_deref(),
        Some("<WHATSAPP_USER_PHONE_NUMBER>")
    );
    assert_eq!(m.customer.user_id.as_deref(), Some("<BSUID>"));
    assert_eq!(m.customer.parent_user_id.as_deref(), Some("<PARENT_BSUID>"));
}

#[test]
fn failed_status_keeps_error_code() {
    let all = load_all();
    let events = sample(&all, "message_status", "failed");
    let [InboundEvent::Status(s)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(s.status, DeliveryStatus::Failed);
    assert_eq!(s.message_id(), Some("wamid.xyzxyz"));
    assert_eq!(s.errors.len(), 1);
    assert_eq!(s.errors[0].code, Some(130472));
    assert_eq!(
        s.errors[0].title.as_deref(),
        Some("User's number is part of an experiment")
    );
    assert!(s.errors[0]
        .details
        .as_deref()
        .unwrap()
        .contains("experiment"));
    assert!(s.pricing.is_none());
}

#[test]
fn sent_status_keeps_pricing_and_conversation() {
    let all = load_all();
    let events = sample(&all, "message_status", "with_tracker");
    let [InboundEvent::Status(s)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(s.status, DeliveryStatus::Sent);
    assert_eq!(s.timestamp.unwrap().unix_timestamp(), 1698266945);
    assert_eq!(s.recipient.address.as_deref(), Some("972987654321"));
    assert_eq!(s.biz_opaque_callback_data.as_deref(), Some("some data"));
    let p = s.pricing.as_ref().unwrap();
    assert_eq!(p.category.as_deref(), Some("service"));
    assert_eq!(p.billable, Some(true));
    assert_eq!(p.pricing_model.as_deref(), Some("CBP"));
    let c = s.conversation.as_ref().unwrap();
    assert_eq!(c.id.as_deref(), Some("7270432eae37498234f4444b35ffc5"));
    assert_eq!(c.origin_type.as_deref(), Some("service"));
    assert_eq!(c.expires_at.unwrap().unix_timestamp(), 1698339900);
}

#[test]
fn every_status_every_change_every_entry() {
    let all = load_all();
    // Build one body from several samples: two statuses in one change, a second change and a
    // second entry.
    let mut body = all[&("message_status".to_owned(), "sent".to_owned())].clone();
    let value = &mut body["entry"][0]["changes"][0]["value"];
    let mut second = value["statuses"][0].clone();
    second["id"] = "wamid.second".into();
    second["status"] = "delivered".into();
    value["statuses"].as_array_mut().unwrap().push(second);
    let text_change =
        all[&("message".to_owned(), "text".to_owned())]["entry"][0]["changes"][0].clone();
    body["entry"][0]["changes"]
        .as_array_mut()
        .unwrap()
        .push(text_change);
    let other_entry =
        all[&("template_status_update".to_owned(), "approved".to_owned())]["entry"][0].clone();
    body["entry"].as_array_mut().unwrap().push(other_entry);

    let events = parse(&body);
    let kinds: Vec<String> = events.iter().map(kind_name).collect();
    assert_eq!(
        kinds,
        [
            "Status(Sent)",
            "Status(Delivered)",
            "Message(Text)",
            "TemplateStatus"
        ]
    );
    let InboundEvent::Status(s) = &events[1] else {
        panic!()
    };
    assert_eq!(s.message_id(), Some("wamid.second"));
}

#[test]
fn template_updates() {
    let all = load_all();
    let events = sample(&all, "template_status_update", "rejected");
    let [InboundEvent::TemplateStatus(t)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(t.status, "REJECTED");
    assert_eq!(t.reason.as_deref(), Some("INVALID_FORMAT"));
    assert_eq!(t.template_id.as_deref(), Some("1689556908129835"));
    assert_eq!(t.template_name.as_deref(), Some("abandoned_cart"));
    assert_eq!(t.language.as_deref(), Some("en"));
    assert_eq!(t.category.as_deref(), Some("MARKETING"));
    assert!(t
        .rejection_detail
        .as_deref()
        .unwrap()
        .contains("{{1}}{{2}}"));
    assert_eq!(t.time.unwrap().unix_timestamp(), 1751247548);

    let events = sample(&all, "template_status_update", "approved");
    let [InboundEvent::TemplateStatus(t)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(t.status, "APPROVED");
    assert_eq!(t.reason.as_deref(), Some("NONE"));

    let events = sample(&all, "template_quality_update", "yellow");
    let [InboundEvent::TemplateQuality(q)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(q.previous_quality.as_deref(), Some("GREEN"));
    assert_eq!(q.new_quality.as_deref(), Some("YELLOW"));

    let events = sample(&all, "template_category_update", "marketing");
    let [InboundEvent::TemplateCategory(c)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(c.new_category.as_deref(), Some("MARKETING"));
    assert_eq!(c.template_id.as_deref(), Some("12345678"));

    let events = sample(&all, "template_components_update", "element/all");
    let [InboundEvent::TemplateComponents(c)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(c.title.as_deref(), Some("Your order is confirmed!"));
    assert_eq!(c.buttons.len(), 2);
    assert_eq!(c.buttons[0].phone_number.as_deref(), Some("+15550783881"));
}

#[test]
fn account_updates() {
    let all = load_all();
    let events = sample(&all, "account_update", "account_restriction");
    let [InboundEvent::AccountUpdate(a)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(a.event, "ACCOUNT_RESTRICTION");
    assert_eq!(a.restrictions.len(), 2);
    assert_eq!(
        a.restrictions[0].restriction_type.as_deref(),
        Some("RESTRICTED_BIZ_INITIATED_MESSAGING")
    );
    let events = sample(&all, "account_update", "account_disabled");
    let [InboundEvent::AccountUpdate(a)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(a.ban_state.as_deref(), Some("REINSTATE"));
    let events = sample(&all, "account_update", "account_violation");
    let [InboundEvent::AccountUpdate(a)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(a.violation_type.as_deref(), Some("ADULT"));
}

/// pywa has no `phone_number_quality_update` sample; this is the documented shape
/// (PROTOCOLS.md A.9), once with `current_limit` and once with only the older field.
#[test]
fn phone_number_quality_gives_tier() {
    let body = br#"{"object":"whatsapp_business_account","entry":[
      {"id":"102290129340398","time":1700000000,"changes":[
        {"field":"phone_number_quality_update","value":{"display_phone_number":"15550783881",
          "event":"DOWNGRADE","old_limit":"TIER_10K","current_limit":"TIER_1K",
          "max_daily_conversations_per_business":"TIER_1K"}},
        {"field":"phone_number_quality_update","value":{"display_phone_number":"15550783881",
          "event":"FLAGGED","max_daily_conversations_per_business":"TIER_250"}}]}]}"#;
    let events = parse_whatsapp(body).unwrap();
    let [InboundEvent::PhoneNumberQuality(a), InboundEvent::PhoneNumberQuality(b)] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(a.event, "DOWNGRADE");
    assert_eq!(a.current_limit.as_deref(), Some("TIER_1K"));
    assert_eq!(a.old_limit.as_deref(), Some("TIER_10K"));
    assert_eq!(a.display_phone_number.as_deref(), Some("15550783881"));
    assert_eq!(b.event, "FLAGGED");
    assert_eq!(b.current_limit.as_deref(), Some("TIER_250"));
    assert_eq!(b.old_limit, None);
}

#[test]
fn message_kinds_and_content() {
    let all = load_all();
    let msg = |file: &str, name: &str| match sample(&all, file, name).remove(0) {
        InboundEvent::Message(m) => m,
        other => panic!("{file}/{name}: {other:?}"),
    };

    let m = msg("message", "media_with_url");
    assert_eq!(m.kind, MessageKind::Image);
    assert_eq!(m.media[0].id.as_deref(), Some("65463453"));
    assert_eq!(m.media[0].mime_type.as_deref(), Some("image/jpeg"));
    assert_eq!(m.media[0].sha256.as_deref(), Some("4654+8g="));
    assert!(m.media[0].url.as_deref().unwrap().starts_with("https://"));

    let m = msg("message", "document");
    assert_eq!(m.kind, MessageKind::Document);
    assert_eq!(m.media[0].filename.as_deref(), Some("filename.pdf"));
    assert_eq!(m.text.as_deref(), Some("caption"));
    assert!(m.forwarded);

    assert!(msg("message", "voice").media[0].voice);
    assert!(msg("message", "animated_sticker").media[0].animated);
    assert!(msg("message", "forwarded_many_times").frequently_forwarded);

    let m = msg("message", "reply");
    assert_eq!(m.reply_to.as_deref(), Some("wamid.xyzxyz=="));
    assert_eq!(m.reply_to_from.as_deref(), Some("972123456789"));

    let m = msg("message", "chosen_location");
    let loc = m.location.unwrap();
    assert_eq!(loc.name.as_deref(), Some("Facebook HQ"));
    assert!((loc.longitude - -122.2164385).abs() < 1e-9);

    let m = msg("message", "contacts");
    assert_eq!(m.shared_contacts.len(), 3);
    assert_eq!(
        m.shared_contacts[0].phones[0].phone.as_deref(),
        Some("+1 555-555-5555")
    );

    let m = msg("message", "order");
    let order = m.order.unwrap();
    assert_eq!(order.items.len(), 3);
    assert_eq!(order.items[0].quantity, Some(3.0));

    let m = msg("message", "unsupported_with_type");
    assert_eq!(m.kind, MessageKind::Unsupported);
    assert_eq!(m.errors[0].code, Some(131051));

    // The change-level error is attached to the message it came with.
    let m = msg("message", "interactive_message_with_err");
    assert_eq!(m.kind, MessageKind::Other("interactive".into()));
    assert_eq!(m.errors[0].code, Some(131000));

    assert!(msg("message", "referral").referral.is_some());

    let m = msg("callback_button", "button");
    assert_eq!(m.kind, MessageKind::ButtonReply);
    assert_eq!(m.payload.as_deref(), Some("callback_data"));
    assert_eq!(m.reply_to.as_deref(), Some("wamid.xyzxyz"));

    let m = msg("callback_selection", "description");
    assert_eq!(m.kind, MessageKind::ListReply);
    assert_eq!(m.payload.as_deref(), Some("callback_data"));

    let m = msg("flow_completion", "completion");
    assert_eq!(m.kind, MessageKind::FlowReply);
    assert!(m.payload.as_deref().unwrap().contains("flow_token"));

    let m = msg("call_permission_update", "reject");
    assert_eq!(m.kind, MessageKind::CallPermissionReply);
    assert_eq!(m.payload.as_deref(), Some("reject"));

    let m = msg("system", "phone_number_change");
    assert_eq!(m.kind, MessageKind::System);
    let sys = m.system.unwrap();
    assert_eq!(sys.change_type.as_deref(), Some("user_changed_number"));
    assert_eq!(sys.new_wa_id.as_deref(), Some("972912345678"));

    let m = msg("deleted_message", "revoke");
    assert_eq!(m.kind, MessageKind::Revoke);
    assert_eq!(
        m.original_message_id.as_deref(),
        Some("<ORIGINAL_WHATSAPP_MESSAGE_ID>")
    );

    let m = msg("edited_message", "image");
    assert_eq!(m.kind, MessageKind::Edit);
    assert_eq!(m.text.as_deref(), Some("Updated image caption"));
    assert_eq!(m.media[0].id.as_deref(), Some("1234567890"));
    assert!(m.original_message_id.is_some());

    let m = msg("outgoing_message", "edit");
    assert!(m.is_echo);
    assert_eq!(m.kind, MessageKind::Edit);
    assert_eq!(m.text.as_deref(), Some("Text was edited"));
}

#[test]
fn reactions() {
    let all = load_all();
    let events = sample(&all, "message", "reaction");
    let [InboundEvent::Reaction(r)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(r.target_message_id, "wamid.yzxyzx=");
    assert_eq!(r.emoji.as_deref(), Some("\u{1f62e}"));
    assert!(!r.removed);
    for name in ["unreaction_empty", "unreaction_no_emoji"] {
        let events = sample(&all, "message", name);
        let [InboundEvent::Reaction(r)] = &events[..] else {
            panic!("{events:?}")
        };
        assert!(r.removed);
        assert_eq!(r.emoji, None);
    }
}

#[test]
fn marketing_preferences() {
    let all = load_all();
    let events = sample(&all, "user_marketing_preferences", "signup");
    let [InboundEvent::MarketingPreference(p)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(p.value, "signup");
    assert_eq!(p.category.as_deref(), Some("marketing_messages"));
    assert_eq!(p.customer.address.as_deref(), Some("16505551234"));
    assert_eq!(p.business_id, "106540352242922");
    assert_eq!(p.timestamp.unwrap().unix_timestamp(), 1731705721);
}
