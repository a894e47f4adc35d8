//! Change sets the cases commit, one helper per kind of write, so a case
//! says what it writes and not how a `ChangeSet` is spelled.

use domain::{Payment, PaymentId, RecurrentToken, Subscription};
use ports::{
    ChangeSet, ChargeAttempt, NewEvent, OutboxCommand, PaymentRepository, StoreError, Versioned,
    Write,
};

use crate::AllPorts;
use crate::fixtures::now;

/// Commits `changes` at [`now`].
pub async fn commit<S: AllPorts + ?Sized>(s: &S, changes: ChangeSet) -> Result<(), StoreError> {
    s.commit(changes, now()).await
}

/// A payment that must be stored.
pub async fn stored_payment<S: AllPorts + ?Sized>(s: &S, id: &PaymentId) -> Versioned<Payment> {
    PaymentRepository::get(s, id)
        .await
        .unwrap()
        .expect("stored")
}

/// Writes these payments.
pub fn payments(writes: Vec<Write<Payment>>) -> ChangeSet {
    ChangeSet {
        payments: writes,
        ..ChangeSet::default()
    }
}

/// Writes these tokens.
pub fn tokens(writes: Vec<Write<RecurrentToken>>) -> ChangeSet {
    ChangeSet {
        tokens: writes,
        ..ChangeSet::default()
    }
}

/// Writes these subscriptions.
pub fn subscriptions(writes: Vec<Write<Subscription>>) -> ChangeSet {
    ChangeSet {
        subscriptions: writes,
        ..ChangeSet::default()
    }
}

/// Writes these charge attempts.
pub fn charges(charges: Vec<ChargeAttempt>) -> ChangeSet {
    ChangeSet {
        charges,
        ..ChangeSet::default()
    }
}

/// Appends these events.
pub fn events(events: Vec<NewEvent>) -> ChangeSet {
    ChangeSet {
        events,
        ..ChangeSet::default()
    }
}

/// Enqueues these commands.
pub fn commands(outbox: Vec<OutboxCommand>) -> ChangeSet {
    ChangeSet {
        outbox,
        ..ChangeSet::default()
    }
}

/// Marks these inbox items applied.
pub fn inbox_applied(ids: Vec<i64>) -> ChangeSet {
    ChangeSet {
        inbox_applied: ids,
        ..ChangeSet::default()
    }
}

/// A change set inserting one payment.
pub fn insert(p: &Payment) -> ChangeSet {
    ChangeSet {
        payments: vec![Write::insert(p.clone())],
        ..ChangeSet::default()
    }
}
