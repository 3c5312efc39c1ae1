//! Idempotency keys: a create retried with the same key returns what the first attempt made.
//!
//! The key is recorded in the same transaction as the resource it created, so either both exist
//! or neither does.

use switchboard_core::time::from_millis;
use time::OffsetDateTime;

use crate::{Result, Store};

/// A client's key for one create, with a hash of the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Whose key it is (one client's keys never collide with another's).
    pub scope: String,
    pub key: String,
    /// A hash of the request body: the same key with a different body is a client error.
    pub request_hash: String,
}

/// What an earlier request with the same key created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyHit {
    pub request_hash: String,
    pub resource_kind: String,
    pub resource_id: String,
    pub created_at: OffsetDateTime,
}

impl Store {
    pub async fn find_idempotency(&self, scope: &str, key: &str) -> Result<Option<IdempotencyHit>> {
        let row: Option<(String, String, String, i64)> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT request_hash, resource_kind, resource_id, created_at \
                 FROM idempotency_keys WHERE scope = $1 AND key = $2",
            )
            .bind(scope)
            .bind(key)
            .fetch_optional(db)
            .await?
        });
        Ok(row.map(
            |(request_hash, resource_kind, resource_id, created_at)| IdempotencyHit {
                request_hash,
                resource_kind,
                resource_id,
                created_at: from_millis(created_at),
            },
        ))
    }
}
