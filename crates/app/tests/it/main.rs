//! End to end: the real router over real HTTP, the in-process sandbox bank on
//! port 0, on both stores (a temporary SQLite file, and a fresh PostgreSQL
//! database on the server of `DATABASE_URL`).

/// Runs each listed scenario once per store, as `sqlite::<name>` and
/// `postgres::<name>` tests of the module that lists them.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::StoreKind::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::StoreKind::Postgres).await;
                }
            )*
        }
    };
}

mod api;
mod binary;
mod clock;
mod events;
mod flows;
mod independent_client;
mod instances;
mod outage;
mod reconcile;
mod subscriptions;
mod support;
mod tokens;
mod webhooks;
mod widget;
