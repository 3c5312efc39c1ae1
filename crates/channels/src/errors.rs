//! Provider error responses classified as retryable or permanent (PROTOCOLS.md A.5, B.4, C.6).
//!
//! A permanent error carries one of our stable codes ([`codes`]), which the rest of Switchboard
//! acts on (an expired token alerts the admin, an opt-out updates consent...), with the
//! provider's code and message kept for people to read. A retryable error says how far the
//! back-off reaches ([`RetryScope`]) and, when the provider said so, how long to wait.
//!
//! Known codes follow the tables; a code the tables do not list falls back on the HTTP status:
//! 429 and 5xx are retryable, 401 is an expired token, any other 4xx is permanent.

use std::fmt;

use serde_json::Value;
use time::Duration;

/// Our stable codes for permanent failures.
pub mod codes {
    /// The access token or credentials are expired or wrong: an admin must replace them.
    pub const TOKEN_EXPIRED: &str = "token_expired";
    /// The phone number has no WhatsApp account (or cannot receive this message).
    pub const NOT_ON_WHATSAPP: &str = "not_on_whatsapp";
    /// Outside the customer-service window: only a template (or a tag) may be sent.
    pub const WINDOW_CLOSED: &str = "window_closed";
    /// The recipient opted out (STOP on SMS, stopped marketing on WhatsApp).
    pub const OPTED_OUT: &str = "opted_out";
    /// The template exists but is paused or disabled.
    pub const TEMPLATE_NOT_APPROVED: &str = "template_not_approved";
    /// No approved template of that name in that language.
    pub const TEMPLATE_NOT_FOUND: &str = "template_not_found";
    /// The address is not a valid, reachable one for this channel.
    pub const INVALID_ADDRESS: &str = "invalid_address";
    /// Anything else: see the provider's code and message.
    pub const PROVIDER_ERROR: &str = "provider_error";

    pub const ALL: [&str; 8] = [
        TOKEN_EXPIRED,
        NOT_ON_WHATSAPP,
        WINDOW_CLOSED,
        OPTED_OUT,
        TEMPLATE_NOT_APPROVED,
        TEMPLATE_NOT_FOUND,
        INVALID_ADDRESS,
        PROVIDER_ERROR,
    ];
}

/// Who must wait before the next attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryScope {
    /// Only this message: a transient fault.
    Message,
    /// Every message to this recipient from this sender (WhatsApp's pair limit): messages to
    /// other recipients go on.
    Recipient,
    /// Every message from this sender: a throughput or account rate limit.
    Sender,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    Retryable {
        /// The provider's `Retry-After`, or a known minimum wait; `None` means use the
        /// retry schedule.
        after: Option<Duration>,
        scope: RetryScope,
        provider_code: Option<String>,
        reason: String,
    },
    Permanent {
        /// One of [`codes`].
        code: &'static str,
        provider_code: Option<String>,
        reason: String,
    },
}

impl SendError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, SendError::Retryable { .. })
    }

    /// Our stable code for a permanent error.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            SendError::Permanent { code, .. } => Some(code),
            SendError::Retryable { .. } => None,
        }
    }

    pub fn provider_code(&self) -> Option<&str> {
        match self {
            SendError::Retryable { provider_code, .. }
            | SendError::Permanent { provider_code, .. } => provider_code.as_deref(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            SendError::Retryable { reason, .. } | SendError::Permanent { reason, .. } => reason,
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self
            .provider_code()
            .map(|c| format!(" [{c}]"))
            .unwrap_or_default();
        match self {
            SendError::Retryable { reason, .. } => write!(f, "temporary failure{code}: {reason}"),
            SendError::Permanent {
                code: ours, reason, ..
            } => write!(f, "{ours}{code}: {reason}"),
        }
    }
}

impl std::error::Error for SendError {}

/// A table's verdict on a known code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Retry(RetryScope, Option<Duration>),
    Fail(&'static str),
}

use codes::*;
use RetryScope::{Message, Recipient, Sender};
use Verdict::{Fail, Retry};

const RETRY: Verdict = Retry(Message, None);
const THROTTLED: Verdict = Retry(Sender, None);
const FAIL: Verdict = Fail(PROVIDER_ERROR);

/// A `Retry-After` in seconds. HTTP dates are not read: that needs the clock.
fn parse_retry_after(header: Option<&str>) -> Option<Duration> {
    let secs: u32 = header?.trim().parse().ok()?;
    Some(Duration::seconds(i64::from(secs)))
}

fn build(
    verdict: Verdict,
    provider_code: Option<String>,
    reason: String,
    retry_after: Option<Duration>,
) -> SendError {
    match verdict {
        Retry(scope, after) => SendError::Retryable {
            after: retry_after.or(after),
            scope,
            provider_code,
            reason,
        },
        Fail(code) => SendError::Permanent {
            code,
            provider_code,
            reason,
        },
    }
}

/// The verdict for a code no table knows.
fn by_http_status(http_status: u16, transient: bool) -> Verdict {
    match http_status {
        429 => THROTTLED,
        500..=599 => RETRY,
        401 => Fail(TOKEN_EXPIRED),
        _ if transient => RETRY,
        _ => FAIL,
    }
}

fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "empty response".into();
    }
    let mut excerpt: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        excerpt.push('…');
    }
    excerpt
}

fn http_reason(http_status: u16, body: &[u8]) -> String {
    format!("HTTP {http_status}: {}", body_excerpt(body))
}

// Graph API (WhatsApp and Messenger).

/// The parts of a Graph error response (PROTOCOLS.md A.4).
struct GraphError {
    code: i64,
    subcode: Option<i64>,
    message: String,
    details: String,
    transient: bool,
    trace: Option<String>,
}

impl GraphError {
    fn parse(body: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let e = v.get("error")?;
        let code = as_int(&e["code"])?;
        let details = match &e["error_data"] {
            Value::String(s) => s.clone(),
            d => d["details"].as_str().unwrap_or_default().to_owned(),
        };
        Some(Self {
            code,
            subcode: as_int(&e["error_subcode"]),
            message: e["message"].as_str().unwrap_or_default().to_owned(),
            details,
            transient: e["is_transient"] == Value::Bool(true),
            trace: e["fbtrace_id"].as_str().map(str::to_owned),
        })
    }

    fn reason(&self) -> String {
        let mut reason = graph_reason(&self.message, &self.details);
        if let Some(sub) = self.subcode {
            reason.push_str(&format!(" (subcode {sub})"));
        }
        if let Some(trace) = &self.trace {
            reason.push_str(&format!(" (fbtrace_id {trace})"));
        }
        reason
    }
}

fn graph_reason(message: &str, details: &str) -> String {
    match (message.is_empty(), details.is_empty()) {
        (_, true) => message.to_owned(),
        (true, false) => details.to_owned(),
        (false, false) => format!("{message}: {details}"),
    }
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

/// PROTOCOLS.md A.5. `None` for a code the table does not list.
fn whatsapp_verdict(code: i64, text: &str) -> Option<Verdict> {
    Some(match code {
        0 | 190 => Fail(TOKEN_EXPIRED),
        1 | 2 => RETRY,
        4 | 80007 | 130429 => THROTTLED,
        3 | 10 | 33 | 100 | 200..=299 | 368 => FAIL,
        130472 | 130497 => FAIL,
        131000 | 131016 => RETRY,
        131005 | 131008 | 131021 | 131031 | 131037 | 131042 | 131045 => FAIL,
        131009 => {
            if mentions_phone(text) {
                Fail(INVALID_ADDRESS)
            } else {
                FAIL
            }
        }
        131026 => Fail(NOT_ON_WHATSAPP),
        131047 => Fail(WINDOW_CLOSED),
        // A quality throttle: retrying blocked messages only deepens it.
        131048 => FAIL,
        // Meta's per-user marketing limit: wait at least a day, for this user only.
        131049 => Retry(Recipient, Some(Duration::hours(24))),
        131050 => Fail(OPTED_OUT),
        131051 | 131052 => FAIL,
        131053 => {
            if remote_media_was_transient(text) {
                RETRY
            } else {
                FAIL
            }
        }
        // The pair limit: about one message per 6 s to one user.
        131056 => Retry(Recipient, Some(Duration::seconds(6))),
        131057 => Retry(Sender, None),
        131063 | 131064 => FAIL,
        132000 => FAIL,
        132001 => Fail(TEMPLATE_NOT_FOUND),
        132005 | 132007 | 132012 | 132018 => FAIL,
        132015 | 132016 => Fail(TEMPLATE_NOT_APPROVED),
        132068 => FAIL,
        132069 => RETRY,
        133010 => FAIL,
        133016 => THROTTLED,
        135000 | 137000 => FAIL,
        // Template creation.
        2388019 | 2388040 | 2388047 | 2388072 | 2388073 | 2388293 | 2388299 => FAIL,
        _ => return None,
    })
}

/// Whether an invalid-parameter error is about the recipient's phone number.
fn mentions_phone(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("phone") || t.contains("recipient") || t.contains("'to'") || t.contains("`to`")
}

/// 131053 is transient when the host of a `link` answered 429 or 5xx.
fn remote_media_was_transient(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    let Some(at) = t.find("http code") else {
        return false;
    };
    let code: String = t[at + "http code".len()..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    code == "429" || (code.len() == 3 && code.starts_with('5'))
}

/// Classifies a WhatsApp Cloud API error response.
pub fn classify_whatsapp(http_status: u16, body: &[u8], retry_after: Option<&str>) -> SendError {
    let after = parse_retry_after(retry_after);
    match GraphError::parse(body) {
        Some(e) => {
            let text = format!("{} {}", e.message, e.details);
            let verdict = whatsapp_verdict(e.code, &text)
                .unwrap_or_else(|| by_http_status(http_status, e.transient));
            build(verdict, Some(e.code.to_string()), e.reason(), after)
        }
        None => build(
            by_http_status(http_status, false),
            None,
            http_reason(http_status, body),
            after,
        ),
    }
}

/// Classifies an error that WhatsApp reported asynchronously, in a status or message webhook
/// (`{code, title, message, error_data: {details}}`). Unknown codes are permanent.
pub fn classify_whatsapp_error(code: i64, message: &str, details: &str) -> SendError {
    let text = format!("{message} {details}");
    let verdict = whatsapp_verdict(code, &text).unwrap_or(FAIL);
    build(
        verdict,
        Some(code.to_string()),
        graph_reason(message, details),
        None,
    )
}

/// PROTOCOLS.md B.4.
fn messenger_verdict(code: i64, subcode: Option<i64>) -> Option<Verdict> {
    Some(match (code, subcode) {
        (2, _) => RETRY,
        (4 | 613, _) => THROTTLED,
        (10, Some(2018278)) => Fail(WINDOW_CLOSED),
        (10, _) => FAIL,
        (100, Some(2018001)) => Fail(INVALID_ADDRESS),
        (100, _) => FAIL,
        (190, _) => Fail(TOKEN_EXPIRED),
        (199, _) => FAIL,
        (200 | 551, _) => FAIL,
        _ => return None,
    })
}

/// Classifies a Messenger Send API error response.
pub fn classify_messenger(http_status: u16, body: &[u8], retry_after: Option<&str>) -> SendError {
    let after = parse_retry_after(retry_after);
    match GraphError::parse(body) {
        Some(e) => {
            let verdict = messenger_verdict(e.code, e.subcode)
                .unwrap_or_else(|| by_http_status(http_status, e.transient));
            build(verdict, Some(e.code.to_string()), e.reason(), after)
        }
        None => build(
            by_http_status(http_status, false),
            None,
            http_reason(http_status, body),
            after,
        ),
    }
}

// Twilio.

/// PROTOCOLS.md C.6.
fn twilio_verdict(code: i64) -> Option<Verdict> {
    Some(match code {
        20003 => Fail(TOKEN_EXPIRED),
        20429 => THROTTLED,
        21211 | 21614 | 21635 => Fail(INVALID_ADDRESS),
        21408 | 21606 | 21608 | 21612 | 21617 => FAIL,
        21610 => Fail(OPTED_OUT),
        // The sender's queue is full.
        21611 => THROTTLED,
        30001 => THROTTLED,
        30002 | 30004 | 30007 => FAIL,
        // The handset is off or out of coverage: try this recipient again later.
        30003 => Retry(Recipient, None),
        30005 | 30006 => Fail(INVALID_ADDRESS),
        30008 => RETRY,
        _ => return None,
    })
}

/// Classifies a Twilio error response, legacy (`{code, message, more_info, status}`) or
/// RFC 9457 (`{type, title, status, code, detail}`).
pub fn classify_twilio(http_status: u16, body: &[u8], retry_after: Option<&str>) -> SendError {
    let after = parse_retry_after(retry_after);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let code = parsed.as_ref().and_then(|v| as_int(&v["code"]));
    let Some((v, code)) = parsed.zip(code) else {
        return build(
            by_http_status(http_status, false),
            None,
            http_reason(http_status, body),
            after,
        );
    };
    let text = |k: &str| v[k].as_str().unwrap_or_default();
    let message = [text("message"), text("detail"), text("title")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    let mut reason = message.to_owned();
    if !text("more_info").is_empty() {
        reason.push_str(&format!(" ({})", text("more_info")));
    }
    let verdict = twilio_verdict(code).unwrap_or_else(|| by_http_status(http_status, false));
    build(verdict, Some(code.to_string()), reason, after)
}

/// Classifies the `ErrorCode` of a Twilio status callback. Unknown codes are permanent.
pub fn classify_twilio_error_code(code: i64, message: &str) -> SendError {
    build(
        twilio_verdict(code).unwrap_or(FAIL),
        Some(code.to_string()),
        message.to_owned(),
        None,
    )
}
