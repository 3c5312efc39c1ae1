//! Data-loss prevention (R8.2): rules that find payment card numbers, IBANs, US social security
//! numbers or custom patterns in message text, and either redact them or block the message.

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

use regex::RegexBuilder;
use serde::{Deserialize, Serialize};

use crate::validation::{required_text, FieldError, ValidationErrors};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DlpKind {
    /// 13 to 19 digits (spaces or dashes allowed between groups) passing the Luhn check.
    PaymentCard,
    /// An IBAN passing the ISO 13616 mod-97 check.
    Iban,
    /// A US social security number (AAA-GG-SSSS, with the invalid ranges excluded).
    UsSsn,
    /// A regular expression of the account's own.
    Custom,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DlpAction {
    /// Send with each finding replaced; the original never reaches the provider.
    Redact,
    /// Refuse the message with `dlp_blocked`.
    Block,
}

/// One rule as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DlpRule {
    pub name: String,
    pub kind: DlpKind,
    /// The regular expression, for `custom` rules only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    pub action: DlpAction,
    /// Whether inbound text is scanned too (outbound always is).
    #[serde(default)]
    pub inbound: bool,
}

/// The longest rule name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The most rules one set may hold: every outbound text runs through all of them.
pub const MAX_RULES: usize = 100;
/// The longest custom pattern, in characters.
pub const MAX_PATTERN_CHARS: usize = 1024;
/// The compiled size a custom pattern may reach. Counted repetitions such as `\w{1000}{1000}`
/// are short to write but compile to enormous programs; the regex crate refuses them at this
/// limit instead of spending memory and time on them for every message.
pub const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Which way a text travels; inbound text is only scanned by rules that opt in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanDirection {
    Outbound,
    Inbound,
}

/// One place in a text where a rule matched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DlpFinding {
    /// The rule's name, trimmed as it was compiled.
    pub rule: String,
    pub kind: DlpKind,
    pub action: DlpAction,
    /// Byte offset into the scanned text; always on a char boundary.
    pub start: usize,
    /// Byte offset just past the match; always on a char boundary.
    pub end: usize,
}

/// What a scan found and what should happen to the text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DlpOutcome {
    /// The findings, sorted by start. Where matches overlapped only one is listed (see
    /// [`DlpRuleSet::scan`]), so each byte of the text belongs to at most one finding.
    pub findings: Vec<DlpFinding>,
    /// The name of the first rule, in configured order, with action `block` that matched;
    /// when set, the message must be refused with `dlp_blocked`.
    pub blocked_by: Option<String>,
    /// The text with every redact-finding replaced by `[redacted <label>]`; `None` when no
    /// redact rule matched.
    pub redacted: Option<String>,
}

impl DlpOutcome {
    pub fn is_blocked(&self) -> bool {
        self.blocked_by.is_some()
    }
}

#[derive(Clone, Debug)]
struct CompiledRule {
    name: String,
    kind: DlpKind,
    action: DlpAction,
    inbound: bool,
    /// Present exactly for `custom` rules.
    regex: Option<regex::Regex>,
}

/// A validated, compiled set of rules, ready to scan text. Cloning is cheap: compiled regular
/// expressions share their programs.
#[derive(Clone, Debug, Default)]
pub struct DlpRuleSet {
    rules: Vec<CompiledRule>,
}

impl DlpRuleSet {
    /// A set that finds nothing, for accounts without rules.
    pub fn empty() -> DlpRuleSet {
        DlpRuleSet::default()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Validates every rule and reports all problems together, so an administrator fixes a
    /// rule list in one round trip. Names are compared case-insensitively for uniqueness,
    /// because `blocked_by` names the rule to people and `Cards` next to `cards` would be
    /// ambiguous.
    pub fn compile(rules: &[DlpRule]) -> Result<DlpRuleSet, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if rules.len() > MAX_RULES {
            errors.push(FieldError::new(
                "rules",
                "too_many",
                format!("at most {MAX_RULES} rules are allowed"),
            ));
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let name_field = format!("rules[{i}].name");
            let name = errors.check(required_text(&name_field, &rule.name, MAX_NAME_CHARS));
            if let Some(name) = &name {
                match seen.entry(name.to_lowercase()) {
                    Entry::Occupied(first) => errors.push(FieldError::new(
                        name_field.as_str(),
                        "duplicate_name",
                        format!("`{name_field}` repeats the name of rules[{}]", first.get()),
                    )),
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                    }
                }
            }
            let pattern_field = format!("rules[{i}].pattern");
            let regex = match (rule.kind, rule.pattern.as_deref()) {
                (DlpKind::Custom, None) => {
                    errors.push(FieldError::required(pattern_field));
                    None
                }
                (DlpKind::Custom, Some(pattern)) => {
                    errors.check(compile_pattern(&pattern_field, pattern))
                }
                (_, None) => None,
                (_, Some(_)) => {
                    errors.push(FieldError::new(
                        pattern_field.as_str(),
                        "not_allowed",
                        format!("`{pattern_field}` is only allowed for custom rules"),
                    ));
                    None
                }
            };
            if let Some(name) = name {
                compiled.push(CompiledRule {
                    name,
                    kind: rule.kind,
                    action: rule.action,
                    inbound: rule.inbound,
                    regex,
                });
            }
        }
        errors.finish(|| DlpRuleSet { rules: compiled })
    }

    /// Scans `text` with every rule that applies to `direction`.
    ///
    /// Findings of different rules may overlap (a custom pattern may cover a card number).
    /// The reported findings are made non-overlapping: the earliest start wins, then the
    /// longest, then `block` over `redact`, then the earlier rule. Two things deliberately
    /// look at every match, including those that lost an overlap, because a lost overlap must
    /// never weaken protection: `blocked_by`, and the redacted text, which replaces the union
    /// of all redact matches so no tail of a partly covered number survives.
    pub fn scan(&self, text: &str, direction: ScanDirection) -> DlpOutcome {
        let mut cards = None;
        let mut ibans = None;
        let mut ssns = None;
        // (rule index, start, end)
        let mut raw: Vec<(usize, usize, usize)> = Vec::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if direction == ScanDirection::Inbound && !rule.inbound {
                continue;
            }
            let spans: &[(usize, usize)] = match rule.kind {
                DlpKind::PaymentCard => cards.get_or_insert_with(|| find_payment_cards(text)),
                DlpKind::Iban => ibans.get_or_insert_with(|| find_ibans(text)),
                DlpKind::UsSsn => ssns.get_or_insert_with(|| find_us_ssns(text)),
                DlpKind::Custom => {
                    if let Some(regex) = &rule.regex {
                        raw.extend(
                            regex
                                .find_iter(text)
                                // An empty match has nothing to redact or report.
                                .filter(|m| m.start() < m.end())
                                .map(|m| (index, m.start(), m.end())),
                        );
                    }
                    &[]
                }
            };
            raw.extend(spans.iter().map(|&(start, end)| (index, start, end)));
        }

        let rule = |index: usize| &self.rules[index];
        raw.sort_by_key(|&(index, start, end)| {
            (
                start,
                Reverse(end),
                rule(index).action != DlpAction::Block,
                index,
            )
        });

        let blocked_by = raw
            .iter()
            .filter(|&&(index, _, _)| rule(index).action == DlpAction::Block)
            .map(|&(index, _, _)| index)
            .min()
            .map(|index| rule(index).name.clone());

        let mut findings: Vec<DlpFinding> = Vec::new();
        for &(index, start, end) in &raw {
            if findings.last().is_some_and(|last| start < last.end) {
                continue;
            }
            let r = rule(index);
            findings.push(DlpFinding {
                rule: r.name.clone(),
                kind: r.kind,
                action: r.action,
                start,
                end,
            });
        }

        let redactions: Vec<(usize, usize, usize)> = raw
            .iter()
            .copied()
            .filter(|&(index, _, _)| rule(index).action == DlpAction::Redact)
            .collect();
        let redacted = if redactions.is_empty() {
            None
        } else {
            Some(redact(text, &redactions, |index| replacement(rule(index))))
        };

        DlpOutcome {
            findings,
            blocked_by,
            redacted,
        }
    }
}

/// The replacement for one redaction: `[redacted payment card]`, `[redacted IBAN]`,
/// `[redacted SSN]`, or `[redacted <rule name>]` for custom rules. It names what was removed
/// so the recipient understands the gap, and carries no digits of the original (not even the
/// last four), so it can neither leak anything nor be detected again on a re-scan.
fn replacement(rule: &CompiledRule) -> String {
    let label = match rule.kind {
        DlpKind::PaymentCard => "payment card",
        DlpKind::Iban => "IBAN",
        DlpKind::UsSsn => "SSN",
        DlpKind::Custom => rule.name.as_str(),
    };
    format!("[redacted {label}]")
}

/// Replaces every span in `spans` (sorted by start, longest first). Overlapping spans merge
/// into one replacement, labelled by the span that starts it.
fn redact(text: &str, spans: &[(usize, usize, usize)], label: impl Fn(usize) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied_to = 0;
    let mut i = 0;
    while i < spans.len() {
        let (index, start, mut end) = spans[i];
        i += 1;
        while i < spans.len() && spans[i].1 < end {
            end = end.max(spans[i].2);
            i += 1;
        }
        // Every offset comes from a detector or the regex crate and sits on a char boundary;
        // `get` keeps a broken offset from ever becoming a panic.
        out.push_str(text.get(copied_to..start).unwrap_or_default());
        out.push_str(&label(index));
        copied_to = end;
    }
    out.push_str(text.get(copied_to..).unwrap_or_default());
    out
}

fn compile_pattern(field: &str, pattern: &str) -> Result<regex::Regex, FieldError> {
    if pattern.trim().is_empty() {
        return Err(FieldError::required(field));
    }
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(FieldError::new(
            field,
            "too_long",
            format!("`{field}` must be at most {MAX_PATTERN_CHARS} characters"),
        ));
    }
    let invalid = |why: String| FieldError::new(field, "invalid_pattern", why);
    let regex = RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|error| match error {
            regex::Error::CompiledTooBig(_) => {
                invalid(format!("`{field}` is too large once compiled"))
            }
            regex::Error::Syntax(message) => {
                // The crate's message repeats the pattern with a caret under the problem;
                // its last line is the sentence people need.
                let why = message.lines().last().unwrap_or_default().trim();
                invalid(format!(
                    "`{field}` is not a valid regular expression: {why}"
                ))
            }
            _ => invalid(format!("`{field}` is not a valid regular expression")),
        })?;
    // A pattern that matches empty text matches between every two characters and finds
    // nothing worth redacting; it is always a mistake.
    if regex.is_match("") {
        return Err(invalid(format!("`{field}` must not match empty text")));
    }
    Ok(regex)
}

/// The Luhn (mod 10) check used by payment card numbers. `digits` must be ASCII digits only;
/// anything else, including an empty string, is not valid.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum = digits.bytes().rev().enumerate().fold(0u32, |sum, (i, b)| {
        let digit = u32::from(b - b'0');
        let value = if i % 2 == 1 {
            let doubled = digit * 2;
            if doubled > 9 {
                doubled - 9
            } else {
                doubled
            }
        } else {
            digit
        };
        (sum + value) % 10
    });
    sum == 0
}

/// Finds payment card numbers: 13 to 19 digits passing the Luhn check, written together or
/// in groups separated by a single space or dash, and not part of a longer number.
///
/// A run of groups (`12 4111 1111 1111 1111`) is searched for windows that start and end on
/// group boundaries, earliest start then longest first, so a card next to other numbers is
/// still found. To keep false positives down:
/// - a window never starts with `0`: no card issuer number does;
/// - a run straight after `+` is a phone number in international form, so no window may start
///   at its first group;
/// - a run joined to other digits by `.` or `,` is part of an amount or a decimal, so no
///   window may start or end at that side.
///
/// Only ASCII digits count, so every offset falls on a char boundary.
pub fn find_payment_cards(text: &str) -> Vec<(usize, usize)> {
    const MIN_DIGITS: usize = 13;
    const MAX_DIGITS: usize = 19;
    let bytes = text.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let is_digit = |i: usize| at(i).is_some_and(|b| b.is_ascii_digit());
    let is_decimal_mark = |i: usize| matches!(at(i), Some(b'.' | b','));

    let mut found = Vec::new();
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_digit(i) {
            i += 1;
            continue;
        }
        // `i` starts a run: whatever came before was not a digit.
        groups.clear();
        let mut j = i;
        loop {
            let group_start = j;
            while is_digit(j) {
                j += 1;
            }
            groups.push((group_start, j));
            if matches!(at(j), Some(b' ' | b'-')) && is_digit(j + 1) {
                j += 1;
            } else {
                break;
            }
        }
        let before = i.checked_sub(1);
        let lead_excluded = before.is_some_and(|b| {
            at(b) == Some(b'+') || (is_decimal_mark(b) && b.checked_sub(1).is_some_and(is_digit))
        });
        let trail_excluded = is_decimal_mark(j) && is_digit(j + 1);
        let last = groups.len() - 1;

        let mut first = 0;
        while first < groups.len() {
            if (first == 0 && lead_excluded) || at(groups[first].0) == Some(b'0') {
                first += 1;
                continue;
            }
            let mut digits = String::with_capacity(MAX_DIGITS + 1);
            let mut best = None;
            for (offset, &(start, end)) in groups[first..].iter().enumerate() {
                digits.push_str(text.get(start..end).unwrap_or_default());
                if digits.len() > MAX_DIGITS {
                    break;
                }
                let group = first + offset;
                if group == last && trail_excluded {
                    break;
                }
                if digits.len() >= MIN_DIGITS && luhn_valid(&digits) {
                    best = Some(group);
                }
            }
            match best {
                Some(end_group) => {
                    found.push((groups[first].0, groups[end_group].1));
                    first = end_group + 1;
                }
                None => first += 1,
            }
        }
        i = j;
    }
    found
}

/// IBAN lengths of the countries in the SWIFT registry that messages are most likely to
/// mention. A known country's IBAN has exactly this length, which rules out most accidental
/// mod-97 passes; other countries are accepted at any length the standard allows.
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"CH", 21),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"EE", 20),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"XK", 20),
];

const IBAN_MIN: usize = 15;
const IBAN_MAX: usize = 34;

fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(code, _)| code.as_slice() == country)
        .map(|&(_, length)| length)
}

/// Checks an IBAN in compact, upper-case form.
fn compact_iban_valid(iban: &[u8]) -> bool {
    let [c1, c2, d1, d2, bban @ ..] = iban else {
        return false;
    };
    if !(IBAN_MIN..=IBAN_MAX).contains(&iban.len())
        || !c1.is_ascii_uppercase()
        || !c2.is_ascii_uppercase()
        || !d1.is_ascii_digit()
        || !d2.is_ascii_digit()
        || !bban
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return false;
    }
    // Check digits are issued as 98 minus a remainder, so 00, 01 and 99 never occur even
    // though they can satisfy the arithmetic.
    if matches!((d1, d2), (b'0', b'0' | b'1') | (b'9', b'9')) {
        return false;
    }
    if iban_length(&[*c1, *c2]).is_some_and(|length| length != iban.len()) {
        return false;
    }
    // ISO 13616: move the first four characters to the end, read letters as 10 to 35, and
    // the number must leave 1 modulo 97. Folding the remainder in as we go keeps it below
    // 97 * 100 + 35, so no big integers are needed.
    let remainder = bban
        .iter()
        .chain([c1, c2, d1, d2])
        .fold(0u32, |remainder, &b| {
            if b.is_ascii_digit() {
                (remainder * 10 + u32::from(b - b'0')) % 97
            } else {
                (remainder * 100 + u32::from(b - b'A') + 10) % 97
            }
        });
    remainder == 1
}

/// Whether `iban` is a valid IBAN: spaces are ignored and letters may be in either case.
pub fn iban_valid(iban: &str) -> bool {
    let compact: Vec<u8> = iban
        .bytes()
        .filter(|&b| b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    compact_iban_valid(&compact)
}

/// Finds IBANs passing the mod-97 check, either compact (`DE89370400440532013000`) or
/// printed in groups of four (`GB82 WEST 1234 5698 7654 32`).
///
/// Only upper-case IBANs are found: both the electronic and the printed form are upper case,
/// and accepting lower case would let hashes and identifiers in running text pass the 1 in 97
/// check far more often. An IBAN must stand alone: it is not preceded or followed by a letter
/// or digit.
pub fn find_ibans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let is_alnum = |i: usize| at(i).is_some_and(|b| b.is_ascii_alphanumeric());
    let is_upper_or_digit =
        |i: usize| at(i).is_some_and(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let token_end = |mut i: usize| {
        while is_alnum(i) {
            i += 1;
        }
        i
    };

    let mut found = Vec::new();
    let mut compact: Vec<u8> = Vec::with_capacity(IBAN_MAX);
    let mut i = 0;
    while i < bytes.len() {
        let starts = at(i).is_some_and(|b| b.is_ascii_uppercase())
            && at(i + 1).is_some_and(|b| b.is_ascii_uppercase())
            && at(i + 2).is_some_and(|b| b.is_ascii_digit())
            && at(i + 3).is_some_and(|b| b.is_ascii_digit())
            && !i.checked_sub(1).is_some_and(is_alnum);
        if !starts {
            i += 1;
            continue;
        }
        let end = token_end(i);
        if end - i != 4 {
            let token = bytes.get(i..end).unwrap_or_default();
            if compact_iban_valid(token) {
                found.push((i, end));
            }
            i = end;
            continue;
        }

        // Printed form: groups of four after single spaces, the last one possibly shorter.
        let mut groups = vec![(i, end)];
        let mut length = 4;
        let mut j = end;
        while length < IBAN_MAX && at(j) == Some(b' ') && is_upper_or_digit(j + 1) {
            let group_end = token_end(j + 1);
            let group_length = group_end - (j + 1);
            if group_length > 4 || !(j + 1..group_end).all(is_upper_or_digit) {
                break;
            }
            groups.push((j + 1, group_end));
            length += group_length;
            j = group_end;
            if group_length < 4 {
                break;
            }
        }
        // The groups may run on into unrelated text (`... 7654 32 OK`), so try the longest
        // candidate first and shorten it a group at a time.
        let mut matched = None;
        for count in (2..=groups.len()).rev() {
            compact.clear();
            for &(start, end) in &groups[..count] {
                compact.extend_from_slice(bytes.get(start..end).unwrap_or_default());
            }
            if compact_iban_valid(&compact) {
                matched = Some(groups[count - 1].1);
                break;
            }
        }
        match matched {
            Some(iban_end) => {
                found.push((i, iban_end));
                i = iban_end;
            }
            None => i = end,
        }
    }
    found
}

/// Finds US social security numbers written `AAA-GG-SSSS`, excluding numbers never issued
/// (area 000, 666 or 900-999, group 00, serial 0000) and numbers inside a longer run of
/// digits or dashed digit groups.
///
/// The dashes are required. Nine bare digits carry no check digit and turn up constantly in
/// messages as order, tracking and phone numbers; flagging them would redact or block far more
/// innocent text than it protects. The dashed form is how an SSN is printed and written.
pub fn find_us_ssns(text: &str) -> Vec<(usize, usize)> {
    const LENGTH: usize = 11;
    let bytes = text.as_bytes();
    let at = |i: usize| bytes.get(i).copied();
    let is_digit = |i: usize| at(i).is_some_and(|b| b.is_ascii_digit());
    let number = |range: std::ops::Range<usize>| {
        range.fold(0u32, |n, i| {
            n * 10 + u32::from(at(i).unwrap_or(b'0').saturating_sub(b'0'))
        })
    };

    let mut found = Vec::new();
    let mut i = 0;
    while i + LENGTH <= bytes.len() {
        let shaped = (0..LENGTH).all(|k| match k {
            3 | 6 => at(i + k) == Some(b'-'),
            _ => is_digit(i + k),
        });
        let joined_before = i.checked_sub(1).is_some_and(|b| {
            is_digit(b) || (at(b) == Some(b'-') && b.checked_sub(1).is_some_and(is_digit))
        });
        let end = i + LENGTH;
        let joined_after = is_digit(end) || (at(end) == Some(b'-') && is_digit(end + 1));
        if !shaped || joined_before || joined_after {
            i += 1;
            continue;
        }
        let area = number(i..i + 3);
        let group = number(i + 4..i + 6);
        let serial = number(i + 7..i + 11);
        if area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 {
            found.push((i, end));
            i = end;
        } else {
            i += 1;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(name: &str, kind: DlpKind, action: DlpAction) -> DlpRule {
        DlpRule {
            name: name.to_owned(),
            kind,
            pattern: None,
            action,
            inbound: false,
        }
    }

    fn custom(name: &str, pattern: &str, action: DlpAction) -> DlpRule {
        DlpRule {
            pattern: Some(pattern.to_owned()),
            ..rule(name, DlpKind::Custom, action)
        }
    }

    fn inbound(rule: DlpRule) -> DlpRule {
        DlpRule {
            inbound: true,
            ..rule
        }
    }

    fn set(rules: &[DlpRule]) -> DlpRuleSet {
        DlpRuleSet::compile(rules).expect("rules compile")
    }

    /// The texts each detector found, for readable assertions.
    fn found(text: &str, spans: &[(usize, usize)]) -> Vec<String> {
        spans.iter().map(|&(s, e)| text[s..e].to_owned()).collect()
    }

    /// `prefix` followed by the digit that makes it pass the Luhn check.
    fn luhn_complete(prefix: &str) -> String {
        (0..10)
            .map(|d| format!("{prefix}{d}"))
            .find(|candidate| luhn_valid(candidate))
            .expect("one check digit always fits")
    }

    /// An IBAN for `country` and `bban` with correct check digits.
    fn iban_with_check(country: &str, bban: &str) -> String {
        let remainder = format!("{bban}{country}00").bytes().fold(0u32, |r, b| {
            if b.is_ascii_digit() {
                (r * 10 + u32::from(b - b'0')) % 97
            } else {
                (r * 100 + u32::from(b - b'A') + 10) % 97
            }
        });
        format!("{country}{:02}{bban}", 98 - remainder)
    }

    fn codes(errors: &ValidationErrors) -> Vec<(&str, &str)> {
        errors
            .errors()
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect()
    }

    #[test]
    fn luhn() {
        let table = [
            ("4111111111111111", true),
            ("4111111111111112", false),
            ("5500000000000004", true),
            ("378282246310005", true),
            ("79927398713", true),
            ("79927398710", false),
            ("0", true),
            ("", false),
            ("4111 1111 1111 1111", false),
            ("41111111111111a1", false),
            ("４１１１", false),
        ];
        for (digits, valid) in table {
            assert_eq!(luhn_valid(digits), valid, "{digits:?}");
        }
    }

    #[test]
    fn payment_cards() {
        let nineteen = luhn_complete("401288888888188188");
        let table: Vec<(String, Vec<&str>)> = vec![
            ("4111 1111 1111 1111".into(), vec!["4111 1111 1111 1111"]),
            ("5500-0000-0000-0004".into(), vec!["5500-0000-0000-0004"]),
            (
                "card 4111111111111111, thanks".into(),
                vec!["4111111111111111"],
            ),
            ("Amex 3782 822463 10005.".into(), vec!["3782 822463 10005"]),
            ("diners 30569309025904".into(), vec!["30569309025904"]),
            ("13 digits 4222222222222".into(), vec!["4222222222222"]),
            (format!("19 digits {nineteen}"), vec![nineteen.as_str()]),
            (
                "mixed 4111 1111-1111 1111".into(),
                vec!["4111 1111-1111 1111"],
            ),
            (
                "карта 4111 1111 1111 1111 ✓".into(),
                vec!["4111 1111 1111 1111"],
            ),
            (
                "two: 4111111111111111 and 5500 0000 0000 0004".into(),
                vec!["4111111111111111", "5500 0000 0000 0004"],
            ),
            // A card after an unrelated number in the same run is still found.
            (
                "ref 7 4111 1111 1111 1111".into(),
                vec!["4111 1111 1111 1111"],
            ),
            // Near misses.
            ("4111 1111 1111 1112".into(), vec![]),
            ("411111111116".into(), vec![]),
            ("+44 20 7946 0958".into(), vec![]),
            ("+4111111111111111".into(), vec![]),
            ("order 41111111111111110000".into(), vec![]),
            ("4111  1111  1111  1111".into(), vec![]),
            ("4111--1111--1111--1111".into(), vec![]),
            ("0000 0000 0000 0000".into(), vec![]),
            ("total 12.4111111111111111".into(), vec![]),
            ("total 4111111111111111,50".into(), vec![]),
            ("no digits at all".into(), vec![]),
            ("".into(), vec![]),
        ];
        for (text, expected) in table {
            let spans = find_payment_cards(&text);
            assert_eq!(found(&text, &spans), expected, "{text:?}");
        }
    }

    #[test]
    fn ibans() {
        let valid = [
            "GB82 WEST 1234 5698 7654 32",
            "GB82WEST12345698765432",
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "FR14 2004 1010 0505 0001 3M02 606",
            "ES91 2100 0418 4502 0005 1332",
            "IT60 X054 2811 1010 0000 0123 456",
            "NL91 ABNA 0417 1643 00",
            "BE68 5390 0754 7034",
            "CH93 0076 2011 6238 5295 7",
            "IE29 AIBK 9311 5212 3456 78",
            "PL61 1090 1014 0000 0712 1981 2874",
            "NO93 8601 1117 947",
        ];
        for iban in valid {
            assert!(iban_valid(iban), "{iban}");
            let text = format!("pay to {iban}, ta");
            assert_eq!(found(&text, &find_ibans(&text)), vec![iban], "{text}");
        }

        // A country outside the table is accepted at any length the standard allows.
        let unknown = iban_with_check("ZZ", "12345678901234567");
        assert!(iban_valid(&unknown));
        // A known country at the wrong length is refused even when the arithmetic passes.
        let long_gb = iban_with_check("GB", "WEST1234569876543210");
        assert!(!iban_valid(&long_gb));

        let table: Vec<(String, Vec<&str>)> = vec![
            (
                "GB82 WEST 1234 5698 7654 32 OK".into(),
                vec!["GB82 WEST 1234 5698 7654 32"],
            ),
            (
                "iban: GB82 WEST 1234 5698 7654 32.".into(),
                vec!["GB82 WEST 1234 5698 7654 32"],
            ),
            (
                "é DE89370400440532013000 ü".into(),
                vec!["DE89370400440532013000"],
            ),
            (format!("x {unknown} y"), vec![unknown.as_str()]),
            // Near misses.
            ("GB82 WEST 1234 5698 7654 33".into(), vec![]),
            ("GB82 WEST 1234 5698 7654 3".into(), vec![]),
            ("DE89370400440532013001".into(), vec![]),
            ("DE88370400440532013000".into(), vec![]),
            ("XDE89370400440532013000".into(), vec![]),
            ("DE89370400440532013000X".into(), vec![]),
            ("DE8937040044053201300".into(), vec![]),
            ("gb82 west 1234 5698 7654 32".into(), vec![]),
            ("GB82 WEST 1234 5698 7654 32abc".into(), vec![]),
            ("GB82  WEST 1234 5698 7654 32".into(), vec![]),
            (long_gb.clone(), vec![]),
            ("AB12".into(), vec![]),
            ("".into(), vec![]),
        ];
        for (text, expected) in table {
            assert_eq!(found(&text, &find_ibans(&text)), expected, "{text:?}");
        }

        let invalid = [
            "",
            "GB82",
            "GB82 WEST 1234 5698 7654 33",
            "1B82WEST12345698765432",
            "GBX2WEST12345698765432",
            "GB82WEST1234569876543!",
            "GB82WÉST12345698765432",
        ];
        for iban in invalid {
            assert!(!iban_valid(iban), "{iban:?}");
        }
        // Lower case is fine when checking a value directly.
        assert!(iban_valid("gb82 west 1234 5698 7654 32"));
    }

    #[test]
    fn iban_check_digits_never_issued_are_refused() {
        // 00, 01 and 99 are congruent modulo 97 to the issued 97, 98 and 02, so they pass the
        // arithmetic, but they are never issued.
        for (issued, alias) in [("97", "00"), ("98", "01"), ("02", "99")] {
            let iban = (0u64..)
                .map(|n| iban_with_check("GB", &format!("WEST{n:014}")))
                .find(|iban| &iban[2..4] == issued)
                .expect("every check value occurs");
            assert!(iban_valid(&iban), "{iban}");
            let aliased = format!("GB{alias}{}", &iban[4..]);
            assert!(!iban_valid(&aliased), "{aliased}");
            assert!(find_ibans(&aliased).is_empty(), "{aliased}");
        }
    }

    #[test]
    fn us_ssns() {
        let table: Vec<(&str, Vec<&str>)> = vec![
            ("123-45-6789", vec!["123-45-6789"]),
            ("SSN: 123-45-6789.", vec!["123-45-6789"]),
            (
                "899-99-9999 and 001-01-0001",
                vec!["899-99-9999", "001-01-0001"],
            ),
            ("номер 123-45-6789 ✓", vec!["123-45-6789"]),
            ("a123-45-6789b", vec!["123-45-6789"]),
            // Never issued.
            ("000-12-3456", vec![]),
            ("666-12-3456", vec![]),
            ("900-12-3456", vec![]),
            ("999-12-3456", vec![]),
            ("123-00-4567", vec![]),
            ("123-45-0000", vec![]),
            // Not in the dashed form.
            ("123456789", vec![]),
            ("123 45 6789", vec![]),
            ("123-456-789", vec![]),
            // Inside a longer number.
            ("1123-45-6789", vec![]),
            ("123-45-67890", vec![]),
            ("555-123-45-6789", vec![]),
            ("123-45-6789-1", vec![]),
            ("", vec![]),
        ];
        for (text, expected) in table {
            assert_eq!(found(text, &find_us_ssns(text)), expected, "{text:?}");
        }
    }

    #[test]
    fn compile_accepts_a_valid_set() {
        let rules = set(&[
            rule("Cards", DlpKind::PaymentCard, DlpAction::Redact),
            rule("IBANs", DlpKind::Iban, DlpAction::Block),
            rule("SSNs", DlpKind::UsSsn, DlpAction::Block),
            custom("codename", r"(?i)project\s+falcon", DlpAction::Redact),
        ]);
        assert!(!rules.is_empty());
        assert!(DlpRuleSet::empty().is_empty());
        assert!(set(&[]).is_empty());
    }

    #[test]
    fn compile_errors() {
        let long_name = "n".repeat(MAX_NAME_CHARS + 1);
        // The rules, and the (field, code) pairs they are refused with.
        type Case = (Vec<DlpRule>, Vec<(&'static str, &'static str)>);
        let table: Vec<Case> = vec![
            (
                vec![rule("", DlpKind::PaymentCard, DlpAction::Block)],
                vec![("rules[0].name", "required")],
            ),
            (
                vec![rule("   ", DlpKind::PaymentCard, DlpAction::Block)],
                vec![("rules[0].name", "required")],
            ),
            (
                vec![rule(&long_name, DlpKind::PaymentCard, DlpAction::Block)],
                vec![("rules[0].name", "too_long")],
            ),
            (
                vec![
                    rule("cards", DlpKind::PaymentCard, DlpAction::Block),
                    rule("ibans", DlpKind::Iban, DlpAction::Block),
                    rule(" Cards ", DlpKind::UsSsn, DlpAction::Block),
                ],
                vec![("rules[2].name", "duplicate_name")],
            ),
            (
                vec![rule("c", DlpKind::Custom, DlpAction::Block)],
                vec![("rules[0].pattern", "required")],
            ),
            (
                vec![custom("c", "  ", DlpAction::Block)],
                vec![("rules[0].pattern", "required")],
            ),
            (
                vec![custom("c", "(unclosed", DlpAction::Block)],
                vec![("rules[0].pattern", "invalid_pattern")],
            ),
            (
                vec![custom("c", r"\w{1000}{1000}", DlpAction::Block)],
                vec![("rules[0].pattern", "invalid_pattern")],
            ),
            (
                vec![custom("c", "a*", DlpAction::Block)],
                vec![("rules[0].pattern", "invalid_pattern")],
            ),
            (
                vec![custom(
                    "c",
                    &"a".repeat(MAX_PATTERN_CHARS + 1),
                    DlpAction::Block,
                )],
                vec![("rules[0].pattern", "too_long")],
            ),
            (
                vec![DlpRule {
                    pattern: Some(r"\d+".into()),
                    ..rule("c", DlpKind::PaymentCard, DlpAction::Block)
                }],
                vec![("rules[0].pattern", "not_allowed")],
            ),
            (
                (0..=MAX_RULES)
                    .map(|i| rule(&format!("r{i}"), DlpKind::Iban, DlpAction::Block))
                    .collect(),
                vec![("rules", "too_many")],
            ),
            // Every problem is reported at once.
            (
                vec![
                    custom("", "(", DlpAction::Redact),
                    DlpRule {
                        pattern: Some("x".into()),
                        ..rule("a", DlpKind::Iban, DlpAction::Block)
                    },
                    rule("A", DlpKind::Custom, DlpAction::Block),
                ],
                vec![
                    ("rules[0].name", "required"),
                    ("rules[0].pattern", "invalid_pattern"),
                    ("rules[1].pattern", "not_allowed"),
                    ("rules[2].name", "duplicate_name"),
                    ("rules[2].pattern", "required"),
                ],
            ),
        ];
        for (rules, expected) in table {
            let errors = DlpRuleSet::compile(&rules).expect_err("refused");
            assert_eq!(codes(&errors), expected, "{rules:?}");
            for error in errors.errors() {
                assert!(!error.detail.is_empty());
                assert!(!error.detail.contains('\n'), "{:?}", error.detail);
            }
        }
    }

    #[test]
    fn syntax_errors_explain_themselves() {
        let errors = DlpRuleSet::compile(&[custom("c", "(unclosed", DlpAction::Block)])
            .expect_err("refused");
        let detail = &errors.errors()[0].detail;
        assert!(detail.contains("unclosed group"), "{detail}");

        let errors = DlpRuleSet::compile(&[custom("c", r"\w{1000}{1000}", DlpAction::Block)])
            .expect_err("refused");
        let detail = &errors.errors()[0].detail;
        assert!(detail.contains("too large"), "{detail}");
    }

    #[test]
    fn scan_redacts_every_finding() {
        let rules = set(&[
            rule("cards", DlpKind::PaymentCard, DlpAction::Redact),
            rule("ibans", DlpKind::Iban, DlpAction::Redact),
            rule("ssns", DlpKind::UsSsn, DlpAction::Redact),
            custom("codename", r"(?i)project\s+falcon", DlpAction::Redact),
        ]);
        let text = "Card 4111 1111 1111 1111 or 5500-0000-0000-0004, IBAN GB82 WEST 1234 5698 \
                    7654 32, SSN 123-45-6789 for Project  Falcon.";
        let outcome = rules.scan(text, ScanDirection::Outbound);
        assert_eq!(outcome.blocked_by, None);
        assert!(!outcome.is_blocked());
        assert_eq!(
            outcome.redacted.as_deref(),
            Some(
                "Card [redacted payment card] or [redacted payment card], IBAN [redacted IBAN], \
                 SSN [redacted SSN] for [redacted codename]."
            )
        );
        let kinds: Vec<(&str, DlpKind)> = outcome
            .findings
            .iter()
            .map(|f| (&text[f.start..f.end], f.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("4111 1111 1111 1111", DlpKind::PaymentCard),
                ("5500-0000-0000-0004", DlpKind::PaymentCard),
                ("GB82 WEST 1234 5698 7654 32", DlpKind::Iban),
                ("123-45-6789", DlpKind::UsSsn),
                ("Project  Falcon", DlpKind::Custom),
            ]
        );
        assert!(outcome
            .findings
            .iter()
            .all(|f| f.action == DlpAction::Redact));
        assert_eq!(outcome.findings[4].rule, "codename");
    }

    #[test]
    fn block_wins_and_is_reported() {
        let rules = set(&[
            rule("cards", DlpKind::PaymentCard, DlpAction::Redact),
            rule("ssn block", DlpKind::UsSsn, DlpAction::Block),
            custom("secret", "(?i)secret", DlpAction::Block),
        ]);
        let text = "secret: 4111111111111111 and 123-45-6789";
        let outcome = rules.scan(text, ScanDirection::Outbound);
        // The first blocking rule in configured order, not the first match in the text.
        assert_eq!(outcome.blocked_by.as_deref(), Some("ssn block"));
        assert!(outcome.is_blocked());
        assert_eq!(outcome.findings.len(), 3);
        assert_eq!(outcome.findings[0].rule, "secret");
        assert_eq!(outcome.findings[0].action, DlpAction::Block);
        // The redact rules still did their work, for callers that record the redacted form.
        assert_eq!(
            outcome.redacted.as_deref(),
            Some("secret: [redacted payment card] and 123-45-6789")
        );

        let clean = rules.scan("nothing to see", ScanDirection::Outbound);
        assert_eq!(clean, DlpOutcome::default());
    }

    #[test]
    fn a_block_that_loses_an_overlap_still_blocks() {
        let rules = set(&[
            custom("account line", r"account \d+", DlpAction::Redact),
            rule("cards", DlpKind::PaymentCard, DlpAction::Block),
        ]);
        let text = "account 4111111111111111";
        let outcome = rules.scan(text, ScanDirection::Outbound);
        assert_eq!(outcome.blocked_by.as_deref(), Some("cards"));
        assert_eq!(outcome.findings.len(), 1);
        assert_eq!(outcome.findings[0].rule, "account line");
    }

    #[test]
    fn overlapping_redactions_leave_nothing_behind() {
        // The custom match starts first and wins the overlap, but covers only part of the
        // card; the redaction still removes the whole card.
        let rules = set(&[
            custom("prefix", r"card 4111", DlpAction::Redact),
            rule("cards", DlpKind::PaymentCard, DlpAction::Redact),
        ]);
        let text = "my card 4111 1111 1111 1111 ok";
        let outcome = rules.scan(text, ScanDirection::Outbound);
        assert_eq!(outcome.findings.len(), 1);
        assert_eq!(outcome.findings[0].rule, "prefix");
        assert_eq!(outcome.redacted.as_deref(), Some("my [redacted prefix] ok"));
    }

    #[test]
    fn equal_spans_prefer_block_then_rule_order() {
        let rules = set(&[
            rule("redact cards", DlpKind::PaymentCard, DlpAction::Redact),
            rule("block cards", DlpKind::PaymentCard, DlpAction::Block),
        ]);
        let outcome = rules.scan("4111111111111111", ScanDirection::Outbound);
        assert_eq!(outcome.findings.len(), 1);
        assert_eq!(outcome.findings[0].rule, "block cards");
        assert_eq!(outcome.blocked_by.as_deref(), Some("block cards"));
        assert_eq!(outcome.redacted.as_deref(), Some("[redacted payment card]"));
    }

    #[test]
    fn inbound_scans_only_inbound_rules() {
        let rules = set(&[
            rule("cards out", DlpKind::PaymentCard, DlpAction::Block),
            inbound(rule("ssns both ways", DlpKind::UsSsn, DlpAction::Redact)),
        ]);
        let text = "4111111111111111 / 123-45-6789";

        let incoming = rules.scan(text, ScanDirection::Inbound);
        assert_eq!(incoming.blocked_by, None);
        assert_eq!(incoming.findings.len(), 1);
        assert_eq!(incoming.findings[0].rule, "ssns both ways");
        assert_eq!(
            incoming.redacted.as_deref(),
            Some("4111111111111111 / [redacted SSN]")
        );

        let outgoing = rules.scan(text, ScanDirection::Outbound);
        assert_eq!(outgoing.blocked_by.as_deref(), Some("cards out"));
        assert_eq!(outgoing.findings.len(), 2);
    }

    #[test]
    fn custom_patterns_work_on_unicode_text() {
        let rules = set(&[custom(
            "diagnosis",
            r"(?i)diagnóstico:\s*\w+",
            DlpAction::Redact,
        )]);
        let text = "Olá 👋 Diagnóstico: gripe, obrigado";
        let outcome = rules.scan(text, ScanDirection::Outbound);
        assert_eq!(
            outcome.redacted.as_deref(),
            Some("Olá 👋 [redacted diagnosis], obrigado")
        );
        let finding = &outcome.findings[0];
        assert_eq!(&text[finding.start..finding.end], "Diagnóstico: gripe");
    }

    #[test]
    fn rule_names_are_trimmed() {
        let rules = set(&[rule("  cards  ", DlpKind::PaymentCard, DlpAction::Block)]);
        let outcome = rules.scan("4111111111111111", ScanDirection::Outbound);
        assert_eq!(outcome.blocked_by.as_deref(), Some("cards"));
    }

    #[test]
    fn empty_set_finds_nothing() {
        let outcome = DlpRuleSet::empty().scan("4111111111111111", ScanDirection::Outbound);
        assert_eq!(outcome, DlpOutcome::default());
    }

    #[test]
    fn outcome_serialises_with_snake_case_kinds() {
        let rules = set(&[rule("ssns", DlpKind::UsSsn, DlpAction::Block)]);
        let outcome = rules.scan("123-45-6789", ScanDirection::Outbound);
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "findings": [{
                    "rule": "ssns", "kind": "us_ssn", "action": "block", "start": 0, "end": 11
                }],
                "blocked_by": "ssns",
                "redacted": null
            })
        );
    }

    fn every_kind() -> DlpRuleSet {
        set(&[
            inbound(rule("cards", DlpKind::PaymentCard, DlpAction::Redact)),
            rule("ibans", DlpKind::Iban, DlpAction::Block),
            inbound(rule("ssns", DlpKind::UsSsn, DlpAction::Redact)),
            custom("digits", r"\d{3,5}", DlpAction::Redact),
            inbound(custom("words", r"(?i)[a-zé]+ [0-9]", DlpAction::Block)),
        ])
    }

    /// Text dense in the characters the detectors look at, so properties hit real matches.
    fn digit_heavy() -> impl Strategy<Value = String> {
        "[0-9 +.,\\-A-Zaé€]{0,80}"
    }

    /// Valid card numbers jammed against digits, separators and decimal marks, to probe how
    /// runs of digit groups are split.
    fn card_soup() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            ("[1-9][0-9]{11,17}", any::<bool>()).prop_map(|(prefix, grouped)| {
                let card = luhn_complete(&prefix);
                if grouped {
                    card_groups(&card, ' ')
                } else {
                    card
                }
            }),
            "[0-9]{1,6}",
            prop::sample::select(vec![" ", "-", "+", ".", ",", "  ", "x", "é"])
                .prop_map(str::to_owned),
        ];
        prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), digit_heavy(), card_soup()]
    }

    fn card_groups(digits: &str, separator: char) -> String {
        digits
            .as_bytes()
            .chunks(4)
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect::<Vec<_>>()
            .join(&separator.to_string())
    }

    proptest! {
        #[test]
        fn scan_never_panics_and_offsets_are_sound(text in any_text()) {
            let rules = every_kind();
            for direction in [ScanDirection::Outbound, ScanDirection::Inbound] {
                let outcome = rules.scan(&text, direction);
                for f in &outcome.findings {
                    prop_assert!(f.start < f.end && f.end <= text.len());
                    prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
                }
                // Findings are sorted and never overlap.
                for pair in outcome.findings.windows(2) {
                    prop_assert!(pair[0].end <= pair[1].start, "{:?}", pair);
                }
                if outcome.findings.iter().any(|f| f.action == DlpAction::Redact) {
                    prop_assert!(outcome.redacted.is_some());
                }
            }
            let _ = find_payment_cards(&text);
            let _ = find_ibans(&text);
            let _ = find_us_ssns(&text);
            let _ = iban_valid(&text);
            let _ = luhn_valid(&text);
        }

        #[test]
        fn detectors_return_sorted_disjoint_checked_spans(text in any_text()) {
            for spans in [find_payment_cards(&text), find_ibans(&text), find_us_ssns(&text)] {
                for pair in spans.windows(2) {
                    prop_assert!(pair[0].1 <= pair[1].0);
                }
            }
            for (s, e) in find_payment_cards(&text) {
                let digits: String = text[s..e].chars().filter(char::is_ascii_digit).collect();
                prop_assert!((13..=19).contains(&digits.len()));
                prop_assert!(luhn_valid(&digits));
            }
            for (s, e) in find_ibans(&text) {
                prop_assert!(iban_valid(&text[s..e]));
            }
        }

        #[test]
        fn redacted_text_holds_no_card(text in any_text()) {
            let rules = set(&[rule("cards", DlpKind::PaymentCard, DlpAction::Redact)]);
            let outcome = rules.scan(&text, ScanDirection::Outbound);
            match &outcome.redacted {
                Some(redacted) => prop_assert!(find_payment_cards(redacted).is_empty(), "{}", redacted),
                None => prop_assert!(find_payment_cards(&text).is_empty()),
            }
        }

        #[test]
        fn a_valid_card_among_words_is_found(
            prefix in "[1-9][0-9]{11,17}",
            separator in prop::sample::select(vec![None, Some(' '), Some('-')]),
            before in prop::collection::vec("[a-zA-Zàéüß]{1,8}", 0..5),
            after in prop::collection::vec("[a-zA-Zàéüß]{1,8}", 0..5),
        ) {
            let digits = luhn_complete(&prefix);
            let card = match separator {
                None => digits.clone(),
                Some(separator) => card_groups(&digits, separator),
            };
            let mut text = before.join(" ");
            if !text.is_empty() {
                text.push(' ');
            }
            let start = text.len();
            text.push_str(&card);
            let end = text.len();
            for word in &after {
                text.push(' ');
                text.push_str(word);
            }
            prop_assert_eq!(find_payment_cards(&text), vec![(start, end)], "{}", text);

            let rules = set(&[rule("cards", DlpKind::PaymentCard, DlpAction::Redact)]);
            let redacted = rules.scan(&text, ScanDirection::Outbound).redacted;
            let redacted = redacted.unwrap_or_default();
            prop_assert!(redacted.contains("[redacted payment card]"));
            prop_assert!(!redacted.contains(&card));
        }

        #[test]
        fn a_valid_iban_is_found_and_a_changed_digit_is_not(
            bank in "[A-Z]{4}",
            account in "[0-9]{14}",
            position in 4usize..22,
            spaced in any::<bool>(),
        ) {
            let iban = iban_with_check("GB", &format!("{bank}{account}"));
            let printed = if spaced { card_groups(&iban, ' ') } else { iban.clone() };
            let text = format!("send to {printed} please");
            prop_assert_eq!(found(&text, &find_ibans(&text)), vec![printed.clone()]);

            // Changing any one character breaks the mod-97 check.
            let mut changed = iban.into_bytes();
            let c = changed[position];
            changed[position] = if c.is_ascii_digit() {
                b'0' + (c - b'0' + 1) % 10
            } else {
                b'A' + (c - b'A' + 1) % 26
            };
            let changed = String::from_utf8(changed).unwrap();
            prop_assert!(!iban_valid(&changed), "{}", changed);
        }
    }
}
