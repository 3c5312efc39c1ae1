//! Contacts (R1.4, R1.6, R1.7): customers known by phone, WhatsApp user id and/or Messenger id.

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::address::{MessengerPsid, PhoneNumber, WhatsappUserId};
use crate::ids::{ContactId, UserId};
use crate::validation::FieldError;

/// A language tag as WhatsApp templates use it: `en`, `en_US`, `pt_BR`, `zh_Hant`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Locale(String);

impl Locale {
    /// Accepts `en-us` or `en_US` and normalises to WhatsApp's `en_US`.
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let input = input.trim().replace('-', "_");
        let mut parts = input.splitn(2, '_');
        let language = parts.next().unwrap_or_default();
        let region = parts.next();
        let language_ok =
            (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_alphabetic());
        let region_ok = region.is_none_or(|r| {
            (r.len() == 2 || r.len() == 4) && r.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if !(language_ok && region_ok) {
            return Err(FieldError::new(
                field,
                "invalid_locale",
                format!("`{field}` must be a language code such as `en` or `en_US`"),
            ));
        }
        let language = language.to_ascii_lowercase();
        Ok(Self(match region {
            None => language,
            Some(r) if r.len() == 2 => format!("{language}_{}", r.to_ascii_uppercase()),
            Some(r) => {
                // A script subtag: title case, as in zh_Hant.
                let (first, rest) = r.split_at(1);
                format!(
                    "{language}_{}{}",
                    first.to_ascii_uppercase(),
                    rest.to_ascii_lowercase()
                )
            }
        }))
    }

    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language alone (`en` for `en_US`): the first fallback when a template is missing
    /// in the exact locale.
    pub fn language(&self) -> &str {
        self.0.split('_').next().unwrap_or(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Locale {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Locale::parse("locale", &s).map_err(|e| serde::de::Error::custom(e.detail))
    }
}

pub const MAX_CUSTOM_FIELDS: usize = 100;

/// Custom contact fields: a flat object of short keys to strings, numbers, booleans or null,
/// so that templates can map variables to them (`contact.fields.plan`).
pub fn validate_custom_fields(fields: &Map<String, Value>) -> Result<(), FieldError> {
    if fields.len() > MAX_CUSTOM_FIELDS {
        return Err(FieldError::new(
            "fields",
            "too_many",
            format!("at most {MAX_CUSTOM_FIELDS} custom fields"),
        ));
    }
    for (key, value) in fields {
        let key_ok = key.len() <= 64
            && key.starts_with(|c: char| c.is_ascii_lowercase())
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            return Err(FieldError::new(
                format!("fields.{key}"),
                "invalid_key",
                "custom field names are lower-case letters, digits and `_`, starting with a letter",
            ));
        }
        let value_ok = match value {
            Value::String(s) => s.chars().count() <= 1000,
            Value::Number(_) | Value::Bool(_) | Value::Null => true,
            Value::Array(_) | Value::Object(_) => false,
        };
        if !value_ok {
            return Err(FieldError::new(
                format!("fields.{key}"),
                "invalid_value",
                "a custom field holds a string (up to 1,000 characters), number, boolean or null",
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    pub id: ContactId,
    pub name: Option<String>,
    pub phone: Option<PhoneNumber>,
    pub whatsapp_user_id: Option<WhatsappUserId>,
    pub messenger_psid: Option<MessengerPsid>,
    pub locale: Option<Locale>,
    pub owner_id: Option<UserId>,
    pub fields: Map<String, Value>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Contact {
    /// A contact with nothing known, standing in for a recipient not on record (its fields
    /// resolve no template variables).
    pub fn unsaved() -> Self {
        Contact {
            id: ContactId::from_uuid(uuid::Uuid::nil()),
            name: None,
            phone: None,
            whatsapp_user_id: None,
            messenger_psid: None,
            locale: None,
            owner_id: None,
            fields: Map::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// A contact must be reachable somewhere: by phone, WhatsApp user id or Messenger id.
    pub fn check_reachable(&self) -> Result<(), FieldError> {
        if self.phone.is_none() && self.whatsapp_user_id.is_none() && self.messenger_psid.is_none()
        {
            return Err(FieldError::new(
                "phone",
                "required",
                "a contact needs a `phone`, a `whatsapp_user_id` or a `messenger_psid`",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn locales_normalise() {
        let cases = [
            ("en", "en"),
            ("en_US", "en_US"),
            ("en-us", "en_US"),
            ("PT_br", "pt_BR"),
            ("zh_hant", "zh_Hant"),
        ];
        for (input, expected) in cases {
            assert_eq!(Locale::parse("locale", input).unwrap().as_str(), expected);
        }
        assert_eq!(Locale::parse("l", "en_US").unwrap().language(), "en");
        for bad in ["", "e", "english", "en_USA", "en_U1", "12"] {
            assert!(Locale::parse("locale", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn custom_fields_are_flat_and_named_simply() {
        let ok = json!({"plan": "gold", "visits": 3, "vip": true, "note": null});
        assert!(validate_custom_fields(ok.as_object().unwrap()).is_ok());
        let nested = json!({"address": {"city": "Leeds"}});
        let err = validate_custom_fields(nested.as_object().unwrap()).unwrap_err();
        assert_eq!(err.field, "fields.address");
        let bad_key = json!({"Plan Name": "x"});
        assert_eq!(
            validate_custom_fields(bad_key.as_object().unwrap())
                .unwrap_err()
                .code,
            "invalid_key"
        );
    }
}
