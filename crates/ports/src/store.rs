//! Persistence: repositories, the unit of work, idempotency, inbox, outbox and event log.
//!
//! One adapter implements all of these over one database, and a
//! [`ChangeSet`] spans several of them, so they share one error type.

use async_trait::async_trait;
use domain::{
    ChargeStatus, CustomerReference, EventId, Payment, PaymentId, PaymentStatus, RecurrentToken,
    Subscription, SubscriptionId, TokenId,
};
use time::{Duration, OffsetDateTime};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database is unreachable or busy; nothing was written. Retry.
    #[error("store temporarily unavailable: {0}")]
    Transient(String),
    /// The data or the schema is wrong; retrying will not help.
    #[error("store error: {0}")]
    Permanent(String),
    /// The commit may or may not have happened (connection lost during commit).
    #[error("store outcome unknown: {0}")]
    UnknownOutcome(String),
    /// Someone else changed the row first (optimistic concurrency), or a
    /// uniqueness rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// No such row.
    #[error("not found")]
    NotFound,
}

/// A value read with the version that optimistic concurrency checks on write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// The value.
    pub value: T,
    /// Its version (starts at 1, +1 per write).
    pub version: i64,
}

/// A write of one aggregate: an insert, or an update of the version read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write<T> {
    /// The new value.
    pub value: T,
    /// `None`: insert (conflict if it exists); `Some(v)`: update only if still at `v`.
    pub expected_version: Option<i64>,
}

impl<T> Write<T> {
    /// An insert.
    pub fn insert(value: T) -> Self {
        Self {
            value,
            expected_version: None,
        }
    }
    /// An update of the version that was read.
    pub fn update(read: Versioned<T>) -> Self {
        Self {
            value: read.value,
            expected_version: Some(read.version),
        }
    }
}

/// One attempt to charge one period of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeAttempt {
    /// The subscription.
    pub subscription_id: SubscriptionId,
    /// 0-based period index.
    pub period_index: u32,
    /// The period's start.
    pub period_start: OffsetDateTime,
    /// 1-based attempt number within the period (0 for a skipped period).
    pub attempt: u32,
    /// The payment that carries it (`None` for a skipped period).
    pub payment_id: Option<PaymentId>,
    /// Its outcome.
    pub status: ChargeStatus,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A payment.
    Payment(PaymentId),
    /// A token.
    Token(TokenId),
    /// A subscription.
    Subscription(SubscriptionId),
}

impl Subject {
    /// The object's id as text.
    pub fn id(&self) -> &str {
        match self {
            Self::Payment(id) => id.as_str(),
            Self::Token(id) => id.as_str(),
            Self::Subscription(id) => id.as_str(),
        }
    }
}

/// An event to append to the merchant feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// `payment.succeeded`, …
    pub kind: &'static str,
    /// The object it is about.
    pub subject: Subject,
    /// The object as the merchant API shows it, JSON.
    pub data: String,
}

/// An event in the merchant feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_…`, ordered as the feed.
    pub id: EventId,
    /// `payment.succeeded`, …
    pub kind: String,
    /// The id of the object it is about.
    pub subject_id: String,
    /// The object, JSON.
    pub data: String,
    /// When it happened.
    pub created_at: OffsetDateTime,
}

/// A durable command for a background worker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutboxCommand {
    /// `session/confirm` for a payment.
    ConfirmSession(PaymentId),
    /// `session/cancel` for a payment.
    CancelSession(PaymentId),
    /// `session/capture` for a payment.
    CaptureSession(PaymentId),
    /// `recurrent/disable` for a token, until the bank confirms.
    DisableToken(TokenId),
    /// POST an event to the merchant's `RECUR_EVENTS_URL`.
    DeliverEvent(EventId),
}

/// A claimed outbox command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// Row id.
    pub id: i64,
    /// What to do.
    pub command: OutboxCommand,
    /// Attempts so far (including this one).
    pub attempts: u32,
}

/// A queue's size and when its oldest item arrived, for operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Items waiting.
    pub depth: u64,
    /// When the oldest waiting item was queued (`None` when empty).
    pub oldest: Option<OffsetDateTime>,
}

/// What claiming one particular queued command found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandClaim {
    /// It is the caller's until the lease runs out.
    Claimed(OutboxItem),
    /// Another worker holds it now: it is being carried out.
    Busy,
    /// No copy is queued.
    NotQueued,
}

/// Everything one use case changes, committed atomically or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Payments written.
    pub payments: Vec<Write<Payment>>,
    /// Tokens written.
    pub tokens: Vec<Write<RecurrentToken>>,
    /// Subscriptions written.
    pub subscriptions: Vec<Write<Subscription>>,
    /// Charge attempts inserted or updated (keyed by subscription, period, attempt).
    pub charges: Vec<ChargeAttempt>,
    /// Events appended to the feed.
    pub events: Vec<NewEvent>,
    /// Commands enqueued.
    pub outbox: Vec<OutboxCommand>,
    /// Inbox webhooks marked applied.
    pub inbox_applied: Vec<i64>,
    /// Outbox commands carried out, removed from the queue in this commit:
    /// a command's answer and its completion land together.
    pub outbox_done: Vec<i64>,
    /// The `Idempotency-Key` of the request that creates a payment here.
    pub idempotency: Option<IdempotencyBinding>,
    /// A token that must still be chargeable (active) when this commits, or
    /// nothing is written and the commit fails with [`StoreError::Conflict`]:
    /// the condition a payment about to be sent with the token rests on,
    /// checked by the write itself (with the set's payment update, no
    /// statement of its own) instead of by a read before it. It holds
    /// against the token as stored before the change set.
    pub chargeable_token: Option<TokenId>,
}

impl ChangeSet {
    /// Whether it writes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Commits a [`ChangeSet`] in one transaction: every versioned write is
/// checked, and a single conflict rolls everything back.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait UnitOfWork: Send + Sync {
    /// Commits at `at` (the events' `created_at`).
    async fn commit(&self, changes: ChangeSet, at: OffsetDateTime) -> Result<(), StoreError>;
}

/// Payments.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait PaymentRepository: Send + Sync {
    /// By id.
    async fn get(&self, id: &PaymentId) -> Result<Option<Versioned<Payment>>, StoreError>;
    /// By the bank session it runs in.
    async fn by_session(
        &self,
        session_id: &domain::BankSessionId,
    ) -> Result<Option<Versioned<Payment>>, StoreError>;
    /// A page of a customer's payments, newest first, starting after
    /// `page.after` (which must be one of the customer's payments).
    async fn list_by_customer(
        &self,
        customer: &CustomerReference,
        page: Page<PaymentId>,
    ) -> Result<Vec<Payment>, StoreError>;
    /// Unfinished payments whose next check (`Payment::next_check_at` when
    /// last written, or a later time set by [`PaymentRepository::checked`]) is
    /// due at `now`, the longest due first, with how many checks found no
    /// news since the payment last changed.
    async fn due_for_check(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DueCheck>, StoreError>;
    /// A check found no news: check again at `next`, one more check counted.
    /// Writing the payment resets both.
    async fn checked(&self, id: &PaymentId, next: OffsetDateTime) -> Result<(), StoreError>;
    /// How many payments there are in each status (statuses with none left out).
    async fn count_by_status(&self) -> Result<Vec<(PaymentStatus, u64)>, StoreError>;
}

/// A page of a list kept newest first: at most `limit` items after the one
/// with id `after` (from the start when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<Id> {
    /// The last item of the previous page.
    pub after: Option<Id>,
    /// How many at most.
    pub limit: u32,
}

impl<Id> Page<Id> {
    /// The first `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }
}

/// A payment due for a `session/status` check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCheck {
    /// The payment.
    pub payment: Payment,
    /// Checks without news since it last changed.
    pub checks: u32,
}

/// Recurrent tokens (the raw token is encrypted at rest by the adapter).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TokenRepository: Send + Sync {
    /// By id.
    async fn get(&self, id: &TokenId) -> Result<Option<Versioned<RecurrentToken>>, StoreError>;
    /// The token holding this raw bank token, if any (looked up by a keyed
    /// fingerprint, never by the raw value).
    async fn by_secret(
        &self,
        secret: &domain::RecurrentTokenSecret,
    ) -> Result<Option<Versioned<RecurrentToken>>, StoreError>;
    /// A page of a customer's tokens, newest first, starting after
    /// `page.after` (which must be one of the customer's tokens).
    async fn list_by_customer(
        &self,
        customer: &CustomerReference,
        page: Page<TokenId>,
    ) -> Result<Vec<RecurrentToken>, StoreError>;
}

/// Subscriptions and their charge attempts.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait SubscriptionRepository: Send + Sync {
    /// By id.
    async fn get(&self, id: &SubscriptionId)
    -> Result<Option<Versioned<Subscription>>, StoreError>;
    /// Subscriptions whose next charge is due at `now`, soonest first.
    async fn due(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Versioned<Subscription>>, StoreError>;
    /// A subscription's charge attempts, oldest first.
    async fn charges(&self, id: &SubscriptionId) -> Result<Vec<ChargeAttempt>, StoreError>;
    /// The charge attempt a payment carries, if any.
    async fn charge_by_payment(
        &self,
        payment_id: &PaymentId,
    ) -> Result<Option<ChargeAttempt>, StoreError>;
}

/// A stored response to replay for a repeated `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// A request's claim on an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    /// The key, already scoped to the API key that sent it.
    pub key: String,
    /// The request's canonical content (method, path, normalized body). The
    /// store keeps only a keyed hash of it: a body may hold a card number.
    pub content: Vec<u8>,
    /// Business time: keys are remembered for [`IDEMPOTENCY_TTL`] of it.
    pub now: OffsetDateTime,
    /// Real time, which leases run on.
    pub wall: OffsetDateTime,
}

/// The running request's hold on a key, until `until` (real time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyLease {
    /// The scoped key.
    pub key: String,
    /// When the hold lapses; also what identifies this holder.
    pub until: OffsetDateTime,
}

/// Binds a key to the payment its request created, in the commit that
/// creates it: from then on a retry answers with that payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyBinding {
    /// The hold of the request that creates the payment; a commit whose
    /// lease was taken over fails with a conflict and creates nothing.
    pub lease: IdempotencyLease,
    /// The payment.
    pub payment_id: PaymentId,
}

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First use of the key, or a takeover of a request that died before it
    /// created anything: do the work, then [`IdempotencyStore::finish`].
    Started(IdempotencyLease),
    /// Done before with the same request: replay this.
    Replay(StoredResponse),
    /// The same request created this payment and then ended without an
    /// answer to keep (it died, or a dependency failed): answer with the
    /// payment's current state, never start another.
    Bound(PaymentId),
    /// The same request is running right now (its lease holds).
    InFlight,
    /// The key was used with a different request.
    Mismatch,
}

/// Keys are remembered for this long.
pub const IDEMPOTENCY_TTL: Duration = Duration::hours(24);

/// How long a running request holds its key before another may take it over.
pub const IDEMPOTENCY_LEASE: Duration = Duration::seconds(60);

/// `Idempotency-Key` bookkeeping.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims a key; keys older than [`IDEMPOTENCY_TTL`] are forgotten, and
    /// a lapsed lease of a request that created nothing is taken over.
    async fn begin(&self, claim: IdempotencyClaim) -> Result<IdempotencyBegin, StoreError>;
    /// Stores the response of a started key.
    async fn finish(&self, key: &str, response: StoredResponse) -> Result<(), StoreError>;
    /// Ends a hold whose request produced no answer to keep: the key is
    /// forgotten when no payment is bound to it, and otherwise stays bound
    /// (its lease ends at once, so a retry gets the payment).
    async fn release(&self, lease: &IdempotencyLease) -> Result<(), StoreError>;
    /// Deletes keys older than [`IDEMPOTENCY_TTL`] at `now`; returns how many.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// A verified webhook to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundWebhook {
    /// Content-derived key: the bank sends no event id.
    pub dedupe_key: String,
    /// The exact raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received_at: OffsetDateTime,
}

/// A stored webhook waiting to be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    /// Row id.
    pub id: i64,
    /// The raw body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub received_at: OffsetDateTime,
    /// How many times applying it was tried.
    pub attempts: u32,
}

/// The durable inbox of bank webhooks. A stored webhook is due at once; `now`
/// here is real time (deferrals), not the test clock.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait WebhookInbox: Send + Sync {
    /// Stores a webhook; `false` when its dedupe key was seen before.
    async fn store(&self, webhook: InboundWebhook) -> Result<bool, StoreError>;
    /// Webhooks not yet applied whose next try is due at `now`, oldest first.
    async fn pending(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<InboxItem>, StoreError>;
    /// Tries again at `until` (e.g. the session is not known yet).
    async fn defer(&self, id: i64, until: OffsetDateTime, note: &str) -> Result<(), StoreError>;
    /// Keeps it for inspection, never applied.
    async fn reject(&self, id: i64, note: &str) -> Result<(), StoreError>;
    /// Deletes applied and rejected webhooks received before `received_before`
    /// (pending ones are kept whatever their age); returns how many.
    async fn purge(&self, received_before: OffsetDateTime) -> Result<u64, StoreError>;
    /// How many webhooks wait to be applied, and since when the oldest does.
    async fn unapplied(&self) -> Result<Backlog, StoreError>;
}

/// Commands for background workers, enqueued through a [`ChangeSet`] and due
/// at once. `now` here is real time (retries and leases), not the test clock.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` due commands for `lease`; a claimed command is
    /// not handed to anyone else until the lease runs out.
    async fn claim(
        &self,
        now: OffsetDateTime,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutboxItem>, StoreError>;
    /// Done.
    async fn complete(&self, id: i64) -> Result<(), StoreError>;
    /// Failed: try again at `at`.
    async fn retry(&self, id: i64, at: OffsetDateTime, error: &str) -> Result<(), StoreError>;
    /// How many commands wait, and since when the oldest does.
    async fn backlog(&self) -> Result<Backlog, StoreError>;
    /// Claims the queued copy of one command for `lease`, whether due or
    /// not, so that a request can carry it out inline while no worker does
    /// (one sender per command, across instances).
    async fn claim_command(
        &self,
        command: &OutboxCommand,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<CommandClaim, StoreError>;
}

/// The merchant event feed, appended through a [`ChangeSet`].
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` events after `after` (from the start when `None`), oldest first.
    async fn after(&self, after: Option<EventId>, limit: u32) -> Result<Vec<Event>, StoreError>;
    /// One event.
    async fn get(&self, id: &EventId) -> Result<Option<Event>, StoreError>;
}

/// Where the test clock's time is kept, so that it never moves back, across
/// restarts included.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait TestClockStore: Send + Sync {
    /// The latest time kept, if any.
    async fn load(&self) -> Result<Option<OffsetDateTime>, StoreError>;
    /// Keeps `at`, unless a later time is kept already.
    async fn save(&self, at: OffsetDateTime) -> Result<(), StoreError>;
}
