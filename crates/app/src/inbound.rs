//! Receiving (R1.7, R2.1, R4.2, R4.3, R5.2): an inbound message opens the customer-service
//! window from the provider's timestamp, finds or creates its contact, reopens the
//! conversation, and applies consent keywords and opt-in replies, all in one transaction.
//! Provider webhooks, the sandbox and importers all arrive here.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use switchboard_core::consent::{
    apply_keyword, confirmation_text, could_change_consent, current_status, outcome_of_reply,
    status_after, ConsentEvent, ConsentSource, ConsentStatus, OptInOutcome,
};
use switchboard_core::contact::Contact;
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Direction, Media, MediaDownloadStatus, Message,
    StatusEvent,
};
use switchboard_core::policy::SystemPurpose;
use switchboard_core::validation::optional_text;
use switchboard_core::{
    Channel, ConsentEventId, ContactId, ConversationId, FieldError, MessageId, MessengerPsid,
    Permission, PhoneNumber, SenderId, ValidationErrors, WhatsappUserId,
};
use switchboard_store::messages::InboundRecord;
use switchboard_store::StoreError;
use time::OffsetDateTime;

use crate::group_commit::Gather;
use crate::idempotency::Created;
use crate::sending::{send_as, SendInput, Sender, MAX_TEXT_CHARS};
use crate::{AppError, AppState, Principal, Result};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InboundInput {
    /// The sender (business identity) the customer wrote to.
    pub sender_id: SenderId,
    /// The customer's address on that channel: E.164 phone or WhatsApp user id, or Messenger id.
    pub from: String,
    /// The customer's profile name, used when the contact is new.
    pub name: Option<String>,
    pub text: Option<String>,
    /// A file: by `url`, or by the provider's media id (`provider_media_id`) to fetch later.
    pub media: Option<Media>,
    /// The provider's id for the message: a message delivered twice is recorded once.
    pub provider_message_id: Option<String>,
    /// When the customer sent it, by the provider's clock (default: now). The window runs from
    /// this, not from when it reached us.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub timestamp: Option<OffsetDateTime>,
    /// When the message is a tap on a quick-reply button: the button's text (or payload). It
    /// answers a campaign's template (R6.6).
    #[serde(default)]
    pub button: Option<String>,
}

enum Address {
    Phone(PhoneNumber),
    Bsuid(WhatsappUserId),
    Psid(MessengerPsid),
}

impl Address {
    /// One key for every kind of address: a phone is never a PSID.
    fn key(&self) -> String {
        match self {
            Address::Phone(p) => format!("phone:{}", p.as_str()),
            Address::Bsuid(b) => format!("bsuid:{}", b.as_str()),
            Address::Psid(p) => format!("psid:{}", p.as_str()),
        }
    }
}

/// What a batch of inbound messages looked up at once, one read for each kind, so that each
/// message need not alone: who wrote (contacts by address), their conversations with the
/// sender, and whether any of them may be answering a campaign. What a batch did not find
/// (a new customer) each message looks up, or creates, itself.
#[derive(Default)]
pub(crate) struct Known {
    contacts: HashMap<String, Contact>,
    conversations: HashMap<(ContactId, SenderId), ConversationId>,
    /// By sender: the contacts that may be in an open interaction with it. A sender listed
    /// here has none with anyone else in the batch.
    interactions: HashMap<SenderId, HashSet<ContactId>>,
    /// Where the batch's messages are committed together, when its lanes say when they are
    /// done.
    gather: Option<Gather<InboundRecord, ()>>,
}

impl Known {
    /// Commits the messages of `lanes` lanes applied side by side together; each lane calls
    /// [`lane_done`](Self::lane_done) when it has applied all it will.
    pub(crate) fn gather(&mut self, state: &AppState, lanes: usize) {
        self.gather = Some(Gather::new(state.inbound().clone(), lanes));
    }

    pub(crate) async fn lane_done(&self) {
        if let Some(gather) = &self.gather {
            gather.done().await;
        }
    }

    /// Looks up the writers of a batch: (sender, its channel, the customer's address, their
    /// profile name). Customers writing for the first time get their contacts, and customers
    /// new to a sender their conversations, together: one transaction for the batch rather
    /// than one for each, which would hold up every other writer. (A message then refused for
    /// its content, too long say, still leaves its writer's contact: they did write to us.)
    pub(crate) async fn load(
        state: &AppState,
        writers: &[(SenderId, Channel, String, Option<String>)],
    ) -> Result<Known> {
        let mut known = Known::default();
        let addresses: Vec<(SenderId, Channel, Address, &Option<String>)> = writers
            .iter()
            .filter_map(|(sender, channel, from, name)| {
                parse_from(*channel, from)
                    .ok()
                    .map(|a| (*sender, *channel, a, name))
            })
            .collect();
        if addresses.is_empty() {
            return Ok(known);
        }
        let store = state.store();
        let all: Vec<&Address> = addresses.iter().map(|(_, _, a, _)| a).collect();
        known.find(state, &all).await?;
        let now = state.now();
        let mut absent: HashMap<String, Contact> = HashMap::new();
        for (_, _, address, name) in &addresses {
            let key = address.key();
            if known.contacts.contains_key(&key) || absent.contains_key(&key) {
                continue;
            }
            // A name the message itself would be refused for is left to that refusal.
            let Ok(name) = name
                .as_deref()
                .map(|n| optional_text("name", n, 200))
                .transpose()
            else {
                continue;
            };
            let name = name.filter(|n| !n.is_empty());
            absent.insert(key, new_contact(address, name, now));
        }
        if !absent.is_empty() {
            let fresh: Vec<Contact> = absent.into_values().collect();
            store
                .create_contacts_absent(&fresh)
                .await
                .map_err(AppError::Internal)?;
            let again: Vec<&Address> = addresses
                .iter()
                .map(|(_, _, a, _)| a)
                .filter(|a| !known.contacts.contains_key(&a.key()))
                .collect();
            known.find(state, &again).await?;
        }
        let mut by_sender: HashMap<SenderId, (Channel, Vec<ContactId>)> = HashMap::new();
        for (sender, channel, address, _) in &addresses {
            if let Some(contact) = known.contacts.get(&address.key()) {
                by_sender
                    .entry(*sender)
                    .or_insert_with(|| (*channel, Vec::new()))
                    .1
                    .push(contact.id);
            }
        }
        for (sender, (channel, mut contacts)) in by_sender {
            contacts.sort_unstable();
            contacts.dedup();
            known.find_conversations(state, sender, &contacts).await?;
            let missing: Vec<(ContactId, SenderId, Channel)> = contacts
                .iter()
                .filter(|c| !known.conversations.contains_key(&(**c, sender)))
                .map(|c| (*c, sender, channel))
                .collect();
            if !missing.is_empty() {
                store
                    .ensure_conversations(&missing, now)
                    .await
                    .map_err(AppError::Internal)?;
                let missing: Vec<ContactId> = missing.into_iter().map(|(c, _, _)| c).collect();
                known.find_conversations(state, sender, &missing).await?;
            }
            let engaged = store
                .contacts_in_interactions(sender, &contacts)
                .await
                .map_err(AppError::Internal)?;
            known
                .interactions
                .insert(sender, engaged.into_iter().collect());
        }
        Ok(known)
    }

    /// Looks up the contacts holding these addresses.
    async fn find(&mut self, state: &AppState, addresses: &[&Address]) -> Result<()> {
        let (mut phones, mut bsuids, mut psids) = (Vec::new(), Vec::new(), Vec::new());
        for address in addresses {
            match address {
                Address::Phone(p) => phones.push(p.as_str()),
                Address::Bsuid(b) => bsuids.push(b.as_str()),
                Address::Psid(p) => psids.push(p.as_str()),
            }
        }
        for list in [&mut phones, &mut bsuids, &mut psids] {
            list.sort_unstable();
            list.dedup();
        }
        if phones.is_empty() && bsuids.is_empty() && psids.is_empty() {
            return Ok(());
        }
        let contacts = state
            .store()
            .find_contacts_by_addresses(&phones, &bsuids, &psids)
            .await
            .map_err(AppError::Internal)?;
        for contact in contacts {
            let keys = [
                contact
                    .phone
                    .as_ref()
                    .map(|p| format!("phone:{}", p.as_str())),
                contact
                    .whatsapp_user_id
                    .as_ref()
                    .map(|b| format!("bsuid:{}", b.as_str())),
                contact
                    .messenger_psid
                    .as_ref()
                    .map(|p| format!("psid:{}", p.as_str())),
            ];
            for key in keys.into_iter().flatten() {
                self.contacts.insert(key, contact.clone());
            }
        }
        Ok(())
    }

    async fn find_conversations(
        &mut self,
        state: &AppState,
        sender: SenderId,
        contacts: &[ContactId],
    ) -> Result<()> {
        for (contact, conversation, _) in state
            .store()
            .conversations_with(sender, contacts)
            .await
            .map_err(AppError::Internal)?
        {
            self.conversations.insert((contact, sender), conversation);
        }
        Ok(())
    }

    /// Whether the batch found that this contact has no open interaction with the sender.
    fn surely_no_interaction(&self, contact: ContactId, sender: SenderId) -> bool {
        self.interactions
            .get(&sender)
            .is_some_and(|engaged| !engaged.contains(&contact))
    }
}

fn parse_from(channel: Channel, from: &str) -> Result<Address, FieldError> {
    let mismatch = || {
        FieldError::new(
            "from",
            "invalid_address",
            match channel {
                Channel::Whatsapp => "`from` must be an E.164 phone number or a WhatsApp user id",
                Channel::Sms => "`from` must be an E.164 phone number",
                Channel::Messenger => "`from` must be a Messenger page-scoped id",
            },
        )
    };
    match channel {
        Channel::Whatsapp => PhoneNumber::from_provider_digits("from", from)
            .map(Address::Phone)
            .or_else(|_| WhatsappUserId::parse("from", from).map(Address::Bsuid))
            .map_err(|_| mismatch()),
        Channel::Sms => PhoneNumber::parse("from", from)
            .map(Address::Phone)
            .map_err(|_| mismatch()),
        Channel::Messenger => MessengerPsid::parse("from", from)
            .map(Address::Psid)
            .map_err(|_| mismatch()),
    }
}

/// A contact for a customer first heard from at this address.
fn new_contact(address: &Address, name: Option<String>, now: OffsetDateTime) -> Contact {
    let mut contact = Contact::unsaved();
    contact.id = ContactId::new();
    contact.name = name;
    match address {
        Address::Phone(p) => contact.phone = Some(p.clone()),
        Address::Bsuid(b) => contact.whatsapp_user_id = Some(b.clone()),
        Address::Psid(p) => contact.messenger_psid = Some(p.clone()),
    }
    contact.created_at = now;
    contact.updated_at = now;
    contact
}

/// The contact this address belongs to, created on first contact.
async fn contact_for(
    state: &AppState,
    address: &Address,
    name: Option<String>,
    now: OffsetDateTime,
) -> Result<Contact> {
    let (phone, bsuid, psid) = match address {
        Address::Phone(p) => (Some(p), None, None),
        Address::Bsuid(b) => (None, Some(b), None),
        Address::Psid(p) => (None, None, Some(p)),
    };
    let store = state.store();
    if let Some(found) = store
        .find_contact_by_address(phone, bsuid, psid)
        .await
        .map_err(AppError::Internal)?
    {
        return Ok(found);
    }
    let contact = new_contact(address, name, now);
    match store.create_contact(&contact, None).await {
        Ok(()) => Ok(contact),
        // Two messages from a new customer at once: the other one created the contact.
        Err(StoreError::Conflict {
            existing_id: Some(id),
            ..
        }) => store
            .get_contact(
                id.parse()
                    .map_err(|_| AppError::Internal(StoreError::Corrupt(id.clone())))?,
            )
            .await
            .map_err(AppError::Internal),
        Err(e) => Err(AppError::Internal(e)),
    }
}

/// What a message's text does to consent: a keyword (R4.2) or the answer to a pending opt-in
/// request (R4.3).
async fn consent_change(
    state: &AppState,
    contact: &Contact,
    channel: Channel,
    text: Option<&str>,
    now: OffsetDateTime,
) -> Result<Option<ConsentEvent>> {
    let Some(text) = text else { return Ok(None) };
    let keywords = crate::settings::keywords(state).await?;
    if !could_change_consent(text, &keywords) {
        return Ok(None);
    }
    let events = state
        .store()
        .consent_events(contact.id, Some(channel))
        .await
        .map_err(AppError::Internal)?;
    let current = current_status(&events, channel);
    let (status, source) = if current == ConsentStatus::Requested {
        match outcome_of_reply(current, text, &keywords).and_then(status_after) {
            Some(status) => (Some(status), ConsentSource::WhatsappThread),
            None => (None, ConsentSource::Keyword),
        }
    } else {
        let status = keywords
            .classify(text)
            .and_then(|intent| apply_keyword(current, intent));
        (status, ConsentSource::Keyword)
    };
    Ok(status.map(|status| ConsentEvent {
        id: ConsentEventId::new(),
        contact_id: contact.id,
        channel,
        status,
        source,
        evidence: Some(text.chars().take(2000).collect()),
        actor: "system".to_owned(),
        at: now,
    }))
}

/// What the customer is told after changing their consent by message: that the opt-out took
/// (R4.2: the one message an opted-out contact still gets), or the answer to an opt-in request
/// (R4.3b and c). Twilio confirms STOP itself, so SMS through Twilio gets no second one.
const OPT_OUT_CONFIRMATION: &str =
    "You have been unsubscribed and will receive no more messages. Reply START to subscribe again.";

async fn confirm(
    state: &AppState,
    sender: &switchboard_core::sender::Sender,
    event: &ConsentEvent,
) {
    let (text, purpose) = match (event.source, event.status) {
        (ConsentSource::Keyword, ConsentStatus::OptedOut) => {
            if sender.provider.kind() == switchboard_core::sender::ProviderKind::Twilio {
                return;
            }
            (OPT_OUT_CONFIRMATION, SystemPurpose::OptOutConfirmation)
        }
        (ConsentSource::WhatsappThread, status) => {
            let outcome = match status {
                ConsentStatus::OptedIn => OptInOutcome::Accepted,
                ConsentStatus::OptedOut => OptInOutcome::Rejected,
                _ => return,
            };
            match confirmation_text(outcome) {
                Some(text) => (text, SystemPurpose::OptInConfirmation),
                None => return,
            }
        }
        _ => return,
    };
    let input = SendInput {
        sender_id: Some(sender.id),
        contact_id: Some(event.contact_id),
        text: Some(text.to_owned()),
        ..Default::default()
    };
    // The customer's message is recorded whatever happens here; a confirmation the policy
    // refuses (a sender gone offline, say) is logged, not raised.
    if let Err(error) = send_as(state, Sender::System(purpose), input, None, None).await {
        tracing::warn!(contact_id = %event.contact_id, ?error, "consent confirmation not sent");
    }
}

pub async fn receive_message(
    state: &AppState,
    principal: &Principal,
    input: InboundInput,
) -> Result<Created<Message>> {
    principal.require(Permission::MessagesReceive)?;
    // A file named through the API is recorded, not fetched: fetching would send the sender's
    // credentials to whatever URL the caller gave, and bring any host's answer inside.
    receive_from(state, input, false, &Known::default()).await
}

/// Records an inbound message on the system's authority (a verified provider webhook).
pub(crate) async fn receive(state: &AppState, input: InboundInput) -> Result<Created<Message>> {
    receive_from(state, input, true, &Known::default()).await
}

/// Like [`receive`], for a message of a batch whose writers were looked up together.
pub(crate) async fn receive_known(
    state: &AppState,
    input: InboundInput,
    known: &Known,
) -> Result<Created<Message>> {
    receive_from(state, input, true, known).await
}

/// Records an inbound message; `fetch_media` when its file was named by the provider itself
/// (a verified webhook), whose host may be given the sender's credentials to fetch it.
async fn receive_from(
    state: &AppState,
    input: InboundInput,
    fetch_media: bool,
    known: &Known,
) -> Result<Created<Message>> {
    let store = state.store();
    let sender = state
        .sender(input.sender_id)
        .await
        .map_err(crate::missing_reference("sender_id", "sender"))?;
    let mut errors = ValidationErrors::new();
    let address = errors.check(parse_from(sender.channel, &input.from));
    let text = errors
        .check(
            input
                .text
                .as_deref()
                .map(|t| optional_text("text", t, MAX_TEXT_CHARS))
                .transpose(),
        )
        .flatten()
        .filter(|t| !t.is_empty());
    let name = errors
        .check(
            input
                .name
                .as_deref()
                .map(|n| optional_text("name", n, 200))
                .transpose(),
        )
        .flatten()
        .filter(|n| !n.is_empty());
    if text.is_none() && input.media.is_none() {
        errors.push(FieldError::new(
            "text",
            "invalid_content",
            "an inbound message carries `text` or `media`",
        ));
    }
    let Some(address) = address else {
        return Err(errors.into());
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let now = state.now();
    // Stored to the millisecond: what is answered must equal what is read back.
    // A timestamp from the future (a skewed clock, a bad import) would hold the window open
    // for as long as it lies ahead, so it counts as now.
    let sent_at = input
        .timestamp
        .map(switchboard_core::time::truncate_to_millis)
        .map_or(now, |t| t.min(now));
    let contact = match known.contacts.get(&address.key()) {
        Some(contact) => contact.clone(),
        None => contact_for(state, &address, name, now).await?,
    };
    let conversation = match known.conversations.get(&(contact.id, sender.id)) {
        Some(conversation) => *conversation,
        None => store
            .ensure_conversation(contact.id, sender.id, sender.channel, now)
            .await
            .map_err(AppError::Internal)?,
    };
    let consent = consent_change(state, &contact, sender.channel, text.as_deref(), now).await?;
    let message = Message {
        id: MessageId::new(),
        direction: Direction::Inbound,
        channel: sender.channel,
        sender_id: sender.id,
        contact_id: contact.id,
        conversation_id: Some(conversation),
        text,
        template: None,
        // Whether and where the file is stored is ours to say, never the caller's.
        media: input.media.map(|m| Media {
            sha256: None,
            download: None,
            ..m
        }),
        channel_template_type: ChannelTemplateType::Session,
        status: DeliveryStatus::Received,
        status_history: vec![StatusEvent {
            status: DeliveryStatus::Received,
            at: now,
            error: None,
        }],
        provider_message_id: input
            .provider_message_id
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty()),
        error: None,
        provider_timestamp: Some(sent_at),
        tag: None,
        business_initiated: false,
        redacted: false,
        send_at: None,
        actor: None,
        created_at: now,
        updated_at: now,
    };
    let mut message = message;
    let download = fetch_media
        .then(|| crate::media::download_job(&sender, &message, now))
        .flatten();
    if let (Some(_), Some(media)) = (&download, message.media.as_mut()) {
        media.download = Some(MediaDownloadStatus::Pending);
    }
    let answer = if known.surely_no_interaction(contact.id, sender.id) {
        None
    } else {
        crate::campaigns::answer_for(state, &message, input.button.as_deref()).await?
    };
    let record = InboundRecord {
        message: message.clone(),
        consent: consent.clone(),
        job: download.clone(),
        answer,
    };
    let committed = match &known.gather {
        Some(gather) => gather.commit(record).await,
        None => state.inbound().commit(record).await,
    };
    match committed {
        Ok(()) => {
            state.publish(crate::events::LiveEvent::created(&message));
            if download.is_some() {
                state.wake_media();
            }
            if let Some(event) = &consent {
                confirm(state, &sender, event).await;
            }
            Ok(Created {
                value: message,
                replayed: false,
            })
        }
        // The provider delivered it again: it was recorded (and applied) the first time.
        Err(StoreError::Conflict {
            existing_id: Some(id),
            ..
        }) => {
            let id: MessageId = id
                .parse()
                .map_err(|_| AppError::Internal(StoreError::Corrupt(id.clone())))?;
            let first = store.get_message(id).await.map_err(AppError::Internal)?;
            Ok(Created {
                value: first,
                replayed: true,
            })
        }
        Err(e) => Err(AppError::Internal(e)),
    }
}
