//! The durable job queue's guarantees, on SQLite and PostgreSQL.

use std::collections::BTreeSet;

use ::time::{Duration, OffsetDateTime};
use serde_json::json;
use switchboard_core::time::truncate_to_millis;
use switchboard_store::jobs::{NewJob, Outcome};
use switchboard_store::{Store, StoreError};
use switchboard_testkit::{both_backends, TestDb};

fn now() -> OffsetDateTime {
    truncate_to_millis(OffsetDateTime::now_utc())
}

fn job(n: usize, run_at: OffsetDateTime) -> NewJob {
    NewJob {
        id: uuid::Uuid::now_v7().to_string(),
        queue: "outbound".into(),
        kind: "send_message".into(),
        payload: json!({"n": n}),
        dedupe_key: Some(format!("job-{n}")),
        run_at,
        expires_at: None,
    }
}

/// Two workers claiming at once never get the same job, and between them get all of them.
async fn concurrent_claimers_never_share_a_job(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let t = now();
    for n in 0..60 {
        store.enqueue(&job(n, t), t).await.unwrap();
    }
    let claimer = |owner: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store
                    .claim_jobs("outbound", owner, now(), Duration::minutes(5), 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break;
                }
                mine.extend(batch.into_iter().map(|l| l.job.id));
            }
            mine
        })
    };
    let (a, b) = (claimer("worker-a"), claimer("worker-b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let a: BTreeSet<_> = a.into_iter().collect();
    let b: BTreeSet<_> = b.into_iter().collect();
    assert!(a.is_disjoint(&b), "a job was claimed twice");
    assert_eq!(a.len() + b.len(), 60);
}

async fn an_expired_lease_hands_the_job_over_and_fences_the_old_owner(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let t = now();
    store.enqueue(&job(1, t), t).await.unwrap();
    let first = store
        .claim_jobs("outbound", "worker-a", t, Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].job.attempt, 1);
    // While the lease holds, nobody else gets it.
    assert!(store
        .claim_jobs(
            "outbound",
            "worker-b",
            t + Duration::seconds(29),
            Duration::seconds(30),
            10
        )
        .await
        .unwrap()
        .is_empty());
    // worker-a stalls past its lease; worker-b takes over.
    let later = t + Duration::seconds(31);
    let second = store
        .claim_jobs("outbound", "worker-b", later, Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].job.attempt, 2);
    // The job says when its first worker stopped, for a send that may have gone out.
    assert_eq!(first[0].job.interrupted_at, None);
    assert_eq!(
        second[0].job.interrupted_at,
        Some(t + Duration::seconds(30))
    );
    // The stale worker's result is refused; the new owner's is kept.
    assert!(!store
        .finish_job(&first[0], &Outcome::Done, later)
        .await
        .unwrap());
    assert!(store
        .finish_job(&second[0], &Outcome::Done, later)
        .await
        .unwrap());
    let done = store.get_job(&second[0].job.id).await.unwrap();
    assert_eq!(done.status, "done");
    // Finishing twice changes nothing.
    assert!(!store
        .finish_job(&second[0], &Outcome::Done, later)
        .await
        .unwrap());
}

async fn retries_wait_and_dead_jobs_stay_dead(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let t = now();
    store.enqueue(&job(1, t), t).await.unwrap();
    store.enqueue(&job(2, t), t).await.unwrap();
    let leases = store
        .claim_jobs("outbound", "w", t, Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(leases.len(), 2);
    let retry_at = t + Duration::seconds(30);
    assert!(store
        .finish_job(
            &leases[0],
            &Outcome::Retry {
                at: retry_at,
                error: "130429 throughput".into()
            },
            t
        )
        .await
        .unwrap());
    assert!(store
        .finish_job(
            &leases[1],
            &Outcome::Dead {
                error: "131026 not on WhatsApp".into()
            },
            t
        )
        .await
        .unwrap());
    assert_eq!(store.next_due("outbound").await.unwrap(), Some(retry_at));
    // Not before its time...
    assert!(store
        .claim_jobs(
            "outbound",
            "w",
            t + Duration::seconds(29),
            Duration::minutes(1),
            10
        )
        .await
        .unwrap()
        .is_empty());
    // ...then again, with the attempt counted and the last error kept.
    let again = store
        .claim_jobs("outbound", "w", retry_at, Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].job.attempt, 2);
    assert_eq!(
        again[0].job.last_error.as_deref(),
        Some("130429 throughput")
    );
    let dead = store.get_job(&leases[1].job.id).await.unwrap();
    assert_eq!(dead.status, "dead");
    assert_eq!(dead.last_error.as_deref(), Some("131026 not on WhatsApp"));
}

async fn dedupe_keys_make_enqueueing_idempotent(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let t = now();
    store.enqueue(&job(7, t), t).await.unwrap();
    assert!(matches!(
        store.enqueue(&job(7, t), t).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(store.queued_jobs("outbound").await.unwrap().len(), 1);
    // Jobs due later are not claimed early, and other queues are separate.
    let mut later = job(8, t + Duration::hours(1));
    later.queue = "scheduled".into();
    store.enqueue(&later, t).await.unwrap();
    assert!(store
        .claim_jobs("scheduled", "w", t, Duration::minutes(1), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.next_due("scheduled").await.unwrap(),
        Some(t + Duration::hours(1))
    );
}

/// Claims take the due jobs oldest first, those due at the same moment in id order, and a
/// job whose worker's lease ran out in its place among them; a job not yet due waits.
async fn claims_take_due_jobs_in_order_ties_by_id(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let t = now();
    let earlier = t - Duration::seconds(30);
    // Enqueued out of order: a batch due at one moment, one due earlier, one in the future.
    let mut at_once: Vec<NewJob> = (0..5).map(|n| job(n, t)).collect();
    at_once.reverse();
    for j in &at_once {
        store.enqueue(j, earlier).await.unwrap();
    }
    let first = job(10, earlier);
    store.enqueue(&first, earlier).await.unwrap();
    let future = job(11, t + Duration::hours(1));
    store.enqueue(&future, earlier).await.unwrap();
    // One of the batch is taken by a worker whose lease then runs out.
    let mut ids: Vec<String> = at_once.iter().map(|j| j.id.clone()).collect();
    ids.sort();
    let lost = store
        .claim_jobs("outbound", "gone", earlier, Duration::seconds(1), 1)
        .await
        .unwrap();
    assert_eq!(lost[0].job.id, first.id, "the earliest first");

    let claimed = |limit| {
        let store = store.clone();
        async move {
            store
                .claim_jobs("outbound", "worker", t, Duration::minutes(5), limit)
                .await
                .unwrap()
                .into_iter()
                .map(|l| l.job.id)
                .collect::<Vec<_>>()
        }
    };
    let mut expected = vec![first.id.clone()];
    expected.extend(ids[..2].iter().cloned());
    assert_eq!(
        claimed(3).await,
        expected,
        "the expired lease, then ties by id"
    );
    assert_eq!(claimed(10).await, ids[2..].to_vec());
    assert!(claimed(10).await.is_empty(), "the future job waits");
}

both_backends!(
    concurrent_claimers_never_share_a_job,
    an_expired_lease_hands_the_job_over_and_fences_the_old_owner,
    retries_wait_and_dead_jobs_stay_dead,
    dedupe_keys_make_enqueueing_idempotent,
    claims_take_due_jobs_in_order_ties_by_id,
);
