//! Contact imports, written a batch of rows per transaction.
//!
//! A row at a time costs a transaction (and on SQLite an fsync of the WAL) per contact, which
//! makes a million rows take hours. A batch costs one lookup of the contacts its rows name, one
//! multi-row insert each for new contacts, consent entries and list members, and an update per
//! contact that already existed.

use std::collections::HashMap;

use serde_json::{Map, Value};
use sqlx::types::Json;
use switchboard_core::consent::{ConsentSource, ConsentStatus};
use switchboard_core::contact::{validate_custom_fields, Contact, Locale};
use switchboard_core::{
    Channel, ConsentEventId, ContactId, ListId, MessengerPsid, PhoneNumber, WhatsappUserId,
};
use time::OffsetDateTime;

use crate::contacts::{ContactRow, COLUMNS};
use crate::rows::placeholders;
use crate::rows::{enum_text, ms, parse, word};
use crate::{Result, Store, StoreError};

/// Bound parameters per statement. sqlx-sqlite looks each parameter's name up in a list as
/// long as the statement's parameters, so binding costs grow with the square of their number:
/// at 10,000 a statement, binding took two thirds of an import's time. A few hundred keep it
/// negligible and still save most round trips.
const PARAMS_PER_STATEMENT: usize = 250;

/// One good row of an import file, already parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportRow {
    /// The file's line the row starts on.
    pub line: u64,
    pub name: Option<String>,
    pub phone: Option<PhoneNumber>,
    pub whatsapp_user_id: Option<WhatsappUserId>,
    pub messenger_psid: Option<MessengerPsid>,
    pub locale: Option<Locale>,
    pub fields: Map<String, Value>,
    pub opt_in: Option<ImportOptIn>,
}

/// The opt-in a row records as evidence in the consent ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptIn {
    pub channel: Channel,
    pub at: OffsetDateTime,
    pub evidence: String,
}

/// What happened to one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowOutcome {
    /// The row's contact was created, or found by an address and updated (`created` false,
    /// also when an earlier row of the same batch created it).
    Saved {
        contact: ContactId,
        created: bool,
        opt_in: OptInOutcome,
    },
    /// Nothing of the row was written.
    Rejected(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptInOutcome {
    NotAsked,
    Recorded,
    /// The ledger says the contact opted out of this channel: an import is no evidence that
    /// they changed their mind, so nothing was recorded.
    OptedOutBefore(Channel),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// One per row, in the rows' order.
    pub rows: Vec<RowOutcome>,
    /// Contacts that joined the list (those already in it are not counted).
    pub added_to_list: u64,
}

struct Slot {
    contact: Contact,
    new: bool,
    dirty: bool,
}

struct PendingConsent {
    slot: usize,
    channel: Channel,
    at: OffsetDateTime,
    evidence: String,
}

/// Where a batch's rows lead, worked out in memory from the contacts they name.
#[derive(Default)]
struct Plan {
    slots: Vec<Slot>,
    by_address: HashMap<(u8, String), usize>,
    consent: HashMap<(usize, Channel), ConsentStatus>,
    events: Vec<PendingConsent>,
    members: Vec<usize>,
    outcomes: Vec<RowOutcome>,
}

const PHONE: u8 = 0;
const BSUID: u8 = 1;
const PSID: u8 = 2;

fn addresses<'a>(
    phone: Option<&'a PhoneNumber>,
    bsuid: Option<&'a WhatsappUserId>,
    psid: Option<&'a MessengerPsid>,
) -> impl Iterator<Item = (u8, &'a str)> {
    [
        (PHONE, phone.map(PhoneNumber::as_str)),
        (BSUID, bsuid.map(WhatsappUserId::as_str)),
        (PSID, psid.map(MessengerPsid::as_str)),
    ]
    .into_iter()
    .filter_map(|(kind, value)| value.map(|v| (kind, v)))
}

const ADDRESS_NAMES: [&str; 3] = ["phone", "whatsapp_user_id", "messenger_psid"];

impl Plan {
    fn add_slot(&mut self, contact: Contact, new: bool) -> usize {
        let index = self.slots.len();
        for (kind, value) in addresses(
            contact.phone.as_ref(),
            contact.whatsapp_user_id.as_ref(),
            contact.messenger_psid.as_ref(),
        ) {
            self.by_address.insert((kind, value.to_owned()), index);
        }
        self.slots.push(Slot {
            contact,
            new,
            dirty: false,
        });
        index
    }

    fn apply(&mut self, row: &ImportRow, now: OffsetDateTime) {
        let mut matched: Option<(usize, u8)> = None;
        for (kind, value) in addresses(
            row.phone.as_ref(),
            row.whatsapp_user_id.as_ref(),
            row.messenger_psid.as_ref(),
        ) {
            let Some(&slot) = self.by_address.get(&(kind, value.to_owned())) else {
                continue;
            };
            match matched {
                Some((other, other_kind)) if other != slot => {
                    self.outcomes.push(RowOutcome::Rejected(format!(
                        "the {} belongs to one contact and the {} to another; fix the row or \
                         the contacts",
                        ADDRESS_NAMES[usize::from(other_kind)],
                        ADDRESS_NAMES[usize::from(kind)]
                    )));
                    return;
                }
                _ => matched = Some((slot, kind)),
            }
        }
        let (slot, created) = match matched {
            // Like a re-import of the row: its name, locale and fields win, its addresses are
            // left as the contact has them.
            Some((slot, _)) => {
                let contact = &self.slots[slot].contact;
                let mut fields = contact.fields.clone();
                fields.extend(row.fields.clone());
                if let Err(e) = validate_custom_fields(&fields) {
                    self.outcomes.push(RowOutcome::Rejected(format!(
                        "with the contact's other fields: {}",
                        e.detail.replace('`', "")
                    )));
                    return;
                }
                let target = &mut self.slots[slot];
                if let Some(name) = &row.name {
                    target.contact.name = Some(name.clone());
                }
                if let Some(locale) = &row.locale {
                    target.contact.locale = Some(locale.clone());
                }
                target.contact.fields = fields;
                target.contact.updated_at = now;
                target.dirty = true;
                (slot, false)
            }
            None => {
                let contact = Contact {
                    id: ContactId::new(),
                    name: row.name.clone(),
                    phone: row.phone.clone(),
                    whatsapp_user_id: row.whatsapp_user_id.clone(),
                    messenger_psid: row.messenger_psid.clone(),
                    locale: row.locale.clone(),
                    owner_id: None,
                    fields: row.fields.clone(),
                    created_at: now,
                    updated_at: now,
                };
                (self.add_slot(contact, true), true)
            }
        };
        let opt_in = match &row.opt_in {
            None => OptInOutcome::NotAsked,
            Some(opt_in) => {
                let status = self
                    .consent
                    .entry((slot, opt_in.channel))
                    .or_insert(ConsentStatus::None);
                if *status == ConsentStatus::OptedOut {
                    OptInOutcome::OptedOutBefore(opt_in.channel)
                } else {
                    *status = ConsentStatus::OptedIn;
                    self.events.push(PendingConsent {
                        slot,
                        channel: opt_in.channel,
                        at: opt_in.at,
                        evidence: opt_in.evidence.clone(),
                    });
                    OptInOutcome::Recorded
                }
            }
        };
        self.members.push(slot);
        self.outcomes.push(RowOutcome::Saved {
            contact: self.slots[slot].contact.id,
            created,
            opt_in,
        });
    }
}

impl Store {
    /// Creates or updates the contacts of `rows` in one transaction, records their opt-ins
    /// (attributed to `actor`) and adds them to `list`. A row is matched to the contact holding
    /// its phone, WhatsApp user id or Messenger id, including a contact an earlier row of the
    /// batch created. A list that does not exist is [`StoreError::NotFound`]. On PostgreSQL a
    /// contact created concurrently with the same address fails the batch with a
    /// [`StoreError::Conflict`]; running it again then finds that contact.
    pub async fn import_contacts(
        &self,
        rows: &[ImportRow],
        list: Option<ListId>,
        actor: &str,
        now: OffsetDateTime,
    ) -> Result<BatchOutcome> {
        let mut wanted: [Vec<&str>; 3] = Default::default();
        for row in rows {
            for (kind, value) in addresses(
                row.phone.as_ref(),
                row.whatsapp_user_id.as_ref(),
                row.messenger_psid.as_ref(),
            ) {
                wanted[usize::from(kind)].push(value);
            }
        }
        // One lookup per address kind and chunk: (the SQL, the values it binds).
        let lookups: Vec<(String, &[&str])> = wanted
            .iter()
            .enumerate()
            .flat_map(|(kind, values)| {
                values.chunks(PARAMS_PER_STATEMENT).map(move |chunk| {
                    let sql = format!(
                        "SELECT {COLUMNS} FROM contacts WHERE {} IN ({})",
                        ADDRESS_NAMES[kind],
                        placeholders(1, chunk.len())
                    );
                    (sql, chunk)
                })
            })
            .collect();
        let wants_consent = rows.iter().any(|r| r.opt_in.is_some());
        let list_id = list.map(|l| l.to_string());

        write_tx!(self, |tx| {
            if let Some(list_id) = &list_id {
                let found = sqlx::query("UPDATE contact_lists SET updated_at = $2 WHERE id = $1")
                    .bind(list_id)
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if found == 0 {
                    return Err(StoreError::NotFound);
                }
            }

            let mut plan = Plan::default();
            let mut slot_of: HashMap<String, usize> = HashMap::new();
            for (sql, values) in &lookups {
                let mut query = sqlx::query_as::<_, ContactRow>(sql);
                for value in *values {
                    query = query.bind(*value);
                }
                for row in query.fetch_all(&mut *tx).await? {
                    // A contact named by several addresses comes back from several lookups.
                    if !slot_of.contains_key(&row.id) {
                        let id = row.id.clone();
                        slot_of.insert(id, plan.add_slot(row.into_contact()?, false));
                    }
                }
            }
            if wants_consent {
                let ids: Vec<&String> = slot_of.keys().collect();
                for chunk in ids.chunks(PARAMS_PER_STATEMENT) {
                    let sql = format!(
                        "SELECT contact_id, channel, status FROM consent_events \
                         WHERE contact_id IN ({}) ORDER BY contact_id, channel, at, id",
                        placeholders(1, chunk.len())
                    );
                    let mut query = sqlx::query_as::<_, (String, String, String)>(&sql);
                    for id in chunk {
                        query = query.bind(*id);
                    }
                    // Oldest first, so the last entry per channel is the current status.
                    for (contact, channel, status) in query.fetch_all(&mut *tx).await? {
                        let channel: Channel = parse("consent_events.channel", &channel)?;
                        let status: ConsentStatus = word("consent_events.status", &status)?;
                        if let Some(&slot) = slot_of.get(&contact) {
                            plan.consent.insert((slot, channel), status);
                        }
                    }
                }
            }

            for row in rows {
                plan.apply(row, now);
            }

            let new: Vec<&Contact> = plan
                .slots
                .iter()
                .filter(|s| s.new)
                .map(|s| &s.contact)
                .collect();
            for chunk in new.chunks(PARAMS_PER_STATEMENT / 10) {
                let sql = format!(
                    "INSERT INTO contacts (id, name, phone, whatsapp_user_id, messenger_psid, \
                     locale, owner_id, fields, created_at, updated_at) VALUES {}",
                    values(chunk.len(), 10)
                );
                let mut query = sqlx::query(&sql);
                for c in chunk {
                    query = query
                        .bind(c.id.to_string())
                        .bind(&c.name)
                        .bind(c.phone.as_ref().map(PhoneNumber::as_str))
                        .bind(c.whatsapp_user_id.as_ref().map(WhatsappUserId::as_str))
                        .bind(c.messenger_psid.as_ref().map(MessengerPsid::as_str))
                        .bind(c.locale.as_ref().map(Locale::as_str))
                        .bind(None::<String>)
                        .bind(Json(&c.fields))
                        .bind(ms(c.created_at))
                        .bind(ms(c.updated_at));
                }
                query.execute(&mut *tx).await?;
            }

            for slot in plan.slots.iter().filter(|s| !s.new && s.dirty) {
                let c = &slot.contact;
                sqlx::query(
                    "UPDATE contacts SET name = $2, locale = $3, fields = $4, updated_at = $5 \
                     WHERE id = $1",
                )
                .bind(c.id.to_string())
                .bind(&c.name)
                .bind(c.locale.as_ref().map(Locale::as_str))
                .bind(Json(&c.fields))
                .bind(ms(c.updated_at))
                .execute(&mut *tx)
                .await?;
            }

            let status = enum_text(&ConsentStatus::OptedIn);
            let source = enum_text(&ConsentSource::Import);
            for chunk in plan.events.chunks(PARAMS_PER_STATEMENT / 8) {
                let sql = format!(
                    "INSERT INTO consent_events (id, contact_id, channel, status, source, \
                     evidence, actor, at) VALUES {}",
                    values(chunk.len(), 8)
                );
                let mut query = sqlx::query(&sql);
                for event in chunk {
                    query = query
                        .bind(ConsentEventId::new().to_string())
                        .bind(plan.slots[event.slot].contact.id.to_string())
                        .bind(event.channel.as_str())
                        .bind(&status)
                        .bind(&source)
                        .bind(&event.evidence)
                        .bind(actor)
                        .bind(ms(event.at));
                }
                query.execute(&mut *tx).await?;
            }

            let mut added_to_list = 0;
            if let Some(list_id) = &list_id {
                let mut members = plan.members.clone();
                members.sort_unstable();
                members.dedup();
                for chunk in members.chunks(PARAMS_PER_STATEMENT - 2) {
                    let rows = (0..chunk.len())
                        .map(|i| format!("($1, ${}, $2)", i + 3))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "INSERT INTO contact_list_members (list_id, contact_id, added_at) \
                         VALUES {rows} ON CONFLICT DO NOTHING"
                    );
                    let mut query = sqlx::query(&sql).bind(list_id).bind(ms(now));
                    for &slot in chunk {
                        query = query.bind(plan.slots[slot].contact.id.to_string());
                    }
                    added_to_list += query.execute(&mut *tx).await?.rows_affected();
                }
            }
            Ok(BatchOutcome {
                rows: plan.outcomes,
                added_to_list,
            })
        })
    }
}

/// `($1, $2, ...), (...)`: `rows` tuples of `columns` parameters.
fn values(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(r * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}
