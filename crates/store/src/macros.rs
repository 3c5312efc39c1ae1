//! Expands one method body for each backend.
//!
//! The body is type-checked once per backend against that backend's native connection, so the
//! SQL text and row mapping are written once without generic trait bounds over
//! `sqlx::Database`.

/// Runs `$body` with `$db` bound to a read pool (`&SqlitePool` or `&PgPool`).
macro_rules! read_pool {
    ($store:expr, |$db:ident| $body:expr) => {
        match $store {
            $crate::Store::Sqlite(backend) => {
                let $db = &backend.reader;
                $body
            }
            $crate::Store::Postgres(backend) => {
                let $db = &backend.pool;
                $body
            }
        }
    };
}

/// Runs `$body` in a write transaction with `$tx` bound to `&mut` the connection, and commits
/// when the body yields a value. An early return through `?` drops the transaction, which rolls
/// it back. On SQLite the transaction opens with `BEGIN IMMEDIATE` on the single writer.
///
/// Each committed transaction is logged at debug level under `switchboard_store::tx`: where it
/// was written, how long it waited for a connection, ran, and took to commit (microseconds).
/// On SQLite the sum of the last two over a run is how long the single writer was held, by
/// whom: the first thing to read when writes are slow.
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let asked = std::time::Instant::now();
        let (value, began, ran) = match $store {
            $crate::Store::Sqlite(backend) => {
                let mut guard = backend.writer.begin_with("BEGIN IMMEDIATE").await?;
                let began = std::time::Instant::now();
                let value = {
                    let $tx = &mut *guard;
                    $body
                };
                let ran = std::time::Instant::now();
                guard.commit().await?;
                (value, began, ran)
            }
            $crate::Store::Postgres(backend) => {
                let mut guard = backend.pool.begin().await?;
                let began = std::time::Instant::now();
                let value = {
                    let $tx = &mut *guard;
                    $body
                };
                let ran = std::time::Instant::now();
                guard.commit().await?;
                (value, began, ran)
            }
        };
        tracing::debug!(
            target: "switchboard_store::tx",
            site = concat!(file!(), ":", line!()),
            wait_us = (began - asked).as_micros() as u64,
            body_us = (ran - began).as_micros() as u64,
            commit_us = ran.elapsed().as_micros() as u64,
        );
        value
    }};
}

/// Runs `$body`, a write that is a single statement, with `$db` bound to `&mut` a write
/// connection outside any transaction: one statement is atomic by itself, and this spares the
/// two round trips to the connection that `BEGIN` and `COMMIT` take, during which SQLite's
/// single writer is held and does nothing. Logged as [`write_tx!`] logs (the commit is the
/// statement's own, inside its body).
macro_rules! write_one {
    ($store:expr, |$db:ident| $body:expr) => {{
        let asked = std::time::Instant::now();
        let (value, began) = match $store {
            $crate::Store::Sqlite(backend) => {
                let mut connection = backend.writer.acquire().await?;
                let began = std::time::Instant::now();
                let $db = &mut *connection;
                ($body, began)
            }
            $crate::Store::Postgres(backend) => {
                let mut connection = backend.pool.acquire().await?;
                let began = std::time::Instant::now();
                let $db = &mut *connection;
                ($body, began)
            }
        };
        tracing::debug!(
            target: "switchboard_store::tx",
            site = concat!(file!(), ":", line!()),
            wait_us = (began - asked).as_micros() as u64,
            body_us = began.elapsed().as_micros() as u64,
            commit_us = 0u64,
        );
        value
    }};
}

/// Records `$key` (an `Option<&IdempotencyKey>`) for the resource being created, inside the
/// caller's write transaction. A key taken concurrently fails the transaction with a conflict on
/// `idempotency_key`, and the caller looks the first result up.
macro_rules! record_idempotency {
    ($tx:ident, $key:expr, $kind:expr, $id:expr, $now:expr) => {
        if let Some(key) = $key {
            sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, request_hash, resource_kind, \
                 resource_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.scope)
            .bind(&key.key)
            .bind(&key.request_hash)
            .bind($kind)
            .bind($id)
            .bind($crate::rows::ms($now))
            .execute(&mut *$tx)
            .await
            .map_err(|e| match $crate::StoreError::from(e) {
                $crate::StoreError::Conflict { .. } => $crate::StoreError::Conflict {
                    field: "idempotency_key".to_owned(),
                    existing_id: None,
                },
                other => other,
            })?;
        }
    };
}

/// Appends a consent event inside the caller's transaction.
macro_rules! insert_consent_event {
    ($tx:ident, $event:expr) => {{
        let event: &switchboard_core::consent::ConsentEvent = $event;
        sqlx::query(
            "INSERT INTO consent_events (id, contact_id, channel, status, source, evidence, \
             actor, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(event.id.to_string())
        .bind(event.contact_id.to_string())
        .bind(event.channel.as_str())
        .bind($crate::rows::enum_text(&event.status))
        .bind($crate::rows::enum_text(&event.source))
        .bind(&event.evidence)
        .bind(&event.actor)
        .bind($crate::rows::ms(event.at))
        .execute(&mut *$tx)
        .await?;
    }};
}
