//! Fake provider APIs on loopback: a Graph API ([`FakeGraph`], WhatsApp Cloud and Messenger)
//! and Twilio ([`FakeTwilio`]). Each binds `127.0.0.1:0`, records every request it receives,
//! answers as the real API does (PROTOCOLS.md A.3, B.1, C.1), can be told to fail the next
//! request of an endpoint with the provider's own error body, to answer late, and sends signed
//! webhooks back the way the provider would.

mod graph;
mod twilio;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

pub use graph::{
    escape_non_ascii, graph_error, meta_webhook, FakeGraph, GraphEndpoint, SentGraphMessage,
    UploadedGraphMedia, DISPLAY_PHONE_NUMBER, WABA_ID,
};
pub use twilio::{twilio_error, twilio_webhook, FakeTwilio, SentSms};

/// One request as a fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: Option<String>,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Self {
        Recorded {
            method: method.as_str().to_owned(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: body.to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as form fields, in the order sent.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// An answer a fake is told to give instead of its success.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn new(status: u16, body: Value) -> Self {
        Reply {
            status,
            body,
            retry_after: None,
            delay: None,
        }
    }

    /// With a `Retry-After` header of this many seconds.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds.to_string());
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body)).into_response();
        if let Some(after) = self.retry_after.and_then(|a| a.parse().ok()) {
            response.headers_mut().insert("retry-after", after);
        }
        response
    }
}

/// What every fake shares: the record, the scripted answers per endpoint, the answer delay.
#[derive(Default)]
struct Core {
    requests: Mutex<Vec<Recorded>>,
    scripts: Mutex<HashMap<&'static str, VecDeque<Reply>>>,
    delay: Mutex<Option<Duration>>,
}

impl Core {
    fn record(&self, request: Recorded) {
        lock(&self.requests).push(request);
    }

    fn script(&self, endpoint: &'static str, reply: Reply) {
        lock(&self.scripts)
            .entry(endpoint)
            .or_default()
            .push_back(reply);
    }

    fn scripted(&self, endpoint: &'static str) -> Option<Reply> {
        lock(&self.scripts).get_mut(endpoint)?.pop_front()
    }

    /// Waits as long as the fake was told to before answering.
    async fn pause(&self, reply_delay: Option<Duration>) {
        let delay = reply_delay.or(*lock(&self.delay));
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }

    /// Waits until no request has arrived for `quiet`. A client killed mid-send may have put
    /// requests on the wire that the fake has yet to read: they reached the provider all the
    /// same, so a test counting what a dead process sent waits for them first.
    async fn settle(&self, quiet: Duration) {
        let mut seen = lock(&self.requests).len();
        for _ in 0..100 {
            tokio::time::sleep(quiet).await;
            let now = lock(&self.requests).len();
            if now == seen {
                return;
            }
            seen = now;
        }
        panic!("requests kept arriving for 100 × {quiet:?}");
    }

    /// Waits (boundedly) until `count` requests matching `filter` have arrived.
    async fn wait_for(
        &self,
        count: usize,
        filter: impl Fn(&Recorded) -> bool,
        within: Duration,
    ) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let matching: Vec<Recorded> = self.requests().into_iter().filter(&filter).collect();
            if matching.len() >= count {
                return matching;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "the fake received {} matching requests, not {count}, within {within:?}",
                    matching.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Serves `router` on a port of its own for as long as the test's runtime lives.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A new id's 32 hex digits, unique across fakes and runs.
fn hex32() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

type Shared = Arc<Core>;
