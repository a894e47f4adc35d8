//! # app
//!
//! The only crate that knows every other: it reads the configuration, builds
//! the adapters, wires them into the use cases (`Arc<dyn Port>`), and runs
//! the HTTP server and the background workers. `main.rs` is the `recur`
//! binary's command line; tests start the same [`start`] in-process.

pub mod config;
pub mod demo;
mod ids;
mod keys;
mod server;
mod start;
mod store;
mod workers;

pub use http_api::BoxFuture;

pub use crate::config::{Bank, Config, ConfigError, LogFormat};
pub use crate::server::serve;
pub use crate::start::{Running, start};
pub use crate::store::{migrate, open_store};

/// Why the service could not start.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

pub(crate) fn fail<E: std::fmt::Display>(context: &str) -> impl Fn(E) -> StartError + '_ {
    move |e| StartError(format!("{context}: {e}"))
}
