//! Contacts (R1.4, R1.6, R1.7).

use serde::Deserialize;
use serde_json::{Map, Value};
use switchboard_core::contact::{validate_custom_fields, Contact, Locale};
use switchboard_core::validation::optional_text;
use switchboard_core::{
    ContactId, FieldError, MessengerPsid, Permission, PhoneNumber, UserId, ValidationErrors,
    WhatsappUserId,
};
use switchboard_store::contacts::ContactFilter;
use switchboard_store::{Page, PageRequest, StoreError};

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
    let name = parse_name(&mut errors, input.name.as_deref());
    let phone = parse_opt(&mut errors, input.phone.as_deref(), |p| {
        PhoneNumber::parse("phone", p)
    });
    let bsuid = parse_opt(&mut errors, input.whatsapp_user_id.as_deref(), |u| {
        WhatsappUserId::parse("whatsapp_user_id", u)
    });
    let psid = parse_opt(&mut errors, input.messenger_psid.as_deref(), |p| {
        MessengerPsid::parse("messenger_psid", p)
    });
    let locale = parse_opt(&mut errors, input.locale.as_deref(), |l| {
        Locale::parse("locale", l)
    });
    errors.check(validate_custom_fields(&input.fields));
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
