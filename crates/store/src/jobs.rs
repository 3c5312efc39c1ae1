//! The durable job queue's rows. Jobs are written inside the business transaction that needs
//! them (an outbound message and its send job commit together); the dispatcher that claims
//! them arrives with the delivery work.

use serde_json::Value;
use time::OffsetDateTime;

use crate::rows::at;
use crate::{Result, Store};

/// A job to enqueue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub payload: Value,
    /// At most one job per key: a retried enqueue is harmless.
    pub dedupe_key: Option<String>,
    pub run_at: OffsetDateTime,
    /// After this a job is worth nothing and goes to `dead` unrun.
    pub expires_at: Option<OffsetDateTime>,
}

/// A job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: String,
    pub queue: String,
    pub kind: String,
    pub payload: Value,
    pub dedupe_key: Option<String>,
    pub status: String,
    pub attempt: i64,
    pub run_at: OffsetDateTime,
}

/// Inserts a job inside the caller's transaction.
macro_rules! insert_job {
    ($tx:ident, $job:expr, $now:expr) => {{
        let job: &$crate::jobs::NewJob = $job;
        sqlx::query(
            "INSERT INTO jobs (id, queue, kind, payload, dedupe_key, status, attempt, run_at, \
             expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $8, $8)",
        )
        .bind(&job.id)
        .bind(&job.queue)
        .bind(&job.kind)
        .bind(sqlx::types::Json(&job.payload))
        .bind(&job.dedupe_key)
        .bind($crate::rows::ms(job.run_at))
        .bind(job.expires_at.map($crate::rows::ms))
        .bind($crate::rows::ms($now))
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(crate) use insert_job;

impl Store {
    /// The jobs of a queue in the order they are due (for inspection and tests).
    pub async fn queued_jobs(&self, queue: &str) -> Result<Vec<Job>> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            String,
            String,
            String,
            sqlx::types::Json<Value>,
            Option<String>,
            String,
            i64,
            i64,
        )> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT id, queue, kind, payload, dedupe_key, status, attempt, run_at \
                     FROM jobs WHERE queue = $1 ORDER BY run_at, id",
            )
            .bind(queue)
            .fetch_all(db)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(id, queue, kind, payload, dedupe_key, status, attempt, run_at)| Job {
                    id,
                    queue,
                    kind,
                    payload: payload.0,
                    dedupe_key,
                    status,
                    attempt,
                    run_at: at(run_at),
                },
            )
            .collect())
    }
}
