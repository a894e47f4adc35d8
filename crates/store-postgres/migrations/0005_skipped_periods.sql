-- A period that ended while the service was down is recorded as a skipped
-- charge, which has no payment.
ALTER TABLE subscription_charges ALTER COLUMN payment_id DROP NOT NULL;
