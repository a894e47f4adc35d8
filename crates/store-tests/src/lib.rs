//! # store-tests
//!
//! The conformance suite every recur store passes, written once against the
//! port traits. A store crate implements [`Harness`] (a fresh database per
//! test, reopening, raw access) and expands [`conformance!`], which makes one
//! `#[tokio::test]` per case of [`cases`].
#![deny(missing_docs)]
// Test code: short names and the domain prelude read better here.
#![allow(clippy::wildcard_imports, clippy::many_single_char_names)]

pub mod cases;
pub mod changes;
pub mod fixtures;

use std::sync::Arc;

use async_trait::async_trait;
use ports::{
    EventLog, IdempotencyStore, Outbox, PaymentRepository, SubscriptionRepository, TestClockStore,
    TokenRepository, UnitOfWork, WebhookInbox,
};

/// Declares `AllPorts` and its blanket impl from one list of ports.
macro_rules! every_port {
    ($($port:ident),+ $(,)?) => {
        /// Every store port at once.
        pub trait AllPorts: $($port +)+ Send + Sync + 'static {}

        impl<T> AllPorts for T where T: $($port +)+ Send + Sync + 'static {}
    };
}

every_port!(
    UnitOfWork,
    PaymentRepository,
    TokenRepository,
    SubscriptionRepository,
    IdempotencyStore,
    WebhookInbox,
    Outbox,
    EventLog,
    TestClockStore,
);

/// The schema every store's migrations must produce: table → columns, in
/// order, each with its portable type.
#[rustfmt::skip]
pub const SCHEMA: &[(&str, &[(&str, ColumnKind)])] = {
    use ColumnKind::{Bytes, Integer, Text};
    &[
        ("payments", &[("id", Text), ("version", Integer), ("customer", Text), ("session_id", Text), ("status", Text), ("outcome_unknown", Integer), ("created_at", Integer), ("updated_at", Integer), ("data", Text), ("next_check_at", Integer), ("checks", Integer)]),
        ("tokens", &[("id", Text), ("version", Integer), ("customer", Text), ("status", Text), ("secret_ciphertext", Bytes), ("secret_nonce", Bytes), ("key_id", Text), ("created_at", Integer), ("data", Text), ("fingerprint", Text)]),
        ("subscriptions", &[("id", Text), ("version", Integer), ("customer", Text), ("status", Text), ("next_charge_at", Integer), ("created_at", Integer), ("data", Text)]),
        ("subscription_charges", &[("subscription_id", Text), ("period_index", Integer), ("attempt", Integer), ("period_start", Integer), ("payment_id", Text), ("status", Text)]),
        ("events", &[("seq", Integer), ("kind", Text), ("subject_id", Text), ("data", Text), ("created_at", Integer)]),
        ("outbox", &[("id", Integer), ("kind", Text), ("subject", Text), ("object_id", Text), ("attempts", Integer), ("next_attempt_at", Integer), ("locked_until", Integer), ("last_error", Text), ("created_at", Integer)]),
        ("inbox", &[("id", Integer), ("dedupe_key", Text), ("body", Bytes), ("received_at", Integer), ("status", Text), ("attempts", Integer), ("next_attempt_at", Integer), ("note", Text), ("body_nonce", Bytes), ("key_id", Text)]),
        ("test_clock", &[("id", Integer), ("now", Integer)]),
        ("idempotency_keys", &[("key", Text), ("fingerprint", Text), ("status", Text), ("response_status", Integer), ("response_body", Bytes), ("created_at", Integer), ("payment_id", Text), ("leased_until", Integer)]),
    ]
};

/// A column's type as both dialects' migrations must agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `BIGINT` (PostgreSQL), `INTEGER` (SQLite).
    Integer,
    /// `TEXT`.
    Text,
    /// `BYTEA` (PostgreSQL), `BLOB` (SQLite).
    Bytes,
}

impl ColumnKind {
    /// The kind of a type as the database reports it, `None` for any other.
    pub fn of(declared: &str) -> Option<Self> {
        match declared.to_ascii_lowercase().as_str() {
            "bigint" | "integer" => Some(Self::Integer),
            "text" => Some(Self::Text),
            "bytea" | "blob" => Some(Self::Bytes),
            _ => None,
        }
    }
}

/// Checks a table's actual columns (name and declared type, in order, as
/// `SqlStore::columns` reads them) against [`SCHEMA`], and that none of them
/// could hold card data.
pub fn check_table(table: &str, actual: &[(String, String)]) {
    let Some((_, expected)) = SCHEMA.iter().find(|(t, _)| *t == table) else {
        panic!("unknown table {table}")
    };
    let actual: Vec<(&str, Option<ColumnKind>)> = actual
        .iter()
        .map(|(name, declared)| (name.as_str(), ColumnKind::of(declared)))
        .collect();
    let expected: Vec<(&str, Option<ColumnKind>)> =
        expected.iter().map(|(n, k)| (*n, Some(*k))).collect();
    assert_eq!(actual, expected, "{table}: columns and their types");
    for (column, _) in actual {
        for forbidden in ["card", "pan", "cvv", "cvc", "security"] {
            assert!(
                !column.contains(forbidden),
                "{table}.{column} looks like card data"
            );
        }
    }
}

/// What a store crate provides to run the suite.
#[async_trait]
pub trait Harness: Sized + Send + Sync + 'static {
    /// The store under test.
    type Store: AllPorts;

    /// A store over a fresh, empty, migrated database.
    async fn fresh() -> Self;
    /// The store.
    fn store(&self) -> Arc<Self::Store>;
    /// A second store over the same database (a restart, or another instance).
    async fn reopen(&self) -> Arc<Self::Store>;
    /// A store over the same database that enqueues a delivery with every event.
    async fn reopen_delivering_events(&self) -> Arc<Self::Store>;
    /// A store over the same database with other token keys (base64).
    async fn reopen_with_keys(&self, current: &str, old: Option<&str>) -> Arc<Self::Store>;
    /// The current token key (base64).
    fn token_key(&self) -> String;
    /// Re-encrypts tokens with the store's current key; returns how many.
    async fn rotate(&self, store: &Self::Store) -> u64;
    /// Every byte of every row of every table, for "no plaintext" checks.
    async fn raw_dump(&self) -> Vec<u8>;
    /// Drops the database.
    async fn cleanup(self);
}

/// Expands to one `#[tokio::test]` per conformance case for a [`Harness`].
#[macro_export]
macro_rules! conformance {
    ($harness:ty: $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = <$harness as $crate::Harness>::fresh().await;
                $crate::cases::$case(&harness).await;
                $crate::Harness::cleanup(harness).await;
            }
        )*
    };
    ($harness:ty) => {
        $crate::conformance!($harness:
            payment_round_trips_every_field,
            payment_insert_of_an_existing_id_conflicts,
            payment_update_of_a_stale_version_conflicts,
            two_writers_of_one_payment_exactly_one_wins,
            payment_is_found_by_its_bank_session,
            payments_are_listed_newest_first_within_the_limit,
            unknown_payment_is_none,
            payments_are_due_for_a_check_by_their_own_schedule,
            payments_are_counted_by_status,
            token_round_trips_with_its_secret,
            token_secret_is_never_stored_in_plaintext,
            tokens_are_listed_by_customer,
            token_update_is_versioned,
            old_token_key_still_decrypts_and_rotation_reencrypts,
            a_token_is_found_by_its_raw_token_and_held_once,
            subscription_round_trips,
            due_subscriptions_are_the_chargeable_ones_whose_time_came,
            each_subscription_period_attempt_exists_once,
            a_period_has_at_most_one_successful_charge,
            charge_outcome_updates_in_place,
            charges_are_listed_in_period_and_attempt_order,
            charge_is_found_by_its_payment,
            skipped_periods_are_charges_without_a_payment,
            idempotency_first_use_starts,
            idempotency_same_request_is_in_flight_then_replayed,
            idempotency_other_request_with_the_key_is_a_mismatch,
            idempotency_keys_expire_after_24_hours,
            idempotency_release_frees_the_key,
            idempotency_a_lapsed_lease_is_taken_over,
            idempotency_a_key_bound_to_a_payment_never_starts_again,
            idempotency_concurrent_duplicates_start_once,
            inbox_deduplicates_by_key,
            inbox_backlog_counts_what_waits,
            inbox_pending_is_oldest_first_and_due_at_once,
            inbox_deferred_webhook_waits_until_due,
            inbox_rejected_webhook_is_kept_but_not_pending,
            inbox_applied_in_a_change_set_is_no_longer_pending,
            inbox_bodies_are_sealed_at_rest_and_old_handled_ones_purged,
            expired_idempotency_keys_are_purged,
            the_test_clock_is_kept_and_never_moves_back,
            outbox_command_enqueued_in_a_change_set_is_claimed,
            outbox_claimed_command_is_leased,
            outbox_completed_command_is_gone,
            outbox_command_done_leaves_with_its_answers_commit,
            outbox_retry_waits_for_next_attempt_at,
            outbox_depth_counts_waiting_commands,
            outbox_one_command_is_claimed_by_one_caller,
            outbox_concurrent_claimers_never_share_a_row,
            event_deliveries_of_one_object_keep_feed_order,
            event_feed_pages_gap_free_in_order,
            event_is_found_by_id_and_foreign_cursors_are_refused,
            concurrent_event_appends_leave_no_gap,
            a_token_guarded_write_lands_only_while_the_token_is_active,
            failed_change_set_writes_nothing,
            empty_change_set_is_a_no_op,
            concurrent_change_sets_fail_alone,
            aborted_writers_leave_all_or_nothing,
            everything_survives_a_reopen,
        );
    };
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// The cases defined under `src/cases/`.
    fn defined_cases() -> BTreeSet<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cases");
        let mut found = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ")
                    && let Some((name, _)) = rest.split_once("<H: Harness>")
                {
                    found.insert(name.to_owned());
                }
            }
        }
        found
    }

    /// The cases the `conformance!` macro runs.
    fn listed_cases() -> BTreeSet<String> {
        let lib = include_str!("lib.rs");
        let start = lib
            .find("$crate::conformance!($harness:")
            .expect("the case list");
        let list = &lib[start..];
        let list = &list[list.find('\n').unwrap()..list.find(");").unwrap()];
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_case_is_in_the_conformance_list_and_no_other() {
        let defined = defined_cases();
        let listed = listed_cases();
        assert!(defined.len() >= 46, "{defined:?}");
        let missing: Vec<_> = defined.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&defined).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "defined but not run by conformance!: {missing:?}; listed but not defined: {unknown:?}"
        );
    }
}
