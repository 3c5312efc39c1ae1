//! The durable job queue. Jobs are written inside the business transaction that needs them (an
//! outbound message and its send job commit together), claimed under a lease in a short
//! transaction of their own, and finished with an update fenced on the lease, so that a worker
//! whose lease expired and was taken over cannot overwrite the new owner's result. No
//! transaction is held open while a job runs.

use serde_json::Value;
use time::OffsetDateTime;

use crate::rows::{at, ms};
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
    pub expires_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    /// When a worker holding this job stopped mid-run (its lease ran out and another took the
    /// job over). For a send, the provider may have the message already.
    pub interrupted_at: Option<OffsetDateTime>,
}

/// A job this worker holds: the lease owner and attempt fence every update to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    pub job: Job,
    pub owner: String,
    pub until: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    queue: String,
    kind: String,
    payload: sqlx::types::Json<Value>,
    dedupe_key: Option<String>,
    status: String,
    attempt: i64,
    run_at: i64,
    expires_at: Option<i64>,
    last_error: Option<String>,
    interrupted_at: Option<i64>,
}

impl From<JobRow> for Job {
    fn from(r: JobRow) -> Self {
        Job {
            id: r.id,
            queue: r.queue,
            kind: r.kind,
            payload: r.payload.0,
            dedupe_key: r.dedupe_key,
            status: r.status,
            attempt: r.attempt,
            run_at: at(r.run_at),
            expires_at: r.expires_at.map(at),
            last_error: r.last_error,
            interrupted_at: r.interrupted_at.map(at),
        }
    }
}

const JOB_COLUMNS: &str = "id, queue, kind, payload, dedupe_key, status, attempt, run_at, \
    expires_at, last_error, interrupted_at";

/// How a finished job ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done,
    /// Run again at this time (a temporary failure).
    Retry {
        at: OffsetDateTime,
        error: String,
    },
    /// Given up: a permanent failure, attempts used up, or expired.
    Dead {
        error: String,
    },
    /// Not run now, through no fault of the job (a rate or pair limit holds it): run again at
    /// this time without counting the claim as an attempt.
    Defer {
        at: OffsetDateTime,
    },
}

/// Finishes a claimed job inside the caller's transaction, fenced on its lease; yields
/// whether the lease still held.
macro_rules! finish_job_in {
    ($tx:ident, $lease:expr, $outcome:expr, $now:expr) => {{
        let lease: &$crate::jobs::Lease = $lease;
        let (status, run_at, error, uncount) = match $outcome {
            $crate::jobs::Outcome::Done => ("done", None, None, 0_i64),
            $crate::jobs::Outcome::Retry { at, error } => {
                ("queued", Some(ms(*at)), Some(error.as_str()), 0)
            }
            $crate::jobs::Outcome::Dead { error } => ("dead", None, Some(error.as_str()), 0),
            $crate::jobs::Outcome::Defer { at } => ("queued", Some(ms(*at)), None, 1),
        };
        sqlx::query(
            "UPDATE jobs SET status = $4, run_at = COALESCE($5, run_at), \
             last_error = COALESCE($6, last_error), lease_owner = NULL, lease_until = NULL, \
             attempt = attempt - $8, updated_at = $7 WHERE id = $1 AND lease_owner = $2 \
             AND attempt = $3 AND status = 'running'",
        )
        .bind(&lease.job.id)
        .bind(&lease.owner)
        .bind(lease.job.attempt)
        .bind(status)
        .bind(run_at)
        .bind(error)
        .bind(ms($now))
        .bind(uncount)
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            == 1
    }};
}
pub(crate) use finish_job_in;

/// Inserts a job inside the caller's transaction.
macro_rules! insert_job {
    ($tx:ident, $job:expr, $now:expr) => {{
        let job: &$crate::jobs::NewJob = $job;
        $crate::jobs::insert_job_rows!($tx, &[job], $now);
    }};
}
pub(crate) use insert_job;

/// Inserts many jobs with a few statements inside the caller's transaction.
macro_rules! insert_job_rows {
    ($tx:ident, $jobs:expr, $now:expr) => {{
        // Eleven parameters a job: well under both engines' limits.
        const ROWS: usize = 1000;
        let jobs: &[&$crate::jobs::NewJob] = $jobs;
        let now = $crate::rows::ms($now);
        for chunk in jobs.chunks(ROWS) {
            use $crate::bulk::Kind;
            const KINDS: [Kind; 11] = [
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Json,
                Kind::Text,
                Kind::Text,
                Kind::Int,
                Kind::Int,
                Kind::Int,
                Kind::Int,
                Kind::Int,
            ];
            let mut rows = $crate::bulk::Rows::with_capacity(&KINDS, chunk.len());
            for job in chunk {
                rows.push([
                    job.id.as_str().into(),
                    job.queue.as_str().into(),
                    job.kind.as_str().into(),
                    job.payload.to_string().into(),
                    job.dedupe_key.clone().into(),
                    "queued".into(),
                    0_i64.into(),
                    $crate::rows::ms(job.run_at).into(),
                    job.expires_at.map($crate::rows::ms).into(),
                    now.into(),
                    now.into(),
                ]);
            }
            let sql = format!(
                "INSERT INTO jobs (id, queue, kind, payload, dedupe_key, status, attempt, \
                 run_at, expires_at, created_at, updated_at) {}",
                $crate::bulk::source(&*$tx, &rows, 1)
            );
            let sql = $crate::rows::sql_for(&*$tx, sql);
            $crate::bulk::bind(&*$tx, sqlx::query(&sql), rows)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use insert_job_rows;

impl Store {
    /// Enqueues a job on its own (most jobs are enqueued inside a business transaction).
    pub async fn enqueue(&self, job: &NewJob, now: OffsetDateTime) -> Result<()> {
        write_tx!(self, |tx| {
            insert_job!(tx, job, now);
        });
        Ok(())
    }

    /// Claims up to `limit` due jobs of `queue` for `owner` until `now + lease`: queued jobs
    /// whose time has come, and running jobs whose lease has expired (their worker died).
    /// PostgreSQL skips rows another node is claiming; SQLite's single writer serialises
    /// claims.
    pub async fn claim_jobs(
        &self,
        queue: &str,
        owner: &str,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: i64,
    ) -> Result<Vec<Lease>> {
        // Each state is looked up on its own, in the claim index's order, so that a claim
        // reads as many jobs as it takes: answering the OR of the two, both engines read
        // every job that matched (SQLite every job of the queue, the done ones too) and
        // sorted them, 10,000 at a time when a campaign or a scheduled batch falls due.
        let due = match self.backend() {
            crate::Backend::Postgres => {
                "SELECT id FROM (\
                 SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE queue = $4 \
                   AND status = 'queued' AND run_at <= $3 ORDER BY run_at, id LIMIT $5 \
                   FOR UPDATE SKIP LOCKED) queued \
                 UNION ALL \
                 SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE queue = $4 \
                   AND status = 'running' AND lease_until < $3 ORDER BY run_at, id LIMIT $5 \
                   FOR UPDATE SKIP LOCKED) expired\
                 ) due ORDER BY run_at, id LIMIT $5"
            }
            crate::Backend::Sqlite => {
                "SELECT id FROM (\
                 SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE queue = $4 \
                   AND status = 'queued' AND run_at <= $3 ORDER BY run_at, id LIMIT $5) \
                 UNION ALL \
                 SELECT id, run_at FROM (SELECT id, run_at FROM jobs WHERE queue = $4 \
                   AND status = 'running' AND lease_until < $3 ORDER BY run_at, id LIMIT $5)\
                 ) ORDER BY run_at, id LIMIT $5"
            }
        };
        let sql = format!(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $2, \
             attempt = attempt + 1, updated_at = $3, interrupted_at = CASE \
             WHEN status = 'running' THEN lease_until ELSE interrupted_at END \
             WHERE id IN ({due}) RETURNING {JOB_COLUMNS}"
        );
        let until = now + lease;
        let rows: Vec<JobRow> = write_tx!(self, |tx| {
            sqlx::query_as(&sql)
                .bind(owner)
                .bind(ms(until))
                .bind(ms(now))
                .bind(queue)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?
        });
        let mut leases: Vec<Lease> = rows
            .into_iter()
            .map(|r| Lease {
                job: r.into(),
                owner: owner.to_owned(),
                until,
            })
            .collect();
        leases.sort_by(|a, b| (a.job.run_at, &a.job.id).cmp(&(b.job.run_at, &b.job.id)));
        Ok(leases)
    }

    /// Finishes a claimed job. Fenced: returns false, changing nothing, when the lease was
    /// taken over (another worker claimed the job after this lease expired).
    pub async fn finish_job(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let finished = write_tx!(self, |tx| finish_job_in!(tx, lease, outcome, now));
        Ok(finished)
    }

    /// When the next job of `queue` falls due, for a worker's fallback timer.
    pub async fn next_due(&self, queue: &str) -> Result<Option<OffsetDateTime>> {
        let (next,): (Option<i64>,) = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT MIN(CASE WHEN status = 'queued' THEN run_at ELSE lease_until END) \
                 FROM jobs WHERE queue = $1 AND status IN ('queued', 'running')",
            )
            .bind(queue)
            .fetch_one(db)
            .await?
        });
        Ok(next.map(at))
    }

    pub async fn get_job(&self, id: &str) -> Result<Job> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
        let row: Option<JobRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql).bind(id).fetch_optional(db).await?
        });
        row.map(Job::from).ok_or(crate::StoreError::NotFound)
    }

    /// The jobs of a queue in the order they are due (for inspection and tests).
    pub async fn queued_jobs(&self, queue: &str) -> Result<Vec<Job>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE queue = $1 ORDER BY run_at, id");
        let rows: Vec<JobRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql).bind(queue).fetch_all(db).await?
        });
        Ok(rows.into_iter().map(Job::from).collect())
    }
}
