//! The store named by `DATABASE_URL`: opened (and migrated) on SQLite or PostgreSQL.

use std::sync::Arc;

use store_sql::SqlStore;
use store_sql::crypto::TokenKeys;

use crate::StartError;

/// Opens the store named by `DATABASE_URL`.
pub async fn open_store(url: &str, keys: Arc<TokenKeys>) -> Result<SqlStore, StartError> {
    let store = if url.starts_with("sqlite:") {
        store_sqlite::open(url, keys).await
    } else {
        store_postgres::open(url, keys).await
    };
    store.map_err(|e| StartError(format!("DATABASE_URL: {e}")))
}

/// Applies the migrations of the store named by `url`.
pub async fn migrate(url: &str) -> Result<(), StartError> {
    // Opening migrates; the token keys are not needed to change the schema.
    let store = open_store(url, Arc::new(TokenKeys::ephemeral())).await?;
    store.pool().close().await;
    Ok(())
}

/// A database URL without its password.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
