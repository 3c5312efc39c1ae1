//! WhatsApp Cloud API requests (PROTOCOLS.md A.1-A.3, A.8): message sends, mark-as-read,
//! template submission, and the success response.

use std::collections::{BTreeMap, HashSet};

use serde_json::{json, Map, Value};
use switchboard_core::template::{ButtonType, HeaderFormat, TemplateContent};

use crate::outbound::{
    check_max, check_required, check_text, parse_json, str_field, BuildError, ButtonParameter,
    ButtonValue, Buttons, HeaderParameter, HttpRequest, List, Media, MediaKind, MediaSource,
    Multipart, OutboundBody, OutboundRequest, ParseError, Recipient, RequestBody, SendReceipt,
    TemplateMessage, TextParameter,
};

pub const MAX_TEXT_CHARS: usize = 4096;
pub const MAX_INTERACTIVE_BODY_CHARS: usize = 1024;
pub const MAX_INTERACTIVE_HEADER_CHARS: usize = 60;
pub const MAX_INTERACTIVE_FOOTER_CHARS: usize = 60;
pub const MAX_REPLY_BUTTONS: usize = 3;
pub const MAX_BUTTON_ID_CHARS: usize = 256;
pub const MAX_BUTTON_TITLE_CHARS: usize = 20;
pub const MAX_LIST_BUTTON_CHARS: usize = 20;
pub const MAX_LIST_SECTIONS: usize = 10;
/// Rows across all sections together.
pub const MAX_LIST_ROWS: usize = 10;
pub const MAX_SECTION_TITLE_CHARS: usize = 24;
pub const MAX_ROW_ID_CHARS: usize = 200;
pub const MAX_ROW_TITLE_CHARS: usize = 24;
pub const MAX_ROW_DESCRIPTION_CHARS: usize = 72;
pub const MAX_TEMPLATE_HEADER_PARAM_CHARS: usize = 60;
/// A body parameter of a template with a header or buttons.
pub const MAX_TEMPLATE_BODY_PARAM_CHARS: usize = 1024;
/// A body parameter of a body-only template.
pub const MAX_BODY_ONLY_TEMPLATE_PARAM_CHARS: usize = 32768;
pub const MAX_TEMPLATE_BUTTONS: usize = 10;
pub const MAX_COUPON_CODE_CHARS: usize = 15;
pub const MAX_PARAMETER_NAME_CHARS: usize = 20;

fn bearer(access_token: &str) -> Vec<(String, String)> {
    vec![
        ("Authorization".into(), format!("Bearer {access_token}")),
        ("Content-Type".into(), "application/json".into()),
    ]
}

/// `POST /{phone-number-id}/messages` for `request`.
pub fn whatsapp_request(
    phone_number_id: &str,
    access_token: &str,
    request: &OutboundRequest,
) -> Result<HttpRequest, BuildError> {
    Ok(HttpRequest {
        method: "POST",
        path: format!("/{phone_number_id}/messages"),
        headers: bearer(access_token),
        body: RequestBody::Json(whatsapp_message_body(request)?),
    })
}

/// The JSON body of a send (PROTOCOLS.md A.2).
pub fn whatsapp_message_body(request: &OutboundRequest) -> Result<Value, BuildError> {
    if let OutboundBody::MarkRead { message_id, typing } = &request.body {
        check_required("body.message_id", message_id)?;
        let mut body = json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
        });
        if *typing {
            body["typing_indicator"] = json!({"type": "text"});
        }
        return Ok(body);
    }

    let mut m = Map::new();
    m.insert("messaging_product".into(), json!("whatsapp"));
    m.insert("recipient_type".into(), json!("individual"));
    match &request.to {
        Recipient::Phone(phone) => m.insert("to".into(), json!(phone.digits())),
        Recipient::WhatsappUser(user) => m.insert("recipient".into(), json!(user.as_str())),
        other @ Recipient::MessengerPsid(_) => {
            return Err(BuildError::unsupported(
                "to",
                format!("WhatsApp cannot send to {}", other.kind()),
            ))
        }
    };
    let (kind, object) = match &request.body {
        OutboundBody::Text { text, preview_url } => {
            check_text("body.text", text, MAX_TEXT_CHARS)?;
            let mut o = json!({"body": text});
            if *preview_url {
                o["preview_url"] = json!(true);
            }
            ("text", o)
        }
        OutboundBody::Media(media) => (media.kind.as_str(), media_object(media, "body")?),
        OutboundBody::Template(t) => ("template", template_object(t)?),
        OutboundBody::Reaction { message_id, emoji } => {
            check_required("body.message_id", message_id)?;
            (
                "reaction",
                json!({"message_id": message_id, "emoji": emoji}),
            )
        }
        OutboundBody::Buttons(b) => ("interactive", buttons_object(b)?),
        OutboundBody::List(l) => ("interactive", list_object(l)?),
        other @ (OutboundBody::MediaGroup { .. }
        | OutboundBody::QuickReplies { .. }
        | OutboundBody::SenderAction(_)
        | OutboundBody::MarkRead { .. }) => {
            return Err(BuildError::unsupported(
                "body",
                format!("WhatsApp has no `{}` messages", other.kind()),
            ))
        }
    };
    // A reaction already names its message; quoting is for the other kinds.
    if let Some(reply_to) = request.reply_to.as_deref().filter(|s| !s.is_empty()) {
        if kind != "reaction" {
            m.insert("context".into(), json!({"message_id": reply_to}));
        }
    }
    if let Some(data) = request.callback_data.as_deref().filter(|s| !s.is_empty()) {
        if data.len() > crate::outbound::MAX_CALLBACK_DATA_BYTES {
            return Err(BuildError::new(
                "callback_data",
                "too_long",
                "WhatsApp echoes at most 512 bytes of callback data",
            ));
        }
        m.insert("biz_opaque_callback_data".into(), json!(data));
    }
    m.insert("type".into(), json!(kind));
    m.insert(kind.into(), object);
    Ok(Value::Object(m))
}

fn media_object(media: &Media, field: &str) -> Result<Value, BuildError> {
    let mut o = Map::new();
    match media.source(&format!("{field}.link"))? {
        MediaSource::Link(link) => o.insert("link".into(), json!(link)),
        MediaSource::Id(id) => o.insert("id".into(), json!(id)),
    };
    if let Some(caption) = media.caption.as_deref().filter(|c| !c.is_empty()) {
        if !matches!(
            media.kind,
            MediaKind::Image | MediaKind::Video | MediaKind::Document
        ) {
            return Err(BuildError::unsupported(
                format!("{field}.caption"),
                format!("{} messages have no caption", media.kind.as_str()),
            ));
        }
        o.insert("caption".into(), json!(caption));
    }
    if let Some(filename) = media.filename.as_deref().filter(|f| !f.is_empty()) {
        if media.kind != MediaKind::Document {
            return Err(BuildError::unsupported(
                format!("{field}.filename"),
                "only documents have a filename",
            ));
        }
        o.insert("filename".into(), json!(filename));
    }
    if media.voice {
        if media.kind != MediaKind::Audio {
            return Err(BuildError::unsupported(
                format!("{field}.voice"),
                "only audio can be a voice note",
            ));
        }
        o.insert("voice".into(), json!(true));
    }
    Ok(Value::Object(o))
}

/// Header, body and footer of an interactive message.
fn interactive_frame(
    kind: &str,
    header: &Option<String>,
    text: &str,
    footer: &Option<String>,
) -> Result<Map<String, Value>, BuildError> {
    let mut o = Map::new();
    o.insert("type".into(), json!(kind));
    if let Some(header) = header.as_deref().filter(|h| !h.is_empty()) {
        check_max("body.header", header, MAX_INTERACTIVE_HEADER_CHARS)?;
        o.insert("header".into(), json!({"type": "text", "text": header}));
    }
    check_text("body.text", text, MAX_INTERACTIVE_BODY_CHARS)?;
    o.insert("body".into(), json!({"text": text}));
    if let Some(footer) = footer.as_deref().filter(|f| !f.is_empty()) {
        check_max("body.footer", footer, MAX_INTERACTIVE_FOOTER_CHARS)?;
        o.insert("footer".into(), json!({"text": footer}));
    }
    Ok(o)
}

fn unique<'a>(
    seen: &mut HashSet<&'a str>,
    field: String,
    value: &'a str,
) -> Result<(), BuildError> {
    if !seen.insert(value) {
        return Err(BuildError::new(
            field,
            "duplicate",
            format!("`{value}` is used twice"),
        ));
    }
    Ok(())
}

/// Checks reply buttons against WhatsApp's limits (also used for Messenger's, which are
/// looser except in count).
pub(crate) fn check_reply_buttons(b: &Buttons, max_title: usize) -> Result<(), BuildError> {
    if b.buttons.is_empty() {
        return Err(BuildError::new(
            "body.buttons",
            "required",
            "at least one button is required",
        ));
    }
    if b.buttons.len() > MAX_REPLY_BUTTONS {
        return Err(BuildError::new(
            "body.buttons",
            "too_many",
            format!("at most {MAX_REPLY_BUTTONS} buttons"),
        ));
    }
    let (mut ids, mut titles) = (HashSet::new(), HashSet::new());
    for (i, button) in b.buttons.iter().enumerate() {
        let field = |f: &str| format!("body.buttons[{i}].{f}");
        check_text(&field("id"), &button.id, MAX_BUTTON_ID_CHARS)?;
        if button.id.trim() != button.id {
            return Err(BuildError::new(
                field("id"),
                "invalid",
                "must not start or end with spaces",
            ));
        }
        unique(&mut ids, field("id"), &button.id)?;
        check_text(&field("title"), &button.title, max_title)?;
        unique(&mut titles, field("title"), &button.title)?;
    }
    Ok(())
}

fn buttons_object(b: &Buttons) -> Result<Value, BuildError> {
    let mut o = interactive_frame("button", &b.header, &b.text, &b.footer)?;
    check_reply_buttons(b, MAX_BUTTON_TITLE_CHARS)?;
    let buttons: Vec<Value> = b
        .buttons
        .iter()
        .map(|b| json!({"type": "reply", "reply": {"id": b.id, "title": b.title}}))
        .collect();
    o.insert("action".into(), json!({ "buttons": buttons }));
    Ok(Value::Object(o))
}

fn list_object(l: &List) -> Result<Value, BuildError> {
    let mut o = interactive_frame("list", &l.header, &l.text, &l.footer)?;
    check_text("body.button_label", &l.button_label, MAX_LIST_BUTTON_CHARS)?;
    if l.sections.is_empty() {
        return Err(BuildError::new(
            "body.sections",
            "required",
            "at least one section is required",
        ));
    }
    if l.sections.len() > MAX_LIST_SECTIONS {
        return Err(BuildError::new(
            "body.sections",
            "too_many",
            format!("at most {MAX_LIST_SECTIONS} sections"),
        ));
    }
    let total: usize = l.sections.iter().map(|s| s.rows.len()).sum();
    if total > MAX_LIST_ROWS {
        return Err(BuildError::new(
            "body.sections",
            "too_many",
            format!("at most {MAX_LIST_ROWS} rows across all sections"),
        ));
    }
    let mut ids = HashSet::new();
    let mut sections = Vec::new();
    for (s, section) in l.sections.iter().enumerate() {
        let mut so = Map::new();
        let title_field = format!("body.sections[{s}].title");
        match section.title.as_deref().filter(|t| !t.is_empty()) {
            Some(title) => {
                check_max(&title_field, title, MAX_SECTION_TITLE_CHARS)?;
                so.insert("title".into(), json!(title));
            }
            None if l.sections.len() > 1 => {
                return Err(BuildError::new(
                    title_field,
                    "required",
                    "sections need titles when there is more than one",
                ))
            }
            None => {}
        }
        if section.rows.is_empty() {
            return Err(BuildError::new(
                format!("body.sections[{s}].rows"),
                "required",
                "a section needs at least one row",
            ));
        }
        let mut rows = Vec::new();
        for (r, row) in section.rows.iter().enumerate() {
            let field = |f: &str| format!("body.sections[{s}].rows[{r}].{f}");
            check_text(&field("id"), &row.id, MAX_ROW_ID_CHARS)?;
            unique(&mut ids, field("id"), &row.id)?;
            check_text(&field("title"), &row.title, MAX_ROW_TITLE_CHARS)?;
            let mut ro = json!({"id": row.id, "title": row.title});
            if let Some(d) = row.description.as_deref().filter(|d| !d.is_empty()) {
                check_max(&field("description"), d, MAX_ROW_DESCRIPTION_CHARS)?;
                ro["description"] = json!(d);
            }
            rows.push(ro);
        }
        so.insert("rows".into(), Value::Array(rows));
        sections.push(Value::Object(so));
    }
    o.insert(
        "action".into(),
        json!({"button": l.button_label, "sections": sections}),
    );
    Ok(Value::Object(o))
}

fn is_parameter_name(name: &str) -> bool {
    (1..=MAX_PARAMETER_NAME_CHARS).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

fn text_parameter(p: &TextParameter, field: &str, max: usize) -> Result<Value, BuildError> {
    check_text(field, &p.text, max)?;
    let mut v = json!({"type": "text", "text": p.text});
    if let Some(name) = &p.name {
        if !is_parameter_name(name) {
            return Err(BuildError::new(
                field,
                "invalid",
                format!("parameter name `{name}` must be 1-20 lower-case letters or `_`"),
            ));
        }
        v["parameter_name"] = json!(name);
    }
    Ok(v)
}

fn template_object(t: &TemplateMessage) -> Result<Value, BuildError> {
    check_required("body.name", &t.name)?;
    check_required("body.language", &t.language)?;
    let header_text = match &t.header {
        Some(HeaderParameter::Text(p)) => Some(p),
        _ => None,
    };
    let named: Vec<bool> = header_text
        .into_iter()
        .chain(&t.body_parameters)
        .map(|p| p.name.is_some())
        .collect();
    if named.contains(&true) && named.contains(&false) {
        return Err(BuildError::new(
            "body.body_parameters",
            "conflict",
            "parameters must be all named or all positional",
        ));
    }

    let mut components = Vec::new();
    match &t.header {
        Some(HeaderParameter::Text(p)) => {
            let v = text_parameter(p, "body.header", MAX_TEMPLATE_HEADER_PARAM_CHARS)?;
            components.push(json!({"type": "header", "parameters": [v]}));
        }
        Some(HeaderParameter::Media(media)) => {
            if !matches!(
                media.kind,
                MediaKind::Image | MediaKind::Video | MediaKind::Document
            ) {
                return Err(BuildError::unsupported(
                    "body.header",
                    "template headers are images, videos or documents",
                ));
            }
            if media.caption.is_some() {
                return Err(BuildError::unsupported(
                    "body.header.caption",
                    "template headers have no caption",
                ));
            }
            let kind = media.kind.as_str();
            let object = media_object(media, "body.header")?;
            components.push(json!({
                "type": "header",
                "parameters": [{"type": kind, kind: object}],
            }));
        }
        None => {}
    }

    if !t.body_parameters.is_empty() {
        let body_only = t.header.is_none() && t.button_parameters.is_empty();
        let max = if body_only {
            MAX_BODY_ONLY_TEMPLATE_PARAM_CHARS
        } else {
            MAX_TEMPLATE_BODY_PARAM_CHARS
        };
        let parameters = t
            .body_parameters
            .iter()
            .enumerate()
            .map(|(i, p)| text_parameter(p, &format!("body.body_parameters[{i}]"), max))
            .collect::<Result<Vec<_>, _>>()?;
        components.push(json!({"type": "body", "parameters": parameters}));
    }

    let mut indexes = HashSet::new();
    for (i, ButtonParameter { index, value }) in t.button_parameters.iter().enumerate() {
        let field = format!("body.button_parameters[{i}]");
        if *index >= MAX_TEMPLATE_BUTTONS {
            return Err(BuildError::new(
                field,
                "invalid",
                format!("templates have at most {MAX_TEMPLATE_BUTTONS} buttons"),
            ));
        }
        if !indexes.insert(*index) {
            return Err(BuildError::new(
                field,
                "duplicate",
                format!("button {index} is given twice"),
            ));
        }
        let (sub_type, parameter) = match value {
            ButtonValue::QuickReply(payload) => {
                check_required(&field, payload)?;
                (
                    "quick_reply",
                    json!({"type": "payload", "payload": payload}),
                )
            }
            ButtonValue::Url(suffix) => {
                check_required(&field, suffix)?;
                ("url", json!({"type": "text", "text": suffix}))
            }
            ButtonValue::CopyCode(code) => {
                check_text(&field, code, MAX_COUPON_CODE_CHARS)?;
                (
                    "copy_code",
                    json!({"type": "coupon_code", "coupon_code": code}),
                )
            }
        };
        components.push(json!({
            "type": "button",
            "sub_type": sub_type,
            "index": index,
            "parameters": [parameter],
        }));
    }

    let mut o = json!({
        "name": t.name,
        "language": {"code": t.language, "policy": "deterministic"},
    });
    if !components.is_empty() {
        o["components"] = Value::Array(components);
    }
    Ok(o)
}

/// A response to a send: the message id, the recipient's `wa_id` or `user_id`, and
/// `message_status` when present (PROTOCOLS.md A.3).
pub fn parse_whatsapp_success(body: &[u8]) -> Result<SendReceipt, ParseError> {
    let v = parse_json(body)?;
    let message = &v["messages"][0];
    let message_id = str_field(&message["id"])
        .ok_or_else(|| ParseError("response has no `messages[0].id`".into()))?;
    let contact = &v["contacts"][0];
    let user_id = str_field(&contact["user_id"]);
    Ok(SendReceipt {
        message_id,
        recipient_id: str_field(&contact["wa_id"]).or_else(|| user_id.clone()),
        whatsapp_user_id: user_id,
        status: str_field(&message["message_status"]),
    })
}

/// A response to a mark-as-read: `{"success": true}`.
pub fn parse_whatsapp_ack(body: &[u8]) -> Result<(), ParseError> {
    let v = parse_json(body)?;
    if v["success"] == json!(true) {
        Ok(())
    } else {
        Err(ParseError("response does not say `success: true`".into()))
    }
}

// Template submission (PROTOCOLS.md A.8).

/// `POST /{waba-id}/message_templates` submitting `template` for review. Variables get
/// examples from the template (a text header's or URL button's `example`) or placeholders
/// made from their names; see [`whatsapp_template_submission_with_examples`].
pub fn whatsapp_template_submission(
    waba_id: &str,
    access_token: &str,
    template: &TemplateContent,
) -> HttpRequest {
    whatsapp_template_submission_with_examples(waba_id, access_token, template, &BTreeMap::new())
}

/// Like [`whatsapp_template_submission`], with example values by variable name (`"1"`,
/// `"first_name"`), which Meta's reviewers read. The template's own examples (a text header's,
/// a URL button's) come first, since each belongs to one component.
pub fn whatsapp_template_submission_with_examples(
    waba_id: &str,
    access_token: &str,
    template: &TemplateContent,
    examples: &BTreeMap<String, String>,
) -> HttpRequest {
    HttpRequest {
        method: "POST",
        path: format!("/{waba_id}/message_templates"),
        headers: bearer(access_token),
        body: RequestBody::Json(whatsapp_template_body(template, examples)),
    }
}

/// The variables of a text in order of first appearance, without repeats. The template is
/// validated, so anything between `{{` and `}}` that looks like a variable is one.
fn variables(text: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else { break };
        let inner = &after[..close];
        let is_var = !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if is_var {
            if !names.contains(&inner) {
                names.push(inner);
            }
            rest = &after[close + 2..];
        } else {
            rest = after;
        }
    }
    names
}

fn is_positional(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_digit())
}

/// An example for a variable: the component's own (a text header's), else the given one, else
/// one made from the contact field the variable is mapped to, or from its name.
fn example_for(
    name: &str,
    template: &TemplateContent,
    examples: &BTreeMap<String, String>,
    own: Option<&str>,
) -> String {
    if let Some(e) = own.filter(|e| !e.trim().is_empty()) {
        return e.to_owned();
    }
    if let Some(e) = examples.get(name).filter(|e| !e.trim().is_empty()) {
        return e.clone();
    }
    let base = template
        .variable_mapping
        .get(name)
        .and_then(|path| path.rsplit('.').next())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            if is_positional(name) {
                format!("example {name}")
            } else {
                name.to_owned()
            }
        });
    base.replace('_', " ")
}

fn text_examples(
    vars: &[&str],
    named_key: &str,
    template: &TemplateContent,
    examples: &BTreeMap<String, String>,
    own: Option<&str>,
) -> (bool, Value) {
    let named = vars.iter().any(|v| !is_positional(v));
    if named {
        let params: Vec<Value> = vars
            .iter()
            .map(|v| json!({"param_name": v, "example": example_for(v, template, examples, own)}))
            .collect();
        (true, json!({ named_key: params }))
    } else {
        let mut sorted: Vec<&str> = vars.to_vec();
        sorted.sort_by_key(|v| v.parse::<u32>().unwrap_or(u32::MAX));
        let values: Vec<String> = sorted
            .iter()
            .map(|v| example_for(v, template, examples, own))
            .collect();
        (
            false,
            Value::Array(values.into_iter().map(Value::from).collect()),
        )
    }
}

/// The body of a template submission: name, language, category, `parameter_format` for named
/// templates (positional is Meta's default, and pywa's examples leave it out), and components
/// with examples for every variable.
pub fn whatsapp_template_body(
    template: &TemplateContent,
    examples: &BTreeMap<String, String>,
) -> Value {
    let mut any_named = false;
    let mut components = Vec::new();

    if let Some(header) = &template.header {
        let format = match header.format {
            HeaderFormat::Text => "TEXT",
            HeaderFormat::Image => "IMAGE",
            HeaderFormat::Document => "DOCUMENT",
            HeaderFormat::Video => "VIDEO",
        };
        let mut c = json!({"type": "HEADER", "format": format});
        if header.format == HeaderFormat::Text {
            let text = header.text.as_deref().unwrap_or_default();
            c["text"] = json!(text);
            let vars = variables(text);
            if !vars.is_empty() {
                let own = header.example.as_deref();
                let (named, values) =
                    text_examples(&vars, "header_text_named_params", template, examples, own);
                any_named |= named;
                c["example"] = if named {
                    values
                } else {
                    json!({ "header_text": values })
                };
            }
        } else if let Some(handle) = header.example.as_deref() {
            c["example"] = json!({"header_handle": [handle]});
        }
        components.push(c);
    }

    let mut body = json!({"type": "BODY", "text": template.body});
    let vars = variables(&template.body);
    if !vars.is_empty() {
        let (named, values) =
            text_examples(&vars, "body_text_named_params", template, examples, None);
        any_named |= named;
        body["example"] = if named {
            values
        } else {
            json!({ "body_text": [values] })
        };
    }
    components.push(body);

    if let Some(footer) = template.footer.as_deref().filter(|f| !f.is_empty()) {
        components.push(json!({"type": "FOOTER", "text": footer}));
    }

    if !template.buttons.is_empty() {
        let buttons: Vec<Value> = template
            .buttons
            .iter()
            .map(|b| match b.kind {
                ButtonType::QuickReply => json!({"type": "QUICK_REPLY", "text": b.text}),
                ButtonType::Url => {
                    let url = b.url.as_deref().unwrap_or_default();
                    let mut o = json!({"type": "URL", "text": b.text, "url": url});
                    let vars = variables(url);
                    if !vars.is_empty() {
                        let example = match b.example.as_deref().filter(|e| !e.is_empty()) {
                            Some(e) => e.to_owned(),
                            None => vars.iter().fold(url.to_owned(), |u, v| {
                                let value = example_for(v, template, examples, None);
                                let encoded: String =
                                    form_urlencoded::byte_serialize(value.as_bytes()).collect();
                                u.replace(&format!("{{{{{v}}}}}"), &encoded)
                            }),
                        };
                        o["example"] = json!([example]);
                    }
                    o
                }
                ButtonType::PhoneNumber => {
                    // Meta's examples write the number as digits without `+`.
                    let phone = b.phone_number.as_deref().unwrap_or_default();
                    json!({
                        "type": "PHONE_NUMBER",
                        "text": b.text,
                        "phone_number": phone.trim_start_matches('+'),
                    })
                }
                // Meta gives copy-code buttons a fixed label: the body carries only the code.
                ButtonType::CopyCode => json!({
                    "type": "COPY_CODE",
                    "example": b.example.as_deref().unwrap_or_default(),
                }),
            })
            .collect();
        components.push(json!({"type": "BUTTONS", "buttons": buttons}));
    }

    let mut o = json!({
        "name": template.name,
        "language": template.locale.as_str(),
    });
    if let Some(category) = template.category {
        o["category"] = serde_json::to_value(category).unwrap_or(Value::Null);
    }
    if any_named {
        o["parameter_format"] = json!("NAMED");
    }
    o["components"] = Value::Array(components);
    o
}

/// Meta's answer to a template submission: its id for the template and the status it gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSubmitted {
    pub id: String,
    /// `PENDING` as a rule; `APPROVED` or `REJECTED` when Meta decided at once.
    pub status: String,
    pub category: Option<String>,
}

/// Reads `{"id", "status", "category"}`. Without a status the template is under review, which
/// is what a submission means.
pub fn parse_template_submitted(body: &[u8]) -> Result<TemplateSubmitted, ParseError> {
    let v = parse_json(body)?;
    let id = str_field(&v["id"]).ok_or_else(|| ParseError("response has no `id`".into()))?;
    Ok(TemplateSubmitted {
        id,
        status: str_field(&v["status"])
            .unwrap_or_else(|| "PENDING".to_owned())
            .to_ascii_uppercase(),
        category: str_field(&v["category"]),
    })
}

// Media retrieval (PROTOCOLS.md A.1, "Media retrieve").

/// `GET /{media-id}`: where an inbound file can be downloaded, with its type, hash and size.
/// The id goes into the path, so only the characters Meta's ids are made of are accepted.
pub fn whatsapp_media_info_request(
    media_id: &str,
    access_token: &str,
) -> Result<HttpRequest, BuildError> {
    let safe = !media_id.is_empty()
        && media_id.len() <= 256
        && !media_id.starts_with('.')
        && media_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !safe {
        return Err(BuildError::new(
            "media_id",
            "invalid",
            "a media id is letters, digits, `_`, `-` and `.`",
        ));
    }
    Ok(HttpRequest {
        method: "GET",
        path: format!("/{media_id}"),
        headers: vec![("Authorization".into(), format!("Bearer {access_token}"))],
        body: RequestBody::Empty,
    })
}

/// `POST /{phone-number-id}/media`: uploads a file for sending by id (PROTOCOLS.md A.1, "Media
/// upload"). Meta answers `{"id": "<MEDIA_ID>"}`; see [`parse_media_uploaded`].
pub fn whatsapp_media_upload_request(
    phone_number_id: &str,
    access_token: &str,
    file: UploadFile,
) -> HttpRequest {
    HttpRequest {
        method: "POST",
        path: format!("/{phone_number_id}/media"),
        // Only the token: the body names its own multipart type and boundary.
        headers: vec![("Authorization".into(), format!("Bearer {access_token}"))],
        body: RequestBody::Multipart(Multipart {
            fields: vec![
                ("messaging_product".into(), "whatsapp".into()),
                ("type".into(), file.content_type.clone()),
            ],
            file_field: "file".into(),
            filename: file.filename,
            content_type: file.content_type,
            bytes: file.bytes,
        }),
    }
}

/// A file to upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadFile {
    pub filename: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The media id from an upload's answer.
pub fn parse_media_uploaded(body: &[u8]) -> Result<String, ParseError> {
    let v = parse_json(body)?;
    str_field(&v["id"]).ok_or_else(|| ParseError("response has no `id`".into()))
}

/// Meta's description of a stored media file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaInfo {
    /// Where the bytes are; it asks for the same bearer token and expires within minutes.
    pub url: String,
    pub mime_type: Option<String>,
    /// SHA-256 of the file as Meta writes it (hex or base64).
    pub sha256: Option<String>,
    pub file_size: Option<u64>,
}

pub fn parse_media_info(body: &[u8]) -> Result<MediaInfo, ParseError> {
    let v = parse_json(body)?;
    let url = str_field(&v["url"]).ok_or_else(|| ParseError("response has no `url`".into()))?;
    let file_size = match &v["file_size"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    Ok(MediaInfo {
        url,
        mime_type: str_field(&v["mime_type"]),
        sha256: str_field(&v["sha256"]),
        file_size,
    })
}
