-- One bank token, one tok_: a keyed fingerprint of the raw token (HMAC with
-- a key derived from RECUR_TOKEN_KEY; never the token), unique. Rows written
-- before this migration get theirs when the store opens (it needs the key).
ALTER TABLE tokens ADD COLUMN fingerprint TEXT;
CREATE UNIQUE INDEX tokens_by_fingerprint ON tokens (fingerprint);
