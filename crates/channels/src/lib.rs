//! Provider wire formats and signatures: WhatsApp Cloud API, Messenger Platform and Twilio.
//!
//! Nothing here touches storage; connectors take and return plain values.

pub mod events;
pub mod messenger_webhook;
pub mod signature;
pub mod twilio_webhook;
pub mod whatsapp_webhook;

pub use events::{InboundEvent, ParseError};
pub use messenger_webhook::parse_messenger;
pub use twilio_webhook::{parse_form, parse_twilio};
pub use whatsapp_webhook::parse_whatsapp;
