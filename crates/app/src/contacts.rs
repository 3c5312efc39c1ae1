//! Contacts (R1.4, R1.6, R1.7).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use serde::Deserialize;
use serde_json::{Map, Value};
use switchboard_core::contact::{validate_custom_fields, Contact, Locale};
use switchboard_core::validation::optional_text;
use switchboard_core::{
    Channel, ContactId, FieldError, ListId, MessengerPsid, Permission, PhoneNumber, UserId,
    ValidationErrors, WhatsappUserId,
};
use switchboard_store::contacts::ContactFilter;
use switchboard_store::imports::{
    BatchOutcome, ImportOptIn, ImportRow, OptInOutcome, RowOutcome as BatchRow,
};
use switchboard_store::{Page, PageRequest, Store, StoreError};

use crate::idempotency::{earlier_result, lost_race, Created, IdempotencyRequest};
use crate::patch::nullable;
use crate::{AppError, AppState, Principal, Result};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewContact {
    pub name: Option<String>,
    /// E.164 with the country prefix (`+44 20 7946 0958` is stored as `+442079460958`).
    pub phone: Option<String>,
    /// The WhatsApp business-scoped user id (BSUID), for users known without a phone.
    pub whatsapp_user_id: Option<String>,
    pub messenger_psid: Option<String>,
    /// `en`, `en_US`...: picks the template language (R3.5).
    pub locale: Option<String>,
    pub owner_id: Option<UserId>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactPatch {
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub whatsapp_user_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub messenger_psid: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub locale: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub owner_id: Option<Option<UserId>>,
    /// Merged into the stored fields; a field set to `null` is removed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub fields: Option<Map<String, Value>>,
}

fn parse_name(errors: &mut ValidationErrors, name: Option<&str>) -> Option<Option<String>> {
    errors.check(
        name.map(|n| optional_text("name", n, 200))
            .transpose()
            .map(|n| n.filter(|n| !n.is_empty())),
    )
}

/// A new contact's fields as typed, each `None` where it is invalid (the reason is added to
/// `errors`); the API and the CSV import read contacts alike.
#[allow(clippy::type_complexity)]
fn parse_fields(
    errors: &mut ValidationErrors,
    input: &NewContact,
) -> (
    Option<Option<String>>,
    Option<Option<PhoneNumber>>,
    Option<Option<WhatsappUserId>>,
    Option<Option<MessengerPsid>>,
    Option<Option<Locale>>,
) {
    let name = parse_name(errors, input.name.as_deref());
    let phone = parse_opt(errors, input.phone.as_deref(), |p| {
        PhoneNumber::parse("phone", p)
    });
    let bsuid = parse_opt(errors, input.whatsapp_user_id.as_deref(), |u| {
        WhatsappUserId::parse("whatsapp_user_id", u)
    });
    let psid = parse_opt(errors, input.messenger_psid.as_deref(), |p| {
        MessengerPsid::parse("messenger_psid", p)
    });
    let locale = parse_opt(errors, input.locale.as_deref(), |l| {
        Locale::parse("locale", l)
    });
    errors.check(validate_custom_fields(&input.fields));
    (name, phone, bsuid, psid, locale)
}

fn parse_opt<T>(
    errors: &mut ValidationErrors,
    value: Option<&str>,
    parse: impl Fn(&str) -> Result<T, FieldError>,
) -> Option<Option<T>> {
    errors.check(value.map(parse).transpose())
}

fn contact_store_error(error: StoreError) -> AppError {
    match error {
        StoreError::Conflict { field, existing_id }
            if matches!(
                field.as_str(),
                "phone" | "whatsapp_user_id" | "messenger_psid"
            ) =>
        {
            AppError::Conflict {
                code: "duplicate_contact",
                detail: format!("another contact already has this `{field}`"),
                field: Some(field),
                existing_id,
            }
        }
        StoreError::InUse => AppError::Conflict {
            code: "contact_has_history",
            field: None,
            existing_id: None,
            detail: "the contact has conversations or messages, which are kept for the \
                     compliance archive"
                .to_owned(),
        },
        other => AppError::from_store("contact", other),
    }
}

pub async fn create_contact(
    state: &AppState,
    principal: &Principal,
    input: NewContact,
    idempotency: Option<IdempotencyRequest>,
) -> Result<Created<Contact>> {
    principal.require(Permission::ContactsWrite)?;
    let key = idempotency.map(|i| i.for_principal(principal));
    if let Some(key) = &key {
        if let Some(id) = earlier_result(state, key, "contact").await? {
            return replay(state, &id).await;
        }
    }
    let mut errors = ValidationErrors::new();
    let (name, phone, bsuid, psid, locale) = parse_fields(&mut errors, &input);
    let (Some(name), Some(phone), Some(bsuid), Some(psid), Some(locale)) =
        (name, phone, bsuid, psid, locale)
    else {
        return Err(errors.into());
    };
    let now = state.now();
    let contact = Contact {
        id: ContactId::new(),
        name,
        phone,
        whatsapp_user_id: bsuid,
        messenger_psid: psid,
        locale,
        owner_id: input.owner_id,
        fields: input.fields,
        created_at: now,
        updated_at: now,
    };
    errors.check(contact.check_reachable());
    if !errors.is_empty() {
        return Err(errors.into());
    }
    match state.store().create_contact(&contact, key.as_ref()).await {
        Ok(()) => Ok(Created {
            value: contact,
            replayed: false,
        }),
        Err(e) if lost_race(&e) => {
            // A concurrent request with the same key committed first: answer with its result.
            let key = key.expect("a key conflict needs a key");
            match earlier_result(state, &key, "contact").await? {
                Some(id) => replay(state, &id).await,
                None => Err(AppError::Internal(e)),
            }
        }
        Err(e) => Err(contact_store_error(e)),
    }
}

async fn replay(state: &AppState, id: &str) -> Result<Created<Contact>> {
    let id: ContactId = id
        .parse()
        .map_err(|_| AppError::Internal(StoreError::Corrupt(format!("idempotent id {id}"))))?;
    let contact = state
        .store()
        .get_contact(id)
        .await
        .map_err(|e| AppError::from_store("contact", e))?;
    Ok(Created {
        value: contact,
        replayed: true,
    })
}

pub async fn get_contact(
    state: &AppState,
    principal: &Principal,
    id: ContactId,
) -> Result<Contact> {
    principal.require(Permission::ContactsRead)?;
    state
        .store()
        .get_contact(id)
        .await
        .map_err(|e| AppError::from_store("contact", e))
}

pub async fn list_contacts(
    state: &AppState,
    principal: &Principal,
    filter: &ContactFilter,
    page: &PageRequest,
) -> Result<Page<Contact>> {
    principal.require(Permission::ContactsRead)?;
    state
        .store()
        .list_contacts(filter, page)
        .await
        .map_err(AppError::Internal)
}

pub async fn update_contact(
    state: &AppState,
    principal: &Principal,
    id: ContactId,
    patch: ContactPatch,
) -> Result<Contact> {
    principal.require(Permission::ContactsWrite)?;
    let mut contact = state
        .store()
        .get_contact(id)
        .await
        .map_err(|e| AppError::from_store("contact", e))?;
    let mut errors = ValidationErrors::new();
    if let Some(name) = &patch.name {
        if let Some(name) = parse_name(&mut errors, name.as_deref()) {
            contact.name = name;
        }
    }
    if let Some(phone) = &patch.phone {
        if let Some(v) = parse_opt(&mut errors, phone.as_deref(), |p| {
            PhoneNumber::parse("phone", p)
        }) {
            contact.phone = v;
        }
    }
    if let Some(bsuid) = &patch.whatsapp_user_id {
        if let Some(v) = parse_opt(&mut errors, bsuid.as_deref(), |u| {
            WhatsappUserId::parse("whatsapp_user_id", u)
        }) {
            contact.whatsapp_user_id = v;
        }
    }
    if let Some(psid) = &patch.messenger_psid {
        if let Some(v) = parse_opt(&mut errors, psid.as_deref(), |p| {
            MessengerPsid::parse("messenger_psid", p)
        }) {
            contact.messenger_psid = v;
        }
    }
    if let Some(locale) = &patch.locale {
        if let Some(v) = parse_opt(&mut errors, locale.as_deref(), |l| {
            Locale::parse("locale", l)
        }) {
            contact.locale = v;
        }
    }
    if let Some(owner) = patch.owner_id {
        contact.owner_id = owner;
    }
    if let Some(fields) = patch.fields {
        for (key, value) in fields {
            if value.is_null() {
                contact.fields.remove(&key);
            } else {
                contact.fields.insert(key, value);
            }
        }
        errors.check(validate_custom_fields(&contact.fields));
    }
    errors.check(contact.check_reachable());
    if !errors.is_empty() {
        return Err(errors.into());
    }
    contact.updated_at = state.now();
    state
        .store()
        .update_contact(&contact)
        .await
        .map_err(contact_store_error)?;
    Ok(contact)
}

pub async fn delete_contact(state: &AppState, principal: &Principal, id: ContactId) -> Result<()> {
    principal.require(Permission::ContactsWrite)?;
    state
        .store()
        .delete_contact(id)
        .await
        .map_err(contact_store_error)
}

/// At most this many bad rows are listed one by one; the rest are only counted, so a wrong
/// file cannot fill memory with error messages.
pub const MAX_LISTED_ROW_ERRORS: usize = 500;
/// A longer row is not a contact: the import stops rather than buffer it.
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// Good rows written per transaction. Larger batches save little more time and hold SQLite's
/// single writer longer, keeping other writes (inbound messages) waiting.
pub const IMPORT_BATCH_ROWS: usize = 500;
/// How often a batch that lost a race for an address (PostgreSQL only) is tried again.
const BATCH_ATTEMPTS: usize = 3;

/// A row of a contact import that was not imported (or only partly), and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// The line of the file where the row starts (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// What a contact import did. Every row that is not blank counts once in `rows`, and once in
/// `created`, `updated`, `duplicates` or `failed()` (a row saved whose opt-in was refused is
/// both saved and listed with its reason).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: u64,
    pub created: u64,
    pub updated: u64,
    /// Rows naming a contact that an earlier row of the file already named: each contact is
    /// saved (and listed) once, with the later rows' values.
    pub duplicates: u64,
    pub opt_ins: u64,
    /// Contacts that joined the list, for an import into one (those already in it are not
    /// counted).
    pub added_to_list: u64,
    pub errors: Vec<RowError>,
    /// Bad rows beyond [`MAX_LISTED_ROW_ERRORS`].
    pub more_errors: u64,
}

impl ImportReport {
    pub fn failed(&self) -> u64 {
        self.errors.len() as u64 + self.more_errors
    }

    fn push_error(&mut self, line: u64, reason: String) {
        if self.errors.len() < MAX_LISTED_ROW_ERRORS {
            self.errors.push(RowError { line, reason });
        } else {
            self.more_errors += 1;
        }
    }
}

/// A batch's rows, the bad rows met among them, and what writing it did.
type WrittenBatch = (
    Vec<ImportRow>,
    Vec<RowError>,
    Result<BatchOutcome, StoreError>,
);

/// Columns with a meaning of their own; any other column is a custom field.
const KNOWN_COLUMNS: &[&str] = &[
    "name",
    "phone",
    "whatsapp_user_id",
    "messenger_psid",
    "locale",
    "opt_in_source",
    "opt_in_at",
    "opt_in_channel",
];

/// Imports contacts from a CSV file fed in chunks as they arrive, so an upload is never held
/// whole in memory. The first row names the columns: `name`, `phone`, `locale`,
/// `whatsapp_user_id`, `messenger_psid`, `opt_in_source`, `opt_in_at` (RFC 3339 or
/// `YYYY-MM-DD`), `opt_in_channel` (default `whatsapp`); any other column is a custom field.
///
/// Each good row creates a contact, or updates the contact that already has its phone or ids
/// (fields are merged). A row with `opt_in_source` also records an opt-in in the consent ledger
/// with the file and line as evidence. Bad rows are reported with their line and skipped. An
/// import into a list also adds each good row's contact to it.
///
/// Good rows are written [`IMPORT_BATCH_ROWS`] at a time. Memory holds two batches, the listed
/// errors, and some 16 bytes per contact met (to count duplicates), whatever the file's size.
pub struct ContactImport<'a> {
    state: &'a AppState,
    file_name: String,
    actor: String,
    list: Option<ListId>,
    reader: csv_core::Reader,
    record: Vec<u8>,
    record_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    /// The line the record just read started on.
    record_line: u64,
    header: Option<Vec<String>>,
    batch: Vec<ImportRow>,
    /// Bad rows met since the batch's first row, reported with the batch so that errors stay
    /// in line order.
    batch_errors: Vec<RowError>,
    /// Hashes of the contacts the file has named so far. A collision could only count a
    /// re-import of an existing contact as a duplicate, never lose a row.
    seen: HashSet<u64>,
    hasher: RandomState,
    /// The batch being written while the next one is parsed, with its rows and errors.
    in_flight: Option<tokio::task::JoinHandle<WrittenBatch>>,
    report: ImportReport,
    done: bool,
}

impl<'a> ContactImport<'a> {
    pub fn new(state: &'a AppState, principal: &'a Principal, file_name: &str) -> Result<Self> {
        principal.require(Permission::ContactsWrite)?;
        let file_name: String = file_name
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        Ok(Self {
            state,
            file_name: if file_name.trim().is_empty() {
                "upload.csv".to_owned()
            } else {
                file_name
            },
            actor: crate::consent::actor_of(principal),
            list: None,
            reader: csv_core::ReaderBuilder::new().build(),
            record: vec![0; 1024],
            record_len: 0,
            ends: vec![0; 16],
            ends_len: 0,
            record_line: 1,
            header: None,
            batch: Vec::with_capacity(IMPORT_BATCH_ROWS),
            batch_errors: Vec::new(),
            seen: HashSet::new(),
            hasher: RandomState::new(),
            in_flight: None,
            report: ImportReport::default(),
            done: false,
        })
    }

    /// An import whose contacts are also added to `list`.
    pub async fn into_list(
        state: &'a AppState,
        principal: &'a Principal,
        file_name: &str,
        list: ListId,
    ) -> Result<Self> {
        let mut import = Self::new(state, principal, file_name)?;
        if !state
            .store()
            .list_exists(list)
            .await
            .map_err(AppError::Internal)?
        {
            return Err(AppError::NotFound { resource: "list" });
        }
        import.list = Some(list);
        Ok(import)
    }

    /// Parses and imports every complete row in `chunk`; a row cut by the chunk's end waits
    /// for the next chunk.
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<()> {
        // A byte-order mark some spreadsheets write would otherwise become part of `name`.
        let chunk = if self.header.is_none() && self.record_len == 0 && self.ends_len == 0 {
            chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk)
        } else {
            chunk
        };
        self.read(chunk, false).await
    }

    /// Imports the last rows and answers what the import did.
    pub async fn finish(mut self) -> Result<ImportReport> {
        // An empty input tells the parser the file ended.
        self.read(&[], true).await?;
        if self.header.is_none() {
            return Err(FieldError::new(
                "file",
                "empty_file",
                "the file is empty: the first row must name the columns (name, phone, ...)",
            )
            .into());
        }
        self.flush().await?;
        self.settle().await?;
        Ok(self.report)
    }

    async fn read(&mut self, mut input: &[u8], end_of_file: bool) -> Result<()> {
        use csv_core::ReadRecordResult;
        if self.done {
            return Ok(());
        }
        loop {
            // The parser takes empty input for the end of the file: a chunk that ends just
            // after a row must not be taken for the end of the upload.
            if input.is_empty() && !end_of_file {
                return Ok(());
            }
            let (result, read, written, ended) = self.reader.read_record(
                input,
                &mut self.record[self.record_len..],
                &mut self.ends[self.ends_len..],
            );
            let ended_by_newline = read > 0 && input[read - 1] == b'\n';
            input = &input[read..];
            self.record_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty => return Ok(()),
                ReadRecordResult::OutputFull => {
                    if self.record.len() >= MAX_ROW_BYTES {
                        return Err(FieldError::new(
                            "file",
                            "row_too_long",
                            format!(
                                "line {}: a row is longer than {} KiB; is this a CSV file?",
                                self.reader.line(),
                                MAX_ROW_BYTES / 1024
                            ),
                        )
                        .into());
                    }
                    let len = self.record.len() * 2;
                    self.record.resize(len, 0);
                }
                ReadRecordResult::OutputEndsFull => {
                    let len = self.ends.len() * 2;
                    self.ends.resize(len, 0);
                }
                ReadRecordResult::Record => {
                    // The parser skips blank lines before a record, so its start is counted
                    // back from where it ended: past the line breaks inside quoted fields and
                    // the one that ended it (a `\r` ending, or the file's end, counts none).
                    let inside = self.record[..self.record_len]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count() as u64;
                    self.record_line = self
                        .reader
                        .line()
                        .saturating_sub(inside + u64::from(ended_by_newline));
                    let fields = self.fields();
                    self.record_len = 0;
                    self.ends_len = 0;
                    self.row(fields).await?;
                }
                ReadRecordResult::End => {
                    self.done = true;
                    return Ok(());
                }
            }
        }
    }

    /// The fields of the record just read, or why they are not text.
    fn fields(&self) -> Result<Vec<String>, String> {
        let mut start = 0;
        self.ends[..self.ends_len]
            .iter()
            .map(|&end| {
                let field = std::str::from_utf8(&self.record[start..end])
                    .map(|f| f.trim().to_owned())
                    .map_err(|_| {
                        "the row is not UTF-8 text; save the file as CSV UTF-8".to_owned()
                    });
                start = end;
                field
            })
            .collect()
    }

    async fn row(&mut self, fields: Result<Vec<String>, String>) -> Result<()> {
        let line = self.record_line;
        let Some(header) = &self.header else {
            let header = fields.map_err(|reason| {
                AppError::from(FieldError::new("file", "invalid_header", reason))
            })?;
            self.header = Some(parse_header(header)?);
            return Ok(());
        };
        let fields = match fields {
            Ok(fields) if fields.iter().all(String::is_empty) => return Ok(()),
            Ok(fields) if fields.len() != header.len() => Err(format!(
                "the row has {} columns where the header has {}",
                fields.len(),
                header.len()
            )),
            other => other,
        };
        self.report.rows += 1;
        let now = self.state.now();
        let parsed = fields.and_then(|fields| {
            let row = header.iter().map(String::as_str).zip(fields);
            parse_row(line, row, &self.file_name, now)
        });
        match parsed {
            Ok(row) => {
                self.batch.push(row);
                if self.batch.len() >= IMPORT_BATCH_ROWS {
                    self.flush().await?;
                }
            }
            Err(reason) if self.batch.is_empty() && self.in_flight.is_none() => {
                self.report.push_error(line, reason)
            }
            Err(reason) => {
                self.batch_errors.push(RowError { line, reason });
                if self.batch_errors.len() >= IMPORT_BATCH_ROWS {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    /// Sends the rows waiting in the batch to be written, once the batch before them is
    /// written and counted. The next rows are parsed while this batch is written: on two
    /// cores that nearly halves an import's time, and memory holds two batches at most.
    async fn flush(&mut self) -> Result<()> {
        self.settle().await?;
        if self.batch.is_empty() {
            for error in std::mem::take(&mut self.batch_errors) {
                self.report.push_error(error.line, error.reason);
            }
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(IMPORT_BATCH_ROWS));
        let errors = std::mem::take(&mut self.batch_errors);
        let store = self.state.store().clone();
        let (list, actor, now) = (self.list, self.actor.clone(), self.state.now());
        self.in_flight = Some(tokio::spawn(async move {
            let written = write_batch(&store, &batch, list, &actor, now).await;
            (batch, errors, written)
        }));
        Ok(())
    }

    /// Waits for the batch being written, and counts what became of its rows.
    async fn settle(&mut self) -> Result<()> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let (batch, mut errors, written) = in_flight.await.map_err(|e| {
            AppError::Internal(StoreError::Batch(format!(
                "the import's writer stopped: {e}"
            )))
        })?;
        let outcome = match written {
            Ok(outcome) => outcome,
            Err(StoreError::NotFound) => return Err(AppError::NotFound { resource: "list" }),
            Err(e) => return Err(AppError::Internal(e)),
        };
        for (row, outcome) in batch.iter().zip(outcome.rows) {
            match outcome {
                BatchRow::Saved {
                    contact,
                    created,
                    opt_in,
                } => {
                    let first_time = self.seen.insert(self.hasher.hash_one(contact));
                    if created {
                        self.report.created += 1;
                    } else if first_time {
                        self.report.updated += 1;
                    } else {
                        self.report.duplicates += 1;
                    }
                    match opt_in {
                        OptInOutcome::NotAsked => {}
                        OptInOutcome::Recorded => self.report.opt_ins += 1,
                        OptInOutcome::OptedOutBefore(channel) => errors.push(RowError {
                            line: row.line,
                            reason: format!(
                                "the contact was saved, but opted out of {channel} earlier; an \
                                 import does not opt them back in"
                            ),
                        }),
                    }
                }
                BatchRow::Rejected(reason) => errors.push(RowError {
                    line: row.line,
                    reason,
                }),
            }
        }
        errors.sort_by_key(|e| e.line);
        for error in errors {
            self.report.push_error(error.line, error.reason);
        }
        self.report.added_to_list += outcome.added_to_list;
        Ok(())
    }
}

/// Writes one batch, again if another writer created a contact with one of the batch's
/// addresses after the batch looked them up (PostgreSQL only): the next attempt finds it.
async fn write_batch(
    store: &Store,
    batch: &[ImportRow],
    list: Option<ListId>,
    actor: &str,
    now: time::OffsetDateTime,
) -> Result<BatchOutcome, StoreError> {
    let mut attempt = 1;
    loop {
        match store.import_contacts(batch, list, actor, now).await {
            Err(StoreError::Conflict { .. }) if attempt < BATCH_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// A row's values checked like a contact created through the API, or the reasons it is not
/// a contact (every problem, joined).
fn parse_row<'h>(
    line: u64,
    row: impl Iterator<Item = (&'h str, String)>,
    file_name: &str,
    now: time::OffsetDateTime,
) -> Result<ImportRow, String> {
    let mut input = NewContact::default();
    let (mut opt_in_source, mut opt_in_at, mut opt_in_channel) = (None, None, None);
    for (column, value) in row {
        if value.is_empty() {
            continue;
        }
        match column {
            "name" => input.name = Some(value),
            "phone" => input.phone = Some(value),
            "whatsapp_user_id" => input.whatsapp_user_id = Some(value),
            "messenger_psid" => input.messenger_psid = Some(value),
            "locale" => input.locale = Some(value),
            "opt_in_source" => opt_in_source = Some(value),
            "opt_in_at" => opt_in_at = Some(value),
            "opt_in_channel" => opt_in_channel = Some(value),
            _ => {
                input.fields.insert(column.to_owned(), Value::String(value));
            }
        }
    }
    let mut errors = ValidationErrors::new();
    let (name, phone, bsuid, psid, locale) = parse_fields(&mut errors, &input);
    let reasons = |errors: ValidationErrors| {
        errors
            .into_errors()
            .into_iter()
            .map(|e| e.detail.replace('`', ""))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (Some(name), Some(phone), Some(bsuid), Some(psid), Some(locale)) =
        (name, phone, bsuid, psid, locale)
    else {
        return Err(reasons(errors));
    };
    if !errors.is_empty() {
        return Err(reasons(errors));
    }
    if phone.is_none() && bsuid.is_none() && psid.is_none() {
        return Err("a contact needs a phone, a whatsapp_user_id or a messenger_psid".to_owned());
    }
    let opt_in = match opt_in_source {
        Some(source) => {
            let channel = match opt_in_channel.as_deref() {
                None => Channel::Whatsapp,
                Some(c) => c.parse::<Channel>().map_err(|_| {
                    format!("opt_in_channel: `{c}` is not whatsapp, messenger or sms")
                })?,
            };
            let at = match opt_in_at.as_deref() {
                None => now,
                Some(text) => parse_opt_in_at(text)?,
            };
            if at > now {
                return Err("opt_in_at: is in the future".to_owned());
            }
            Some(ImportOptIn {
                channel,
                at: switchboard_core::time::truncate_to_millis(at),
                evidence: format!("{file_name}, line {line}: {source}"),
            })
        }
        None if opt_in_at.is_some() || opt_in_channel.is_some() => {
            return Err(
                "opt_in_source: say where the opt-in came from (a form, a call...)".to_owned(),
            )
        }
        None => None,
    };
    Ok(ImportRow {
        line,
        name,
        phone,
        whatsapp_user_id: bsuid,
        messenger_psid: psid,
        locale,
        fields: input.fields,
        opt_in,
    })
}

fn parse_header(columns: Vec<String>) -> Result<Vec<String>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut header = Vec::with_capacity(columns.len());
    for column in columns {
        let column = column.to_lowercase().replace([' ', '-'], "_");
        if column.is_empty() {
            return Err(FieldError::new(
                "file",
                "invalid_header",
                "the first row must name every column; one is empty",
            )
            .into());
        }
        if !KNOWN_COLUMNS.contains(&column.as_str()) {
            let mut probe = Map::new();
            probe.insert(column.clone(), Value::Null);
            validate_custom_fields(&probe).map_err(|_| {
                FieldError::new(
                    "file",
                    "invalid_header",
                    format!(
                        "column `{column}`: custom field names are lower-case letters, digits \
                         and `_`, starting with a letter"
                    ),
                )
            })?;
        }
        if !seen.insert(column.clone()) {
            return Err(FieldError::new(
                "file",
                "invalid_header",
                format!("column `{column}` appears twice"),
            )
            .into());
        }
        header.push(column);
    }
    if !header
        .iter()
        .any(|c| matches!(c.as_str(), "phone" | "whatsapp_user_id" | "messenger_psid"))
    {
        return Err(FieldError::new(
            "file",
            "invalid_header",
            "the file needs a `phone` column (or whatsapp_user_id or messenger_psid)",
        )
        .into());
    }
    Ok(header)
}

/// An opt-in time: RFC 3339, or a bare date taken as midnight UTC.
fn parse_opt_in_at(text: &str) -> Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &date_format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| {
            format!("opt_in_at: `{text}` is not a date (2024-05-31) or time (2024-05-31T09:00:00Z)")
        })
}

#[cfg(test)]
mod import_tests {
    use super::*;

    #[test]
    fn headers_are_normalised_and_checked() {
        let h = parse_header(vec!["Name".into(), "Phone".into(), "Plan Tier".into()]).unwrap();
        assert_eq!(h, ["name", "phone", "plan_tier"]);
        assert!(
            parse_header(vec!["name".into()]).is_err(),
            "no address column"
        );
        assert!(parse_header(vec!["phone".into(), "phone".into()]).is_err());
        assert!(parse_header(vec!["phone".into(), "".into()]).is_err());
        assert!(parse_header(vec!["phone".into(), "9lives".into()]).is_err());
    }

    #[test]
    fn opt_in_times_take_dates_and_rfc3339() {
        assert_eq!(
            parse_opt_in_at("2024-05-31").unwrap(),
            time::macros::datetime!(2024-05-31 0:00 UTC)
        );
        assert_eq!(
            parse_opt_in_at("2024-05-31T09:30:00+02:00").unwrap(),
            time::macros::datetime!(2024-05-31 7:30 UTC)
        );
        assert!(parse_opt_in_at("yesterday").is_err());
    }

    const TOKEN: &str = "contact-import-test-token-0123456789abcdef";
    const FILE: &str = "name,phone,plan\n\
                        Ada,+442079460001,gold\n\
                        \"Hopper,\nGrace\",+442079460002,\n\
                        \n\
                        Alan,+442079460003,silver\n";

    async fn importer(db: &switchboard_testkit::TestDb) -> (AppState, Principal) {
        let store = switchboard_store::Store::open(db.url()).await.unwrap();
        let state = AppState::new(store, std::sync::Arc::new(crate::SystemClock));
        crate::auth::bootstrap(&state, Some(TOKEN)).await.unwrap();
        let principal = crate::auth::authenticate(&state, TOKEN).await.unwrap();
        (state, principal)
    }

    /// Uploads arrive in chunks cut anywhere: inside a field, inside a quoted line break, or
    /// just after a row (which the parser must not take for the end of the file).
    async fn rows_cut_anywhere_by_chunks_are_all_imported(db: switchboard_testkit::TestDb) {
        let (state, principal) = importer(&db).await;
        let by_line: Vec<&[u8]> = FILE.as_bytes().split_inclusive(|&b| b == b'\n').collect();
        let mut cuts: Vec<Vec<&[u8]>> = vec![by_line];
        for size in [1, 2, 3, 7, FILE.len()] {
            cuts.push(FILE.as_bytes().chunks(size).collect());
        }
        for (i, chunks) in cuts.iter().enumerate() {
            let mut import = ContactImport::new(&state, &principal, "chunks.csv").unwrap();
            for chunk in chunks {
                import.feed(chunk).await.unwrap();
            }
            let report = import.finish().await.unwrap();
            let expected = ImportReport {
                rows: 3,
                created: if i == 0 { 3 } else { 0 },
                updated: if i == 0 { 0 } else { 3 },
                ..Default::default()
            };
            assert_eq!(report, expected, "cut {i}");
        }
        let grace = state
            .store()
            .find_contact_by_address(
                Some(&PhoneNumber::parse("phone", "+442079460002").unwrap()),
                None,
                None,
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(grace.name.as_deref(), Some("Hopper,\nGrace"));

        // Blank lines are skipped, but still counted.
        let mut import = ContactImport::new(&state, &principal, "blank.csv").unwrap();
        import.feed(b"phone\r\n\r\n\r\nnonsense\r\n").await.unwrap();
        let report = import.finish().await.unwrap();
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert_eq!(report.errors[0].line, 4, "{report:?}");
    }

    switchboard_testkit::both_backends!(rows_cut_anywhere_by_chunks_are_all_imported);
}
