//! [`IdempotencyStore`]: the merchant API's `Idempotency-Key` records, and
//! the binding of a key to the payment its request created.

use async_trait::async_trait;
use domain::PaymentId;
use ports::{
    IDEMPOTENCY_LEASE, IDEMPOTENCY_TTL, IdempotencyBegin, IdempotencyBinding, IdempotencyClaim,
    IdempotencyLease, IdempotencyStore, StoreError, StoredResponse,
};
use sqlx::{Any, Transaction};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::codec::{from_micros, micros};
use crate::db::{corrupt, get, store_error};

impl SqlStore {
    /// Binds the key to the payment in the commit that creates it. A key
    /// whose lease was taken over (or that is bound already) is a conflict:
    /// the payment is then not created.
    pub(crate) async fn bind_idempotency(
        tx: &mut Transaction<'_, Any>,
        binding: &IdempotencyBinding,
    ) -> Result<(), StoreError> {
        let bound = sqlx::query(
            "UPDATE idempotency_keys SET payment_id = $1 \
             WHERE key = $2 AND payment_id IS NULL AND status = 'started' AND leased_until = $3",
        )
        .bind(binding.payment_id.as_str())
        .bind(binding.lease.key.as_str())
        .bind(micros(binding.lease.until))
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
        if bound.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(
                "the Idempotency-Key was taken over by a retry".into(),
            ))
        }
    }

    /// Takes over a key whose holder's lease (`old`, micros) lapsed.
    async fn take_over(
        &self,
        key: &str,
        old: Option<i64>,
        wall: OffsetDateTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        let until = wall + IDEMPOTENCY_LEASE;
        let taken = sqlx::query(
            "UPDATE idempotency_keys SET leased_until = $1 \
             WHERE key = $2 AND status = 'started' AND payment_id IS NULL \
             AND COALESCE(leased_until, -1) = $3",
        )
        .bind(micros(until))
        .bind(key)
        .bind(old.unwrap_or(-1))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(if taken.rows_affected() == 1 {
            IdempotencyBegin::Started(IdempotencyLease {
                key: key.to_owned(),
                until,
            })
        } else {
            // Another retry took it over first.
            IdempotencyBegin::InFlight
        })
    }
}

#[async_trait]
impl IdempotencyStore for SqlStore {
    async fn begin(&self, claim: IdempotencyClaim) -> Result<IdempotencyBegin, StoreError> {
        let key = claim.key.as_str();
        sqlx::query("DELETE FROM idempotency_keys WHERE key = $1 AND created_at < $2")
            .bind(key)
            .bind(micros(claim.now - IDEMPOTENCY_TTL))
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        let fingerprints = self.keys.request_fingerprints(&claim.content);
        let until = claim.wall + IDEMPOTENCY_LEASE;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (key, fingerprint, status, created_at, leased_until) \
             VALUES ($1, $2, 'started', $3, $4) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(&fingerprints[0])
        .bind(micros(claim.now))
        .bind(micros(until))
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        if inserted.rows_affected() == 1 {
            return Ok(IdempotencyBegin::Started(IdempotencyLease {
                key: key.to_owned(),
                until,
            }));
        }
        let row = self
            .optional(
                sqlx::query(
                    "SELECT fingerprint, status, response_status, response_body, payment_id, leased_until \
                     FROM idempotency_keys WHERE key = $1",
                )
                .bind(key),
            )
            .await?;
        let Some(row) = row else {
            // Expired and deleted between the two statements: take it again.
            return Box::pin(self.begin(claim)).await;
        };
        if !fingerprints.contains(&get::<String>(&row, "fingerprint")?) {
            return Ok(IdempotencyBegin::Mismatch);
        }
        if get::<String>(&row, "status")? == "done" {
            let status: i64 = get(&row, "response_status")?;
            return Ok(IdempotencyBegin::Replay(StoredResponse {
                status: u16::try_from(status)
                    .map_err(|_| StoreError::Permanent("stored status out of range".into()))?,
                body: get(&row, "response_body")?,
            }));
        }
        let leased_until: Option<i64> = get(&row, "leased_until")?;
        let lease_holds = match leased_until {
            Some(at) => from_micros(at).map_err(corrupt)? > claim.wall,
            None => false,
        };
        if lease_holds {
            return Ok(IdempotencyBegin::InFlight);
        }
        match get::<Option<String>>(&row, "payment_id")? {
            Some(id) => Ok(IdempotencyBegin::Bound(
                PaymentId::parse(&id).map_err(|e| StoreError::Permanent(e.to_string()))?,
            )),
            None => self.take_over(key, leased_until, claim.wall).await,
        }
    }

    async fn finish(&self, key: &str, response: StoredResponse) -> Result<(), StoreError> {
        self.run(sqlx::query("UPDATE idempotency_keys SET status = 'done', response_status = $1, response_body = $2 WHERE key = $3")
            .bind(i64::from(response.status))
            .bind(response.body)
            .bind(key)).await
    }

    async fn release(&self, lease: &IdempotencyLease) -> Result<(), StoreError> {
        let held = micros(lease.until);
        self.run(
            sqlx::query(
                "DELETE FROM idempotency_keys \
                 WHERE key = $1 AND status = 'started' AND payment_id IS NULL AND leased_until = $2",
            )
            .bind(lease.key.as_str())
            .bind(held),
        )
        .await?;
        // Bound: keep the binding, end the hold so a retry gets the payment.
        self.run(
            sqlx::query(
                "UPDATE idempotency_keys SET leased_until = 0 \
                 WHERE key = $1 AND status = 'started' AND leased_until = $2",
            )
            .bind(lease.key.as_str())
            .bind(held),
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
