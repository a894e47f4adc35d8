//! [`PaymentRepository`] and the payment rows a commit writes.

use async_trait::async_trait;
use domain::{
    BankSessionId, CustomerReference, Payment, PaymentId, PaymentStatus, State, TokenId,
    TokenStatus,
};
use ports::{DueCheck, Page, PaymentRepository, StoreError, Versioned, Write};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::SqlStore;
use crate::codec::{self, micros};
use crate::db::{corrupt, get, sql_int, store_error, to_u32, versioned, versioned_write};

/// A payment's versioned update (a macro, so that the guarded form below
/// extends the one text instead of repeating it).
macro_rules! update {
    () => {
        "UPDATE payments SET version = version + 1, session_id = $1, status = $2, \
         outcome_unknown = $3, updated_at = $4, data = $5, next_check_at = $6, checks = 0 \
         WHERE id = $7 AND version = $8"
    };
}

const UPDATE: &str = update!();

/// [`UPDATE`] while a token is active: the check rides on the write.
const UPDATE_WHILE_TOKEN_ACTIVE: &str = concat!(
    update!(),
    " AND EXISTS (SELECT 1 FROM tokens WHERE id = $9 AND status = $10)"
);

impl SqlStore {
    /// Writes a payment; an update with `chargeable_token` writes only while
    /// that token is active (see [`ports::ChangeSet::chargeable_token`]).
    pub(crate) async fn write_payment(
        connection: &mut AnyConnection,
        w: &Write<Payment>,
        chargeable_token: Option<&TokenId>,
    ) -> Result<(), StoreError> {
        let p = &w.value;
        let data = codec::payment_json(p);
        let session = p.session_id().map(ToString::to_string);
        let unknown = i64::from(p.outcome_unknown());
        // News resets the check schedule: the payment's own next check, none counted.
        let check = p.next_check_at().map(micros);
        let result = match w.expected_version {
            None => sqlx::query(
                "INSERT INTO payments (id, version, customer, session_id, status, outcome_unknown, created_at, updated_at, data, next_check_at, checks) \
                 VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9, 0)",
            )
            .bind(p.id().as_str())
            .bind(p.customer().as_str())
            .bind(session)
            .bind(p.status().as_str())
            .bind(unknown)
            .bind(micros(p.created_at()))
            .bind(micros(p.updated_at()))
            .bind(data)
            .bind(check)
            .execute(&mut *connection)
            .await
            .map_err(store_error)?,
            Some(version) => {
                let update = |sql| {
                    sqlx::query(sql)
                        .bind(session)
                        .bind(p.status().as_str())
                        .bind(unknown)
                        .bind(micros(p.updated_at()))
                        .bind(data)
                        .bind(check)
                        .bind(p.id().as_str())
                        .bind(version)
                };
                let update = match chargeable_token {
                    None => update(UPDATE),
                    Some(token) => update(UPDATE_WHILE_TOKEN_ACTIVE)
                        .bind(token.as_str())
                        .bind(TokenStatus::Active.as_str()),
                };
                update.execute(&mut *connection).await.map_err(store_error)?
            }
        };
        match chargeable_token {
            Some(token) if w.expected_version.is_some() && result.rows_affected() == 0 => {
                Err(StoreError::Conflict(format!(
                    "payment {} changed concurrently, or token {token} is no longer chargeable",
                    p.id()
                )))
            }
            _ => versioned_write(&result, "payment", p.id()),
        }
    }

    /// Fails with a conflict unless `token` is active (a change set's
    /// [`ports::ChangeSet::chargeable_token`] when no payment update checks it).
    pub(crate) async fn check_chargeable(
        connection: &mut AnyConnection,
        token: &TokenId,
    ) -> Result<(), StoreError> {
        let active = sqlx::query("SELECT 1 FROM tokens WHERE id = $1 AND status = $2")
            .bind(token.as_str())
            .bind(TokenStatus::Active.as_str())
            .fetch_optional(connection)
            .await
            .map_err(store_error)?;
        match active {
            Some(_) => Ok(()),
            None => Err(StoreError::Conflict(format!(
                "token {token} is no longer chargeable"
            ))),
        }
    }
}

pub(crate) fn payment_row(row: &AnyRow) -> Result<Versioned<Payment>, StoreError> {
    let data: String = get(row, "data")?;
    versioned(row, codec::payment_from_json(&data).map_err(corrupt)?)
}

#[async_trait]
impl PaymentRepository for SqlStore {
    async fn get(&self, id: &PaymentId) -> Result<Option<Versioned<Payment>>, StoreError> {
        let row = self
            .optional(
                sqlx::query("SELECT version, data FROM payments WHERE id = $1").bind(id.as_str()),
            )
            .await?;
        row.as_ref().map(payment_row).transpose()
    }

    async fn by_session(
        &self,
        session_id: &BankSessionId,
    ) -> Result<Option<Versioned<Payment>>, StoreError> {
        let row = self
            .optional(
                sqlx::query("SELECT version, data FROM payments WHERE session_id = $1")
                    .bind(session_id.as_str()),
            )
            .await?;
        row.as_ref().map(payment_row).transpose()
    }

    async fn list_by_customer(
        &self,
        customer: &CustomerReference,
        page: Page<PaymentId>,
    ) -> Result<Vec<Payment>, StoreError> {
        // Keyset paging on (created_at, id): stable while payments are added.
        let rows = match &page.after {
            None => self.all(sqlx::query("SELECT version, data FROM payments WHERE customer = $1 ORDER BY created_at DESC, id DESC LIMIT $2")
                .bind(customer.as_str())
                .bind(sql_int(page.limit))).await?,
            Some(after) => self.all(sqlx::query(
                "SELECT version, data FROM payments WHERE customer = $1 \
                 AND (created_at, id) < (SELECT created_at, id FROM payments WHERE id = $2) \
                 ORDER BY created_at DESC, id DESC LIMIT $3")
                .bind(customer.as_str())
                .bind(after.as_str())
                .bind(sql_int(page.limit))).await?,
        };
        rows.iter()
            .map(|r| payment_row(r).map(|v| v.value))
            .collect()
    }

    async fn due_for_check(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DueCheck>, StoreError> {
        let rows = self
            .all(
                sqlx::query(
                    "SELECT version, data, checks FROM payments WHERE next_check_at <= $1 \
                     ORDER BY next_check_at LIMIT $2",
                )
                .bind(micros(now))
                .bind(sql_int(limit)),
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DueCheck {
                    payment: payment_row(r)?.value,
                    checks: to_u32(get(r, "checks")?)?,
                })
            })
            .collect()
    }

    async fn checked(&self, id: &PaymentId, next: OffsetDateTime) -> Result<(), StoreError> {
        self.run(
            sqlx::query(
                "UPDATE payments SET next_check_at = $1, checks = checks + 1 WHERE id = $2 \
                 AND next_check_at IS NOT NULL",
            )
            .bind(micros(next))
            .bind(id.as_str()),
        )
        .await
    }

    async fn count_by_status(&self) -> Result<Vec<(PaymentStatus, u64)>, StoreError> {
        let rows = self
            .all(sqlx::query(
                "SELECT status, COUNT(*) AS n FROM payments GROUP BY status ORDER BY status",
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let name: String = get(row, "status")?;
                let status = PaymentStatus::parse(&name).ok_or_else(|| {
                    StoreError::Permanent(format!("unknown payment status {name:?}"))
                })?;
                Ok((status, u64::try_from(get::<i64>(row, "n")?).unwrap_or(0)))
            })
            .collect()
    }
}
