//! Campaigns and their hopper: one row per recipient, which is the campaign's own queue.
//!
//! A runner claims due recipients by pushing their `next_at` ahead (a soft lease, so another
//! node skips them), decides each with the policy outside any transaction, then writes every
//! message with its send job and decision while moving the recipient on with a
//! compare-and-set on the claim. A node that dies between the two writes leaves nothing behind
//! but a lease that runs out: no message existed, so nothing can have been sent.

use std::collections::BTreeMap;

use sqlx::types::Json;
use switchboard_core::campaign::{Campaign, CampaignState, Held, RecipientState};
use switchboard_core::message::{DeliveryStatus, Message, MessageError, StatusEvent};
use switchboard_core::{CampaignId, ContactId, MessageId, SenderId};
use time::OffsetDateTime;

use crate::decisions::{insert_decision, insert_decision_rows, DecisionRecord};
use crate::jobs::{insert_job_rows, NewJob};
use crate::messages::{apply_status, insert_message_rows, insert_status_event, push_status_event};
use crate::rows::{at, ms, parse, parse_opt};
use crate::{IdempotencyKey, Page, PageRequest, Result, Store, StoreError};

/// The codes of a campaign message withdrawn from the queue because the campaign was paused
/// or stopped: its recipient was never reached.
pub const WITHDRAWN_CODES: [&str; 2] = ["campaign_paused", "campaign_stopped"];

/// A campaign message was withdrawn before it went: its recipient is fresh again, to be
/// decided anew when the campaign resumes.
macro_rules! withdraw_recipient {
    ($tx:ident, $message:expr, $now:expr) => {{
        sqlx::query(
            "UPDATE campaign_recipients SET state = 'fresh', message_id = NULL, code = NULL, \
             reason = NULL, next_at = $2, updated_at = $2 \
             WHERE message_id = $1 AND state IN ('queued', 'retry')",
        )
        .bind($message)
        .bind(ms($now))
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(crate) use withdraw_recipient;

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: String,
    name: String,
    sender_id: String,
    list_id: String,
    template_name: String,
    template_locale: String,
    variable_mapping: Json<BTreeMap<String, String>>,
    state: String,
    start_at: Option<i64>,
    end_at: Option<i64>,
    response_timeout_minutes: i64,
    rate_limit_per_second: Option<i64>,
    held_code: Option<String>,
    held_reason: Option<String>,
    held_until: Option<i64>,
    round: i64,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
}

const CAMPAIGN_COLUMNS: &str = "id, name, sender_id, list_id, template_name, template_locale, \
    variable_mapping, state, start_at, end_at, response_timeout_minutes, rate_limit_per_second, \
    held_code, held_reason, held_until, round, created_by, created_at, updated_at, started_at, \
    finished_at";

impl TryFrom<CampaignRow> for Campaign {
    type Error = StoreError;

    fn try_from(r: CampaignRow) -> Result<Self> {
        Ok(Campaign {
            id: parse("campaigns.id", &r.id)?,
            name: r.name,
            sender_id: parse("campaigns.sender_id", &r.sender_id)?,
            list_id: parse("campaigns.list_id", &r.list_id)?,
            template_name: r.template_name,
            template_locale: r.template_locale,
            variable_mapping: r.variable_mapping.0,
            state: parse("campaigns.state", &r.state)?,
            start_at: r.start_at.map(at),
            end_at: r.end_at.map(at),
            response_timeout_minutes: r.response_timeout_minutes,
            rate_limit_per_second: r.rate_limit_per_second,
            held: r.held_code.map(|code| Held {
                code,
                reason: r.held_reason.unwrap_or_default(),
                until: r.held_until.map(at),
            }),
            round: r.round,
            created_by: r.created_by,
            created_at: at(r.created_at),
            updated_at: at(r.updated_at),
            started_at: r.started_at.map(at),
            finished_at: r.finished_at.map(at),
        })
    }
}

/// A recipient the runner claimed: `claim` fences the write that follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claimed {
    pub contact_id: ContactId,
    pub claim: i64,
}

/// What the runner decided for one claimed recipient.
#[derive(Clone, Debug)]
pub enum Decided {
    /// Allowed: the message, its send job and the decision are written.
    Send {
        recipient: Claimed,
        message: Box<Message>,
        job: NewJob,
        decision: Box<DecisionRecord>,
    },
    /// Refused for this recipient alone: skipped with the code.
    Skip {
        recipient: Claimed,
        code: String,
        reason: String,
        decision: Box<DecisionRecord>,
    },
    /// Nobody can be sent to now: the recipient waits until `until`.
    Wait {
        recipient: Claimed,
        until: OffsetDateTime,
    },
}

/// One recipient with what happened to it, for the history and its export.
#[derive(Clone, Debug, PartialEq)]
pub struct RecipientRecord {
    pub seq: i64,
    pub contact_id: ContactId,
    pub contact_name: Option<String>,
    pub contact_phone: Option<String>,
    pub state: RecipientState,
    pub round: i64,
    pub message_id: Option<MessageId>,
    pub sent_at: Option<OffsetDateTime>,
    pub outcome: Option<String>,
    pub answer: Option<String>,
    pub answer_message_id: Option<MessageId>,
    pub code: Option<String>,
    pub reason: Option<String>,
    pub updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct RecipientRow {
    seq: i64,
    contact_id: String,
    name: Option<String>,
    phone: Option<String>,
    state: String,
    round: i64,
    message_id: Option<String>,
    sent_at: Option<i64>,
    outcome: Option<String>,
    answer: Option<String>,
    answer_message_id: Option<String>,
    code: Option<String>,
    reason: Option<String>,
    updated_at: i64,
}

impl TryFrom<RecipientRow> for RecipientRecord {
    type Error = StoreError;

    fn try_from(r: RecipientRow) -> Result<Self> {
        Ok(RecipientRecord {
            seq: r.seq,
            contact_id: parse("campaign_recipients.contact_id", &r.contact_id)?,
            contact_name: r.name,
            contact_phone: r.phone,
            state: parse("campaign_recipients.state", &r.state)?,
            round: r.round,
            message_id: parse_opt("campaign_recipients.message_id", r.message_id.as_deref())?,
            sent_at: r.sent_at.map(at),
            outcome: r.outcome,
            answer: r.answer,
            answer_message_id: parse_opt(
                "campaign_recipients.answer_message_id",
                r.answer_message_id.as_deref(),
            )?,
            code: r.code,
            reason: r.reason,
            updated_at: at(r.updated_at),
        })
    }
}

/// A recipient waiting on an answer, as the inbound path looks it up.
#[derive(Clone, Debug, PartialEq)]
pub struct Interaction {
    pub campaign_id: CampaignId,
    pub contact_id: ContactId,
    pub state: RecipientState,
    /// The end of the response timeout (unknown until the message was sent).
    pub deadline: Option<OffsetDateTime>,
}

/// How an answer closes an interaction, written with the inbound message.
#[derive(Clone, Debug, PartialEq)]
pub struct AnswerRecord {
    pub campaign_id: CampaignId,
    pub contact_id: ContactId,
    /// `answered`, `free_text` or `late_answer`.
    pub outcome: String,
    pub answer: Option<String>,
    /// A quick-reply answer in time needs nobody: its conversation is not put in front of the
    /// agents.
    pub quiet: bool,
}

/// Binds a recipient update fenced on the claim, for the statements below.
const FENCE: &str = "campaign_id = $1 AND contact_id = $2 AND state = 'fresh' AND attempts = $3";

impl Store {
    pub async fn create_campaign(
        &self,
        campaign: &Campaign,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<()> {
        write_tx!(self, |tx| {
            record_idempotency!(
                tx,
                idempotency,
                "campaign",
                campaign.id.to_string(),
                campaign.created_at
            );
            sqlx::query(
                "INSERT INTO campaigns (id, name, sender_id, list_id, template_name, \
                 template_locale, variable_mapping, state, start_at, end_at, \
                 response_timeout_minutes, rate_limit_per_second, round, created_by, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, 0, $13, $14, $14)",
            )
            .bind(campaign.id.to_string())
            .bind(&campaign.name)
            .bind(campaign.sender_id.to_string())
            .bind(campaign.list_id.to_string())
            .bind(&campaign.template_name)
            .bind(&campaign.template_locale)
            .bind(Json(&campaign.variable_mapping))
            .bind(campaign.state.as_str())
            .bind(campaign.start_at.map(ms))
            .bind(campaign.end_at.map(ms))
            .bind(campaign.response_timeout_minutes)
            .bind(campaign.rate_limit_per_second)
            .bind(&campaign.created_by)
            .bind(ms(campaign.created_at))
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    pub async fn get_campaign(&self, id: CampaignId) -> Result<Campaign> {
        let sql = format!("SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1");
        let row: Option<CampaignRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.try_into()
    }

    pub async fn list_campaigns(&self, page: &PageRequest) -> Result<Page<Campaign>> {
        let (after, order) = page.keyset("id", 1);
        let sql = format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE {after} ORDER BY {order} LIMIT $2"
        );
        let rows: Vec<CampaignRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(&page.after)
                .bind(page.fetch_limit())
                .fetch_all(db)
                .await?
        });
        let campaigns = rows
            .into_iter()
            .map(Campaign::try_from)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(campaigns, page, |c| c.id.to_string()))
    }

    /// Campaigns a runner has work in: running ones, and scheduled ones whose time has come.
    pub async fn active_campaigns(&self, now: OffsetDateTime) -> Result<Vec<Campaign>> {
        let sql = format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE state = 'running' \
             OR (state = 'scheduled' AND (start_at IS NULL OR start_at <= $1)) ORDER BY id"
        );
        let rows: Vec<CampaignRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql).bind(ms(now)).fetch_all(db).await?
        });
        rows.into_iter().map(Campaign::try_from).collect()
    }

    /// Paused and stopped campaigns: they send nothing, but their recipients' answers are
    /// still awaited and time out.
    pub async fn idle_campaign_ids(&self) -> Result<Vec<CampaignId>> {
        let rows: Vec<(String,)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT id FROM campaigns WHERE state IN ('paused', 'stopped')")
                .fetch_all(db)
                .await?
        });
        rows.into_iter()
            .map(|(id,)| parse("campaigns.id", &id))
            .collect()
    }

    /// Moves a campaign from `from` to `to` if it is still in `from`. A campaign that starts
    /// running for the first time takes its list's members as its recipients, in the same
    /// transaction; a retry run (`retry`) gives every failed recipient one more round.
    /// Returns whether the campaign moved.
    pub async fn move_campaign(
        &self,
        id: CampaignId,
        from: CampaignState,
        to: CampaignState,
        retry: bool,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let id = id.to_string();
        let moved = write_tx!(self, |tx| {
            let finished = matches!(to, CampaignState::Stopped | CampaignState::Completed);
            let moved = sqlx::query(
                "UPDATE campaigns SET state = $3, updated_at = $4, \
                 started_at = CASE WHEN $5 AND started_at IS NULL THEN $4 ELSE started_at END, \
                 finished_at = CASE WHEN $6 THEN $4 ELSE NULL END, \
                 held_code = NULL, held_reason = NULL, held_until = NULL, \
                 round = round + $7 WHERE id = $1 AND state = $2",
            )
            .bind(&id)
            .bind(from.as_str())
            .bind(to.as_str())
            .bind(ms(now))
            .bind(to == CampaignState::Running)
            .bind(finished)
            .bind(i64::from(retry))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if moved && to == CampaignState::Running {
                let (materialized,): (bool,) = sqlx::query_as(
                    "SELECT EXISTS (SELECT 1 FROM campaign_recipients WHERE campaign_id = $1)",
                )
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
                if !materialized {
                    sqlx::query(
                        "INSERT INTO campaign_recipients (campaign_id, contact_id, seq, state, \
                         next_at, updated_at) SELECT $1, m.contact_id, \
                         ROW_NUMBER() OVER (ORDER BY m.added_at, m.contact_id), 'fresh', $2, $2 \
                         FROM contact_list_members m \
                         JOIN campaigns c ON c.list_id = m.list_id WHERE c.id = $1",
                    )
                    .bind(&id)
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            // Paused or stopped: what waits in the queue is withdrawn, so that nothing goes
            // after the button was pressed. A send already with the provider (its job
            // running) finishes; the rest fail as withdrawn and their recipients are fresh
            // again, to be decided anew if the campaign resumes.
            if moved
                && from == CampaignState::Running
                && matches!(to, CampaignState::Paused | CampaignState::Stopped)
            {
                let (code, reason) = match to {
                    CampaignState::Paused => (
                        "campaign_paused",
                        "the campaign was paused before this message was sent",
                    ),
                    _ => (
                        "campaign_stopped",
                        "the campaign was stopped before this message was sent",
                    ),
                };
                let withdrawn: Vec<(Option<String>,)> = sqlx::query_as(
                    "UPDATE jobs SET status = 'dead', last_error = $3, updated_at = $2 \
                     WHERE status = 'queued' AND dedupe_key IN (SELECT 'send:' || message_id \
                     FROM campaign_recipients WHERE campaign_id = $1 \
                     AND state IN ('queued', 'retry') AND message_id IS NOT NULL) \
                     RETURNING dedupe_key",
                )
                .bind(&id)
                .bind(ms(now))
                .bind(reason)
                .fetch_all(&mut *tx)
                .await?;
                let event = StatusEvent {
                    status: DeliveryStatus::Failed,
                    at: now,
                    error: Some(MessageError {
                        code: code.to_owned(),
                        provider_code: None,
                        reason: reason.to_owned(),
                    }),
                };
                for (key,) in withdrawn {
                    let Some(message) = key.as_deref().and_then(|k| k.strip_prefix("send:")) else {
                        continue;
                    };
                    apply_status!(tx, message, &event);
                    withdraw_recipient!(tx, message, now);
                }
            }
            if moved && retry {
                sqlx::query(
                    "UPDATE campaign_recipients SET state = 'fresh', next_at = $2, \
                     round = round + 1, message_id = NULL, code = NULL, reason = NULL, \
                     updated_at = $2 WHERE campaign_id = $1 AND state = 'failed'",
                )
                .bind(&id)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
            }
            moved
        });
        Ok(moved)
    }

    /// Says on a running campaign what holds it back (or clears it with `None`).
    pub async fn set_campaign_held(&self, id: CampaignId, held: Option<&Held>) -> Result<()> {
        write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE campaigns SET held_code = $2, held_reason = $3, held_until = $4 \
                 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(held.map(|h| h.code.as_str()))
            .bind(held.map(|h| h.reason.as_str()))
            .bind(held.and_then(|h| h.until).map(ms))
            .execute(&mut *tx)
            .await?;
        });
        Ok(())
    }

    /// How many recipients are in each state.
    pub async fn campaign_counts(&self, id: CampaignId) -> Result<Vec<(RecipientState, i64)>> {
        let rows: Vec<(String, i64)> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT state, COUNT(*) FROM campaign_recipients WHERE campaign_id = $1 \
                 GROUP BY state",
            )
            .bind(id.to_string())
            .fetch_all(db)
            .await?
        });
        rows.into_iter()
            .map(|(s, n)| Ok((parse("campaign_recipients.state", &s)?, n)))
            .collect()
    }

    /// Claims up to `limit` due fresh recipients, in hopper order, until `now + lease`.
    pub async fn claim_recipients(
        &self,
        id: CampaignId,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<Claimed>> {
        let lock = match self.backend() {
            crate::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            crate::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE campaign_recipients SET next_at = $3, attempts = attempts + 1 \
             WHERE campaign_id = $1 AND contact_id IN (SELECT contact_id \
             FROM campaign_recipients WHERE campaign_id = $1 AND state = 'fresh' \
             AND next_at <= $2 ORDER BY next_at, seq LIMIT $4 {lock}) \
             RETURNING contact_id, attempts, seq"
        );
        let rows: Vec<(String, i64, i64)> = write_tx!(self, |tx| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .bind(ms(now))
                .bind(ms(now + lease))
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?
        });
        let mut claimed = rows
            .into_iter()
            .map(|(contact, claim, seq)| {
                Ok((
                    seq,
                    Claimed {
                        contact_id: parse("campaign_recipients.contact_id", &contact)?,
                        claim,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|(seq, _)| *seq);
        Ok(claimed.into_iter().map(|(_, c)| c).collect())
    }

    /// Of these contacts, those already in an interaction of another running campaign of the
    /// same sender (R6.5): they wait until it closes.
    pub async fn contacts_in_other_interactions(
        &self,
        id: CampaignId,
        sender: SenderId,
        contacts: &[ContactId],
    ) -> Result<Vec<ContactId>> {
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = (3..contacts.len() + 3)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT DISTINCT r.contact_id FROM campaign_recipients r JOIN campaigns c \
             ON c.id = r.campaign_id WHERE r.contact_id IN ({placeholders}) \
             AND r.state IN ('queued', 'pending', 'retry') AND r.campaign_id <> $1 \
             AND c.sender_id = $2"
        );
        let rows: Vec<(String,)> = read_pool!(self, |db| {
            let mut query = sqlx::query_as(&sql)
                .bind(id.to_string())
                .bind(sender.to_string());
            for c in contacts {
                query = query.bind(c.to_string());
            }
            query.fetch_all(db).await?
        });
        rows.into_iter()
            .map(|(c,)| parse("campaign_recipients.contact_id", &c))
            .collect()
    }

    /// Writes what the runner decided for a batch in one transaction. Each recipient moves
    /// only if its claim still holds; a message is written only for a recipient that moved,
    /// so a claim taken over by another node never sends twice. `paced_until` advances the
    /// campaign's rate cap. Returns the messages written.
    pub async fn commit_campaign_batch(
        &self,
        id: CampaignId,
        decided: &[Decided],
        paced_until: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Vec<MessageId>> {
        let id = id.to_string();
        // Three parameters a recipient and two more: well under both engines' limits.
        const ROWS: usize = 1000;
        let written = write_tx!(self, |tx| {
            let mut written = Vec::new();
            // The allowed, nearly all of a batch, are written a few statements for them all:
            // those whose claim still holds move to `queued`, and only theirs are written.
            let sends: Vec<(&Claimed, &Message, &NewJob, &DecisionRecord)> = decided
                .iter()
                .filter_map(|d| match d {
                    Decided::Send {
                        recipient,
                        message,
                        job,
                        decision,
                    } => Some((recipient, &**message, job, &**decision)),
                    _ => None,
                })
                .collect();
            for chunk in sends.chunks(ROWS) {
                let n = 3 * chunk.len();
                let sql = format!(
                    "WITH v (contact_id, claim, message_id) AS (VALUES {}) \
                     UPDATE campaign_recipients SET state = 'queued', \
                     message_id = v.message_id, code = NULL, reason = NULL, \
                     updated_at = ${} FROM v WHERE campaign_recipients.campaign_id = ${} \
                     AND campaign_recipients.contact_id = v.contact_id \
                     AND campaign_recipients.state = 'fresh' \
                     AND campaign_recipients.attempts = v.claim \
                     RETURNING campaign_recipients.contact_id",
                    crate::rows::tuples(chunk.len(), 3),
                    n + 1,
                    n + 2
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                let mut query = sqlx::query_as::<_, (String,)>(&sql);
                for (recipient, message, _, _) in chunk {
                    query = query
                        .bind(recipient.contact_id.to_string())
                        .bind(recipient.claim)
                        .bind(message.id.to_string());
                }
                let moved: std::collections::HashSet<String> = query
                    .bind(ms(now))
                    .bind(&id)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .map(|(contact,)| contact)
                    .collect();
                let moved: Vec<_> = chunk
                    .iter()
                    .filter(|(r, ..)| moved.contains(&r.contact_id.to_string()))
                    .collect();
                let messages: Vec<&Message> = moved.iter().map(|(_, m, _, _)| *m).collect();
                let jobs: Vec<&NewJob> = moved.iter().map(|(_, _, j, _)| *j).collect();
                let decisions: Vec<&DecisionRecord> = moved.iter().map(|(.., d)| *d).collect();
                insert_message_rows!(tx, &messages);
                insert_job_rows!(tx, &jobs, now);
                insert_decision_rows!(tx, &decisions);
                written.extend(messages.iter().map(|m| m.id));
            }
            for d in decided {
                match d {
                    Decided::Send { .. } => {}
                    Decided::Skip {
                        recipient,
                        code,
                        reason,
                        decision,
                    } => {
                        let moved = sqlx::query(&format!(
                            "UPDATE campaign_recipients SET state = 'skipped', code = $4, \
                             reason = $5, updated_at = $6 WHERE {FENCE}"
                        ))
                        .bind(&id)
                        .bind(recipient.contact_id.to_string())
                        .bind(recipient.claim)
                        .bind(code)
                        .bind(reason)
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                            == 1;
                        if moved {
                            insert_decision!(tx, decision);
                        }
                    }
                    Decided::Wait { recipient, until } => {
                        sqlx::query(&format!(
                            "UPDATE campaign_recipients SET next_at = $4 WHERE {FENCE}"
                        ))
                        .bind(&id)
                        .bind(recipient.contact_id.to_string())
                        .bind(recipient.claim)
                        .bind(ms(*until))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
            if let Some(paced) = paced_until {
                sqlx::query(
                    "UPDATE campaigns SET paced_until = $2 \
                     WHERE id = $1 AND (paced_until IS NULL OR paced_until < $2)",
                )
                .bind(&id)
                .bind(ms(paced))
                .execute(&mut *tx)
                .await?;
            }
            written
        });
        Ok(written)
    }

    /// When the campaign's rate cap lets its next message go (across every node).
    pub async fn campaign_paced_until(&self, id: CampaignId) -> Result<Option<OffsetDateTime>> {
        let (paced,): (Option<i64>,) = read_pool!(self, |db| {
            sqlx::query_as("SELECT paced_until FROM campaigns WHERE id = $1")
                .bind(id.to_string())
                .fetch_one(db)
                .await?
        });
        Ok(paced.map(at))
    }

    /// How many of the campaign's messages are with the dispatcher, not yet sent.
    pub async fn campaign_in_flight(&self, id: CampaignId) -> Result<i64> {
        let (n,): (i64,) = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT COUNT(*) FROM campaign_recipients WHERE campaign_id = $1 \
                 AND state IN ('queued', 'retry')",
            )
            .bind(id.to_string())
            .fetch_one(db)
            .await?
        });
        Ok(n)
    }

    /// Closes the interactions whose response timeout has passed; returns how many.
    pub async fn time_out_interactions(&self, id: CampaignId, now: OffsetDateTime) -> Result<u64> {
        let n = write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE campaign_recipients SET state = 'closed', outcome = 'timed_out', \
                 updated_at = $2 WHERE campaign_id = $1 AND state = 'pending' AND next_at <= $2",
            )
            .bind(id.to_string())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(n)
    }

    /// The end time came: recipients never sent are skipped with `campaign_ended`.
    pub async fn skip_unsent(&self, id: CampaignId, now: OffsetDateTime) -> Result<u64> {
        let n = write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE campaign_recipients SET state = 'skipped', code = 'campaign_ended', \
                 reason = 'the campaign ended before this recipient was sent to', \
                 updated_at = $2 WHERE campaign_id = $1 AND state = 'fresh'",
            )
            .bind(id.to_string())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        Ok(n)
    }

    /// Completes a running campaign whose recipients all reached an end; returns whether it
    /// did.
    pub async fn complete_if_finished(&self, id: CampaignId, now: OffsetDateTime) -> Result<bool> {
        let done = write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE campaigns SET state = 'completed', finished_at = $2, updated_at = $2, \
                 held_code = NULL, held_reason = NULL, held_until = NULL \
                 WHERE id = $1 AND state = 'running' AND NOT EXISTS (SELECT 1 \
                 FROM campaign_recipients WHERE campaign_id = $1 \
                 AND state IN ('fresh', 'queued', 'pending', 'retry'))",
            )
            .bind(id.to_string())
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        });
        Ok(done)
    }

    /// Which of these contacts may have an open interaction with `sender` (a campaign message
    /// queued or awaiting an answer): only their replies need [`Store::open_interaction`].
    pub async fn contacts_in_interactions(
        &self,
        sender: SenderId,
        contacts: &[ContactId],
    ) -> Result<Vec<ContactId>> {
        if contacts.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String,)> = read_pool!(self, |db| {
            let (list, _) = crate::bulk::in_list(db, 2, false);
            let sql = format!(
                "SELECT DISTINCT r.contact_id FROM campaign_recipients r \
                 JOIN campaigns c ON c.id = r.campaign_id \
                 WHERE c.sender_id = $1 AND r.state IN ('queued', 'pending', 'retry') \
                 AND r.contact_id {list}"
            );
            let sql = crate::rows::sql_for(db, sql);
            let query = sqlx::query_as(&sql).bind(sender.to_string());
            crate::bulk::bind_list(db, query, contacts)
                .fetch_all(db)
                .await?
        });
        rows.into_iter()
            .map(|(c,)| parse("campaign_recipients.contact_id", &c))
            .collect()
    }

    /// The interaction a reply from `contact` to `sender` answers, if one is open: the most
    /// recent campaign message still waiting for an answer.
    pub async fn open_interaction(
        &self,
        contact: ContactId,
        sender: SenderId,
    ) -> Result<Option<Interaction>> {
        let row: Option<(String, String, Option<i64>)> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT r.campaign_id, r.state, CASE WHEN r.state = 'pending' THEN r.next_at \
                 END FROM campaign_recipients r JOIN campaigns c ON c.id = r.campaign_id \
                 WHERE r.contact_id = $1 AND c.sender_id = $2 \
                 AND r.state IN ('queued', 'pending', 'retry') \
                 ORDER BY r.updated_at DESC LIMIT 1",
            )
            .bind(contact.to_string())
            .bind(sender.to_string())
            .fetch_optional(db)
            .await?
        });
        row.map(|(campaign, state, deadline)| {
            Ok(Interaction {
                campaign_id: parse("campaign_recipients.campaign_id", &campaign)?,
                contact_id: contact,
                state: parse("campaign_recipients.state", &state)?,
                deadline: deadline.map(at),
            })
        })
        .transpose()
    }

    /// A page of a campaign's recipients in hopper order, optionally of one state.
    pub async fn campaign_recipients(
        &self,
        id: CampaignId,
        state: Option<RecipientState>,
        after_seq: Option<i64>,
        limit: i64,
    ) -> Result<Vec<RecipientRecord>> {
        let rows: Vec<RecipientRow> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT r.seq, r.contact_id, c.name, c.phone, r.state, r.round, r.message_id, \
                 r.sent_at, r.outcome, r.answer, r.answer_message_id, r.code, r.reason, \
                 r.updated_at FROM campaign_recipients r JOIN contacts c ON c.id = r.contact_id \
                 WHERE r.campaign_id = $1 AND (CAST($2 AS TEXT) IS NULL OR r.state = $2) \
                 AND r.seq > $3 ORDER BY r.seq LIMIT $4",
            )
            .bind(id.to_string())
            .bind(state.map(RecipientState::as_str))
            .bind(after_seq.unwrap_or(0))
            .bind(limit)
            .fetch_all(db)
            .await?
        });
        rows.into_iter().map(RecipientRecord::try_from).collect()
    }

    /// How many recipients gave each quick-reply answer.
    pub async fn campaign_answers(&self, id: CampaignId) -> Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT answer, COUNT(*) FROM campaign_recipients WHERE campaign_id = $1 \
                 AND outcome = 'answered' AND answer IS NOT NULL GROUP BY answer \
                 ORDER BY COUNT(*) DESC, answer",
            )
            .bind(id.to_string())
            .fetch_all(db)
            .await?
        });
        Ok(rows)
    }
}

/// Moves a campaign recipient on with its message's send outcome, inside the dispatcher's
/// completion transaction. `state` is `pending` (sent), `retry` or `failed`.
macro_rules! advance_recipient {
    ($tx:ident, $message:expr, $state:expr, $code:expr, $reason:expr, $now:expr) => {{
        let state: &str = $state;
        sqlx::query(
            "UPDATE campaign_recipients SET state = $2, \
             sent_at = CASE WHEN $2 = 'pending' THEN $5 ELSE sent_at END, \
             next_at = CASE WHEN $2 = 'pending' THEN $5 + 60000 * (SELECT \
               response_timeout_minutes FROM campaigns WHERE id = campaign_id) ELSE next_at END, \
             code = $3, reason = $4, updated_at = $5 \
             WHERE message_id = $1 AND state IN ('queued', 'retry')",
        )
        .bind($message)
        .bind(state)
        .bind($code)
        .bind($reason)
        .bind(ms($now))
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(crate) use advance_recipient;

/// Closes an interaction with the reply that answered it, inside the inbound transaction.
macro_rules! close_interaction {
    ($tx:ident, $answer:expr, $message:expr, $now:expr) => {{
        let answer: &$crate::campaigns::AnswerRecord = $answer;
        sqlx::query(
            "UPDATE campaign_recipients SET state = 'closed', outcome = $3, answer = $4, \
             answer_message_id = $5, updated_at = $6 WHERE campaign_id = $1 \
             AND contact_id = $2 AND state IN ('queued', 'pending', 'retry')",
        )
        .bind(answer.campaign_id.to_string())
        .bind(answer.contact_id.to_string())
        .bind(&answer.outcome)
        .bind(&answer.answer)
        .bind($message)
        .bind(ms($now))
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            == 1
    }};
}
pub(crate) use close_interaction;
