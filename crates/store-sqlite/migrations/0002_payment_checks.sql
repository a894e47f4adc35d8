-- Every unfinished payment is checked with session/status when no news came:
-- when it is due, and how many checks found nothing since it last changed.
ALTER TABLE payments ADD COLUMN next_check_at BIGINT;
ALTER TABLE payments ADD COLUMN checks BIGINT NOT NULL DEFAULT 0;
UPDATE payments SET next_check_at = updated_at
    WHERE status NOT IN ('succeeded', 'failed', 'cancelled');
CREATE INDEX payments_check_due ON payments (next_check_at) WHERE next_check_at IS NOT NULL;
