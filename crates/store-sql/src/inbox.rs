//! [`WebhookInbox`]: verified bank webhooks, stored before they are applied.

use async_trait::async_trait;
use ports::{Backlog, InboundWebhook, InboxItem, StoreError, WebhookInbox};
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::SqlStore;
use crate::codec::{from_micros, micros};
use crate::crypto::Sealed;
use crate::db::{corrupt, get, sql_int, store_error, to_u32};

#[async_trait]
impl WebhookInbox for SqlStore {
    async fn store(&self, webhook: InboundWebhook) -> Result<bool, StoreError> {
        let at = micros(webhook.received_at);
        // The body carries raw bank tokens: sealed before it is written.
        let sealed = self.keys.seal_bytes(&webhook.dedupe_key, &webhook.body);
        let result = sqlx::query(
            "INSERT INTO inbox (dedupe_key, body, body_nonce, key_id, received_at, status, attempts, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', 0, 0) ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(webhook.dedupe_key)
        .bind(sealed.ciphertext)
        .bind(sealed.nonce)
        .bind(sealed.key_id)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() == 1)
    }

    async fn pending(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<InboxItem>, StoreError> {
        let rows = self.all(sqlx::query(
            "SELECT id, dedupe_key, body, body_nonce, key_id, received_at, attempts FROM inbox \
             WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
        )
        .bind(micros(now))
        .bind(sql_int(limit))).await?;
        rows.iter()
            .map(|r| {
                Ok(InboxItem {
                    id: get(r, "id")?,
                    body: self.open_body(r)?,
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

    async fn purge(&self, received_before: OffsetDateTime) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM inbox WHERE status IN ('applied', 'rejected') AND received_at < $1",
        )
        .bind(micros(received_before))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected())
    }

    async fn unapplied(&self) -> Result<Backlog, StoreError> {
        self.backlog_of(
            "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM inbox WHERE status = 'pending'",
        )
        .await
    }
}

impl SqlStore {
    fn open_body(&self, row: &AnyRow) -> Result<Vec<u8>, StoreError> {
        let key: String = get(row, "dedupe_key")?;
        let sealed = Sealed {
            ciphertext: get(row, "body")?,
            nonce: get(row, "body_nonce")?,
            key_id: get(row, "key_id")?,
        };
        self.keys
            .open_bytes(&key, &sealed)
            .map_err(|e| StoreError::Permanent(e.0))
    }

    /// Seals the bodies of rows stored before bodies were sealed, and those
    /// sealed with an old key (run when the store opens, and by rotation).
    pub async fn seal_inbox_bodies(&self) -> Result<u64, StoreError> {
        let rows = self
            .all(
                sqlx::query(
                    "SELECT id, dedupe_key, body, body_nonce, key_id FROM inbox \
                     WHERE key_id IS NULL OR key_id <> $1",
                )
                .bind(self.keys.current_id()),
            )
            .await?;
        for row in &rows {
            let id: i64 = get(row, "id")?;
            let key: String = get(row, "dedupe_key")?;
            let plain = match get::<Option<String>>(row, "key_id")? {
                None => get::<Vec<u8>>(row, "body")?,
                Some(_) => self.open_body(row)?,
            };
            let sealed = self.keys.seal_bytes(&key, &plain);
            self.run(
                sqlx::query(
                    "UPDATE inbox SET body = $1, body_nonce = $2, key_id = $3 WHERE id = $4",
                )
                .bind(sealed.ciphertext)
                .bind(sealed.nonce)
                .bind(sealed.key_id)
                .bind(id),
            )
            .await?;
        }
        Ok(rows.len() as u64)
    }
}
