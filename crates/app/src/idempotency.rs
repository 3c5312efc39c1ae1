//! Idempotent creates: a retry with the same `Idempotency-Key` returns the first result.

use switchboard_store::{IdempotencyKey, StoreError};

use crate::{AppError, AppState, Principal, Result};

/// The longest key accepted; a UUID or a hash fits easily.
pub const MAX_KEY_CHARS: usize = 255;

/// A client's idempotency key with a fingerprint of the request it came with.
#[derive(Clone, Debug)]
pub struct IdempotencyRequest {
    pub key: String,
    /// Any stable digest of the request body (the HTTP layer uses SHA-256).
    pub request_hash: String,
}

impl IdempotencyRequest {
    pub(crate) fn for_principal(&self, principal: &Principal) -> IdempotencyKey {
        IdempotencyKey {
            scope: principal.idempotency_scope(),
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
        }
    }
}

/// The outcome of a create that may have been a replay.
#[derive(Clone, Debug)]
pub struct Created<T> {
    pub value: T,
    /// True when an earlier request with the same key made `value`.
    pub replayed: bool,
}

/// The id that an earlier request with this key created, if any. A key reused with another
/// body, or for another kind of resource, is refused.
pub(crate) async fn earlier_result(
    state: &AppState,
    key: &IdempotencyKey,
    kind: &str,
) -> Result<Option<String>> {
    let Some(hit) = state
        .store()
        .find_idempotency(&key.scope, &key.key)
        .await
        .map_err(AppError::Internal)?
    else {
        return Ok(None);
    };
    if hit.request_hash != key.request_hash || hit.resource_kind != kind {
        return Err(AppError::IdempotencyKeyReused);
    }
    Ok(Some(hit.resource_id))
}

/// Whether a store error says that a concurrent request took the same key first.
pub(crate) fn lost_race(error: &StoreError) -> bool {
    matches!(error, StoreError::Conflict { field, .. } if field == "idempotency_key")
}
