//! The conformance cases, one file per port. Each takes a [`Harness`] over a
//! fresh database.
//!
//! [`Harness`]: crate::Harness

mod clock;
mod commit;
mod events;
mod idempotency;
mod inbox;
mod outbox;
mod payments;
mod subscriptions;
mod tokens;

pub use clock::*;
pub use commit::*;
pub use events::*;
pub use idempotency::*;
pub use inbox::*;
pub use outbox::*;
pub use payments::*;
pub use subscriptions::*;
pub use tokens::*;
