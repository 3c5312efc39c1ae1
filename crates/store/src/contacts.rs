//! Contacts, matched by phone, WhatsApp user id (BSUID) or Messenger id.

use serde_json::{Map, Value};
use sqlx::types::Json;
use switchboard_core::contact::{Contact, Locale};
use switchboard_core::{ContactId, MessengerPsid, PhoneNumber, UserId, WhatsappUserId};

use crate::rows::{at, ms, parse, parse_opt};
use crate::{IdempotencyKey, Page, PageRequest, Result, Store, StoreError};

#[derive(sqlx::FromRow)]
pub(crate) struct ContactRow {
    pub(crate) id: String,
    name: Option<String>,
    phone: Option<String>,
    whatsapp_user_id: Option<String>,
    messenger_psid: Option<String>,
    locale: Option<String>,
    owner_id: Option<String>,
    fields: Json<Map<String, Value>>,
    created_at: i64,
    updated_at: i64,
}

impl ContactRow {
    pub(crate) fn into_contact(self) -> Result<Contact> {
        Ok(Contact {
            id: parse("contacts.id", &self.id)?,
            name: self.name,
            phone: self.phone.map(PhoneNumber::from_trusted),
            whatsapp_user_id: self.whatsapp_user_id.map(WhatsappUserId::from_trusted),
            messenger_psid: self.messenger_psid.map(MessengerPsid::from_trusted),
            locale: self.locale.map(Locale::from_trusted),
            owner_id: parse_opt::<UserId>("contacts.owner_id", self.owner_id.as_deref())?,
            fields: self.fields.0,
            created_at: at(self.created_at),
            updated_at: at(self.updated_at),
        })
    }
}

pub(crate) const COLUMNS: &str =
    "id, name, phone, whatsapp_user_id, messenger_psid, locale, owner_id, \
    fields, created_at, updated_at";

/// Filters for listing contacts.
#[derive(Clone, Debug, Default)]
pub struct ContactFilter {
    /// Matches names containing it (any case) and phones containing its digits.
    pub q: Option<String>,
    pub owner_id: Option<UserId>,
}

/// The columns a contact is inserted with, in the order [`bind_contact`] binds them.
macro_rules! contact_columns {
    () => {
        "id, name, phone, whatsapp_user_id, messenger_psid, locale, owner_id, fields, \
         created_at, updated_at"
    };
}

/// Binds a contact's columns to `$query`, in the order of [`contact_columns`].
macro_rules! bind_contact {
    ($query:expr, $contact:expr) => {{
        let contact: &Contact = $contact;
        $query
            .bind(contact.id.to_string())
            .bind(&contact.name)
            .bind(contact.phone.as_ref().map(PhoneNumber::as_str))
            .bind(
                contact
                    .whatsapp_user_id
                    .as_ref()
                    .map(WhatsappUserId::as_str),
            )
            .bind(contact.messenger_psid.as_ref().map(MessengerPsid::as_str))
            .bind(contact.locale.as_ref().map(Locale::as_str))
            .bind(contact.owner_id.map(|u| u.to_string()))
            .bind(Json(&contact.fields))
            .bind(ms(contact.created_at))
            .bind(ms(contact.updated_at))
    }};
}

/// Refuses a contact whose phone, BSUID or PSID belongs to another contact, naming the field and
/// the contact that holds it. Runs inside the write transaction.
macro_rules! ensure_addresses_free {
    ($tx:ident, $contact:expr) => {
        let addresses = [
            ("phone", $contact.phone.as_ref().map(|a| a.as_str())),
            (
                "whatsapp_user_id",
                $contact.whatsapp_user_id.as_ref().map(|a| a.as_str()),
            ),
            (
                "messenger_psid",
                $contact.messenger_psid.as_ref().map(|a| a.as_str()),
            ),
        ];
        for (field, value) in addresses {
            let Some(value) = value else { continue };
            // The column name comes from the fixed list above, never from input.
            let sql = format!("SELECT id FROM contacts WHERE {field} = $1 AND id <> $2");
            let holder: Option<(String,)> = sqlx::query_as(&sql)
                .bind(value)
                .bind($contact.id.to_string())
                .fetch_optional(&mut *$tx)
                .await?;
            if let Some((existing,)) = holder {
                return Err(StoreError::Conflict {
                    field: field.to_owned(),
                    existing_id: Some(existing),
                });
            }
        }
    };
}

impl Store {
    /// Creates a contact, recording `idempotency` in the same transaction.
    pub async fn create_contact(
        &self,
        contact: &Contact,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<()> {
        let result = self.insert_contact(contact, idempotency).await;
        self.name_address_holder(result, contact).await
    }

    /// A unique address lost to a concurrent insert (PostgreSQL's READ COMMITTED lets both
    /// transactions pass the check) is reported like one found by the check: naming the holder.
    async fn name_address_holder(&self, result: Result<()>, contact: &Contact) -> Result<()> {
        match result {
            Err(StoreError::Conflict {
                field,
                existing_id: None,
            }) if matches!(
                field.as_str(),
                "phone" | "whatsapp_user_id" | "messenger_psid"
            ) =>
            {
                let holder = self
                    .find_contact_by_address(
                        contact.phone.as_ref().filter(|_| field == "phone"),
                        contact
                            .whatsapp_user_id
                            .as_ref()
                            .filter(|_| field == "whatsapp_user_id"),
                        contact
                            .messenger_psid
                            .as_ref()
                            .filter(|_| field == "messenger_psid"),
                    )
                    .await?;
                Err(StoreError::Conflict {
                    field,
                    existing_id: holder.map(|c| c.id.to_string()),
                })
            }
            other => other,
        }
    }

    async fn insert_contact(
        &self,
        contact: &Contact,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<()> {
        write_tx!(self, |tx| {
            // The key is claimed first: a concurrent retry of the same request then fails on
            // the key (and is answered with this result), never on the contact's own checks.
            record_idempotency!(
                tx,
                idempotency,
                "contact",
                contact.id.to_string(),
                contact.created_at
            );
            ensure_addresses_free!(tx, contact);
            bind_contact!(
                sqlx::query(concat!(
                    "INSERT INTO contacts (",
                    contact_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                )),
                contact
            )
            .execute(&mut *tx)
            .await
            .map_err(|e| owner_reference(e, contact))?;
        });
        Ok(())
    }

    /// Creates contacts for customers writing in for the first time, a batch of them in one
    /// transaction. One whose address another contact took meanwhile is left out: the caller
    /// looks the addresses up again and finds whichever contact holds each.
    pub async fn create_contacts_absent(&self, contacts: &[Contact]) -> Result<()> {
        // Ten parameters a contact: well under both engines' limits.
        const ROWS: usize = 500;
        if contacts.is_empty() {
            return Ok(());
        }
        write_tx!(self, |tx| {
            for chunk in contacts.chunks(ROWS) {
                let sql = format!(
                    "INSERT INTO contacts ({}) VALUES {} ON CONFLICT DO NOTHING",
                    contact_columns!(),
                    crate::rows::tuples(chunk.len(), 10)
                );
                let sql = crate::rows::sql_for(&*tx, sql);
                let mut query = sqlx::query(&sql);
                for contact in chunk {
                    query = bind_contact!(query, contact);
                }
                query.execute(&mut *tx).await?;
            }
        });
        Ok(())
    }

    pub async fn get_contact(&self, id: ContactId) -> Result<Contact> {
        let sql = format!("SELECT {COLUMNS} FROM contacts WHERE id = $1");
        let row: Option<ContactRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(id.to_string())
                .fetch_optional(db)
                .await?
        });
        row.ok_or(StoreError::NotFound)?.into_contact()
    }

    /// The contacts with these ids (those that exist), in no particular order.
    pub async fn get_contacts(&self, ids: &[ContactId]) -> Result<Vec<Contact>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ContactRow> = read_pool!(self, |db| {
            let (list, _) = crate::bulk::in_list(db, 1, false);
            let sql = format!("SELECT {COLUMNS} FROM contacts WHERE id {list}");
            let sql = crate::rows::sql_for(db, sql);
            crate::bulk::bind_list(db, sqlx::query_as(&sql), ids)
                .fetch_all(db)
                .await?
        });
        rows.into_iter().map(ContactRow::into_contact).collect()
    }

    /// The contacts known by any of these addresses, in one read (a batch of inbound messages
    /// looks up its senders at once). Each address is unique to one contact.
    pub async fn find_contacts_by_addresses(
        &self,
        phones: &[&str],
        whatsapp_user_ids: &[&str],
        messenger_psids: &[&str],
    ) -> Result<Vec<Contact>> {
        let lists: Vec<(&str, &[&str])> = [
            ("phone", phones),
            ("whatsapp_user_id", whatsapp_user_ids),
            ("messenger_psid", messenger_psids),
        ]
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .collect();
        if lists.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ContactRow> = read_pool!(self, |db| {
            let mut terms = Vec::new();
            let mut next = 1;
            for (column, _) in &lists {
                let (list, after) = crate::bulk::in_list(db, next, false);
                terms.push(format!("SELECT id FROM contacts WHERE {column} {list}"));
                next = after;
            }
            let sql = format!(
                "SELECT {COLUMNS} FROM contacts WHERE id IN ({})",
                terms.join(" UNION ALL ")
            );
            let sql = crate::rows::sql_for(db, sql);
            let mut query = sqlx::query_as(&sql);
            for (_, values) in &lists {
                query = crate::bulk::bind_list(db, query, values);
            }
            query.fetch_all(db).await?
        });
        rows.into_iter().map(ContactRow::into_contact).collect()
    }

    /// The contact known by any of these addresses (R1.7: a WhatsApp user may be matched by
    /// phone or by BSUID).
    pub async fn find_contact_by_address(
        &self,
        phone: Option<&PhoneNumber>,
        whatsapp_user_id: Option<&WhatsappUserId>,
        messenger_psid: Option<&MessengerPsid>,
    ) -> Result<Option<Contact>> {
        // One unique-index lookup per address: with the three as one OR, SQLite walked the
        // whole table in id order.
        let sql = format!(
            "SELECT {COLUMNS} FROM contacts WHERE id IN (\
             SELECT id FROM contacts WHERE phone = $1 \
             UNION ALL SELECT id FROM contacts WHERE whatsapp_user_id = $2 \
             UNION ALL SELECT id FROM contacts WHERE messenger_psid = $3) \
             ORDER BY id LIMIT 1"
        );
        let row: Option<ContactRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(phone.map(PhoneNumber::as_str))
                .bind(whatsapp_user_id.map(WhatsappUserId::as_str))
                .bind(messenger_psid.map(MessengerPsid::as_str))
                .fetch_optional(db)
                .await?
        });
        row.map(ContactRow::into_contact).transpose()
    }

    pub async fn list_contacts(
        &self,
        filter: &ContactFilter,
        page: &PageRequest,
    ) -> Result<Page<Contact>> {
        let (name_pattern, phone_pattern) = match filter.q.as_deref().map(str::trim) {
            Some(q) if !q.is_empty() => {
                let digits: String = q.chars().filter(char::is_ascii_digit).collect();
                (
                    Some(format!("%{}%", escape_like(&q.to_lowercase()))),
                    (!digits.is_empty()).then(|| format!("%{digits}%")),
                )
            }
            _ => (None, None),
        };
        let (after, order) = page.keyset("id", 4);
        let sql = format!(
            "SELECT {COLUMNS} FROM contacts WHERE \
             (CAST($1 AS TEXT) IS NULL OR LOWER(COALESCE(name, '')) LIKE $1 ESCAPE '\\' \
              OR phone LIKE $2 OR whatsapp_user_id = $5 OR messenger_psid = $5) \
             AND (CAST($3 AS TEXT) IS NULL OR owner_id = $3) AND {after} \
             ORDER BY {order} LIMIT $6"
        );
        let exact = filter.q.as_deref().map(str::trim);
        let rows: Vec<ContactRow> = read_pool!(self, |db| {
            sqlx::query_as(&sql)
                .bind(&name_pattern)
                .bind(&phone_pattern)
                .bind(filter.owner_id.map(|u| u.to_string()))
                .bind(&page.after)
                .bind(exact)
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

    pub async fn update_contact(&self, contact: &Contact) -> Result<()> {
        let result = self.update_contact_row(contact).await;
        self.name_address_holder(result, contact).await
    }

    async fn update_contact_row(&self, contact: &Contact) -> Result<()> {
        let fields = Json(&contact.fields);
        write_tx!(self, |tx| {
            ensure_addresses_free!(tx, contact);
            let updated = sqlx::query(
                "UPDATE contacts SET name = $2, phone = $3, whatsapp_user_id = $4, \
                 messenger_psid = $5, locale = $6, owner_id = $7, fields = $8, updated_at = $9 \
                 WHERE id = $1",
            )
            .bind(contact.id.to_string())
            .bind(&contact.name)
            .bind(contact.phone.as_ref().map(PhoneNumber::as_str))
            .bind(
                contact
                    .whatsapp_user_id
                    .as_ref()
                    .map(WhatsappUserId::as_str),
            )
            .bind(contact.messenger_psid.as_ref().map(MessengerPsid::as_str))
            .bind(contact.locale.as_ref().map(Locale::as_str))
            .bind(contact.owner_id.map(|u| u.to_string()))
            .bind(fields)
            .bind(ms(contact.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| owner_reference(e, contact))?
            .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound);
            }
        });
        Ok(())
    }

    /// Deletes a contact with no message history; one with history is [`StoreError::InUse`].
    pub async fn delete_contact(&self, id: ContactId) -> Result<()> {
        self.delete_by_id("contacts", &id.to_string()).await
    }
}

/// The only foreign key a contact write can break is its owner.
fn owner_reference(error: sqlx::Error, contact: &Contact) -> StoreError {
    match StoreError::from(error) {
        StoreError::InUse => StoreError::MissingReference {
            field: "owner_id".to_owned(),
            id: contact.owner_id.map(|u| u.to_string()).unwrap_or_default(),
        },
        other => other,
    }
}

pub(crate) fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
