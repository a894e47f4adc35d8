//! Signed webhook delivery, retried with growing intervals until the partner
//! answers 200, with the faults of [`crate::bank::Faults`].
//!
//! Delivery uses a minimal HTTP/1.1 client over `tokio::net::TcpStream`: the
//! sandbox runs offline against local partners, plain `http://` only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bank131::Signer;
use bank131::dto::Webhook;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::bank::Faults;

/// One webhook to deliver.
#[derive(Debug, Clone)]
struct Delivery {
    body: Vec<u8>,
    attempt: u32,
}

/// Queues, signs and sends webhooks: sessions side by side on
/// [`LANES`] delivery lanes, one session's webhooks in order on its lane
/// (as a bank sends to many partners' sessions at once; one lane made every
/// session wait for every other session's deliveries).
#[derive(Debug, Clone)]
pub struct WebhookSender {
    lanes: Vec<mpsc::UnboundedSender<Delivery>>,
    held: Arc<Mutex<HashMap<String, Vec<Vec<u8>>>>>,
    stats: Arc<Mutex<DeliveryStats>>,
}

/// Counters for tests and the control API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DeliveryStats {
    /// Bodies the partner answered 200.
    pub delivered: u64,
    /// Attempts that failed (refused, non-200, injected).
    pub failed_attempts: u64,
}

/// The first retry waits this long; each next one twice as long, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Give up after this many attempts (about an hour of retrying at the cap).
const MAX_ATTEMPTS: u32 = 150;
/// Deliveries under way at the same time, each lane one at a time.
const LANES: usize = 8;

impl WebhookSender {
    /// Starts the delivery task. `faults` is read at each attempt.
    pub fn start(url: &str, signer: &Arc<Signer>, faults: &Arc<Mutex<Faults>>) -> Self {
        let stats = Arc::new(Mutex::new(DeliveryStats::default()));
        let lanes = (0..LANES)
            .map(|_| {
                let (lane, deliveries) = mpsc::unbounded_channel::<Delivery>();
                tokio::spawn(deliver(
                    deliveries,
                    lane.clone(),
                    url.to_owned(),
                    signer.clone(),
                    faults.clone(),
                    stats.clone(),
                ));
                lane
            })
            .collect();
        Self {
            lanes,
            held: Arc::default(),
            stats,
        }
    }

    /// Sends the webhooks of one call, applying duplication and reordering faults.
    pub fn send(&self, session_id: &str, webhooks: Vec<Webhook>, faults: &Faults) {
        for webhook in webhooks {
            let finished = matches!(
                webhook,
                Webhook::PaymentFinished(_) | Webhook::PaymentRefunded(_)
            );
            let body = webhook.to_json().to_string().into_bytes();
            if faults.reverse_webhooks {
                let mut held = self
                    .held
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let list = held.entry(session_id.to_owned()).or_default();
                list.push(body);
                if finished {
                    let list = held.remove(session_id).unwrap_or_default();
                    for body in list.into_iter().rev() {
                        self.enqueue(session_id, &body, faults.duplicate_webhooks);
                    }
                }
            } else {
                self.enqueue(session_id, &body, faults.duplicate_webhooks);
            }
        }
    }

    fn enqueue(&self, session_id: &str, body: &[u8], duplicates: u32) {
        // One session, one lane: its webhooks keep their order.
        let lane = &self.lanes[lane_of(session_id)];
        for _ in 0..=duplicates {
            let _ = lane.send(Delivery {
                body: body.to_vec(),
                attempt: 1,
            });
        }
    }

    /// Delivery counters.
    pub fn stats(&self) -> DeliveryStats {
        self.stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// One lane: delivers its webhooks one after the other, and puts a failed
/// one back on the lane after its backoff.
async fn deliver(
    mut deliveries: mpsc::UnboundedReceiver<Delivery>,
    lane: mpsc::UnboundedSender<Delivery>,
    url: String,
    signer: Arc<Signer>,
    faults: Arc<Mutex<Faults>>,
    stats: Arc<Mutex<DeliveryStats>>,
) {
    while let Some(delivery) = deliveries.recv().await {
        let (delay, inject_failure) = {
            let mut f = faults
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let inject = f.fail_webhook_deliveries > 0;
            if inject {
                f.fail_webhook_deliveries -= 1;
            }
            (Duration::from_millis(f.webhook_delay_ms), inject)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let result = if inject_failure {
            Err("injected delivery failure".to_owned())
        } else {
            post(&url, &delivery.body, &signer).await
        };
        match result {
            Ok(()) => {
                stats
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .delivered += 1;
                debug!(attempt = delivery.attempt, "webhook delivered");
            }
            Err(why) => {
                stats
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .failed_attempts += 1;
                if delivery.attempt >= MAX_ATTEMPTS {
                    warn!(%why, "webhook dropped after {MAX_ATTEMPTS} attempts");
                    continue;
                }
                let wait = FIRST_RETRY
                    .saturating_mul(1 << delivery.attempt.min(16))
                    .min(MAX_RETRY);
                debug!(%why, attempt = delivery.attempt, ?wait, "webhook delivery failed; retrying");
                let lane = lane.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let _ = lane.send(Delivery {
                        attempt: delivery.attempt + 1,
                        ..delivery
                    });
                });
            }
        }
    }
}

/// The lane of a session's webhooks.
fn lane_of(session_id: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    session_id.hash(&mut hasher);
    usize::try_from(hasher.finish() % LANES as u64).unwrap_or(0)
}

/// POSTs `body` signed with `signer` to a plain-HTTP `url`; `Ok` only on 200.
async fn post(url: &str, body: &[u8], signer: &Signer) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// webhook URLs are supported")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let signature = signer.sign(body).map_err(|e| e.to_string())?;
    let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(host))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect: {e}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{}: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bank131::SIGN_HEADER,
        body.len()
    );
    let exchange = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
        .map_err(|e| format!("io: {e}"))?;
    let status_line = answer.split(|b| *b == b'\n').next().unwrap_or_default();
    let status = String::from_utf8_lossy(status_line);
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("answered {}", status.trim()))
    }
}
