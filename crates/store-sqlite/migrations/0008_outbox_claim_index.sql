-- The outbox claim keeps one object's event deliveries in feed order with a
-- correlated NOT EXISTS over earlier deliveries of the same object; without
-- an index it scans the outbox once per candidate row.
CREATE INDEX outbox_deliveries_by_object ON outbox (object_id, id) WHERE kind = 'deliver_event';
