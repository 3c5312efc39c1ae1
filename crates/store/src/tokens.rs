//! API tokens. Only a SHA-256 hash of each secret is stored: the secrets are 256-bit random
//! values, so a slow password hash would add latency to every request and no security.

use serde_json::Value;
use sqlx::types::Json;
use switchboard_core::user::ApiToken;
use switchboard_core::{Permission, TokenId};
use time::OffsetDateTime;

use crate::rows::{at, json_value, ms, parse, parse_opt};
use crate::{Page, PageRequest, Result, Store, StoreError};

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    name: String,
    prefix: String,
    role: String,
    scopes: Option<Json<Value>>,
    user_id: Option<String>,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
}

impl TokenRow {
    fn into_token(self) -> Result<ApiToken> {
        Ok(ApiToken {
            id: parse("api_tokens.id", &self.id)?,
            name: self.name,
            prefix: self.prefix,
            role: parse("api_tokens.role", &self.role)?,
            scopes: self
                .scopes
                .map(|s| json_value::<Vec<Permission>>("api_tokens.scopes", s.0))
                .transpose()?,
            user_id: parse_opt("api_tokens.user_id", self.user_id.as_deref())?,
            created_at: at(self.created_at),
            last_used_at: self.last_used_at.map(at),
            expires_at: self.expires_at.map(at),
        })
    }
}

const COLUMNS: &str =
    "id, name, prefix, role, scopes, user_id, created_at, last_used_at, expires_at";

impl Store {
    /// Stores a token under the hash of its secret.
    pub async fn create_token(&self, token: &ApiToken, secret_hash: &str) -> Result<()> {
        let scopes = token.scopes.as_ref().map(Json);
        write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO api_tokens (id, name, token_hash, prefix, role, scopes, user_id, \
                 created_at, last_used_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(token.id.to_string())
            .bind(&token.name)
            .bind(secret_hash)
            .bind(&token.prefix)
            .bind(token.role.as_str())
            .bind(scopes)
            .bind(token.user_id.map(|u| u.to_string()))
            .bind(ms(token.created_at))
            .bind(token.last_used_at.map(ms))
            .bind(token.expires_at.map(ms))
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::InUse => StoreError::MissingReference {
                    field: "user_id".to_owned(),
                    id: token.user_id.map(|u| u.to_string()).unwrap_or_default(),
                },
                other => other,
            })?;
        });
        Ok(())
    }

    pub async fn find_token_by_hash(&self, secret_hash: &str) -> Result<Option<ApiToken>> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let row: Option<TokenRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(secret_hash)
                .fetch_optional(db)
                .await?
        });
        row.map(TokenRow::into_token).transpose()
    }

    /// The tokens stored under any of these hashes, each with its hash.
    pub async fn find_tokens_by_hashes(
        &self,
        secret_hashes: &[&str],
    ) -> Result<Vec<(String, ApiToken)>> {
        if secret_hashes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT token_hash, {COLUMNS} FROM api_tokens WHERE token_hash IN ({})",
            crate::rows::placeholders(1, secret_hashes.len())
        );
        #[derive(sqlx::FromRow)]
        struct HashedRow {
            token_hash: String,
            #[sqlx(flatten)]
            token: TokenRow,
        }
        let rows: Vec<HashedRow> = read_pool!(self, |db| {
            let sql = crate::rows::sql_for(db, sql);
            let mut query = sqlx::query_as(&sql);
            for hash in secret_hashes {
                query = query.bind(*hash);
            }
            query.fetch_all(db).await?
        });
        rows.into_iter()
            .map(|row| Ok((row.token_hash, row.token.into_token()?)))
            .collect()
    }

    pub async fn get_token(&self, id: TokenId) -> Result<ApiToken> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE id = $1");
        let row: Option<TokenRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.into_token()
    }

    pub async fn list_tokens(&self, page: &PageRequest) -> Result<Page<ApiToken>> {
        let (after, order) = page.keyset("id", 1);
        let sql =
            format!("SELECT {COLUMNS} FROM api_tokens WHERE {after} ORDER BY {order} LIMIT $2");
        let rows: Vec<TokenRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(&page.after)
                .bind(page.fetch_limit())
                .fetch_all(db)
                .await?
        });
        let tokens = rows
            .into_iter()
            .map(TokenRow::into_token)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(tokens, page, |t| t.id.to_string()))
    }

    pub async fn count_tokens(&self) -> Result<i64> {
        let (n,): (i64,) = read_pool!(self, |db| {
            sqlx::query_as("SELECT COUNT(*) FROM api_tokens")
                .fetch_one(db)
                .await?
        });
        Ok(n)
    }

    /// Records that a token was used.
    pub async fn touch_token(&self, id: TokenId, now: OffsetDateTime) -> Result<()> {
        write_tx!(self, |tx| {
            sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                .bind(id.to_string())
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    pub async fn delete_token(&self, id: TokenId) -> Result<()> {
        self.delete_by_id("api_tokens", &id.to_string()).await
    }
}
