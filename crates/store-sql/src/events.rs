//! [`EventLog`]: the merchant event feed, gap-free in id order.

use async_trait::async_trait;
use domain::EventId;
use ports::{Event, EventLog, StoreError};
use sqlx::any::AnyRow;

use crate::SqlStore;
use crate::codec::from_micros;
use crate::db::{corrupt, get, sql_int};

/// The `evt_…` id of an event sequence number.
pub fn event_id(seq: i64) -> EventId {
    EventId::parse(&format!("evt_{seq:012}")).expect("well-formed event id")
}

pub(crate) fn event_seq(id: &EventId) -> Option<i64> {
    id.as_str().strip_prefix("evt_")?.parse().ok()
}

fn event_row(row: &AnyRow) -> Result<Event, StoreError> {
    Ok(Event {
        id: event_id(get(row, "seq")?),
        kind: get(row, "kind")?,
        subject_id: get(row, "subject_id")?,
        data: get(row, "data")?,
        created_at: from_micros(get(row, "created_at")?).map_err(corrupt)?,
    })
}

#[async_trait]
impl EventLog for SqlStore {
    async fn after(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>, StoreError> {
        let from = match &after {
            Some(id) => event_seq(id).ok_or_else(|| {
                StoreError::Permanent(format!("{id} is not an event id of this feed"))
            })?,
            None => 0,
        };
        let rows = self.all(sqlx::query("SELECT seq, kind, subject_id, data, created_at FROM events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(from)
            .bind(sql_int(limit))).await?;
        rows.iter().map(event_row).collect()
    }

    async fn get(&self, id: &EventId) -> Result<Option<Event>, StoreError> {
        let Some(seq) = event_seq(id) else {
            return Ok(None);
        };
        let row = self
            .optional(
                sqlx::query(
                    "SELECT seq, kind, subject_id, data, created_at FROM events WHERE seq = $1",
                )
                .bind(seq),
            )
            .await?;
        row.as_ref().map(event_row).transpose()
    }
}
