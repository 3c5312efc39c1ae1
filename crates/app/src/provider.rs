//! Calling a provider's API: one way to execute the requests `switchboard_channels` builds and
//! to classify what comes back, shared by the dispatcher, template submission and media
//! downloads, so that a given answer means the same thing wherever it arrives.

use switchboard_channels::{HttpRequest, RetryScope, SendError};
use switchboard_core::Channel;

/// A provider's answer to a request, whatever its status.
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A refusal in the provider's terms, as our classified error.
    pub fn error(&self, provider: Channel) -> SendError {
        let retry_after = self.retry_after.as_deref();
        match provider {
            Channel::Whatsapp => switchboard_channels::errors::classify_whatsapp(
                self.status,
                &self.body,
                retry_after,
            ),
            Channel::Messenger => switchboard_channels::errors::classify_messenger(
                self.status,
                &self.body,
                retry_after,
            ),
            Channel::Sms => {
                switchboard_channels::errors::classify_twilio(self.status, &self.body, retry_after)
            }
        }
    }
}

/// A request the builders could not turn into HTTP, or that the provider can never accept.
pub(crate) fn invalid(reason: String) -> SendError {
    SendError::Permanent {
        code: "invalid_request",
        provider_code: None,
        reason,
    }
}

/// Executes `request` against `base_url`. Not reaching the provider at all is retryable for
/// every request of the sender.
pub(crate) async fn execute(
    client: &reqwest::Client,
    base_url: &str,
    request: &HttpRequest,
) -> Result<Answer, SendError> {
    let url = format!("{}{}", base_url.trim_end_matches('/'), request.path);
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|e| invalid(e.to_string()))?;
    let mut builder = client.request(method, &url);
    if let Some(content_type) = request.body.content_type() {
        builder = builder
            .header("content-type", content_type)
            .body(request.body.encode());
    }
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await.map_err(unreachable)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.unwrap_or_default().to_vec();
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// The provider could not be reached, or the connection broke.
pub(crate) fn unreachable(error: reqwest::Error) -> SendError {
    SendError::Retryable {
        after: None,
        scope: RetryScope::Sender,
        provider_code: None,
        // Without the URL: Messenger's carries the page token in its query, and this reason is
        // kept on the job and shown on the message.
        reason: format!("the provider could not be reached: {}", error.without_url()),
    }
}
