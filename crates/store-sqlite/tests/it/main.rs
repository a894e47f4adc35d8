//! The conformance suite on SQLite (a fresh database file per test), and the
//! SQLite-specific checks: schema, pragmas, crash durability.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use store_sql::SqlStore;
use store_sql::crypto::TokenKeys;
use store_tests::Harness;

static NEXT: AtomicU64 = AtomicU64::new(0);

struct Sqlite {
    path: PathBuf,
    key: String,
    store: Arc<SqlStore>,
}

impl Sqlite {
    fn url(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    async fn open_with(&self, current: &str, old: Option<&str>) -> Arc<SqlStore> {
        let keys = Arc::new(TokenKeys::from_base64(current, old).unwrap());
        Arc::new(store_sqlite::open(&self.url(), keys).await.unwrap())
    }
}

#[async_trait]
impl Harness for Sqlite {
    type Store = SqlStore;

    async fn fresh() -> Self {
        let dir = std::env::temp_dir().join("recur-store-tests");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "t-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let key = TokenKeys::generate_base64();
        let mut h = Self {
            path,
            key,
            store: Arc::new(placeholder().await),
        };
        h.store = h.open_with(&h.key.clone(), None).await;
        h
    }

    fn store(&self) -> Arc<SqlStore> {
        self.store.clone()
    }

    async fn reopen(&self) -> Arc<SqlStore> {
        self.open_with(&self.key, None).await
    }

    async fn reopen_delivering_events(&self) -> Arc<SqlStore> {
        let keys = Arc::new(TokenKeys::from_base64(&self.key, None).unwrap());
        let url = self.url();
        Arc::new(
            store_sqlite::open(&url, keys)
                .await
                .unwrap()
                .delivering_events(true),
        )
    }

    async fn reopen_with_keys(&self, current: &str, old: Option<&str>) -> Arc<SqlStore> {
        self.open_with(current, old).await
    }

    fn token_key(&self) -> String {
        self.key.clone()
    }

    async fn rotate(&self, store: &SqlStore) -> u64 {
        store.rotate_token_key().await.unwrap()
    }

    async fn raw_dump(&self) -> Vec<u8> {
        // Everything the database holds is in its file and its write-ahead log.
        let mut bytes = std::fs::read(&self.path).unwrap();
        bytes.extend(std::fs::read(format!("{}-wal", self.path.display())).unwrap_or_default());
        bytes
    }

    async fn cleanup(self) {
        self.store.pool().close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

/// An in-memory store to fill the field before the real one opens.
async fn placeholder() -> SqlStore {
    let keys = Arc::new(TokenKeys::from_base64(&TokenKeys::generate_base64(), None).unwrap());
    store_sqlite::open("sqlite::memory:", keys).await.unwrap()
}

store_tests::conformance!(Sqlite);

#[tokio::test]
async fn migrations_on_an_empty_database_give_the_expected_schema() {
    let h = Sqlite::fresh().await;
    for (table, _) in store_tests::SCHEMA {
        store_tests::check_table(table, &h.store.columns(table).await.unwrap());
    }
    h.cleanup().await;
}

#[tokio::test]
async fn the_database_runs_in_wal_mode_with_full_sync() {
    let h = Sqlite::fresh().await;
    let mode: String = sqlx::Row::get(
        &sqlx::query("PRAGMA journal_mode")
            .fetch_one(h.store.pool())
            .await
            .unwrap(),
        0,
    );
    let sync: i64 = sqlx::Row::get(
        &sqlx::query("PRAGMA synchronous")
            .fetch_one(h.store.pool())
            .await
            .unwrap(),
        0,
    );
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "synchronous=FULL");
    h.cleanup().await;
}

/// What `recur migrate` does: open (which migrates) and close.
async fn app_migrate(url: &str) {
    let keys = Arc::new(TokenKeys::ephemeral());
    store_sqlite::open(url, keys)
        .await
        .unwrap()
        .pool()
        .close()
        .await;
}

#[tokio::test]
async fn migrate_alone_creates_the_database_file() {
    let path = std::env::temp_dir().join(format!("recur-migrate-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}", path.display());
    app_migrate(&url).await;
    assert!(path.exists());
    app_migrate(&url).await;
    let _ = std::fs::remove_file(&path);
}

/// The table rebuild of migration 0005 (a nullable `payment_id` for skipped
/// periods) keeps every charge row and the one-success-per-period rule: a
/// lost row would let a period be charged twice.
#[tokio::test]
async fn upgrading_past_the_charges_rebuild_keeps_every_charge_and_its_rule() {
    use sqlx::migrate::Migrator;
    use sqlx::{Connection, Executor, Row};

    let dir = std::env::temp_dir().join("recur-store-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("upgrade-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let before_0005 = Migrator {
        migrations: store_sqlite::MIGRATOR
            .migrations
            .iter()
            .filter(|m| m.version < 5)
            .cloned()
            .collect(),
        ..Migrator::DEFAULT
    };
    before_0005.run(&mut conn).await.unwrap();
    conn.execute(
        "INSERT INTO subscription_charges (subscription_id, period_index, attempt, period_start, payment_id, status) VALUES \
         ('sub_1', 0, 1, 0, 'pay_a', 'failed'), ('sub_1', 0, 2, 0, 'pay_b', 'succeeded'), ('sub_1', 1, 1, 10, 'pay_c', 'pending')",
    )
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = store_sqlite::open(
        &format!("sqlite://{}", path.display()),
        Arc::new(TokenKeys::ephemeral()),
    )
    .await
    .unwrap();
    let rows = sqlx::query(
        "SELECT period_index, attempt, payment_id, status FROM subscription_charges ORDER BY period_index, attempt",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let kept: Vec<(i64, i64, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        kept,
        vec![
            (0, 1, "pay_a".into(), "failed".into()),
            (0, 2, "pay_b".into(), "succeeded".into()),
            (1, 1, "pay_c".into(), "pending".into()),
        ]
    );
    let second_success = sqlx::query(
        "INSERT INTO subscription_charges (subscription_id, period_index, attempt, period_start, payment_id, status) \
         VALUES ('sub_1', 0, 3, 0, 'pay_d', 'succeeded')",
    )
    .execute(store.pool())
    .await;
    assert!(second_success.is_err(), "one success per period, still");
    store.pool().close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
