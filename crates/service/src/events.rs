//! The merchant event feed: read in order, delivered to `RECUR_EVENTS_URL`.

use domain::EventId;
use ports::{Event, GatewayError};

use crate::{Service, ServiceError};

impl Service {
    /// Up to `limit` events after `after` (from the start when `None`), oldest first.
    pub async fn events_after(
        &self,
        after: Option<EventId>,
        limit: u32,
    ) -> Result<Vec<Event>, ServiceError> {
        // A cursor must be an event of this feed: anything else is the
        // caller's mistake (400), not a store failure.
        if let Some(id) = &after
            && self.deps.events.get(id).await?.is_none()
        {
            return Err(ServiceError::InvalidCursor);
        }
        Ok(self.deps.events.after(after, limit).await?)
    }

    /// Delivers one event to the merchant (the outbox retries a failure).
    /// Without a configured sink there is nothing to do.
    pub(crate) async fn deliver_event(&self, id: &EventId) -> Result<(), ServiceError> {
        let Some(sink) = &self.deps.event_sink else {
            return Ok(());
        };
        let event = self
            .deps
            .events
            .get(id)
            .await?
            .ok_or(ServiceError::NotFound("event"))?;
        let delivered = sink.deliver(&event).await;
        self.deps.telemetry.event_delivery(if delivered.is_ok() {
            "delivered"
        } else {
            "failed"
        });
        delivered.map_err(|why| ServiceError::Gateway(GatewayError::Transient(why)))
    }
}
