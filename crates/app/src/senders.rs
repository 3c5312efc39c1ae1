//! Sender IDs (R1.1–R1.3): created and changed by admins, read by everyone.

use serde::Deserialize;
use switchboard_core::sender::{ProviderInput, Sender, SenderHealth, MAX_RATE_LIMIT_PER_SECOND};
use switchboard_core::validation::{optional_text, required_text};
use switchboard_core::{Channel, FieldError, Permission, SenderId, ValidationErrors};
use switchboard_store::senders::SenderFilter;
use switchboard_store::{Page, PageRequest, StoreError};

use crate::patch::nullable;
use crate::{AppError, AppState, Principal, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewSender {
    pub channel: Channel,
    pub name: String,
    /// What the identity is for: transactions, notifications, support... (R1.2)
    pub use_case: Option<String>,
    /// Messages per second (default 80, WhatsApp's standard throughput).
    pub rate_limit_per_second: Option<u32>,
    pub provider: ProviderInput,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SenderPatch {
    /// A sender's channel cannot change; sending it with another value is refused.
    pub channel: Option<Channel>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub use_case: Option<Option<String>>,
    /// `null` restores the default rate.
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub rate_limit_per_second: Option<Option<u32>>,
    /// Provider fields to change; the others keep their values. Changing `kind` needs every
    /// field of the new kind.
    pub provider: Option<ProviderInput>,
}

fn check_use_case(use_case: Option<&str>) -> Result<Option<String>, FieldError> {
    use_case
        .map(|u| optional_text("use_case", u, 100))
        .transpose()
        .map(|u| u.filter(|u| !u.is_empty()))
}

fn check_rate(rate: Option<u32>) -> Result<Option<u32>, FieldError> {
    match rate {
        Some(r) if !(1..=MAX_RATE_LIMIT_PER_SECOND).contains(&r) => Err(FieldError::new(
            "rate_limit_per_second",
            "out_of_range",
            format!("a send rate is between 1 and {MAX_RATE_LIMIT_PER_SECOND} messages per second"),
        )),
        other => Ok(other),
    }
}

fn check_fits(errors: &mut ValidationErrors, sender: &Sender) {
    if !sender.provider.kind().serves(sender.channel) {
        errors.push(FieldError::new(
            "provider.kind",
            "channel_mismatch",
            format!(
                "provider `{}` cannot carry the `{}` channel",
                sender.provider.kind(),
                sender.channel
            ),
        ));
    }
}

fn sender_store_error(error: StoreError) -> AppError {
    match error {
        StoreError::Conflict { field, existing_id } if field == "provider.external_id" => {
            AppError::Conflict {
                code: "duplicate_sender",
                detail: "another sender already uses this provider identity".to_owned(),
                field: Some(field),
                existing_id,
            }
        }
        StoreError::InUse => AppError::Conflict {
            code: "sender_in_use",
            field: None,
            existing_id: None,
            detail: "the sender has conversations or messages; they are kept for the compliance \
                     archive, so the sender cannot be deleted"
                .to_owned(),
        },
        other => AppError::from_store("sender", other),
    }
}

pub async fn create_sender(
    state: &AppState,
    principal: &Principal,
    input: NewSender,
) -> Result<Sender> {
    principal.require(Permission::SendersWrite)?;
    let mut errors = ValidationErrors::new();
    let name = errors.check(required_text("name", &input.name, 200));
    let use_case = errors.check(check_use_case(input.use_case.as_deref()));
    let rate = errors.check(check_rate(input.rate_limit_per_second));
    let provider = match input.provider.validate() {
        Ok(p) => Some(p),
        Err(provider_errors) => {
            for e in provider_errors.into_errors() {
                errors.push(e);
            }
            None
        }
    };
    let (Some(name), Some(use_case), Some(rate), Some(provider)) = (name, use_case, rate, provider)
    else {
        return Err(errors.into());
    };
    let now = state.now();
    let sender = Sender {
        id: SenderId::new(),
        channel: input.channel,
        name,
        use_case,
        health: SenderHealth::initial(provider.kind()),
        provider,
        rate_limit_per_second: rate,
        created_at: now,
        updated_at: now,
    };
    check_fits(&mut errors, &sender);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    state
        .store()
        .create_sender(&sender)
        .await
        .map_err(sender_store_error)?;
    Ok(sender)
}

pub async fn get_sender(state: &AppState, principal: &Principal, id: SenderId) -> Result<Sender> {
    principal.require(Permission::SendersRead)?;
    state
        .store()
        .get_sender(id)
        .await
        .map_err(|e| AppError::from_store("sender", e))
}

pub async fn list_senders(
    state: &AppState,
    principal: &Principal,
    filter: &SenderFilter,
    page: &PageRequest,
) -> Result<Page<Sender>> {
    principal.require(Permission::SendersRead)?;
    state
        .store()
        .list_senders(filter, page)
        .await
        .map_err(AppError::Internal)
}

pub async fn update_sender(
    state: &AppState,
    principal: &Principal,
    id: SenderId,
    patch: SenderPatch,
) -> Result<Sender> {
    principal.require(Permission::SendersWrite)?;
    let mut sender = state
        .store()
        .get_sender(id)
        .await
        .map_err(|e| AppError::from_store("sender", e))?;
    let mut errors = ValidationErrors::new();
    if patch.channel.is_some_and(|c| c != sender.channel) {
        errors.push(FieldError::new(
            "channel",
            "immutable",
            "a sender's channel cannot change; create another sender",
        ));
    }
    if let Some(name) = &patch.name {
        if let Some(name) = errors.check(required_text("name", name, 200)) {
            sender.name = name;
        }
    }
    if let Some(use_case) = &patch.use_case {
        if let Some(use_case) = errors.check(check_use_case(use_case.as_deref())) {
            sender.use_case = use_case;
        }
    }
    if let Some(rate) = patch.rate_limit_per_second {
        if let Some(rate) = errors.check(check_rate(rate)) {
            sender.rate_limit_per_second = rate;
        }
    }
    if let Some(provider_patch) = patch.provider {
        let kind_changes = provider_patch
            .kind
            .is_some_and(|k| k != sender.provider.kind());
        // A new kind starts from nothing; the same kind starts from the stored fields.
        let base = if kind_changes {
            ProviderInput::default()
        } else {
            ProviderInput::from_config(&sender.provider)
        };
        match base.overlay(provider_patch).validate() {
            Ok(provider) => {
                if provider.kind() != sender.provider.kind() {
                    sender.health = SenderHealth::initial(provider.kind());
                } else if provider.credentials_differ(&sender.provider) {
                    // New credentials have not been refused yet (R8.5): sends may resume.
                    sender.health.token_status =
                        SenderHealth::initial(provider.kind()).token_status;
                }
                sender.provider = provider;
            }
            Err(provider_errors) => {
                for e in provider_errors.into_errors() {
                    errors.push(e);
                }
            }
        }
    }
    check_fits(&mut errors, &sender);
    if !errors.is_empty() {
        return Err(errors.into());
    }
    sender.updated_at = state.now();
    state
        .store()
        .update_sender(&sender)
        .await
        .map_err(sender_store_error)?;
    state.forget_senders();
    Ok(sender)
}

pub async fn delete_sender(state: &AppState, principal: &Principal, id: SenderId) -> Result<()> {
    principal.require(Permission::SendersWrite)?;
    state
        .store()
        .delete_sender(id)
        .await
        .map_err(sender_store_error)?;
    state.forget_senders();
    Ok(())
}

/// Records that the provider refused the sender's credentials (R8.5): sends from it stop
/// until an admin replaces them. Whatever call found out (a send, a template submission, a
/// media download) records it the same way.
pub(crate) async fn mark_token_expired(state: &AppState, sender: &Sender) -> Result<()> {
    state
        .store()
        .mark_token_expired(sender.id, state.now())
        .await
        .map_err(AppError::Internal)?;
    state.forget_senders();
    Ok(())
}
