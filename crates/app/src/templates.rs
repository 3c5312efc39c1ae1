//! Templates (R3): created per sender and locale, validated against the channel's rules, and
//! moved through their approval lifecycle with every step recorded.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchboard_channels::SendError;
use switchboard_core::sender::ProviderConfig;
use switchboard_core::template::{
    validate_template, MessageTag, Template, TemplateButton, TemplateCategory, TemplateContent,
    TemplateHeader, TemplateInput, TemplateStatus, TemplateTransition,
    MAX_TEMPLATES_PER_WHATSAPP_SENDER,
};
use switchboard_core::{Channel, FieldError, Permission, SenderId, TemplateId};
use switchboard_store::templates::TemplateFilter;
use switchboard_store::{Page, PageRequest, StoreError};

use crate::patch::nullable;
use crate::{AppError, AppState, Principal, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTemplate {
    pub sender_id: SenderId,
    #[serde(flatten)]
    pub template: TemplateInput,
    /// Make this the sender's one-click template for an expired window (R3.7).
    #[serde(default)]
    pub recontact: bool,
}

/// Fields to change; the others keep their values. The result is validated as a whole.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplatePatch {
    pub name: Option<String>,
    pub locale: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<TemplateCategory>))]
    pub category: Option<Option<TemplateCategory>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<TemplateHeader>))]
    pub header: Option<Option<TemplateHeader>>,
    pub body: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub footer: Option<Option<String>>,
    pub buttons: Option<Vec<TemplateButton>>,
    pub variable_mapping: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<MessageTag>))]
    pub tag: Option<Option<MessageTag>>,
    pub recontact: Option<bool>,
}

impl TemplatePatch {
    fn over(self, content: &TemplateContent) -> TemplateInput {
        TemplateInput {
            name: self.name.unwrap_or_else(|| content.name.clone()),
            locale: self
                .locale
                .unwrap_or_else(|| content.locale.as_str().to_owned()),
            category: self.category.unwrap_or(content.category),
            header: self.header.unwrap_or_else(|| content.header.clone()),
            body: self.body.unwrap_or_else(|| content.body.clone()),
            footer: self.footer.unwrap_or_else(|| content.footer.clone()),
            buttons: self.buttons.unwrap_or_else(|| content.buttons.clone()),
            variable_mapping: self
                .variable_mapping
                .unwrap_or_else(|| content.variable_mapping.clone()),
            tag: self.tag.unwrap_or(content.tag),
        }
    }
}

/// A change of status: Meta's verdict on a submitted template, a quality pause, or an
/// operator's decision.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusChange {
    pub status: TemplateStatus,
    pub reason: Option<String>,
}

fn template_store_error(error: StoreError) -> AppError {
    match error {
        StoreError::Conflict { field, existing_id } if field == "locale" => AppError::Conflict {
            code: "duplicate_template",
            detail: "the sender already has a template with this name and locale".to_owned(),
            field: Some(field),
            existing_id,
        },
        StoreError::InUse => AppError::Conflict {
            code: "template_in_use",
            field: None,
            existing_id: None,
            detail: "the template is referred to by other records".to_owned(),
        },
        other => AppError::from_store("template", other),
    }
}

/// A template and the sender it belongs to (its channel decides its rules).
async fn template_and_sender(
    state: &AppState,
    id: TemplateId,
) -> Result<(Template, switchboard_core::sender::Sender)> {
    let template = state
        .store()
        .get_template(id)
        .await
        .map_err(template_store_error)?;
    let sender = state
        .store()
        .get_sender(template.sender_id)
        .await
        .map_err(AppError::Internal)?;
    Ok((template, sender))
}

fn actor(principal: &Principal) -> String {
    match principal.user_id() {
        Some(user) => format!("user:{user}"),
        None => format!("token:{}", principal.token.id),
    }
}

pub async fn create_template(
    state: &AppState,
    principal: &Principal,
    input: NewTemplate,
) -> Result<Template> {
    principal.require(Permission::TemplatesWrite)?;
    let sender = state
        .store()
        .get_sender(input.sender_id)
        .await
        .map_err(crate::missing_reference("sender_id", "sender"))?;
    let content = validate_template(input.template, sender.channel)?;
    if sender.channel == Channel::Whatsapp {
        let existing = state
            .store()
            .sender_templates(sender.id)
            .await
            .map_err(AppError::Internal)?;
        let new_name = !existing.iter().any(|t| t.content.name == content.name);
        let names = state
            .store()
            .count_template_names(sender.id)
            .await
            .map_err(AppError::Internal)?;
        if new_name && names >= MAX_TEMPLATES_PER_WHATSAPP_SENDER as i64 {
            return Err(FieldError::new(
                "name",
                "too_many_templates",
                format!(
                    "a WhatsApp number may have at most {MAX_TEMPLATES_PER_WHATSAPP_SENDER} \
                     template names"
                ),
            )
            .into());
        }
    }
    let now = state.now();
    let template = Template {
        id: TemplateId::new(),
        sender_id: sender.id,
        content,
        status: TemplateStatus::Draft,
        status_reason: None,
        recontact: input.recontact,
        provider_template_id: None,
        created_at: now,
        updated_at: now,
    };
    state
        .store()
        .create_template(&template)
        .await
        .map_err(template_store_error)?;
    // Messenger tag templates and SMS templates need no provider approval (R3.6).
    if sender.channel != Channel::Whatsapp {
        return transition(
            state,
            template.id,
            TemplateStatus::Approved,
            Some(format!("{} templates need no approval", sender.channel)),
            "system".to_owned(),
        )
        .await;
    }
    Ok(template)
}

pub async fn get_template(
    state: &AppState,
    principal: &Principal,
    id: TemplateId,
) -> Result<(Template, Vec<TemplateTransition>)> {
    principal.require(Permission::TemplatesRead)?;
    let template = state
        .store()
        .get_template(id)
        .await
        .map_err(template_store_error)?;
    let transitions = state
        .store()
        .template_transitions(id)
        .await
        .map_err(AppError::Internal)?;
    Ok((template, transitions))
}

pub async fn list_templates(
    state: &AppState,
    principal: &Principal,
    filter: &TemplateFilter,
    page: &PageRequest,
) -> Result<Page<Template>> {
    principal.require(Permission::TemplatesRead)?;
    state
        .store()
        .list_templates(filter, page)
        .await
        .map_err(AppError::Internal)
}

/// Replaces a template's content. Content Meta has approved or is reviewing cannot change
/// under it: only drafts and rejected templates are edited (then resubmitted).
pub async fn update_template(
    state: &AppState,
    principal: &Principal,
    id: TemplateId,
    patch: TemplatePatch,
) -> Result<Template> {
    principal.require(Permission::TemplatesWrite)?;
    let (mut template, sender) = template_and_sender(state, id).await?;
    let editable = sender.channel != Channel::Whatsapp
        || matches!(
            template.status,
            TemplateStatus::Draft | TemplateStatus::Rejected
        );
    if !editable {
        return Err(AppError::Conflict {
            code: "template_locked",
            field: Some("status".to_owned()),
            existing_id: None,
            detail: format!(
                "a {} WhatsApp template cannot be edited; create a new one",
                template.status.as_str()
            ),
        });
    }
    let recontact = patch.recontact;
    template.content = validate_template(patch.over(&template.content), sender.channel)?;
    if let Some(recontact) = recontact {
        template.recontact = recontact;
    }
    template.updated_at = state.now();
    state
        .store()
        .update_template(&template)
        .await
        .map_err(template_store_error)?;
    Ok(template)
}

pub async fn delete_template(
    state: &AppState,
    principal: &Principal,
    id: TemplateId,
) -> Result<()> {
    principal.require(Permission::TemplatesWrite)?;
    state
        .store()
        .delete_template(id)
        .await
        .map_err(template_store_error)
}

/// Submits a WhatsApp template for Meta's review (draft or rejected -> pending).
///
/// For a WhatsApp Cloud sender the template goes to Meta's template API: Meta's id is kept on
/// the template and the status Meta answered is recorded step by step (submitted -> pending,
/// then approved or rejected when Meta decided at once). If Meta refuses the submission the
/// template stays as it was and the caller gets Meta's reason. Other senders (the sandbox) only
/// move the template to pending.
pub async fn submit_template(
    state: &AppState,
    principal: &Principal,
    id: TemplateId,
) -> Result<Template> {
    principal.require(Permission::TemplatesWrite)?;
    let (template, sender) = template_and_sender(state, id).await?;
    if sender.channel != Channel::Whatsapp {
        return Err(AppError::Conflict {
            code: "no_approval_needed",
            field: None,
            existing_id: None,
            detail: format!("{} templates need no approval", sender.channel),
        });
    }
    let ProviderConfig::WhatsappCloud(config) = &sender.provider else {
        let pending =
            transition(state, id, TemplateStatus::Pending, None, actor(principal)).await?;
        // The sandbox reviews like Meta, a few seconds later, through its queue.
        if matches!(sender.provider, ProviderConfig::Sandbox) {
            crate::sandbox::review_template(state, id).await?;
        }
        return Ok(pending);
    };
    // Checked before Meta hears of it: a submission the lifecycle then refused to record
    // would leave Meta reviewing a template we do not consider submitted.
    if !template.status.can_transition_to(TemplateStatus::Pending) {
        return Err(invalid_transition(template.status, TemplateStatus::Pending));
    }
    let request = switchboard_channels::whatsapp_template_submission(
        &config.waba_id,
        config.access_token.expose(),
        &template.content,
    );
    // No transaction is open here: the call may take seconds.
    let submitted = match crate::provider::execute(state.http(), &config.api_base_url, &request)
        .await
    {
        Ok(answer) if answer.is_success() => {
            switchboard_channels::parse_template_submitted(&answer.body).map_err(|e| {
                AppError::Provider {
                    code: "provider_error",
                    provider_code: None,
                    detail: format!("Meta accepted the template but its answer is unreadable: {e}"),
                }
            })?
        }
        Ok(answer) => return Err(refused(state, &sender, answer.error(Channel::Whatsapp)).await),
        Err(error) => return Err(refused(state, &sender, error).await),
    };
    tracing::info!(template = %id, provider_template_id = %submitted.id, status = %submitted.status, "template submitted to Meta");
    state
        .store()
        .set_template_provider_id(id, &submitted.id, state.now())
        .await
        .map_err(template_store_error)?;
    let mut current = transition(
        state,
        id,
        TemplateStatus::Pending,
        Some(format!("submitted to Meta as template {}", submitted.id)),
        actor(principal),
    )
    .await?;
    if let Some(verdict) = meta_status(&submitted.status) {
        if verdict != TemplateStatus::Pending && current.status.can_transition_to(verdict) {
            current = transition(
                state,
                id,
                verdict,
                Some(format!("Meta answered {}", submitted.status)),
                PROVIDER_ACTOR.to_owned(),
            )
            .await?;
        }
    }
    Ok(current)
}

/// The provider's verdict on a pending template, recorded unless the template has moved on
/// (withdrawn to draft, say) since it was submitted.
pub(crate) async fn provider_verdict(
    state: &AppState,
    id: TemplateId,
    verdict: TemplateStatus,
    reason: &str,
) -> Result<bool> {
    let template = state
        .store()
        .get_template(id)
        .await
        .map_err(template_store_error)?;
    if template.status != TemplateStatus::Pending || !template.status.can_transition_to(verdict) {
        return Ok(false);
    }
    transition(
        state,
        id,
        verdict,
        Some(reason.to_owned()),
        PROVIDER_ACTOR.to_owned(),
    )
    .await?;
    Ok(true)
}

/// Who a step recorded from the provider's word is attributed to.
const PROVIDER_ACTOR: &str = "provider";

/// Our status for one of Meta's template statuses; `None` for those that change nothing here
/// (`IN_APPEAL`, `FLAGGED`, ...).
fn meta_status(status: &str) -> Option<TemplateStatus> {
    match status.to_ascii_uppercase().as_str() {
        "PENDING" => Some(TemplateStatus::Pending),
        "APPROVED" | "REINSTATED" => Some(TemplateStatus::Approved),
        "REJECTED" => Some(TemplateStatus::Rejected),
        "PAUSED" => Some(TemplateStatus::Paused),
        "DISABLED" => Some(TemplateStatus::Disabled),
        _ => None,
    }
}

/// Meta refused or could not take a submission: the caller hears why, and an expired token
/// is recorded on the sender just as a failed send records it.
async fn refused(
    state: &AppState,
    sender: &switchboard_core::sender::Sender,
    error: SendError,
) -> AppError {
    if error.code() == Some(switchboard_channels::errors::codes::TOKEN_EXPIRED) {
        if let Err(e) = crate::senders::mark_token_expired(state, sender).await {
            return e;
        }
    }
    match error {
        SendError::Retryable {
            reason,
            provider_code,
            ..
        } => AppError::Provider {
            code: "provider_unavailable",
            provider_code,
            detail: format!("Meta could not take the template now; try again later: {reason}"),
        },
        SendError::Permanent {
            code,
            provider_code,
            reason,
        } => AppError::Provider {
            code,
            provider_code,
            detail: format!("Meta refused the template: {reason}"),
        },
    }
}

/// Applies Meta's `message_template_status_update` webhook to the template it names: by
/// Meta's id when we have it, else by name and language among the account's senders.
pub(crate) async fn apply_provider_status(
    state: &AppState,
    senders: &[switchboard_core::sender::Sender],
    update: &switchboard_channels::events::TemplateStatusUpdate,
) -> Result<bool> {
    let Some(to) = meta_status(&update.status) else {
        return Ok(false);
    };
    let ids: Vec<SenderId> = senders.iter().map(|s| s.id).collect();
    let mut found = match &update.template_id {
        Some(provider_id) => state
            .store()
            .find_template_by_provider_id(&ids, provider_id)
            .await
            .map_err(AppError::Internal)?,
        None => None,
    };
    if found.is_none() {
        if let (Some(name), Some(language)) = (&update.template_name, &update.language) {
            for sender in &ids {
                let templates = state
                    .store()
                    .sender_templates(*sender)
                    .await
                    .map_err(AppError::Internal)?;
                // A template Meta knows by another id is another template of the same name.
                found = templates.into_iter().find(|t| {
                    &t.content.name == name
                        && t.content.locale.as_str() == language.as_str()
                        && (t.provider_template_id.is_none() || update.template_id.is_none())
                });
                if found.is_some() {
                    break;
                }
            }
        }
    }
    let Some(template) = found else {
        tracing::info!(template_id = ?update.template_id, name = ?update.template_name, "status for a template we do not have");
        return Ok(false);
    };
    if template.provider_template_id.is_none() {
        if let Some(provider_id) = &update.template_id {
            state
                .store()
                .set_template_provider_id(template.id, provider_id, state.now())
                .await
                .map_err(template_store_error)?;
        }
    }
    if template.status == to {
        return Ok(false);
    }
    if !template.status.can_transition_to(to) {
        // Meta's webhooks can arrive late or out of order; a step the lifecycle does not allow
        // is logged, not forced.
        tracing::warn!(template = %template.id, from = template.status.as_str(), to = to.as_str(), "template status webhook ignored");
        return Ok(false);
    }
    let reason = [
        update.reason.clone().filter(|r| r != "NONE"),
        update.rejection_detail.clone().filter(|r| r != "NONE"),
        update.rejection_recommendation.clone(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    let reason = (!reason.is_empty()).then(|| reason.join(": "));
    match transition(state, template.id, to, reason, PROVIDER_ACTOR.to_owned()).await {
        Ok(_) => Ok(true),
        Err(AppError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

fn invalid_transition(from: TemplateStatus, to: TemplateStatus) -> AppError {
    AppError::Conflict {
        code: "invalid_transition",
        field: Some("status".to_owned()),
        existing_id: None,
        detail: format!("a {} template cannot become {}", from.as_str(), to.as_str()),
    }
}

/// Records a status change (Meta's verdict, a quality pause, an operator's decision),
/// refusing any step the lifecycle does not allow.
pub async fn change_status(
    state: &AppState,
    principal: &Principal,
    id: TemplateId,
    change: StatusChange,
) -> Result<Template> {
    principal.require(Permission::TemplatesWrite)?;
    let (template, sender) = template_and_sender(state, id).await?;
    if sender.channel == Channel::Whatsapp {
        // Approval, rejection and pausing are Meta's verdicts (normally from its webhooks);
        // recording one by hand is an admin's act, and a draft is never approved unsubmitted.
        principal.require(Permission::SendersWrite)?;
        if template.status == TemplateStatus::Draft && change.status == TemplateStatus::Approved {
            return Err(AppError::Conflict {
                code: "invalid_transition",
                field: Some("status".to_owned()),
                existing_id: None,
                detail: "a WhatsApp template is approved by Meta after it is submitted".to_owned(),
            });
        }
    }
    transition(state, id, change.status, change.reason, actor(principal)).await
}

async fn transition(
    state: &AppState,
    id: TemplateId,
    to: TemplateStatus,
    reason: Option<String>,
    actor: String,
) -> Result<Template> {
    let template = state
        .store()
        .get_template(id)
        .await
        .map_err(template_store_error)?;
    let from = template.status;
    if !from.can_transition_to(to) {
        return Err(invalid_transition(from, to));
    }
    let step = TemplateTransition {
        from,
        to,
        at: state.now(),
        actor,
        reason,
    };
    let moved = state
        .store()
        .transition_template(id, &step)
        .await
        .map_err(AppError::Internal)?;
    if !moved {
        return Err(AppError::Conflict {
            code: "concurrent_change",
            field: Some("status".to_owned()),
            existing_id: None,
            detail: "the template's status changed meanwhile; read it again".to_owned(),
        });
    }
    state
        .store()
        .get_template(id)
        .await
        .map_err(template_store_error)
}
