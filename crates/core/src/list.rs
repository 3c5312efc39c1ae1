//! Contact lists (R6.1): the audiences of campaigns, made by hand, by a filter over contacts or
//! by a CSV import.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::channel::Channel;
use crate::contact::{validate_custom_fields, Locale};
use crate::ids::{ListId, UserId};
use crate::validation::{FieldError, ValidationErrors};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 2_000;
const MAX_QUERY_CHARS: usize = 200;
/// A filter names a few fields; more than this is a mistake, not a segment.
const MAX_FILTER_FIELDS: usize = 20;

#[derive(Clone, Debug, PartialEq)]
pub struct ContactList {
    pub id: ListId,
    pub name: String,
    pub description: Option<String>,
    /// The filter the list was first filled from, kept as a record of how it was made; the
    /// list does not follow later changes to contacts.
    pub filter: Option<ListFilter>,
    /// Who made it: `user:<id>` or `token:<id>`.
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Which contacts a list built by filter takes: those matching every criterion given. An
/// empty filter takes every contact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ListFilter {
    /// Part of the name (any case), digits of the phone, or an exact BSUID or PSID: the same
    /// search as the contact list's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// `en` takes every English contact (`en`, `en_GB`, `en_US`...); `en_GB` only that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub locale: Option<Locale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<UserId>,
    /// Custom fields and the value each must equal (a string, number or boolean).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub fields: Map<String, Value>,
    /// Only contacts whose consent ledger stands at `opted_in` on this channel now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opted_in: Option<Channel>,
}

impl ListFilter {
    /// Refuses what no contact could match sensibly, naming each field under `filter.`.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(q) = &self.q {
            if q.trim().is_empty() {
                errors.push(FieldError::new(
                    "filter.q",
                    "invalid_value",
                    "`filter.q` is empty; leave it out to take every contact",
                ));
            } else if q.chars().count() > MAX_QUERY_CHARS {
                errors.push(FieldError::new(
                    "filter.q",
                    "too_long",
                    format!("`filter.q` must be at most {MAX_QUERY_CHARS} characters"),
                ));
            }
        }
        if self.fields.len() > MAX_FILTER_FIELDS {
            errors.push(FieldError::new(
                "filter.fields",
                "too_many",
                format!("a filter compares at most {MAX_FILTER_FIELDS} custom fields"),
            ));
        }
        if let Err(e) = validate_custom_fields(&self.fields) {
            errors.push(e.nested_in("filter"));
        }
        for (key, value) in &self.fields {
            if matches!(value, Value::Null | Value::Array(_) | Value::Object(_)) {
                errors.push(FieldError::new(
                    format!("filter.fields.{key}"),
                    "invalid_value",
                    "a filter compares a custom field with a string, number or boolean",
                ));
            }
        }
        errors.finish(|| ())
    }

    /// The locale to compare with, and whether it is a language alone (which takes every
    /// region of it).
    pub fn locale_match(&self) -> Option<(&str, bool)> {
        self.locale
            .as_ref()
            .map(|l| (l.as_str(), l.language() == l.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(filter: Value) -> Vec<(String, String)> {
        let filter: ListFilter = serde_json::from_value(filter).unwrap();
        match filter.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e
                .into_errors()
                .into_iter()
                .map(|e| (e.field, e.code))
                .collect(),
        }
    }

    #[test]
    fn filters_name_their_bad_fields() {
        assert!(codes(json!({})).is_empty());
        assert!(codes(
            json!({"q": "ada", "locale": "en-gb", "fields": {"plan": "gold"},
                             "opted_in": "whatsapp"})
        )
        .is_empty());
        assert_eq!(
            codes(json!({"q": " "})),
            [("filter.q".to_owned(), "invalid_value".to_owned())]
        );
        assert_eq!(
            codes(json!({"fields": {"plan": null}})),
            [("filter.fields.plan".to_owned(), "invalid_value".to_owned())]
        );
        assert_eq!(
            codes(json!({"fields": {"Plan": "x"}})),
            [("filter.fields.Plan".to_owned(), "invalid_key".to_owned())]
        );
    }

    #[test]
    fn a_language_alone_takes_its_regions() {
        let filter: ListFilter = serde_json::from_value(json!({"locale": "EN"})).unwrap();
        assert_eq!(filter.locale_match(), Some(("en", true)));
        let filter: ListFilter = serde_json::from_value(json!({"locale": "en-gb"})).unwrap();
        assert_eq!(filter.locale_match(), Some(("en_GB", false)));
    }

    #[test]
    fn filters_round_trip_without_empty_members() {
        let filter: ListFilter =
            serde_json::from_value(json!({"opted_in": "sms", "fields": {"vip": true}})).unwrap();
        let stored = serde_json::to_value(&filter).unwrap();
        assert_eq!(stored, json!({"opted_in": "sms", "fields": {"vip": true}}));
        assert_eq!(
            serde_json::from_value::<ListFilter>(stored).unwrap(),
            filter
        );
    }
}
