//! Transition tables as data, so that tools can draw them and tests can walk them.

use std::fmt;

/// Writes a [`State`]'s `ALL` and `as_str` from one `Variant => "name"` list, so a state
/// cannot be listed without a name or named twice.
macro_rules! state_names {
    ($($variant:ident => $name:literal),+ $(,)?) => {
        const ALL: &'static [Self] = &[$(Self::$variant),+];

        fn as_str(self) -> &'static str {
            match self {
                $(Self::$variant => $name),+
            }
        }
    };
}
pub(crate) use state_names;

/// One edge of a state machine: `from` moves to `to` on `on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition<S: 'static> {
    /// The state before.
    pub from: S,
    /// What moves it (a bank fact or a command), in words.
    pub on: &'static str,
    /// The state after.
    pub to: S,
}

/// A state of one of the machines in this crate.
pub trait State: Copy + Eq + fmt::Debug + 'static {
    /// Every state, in a stable order.
    const ALL: &'static [Self];
    /// The machine's name, for diagrams.
    const MACHINE: &'static str;
    /// Every legal transition.
    const TRANSITIONS: &'static [Transition<Self>];

    /// The state's name as the outside world spells it (`in_progress`).
    fn as_str(self) -> &'static str;

    /// Whether no transition leaves this state.
    fn is_terminal(self) -> bool {
        !Self::TRANSITIONS
            .iter()
            .any(|t| t.from == self && t.to != self)
    }

    /// Whether `from → to` appears in the table (staying put is always allowed).
    fn allows(from: Self, to: Self) -> bool {
        from == to
            || Self::TRANSITIONS
                .iter()
                .any(|t| t.from == from && t.to == to)
    }

    /// Parses the outside spelling of a state.
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == name)
    }
}

/// A type-erased view of a transition table, for drawing and documentation.
#[derive(Debug, Clone)]
pub struct TableView {
    /// The machine's name.
    pub machine: &'static str,
    /// The states, first one initial.
    pub states: Vec<&'static str>,
    /// States no transition leaves.
    pub terminal: Vec<&'static str>,
    /// `(from, on, to)` edges.
    pub transitions: Vec<(&'static str, &'static str, &'static str)>,
}

impl TableView {
    /// The view of one machine.
    pub fn of<S: State>() -> Self {
        Self {
            machine: S::MACHINE,
            states: S::ALL.iter().map(|s| s.as_str()).collect(),
            terminal: S::ALL
                .iter()
                .filter(|s| s.is_terminal())
                .map(|s| s.as_str())
                .collect(),
            transitions: S::TRANSITIONS
                .iter()
                .map(|t| (t.from.as_str(), t.on, t.to.as_str()))
                .collect(),
        }
    }
}

/// Every state machine of this crate, in the order the docs show them.
pub fn all_tables() -> Vec<TableView> {
    vec![
        TableView::of::<crate::SessionStatus>(),
        TableView::of::<crate::AcquiringStatus>(),
        TableView::of::<crate::PaymentStatus>(),
        TableView::of::<crate::TokenStatus>(),
        TableView::of::<crate::SubscriptionStatus>(),
    ]
}

/// What became of a fact or command applied to an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied<S> {
    /// The state moved (or the aggregate learned something new in the same state).
    Changed {
        /// State before.
        from: S,
        /// State after.
        to: S,
    },
    /// Nothing changed: the fact was a duplicate, stale, or arrived after a terminal state.
    Ignored(Ignored),
}

impl<S> Applied<S> {
    /// Whether the aggregate changed.
    pub fn is_changed(&self) -> bool {
        matches!(self, Applied::Changed { .. })
    }
}

/// Why a fact was ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// The same fact was already applied.
    Duplicate,
    /// A later fact was already applied; this one would move state backwards.
    Stale,
    /// The aggregate is in a terminal state, which absorbs every fact.
    Terminal,
    /// The fact does not concern this flow (the bank's widget handles its
    /// own 3-D Secure redirect: the partner only acknowledges it).
    NotForThisFlow,
}

/// A command that is not legal in the aggregate's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionError {
    /// Which machine refused.
    pub machine: &'static str,
    /// The state it was in.
    pub state: &'static str,
    /// What was asked.
    pub command: &'static str,
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} a {} that is {}",
            self.command, self.machine, self.state
        )
    }
}

impl std::error::Error for TransitionError {}

impl TransitionError {
    pub(crate) fn new<S: State>(state: S, command: &'static str) -> Self {
        Self {
            machine: S::MACHINE,
            state: state.as_str(),
            command,
        }
    }
}
