//! The Switchboard domain: identifiers, addresses, roles, senders, contacts and messages.
//!
//! Nothing in this crate performs I/O or reads the clock: callers pass time in. That keeps every
//! rule here testable with table and property tests.

pub mod address;
pub mod auth;
pub mod campaign;
pub mod channel;
pub mod consent;
pub mod contact;
pub mod conversation;
pub mod dlp;
pub mod hours;
pub mod ids;
pub mod list;
pub mod message;
pub mod policy;
pub mod retry;
pub mod sender;
pub mod template;
pub mod time;
pub mod user;
pub mod validation;

pub use address::{MessengerPsid, PhoneNumber, WhatsappUserId};
pub use auth::{Permission, Role};
pub use channel::Channel;
pub use ids::*;
pub use validation::{FieldError, ValidationErrors};
