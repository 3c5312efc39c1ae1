//! Account settings: data-loss prevention rules and consent keywords.

use serde::{Deserialize, Serialize};
use switchboard_core::consent::KeywordConfig;
use switchboard_core::dlp::{DlpRule, DlpRuleSet};
use switchboard_core::hours::BusinessHours;
use switchboard_core::policy::HoursState;
use switchboard_core::Permission;
use time::OffsetDateTime;

use crate::{AppError, AppState, Principal, Result};

const DLP_KEY: &str = "dlp";
const HOURS_KEY: &str = "business_hours";
const KEYWORDS_KEY: &str = "consent_keywords";

/// The account's data-loss prevention rules (R8.2).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DlpSettings {
    pub rules: Vec<DlpRule>,
}

/// The rules as compiled for scanning; an account with none configured scans nothing.
pub async fn dlp_rules(state: &AppState) -> Result<DlpRuleSet> {
    let settings = load::<DlpSettings>(state, DLP_KEY).await?;
    // Rules were validated when saved; a set that no longer compiles is a corrupt setting.
    DlpRuleSet::compile(&settings.rules).map_err(|e| {
        AppError::Internal(switchboard_store::StoreError::Corrupt(format!(
            "stored DLP rules: {e}"
        )))
    })
}

pub async fn get_dlp(state: &AppState, principal: &Principal) -> Result<DlpSettings> {
    principal.require(Permission::SettingsRead)?;
    load(state, DLP_KEY).await
}

pub async fn put_dlp(
    state: &AppState,
    principal: &Principal,
    settings: DlpSettings,
) -> Result<DlpSettings> {
    principal.require(Permission::SettingsWrite)?;
    DlpRuleSet::compile(&settings.rules)?;
    save(state, DLP_KEY, &settings).await?;
    Ok(settings)
}

/// The consent keywords in force (R4.2), the defaults unless the account changed them.
pub async fn keywords(state: &AppState) -> Result<KeywordConfig> {
    load(state, KEYWORDS_KEY).await
}

pub async fn get_keywords(state: &AppState, principal: &Principal) -> Result<KeywordConfig> {
    principal.require(Permission::SettingsRead)?;
    keywords(state).await
}

pub async fn put_keywords(
    state: &AppState,
    principal: &Principal,
    config: KeywordConfig,
) -> Result<KeywordConfig> {
    principal.require(Permission::SettingsWrite)?;
    config.validate()?;
    save(state, KEYWORDS_KEY, &config).await?;
    Ok(config)
}

async fn load<T: Default + serde::de::DeserializeOwned>(state: &AppState, key: &str) -> Result<T> {
    match state.setting(key).await.map_err(AppError::Internal)? {
        Some(value) => serde_json::from_value(value).map_err(|e| {
            AppError::Internal(switchboard_store::StoreError::Corrupt(format!(
                "setting {key}: {e}"
            )))
        }),
        None => Ok(T::default()),
    }
}

async fn save<T: Serialize>(state: &AppState, key: &str, value: &T) -> Result<()> {
    let value = serde_json::to_value(value).map_err(|e| {
        AppError::Internal(switchboard_store::StoreError::Corrupt(format!(
            "setting {key}: {e}"
        )))
    })?;
    state
        .store()
        .put_setting(key, &value, state.now())
        .await
        .map_err(AppError::Internal)?;
    state.forget_settings();
    Ok(())
}

/// The account's business hours, if it keeps any.
pub async fn get_business_hours(
    state: &AppState,
    principal: &Principal,
) -> Result<Option<BusinessHours>> {
    principal.require(Permission::SettingsRead)?;
    load::<Option<BusinessHours>>(state, HOURS_KEY).await
}

pub async fn put_business_hours(
    state: &AppState,
    principal: &Principal,
    hours: BusinessHours,
) -> Result<BusinessHours> {
    principal.require(Permission::SettingsWrite)?;
    hours.compile()?;
    save(state, HOURS_KEY, &Some(&hours)).await?;
    Ok(hours)
}

/// Stops keeping business hours: automation is no longer held.
pub async fn clear_business_hours(state: &AppState, principal: &Principal) -> Result<()> {
    principal.require(Permission::SettingsWrite)?;
    save(state, HOURS_KEY, &Option::<BusinessHours>::None).await
}

/// Whether the business is open at `now` (R7.4); `None` when it keeps no hours.
pub async fn hours_at(state: &AppState, now: OffsetDateTime) -> Result<Option<HoursState>> {
    let Some(hours) = load::<Option<BusinessHours>>(state, HOURS_KEY).await? else {
        return Ok(None);
    };
    let schedule = hours.compile().map_err(|e| {
        AppError::Internal(switchboard_store::StoreError::Corrupt(format!(
            "stored business hours: {e}"
        )))
    })?;
    Ok(Some(schedule.state_at(now)))
}
