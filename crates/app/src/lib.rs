//! Switchboard's use cases: the operations that the HTTP API, the web inbox and the CLI share.
//!
//! Each use case takes the [`AppState`] and the acting [`Principal`], checks the permission it
//! needs, parses its input into domain types (reporting every bad field at once), and calls the
//! store. Nothing here knows about HTTP.

pub mod auth;
pub mod campaigns;
pub mod consent;
pub mod contacts;
pub mod conversations;
pub mod dispatch;
mod error;
pub mod events;
mod group_commit;
pub mod idempotency;
pub mod inbound;
pub mod lists;
mod lookups;
pub mod media;
pub mod messages;
pub mod patch;
mod provider;
pub mod sandbox;
pub mod senders;
pub mod sending;
pub mod sessions;
pub mod settings;
mod state;
pub mod templates;
pub mod uploads;
pub mod users;
pub mod webhooks;

pub use auth::Principal;
pub(crate) use error::missing_reference;
pub use error::AppError;
pub use state::{AppState, Clock, ManualClock, StateOptions, SystemClock};

pub type Result<T, E = AppError> = std::result::Result<T, E>;
