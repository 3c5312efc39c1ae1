//! Templates and their lifecycle transitions.

use serde_json::Value;
use sqlx::types::Json;
use switchboard_core::template::{Template, TemplateContent, TemplateStatus, TemplateTransition};
use switchboard_core::{SenderId, TemplateId};

use crate::rows::{at, enum_text, json_value, ms, parse, word};
use crate::{Page, PageRequest, Result, Store, StoreError};

#[derive(sqlx::FromRow)]
struct TemplateRow {
    id: String,
    sender_id: String,
    content: Json<Value>,
    status: String,
    status_reason: Option<String>,
    recontact: bool,
    provider_template_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TemplateRow {
    fn into_template(self) -> Result<Template> {
        Ok(Template {
            id: parse("templates.id", &self.id)?,
            sender_id: parse("templates.sender_id", &self.sender_id)?,
            content: json_value::<TemplateContent>("templates.content", self.content.0)?,
            status: word("templates.status", &self.status)?,
            status_reason: self.status_reason,
            recontact: self.recontact,
            provider_template_id: self.provider_template_id,
            created_at: at(self.created_at),
            updated_at: at(self.updated_at),
        })
    }
}

const COLUMNS: &str = "id, sender_id, content, status, status_reason, recontact, \
    provider_template_id, created_at, updated_at";

#[derive(Clone, Debug, Default)]
pub struct TemplateFilter {
    pub sender_id: Option<SenderId>,
    pub name: Option<String>,
    pub status: Option<TemplateStatus>,
}

/// Clears the recontact flag on the sender's templates of other names, so that one template
/// (in any number of locales) is the sender's recontact template (R3.7).
macro_rules! single_recontact {
    ($tx:ident, $template:expr) => {
        if $template.recontact {
            sqlx::query(
                "UPDATE templates SET recontact = FALSE WHERE sender_id = $1 AND name <> $2",
            )
            .bind($template.sender_id.to_string())
            .bind(&$template.content.name)
            .execute(&mut *$tx)
            .await?;
        }
    };
}

impl Store {
    /// Creates a template. Another template of the sender with the same name and locale is a
    /// [`StoreError::Conflict`] on `locale`.
    pub async fn create_template(&self, template: &Template) -> Result<()> {
        write_tx!(self, |tx| {
            single_recontact!(tx, template);
            sqlx::query(
                "INSERT INTO templates (id, sender_id, name, locale, content, status, \
                 status_reason, recontact, provider_template_id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(template.id.to_string())
            .bind(template.sender_id.to_string())
            .bind(&template.content.name)
            .bind(template.content.locale.as_str())
            .bind(Json(&template.content))
            .bind(enum_text(&template.status))
            .bind(&template.status_reason)
            .bind(template.recontact)
            .bind(&template.provider_template_id)
            .bind(ms(template.created_at))
            .bind(ms(template.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::InUse => StoreError::MissingReference {
                    field: "sender_id".to_owned(),
                    id: template.sender_id.to_string(),
                },
                other => other,
            })?;
        });
        Ok(())
    }

    pub async fn get_template(&self, id: TemplateId) -> Result<Template> {
        let sql = format!("SELECT {COLUMNS} FROM templates WHERE id = $1");
        let row: Option<TemplateRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.into_template()
    }

    pub async fn list_templates(
        &self,
        filter: &TemplateFilter,
        page: &PageRequest,
    ) -> Result<Page<Template>> {
        let (after, order) = page.keyset("id", 4);
        let sql = format!(
            "SELECT {COLUMNS} FROM templates WHERE \
             (CAST($1 AS TEXT) IS NULL OR sender_id = $1) \
             AND (CAST($2 AS TEXT) IS NULL OR name = $2) \
             AND (CAST($3 AS TEXT) IS NULL OR status = $3) \
             AND {after} ORDER BY {order} LIMIT $5"
        );
        let rows: Vec<TemplateRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(filter.sender_id.map(|s| s.to_string()))
                .bind(&filter.name)
                .bind(filter.status.map(|s| enum_text(&s)))
                .bind(&page.after)
                .bind(page.fetch_limit())
                .fetch_all(db)
                .await?
        });
        let templates = rows
            .into_iter()
            .map(TemplateRow::into_template)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(templates, page, |t| t.id.to_string()))
    }

    /// Every template of a sender, in every status and locale: what the policy chooses from.
    pub async fn sender_templates(&self, sender: SenderId) -> Result<Vec<Template>> {
        let sql = format!("SELECT {COLUMNS} FROM templates WHERE sender_id = $1 ORDER BY id");
        let rows: Vec<TemplateRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(sender.to_string())
                .fetch_all(db)
                .await?
        });
        rows.into_iter().map(TemplateRow::into_template).collect()
    }

    /// How many distinct template names a sender has (Meta counts names, not translations).
    pub async fn count_template_names(&self, sender: SenderId) -> Result<i64> {
        let (n,): (i64,) = read_pool!(self, |db| {
            sqlx::query_as("SELECT COUNT(DISTINCT name) FROM templates WHERE sender_id = $1")
                .bind(sender.to_string())
                .fetch_one(db)
                .await?
        });
        Ok(n)
    }

    /// Replaces a template's content and flags (not its status: see [`Store::transition_template`]).
    pub async fn update_template(&self, template: &Template) -> Result<()> {
        let updated = write_tx!(self, |tx| {
            single_recontact!(tx, template);
            sqlx::query(
                "UPDATE templates SET name = $2, locale = $3, content = $4, recontact = $5, \
                 provider_template_id = $6, updated_at = $7 WHERE id = $1",
            )
            .bind(template.id.to_string())
            .bind(&template.content.name)
            .bind(template.content.locale.as_str())
            .bind(Json(&template.content))
            .bind(template.recontact)
            .bind(&template.provider_template_id)
            .bind(ms(template.updated_at))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Moves a template from `transition.from` to `transition.to` and records the step. Fenced
    /// on the current status: returns false, changing nothing, if the template is no longer in
    /// `from` (a concurrent change won).
    pub async fn transition_template(
        &self,
        id: TemplateId,
        transition: &TemplateTransition,
    ) -> Result<bool> {
        let id = id.to_string();
        let moved = write_tx!(self, |tx| {
            let changed = sqlx::query(
                "UPDATE templates SET status = $2, status_reason = $3, updated_at = $4 \
                 WHERE id = $1 AND status = $5",
            )
            .bind(&id)
            .bind(enum_text(&transition.to))
            .bind(&transition.reason)
            .bind(ms(transition.at))
            .bind(enum_text(&transition.from))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 1 {
                let (next,): (i64,) = sqlx::query_as(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM template_transitions \
                     WHERE template_id = $1",
                )
                .bind(&id)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO template_transitions (template_id, seq, from_status, to_status, \
                     at, actor, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&id)
                .bind(next)
                .bind(enum_text(&transition.from))
                .bind(enum_text(&transition.to))
                .bind(ms(transition.at))
                .bind(&transition.actor)
                .bind(&transition.reason)
                .execute(&mut *tx)
                .await?;
            }
            changed == 1
        });
        Ok(moved)
    }

    /// Keeps the provider's id for a template (Meta's, once submitted).
    pub async fn set_template_provider_id(
        &self,
        id: TemplateId,
        provider_template_id: &str,
        now: time::OffsetDateTime,
    ) -> Result<()> {
        let updated = write_tx!(self, |tx| {
            sqlx::query(
                "UPDATE templates SET provider_template_id = $2, updated_at = $3 WHERE id = $1",
            )
            .bind(id.to_string())
            .bind(provider_template_id)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?
            .rows_affected()
        });
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// The template of one of `senders` that the provider knows by this id.
    pub async fn find_template_by_provider_id(
        &self,
        senders: &[SenderId],
        provider_template_id: &str,
    ) -> Result<Option<Template>> {
        let sql = format!("SELECT {COLUMNS} FROM templates WHERE provider_template_id = $1");
        let rows: Vec<TemplateRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(provider_template_id)
                .fetch_all(db)
                .await?
        });
        for row in rows {
            let template = row.into_template()?;
            if senders.contains(&template.sender_id) {
                return Ok(Some(template));
            }
        }
        Ok(None)
    }

    pub async fn template_transitions(&self, id: TemplateId) -> Result<Vec<TemplateTransition>> {
        let rows: Vec<(String, String, i64, String, Option<String>)> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT from_status, to_status, at, actor, reason FROM template_transitions \
                 WHERE template_id = $1 ORDER BY seq",
            )
            .bind(id.to_string())
            .fetch_all(db)
            .await?
        });
        rows.into_iter()
            .map(|(from, to, when, actor, reason)| {
                Ok(TemplateTransition {
                    from: word("template_transitions.from_status", &from)?,
                    to: word("template_transitions.to_status", &to)?,
                    at: at(when),
                    actor,
                    reason,
                })
            })
            .collect()
    }

    pub async fn delete_template(&self, id: TemplateId) -> Result<()> {
        self.delete_by_id("templates", &id.to_string()).await
    }
}
