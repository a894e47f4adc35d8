//! [`WebhookInbox`]: verified bank webhooks, stored before they are applied.

use async_trait::async_trait;
use ports::{InboundWebhook, InboxItem, StoreError, WebhookInbox};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::codec::{from_micros, micros};
use crate::db::{corrupt, get, sql_int, store_error, to_u32};

#[async_trait]
impl WebhookInbox for SqlStore {
    async fn store(&self, webhook: InboundWebhook) -> Result<bool, StoreError> {
        let at = micros(webhook.received_at);
        let result = sqlx::query(
            "INSERT INTO inbox (dedupe_key, body, received_at, status, attempts, next_attempt_at) VALUES ($1, $2, $3, 'pending', 0, 0) \
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(webhook.dedupe_key)
        .bind(webhook.body)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn pending(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<InboxItem>, StoreError> {
        let rows = self.all(sqlx::query(
            "SELECT id, body, received_at, attempts FROM inbox WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
        )
        .bind(micros(now))
        .bind(sql_int(limit))).await?;
        rows.iter()
            .map(|r| {
                Ok(InboxItem {
                    id: get(r, "id")?,
                    body: get(r, "body")?,
                    received_at: from_micros(get(r, "received_at")?).map_err(corrupt)?,
                    attempts: to_u32(get(r, "attempts")?)?,
                })
            })
            .collect()
    }

    async fn defer(&self, id: i64, until: OffsetDateTime, note: &str) -> Result<(), StoreError> {
        self.run(sqlx::query("UPDATE inbox SET attempts = attempts + 1, next_attempt_at = $1, note = $2 WHERE id = $3")
            .bind(micros(until))
            .bind(note)
            .bind(id)).await
    }

    async fn reject(&self, id: i64, note: &str) -> Result<(), StoreError> {
        self.run(
            sqlx::query("UPDATE inbox SET status = 'rejected', note = $1 WHERE id = $2")
                .bind(note)
                .bind(id),
        )
        .await
    }
}
