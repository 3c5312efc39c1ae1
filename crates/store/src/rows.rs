//! Reading stored text back into domain types. A value that does not parse means the row was
//! written by something other than this code: it is reported as corrupt, never panicked on.

use std::fmt::Display;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::StoreError;

pub(crate) fn parse<T>(column: &str, value: &str) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    value
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("{column} = {value:?}: {e}")))
}

pub(crate) fn parse_opt<T>(column: &str, value: Option<&str>) -> Result<Option<T>, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    value.map(|v| parse(column, v)).transpose()
}

pub(crate) fn ms(t: OffsetDateTime) -> i64 {
    switchboard_core::time::to_millis(t)
}

pub(crate) fn at(ms: i64) -> OffsetDateTime {
    switchboard_core::time::from_millis(ms)
}

pub(crate) fn json_value<T: serde::de::DeserializeOwned>(
    column: &str,
    value: serde_json::Value,
) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// Reads an enum stored as its serde name (`approved`, `HUMAN_AGENT`).
pub(crate) fn word<T: serde::de::DeserializeOwned>(
    column: &str,
    value: &str,
) -> Result<T, StoreError> {
    json_value(column, serde_json::Value::String(value.to_owned()))
}

/// Writes an enum as its serde name.
pub(crate) fn enum_text<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// `($1, $2), ($3, $4), ...`: `rows` tuples of `columns` numbered placeholders, for a
/// multi-row `VALUES` list.
pub(crate) fn tuples(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| format!("({})", placeholders(row * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, $first+1, ...`: `count` numbered placeholders for an `IN (...)` list.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
