//! Many rows handed to one statement, in the form each engine takes best.
//!
//! A multi-row `VALUES` list has a parameter a cell, so its text changes with the number of
//! rows: each batch of a new size is a new statement, parsed and planned afresh, and binding
//! thousands of parameters one by one is work of its own. PostgreSQL does that work in its
//! server, on the cores this process shares with it, so there the rows go as one array a
//! column, unnested by a statement whose text is the same whatever their number (parsed once
//! a connection, then taken from sqlx's cache). SQLite keeps the `VALUES` lists: its parsing
//! runs in the writer's own thread, and handing it the rows as one JSON text instead
//! (unpacked by `json_each`) was measured no faster. A list of ids for `IN` goes as one
//! array on both: a PostgreSQL array, a JSON array for SQLite's `json_each` (marking a batch
//! of webhooks processed held SQLite's inbox writer 12% less than 256 parameters did).

use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::{Database, Encode, Postgres, Sqlite, Type};

/// A query that takes parameters: `sqlx::query`, `query_as` and `query_scalar` alike.
pub(crate) trait Binds<'q, DB: Database>: Sized {
    fn with<T: 'q + Encode<'q, DB> + Type<DB>>(self, value: T) -> Self;
}

impl<'q, DB: Database> Binds<'q, DB> for Query<'q, DB, <DB as Database>::Arguments<'q>> {
    fn with<T: 'q + Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl<'q, DB: Database, O> Binds<'q, DB> for QueryAs<'q, DB, O, <DB as Database>::Arguments<'q>> {
    fn with<T: 'q + Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl<'q, DB: Database, O> Binds<'q, DB>
    for QueryScalar<'q, DB, O, <DB as Database>::Arguments<'q>>
{
    fn with<T: 'q + Encode<'q, DB> + Type<DB>>(self, value: T) -> Self {
        self.bind(value)
    }
}

/// What a column holds, and so how PostgreSQL is told to read its array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Int,
    Bool,
    /// Text holding JSON, for a `JSONB` column on PostgreSQL (SQLite keeps it as text).
    Json,
}

impl Kind {
    fn pg_array(self) -> &'static str {
        match self {
            Kind::Text => "text[]",
            Kind::Int => "int8[]",
            Kind::Bool => "bool[]",
            Kind::Json => "jsonb[]",
        }
    }
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
}

impl From<String> for Cell {
    fn from(value: String) -> Self {
        Cell::Text(Some(value))
    }
}

impl From<&str> for Cell {
    fn from(value: &str) -> Self {
        Cell::Text(Some(value.to_owned()))
    }
}

impl From<Option<String>> for Cell {
    fn from(value: Option<String>) -> Self {
        Cell::Text(value)
    }
}

impl From<Option<&str>> for Cell {
    fn from(value: Option<&str>) -> Self {
        Cell::Text(value.map(str::to_owned))
    }
}

impl From<i64> for Cell {
    fn from(value: i64) -> Self {
        Cell::Int(Some(value))
    }
}

impl From<Option<i64>> for Cell {
    fn from(value: Option<i64>) -> Self {
        Cell::Int(value)
    }
}

impl From<bool> for Cell {
    fn from(value: bool) -> Self {
        Cell::Bool(value)
    }
}

/// A cell as its column's kind says; a row built against its columns' kinds holds no other,
/// and one that did would bind as NULL (or false) there, never as something else.
impl Cell {
    fn text(self) -> Option<String> {
        match self {
            Cell::Text(value) => value,
            _ => None,
        }
    }

    fn int(self) -> Option<i64> {
        match self {
            Cell::Int(value) => value,
            _ => None,
        }
    }

    fn boolean(self) -> bool {
        matches!(self, Cell::Bool(true))
    }

    fn fits(&self, kind: Kind) -> bool {
        matches!(
            (self, kind),
            (Cell::Text(_), Kind::Text | Kind::Json)
                | (Cell::Int(_), Kind::Int)
                | (Cell::Bool(_), Kind::Bool)
        )
    }
}

/// Rows of the same columns, row after row.
#[derive(Debug)]
pub(crate) struct Rows {
    kinds: &'static [Kind],
    cells: Vec<Cell>,
}

impl Rows {
    pub(crate) fn with_capacity(kinds: &'static [Kind], rows: usize) -> Self {
        Rows {
            kinds,
            cells: Vec::with_capacity(rows * kinds.len()),
        }
    }

    /// Appends a row, one cell a column, in the columns' order.
    pub(crate) fn push<const N: usize>(&mut self, row: [Cell; N]) {
        debug_assert_eq!(N, self.kinds.len(), "a row of the wrong width");
        debug_assert!(
            row.iter()
                .zip(self.kinds)
                .all(|(cell, kind)| cell.fits(*kind)),
            "a cell of the wrong kind"
        );
        self.cells.extend(row);
    }

    pub(crate) fn len(&self) -> usize {
        self.cells.len() / self.kinds.len().max(1)
    }
}

/// The engine a connection or pool speaks to.
pub(crate) trait OnEngine {
    type Bulk: Bulk;
}

impl OnEngine for sqlx::SqliteConnection {
    type Bulk = SqliteBulk;
}

impl OnEngine for sqlx::SqlitePool {
    type Bulk = SqliteBulk;
}

impl OnEngine for sqlx::PgConnection {
    type Bulk = PgBulk;
}

impl OnEngine for sqlx::PgPool {
    type Bulk = PgBulk;
}

/// The engine `conn` speaks to, where one statement's text differs between them.
pub(crate) fn backend<C: OnEngine + ?Sized>(_conn: &C) -> crate::Backend {
    <C::Bulk as Bulk>::BACKEND
}

type Db<C> = <<C as OnEngine>::Bulk as Bulk>::Db;

/// An engine's way with [`Rows`].
pub(crate) trait Bulk {
    type Db: Database;
    const BACKEND: crate::Backend;

    /// The rows as a source for `INSERT INTO t (...) <source>` or `WITH v (...) AS (<source>)`,
    /// their parameters numbered from `first`.
    fn source(rows: &Rows, first: usize) -> String;

    /// How many parameters [`Bulk::source`] takes.
    fn params(rows: &Rows) -> usize;

    /// Binds the rows' parameters, in the order [`Bulk::source`] numbered them.
    fn bind<'q, Q: Binds<'q, Self::Db>>(query: Q, rows: Rows) -> Q;

    /// `IN` (or, `negated`, `NOT IN`) the list bound at parameter `first`, and the number of
    /// the parameter after it.
    fn in_list(first: usize, negated: bool) -> (String, usize);

    /// Binds the values of an [`Bulk::in_list`].
    fn bind_list<'q, Q: Binds<'q, Self::Db>>(query: Q, values: Vec<String>) -> Q;
}

/// SQLite's way: multi-row `VALUES` lists, and `IN` lists as one JSON array.
pub(crate) struct SqliteBulk;

impl Bulk for SqliteBulk {
    type Db = Sqlite;
    const BACKEND: crate::Backend = crate::Backend::Sqlite;

    fn source(rows: &Rows, first: usize) -> String {
        let width = rows.kinds.len();
        let mut out = String::with_capacity(rows.cells.len() * 6 + 8);
        out.push_str("VALUES ");
        for row in 0..rows.len() {
            if row > 0 {
                out.push_str(", ");
            }
            out.push('(');
            for column in 0..width {
                if column > 0 {
                    out.push_str(", ");
                }
                out.push('$');
                out.push_str(&(first + row * width + column).to_string());
            }
            out.push(')');
        }
        out
    }

    fn params(rows: &Rows) -> usize {
        rows.cells.len()
    }

    fn bind<'q, Q: Binds<'q, Sqlite>>(mut query: Q, rows: Rows) -> Q {
        for cell in rows.cells {
            query = match cell {
                Cell::Text(value) => query.with(value),
                Cell::Int(value) => query.with(value),
                Cell::Bool(value) => query.with(value),
            };
        }
        query
    }

    fn in_list(first: usize, negated: bool) -> (String, usize) {
        let not = if negated { "NOT " } else { "" };
        (
            format!("{not}IN (SELECT value FROM json_each(${first}))"),
            first + 1,
        )
    }

    fn bind_list<'q, Q: Binds<'q, Sqlite>>(query: Q, values: Vec<String>) -> Q {
        query.with(serde_json::Value::from(values).to_string())
    }
}

/// PostgreSQL's way: one array a column, `UNNEST`ed; `= ANY` an array.
pub(crate) struct PgBulk;

impl Bulk for PgBulk {
    type Db = Postgres;
    const BACKEND: crate::Backend = crate::Backend::Postgres;

    fn source(rows: &Rows, first: usize) -> String {
        let arrays: Vec<String> = rows
            .kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| format!("${}::{}", first + i, kind.pg_array()))
            .collect();
        format!("SELECT * FROM UNNEST({})", arrays.join(", "))
    }

    fn params(rows: &Rows) -> usize {
        rows.kinds.len()
    }

    fn bind<'q, Q: Binds<'q, Postgres>>(mut query: Q, rows: Rows) -> Q {
        let width = rows.kinds.len();
        let count = rows.len();
        let mut columns: Vec<Vec<Cell>> = (0..width).map(|_| Vec::with_capacity(count)).collect();
        for (i, cell) in rows.cells.into_iter().enumerate() {
            columns[i % width].push(cell);
        }
        for (kind, column) in rows.kinds.iter().zip(columns) {
            let column = column.into_iter();
            query = match kind {
                Kind::Text | Kind::Json => query.with(column.map(Cell::text).collect::<Vec<_>>()),
                Kind::Int => query.with(column.map(Cell::int).collect::<Vec<_>>()),
                Kind::Bool => query.with(column.map(Cell::boolean).collect::<Vec<_>>()),
            };
        }
        query
    }

    fn in_list(first: usize, negated: bool) -> (String, usize) {
        let test = if negated { "<> ALL" } else { "= ANY" };
        (format!("{test}(${first}::text[])"), first + 1)
    }

    fn bind_list<'q, Q: Binds<'q, Postgres>>(query: Q, values: Vec<String>) -> Q {
        query.with(values)
    }
}

/// [`Bulk::source`] for the connection `_conn`'s engine.
pub(crate) fn source<C: OnEngine + ?Sized>(_conn: &C, rows: &Rows, first: usize) -> String {
    C::Bulk::source(rows, first)
}

/// The number of the first parameter after the rows' [`Bulk::source`] that starts at `first`.
pub(crate) fn after<C: OnEngine + ?Sized>(_conn: &C, rows: &Rows, first: usize) -> usize {
    first + C::Bulk::params(rows)
}

/// [`Bulk::bind`] for the connection `_conn`'s engine.
pub(crate) fn bind<'q, C: OnEngine + ?Sized, Q: Binds<'q, Db<C>>>(
    _conn: &C,
    query: Q,
    rows: Rows,
) -> Q {
    C::Bulk::bind(query, rows)
}

/// [`Bulk::in_list`] for the connection `_conn`'s engine.
pub(crate) fn in_list<C: OnEngine + ?Sized>(
    _conn: &C,
    first: usize,
    negated: bool,
) -> (String, usize) {
    C::Bulk::in_list(first, negated)
}

/// [`Bulk::bind_list`] for the connection `_conn`'s engine, the values as their text.
pub(crate) fn bind_list<'q, C: OnEngine + ?Sized, Q: Binds<'q, Db<C>>, T: ToString>(
    _conn: &C,
    query: Q,
    values: &[T],
) -> Q {
    C::Bulk::bind_list(query, values.iter().map(ToString::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Result, Store};
    use switchboard_testkit::{both_backends, TestDb};

    const KINDS: [Kind; 4] = [Kind::Text, Kind::Int, Kind::Bool, Kind::Json];

    fn probe_rows() -> Rows {
        let mut rows = Rows::with_capacity(&KINDS, 3);
        rows.push(["a".into(), 1_i64.into(), true.into(), r#"{"k":1}"#.into()]);
        rows.push([
            Option::<String>::None.into(),
            Option::<i64>::None.into(),
            false.into(),
            Option::<String>::None.into(),
        ]);
        rows.push(["it's".into(), (-5_i64).into(), true.into(), "[1,2]".into()]);
        rows
    }

    #[test]
    fn each_engine_gets_its_own_shape() {
        let rows = probe_rows();
        assert_eq!(
            SqliteBulk::source(&rows, 2),
            "VALUES ($2, $3, $4, $5), ($6, $7, $8, $9), ($10, $11, $12, $13)"
        );
        assert_eq!(SqliteBulk::params(&rows), 12);
        assert_eq!(
            PgBulk::source(&rows, 2),
            "SELECT * FROM UNNEST($2::text[], $3::int8[], $4::bool[], $5::jsonb[])"
        );
        assert_eq!(PgBulk::params(&rows), 4);
        assert_eq!(
            SqliteBulk::in_list(3, false),
            ("IN (SELECT value FROM json_each($3))".to_owned(), 4)
        );
        assert_eq!(
            SqliteBulk::in_list(1, true),
            ("NOT IN (SELECT value FROM json_each($1))".to_owned(), 2)
        );
        assert_eq!(
            PgBulk::in_list(3, false),
            ("= ANY($3::text[])".to_owned(), 4)
        );
        assert_eq!(
            PgBulk::in_list(1, true),
            ("<> ALL($1::text[])".to_owned(), 2)
        );
    }

    type Probe = (Option<String>, Option<i64>, bool, Option<String>);

    async fn write_and_read(store: &Store, json_type: &str) -> Result<(Vec<Probe>, Vec<String>)> {
        let create =
            format!("CREATE TABLE bulk_probe (t TEXT, i BIGINT, b BOOLEAN, j {json_type})");
        write_tx!(store, |tx| {
            sqlx::query(&create).execute(&mut *tx).await?;
            let rows = probe_rows();
            let sql = format!(
                "INSERT INTO bulk_probe (t, i, b, j) {}",
                source(&*tx, &rows, 1)
            );
            let sql = crate::rows::sql_for(&*tx, sql);
            bind(&*tx, sqlx::query(&sql), rows)
                .execute(&mut *tx)
                .await?;
        });
        let read = read_pool!(store, |db| {
            sqlx::query_as("SELECT t, i, b, CAST(j AS TEXT) FROM bulk_probe ORDER BY i NULLS FIRST")
                .fetch_all(db)
                .await?
        });
        // A list, and a parameter numbered after it, in one statement.
        let found: Vec<(String,)> = read_pool!(store, |db| {
            let (list, next) = in_list(db, 1, false);
            let sql = format!("SELECT t FROM bulk_probe WHERE t {list} AND i > ${next} ORDER BY t");
            let sql = crate::rows::sql_for(db, sql);
            let values = vec!["a".to_owned(), "it's".to_owned(), "zzz".to_owned()];
            bind_list(db, sqlx::query_as(&sql), &values)
                .bind(-10_i64)
                .fetch_all(db)
                .await?
        });
        let (outside,): (i64,) = read_pool!(store, |db| {
            let (list, _) = in_list(db, 1, true);
            let sql = format!("SELECT COUNT(*) FROM bulk_probe WHERE t {list}");
            bind_list(db, sqlx::query_as(&sql), &["a"])
                .fetch_one(db)
                .await?
        });
        assert_eq!(outside, 1, "NOT IN leaves out the listed value (and NULL)");
        Ok((read, found.into_iter().map(|(t,)| t).collect()))
    }

    /// Rows of every kind, NULLs among them, go in as they were given and come back alike
    /// on both engines; `IN` and `NOT IN` lists select what they name.
    async fn rows_and_lists_round_trip(db: TestDb) {
        let store = Store::open(db.url()).await.unwrap();
        let json_type = if db.is_postgres() { "JSONB" } else { "TEXT" };
        let (read, found) = write_and_read(&store, json_type).await.unwrap();
        let json = |v: &Option<String>| {
            v.as_deref()
                .map(|j| serde_json::from_str::<serde_json::Value>(j).unwrap())
        };
        let read: Vec<_> = read
            .iter()
            .map(|(t, i, b, j)| (t.clone(), *i, *b, json(j)))
            .collect();
        assert_eq!(
            read,
            vec![
                (None, None, false, None),
                (
                    Some("it's".to_owned()),
                    Some(-5),
                    true,
                    Some(serde_json::json!([1, 2]))
                ),
                (
                    Some("a".to_owned()),
                    Some(1),
                    true,
                    Some(serde_json::json!({"k": 1}))
                ),
            ]
        );
        assert_eq!(found, vec!["a".to_owned(), "it's".to_owned()]);
    }

    both_backends!(rows_and_lists_round_trip);
}
