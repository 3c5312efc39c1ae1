//! Provider webhooks (R8.6): authenticated by the sender's signature, stored durably before
//! they are answered, then processed: messages recorded once (provider ids are unique),
//! statuses applied forward only, every event of a payload applied, unknown kinds kept.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_channels::events::{self as ev, InboundEvent};
use switchboard_channels::signature::verify_meta;
use switchboard_core::message::{DeliveryStatus, Media, MediaKind, MessageError, StatusEvent};
use switchboard_core::sender::{ProviderConfig, ProviderKind, Sender};
use switchboard_core::Channel;
use switchboard_store::webhooks::WebhookEvent;

use crate::inbound::{receive_known, InboundInput, Known};
use crate::{AppError, AppState, Result};

/// Why a webhook is turned away; nothing is stored.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// No signature, a wrong one, or no sender of ours it could be for: 401.
    Unauthorized,
    /// Not a body a provider sends: 400.
    Malformed(String),
}

fn same_secret(stored: &str, given: &str) -> bool {
    let (a, b) = (stored.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Meta's verification handshake (WhatsApp or Messenger): the challenge, when the token is one
/// of our senders'.
pub async fn meta_handshake(
    state: &AppState,
    kind: ProviderKind,
    mode: &str,
    token: &str,
    challenge: &str,
) -> Result<Option<String>> {
    if mode != "subscribe" {
        return Ok(None);
    }
    let senders = state
        .store()
        .senders_of_kind(kind)
        .await
        .map_err(AppError::Internal)?;
    let known = senders.iter().any(|s| match &s.provider {
        ProviderConfig::WhatsappCloud(c) => same_secret(c.verify_token.expose(), token),
        ProviderConfig::Messenger(c) => same_secret(c.verify_token.expose(), token),
        _ => false,
    });
    Ok(known.then(|| challenge.to_owned()))
}

/// What a WhatsApp body is routed by, read without building the whole document: every
/// webhook passes here before it is answered.
#[derive(Default, Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow)]
    entry: Vec<EnvelopeEntry<'a>>,
}

#[derive(Deserialize)]
struct EnvelopeEntry<'a> {
    #[serde(default, borrow)]
    id: Option<Text<'a>>,
    #[serde(default, borrow)]
    changes: Option<Vec<EnvelopeChange<'a>>>,
}

#[derive(Deserialize)]
struct EnvelopeChange<'a> {
    #[serde(default, borrow)]
    value: Option<EnvelopeValue<'a>>,
}

#[derive(Deserialize)]
struct EnvelopeValue<'a> {
    #[serde(default, borrow)]
    metadata: Option<EnvelopeMetadata<'a>>,
}

#[derive(Deserialize)]
struct EnvelopeMetadata<'a> {
    #[serde(default, borrow)]
    phone_number_id: Option<Text<'a>>,
}

/// A string where one is expected; anything else there routes nothing rather than making the
/// whole body unreadable.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text<'a> {
    Str(#[serde(borrow)] Cow<'a, str>),
    Other(serde::de::IgnoredAny),
}

impl Text<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Text::Str(s) => Some(s),
            Text::Other(_) => None,
        }
    }
}

/// The WhatsApp sender a body is for: by the phone-number id in its metadata, or, for
/// account-level updates that carry none, by the WABA id of the entry.
async fn whatsapp_sender_for(state: &AppState, body: &Envelope<'_>) -> Result<Option<Sender>> {
    let numbers = body
        .entry
        .iter()
        .flat_map(|e| e.changes.iter().flatten())
        .filter_map(|c| {
            c.value
                .as_ref()?
                .metadata
                .as_ref()?
                .phone_number_id
                .as_ref()?
                .as_str()
        });
    for id in numbers {
        if let Some(sender) = state
            .sender_by_external_id(ProviderKind::WhatsappCloud, id)
            .await
            .map_err(AppError::Internal)?
        {
            return Ok(Some(sender));
        }
    }
    let waba_ids: Vec<&str> = body
        .entry
        .iter()
        .filter_map(|e| e.id.as_ref()?.as_str())
        .collect();
    let senders = state
        .store()
        .senders_of_kind(ProviderKind::WhatsappCloud)
        .await
        .map_err(AppError::Internal)?;
    Ok(senders.into_iter().find(|s| match &s.provider {
        ProviderConfig::WhatsappCloud(c) => waba_ids.contains(&c.waba_id.as_str()),
        _ => false,
    }))
}

/// Verifies and stores a WhatsApp webhook. `Ok(false)` is a redelivery of a body already
/// stored (answered 200 all the same, so Meta stops retrying).
pub async fn accept_whatsapp(
    state: &AppState,
    signature: Option<&str>,
    body: &[u8],
) -> Result<std::result::Result<bool, Rejected>> {
    let Some(signature) = signature else {
        return Ok(Err(Rejected::Unauthorized));
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(Err(Rejected::Malformed("the body is not UTF-8".to_owned())));
    };
    // JSON of another shape is for no sender of ours (401), as before; only what is not JSON
    // at all is malformed.
    let envelope = match serde_json::from_str::<Envelope>(text) {
        Ok(envelope) => envelope,
        Err(_) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            Envelope::default()
        }
        Err(_) => return Ok(Err(Rejected::Malformed("the body is not JSON".to_owned()))),
    };
    let Some(sender) = whatsapp_sender_for(state, &envelope).await? else {
        return Ok(Err(Rejected::Unauthorized));
    };
    let ProviderConfig::WhatsappCloud(config) = &sender.provider else {
        return Ok(Err(Rejected::Unauthorized));
    };
    // The exact bytes as received: Meta signs its ASCII-escaped body.
    if !verify_meta(config.app_secret.expose(), body, signature) {
        return Ok(Err(Rejected::Unauthorized));
    }
    store(state, "whatsapp", &sender, text).await.map(Ok)
}

/// Commits a verified webhook to the inbox and wakes the processor.
async fn store(state: &AppState, provider: &str, sender: &Sender, body: &str) -> Result<bool> {
    let event = WebhookEvent {
        id: switchboard_core::MessageId::new().to_string(),
        provider: provider.to_owned(),
        sender_id: Some(sender.id.to_string()),
        dedupe_key: hex::encode(Sha256::digest(body.as_bytes())),
        body: body.to_owned(),
        received_at: state.now(),
    };
    let fresh = state
        .inbox()
        .commit(event)
        .await
        .map_err(AppError::Internal)?;
    if fresh {
        state.wake_webhooks();
    }
    Ok(fresh)
}

/// Verifies and stores a Messenger webhook (`object: page`), routed by page id.
pub async fn accept_messenger(
    state: &AppState,
    signature: Option<&str>,
    body: &[u8],
) -> Result<std::result::Result<bool, Rejected>> {
    let Some(signature) = signature else {
        return Ok(Err(Rejected::Unauthorized));
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(Err(Rejected::Malformed("the body is not UTF-8".to_owned())));
    };
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return Ok(Err(Rejected::Malformed("the body is not JSON".to_owned())));
    };
    let page = json["entry"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let Some(sender) = state
        .sender_by_external_id(ProviderKind::Messenger, &page)
        .await
        .map_err(AppError::Internal)?
    else {
        return Ok(Err(Rejected::Unauthorized));
    };
    let ProviderConfig::Messenger(config) = &sender.provider else {
        return Ok(Err(Rejected::Unauthorized));
    };
    if !verify_meta(config.app_secret.expose(), body, signature) {
        return Ok(Err(Rejected::Unauthorized));
    }
    store(state, "messenger", &sender, text).await.map(Ok)
}

/// Verifies and stores a Twilio webhook (an inbound SMS or a status callback), routed by our
/// number (`To` for inbound, `From` for callbacks) or messaging service. `url` is the URL
/// Twilio requested: the server's public URL, or the request's own.
pub async fn accept_twilio(
    state: &AppState,
    signature: Option<&str>,
    url: &str,
    body: &[u8],
) -> Result<std::result::Result<bool, Rejected>> {
    let Some(signature) = signature else {
        return Ok(Err(Rejected::Unauthorized));
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok(Err(Rejected::Malformed("the body is not UTF-8".to_owned())));
    };
    let params = switchboard_channels::parse_form(body);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut sender = None;
    for candidate in ["To", "From", "MessagingServiceSid"]
        .into_iter()
        .filter_map(param)
    {
        sender = state
            .sender_by_external_id(ProviderKind::Twilio, &candidate)
            .await
            .map_err(AppError::Internal)?;
        if sender.is_some() {
            break;
        }
    }
    let Some(sender) = sender else {
        return Ok(Err(Rejected::Unauthorized));
    };
    let ProviderConfig::Twilio(config) = &sender.provider else {
        return Ok(Err(Rejected::Unauthorized));
    };
    if !switchboard_channels::signature::verify_twilio(
        config.auth_token.expose(),
        url,
        &params,
        signature,
    ) {
        return Ok(Err(Rejected::Unauthorized));
    }
    store(state, "twilio", &sender, text).await.map(Ok)
}

/// Webhooks read from the inbox at once; all of them are applied at the same time (their
/// customers' lanes), and their messages reach the inbound writer together, to be committed
/// in one transaction. The batch shares the two cores between answering webhooks and
/// processing them: under the bench's load, with one transaction a batch, 256 ingested
/// 8,900-10,300 webhooks a second on SQLite (median 9,900) and 6,100-6,300 on PostgreSQL,
/// 384 9,900-10,700 (median 10,400) and 6,500-6,700, 512 9,600-10,200 and 6,100-6,900;
/// the webhooks answered meanwhile fell by a few percent from 256 to 384.
const PROCESS_BATCH: usize = 384;

/// Processes every stored webhook not yet processed; returns how many. Safe to run on several
/// nodes at once: applying an event twice changes nothing the second time.
///
/// Webhooks about one customer are applied one after another in the order received (a STOP
/// then a START must end opted in); different customers' are applied concurrently.
///
/// Batches overlap: while one is applied, the next is read and parsed beside it, and the
/// one applied before is marked processed beside the next one's lookups. Only the applying
/// is strictly one batch after another, so that a batch looks its customers up after the
/// one before has recorded them.
pub async fn process_pending(state: &AppState) -> Result<usize> {
    let batch = PROCESS_BATCH;
    let mut next = read_batch(state.clone(), Vec::new(), batch).await?;
    let mut marking: Option<Marking> = None;
    let mut count = 0;
    while !next.is_empty() {
        let pending = std::mem::take(&mut next);
        count += pending.len();
        let applying: Vec<String> = pending.iter().map(|(id, _)| id.clone()).collect();
        let lanes = lanes(pending);
        let writers = writers(state, &lanes).await?;
        let mut known = Known::load(state, &writers).await?;
        known.gather(state, lanes.len());
        let known = &known;
        // The next batch leaves this one out, which is not marked processed yet, and is read
        // once the one before it is: until then that one would be read again.
        let before = marking.take();
        let reading = tokio::spawn({
            let state = state.clone();
            async move {
                finish(before).await?;
                read_batch(state, applying, batch).await
            }
        });
        let (outcomes, failed) = apply_lanes(state, lanes, known, batch).await;
        marking = Some(tokio::spawn(mark(state.clone(), outcomes)));
        if let Some(error) = failed {
            // The failed webhook's customer's later webhooks wait for it: the batch read
            // meanwhile may hold some, so it is dropped, and the next round reads again
            // (once the batch before is marked, or it would be read again too). What the
            // read found is dropped; only its waiting for that mark counts here.
            if let Ok(Err(read)) = reading.await {
                tracing::warn!(error = ?read, "reading the next webhooks failed");
            }
            finish(marking).await?;
            return Err(error);
        }
        next = reading
            .await
            .map_err(|e| stopped("reading the next webhooks", e))??;
    }
    finish(marking).await?;
    Ok(count)
}

/// A batch being marked processed.
type Marking = tokio::task::JoinHandle<Result<()>>;

/// Waits for a batch to be marked processed, if one is being.
async fn finish(marking: Option<Marking>) -> Result<()> {
    match marking {
        Some(marking) => marking
            .await
            .map_err(|e| stopped("marking webhooks processed", e))?,
        None => Ok(()),
    }
}

fn stopped(what: &str, error: tokio::task::JoinError) -> AppError {
    AppError::Internal(switchboard_store::StoreError::Batch(format!(
        "{what} stopped: {error}"
    )))
}

/// A webhook read from the inbox, parsed: its id and its events.
type Read = (String, Parsed);

/// Reads and parses the oldest webhooks not yet processed, but for those being applied.
async fn read_batch(state: AppState, applying: Vec<String>, batch: usize) -> Result<Vec<Read>> {
    let applying: Vec<&str> = applying.iter().map(String::as_str).collect();
    let pending = state
        .store()
        .pending_webhooks_except(&applying, batch as i64)
        .await
        .map_err(AppError::Internal)?;
    Ok(pending
        .into_iter()
        .map(|webhook| {
            let parsed = parse(&webhook);
            (webhook.id, parsed)
        })
        .collect())
}

/// A batch in lanes: a webhook may speak of several customers (Meta batches events); it goes
/// in one lane with every earlier webhook that shares any of them, so each customer's events
/// keep their order.
fn lanes(pending: Vec<Read>) -> Vec<Vec<(usize, String, Parsed)>> {
    let mut lanes: Vec<Vec<(usize, String, Parsed)>> = Vec::new();
    let mut lane_of: HashMap<String, usize> = HashMap::new();
    for (order, (id, parsed)) in pending.into_iter().enumerate() {
        let keys: Vec<String> = match &parsed {
            Parsed::Events(events) => events.iter().map(lane_key).collect(),
            Parsed::Kept(_) => Vec::new(),
        };
        let mut joined: Vec<usize> = keys
            .iter()
            .filter_map(|k| lane_of.get(k).copied())
            .collect();
        joined.sort_unstable();
        joined.dedup();
        let index = match joined.split_first() {
            None => {
                lanes.push(Vec::new());
                lanes.len() - 1
            }
            Some((&first, rest)) => {
                // Lanes this webhook bridges become one, in the order their webhooks came.
                let mut merged: Vec<(usize, String, Parsed)> = Vec::new();
                for &other in rest {
                    merged.append(&mut lanes[other]);
                }
                lanes[first].append(&mut merged);
                lanes[first].sort_by_key(|(order, _, _)| *order);
                for index in lane_of.values_mut() {
                    if rest.contains(index) {
                        *index = first;
                    }
                }
                first
            }
        };
        for key in keys {
            lane_of.insert(key, index);
        }
        lanes[index].push((order, id, parsed));
    }
    lanes
}

/// Who wrote in a batch: (sender, its channel, the customer's address, their name), to be
/// looked up for the whole batch at once.
async fn writers(
    state: &AppState,
    lanes: &[Vec<(usize, String, Parsed)>],
) -> Result<Vec<(switchboard_core::SenderId, Channel, String, Option<String>)>> {
    let mut writers = Vec::new();
    for (_, _, parsed) in lanes.iter().flatten() {
        let Parsed::Events(events) = parsed else {
            continue;
        };
        for event in events {
            let InboundEvent::Message(m) = event else {
                continue;
            };
            let (_, kind) = route(&m.provider);
            let from = m.customer.address.clone().or(m.customer.user_id.clone());
            if let (Some(sender), Some(from)) = (
                state
                    .sender_by_external_id(kind, &m.business_id)
                    .await
                    .map_err(AppError::Internal)?,
                from,
            ) {
                writers.push((sender.id, sender.channel, from, m.customer.name.clone()));
            }
        }
    }
    Ok(writers)
}

/// Applies a batch's lanes side by side, each in order; returns the outcome of every
/// webhook applied, and the first error (its lane stops there).
async fn apply_lanes(
    state: &AppState,
    lanes: Vec<Vec<(usize, String, Parsed)>>,
    known: &Known,
    batch: usize,
) -> (Vec<(String, String)>, Option<AppError>) {
    // Every lane at once: the batch's messages are committed when every lane waits on its
    // commit or is done, so a lane left unstarted would hold the others up for good.
    let results: Vec<Vec<(String, Result<String>)>> =
        futures_util::future::join_all(lanes.into_iter().map(|lane| async move {
            let mut done = Vec::with_capacity(lane.len());
            for (_, id, parsed) in lane {
                let outcome = match parsed {
                    Parsed::Events(events) => apply_all(state, events, known).await,
                    Parsed::Kept(outcome) => Ok(outcome),
                };
                let failed = outcome.is_err();
                done.push((id, outcome));
                // The rest of this customer's webhooks wait for the next round, in order.
                if failed {
                    break;
                }
            }
            known.lane_done().await;
            done
        }))
        .await;
    let mut outcomes = Vec::with_capacity(batch);
    let mut first_error = None;
    for (id, outcome) in results.into_iter().flatten() {
        match outcome {
            Ok(outcome) => outcomes.push((id, outcome)),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    (outcomes, first_error)
}

/// Marks webhooks applied, all in one write. Applying is idempotent, so webhooks applied
/// before a crash and not yet marked are simply applied again, changing nothing.
async fn mark(state: AppState, outcomes: Vec<(String, String)>) -> Result<()> {
    state
        .store()
        .mark_webhooks_processed(&outcomes, state.now())
        .await
        .map_err(AppError::Internal)
}

/// A stored webhook read: its events, or the outcome to record for a body with nothing to
/// apply.
enum Parsed {
    Events(Vec<InboundEvent>),
    Kept(String),
}

fn parse(webhook: &WebhookEvent) -> Parsed {
    let parsed = match webhook.provider.as_str() {
        "whatsapp" => switchboard_channels::parse_whatsapp(webhook.body.as_bytes()),
        "messenger" => switchboard_channels::parse_messenger(webhook.body.as_bytes()),
        "twilio" => {
            let form = switchboard_channels::parse_form(webhook.body.as_bytes());
            switchboard_channels::parse_twilio(&form).map(|event| vec![event])
        }
        other => return Parsed::Kept(format!("no processor for {other}")),
    };
    match parsed {
        Ok(events) => Parsed::Events(events),
        Err(e) => Parsed::Kept(unparseable(webhook, e)),
    }
}

/// What an event must stay in order with: its customer (who wrote, or who a status is about),
/// whichever number they wrote to, since consent is theirs on the channel; template updates
/// with each other, since a template's later status must be applied last.
fn lane_key(event: &InboundEvent) -> String {
    let (provider, party) = match event {
        InboundEvent::Message(m) => (&m.provider, &m.customer),
        InboundEvent::Status(s) => (&s.provider, &s.recipient),
        _ => return "account".to_owned(),
    };
    match party.address.as_ref().or(party.user_id.as_ref()) {
        Some(who) => format!("{provider:?}/{who}"),
        None => "account".to_owned(),
    }
}

fn unparseable(webhook: &WebhookEvent, error: impl std::fmt::Debug) -> String {
    tracing::warn!(webhook = %webhook.id, ?error, "unparseable webhook kept");
    format!("unparseable: {error:?}")
}

/// The channel and provider kind an event came through.
fn route(provider: &ev::Provider) -> (Channel, ProviderKind) {
    match provider {
        ev::Provider::WhatsApp => (Channel::Whatsapp, ProviderKind::WhatsappCloud),
        ev::Provider::Messenger => (Channel::Messenger, ProviderKind::Messenger),
        ev::Provider::Twilio => (Channel::Sms, ProviderKind::Twilio),
    }
}

async fn apply_all(state: &AppState, events: Vec<InboundEvent>, known: &Known) -> Result<String> {
    let (mut messages, mut statuses, mut templates, mut others) = (0, 0, 0, 0);
    for event in events {
        match event {
            InboundEvent::Message(m) if !m.is_echo => {
                apply_message(state, m, known).await?;
                messages += 1;
            }
            InboundEvent::Status(s) => {
                apply_status(state, s).await?;
                statuses += 1;
            }
            InboundEvent::TemplateStatus(t) => {
                apply_template_status(state, &t).await?;
                templates += 1;
            }
            other => {
                // Kept in the stored body for later processors; nothing to apply yet.
                tracing::debug!(event = ?std::mem::discriminant(&other), "webhook event kept");
                others += 1;
            }
        }
    }
    Ok(format!(
        "messages={messages} statuses={statuses} templates={templates} kept={others}"
    ))
}

fn media_kind(kind: &ev::MessageKind) -> Option<MediaKind> {
    match kind {
        ev::MessageKind::Image => Some(MediaKind::Image),
        ev::MessageKind::Video => Some(MediaKind::Video),
        ev::MessageKind::Audio => Some(MediaKind::Audio),
        ev::MessageKind::Document => Some(MediaKind::Document),
        ev::MessageKind::Sticker => Some(MediaKind::Sticker),
        _ => None,
    }
}

async fn apply_message(state: &AppState, m: ev::InboundMessage, known: &Known) -> Result<()> {
    let (_, kind) = route(&m.provider);
    let Some(sender) = state
        .sender_by_external_id(kind, &m.business_id)
        .await
        .map_err(AppError::Internal)?
    else {
        tracing::warn!(business_id = %m.business_id, "message for an identity we do not have");
        return Ok(());
    };
    let Some(from) = m.customer.address.clone().or(m.customer.user_id.clone()) else {
        tracing::warn!(id = %m.provider_message_id, "message without a sender address");
        return Ok(());
    };
    let media = media_kind(&m.kind).and_then(|kind| {
        m.media.first().map(|file| Media {
            kind,
            url: file.url.clone(),
            provider_media_id: file.id.clone(),
            mime_type: file.mime_type.clone(),
            filename: file.filename.clone(),
            caption: m.text.clone(),
            size_bytes: None,
            sha256: None,
            provider_sha256: file.sha256.clone(),
            download: None,
        })
    });
    let text = match (&media, &m.text) {
        (Some(_), _) => None,
        (None, Some(text)) => Some(text.clone()),
        // Kinds without text (a location, a reaction to a template...) are recorded by kind.
        (None, None) => Some(format!("[{:?}]", m.kind).to_lowercase()),
    };
    let input = InboundInput {
        sender_id: sender.id,
        from,
        name: m.customer.name.clone(),
        text,
        media,
        provider_message_id: Some(m.provider_message_id.clone()),
        timestamp: m.timestamp,
        button: matches!(
            m.kind,
            ev::MessageKind::QuickReply | ev::MessageKind::ButtonReply
        )
        .then(|| m.text.clone().or_else(|| m.payload.clone()))
        .flatten(),
    };
    match receive_known(state, input, known).await {
        Ok(_) => Ok(()),
        // A payload we cannot record (an address we cannot parse) is logged and kept.
        Err(AppError::Validation(errors)) => {
            tracing::warn!(id = %m.provider_message_id, %errors, "inbound message not recorded");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A template's review status from Meta, for the templates of the account it names.
async fn apply_template_status(state: &AppState, update: &ev::TemplateStatusUpdate) -> Result<()> {
    let senders: Vec<Sender> = state
        .store()
        .senders_of_kind(ProviderKind::WhatsappCloud)
        .await
        .map_err(AppError::Internal)?
        .into_iter()
        .filter(|s| match (&s.provider, &update.account_id) {
            (ProviderConfig::WhatsappCloud(c), Some(waba)) => &c.waba_id == waba,
            // Without the account, any of our WhatsApp numbers may own the template; its id
            // (or its name and language) narrows it down.
            (ProviderConfig::WhatsappCloud(_), None) => true,
            _ => false,
        })
        .collect();
    if senders.is_empty() {
        return Ok(());
    }
    crate::templates::apply_provider_status(state, &senders, update).await?;
    Ok(())
}

fn delivery_status(status: &ev::DeliveryStatus) -> Option<DeliveryStatus> {
    match status {
        ev::DeliveryStatus::Queued => Some(DeliveryStatus::Queued),
        ev::DeliveryStatus::Sent => Some(DeliveryStatus::Sent),
        ev::DeliveryStatus::Delivered => Some(DeliveryStatus::Delivered),
        ev::DeliveryStatus::Read | ev::DeliveryStatus::Played => Some(DeliveryStatus::Read),
        ev::DeliveryStatus::Failed | ev::DeliveryStatus::Canceled => Some(DeliveryStatus::Failed),
        ev::DeliveryStatus::Other(_) => None,
    }
}

async fn apply_status(state: &AppState, s: ev::StatusUpdate) -> Result<()> {
    let Some(status) = delivery_status(&s.status) else {
        return Ok(());
    };
    let (channel, _) = route(&s.provider);
    let error = s.errors.first().map(|e| {
        let code = e.code.unwrap_or_default();
        let message = e.message.clone().or(e.title.clone()).unwrap_or_default();
        let details = e.details.clone().unwrap_or_default();
        let classified = match channel {
            Channel::Sms => {
                switchboard_channels::errors::classify_twilio_error_code(code, &message)
            }
            _ => switchboard_channels::errors::classify_whatsapp_error(code, &message, &details),
        };
        MessageError {
            code: classified.code().unwrap_or("provider_error").to_owned(),
            provider_code: e.code.map(|c| c.to_string()),
            reason: [message, details]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(": "),
        }
    });
    let event = StatusEvent {
        status,
        at: s
            .timestamp
            .map(switchboard_core::time::truncate_to_millis)
            .unwrap_or_else(|| state.now()),
        error,
    };
    let store = state.store();
    for id in &s.provider_message_ids {
        let known = store
            .find_message_by_provider_id(channel, id)
            .await
            .map_err(AppError::Internal)?;
        let known = match known {
            Some(message) => Some(message),
            None => {
                adopt_lost_send(state, channel, id, s.biz_opaque_callback_data.as_deref()).await?
            }
        };
        let message = match known {
            Some(message) => message,
            // Twilio and Messenger name a send only by the id they answered it with, and
            // their status can be processed before that answer is recorded: it is kept for
            // the recording to apply. Looked for again once kept, since the recording may
            // have come between the first look and the keeping.
            None if channel != Channel::Whatsapp => {
                store
                    .keep_early_status(channel, id, &event, state.now())
                    .await
                    .map_err(AppError::Internal)?;
                match store
                    .find_message_by_provider_id(channel, id)
                    .await
                    .map_err(AppError::Internal)?
                {
                    Some(message) => message,
                    None => {
                        tracing::info!(provider_message_id = %id, "status kept for a send not recorded yet");
                        continue;
                    }
                }
            }
            None => {
                tracing::info!(provider_message_id = %id, "status for a message we do not know");
                continue;
            }
        };
        let changed = state
            .store()
            .record_status(message.id, &event)
            .await
            .map_err(AppError::Internal)?;
        if changed {
            state.publish(crate::events::LiveEvent::MessageStatus {
                message_id: message.id,
                conversation_id: message.conversation_id,
                sender_id: message.sender_id,
                status,
            });
        }
    }
    Ok(())
}

/// A status for a provider id we never recorded, carrying our own message id back: the send
/// went through but its answer was lost (the node stopped before recording it). The message
/// takes the provider's id, so the dispatcher will not send it again.
async fn adopt_lost_send(
    state: &AppState,
    channel: Channel,
    provider_message_id: &str,
    callback_data: Option<&str>,
) -> Result<Option<switchboard_core::message::Message>> {
    let Some(id) = callback_data.and_then(|d| d.parse::<switchboard_core::MessageId>().ok()) else {
        return Ok(None);
    };
    let store = state.store();
    let message = match store.get_message(id).await {
        Ok(m) => m,
        Err(switchboard_store::StoreError::NotFound) => return Ok(None),
        Err(e) => return Err(AppError::Internal(e)),
    };
    if message.channel != channel
        || message.direction != switchboard_core::message::Direction::Outbound
    {
        return Ok(None);
    }
    if !store
        .set_provider_message_id(id, provider_message_id)
        .await
        .map_err(AppError::Internal)?
    {
        // It has another provider id already: this status is not about it.
        return Ok(None);
    }
    tracing::info!(message = %id, provider_message_id, "a send whose answer was lost is matched by its status");
    let sent = StatusEvent {
        status: DeliveryStatus::Sent,
        at: state.now(),
        error: None,
    };
    store
        .record_status(id, &sent)
        .await
        .map_err(AppError::Internal)?;
    store
        .get_message(id)
        .await
        .map(Some)
        .map_err(AppError::Internal)
}
