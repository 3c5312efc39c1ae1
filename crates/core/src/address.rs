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
        match checked(&international) {
            Checked::Valid(e164) => Ok(Self(e164)),
            Checked::NotANumber(why) => Err(FieldError::new(
                field,
                "invalid_address",
                format!("`{field}` is not a phone number: {why}"),
            )),
            Checked::Invalid => Err(FieldError::new(
                field,
                "invalid_address",
                format!("`{field}` is not a valid number for its country"),
            )),
        }
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

/// What libphonenumber's metadata says of an international number.
#[derive(Clone)]
enum Checked {
    Valid(String),
    NotANumber(String),
    Invalid,
}

/// Numbers checked lately. Checking one runs dozens of libphonenumber's regular expressions,
/// and the same few numbers come back again and again: a send's recipient is parsed as it is
/// looked up, judged by the policy and addressed by the connector, a customer's number in
/// every webhook they send. The answer depends on the input alone, so remembering it changes
/// nothing but the time; the memory is emptied when full rather than kept in order.
static CHECKED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Checked>>> =
    std::sync::LazyLock::new(Default::default);

const CHECKED_KEPT: usize = 8192;

fn checked(international: &str) -> Checked {
    let memory = || CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(known) = memory().get(international) {
        return known.clone();
    }
    let outcome = match phonenumber::parse(None, international) {
        Err(e) => Checked::NotANumber(e.to_string()),
        Ok(parsed) if !phonenumber::is_valid(&parsed) => Checked::Invalid,
        Ok(parsed) => Checked::Valid(parsed.format().mode(Mode::E164).to_string()),
    };
    let mut kept = memory();
    if kept.len() >= CHECKED_KEPT {
        kept.clear();
    }
    kept.insert(international.to_owned(), outcome.clone());
    outcome
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
    fn a_number_checked_again_gets_the_same_answer_under_its_own_field() {
        for _ in 0..2 {
            assert_eq!(
                PhoneNumber::parse("to", "+44 20 7946 0958")
                    .unwrap()
                    .as_str(),
                "+442079460958"
            );
        }
        let first = PhoneNumber::parse("to", "+44 12").unwrap_err();
        let again = PhoneNumber::parse("phone", "+44 12").unwrap_err();
        assert_eq!(first.field, "to");
        assert_eq!(again.field, "phone");
        assert_eq!(first.code, again.code);
        assert_eq!(
            first.detail.replace("`to`", "`phone`"),
            again.detail,
            "the same reason, named for its field"
        );
    }

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
