//! Contact lists (R6.1): made by hand, by a filter over contacts, or by CSV import
//! ([`crate::contacts::ContactImport::into_list`]). Reading them needs `contacts:read`;
//! changing them `contacts:write`, as changing the contacts themselves does.

use serde::Deserialize;
use switchboard_core::contact::Contact;
use switchboard_core::list::{ContactList, ListFilter, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS};
use switchboard_core::validation::{optional_text, required_text};
use switchboard_core::{ContactId, FieldError, ListId, Permission, ValidationErrors};
use switchboard_store::lists::ListSummary;
use switchboard_store::{Page, PageRequest, StoreError};

use crate::{AppError, AppState, Principal, Result};

/// Contacts named in one request. A bigger audience is built by filter or by import.
pub const MAX_CONTACT_IDS: usize = 10_000;
/// Unknown contact ids reported one by one; a request naming more is wrong as a whole.
const MAX_LISTED_UNKNOWN: usize = 20;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewList {
    /// Unique among lists.
    pub name: Option<String>,
    pub description: Option<String>,
    /// Fills the list with the contacts matching it now (the list does not follow later
    /// changes to contacts).
    pub filter: Option<ListFilter>,
    /// Contacts to put in the list, besides those of the filter.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub contact_ids: Vec<ContactId>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMembers {
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub contact_ids: Vec<ContactId>,
    /// Also adds the contacts matching it now.
    pub filter: Option<ListFilter>,
}

/// What adding members did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembersAdded {
    /// Contacts that joined (those already in the list are not counted).
    pub added: u64,
    pub member_count: u64,
}

fn list_store_error(error: StoreError) -> AppError {
    match error {
        StoreError::InUse => AppError::Conflict {
            code: "list_in_use",
            field: None,
            existing_id: None,
            detail: "a campaign uses this list; delete the campaign first".to_owned(),
        },
        other => AppError::from_store("list", other),
    }
}

/// Refuses an empty or oversized id list, and ids that name no contact, each by its index.
async fn check_contact_ids(state: &AppState, ids: &[ContactId]) -> Result<Vec<ContactId>> {
    if ids.len() > MAX_CONTACT_IDS {
        return Err(FieldError::new(
            "contact_ids",
            "too_many",
            format!(
                "at most {MAX_CONTACT_IDS} contacts per request; import a CSV file or use a \
                 filter for more"
            ),
        )
        .into());
    }
    let mut unique = Vec::with_capacity(ids.len());
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    for id in ids {
        if seen.insert(*id) {
            unique.push(*id);
        }
    }
    let missing = state
        .store()
        .missing_contacts(&unique)
        .await
        .map_err(AppError::Internal)?;
    if missing.is_empty() {
        return Ok(unique);
    }
    let missing: std::collections::HashSet<ContactId> = missing.into_iter().collect();
    let mut errors = ValidationErrors::new();
    for (i, id) in ids.iter().enumerate() {
        if missing.contains(id) && errors.errors().len() < MAX_LISTED_UNKNOWN {
            errors.push(FieldError::new(
                format!("contact_ids[{i}]"),
                "unknown_reference",
                format!("`contact_ids[{i}]`: no contact has the id {id}"),
            ));
        }
    }
    Err(errors.into())
}

async fn ensure_list(state: &AppState, id: ListId) -> Result<()> {
    match state.store().list_exists(id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(AppError::NotFound { resource: "list" }),
        Err(e) => Err(AppError::Internal(e)),
    }
}

/// A contact deleted between the check and the insert breaks the members' reference.
fn vanished_contact(error: StoreError) -> AppError {
    match error {
        StoreError::InUse => FieldError::new(
            "contact_ids",
            "unknown_reference",
            "a contact named in `contact_ids` was deleted meanwhile",
        )
        .into(),
        other => list_store_error(other),
    }
}

pub async fn create_list(
    state: &AppState,
    principal: &Principal,
    input: NewList,
) -> Result<ListSummary> {
    principal.require(Permission::ContactsWrite)?;
    let mut errors = ValidationErrors::new();
    let name = errors.check(required_text(
        "name",
        input.name.as_deref().unwrap_or_default(),
        MAX_NAME_CHARS,
    ));
    let description = errors.check(
        input
            .description
            .as_deref()
            .map(|d| optional_text("description", d, MAX_DESCRIPTION_CHARS))
            .transpose(),
    );
    if let Some(filter) = &input.filter {
        if let Err(e) = filter.validate() {
            for error in e.into_errors() {
                errors.push(error);
            }
        }
    }
    let (Some(name), Some(description)) = (name, description) else {
        return Err(errors.into());
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let contact_ids = check_contact_ids(state, &input.contact_ids).await?;
    let now = state.now();
    let list = ContactList {
        id: ListId::new(),
        name,
        description: description.filter(|d| !d.is_empty()),
        filter: input.filter,
        created_by: Some(crate::consent::actor_of(principal)),
        created_at: now,
        updated_at: now,
    };
    match state.store().create_list(&list, &contact_ids).await {
        Ok(member_count) => Ok(ListSummary { list, member_count }),
        Err(StoreError::Conflict { field, .. }) if field == "name" => {
            let existing = state
                .store()
                .list_id_by_name(&list.name)
                .await
                .map_err(AppError::Internal)?;
            Err(AppError::Conflict {
                code: "duplicate_list",
                detail: format!("a list named `{}` exists already", list.name),
                field: Some(field),
                existing_id: existing.map(|id| id.to_string()),
            })
        }
        Err(e) => Err(vanished_contact(e)),
    }
}

pub async fn get_list(state: &AppState, principal: &Principal, id: ListId) -> Result<ListSummary> {
    principal.require(Permission::ContactsRead)?;
    state.store().get_list(id).await.map_err(list_store_error)
}

pub async fn list_lists(
    state: &AppState,
    principal: &Principal,
    page: &PageRequest,
) -> Result<Page<ListSummary>> {
    principal.require(Permission::ContactsRead)?;
    state
        .store()
        .list_lists(page)
        .await
        .map_err(AppError::Internal)
}

/// Deletes a list and its memberships; the contacts stay.
pub async fn delete_list(state: &AppState, principal: &Principal, id: ListId) -> Result<()> {
    principal.require(Permission::ContactsWrite)?;
    state
        .store()
        .delete_list(id)
        .await
        .map_err(list_store_error)
}

pub async fn add_members(
    state: &AppState,
    principal: &Principal,
    id: ListId,
    input: NewMembers,
) -> Result<MembersAdded> {
    principal.require(Permission::ContactsWrite)?;
    ensure_list(state, id).await?;
    let store = state.store();
    if input.contact_ids.is_empty() && input.filter.is_none() {
        return Err(FieldError::new(
            "contact_ids",
            "required",
            "name the contacts to add in `contact_ids`, or give a `filter`",
        )
        .into());
    }
    if let Some(filter) = &input.filter {
        filter.validate()?;
    }
    let contact_ids = check_contact_ids(state, &input.contact_ids).await?;
    let mut added = 0;
    if !contact_ids.is_empty() {
        added += store
            .add_list_members(id, &contact_ids, state.now())
            .await
            .map_err(vanished_contact)?;
    }
    if let Some(filter) = &input.filter {
        added += store
            .add_list_members_by_filter(id, filter, state.now())
            .await
            .map_err(list_store_error)?;
    }
    let member_count = store
        .count_list_members(id)
        .await
        .map_err(AppError::Internal)?;
    Ok(MembersAdded {
        added,
        member_count,
    })
}

/// Takes a contact out of a list (the contact stays).
pub async fn remove_member(
    state: &AppState,
    principal: &Principal,
    id: ListId,
    contact: ContactId,
) -> Result<()> {
    principal.require(Permission::ContactsWrite)?;
    ensure_list(state, id).await?;
    let store = state.store();
    store
        .remove_list_member(id, contact)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::NotFound {
                resource: "list member",
            },
            other => AppError::Internal(other),
        })
}

pub async fn list_members(
    state: &AppState,
    principal: &Principal,
    id: ListId,
    page: &PageRequest,
) -> Result<Page<Contact>> {
    principal.require(Permission::ContactsRead)?;
    ensure_list(state, id).await?;
    let store = state.store();
    store
        .list_members(id, page)
        .await
        .map_err(AppError::Internal)
}

pub async fn count_members(state: &AppState, principal: &Principal, id: ListId) -> Result<u64> {
    principal.require(Permission::ContactsRead)?;
    state
        .store()
        .count_list_members(id)
        .await
        .map_err(AppError::Internal)
}
