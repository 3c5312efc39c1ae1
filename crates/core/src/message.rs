//! The message record (R3.8, R5.4) that every send and every webhook writes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::channel::Channel;
use crate::ids::{ContactId, ConversationId, MessageId, SenderId};

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $( #[serde(rename = $wire)] $variant, )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $( $name::$variant => $wire, )+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let expected: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("unknown value `{s}`: expected one of {}", expected.join(", "))
                    })
            }
        }
    };
}

wire_enum!(
    Direction {
        Inbound => "inbound",
        Outbound => "outbound",
    }
);

wire_enum!(
    /// How the channel classes a message (R3.8): free-form inside the service window, an
    /// approved WhatsApp template, or a Messenger message tag.
    ChannelTemplateType {
        Session => "session",
        Template => "template",
        MessageTag => "message_tag",
    }
);

wire_enum!(
    /// Where a message is on its way. Outbound messages move forward only
    /// (scheduled -> queued -> sent -> delivered -> read); `failed` ends a message that has not
    /// been delivered. Inbound messages are `received`.
    DeliveryStatus {
        Scheduled => "scheduled",
        Queued => "queued",
        Sent => "sent",
        Delivered => "delivered",
        Read => "read",
        Failed => "failed",
        Received => "received",
    }
);

impl DeliveryStatus {
    fn rank(self) -> Option<u8> {
        match self {
            DeliveryStatus::Scheduled => Some(0),
            DeliveryStatus::Queued => Some(1),
            DeliveryStatus::Sent => Some(2),
            DeliveryStatus::Delivered => Some(3),
            DeliveryStatus::Read => Some(4),
            DeliveryStatus::Failed | DeliveryStatus::Received => None,
        }
    }

    /// Whether a message in `self` may move to `next`. Providers deliver status webhooks out of
    /// order and more than once, so anything that is not a step forward is ignored.
    pub fn can_advance_to(self, next: DeliveryStatus) -> bool {
        match (self.rank(), next) {
            (_, DeliveryStatus::Received) => false,
            (Some(current), DeliveryStatus::Failed) => current <= 2,
            (Some(current), next) => next.rank().is_some_and(|n| n > current),
            (None, _) => false,
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Read | DeliveryStatus::Failed | DeliveryStatus::Received
        )
    }
}

/// The template a message used, with the values its variables took.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplateRef {
    pub name: String,
    pub locale: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub variables: Map<String, Value>,
}

wire_enum!(
    MediaKind {
        Image => "image",
        Document => "document",
        Audio => "audio",
        Video => "video",
        Sticker => "sticker",
    }
);

impl MediaKind {
    /// How a file of this MIME type is sent: the types WhatsApp shows as a picture, a video or
    /// a sound go as such; anything else goes as a document, which every channel delivers.
    pub fn for_mime_type(mime_type: &str) -> MediaKind {
        let essence = mime_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "image/jpeg" | "image/png" => MediaKind::Image,
            "image/webp" => MediaKind::Sticker,
            "video/mp4" | "video/3gpp" => MediaKind::Video,
            "audio/aac" | "audio/amr" | "audio/mpeg" | "audio/mp4" | "audio/ogg" => {
                MediaKind::Audio
            }
            _ => MediaKind::Document,
        }
    }
}

wire_enum!(
    /// Where Switchboard's own copy of an inbound file stands (R5.6).
    MediaDownloadStatus {
        Pending => "pending",
        Stored => "stored",
        Failed => "failed",
    }
);

/// A file carried by a message: a link, a provider media id, or a file stored by Switchboard.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Media {
    pub kind: MediaKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// SHA-256 of the stored file (lower-case hex), for media Switchboard keeps itself; it is
    /// served at `/api/v1/media/{sha256}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The hash the provider stated for the file (WhatsApp writes it in base64); the download
    /// is checked against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_sha256: Option<String>,
    /// For inbound media from a provider: whether the file has been downloaded yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download: Option<MediaDownloadStatus>,
}

/// Why a message failed: our stable code, the provider's own code, and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageError {
    pub code: String,
    pub provider_code: Option<String>,
    pub reason: String,
}

/// One step of a message's status timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusEvent {
    pub status: DeliveryStatus,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    pub error: Option<MessageError>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub direction: Direction,
    pub channel: Channel,
    pub sender_id: SenderId,
    pub contact_id: ContactId,
    pub conversation_id: Option<ConversationId>,
    pub text: Option<String>,
    pub template: Option<TemplateRef>,
    pub media: Option<Media>,
    pub channel_template_type: ChannelTemplateType,
    pub status: DeliveryStatus,
    pub status_history: Vec<StatusEvent>,
    pub provider_message_id: Option<String>,
    pub error: Option<MessageError>,
    /// When the provider says the customer sent it (inbound); the window runs from this.
    pub provider_timestamp: Option<OffsetDateTime>,
    /// The Messenger tag it was sent with.
    pub tag: Option<crate::template::MessageTag>,
    /// Sent outside a window the customer opened; counts against the messaging limit.
    pub business_initiated: bool,
    /// Data-loss prevention rewrote its text before sending.
    pub redacted: bool,
    /// For a scheduled message: when it is to be sent.
    pub send_at: Option<OffsetDateTime>,
    /// Who sent it: a user or token id, or `system`; `None` for inbound messages.
    pub actor: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Message {
    /// A message carries text, a template or media; a record with none of them is refused.
    pub fn has_content(&self) -> bool {
        self.text.is_some() || self.template.is_some() || self.media.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use DeliveryStatus::*;

    #[test]
    fn statuses_move_forward_only() {
        let table = [
            (Scheduled, Queued, true),
            (Queued, Sent, true),
            (Sent, Delivered, true),
            (Delivered, Read, true),
            (Queued, Read, true),
            (Read, Delivered, false),
            (Delivered, Sent, false),
            (Sent, Sent, false),
            (Queued, Failed, true),
            (Sent, Failed, true),
            (Delivered, Failed, false),
            (Failed, Sent, false),
            (Received, Read, false),
            (Queued, Received, false),
        ];
        for (from, to, allowed) in table {
            assert_eq!(from.can_advance_to(to), allowed, "{from} -> {to}");
        }
    }

    #[test]
    fn files_go_as_the_kind_their_type_allows() {
        let table = [
            ("image/png", MediaKind::Image),
            ("IMAGE/JPEG; charset=binary", MediaKind::Image),
            ("image/webp", MediaKind::Sticker),
            ("image/gif", MediaKind::Document),
            ("video/mp4", MediaKind::Video),
            ("audio/ogg; codecs=opus", MediaKind::Audio),
            ("application/pdf", MediaKind::Document),
            ("", MediaKind::Document),
        ];
        for (mime, kind) in table {
            assert_eq!(MediaKind::for_mime_type(mime), kind, "{mime}");
        }
    }

    fn status() -> impl Strategy<Value = DeliveryStatus> {
        proptest::sample::select(DeliveryStatus::ALL.to_vec())
    }

    proptest! {
        /// Whatever order webhooks arrive in, applying only permitted steps never moves a
        /// message backwards, and once failed or read it stays there.
        #[test]
        fn any_sequence_of_updates_is_monotonic(updates in proptest::collection::vec(status(), 0..20)) {
            let mut current = Queued;
            for next in updates {
                let before = current;
                if current.can_advance_to(next) {
                    current = next;
                }
                if before.is_final() {
                    prop_assert_eq!(current, before);
                }
                if let (Some(b), Some(c)) = (before.rank(), current.rank()) {
                    prop_assert!(c >= b);
                }
            }
        }
    }
}
