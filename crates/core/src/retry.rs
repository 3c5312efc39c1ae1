//! Retry schedules for temporary failures: a list of delays, the last repeated, with jitter so
//! that many failures at once do not retry at once.

use time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The delay before retry n (1-based) is `schedule[min(n, len) - 1]`.
    pub schedule: Vec<Duration>,
    /// After this many attempts a job is given up.
    pub max_attempts: u32,
    /// Up to this fraction of the delay is added at random (0.0 to 1.0).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: vec![
                Duration::seconds(5),
                Duration::seconds(30),
                Duration::minutes(2),
                Duration::minutes(10),
                Duration::minutes(30),
                Duration::hours(1),
            ],
            max_attempts: 12,
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based), or `None` when attempts are used up.
    /// `random` is a number in [0, 1) from the caller, keeping this function deterministic.
    pub fn delay_after(&self, attempt: u32, random: f64) -> Option<Duration> {
        if attempt >= self.max_attempts || self.schedule.is_empty() {
            return None;
        }
        let index = (attempt.max(1) as usize - 1).min(self.schedule.len() - 1);
        let base = self.schedule[index];
        let spread = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        Some(base + base * spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn delays_follow_the_schedule_then_repeat_its_last() {
        let policy = RetryPolicy {
            schedule: vec![Duration::seconds(1), Duration::seconds(10)],
            max_attempts: 5,
            jitter: 0.0,
        };
        assert_eq!(policy.delay_after(1, 0.5), Some(Duration::seconds(1)));
        assert_eq!(policy.delay_after(2, 0.5), Some(Duration::seconds(10)));
        assert_eq!(policy.delay_after(4, 0.5), Some(Duration::seconds(10)));
        assert_eq!(policy.delay_after(5, 0.5), None);
    }

    proptest! {
        #[test]
        fn jitter_stays_within_its_fraction(attempt in 1u32..12, random in 0.0f64..1.0) {
            let policy = RetryPolicy::default();
            let delay = policy.delay_after(attempt, random).unwrap();
            let index = (attempt as usize - 1).min(policy.schedule.len() - 1);
            let base = policy.schedule[index];
            prop_assert!(delay >= base);
            prop_assert!(delay <= base + base * policy.jitter);
        }
    }
}
