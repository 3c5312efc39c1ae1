//! Provider wire formats and signatures: WhatsApp Cloud API, Messenger Platform and Twilio.
//!
//! Nothing here touches storage; connectors take and return plain values.

pub mod signature;
