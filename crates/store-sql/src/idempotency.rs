//! [`IdempotencyStore`]: the merchant API's `Idempotency-Key` records.

use async_trait::async_trait;
use ports::{IDEMPOTENCY_TTL, IdempotencyBegin, IdempotencyStore, StoreError, StoredResponse};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::codec::micros;
use crate::db::{get, store_error};

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn begin(
        &self,
        key: &str,
        fingerprint: &str,
        now: OffsetDateTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND created_at < $2")
            .bind(key)
            .bind(micros(now - IDEMPOTENCY_TTL))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (key, fingerprint, status, created_at) VALUES ($1, $2, 'started', $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(fingerprint)
        .bind(micros(now))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        if inserted.rows_affected() == 1 {
            return Ok(IdempotencyBegin::Started);
        }
        let row = self.optional(sqlx::query("SELECT fingerprint, status, response_status, response_body FROM idempotency_keys WHERE key = $1")
            .bind(key)).await?;
        let Some(row) = row else {
            // Expired and deleted between the two statements: take it again.
            return Box::pin(self.begin(key, fingerprint, now)).await;
        };
        if get::<String>(&row, "fingerprint")? != fingerprint {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if get::<String>(&row, "status")? != "done" {
            return Ok(IdempotencyBegin::InFlight);
        }
        let status: i64 = get(&row, "response_status")?;
        Ok(IdempotencyBegin::Replay(StoredResponse {
            status: u16::try_from(status)
                .map_err(|_| StoreError::Permanent("stored status out of range".into()))?,
            body: get(&row, "response_body")?,
        }))
    }

    async fn finish(&self, key: &str, response: StoredResponse) -> Result<(), StoreError> {
        self.run(sqlx::query("UPDATE idempotency_keys SET status = 'done', response_status = $1, response_body = $2 WHERE key = $3")
            .bind(i64::from(response.status))
            .bind(response.body)
            .bind(key)).await
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.run(
            sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND status = 'started'")
                .bind(key),
        )
        .await
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(micros(now - IDEMPOTENCY_TTL))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}
