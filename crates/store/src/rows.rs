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

/// How a connection takes its parameters. SQLite finds a numbered parameter (`$7`) by
/// scanning the names of all of a statement's parameters, once for every parameter bound, so
/// a multi-row statement with thousands of them spends most of its time there; plain `?`
/// placeholders, bound in order, need no lookup at all. PostgreSQL numbers them natively.
pub(crate) trait BindStyle {
    const IN_ORDER: bool;
}

impl BindStyle for sqlx::SqliteConnection {
    const IN_ORDER: bool = true;
}

impl BindStyle for sqlx::PgConnection {
    const IN_ORDER: bool = false;
}

impl BindStyle for sqlx::SqlitePool {
    const IN_ORDER: bool = true;
}

impl BindStyle for sqlx::PgPool {
    const IN_ORDER: bool = false;
}

/// `sql` as `conn` binds it fastest: on SQLite, when its parameters `$1, $2, ...` each appear
/// once and in order (as in a multi-row `VALUES` list), they become plain `?`. Anything else
/// is left as written.
pub(crate) fn sql_for<C: BindStyle + ?Sized>(_conn: &C, sql: String) -> String {
    if !C::IN_ORDER {
        return sql;
    }
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1_usize;
    let mut rest = sql.as_str();
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        match rest[at + 1..at + 1 + digits].parse::<usize>() {
            Ok(n) if n == expected => {
                out.push('?');
                expected += 1;
            }
            _ => return sql,
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// `($1, $2), ($3, $4), ...`: `rows` tuples of `columns` numbered placeholders, for a
/// multi-row `VALUES` list.
pub(crate) fn tuples(rows: usize, columns: usize) -> String {
    rows_like(rows, &format!("({})", vec!["?"; columns].join(", ")))
}

/// `rows` copies of `row`, comma-separated, its `?` marks numbered `$1, $2, ...` on from one
/// copy to the next: a multi-row `VALUES` list whose rows also hold constants, such as
/// `(?, ?, 'queued', 0, ?)`. `row` holds no other `?`.
pub(crate) fn rows_like(rows: usize, row: &str) -> String {
    let mut out = String::with_capacity(rows * (row.len() + 16));
    let mut n = 0;
    for i in 0..rows {
        if i > 0 {
            out.push_str(", ");
        }
        for (j, part) in row.split('?').enumerate() {
            if j > 0 {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            out.push_str(part);
        }
    }
    out
}

/// `$first, $first+1, ...`: `count` numbered placeholders for an `IN (...)` list.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_takes_parameters_in_order_as_plain_placeholders() {
        struct Sqlite;
        impl BindStyle for Sqlite {
            const IN_ORDER: bool = true;
        }
        let sql = format!("INSERT INTO t (a, b) VALUES {} RETURNING id", tuples(2, 2));
        assert_eq!(
            sql_for(&Sqlite, sql),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) RETURNING id"
        );
        // Repeated or out of order: left numbered.
        for sql in ["SELECT $1, $1", "SELECT $2, $1", "SELECT $1, $3"] {
            assert_eq!(sql_for(&Sqlite, sql.to_owned()), sql);
        }
        assert_eq!(sql_for(&Sqlite, "SELECT 1".to_owned()), "SELECT 1");
        assert_eq!(
            rows_like(2, "(?, 'queued', ?)"),
            "($1, 'queued', $2), ($3, 'queued', $4)"
        );
        assert_eq!(tuples(1, 3), "($1, $2, $3)");
        assert_eq!(sql_for(&Sqlite, "SELECT $10".to_owned()), "SELECT $10");
    }
}
