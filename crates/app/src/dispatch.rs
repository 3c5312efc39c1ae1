//! The outbound dispatcher: claims send jobs under a lease, hands each message to its
//! provider, and records the outcome. Temporary failures are retried on a schedule with
//! jitter; permanent ones fail the message with the provider's reason and act on what they
//! mean (an expired token marks the sender, 131026 marks the contact as not on WhatsApp, an
//! opt-out reported by the provider is recorded in the ledger).

use serde_json::Value;
use switchboard_channels::outbound::{
    self as out, HeaderParameter, OutboundBody, OutboundRequest, Recipient, TemplateMessage,
    TextParameter,
};
use switchboard_channels::{MessagingType, SendError, TwilioSender};
use switchboard_core::consent::{current_status, ConsentEvent, ConsentSource, ConsentStatus};
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Media, MediaKind, Message, MessageError, StatusEvent,
};
use switchboard_core::retry::RetryPolicy;
use switchboard_core::sender::{ProviderConfig, Sender, TokenStatus};
use switchboard_core::{Channel, ConsentEventId, MessageId};
use switchboard_store::jobs::{Job, Outcome};
use time::Duration;

use crate::sending::OUTBOUND_QUEUE;
use crate::{AppError, AppState, Result};

/// How long a claimed job is this worker's before another may take it over.
const LEASE: Duration = Duration::seconds(60);
const BATCH: i64 = 50;

pub struct Dispatcher {
    client: reqwest::Client,
    owner: String,
    retry: RetryPolicy,
    /// Where Twilio's status callbacks go (`{public_url}/webhooks/twilio`).
    public_url: Option<String>,
}

impl Dispatcher {
    pub fn new(public_url: Option<String>) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            owner: format!("dispatcher-{}", MessageId::new()),
            retry: RetryPolicy::default(),
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
        }
    }

    /// Sends every due message once; returns how many jobs it handled.
    pub async fn run_once(&self, state: &AppState) -> Result<usize> {
        let leases = state
            .store()
            .claim_jobs(OUTBOUND_QUEUE, &self.owner, state.now(), LEASE, BATCH)
            .await
            .map_err(AppError::Internal)?;
        let count = leases.len();
        for lease in leases {
            let outcome = self.deliver(state, &lease.job).await?;
            let finished = state
                .store()
                .finish_job(&lease, &outcome, state.now())
                .await
                .map_err(AppError::Internal)?;
            if !finished {
                tracing::warn!(job = %lease.job.id, "lease lost before the job finished");
            }
        }
        Ok(count)
    }

    async fn deliver(&self, state: &AppState, job: &Job) -> Result<Outcome> {
        let Some(id) = job.payload["message_id"]
            .as_str()
            .and_then(|id| id.parse::<MessageId>().ok())
        else {
            return Ok(Outcome::Dead {
                error: "the job names no message".to_owned(),
            });
        };
        let store = state.store();
        let message = match store.get_message(id).await {
            Ok(m) => m,
            Err(switchboard_store::StoreError::NotFound) => {
                return Ok(Outcome::Dead {
                    error: "the message no longer exists".to_owned(),
                })
            }
            Err(e) => return Err(AppError::Internal(e)),
        };
        // Sent by an earlier attempt whose result was recorded: never send twice.
        if message.provider_message_id.is_some()
            || !matches!(
                message.status,
                DeliveryStatus::Queued | DeliveryStatus::Scheduled
            )
        {
            return Ok(Outcome::Done);
        }
        let sender = store
            .get_sender(message.sender_id)
            .await
            .map_err(AppError::Internal)?;
        if let Some(error) = self.still_allowed(state, &sender, &message).await? {
            let reason = error.reason.clone();
            self.record(state, &message, DeliveryStatus::Failed, Some(error))
                .await?;
            return Ok(Outcome::Dead { error: reason });
        }
        let result = match self.build(state, &sender, &message).await? {
            Ok(request) => {
                // A tagged Messenger message goes as MESSAGE_TAG; anything else is a reply in
                // the window, which policy has already checked.
                let messaging = match message.tag {
                    Some(tag) => MessagingType::MessageTag(tag),
                    None => MessagingType::Response,
                };
                self.send(&sender, &request, messaging).await
            }
            Err(e) => Err(SendError::Permanent {
                code: "invalid_request",
                provider_code: None,
                reason: e.to_string(),
            }),
        };
        match result {
            Ok(provider_id) => {
                store
                    .set_provider_message_id(message.id, &provider_id)
                    .await
                    .map_err(AppError::Internal)?;
                self.record(state, &message, DeliveryStatus::Sent, None)
                    .await?;
                Ok(Outcome::Done)
            }
            Err(SendError::Retryable { after, reason, .. }) => {
                let attempt = u32::try_from(job.attempt).unwrap_or(u32::MAX);
                match after.or_else(|| self.retry.delay_after(attempt, rand::random())) {
                    Some(delay) if attempt < self.retry.max_attempts => Ok(Outcome::Retry {
                        at: state.now() + delay,
                        error: reason,
                    }),
                    _ => {
                        let error = MessageError {
                            code: "retries_exhausted".to_owned(),
                            provider_code: None,
                            reason: reason.clone(),
                        };
                        self.record(state, &message, DeliveryStatus::Failed, Some(error))
                            .await?;
                        Ok(Outcome::Dead { error: reason })
                    }
                }
            }
            Err(SendError::Permanent {
                code,
                provider_code,
                reason,
            }) => {
                self.consequences(state, &sender, &message, code).await?;
                let error = MessageError {
                    code: code.to_owned(),
                    provider_code,
                    reason: reason.clone(),
                };
                self.record(state, &message, DeliveryStatus::Failed, Some(error))
                    .await?;
                Ok(Outcome::Dead { error: reason })
            }
        }
    }

    /// What may have changed since the message was accepted: the customer opted out, the
    /// sender's token expired, or (for a free-form message waiting on retries) the window closed.
    async fn still_allowed(
        &self,
        state: &AppState,
        sender: &Sender,
        message: &Message,
    ) -> Result<Option<MessageError>> {
        let refusal = |code: &str, reason: &str| {
            Some(MessageError {
                code: code.to_owned(),
                provider_code: None,
                reason: reason.to_owned(),
            })
        };
        if matches!(
            sender.health.token_status,
            TokenStatus::Expired | TokenStatus::Invalid
        ) {
            return Ok(refusal(
                "sender_unavailable",
                "the sender's credentials stopped working before the message was sent",
            ));
        }
        let store = state.store();
        let events = store
            .consent_events(message.contact_id, Some(message.channel))
            .await
            .map_err(AppError::Internal)?;
        let from_system = message.actor.as_deref() == Some("system");
        if current_status(&events, message.channel) == ConsentStatus::OptedOut && !from_system {
            return Ok(refusal(
                "opted_out",
                "the contact opted out before the message was sent",
            ));
        }
        if message.channel_template_type == ChannelTemplateType::Session
            && message.channel != Channel::Sms
        {
            let last = store
                .last_inbound_at(message.contact_id, message.sender_id)
                .await
                .map_err(AppError::Internal)?;
            let window = switchboard_core::policy::window_state(message.channel, last, state.now());
            if !window.open {
                return Ok(refusal(
                    "window_closed",
                    "the 24-hour window closed before the message could be sent",
                ));
            }
        }
        Ok(None)
    }

    async fn record(
        &self,
        state: &AppState,
        message: &Message,
        status: DeliveryStatus,
        error: Option<MessageError>,
    ) -> Result<()> {
        state
            .store()
            .record_status(
                message.id,
                &StatusEvent {
                    status,
                    at: state.now(),
                    error,
                },
            )
            .await
            .map(|_| ())
            .map_err(AppError::Internal)
    }

    /// What a permanent failure means beyond this message (R8.5, R4.3a, R4.2).
    async fn consequences(
        &self,
        state: &AppState,
        sender: &Sender,
        message: &Message,
        code: &str,
    ) -> Result<()> {
        let store = state.store();
        match code {
            "token_expired" => {
                let mut sender = sender.clone();
                sender.health.token_status = TokenStatus::Expired;
                sender.updated_at = state.now();
                store
                    .update_sender(&sender)
                    .await
                    .map_err(AppError::Internal)?;
            }
            "not_on_whatsapp" => {
                store
                    .set_whatsapp_unavailable(message.contact_id, Some(state.now()))
                    .await
                    .map_err(AppError::Internal)?;
            }
            "opted_out" => {
                store
                    .append_consent(&ConsentEvent {
                        id: ConsentEventId::new(),
                        contact_id: message.contact_id,
                        channel: message.channel,
                        status: ConsentStatus::OptedOut,
                        source: ConsentSource::Provider,
                        evidence: Some(
                            "the provider refused a send: the recipient opted out".into(),
                        ),
                        actor: "system".to_owned(),
                        at: state.now(),
                    })
                    .await
                    .map_err(AppError::Internal)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The provider-neutral request for a stored message.
    async fn build(
        &self,
        state: &AppState,
        sender: &Sender,
        message: &Message,
    ) -> Result<std::result::Result<OutboundRequest, String>> {
        let contact = state
            .store()
            .get_contact(message.contact_id)
            .await
            .map_err(AppError::Internal)?;
        let to = match message.channel {
            Channel::Whatsapp => match (&contact.phone, &contact.whatsapp_user_id) {
                (Some(phone), _) => Recipient::Phone(phone.clone()),
                (None, Some(user)) => Recipient::WhatsappUser(user.clone()),
                _ => return Ok(Err("the contact has no WhatsApp address".to_owned())),
            },
            Channel::Sms => match &contact.phone {
                Some(phone) => Recipient::Phone(phone.clone()),
                None => return Ok(Err("the contact has no phone".to_owned())),
            },
            Channel::Messenger => match &contact.messenger_psid {
                Some(psid) => Recipient::MessengerPsid(psid.clone()),
                None => return Ok(Err("the contact has no Messenger id".to_owned())),
            },
        };
        let body = if let Some(template) = &message.template {
            let templates = state
                .store()
                .sender_templates(sender.id)
                .await
                .map_err(AppError::Internal)?;
            let Some(stored) = templates.iter().find(|t| {
                t.content.name == template.name && t.content.locale.as_str() == template.locale
            }) else {
                return Ok(Err(format!(
                    "template {} ({}) no longer exists",
                    template.name, template.locale
                )));
            };
            if message.channel != Channel::Whatsapp {
                // Messenger tag templates and SMS templates go as their rendered text.
                let values = template
                    .variables
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                OutboundBody::Text {
                    text: stored.content.render(&values),
                    preview_url: false,
                }
            } else {
                let value = |name: &str| -> TextParameter {
                    let text = template.variables.get(name).map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                    TextParameter {
                        name: (!name.bytes().all(|b| b.is_ascii_digit())).then(|| name.to_owned()),
                        text: text.unwrap_or_default(),
                    }
                };
                let in_text = |text: &str| -> Vec<String> {
                    stored
                        .content
                        .variables()
                        .into_iter()
                        .filter(|v| text.contains(&format!("{{{{{v}}}}}")))
                        .collect()
                };
                let header = stored
                    .content
                    .header
                    .as_ref()
                    .and_then(|h| h.text.as_deref())
                    .and_then(|t| in_text(t).first().map(|v| HeaderParameter::Text(value(v))));
                OutboundBody::Template(TemplateMessage {
                    name: template.name.clone(),
                    language: template.locale.clone(),
                    header,
                    body_parameters: in_text(&stored.content.body)
                        .iter()
                        .map(|v| value(v))
                        .collect(),
                    button_parameters: Vec::new(),
                })
            }
        } else if let Some(media) = &message.media {
            OutboundBody::Media(channel_media(media))
        } else {
            OutboundBody::Text {
                text: message.text.clone().unwrap_or_default(),
                preview_url: false,
            }
        };
        Ok(Ok(OutboundRequest::new(to, body)))
    }

    /// Sends through the sender's provider; the provider's message id on success.
    async fn send(
        &self,
        sender: &Sender,
        request: &OutboundRequest,
        messaging: MessagingType,
    ) -> std::result::Result<String, SendError> {
        let permanent = |reason: String| SendError::Permanent {
            code: "invalid_request",
            provider_code: None,
            reason,
        };
        let (base, http, provider) = match &sender.provider {
            ProviderConfig::Sandbox => {
                // The sandbox accepts everything at once; its simulated customers live elsewhere.
                return Ok(format!("sandbox.{}", MessageId::new()));
            }
            ProviderConfig::WhatsappCloud(c) => (
                c.api_base_url.clone(),
                switchboard_channels::whatsapp_request(
                    &c.phone_number_id,
                    c.access_token.expose(),
                    request,
                )
                .map_err(|e| permanent(format!("{e:?}")))?,
                Channel::Whatsapp,
            ),
            ProviderConfig::Messenger(c) => (
                c.api_base_url.clone(),
                switchboard_channels::messenger_request(
                    &c.page_id,
                    c.page_access_token.expose(),
                    request,
                    messaging,
                )
                .map_err(|e| permanent(format!("{e:?}")))?,
                Channel::Messenger,
            ),
            ProviderConfig::Twilio(c) => {
                let from = match (&c.from, &c.messaging_service_sid) {
                    (_, Some(service)) => TwilioSender::MessagingService(service),
                    (Some(from), None) => TwilioSender::From(from),
                    (None, None) => return Err(permanent("no Twilio sender".to_owned())),
                };
                let callback = self
                    .public_url
                    .as_ref()
                    .map(|u| format!("{u}/webhooks/twilio"));
                (
                    c.api_base_url.clone(),
                    switchboard_channels::twilio_request(
                        &c.account_sid,
                        c.auth_token.expose(),
                        from,
                        callback.as_deref(),
                        request,
                    )
                    .map_err(|e| permanent(format!("{e:?}")))?,
                    Channel::Sms,
                )
            }
        };
        let url = format!("{}{}", base.trim_end_matches('/'), http.path);
        let method = reqwest::Method::from_bytes(http.method.as_bytes())
            .map_err(|e| permanent(e.to_string()))?;
        let mut builder = self
            .client
            .request(method, &url)
            .header("content-type", http.body.content_type())
            .body(http.body.encode());
        for (name, value) in &http.headers {
            builder = builder.header(name, value);
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(SendError::Retryable {
                    after: None,
                    scope: switchboard_channels::RetryScope::Sender,
                    provider_code: None,
                    reason: format!("the provider could not be reached: {e}"),
                })
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.unwrap_or_default();
        if (200..300).contains(&status) {
            let receipt = match provider {
                Channel::Whatsapp => switchboard_channels::parse_whatsapp_success(&body),
                Channel::Messenger => switchboard_channels::parse_messenger_success(&body),
                Channel::Sms => switchboard_channels::parse_twilio_success(&body),
            };
            return receipt
                .map(|r| r.message_id)
                .map_err(|e| permanent(format!("an unreadable answer from the provider: {e:?}")));
        }
        let retry_after = retry_after.as_deref();
        Err(match provider {
            Channel::Whatsapp => {
                switchboard_channels::errors::classify_whatsapp(status, &body, retry_after)
            }
            Channel::Messenger => {
                switchboard_channels::errors::classify_messenger(status, &body, retry_after)
            }
            Channel::Sms => {
                switchboard_channels::errors::classify_twilio(status, &body, retry_after)
            }
        })
    }
}

fn channel_media(media: &Media) -> out::Media {
    let kind = match media.kind {
        MediaKind::Image => out::MediaKind::Image,
        MediaKind::Document => out::MediaKind::Document,
        MediaKind::Audio => out::MediaKind::Audio,
        MediaKind::Video => out::MediaKind::Video,
        MediaKind::Sticker => out::MediaKind::Sticker,
    };
    let base = match (&media.url, &media.provider_media_id) {
        (Some(url), _) => out::Media::link(kind, url.clone()),
        (None, Some(id)) => out::Media::id(kind, id.clone()),
        (None, None) => out::Media::link(kind, String::new()),
    };
    let mut m = match &media.caption {
        Some(caption) => base.with_caption(caption.clone()),
        None => base,
    };
    m.filename = media.filename.clone();
    m
}
