//! [`SubscriptionRepository`], and the subscription and charge rows a commit writes.

use std::sync::LazyLock;

use async_trait::async_trait;
use domain::{ChargeStatus, PaymentId, State, Subscription, SubscriptionId, SubscriptionStatus};
use ports::{ChargeAttempt, StoreError, SubscriptionRepository, Versioned, Write};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::codec::{self, from_micros, micros};
use crate::db::{
    corrupt, get, sql_int, state_names, store_error, to_u32, versioned, versioned_write,
};

impl SqlStore {
    pub(crate) async fn write_subscription(
        tx: &mut Transaction<'_, Any>,
        w: &Write<Subscription>,
    ) -> Result<(), StoreError> {
        let s = &w.value;
        let data = codec::subscription_json(s);
        let next = s.next_charge_at().map(micros);
        let result = match w.expected_version {
            None => sqlx::query(
                "INSERT INTO subscriptions (id, version, customer, status, next_charge_at, created_at, data) VALUES ($1, 1, $2, $3, $4, $5, $6)",
            )
            .bind(s.id().as_str())
            .bind(s.customer().as_str())
            .bind(s.status().as_str())
            .bind(next)
            .bind(micros(s.created_at()))
            .bind(data)
            .execute(&mut **tx)
            .await
            .map_err(store_error)?,
            Some(version) => sqlx::query(
                "UPDATE subscriptions SET version = version + 1, status = $1, next_charge_at = $2, data = $3 WHERE id = $4 AND version = $5",
            )
            .bind(s.status().as_str())
            .bind(next)
            .bind(data)
            .bind(s.id().as_str())
            .bind(version)
            .execute(&mut **tx)
            .await
            .map_err(store_error)?,
        };
        versioned_write(&result, "subscription", s.id())
    }

    pub(crate) async fn write_charge(
        tx: &mut Transaction<'_, Any>,
        c: &ChargeAttempt,
    ) -> Result<(), StoreError> {
        let updated = sqlx::query(
            "UPDATE subscription_charges SET status = $1 WHERE subscription_id = $2 AND period_index = $3 AND attempt = $4 AND payment_id = $5",
        )
        .bind(c.status.as_str())
        .bind(c.subscription_id.as_str())
        .bind(sql_int(c.period_index))
        .bind(sql_int(c.attempt))
        .bind(c.payment_id.as_ref().map(PaymentId::as_str))
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
        if updated.rows_affected() == 1 {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO subscription_charges (subscription_id, period_index, attempt, period_start, payment_id, status) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(c.subscription_id.as_str())
        .bind(sql_int(c.period_index))
        .bind(sql_int(c.attempt))
        .bind(micros(c.period_start))
        .bind(c.payment_id.as_ref().map(PaymentId::as_str))
        .bind(c.status.as_str())
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(store_error)
    }
}

pub(crate) fn subscription_row(row: &AnyRow) -> Result<Versioned<Subscription>, StoreError> {
    let data: String = get(row, "data")?;
    versioned(row, codec::subscription_from_json(&data).map_err(corrupt)?)
}

pub(crate) fn charge_row(row: &AnyRow) -> Result<ChargeAttempt, StoreError> {
    let status: String = get(row, "status")?;
    let bad = |e: domain::InvalidId| StoreError::Permanent(e.to_string());
    Ok(ChargeAttempt {
        subscription_id: SubscriptionId::parse(&get::<String>(row, "subscription_id")?)
            .map_err(bad)?,
        period_index: to_u32(get(row, "period_index")?)?,
        period_start: from_micros(get(row, "period_start")?).map_err(corrupt)?,
        attempt: to_u32(get(row, "attempt")?)?,
        payment_id: get::<Option<String>>(row, "payment_id")?
            .map(|id| PaymentId::parse(&id).map_err(bad))
            .transpose()?,
        status: ChargeStatus::parse(&status).ok_or_else(|| {
            StoreError::Permanent(format!("stored charge status {status:?} is unknown"))
        })?,
    })
}

const CHARGE_COLUMNS: &str =
    "subscription_id, period_index, attempt, period_start, payment_id, status";

#[async_trait]
impl SubscriptionRepository for SqlStore {
    async fn get(
        &self,
        id: &SubscriptionId,
    ) -> Result<Option<Versioned<Subscription>>, StoreError> {
        let row = self
            .optional(
                sqlx::query("SELECT version, data FROM subscriptions WHERE id = $1")
                    .bind(id.as_str()),
            )
            .await?;
        row.as_ref().map(subscription_row).transpose()
    }

    async fn due(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Versioned<Subscription>>, StoreError> {
        static DUE: LazyLock<String> = LazyLock::new(|| {
            format!(
                "SELECT version, data FROM subscriptions WHERE status IN ({}) AND next_charge_at <= $1 \
                 ORDER BY next_charge_at LIMIT $2",
                state_names(|s| {
                    matches!(s, SubscriptionStatus::Active | SubscriptionStatus::PastDue)
                }),
            )
        });
        let rows = self
            .all(sqlx::query(&DUE).bind(micros(now)).bind(sql_int(limit)))
            .await?;
        rows.iter().map(subscription_row).collect()
    }

    async fn charges(&self, id: &SubscriptionId) -> Result<Vec<ChargeAttempt>, StoreError> {
        let rows = self.all(sqlx::query(&format!(
            "SELECT {CHARGE_COLUMNS} FROM subscription_charges WHERE subscription_id = $1 ORDER BY period_index, attempt"
        ))
        .bind(id.as_str())).await?;
        rows.iter().map(charge_row).collect()
    }

    async fn charge_by_payment(
        &self,
        payment_id: &PaymentId,
    ) -> Result<Option<ChargeAttempt>, StoreError> {
        let row = self
            .optional(
                sqlx::query(&format!(
                    "SELECT {CHARGE_COLUMNS} FROM subscription_charges WHERE payment_id = $1"
                ))
                .bind(payment_id.as_str()),
            )
            .await?;
        row.as_ref().map(charge_row).transpose()
    }
}
