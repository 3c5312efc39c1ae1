//! The message record and its status timeline.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::types::Json;
use switchboard_core::message::{
    DeliveryStatus, Direction, Media, Message, MessageError, StatusEvent, TemplateRef,
};
use switchboard_core::{Channel, ContactId, ConversationId, MessageId, SenderId};
use time::OffsetDateTime;

use crate::campaigns::{advance_recipient, close_interaction, withdraw_recipient};
use crate::conversations::{insert_conversation_event, move_conversation_row};
use crate::decisions::{insert_decision, insert_decision_rows, DecisionRecord};
use crate::jobs::{finish_job_in, insert_job, insert_job_rows, Lease, NewJob, Outcome};
use crate::rows::{at, json_value, ms, parse, parse_opt};
use crate::{IdempotencyKey, Page, PageRequest, Result, Store, StoreError};

/// An outbound message and what is written with it: see [`Store::create_outbound`].
#[derive(Clone, Debug)]
pub struct OutboundRecord {
    pub message: Message,
    pub job: NewJob,
    pub decision: DecisionRecord,
    pub idempotency: Option<IdempotencyKey>,
    pub consent: Option<switchboard_core::consent::ConsentEvent>,
    pub guard: Option<crate::conversations::ReplyGuard>,
}

impl OutboundRecord {
    /// Whether nothing but the send itself is written: no conversation move, idempotency key
    /// or consent change that could refuse it alone.
    fn is_plain(&self) -> bool {
        self.guard.is_none() && self.idempotency.is_none() && self.consent.is_none()
    }
}

/// The conversations that outbound messages (in the order they were sent) write to, each
/// once: the last message's time and preview, and whether any of them answers the customer.
fn answered_conversations(
    messages: &[&Message],
) -> Vec<(ConversationId, OffsetDateTime, String, bool)> {
    let mut touched: Vec<(ConversationId, OffsetDateTime, String, bool)> = Vec::new();
    let mut index: HashMap<ConversationId, usize> = HashMap::new();
    for message in messages {
        let Some(id) = message.conversation_id else {
            continue;
        };
        let preview = switchboard_core::conversation::preview(message);
        // A person's or an integration's message sent now answers the customer; an automatic
        // reply or a message scheduled for later leaves them waiting.
        let answers = message.actor.as_deref() != Some("system") && message.send_at.is_none();
        match index.get(&id) {
            Some(&i) => {
                let t = &mut touched[i];
                t.1 = message.created_at;
                t.2 = preview;
                t.3 |= answers;
            }
            None => {
                index.insert(id, touched.len());
                touched.push((id, message.created_at, preview, answers));
            }
        }
    }
    touched
}

/// An inbound message and what is recorded with it.
#[derive(Clone, Debug)]
pub struct InboundRecord {
    pub message: Message,
    /// A consent change its text asked for (a STOP, a YES to an opt-in request).
    pub consent: Option<switchboard_core::consent::ConsentEvent>,
    /// The job that downloads its media.
    pub job: Option<NewJob>,
    /// The campaign interaction it answers, closed with it (R6.6).
    pub answer: Option<crate::campaigns::AnswerRecord>,
}

/// What one send attempt came to, recorded with its job in one transaction.
#[derive(Clone, Debug)]
pub struct SendCompletion {
    pub lease: Lease,
    pub outcome: Outcome,
    /// The message the job sent (none when the job named no message that exists).
    pub message: Option<MessageId>,
    /// The provider's id for the message it accepted.
    pub provider_message_id: Option<String>,
    /// The status the attempt moved the message to (sent, or failed with the reason).
    pub status: Option<StatusEvent>,
    /// Jobs that follow from the attempt, enqueued only if the lease still held.
    pub follow_ups: Vec<NewJob>,
    /// The provider id and status were recorded already (as soon as the provider answered):
    /// only the job and what follows it are left to record.
    pub recorded: bool,
}

/// What recording a batch of send attempts came to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompletedSends {
    /// Per completion, in order: whether its job's lease still held.
    pub held: Vec<bool>,
    /// The messages that statuses reported before their sends were recorded moved on, with
    /// the status each is at now.
    pub reported: HashMap<MessageId, DeliveryStatus>,
}

/// A message row, joined with one of its status events (or none).
#[derive(sqlx::FromRow)]
struct MessageEventRow {
    id: String,
    direction: String,
    channel: String,
    sender_id: String,
    contact_id: String,
    conversation_id: Option<String>,
    text: Option<String>,
    template: Option<Json<Value>>,
    media: Option<Json<Value>>,
    channel_template_type: String,
    status: String,
    provider_message_id: Option<String>,
    error_code: Option<String>,
    error_provider_code: Option<String>,
    error_reason: Option<String>,
    provider_timestamp: Option<i64>,
    tag: Option<String>,
    business_initiated: bool,
    redacted: bool,
    send_at: Option<i64>,
    actor: Option<String>,
    created_at: i64,
    updated_at: i64,
    e_status: Option<String>,
    e_at: Option<i64>,
    e_error_code: Option<String>,
    e_error_provider_code: Option<String>,
    e_error_reason: Option<String>,
}

pub(crate) fn message_error(
    code: Option<String>,
    provider_code: Option<String>,
    reason: Option<String>,
) -> Option<MessageError> {
    code.map(|code| MessageError {
        code,
        provider_code,
        reason: reason.unwrap_or_default(),
    })
}

/// Folds joined rows into messages with their timelines, keeping the rows' order.
fn fold_messages(rows: Vec<MessageEventRow>) -> Result<Vec<Message>> {
    let mut messages: Vec<Message> = Vec::new();
    for row in rows {
        let same = messages
            .last()
            .is_some_and(|m: &Message| m.id.to_string() == row.id);
        if !same {
            messages.push(Message {
                id: parse("messages.id", &row.id)?,
                direction: parse("messages.direction", &row.direction)?,
                channel: parse("messages.channel", &row.channel)?,
                sender_id: parse("messages.sender_id", &row.sender_id)?,
                contact_id: parse("messages.contact_id", &row.contact_id)?,
                conversation_id: parse_opt(
                    "messages.conversation_id",
                    row.conversation_id.as_deref(),
                )?,
                text: row.text,
                template: row
                    .template
                    .map(|t| json_value::<TemplateRef>("messages.template", t.0))
                    .transpose()?,
                media: row
                    .media
                    .map(|m| json_value::<Media>("messages.media", m.0))
                    .transpose()?,
                channel_template_type: parse(
                    "messages.channel_template_type",
                    &row.channel_template_type,
                )?,
                status: parse("messages.status", &row.status)?,
                status_history: Vec::new(),
                provider_message_id: row.provider_message_id,
                error: message_error(row.error_code, row.error_provider_code, row.error_reason),
                provider_timestamp: row.provider_timestamp.map(at),
                tag: row
                    .tag
                    .map(|t| json_value("messages.tag", Value::String(t)))
                    .transpose()?,
                business_initiated: row.business_initiated,
                redacted: row.redacted,
                send_at: row.send_at.map(at),
                actor: row.actor,
                created_at: at(row.created_at),
                updated_at: at(row.updated_at),
            });
        }
        if let (Some(status), Some(when)) = (row.e_status, row.e_at) {
            let message = messages.last_mut().expect("pushed above");
            message.status_history.push(StatusEvent {
                status: parse("message_status_events.status", &status)?,
                at: at(when),
                error: message_error(
                    row.e_error_code,
                    row.e_error_provider_code,
                    row.e_error_reason,
                ),
            });
        }
    }
    for message in &mut messages {
        if message.direction == Direction::Inbound
            && message.status_history.first().map(|e| e.status) != Some(DeliveryStatus::Received)
        {
            message.status_history.insert(0, receipt(message));
        }
    }
    Ok(messages)
}

/// An inbound message's first event: received when it was recorded. Its row's `created_at`
/// says as much, so it is not stored as an event of its own (one row fewer on the busiest
/// write there is) and is put back as the message is read. Messages recorded before keep
/// theirs stored, and are read the same.
fn receipt(message: &Message) -> StatusEvent {
    StatusEvent {
        status: DeliveryStatus::Received,
        at: message.created_at,
        error: None,
    }
}

/// Whether the `index`th event of a message is its implied receipt, not stored.
pub(crate) fn implied(message: &Message, index: usize, event: &StatusEvent) -> bool {
    index == 0 && message.direction == Direction::Inbound && *event == receipt(message)
}

const SELECT_JOINED: &str = "SELECT m.id, m.direction, m.channel, m.sender_id, m.contact_id, \
    m.conversation_id, m.text, m.template, m.media, m.channel_template_type, m.status, \
    m.provider_message_id, m.error_code, m.error_provider_code, m.error_reason, \
    m.provider_timestamp, m.tag, m.business_initiated, m.redacted, m.send_at, m.actor, \
    m.created_at, m.updated_at, e.status AS e_status, e.at AS e_at, \
    e.error_code AS e_error_code, e.error_provider_code AS e_error_provider_code, \
    e.error_reason AS e_error_reason";

/// Filters for the message history. Every field narrows the list.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    pub contact_id: Option<ContactId>,
    pub sender_id: Option<SenderId>,
    pub conversation_id: Option<ConversationId>,
    pub channel: Option<Channel>,
    pub direction: Option<Direction>,
    pub status: Option<DeliveryStatus>,
    /// Created at or after.
    pub since: Option<OffsetDateTime>,
    /// Created before.
    pub until: Option<OffsetDateTime>,
}

/// The columns a message is inserted with, in the order its values are bound.
macro_rules! message_columns {
    () => {
        "id, direction, channel, sender_id, contact_id, conversation_id, text, template, media, \
         channel_template_type, status, provider_message_id, error_code, error_provider_code, \
         error_reason, provider_timestamp, tag, business_initiated, redacted, send_at, actor, \
         created_at, updated_at"
    };
}

pub(crate) use message_columns;

/// Inserts a message row and its timeline inside the caller's transaction.
macro_rules! insert_message_row {
    ($tx:ident, $message:expr) => {{
        let message: &Message = $message;
        // Left out by the batch insert only when its provider id is taken: refused here.
        if $crate::messages::insert_message_rows!($tx, &[message]).is_empty() {
            return Err(StoreError::Conflict {
                field: "provider_message_id".to_owned(),
                existing_id: None,
            });
        }
    }};
}

/// Inserts new messages with their timelines so far, a few statements for them all, inside the
/// caller's transaction; answers the ids inserted. A message whose provider id is taken
/// already (a webhook delivered twice) is left out, not an error. The ids must be new.
macro_rules! insert_message_rows {
    ($tx:ident, $messages:expr) => {{
        // 23 parameters a message: 9,200 a statement, well under both engines' limits.
        const ROWS: usize = 400;
        let messages: &[&Message] = $messages;
        let mut inserted: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in messages.chunks(ROWS) {
            use $crate::bulk::{Cell, Kind};
            const KINDS: [Kind; 23] = [
                Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text, Kind::Text,
                Kind::Text, Kind::Json, Kind::Json, Kind::Text, Kind::Text, Kind::Text,
                Kind::Text, Kind::Text, Kind::Text, Kind::Int, Kind::Text, Kind::Bool,
                Kind::Bool, Kind::Int, Kind::Text, Kind::Int, Kind::Int,
            ];
            let json = |v: Option<String>| v.map(Cell::from).unwrap_or(Cell::Text(None));
            let mut rows = $crate::bulk::Rows::with_capacity(&KINDS, chunk.len());
            for m in chunk {
                let error = m.error.as_ref();
                rows.push([
                    m.id.to_string().into(),
                    m.direction.as_str().into(),
                    m.channel.as_str().into(),
                    m.sender_id.to_string().into(),
                    m.contact_id.to_string().into(),
                    m.conversation_id.map(|c| c.to_string()).into(),
                    m.text.clone().into(),
                    json(m.template.as_ref().and_then(|t| serde_json::to_string(t).ok())),
                    json(m.media.as_ref().and_then(|t| serde_json::to_string(t).ok())),
                    m.channel_template_type.as_str().into(),
                    m.status.as_str().into(),
                    m.provider_message_id.clone().into(),
                    error.map(|e| e.code.as_str()).into(),
                    error.and_then(|e| e.provider_code.as_deref()).into(),
                    error.map(|e| e.reason.as_str()).into(),
                    m.provider_timestamp.map($crate::rows::ms).into(),
                    m.tag.map(|t| $crate::rows::enum_text(&t)).into(),
                    m.business_initiated.into(),
                    m.redacted.into(),
                    m.send_at.map($crate::rows::ms).into(),
                    m.actor.clone().into(),
                    $crate::rows::ms(m.created_at).into(),
                    $crate::rows::ms(m.updated_at).into(),
                ]);
            }
            let sql = format!(
                "INSERT INTO messages ({}) {} ON CONFLICT (channel, provider_message_id) DO NOTHING",
                $crate::messages::message_columns!(),
                $crate::bulk::source(&*$tx, &rows, 1)
            );
            let sql = $crate::rows::sql_for(&*$tx, sql);
            let count = $crate::bulk::bind(&*$tx, sqlx::query(&sql), rows)
                .execute(&mut *$tx)
                .await?
                .rows_affected();
            // Nearly always all of them are new; only when some were not (a webhook delivered
            // twice) is it worth asking which, rather than having every id returned.
            if count == chunk.len() as u64 {
                inserted.extend(chunk.iter().map(|m| m.id.to_string()));
            } else if count > 0 {
                let sql = format!(
                    "SELECT id FROM messages WHERE id IN ({})",
                    $crate::rows::placeholders(1, chunk.len())
                );
                let sql = $crate::rows::sql_for(&*$tx, sql);
                let mut query = sqlx::query_as::<_, (String,)>(&sql);
                for m in chunk {
                    query = query.bind(m.id.to_string());
                }
                let found = query.fetch_all(&mut *$tx).await?;
                inserted.extend(found.into_iter().map(|(id,)| id));
            }
        }
        let events: Vec<(String, i64, &StatusEvent)> = messages
            .iter()
            .filter(|m| inserted.contains(&m.id.to_string()))
            .flat_map(|m| {
                let id = m.id.to_string();
                m.status_history
                    .iter()
                    .enumerate()
                    .filter(|(seq, event)| !$crate::messages::implied(m, *seq, event))
                    .map(move |(seq, event)| (id.clone(), seq as i64 + 1, event))
            })
            .collect();
        for chunk in events.chunks(ROWS) {
            use $crate::bulk::Kind;
            const KINDS: [Kind; 7] = [
                Kind::Text, Kind::Int, Kind::Text, Kind::Int, Kind::Text, Kind::Text, Kind::Text,
            ];
            let mut rows = $crate::bulk::Rows::with_capacity(&KINDS, chunk.len());
            for (id, seq, event) in chunk {
                let error = event.error.as_ref();
                rows.push([
                    id.clone().into(),
                    (*seq).into(),
                    event.status.as_str().into(),
                    $crate::rows::ms(event.at).into(),
                    error.map(|e| e.code.as_str()).into(),
                    error.and_then(|e| e.provider_code.as_deref()).into(),
                    error.map(|e| e.reason.as_str()).into(),
                ]);
            }
            let sql = format!(
                "INSERT INTO message_status_events (message_id, seq, status, at, error_code, \
                 error_provider_code, error_reason) {}",
                $crate::bulk::source(&*$tx, &rows, 1)
            );
            let sql = $crate::rows::sql_for(&*$tx, sql);
            $crate::bulk::bind(&*$tx, sqlx::query(&sql), rows)
                .execute(&mut *$tx)
                .await?;
        }
        inserted
    }};
}

pub(crate) use insert_message_rows;

/// Appends one status event to a message's timeline inside the caller's transaction.
macro_rules! push_status_event {
    ($tx:ident, $id:expr, $event:expr) => {{
        let (next,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM message_status_events WHERE message_id = $1",
        )
        .bind($id)
        .fetch_one(&mut *$tx)
        .await?;
        insert_status_event!($tx, $id, next, $event);
    }};
}

macro_rules! insert_status_event {
    ($tx:ident, $id:expr, $seq:expr, $event:expr) => {{
        let next: i64 = $seq;
        sqlx::query(
            "INSERT INTO message_status_events (message_id, seq, status, at, error_code, \
             error_provider_code, error_reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($id)
        .bind(next)
        .bind($event.status.as_str())
        .bind(ms($event.at))
        .bind($event.error.as_ref().map(|e| e.code.as_str()))
        .bind(
            $event
                .error
                .as_ref()
                .and_then(|e| e.provider_code.as_deref()),
        )
        .bind($event.error.as_ref().map(|e| e.reason.as_str()))
        .execute(&mut *$tx)
        .await?;
    }};
}

pub(crate) use insert_status_event;

/// Moves a message to `event`'s status inside the caller's transaction if that is a step
/// forward, appending it to the timeline; yields whether anything changed.
macro_rules! apply_status {
    ($tx:ident, $id:expr, $event:expr) => {{
        let id: &str = $id;
        let event: &StatusEvent = $event;
        // Only from a status it may follow: the update itself is the check, so two webhooks
        // applying statuses at once cannot both move the message, and a late or repeated
        // status changes nothing.
        let from: Vec<&str> = DeliveryStatus::ALL
            .iter()
            .filter(|s| s.can_advance_to(event.status))
            .map(|s| s.as_str())
            .collect();
        if from.is_empty() {
            false
        } else {
            let sql = format!(
                "UPDATE messages SET status = $2, updated_at = $3, \
                 error_code = COALESCE($4, error_code), \
                 error_provider_code = COALESCE($5, error_provider_code), \
                 error_reason = COALESCE($6, error_reason) WHERE id = $1 AND status IN ({})",
                crate::rows::placeholders(7, from.len())
            );
            let mut query = sqlx::query(&sql)
                .bind(id)
                .bind(event.status.as_str())
                .bind(ms(event.at))
                .bind(event.error.as_ref().map(|e| e.code.as_str()))
                .bind(
                    event
                        .error
                        .as_ref()
                        .and_then(|e| e.provider_code.as_deref()),
                )
                .bind(event.error.as_ref().map(|e| e.reason.as_str()));
            for status in &from {
                query = query.bind(*status);
            }
            let moved = query.execute(&mut *$tx).await?.rows_affected() == 1;
            if moved {
                push_status_event!($tx, id, event);
            }
            moved
        }
    }};
}

pub(crate) use apply_status;
pub(crate) use push_status_event;

/// Applies, inside the caller's transaction, the statuses that came for these messages before
/// their sends were recorded (see [`Store::keep_early_status`]), and forgets them. Nearly
/// always there are none, which one read without parameters says: cheaper than looking the
/// batch's messages up (an `IN` list is built before the first row is read). Evaluates to the
/// statuses that moved a message on, in the order applied.
macro_rules! apply_early_statuses {
    ($tx:ident, $ids:expr) => {{
        let ids: &[String] = $ids;
        let mut moved: Vec<(String, DeliveryStatus)> = Vec::new();
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM early_statuses)")
            .fetch_one(&mut *$tx)
            .await?;
        for chunk in ids.chunks(1000).filter(|_| any) {
            let sql = format!(
                "SELECT m.id, p.status, p.at, p.error_code, p.error_provider_code, \
                 p.error_reason FROM early_statuses p JOIN messages m \
                 ON m.channel = p.channel AND m.provider_message_id = p.provider_message_id \
                 WHERE m.id IN ({}) ORDER BY p.at",
                crate::rows::placeholders(1, chunk.len())
            );
            let sql = crate::rows::sql_for(&*$tx, sql);
            let mut query = sqlx::query_as::<
                _,
                (
                    String,
                    String,
                    i64,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                ),
            >(&sql);
            for id in chunk {
                query = query.bind(id);
            }
            let early = query.fetch_all(&mut *$tx).await?;
            if early.is_empty() {
                continue;
            }
            let mut claimed = Vec::with_capacity(early.len());
            for (id, status, at_ms, code, provider_code, reason) in early {
                let event = StatusEvent {
                    status: parse("early_statuses.status", &status)?,
                    at: at(at_ms),
                    error: $crate::messages::message_error(code, provider_code, reason),
                };
                if apply_status!($tx, &id, &event) {
                    moved.push((id.clone(), event.status));
                }
                claimed.push(id);
            }
            let sql = format!(
                "DELETE FROM early_statuses WHERE EXISTS (SELECT 1 FROM messages m \
                 WHERE m.channel = early_statuses.channel \
                 AND m.provider_message_id = early_statuses.provider_message_id \
                 AND m.id IN ({}))",
                crate::rows::placeholders(1, claimed.len())
            );
            let sql = crate::rows::sql_for(&*$tx, sql);
            let mut query = sqlx::query(&sql);
            for id in &claimed {
                query = query.bind(id);
            }
            query.execute(&mut *$tx).await?;
        }
        moved
    }};
}

/// A conversation that a batch of inbound messages writes to, and what they bring it.
struct Touched {
    id: ConversationId,
    /// The first message's arrival: when the customer began to wait, if they were not.
    first_at: OffsetDateTime,
    last_at: OffsetDateTime,
    /// The latest of the provider's timestamps: the window runs from it.
    sent_at: OffsetDateTime,
    count: i64,
    /// The last message's preview.
    preview: String,
}

/// The conversations that inbound messages (in the order they came) write to, each once.
fn touched_conversations(records: &[&InboundRecord]) -> Vec<Touched> {
    let mut touched: Vec<Touched> = Vec::new();
    let mut index: HashMap<ConversationId, usize> = HashMap::new();
    for record in records {
        let message = &record.message;
        let Some(id) = message.conversation_id else {
            continue;
        };
        let sent_at = message.provider_timestamp.unwrap_or(message.created_at);
        let preview = switchboard_core::conversation::preview(message);
        match index.get(&id) {
            Some(&i) => {
                let t = &mut touched[i];
                t.last_at = t.last_at.max(message.created_at);
                t.sent_at = t.sent_at.max(sent_at);
                t.count += 1;
                t.preview = preview;
            }
            None => {
                index.insert(id, touched.len());
                touched.push(Touched {
                    id,
                    first_at: message.created_at,
                    last_at: message.created_at,
                    sent_at,
                    count: 1,
                    preview,
                });
            }
        }
    }
    touched
}

/// The conversations these messages belong to, as the lock takes them.
fn conversation_ids<'a>(messages: impl Iterator<Item = &'a Message>) -> Vec<String> {
    messages
        .filter_map(|m| m.conversation_id.map(|c| c.to_string()))
        .collect()
}

/// Locks conversation rows for the rest of the caller's (PostgreSQL) transaction, all in one
/// order, so that two transactions locking some of the same rows cannot deadlock; as a
/// non-key update would, so that rows referring to them can still be inserted by others.
macro_rules! lock_conversations {
    ($tx:ident, $ids:expr) => {{
        const ROWS: usize = 1000;
        let mut ids: Vec<String> = $ids;
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(ROWS) {
            let (list, _) = $crate::bulk::in_list(&*$tx, 1, false);
            let sql = format!(
                "SELECT id FROM conversations WHERE id {list} ORDER BY id FOR NO KEY UPDATE"
            );
            let query = $crate::bulk::bind_list(&*$tx, sqlx::query(&sql), chunk);
            query.execute(&mut *$tx).await?;
        }
    }};
}

/// Records inbound messages one by one inside the caller's transaction, each under a
/// savepoint; the result of each.
macro_rules! record_inbound_in {
    ($tx:ident, $records:expr, $lock_rows:expr) => {{
        let lock_rows: bool = $lock_rows;
        let records: Vec<&InboundRecord> = $records;
        let tx = &mut *$tx;
        {
            let mut results = Vec::with_capacity(records.len());
            for record in records {
                sqlx::query("SAVEPOINT inbound").execute(&mut *tx).await?;
                let recorded: Result<()> = async {
                    let message = &record.message;
                    let sent_at = message.provider_timestamp.unwrap_or(message.created_at);
                    insert_message_row!(tx, message);
                    let quiet = match &record.answer {
                        Some(answer) => {
                            let closed = close_interaction!(
                                tx,
                                answer,
                                message.id.to_string(),
                                message.created_at
                            );
                            // The campaign message joins the conversation its answer is in, so
                            // that whoever reads the answer sees what it answers.
                            if let (true, Some(conversation)) = (closed, message.conversation_id) {
                                sqlx::query(
                                    "UPDATE messages SET conversation_id = $1 \
                                     WHERE conversation_id IS NULL AND id = (SELECT message_id \
                                     FROM campaign_recipients WHERE campaign_id = $2 \
                                     AND contact_id = $3)",
                                )
                                .bind(conversation.to_string())
                                .bind(answer.campaign_id.to_string())
                                .bind(answer.contact_id.to_string())
                                .execute(&mut *tx)
                                .await?;
                            }
                            closed && answer.quiet
                        }
                        None => false,
                    };
                    if let Some(conversation) = message.conversation_id {
                        // The customer's message reopens a closed conversation (R5.2), and
                        // that move is part of its history like any other.
                        // Lock the row before reading its state (the portable SELECT ...
                        // FOR UPDATE), so that a reply claiming it meanwhile cannot leave a
                        // "reopened" in the history of a conversation that stayed claimed.
                        if lock_rows {
                            sqlx::query(
                                "UPDATE conversations SET updated_at = updated_at WHERE id = $1",
                            )
                            .bind(conversation.to_string())
                            .execute(&mut *tx)
                            .await?;
                        }
                        // A quick-reply answer to a campaign needs no one: it neither reopens
                        // a conversation nor leaves a fresh one waiting in Unclaimed.
                        if !quiet {
                            sqlx::query(
                                "INSERT INTO conversation_events (id, conversation_id, action, \
                                 from_state, to_state, assignee_id, actor, at) \
                                 SELECT $1, id, 'reopened', 'closed', 'unclaimed', NULL, \
                                 'contact', $3 FROM conversations WHERE id = $2 \
                                 AND state = 'closed'",
                            )
                            .bind(switchboard_core::ConversationEventId::new().to_string())
                            .bind(conversation.to_string())
                            .bind(ms(message.created_at))
                            .execute(&mut *tx)
                            .await?;
                        }
                        sqlx::query(
                            "UPDATE conversations SET last_message_at = $2, activity_at = $2, \
                             last_inbound_at = CASE WHEN last_inbound_at IS NULL \
                               OR last_inbound_at < $3 THEN $3 ELSE last_inbound_at END, \
                             state = CASE WHEN $5 THEN (CASE WHEN state = 'unclaimed' \
                               AND assignee_id IS NULL AND waiting_since IS NULL THEN 'closed' \
                               ELSE state END) \
                               WHEN state = 'closed' THEN 'unclaimed' ELSE state END, \
                             assignee_id = CASE WHEN NOT $5 AND state = 'closed' THEN NULL \
                               ELSE assignee_id END, \
                             waiting_since = CASE WHEN $5 THEN waiting_since \
                               WHEN state = 'closed' THEN $2 \
                               ELSE COALESCE(waiting_since, $2) END, \
                             unread_count = unread_count + CASE WHEN $5 THEN 0 ELSE 1 END, \
                             preview = $4, \
                             preview_direction = 'inbound', updated_at = $2 WHERE id = $1",
                        )
                        .bind(conversation.to_string())
                        .bind(ms(message.created_at))
                        .bind(ms(sent_at))
                        .bind(switchboard_core::conversation::preview(message))
                        .bind(quiet)
                        .execute(&mut *tx)
                        .await?;
                    }
                    if let Some(event) = &record.consent {
                        insert_consent_event!(tx, event);
                    }
                    if let Some(job) = &record.job {
                        insert_job!(tx, job, message.created_at);
                    }
                    Ok(())
                }
                .await;
                let end = if recorded.is_ok() {
                    "RELEASE SAVEPOINT inbound"
                } else {
                    "ROLLBACK TO SAVEPOINT inbound"
                };
                sqlx::query(end).execute(&mut *tx).await?;
                results.push(recorded);
            }
            results
        }
    }};
}
impl Store {
    /// A provider message id seen before (a webhook delivered twice) names the message that
    /// already has it, so the caller can answer with that one.
    async fn name_duplicate(&self, result: Result<()>, message: &Message) -> Result<()> {
        match result {
            Err(StoreError::Conflict { field, .. }) if field == "provider_message_id" => {
                let existing = match &message.provider_message_id {
                    Some(pid) => self
                        .find_message_by_provider_id(message.channel, pid)
                        .await?
                        .map(|m| m.id.to_string()),
                    None => None,
                };
                Err(StoreError::Conflict {
                    field,
                    existing_id: existing,
                })
            }
            other => other,
        }
    }

    /// Inserts a message with its timeline so far. A provider message id seen before (a
    /// webhook delivered twice) is a [`StoreError::Conflict`] naming the message that has it.
    pub async fn insert_message(&self, message: &Message) -> Result<()> {
        if !message.has_content() {
            return Err(StoreError::Corrupt(
                "a message needs text, a template or media".to_owned(),
            ));
        }
        let result: Result<()> = async {
            write_tx!(self, |tx| {
                insert_message_row!(tx, message);
            });
            Ok(())
        }
        .await;
        match self.name_duplicate(result, message).await {
            Err(StoreError::InUse) => Err(StoreError::MissingReference {
                field: "message".to_owned(),
                id: "sender, contact or conversation".to_owned(),
            }),
            other => other,
        }
    }

    pub async fn get_message(&self, id: MessageId) -> Result<Message> {
        let sql = format!(
            "{SELECT_JOINED} FROM messages m LEFT JOIN message_status_events e \
             ON e.message_id = m.id WHERE m.id = $1 ORDER BY e.seq"
        );
        let rows: Vec<MessageEventRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_all(db)
                .await?
        });
        fold_messages(rows)?.pop().ok_or(StoreError::NotFound)
    }

    pub async fn find_message_by_provider_id(
        &self,
        channel: Channel,
        provider_message_id: &str,
    ) -> Result<Option<Message>> {
        let sql = format!(
            "{SELECT_JOINED} FROM messages m LEFT JOIN message_status_events e \
             ON e.message_id = m.id WHERE m.channel = $1 AND m.provider_message_id = $2 \
             ORDER BY e.seq"
        );
        let rows: Vec<MessageEventRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(channel.as_str())
                .bind(provider_message_id)
                .fetch_all(db)
                .await?
        });
        Ok(fold_messages(rows)?.pop())
    }

    /// Keeps a status whose message is not known yet (its send may be in the moments between
    /// the provider's answer and its recording), to be applied as the send is recorded. The
    /// same status again is kept once; those kept for more than an hour are forgotten.
    pub async fn keep_early_status(
        &self,
        channel: Channel,
        provider_message_id: &str,
        event: &StatusEvent,
        now: OffsetDateTime,
    ) -> Result<()> {
        let error = event.error.as_ref();
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO early_statuses (channel, provider_message_id, status, at, \
                 error_code, error_provider_code, error_reason, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (channel, provider_message_id, status) DO NOTHING",
            )
            .bind(channel.as_str())
            .bind(provider_message_id)
            .bind(event.status.as_str())
            .bind(ms(event.at))
            .bind(error.map(|e| e.code.as_str()))
            .bind(error.and_then(|e| e.provider_code.as_deref()))
            .bind(error.map(|e| e.reason.as_str()))
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM early_statuses WHERE received_at < $1")
                .bind(ms(now - time::Duration::hours(1)))
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    pub async fn list_messages(
        &self,
        filter: &MessageFilter,
        page: &PageRequest,
    ) -> Result<Page<Message>> {
        let (after, order) = page.keyset("id", 9);
        let (_, outer_order) = page.keyset("m.id", 9);
        let sql = format!(
            "{SELECT_JOINED} FROM (SELECT * FROM messages WHERE \
             (CAST($1 AS TEXT) IS NULL OR contact_id = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR sender_id = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR conversation_id = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR channel = $4) \
             AND (CAST($5 AS TEXT) IS NULL OR direction = $5) \
             AND (CAST($6 AS TEXT) IS NULL OR status = $6) \
             AND (CAST($7 AS BIGINT) IS NULL OR created_at >= $7) \
             AND (CAST($8 AS BIGINT) IS NULL OR created_at < $8) \
             AND {after} ORDER BY {order} LIMIT $10) m \
             LEFT JOIN message_status_events e ON e.message_id = m.id \
             ORDER BY {outer_order}, e.seq"
        );
        let rows: Vec<MessageEventRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(filter.contact_id.map(|v| v.to_string()))
                .bind(filter.sender_id.map(|v| v.to_string()))
                .bind(filter.conversation_id.map(|v| v.to_string()))
                .bind(filter.channel.map(Channel::as_str))
                .bind(filter.direction.map(|d| d.as_str()))
                .bind(filter.status.map(DeliveryStatus::as_str))
                .bind(filter.since.map(ms))
                .bind(filter.until.map(ms))
                .bind(&page.after)
                .bind(page.fetch_limit())
                .fetch_all(db)
                .await?
        });
        Ok(Page::from_overfetch(fold_messages(rows)?, page, |m| {
            m.id.to_string()
        }))
    }

    /// Moves a message to a new status if that is a step forward, appending it to the
    /// timeline. Returns whether anything changed: a late or repeated status is ignored.
    pub async fn record_status(&self, id: MessageId, event: &StatusEvent) -> Result<bool> {
        let id = id.to_string();
        let changed = write_tx!(self, |tx| {
            let changed = apply_status!(tx, &id, event);
            if !changed {
                let exists: Option<(String,)> =
                    sqlx::query_as("SELECT id FROM messages WHERE id = $1")
                        .bind(&id)
                        .fetch_optional(&mut *tx)
                        .await?;
                exists.ok_or(StoreError::NotFound)?;
            }
            changed
        });
        Ok(changed)
    }

    /// Writes an allowed outbound message, its send job (due at `send_at` for a scheduled
    /// message), the decision that allowed it, the idempotency key and a consent change the
    /// send makes (an opt-in request), all in one transaction: all of them exist or none does.
    /// A reply's move of its conversation is checked against `guard` in the same transaction.
    pub async fn create_outbound(
        &self,
        message: &Message,
        job: &NewJob,
        decision: &DecisionRecord,
        idempotency: Option<&IdempotencyKey>,
        consent: Option<&switchboard_core::consent::ConsentEvent>,
        guard: Option<&crate::conversations::ReplyGuard>,
    ) -> Result<()> {
        let record = OutboundRecord {
            message: message.clone(),
            job: job.clone(),
            decision: decision.clone(),
            idempotency: idempotency.cloned(),
            consent: consent.cloned(),
            guard: guard.cloned(),
        };
        let mut results = self
            .create_outbound_batch(std::slice::from_ref(&record))
            .await?;
        results.pop().unwrap_or(Ok(()))
    }

    /// Writes many outbound messages in one transaction (a group commit), each as
    /// [`Store::create_outbound`] would and under a savepoint of its own, so that one refused
    /// (a conversation claimed meanwhile, an idempotency key taken) leaves the others written.
    /// If the transaction itself fails (on PostgreSQL, a deadlock with another writer of the
    /// same conversations), each is written alone.
    pub async fn create_outbound_batch(
        &self,
        records: &[OutboundRecord],
    ) -> Result<Vec<Result<()>>> {
        match self.create_outbound_together(records).await {
            Ok(results) => Ok(results),
            Err(error) if records.len() > 1 => {
                tracing::debug!(?error, "a batch of sends is written one by one");
                let mut results = Vec::with_capacity(records.len());
                for record in records {
                    let mut one = self
                        .create_outbound_together(std::slice::from_ref(record))
                        .await?;
                    results.push(one.pop().unwrap_or(Ok(())));
                }
                Ok(results)
            }
            Err(error) => Err(error),
        }
    }

    async fn create_outbound_together(
        &self,
        records: &[OutboundRecord],
    ) -> Result<Vec<Result<()>>> {
        // At most four parameters a row: well under both engines' limits.
        const ROWS: usize = 1000;
        let lock_rows = self.backend() == crate::Backend::Postgres && records.len() > 1;
        // A send that moves its conversation, takes an idempotency key or changes consent can
        // be refused on its own: it goes under a savepoint of its own, and so do the others
        // of its conversation, in order. The rest are written together.
        let careful_conversations: HashSet<Option<ConversationId>> = records
            .iter()
            .filter(|r| !r.is_plain())
            .map(|r| r.message.conversation_id)
            .collect();
        let together: Vec<bool> = records
            .iter()
            .map(|r| r.is_plain() && !careful_conversations.contains(&r.message.conversation_id))
            .collect();
        let pick = |wanted: bool| -> Vec<&OutboundRecord> {
            records
                .iter()
                .zip(&together)
                .filter(|(_, t)| **t == wanted)
                .map(|(r, _)| r)
                .collect()
        };
        let (plain, careful) = (pick(true), pick(false));
        let careful_results = write_tx!(self, |tx| {
            if lock_rows {
                lock_conversations!(tx, conversation_ids(records.iter().map(|r| &r.message)));
            }
            if !plain.is_empty() {
                let messages: Vec<&Message> = plain.iter().map(|r| &r.message).collect();
                let inserted = insert_message_rows!(tx, &messages);
                if inserted.len() != messages.len() {
                    return Err(StoreError::Batch(
                        "a send of the batch was already written".to_owned(),
                    ));
                }
                let jobs: Vec<&NewJob> = plain.iter().map(|r| &r.job).collect();
                let queued_at = plain
                    .iter()
                    .map(|r| r.message.created_at)
                    .max()
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                insert_job_rows!(tx, &jobs, queued_at);
                let decisions: Vec<&DecisionRecord> = plain.iter().map(|r| &r.decision).collect();
                insert_decision_rows!(tx, &decisions);
                let touched = answered_conversations(&messages);
                for chunk in touched.chunks(ROWS) {
                    use crate::bulk::Kind;
                    const KINDS: [Kind; 4] = [Kind::Text, Kind::Int, Kind::Text, Kind::Bool];
                    let mut rows = crate::bulk::Rows::with_capacity(&KINDS, chunk.len());
                    for (id, at, preview, answers) in chunk {
                        rows.push([
                            id.to_string().into(),
                            ms(*at).into(),
                            preview.clone().into(),
                            (*answers).into(),
                        ]);
                    }
                    let sql = format!(
                        "WITH v (id, at, preview, answers) AS ({}) \
                         UPDATE conversations SET last_message_at = v.at, activity_at = v.at, \
                         updated_at = v.at, preview = v.preview, \
                         preview_direction = 'outbound', \
                         waiting_since = CASE WHEN v.answers THEN NULL \
                           ELSE conversations.waiting_since END \
                         FROM v WHERE conversations.id = v.id",
                        crate::bulk::source(&*tx, &rows, 1)
                    );
                    let sql = crate::rows::sql_for(&*tx, sql);
                    crate::bulk::bind(&*tx, sqlx::query(&sql), rows)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            let mut results = Vec::with_capacity(careful.len());
            for record in &careful {
                sqlx::query("SAVEPOINT outbound").execute(&mut *tx).await?;
                let written: Result<()> = async {
                    let message = &record.message;
                    if let (Some(guard), Some(conversation)) =
                        (&record.guard, message.conversation_id)
                    {
                        let id = conversation.to_string();
                        if !move_conversation_row!(
                            tx,
                            &id,
                            guard.expected,
                            guard.next,
                            message.created_at
                        ) {
                            return Err(StoreError::Conflict {
                                field: "conversation_state".to_owned(),
                                existing_id: None,
                            });
                        }
                        if guard.expected != guard.next {
                            insert_conversation_event!(tx, &guard.event);
                        }
                    }
                    record_idempotency!(
                        tx,
                        record.idempotency.as_ref(),
                        "message",
                        message.id.to_string(),
                        message.created_at
                    );
                    insert_message_row!(tx, message);
                    insert_job!(tx, &record.job, message.created_at);
                    insert_decision!(tx, &record.decision);
                    if let Some(event) = &record.consent {
                        insert_consent_event!(tx, event);
                    }
                    if let Some((id, at, preview, answers)) =
                        answered_conversations(&[message]).pop()
                    {
                        sqlx::query(
                            "UPDATE conversations SET last_message_at = $2, activity_at = $2, \
                             updated_at = $2, preview = $3, preview_direction = 'outbound', \
                             waiting_since = CASE WHEN $4 THEN NULL ELSE waiting_since END \
                             WHERE id = $1",
                        )
                        .bind(id.to_string())
                        .bind(ms(at))
                        .bind(preview)
                        .bind(answers)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Ok(())
                }
                .await;
                let end = if written.is_ok() {
                    "RELEASE SAVEPOINT outbound"
                } else {
                    "ROLLBACK TO SAVEPOINT outbound"
                };
                sqlx::query(end).execute(&mut *tx).await?;
                results.push(written);
            }
            results
        });
        let mut careful_results = careful_results.into_iter();
        Ok(together
            .iter()
            .map(|&together| {
                if together {
                    Ok(())
                } else {
                    careful_results
                        .next()
                        .unwrap_or_else(|| Err(StoreError::Batch("a send was left out".to_owned())))
                }
            })
            .collect())
    }

    /// Records an inbound message: the message, its conversation's activity (a closed
    /// conversation reopens unclaimed, R5.2), a consent change its text asked for, and the job
    /// that downloads its media, in one transaction. A provider message id seen before is a
    /// [`StoreError::Conflict`].
    pub async fn record_inbound(
        &self,
        message: &Message,
        consent: Option<&switchboard_core::consent::ConsentEvent>,
        job: Option<&NewJob>,
    ) -> Result<()> {
        let record = InboundRecord {
            message: message.clone(),
            consent: consent.cloned(),
            job: job.cloned(),
            answer: None,
        };
        let mut results = self
            .record_inbound_batch(std::slice::from_ref(&record))
            .await?;
        results.pop().unwrap_or(Ok(()))
    }

    /// Records many inbound messages in one transaction (a group commit), each as
    /// [`Store::record_inbound`] would; a duplicate is refused alone, leaving the others
    /// recorded. The outer error is the transaction's own.
    ///
    /// The batch is written with a few multi-row statements rather than several statements a
    /// message: at thousands of messages a second the statements themselves are the cost. If
    /// that fails (a contact deleted meanwhile fails the statement that names it, and with it
    /// the batch), each message is tried again alone, so that only the one at fault fails.
    pub async fn record_inbound_batch(&self, records: &[InboundRecord]) -> Result<Vec<Result<()>>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let results = match self.record_inbound_together(records).await {
            Ok(results) => results,
            Err(error) => {
                tracing::debug!(?error, "a batch of inbound messages is written one by one");
                self.record_inbound_each(records).await?
            }
        };
        let mut named = Vec::with_capacity(results.len());
        for (result, record) in results.into_iter().zip(records) {
            named.push(self.name_duplicate(result, &record.message).await);
        }
        Ok(named)
    }

    async fn record_inbound_together(&self, records: &[InboundRecord]) -> Result<Vec<Result<()>>> {
        // At most 23 parameters a row (a message): 9,200 a statement, well under both
        // engines' limits.
        const ROWS: usize = 400;
        // An answer to a campaign can close its conversation rather than reopen it: those
        // conversations, with all of their messages in the batch, go one by one, in order.
        let answered: HashSet<ConversationId> = records
            .iter()
            .filter(|r| r.answer.is_some())
            .filter_map(|r| r.message.conversation_id)
            .collect();
        let (careful, plain): (Vec<usize>, Vec<usize>) = (0..records.len()).partition(|&i| {
            let record = &records[i];
            record.answer.is_some()
                || record
                    .message
                    .conversation_id
                    .is_some_and(|c| answered.contains(&c))
        });
        let lock_rows = self.backend() == crate::Backend::Postgres;
        let mut results: Vec<Option<Result<()>>> = (0..records.len()).map(|_| None).collect();
        let careful_results = write_tx!(self, |tx| {
            let candidates: Vec<&Message> = plain.iter().map(|&i| &records[i].message).collect();
            if lock_rows {
                // Before the messages, whose foreign keys would otherwise share-lock these
                // rows first and leave two batches each waiting for the other.
                lock_conversations!(tx, conversation_ids(records.iter().map(|r| &r.message)));
            }
            let inserted = insert_message_rows!(tx, &candidates);
            let fresh: Vec<&InboundRecord> = plain
                .iter()
                .map(|&i| &records[i])
                .filter(|r| inserted.contains(&r.message.id.to_string()))
                .collect();
            let touched = touched_conversations(&fresh);
            for chunk in touched.chunks(ROWS) {
                use crate::bulk::{Kind, Rows};
                const EVENTS: [Kind; 3] = [Kind::Text, Kind::Text, Kind::Int];
                const ACTIVITY: [Kind; 6] = [
                    Kind::Text,
                    Kind::Int,
                    Kind::Int,
                    Kind::Int,
                    Kind::Int,
                    Kind::Text,
                ];
                let mut events = Rows::with_capacity(&EVENTS, chunk.len());
                let mut activity = Rows::with_capacity(&ACTIVITY, chunk.len());
                for t in chunk {
                    events.push([
                        switchboard_core::ConversationEventId::new()
                            .to_string()
                            .into(),
                        t.id.to_string().into(),
                        ms(t.first_at).into(),
                    ]);
                    activity.push([
                        t.id.to_string().into(),
                        ms(t.first_at).into(),
                        ms(t.last_at).into(),
                        ms(t.sent_at).into(),
                        t.count.into(),
                        t.preview.clone().into(),
                    ]);
                }
                // A customer's message reopens a closed conversation (R5.2), and that move is
                // part of its history like any other.
                let sql = format!(
                    "WITH v (event_id, conversation_id, at) AS ({}) \
                     INSERT INTO conversation_events (id, conversation_id, action, from_state, \
                     to_state, assignee_id, actor, at) SELECT v.event_id, c.id, 'reopened', \
                     'closed', 'unclaimed', NULL, 'contact', v.at FROM v \
                     JOIN conversations c ON c.id = v.conversation_id WHERE c.state = 'closed'",
                    crate::bulk::source(&*tx, &events, 1)
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                crate::bulk::bind(&*tx, sqlx::query(&sql), events)
                    .execute(&mut *tx)
                    .await?;
                let sql = format!(
                    "WITH v (id, first_at, last_at, sent_at, n, preview) AS ({}) \
                     UPDATE conversations SET last_message_at = v.last_at, \
                     activity_at = v.last_at, \
                     last_inbound_at = CASE WHEN conversations.last_inbound_at IS NULL \
                       OR conversations.last_inbound_at < v.sent_at THEN v.sent_at \
                       ELSE conversations.last_inbound_at END, \
                     state = CASE WHEN conversations.state = 'closed' THEN 'unclaimed' \
                       ELSE conversations.state END, \
                     assignee_id = CASE WHEN conversations.state = 'closed' THEN NULL \
                       ELSE conversations.assignee_id END, \
                     waiting_since = CASE WHEN conversations.state = 'closed' THEN v.first_at \
                       ELSE COALESCE(conversations.waiting_since, v.first_at) END, \
                     unread_count = conversations.unread_count + v.n, \
                     preview = v.preview, preview_direction = 'inbound', \
                     updated_at = v.last_at FROM v WHERE conversations.id = v.id",
                    crate::bulk::source(&*tx, &activity, 1)
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                crate::bulk::bind(&*tx, sqlx::query(&sql), activity)
                    .execute(&mut *tx)
                    .await?;
            }
            for record in &fresh {
                if let Some(event) = &record.consent {
                    insert_consent_event!(tx, event);
                }
                if let Some(job) = &record.job {
                    insert_job!(tx, job, record.message.created_at);
                }
            }
            for &i in &plain {
                let written = inserted.contains(&records[i].message.id.to_string());
                results[i] = Some(if written {
                    Ok(())
                } else {
                    Err(StoreError::Conflict {
                        field: "provider_message_id".to_owned(),
                        existing_id: None,
                    })
                });
            }
            let careful: Vec<&InboundRecord> = careful.iter().map(|&i| &records[i]).collect();
            record_inbound_in!(tx, careful, lock_rows)
        });
        for (i, result) in careful.into_iter().zip(careful_results) {
            results[i] = Some(result);
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(StoreError::Batch("a message was left out".to_owned())))
            })
            .collect())
    }

    /// Records each message under a savepoint of its own, so that one refused leaves the
    /// others recorded.
    async fn record_inbound_each(&self, records: &[InboundRecord]) -> Result<Vec<Result<()>>> {
        let lock_rows = self.backend() == crate::Backend::Postgres;
        let records: Vec<&InboundRecord> = records.iter().collect();
        Ok(write_tx!(self, |tx| record_inbound_in!(
            tx, records, lock_rows
        )))
    }

    /// When the contact last wrote to this sender, by the provider's clock: the start of the
    /// customer-service window. Every inbound message belongs to the conversation of its
    /// contact and sender, which keeps the latest of them as it records each (whatever order
    /// they arrive in): one row to read, where the messages would be all of the customer's
    /// history.
    pub async fn last_inbound_at(
        &self,
        contact: ContactId,
        sender: SenderId,
    ) -> Result<Option<OffsetDateTime>> {
        Ok(self
            .last_inbound_among(sender, &[contact])
            .await?
            .pop()
            .map(|(_, latest)| latest))
    }

    /// [`Store::last_inbound_at`] for several of the sender's contacts at once; a contact
    /// who never wrote is left out.
    pub async fn last_inbound_among(
        &self,
        sender: SenderId,
        contacts: &[ContactId],
    ) -> Result<Vec<(ContactId, OffsetDateTime)>> {
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i64)> = read_pool!(self, |db| {
            let (list, next) = crate::bulk::in_list(db, 1, false);
            let sql = format!(
                "SELECT contact_id, last_inbound_at FROM conversations \
                 WHERE contact_id {list} AND sender_id = ${next} AND last_inbound_at IS NOT NULL"
            );
            let sql = crate::rows::sql_for(db, sql);
            let query = crate::bulk::bind_list(db, sqlx::query_as(&sql), contacts);
            query.bind(sender.to_string()).fetch_all(db).await?
        });
        rows.into_iter()
            .map(|(contact, latest)| Ok((parse("messages.contact_id", &contact)?, at(latest))))
            .collect()
    }

    /// How many distinct contacts this sender reached with business-initiated messages since
    /// `since`, and whether `contact` is one of them (R8.4's rolling 24 hours).
    pub async fn business_initiated_reach(
        &self,
        sender: SenderId,
        contact: Option<ContactId>,
        since: OffsetDateTime,
    ) -> Result<(i64, bool)> {
        self.reach(sender, contact, since, "status <> 'failed'")
            .await
    }

    /// How many distinct contacts this sender's business-initiated messages have actually
    /// reached (handed to the provider) since `since`, and whether `contact` is one of them:
    /// the messaging-limit tier as it stands when a message is about to go.
    pub async fn business_initiated_sent_reach(
        &self,
        sender: SenderId,
        contact: Option<ContactId>,
        since: OffsetDateTime,
    ) -> Result<(i64, bool)> {
        self.reach(sender, contact, since, "provider_message_id IS NOT NULL")
            .await
    }

    /// Which of `contacts` this sender reached with business-initiated messages since `since`
    /// (reaching them again does not count against the messaging limit).
    pub async fn business_initiated_reached_among(
        &self,
        sender: SenderId,
        contacts: &[ContactId],
        since: OffsetDateTime,
    ) -> Result<Vec<ContactId>> {
        self.reached_among(sender, contacts, since, "status <> 'failed'")
            .await
    }

    /// Which of `contacts` this sender's business-initiated messages have actually reached
    /// (handed to the provider) since `since`.
    pub async fn business_initiated_sent_reached_among(
        &self,
        sender: SenderId,
        contacts: &[ContactId],
        since: OffsetDateTime,
    ) -> Result<Vec<ContactId>> {
        self.reached_among(sender, contacts, since, "provider_message_id IS NOT NULL")
            .await
    }

    /// The contacts among `contacts` of the sender's business-initiated messages since
    /// `since` that `counted` (a fixed SQL condition) selects.
    async fn reached_among(
        &self,
        sender: SenderId,
        contacts: &[ContactId],
        since: OffsetDateTime,
        counted: &'static str,
    ) -> Result<Vec<ContactId>> {
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String,)> = read_pool!(self, |db| {
            let (list, _) = crate::bulk::in_list(db, 3, false);
            let sql = format!(
                "SELECT DISTINCT contact_id FROM messages WHERE sender_id = $1 \
                 AND business_initiated AND created_at >= $2 AND {counted} \
                 AND contact_id {list}"
            );
            let sql = crate::rows::sql_for(db, sql);
            let query = sqlx::query_as(&sql)
                .bind(sender.to_string())
                .bind(ms(since));
            crate::bulk::bind_list(db, query, contacts)
                .fetch_all(db)
                .await?
        });
        rows.into_iter()
            .map(|(c,)| parse("messages.contact_id", &c))
            .collect()
    }

    /// Distinct contacts of the sender's business-initiated messages since `since` that
    /// `counted` (a fixed SQL condition) selects, and whether `contact` is among them.
    async fn reach(
        &self,
        sender: SenderId,
        contact: Option<ContactId>,
        since: OffsetDateTime,
        counted: &'static str,
    ) -> Result<(i64, bool)> {
        let sql = format!(
            "SELECT COUNT(DISTINCT contact_id), \
             COUNT(CASE WHEN contact_id = $3 THEN 1 END) FROM messages \
             WHERE sender_id = $1 AND business_initiated = TRUE AND created_at >= $2 \
             AND {counted}"
        );
        let (count, includes): (i64, i64) = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(sender.to_string())
                .bind(ms(since))
                .bind(contact.map(|c| c.to_string()))
                .fetch_one(db)
                .await?
        });
        Ok((count, includes > 0))
    }

    /// Records the provider's id for a message it accepted; an id already set is kept (a
    /// message is sent once).
    pub async fn set_provider_message_id(
        &self,
        id: MessageId,
        provider_message_id: &str,
    ) -> Result<bool> {
        let changed = write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE messages SET provider_message_id = $2 \
                 WHERE id = $1 AND provider_message_id IS NULL",
            )
            .bind(id.to_string())
            .bind(provider_message_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// The messages with these ids (those that exist), with their timelines.
    pub async fn get_messages(&self, ids: &[MessageId]) -> Result<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<MessageEventRow> = read_pool!(self, |db| {
            let (list, _) = crate::bulk::in_list(db, 1, false);
            let sql = format!(
                "{SELECT_JOINED} FROM messages m LEFT JOIN message_status_events e \
                 ON e.message_id = m.id WHERE m.id {list} ORDER BY m.id, e.seq"
            );
            let sql = crate::rows::sql_for(db, sql);
            crate::bulk::bind_list(db, sqlx::query_as(&sql), ids)
                .fetch_all(db)
                .await?
        });
        fold_messages(rows)
    }

    /// Records what a batch of send attempts came to in one transaction: each message's
    /// provider id and new status, and each job's outcome. What was sent is recorded even when
    /// the job's lease was lost meanwhile (the provider has the message either way); only the
    /// job's own update is fenced. Returns, per completion, whether its lease still held.
    pub async fn complete_sends(
        &self,
        completions: &[SendCompletion],
        now: OffsetDateTime,
    ) -> Result<CompletedSends> {
        if completions.is_empty() {
            return Ok(CompletedSends::default());
        }
        // Two parameters a row at most: well under both engines' limits.
        const ROWS: usize = 1000;
        // Nearly always a send is done and its status recorded already, with nothing to
        // follow: those finish together; anything else one by one.
        let simple = |c: &SendCompletion| {
            matches!(c.outcome, Outcome::Done)
                && (c.recorded || c.message.is_none())
                && c.follow_ups.is_empty()
        };
        let completed = write_tx!(self, |tx| {
            let mut reported = HashMap::new();
            let mut finished_together: HashSet<&str> = HashSet::new();
            let together: Vec<&SendCompletion> = completions.iter().filter(|c| simple(c)).collect();
            for chunk in together.chunks(ROWS) {
                use crate::bulk::Kind;
                const KINDS: [Kind; 3] = [Kind::Text, Kind::Text, Kind::Int];
                let mut rows = crate::bulk::Rows::with_capacity(&KINDS, chunk.len());
                for c in chunk {
                    rows.push([
                        c.lease.job.id.as_str().into(),
                        c.lease.owner.as_str().into(),
                        c.lease.job.attempt.into(),
                    ]);
                }
                let sql = format!(
                    "WITH v (id, owner, attempt) AS ({}) \
                     UPDATE jobs SET status = 'done', lease_owner = NULL, lease_until = NULL, \
                     updated_at = ${} FROM v WHERE jobs.id = v.id \
                     AND jobs.lease_owner = v.owner AND jobs.attempt = v.attempt \
                     AND jobs.status = 'running' RETURNING jobs.id",
                    crate::bulk::source(&*tx, &rows, 1),
                    crate::bulk::after(&*tx, &rows, 1)
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                let query = sqlx::query_as::<_, (String,)>(&sql);
                let query = crate::bulk::bind(&*tx, query, rows);
                let finished: HashSet<String> = query
                    .bind(ms(now))
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|(id,)| id)
                    .collect();
                let sent: Vec<String> = chunk
                    .iter()
                    .filter(|c| finished.contains(&c.lease.job.id))
                    .filter_map(|c| c.message.map(|m| m.to_string()))
                    .collect();
                for c in chunk {
                    if finished.contains(&c.lease.job.id) {
                        finished_together.insert(c.lease.job.id.as_str());
                    }
                }
                if sent.is_empty() {
                    continue;
                }
                // A campaign's recipients follow their messages (no rows for any other).
                let (list, _) = crate::bulk::in_list(&*tx, 4, false);
                let sql = format!(
                    "UPDATE campaign_recipients SET state = 'pending', sent_at = $1, \
                     next_at = $2 + 60000 * (SELECT response_timeout_minutes FROM campaigns \
                       WHERE id = campaign_id), code = NULL, reason = NULL, updated_at = $3 \
                     WHERE message_id {list} AND state IN ('queued', 'retry')"
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                let query = sqlx::query(&sql).bind(ms(now)).bind(ms(now)).bind(ms(now));
                crate::bulk::bind_list(&*tx, query, &sent)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut held = Vec::with_capacity(completions.len());
            for c in completions {
                if simple(c) {
                    held.push(finished_together.contains(c.lease.job.id.as_str()));
                    continue;
                }
                if let (Some(message), false) = (c.message, c.recorded) {
                    let id = message.to_string();
                    if let Some(provider_id) = &c.provider_message_id {
                        sqlx::query(
                            "UPDATE messages SET provider_message_id = $2 \
                             WHERE id = $1 AND provider_message_id IS NULL",
                        )
                        .bind(&id)
                        .bind(provider_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    if let Some(event) = &c.status {
                        apply_status!(tx, &id, event);
                    }
                    if c.provider_message_id.is_some() {
                        for (_, status) in apply_early_statuses!(tx, std::slice::from_ref(&id)) {
                            reported.insert(message, status);
                        }
                    }
                }
                let finished = finish_job_in!(tx, &c.lease, &c.outcome, now);
                if let (true, Some(message)) = (finished, c.message) {
                    // A campaign's recipient follows its message (a no-op for any other).
                    let error = c.status.as_ref().and_then(|s| s.error.as_ref());
                    let next = match &c.outcome {
                        Outcome::Done => Some("pending"),
                        Outcome::Retry { .. } => Some("retry"),
                        Outcome::Dead { .. } => Some("failed"),
                        Outcome::Defer { .. } => None,
                    };
                    let withdrawn = matches!(&c.outcome, Outcome::Dead { .. })
                        && error.is_some_and(|e| {
                            crate::campaigns::WITHDRAWN_CODES.contains(&e.code.as_str())
                        });
                    if withdrawn {
                        withdraw_recipient!(tx, message.to_string(), now);
                    } else if let Some(next) = next {
                        advance_recipient!(
                            tx,
                            message.to_string(),
                            next,
                            error.map(|e| e.code.as_str()),
                            error.map(|e| e.reason.as_str()).or(match &c.outcome {
                                Outcome::Dead { error } => Some(error.as_str()),
                                _ => None,
                            }),
                            now
                        );
                    }
                }
                if finished {
                    for job in &c.follow_ups {
                        insert_job!(tx, job, now);
                    }
                }
                held.push(finished);
            }
            CompletedSends { held, reported }
        });
        Ok(completed)
    }

    /// Records sends the providers accepted, in one transaction: each message takes its
    /// provider id (unless it has one) and moves to `sent` if that is forward. Done as soon as
    /// a send returns, so that statuses arriving at once find the message, and a node stopping
    /// does not forget what it sent. Answers the messages that statuses reported before their
    /// sends were recorded moved on, with the status each is at now.
    pub async fn record_sends(
        &self,
        sends: &[(MessageId, String, StatusEvent)],
    ) -> Result<HashMap<MessageId, DeliveryStatus>> {
        if sends.is_empty() {
            return Ok(HashMap::new());
        }
        // Three parameters a row: well under both engines' limits.
        const ROWS: usize = 1000;
        let moved = write_tx!(self, |tx| {
            for chunk in sends.chunks(ROWS) {
                use crate::bulk::Kind;
                const KINDS: [Kind; 2] = [Kind::Text, Kind::Text];
                let mut rows = crate::bulk::Rows::with_capacity(&KINDS, chunk.len());
                for (message, provider_id, _) in chunk {
                    rows.push([message.to_string().into(), provider_id.as_str().into()]);
                }
                let sql = format!(
                    "WITH v (id, provider_message_id) AS ({}) \
                     UPDATE messages SET provider_message_id = v.provider_message_id FROM v \
                     WHERE messages.id = v.id AND messages.provider_message_id IS NULL",
                    crate::bulk::source(&*tx, &rows, 1)
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                crate::bulk::bind(&*tx, sqlx::query(&sql), rows)
                    .execute(&mut *tx)
                    .await?;
            }
            // Nearly always every one of them is `sent`, without an error: those move
            // together; anything else goes one by one.
            let (plain, other): (Vec<_>, Vec<_>) = sends
                .iter()
                .partition(|(_, _, e)| e.status == DeliveryStatus::Sent && e.error.is_none());
            for (message, _, event) in other {
                apply_status!(tx, &message.to_string(), event);
            }
            let from: Vec<&str> = DeliveryStatus::ALL
                .iter()
                .filter(|s| s.can_advance_to(DeliveryStatus::Sent))
                .map(|s| s.as_str())
                .collect();
            for chunk in plain.chunks(ROWS) {
                use crate::bulk::Kind;
                const KINDS: [Kind; 2] = [Kind::Text, Kind::Int];
                let mut rows = crate::bulk::Rows::with_capacity(&KINDS, chunk.len());
                for (message, _, event) in chunk {
                    rows.push([message.to_string().into(), ms(event.at).into()]);
                }
                let values = crate::bulk::source(&*tx, &rows, 1);
                let (statuses, _) =
                    crate::bulk::in_list(&*tx, crate::bulk::after(&*tx, &rows, 1), false);
                let sql = format!(
                    "WITH v (id, at) AS ({values}) \
                     UPDATE messages SET status = 'sent', updated_at = v.at FROM v \
                     WHERE messages.id = v.id AND messages.status {statuses} \
                     RETURNING messages.id"
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                let query = sqlx::query_as::<_, (String,)>(&sql);
                let query = crate::bulk::bind(&*tx, query, rows);
                let query = crate::bulk::bind_list(&*tx, query, &from);
                let moved: HashSet<String> = query
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|(id,)| id)
                    .collect();
                // A message listed twice moved once: it gets one timeline row.
                let mut seen = HashSet::new();
                let moved: Vec<(String, i64)> = chunk
                    .iter()
                    .map(|(message, _, event)| (message.to_string(), ms(event.at)))
                    .filter(|(id, _)| moved.contains(id) && seen.insert(id.clone()))
                    .collect();
                if moved.is_empty() {
                    continue;
                }
                const MOVED: [Kind; 2] = [Kind::Text, Kind::Int];
                let mut rows = crate::bulk::Rows::with_capacity(&MOVED, moved.len());
                for (id, at) in moved {
                    rows.push([id.into(), at.into()]);
                }
                let sql = format!(
                    "WITH v (id, at) AS ({}) \
                     INSERT INTO message_status_events (message_id, seq, status, at) \
                     SELECT v.id, (SELECT COALESCE(MAX(e.seq), 0) + 1 \
                       FROM message_status_events e WHERE e.message_id = v.id), 'sent', v.at \
                     FROM v",
                    crate::bulk::source(&*tx, &rows, 1)
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                crate::bulk::bind(&*tx, sqlx::query(&sql), rows)
                    .execute(&mut *tx)
                    .await?;
            }
            let ids: Vec<String> = sends.iter().map(|(m, _, _)| m.to_string()).collect();
            apply_early_statuses!(tx, &ids)
        });
        let mut reported = HashMap::new();
        for (id, status) in moved {
            reported.insert(parse("messages.id", &id)?, status);
        }
        Ok(reported)
    }

    /// How many messages go in `direction` with `status` (any status when `None`).
    pub async fn count_messages(
        &self,
        direction: Direction,
        status: Option<DeliveryStatus>,
    ) -> Result<i64> {
        let (n,): (i64,) = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT COUNT(*) FROM messages WHERE direction = $1 \
                 AND ($2 IS NULL OR status = $2)",
            )
            .bind(direction.as_str())
            .bind(status.map(DeliveryStatus::as_str))
            .fetch_one(db)
            .await?
        });
        Ok(n)
    }
}
