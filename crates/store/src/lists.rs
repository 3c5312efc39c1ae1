//! Contact lists (R6.1) and their members.
//!
//! Members are kept in `(list_id, contact_id)` order, so a list's members are read by keyset over
//! the primary key: campaigns page through a million members without an offset.

use sqlx::types::Json;
use switchboard_core::contact::Contact;
use switchboard_core::list::{ContactList, ListFilter};
use switchboard_core::{ContactId, ListId};
use time::OffsetDateTime;

use crate::contacts::{escape_like, ContactRow, COLUMNS as CONTACT_COLUMNS};
use crate::rows::{at, ms, parse, placeholders};
use crate::{Backend, Page, PageRequest, Result, Store, StoreError};

/// Ids per statement when members are added or checked by id. Binding on SQLite costs the
/// square of a statement's parameters (see `imports`), so a few hundred, not thousands.
const IDS_PER_STATEMENT: usize = 250;

/// A list with its size.
#[derive(Clone, Debug, PartialEq)]
pub struct ListSummary {
    pub list: ContactList,
    pub member_count: u64,
}

#[derive(sqlx::FromRow)]
struct ListRow {
    id: String,
    name: String,
    description: Option<String>,
    filter: Option<Json<ListFilter>>,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    member_count: i64,
}

impl ListRow {
    fn into_summary(self) -> Result<ListSummary> {
        Ok(ListSummary {
            list: ContactList {
                id: parse("contact_lists.id", &self.id)?,
                name: self.name,
                description: self.description,
                filter: self.filter.map(|f| f.0),
                created_by: self.created_by,
                created_at: at(self.created_at),
                updated_at: at(self.updated_at),
            },
            member_count: u64::try_from(self.member_count).unwrap_or_default(),
        })
    }
}

const LIST_COLUMNS: &str = "id, name, description, filter, created_by, created_at, updated_at, \
    (SELECT COUNT(*) FROM contact_list_members m WHERE m.list_id = contact_lists.id) \
    AS member_count";

/// A filter as SQL over `contacts`: the condition and its parameters in order, all text.
/// Parameters are numbered from `first`. Only fixed fragments and validated custom field names
/// (lower-case letters, digits and `_`) reach the SQL text; every value is bound.
fn filter_sql(
    backend: Backend,
    filter: &ListFilter,
    first: usize,
) -> (String, Vec<Option<String>>) {
    let mut args: Vec<Option<String>> = Vec::new();
    let mut arg = |value: Option<String>| {
        args.push(value);
        format!("${}", first + args.len() - 1)
    };
    let mut conditions = Vec::new();
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let name = arg(Some(format!("%{}%", escape_like(&q.to_lowercase()))));
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        let phone = arg((!digits.is_empty()).then(|| format!("%{digits}%")));
        let exact = arg(Some(q.to_owned()));
        conditions.push(format!(
            "(LOWER(COALESCE(contacts.name, '')) LIKE {name} ESCAPE '\\' \
             OR contacts.phone LIKE {phone} OR contacts.whatsapp_user_id = {exact} \
             OR contacts.messenger_psid = {exact})"
        ));
    }
    if let Some((locale, language_only)) = filter.locale_match() {
        let exact = arg(Some(locale.to_owned()));
        if language_only {
            let regions = arg(Some(format!("{}\\_%", escape_like(locale))));
            conditions.push(format!(
                "(contacts.locale = {exact} OR contacts.locale LIKE {regions} ESCAPE '\\')"
            ));
        } else {
            conditions.push(format!("contacts.locale = {exact}"));
        }
    }
    if let Some(owner) = filter.owner_id {
        let owner = arg(Some(owner.to_string()));
        conditions.push(format!("contacts.owner_id = {owner}"));
    }
    for (key, value) in &filter.fields {
        let value = arg(Some(value.to_string()));
        match backend {
            // jsonb equality: the same type and value ("3" is not 3).
            Backend::Postgres => {
                let key = arg(Some(key.clone()));
                conditions.push(format!("contacts.fields -> {key} = CAST({value} AS JSONB)"));
            }
            // json_extract gives SQL values (true is 1), so the JSON types are compared too.
            Backend::Sqlite => {
                let path = arg(Some(format!("$.{key}")));
                conditions.push(format!(
                    "(json_type(contacts.fields, {path}) = json_type({value}) \
                     AND json_extract(contacts.fields, {path}) = json_extract({value}, '$'))"
                ));
            }
        }
    }
    if let Some(channel) = filter.opted_in {
        let channel = arg(Some(channel.as_str().to_owned()));
        // The ledger's current status is its latest entry by (at, id), as
        // `consent::current_status` reads it; that entry must be an opt-in.
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM consent_events e WHERE e.contact_id = contacts.id \
             AND e.channel = {channel} AND e.status = 'opted_in' \
             AND NOT EXISTS (SELECT 1 FROM consent_events l WHERE l.contact_id = e.contact_id \
             AND l.channel = e.channel AND (l.at > e.at OR (l.at = e.at AND l.id > e.id))))"
        ));
    }
    if conditions.is_empty() {
        conditions.push("TRUE".to_owned());
    }
    (conditions.join(" AND "), args)
}

impl Store {
    /// Creates a list with its first members: `contact_ids`, then the contacts its filter
    /// selects, in one transaction. Answers how many members it has. A taken name is a
    /// [`StoreError::Conflict`] on `name`; an unknown contact is [`StoreError::InUse`] (a
    /// broken reference), which callers avoid by checking with [`Store::missing_contacts`].
    pub async fn create_list(&self, list: &ContactList, contact_ids: &[ContactId]) -> Result<u64> {
        let (condition, args) = match &list.filter {
            Some(f) => filter_sql(self.backend(), f, 3),
            None => (String::new(), Vec::new()),
        };
        let by_filter = format!(
            "INSERT INTO contact_list_members (list_id, contact_id, added_at) \
             SELECT $1, contacts.id, $2 FROM contacts WHERE {condition} \
             ON CONFLICT DO NOTHING"
        );
        let list_id = list.id.to_string();
        let added = write_tx!(self, |tx| {
            sqlx::query(
                "INSERT INTO contact_lists (id, name, description, filter, created_by, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&list_id)
            .bind(&list.name)
            .bind(&list.description)
            .bind(list.filter.as_ref().map(Json))
            .bind(&list.created_by)
            .bind(ms(list.created_at))
            .bind(ms(list.updated_at))
            .execute(&mut *tx)
            .await?;
            let mut added = 0;
            for chunk in contact_ids.chunks(IDS_PER_STATEMENT) {
                let sql = insert_members_sql(chunk.len());
                let mut query = sqlx::query(&sql).bind(&list_id).bind(ms(list.created_at));
                for id in chunk {
                    query = query.bind(id.to_string());
                }
                added += query.execute(&mut *tx).await?.rows_affected();
            }
            if list.filter.is_some() {
                let mut query = sqlx::query(&by_filter)
                    .bind(&list_id)
                    .bind(ms(list.created_at));
                for arg in &args {
                    query = query.bind(arg);
                }
                added += query.execute(&mut *tx).await?.rows_affected();
            }
            added
        });
        Ok(added)
    }

    /// The id of the list with this name, if any.
    pub async fn list_id_by_name(&self, name: &str) -> Result<Option<ListId>> {
        let row: Option<(String,)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT id FROM contact_lists WHERE name = $1")
                .bind(name)
                .fetch_optional(db)
                .await?
        });
        row.map(|(id,)| parse("contact_lists.id", &id)).transpose()
    }

    pub async fn get_list(&self, id: ListId) -> Result<ListSummary> {
        let sql = format!("SELECT {LIST_COLUMNS} FROM contact_lists WHERE id = $1");
        let row: Option<ListRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.into_summary()
    }

    /// Whether the list exists, without counting its members.
    pub async fn list_exists(&self, id: ListId) -> Result<bool> {
        let row: Option<(String,)> = read_pool!(self, |db| {
            sqlx::query_as("SELECT id FROM contact_lists WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
        });
        Ok(row.is_some())
    }

    pub async fn list_lists(&self, page: &PageRequest) -> Result<Page<ListSummary>> {
        let (after, order) = page.keyset("id", 1);
        let sql = format!(
            "SELECT {LIST_COLUMNS} FROM contact_lists WHERE {after} ORDER BY {order} LIMIT $2"
        );
        let rows: Vec<ListRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(&page.after)
                .bind(page.fetch_limit())
                .fetch_all(db)
                .await?
        });
        let lists = rows
            .into_iter()
            .map(ListRow::into_summary)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(lists, page, |l| l.list.id.to_string()))
    }

    /// Deletes a list and its memberships (not the contacts). A list a campaign uses is
    /// [`StoreError::InUse`].
    pub async fn delete_list(&self, id: ListId) -> Result<()> {
        self.delete_by_id("contact_lists", &id.to_string()).await
    }

    /// Of these ids, those that name no contact, in the order given.
    pub async fn missing_contacts(&self, ids: &[ContactId]) -> Result<Vec<ContactId>> {
        let mut found = std::collections::HashSet::new();
        for chunk in ids.chunks(IDS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id FROM contacts WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let rows: Vec<(String,)> = read_pool!(self, |db| {
                let mut query = sqlx::query_as(&sql);
                for id in chunk {
                    query = query.bind(id.to_string());
                }
                query.fetch_all(db).await?
            });
            found.extend(rows.into_iter().map(|(id,)| id));
        }
        Ok(ids
            .iter()
            .filter(|id| !found.contains(&id.to_string()))
            .copied()
            .collect())
    }

    /// Adds contacts to a list, skipping those already in it; answers how many were added. An
    /// unknown list is [`StoreError::NotFound`]; an unknown contact is [`StoreError::InUse`].
    pub async fn add_list_members(
        &self,
        list: ListId,
        contact_ids: &[ContactId],
        now: OffsetDateTime,
    ) -> Result<u64> {
        let list_id = list.to_string();
        let added = write_tx!(self, |tx| {
            let touched = sqlx::query("UPDATE contact_lists SET updated_at = $2 WHERE id = $1")
                .bind(&list_id)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if touched == 0 {
                return Err(StoreError::NotFound);
            }
            let mut added = 0;
            for chunk in contact_ids.chunks(IDS_PER_STATEMENT) {
                let sql = insert_members_sql(chunk.len());
                let mut query = sqlx::query(&sql).bind(&list_id).bind(ms(now));
                for id in chunk {
                    query = query.bind(id.to_string());
                }
                added += query.execute(&mut *tx).await?.rows_affected();
            }
            added
        });
        Ok(added)
    }

    /// Adds the contacts a filter selects to a list, in one statement; answers how many were
    /// added. An unknown list is [`StoreError::NotFound`].
    pub async fn add_list_members_by_filter(
        &self,
        list: ListId,
        filter: &ListFilter,
        now: OffsetDateTime,
    ) -> Result<u64> {
        let (condition, args) = filter_sql(self.backend(), filter, 3);
        let sql = format!(
            "INSERT INTO contact_list_members (list_id, contact_id, added_at) \
             SELECT $1, contacts.id, $2 FROM contacts WHERE {condition} \
             ON CONFLICT DO NOTHING"
        );
        let list_id = list.to_string();
        let added = write_tx!(self, |tx| {
            let touched = sqlx::query("UPDATE contact_lists SET updated_at = $2 WHERE id = $1")
                .bind(&list_id)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if touched == 0 {
                return Err(StoreError::NotFound);
            }
            let mut query = sqlx::query(&sql).bind(&list_id).bind(ms(now));
            for arg in &args {
                query = query.bind(arg);
            }
            query.execute(&mut *tx).await?.rows_affected()
        });
        Ok(added)
    }

    /// Removes a contact from a list; [`StoreError::NotFound`] if it was not in it.
    pub async fn remove_list_member(&self, list: ListId, contact: ContactId) -> Result<()> {
        let removed = write_tx!(self, |tx| {
            sqlx::query("DELETE FROM contact_list_members WHERE list_id = $1 AND contact_id = $2")
                .bind(list.to_string())
                .bind(contact.to_string())
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        if removed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// A page of a list's members, by contact id (newest contacts first unless ascending).
    pub async fn list_members(&self, list: ListId, page: &PageRequest) -> Result<Page<Contact>> {
        let (after, order) = page.keyset("m.contact_id", 2);
        let sql = format!(
            "SELECT {CONTACT_COLUMNS} FROM contact_list_members m \
             JOIN contacts ON contacts.id = m.contact_id \
             WHERE m.list_id = $1 AND {after} ORDER BY {order} LIMIT $3"
        );
        let rows: Vec<ContactRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(list.to_string())
                .bind(&page.after)
                .bind(page.fetch_limit())
                .fetch_all(db)
                .await?
        });
        let contacts = rows
            .into_iter()
            .map(ContactRow::into_contact)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(contacts, page, |c| c.id.to_string()))
    }

    /// Up to `limit` member ids after `after`, in ascending id order: the stable order in
    /// which a campaign reads its audience.
    pub async fn list_member_ids(
        &self,
        list: ListId,
        after: Option<ContactId>,
        limit: u32,
    ) -> Result<Vec<ContactId>> {
        let rows: Vec<(String,)> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT contact_id FROM contact_list_members WHERE list_id = $1 \
                 AND (CAST($2 AS TEXT) IS NULL OR contact_id > $2) \
                 ORDER BY contact_id LIMIT $3",
            )
            .bind(list.to_string())
            .bind(after.map(|a| a.to_string()))
            .bind(i64::from(limit))
            .fetch_all(db)
            .await?
        });
        rows.into_iter()
            .map(|(id,)| parse("contact_list_members.contact_id", &id))
            .collect()
    }

    pub async fn count_list_members(&self, list: ListId) -> Result<u64> {
        let (count,): (i64,) = read_pool!(self, |db| {
            sqlx::query_as("SELECT COUNT(*) FROM contact_list_members WHERE list_id = $1")
                .bind(list.to_string())
                .fetch_one(db)
                .await?
        });
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

/// Adds `count` contacts (`$3`...) to list `$1` at `$2`.
fn insert_members_sql(count: usize) -> String {
    let rows = (3..3 + count)
        .map(|n| format!("($1, ${n}, $2)"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO contact_list_members (list_id, contact_id, added_at) VALUES {rows} \
         ON CONFLICT DO NOTHING"
    )
}
