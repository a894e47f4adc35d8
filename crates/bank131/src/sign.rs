//! `X-PARTNER-SIGN`: RSASSA-PKCS1-v1_5 with SHA-256 over the exact raw body, base64.
//!
//! The partner signs requests with its private key; the bank signs webhooks
//! with its own. Keys are PEM: private keys PKCS#1 (`RSA PRIVATE KEY`) or
//! PKCS#8 (`PRIVATE KEY`), public keys SPKI (`PUBLIC KEY`) or PKCS#1
//! (`RSA PUBLIC KEY`). A [`Verifier`] holds a set of keys so that rotation
//! works: any key in the set verifies.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// RSA signatures made by every [`Signer`] of this process (recur's
/// requests and, in-process, the sandbox's answers and webhooks): what the
/// benchmarks divide by charges to find the crypto ceiling.
static SIGNATURES_MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many signatures this process has made so far.
pub fn signatures_made() -> u64 {
    SIGNATURES_MADE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Why a key could not be loaded or a signature made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// One PEM block: its label and DER bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// `PRIVATE KEY`, `RSA PUBLIC KEY`, …
    pub label: String,
    /// The decoded bytes.
    pub der: Vec<u8>,
}

/// Reads every PEM block in `text` (several keys may share one file).
pub fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, KeyError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        loop {
            match lines.next() {
                Some(l) if l == end => break,
                Some(l) if l.contains(':') => {} // encryption headers: refused below
                Some(l) => body.push_str(l),
                None => return Err(KeyError(format!("PEM block {label} has no end line"))),
            }
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| KeyError(format!("PEM block {label} is not base64: {e}")))?;
        blocks.push(PemBlock {
            label: label.to_owned(),
            der,
        });
    }
    Ok(blocks)
}

/// Signs with an RSA private key. Never prints the key.
pub struct Signer {
    key: KeyPair,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    /// Loads the first private key of a PEM text (PKCS#1 or PKCS#8, unencrypted).
    pub fn from_pem(text: &str) -> Result<Self, KeyError> {
        for block in pem_blocks(text)? {
            let key = match block.label.as_str() {
                "PRIVATE KEY" => KeyPair::from_pkcs8(&block.der),
                "RSA PRIVATE KEY" => KeyPair::from_der(&block.der),
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(KeyError(
                        "encrypted private keys are not supported; decrypt it with openssl".into(),
                    ));
                }
                _ => continue,
            };
            return key
                .map(|key| Self { key })
                .map_err(|e| KeyError(format!("not a usable RSA private key: {e}")));
        }
        Err(KeyError("no RSA private key found in the PEM text".into()))
    }

    /// A fresh 2048-bit key (the sandbox's own keys).
    pub fn generate() -> Result<Self, KeyError> {
        KeyPair::generate(KeySize::Rsa2048)
            .map(|key| Self { key })
            .map_err(|_| KeyError("RSA key generation failed".into()))
    }

    /// The private key as PKCS#8 PEM, for writing to a key file.
    pub fn private_pem(&self) -> Result<String, KeyError> {
        let der: Pkcs8V1Der<'_> = self
            .key
            .as_der()
            .map_err(|_| KeyError("cannot encode key".into()))?;
        Ok(to_pem("PRIVATE KEY", der.as_ref()))
    }

    /// The public half as SPKI PEM.
    pub fn public_pem(&self) -> Result<String, KeyError> {
        let der: PublicKeyX509Der<'_> = self
            .key
            .public_key()
            .as_der()
            .map_err(|_| KeyError("cannot encode public key".into()))?;
        Ok(to_pem("PUBLIC KEY", der.as_ref()))
    }

    /// The base64 signature of `body`, for `X-PARTNER-SIGN`.
    pub fn sign(&self, body: &[u8]) -> Result<String, KeyError> {
        SIGNATURES_MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                body,
                &mut signature,
            )
            .map_err(|_| KeyError("signing failed".into()))?;
        Ok(STANDARD.encode(signature))
    }
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Verifies signatures with any key of a set.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<Vec<u8>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier({} keys)", self.keys.len())
    }
}

impl Verifier {
    /// Loads every public key in the PEM texts (SPKI or PKCS#1). At least one is required.
    pub fn from_pems<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for text in texts {
            for block in pem_blocks(text)? {
                if matches!(block.label.as_str(), "PUBLIC KEY" | "RSA PUBLIC KEY") {
                    aws_lc_rs::rsa::PublicKey::from_der(&block.der)
                        .map_err(|e| KeyError(format!("not a usable RSA public key: {e}")))?;
                    keys.push(block.der);
                }
            }
        }
        if keys.is_empty() {
            return Err(KeyError("no RSA public key found in the PEM text".into()));
        }
        Ok(Self { keys })
    }

    /// Whether `signature` (base64) is a valid signature of `body` by any key.
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Ok(signature) = STANDARD.decode(signature.trim().as_bytes()) else {
            return false;
        };
        self.keys.iter().any(|key| {
            UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key)
                .verify(body, &signature)
                .is_ok()
        })
    }
}
