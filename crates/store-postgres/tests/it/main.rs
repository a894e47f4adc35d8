//! The conformance suite on PostgreSQL (a fresh database per test, on the
//! server of `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`),
//! and the PostgreSQL-specific schema check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use sqlx::{Connection, Executor, Row};
use store_sql::SqlStore;
use store_sql::crypto::TokenKeys;
use store_tests::Harness;

static NEXT: AtomicU64 = AtomicU64::new(0);

async fn admin() -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    let url = store_postgres::test_server_url();
    sqlx::AnyConnection::connect(&url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {url}: {e}; {}",
                store_postgres::START_HINT
            )
        })
}

struct Postgres {
    database: String,
    key: String,
    store: Arc<SqlStore>,
}

impl Postgres {
    async fn open_with(&self, current: &str, old: Option<&str>) -> Arc<SqlStore> {
        let keys = Arc::new(TokenKeys::from_base64(current, old).unwrap());
        Arc::new(
            store_postgres::open(
                &store_postgres::with_database(&store_postgres::test_server_url(), &self.database),
                keys,
            )
            .await
            .unwrap(),
        )
    }
}

#[async_trait]
impl Harness for Postgres {
    type Store = SqlStore;

    async fn fresh() -> Self {
        let database = format!(
            "recur_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = admin().await;
        conn.execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
            .await
            .unwrap();
        conn.execute(format!("CREATE DATABASE {database}").as_str())
            .await
            .unwrap();
        let key = TokenKeys::generate_base64();
        let keys = Arc::new(TokenKeys::from_base64(&key, None).unwrap());
        let store = Arc::new(
            store_postgres::open(
                &store_postgres::with_database(&store_postgres::test_server_url(), &database),
                keys,
            )
            .await
            .unwrap(),
        );
        Self {
            database,
            key,
            store,
        }
    }

    fn store(&self) -> Arc<SqlStore> {
        self.store.clone()
    }

    async fn reopen(&self) -> Arc<SqlStore> {
        self.open_with(&self.key, None).await
    }

    async fn reopen_delivering_events(&self) -> Arc<SqlStore> {
        let keys = Arc::new(TokenKeys::from_base64(&self.key, None).unwrap());
        let url = store_postgres::with_database(&store_postgres::test_server_url(), &self.database);
        Arc::new(
            store_postgres::open(&url, keys)
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
        let mut dump = Vec::new();
        for table in [
            "payments",
            "tokens",
            "subscriptions",
            "subscription_charges",
            "events",
            "outbox",
            "inbox",
            "idempotency_keys",
        ] {
            // Byte columns show as hex in JSON: convert them back so a plaintext token would be found.
            let rows = sqlx::query(&format!(
                "SELECT CAST(row_to_json(t) AS TEXT) AS r FROM {table} t"
            ))
            .fetch_all(self.store.pool())
            .await
            .unwrap();
            for row in rows {
                let text: String = row.get("r");
                dump.extend_from_slice(text.as_bytes());
                for hex in text.split("\\\\x").skip(1) {
                    let digits: String = hex.chars().take_while(char::is_ascii_hexdigit).collect();
                    dump.extend(
                        (0..digits.len() / 2)
                            .filter_map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok()),
                    );
                }
            }
        }
        dump
    }

    async fn cleanup(self) {
        self.store.pool().close().await;
        let mut conn = admin().await;
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database).as_str())
            .await;
    }
}

store_tests::conformance!(Postgres);

#[tokio::test]
async fn migrations_on_an_empty_database_give_the_expected_schema() {
    let h = Postgres::fresh().await;
    for (table, _) in store_tests::SCHEMA {
        store_tests::check_table(table, &h.store.columns(table).await.unwrap());
    }
    h.cleanup().await;
}

#[tokio::test]
async fn a_missing_server_fails_with_how_to_start_it() {
    let keys = Arc::new(TokenKeys::from_base64(&TokenKeys::generate_base64(), None).unwrap());
    let error = store_postgres::open("postgres://postgres@127.0.0.1:1/postgres", keys)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("pg_ctlcluster"), "{error}");
}

/// The outbox is a queue, empty most of the time. Statistics taken while it
/// was empty, and statements first run on it then, must not leave a plan
/// that scans the whole table behind when a backlog builds: completing and
/// claiming a command of a 3,000-row backlog reads it by index.
#[tokio::test]
async fn an_outbox_emptied_and_vacuumed_is_read_by_index_once_a_backlog_builds() {
    use domain::PaymentId;
    use ports::{ChangeSet, Outbox, OutboxCommand, UnitOfWork};

    let h = Postgres::fresh().await;
    let store = h.store();
    let now = time::OffsetDateTime::now_utc();
    let lease = time::Duration::seconds(30);
    let confirm =
        |i: usize| OutboxCommand::ConfirmSession(PaymentId::parse(&format!("pay_{i}")).unwrap());
    store.pool().execute("VACUUM ANALYZE outbox").await.unwrap();
    // More than five runs of each on the empty queue: PostgreSQL then keeps
    // a prepared statement's generic plan.
    for i in 0..10_usize {
        store.complete(i64::try_from(i).unwrap()).await.unwrap();
        store.claim_command(&confirm(i), now, lease).await.unwrap();
    }
    let backlog = ChangeSet {
        outbox: (0..3_000).map(confirm).collect(),
        ..ChangeSet::default()
    };
    store.commit(backlog, now).await.unwrap();
    let claims = 200;
    for i in 0..claims {
        let claimed = store.claim_command(&confirm(i), now, lease).await.unwrap();
        let ports::CommandClaim::Claimed(item) = claimed else {
            panic!("command {i} not claimed: {claimed:?}");
        };
        store.complete(item.id).await.unwrap();
    }
    let scans = sequential_scans_of_the_outbox(&h).await;
    // The empty queue's own runs scan it (free on no rows): at most three
    // statements each of the 20 warm-up calls.
    assert!(
        scans <= 60,
        "{scans} sequential scans of the outbox: the backlog's {claims} claims and completions scanned it"
    );
    h.cleanup().await;
}

/// The workers' batch claim, too, reads a backlog by index: the next due
/// commands in queue order, each event delivery checked against earlier
/// ones of its object, never the whole outbox per claim.
#[tokio::test]
async fn the_batch_claim_reads_a_backlog_by_index() {
    use domain::{EventId, PaymentId};
    use ports::{ChangeSet, Outbox, OutboxCommand, UnitOfWork};

    let h = Postgres::fresh().await;
    let store = h.store();
    let now = time::OffsetDateTime::now_utc();
    let lease = time::Duration::seconds(30);
    store.pool().execute("VACUUM ANALYZE outbox").await.unwrap();
    for _ in 0..10 {
        assert!(store.claim(now, 16, lease).await.unwrap().is_empty());
    }
    // Deliveries of 300 objects, ten each, between payment commands.
    let backlog = ChangeSet {
        outbox: (0..3_000_usize)
            .map(|i| match i % 10 {
                0 => OutboxCommand::ConfirmSession(PaymentId::parse(&format!("pay_{i}")).unwrap()),
                _ => OutboxCommand::DeliverEvent(EventId::parse(&format!("evt_{i}")).unwrap()),
            })
            .collect(),
        ..ChangeSet::default()
    };
    store.commit(backlog, now).await.unwrap();
    let mut claimed = 0;
    for _ in 0..25 {
        let batch = store.claim(now, 16, lease).await.unwrap();
        assert_eq!(batch.len(), 16, "a backlog fills every batch");
        for item in batch {
            store.complete(item.id).await.unwrap();
            claimed += 1;
        }
    }
    let scans = sequential_scans_of_the_outbox(&h).await;
    // The ten claims of the empty queue scan it (free on no rows), at most
    // twice each.
    assert!(
        scans <= 20,
        "{scans} sequential scans of the outbox: the backlog's claims of {claimed} commands scanned it"
    );
    h.cleanup().await;
}

/// How many times the outbox was read whole, once the store's connections
/// have ended (a backend reports its table statistics when it ends); at
/// least once, or the statistics never arrived.
async fn sequential_scans_of_the_outbox(h: &Postgres) -> i64 {
    h.store().pool().close().await;
    let mut admin = sqlx::AnyConnection::connect(&store_postgres::with_database(
        &store_postgres::test_server_url(),
        &h.database,
    ))
    .await
    .unwrap();
    let mut scans = 0;
    for _ in 0..50 {
        scans = sqlx::query_scalar::<_, i64>(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'outbox'",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        if scans > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The empty queue's own runs scan it (free on no rows): none counted
    // means the statistics never arrived, and nothing would be checked.
    assert!(
        scans > 0,
        "no table statistics arrived, so nothing was checked"
    );
    scans
}
