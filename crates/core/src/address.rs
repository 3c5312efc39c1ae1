//! Validated recipient addresses. Parse, don't validate: once built, an address is well-formed.

use std::fmt;

use phonenumber::Mode;
use serde::{Deserialize, Serialize};

use crate::validation::FieldError;

/// A phone number in E.164 form (`+442079460958`), checked against libphonenumber's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses a number written by a person or a provider. The country prefix is required
    /// (`+44 20 7946 0958` or `0044 20 7946 0958`); spaces, dots, dashes and brackets are ignored.
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let trimmed = input.trim();
        let international = if let Some(rest) = trimmed.strip_prefix("00") {
            format!("+{rest}")
        } else {
            trimmed.to_owned()
        };
        if !international.starts_with('+') {
            return Err(FieldError::new(
                field,
                "invalid_address",
                format!(
                    "`{field}` must be an international phone number with its country prefix, \
                     such as +442079460958"
                ),
            ));
        }
        let parsed = phonenumber::parse(None, &international).map_err(|e| {
            FieldError::new(
                field,
                "invalid_address",
                format!("`{field}` is not a phone number: {e}"),
            )
        })?;
        if !phonenumber::is_valid(&parsed) {
            return Err(FieldError::new(
                field,
                "invalid_address",
                format!("`{field}` is not a valid number for its country"),
            ));
        }
        Ok(Self(parsed.format().mode(Mode::E164).to_string()))
    }

    /// Parses the bare digits WhatsApp and Twilio put in webhooks (`16505551234`).
    pub fn from_provider_digits(field: &str, digits: &str) -> Result<Self, FieldError> {
        let digits = digits.trim();
        if digits.starts_with('+') {
            Self::parse(field, digits)
        } else {
            Self::parse(field, &format!("+{digits}"))
        }
    }

    /// Rebuilds a number read back from storage, where it was written already normalised.
    pub fn from_trusted(e164: String) -> Self {
        Self(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the leading `+`, as WhatsApp's `wa_id` carries them.
    pub fn digits(&self) -> &str {
        self.0.trim_start_matches('+')
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PhoneNumber::parse("phone", &s).map_err(|e| serde::de::Error::custom(e.detail))
    }
}

/// A Messenger page-scoped user id: the digits Meta assigns to one person for one page.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MessengerPsid(String);

impl MessengerPsid {
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let s = input.trim();
        if (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldError::new(
                field,
                "invalid_address",
                format!("`{field}` must be a Messenger page-scoped id (digits only)"),
            ))
        }
    }

    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessengerPsid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A WhatsApp business-scoped user id (BSUID), such as `US.13491208655302741918` or
/// `US.ENT.11815799212886844830`. Users with usernames may be known by this id alone.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct WhatsappUserId(String);

impl WhatsappUserId {
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let s = input.trim();
        let (country, rest) = s.split_once('.').unwrap_or(("", ""));
        let well_formed = country.len() == 2
            && country.bytes().all(|b| b.is_ascii_uppercase())
            && !rest.is_empty()
            && s.len() <= 128
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if well_formed {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldError::new(
                field,
                "invalid_address",
                format!(
                    "`{field}` must be a WhatsApp business-scoped user id such as \
                     US.13491208655302741918"
                ),
            ))
        }
    }

    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WhatsappUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_normalise_to_e164() {
        let cases = [
            ("+44 20 7946 0958", "+442079460958"),
            ("+1 (650) 555-1234", "+16505551234"),
            ("0044 20 7946 0958", "+442079460958"),
            ("  +33 1 42 68 53 00 ", "+33142685300"),
        ];
        for (input, expected) in cases {
            assert_eq!(
                PhoneNumber::parse("phone", input).unwrap().as_str(),
                expected,
                "{input}"
            );
        }
    }

    #[test]
    fn phone_numbers_without_country_or_nonsense_are_refused() {
        for input in ["5550001", "020 7946 0958", "+", "+999 123", "hello", ""] {
            let err = PhoneNumber::parse("phone", input).unwrap_err();
            assert_eq!(err.field, "phone", "{input}");
            assert_eq!(err.code, "invalid_address", "{input}");
        }
    }

    #[test]
    fn provider_digits_gain_their_plus() {
        let n = PhoneNumber::from_provider_digits("from", "16505551234").unwrap();
        assert_eq!(n.as_str(), "+16505551234");
        assert_eq!(n.digits(), "16505551234");
    }

    #[test]
    fn psids_are_digits() {
        assert!(MessengerPsid::parse("psid", "1254459154682919").is_ok());
        assert!(MessengerPsid::parse("psid", "12a4").is_err());
        assert!(MessengerPsid::parse("psid", "").is_err());
    }

    #[test]
    fn bsuids_have_a_country_and_an_id() {
        for ok in [
            "US.13491208655302741918",
            "US.ENT.11815799212886844830",
            "US.123456",
        ] {
            assert!(WhatsappUserId::parse("u", ok).is_ok(), "{ok}");
        }
        for bad in ["13491208655302741918", "us.123", "US.", "USA.1", "US.12 3"] {
            assert!(WhatsappUserId::parse("u", bad).is_err(), "{bad}");
        }
    }
}
