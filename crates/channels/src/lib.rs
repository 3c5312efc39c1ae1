//! Provider wire formats and signatures: WhatsApp Cloud API, Messenger Platform and Twilio.
//!
//! Nothing here touches storage; connectors take and return plain values: webhook bodies in,
//! events out; outbound requests in, HTTP request descriptions out; provider answers in,
//! receipts or classified errors out.

pub mod errors;
pub mod events;
pub mod messenger_send;
pub mod messenger_webhook;
pub mod outbound;
pub mod sandbox;
pub mod signature;
pub mod twilio_send;
pub mod twilio_webhook;
pub mod whatsapp_send;
pub mod whatsapp_webhook;

pub use errors::{RetryScope, SendError};
pub use events::{InboundEvent, ParseError};
pub use messenger_send::{messenger_request, parse_messenger_success, MessagingType};
pub use messenger_webhook::parse_messenger;
pub use outbound::{
    BuildError, HttpRequest, Multipart, OutboundBody, OutboundRequest,
    ParseError as ResponseParseError, Recipient, RequestBody, SendReceipt,
};
pub use twilio_send::{parse_twilio_success, twilio_request, TwilioSender};
pub use twilio_webhook::{parse_form, parse_twilio};
pub use whatsapp_send::{
    parse_media_info, parse_media_uploaded, parse_template_submitted, parse_whatsapp_success,
    whatsapp_media_info_request, whatsapp_media_upload_request, whatsapp_request,
    whatsapp_template_submission, MediaInfo, TemplateSubmitted, UploadFile,
};
pub use whatsapp_webhook::parse_whatsapp;
