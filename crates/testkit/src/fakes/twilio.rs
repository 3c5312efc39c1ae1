//! A fake Twilio Messages API: form-encoded sends with HTTP Basic auth, media, and signed
//! status callbacks and inbound messages.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use switchboard_channels::signature::sign_twilio;
use switchboard_channels::twilio_send::basic_auth;
use time::format_description::well_known::Rfc2822;

use super::{hex32, lock, serve, Core, Recorded, Reply, Shared};

const MESSAGES: &str = "messages";
/// The number a Messaging Service picks from its pool; Twilio reports it as `From`.
pub const POOL_NUMBER: &str = "+14155552345";
const MEDIA: &str = "media";

/// A message the fake accepted.
#[derive(Clone, Debug)]
pub struct SentSms {
    /// `SM` and 32 hex digits.
    pub sid: String,
    pub to: String,
    /// `From` as sent; a Messaging Service send has none and goes from [`POOL_NUMBER`].
    pub from: Option<String>,
    pub messaging_service_sid: Option<String>,
    pub body: Option<String>,
    pub status_callback: Option<String>,
    pub request: Recorded,
}

#[derive(Default)]
struct TwilioState {
    base: String,
    sent: Vec<SentSms>,
    media: HashMap<String, (Vec<u8>, String)>,
}

/// A fake `api.twilio.com` for one account. Point a sender's `api_base_url` at
/// [`FakeTwilio::base_url`].
#[derive(Clone)]
pub struct FakeTwilio {
    pub account_sid: String,
    pub auth_token: String,
    core: Shared,
    state: Arc<std::sync::Mutex<TwilioState>>,
    client: reqwest::Client,
}

impl FakeTwilio {
    /// A fake that accepts requests authenticated as `account_sid:auth_token` and refuses
    /// others with 20003, as Twilio does.
    pub async fn start(account_sid: &str, auth_token: &str) -> FakeTwilio {
        let fake = FakeTwilio {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            core: Arc::new(Core::default()),
            state: Arc::default(),
            client: reqwest::Client::new(),
        };
        let addr = serve(Router::new().fallback(handle).with_state(fake.clone())).await;
        lock(&fake.state).base = format!("http://{addr}");
        fake
    }

    pub fn base_url(&self) -> String {
        lock(&self.state).base.clone()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.core.requests()
    }

    pub fn sent(&self) -> Vec<SentSms> {
        lock(&self.state).sent.clone()
    }

    /// The next send gets `reply` instead of a 201; several queue up.
    pub fn reply_next(&self, reply: Reply) {
        self.core.script(MESSAGES, reply);
    }

    /// The next media download gets `reply` instead of the file.
    pub fn reply_next_media(&self, reply: Reply) {
        self.core.script(MEDIA, reply);
    }

    pub fn set_delay(&self, delay: Option<Duration>) {
        *lock(&self.core.delay) = delay;
    }

    /// Serves `bytes` as a media item of an inbound message; returns its `MediaUrl`.
    pub fn add_media(&self, message_sid: &str, bytes: Vec<u8>, content_type: &str) -> String {
        let media_sid = format!("ME{}", hex32());
        let path = format!(
            "/2010-04-01/Accounts/{}/Messages/{message_sid}/Media/{media_sid}",
            self.account_sid
        );
        let mut state = lock(&self.state);
        state
            .media
            .insert(path.clone(), (bytes, content_type.to_owned()));
        format!("{}{path}", state.base)
    }

    /// The status callback Twilio would send for `sms`.
    pub fn status_callback(
        &self,
        sms: &SentSms,
        status: &str,
        error_code: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut params = vec![
            ("SmsSid", sms.sid.clone()),
            ("SmsStatus", status.to_owned()),
            ("MessageStatus", status.to_owned()),
            ("To", sms.to.clone()),
            ("MessageSid", sms.sid.clone()),
            ("AccountSid", self.account_sid.clone()),
            ("ApiVersion", "2010-04-01".to_owned()),
        ];
        params.push((
            "From",
            sms.from.as_deref().unwrap_or(POOL_NUMBER).to_owned(),
        ));
        if let Some(service) = &sms.messaging_service_sid {
            params.push(("MessagingServiceSid", service.clone()));
        }
        if let Some(code) = error_code {
            params.push(("ErrorCode", code.to_owned()));
        }
        owned(params)
    }

    /// An inbound SMS from `from` to the number `to`, as Twilio posts it.
    pub fn inbound_sms(&self, from: &str, to: &str, body: &str) -> Vec<(String, String)> {
        let sid = format!("SM{}", hex32());
        owned(vec![
            ("ToCountry", "US".to_owned()),
            ("SmsMessageSid", sid.clone()),
            ("NumMedia", "0".to_owned()),
            ("SmsSid", sid.clone()),
            ("SmsStatus", "received".to_owned()),
            ("Body", body.to_owned()),
            ("To", to.to_owned()),
            ("NumSegments", "1".to_owned()),
            ("MessageSid", sid),
            ("AccountSid", self.account_sid.clone()),
            ("From", from.to_owned()),
            ("ApiVersion", "2010-04-01".to_owned()),
        ])
    }

    /// Posts a webhook to `post_to`, signed with this account's token over `signed_url`: the
    /// URL Twilio was given, which differs from where the request lands behind a proxy.
    pub async fn deliver(
        &self,
        post_to: &str,
        signed_url: &str,
        params: &[(String, String)],
    ) -> u16 {
        twilio_webhook(
            &self.client,
            post_to,
            &sign_twilio(&self.auth_token, signed_url, params),
            params,
        )
        .await
    }

    fn accept(&self, request: &Recorded) -> Response {
        let form = request.form();
        let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let Some(to) = get("To") else {
            return twilio_reply(400, 21604, "A 'To' phone number is required.");
        };
        let (from, service) = (get("From"), get("MessagingServiceSid"));
        if from.is_none() && service.is_none() {
            return twilio_reply(400, 21603, "A 'From' phone number is required.");
        }
        let media: Vec<&String> = form
            .iter()
            .filter(|(k, _)| k == "MediaUrl")
            .map(|(_, v)| v)
            .collect();
        let body = get("Body");
        if body.as_deref().is_none_or(str::is_empty) && media.is_empty() {
            return twilio_reply(400, 21602, "Message body is required.");
        }
        let sid = format!("SM{}", hex32());
        let now = time::OffsetDateTime::now_utc()
            .format(&Rfc2822)
            .unwrap_or_default();
        let uri = format!(
            "/2010-04-01/Accounts/{}/Messages/{sid}.json",
            self.account_sid
        );
        let resource = json!({
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": body.clone().unwrap_or_default(),
            "date_created": now,
            "date_sent": null,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": from.as_deref().unwrap_or(POOL_NUMBER),
            "messaging_service_sid": service,
            "num_media": media.len().to_string(),
            "num_segments": if service.is_some() { "0" } else { "1" },
            "price": null,
            "price_unit": "USD",
            "sid": sid,
            "status": if service.is_some() { "accepted" } else { "queued" },
            "subresource_uris": {"media": format!(
                "/2010-04-01/Accounts/{}/Messages/{sid}/Media.json", self.account_sid)},
            "to": to,
            "uri": uri,
        });
        lock(&self.state).sent.push(SentSms {
            sid,
            to,
            from,
            messaging_service_sid: service,
            body,
            status_callback: get("StatusCallback"),
            request: request.clone(),
        });
        (StatusCode::CREATED, axum::Json(resource)).into_response()
    }
}

fn owned(params: Vec<(&str, String)>) -> Vec<(String, String)> {
    params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

fn twilio_reply(status: u16, code: i64, message: &str) -> Response {
    Reply::new(status, twilio_error(status, code, message)).into_response()
}

async fn handle(
    State(fake): State<FakeTwilio>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Recorded::new(&method, &uri, &headers, &body);
    fake.core.record(request.clone());
    if request.authorization() != Some(&basic_auth(&fake.account_sid, &fake.auth_token)) {
        return twilio_reply(401, 20003, "Authenticate");
    }
    let messages = format!("/2010-04-01/Accounts/{}/Messages.json", fake.account_sid);
    let endpoint = if method == Method::POST && uri.path() == messages {
        MESSAGES
    } else if method == Method::GET && lock(&fake.state).media.contains_key(uri.path()) {
        MEDIA
    } else {
        return twilio_reply(
            404,
            20404,
            &format!("The requested resource {} was not found", uri.path()),
        );
    };
    let scripted = fake.core.scripted(endpoint);
    let delay = scripted.as_ref().and_then(|r| r.delay);
    // Twilio queues a message when the request arrives; only the answer is late.
    let response = match scripted {
        Some(reply) => reply.into_response(),
        None if endpoint == MESSAGES => fake.accept(&request),
        None => {
            let state = lock(&fake.state);
            let (bytes, content_type) = &state.media[uri.path()];
            (
                StatusCode::OK,
                [("content-type", content_type.clone())],
                bytes.clone(),
            )
                .into_response()
        }
    };
    fake.core.pause(delay).await;
    response
}

/// Twilio's error body (PROTOCOLS.md C.1).
pub fn twilio_error(status: u16, code: i64, message: &str) -> Value {
    json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    })
}

impl Reply {
    /// Twilio's refusal with `code`, in its legacy error format.
    pub fn twilio(status: u16, code: i64, message: &str) -> Reply {
        Reply::new(status, twilio_error(status, code, message))
    }
}

/// Posts form `params` to `url` with `X-Twilio-Signature: signature`; returns the status.
pub async fn twilio_webhook(
    client: &reqwest::Client,
    url: &str,
    signature: &str,
    params: &[(String, String)],
) -> u16 {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await
        .expect("the webhook is delivered")
        .status()
        .as_u16()
}
