-- An Idempotency-Key is bound to the payment its request created (so a retry
-- answers with that payment instead of creating another), and a running
-- request holds it under a lease (real-time micros) that another may take
-- over once it lapses. The fingerprint column now holds a keyed hash of the
-- request's canonical content.
ALTER TABLE idempotency_keys ADD COLUMN payment_id TEXT;
ALTER TABLE idempotency_keys ADD COLUMN leased_until BIGINT;
