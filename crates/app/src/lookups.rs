//! Shared reads. Deciding a send reads the caller's token, the recipient, the sender, when the
//! customer last wrote, their consent ledger, the sender's templates and the conversation: each
//! a point read that costs a round trip (on SQLite, a hand-off to a reader thread and back),
//! and together most of what a send costs. Sends decided at the same moment share them: each
//! kind of read has one reader that takes every key waiting, reads them in one query and
//! answers each caller with its own row, the way the group-commit writers take writes. A lone
//! read goes at once, and nothing is kept: every read starts after its caller asked, so it
//! sees every write committed before.

use std::collections::HashMap;

use switchboard_core::consent::ConsentEvent;
use switchboard_core::contact::Contact;
use switchboard_core::sender::Sender;
use switchboard_core::template::Template;
use switchboard_core::user::ApiToken;
use switchboard_core::{
    Channel, ContactId, ConversationId, MessengerPsid, PhoneNumber, SenderId, WhatsappUserId,
};
use switchboard_store::{Store, StoreError};
use time::OffsetDateTime;

use crate::group_commit::GroupCommit;

type Pair = (ContactId, SenderId);

pub(crate) struct Lookups {
    tokens: GroupCommit<String, Option<ApiToken>>,
    contacts: GroupCommit<Addresses, Option<Contact>>,
    senders: GroupCommit<SenderId, Option<Sender>>,
    consent: GroupCommit<(ContactId, Channel), Vec<ConsentEvent>>,
    templates: GroupCommit<SenderId, Vec<Template>>,
    /// A contact's conversation with a sender and when the customer last wrote in it: one
    /// row, read once for the send's window and for its conversation.
    conversations: GroupCommit<Pair, Option<(ConversationId, Option<OffsetDateTime>)>>,
}

/// Starts a reader: `read` answers for the distinct keys of a batch; a key it leaves out
/// gets the default (none found).
fn reader<K, V, R, F>(store: &Store, read: R) -> GroupCommit<K, V>
where
    K: Clone + Eq + std::hash::Hash + Send + 'static,
    V: Clone + Default + Send + 'static,
    R: Fn(Store, Vec<K>) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = Result<HashMap<K, V>, StoreError>> + Send + 'static,
{
    let store = store.clone();
    let read = std::sync::Arc::new(read);
    GroupCommit::start(move |keys: Vec<K>| {
        let (store, read) = (store.clone(), read.clone());
        async move {
            let mut distinct = keys.clone();
            let mut seen = std::collections::HashSet::new();
            distinct.retain(|k| seen.insert(k.clone()));
            let found = read(store, distinct).await?;
            Ok(keys
                .iter()
                .map(|k| Ok(found.get(k).cloned().unwrap_or_default()))
                .collect())
        }
    })
}

/// Groups keys by their second part, for queries that take one of it and many of the first.
fn by_second<A: Copy, B: Copy + Eq + std::hash::Hash>(keys: &[(A, B)]) -> HashMap<B, Vec<A>> {
    let mut groups: HashMap<B, Vec<A>> = HashMap::new();
    for (a, b) in keys {
        groups.entry(*b).or_default().push(*a);
    }
    groups
}

/// A contact's addresses to look for: phone, WhatsApp user id, Messenger id.
type Addresses = (Option<String>, Option<String>, Option<String>);

impl Lookups {
    pub(crate) fn start(store: &Store) -> Self {
        Lookups {
            tokens: reader(store, |store, hashes: Vec<String>| async move {
                let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
                Ok(store
                    .find_tokens_by_hashes(&hashes)
                    .await?
                    .into_iter()
                    .map(|(hash, token)| (hash, Some(token)))
                    .collect())
            }),
            contacts: reader(store, |store, keys: Vec<Addresses>| async move {
                let mut lists: [Vec<&str>; 3] = Default::default();
                for (phone, bsuid, psid) in &keys {
                    for (list, value) in lists.iter_mut().zip([phone, bsuid, psid]) {
                        list.extend(value.as_deref());
                    }
                }
                for list in &mut lists {
                    list.sort_unstable();
                    list.dedup();
                }
                let [phones, bsuids, psids] = &lists;
                let mut contacts = store
                    .find_contacts_by_addresses(phones, bsuids, psids)
                    .await?;
                // Where one key matches several contacts (a phone of one, a user id of
                // another), the earliest made wins, as it does when read alone.
                contacts.sort_by_cached_key(|c| c.id.to_string());
                let mut found = HashMap::new();
                for key in keys {
                    let (phone, bsuid, psid) = &key;
                    let first = contacts.iter().find(|c| {
                        phone.is_some() && c.phone.as_ref().map(|p| p.as_str()) == phone.as_deref()
                            || bsuid.is_some()
                                && c.whatsapp_user_id.as_ref().map(|b| b.as_str())
                                    == bsuid.as_deref()
                            || psid.is_some()
                                && c.messenger_psid.as_ref().map(|p| p.as_str()) == psid.as_deref()
                    });
                    if let Some(contact) = first {
                        found.insert(key, Some(contact.clone()));
                    }
                }
                Ok(found)
            }),
            senders: reader(store, |store, ids: Vec<SenderId>| async move {
                Ok(store
                    .get_senders(&ids)
                    .await?
                    .into_iter()
                    .map(|s| (s.id, Some(s)))
                    .collect())
            }),
            consent: reader(store, |store, keys: Vec<(ContactId, Channel)>| async move {
                let mut found: HashMap<(ContactId, Channel), Vec<ConsentEvent>> = HashMap::new();
                for (channel, contacts) in by_second(&keys) {
                    for event in store.consent_events_of(&contacts, channel).await? {
                        found
                            .entry((event.contact_id, channel))
                            .or_default()
                            .push(event);
                    }
                }
                Ok(found)
            }),
            templates: reader(store, |store, senders: Vec<SenderId>| async move {
                let mut found = HashMap::new();
                for sender in senders {
                    found.insert(sender, store.sender_templates(sender).await?);
                }
                Ok(found)
            }),
            conversations: reader(store, |store, pairs: Vec<Pair>| async move {
                let mut found = HashMap::new();
                for (sender, contacts) in by_second(&pairs) {
                    for (contact, conversation, last_inbound) in
                        store.conversations_with(sender, &contacts).await?
                    {
                        found.insert((contact, sender), Some((conversation, last_inbound)));
                    }
                }
                Ok(found)
            }),
        }
    }

    /// The token stored under this secret hash.
    pub(crate) async fn token(&self, hash: String) -> Result<Option<ApiToken>, StoreError> {
        self.tokens.commit(hash).await
    }

    /// The contact holding any of these addresses: see `Store::find_contact_by_address`.
    pub(crate) async fn contact_by_address(
        &self,
        phone: Option<&PhoneNumber>,
        whatsapp_user_id: Option<&WhatsappUserId>,
        messenger_psid: Option<&MessengerPsid>,
    ) -> Result<Option<Contact>, StoreError> {
        let own = |s: &str| s.to_owned();
        self.contacts
            .commit((
                phone.map(|p| own(p.as_str())),
                whatsapp_user_id.map(|b| own(b.as_str())),
                messenger_psid.map(|p| own(p.as_str())),
            ))
            .await
    }

    pub(crate) async fn sender(&self, id: SenderId) -> Result<Sender, StoreError> {
        self.senders.commit(id).await?.ok_or(StoreError::NotFound)
    }

    /// The contact's consent ledger on the channel, oldest first.
    pub(crate) async fn consent_events(
        &self,
        contact: ContactId,
        channel: Channel,
    ) -> Result<Vec<ConsentEvent>, StoreError> {
        self.consent.commit((contact, channel)).await
    }

    pub(crate) async fn sender_templates(
        &self,
        sender: SenderId,
    ) -> Result<Vec<Template>, StoreError> {
        self.templates.commit(sender).await
    }

    /// The conversation between the contact and the sender, if they have one, with when the
    /// contact last wrote in it (see `Store::last_inbound_at`).
    pub(crate) async fn conversation(
        &self,
        contact: ContactId,
        sender: SenderId,
    ) -> Result<Option<(ConversationId, Option<OffsetDateTime>)>, StoreError> {
        self.conversations.commit((contact, sender)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::sender::{ProviderConfig, ProviderKind, SenderHealth};

    /// Reads asked for at once, found and not, each get what a read of their own would have.
    async fn reads_asked_together_each_get_their_own_answer(db: switchboard_testkit::TestDb) {
        let store = Store::open(db.url()).await.unwrap();
        let now = switchboard_core::time::truncate_to_millis(OffsetDateTime::now_utc());
        let sender = Sender {
            id: SenderId::new(),
            channel: Channel::Whatsapp,
            name: "wa".into(),
            use_case: None,
            provider: ProviderConfig::Sandbox,
            health: SenderHealth::initial(ProviderKind::Sandbox),
            rate_limit_per_second: None,
            created_at: now,
            updated_at: now,
        };
        store.create_sender(&sender).await.unwrap();
        let mut contacts = Vec::new();
        for i in 0..20 {
            let mut contact = Contact::unsaved();
            contact.id = ContactId::new();
            contact.phone =
                Some(PhoneNumber::parse("phone", &format!("+4420794600{i:02}")).unwrap());
            contact.created_at = now;
            contact.updated_at = now;
            store.create_contact(&contact, None).await.unwrap();
            contacts.push(contact);
        }
        let lookups = Lookups::start(&store);
        let unknown = PhoneNumber::parse("phone", "+442079469999").unwrap();
        let asked = contacts
            .iter()
            .map(|c| c.phone.clone())
            .chain([Some(unknown), None]);
        let found = futures_util::future::join_all(asked.clone().map(|phone| {
            let lookups = &lookups;
            async move { lookups.contact_by_address(phone.as_ref(), None, None).await }
        }))
        .await;
        for (phone, found) in asked.zip(found) {
            let alone = match &phone {
                Some(p) => store
                    .find_contact_by_address(Some(p), None, None)
                    .await
                    .unwrap(),
                None => None,
            };
            assert_eq!(found.unwrap(), alone, "{phone:?}");
        }
        let (known, missing) =
            tokio::join!(lookups.sender(sender.id), lookups.sender(SenderId::new()));
        assert_eq!(known.unwrap(), sender);
        assert!(matches!(missing, Err(StoreError::NotFound)));
        let conversations = futures_util::future::join_all(
            contacts
                .iter()
                .map(|c| lookups.conversation(c.id, sender.id)),
        )
        .await;
        assert!(conversations.into_iter().all(|c| c.unwrap().is_none()));
    }

    switchboard_testkit::both_backends!(reads_asked_together_each_get_their_own_answer);
}
