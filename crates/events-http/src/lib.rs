//! # events-http
//!
//! The [`EventSink`] port over HTTP: each merchant event POSTed to
//! `RECUR_EVENTS_URL`, signed with
//! `Recur-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//! The bank gateway is another adapter; this one only talks to the merchant.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use ports::{Event, EventSink};
use sha2::Sha256;

/// Renders an event exactly as the feed shows it.
pub type EventRenderer = Arc<dyn Fn(&Event) -> String + Send + Sync>;

/// POSTs events to the merchant.
#[derive(Clone)]
pub struct HttpEventSink {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
    render: EventRenderer,
}

impl std::fmt::Debug for HttpEventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEventSink")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The `Recur-Signature` header value for `body` sent at `t`.
pub fn signature(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl HttpEventSink {
    /// Delivers to `url`, signing with `secret`.
    pub fn new(url: String, secret: &str, render: EventRenderer) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            url,
            secret: secret.as_bytes().to_vec(),
            render,
        })
    }
}

#[async_trait]
impl EventSink for HttpEventSink {
    async fn deliver(&self, event: &Event) -> Result<(), String> {
        let body = (self.render)(event);
        let t = time::OffsetDateTime::now_utc().unix_timestamp();
        let response = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header(
                "Recur-Signature",
                signature(&self.secret, t, body.as_bytes()),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| format!("event {} not delivered: {e}", event.id))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("event {} answered {}", event.id, response.status()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_t_dot_body() {
        // Known answer, computed with: printf '1700000000.{}' | openssl dgst -sha256 -hmac secret
        let sig = signature(b"secret", 1_700_000_000, b"{}");
        assert_eq!(
            sig,
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
    }
}
