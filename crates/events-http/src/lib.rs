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
            // A redirect is not a delivery: the merchant's URL answers, or the
            // event is retried (never re-sent to wherever a 3xx points).
            .redirect(reqwest::redirect::Policy::none())
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
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nowhere");
            Err(format!(
                "event {} answered {status} to {location}; redirects are not followed",
                event.id
            ))
        } else {
            Err(format!("event {} answered {status}", event.id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP server answering `answer` and counting requests.
    async fn answering(answer: &'static str) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn a_redirect_is_a_failed_delivery_naming_where_it_pointed() {
        let (target, target_hits) = answering("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        let redirect: &'static str = Box::leak(
            format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {target}\r\ncontent-length: 0\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let (url, _) = answering(redirect).await;
        let render: EventRenderer = Arc::new(|_| "{}".to_owned());
        let sink = HttpEventSink::new(url, "secret", render).unwrap();
        let event = Event {
            id: domain::EventId::parse("evt_000000000001").unwrap(),
            kind: "payment.succeeded".into(),
            subject_id: "pay_1".into(),
            data: "{}".into(),
            created_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let error = sink.deliver(&event).await.unwrap_err();
        assert!(error.contains("307") && error.contains(&target), "{error}");
        assert_eq!(
            target_hits.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "never followed"
        );
    }

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
