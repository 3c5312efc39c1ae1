//! The audit trail of policy decisions: every send decided, allowed or refused, with the facts
//! the decision used.

use serde_json::Value;
use sqlx::types::Json;
use time::OffsetDateTime;

use crate::rows::at;
use crate::{Result, Store};

#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRecord {
    pub id: String,
    pub at: OffsetDateTime,
    pub actor: String,
    pub sender_id: Option<String>,
    pub contact_id: Option<String>,
    pub channel: Option<String>,
    pub allowed: bool,
    pub code: Option<String>,
    pub reason: Option<String>,
    pub kind: Option<String>,
    pub message_id: Option<String>,
    /// From `/policy/check`: decided, not sent.
    pub dry_run: bool,
    pub request: Value,
    pub facts: Value,
}

#[derive(sqlx::FromRow)]
struct DecisionRow {
    id: String,
    at: i64,
    actor: String,
    sender_id: Option<String>,
    contact_id: Option<String>,
    channel: Option<String>,
    allowed: bool,
    code: Option<String>,
    reason: Option<String>,
    kind: Option<String>,
    message_id: Option<String>,
    dry_run: bool,
    request: Json<Value>,
    facts: Json<Value>,
}

/// Records a decision inside the caller's transaction.
macro_rules! insert_decision {
    ($tx:ident, $record:expr) => {{
        let record: &$crate::decisions::DecisionRecord = $record;
        $crate::decisions::insert_decision_rows!($tx, &[record]);
    }};
}
pub(crate) use insert_decision;

/// Inserts many decisions with a few statements inside the caller's transaction.
macro_rules! insert_decision_rows {
    ($tx:ident, $records:expr) => {{
        // Fourteen parameters a decision: well under both engines' limits.
        const ROWS: usize = 500;
        let records: &[&$crate::decisions::DecisionRecord] = $records;
        for chunk in records.chunks(ROWS) {
            use $crate::bulk::Kind;
            const KINDS: [Kind; 14] = [
                Kind::Text,
                Kind::Int,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Bool,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Bool,
                Kind::Json,
                Kind::Json,
            ];
            let mut rows = $crate::bulk::Rows::with_capacity(&KINDS, chunk.len());
            for record in chunk {
                rows.push([
                    record.id.as_str().into(),
                    $crate::rows::ms(record.at).into(),
                    record.actor.as_str().into(),
                    record.sender_id.clone().into(),
                    record.contact_id.clone().into(),
                    record.channel.clone().into(),
                    record.allowed.into(),
                    record.code.clone().into(),
                    record.reason.clone().into(),
                    record.kind.clone().into(),
                    record.message_id.clone().into(),
                    record.dry_run.into(),
                    record.request.to_string().into(),
                    record.facts.to_string().into(),
                ]);
            }
            let sql = format!(
                "INSERT INTO policy_decisions (id, at, actor, sender_id, contact_id, channel, \
                 allowed, code, reason, kind, message_id, dry_run, request, facts) {}",
                $crate::bulk::source(&*$tx, &rows, 1)
            );
            let sql = $crate::rows::sql_for(&*$tx, sql);
            $crate::bulk::bind(&*$tx, sqlx::query(&sql), rows)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use insert_decision_rows;

impl Store {
    pub async fn record_decision(&self, record: &DecisionRecord) -> Result<()> {
        write_tx!(self, |tx| {
            insert_decision!(tx, record);
        });
        Ok(())
    }

    /// Recent decisions about a contact, newest first.
    pub async fn decisions_for_contact(
        &self,
        contact_id: &str,
        limit: i64,
    ) -> Result<Vec<DecisionRecord>> {
        let rows: Vec<DecisionRow> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT id, at, actor, sender_id, contact_id, channel, allowed, code, reason, \
                 kind, message_id, dry_run, request, facts FROM policy_decisions \
                 WHERE contact_id = $1 ORDER BY at DESC, id DESC LIMIT $2",
            )
            .bind(contact_id)
            .bind(limit)
            .fetch_all(db)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| DecisionRecord {
                id: r.id,
                at: at(r.at),
                actor: r.actor,
                sender_id: r.sender_id,
                contact_id: r.contact_id,
                channel: r.channel,
                allowed: r.allowed,
                code: r.code,
                reason: r.reason,
                kind: r.kind,
                message_id: r.message_id,
                dry_run: r.dry_run,
                request: r.request.0,
                facts: r.facts.0,
            })
            .collect())
    }

    pub async fn count_decisions(&self) -> Result<i64> {
        let (n,): (i64,) = read_pool!(self, |db| {
            sqlx::query_as("SELECT COUNT(*) FROM policy_decisions")
                .fetch_one(db)
                .await?
        });
        Ok(n)
    }
}
