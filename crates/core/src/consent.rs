//! The consent ledger (R4): per contact and channel, every change with its time, source and
//! evidence; opt-in and opt-out keywords; the WhatsApp opt-in request flow (R4.3).

use std::fmt;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::channel::Channel;
use crate::ids::{ConsentEventId, ContactId};
use crate::validation::{optional_text, FieldError, ValidationErrors};

/// Where a contact stands on one channel. A rejected opt-in request (R4.3c) is `opted_out`
/// with source `whatsapp_thread`: the contact receives nothing until they opt in again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConsentStatus {
    None,
    Requested,
    OptedIn,
    OptedOut,
}

/// How a consent change came about (R4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ConsentSource {
    Website,
    Ivr,
    WhatsappThread,
    Ad,
    Agent,
    Import,
    Api,
    /// An inbound keyword such as STOP or START.
    Keyword,
    /// The provider reported it (WhatsApp 131050, Twilio 21610).
    Provider,
}

/// One entry of the ledger. Entries are only ever appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentEvent {
    pub id: ConsentEventId,
    pub contact_id: ContactId,
    pub channel: Channel,
    pub status: ConsentStatus,
    pub source: ConsentSource,
    /// What proves it: a form URL, a call recording id, the keyword message text...
    pub evidence: Option<String>,
    /// Who recorded it: a user or token id, or `system`.
    pub actor: String,
    pub at: OffsetDateTime,
}

/// What an inbound message asks for, when it is a consent keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeywordIntent {
    OptOut,
    OptIn,
}

/// The four outcomes of a WhatsApp opt-in request (R4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OptInOutcome {
    /// (a) The contact has no WhatsApp: offer SMS instead.
    NoWhatsapp,
    /// (b) Accepted: both sides get a confirmation.
    Accepted,
    /// (c) Rejected: composing and templates are disabled; the contact may reply "yes" later.
    Rejected,
    /// (d) No answer yet: a new request may be sent 24 hours after the last.
    NoAnswer,
}

// ---------------------------------------------------------------------------------------------
// Keywords (R4.2)
// ---------------------------------------------------------------------------------------------

/// Longest keyword an account may configure. Carrier keywords are a few letters; anything near
/// this long is a sentence pasted into the wrong field.
const MAX_KEYWORD_CHARS: usize = 32;

/// Longest evidence text kept with a manual ledger entry.
const MAX_EVIDENCE_CHARS: usize = 2_000;

/// An account's consent keywords. Matching ignores case, surrounding whitespace and trailing
/// punctuation, so the lists hold each word once, conventionally in capitals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeywordConfig {
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
}

impl Default for KeywordConfig {
    /// Twilio's default long-code and toll-free keywords (PROTOCOLS.md C.5), so that an SMS
    /// contact gets the same answer from us as from the carrier.
    fn default() -> Self {
        let words = |list: &[&str]| list.iter().map(|w| (*w).to_owned()).collect();
        Self {
            opt_out: words(&[
                "STOP",
                "STOPALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "END",
                "QUIT",
                "REVOKE",
                "OPTOUT",
            ]),
            opt_in: words(&["START", "UNSTOP", "YES"]),
        }
    }
}

impl KeywordConfig {
    /// Refuses keywords that could never match a normalised message, words that would mean both
    /// things, and an empty opt-out list: an account may rename STOP but cannot switch it off.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        for (list, words) in [("opt_out", &self.opt_out), ("opt_in", &self.opt_in)] {
            for (i, word) in words.iter().enumerate() {
                if let Err(error) = check_keyword(&format!("{list}[{i}]"), word) {
                    errors.push(error);
                }
            }
        }
        if self.opt_out.is_empty() {
            errors.push(FieldError::new(
                "opt_out",
                "required",
                "at least one opt-out keyword is required: contacts must always be able to stop",
            ));
        }
        let opt_out: Vec<String> = self.opt_out.iter().map(|w| normalize_keyword(w)).collect();
        for (j, word) in self.opt_in.iter().enumerate() {
            let normalized = normalize_keyword(word);
            if !normalized.is_empty() && opt_out.contains(&normalized) {
                errors.push(FieldError::new(
                    format!("opt_in[{j}]"),
                    "conflicting_keyword",
                    format!("`{word}` is both an opt-out and an opt-in keyword"),
                ));
            }
        }
        errors.finish(|| ())
    }

    /// The intent of an inbound message, when the whole message is one keyword. Twilio acts
    /// only on single-word messages ("STOP PLEASE" does not trigger), and we follow it so a
    /// contact never sees the carrier and Switchboard disagree about whether they opted out.
    pub fn classify(&self, text: &str) -> Option<KeywordIntent> {
        let message = normalize_message(text);
        if message.is_empty() {
            // An unvalidated config may hold an empty keyword; an empty message must not match it.
            return None;
        }
        let matches = |words: &[String]| words.iter().any(|w| normalize_keyword(w) == message);
        // Opt-out first: if a misconfigured word is in both lists, stopping is the safe reading.
        if matches(&self.opt_out) {
            Some(KeywordIntent::OptOut)
        } else if matches(&self.opt_in) {
            Some(KeywordIntent::OptIn)
        } else {
            None
        }
    }
}

fn check_keyword(field: &str, word: &str) -> Result<(), FieldError> {
    let invalid = |detail: String| Err(FieldError::new(field, "invalid_keyword", detail));
    if word.is_empty() || !word.chars().all(char::is_alphanumeric) {
        return invalid(format!(
            "`{field}` must be a single word of letters and digits"
        ));
    }
    if word.chars().count() > MAX_KEYWORD_CHARS {
        return invalid(format!(
            "`{field}` must be at most {MAX_KEYWORD_CHARS} characters"
        ));
    }
    Ok(())
}

fn normalize_keyword(word: &str) -> String {
    word.trim().to_lowercase()
}

/// Marks people add after a one-word reply ("Stop!", "yes.", "sí?") without changing what it
/// means. Only trailing marks are dropped: every extra normalisation is one more way for
/// ordinary text to be read as a keyword.
fn is_trailing_mark(c: char) -> bool {
    c.is_whitespace()
        || c.is_ascii_punctuation()
        || matches!(
            c,
            '…' | '。' | '、' | '！' | '？' | '．' | '，' | '؟' | '«' | '»'
        )
}

fn normalize_message(text: &str) -> String {
    text.trim()
        .trim_end_matches(is_trailing_mark)
        .to_lowercase()
}

/// The status a keyword leads to, or `None` when it changes nothing. Opt-out is honoured from
/// any status (R4.2). Opt-in only answers a pending request or undoes an opt-out: a "yes" in a
/// support chat is not consent to notifications (R4.4).
pub fn apply_keyword(current: ConsentStatus, intent: KeywordIntent) -> Option<ConsentStatus> {
    match (intent, current) {
        (KeywordIntent::OptOut, ConsentStatus::OptedOut) => None,
        (KeywordIntent::OptOut, _) => Some(ConsentStatus::OptedOut),
        (KeywordIntent::OptIn, ConsentStatus::Requested | ConsentStatus::OptedOut) => {
            Some(ConsentStatus::OptedIn)
        }
        (KeywordIntent::OptIn, ConsentStatus::None | ConsentStatus::OptedIn) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The ledger (R4.1)
// ---------------------------------------------------------------------------------------------

/// Where the contact stands on `channel`, given their ledger entries in the order they were
/// appended. Clocks of different writers can disagree, so the latest `at` decides, and among
/// entries with the same `at` the one appended last. The caller passes one contact's entries.
pub fn current_status(events: &[ConsentEvent], channel: Channel) -> ConsentStatus {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.channel == channel)
        .max_by_key(|(i, e)| (e.at, *i))
        .map_or(ConsentStatus::None, |(_, e)| e.status)
}

/// Checks an entry that a person or an integration records through the API. Opt-ins from
/// outside a conversation must carry evidence, because consent we cannot prove is consent we
/// do not have; opt-outs never need any, so that nothing stands in the way of honouring one.
pub fn validate_manual_change(
    status: ConsentStatus,
    source: ConsentSource,
    evidence: Option<&str>,
) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::new();
    if status == ConsentStatus::None {
        errors.push(FieldError::new(
            "status",
            "invalid_status",
            "`status` must be requested, opted_in or opted_out; `none` cannot be recorded",
        ));
    }
    if matches!(
        source,
        ConsentSource::Keyword | ConsentSource::Provider | ConsentSource::WhatsappThread
    ) {
        // These entries are only true when the system saw the keyword, the provider's error or
        // the customer's reply itself; letting the API claim them would forge the trail.
        errors.push(FieldError::new(
            "source",
            "reserved_source",
            "`source` keyword, provider and whatsapp_thread are recorded by Switchboard itself",
        ));
    }
    if let Some(Err(error)) = evidence.map(|e| optional_text("evidence", e, MAX_EVIDENCE_CHARS)) {
        errors.push(error);
    }
    // An opt-in recorded by a person or an integration must be provable, whatever its source.
    let needs_evidence = true;
    let has_evidence = evidence.is_some_and(|e| !e.trim().is_empty());
    if status == ConsentStatus::OptedIn && needs_evidence && !has_evidence {
        errors.push(FieldError::new(
            "evidence",
            "evidence_required",
            "an opt-in from this source needs `evidence`: a form URL, a recording id, a file name",
        ));
    }
    errors.finish(|| ())
}

// ---------------------------------------------------------------------------------------------
// The WhatsApp opt-in request (R4.3)
// ---------------------------------------------------------------------------------------------

/// How long an unanswered opt-in request blocks the next one (R4.3d).
pub const OPT_IN_RESEND_AFTER: time::Duration = time::Duration::hours(24);

/// Why an opt-in request may not be sent now. Serialised with the same `code` as [`Self::code`]
/// so clients can switch on one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum OptInRequestRefusal {
    AlreadyOptedIn,
    OptedOut,
    #[serde(rename = "opt_in_request_too_soon")]
    TooSoon {
        #[serde(with = "time::serde::rfc3339")]
        retry_at: OffsetDateTime,
    },
    NoWhatsapp,
}

impl OptInRequestRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            OptInRequestRefusal::AlreadyOptedIn => "already_opted_in",
            OptInRequestRefusal::OptedOut => "opted_out",
            OptInRequestRefusal::TooSoon { .. } => "opt_in_request_too_soon",
            OptInRequestRefusal::NoWhatsapp => "no_whatsapp",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            OptInRequestRefusal::AlreadyOptedIn => {
                "The contact has already opted in to WhatsApp messages.".to_owned()
            }
            OptInRequestRefusal::OptedOut => "The contact has opted out and receives nothing; \
                 they can opt in themselves by replying YES."
                .to_owned(),
            OptInRequestRefusal::TooSoon { retry_at } => match retry_at.format(&Rfc3339) {
                Ok(at) => format!(
                    "An opt-in request was sent less than 24 hours ago; \
                     a new one may be sent from {at}."
                ),
                Err(_) => "An opt-in request was sent less than 24 hours ago.".to_owned(),
            },
            OptInRequestRefusal::NoWhatsapp => {
                "The contact has no WhatsApp account; offer SMS instead.".to_owned()
            }
        }
    }
}

impl fmt::Display for OptInRequestRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for OptInRequestRefusal {}

/// Whether an agent may send a WhatsApp opt-in request now. An opted-out contact gets no
/// request at all: asking again is exactly the pressure an opt-out refuses, so they must come
/// back by themselves. A request is repeated only once the last one has gone unanswered for
/// [`OPT_IN_RESEND_AFTER`].
pub fn check_opt_in_request(
    status: ConsentStatus,
    last_request_at: Option<OffsetDateTime>,
    known_no_whatsapp: bool,
    now: OffsetDateTime,
) -> Result<(), OptInRequestRefusal> {
    match status {
        ConsentStatus::OptedIn => return Err(OptInRequestRefusal::AlreadyOptedIn),
        ConsentStatus::OptedOut => return Err(OptInRequestRefusal::OptedOut),
        ConsentStatus::None | ConsentStatus::Requested => {}
    }
    // Checked before the wait, because waiting would not help: the agent should offer SMS.
    if known_no_whatsapp {
        return Err(OptInRequestRefusal::NoWhatsapp);
    }
    if let (ConsentStatus::Requested, Some(last)) = (status, last_request_at) {
        match last.checked_add(OPT_IN_RESEND_AFTER) {
            Some(retry_at) if now >= retry_at => {}
            Some(retry_at) => return Err(OptInRequestRefusal::TooSoon { retry_at }),
            // A day after the last representable instant never comes; saturate, do not panic.
            None => {
                return Err(OptInRequestRefusal::TooSoon {
                    retry_at: PrimitiveDateTime::MAX.assume_utc(),
                })
            }
        }
    }
    Ok(())
}

/// What a contact's reply means for a pending opt-in request. A plain "yes" or "no" always
/// answers it, whatever the account's keywords, because that is what the request asks for;
/// any other text leaves the request open. Outside a request a reply answers nothing here
/// (keywords then go through [`apply_keyword`]).
pub fn outcome_of_reply(
    status: ConsentStatus,
    reply: &str,
    keywords: &KeywordConfig,
) -> Option<OptInOutcome> {
    if status != ConsentStatus::Requested {
        return None;
    }
    let intent = keywords.classify(reply);
    let message = normalize_message(reply);
    // Refusal first, as in `classify`: an ambiguous answer must not become consent.
    if intent == Some(KeywordIntent::OptOut) || message == "no" {
        Some(OptInOutcome::Rejected)
    } else if intent == Some(KeywordIntent::OptIn) || message == "yes" {
        Some(OptInOutcome::Accepted)
    } else {
        None
    }
}

/// Whether a message's text could change consent at all: a keyword, or a YES or NO that would
/// answer a pending opt-in request. Most messages cannot, and then the ledger need not be read.
pub fn could_change_consent(text: &str, keywords: &KeywordConfig) -> bool {
    keywords.classify(text).is_some() || matches!(normalize_message(text).as_str(), "yes" | "no")
}

/// The ledger entry an outcome leads to; `None` where the ledger stays as it is (no WhatsApp
/// is a fact about the contact, not a consent decision, and silence decides nothing).
pub fn status_after(outcome: OptInOutcome) -> Option<ConsentStatus> {
    match outcome {
        OptInOutcome::Accepted => Some(ConsentStatus::OptedIn),
        OptInOutcome::Rejected => Some(ConsentStatus::OptedOut),
        OptInOutcome::NoWhatsapp | OptInOutcome::NoAnswer => None,
    }
}

/// The message the contact receives after answering a request (R4.3b, R4.3c). The rejection
/// text is the only thing an opted-out contact is sent, so it must say how to come back.
pub fn confirmation_text(outcome: OptInOutcome) -> Option<&'static str> {
    match outcome {
        OptInOutcome::Accepted => {
            Some("Thank you, you are now subscribed to our WhatsApp messages.")
        }
        OptInOutcome::Rejected => Some(
            "You will not receive WhatsApp messages from us. \
             If you change your mind, reply YES at any time to opt in.",
        ),
        OptInOutcome::NoWhatsapp | OptInOutcome::NoAnswer => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;
    use uuid::Uuid;

    const STATUSES: [ConsentStatus; 4] = [
        ConsentStatus::None,
        ConsentStatus::Requested,
        ConsentStatus::OptedIn,
        ConsentStatus::OptedOut,
    ];

    const SOURCES: [ConsentSource; 9] = [
        ConsentSource::Website,
        ConsentSource::Ivr,
        ConsentSource::WhatsappThread,
        ConsentSource::Ad,
        ConsentSource::Agent,
        ConsentSource::Import,
        ConsentSource::Api,
        ConsentSource::Keyword,
        ConsentSource::Provider,
    ];

    const OUTCOMES: [OptInOutcome; 4] = [
        OptInOutcome::NoWhatsapp,
        OptInOutcome::Accepted,
        OptInOutcome::Rejected,
        OptInOutcome::NoAnswer,
    ];

    fn config(opt_out: &[&str], opt_in: &[&str]) -> KeywordConfig {
        KeywordConfig {
            opt_out: opt_out.iter().map(|w| (*w).to_owned()).collect(),
            opt_in: opt_in.iter().map(|w| (*w).to_owned()).collect(),
        }
    }

    fn codes(result: Result<(), ValidationErrors>) -> Vec<(String, String)> {
        match result {
            Ok(()) => Vec::new(),
            Err(errors) => errors
                .into_errors()
                .into_iter()
                .map(|e| (e.field, e.code))
                .collect(),
        }
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
            .collect()
    }

    fn event(channel: Channel, status: ConsentStatus, at: OffsetDateTime) -> ConsentEvent {
        ConsentEvent {
            id: ConsentEventId::from_uuid(Uuid::nil()),
            contact_id: ContactId::from_uuid(Uuid::nil()),
            channel,
            status,
            source: ConsentSource::Agent,
            evidence: None,
            actor: "system".to_owned(),
            at,
        }
    }

    // --- keywords -----------------------------------------------------------------------------

    #[test]
    fn default_keywords_are_twilios_and_valid() {
        let c = KeywordConfig::default();
        assert_eq!(
            c.opt_out,
            [
                "STOP",
                "STOPALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "END",
                "QUIT",
                "REVOKE",
                "OPTOUT"
            ]
        );
        assert_eq!(c.opt_in, ["START", "UNSTOP", "YES"]);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn keyword_config_validation() {
        let long = "A".repeat(33);
        let just_fits = "A".repeat(32);
        let table: Vec<(KeywordConfig, Vec<(String, String)>)> = vec![
            (config(&["STOP"], &[]), pairs(&[])),
            (config(&["ARRÊT", "ALTO", "STOP2"], &["SÍ"]), pairs(&[])),
            (config(&[just_fits.as_str()], &[]), pairs(&[])),
            (config(&[], &["START"]), pairs(&[("opt_out", "required")])),
            (
                config(&["STOP", "END", "STOP PLEASE"], &[]),
                pairs(&[("opt_out[2]", "invalid_keyword")]),
            ),
            (
                config(&["STOP", ""], &[" YES"]),
                pairs(&[
                    ("opt_out[1]", "invalid_keyword"),
                    ("opt_in[0]", "invalid_keyword"),
                ]),
            ),
            (
                config(&["STOP!"], &["START-NOW"]),
                pairs(&[
                    ("opt_out[0]", "invalid_keyword"),
                    ("opt_in[0]", "invalid_keyword"),
                ]),
            ),
            (
                config(&[long.as_str()], &[]),
                pairs(&[("opt_out[0]", "invalid_keyword")]),
            ),
            (
                config(&["STOP", "END"], &["START", "end"]),
                pairs(&[("opt_in[1]", "conflicting_keyword")]),
            ),
            (
                config(&[], &["Q W"]),
                pairs(&[("opt_in[0]", "invalid_keyword"), ("opt_out", "required")]),
            ),
        ];
        for (c, expected) in table {
            assert_eq!(codes(c.validate()), expected, "{c:?}");
        }
    }

    #[test]
    fn keyword_config_serde_fills_missing_lists_with_defaults() {
        let c: KeywordConfig = serde_json::from_str(r#"{"opt_in":["SI"]}"#).unwrap();
        assert_eq!(c.opt_out, KeywordConfig::default().opt_out);
        assert_eq!(c.opt_in, ["SI"]);
        let back: KeywordConfig =
            serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn only_keywords_and_answers_could_change_consent() {
        let keywords = KeywordConfig::default();
        for text in ["STOP", "stop!", "Yes", " no. ", "START"] {
            assert!(could_change_consent(text, &keywords), "{text}");
        }
        for text in ["Is my order on its way?", "yes please call me", ""] {
            assert!(!could_change_consent(text, &keywords), "{text}");
        }
        // Whatever could change it is exactly what outcome_of_reply or a keyword acts on.
        for text in ["yes", "NO", "unsubscribe", "hello"] {
            let acted = outcome_of_reply(ConsentStatus::Requested, text, &keywords).is_some()
                || keywords.classify(text).is_some();
            assert_eq!(acted, could_change_consent(text, &keywords), "{text}");
        }
    }

    #[test]
    fn classify_table() {
        use KeywordIntent::*;
        let c = KeywordConfig::default();
        let table = [
            ("STOP", Some(OptOut)),
            ("stop", Some(OptOut)),
            ("  Stop \n", Some(OptOut)),
            ("STOP.", Some(OptOut)),
            ("stop!!", Some(OptOut)),
            ("Stop !", Some(OptOut)),
            ("unsubscribe", Some(OptOut)),
            ("StopAll", Some(OptOut)),
            ("cancel", Some(OptOut)),
            ("end", Some(OptOut)),
            ("quit", Some(OptOut)),
            ("revoke", Some(OptOut)),
            ("optout", Some(OptOut)),
            ("START", Some(OptIn)),
            ("unstop", Some(OptIn)),
            ("Yes", Some(OptIn)),
            ("yes!", Some(OptIn)),
            ("\tYES.\u{a0}", Some(OptIn)),
            ("STOP PLEASE", None),
            ("please stop", None),
            ("S T O P", None),
            ("stopp", None),
            ("yes please", None),
            ("!stop", None),
            ("HELP", None),
            ("", None),
            ("   ", None),
            ("!!!", None),
            ("no", None),
        ];
        for (text, expected) in table {
            assert_eq!(c.classify(text), expected, "{text:?}");
        }
    }

    #[test]
    fn classify_uses_the_accounts_words_and_prefers_opt_out() {
        let c = config(&["ARRÊT", "alto"], &["SÍ"]);
        assert_eq!(c.classify("arrêt"), Some(KeywordIntent::OptOut));
        assert_eq!(c.classify("ALTO!"), Some(KeywordIntent::OptOut));
        assert_eq!(c.classify("sí"), Some(KeywordIntent::OptIn));
        assert_eq!(
            c.classify("¿Sí?"),
            None,
            "leading marks are part of the message"
        );
        assert_eq!(c.classify("Sí?"), Some(KeywordIntent::OptIn));
        assert_eq!(
            c.classify("STOP"),
            None,
            "defaults do not apply once replaced"
        );

        let both = config(&["YES"], &["YES"]);
        assert_eq!(both.classify("yes"), Some(KeywordIntent::OptOut));

        let empty_word = config(&[""], &[""]);
        assert_eq!(empty_word.classify(""), None);
        assert_eq!(empty_word.classify(" . "), None);
    }

    #[test]
    fn apply_keyword_table() {
        use ConsentStatus::*;
        use KeywordIntent::*;
        let table = [
            (None, OptOut, Some(OptedOut)),
            (Requested, OptOut, Some(OptedOut)),
            (OptedIn, OptOut, Some(OptedOut)),
            (OptedOut, OptOut, Option::None),
            (None, OptIn, Option::None),
            (Requested, OptIn, Some(OptedIn)),
            (OptedIn, OptIn, Option::None),
            (OptedOut, OptIn, Some(OptedIn)),
        ];
        for (current, intent, expected) in table {
            assert_eq!(
                apply_keyword(current, intent),
                expected,
                "{current:?} {intent:?}"
            );
        }
    }

    // --- the ledger ---------------------------------------------------------------------------

    #[test]
    fn current_status_table() {
        use Channel::*;
        use ConsentStatus::*;
        let t0 = datetime!(2026-03-01 10:00 UTC);
        let t1 = datetime!(2026-03-02 10:00 UTC);
        assert_eq!(current_status(&[], Whatsapp), None);

        let events = [
            event(Whatsapp, Requested, t0),
            event(Sms, OptedIn, t0),
            event(Whatsapp, OptedIn, t1),
            event(Sms, OptedOut, t1),
        ];
        assert_eq!(current_status(&events, Whatsapp), OptedIn);
        assert_eq!(current_status(&events, Sms), OptedOut);
        assert_eq!(current_status(&events, Messenger), None);

        // An entry appended later with an earlier clock reading does not override.
        let skewed = [event(Sms, OptedOut, t1), event(Sms, OptedIn, t0)];
        assert_eq!(current_status(&skewed, Sms), OptedOut);

        // Same instant: the later entry in the slice wins.
        let tied = [event(Sms, OptedIn, t0), event(Sms, OptedOut, t0)];
        assert_eq!(current_status(&tied, Sms), OptedOut);
        let tied = [event(Sms, OptedOut, t0), event(Sms, OptedIn, t0)];
        assert_eq!(current_status(&tied, Sms), OptedIn);

        // The same instant in another offset is the same instant.
        let offsets = [
            event(Sms, OptedIn, datetime!(2026-03-01 12:00 +02:00)),
            event(Sms, OptedOut, t0),
        ];
        assert_eq!(current_status(&offsets, Sms), OptedOut);
    }

    #[test]
    fn validate_manual_change_table() {
        use ConsentSource::*;
        use ConsentStatus::*;
        let long = "x".repeat(2_001);
        let fits = "x".repeat(2_000);
        type Case<'a> = (
            ConsentStatus,
            ConsentSource,
            Option<&'a str>,
            Vec<(String, String)>,
        );
        let table: Vec<Case> = vec![
            (
                OptedIn,
                Website,
                Some("https://example.com/form/1"),
                pairs(&[]),
            ),
            (OptedIn, Ivr, Some("call CA123"), pairs(&[])),
            (OptedIn, Ad, Some("lead 42"), pairs(&[])),
            (OptedIn, Import, Some("contacts-2026.csv"), pairs(&[])),
            (OptedIn, Api, Some("crm:991"), pairs(&[])),
            (OptedIn, Api, Some(fits.as_str()), pairs(&[])),
            (
                OptedIn,
                Agent,
                Some("customer asked on the phone, call 2026-11-22 10:04"),
                pairs(&[]),
            ),
            (
                OptedIn,
                Agent,
                Option::None,
                pairs(&[("evidence", "evidence_required")]),
            ),
            (
                OptedIn,
                WhatsappThread,
                Some("yes"),
                pairs(&[("source", "reserved_source")]),
            ),
            (OptedOut, Website, Option::None, pairs(&[])),
            (OptedOut, Api, Option::None, pairs(&[])),
            (Requested, Agent, Option::None, pairs(&[])),
            (Requested, Api, Option::None, pairs(&[])),
            (
                OptedIn,
                Website,
                Option::None,
                pairs(&[("evidence", "evidence_required")]),
            ),
            (
                OptedIn,
                Import,
                Some("   "),
                pairs(&[("evidence", "evidence_required")]),
            ),
            (
                OptedIn,
                Ivr,
                Some(""),
                pairs(&[("evidence", "evidence_required")]),
            ),
            (
                None,
                Agent,
                Option::None,
                pairs(&[("status", "invalid_status")]),
            ),
            (
                OptedOut,
                Keyword,
                Some("STOP"),
                pairs(&[("source", "reserved_source")]),
            ),
            (
                OptedOut,
                Provider,
                Option::None,
                pairs(&[("source", "reserved_source")]),
            ),
            (
                OptedOut,
                Agent,
                Some(long.as_str()),
                pairs(&[("evidence", "too_long")]),
            ),
            (
                OptedIn,
                Api,
                Some(long.as_str()),
                pairs(&[("evidence", "too_long")]),
            ),
            (
                None,
                Keyword,
                Option::None,
                pairs(&[("status", "invalid_status"), ("source", "reserved_source")]),
            ),
        ];
        for (status, source, evidence, expected) in table {
            assert_eq!(
                codes(validate_manual_change(status, source, evidence)),
                expected,
                "{status:?} {source:?} {evidence:?}"
            );
        }
    }

    #[test]
    fn validate_manual_change_over_every_status_and_source() {
        for status in STATUSES {
            for source in SOURCES {
                let ok_with_evidence =
                    validate_manual_change(status, source, Some("proof")).is_ok();
                let reserved = matches!(
                    source,
                    ConsentSource::Keyword
                        | ConsentSource::Provider
                        | ConsentSource::WhatsappThread
                );
                assert_eq!(
                    ok_with_evidence,
                    status != ConsentStatus::None && !reserved,
                    "{status:?} {source:?}"
                );
            }
        }
    }

    // --- the opt-in request -------------------------------------------------------------------

    #[test]
    fn resend_window_is_a_day() {
        assert_eq!(OPT_IN_RESEND_AFTER, time::Duration::hours(24));
    }

    #[test]
    fn check_opt_in_request_table() {
        use ConsentStatus::*;
        let last = datetime!(2026-03-01 10:00 UTC);
        let retry_at = datetime!(2026-03-02 10:00 UTC);
        let soon = Err(OptInRequestRefusal::TooSoon { retry_at });
        let table = [
            (None, Option::None, false, last, Ok(())),
            (None, Some(last), false, last, Ok(())),
            (Requested, Option::None, false, last, Ok(())),
            (Requested, Some(last), false, last, soon.clone()),
            (
                Requested,
                Some(last),
                false,
                datetime!(2026-03-02 09:59:59.999 UTC),
                soon.clone(),
            ),
            (Requested, Some(last), false, retry_at, Ok(())),
            (
                Requested,
                Some(last),
                false,
                datetime!(2026-03-05 00:00 UTC),
                Ok(()),
            ),
            // A request "from the future" (clock skew) still blocks until a day after it.
            (
                Requested,
                Some(last),
                false,
                datetime!(2026-03-01 09:00 UTC),
                soon,
            ),
            (
                OptedIn,
                Option::None,
                false,
                last,
                Err(OptInRequestRefusal::AlreadyOptedIn),
            ),
            (
                OptedOut,
                Some(last),
                false,
                datetime!(2026-04-01 00:00 UTC),
                Err(OptInRequestRefusal::OptedOut),
            ),
            (
                None,
                Option::None,
                true,
                last,
                Err(OptInRequestRefusal::NoWhatsapp),
            ),
            (
                Requested,
                Some(last),
                true,
                last,
                Err(OptInRequestRefusal::NoWhatsapp),
            ),
            (
                OptedOut,
                Option::None,
                true,
                last,
                Err(OptInRequestRefusal::OptedOut),
            ),
        ];
        for (status, last_request_at, no_whatsapp, now, expected) in table {
            assert_eq!(
                check_opt_in_request(status, last_request_at, no_whatsapp, now),
                expected,
                "{status:?} {last_request_at:?} {no_whatsapp} {now}"
            );
        }
    }

    #[test]
    fn check_opt_in_request_saturates_at_the_end_of_time() {
        let last = PrimitiveDateTime::MAX.assume_utc();
        assert_eq!(
            check_opt_in_request(ConsentStatus::Requested, Some(last), false, last),
            Err(OptInRequestRefusal::TooSoon { retry_at: last })
        );
    }

    #[test]
    fn refusal_codes_reasons_and_json() {
        let retry_at = datetime!(2026-03-02 10:00 UTC);
        let table = [
            (OptInRequestRefusal::AlreadyOptedIn, "already_opted_in"),
            (OptInRequestRefusal::OptedOut, "opted_out"),
            (
                OptInRequestRefusal::TooSoon { retry_at },
                "opt_in_request_too_soon",
            ),
            (OptInRequestRefusal::NoWhatsapp, "no_whatsapp"),
        ];
        for (refusal, code) in table {
            assert_eq!(refusal.code(), code);
            let json = serde_json::to_value(&refusal).unwrap();
            assert_eq!(json["code"], code, "the JSON tag is the stable code");
            let reason = refusal.reason();
            assert!(reason.ends_with('.'), "{reason}");
            assert_eq!(refusal.to_string(), reason);
        }
        let too_soon = OptInRequestRefusal::TooSoon { retry_at };
        assert_eq!(
            serde_json::to_value(&too_soon).unwrap(),
            serde_json::json!({"code": "opt_in_request_too_soon", "retry_at": "2026-03-02T10:00:00Z"})
        );
        assert!(too_soon.reason().contains("2026-03-02T10:00:00Z"));
        assert!(OptInRequestRefusal::OptedOut.reason().contains("YES"));
        assert!(OptInRequestRefusal::NoWhatsapp.reason().contains("SMS"));
    }

    #[test]
    fn outcome_of_reply_table() {
        use ConsentStatus::*;
        use OptInOutcome::*;
        let defaults = KeywordConfig::default();
        let table = [
            (Requested, "yes", Some(Accepted)),
            (Requested, " YES! ", Some(Accepted)),
            (Requested, "start", Some(Accepted)),
            (Requested, "unstop", Some(Accepted)),
            (Requested, "no", Some(Rejected)),
            (Requested, "No.", Some(Rejected)),
            (Requested, "STOP", Some(Rejected)),
            (Requested, "unsubscribe", Some(Rejected)),
            (Requested, "maybe later", Option::None),
            (Requested, "yes but only on weekdays", Option::None),
            (Requested, "", Option::None),
            (None, "yes", Option::None),
            (OptedIn, "no", Option::None),
            (OptedOut, "yes", Option::None),
            (OptedOut, "stop", Option::None),
        ];
        for (status, reply, expected) in table {
            assert_eq!(
                outcome_of_reply(status, reply, &defaults),
                expected,
                "{status:?} {reply:?}"
            );
        }

        // "yes" and "no" answer the request even where the account uses other words.
        let spanish = config(&["ALTO"], &["SI"]);
        assert_eq!(outcome_of_reply(Requested, "yes", &spanish), Some(Accepted));
        assert_eq!(outcome_of_reply(Requested, "si", &spanish), Some(Accepted));
        assert_eq!(outcome_of_reply(Requested, "no", &spanish), Some(Rejected));
        assert_eq!(
            outcome_of_reply(Requested, "alto", &spanish),
            Some(Rejected)
        );

        // A "no" never becomes consent, whatever the configuration says.
        let odd = config(&["STOP"], &["NO"]);
        assert_eq!(outcome_of_reply(Requested, "no", &odd), Some(Rejected));
        // An account that made "yes" an opt-out word gets what it asked for.
        let odder = config(&["YES"], &["START"]);
        assert_eq!(outcome_of_reply(Requested, "yes", &odder), Some(Rejected));
    }

    #[test]
    fn status_after_and_confirmation_text_table() {
        use OptInOutcome::*;
        let table = [
            (NoWhatsapp, Option::None, false),
            (Accepted, Some(ConsentStatus::OptedIn), true),
            (Rejected, Some(ConsentStatus::OptedOut), true),
            (NoAnswer, Option::None, false),
        ];
        for (outcome, status, has_text) in table {
            assert_eq!(status_after(outcome), status, "{outcome:?}");
            assert_eq!(
                confirmation_text(outcome).is_some(),
                has_text,
                "{outcome:?}"
            );
        }
        let rejected = confirmation_text(Rejected).unwrap_or_default();
        assert!(rejected.contains("not receive"), "{rejected}");
        assert!(rejected.contains("YES"), "{rejected}");
        // What the rejection text promises must work with the default keywords.
        assert_eq!(
            KeywordConfig::default()
                .classify("YES")
                .and_then(|intent| apply_keyword(ConsentStatus::OptedOut, intent)),
            Some(ConsentStatus::OptedIn)
        );
        assert!(confirmation_text(Accepted).is_some_and(|t| t.len() < 160));
        // The contact is told something exactly when their standing changes.
        for outcome in OUTCOMES {
            assert_eq!(
                status_after(outcome).is_some(),
                confirmation_text(outcome).is_some(),
                "{outcome:?}"
            );
        }
    }

    // --- properties ---------------------------------------------------------------------------

    fn status() -> impl Strategy<Value = ConsentStatus> {
        proptest::sample::select(STATUSES.to_vec())
    }

    fn channel() -> impl Strategy<Value = Channel> {
        proptest::sample::select(Channel::ALL.to_vec())
    }

    /// Any instant the `time` crate can represent without its `large-dates` feature.
    fn instant() -> impl Strategy<Value = OffsetDateTime> {
        let min = PrimitiveDateTime::MIN.assume_utc();
        let max = PrimitiveDateTime::MAX.assume_utc();
        let anywhere = (
            min.unix_timestamp()..=max.unix_timestamp(),
            0u32..1_000_000_000,
        )
            .prop_map(|(secs, nanos)| {
                OffsetDateTime::from_unix_timestamp(secs)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
                    .replace_nanosecond(nanos)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            });
        prop_oneof![8 => anywhere, 1 => Just(min), 1 => Just(max)]
    }

    /// A last request time and a "now" that is either anywhere or within two days of it, so
    /// the 24-hour boundary is actually exercised.
    fn last_and_now() -> impl Strategy<Value = (OffsetDateTime, OffsetDateTime)> {
        let two_days_ms = 2 * 24 * 3_600 * 1_000i64;
        prop_oneof![
            (instant(), instant()),
            (instant(), -two_days_ms..=two_days_ms).prop_map(|(last, ms)| {
                let now = last
                    .checked_add(time::Duration::milliseconds(ms))
                    .unwrap_or(last);
                (last, now)
            }),
            (instant(), -2i64..=2).prop_map(|(last, ns)| {
                let now = last
                    .checked_add(OPT_IN_RESEND_AFTER + time::Duration::nanoseconds(ns))
                    .unwrap_or(last);
                (last, now)
            }),
        ]
    }

    fn ascii_case_mix(word: &str, mask: u64) -> String {
        word.chars()
            .enumerate()
            .map(|(i, c)| {
                if mask >> (i % 64) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn too_soon_iff_requested_and_within_a_day(
            status in status(),
            (last, now) in last_and_now(),
        ) {
            let result = check_opt_in_request(status, Some(last), false, now);
            let retry_at = last.checked_add(OPT_IN_RESEND_AFTER);
            // An unrepresentable retry time lies after every representable "now".
            let within = retry_at.is_none_or(|r| now < r);
            let expect_too_soon = status == ConsentStatus::Requested && within;
            match &result {
                Err(OptInRequestRefusal::TooSoon { retry_at: got }) => {
                    prop_assert!(expect_too_soon);
                    if let Some(r) = retry_at {
                        prop_assert_eq!(*got, r);
                    }
                    if retry_at.is_some() {
                        prop_assert!(now < *got);
                    }
                }
                other => {
                    prop_assert!(!expect_too_soon, "{:?}", other);
                    let expected = match status {
                        ConsentStatus::OptedIn => Err(OptInRequestRefusal::AlreadyOptedIn),
                        ConsentStatus::OptedOut => Err(OptInRequestRefusal::OptedOut),
                        ConsentStatus::None | ConsentStatus::Requested => Ok(()),
                    };
                    prop_assert_eq!(other, &expected);
                }
            }
        }

        #[test]
        fn check_opt_in_request_never_panics_and_no_whatsapp_is_never_too_soon(
            status in status(),
            last in proptest::option::of(instant()),
            no_whatsapp in any::<bool>(),
            now in instant(),
        ) {
            let result = check_opt_in_request(status, last, no_whatsapp, now);
            if no_whatsapp {
                prop_assert!(result.is_err());
                let too_soon = matches!(result, Err(OptInRequestRefusal::TooSoon { .. }));
                prop_assert!(!too_soon);
            }
            if last.is_none() && !no_whatsapp {
                prop_assert_eq!(
                    result.is_ok(),
                    matches!(status, ConsentStatus::None | ConsentStatus::Requested)
                );
            }
            if let Err(refusal) = result {
                prop_assert!(!refusal.reason().is_empty());
            }
        }

        #[test]
        fn classify_ignores_surrounding_whitespace_and_letter_case(
            keyword in proptest::sample::select(
                ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE",
                 "OPTOUT", "START", "UNSTOP", "YES"].to_vec()
            ),
            mask in any::<u64>(),
            before in "[ \t\r\n\u{a0}]{0,4}",
            after in "[ \t\r\n\u{a0}]{0,4}",
            marks in "[.!?]{0,3}",
        ) {
            let c = KeywordConfig::default();
            let plain = c.classify(keyword);
            prop_assert!(plain.is_some());
            let dressed = format!("{before}{}{marks}{after}", ascii_case_mix(keyword, mask));
            prop_assert_eq!(c.classify(&dressed), plain);
        }

        #[test]
        fn classify_of_any_text_is_invariant_under_ascii_case_and_padding(
            text in any::<String>(),
            before in "\\s{0,3}",
            after in "\\s{0,3}",
        ) {
            let c = KeywordConfig::default();
            let expected = c.classify(&text);
            prop_assert_eq!(c.classify(&text.to_ascii_uppercase()), expected);
            prop_assert_eq!(c.classify(&text.to_ascii_lowercase()), expected);
            prop_assert_eq!(c.classify(&format!("{before}{text}{after}")), expected);
        }

        #[test]
        fn a_keyword_with_more_words_never_triggers(
            keyword in proptest::sample::select(["STOP", "START", "YES", "QUIT"].to_vec()),
            rest in "[A-Za-z]{1,8}",
        ) {
            let c = KeywordConfig::default();
            prop_assert_eq!(c.classify(&format!("{keyword} {rest}")), None);
            prop_assert_eq!(c.classify(&format!("{rest} {keyword}")), None);
        }

        #[test]
        fn opt_out_keyword_yields_opted_out_or_nothing(current in status()) {
            let next = apply_keyword(current, KeywordIntent::OptOut);
            prop_assert!(matches!(next, None | Some(ConsentStatus::OptedOut)));
            prop_assert_eq!(next.is_none(), current == ConsentStatus::OptedOut);
        }

        #[test]
        fn opt_in_keyword_is_never_consent_from_nothing(current in status()) {
            let next = apply_keyword(current, KeywordIntent::OptIn);
            prop_assert!(matches!(next, None | Some(ConsentStatus::OptedIn)));
            if matches!(current, ConsentStatus::None | ConsentStatus::OptedIn) {
                prop_assert_eq!(next, None);
            }
        }

        #[test]
        fn a_keyword_reply_to_a_request_agrees_with_apply_keyword(
            keyword in proptest::sample::select(
                ["STOP", "UNSUBSCRIBE", "QUIT", "START", "UNSTOP", "YES"].to_vec()
            ),
        ) {
            let c = KeywordConfig::default();
            let intent = c.classify(keyword);
            let outcome = outcome_of_reply(ConsentStatus::Requested, keyword, &c);
            prop_assert!(intent.is_some() && outcome.is_some());
            prop_assert_eq!(
                outcome.and_then(status_after),
                intent.and_then(|i| apply_keyword(ConsentStatus::Requested, i))
            );
        }

        #[test]
        fn current_status_is_the_status_of_the_last_event_for_the_channel(
            raw in proptest::collection::vec((channel(), status(), 0i64..6), 0..24),
            wanted in channel(),
        ) {
            let base = datetime!(2026-01-01 00:00 UTC);
            // Few distinct times, so ties and out-of-order entries are common.
            let events: Vec<ConsentEvent> = raw
                .iter()
                .map(|(ch, st, minute)| event(*ch, *st, base + time::Duration::minutes(*minute)))
                .collect();
            let mut ordered: Vec<&ConsentEvent> =
                events.iter().filter(|e| e.channel == wanted).collect();
            // A stable sort keeps slice order among equal times, so the last one is the latest.
            ordered.sort_by_key(|e| e.at);
            let expected = ordered.last().map_or(ConsentStatus::None, |e| e.status);
            prop_assert_eq!(current_status(&events, wanted), expected);
        }

        #[test]
        fn keyword_config_validation_never_panics(
            opt_out in proptest::collection::vec(any::<String>(), 0..4),
            opt_in in proptest::collection::vec(any::<String>(), 0..4),
            text in any::<String>(),
        ) {
            let c = KeywordConfig { opt_out, opt_in };
            let _ = c.validate();
            let _ = c.classify(&text);
            let _ = outcome_of_reply(ConsentStatus::Requested, &text, &c);
        }

        #[test]
        fn valid_configs_classify_their_own_words(
            words in proptest::collection::btree_set("[A-Z][A-Z0-9]{0,9}", 2..8),
        ) {
            let words: Vec<String> = words.into_iter().collect();
            let (opt_out, opt_in) = words.split_at(words.len() / 2);
            let c = KeywordConfig { opt_out: opt_out.to_vec(), opt_in: opt_in.to_vec() };
            prop_assert_eq!(c.validate(), Ok(()));
            for w in opt_out {
                prop_assert_eq!(c.classify(&w.to_lowercase()), Some(KeywordIntent::OptOut));
            }
            for w in opt_in {
                prop_assert_eq!(c.classify(w), Some(KeywordIntent::OptIn));
            }
        }

        #[test]
        fn manual_opt_in_evidence_rule(
            status in status(),
            source in proptest::sample::select(SOURCES.to_vec()),
            evidence in proptest::option::of("\\PC{0,40}"),
        ) {
            let errors = codes(validate_manual_change(status, source, evidence.as_deref()));
            // Every manual opt-in must be provable, whatever its source.
            let wants_evidence = status == ConsentStatus::OptedIn;
            let has = evidence.as_deref().is_some_and(|e| !e.trim().is_empty());
            prop_assert_eq!(
                errors.iter().any(|(_, code)| code == "evidence_required"),
                wants_evidence && !has
            );
        }
    }
}
