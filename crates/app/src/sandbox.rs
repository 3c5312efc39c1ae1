//! The sandbox provider at work: what its simulated customers do is queued as jobs when a
//! message is accepted, and carried out when they fall due through the same paths as the real
//! providers' webhooks (statuses forward only, inbound messages with keywords and opt-in
//! answers). Being durable jobs, a simulation survives a restart and runs once.

use serde_json::{json, Value};
use switchboard_channels::outbound::{OutboundBody, OutboundRequest, Recipient};
use switchboard_channels::sandbox::{self as sim, Action, Persona};
use switchboard_channels::SendError;
use switchboard_core::consent::{current_status, ConsentStatus};
use switchboard_core::message::{DeliveryStatus, Message, StatusEvent};
use switchboard_core::sender::Sender;
use switchboard_core::template::{ButtonType, TemplateStatus};
use switchboard_core::{Channel, MessageId, SenderId, TemplateId};
use switchboard_store::jobs::{Lease, NewJob, Outcome};
use switchboard_store::StoreError;
use time::Duration;

use crate::inbound::{receive, InboundInput};
use crate::{AppError, AppState, Result};

/// The queue the simulated customers' actions wait in.
pub const SANDBOX_QUEUE: &str = "sandbox";

const LEASE: Duration = Duration::seconds(30);
const BATCH: i64 = 100;

/// The persona a contact plays; a contact without one (or with one we do not know) is
/// responsive, so any contact can be tried against the sandbox.
pub fn persona_of(fields: &serde_json::Map<String, Value>) -> Persona {
    fields
        .get(sim::PERSONA_FIELD)
        .and_then(Value::as_str)
        .and_then(|p| p.parse().ok())
        .unwrap_or_default()
}

/// Accepts a message for a sandbox sender like a provider would: its provider id and the jobs
/// that carry out what the customer does next, or the provider's refusal.
pub(crate) async fn accept(
    state: &AppState,
    sender: &Sender,
    message: &Message,
    request: &OutboundRequest,
) -> Result<std::result::Result<(String, Vec<NewJob>), SendError>> {
    let contact = state
        .store()
        .get_contact(message.contact_id)
        .await
        .map_err(AppError::Internal)?;
    let (mut text, mut choices) = what_they_see(message, &request.body);
    // A template shows its text and its quick replies, which a customer may tap (R6.6).
    if let (OutboundBody::Template(_), Some(sent)) = (&request.body, &message.template) {
        let templates = state
            .store()
            .sender_templates(sender.id)
            .await
            .map_err(AppError::Internal)?;
        if let Some(stored) = templates
            .iter()
            .find(|t| t.content.name == sent.name && t.content.locale.as_str() == sent.locale)
        {
            text = message.text.clone().unwrap_or(text);
            choices = stored
                .content
                .buttons
                .iter()
                .filter(|b| b.kind == ButtonType::QuickReply)
                .map(|b| b.text.clone())
                .collect();
        }
    }
    let consent = state
        .store()
        .consent_events(contact.id, Some(sender.channel))
        .await
        .map_err(AppError::Internal)?;
    let delivery = sim::Delivery {
        channel: sender.channel,
        persona: persona_of(&contact.fields),
        text: &text,
        choices: &choices,
        business_initiated: message.business_initiated,
        opt_in_pending: current_status(&consent, sender.channel) == ConsentStatus::Requested,
        seed: seed(message.id),
    };
    let plan = match sim::accept(&delivery) {
        Ok(plan) => plan,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let now = state.now();
    let from = address(sender.channel, &request.to);
    let jobs = plan
        .into_iter()
        .map(|step| {
            let (kind, payload) = match step.action {
                Action::Delivered => (
                    "status",
                    json!({"message_id": message.id, "status": "delivered"}),
                ),
                Action::Read => (
                    "status",
                    json!({"message_id": message.id, "status": "read"}),
                ),
                Action::Reply(text) => (
                    "reply",
                    json!({
                        "sender_id": sender.id,
                        "from": from,
                        "button": choices.contains(&text).then(|| text.clone()),
                        "text": text,
                        // Fixed now, so a reply carried out twice is recorded once.
                        "provider_message_id": format!("sandbox.in.{}", MessageId::new()),
                    }),
                ),
            };
            NewJob {
                id: MessageId::new().to_string(),
                queue: SANDBOX_QUEUE.to_owned(),
                kind: kind.to_owned(),
                payload,
                dedupe_key: None,
                run_at: now + step.after,
                expires_at: None,
            }
        })
        .collect();
    Ok(Ok((format!("sandbox.{}", MessageId::new()), jobs)))
}

/// The customer's address as their provider would name it in a webhook.
fn address(channel: Channel, to: &Recipient) -> String {
    match (channel, to) {
        (Channel::Whatsapp, Recipient::Phone(p)) => p.digits().to_owned(),
        (_, Recipient::Phone(p)) => p.as_str().to_owned(),
        (_, Recipient::WhatsappUser(u)) => u.as_str().to_owned(),
        (_, Recipient::MessengerPsid(p)) => p.as_str().to_owned(),
    }
}

fn what_they_see(message: &Message, body: &OutboundBody) -> (String, Vec<String>) {
    match body {
        OutboundBody::Text { text, .. } => (text.clone(), Vec::new()),
        OutboundBody::Buttons(b) => (
            b.text.clone(),
            b.buttons.iter().map(|b| b.title.clone()).collect(),
        ),
        OutboundBody::QuickReplies { text, replies } => (
            text.clone(),
            replies.iter().map(|r| r.title.clone()).collect(),
        ),
        OutboundBody::List(l) => (l.text.clone(), Vec::new()),
        OutboundBody::Template(t) => (t.name.clone(), Vec::new()),
        _ => (message.text.clone().unwrap_or_default(), Vec::new()),
    }
}

fn seed(id: MessageId) -> u64 {
    let bytes = id.to_string().into_bytes();
    // FNV-1a: a stable spread from the id, the same on every run and platform.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// How long the sandbox takes to review a submitted template.
const REVIEW: Duration = Duration::seconds(5);

/// Queues the sandbox's review of a template just submitted: it approves it after a few
/// seconds, as Meta approves most utility templates within minutes.
pub(crate) async fn review_template(state: &AppState, id: TemplateId) -> Result<()> {
    let job = NewJob {
        id: MessageId::new().to_string(),
        queue: SANDBOX_QUEUE.to_owned(),
        kind: "template_review".to_owned(),
        payload: json!({"template_id": id}),
        dedupe_key: None,
        run_at: state.now() + REVIEW,
        expires_at: None,
    };
    state
        .store()
        .enqueue(&job, state.now())
        .await
        .map_err(AppError::Internal)
}

/// Carries out every simulated action that has fallen due; returns how many.
pub async fn run_once(state: &AppState) -> Result<usize> {
    let owner = "sandbox";
    let store = state.store();
    let leases = store
        .claim_jobs(SANDBOX_QUEUE, owner, state.now(), LEASE, BATCH)
        .await
        .map_err(AppError::Internal)?;
    let count = leases.len();
    for lease in leases {
        let outcome = match carry_out(state, &lease).await {
            Ok(Ok(())) => Outcome::Done,
            Ok(Err(error)) => {
                tracing::warn!(job = %lease.job.id, %error, "sandbox action dropped");
                Outcome::Dead { error }
            }
            Err(error) => {
                tracing::warn!(job = %lease.job.id, ?error, "sandbox action retried");
                Outcome::Retry {
                    at: state.now() + Duration::seconds(5),
                    error: format!("{error:?}"),
                }
            }
        };
        store
            .finish_job(&lease, &outcome, state.now())
            .await
            .map_err(AppError::Internal)?;
    }
    Ok(count)
}

/// Carries out one action. An error is worth retrying; an `Ok(Err(..))` never will be.
async fn carry_out(state: &AppState, lease: &Lease) -> Result<std::result::Result<(), String>> {
    let payload = &lease.job.payload;
    let text = |key: &str| payload[key].as_str().map(str::to_owned);
    match lease.job.kind.as_str() {
        "status" => {
            let Some(id) = text("message_id").and_then(|id| id.parse::<MessageId>().ok()) else {
                return Ok(Err("the action names no message".to_owned()));
            };
            let status = match payload["status"].as_str() {
                Some("read") => DeliveryStatus::Read,
                _ => DeliveryStatus::Delivered,
            };
            let event = StatusEvent {
                status,
                at: state.now(),
                error: None,
            };
            match state.store().record_status(id, &event).await {
                // The message was deleted meanwhile: nothing to show the status on.
                Ok(_) | Err(StoreError::NotFound) => Ok(Ok(())),
                Err(e) => Err(AppError::Internal(e)),
            }
        }
        "reply" => {
            let Some(sender_id) = text("sender_id").and_then(|id| id.parse::<SenderId>().ok())
            else {
                return Ok(Err("the action names no sender".to_owned()));
            };
            let input = InboundInput {
                sender_id,
                from: text("from").unwrap_or_default(),
                name: None,
                text: text("text"),
                media: None,
                provider_message_id: text("provider_message_id"),
                timestamp: None,
                button: text("button"),
            };
            match receive(state, input).await {
                Ok(_) => Ok(Ok(())),
                Err(AppError::Internal(e)) => Err(AppError::Internal(e)),
                // The sender was deleted, or the address no longer fits: the reply cannot be.
                Err(other) => Ok(Err(format!("{other:?}"))),
            }
        }
        "template_review" => {
            let Some(id) = text("template_id").and_then(|id| id.parse::<TemplateId>().ok()) else {
                return Ok(Err("the review names no template".to_owned()));
            };
            match crate::templates::provider_verdict(
                state,
                id,
                TemplateStatus::Approved,
                "approved by the sandbox's review",
            )
            .await
            {
                Ok(_) => Ok(Ok(())),
                Err(AppError::Internal(e)) => Err(AppError::Internal(e)),
                // Deleted meanwhile, or changed under the review: nothing to approve.
                Err(other) => Ok(Err(format!("{other:?}"))),
            }
        }
        other => Ok(Err(format!("unknown sandbox action {other}"))),
    }
}
