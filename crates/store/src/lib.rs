//! Persistence for Switchboard on SQLite (the embedded default) and PostgreSQL.
//!
//! [`Store`] is an enum over the two backends. Each method is written once: the [`read_pool!`] and
//! [`write_tx!`] macros expand its body for each backend's native connection type, so the SQL text
//! and the row mapping are shared while each backend keeps its own types, pool layout and
//! transaction discipline. Methods take and return domain types; no sqlx type leaks out.

mod error;
#[macro_use]
mod macros;
mod bulk;
mod rows;

pub mod campaigns;
pub mod consent;
pub mod contacts;
pub mod conversations;
pub mod decisions;
pub mod idempotency;
pub mod imports;
pub mod jobs;
pub mod lists;
pub mod media;
pub mod messages;
pub mod page;
pub mod senders;
pub mod sessions;
pub mod settings;
pub mod templates;
pub mod tokens;
pub mod users;
pub mod webhooks;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use error::StoreError;
pub use idempotency::{IdempotencyHit, IdempotencyKey};
pub use page::{Order, Page, PageRequest};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Chooses the backend from the URL's scheme, and refuses any other scheme loudly.
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Config(
                "the database URL must start with sqlite: or postgres://".to_owned(),
            ))
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// SQLite allows one writer at a time, so writes go through a single connection that opens
/// every transaction with `BEGIN IMMEDIATE` (a deferred transaction that reads and then writes
/// can fail with SQLITE_BUSY_SNAPSHOT, which busy_timeout does not cover); reads use a pool.
/// A connection of its own copies the write-ahead log back into the database
/// ([`Store::checkpoint`]), so that the writer need not.
///
/// The webhook inbox is a second database file beside the first, with pools of its own
/// ([`Store::inbox`]): webhooks are committed before they are answered, and with one writer
/// for both files every answer waited behind the processing of earlier webhooks.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    checkpointer: SqlitePool,
    /// `None` on the inbox itself.
    inbox: Option<Arc<Store>>,
}

/// What one pass of [`Store::checkpoint`] found: the pages in the write-ahead log, and how
/// many of them are now in the database itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub log_pages: i64,
    pub copied_pages: i64,
}

#[derive(Clone, Debug)]
pub struct PgBackend {
    pub(crate) pool: PgPool,
}

/// The database. Cheap to clone: the pools are reference-counted.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteBackend),
    Postgres(PgBackend),
}

impl Store {
    /// Opens the database the URL names (creating an SQLite file if needed) and runs the
    /// pending migrations before returning.
    pub async fn open(url: &str) -> Result<Self> {
        let store = match Backend::from_url(url)? {
            Backend::Sqlite => Store::Sqlite(open_sqlite(url).await?),
            Backend::Postgres => Store::Postgres(open_postgres(url).await?),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Where the webhook inbox is kept: on SQLite a database file of its own, on PostgreSQL
    /// the main database (which has no single writer to share).
    pub(crate) fn inbox(&self) -> &Store {
        match self {
            Store::Sqlite(SqliteBackend {
                inbox: Some(inbox), ..
            }) => inbox,
            _ => self,
        }
    }

    async fn migrate(&self) -> Result<()> {
        match self {
            Store::Sqlite(b) => {
                if let Some(Store::Sqlite(inbox)) = b.inbox.as_deref() {
                    sqlx::migrate!("./migrations/sqlite-inbox")
                        .run(&inbox.writer)
                        .await?;
                    move_webhooks_to_inbox(b, inbox).await?;
                }
                sqlx::migrate!("./migrations/sqlite").run(&b.writer).await?
            }
            Store::Postgres(b) => sqlx::migrate!("./migrations/postgres").run(&b.pool).await?,
        }
        Ok(())
    }

    /// Answers whether the database is reachable, for the health check.
    pub async fn ping(&self) -> Result<()> {
        read_pool!(self, |db| {
            sqlx::query("SELECT 1").execute(db).await?;
        });
        Ok(())
    }

    /// Deletes one row by id: [`StoreError::NotFound`] if there is none, [`StoreError::InUse`]
    /// if other rows still refer to it. `table` is one of our table names, never input.
    pub(crate) async fn delete_by_id(&self, table: &'static str, id: &str) -> Result<()> {
        let sql = format!("DELETE FROM {table} WHERE id = $1");
        let deleted = write_tx!(self, |tx| {
            sqlx::query(&sql)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Copies what SQLite's write-ahead log holds into the database file, without waiting
    /// for readers or the writer (a passive checkpoint). The writer would otherwise do it
    /// itself after a commit once the log passes its threshold, holding up every write
    /// waiting behind it; run often from a task of its own, it keeps the log short and that
    /// work off the writer. `None` on PostgreSQL, which checkpoints by itself.
    ///
    /// The webhook inbox's file is checkpointed in the same pass; the figures are the sums.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>> {
        let Store::Sqlite(b) = self else {
            return Ok(None);
        };
        let (_busy, mut log_pages, mut copied_pages): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&b.checkpointer)
                .await?;
        if let Some(inbox) = &b.inbox {
            if let Some(pass) = Box::pin(inbox.checkpoint()).await? {
                log_pages += pass.log_pages;
                copied_pages += pass.copied_pages;
            }
        }
        Ok(Some(Checkpoint {
            log_pages,
            copied_pages,
        }))
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(b) => {
                b.writer.close().await;
                b.reader.close().await;
                b.checkpointer.close().await;
                if let Some(inbox) = &b.inbox {
                    Box::pin(inbox.close()).await;
                }
            }
            Store::Postgres(b) => b.pool.close().await,
        }
    }
}

/// The webhook inbox's file, beside the main one: `switchboard.db` keeps its webhooks in
/// `switchboard-webhooks.db`.
pub(crate) fn inbox_path(main: &Path) -> PathBuf {
    let stem = main.file_stem().unwrap_or_default().to_string_lossy();
    let name = match main.extension() {
        Some(extension) => format!("{stem}-webhooks.{}", extension.to_string_lossy()),
        None => format!("{stem}-webhooks"),
    };
    main.with_file_name(name)
}

/// Databases written before the inbox had a file of its own kept its rows in the main file:
/// copies any there across before migration 0015 drops that table. An interrupted copy is
/// simply made again (rows already copied are skipped).
async fn move_webhooks_to_inbox(main: &SqliteBackend, inbox: &SqliteBackend) -> Result<()> {
    let (tables,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'webhook_events'",
    )
    .fetch_one(&main.writer)
    .await?;
    if tables == 0 {
        return Ok(());
    }
    let path = {
        let mut connection = inbox.writer.acquire().await?;
        let (path,): (String,) =
            sqlx::query_as("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&mut *connection)
                .await?;
        path
    };
    let mut connection = main.writer.acquire().await?;
    sqlx::query("ATTACH DATABASE $1 AS inbox")
        .bind(&path)
        .execute(&mut *connection)
        .await?;
    // Every webhook copied is pending by the inbox's trigger; those processed here already
    // take their outcomes across and are pending no more.
    let copied = async {
        let copied = sqlx::query(
            "INSERT INTO inbox.webhook_events (id, provider, sender_id, dedupe_key, body, \
             received_at) SELECT id, provider, sender_id, dedupe_key, body, received_at \
             FROM main.webhook_events WHERE true ON CONFLICT DO NOTHING",
        )
        .execute(&mut *connection)
        .await?;
        sqlx::query(
            "INSERT INTO inbox.webhook_outcomes (id, processed_at, outcome) \
             SELECT id, processed_at, COALESCE(outcome, '') FROM main.webhook_events \
             WHERE processed_at IS NOT NULL ON CONFLICT DO NOTHING",
        )
        .execute(&mut *connection)
        .await?;
        sqlx::query(
            "DELETE FROM inbox.webhook_pending \
             WHERE id IN (SELECT id FROM inbox.webhook_outcomes)",
        )
        .execute(&mut *connection)
        .await?;
        Ok::<_, sqlx::Error>(copied)
    }
    .await;
    sqlx::query("DETACH DATABASE inbox")
        .execute(&mut *connection)
        .await?;
    if let Ok(done) = &copied {
        tracing::info!(
            webhooks = done.rows_affected(),
            path,
            "moved the webhook inbox to its own file"
        );
    }
    copied?;
    Ok(())
}

async fn open_sqlite(url: &str) -> Result<SqliteBackend> {
    let options = SqliteConnectOptions::from_str(url)?;
    let inbox_options = options.clone().filename(inbox_path(options.get_filename()));
    let mut main = open_sqlite_file(options).await?;
    let inbox = open_sqlite_file(inbox_options).await?;
    main.inbox = Some(Arc::new(Store::Sqlite(inbox)));
    Ok(main)
}

async fn open_sqlite_file(options: SqliteConnectOptions) -> Result<SqliteBackend> {
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        // sqlx hands each row from its SQLite thread to the caller through a channel; at the
        // default of 50 a batch's result stalls that thread every 50 rows until the caller
        // catches up, two thread switches each time.
        .row_buffer_size(1024);
    // A connection to a local file does not go stale, and sqlx's check before lending one out
    // is a round trip to the connection's thread: on the single writer, one more wait a
    // transaction.
    let writer = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(1)
        .connect_with(
            options
                .clone()
                // The pages a write touches (the tables' and indexes' newest leaves, and the
                // inner pages above them) stay in memory between transactions: 16 MiB
                // rather than SQLite's 2.
                .pragma("cache_size", "-16384")
                // A safety net only: Store::checkpoint keeps the log well below this (16 MiB)
                // unless it falls behind.
                .pragma("wal_autocheckpoint", "4000"),
        )
        .await?;
    let reader = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(4)
        .connect_with(options.clone().read_only(true))
        .await?;
    let checkpointer = SqlitePoolOptions::new()
        .test_before_acquire(false)
        .max_connections(1)
        .connect_with(options)
        .await?;
    Ok(SqliteBackend {
        writer,
        reader,
        checkpointer,
        inbox: None,
    })
}

async fn open_postgres(url: &str) -> Result<PgBackend> {
    let options = PgConnectOptions::from_str(url)?;
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(PgBackend { pool })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_chooses_the_backend() {
        assert_eq!(Backend::from_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("sqlite:x.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::from_url("postgres://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::from_url("mysql://u@h/db").is_err());
    }

    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |dir: &str| {
            let mut v: Vec<String> =
                std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
            v.sort();
            v
        };
        assert_eq!(names("sqlite"), names("postgres"));
        assert!(!names("sqlite").is_empty());
    }

    #[test]
    fn the_inbox_file_is_named_after_the_main_one() {
        assert_eq!(
            inbox_path(Path::new("/var/lib/sb/switchboard.db")),
            Path::new("/var/lib/sb/switchboard-webhooks.db")
        );
        assert_eq!(
            inbox_path(Path::new("data/hub")),
            Path::new("data/hub-webhooks")
        );
    }

    /// `migrator` without its migrations from `version` on: a database as an older build left
    /// it.
    fn before(mut migrator: sqlx::migrate::Migrator, version: i64) -> sqlx::migrate::Migrator {
        migrator.migrations = migrator
            .migrations
            .iter()
            .filter(|m| m.version < version)
            .cloned()
            .collect();
        migrator
    }

    /// A database from before the inbox had a file of its own: its webhooks, processed or
    /// waiting, are in the inbox after the upgrade, once, and the old table is gone.
    #[tokio::test]
    async fn an_older_database_moves_its_webhooks_to_the_inbox_file() {
        use sqlx::{ConnectOptions, Connection};

        let db = switchboard_testkit::TestDb::sqlite();
        let options = SqliteConnectOptions::from_str(db.url())
            .unwrap()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        {
            let older = before(sqlx::migrate!("./migrations/sqlite"), 15);
            let mut connection = options.connect().await.unwrap();
            older.run(&mut connection).await.unwrap();
            for (id, processed_at) in [("w-done", Some(5_i64)), ("w-waiting", None)] {
                sqlx::query(
                    "INSERT INTO webhook_events (id, provider, dedupe_key, body, received_at, \
                     processed_at, outcome) VALUES ($1, 'whatsapp', $1, '{}', 1, $2, $3)",
                )
                .bind(id)
                .bind(processed_at)
                .bind(processed_at.map(|_| "messages=1"))
                .execute(&mut connection)
                .await
                .unwrap();
            }
            connection.close().await.unwrap();
        }
        for _ in 0..2 {
            let store = Store::open(db.url()).await.unwrap();
            assert_eq!(store.count_webhooks().await.unwrap(), 2);
            let waiting = store.pending_webhooks(10).await.unwrap();
            assert_eq!(waiting.len(), 1);
            assert_eq!(waiting[0].id, "w-waiting");
            let outcome = store.webhook_outcome("w-done").await.unwrap();
            assert_eq!(outcome, Some((rows::at(5), "messages=1".to_owned())));
            let Store::Sqlite(main) = &store else {
                unreachable!()
            };
            let (tables,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM sqlite_master WHERE name = 'webhook_events'")
                    .fetch_one(&main.reader)
                    .await
                    .unwrap();
            assert_eq!(tables, 0, "the main file no longer holds the inbox");
            store.close().await;
        }
        assert!(inbox_path(options.get_filename()).exists());
    }

    /// Webhooks stored before the inbox kept its pending ones in a table of their own (main
    /// migration 0020, SQLite's inbox 0002): those waiting still wait, in order, and those
    /// processed keep their outcomes.
    async fn webhooks_from_before_the_pending_table_keep_their_state(
        db: switchboard_testkit::TestDb,
    ) {
        use sqlx::{ConnectOptions, Connection};

        let rows = [
            ("w-done", 1_i64, Some(5_i64)),
            ("w-second", 3, None),
            ("w-first", 2, None),
        ];
        macro_rules! insert_webhooks {
            ($connection:ident) => {
                for (id, received_at, processed_at) in rows {
                    sqlx::query(
                        "INSERT INTO webhook_events (id, provider, dedupe_key, body, \
                         received_at, processed_at, outcome) \
                         VALUES ($1, 'whatsapp', $1, '{}', $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(received_at)
                    .bind(processed_at)
                    .bind(processed_at.map(|_| "messages=1"))
                    .execute(&mut $connection)
                    .await
                    .unwrap();
                }
                $connection.close().await.unwrap();
            };
        }
        if db.is_postgres() {
            let older = before(sqlx::migrate!("./migrations/postgres"), 20);
            let mut connection = sqlx::PgConnection::connect(db.url()).await.unwrap();
            older.run(&mut connection).await.unwrap();
            insert_webhooks!(connection);
        } else {
            let main = SqliteConnectOptions::from_str(db.url()).unwrap();
            let options = main
                .clone()
                .filename(inbox_path(main.get_filename()))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal);
            let older = before(sqlx::migrate!("./migrations/sqlite-inbox"), 2);
            let mut connection = options.connect().await.unwrap();
            older.run(&mut connection).await.unwrap();
            insert_webhooks!(connection);
        }
        let store = Store::open(db.url()).await.unwrap();
        assert_eq!(store.count_webhooks().await.unwrap(), 3);
        let waiting: Vec<String> = store
            .pending_webhooks(10)
            .await
            .unwrap()
            .into_iter()
            .map(|w| w.id)
            .collect();
        assert_eq!(waiting, ["w-first", "w-second"]);
        assert_eq!(
            store.webhook_outcome("w-done").await.unwrap(),
            Some((rows::at(5), "messages=1".to_owned()))
        );
        assert_eq!(store.webhook_outcome("w-first").await.unwrap(), None);
        store.close().await;
    }

    #[tokio::test]
    async fn sqlite_webhooks_from_before_the_pending_table_keep_their_state() {
        webhooks_from_before_the_pending_table_keep_their_state(
            switchboard_testkit::TestDb::sqlite(),
        )
        .await;
    }

    #[tokio::test]
    async fn postgres_webhooks_from_before_the_pending_table_keep_their_state() {
        if let Some(db) = switchboard_testkit::TestDb::postgres().await {
            webhooks_from_before_the_pending_table_keep_their_state(db).await;
        }
    }

    /// The inbox searches conversations, so a message is in the SQLite search index exactly
    /// while it belongs to one (once the indexer has taken it): a campaign's messages stay out
    /// until their answer joins them.
    #[tokio::test]
    async fn only_messages_in_a_conversation_are_in_the_search_index() {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::{ConnectOptions, Connection};
        use std::str::FromStr;

        // Without foreign keys the rows need no senders, contacts or conversations.
        let mut db = SqliteConnectOptions::from_str("sqlite::memory:")
            .unwrap()
            .foreign_keys(false)
            .connect()
            .await
            .unwrap();
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut db)
            .await
            .unwrap();
        const INSERT: &str = "INSERT INTO messages (id, direction, channel, sender_id, \
             contact_id, conversation_id, text, channel_template_type, status, created_at, \
             updated_at) VALUES ($1, 'outbound', 'sms', 's', 'c', $2, 'spring prices', \
             'free_form', 'queued', 0, 0)";
        // Each step, then what a search for "spring prices" finds once the indexer has taken
        // every waiting message (`None`: the indexer does not run yet).
        type Step = (
            &'static str,
            &'static [&'static str],
            Option<&'static [&'static str]>,
        );
        let steps: [Step; 12] = [
            (INSERT, &["m-campaign"], Some(&[])),
            (INSERT, &["m-inbox", "conv"], Some(&["m-inbox"])),
            // The answer brings the campaign message into the conversation, and the index.
            (
                "UPDATE messages SET conversation_id = 'conv' WHERE id = $1",
                &["m-campaign"],
                Some(&["m-campaign", "m-inbox"]),
            ),
            // An edited text replaces its entry.
            (
                "UPDATE messages SET text = 'autumn' WHERE id = $1",
                &["m-campaign"],
                Some(&["m-inbox"]),
            ),
            (
                "UPDATE messages SET text = 'spring prices again' WHERE id = $1",
                &["m-campaign"],
                Some(&["m-campaign", "m-inbox"]),
            ),
            (
                "UPDATE messages SET text = 'autumn' WHERE id = $1",
                &["m-campaign"],
                Some(&["m-inbox"]),
            ),
            // Edited or deleted while it waits, a message never reaches the index as it was.
            (INSERT, &["m-waiting", "conv"], None),
            (
                "UPDATE messages SET text = 'winter' WHERE id = $1",
                &["m-waiting"],
                Some(&["m-inbox"]),
            ),
            (INSERT, &["m-gone", "conv"], None),
            (
                "DELETE FROM messages WHERE id = $1",
                &["m-gone"],
                Some(&["m-inbox"]),
            ),
            // A message leaving its conversation leaves the index.
            (
                "UPDATE messages SET conversation_id = NULL WHERE id = $1",
                &["m-inbox"],
                Some(&[]),
            ),
            ("DELETE FROM messages WHERE id <> $1", &["-"], Some(&[])),
        ];
        for (sql, binds, expected) in steps {
            let mut query = sqlx::query(sql);
            for value in binds {
                query = query.bind(*value);
            }
            if sql == INSERT && binds.len() == 1 {
                query = query.bind(None::<&str>);
            }
            query.execute(&mut db).await.unwrap();
            let Some(expected) = expected else {
                continue;
            };
            for sql in [
                conversations::INDEX_WAITING_MESSAGES,
                conversations::FORGET_WAITING_MESSAGES,
            ] {
                sqlx::query(sql)
                    .bind(i64::MAX)
                    .execute(&mut db)
                    .await
                    .unwrap();
            }
            let found: Vec<String> = sqlx::query_scalar(
                "SELECT m.id FROM messages m WHERE m.rowid IN (SELECT rowid \
                 FROM messages_search WHERE messages_search MATCH '\"spring prices\"') \
                 ORDER BY m.id",
            )
            .fetch_all(&mut db)
            .await
            .unwrap();
            assert_eq!(found, expected, "after {sql} {binds:?}");
        }
        // 'integrity-check' fails if the index holds an entry its content no longer has.
        sqlx::query("INSERT INTO messages_search (messages_search) VALUES ('integrity-check')")
            .execute(&mut db)
            .await
            .unwrap();
        db.close().await.unwrap();
    }
}
