//! Time as the store keeps it: milliseconds since the Unix epoch, supplied by the caller's clock.

use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, the portable representation used on both databases.
pub fn to_millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The inverse of [`to_millis`]; out-of-range values saturate to the epoch rather than panic,
/// because they can only come from a corrupted row.
pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Truncates to whole milliseconds, so values compare equal after a round trip through storage.
pub fn truncate_to_millis(t: OffsetDateTime) -> OffsetDateTime {
    from_millis(to_millis(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn millis_round_trip() {
        let t = datetime!(2026-11-22 17:44:52.123 UTC);
        assert_eq!(from_millis(to_millis(t)), t);
        assert_eq!(to_millis(OffsetDateTime::UNIX_EPOCH), 0);
    }
}
