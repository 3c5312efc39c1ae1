//! WhatsApp Cloud API webhook bodies (`object: "whatsapp_business_account"`).
//!
//! Every entry and every change is read; a `messages` change yields one event per message
//! and one per status. Fields and shapes this module does not model become
//! [`InboundEvent::Unknown`] carrying their JSON: a well-formed envelope is never an error.

use serde_json::Value;

use crate::events::{
    array_of, bool_of, f64_of, meta_errors, secs_of, str_of, AccountRestriction, AccountUpdate,
    ConversationInfo, DeliveryStatus, InboundEvent, InboundMessage, Location, MarketingPreference,
    Media, MessageKind, Order, OrderItem, ParseError, Party, PhoneNumberQualityUpdate, Pricing,
    Provider, Reaction, SharedContact, SharedPhone, StatusUpdate, SystemChange, TemplateButton,
    TemplateCategoryUpdate, TemplateComponentsUpdate, TemplateQualityUpdate, TemplateStatusUpdate,
};

/// Parses a WhatsApp webhook body into events, in payload order.
pub fn parse_whatsapp(body: &[u8]) -> Result<Vec<InboundEvent>, ParseError> {
    let entries = crate::events::meta_entries(body, "whatsapp_business_account")?;

    let mut events = Vec::new();
    for entry in &entries {
        let Some(changes) = entry.get("changes").and_then(Value::as_array) else {
            events.push(unknown("entry", entry));
            continue;
        };
        let ctx = EntryCtx {
            account_id: str_of(entry, "id"),
            time: secs_of(entry, "time"),
        };
        for change in changes {
            parse_change(&ctx, change, &mut events);
        }
    }
    Ok(events)
}

struct EntryCtx {
    account_id: Option<String>,
    time: Option<time::OffsetDateTime>,
}

fn unknown(kind: &str, raw: &Value) -> InboundEvent {
    InboundEvent::Unknown {
        kind: kind.to_owned(),
        raw: raw.clone(),
    }
}

fn parse_change(ctx: &EntryCtx, change: &Value, out: &mut Vec<InboundEvent>) {
    let field = change.get("field").and_then(Value::as_str).unwrap_or("");
    let Some(value) = change.get("value").filter(|v| v.is_object()) else {
        out.push(unknown(
            if field.is_empty() { "change" } else { field },
            change,
        ));
        return;
    };
    match field {
        "messages" => parse_messages_value(ctx, value, out, false),
        "smb_message_echoes" => parse_messages_value(ctx, value, out, true),
        "message_template_status_update" => {
            out.push(template_status(ctx, value).unwrap_or_else(|| unknown(field, change)))
        }
        "message_template_quality_update" => {
            out.push(InboundEvent::TemplateQuality(TemplateQualityUpdate {
                account_id: ctx.account_id.clone(),
                time: ctx.time,
                template_id: str_of(value, "message_template_id"),
                template_name: str_of(value, "message_template_name"),
                language: str_of(value, "message_template_language"),
                previous_quality: str_of(value, "previous_quality_score"),
                new_quality: str_of(value, "new_quality_score"),
            }))
        }
        "template_category_update" => {
            out.push(InboundEvent::TemplateCategory(TemplateCategoryUpdate {
                account_id: ctx.account_id.clone(),
                time: ctx.time,
                template_id: str_of(value, "message_template_id"),
                template_name: str_of(value, "message_template_name"),
                language: str_of(value, "message_template_language"),
                previous_category: str_of(value, "previous_category"),
                new_category: str_of(value, "new_category"),
                correct_category: str_of(value, "correct_category"),
            }))
        }
        "message_template_components_update" => {
            out.push(InboundEvent::TemplateComponents(TemplateComponentsUpdate {
                account_id: ctx.account_id.clone(),
                time: ctx.time,
                template_id: str_of(value, "message_template_id"),
                template_name: str_of(value, "message_template_name"),
                language: str_of(value, "message_template_language"),
                title: str_of(value, "message_template_title"),
                body: str_of(value, "message_template_element"),
                footer: str_of(value, "message_template_footer"),
                buttons: array_of(value, "message_template_buttons")
                    .iter()
                    .map(|b| TemplateButton {
                        button_type: str_of(b, "message_template_button_type"),
                        text: str_of(b, "message_template_button_text"),
                        url: str_of(b, "message_template_button_url"),
                        phone_number: str_of(b, "message_template_button_phone_number"),
                    })
                    .collect(),
            }))
        }
        "phone_number_quality_update" => match str_of(value, "event") {
            Some(event) => {
                let max_daily = str_of(value, "max_daily_conversations_per_business");
                out.push(InboundEvent::PhoneNumberQuality(PhoneNumberQualityUpdate {
                    account_id: ctx.account_id.clone(),
                    time: ctx.time,
                    display_phone_number: str_of(value, "display_phone_number"),
                    event,
                    current_limit: str_of(value, "current_limit").or_else(|| max_daily.clone()),
                    old_limit: str_of(value, "old_limit"),
                    max_daily_conversations_per_business: max_daily,
                    raw: value.clone(),
                }))
            }
            None => out.push(unknown(field, change)),
        },
        "account_update" => match str_of(value, "event") {
            Some(event) => out.push(InboundEvent::AccountUpdate(AccountUpdate {
                account_id: ctx.account_id.clone(),
                time: ctx.time,
                event,
                restrictions: array_of(value, "restriction_info")
                    .iter()
                    .map(|r| AccountRestriction {
                        restriction_type: str_of(r, "restriction_type"),
                        expiration: secs_of(r, "expiration"),
                    })
                    .collect(),
                violation_type: value
                    .get("violation_info")
                    .and_then(|v| str_of(v, "violation_type")),
                ban_state: value
                    .get("ban_info")
                    .and_then(|v| str_of(v, "waba_ban_state")),
                raw: value.clone(),
            })),
            None => out.push(unknown(field, change)),
        },
        "user_preferences" => parse_user_preferences(ctx, value, change, out),
        _ => out.push(unknown(
            if field.is_empty() { "change" } else { field },
            change,
        )),
    }
}

fn template_status(ctx: &EntryCtx, value: &Value) -> Option<InboundEvent> {
    let rejection = value.get("rejection_info");
    Some(InboundEvent::TemplateStatus(TemplateStatusUpdate {
        account_id: ctx.account_id.clone(),
        time: ctx.time,
        template_id: str_of(value, "message_template_id"),
        template_name: str_of(value, "message_template_name"),
        language: str_of(value, "message_template_language"),
        status: str_of(value, "event")?,
        reason: str_of(value, "reason"),
        category: str_of(value, "message_template_category"),
        rejection_detail: rejection.and_then(|r| str_of(r, "reason")),
        rejection_recommendation: rejection.and_then(|r| str_of(r, "recommendation")),
    }))
}

fn parse_user_preferences(
    ctx: &EntryCtx,
    value: &Value,
    change: &Value,
    out: &mut Vec<InboundEvent>,
) {
    let prefs = array_of(value, "user_preferences");
    if prefs.is_empty() {
        out.push(unknown("user_preferences", change));
        return;
    }
    let meta = Metadata::of(value);
    for p in prefs {
        let Some(pref_value) = str_of(p, "value") else {
            out.push(unknown("user_preferences", p));
            continue;
        };
        let wa_id = str_of(p, "wa_id");
        let user_id = str_of(p, "user_id");
        let customer = meta.party(wa_id.as_deref(), user_id.as_deref());
        out.push(InboundEvent::MarketingPreference(MarketingPreference {
            business_id: meta.phone_number_id.clone().unwrap_or_default(),
            account_id: ctx.account_id.clone(),
            customer,
            category: str_of(p, "category"),
            value: pref_value,
            detail: str_of(p, "detail"),
            timestamp: secs_of(p, "timestamp"),
            raw: p.clone(),
        }));
    }
}

/// `metadata` and `contacts` of a `messages`-shaped value.
struct Metadata<'a> {
    phone_number_id: Option<String>,
    display: Option<String>,
    contacts: &'a [Value],
}

impl<'a> Metadata<'a> {
    fn of(value: &'a Value) -> Self {
        let md = value.get("metadata");
        Metadata {
            phone_number_id: md.and_then(|m| str_of(m, "phone_number_id")),
            display: md.and_then(|m| str_of(m, "display_phone_number")),
            contacts: array_of(value, "contacts"),
        }
    }

    /// Builds the customer party from an address and/or BSUID, filling in what the matching
    /// `contacts[]` entry adds (name, username, the other identifier).
    fn party(&self, address: Option<&str>, user_id: Option<&str>) -> Party {
        let matches = |c: &&Value| {
            let wa = c.get("wa_id").and_then(Value::as_str);
            let uid = c.get("user_id").and_then(Value::as_str);
            (address.is_some() && wa == address) || (user_id.is_some() && uid == user_id)
        };
        let contact = self.contacts.iter().find(matches).or(
            // A lone contact with no identifier to contradict it is the sender.
            match self.contacts {
                [only] if address.is_none() && user_id.is_none() => Some(only),
                _ => None,
            },
        );
        let profile = contact.and_then(|c| c.get("profile"));
        Party {
            address: address
                .map(str::to_owned)
                .or_else(|| contact.and_then(|c| str_of(c, "wa_id"))),
            user_id: user_id
                .map(str::to_owned)
                .or_else(|| contact.and_then(|c| str_of(c, "user_id"))),
            parent_user_id: contact.and_then(|c| str_of(c, "parent_user_id")),
            name: profile.and_then(|p| str_of(p, "name")),
            username: profile.and_then(|p| str_of(p, "username")),
        }
    }
}

fn parse_messages_value(ctx: &EntryCtx, value: &Value, out: &mut Vec<InboundEvent>, echoes: bool) {
    let meta = Metadata::of(value);
    let value_errors = meta_errors(value);
    let messages = array_of(value, if echoes { "message_echoes" } else { "messages" });
    let statuses = if echoes {
        &[][..]
    } else {
        array_of(value, "statuses")
    };
    let field = if echoes {
        "smb_message_echoes"
    } else {
        "messages"
    };

    if messages.is_empty() && statuses.is_empty() {
        // e.g. a change that only carries `errors`.
        out.push(InboundEvent::Unknown {
            kind: if value_errors.is_empty() {
                field.to_owned()
            } else {
                format!("{field}.errors")
            },
            raw: value.clone(),
        });
        return;
    }
    for m in messages {
        match parse_message(ctx, &meta, m, echoes, &value_errors) {
            Some(ev) => out.push(ev),
            None => out.push(unknown(&format!("{field}.message"), m)),
        }
    }
    for s in statuses {
        match parse_status(ctx, &meta, s) {
            Some(ev) => out.push(ev),
            None => out.push(unknown("messages.status", s)),
        }
    }
}

fn parse_message(
    ctx: &EntryCtx,
    meta: &Metadata<'_>,
    m: &Value,
    echo: bool,
    value_errors: &[crate::events::ProviderError],
) -> Option<InboundEvent> {
    if !m.is_object() {
        return None;
    }
    let id = str_of(m, "id")?;
    let msg_type = str_of(m, "type").unwrap_or_default();
    let customer = if echo {
        meta.party(
            m.get("to").and_then(Value::as_str),
            m.get("to_user_id").and_then(Value::as_str),
        )
        .with_parent(str_of(m, "to_parent_user_id"))
    } else {
        meta.party(
            m.get("from").and_then(Value::as_str),
            m.get("from_user_id").and_then(Value::as_str),
        )
        .with_parent(str_of(m, "from_parent_user_id"))
    };
    let timestamp = secs_of(m, "timestamp");

    if msg_type == "reaction" {
        let r = m.get("reaction");
        let target = r.and_then(|r| str_of(r, "message_id"))?;
        let emoji = r.and_then(|r| str_of(r, "emoji")).filter(|e| !e.is_empty());
        return Some(InboundEvent::Reaction(Reaction {
            provider: Provider::WhatsApp,
            provider_message_id: Some(id),
            business_id: meta.phone_number_id.clone().unwrap_or_default(),
            account_id: ctx.account_id.clone(),
            customer,
            timestamp,
            target_message_id: target,
            removed: emoji.is_none(),
            emoji,
            reaction_name: None,
            standby: false,
        }));
    }

    let mut msg = InboundMessage::new(
        Provider::WhatsApp,
        id,
        meta.phone_number_id.clone().unwrap_or_default(),
        MessageKind::Text,
        m.clone(),
    );
    msg.business_display = meta.display.clone();
    msg.account_id = ctx.account_id.clone();
    msg.customer = customer;
    msg.timestamp = timestamp;
    msg.is_echo = echo;
    msg.referral = m.get("referral").cloned();
    if let Some(c) = m.get("context") {
        msg.reply_to = str_of(c, "id");
        msg.reply_to_from = str_of(c, "from");
        msg.forwarded = bool_of(c, "forwarded").unwrap_or(false);
        msg.frequently_forwarded = bool_of(c, "frequently_forwarded").unwrap_or(false);
    }
    msg.errors = meta_errors(m);
    msg.errors.extend_from_slice(value_errors);

    match msg_type.as_str() {
        "edit" => {
            msg.kind = MessageKind::Edit;
            let edit = m.get("edit");
            msg.original_message_id = edit.and_then(|e| str_of(e, "original_message_id"));
            if let Some(inner) = edit.and_then(|e| e.get("message")) {
                let inner_type = str_of(inner, "type").unwrap_or_default();
                // Only the new content is taken; the kind stays `Edit`.
                let mut scratch = msg.clone();
                fill_content(&mut scratch, &inner_type, inner);
                msg.text = scratch.text;
                msg.media = scratch.media;
                msg.location = scratch.location;
            }
        }
        "revoke" => {
            msg.kind = MessageKind::Revoke;
            msg.original_message_id = m
                .get("revoke")
                .and_then(|r| str_of(r, "original_message_id"));
        }
        other => fill_content(&mut msg, other, m),
    }
    Some(InboundEvent::Message(msg))
}

trait WithParent {
    fn with_parent(self, parent: Option<String>) -> Self;
}

impl WithParent for Party {
    fn with_parent(mut self, parent: Option<String>) -> Self {
        if parent.is_some() {
            self.parent_user_id = parent;
        }
        self
    }
}

/// Sets kind and content from a message object of type `msg_type`.
fn fill_content(msg: &mut InboundMessage, msg_type: &str, m: &Value) {
    let obj = m.get(msg_type).unwrap_or(&Value::Null);
    msg.kind = match msg_type {
        "text" => {
            msg.text = str_of(obj, "body");
            MessageKind::Text
        }
        "image" | "video" | "audio" | "document" | "sticker" => {
            msg.text = str_of(obj, "caption");
            msg.media.push(Media {
                id: str_of(obj, "id"),
                url: str_of(obj, "url").or_else(|| str_of(obj, "link")),
                mime_type: str_of(obj, "mime_type"),
                sha256: str_of(obj, "sha256"),
                filename: str_of(obj, "filename"),
                attachment_type: None,
                voice: bool_of(obj, "voice").unwrap_or(false),
                animated: bool_of(obj, "animated").unwrap_or(false),
            });
            match msg_type {
                "image" => MessageKind::Image,
                "video" => MessageKind::Video,
                "audio" => MessageKind::Audio,
                "document" => MessageKind::Document,
                _ => MessageKind::Sticker,
            }
        }
        "location" => {
            if let (Some(latitude), Some(longitude)) =
                (f64_of(obj, "latitude"), f64_of(obj, "longitude"))
            {
                msg.location = Some(Location {
                    latitude,
                    longitude,
                    name: str_of(obj, "name"),
                    address: str_of(obj, "address"),
                    url: str_of(obj, "url"),
                });
            }
            MessageKind::Location
        }
        "contacts" => {
            msg.shared_contacts = array_of(m, "contacts")
                .iter()
                .map(|c| SharedContact {
                    formatted_name: c.get("name").and_then(|n| str_of(n, "formatted_name")),
                    phones: array_of(c, "phones")
                        .iter()
                        .map(|p| SharedPhone {
                            phone: str_of(p, "phone"),
                            wa_id: str_of(p, "wa_id"),
                            phone_type: str_of(p, "type"),
                        })
                        .collect(),
                })
                .collect();
            MessageKind::Contacts
        }
        "interactive" => {
            let sub = str_of(obj, "type").unwrap_or_default();
            let reply = obj.get(&sub).unwrap_or(&Value::Null);
            match sub.as_str() {
                "button_reply" => {
                    msg.payload = str_of(reply, "id");
                    msg.text = str_of(reply, "title");
                    MessageKind::ButtonReply
                }
                "list_reply" => {
                    msg.payload = str_of(reply, "id");
                    msg.text = str_of(reply, "title");
                    MessageKind::ListReply
                }
                "nfm_reply" => {
                    msg.payload = str_of(reply, "response_json");
                    msg.text = str_of(reply, "body");
                    MessageKind::FlowReply
                }
                "call_permission_reply" => {
                    msg.payload = str_of(reply, "response");
                    MessageKind::CallPermissionReply
                }
                "" => MessageKind::Other("interactive".into()),
                other => MessageKind::Other(format!("interactive.{other}")),
            }
        }
        "button" => {
            msg.payload = str_of(obj, "payload");
            msg.text = str_of(obj, "text");
            MessageKind::QuickReply
        }
        "order" => {
            msg.text = str_of(obj, "text").filter(|t| !t.is_empty());
            msg.order = Some(Order {
                catalog_id: str_of(obj, "catalog_id"),
                text: str_of(obj, "text"),
                items: array_of(obj, "product_items")
                    .iter()
                    .map(|i| OrderItem {
                        product_retailer_id: str_of(i, "product_retailer_id"),
                        quantity: f64_of(i, "quantity"),
                        item_price: f64_of(i, "item_price"),
                        currency: str_of(i, "currency"),
                    })
                    .collect(),
            });
            MessageKind::Order
        }
        "system" => {
            msg.text = str_of(obj, "body");
            msg.system = Some(SystemChange {
                change_type: str_of(obj, "type"),
                new_wa_id: str_of(obj, "wa_id"),
                new_user_id: str_of(obj, "user_id"),
                identity_hash: m.get("identity").and_then(|i| str_of(i, "hash")),
            });
            MessageKind::System
        }
        "unsupported" => MessageKind::Unsupported,
        "request_welcome" => MessageKind::RequestWelcome,
        "" => MessageKind::Other(String::new()),
        other => MessageKind::Other(other.to_owned()),
    };
}

fn parse_status(ctx: &EntryCtx, meta: &Metadata<'_>, s: &Value) -> Option<InboundEvent> {
    if !s.is_object() {
        return None;
    }
    let id = str_of(s, "id")?;
    let raw_status = str_of(s, "status")?;
    let recipient = meta
        .party(
            s.get("recipient_id").and_then(Value::as_str),
            s.get("recipient_user_id").and_then(Value::as_str),
        )
        .with_parent(str_of(s, "recipient_parent_user_id"));
    let group_participant = (s.get("recipient_participant_id").is_some()
        || s.get("recipient_participant_user_id").is_some())
    .then(|| Party {
        address: str_of(s, "recipient_participant_id"),
        user_id: str_of(s, "recipient_participant_user_id"),
        parent_user_id: str_of(s, "recipient_participant_parent_user_id"),
        name: None,
        username: None,
    });
    let pricing = s.get("pricing").filter(|p| p.is_object()).map(|p| Pricing {
        billable: bool_of(p, "billable"),
        pricing_model: str_of(p, "pricing_model"),
        category: str_of(p, "category"),
        pricing_type: str_of(p, "type"),
    });
    let conversation = s
        .get("conversation")
        .filter(|c| c.is_object())
        .map(|c| ConversationInfo {
            id: str_of(c, "id"),
            origin_type: c.get("origin").and_then(|o| str_of(o, "type")),
            expires_at: secs_of(c, "expiration_timestamp"),
        });
    Some(InboundEvent::Status(StatusUpdate {
        provider: Provider::WhatsApp,
        provider_message_ids: vec![id],
        business_id: meta.phone_number_id.clone().unwrap_or_default(),
        account_id: ctx.account_id.clone(),
        status: DeliveryStatus::from_provider(&raw_status),
        raw_status,
        timestamp: secs_of(s, "timestamp"),
        watermark: None,
        recipient,
        recipient_type: str_of(s, "recipient_type"),
        group_participant,
        errors: meta_errors(s),
        pricing,
        conversation,
        biz_opaque_callback_data: str_of(s, "biz_opaque_callback_data"),
        raw: s.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_json_and_other_objects() {
        assert!(matches!(
            parse_whatsapp(b"nope"),
            Err(ParseError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_whatsapp(br#"{"object":"page","entry":[]}"#),
            Err(ParseError::UnexpectedEnvelope(_))
        ));
        assert!(matches!(
            parse_whatsapp(br#"[1,2]"#),
            Err(ParseError::UnexpectedEnvelope(_))
        ));
        assert_eq!(
            parse_whatsapp(br#"{"object":"whatsapp_business_account","entry":[]}"#),
            Ok(vec![])
        );
    }

    #[test]
    fn unknown_field_is_kept() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"security","value":{"x":1}}]}]}"#;
        let events = parse_whatsapp(body).unwrap();
        assert!(matches!(&events[..], [InboundEvent::Unknown { kind, .. }] if kind == "security"));
    }

    #[test]
    fn phone_number_quality_update_gives_tier() {
        let body =
            br#"{"object":"whatsapp_business_account","entry":[{"id":"waba","time":1700000000,
            "changes":[{"field":"phone_number_quality_update","value":{
              "display_phone_number":"15550783881","event":"UPGRADE",
              "old_limit":"TIER_1K","current_limit":"TIER_10K",
              "max_daily_conversations_per_business":10000}}]}]}"#;
        let events = parse_whatsapp(body).unwrap();
        let [InboundEvent::PhoneNumberQuality(q)] = &events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(q.event, "UPGRADE");
        assert_eq!(q.current_limit.as_deref(), Some("TIER_10K"));
        assert_eq!(q.old_limit.as_deref(), Some("TIER_1K"));
        assert_eq!(
            q.max_daily_conversations_per_business.as_deref(),
            Some("10000")
        );
        assert_eq!(q.account_id.as_deref(), Some("waba"));
    }
}
