-- Webhook bodies carry raw bank tokens: they are sealed at rest with the token
-- key (AES-256-GCM, the dedupe key as associated data), like tokens. Rows
-- stored before this migration are sealed when the store opens (it needs the key).
ALTER TABLE inbox ADD COLUMN body_nonce BLOB;
ALTER TABLE inbox ADD COLUMN key_id TEXT;
CREATE INDEX inbox_done_by_age ON inbox (status, received_at);
