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
    exchange(client, base_url, request)
        .await
        .map_err(|no_answer| no_answer.error)
}

/// A request that got no answer, or only part of one.
pub(crate) struct NoAnswer {
    pub error: SendError,
    /// The connection was made, so the provider may have read the request and acted on it
    /// before the answer was lost (a timeout, a connection broken mid-answer).
    pub may_have_arrived: bool,
}

/// Executes `request` against `base_url`, saying of a request left unanswered whether the
/// provider may have acted on it.
pub(crate) async fn exchange(
    client: &reqwest::Client,
    base_url: &str,
    request: &HttpRequest,
) -> Result<Answer, NoAnswer> {
    let url = format!("{}{}", base_url.trim_end_matches('/'), request.path);
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| NoAnswer {
        error: invalid(e.to_string()),
        may_have_arrived: false,
    })?;
    let mut builder = client.request(method, &url);
    if let Some(content_type) = request.body.content_type() {
        builder = builder
            .header("content-type", content_type)
            .body(request.body.encode());
    }
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let lost = |error: reqwest::Error| NoAnswer {
        may_have_arrived: !error.is_connect() && !error.is_builder(),
        error: unreachable(error),
    };
    let response = builder.send().await.map_err(lost)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match response.bytes().await {
        Ok(body) => body.to_vec(),
        // Taken, but its answer (the provider's id) cut off: sending it again would repeat
        // it, so it is refused for good unless the provider's statuses can still name it.
        Err(error) if (200..300).contains(&status) => {
            return Err(NoAnswer {
                error: invalid(format!(
                    "the provider took the request but its answer was cut off: {}",
                    error.without_url()
                )),
                may_have_arrived: true,
            })
        }
        // A refusal whose explanation was cut off: nothing was done, so it may be retried.
        Err(error) => {
            return Err(NoAnswer {
                error: unreachable(error),
                may_have_arrived: false,
            })
        }
    };
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
