//! Provider wire formats and signatures: WhatsApp Cloud API, Messenger Platform and Twilio.
//!
//! Nothing here touches storage; connectors take and return plain values.

pub mod errors;
pub mod messenger_send;
pub mod outbound;
pub mod signature;
pub mod twilio_send;
pub mod whatsapp_send;

pub use errors::{RetryScope, SendError};
pub use messenger_send::{messenger_request, parse_messenger_success, MessagingType};
pub use outbound::{
    BuildError, HttpRequest, OutboundBody, OutboundRequest, ParseError, Recipient, RequestBody,
    SendReceipt,
};
pub use twilio_send::{parse_twilio_success, twilio_request, TwilioSender};
pub use whatsapp_send::{parse_whatsapp_success, whatsapp_request, whatsapp_template_submission};
