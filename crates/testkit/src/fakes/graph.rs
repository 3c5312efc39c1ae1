//! A fake Graph API: WhatsApp Cloud sends, template submissions and media, Messenger sends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use switchboard_channels::signature::sign_meta;

use super::{hex32, lock, serve, Core, Recorded, Reply, Shared};

/// The WhatsApp Business Account id the fake's webhooks name in `entry[].id`.
pub const WABA_ID: &str = "102290129340398";
/// The display number the fake's webhooks carry in their metadata.
pub const DISPLAY_PHONE_NUMBER: &str = "15550783881";

/// The endpoints a failure can be scripted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphEndpoint {
    /// `POST /{version}/{phone-number-id or page-id}/messages`, WhatsApp and Messenger alike.
    Messages,
    /// `POST /{version}/{waba-id}/message_templates`.
    MessageTemplates,
    /// `GET /{version}/{media-id}`.
    MediaInfo,
    /// `GET` of the URL the media description gave.
    MediaDownload,
    /// `POST /{version}/{phone-number-id}/media`.
    MediaUpload,
}

impl GraphEndpoint {
    fn key(self) -> &'static str {
        match self {
            GraphEndpoint::Messages => "messages",
            GraphEndpoint::MessageTemplates => "message_templates",
            GraphEndpoint::MediaInfo => "media_info",
            GraphEndpoint::MediaDownload => "media_download",
            GraphEndpoint::MediaUpload => "media_upload",
        }
    }
}

/// A message the fake accepted.
#[derive(Clone, Debug)]
pub struct SentGraphMessage {
    /// The id the fake answered with (`wamid....` or `m_...`).
    pub id: String,
    /// `whatsapp` or `messenger`.
    pub channel: &'static str,
    /// The phone-number id or page id in the path.
    pub account: String,
    /// `to` (WhatsApp) or `recipient.id` (Messenger).
    pub recipient: String,
    /// WhatsApp's `biz_opaque_callback_data`, echoed in the statuses.
    pub callback_data: Option<String>,
    pub request: Recorded,
}

struct MediaFile {
    bytes: Vec<u8>,
    mime_type: String,
}

/// A file uploaded to `/{phone-number-id}/media`, as the multipart form carried it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadedGraphMedia {
    /// The media id the fake answered with.
    pub id: String,
    pub phone_number_id: String,
    /// The form's `messaging_product` and `type` fields.
    pub messaging_product: Option<String>,
    pub type_field: Option<String>,
    /// The file part's name, file name and `Content-Type`.
    pub file_field: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct GraphState {
    base: String,
    sent: Vec<SentGraphMessage>,
    uploads: Vec<UploadedGraphMedia>,
    media: HashMap<String, MediaFile>,
    templates: u64,
}

/// A fake `graph.facebook.com`. Point a sender's `api_base_url` at [`FakeGraph::api_base_url`].
#[derive(Clone)]
pub struct FakeGraph {
    core: Shared,
    state: Arc<std::sync::Mutex<GraphState>>,
    client: reqwest::Client,
}

impl FakeGraph {
    pub async fn start() -> FakeGraph {
        let fake = FakeGraph {
            core: Arc::new(Core::default()),
            state: Arc::default(),
            client: reqwest::Client::new(),
        };
        let addr = serve(Router::new().fallback(handle).with_state(fake.clone())).await;
        lock(&fake.state).base = format!("http://{addr}");
        fake
    }

    /// `http://127.0.0.1:port`.
    pub fn base_url(&self) -> String {
        lock(&self.state).base.clone()
    }

    /// The versioned base a sender's `api_base_url` takes.
    pub fn api_base_url(&self) -> String {
        format!("{}/v23.0", self.base_url())
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.core.requests()
    }

    /// The requests to the messages endpoint.
    pub fn message_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(is_messages_request)
            .collect()
    }

    /// The messages accepted, in order.
    pub fn sent(&self) -> Vec<SentGraphMessage> {
        lock(&self.state).sent.clone()
    }

    /// The next request to `endpoint` gets `reply` instead of the fake's own answer (usually a
    /// failure, with the provider's error body); several queue up, one per request.
    pub fn reply_next(&self, endpoint: GraphEndpoint, reply: Reply) {
        self.core.script(endpoint.key(), reply);
    }

    /// Every answer from now on waits this long (`None`: answer at once).
    pub fn set_delay(&self, delay: Option<Duration>) {
        *lock(&self.core.delay) = delay;
    }

    /// Waits (boundedly) until `count` message sends have arrived, answered or not.
    pub async fn wait_for_messages(&self, count: usize, within: Duration) -> Vec<Recorded> {
        self.core.wait_for(count, is_messages_request, within).await
    }

    /// Waits until no request has arrived for `quiet` (see `Core::settle`).
    pub async fn settle(&self, quiet: Duration) {
        self.core.settle(quiet).await;
    }

    /// The files uploaded, in order.
    pub fn uploads(&self) -> Vec<UploadedGraphMedia> {
        lock(&self.state).uploads.clone()
    }

    /// Serves `bytes` as the media `media_id`.
    pub fn add_media(&self, media_id: &str, bytes: Vec<u8>, mime_type: &str) {
        lock(&self.state).media.insert(
            media_id.to_owned(),
            MediaFile {
                bytes,
                mime_type: mime_type.to_owned(),
            },
        );
    }

    /// A WhatsApp status webhook for a message the fake accepted, echoing its callback data.
    pub fn whatsapp_status(&self, sent: &SentGraphMessage, status: &str, timestamp: i64) -> Value {
        let mut item = json!({
            "id": sent.id,
            "status": status,
            "timestamp": timestamp.to_string(),
            "recipient_id": sent.recipient,
        });
        if let Some(data) = &sent.callback_data {
            item["biz_opaque_callback_data"] = json!(data);
        }
        if status != "failed" {
            item["conversation"] = json!({"id": hex32(), "origin": {"type": "service"}});
            item["pricing"] = json!({"billable": true, "pricing_model": "PMP",
                                     "type": "free_customer_service", "category": "service"});
        }
        whatsapp_envelope(&sent.account, json!({"statuses": [item]}))
    }

    /// A `failed` status with the error Meta reports for it.
    pub fn whatsapp_failed(
        &self,
        sent: &SentGraphMessage,
        code: i64,
        title: &str,
        timestamp: i64,
    ) -> Value {
        let mut payload = self.whatsapp_status(sent, "failed", timestamp);
        payload["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"] = json!([{
            "code": code, "title": title, "message": title,
            "error_data": {"details": title},
            "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
        }]);
        payload
    }

    /// A customer's text message to the number `phone_number_id`.
    pub fn whatsapp_text(
        phone_number_id: &str,
        from: &str,
        wamid: &str,
        text: &str,
        timestamp: i64,
    ) -> Value {
        whatsapp_envelope(
            phone_number_id,
            json!({
                "contacts": [{"profile": {"name": "Customer"}, "wa_id": from}],
                "messages": [{"from": from, "id": wamid, "timestamp": timestamp.to_string(),
                              "type": "text", "text": {"body": text}}],
            }),
        )
    }

    /// Posts a Meta webhook to `url`, signed with `app_secret` over the bytes sent; returns the
    /// HTTP status.
    pub async fn deliver(&self, url: &str, app_secret: &str, payload: &Value) -> u16 {
        meta_webhook(&self.client, url, app_secret, payload).await
    }

    fn accept_message(&self, account: &str, request: &Recorded) -> Response {
        let body = request.json();
        if body["messaging_product"] == "whatsapp" {
            if body["status"] == "read" {
                return (StatusCode::OK, axum::Json(json!({"success": true}))).into_response();
            }
            let (input, contact) = match (body["to"].as_str(), body["recipient"].as_str()) {
                (Some(to), _) => (
                    to.to_owned(),
                    json!({"input": to, "wa_id": to.trim_start_matches('+')}),
                ),
                (None, Some(user)) => (user.to_owned(), json!({"input": user, "user_id": user})),
                _ => {
                    return Reply::new(
                        400,
                        graph_error(100, "(#100) The parameter to is required.", None),
                    )
                    .into_response()
                }
            };
            let id = format!(
                "wamid.HBgL{}",
                base64::engine::general_purpose::STANDARD.encode(format!("{input}{}", hex32()))
            );
            self.remember(SentGraphMessage {
                id: id.clone(),
                channel: "whatsapp",
                account: account.to_owned(),
                recipient: input,
                callback_data: body["biz_opaque_callback_data"].as_str().map(str::to_owned),
                request: request.clone(),
            });
            return (
                StatusCode::OK,
                axum::Json(json!({
                    "messaging_product": "whatsapp",
                    "contacts": [contact],
                    "messages": [{"id": id, "message_status": "accepted"}],
                })),
            )
                .into_response();
        }
        let Some(psid) = body["recipient"]["id"].as_str().map(str::to_owned) else {
            return Reply::new(
                400,
                graph_error(100, "(#100) The parameter recipient is required", None),
            )
            .into_response();
        };
        if body.get("message").is_none() {
            return (StatusCode::OK, axum::Json(json!({"recipient_id": psid}))).into_response();
        }
        let id = format!("m_{}", hex32());
        self.remember(SentGraphMessage {
            id: id.clone(),
            channel: "messenger",
            account: account.to_owned(),
            recipient: psid.clone(),
            callback_data: None,
            request: request.clone(),
        });
        (
            StatusCode::OK,
            axum::Json(json!({"recipient_id": psid, "message_id": id})),
        )
            .into_response()
    }

    fn remember(&self, sent: SentGraphMessage) {
        lock(&self.state).sent.push(sent);
    }

    fn accept_template(&self, request: &Recorded) -> Response {
        let body = request.json();
        let n = {
            let mut state = lock(&self.state);
            state.templates += 1;
            state.templates
        };
        (
            StatusCode::OK,
            axum::Json(json!({
                "id": (1_689_556_908_129_831_u64 + n).to_string(),
                "status": "PENDING",
                "category": body["category"],
            })),
        )
            .into_response()
    }

    /// Reads the upload with axum's multipart parser (multer), not ours, so that what our
    /// encoder writes is checked by another implementation, as Meta's would.
    async fn accept_upload(&self, account: &str, request: &Recorded, body: Bytes) -> Response {
        let mut http = axum::http::Request::builder().method("POST").uri("/");
        if let Some(content_type) = request.header("content-type") {
            http = http.header("content-type", content_type);
        }
        let Ok(http) = http.body(axum::body::Body::from(body)) else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let invalid = |detail: String| {
            Reply::new(400, graph_error(100, &format!("(#100) {detail}"), None)).into_response()
        };
        let mut form = match axum::extract::Multipart::from_request(http, &()).await {
            Ok(form) => form,
            Err(e) => return invalid(format!("Invalid multipart body: {e}")),
        };
        let mut upload = UploadedGraphMedia {
            id: String::new(),
            phone_number_id: account.to_owned(),
            messaging_product: None,
            type_field: None,
            file_field: String::new(),
            filename: None,
            content_type: None,
            bytes: Vec::new(),
            authorization: request.authorization().map(str::to_owned),
        };
        loop {
            let field = match form.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(e) => return invalid(format!("Invalid multipart body: {e}")),
            };
            let name = field.name().unwrap_or_default().to_owned();
            if field.file_name().is_some() {
                upload.file_field = name;
                upload.filename = field.file_name().map(str::to_owned);
                upload.content_type = field.content_type().map(str::to_owned);
                match field.bytes().await {
                    Ok(bytes) => upload.bytes = bytes.to_vec(),
                    Err(e) => return invalid(format!("Invalid multipart body: {e}")),
                }
                continue;
            }
            let value = field.text().await.unwrap_or_default();
            match name.as_str() {
                "messaging_product" => upload.messaging_product = Some(value),
                "type" => upload.type_field = Some(value),
                _ => {}
            }
        }
        if upload.messaging_product.as_deref() != Some("whatsapp") {
            return invalid("The parameter messaging_product is required.".to_owned());
        }
        if upload.file_field != "file" || upload.bytes.is_empty() {
            return invalid("The parameter file is required.".to_owned());
        }
        let mut state = lock(&self.state);
        upload.id = (1_037_543_291_543_636_u64 + state.uploads.len() as u64).to_string();
        state.media.insert(
            upload.id.clone(),
            MediaFile {
                bytes: upload.bytes.clone(),
                mime_type: upload.content_type.clone().unwrap_or_default(),
            },
        );
        state.uploads.push(upload.clone());
        axum::Json(json!({"id": upload.id})).into_response()
    }

    fn media_info(&self, media_id: &str) -> Response {
        let state = lock(&self.state);
        let Some(file) = state.media.get(media_id) else {
            return Reply::new(400, graph_error(100, &format!(
                "Unsupported get request. Object with ID '{media_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
            ), Some(33))).into_response();
        };
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&file.bytes));
        axum::Json(json!({
            "messaging_product": "whatsapp",
            "url": format!("{}/whatsapp_business/attachments/?mid={media_id}&ext=1&hash=ATu", state.base),
            "mime_type": file.mime_type,
            "sha256": sha256,
            "file_size": file.bytes.len(),
            "id": media_id,
        }))
        .into_response()
    }

    fn media_download(&self, media_id: Option<String>) -> Response {
        let state = lock(&self.state);
        match media_id.and_then(|id| state.media.get(&id)) {
            Some(file) => (
                StatusCode::OK,
                [("content-type", file.mime_type.clone())],
                file.bytes.clone(),
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, "URL signature mismatch").into_response(),
        }
    }
}

fn is_messages_request(r: &Recorded) -> bool {
    r.method == "POST" && r.path.ends_with("/messages")
}

async fn handle(
    State(fake): State<FakeGraph>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Recorded::new(&method, &uri, &headers, &body);
    fake.core.record(request.clone());
    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let endpoint = match (&method, segments.as_slice()) {
        (&Method::POST, [_, _, "messages"]) => GraphEndpoint::Messages,
        (&Method::POST, [_, _, "message_templates"]) => GraphEndpoint::MessageTemplates,
        (&Method::POST, [_, _, "media"]) => GraphEndpoint::MediaUpload,
        (&Method::GET, ["whatsapp_business", "attachments", ""]) => GraphEndpoint::MediaDownload,
        (&Method::GET, [_, _]) => GraphEndpoint::MediaInfo,
        _ => {
            return Reply::new(
                400,
                graph_error(
                    2500,
                    &format!("Unknown path components: {}", uri.path()),
                    None,
                ),
            )
            .into_response()
        }
    };
    let scripted = fake.core.scripted(endpoint.key());
    let delay = scripted.as_ref().and_then(|r| r.delay);
    // Meta acts on a request when it arrives; only the answer is late. A client that gives up
    // (or dies) meanwhile has still sent the message.
    let response = match scripted {
        Some(reply) => reply.into_response(),
        None => match endpoint {
            GraphEndpoint::Messages => fake.accept_message(segments[1], &request),
            GraphEndpoint::MessageTemplates => fake.accept_template(&request),
            GraphEndpoint::MediaInfo => fake.media_info(segments[1]),
            GraphEndpoint::MediaDownload => fake.media_download(request.query_param("mid")),
            GraphEndpoint::MediaUpload => fake.accept_upload(segments[1], &request, body).await,
        },
    };
    fake.core.pause(delay).await;
    response
}

/// Graph's error envelope (PROTOCOLS.md A.4, B.4).
pub fn graph_error(code: i64, message: &str, subcode: Option<i64>) -> Value {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": message},
        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    json!({ "error": error })
}

impl Reply {
    /// 130429, throughput reached: 429 (PROTOCOLS.md A.4's sample).
    pub fn whatsapp_rate_limited() -> Reply {
        let mut body = graph_error(130429, "(#130429) Rate limit hit", Some(2494055));
        body["error"]["error_data"]["details"] = json!("Message failed to send because there were too many messages sent from this phone number in a short period of time");
        Reply::new(429, body)
    }

    /// 131026, the number cannot receive WhatsApp messages.
    pub fn whatsapp_undeliverable() -> Reply {
        Reply::new(
            400,
            graph_error(131026, "(#131026) Message undeliverable", None),
        )
    }

    /// 131056, too many messages to one customer.
    pub fn whatsapp_pair_limit() -> Reply {
        Reply::new(
            400,
            graph_error(
                131056,
                "(#131056) (Business Account, Consumer Account) pair rate limit hit",
                None,
            ),
        )
    }

    /// 190, the access token expired: 401.
    pub fn graph_token_expired() -> Reply {
        Reply::new(
            401,
            graph_error(
                190,
                "Error validating access token: Session has expired on Friday, 14-Feb-25 12:00:00 PST.",
                Some(463),
            ),
        )
    }

    /// Messenger 10 / 2018278: outside the window with no tag.
    pub fn messenger_window_closed() -> Reply {
        Reply::new(
            400,
            graph_error(
                10,
                "(#10) This message is sent outside of allowed window.",
                Some(2018278),
            ),
        )
    }
}

/// A WhatsApp webhook envelope around one `messages` change of the number `phone_number_id`.
fn whatsapp_envelope(phone_number_id: &str, value: Value) -> Value {
    let mut value = value;
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({"display_phone_number": DISPLAY_PHONE_NUMBER,
                               "phone_number_id": phone_number_id});
    json!({"object": "whatsapp_business_account",
           "entry": [{"id": WABA_ID, "changes": [{"field": "messages", "value": value}]}]})
}

/// JSON as Meta sends it: every non-ASCII character escaped as `\uXXXX` (UTF-16 units), which
/// is what Meta's signature covers.
pub fn escape_non_ascii(payload: &Value) -> Vec<u8> {
    let text = serde_json::to_string(payload).expect("JSON serialises");
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.into_bytes()
}

/// Posts a Meta (WhatsApp or Messenger) webhook to `url` as Meta does: the escaped body and
/// `X-Hub-Signature-256` over exactly those bytes. Returns the HTTP status.
pub async fn meta_webhook(
    client: &reqwest::Client,
    url: &str,
    app_secret: &str,
    payload: &Value,
) -> u16 {
    let body = escape_non_ascii(payload);
    client
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign_meta(app_secret, &body))
        .body(body)
        .send()
        .await
        .expect("the webhook is delivered")
        .status()
        .as_u16()
}
