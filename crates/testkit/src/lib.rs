//! Test support shared by the crates' test suites.
//!
//! [`TestDb`] gives each test a database of its own: a file in a temporary directory for SQLite,
//! or a new database on the server named by `SWITCHBOARD_TEST_DATABASE_URL` for PostgreSQL.
//! [`both_backends!`] turns one async test function into a test per backend. [`fakes`] are the
//! provider APIs on loopback that Switchboard's senders are pointed at in tests.

pub mod fakes;

pub use fakes::{FakeGraph, FakeTwilio, Recorded, Reply};

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};
use tempfile::TempDir;
use tokio::sync::OnceCell;

/// The variable naming a PostgreSQL server (any database on it) that tests may create
/// databases on.
pub const PG_URL_VAR: &str = "SWITCHBOARD_TEST_DATABASE_URL";

/// Databases older than this, left by earlier runs that stopped early, are dropped.
const STALE_AFTER_SECS: u64 = 3600;

/// A database for one test. The SQLite file lives as long as this value.
pub struct TestDb {
    url: String,
    _dir: Option<TempDir>,
}

impl TestDb {
    /// A fresh SQLite database in its own temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("switchboard.db").display());
        TestDb {
            url,
            _dir: Some(dir),
        }
    }

    /// A fresh PostgreSQL database, or `None` when no server is configured. Under `CI=true` a
    /// missing server is a failure, never a skip.
    pub async fn postgres() -> Option<TestDb> {
        let Some(admin_url) = pg_admin_url() else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but {PG_URL_VAR} is not set: the PostgreSQL tests must run in CI");
            }
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "\n*** PostgreSQL tests SKIPPED: set {PG_URL_VAR}=postgres://postgres@127.0.0.1:5432/postgres to run them ***\n"
                );
            }
            return None;
        };
        sweep_stale_databases(&admin_url).await;
        let now = unix_secs();
        let name = format!("sbtest_{now}_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {PG_URL_VAR}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        Some(TestDb {
            url: with_database(&admin_url, &name),
            _dir: None,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

fn pg_admin_url() -> Option<String> {
    std::env::var(PG_URL_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The same server URL with another database name in its path.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let authority_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Drops, once per process, the test databases that earlier runs left behind.
async fn sweep_stale_databases(admin_url: &str) {
    static SWEPT: OnceCell<()> = OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let Ok(mut conn) = PgConnection::connect(admin_url).await else {
                return;
            };
            let names: Vec<(String,)> =
                sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'sbtest\\_%'")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_default();
            let cutoff = unix_secs().saturating_sub(STALE_AFTER_SECS);
            for (name,) in names {
                let created = name
                    .split('_')
                    .nth(1)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                if created < cutoff {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            }
        })
        .await;
}

/// Declares, for each named `async fn(TestDb)`, a module with a `sqlite` and a `postgres` test.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::TestDb::sqlite()).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::TestDb::postgres().await {
                    super::$name(db).await
                }
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
