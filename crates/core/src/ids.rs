//! One identifier type per entity, so a contact id can never be passed where a sender id is due.
//!
//! Ids are UUIDv7: they sort by creation time, which the store uses for keyset pagination.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Hyphenated lower-case hex: lexical order equals time order for v7.
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

typed_id!(
    /// A person who signs in: admin, supervisor or agent.
    UserId
);
typed_id!(
    /// An API token (its secret is never stored, only its hash).
    TokenId
);
typed_id!(
    /// One business identity on one channel.
    SenderId
);
typed_id!(
    /// A customer.
    ContactId
);
typed_id!(
    /// One inbound or outbound message.
    MessageId
);
typed_id!(
    /// The thread between one contact and one sender.
    ConversationId
);
typed_id!(
    /// One move of a conversation through the workflow.
    ConversationEventId
);
typed_id!(
    /// A message template of one sender in one locale.
    TemplateId
);
typed_id!(
    /// One entry of the consent ledger.
    ConsentEventId
);
typed_id!(
    /// A bulk send of one template to one list.
    CampaignId
);
typed_id!(
    /// A signed-in web session (its secret is never stored, only its hash).
    SessionId
);
typed_id!(
    /// A contact list: the audience of a campaign.
    ListId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text() {
        let id = ContactId::new();
        let parsed: ContactId = id.to_string().parse().unwrap();
        assert_eq!(id, parsed);
    }

    #[test]
    fn later_ids_sort_after_earlier_ones_as_text() {
        let ids: Vec<String> = (0..200).map(|_| MessageId::new().to_string()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
