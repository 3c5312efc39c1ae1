//! Campaigns (R6): the campaign's own lifecycle, each recipient's place in the hopper, what a
//! refusal at send time means for a recipient, and how a customer's reply closes the
//! interaction. Pure functions of (state, action or event, time).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use std::collections::BTreeMap;

use crate::ids::{CampaignId, ListId, SenderId};
use crate::policy::RefusalCode;

/// A campaign as stored: one approved template, one list, one sender (R6.2).
#[derive(Clone, Debug, PartialEq)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub sender_id: SenderId,
    pub list_id: ListId,
    pub template_name: String,
    /// The locale used for contacts whose own locale has no version of the template.
    pub template_locale: String,
    /// Template variable -> contact field, over the template's own mapping.
    pub variable_mapping: BTreeMap<String, String>,
    pub state: CampaignState,
    pub start_at: Option<OffsetDateTime>,
    pub end_at: Option<OffsetDateTime>,
    pub response_timeout_minutes: i64,
    /// At most this many messages a second; `None` leaves only the sender's own rate.
    pub rate_limit_per_second: Option<i64>,
    /// Why a running campaign is not sending now.
    pub held: Option<Held>,
    /// Manual retry runs so far (R6.4).
    pub round: i64,
    pub created_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

/// What holds a running campaign back, said on the campaign (R6.7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Held {
    /// A policy refusal code: `outside_business_hours`, `messaging_limit_reached`,
    /// `sender_unavailable`.
    pub code: String,
    pub reason: String,
    /// When sending is tried again.
    #[serde(with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub until: Option<OffsetDateTime>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Being prepared: nothing is sent.
    Draft,
    /// Started for a time still ahead.
    Scheduled,
    /// Sending (or waiting for answers, business hours or a limit).
    Running,
    /// Held by a person; resumes where it stopped.
    Paused,
    /// Ended by a person before its end; what was not sent stays unsent.
    Stopped,
    /// Every recipient reached an end: answered, timed out, failed or skipped.
    Completed,
}

impl CampaignState {
    pub const ALL: [CampaignState; 6] = [
        Self::Draft,
        Self::Scheduled,
        Self::Running,
        Self::Paused,
        Self::Stopped,
        Self::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Completed => "completed",
        }
    }
}

impl fmt::Display for CampaignState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CampaignState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown campaign state `{s}`"))
    }
}

/// What a person asks of a campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignAction {
    Start,
    Pause,
    Resume,
    Stop,
    /// Give the recipients that failed another round (R6.4).
    Retry,
}

impl CampaignAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Stop => "stop",
            Self::Retry => "retry",
        }
    }
}

/// Why an action cannot be taken, with the stable code the API answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionRefused {
    pub code: &'static str,
    pub reason: String,
}

/// The state an action moves a campaign to. `start_at` is when the campaign was set to start,
/// `end_at` when it must stop sending.
pub fn transition(
    state: CampaignState,
    action: CampaignAction,
    start_at: Option<OffsetDateTime>,
    end_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<CampaignState, ActionRefused> {
    use CampaignAction as A;
    use CampaignState as S;
    let refused = || ActionRefused {
        code: "invalid_campaign_state",
        reason: format!("a {state} campaign cannot {}", action.as_str()),
    };
    let ended = end_at.is_some_and(|end| end <= now);
    let sends = |state| {
        if ended && matches!(action, A::Start | A::Resume | A::Retry) {
            Err(ActionRefused {
                code: "campaign_ended",
                reason: "the campaign's end time has passed: set a later `end_at` first".to_owned(),
            })
        } else {
            Ok(state)
        }
    };
    let later = start_at.is_some_and(|start| start > now);
    match (state, action) {
        (S::Draft, A::Start) if later => sends(S::Scheduled),
        (S::Draft | S::Scheduled, A::Start) => sends(S::Running),
        (S::Scheduled | S::Running, A::Pause) => Ok(S::Paused),
        (S::Paused, A::Resume) if later => sends(S::Scheduled),
        (S::Paused, A::Resume) => sends(S::Running),
        (S::Draft | S::Scheduled | S::Running | S::Paused, A::Stop) => Ok(S::Stopped),
        (S::Running | S::Paused | S::Stopped | S::Completed, A::Retry) => sends(S::Running),
        _ => Err(refused()),
    }
}

/// Where one recipient stands in the hopper (R6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RecipientState {
    /// Not contacted yet.
    Fresh,
    /// Its message is with the dispatcher, not yet accepted by the provider.
    Queued,
    /// Sent; waiting for an answer until the response timeout.
    Pending,
    /// A temporary failure: the dispatcher will try again.
    Retry,
    /// The interaction ended: answered, answered late or in free text, or timed out.
    Closed,
    /// A permanent failure (not on WhatsApp, invalid number, opted out meanwhile).
    Failed,
    /// Never sent: the policy refused it at send time, or the campaign ended first.
    Skipped,
}

impl RecipientState {
    pub const ALL: [RecipientState; 7] = [
        Self::Fresh,
        Self::Queued,
        Self::Pending,
        Self::Retry,
        Self::Closed,
        Self::Failed,
        Self::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fresh => "fresh",
            Self::Queued => "queued",
            Self::Pending => "pending",
            Self::Retry => "retry",
            Self::Closed => "closed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the recipient still has something ahead: a send or an answer.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Fresh | Self::Queued | Self::Pending | Self::Retry
        )
    }

    /// Whether a message went out (or is going) and an answer may come.
    pub fn in_interaction(self) -> bool {
        matches!(self, Self::Queued | Self::Pending | Self::Retry)
    }
}

impl fmt::Display for RecipientState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RecipientState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("unknown recipient state `{s}`"))
    }
}

/// The hopper's counters. Every recipient is in exactly one of `fresh`, `pending`, `retry`,
/// `closed`, `failed` and `skipped`, so they add up to `total`; `in_flight` is the part of
/// `pending` still with the dispatcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hopper {
    pub total: i64,
    pub fresh: i64,
    pub pending: i64,
    pub retry: i64,
    pub closed: i64,
    pub failed: i64,
    pub skipped: i64,
    pub in_flight: i64,
}

impl Hopper {
    /// The counters from the number of recipients in each state.
    pub fn from_counts(counts: impl IntoIterator<Item = (RecipientState, i64)>) -> Self {
        let mut hopper = Hopper::default();
        for (state, n) in counts {
            hopper.total += n;
            match state {
                RecipientState::Fresh => hopper.fresh += n,
                RecipientState::Queued => {
                    hopper.pending += n;
                    hopper.in_flight += n;
                }
                RecipientState::Pending => hopper.pending += n,
                RecipientState::Retry => hopper.retry += n,
                RecipientState::Closed => hopper.closed += n,
                RecipientState::Failed => hopper.failed += n,
                RecipientState::Skipped => hopper.skipped += n,
            }
        }
        hopper
    }

    /// Whether the counters add up: the invariant tests and the UI rely on.
    pub fn adds_up(&self) -> bool {
        self.fresh + self.pending + self.retry + self.closed + self.failed + self.skipped
            == self.total
    }

    /// Whether every recipient reached an end.
    pub fn finished(&self) -> bool {
        self.fresh + self.pending + self.retry == 0
    }
}

/// What a refusal by the policy at send time does to one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Only this recipient is affected: it is skipped with the code.
    Skip,
    /// Nobody can be sent to now (business hours, the messaging limit, the sender is down):
    /// the recipient waits and the campaign says why.
    Hold,
}

pub fn on_refusal(code: RefusalCode) -> Refused {
    match code {
        RefusalCode::OutsideBusinessHours
        | RefusalCode::MessagingLimitReached
        | RefusalCode::SenderUnavailable => Refused::Hold,
        _ => Refused::Skip,
    }
}

/// How a reply from a recipient in an interaction closes it (R6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// A quick-reply button within the response timeout: recorded as the answer; nobody needs
    /// to look at it.
    Answered(String),
    /// Free text: a person should answer, so it opens an unclaimed conversation.
    FreeText,
    /// A button, but after the timeout: a person looks at it too.
    Late,
}

impl AnswerOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Answered(_) => "answered",
            Self::FreeText => "free_text",
            Self::Late => "late_answer",
        }
    }

    /// Whether the reply goes to the inbox for a person.
    pub fn needs_agent(&self) -> bool {
        !matches!(self, Self::Answered(_))
    }
}

/// The outcome of a recipient's timed-out interaction, as recorded.
pub const TIMED_OUT: &str = "timed_out";

/// Classifies a reply. `button` is the tapped quick reply's text (or payload) when the reply is
/// one; `deadline` is the end of the response timeout; `at` when the customer replied.
pub fn classify_answer(
    button: Option<&str>,
    deadline: Option<OffsetDateTime>,
    at: OffsetDateTime,
) -> AnswerOutcome {
    let in_time = deadline.is_none_or(|d| at <= d);
    match button.map(str::trim).filter(|b| !b.is_empty()) {
        Some(answer) if in_time => AnswerOutcome::Answered(answer.to_owned()),
        Some(_) => AnswerOutcome::Late,
        None => AnswerOutcome::FreeText,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;

    fn t0() -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
    }

    #[test]
    fn the_lifecycle_table() {
        use CampaignAction as A;
        use CampaignState as S;
        let now = t0();
        let ahead = Some(now + Duration::hours(1));
        let past = Some(now - Duration::hours(1));
        type Row = (
            S,
            A,
            Option<OffsetDateTime>,
            Option<OffsetDateTime>,
            Result<S, &'static str>,
        );
        #[rustfmt::skip]
        let table: &[Row] = &[
            (S::Draft, A::Start, None, None, Ok(S::Running)),
            (S::Draft, A::Start, past, None, Ok(S::Running)),
            (S::Draft, A::Start, ahead, None, Ok(S::Scheduled)),
            (S::Scheduled, A::Start, ahead, None, Ok(S::Running)),
            (S::Draft, A::Start, None, past, Err("campaign_ended")),
            (S::Running, A::Start, None, None, Err("invalid_campaign_state")),
            (S::Running, A::Pause, None, None, Ok(S::Paused)),
            (S::Scheduled, A::Pause, ahead, None, Ok(S::Paused)),
            (S::Draft, A::Pause, None, None, Err("invalid_campaign_state")),
            (S::Paused, A::Resume, None, None, Ok(S::Running)),
            (S::Paused, A::Resume, ahead, None, Ok(S::Scheduled)),
            (S::Paused, A::Resume, None, past, Err("campaign_ended")),
            (S::Running, A::Resume, None, None, Err("invalid_campaign_state")),
            (S::Running, A::Stop, None, None, Ok(S::Stopped)),
            (S::Paused, A::Stop, None, None, Ok(S::Stopped)),
            (S::Draft, A::Stop, None, None, Ok(S::Stopped)),
            (S::Stopped, A::Stop, None, None, Err("invalid_campaign_state")),
            (S::Completed, A::Stop, None, None, Err("invalid_campaign_state")),
            (S::Completed, A::Retry, None, None, Ok(S::Running)),
            (S::Stopped, A::Retry, None, None, Ok(S::Running)),
            (S::Completed, A::Retry, None, past, Err("campaign_ended")),
            (S::Draft, A::Retry, None, None, Err("invalid_campaign_state")),
        ];
        for (state, action, start, end, expected) in table {
            let got = transition(*state, *action, *start, *end, now).map_err(|e| e.code);
            assert_eq!(
                got, *expected,
                "{state} {action:?} start {start:?} end {end:?}"
            );
        }
    }

    fn any_state() -> impl Strategy<Value = CampaignState> {
        prop::sample::select(CampaignState::ALL.to_vec())
    }

    fn any_action() -> impl Strategy<Value = CampaignAction> {
        prop::sample::select(vec![
            CampaignAction::Start,
            CampaignAction::Pause,
            CampaignAction::Resume,
            CampaignAction::Stop,
            CampaignAction::Retry,
        ])
    }

    proptest! {
        /// Nothing moves a campaign back to draft, a stopped one only sends again by a retry,
        /// and nothing starts sending past the end time.
        #[test]
        fn transitions_keep_their_promises(
            state in any_state(),
            action in any_action(),
            start in prop::option::of(-100i64..100),
            end in prop::option::of(-100i64..100),
        ) {
            let now = t0();
            let start = start.map(|m| now + Duration::minutes(m));
            let end = end.map(|m| now + Duration::minutes(m));
            if let Ok(next) = transition(state, action, start, end, now) {
                prop_assert_ne!(next, CampaignState::Draft);
                prop_assert_ne!(next, CampaignState::Completed);
                if state == CampaignState::Stopped {
                    prop_assert_eq!(action, CampaignAction::Retry);
                }
                if matches!(next, CampaignState::Running | CampaignState::Scheduled) {
                    prop_assert!(end.is_none_or(|e| e > now));
                }
            }
        }

        /// Whatever the counts, the hopper adds up.
        #[test]
        fn the_hopper_adds_up(counts in prop::collection::vec((0usize..7, 0i64..1_000_000), 0..20)) {
            let hopper = Hopper::from_counts(
                counts.iter().map(|(s, n)| (RecipientState::ALL[*s], *n)),
            );
            prop_assert!(hopper.adds_up());
            prop_assert_eq!(hopper.total, counts.iter().map(|(_, n)| n).sum::<i64>());
            prop_assert!(hopper.in_flight <= hopper.pending);
        }
    }

    #[test]
    fn answers_are_classified_by_kind_and_time() {
        let sent = t0();
        let deadline = Some(sent + Duration::hours(1));
        let in_time = sent + Duration::minutes(5);
        let late = sent + Duration::hours(2);
        assert_eq!(
            classify_answer(Some("Yes"), deadline, in_time),
            AnswerOutcome::Answered("Yes".into())
        );
        assert_eq!(
            classify_answer(Some("Yes"), deadline, late),
            AnswerOutcome::Late
        );
        assert_eq!(
            classify_answer(None, deadline, in_time),
            AnswerOutcome::FreeText
        );
        assert_eq!(
            classify_answer(Some("  "), deadline, in_time),
            AnswerOutcome::FreeText
        );
        assert_eq!(
            classify_answer(Some("Yes"), deadline, sent + Duration::hours(1)),
            AnswerOutcome::Answered("Yes".into()),
            "the deadline itself is in time"
        );
        assert!(AnswerOutcome::Late.needs_agent());
        assert!(!AnswerOutcome::Answered("No".into()).needs_agent());
    }

    #[test]
    fn limits_hold_the_campaign_and_the_rest_skip_one_recipient() {
        for code in RefusalCode::ALL {
            let expected = matches!(
                code,
                RefusalCode::OutsideBusinessHours
                    | RefusalCode::MessagingLimitReached
                    | RefusalCode::SenderUnavailable
            );
            assert_eq!(on_refusal(code) == Refused::Hold, expected, "{code:?}");
        }
    }

    #[test]
    fn states_round_trip() {
        for s in CampaignState::ALL {
            assert_eq!(s.as_str().parse::<CampaignState>(), Ok(s));
        }
        for s in RecipientState::ALL {
            assert_eq!(s.as_str().parse::<RecipientState>(), Ok(s));
        }
    }
}
