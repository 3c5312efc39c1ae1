//! The outbound dispatcher: claims send jobs under a lease, hands each message to its
//! provider, and records the outcome. Temporary failures are retried on a schedule with
//! jitter; permanent ones fail the message with the provider's reason and act on what they
//! mean (an expired token marks the sender, 131026 marks the contact as not on WhatsApp, an
//! opt-out reported by the provider is recorded in the ledger).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures_util::StreamExt;
use serde_json::Value;
use switchboard_channels::outbound::{
    self as out, HeaderParameter, OutboundBody, OutboundRequest, Recipient, TemplateMessage,
    TextParameter,
};
use switchboard_channels::{MessagingType, RetryScope, SendError, TwilioSender};
use switchboard_core::campaign::CampaignState;
use switchboard_core::consent::{current_status, ConsentEvent, ConsentSource, ConsentStatus};
use switchboard_core::contact::Contact;
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Media, MediaKind, Message, MessageError, StatusEvent,
};
use switchboard_core::retry::RetryPolicy;
use switchboard_core::sender::{HealthStatus, ProviderConfig, Sender, TokenStatus};
use switchboard_core::template::Template;
use switchboard_core::{
    CampaignId, Channel, ConsentEventId, ContactId, ConversationId, MessageId, SenderId,
};
use switchboard_store::jobs::{Lease, NewJob, Outcome};
use switchboard_store::messages::SendCompletion;
use time::{Duration, OffsetDateTime};

use crate::sending::OUTBOUND_QUEUE;
use crate::{AppError, AppState, Result};

/// How the dispatcher works through the queue. The defaults suit production; tests shorten
/// the waits.
#[derive(Clone, Debug)]
pub struct DispatchSettings {
    /// How long a claimed job is this worker's before another may take it over.
    pub lease: Duration,
    /// Jobs claimed at once; their outcomes are recorded in one transaction.
    pub batch: i64,
    /// Sends in flight at once (to different recipients): a whole batch, since each waits
    /// mostly on the provider's answer (a loopback fake's as much as Meta's, under load).
    pub concurrency: usize,
    /// Batches in progress at once in one process: while one waits on its sends, another is
    /// claimed, and a third recorded. Messages to one recipient still go in order across
    /// them.
    pub workers: usize,
    /// After a worker stopped mid-send, or a WhatsApp send went unanswered, how long to wait
    /// for the provider's statuses to say whether the message went before sending it again.
    pub in_flight_grace: Duration,
    /// How long a send waits for the provider's answer. A WhatsApp send left unanswered may
    /// have gone, so it then waits `in_flight_grace` for statuses before it is sent again.
    pub answer_timeout: std::time::Duration,
    /// A message not sent this long after it fell due fails as `expired`.
    pub expiry: Duration,
    pub retry: RetryPolicy,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            lease: Duration::seconds(60),
            batch: 256,
            concurrency: 256,
            workers: 2,
            in_flight_grace: Duration::minutes(2),
            answer_timeout: std::time::Duration::from_secs(30),
            expiry: Duration::hours(24),
            retry: RetryPolicy::default(),
        }
    }
}

/// Who is being held back, and until when, after a provider said to slow down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Hold {
    /// A throughput or account limit: every message of the sender waits.
    Sender(SenderId),
    /// WhatsApp's pair limit (131056): only messages to this one recipient wait.
    Pair(SenderId, ContactId),
}

/// Spaces each sender's sends evenly at its rate, within this process: a leaky bucket with no
/// burst, so a provider counting per second never sees more than the rate.
#[derive(Default)]
struct Pacer {
    next: Mutex<HashMap<SenderId, tokio::time::Instant>>,
}

impl Pacer {
    /// When the next send of `sender` may start; reserves that slot.
    #[cfg(test)]
    fn reserve(&self, sender: SenderId, per_second: u32) -> tokio::time::Instant {
        match self.reserve_within(sender, per_second, std::time::Duration::MAX) {
            Ok(slot) | Err(slot) => slot,
        }
    }

    /// Reserves the next slot of `sender` if it starts within `horizon`; otherwise reserves
    /// nothing and says when it would start. A slow sender's batch must not sleep past its
    /// lease, when another node would take the job over and send it too.
    fn reserve_within(
        &self,
        sender: SenderId,
        per_second: u32,
        horizon: std::time::Duration,
    ) -> std::result::Result<tokio::time::Instant, tokio::time::Instant> {
        let interval = std::time::Duration::from_secs_f64(1.0 / f64::from(per_second.max(1)));
        let now = tokio::time::Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let slot = next
            .get(&sender)
            .copied()
            .filter(|t| *t > now)
            .unwrap_or(now);
        if slot.saturating_duration_since(now) > horizon {
            return Err(slot);
        }
        next.insert(sender, slot + interval);
        Ok(slot)
    }
}

pub struct Dispatcher {
    client: reqwest::Client,
    owner: String,
    settings: DispatchSettings,
    /// Where Twilio's status callbacks go (`{public_url}/webhooks/twilio`).
    public_url: Option<String>,
    pacer: Pacer,
    holds: Mutex<HashMap<Hold, OffsetDateTime>>,
    lanes: std::sync::Arc<Lanes>,
    /// Held by a batch that may reach new customers of a sender with a messaging limit, from
    /// before it counts them until its sends are recorded.
    reach: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Held from a claim until its lanes are in line, so that lanes line up in claim order.
    claiming: tokio::sync::Mutex<()>,
}

/// Whom a lane sends to: its messages go one after another.
type LaneKey = (SenderId, ContactId);

/// How a lane ended: until when its recipient's next messages must wait, if they must.
type LaneEnd = Option<OffsetDateTime>;

/// Keeps the lanes of batches in progress at once in order: a lane to a recipient that an
/// earlier batch is still sending to waits for that batch's lane to finish, and waits on
/// after it when it ended waiting (a retry, a limit), rather than overtake it.
#[derive(Default)]
struct Lanes {
    /// Per recipient, the last lane in line: its ticket, and where it says how it ended.
    last: Mutex<HashMap<LaneKey, (u64, tokio::sync::oneshot::Receiver<LaneEnd>)>>,
    tickets: std::sync::atomic::AtomicU64,
}

/// A lane's place in line.
struct InLine {
    lanes: std::sync::Arc<Lanes>,
    key: LaneKey,
    ticket: u64,
    /// The lane before it, if one was still in progress.
    before: Option<tokio::sync::oneshot::Receiver<LaneEnd>>,
    /// Tells the lane after it how this one ended; dropped unsent, it says "not waiting".
    after: Option<tokio::sync::oneshot::Sender<LaneEnd>>,
}

impl Lanes {
    fn join(self: &std::sync::Arc<Self>, key: LaneKey) -> InLine {
        let ticket = self
            .tickets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let before = self
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (ticket, rx))
            .map(|(_, rx)| rx);
        InLine {
            lanes: self.clone(),
            key,
            ticket,
            before,
            after: Some(tx),
        }
    }
}

impl InLine {
    /// Waits for the lane before this one; returns until when it left its recipient waiting.
    async fn turn(&mut self) -> LaneEnd {
        match self.before.take() {
            Some(before) => before.await.ok().flatten(),
            None => None,
        }
    }

    fn finish(mut self, waiting: LaneEnd) {
        if let Some(after) = self.after.take() {
            let _ = after.send(waiting);
        }
    }
}

impl Drop for InLine {
    fn drop(&mut self) {
        let mut last = self.lanes.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.get(&self.key).is_some_and(|(t, _)| *t == self.ticket) {
            last.remove(&self.key);
        }
    }
}

/// What one attempt at a job came to.
struct Attempt {
    outcome: Outcome,
    provider_message_id: Option<String>,
    status: Option<StatusEvent>,
    /// Jobs recorded with the outcome: what the sandbox's simulated customer does next.
    follow_ups: Vec<NewJob>,
    /// The provider id and status were recorded the moment the provider answered.
    recorded: bool,
    /// Where statuses the provider reported before that moved the message on.
    reported: Option<DeliveryStatus>,
}

impl Attempt {
    fn just(outcome: Outcome) -> Self {
        Attempt {
            outcome,
            provider_message_id: None,
            status: None,
            follow_ups: Vec::new(),
            recorded: false,
            reported: None,
        }
    }
}

/// A job's completion, with where statuses that beat the recording of its send moved its
/// message.
type Finished = (SendCompletion, Option<DeliveryStatus>);

/// What a batch's sends are decided and built from, read once for the whole batch: a read per
/// message of each would cost more than the send itself.
struct Facts {
    senders: HashMap<SenderId, Sender>,
    contacts: HashMap<ContactId, Contact>,
    consent: HashMap<(ContactId, Channel), ConsentStatus>,
    /// Each sender's templates, for the messages that send one.
    templates: HashMap<SenderId, Vec<Template>>,
    /// The state of each campaign whose messages the batch holds, as the batch began.
    campaigns: HashMap<CampaignId, CampaignState>,
    /// For each WhatsApp sender with a messaging-limit tier that starts conversations in this
    /// batch: the customers it has reached in 24 hours, counted once for the batch.
    reach: HashMap<SenderId, Mutex<Reach>>,
    /// When each customer of a free-form message last wrote to its sender (absent: never),
    /// for the window's check at send time.
    last_inbound: HashMap<(ContactId, SenderId), OffsetDateTime>,
}

/// A sender's reach as a batch goes: counted when the batch began, then kept by the batch
/// itself as its messages reach new customers. Counting once a batch rather than once a
/// message matters at large tiers, where a count reads a whole day of messages.
struct Reach {
    count: i64,
    /// The customers of this batch already reached, by earlier messages or by this batch.
    reached: HashSet<ContactId>,
}

impl Facts {
    async fn load(state: &AppState, messages: impl Iterator<Item = &Message>) -> Result<Self> {
        let store = state.store();
        let mut facts = Facts {
            senders: HashMap::new(),
            contacts: HashMap::new(),
            consent: HashMap::new(),
            templates: HashMap::new(),
            campaigns: HashMap::new(),
            reach: HashMap::new(),
            last_inbound: HashMap::new(),
        };
        let mut by_channel: HashMap<Channel, Vec<ContactId>> = HashMap::new();
        let mut starting: HashMap<SenderId, Vec<ContactId>> = HashMap::new();
        let mut in_window: HashMap<SenderId, Vec<ContactId>> = HashMap::new();
        for message in messages {
            if needs_window(message) {
                in_window
                    .entry(message.sender_id)
                    .or_default()
                    .push(message.contact_id);
            }
            if message.business_initiated && message.channel == Channel::Whatsapp {
                starting
                    .entry(message.sender_id)
                    .or_default()
                    .push(message.contact_id);
            }
            if !facts.senders.contains_key(&message.sender_id) {
                let sender = store
                    .get_sender(message.sender_id)
                    .await
                    .map_err(AppError::Internal)?;
                facts.senders.insert(sender.id, sender);
            }
            if message.template.is_some() && !facts.templates.contains_key(&message.sender_id) {
                let templates = store
                    .sender_templates(message.sender_id)
                    .await
                    .map_err(AppError::Internal)?;
                facts.templates.insert(message.sender_id, templates);
            }
            let contacts = by_channel.entry(message.channel).or_default();
            if !contacts.contains(&message.contact_id) {
                contacts.push(message.contact_id);
            }
        }
        let since = state.now() - switchboard_core::policy::SERVICE_WINDOW;
        for (sender, mut contacts) in starting {
            let limited = facts
                .senders
                .get(&sender)
                .is_some_and(|s| s.health.messaging_limit_tier.is_some());
            if !limited {
                continue;
            }
            contacts.sort_unstable();
            contacts.dedup();
            let (count, _) = store
                .business_initiated_sent_reach(sender, None, since)
                .await
                .map_err(AppError::Internal)?;
            let reached = store
                .business_initiated_sent_reached_among(sender, &contacts, since)
                .await
                .map_err(AppError::Internal)?
                .into_iter()
                .collect();
            facts
                .reach
                .insert(sender, Mutex::new(Reach { count, reached }));
        }
        for (sender, mut contacts) in in_window {
            contacts.sort_unstable();
            contacts.dedup();
            for (contact, at) in store
                .last_inbound_among(sender, &contacts)
                .await
                .map_err(AppError::Internal)?
            {
                facts.last_inbound.insert((contact, sender), at);
            }
        }
        for (channel, contacts) in by_channel {
            let mut ledgers: HashMap<ContactId, Vec<ConsentEvent>> = HashMap::new();
            for event in store
                .consent_events_of(&contacts, channel)
                .await
                .map_err(AppError::Internal)?
            {
                ledgers.entry(event.contact_id).or_default().push(event);
            }
            for (contact, events) in ledgers {
                facts
                    .consent
                    .insert((contact, channel), current_status(&events, channel));
            }
            for contact in store
                .get_contacts(&contacts)
                .await
                .map_err(AppError::Internal)?
            {
                facts.contacts.insert(contact.id, contact);
            }
        }
        Ok(facts)
    }
}

/// Whether a message may go only while its customer-service window is open: free-form
/// messages, except by SMS, which has none.
fn needs_window(message: &Message) -> bool {
    message.channel_template_type == ChannelTemplateType::Session && message.channel != Channel::Sms
}

/// A claimed job with what it needs to run.
struct Work {
    lease: Lease,
    message: Option<Message>,
}

impl Dispatcher {
    pub fn new(public_url: Option<String>) -> Self {
        Self::with_settings(public_url, DispatchSettings::default())
    }

    pub fn with_settings(public_url: Option<String>, settings: DispatchSettings) -> Self {
        Self {
            client: reqwest::Client::builder()
                .timeout(settings.answer_timeout)
                .pool_max_idle_per_host(settings.concurrency * settings.workers.max(1))
                .build()
                .unwrap_or_default(),
            owner: format!("dispatcher-{}", MessageId::new()),
            settings,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            pacer: Pacer::default(),
            holds: Mutex::new(HashMap::new()),
            lanes: Default::default(),
            reach: Default::default(),
            claiming: tokio::sync::Mutex::new(()),
        }
    }

    pub fn settings(&self) -> &DispatchSettings {
        &self.settings
    }

    /// Sends every due message once; returns how many jobs it handled.
    ///
    /// Messages to one recipient go one after another, in the order they were queued;
    /// different recipients are sent to concurrently. The outcomes of the whole batch are
    /// recorded in one transaction.
    pub async fn run_once(&self, state: &AppState) -> Result<usize> {
        let store = state.store();
        let began = std::time::Instant::now();
        let claiming = self.claiming.lock().await;
        let leases = store
            .claim_jobs(
                OUTBOUND_QUEUE,
                &self.owner,
                state.now(),
                self.settings.lease,
                self.settings.batch,
            )
            .await
            .map_err(AppError::Internal)?;
        let count = leases.len();
        if count == 0 {
            return Ok(0);
        }
        let ids: Vec<MessageId> = leases.iter().filter_map(message_id_of).collect();
        let mut messages: HashMap<MessageId, Message> = store
            .get_messages(&ids)
            .await
            .map_err(AppError::Internal)?
            .into_iter()
            .map(|m| (m.id, m))
            .collect();
        // One lane per (sender, recipient), in claim order (the order jobs fell due), each in
        // line behind the same recipient's lane in any batch claimed before.
        let mut lanes: Vec<(Vec<Work>, Option<InLine>)> = Vec::new();
        let mut lane_of: HashMap<LaneKey, usize> = HashMap::new();
        for lease in &leases {
            let Some(m) = message_id_of(lease).and_then(|id| messages.get(&id)) else {
                continue;
            };
            let key = (m.sender_id, m.contact_id);
            if let std::collections::hash_map::Entry::Vacant(entry) = lane_of.entry(key) {
                entry.insert(lanes.len());
                lanes.push((Vec::new(), Some(self.lanes.join(key))));
            }
        }
        // The messaging limit counts the customers reached so far: a batch that may reach new
        // ones counts after the sends of the batch before it are recorded, not beside them.
        let reach = match self.counts_reach(state, messages.values()).await {
            true => Some(self.reach.clone().lock_owned().await),
            false => None,
        };
        drop(claiming);
        if count as i64 >= self.settings.batch {
            // There is likely more: another worker may claim it while this batch sends.
            state.wake_dispatcher();
        }
        let claimed = began.elapsed();
        // Who hears about each outcome once it is recorded.
        let origins: HashMap<MessageId, (SenderId, Option<ConversationId>)> = messages
            .values()
            .map(|m| (m.id, (m.sender_id, m.conversation_id)))
            .collect();
        let mut facts = Facts::load(state, messages.values()).await?;
        for campaign in leases.iter().filter_map(campaign_of) {
            if let std::collections::hash_map::Entry::Vacant(entry) =
                facts.campaigns.entry(campaign)
            {
                match store.get_campaign(campaign).await {
                    Ok(c) => {
                        entry.insert(c.state);
                    }
                    // A campaign deleted meanwhile: its messages go as they would have.
                    Err(switchboard_store::StoreError::NotFound) => {}
                    Err(e) => return Err(AppError::Internal(e)),
                }
            }
        }
        for lease in leases {
            let message = message_id_of(&lease).and_then(|id| messages.remove(&id));
            let lane = message
                .as_ref()
                .and_then(|m| lane_of.get(&(m.sender_id, m.contact_id)).copied());
            let work = Work { lease, message };
            match lane {
                Some(lane) => lanes[lane].0.push(work),
                None => lanes.push((vec![work], None)),
            }
        }
        let facts = &facts;
        let loaded = began.elapsed();
        let finished: Vec<Finished> = futures_util::stream::iter(lanes)
            .map(|(lane, mut line)| async move {
                let mut done = Vec::with_capacity(lane.len());
                // Once a message waits (a retry, a limit), the ones after it to the same
                // recipient wait with it rather than overtake it, in this batch and after.
                let mut waiting = match line.as_mut() {
                    Some(line) => line.turn().await,
                    None => None,
                };
                for work in lane {
                    if let Some(at) = waiting {
                        let deferred = SendCompletion {
                            message: work.message.as_ref().map(|m| m.id),
                            lease: work.lease,
                            outcome: Outcome::Defer { at },
                            provider_message_id: None,
                            status: None,
                            follow_ups: Vec::new(),
                            recorded: false,
                        };
                        done.push((deferred, None));
                        continue;
                    }
                    let (completion, reported) = self.run_job(state, facts, work).await;
                    if let Outcome::Retry { at, .. } | Outcome::Defer { at } = &completion.outcome {
                        waiting = Some(*at);
                    }
                    done.push((completion, reported));
                }
                if let Some(line) = line {
                    line.finish(waiting);
                }
                done
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .flat_map(futures_util::stream::iter)
            .collect()
            .await;
        let sent = began.elapsed();
        drop(reach);
        let (completions, reported): (Vec<SendCompletion>, Vec<Option<DeliveryStatus>>) =
            finished.into_iter().unzip();
        let completed = store
            .complete_sends(&completions, state.now())
            .await
            .map_err(AppError::Internal)?;
        for ((completion, held), reported) in completions.iter().zip(completed.held).zip(reported) {
            if !held {
                tracing::warn!(job = %completion.lease.job.id, "lease lost before the job finished");
                continue;
            }
            let (Some(id), Some(status)) = (completion.message, &completion.status) else {
                continue;
            };
            // A status the provider reported before the send was recorded moved the message
            // further: the inbox hears where it is now.
            let now_at = reported
                .or_else(|| completed.reported.get(&id).copied())
                .unwrap_or(status.status);
            if let Some((sender_id, conversation_id)) = origins.get(&id) {
                state.publish(crate::events::LiveEvent::MessageStatus {
                    message_id: id,
                    conversation_id: *conversation_id,
                    sender_id: *sender_id,
                    status: now_at,
                });
            }
        }
        tracing::debug!(
            count,
            claim_us = claimed.as_micros() as u64,
            load_us = (loaded - claimed).as_micros() as u64,
            send_us = (sent - loaded).as_micros() as u64,
            complete_us = (began.elapsed() - sent).as_micros() as u64,
            "dispatched a batch"
        );
        Ok(count)
    }

    /// Whether any of these messages may start a conversation for a sender whose messaging
    /// limit counts them.
    async fn counts_reach(
        &self,
        state: &AppState,
        messages: impl Iterator<Item = &Message>,
    ) -> bool {
        let mut seen = HashSet::new();
        for message in messages {
            if !message.business_initiated
                || message.channel != Channel::Whatsapp
                || !seen.insert(message.sender_id)
            {
                continue;
            }
            match state.sender(message.sender_id).await {
                Ok(sender) if sender.health.messaging_limit_tier.is_none() => {}
                // Unknown: counted carefully.
                _ => return true,
            }
        }
        false
    }

    /// Runs one job to its completion record, with the status statuses that beat the send's
    /// recording moved its message to; a failure to read what it needs retries it.
    async fn run_job(&self, state: &AppState, facts: &Facts, work: Work) -> Finished {
        let Work { lease, message } = work;
        let message_id = message.as_ref().map(|m| m.id);
        let attempt = match message {
            None => Attempt::just(Outcome::Dead {
                error: "the job names no message that exists".to_owned(),
            }),
            Some(message) => match facts.senders.get(&message.sender_id) {
                None => Attempt::just(Outcome::Dead {
                    error: "the message's sender no longer exists".to_owned(),
                }),
                Some(sender) => match self.deliver(state, facts, &lease, sender, &message).await {
                    Ok(attempt) => attempt,
                    Err(error) => {
                        tracing::error!(?error, message = %message.id, "preparing a send");
                        Attempt::just(Outcome::Retry {
                            at: state.now() + Duration::seconds(5),
                            error: format!("{error:?}"),
                        })
                    }
                },
            },
        };
        let completion = SendCompletion {
            lease,
            outcome: attempt.outcome,
            message: message_id,
            provider_message_id: attempt.provider_message_id,
            status: attempt.status,
            follow_ups: attempt.follow_ups,
            recorded: attempt.recorded,
        };
        (completion, attempt.reported)
    }

    async fn deliver(
        &self,
        state: &AppState,
        facts: &Facts,
        lease: &Lease,
        sender: &Sender,
        message: &Message,
    ) -> Result<Attempt> {
        let job = &lease.job;
        let now = state.now();
        // Sent by an earlier attempt whose result was recorded: never send twice.
        if message.provider_message_id.is_some()
            || !matches!(
                message.status,
                DeliveryStatus::Queued | DeliveryStatus::Scheduled
            )
        {
            return Ok(Attempt::just(Outcome::Done));
        }
        let failed = |error: MessageError| {
            let reason = error.reason.clone();
            Attempt {
                status: Some(StatusEvent {
                    status: DeliveryStatus::Failed,
                    at: now,
                    error: Some(error),
                }),
                ..Attempt::just(Outcome::Dead { error: reason })
            }
        };
        let due = message.send_at.unwrap_or(message.created_at);
        if now > due + self.settings.expiry {
            return Ok(failed(MessageError {
                code: "expired".to_owned(),
                provider_code: None,
                reason: "the message could not be sent before it expired".to_owned(),
            }));
        }
        // A campaign's messages are worth nothing after its end.
        if job.expires_at.is_some_and(|end| now > end) {
            return Ok(failed(MessageError {
                code: "expired".to_owned(),
                provider_code: None,
                reason: "the campaign ended before the message could be sent".to_owned(),
            }));
        }
        // A worker stopped while this message may have been with the provider. WhatsApp echoes
        // our id in the statuses that follow a send, so wait for them before sending again.
        if let Some(interrupted) = job.interrupted_at {
            if matches!(sender.provider, ProviderConfig::WhatsappCloud(_))
                && now < interrupted + self.settings.in_flight_grace
            {
                let at = interrupted + self.settings.in_flight_grace;
                self.hold(Hold::Pair(sender.id, message.contact_id), at);
                return Ok(Attempt::just(Outcome::Defer { at }));
            }
        }
        if let Some(until) = self.held(sender.id, message.contact_id, now) {
            return Ok(Attempt::just(Outcome::Defer { at: until }));
        }
        if let Some(error) = self.still_allowed(state, facts, sender, message).await? {
            return Ok(failed(error));
        }
        // A campaign paused or stopped since its message was queued: the message is withdrawn.
        let campaign = campaign_of(lease);
        if let Some(error) = campaign
            .and_then(|c| facts.campaigns.get(&c))
            .and_then(|s| withdrawal(*s))
        {
            return Ok(failed(error));
        }
        let mut request = match self.build(state, facts, sender, message).await? {
            Ok(request) => request,
            Err(reason) => {
                return Ok(failed(MessageError {
                    code: "invalid_request".to_owned(),
                    provider_code: None,
                    reason,
                }))
            }
        };
        // A tagged Messenger message goes as MESSAGE_TAG; anything else is a reply in the
        // window, which policy has already checked.
        let messaging = match message.tag {
            Some(tag) => MessagingType::MessageTag(tag),
            None => MessagingType::Response,
        };
        let horizon = (self.settings.lease / 2_i32).unsigned_abs();
        match self
            .pacer
            .reserve_within(sender.id, sender.rate_limit(), horizon)
        {
            Ok(slot) => {
                let waits =
                    slot > tokio::time::Instant::now() + std::time::Duration::from_millis(50);
                tokio::time::sleep_until(slot).await;
                // It waited its turn: the campaign may have been paused meanwhile.
                if let (true, Some(campaign)) = (waits, campaign) {
                    let now_state = state
                        .store()
                        .get_campaign(campaign)
                        .await
                        .map(|c| c.state)
                        .ok();
                    if let Some(error) = now_state.and_then(withdrawal) {
                        return Ok(failed(error));
                    }
                }
            }
            Err(slot) => {
                let wait = slot.saturating_duration_since(tokio::time::Instant::now());
                return Ok(Attempt::just(Outcome::Defer { at: now + wait }));
            }
        }
        let sent = match &sender.provider {
            ProviderConfig::Sandbox => {
                crate::sandbox::accept(state, sender, message, &request).await?
            }
            _ => match self
                .provide_file(state, sender, message, &mut request)
                .await
            {
                Ok(()) => self
                    .send(sender, &request, messaging)
                    .await
                    .map(|id| (id, Vec::new())),
                Err(error) => Err(error),
            },
        };
        match sent {
            Ok((provider_id, follow_ups)) => {
                let status = StatusEvent {
                    status: DeliveryStatus::Sent,
                    at: state.now(),
                    error: None,
                };
                // Recorded now, not with the batch: a status webhook may arrive in a moment
                // (Twilio and Messenger echo nothing of ours to match it by), and a node that
                // stops mid-batch must not forget what the provider has.
                let (recorded, reported) = match state
                    .sends()
                    .commit((message.id, provider_id.clone(), status.clone()))
                    .await
                {
                    Ok(reported) => (true, reported),
                    Err(error) => {
                        tracing::error!(?error, message = %message.id, "recording a send; kept for the batch");
                        (false, None)
                    }
                };
                Ok(Attempt {
                    outcome: Outcome::Done,
                    provider_message_id: Some(provider_id),
                    status: Some(status),
                    follow_ups,
                    recorded,
                    reported,
                })
            }
            Err(SendError::Retryable {
                after,
                scope,
                reason,
                provider_code,
            }) => {
                let attempt = u32::try_from(job.attempt).unwrap_or(u32::MAX);
                let delay =
                    after.or_else(|| self.settings.retry.delay_after(attempt, rand::random()));
                match delay {
                    Some(delay) if attempt < self.settings.retry.max_attempts => {
                        let at = state.now() + delay;
                        match scope {
                            RetryScope::Sender => self.hold(Hold::Sender(sender.id), at),
                            RetryScope::Recipient => {
                                self.hold(Hold::Pair(sender.id, message.contact_id), at)
                            }
                            // Only this message failed, but the ones after it to the same
                            // recipient must not overtake it.
                            RetryScope::Message => {
                                self.hold(Hold::Pair(sender.id, message.contact_id), at)
                            }
                        }
                        Ok(Attempt::just(Outcome::Retry { at, error: reason }))
                    }
                    _ => Ok(failed(MessageError {
                        code: "retries_exhausted".to_owned(),
                        provider_code,
                        reason,
                    })),
                }
            }
            Err(SendError::Permanent {
                code,
                provider_code,
                reason,
            }) => {
                self.consequences(state, sender, message, code).await?;
                Ok(failed(MessageError {
                    code: code.to_owned(),
                    provider_code,
                    reason,
                }))
            }
        }
    }

    /// Until when a message from `sender` to `contact` must wait, if a limit holds it.
    fn held(
        &self,
        sender: SenderId,
        contact: ContactId,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let mut holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
        holds.retain(|_, until| *until > now);
        [Hold::Sender(sender), Hold::Pair(sender, contact)]
            .iter()
            .filter_map(|h| holds.get(h).copied())
            .max()
    }

    fn hold(&self, hold: Hold, until: OffsetDateTime) {
        let mut holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
        let entry = holds.entry(hold).or_insert(until);
        if *entry < until {
            *entry = until;
        }
    }

    /// What may have changed since the message was accepted: the customer opted out, the
    /// sender's token expired, or (for a free-form message waiting on retries) the window closed.
    async fn still_allowed(
        &self,
        state: &AppState,
        facts: &Facts,
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
        let consent = facts
            .consent
            .get(&(message.contact_id, message.channel))
            .copied()
            .unwrap_or(ConsentStatus::None);
        let from_system = message.actor.as_deref() == Some("system");
        if consent == ConsentStatus::OptedOut && !from_system {
            return Ok(refusal(
                "opted_out",
                "the contact opted out before the message was sent",
            ));
        }
        // The tier can drop, or the number be restricted, between acceptance and sending
        // (R8.4); count the customers this sender has actually reached by now.
        if message.business_initiated && message.channel == Channel::Whatsapp {
            if sender.health.status == HealthStatus::Restricted {
                return Ok(refusal(
                    "messaging_limit_reached",
                    "the number was restricted before the message was sent: it may answer \
                     customers but not start conversations until its 24-hour limit resets",
                ));
            }
            if let Some(limit) = sender.health.messaging_limit_tier {
                // A customer reached already costs nothing; a new one takes a place under the
                // limit, kept for the rest of the batch.
                let within = match facts.reach.get(&sender.id) {
                    Some(reach) => {
                        let mut reach = reach.lock().unwrap_or_else(|p| p.into_inner());
                        if reach.reached.contains(&message.contact_id) {
                            true
                        } else if reach.count < limit {
                            reach.count += 1;
                            reach.reached.insert(message.contact_id);
                            true
                        } else {
                            false
                        }
                    }
                    None => {
                        let (reached, includes) = store
                            .business_initiated_sent_reach(
                                sender.id,
                                Some(message.contact_id),
                                state.now() - switchboard_core::policy::SERVICE_WINDOW,
                            )
                            .await
                            .map_err(AppError::Internal)?;
                        includes || reached < limit
                    }
                };
                if !within {
                    return Ok(refusal(
                        "messaging_limit_reached",
                        &format!(
                            "the sender reached its messaging limit of {limit} customers in 24 \
                             hours before the message was sent"
                        ),
                    ));
                }
            }
        }
        if needs_window(message) {
            let last = facts
                .last_inbound
                .get(&(message.contact_id, message.sender_id))
                .copied();
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
            "token_expired" => crate::senders::mark_token_expired(state, sender).await?,
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
        facts: &Facts,
        sender: &Sender,
        message: &Message,
    ) -> Result<std::result::Result<OutboundRequest, String>> {
        let fetched;
        let contact = match facts.contacts.get(&message.contact_id) {
            Some(contact) => contact,
            None => {
                fetched = state
                    .store()
                    .get_contact(message.contact_id)
                    .await
                    .map_err(AppError::Internal)?;
                &fetched
            }
        };
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
            let templates = facts
                .templates
                .get(&sender.id)
                .map_or(&[][..], Vec::as_slice);
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
        let mut request = OutboundRequest::new(to, body);
        request.callback_data = Some(message.id.to_string());
        Ok(Ok(request))
    }

    /// A file we keep goes to the provider first (or as a signed link), just before the send:
    /// a retry provides it afresh rather than trusting an id or a link that may have lapsed.
    async fn provide_file(
        &self,
        state: &AppState,
        sender: &Sender,
        message: &Message,
        request: &mut OutboundRequest,
    ) -> std::result::Result<(), SendError> {
        match (&message.media, &mut request.body) {
            (Some(stored), OutboundBody::Media(outbound)) => {
                crate::uploads::provide(state, &self.client, sender, stored, outbound).await
            }
            _ => Ok(()),
        }
    }

    /// Sends through the sender's provider; the provider's message id on success.
    async fn send(
        &self,
        sender: &Sender,
        request: &OutboundRequest,
        messaging: MessagingType,
    ) -> std::result::Result<String, SendError> {
        let permanent = crate::provider::invalid;
        let (base, http, provider) = match &sender.provider {
            ProviderConfig::Sandbox => {
                return Err(permanent(
                    "sandbox senders are answered by the simulation".to_owned(),
                ))
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
        let answer = match crate::provider::exchange(&self.client, &base, &http).await {
            Ok(answer) => answer,
            // WhatsApp echoes our id in the statuses that follow a send it took, so a send
            // that may have gone waits for them, as an interrupted one does, rather than
            // going again at the next retry.
            Err(lost) if lost.may_have_arrived && provider == Channel::Whatsapp => {
                return Err(SendError::Retryable {
                    after: Some(self.settings.in_flight_grace),
                    scope: RetryScope::Recipient,
                    provider_code: None,
                    reason: format!(
                        "{}; it may have gone, so WhatsApp's statuses are awaited before it is sent again",
                        lost.error.reason()
                    ),
                });
            }
            Err(lost) => return Err(lost.error),
        };
        if answer.is_success() {
            let receipt = match provider {
                Channel::Whatsapp => switchboard_channels::parse_whatsapp_success(&answer.body),
                Channel::Messenger => switchboard_channels::parse_messenger_success(&answer.body),
                Channel::Sms => switchboard_channels::parse_twilio_success(&answer.body),
            };
            return receipt
                .map(|r| r.message_id)
                .map_err(|e| permanent(format!("an unreadable answer from the provider: {e:?}")));
        }
        Err(answer.error(provider))
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
        // A file we keep: `provide_file` says where the provider finds it.
        (None, None) => out::Media::link(kind, String::new()),
    };
    let mut m = match &media.caption {
        Some(caption) => base.with_caption(caption.clone()),
        None => base,
    };
    m.filename = media.filename.clone();
    m
}

/// The campaign a send belongs to, if its job names one.
fn campaign_of(lease: &Lease) -> Option<CampaignId> {
    lease.job.payload["campaign_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
}

/// Why a campaign's queued message may no longer go: its campaign is no longer running.
fn withdrawal(campaign: CampaignState) -> Option<MessageError> {
    let (code, reason) = match campaign {
        CampaignState::Running => return None,
        CampaignState::Stopped | CampaignState::Completed => (
            "campaign_stopped",
            "the campaign was stopped before this message was sent",
        ),
        CampaignState::Paused | CampaignState::Draft | CampaignState::Scheduled => (
            "campaign_paused",
            "the campaign was paused before this message was sent",
        ),
    };
    Some(MessageError {
        code: code.to_owned(),
        provider_code: None,
        reason: reason.to_owned(),
    })
}

fn message_id_of(lease: &Lease) -> Option<MessageId> {
    lease.job.payload["message_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_pacer_reserves_nothing_beyond_the_horizon() {
        let pacer = Pacer::default();
        let sender = SenderId::new();
        let start = tokio::time::Instant::now();
        let second = std::time::Duration::from_secs(1);
        // One a second: three fit in the next two seconds, the fourth would start at 3 s.
        for n in 0..3 {
            assert_eq!(
                pacer.reserve_within(sender, 1, second * 2),
                Ok(start + second * n)
            );
        }
        assert_eq!(
            pacer.reserve_within(sender, 1, second * 2),
            Err(start + second * 3)
        );
        // Refused, it took no slot: later it is the next one.
        tokio::time::advance(second * 2).await;
        assert_eq!(
            pacer.reserve_within(sender, 1, second * 2),
            Ok(start + second * 3)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_each_sender_at_its_rate() {
        let pacer = Pacer::default();
        let (a, b) = (SenderId::new(), SenderId::new());
        let start = tokio::time::Instant::now();
        let slots: Vec<_> = (0..5).map(|_| pacer.reserve(a, 4) - start).collect();
        let quarter = std::time::Duration::from_millis(250);
        assert_eq!(
            slots,
            (0..5).map(|n| quarter * n).collect::<Vec<_>>(),
            "4 per second: one every 250 ms"
        );
        // Another sender has its own budget.
        assert_eq!(pacer.reserve(b, 4), start);
        // Time spent idle is not saved up as a burst.
        tokio::time::advance(std::time::Duration::from_secs(10)).await;
        let now = tokio::time::Instant::now();
        assert_eq!(pacer.reserve(a, 4), now);
        assert_eq!(pacer.reserve(a, 4), now + quarter);
    }

    #[tokio::test]
    async fn a_lane_waits_for_the_same_recipients_lane_of_an_earlier_batch() {
        let lanes = std::sync::Arc::new(Lanes::default());
        let sender = SenderId::new();
        let (ada, bob) = (ContactId::new(), ContactId::new());
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);

        let first = lanes.join((sender, ada));
        let mut second = lanes.join((sender, ada));
        let mut to_bob = lanes.join((sender, bob));
        // Bob's lane is first in its line: it goes at once, waiting for nothing.
        assert_eq!(to_bob.turn().await, None);
        // Ada's second lane goes only once the first is done, and learns how it ended.
        let waiting = tokio::spawn(async move { second.turn().await });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "it went before the lane ahead of it ended"
        );
        first.finish(Some(t));
        assert_eq!(waiting.await.unwrap(), Some(t));

        // A lane dropped without finishing (its batch failed) holds nobody up.
        let abandoned = lanes.join((sender, bob));
        let mut next = lanes.join((sender, bob));
        drop(to_bob);
        drop(abandoned);
        assert_eq!(next.turn().await, None);
        next.finish(None);
        assert!(
            lanes.last.lock().unwrap().is_empty(),
            "finished lanes leave nothing behind"
        );
    }

    #[test]
    fn holds_cover_a_sender_or_one_recipient_until_they_lapse() {
        let dispatcher = Dispatcher::new(None);
        let (sender, other_sender) = (SenderId::new(), SenderId::new());
        let (ada, bob) = (ContactId::new(), ContactId::new());
        let t = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        dispatcher.hold(Hold::Pair(sender, ada), t + Duration::seconds(6));
        assert_eq!(
            dispatcher.held(sender, ada, t),
            Some(t + Duration::seconds(6))
        );
        assert_eq!(dispatcher.held(sender, bob, t), None);
        assert_eq!(dispatcher.held(other_sender, ada, t), None);
        dispatcher.hold(Hold::Sender(sender), t + Duration::seconds(30));
        assert_eq!(
            dispatcher.held(sender, bob, t),
            Some(t + Duration::seconds(30))
        );
        // A shorter hold does not cut a longer one short.
        dispatcher.hold(Hold::Sender(sender), t + Duration::seconds(1));
        assert_eq!(
            dispatcher.held(sender, ada, t),
            Some(t + Duration::seconds(30))
        );
        assert_eq!(
            dispatcher.held(sender, ada, t + Duration::seconds(31)),
            None
        );
    }
}
