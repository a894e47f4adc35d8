//! Recurrent tokens at rest: AES-256-GCM with a random nonce, the token id as
//! associated data (a ciphertext cannot be moved to another row), and the
//! key's id stored beside it so that old keys keep decrypting during rotation.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Why a key could not be loaded or a token decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoError(pub String);

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CryptoError {}

struct Key {
    id: String,
    key: LessSafeKey,
    /// HMAC key for fingerprints, derived from the token key (never the key itself).
    fingerprint: hmac::Key,
}

impl Key {
    fn from_base64(text: &str, variable: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CryptoError(format!("{variable} is not base64")))?;
        if bytes.len() != 32 {
            return Err(CryptoError(format!(
                "{variable} must be 32 bytes (base64), got {}",
                bytes.len()
            )));
        }
        let id = hex::encode(&digest(&SHA256, &bytes).as_ref()[..4]);
        let key = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| CryptoError(format!("{variable} is not a usable key")))?;
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &bytes),
            b"recur token fingerprint v1",
        );
        Ok(Self {
            id,
            key: LessSafeKey::new(key),
            fingerprint: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        })
    }
}

/// The current token key and the old ones that still decrypt.
pub struct TokenKeys {
    current: Key,
    old: Vec<Key>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TokenKeys(current {}, {} old)",
            self.current.id,
            self.old.len()
        )
    }
}

/// A sealed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// The random nonce.
    pub nonce: Vec<u8>,
    /// Which key sealed it.
    pub key_id: String,
}

impl TokenKeys {
    /// `RECUR_TOKEN_KEY` and, during rotation, `RECUR_TOKEN_KEY_OLD` (comma-separated).
    pub fn from_base64(current: &str, old: Option<&str>) -> Result<Self, CryptoError> {
        let current = Key::from_base64(current, "RECUR_TOKEN_KEY")?;
        let old = old
            .into_iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.trim().is_empty())
            .map(|s| Key::from_base64(s, "RECUR_TOKEN_KEY_OLD"))
            .collect::<Result<_, _>>()?;
        Ok(Self { current, old })
    }

    /// A fresh random key, base64 (sandbox mode generates one).
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).expect("system randomness");
        STANDARD.encode(bytes)
    }

    /// A random key that lives as long as the process (for commands that
    /// never touch tokens, such as migrations).
    pub fn ephemeral() -> Self {
        Self::from_base64(&Self::generate_base64(), None).expect("a generated key is valid")
    }

    /// The keyed fingerprint of a raw token under the current key: equal
    /// tokens have equal fingerprints, and a fingerprint reveals nothing of
    /// the token without the key (HMAC-SHA256 with a key derived from
    /// `RECUR_TOKEN_KEY`).
    pub fn fingerprint(&self, secret: &str) -> String {
        Self::fingerprint_with(&self.current, secret)
    }

    /// The fingerprints of a raw token under every configured key, current
    /// first (a row written before a rotation still matches).
    pub fn fingerprints(&self, secret: &str) -> Vec<String> {
        std::iter::once(&self.current)
            .chain(&self.old)
            .map(|k| Self::fingerprint_with(k, secret))
            .collect()
    }

    fn fingerprint_with(key: &Key, secret: &str) -> String {
        Self::hmac_hex(key, secret.as_bytes())
    }

    fn hmac_hex(key: &Key, bytes: &[u8]) -> String {
        hex::encode(hmac::sign(&key.fingerprint, bytes).as_ref())
    }

    /// The keyed fingerprints of a request's content under every configured
    /// key, current first. A label keeps them apart from token fingerprints;
    /// a plain hash of a body with a card number could be brute-forced.
    pub fn request_fingerprints(&self, content: &[u8]) -> Vec<String> {
        let labelled = [b"recur idempotency request v1\n".as_slice(), content].concat();
        std::iter::once(&self.current)
            .chain(&self.old)
            .map(|k| Self::hmac_hex(k, &labelled))
            .collect()
    }

    /// The id of the key new tokens are sealed with.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `secret` for the row of `token_id`.
    pub fn seal(&self, token_id: &str, secret: &str) -> Sealed {
        self.seal_bytes(token_id, secret.as_bytes())
    }

    /// Seals any bytes bound to `aad` (a row's id or key), with the current
    /// key: stored webhook bodies carry raw tokens and are sealed like tokens.
    pub fn seal_bytes(&self, aad: &str, bytes: &[u8]) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("system randomness");
        let mut data = bytes.to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .expect("AES-GCM sealing does not fail for stored sizes");
        Sealed {
            ciphertext: data,
            nonce: nonce.to_vec(),
            key_id: self.current.id.clone(),
        }
    }

    /// Opens a sealed token of row `token_id` with the key it names.
    pub fn open(&self, token_id: &str, sealed: &Sealed) -> Result<String, CryptoError> {
        String::from_utf8(self.open_bytes(token_id, sealed)?)
            .map_err(|_| CryptoError("decrypted token is not text".into()))
    }

    /// Opens bytes sealed for `aad` with the key they name.
    pub fn open_bytes(&self, aad: &str, sealed: &Sealed) -> Result<Vec<u8>, CryptoError> {
        let key = std::iter::once(&self.current)
            .chain(&self.old)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| {
                CryptoError(format!(
                    "{aad} is sealed with key {} which is not configured",
                    sealed.key_id
                ))
            })?;
        let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce)
            .map_err(|_| CryptoError("bad nonce".into()))?;
        let mut data = sealed.ciphertext.clone();
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut data)
            .map_err(|_| CryptoError(format!("{aad} does not decrypt")))?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_the_row() {
        let keys = TokenKeys::from_base64(&TokenKeys::generate_base64(), None).unwrap();
        let sealed = keys.seal("tok_1", "secret-token");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"secret"));
        assert_eq!(keys.open("tok_1", &sealed).unwrap(), "secret-token");
        assert!(keys.open("tok_2", &sealed).is_err(), "moved to another row");
    }

    #[test]
    fn old_keys_still_open_after_rotation() {
        let old = TokenKeys::generate_base64();
        let sealed = TokenKeys::from_base64(&old, None)
            .unwrap()
            .seal("tok_1", "s");
        let rotated = TokenKeys::from_base64(&TokenKeys::generate_base64(), Some(&old)).unwrap();
        assert_eq!(rotated.open("tok_1", &sealed).unwrap(), "s");
        let forgotten = TokenKeys::from_base64(&TokenKeys::generate_base64(), None).unwrap();
        assert!(forgotten.open("tok_1", &sealed).is_err());
    }

    #[test]
    fn bad_keys_name_their_variable() {
        assert!(
            TokenKeys::from_base64("not base64!", None)
                .unwrap_err()
                .0
                .contains("RECUR_TOKEN_KEY")
        );
        assert!(
            TokenKeys::from_base64("AAAA", None)
                .unwrap_err()
                .0
                .contains("32 bytes")
        );
    }
}
