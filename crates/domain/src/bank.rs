//! The bank's own view: session and acquiring payment statuses as the bank reports them.
//!
//! Reports arrive duplicated and out of order, so [`observe`] only ever moves
//! a status forward: an older report is [`Ignored::Stale`].

use crate::machine::{Applied, Ignored, State, Transition, state_names};

/// A Bank 131 payment session's status.
///
/// `error` is not final: the bank may still move the session on.
///
/// Walks seed 000 (CIT with 3-D Secure) through this machine.
///
/// ```
/// use domain::{observe, Applied, Ignored, SessionStatus as S};
///
/// // session/init/payment → action_required (in_progress) → payment_finished (accepted)
/// let mut s = S::Created;
/// for reported in [S::InProgress, S::Accepted] {
///     if let Applied::Changed { to, .. } = observe(s, reported) { s = to; }
/// }
/// assert_eq!(s, S::Accepted);
/// // A late, duplicated action_required cannot move it back.
/// assert_eq!(observe(s, S::InProgress), Applied::Ignored(Ignored::Terminal));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// Created, no payment started.
    Created,
    /// A payment is running.
    InProgress,
    /// Something went wrong; the bank may still accept or cancel.
    Error,
    /// Finished with the payment succeeded.
    Accepted,
    /// Finished without money moving.
    Cancelled,
}

impl State for SessionStatus {
    state_names! {
        Created => "created",
        InProgress => "in_progress",
        Error => "error",
        Accepted => "accepted",
        Cancelled => "cancelled",
    }
    const MACHINE: &'static str = "BankSession";
    const TRANSITIONS: &'static [Transition<Self>] = &[
        t(Self::Created, "payment started", Self::InProgress),
        t(Self::Created, "error", Self::Error),
        t(Self::Created, "cancelled", Self::Cancelled),
        t(Self::Created, "accepted", Self::Accepted),
        t(Self::InProgress, "error", Self::Error),
        t(Self::InProgress, "accepted", Self::Accepted),
        t(Self::InProgress, "cancelled", Self::Cancelled),
        t(Self::Error, "accepted", Self::Accepted),
        t(Self::Error, "cancelled", Self::Cancelled),
    ];
}

/// An acquiring payment's status inside a session.
///
/// Seed 001's MIT payment: `pending` until `payment_finished` says `succeeded`.
///
/// ```
/// use domain::{observe, Applied, AcquiringStatus as A};
/// let mut p = A::Pending;
/// if let Applied::Changed { to, .. } = observe(p, A::Succeeded) { p = to; }
/// assert_eq!(p, A::Succeeded);
/// assert!(!observe(p, A::Pending).is_changed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcquiringStatus {
    /// Waiting (for the customer, or for the partner's confirmation).
    Pending,
    /// Being processed.
    InProgress,
    /// Money moved.
    Succeeded,
    /// Money did not move.
    Failed,
}

impl State for AcquiringStatus {
    state_names! {
        Pending => "pending",
        InProgress => "in_progress",
        Succeeded => "succeeded",
        Failed => "failed",
    }
    const MACHINE: &'static str = "AcquiringPayment";
    const TRANSITIONS: &'static [Transition<Self>] = &[
        t(Self::Pending, "processing", Self::InProgress),
        t(Self::Pending, "succeeded", Self::Succeeded),
        t(Self::Pending, "failed", Self::Failed),
        t(Self::InProgress, "succeeded", Self::Succeeded),
        t(Self::InProgress, "failed", Self::Failed),
    ];
}

const fn t<S: Copy>(from: S, on: &'static str, to: S) -> Transition<S> {
    Transition { from, on, to }
}

/// Applies a status the bank reported to the status we hold.
///
/// Moves forward along the table; a report equal to the current status is a
/// duplicate, one the table does not allow from here is stale (it was
/// overtaken by a later report), and terminal statuses absorb everything.
pub fn observe<S: State>(current: S, reported: S) -> Applied<S> {
    if current.is_terminal() {
        return Applied::Ignored(if current == reported {
            Ignored::Duplicate
        } else {
            Ignored::Terminal
        });
    }
    if current == reported {
        return Applied::Ignored(Ignored::Duplicate);
    }
    if S::allows(current, reported) {
        Applied::Changed {
            from: current,
            to: reported,
        }
    } else {
        Applied::Ignored(Ignored::Stale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_session_is_not_final() {
        assert!(!SessionStatus::Error.is_terminal());
        assert!(observe(SessionStatus::Error, SessionStatus::Accepted).is_changed());
    }

    #[test]
    fn stale_session_report_never_moves_backwards() {
        assert_eq!(
            observe(SessionStatus::Error, SessionStatus::InProgress),
            Applied::Ignored(Ignored::Stale)
        );
        assert_eq!(
            observe(SessionStatus::Accepted, SessionStatus::InProgress),
            Applied::Ignored(Ignored::Terminal)
        );
    }

    #[test]
    fn acquiring_terminal_states_absorb() {
        for s in AcquiringStatus::ALL {
            assert!(!observe(AcquiringStatus::Succeeded, *s).is_changed());
            assert!(!observe(AcquiringStatus::Failed, *s).is_changed());
        }
    }

    #[test]
    fn states_parse_from_their_wire_names() {
        for s in SessionStatus::ALL {
            assert_eq!(SessionStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(
            AcquiringStatus::parse("in_progress"),
            Some(AcquiringStatus::InProgress)
        );
        assert_eq!(AcquiringStatus::parse("bogus"), None);
    }
}
