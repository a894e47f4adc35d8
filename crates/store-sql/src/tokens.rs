//! [`TokenRepository`], the token rows a commit writes (sealed), and key rotation.

use async_trait::async_trait;
use domain::{CustomerReference, RecurrentToken, RecurrentTokenSecret, State, TokenId};
use ports::{Page, StoreError, TokenRepository, Versioned, Write};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::SqlStore;
use crate::codec::{self, TokenColumns, micros};
use crate::crypto::Sealed;
use crate::db::{corrupt, get, sql_int, store_error, versioned, versioned_write};

impl SqlStore {
    /// Returns how many were re-encrypted.
    pub async fn rotate_token_key(&self) -> Result<u64, StoreError> {
        let rows = self.all(sqlx::query(
            "SELECT id, secret_ciphertext, secret_nonce, key_id FROM tokens WHERE key_id <> $1",
        )
        .bind(self.keys.current_id())).await?;
        let mut done = 0;
        for row in rows {
            let id: String = get(&row, "id")?;
            let sealed = Sealed {
                ciphertext: get(&row, "secret_ciphertext")?,
                nonce: get(&row, "secret_nonce")?,
                key_id: get(&row, "key_id")?,
            };
            let secret = self
                .keys
                .open(&id, &sealed)
                .map_err(|e| StoreError::Permanent(e.0))?;
            let resealed = self.keys.seal(&id, &secret);
            self.run(
                sqlx::query(
                    "UPDATE tokens SET secret_ciphertext = $1, secret_nonce = $2, key_id = $3, fingerprint = $4 \
                     WHERE id = $5 AND key_id = $6",
                )
                .bind(resealed.ciphertext)
                .bind(resealed.nonce)
                .bind(resealed.key_id)
                .bind(self.keys.fingerprint(&secret))
                .bind(&id)
                .bind(sealed.key_id),
            )
            .await?;
            done += 1;
        }
        // Stored webhook bodies carry raw tokens too.
        self.seal_inbox_bodies().await?;
        Ok(done)
    }

    /// Gives rows written before fingerprints existed theirs (run when the
    /// store opens; nothing to do once every row has one).
    pub async fn backfill_fingerprints(&self) -> Result<u64, StoreError> {
        let rows = self
            .all(sqlx::query(
                "SELECT id, secret_ciphertext, secret_nonce, key_id FROM tokens WHERE fingerprint IS NULL",
            ))
            .await?;
        for row in &rows {
            let id: String = get(row, "id")?;
            let secret = self.open_secret(&id, row)?;
            self.run(
                sqlx::query("UPDATE tokens SET fingerprint = $1 WHERE id = $2")
                    .bind(self.keys.fingerprint(&secret))
                    .bind(&id),
            )
            .await?;
        }
        Ok(rows.len() as u64)
    }

    fn open_secret(&self, id: &str, row: &AnyRow) -> Result<String, StoreError> {
        let sealed = Sealed {
            ciphertext: get(row, "secret_ciphertext")?,
            nonce: get(row, "secret_nonce")?,
            key_id: get(row, "key_id")?,
        };
        self.keys
            .open(id, &sealed)
            .map_err(|e| StoreError::Permanent(e.0))
    }

    pub(crate) fn token_row(&self, row: &AnyRow) -> Result<RecurrentToken, StoreError> {
        let id: String = get(row, "id")?;
        let secret = self.open_secret(&id, row)?;
        let customer: String = get(row, "customer")?;
        let status: String = get(row, "status")?;
        let data: String = get(row, "data")?;
        codec::token_from(&TokenColumns {
            id: &id,
            customer: &customer,
            status: &status,
            secret: &secret,
            created_at: get(row, "created_at")?,
            data: &data,
        })
        .map_err(corrupt)
    }

    pub(crate) async fn write_token(
        &self,
        tx: &mut Transaction<'_, Any>,
        w: &Write<RecurrentToken>,
    ) -> Result<(), StoreError> {
        let t = &w.value;
        let data = codec::token_json(t);
        let result = match w.expected_version {
            None => {
                let sealed = self.keys.seal(t.id.as_str(), t.secret.expose());
                sqlx::query(
                    "INSERT INTO tokens (id, version, customer, status, secret_ciphertext, secret_nonce, key_id, created_at, data, fingerprint) \
                     VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(t.id.as_str())
                .bind(t.customer.as_str())
                .bind(t.status().as_str())
                .bind(sealed.ciphertext)
                .bind(sealed.nonce)
                .bind(sealed.key_id)
                .bind(micros(t.created_at))
                .bind(data)
                .bind(self.keys.fingerprint(t.secret.expose()))
                .execute(&mut **tx)
                .await
                .map_err(store_error)?
            }
            Some(version) => sqlx::query("UPDATE tokens SET version = version + 1, status = $1, data = $2 WHERE id = $3 AND version = $4")
                .bind(t.status().as_str())
                .bind(data)
                .bind(t.id.as_str())
                .bind(version)
                .execute(&mut **tx)
                .await
                .map_err(store_error)?,
        };
        versioned_write(&result, "token", &t.id)
    }
}

const TOKEN_COLUMNS: &str =
    "id, version, customer, status, secret_ciphertext, secret_nonce, key_id, created_at, data";

#[async_trait]
impl TokenRepository for SqlStore {
    async fn get(&self, id: &TokenId) -> Result<Option<Versioned<RecurrentToken>>, StoreError> {
        let row = self
            .optional(
                sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"))
                    .bind(id.as_str()),
            )
            .await?;
        row.map(|r| versioned(&r, self.token_row(&r)?)).transpose()
    }

    async fn by_secret(
        &self,
        secret: &RecurrentTokenSecret,
    ) -> Result<Option<Versioned<RecurrentToken>>, StoreError> {
        for fingerprint in self.keys.fingerprints(secret.expose()) {
            let row = self
                .optional(
                    sqlx::query(&format!(
                        "SELECT {TOKEN_COLUMNS} FROM tokens WHERE fingerprint = $1"
                    ))
                    .bind(fingerprint),
                )
                .await?;
            if let Some(row) = row {
                return Ok(Some(versioned(&row, self.token_row(&row)?)?));
            }
        }
        Ok(None)
    }

    async fn list_by_customer(
        &self,
        customer: &CustomerReference,
        page: Page<TokenId>,
    ) -> Result<Vec<RecurrentToken>, StoreError> {
        let rows = match &page.after {
            None => self.all(sqlx::query(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE customer = $1 ORDER BY created_at DESC, id DESC LIMIT $2"))
                .bind(customer.as_str())
                .bind(sql_int(page.limit))).await?,
            Some(after) => self.all(sqlx::query(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE customer = $1 \
                 AND (created_at, id) < (SELECT created_at, id FROM tokens WHERE id = $2) \
                 ORDER BY created_at DESC, id DESC LIMIT $3"))
                .bind(customer.as_str())
                .bind(after.as_str())
                .bind(sql_int(page.limit))).await?,
        };
        rows.iter().map(|r| self.token_row(r)).collect()
    }
}
