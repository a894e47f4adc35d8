//! [`TestClockStore`]: the test clock's time, kept across restarts.

use async_trait::async_trait;
use ports::{StoreError, TestClockStore};
use time::OffsetDateTime;

use crate::SqlStore;
use crate::codec::{from_micros, micros};
use crate::db::{corrupt, get};

#[async_trait]
impl TestClockStore for SqlStore {
    async fn load(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = self
            .optional(sqlx::query("SELECT now FROM test_clock WHERE id = 1"))
            .await?;
        row.map(|r| from_micros(get(&r, "now")?).map_err(corrupt))
            .transpose()
    }

    async fn save(&self, at: OffsetDateTime) -> Result<(), StoreError> {
        // Never backwards, whichever instance writes last.
        self.run(
            sqlx::query(
                "INSERT INTO test_clock (id, now) VALUES (1, $1) ON CONFLICT (id) DO UPDATE \
                 SET now = CASE WHEN excluded.now > test_clock.now THEN excluded.now ELSE test_clock.now END",
            )
            .bind(micros(at)),
        )
        .await
    }
}
