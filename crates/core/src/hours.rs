//! Business hours (R7.4): a time zone, opening intervals per weekday, and holidays. Automated
//! WhatsApp and SMS messages wait for opening; people and Messenger are not held.
//!
//! Time zones come from the IANA database bundled into the binary, so the answer is the same on
//! every machine whatever its installed zoneinfo.

use std::collections::BTreeSet;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::policy::HoursState;
use crate::validation::{FieldError, ValidationErrors};

/// One opening interval in local time, `"09:00"` to `"17:30"`. `"24:00"` closes at midnight; a
/// night shift is two intervals, one on each day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Interval {
    pub opens: String,
    pub closes: String,
}

/// The week, Monday first. A day with no interval is closed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Week {
    #[serde(default)]
    pub monday: Vec<Interval>,
    #[serde(default)]
    pub tuesday: Vec<Interval>,
    #[serde(default)]
    pub wednesday: Vec<Interval>,
    #[serde(default)]
    pub thursday: Vec<Interval>,
    #[serde(default)]
    pub friday: Vec<Interval>,
    #[serde(default)]
    pub saturday: Vec<Interval>,
    #[serde(default)]
    pub sunday: Vec<Interval>,
}

impl Week {
    fn days(&self) -> [(&'static str, &[Interval]); 7] {
        [
            ("monday", &self.monday),
            ("tuesday", &self.tuesday),
            ("wednesday", &self.wednesday),
            ("thursday", &self.thursday),
            ("friday", &self.friday),
            ("saturday", &self.saturday),
            ("sunday", &self.sunday),
        ]
    }
}

/// An account's business hours as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BusinessHours {
    /// An IANA time zone such as `Europe/London`.
    pub time_zone: String,
    pub weekly: Week,
    /// Local dates (`2026-12-25`) closed all day.
    #[serde(default)]
    pub holidays: Vec<String>,
    /// What an automatic reply outside hours says, if the account wants one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_reply: Option<String>,
}

/// Business hours checked and ready to answer "open now?".
#[derive(Clone, Debug)]
pub struct Schedule {
    zone: TimeZone,
    /// Minutes after local midnight, sorted and disjoint, Monday first.
    days: [Vec<(u16, u16)>; 7],
    holidays: BTreeSet<Date>,
}

/// How far ahead to look for the next opening before saying there is none.
const HORIZON_DAYS: i64 = 400;

fn minutes(field: &str, value: &str, allow_midnight_end: bool) -> Result<u16, FieldError> {
    let invalid = || {
        FieldError::new(
            field,
            "invalid_time",
            format!("`{field}` must be a time of day such as 09:00"),
        )
    };
    let (h, m) = value.trim().split_once(':').ok_or_else(invalid)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(invalid());
    }
    let h: u16 = h.parse().map_err(|_| invalid())?;
    let m: u16 = m.parse().map_err(|_| invalid())?;
    match (h, m) {
        (24, 0) if allow_midnight_end => Ok(24 * 60),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(invalid()),
    }
}

impl BusinessHours {
    /// Checks every field at once: the zone exists, times are times, each interval closes after
    /// it opens, a day's intervals do not overlap, holidays are dates.
    pub fn compile(&self) -> Result<Schedule, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let zone = match TimeZone::get(self.time_zone.trim()) {
            Ok(zone) => Some(zone),
            Err(_) => {
                errors.push(FieldError::new(
                    "time_zone",
                    "invalid_time_zone",
                    format!(
                        "`{}` is not an IANA time zone such as Europe/London",
                        self.time_zone
                    ),
                ));
                None
            }
        };
        let mut days: [Vec<(u16, u16)>; 7] = Default::default();
        for (i, (name, intervals)) in self.weekly.days().into_iter().enumerate() {
            for (j, interval) in intervals.iter().enumerate() {
                let base = format!("weekly.{name}[{j}]");
                let opens = errors.check(minutes(&format!("{base}.opens"), &interval.opens, false));
                let closes =
                    errors.check(minutes(&format!("{base}.closes"), &interval.closes, true));
                if let (Some(opens), Some(closes)) = (opens, closes) {
                    if closes <= opens {
                        errors.push(FieldError::new(
                            base,
                            "invalid_interval",
                            "an interval must close after it opens; split a night shift in two",
                        ));
                    } else {
                        days[i].push((opens, closes));
                    }
                }
            }
            days[i].sort_unstable();
            if days[i].windows(2).any(|w| w[1].0 < w[0].1) {
                errors.push(FieldError::new(
                    format!("weekly.{name}"),
                    "overlapping_intervals",
                    format!("the intervals of {name} overlap"),
                ));
            }
        }
        let mut holidays = BTreeSet::new();
        for (i, day) in self.holidays.iter().enumerate() {
            match day.trim().parse::<Date>() {
                Ok(date) => {
                    holidays.insert(date);
                }
                Err(_) => errors.push(FieldError::new(
                    format!("holidays[{i}]"),
                    "invalid_date",
                    "holidays are dates such as 2026-12-25",
                )),
            }
        }
        if let Some(text) = &self.auto_reply {
            if text.chars().count() > 1024 {
                errors.push(FieldError::new(
                    "auto_reply",
                    "too_long",
                    "`auto_reply` must be at most 1,024 characters",
                ));
            }
        }
        match zone {
            Some(zone) if errors.is_empty() => Ok(Schedule {
                zone,
                days,
                holidays,
            }),
            _ => Err(errors),
        }
    }
}

fn to_timestamp(t: OffsetDateTime) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_millisecond(crate::time::to_millis(t)).ok()
}

fn weekday_index(day: Weekday) -> usize {
    day.to_monday_zero_offset() as usize
}

impl Schedule {
    /// Whether the business is open at `now`, and if not, when it next opens (`None` when it
    /// never does within a year, as for a schedule with no hours at all).
    pub fn state_at(&self, now: OffsetDateTime) -> HoursState {
        let Some(ts) = to_timestamp(now) else {
            return HoursState {
                open: false,
                opens_at: None,
            };
        };
        let local = ts.to_zoned(self.zone.clone());
        let today = local.date();
        let minute_now = local.hour() as u16 * 60 + local.minute() as u16;
        let open = !self.holidays.contains(&today)
            && self.days[weekday_index(today.weekday())]
                .iter()
                .any(|(o, c)| *o <= minute_now && minute_now < *c);
        if open {
            return HoursState {
                open: true,
                opens_at: None,
            };
        }
        HoursState {
            open: false,
            opens_at: self.next_opening(today, minute_now),
        }
    }

    fn next_opening(&self, today: Date, minute_now: u16) -> Option<OffsetDateTime> {
        for offset in 0..HORIZON_DAYS {
            let date = today.checked_add(jiff::Span::new().days(offset)).ok()?;
            if self.holidays.contains(&date) {
                continue;
            }
            for (opens, _) in &self.days[weekday_index(date.weekday())] {
                if offset == 0 && *opens <= minute_now {
                    continue;
                }
                let time = Time::new((opens / 60) as i8, (opens % 60) as i8, 0, 0).ok()?;
                // A local time skipped by a clock change resolves to the first valid instant.
                let zoned = date.to_datetime(time).to_zoned(self.zone.clone()).ok()?;
                return Some(crate::time::from_millis(zoned.timestamp().as_millisecond()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn nine_to_five(zone: &str) -> BusinessHours {
        let day = vec![Interval {
            opens: "09:00".into(),
            closes: "17:30".into(),
        }];
        BusinessHours {
            time_zone: zone.into(),
            weekly: Week {
                monday: day.clone(),
                tuesday: day.clone(),
                wednesday: day.clone(),
                thursday: day.clone(),
                friday: day,
                saturday: vec![],
                sunday: vec![],
            },
            holidays: vec!["2026-12-25".into()],
            auto_reply: None,
        }
    }

    #[test]
    fn open_and_closed_in_local_time() {
        let schedule = nine_to_five("Europe/London").compile().unwrap();
        // Tuesday 24 November 2026: London is on GMT, so local time equals UTC.
        let cases = [
            (datetime!(2026-11-24 08:59 UTC), false),
            (datetime!(2026-11-24 09:00 UTC), true),
            (datetime!(2026-11-24 17:29 UTC), true),
            (datetime!(2026-11-24 17:30 UTC), false),
            (datetime!(2026-11-28 12:00 UTC), false),
            (datetime!(2026-12-25 12:00 UTC), false),
        ];
        for (now, open) in cases {
            assert_eq!(schedule.state_at(now).open, open, "{now}");
        }
        // In summer London is an hour ahead: 08:30 UTC is 09:30 local.
        assert!(schedule.state_at(datetime!(2026-07-07 08:30 UTC)).open);
    }

    #[test]
    fn the_next_opening_skips_weekends_and_holidays() {
        let schedule = nine_to_five("America/New_York").compile().unwrap();
        // Friday 18:00 in New York (EST, UTC-5) -> Monday 09:00 local = 14:00 UTC.
        let state = schedule.state_at(datetime!(2026-11-27 23:00 UTC));
        assert!(!state.open);
        assert_eq!(state.opens_at, Some(datetime!(2026-11-30 14:00 UTC)));
        // Christmas Day is a Friday in 2026; the next opening is Monday the 28th.
        let state = schedule.state_at(datetime!(2026-12-25 15:00 UTC));
        assert_eq!(state.opens_at, Some(datetime!(2026-12-28 14:00 UTC)));
        // Early on a weekday: later the same day.
        let state = schedule.state_at(datetime!(2026-11-24 12:00 UTC));
        assert_eq!(state.opens_at, Some(datetime!(2026-11-24 14:00 UTC)));
    }

    #[test]
    fn a_week_with_no_hours_never_opens() {
        let schedule = BusinessHours {
            time_zone: "UTC".into(),
            weekly: Week::default(),
            holidays: vec![],
            auto_reply: None,
        }
        .compile()
        .unwrap();
        assert_eq!(
            schedule.state_at(datetime!(2026-11-24 12:00 UTC)),
            HoursState {
                open: false,
                opens_at: None
            }
        );
    }

    #[test]
    fn every_problem_is_named() {
        let mut hours = nine_to_five("Mars/Olympus_Mons");
        hours.weekly.monday = vec![
            Interval {
                opens: "09:00".into(),
                closes: "12:00".into(),
            },
            Interval {
                opens: "11:00".into(),
                closes: "13:00".into(),
            },
        ];
        hours.weekly.tuesday = vec![Interval {
            opens: "18:00".into(),
            closes: "09:00".into(),
        }];
        hours.weekly.wednesday = vec![Interval {
            opens: "9am".into(),
            closes: "24:00".into(),
        }];
        hours.holidays = vec!["25/12/2026".into()];
        let errors = hours.compile().unwrap_err();
        let found: Vec<(&str, &str)> = errors
            .errors()
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("time_zone", "invalid_time_zone"),
                ("weekly.monday", "overlapping_intervals"),
                ("weekly.tuesday[0]", "invalid_interval"),
                ("weekly.wednesday[0].opens", "invalid_time"),
                ("holidays[0]", "invalid_date"),
            ]
        );
    }
}
