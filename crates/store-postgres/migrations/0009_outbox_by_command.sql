-- A request that carries out its payment's session command inline claims that
-- command's queued row by (subject, kind), so that no worker sends it as well.
CREATE INDEX outbox_by_command ON outbox (subject, kind);
