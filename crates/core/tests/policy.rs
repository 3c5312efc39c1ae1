//! The policy engine from the outside (R2, R3, R4, R6.7, R7.2, R7.4, R8.2, R8.4).
//!
//! Every test starts from a permissive world (a permitted, healthy sender; a known contact with
//! a phone, a Messenger id and locale `en_GB` who wrote an hour ago and opted in; some templates;
//! no DLP rules; no business hours) and changes one fact. Time is always passed in: `NOW` for the
//! tables, a generated clock for the properties.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{json, Value};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use switchboard_core::channel::Channel;
use switchboard_core::consent::ConsentStatus;
use switchboard_core::contact::{Contact, Locale};
use switchboard_core::dlp::{DlpAction, DlpKind, DlpRule, DlpRuleSet};
use switchboard_core::ids::{ContactId, SenderId, TemplateId};
use switchboard_core::message::{ChannelTemplateType, MediaKind};
use switchboard_core::policy::{
    evaluate, window_state, Allowed, Content, Decision, FlowKind, HoursState, Origin,
    PolicyContext, Recipient, RefusalCode, SendRequest, SenderFacts, SystemPurpose, Verdict,
    HUMAN_AGENT_WINDOW, SERVICE_WINDOW,
};
use switchboard_core::sender::{HealthStatus, TokenStatus};
use switchboard_core::template::{
    validate_template, MessageTag, Template, TemplateCategory, TemplateInput, TemplateStatus,
};
use switchboard_core::time::from_millis;
use switchboard_core::{MessengerPsid, PhoneNumber};

use ChannelTemplateType::{MessageTag as TagKind, Session, Template as TemplateKind};

// ---------------------------------------------------------------------------------------------
// The world a decision is made in
// ---------------------------------------------------------------------------------------------

const NOW: OffsetDateTime = datetime!(2026-03-10 12:00 UTC);
const MEDIA_LIMIT: i64 = 2_500_000;
const MESSAGING_LIMIT: i64 = 250;
const PHONE: &str = "+442079460958";
const PSID: &str = "1254459154682919";
/// A Luhn-valid test card number, as a person would type it.
const CARD: &str = "4111 1111 1111 1111";
const HOUR: Duration = Duration::hours(1);
const DAY: Duration = Duration::days(1);

const AGENT: Origin = Origin::Agent;
const API: Origin = Origin::Api;
const CAMPAIGN: Origin = Origin::Campaign;
const AUTO_REPLY: Origin = Origin::Flow(FlowKind::AutoReply);
const AUTOMATION: Origin = Origin::Flow(FlowKind::Automation);
const NOTIFICATION: Origin = Origin::Flow(FlowKind::Notification);
const OPT_OUT_CONFIRMATION: Origin = Origin::System(SystemPurpose::OptOutConfirmation);
const OPT_IN_CONFIRMATION: Origin = Origin::System(SystemPurpose::OptInConfirmation);

const ALL_ORIGINS: [Origin; 8] = [
    AGENT,
    API,
    CAMPAIGN,
    AUTO_REPLY,
    AUTOMATION,
    NOTIFICATION,
    OPT_OUT_CONFIRMATION,
    OPT_IN_CONFIRMATION,
];

fn locale(s: &str) -> Locale {
    Locale::parse("locale", s).expect("a valid locale")
}

fn contact() -> Contact {
    let fields = json!({"plan": "gold"});
    Contact {
        id: ContactId::new(),
        name: Some("Ada".to_owned()),
        phone: Some(PhoneNumber::parse("phone", PHONE).expect("a valid phone")),
        whatsapp_user_id: None,
        messenger_psid: Some(MessengerPsid::parse("psid", PSID).expect("a valid psid")),
        locale: Some(locale("en_GB")),
        owner_id: None,
        fields: fields.as_object().cloned().unwrap_or_default(),
        created_at: NOW - 30 * DAY,
        updated_at: NOW - 30 * DAY,
    }
}

/// A stored template of `channel`, validated as an author would have written it.
fn stored(
    channel: Channel,
    name: &str,
    locale: &str,
    body: &str,
    mapping: &[(&str, &str)],
    status: TemplateStatus,
) -> Template {
    let input = TemplateInput {
        name: name.to_owned(),
        locale: locale.to_owned(),
        category: (channel == Channel::Whatsapp).then_some(TemplateCategory::Utility),
        body: body.to_owned(),
        variable_mapping: mapping
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        tag: (channel == Channel::Messenger).then_some(MessageTag::PostPurchaseUpdate),
        ..Default::default()
    };
    let content = validate_template(input, channel).expect("a valid template");
    Template {
        id: TemplateId::new(),
        sender_id: SenderId::new(),
        content,
        status,
        status_reason: None,
        recontact: false,
        provider_template_id: None,
        created_at: NOW - 60 * DAY,
        updated_at: NOW - 60 * DAY,
    }
}

fn wa(name: &str, locale: &str, body: &str, status: TemplateStatus) -> Template {
    stored(Channel::Whatsapp, name, locale, body, &[], status)
}

fn whatsapp_templates() -> Vec<Template> {
    use TemplateStatus::*;
    let mut rejected = wa("rejected_one", "en_GB", "Your parcel is ready.", Rejected);
    rejected.status_reason = Some("INVALID_FORMAT: the body names a prohibited product".into());
    vec![
        stored(
            Channel::Whatsapp,
            "order_update",
            "en_GB",
            "Hello {{1}}, your order {{2}} has shipped.",
            &[("1", "contact.name")],
            Approved,
        ),
        wa(
            "greeting",
            "en_GB",
            "Thanks for writing to us, from Britain.",
            Approved,
        ),
        wa("greeting", "en", "Thanks for writing to us.", Approved),
        wa(
            "greeting",
            "en_US",
            "Thanks for writing to us, from the States.",
            Approved,
        ),
        wa(
            "welcome",
            "en",
            "Welcome to Acme, we are glad to have you.",
            Approved,
        ),
        wa(
            "bienvenue",
            "fr",
            "Bienvenue chez Acme, merci de votre confiance.",
            Approved,
        ),
        wa(
            "renewal",
            "en_GB",
            "Your subscription renews next week.",
            Pending,
        ),
        wa(
            "renewal",
            "en",
            "Your subscription renews next week.",
            Approved,
        ),
        stored(
            Channel::Whatsapp,
            "plan_note",
            "en_GB",
            "Your plan is {{plan}} and your code is {{code}} today.",
            &[("plan", "contact.fields.plan")],
            Approved,
        ),
        wa(
            "card_note",
            "en_GB",
            "We noted the reference {{1}} for you.",
            Approved,
        ),
        wa("pending_one", "en_GB", "Your parcel is ready.", Pending),
        rejected,
        wa("paused_one", "en_GB", "Your parcel is ready.", Paused),
        wa("disabled_one", "en_GB", "Your parcel is ready.", Disabled),
        wa("draft_one", "en_GB", "Your parcel is ready.", Draft),
    ]
}

/// What a permissive WhatsApp context offers with the templates above, in the contact's
/// language (`en_GB`, then `en`, then other `en_*`).
const WHATSAPP_SENDABLE: [&str; 6] = [
    "card_note",
    "greeting",
    "order_update",
    "plan_note",
    "renewal",
    "welcome",
];

fn messenger_templates() -> Vec<Template> {
    let mut followup = stored(
        Channel::Messenger,
        "agent_followup",
        "en_GB",
        "Following up on your question from earlier.",
        &[],
        TemplateStatus::Approved,
    );
    followup.content.tag = Some(MessageTag::HumanAgent);
    vec![
        stored(
            Channel::Messenger,
            "shipping_update",
            "en_GB",
            "Your order {{1}} has shipped and is on its way.",
            &[],
            TemplateStatus::Approved,
        ),
        followup,
    ]
}

fn sms_templates() -> Vec<Template> {
    vec![stored(
        Channel::Sms,
        "appointment",
        "en_GB",
        "Reminder: your appointment is tomorrow. Reply STOP to opt out.",
        &[],
        TemplateStatus::Approved,
    )]
}

fn dlp(action: DlpAction) -> DlpRuleSet {
    DlpRuleSet::compile(&[DlpRule {
        name: "cards".to_owned(),
        kind: DlpKind::PaymentCard,
        pattern: None,
        action,
        inbound: false,
    }])
    .expect("a valid rule set")
}

/// Everything a decision depends on, owned, so that a test can change one fact and borrow a
/// [`PolicyContext`] from the result.
#[derive(Clone, Debug)]
struct World {
    sender: SenderFacts,
    permitted: bool,
    /// `None`: the recipient is the address `to`, with no contact on record.
    contact: Option<Contact>,
    to: String,
    last_inbound_at: Option<OffsetDateTime>,
    consent: ConsentStatus,
    templates: Vec<Template>,
    dlp: DlpRuleSet,
    hours: Option<HoursState>,
}

impl World {
    fn on(channel: Channel) -> World {
        World {
            sender: SenderFacts {
                id: SenderId::new(),
                channel,
                health: HealthStatus::Connected,
                token_status: TokenStatus::Valid,
                messaging_limit: (channel == Channel::Whatsapp).then_some(MESSAGING_LIMIT),
                business_initiated_recipients_24h: 10,
                recipient_reached_24h: false,
                media_limit_bytes: MEDIA_LIMIT,
            },
            permitted: true,
            contact: Some(contact()),
            to: String::new(),
            last_inbound_at: Some(NOW - HOUR),
            consent: ConsentStatus::OptedIn,
            templates: match channel {
                Channel::Whatsapp => whatsapp_templates(),
                Channel::Messenger => messenger_templates(),
                Channel::Sms => sms_templates(),
            },
            dlp: DlpRuleSet::empty(),
            hours: None,
        }
    }

    fn whatsapp() -> World {
        World::on(Channel::Whatsapp)
    }

    fn messenger() -> World {
        World::on(Channel::Messenger)
    }

    fn sms() -> World {
        World::on(Channel::Sms)
    }

    fn with(mut self, change: impl FnOnce(&mut World)) -> World {
        change(&mut self);
        self
    }

    /// The customer last wrote `ago` before `NOW`.
    fn wrote(self, ago: Duration) -> World {
        self.with(|w| w.last_inbound_at = Some(NOW - ago))
    }

    fn never_wrote(self) -> World {
        self.with(|w| w.last_inbound_at = None)
    }

    fn consent(self, consent: ConsentStatus) -> World {
        self.with(|w| w.consent = consent)
    }

    /// No contact on record: the send names the address `to`, and nobody has consented.
    fn to(self, to: &str) -> World {
        self.with(|w| {
            w.contact = None;
            w.to = to.to_owned();
            w.consent = ConsentStatus::None;
        })
    }

    fn contact(self, change: impl FnOnce(&mut Contact)) -> World {
        self.with(|w| {
            if let Some(c) = w.contact.as_mut() {
                change(c);
            }
        })
    }

    fn closed_hours(self) -> World {
        self.with(|w| {
            w.hours = Some(HoursState {
                open: false,
                opens_at: Some(datetime!(2026-03-11 08:00 UTC)),
            })
        })
    }

    fn ctx(&self) -> PolicyContext<'_> {
        PolicyContext {
            sender: self.sender.clone(),
            sender_permitted: self.permitted,
            recipient: match &self.contact {
                Some(c) => Recipient::Known(c),
                None => Recipient::Unknown(&self.to),
            },
            last_inbound_at: self.last_inbound_at,
            consent: self.consent,
            templates: &self.templates,
            dlp: &self.dlp,
            hours: self.hours,
        }
    }

    fn eval_at(&self, request: &SendRequest, now: OffsetDateTime) -> Decision {
        evaluate(request, &self.ctx(), now)
    }

    fn eval(&self, request: &SendRequest) -> Decision {
        self.eval_at(request, NOW)
    }
}

fn text(origin: Origin, body: &str) -> SendRequest {
    SendRequest {
        content: Content::Text(body.to_owned()),
        tag: None,
        origin,
    }
}

fn media(origin: Origin, size_bytes: Option<i64>, caption: Option<&str>) -> SendRequest {
    SendRequest {
        content: Content::Media {
            kind: MediaKind::Image,
            size_bytes,
            caption: caption.map(str::to_owned),
        },
        tag: None,
        origin,
    }
}

fn template(origin: Origin, name: &str, variables: Value) -> SendRequest {
    SendRequest {
        content: Content::Template {
            name: name.to_owned(),
            locale: None,
            variables: variables.as_object().cloned().unwrap_or_default(),
        },
        tag: None,
        origin,
    }
}

fn no_vars() -> Value {
    json!({})
}

fn in_locale(mut request: SendRequest, wanted: &str) -> SendRequest {
    if let Content::Template { locale: l, .. } = &mut request.content {
        *l = Some(locale(wanted));
    }
    request
}

fn tagged(mut request: SendRequest, tag: MessageTag) -> SendRequest {
    request.tag = Some(tag);
    request
}

/// A refusal reason is a sentence a person can act on.
#[track_caller]
fn assert_sentence(reason: &str) {
    assert!(!reason.trim().is_empty(), "empty reason");
    assert_eq!(reason.trim(), reason, "untrimmed reason");
    assert!(
        reason.split_whitespace().count() >= 5,
        "too short to explain anything: {reason:?}"
    );
    assert!(
        reason.starts_with(|c: char| c.is_alphanumeric() || c == '`'),
        "{reason:?}"
    );
}

/// The decision refuses with `code` and a sentence; returns the sentence.
#[track_caller]
fn refused(decision: &Decision, code: RefusalCode) -> String {
    match &decision.verdict {
        Verdict::Refuse { code: got, reason } => {
            assert_eq!(*got, code, "reason: {reason}");
            assert_sentence(reason);
            reason.clone()
        }
        Verdict::Allow(allowed) => panic!("expected {code}, but allowed: {allowed:?}"),
    }
}

#[track_caller]
fn allowed(decision: &Decision) -> &Allowed {
    match &decision.verdict {
        Verdict::Allow(allowed) => allowed,
        Verdict::Refuse { code, reason } => panic!("expected allowed, but {code}: {reason}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Every refusal, and every allow path
// ---------------------------------------------------------------------------------------------

fn refusal_cases() -> Vec<(&'static str, World, SendRequest, RefusalCode)> {
    use RefusalCode::*;
    let hello = || text(AGENT, "Hello, how can we help?");
    let order = |origin| template(origin, "order_update", json!({"2": "A-1001"}));
    let promo = "Flash sale: 50% off everything this weekend";
    vec![
        // Who may send from where.
        (
            "an agent not assigned to the sender",
            World::whatsapp().with(|w| w.permitted = false),
            hello(),
            SenderNotPermitted,
        ),
        (
            "token expired",
            World::whatsapp().with(|w| w.sender.token_status = TokenStatus::Expired),
            hello(),
            SenderUnavailable,
        ),
        (
            "token invalid",
            World::sms().with(|w| w.sender.token_status = TokenStatus::Invalid),
            hello(),
            SenderUnavailable,
        ),
        (
            "sender offline",
            World::messenger().with(|w| w.sender.health = HealthStatus::Offline),
            hello(),
            SenderUnavailable,
        ),
        // Addresses (R1.4).
        (
            "SMS to a contact without a phone",
            World::sms().contact(|c| c.phone = None),
            hello(),
            ChannelMismatch,
        ),
        (
            "Messenger to a contact without a Messenger id",
            World::messenger().contact(|c| c.messenger_psid = None),
            hello(),
            ChannelMismatch,
        ),
        (
            "WhatsApp to a contact known only on Messenger",
            World::whatsapp().contact(|c| c.phone = None),
            hello(),
            ChannelMismatch,
        ),
        (
            "a phone number on Messenger",
            World::messenger().to(PHONE),
            hello(),
            ChannelMismatch,
        ),
        (
            "a WhatsApp user id on SMS",
            World::sms().to("US.13491208655302741918"),
            hello(),
            ChannelMismatch,
        ),
        (
            // Bare digits on a phone channel are far more likely a number missing its country
            // prefix than a Messenger id.
            "bare digits on WhatsApp",
            World::whatsapp().to(PSID),
            hello(),
            InvalidAddress,
        ),
        (
            "nonsense on WhatsApp",
            World::whatsapp().to("hello there"),
            hello(),
            InvalidAddress,
        ),
        (
            "a national number on SMS",
            World::sms().to("020 7946 0958"),
            hello(),
            InvalidAddress,
        ),
        (
            "letters on Messenger",
            World::messenger().to("page-user-1"),
            hello(),
            InvalidAddress,
        ),
        // R6.7: no bulk on Messenger.
        (
            "a campaign on Messenger",
            World::messenger(),
            template(CAMPAIGN, "shipping_update", json!({"1": "A-1"})),
            BulkNotAllowed,
        ),
        // R4.2: opted out.
        (
            "an agent to an opted-out WhatsApp contact",
            World::whatsapp().consent(ConsentStatus::OptedOut),
            hello(),
            OptedOut,
        ),
        (
            "a campaign to an opted-out SMS contact",
            World::sms().consent(ConsentStatus::OptedOut),
            template(CAMPAIGN, "appointment", no_vars()),
            OptedOut,
        ),
        (
            "an opted-out Messenger contact",
            World::messenger().consent(ConsentStatus::OptedOut),
            hello(),
            OptedOut,
        ),
        // R7.2, R6.2: templates only.
        (
            "a campaign with free text",
            World::whatsapp(),
            text(CAMPAIGN, "Hello everyone"),
            TemplateRequired,
        ),
        (
            "an automation with free text",
            World::whatsapp(),
            text(AUTOMATION, "Your order shipped"),
            TemplateRequired,
        ),
        (
            "a notification with free text",
            World::sms(),
            text(NOTIFICATION, "Your order shipped"),
            TemplateRequired,
        ),
        (
            "an automation with media",
            World::whatsapp(),
            media(AUTOMATION, Some(1_000), None),
            TemplateRequired,
        ),
        // R5.6.
        (
            "a file one byte over the limit",
            World::whatsapp(),
            media(AGENT, Some(MEDIA_LIMIT + 1), None),
            MediaTooLarge,
        ),
        // R3.
        (
            "an unknown template",
            World::whatsapp(),
            template(AGENT, "no_such_template", no_vars()),
            TemplateNotFound,
        ),
        (
            "a template only in French for an en_GB contact",
            World::whatsapp(),
            template(AGENT, "bienvenue", no_vars()),
            TemplateNotFound,
        ),
        (
            "a template asked for in German, which exists only in English",
            World::whatsapp(),
            in_locale(template(AGENT, "welcome", no_vars()), "de"),
            TemplateNotFound,
        ),
        (
            "a pending template",
            World::whatsapp(),
            template(AGENT, "pending_one", no_vars()),
            TemplateNotApproved,
        ),
        (
            "a rejected template",
            World::whatsapp(),
            template(AGENT, "rejected_one", no_vars()),
            TemplateNotApproved,
        ),
        (
            "a paused template",
            World::whatsapp(),
            template(AGENT, "paused_one", no_vars()),
            TemplateNotApproved,
        ),
        (
            "a disabled template",
            World::whatsapp(),
            template(AGENT, "disabled_one", no_vars()),
            TemplateNotApproved,
        ),
        (
            "a draft template",
            World::whatsapp(),
            template(AGENT, "draft_one", no_vars()),
            TemplateNotApproved,
        ),
        (
            "a variable neither supplied nor mapped",
            World::whatsapp(),
            template(AGENT, "order_update", no_vars()),
            TemplateVariablesMissing,
        ),
        (
            "a mapped variable whose contact field is empty",
            World::whatsapp().contact(|c| c.name = None),
            template(AGENT, "order_update", json!({"2": "A-1001"})),
            TemplateVariablesMissing,
        ),
        // R2.1, R3.6: tags.
        (
            "a tag on WhatsApp",
            World::whatsapp(),
            tagged(hello(), MessageTag::AccountUpdate),
            TagNotAllowed,
        ),
        (
            "a tag on SMS",
            World::sms(),
            tagged(hello(), MessageTag::PostPurchaseUpdate),
            TagNotAllowed,
        ),
        (
            "HUMAN_AGENT from an integration",
            World::messenger().wrote(3 * DAY),
            tagged(text(API, "An update on your case"), MessageTag::HumanAgent),
            TagNotAllowed,
        ),
        (
            "HUMAN_AGENT from an auto reply",
            World::messenger().wrote(3 * DAY),
            tagged(
                text(AUTO_REPLY, "An update on your case"),
                MessageTag::HumanAgent,
            ),
            TagNotAllowed,
        ),
        (
            "HUMAN_AGENT after 8 days",
            World::messenger().wrote(8 * DAY),
            tagged(
                text(AGENT, "An update on your case"),
                MessageTag::HumanAgent,
            ),
            TagNotAllowed,
        ),
        (
            "HUMAN_AGENT at exactly 7 days",
            World::messenger().wrote(HUMAN_AGENT_WINDOW),
            tagged(
                text(AGENT, "An update on your case"),
                MessageTag::HumanAgent,
            ),
            TagNotAllowed,
        ),
        (
            "a HUMAN_AGENT template from an automation",
            World::messenger().wrote(3 * DAY),
            template(NOTIFICATION, "agent_followup", no_vars()),
            TagNotAllowed,
        ),
        (
            "promotional text under a tag",
            World::messenger().wrote(3 * DAY),
            tagged(text(AGENT, promo), MessageTag::HumanAgent),
            TagNotAllowed,
        ),
        (
            "a promotional caption under a tag",
            World::messenger().wrote(2 * DAY),
            tagged(
                media(AGENT, Some(1_000), Some("Use promo code SPRING")),
                MessageTag::AccountUpdate,
            ),
            TagNotAllowed,
        ),
        (
            "a tag template made promotional by its variable",
            World::messenger().wrote(2 * DAY),
            template(AGENT, "shipping_update", json!({"1": "with free shipping"})),
            TagNotAllowed,
        ),
        // R2.3: the window.
        (
            "WhatsApp free text 25 hours after the last inbound",
            World::whatsapp().wrote(25 * HOUR),
            hello(),
            WindowClosed,
        ),
        (
            "WhatsApp media 25 hours after the last inbound",
            World::whatsapp().wrote(25 * HOUR),
            media(AGENT, Some(1_000), Some("Here is the form")),
            WindowClosed,
        ),
        (
            "WhatsApp free text to a known contact who never wrote",
            World::whatsapp().never_wrote(),
            hello(),
            WindowClosed,
        ),
        (
            "Messenger untagged text 25 hours after the last inbound",
            World::messenger().wrote(25 * HOUR),
            hello(),
            WindowClosed,
        ),
        // R2.4: no conversations started with strangers.
        (
            "WhatsApp free text to an unknown number",
            World::whatsapp().to("+16505551234").never_wrote(),
            hello(),
            UnknownRecipient,
        ),
        (
            "a WhatsApp template to an unknown number",
            World::whatsapp().to("+16505551234").never_wrote(),
            template(API, "welcome", no_vars()),
            UnknownRecipient,
        ),
        (
            "a tagged Messenger message to a contact who never wrote",
            World::messenger().never_wrote(),
            tagged(hello(), MessageTag::AccountUpdate),
            UnknownRecipient,
        ),
        (
            "a Messenger tag template to a contact who never wrote",
            World::messenger().never_wrote(),
            template(NOTIFICATION, "shipping_update", json!({"1": "A-1"})),
            UnknownRecipient,
        ),
        // R2.4, R4.4: consent to start a conversation.
        (
            "a WhatsApp template outside the window without consent",
            World::whatsapp()
                .wrote(25 * HOUR)
                .consent(ConsentStatus::None),
            order(AGENT),
            ConsentRequired,
        ),
        (
            "a WhatsApp template outside the window with consent only requested",
            World::whatsapp()
                .wrote(25 * HOUR)
                .consent(ConsentStatus::Requested),
            order(NOTIFICATION),
            ConsentRequired,
        ),
        (
            "a WhatsApp campaign to a contact who never wrote nor opted in",
            World::whatsapp().never_wrote().consent(ConsentStatus::None),
            order(CAMPAIGN),
            ConsentRequired,
        ),
        (
            "a WhatsApp campaign inside a window a support conversation opened, without opt-in",
            World::whatsapp().wrote(HOUR).consent(ConsentStatus::None),
            order(CAMPAIGN),
            ConsentRequired,
        ),
        (
            "bulk SMS without opt-in",
            World::sms().consent(ConsentStatus::None),
            template(CAMPAIGN, "appointment", no_vars()),
            ConsentRequired,
        ),
        (
            "bulk SMS with opt-in only requested",
            World::sms().consent(ConsentStatus::Requested).never_wrote(),
            template(CAMPAIGN, "appointment", no_vars()),
            ConsentRequired,
        ),
        // R8.4: messaging limits.
        (
            "the limit reached, for a new recipient",
            World::whatsapp()
                .wrote(25 * HOUR)
                .with(|w| w.sender.business_initiated_recipients_24h = MESSAGING_LIMIT),
            order(CAMPAIGN),
            MessagingLimitReached,
        ),
        (
            "a restricted number starting a conversation",
            World::whatsapp()
                .wrote(25 * HOUR)
                .with(|w| w.sender.health = HealthStatus::Restricted),
            order(AGENT),
            MessagingLimitReached,
        ),
        // R7.4, R6.7: business hours.
        (
            "a WhatsApp automation outside business hours",
            World::whatsapp().closed_hours(),
            order(AUTOMATION),
            OutsideBusinessHours,
        ),
        (
            "an SMS notification outside business hours",
            World::sms().closed_hours(),
            template(NOTIFICATION, "appointment", no_vars()),
            OutsideBusinessHours,
        ),
        (
            "a WhatsApp campaign outside business hours",
            World::whatsapp().wrote(3 * DAY).closed_hours(),
            order(CAMPAIGN),
            OutsideBusinessHours,
        ),
        // R8.2: data-loss prevention.
        (
            "a card number under a block rule",
            World::whatsapp().with(|w| w.dlp = dlp(DlpAction::Block)),
            text(AGENT, &format!("Your card {CARD} is on file")),
            DlpBlocked,
        ),
        (
            "a card number in a caption under a block rule",
            World::sms().with(|w| w.dlp = dlp(DlpAction::Block)),
            media(AGENT, Some(1_000), Some(&format!("card {CARD}"))),
            DlpBlocked,
        ),
        (
            "a card number in a template variable under a block rule",
            World::whatsapp().with(|w| w.dlp = dlp(DlpAction::Block)),
            template(AGENT, "card_note", json!({"1": CARD})),
            DlpBlocked,
        ),
    ]
}

#[test]
fn every_refusal_code_is_produced_with_a_reason() {
    let mut seen = BTreeSet::new();
    for (label, world, request, code) in refusal_cases() {
        let decision = world.eval(&request);
        match &decision.verdict {
            Verdict::Refuse { code: got, reason } => {
                assert_eq!(*got, code, "{label}: {reason}");
                assert_sentence(reason);
                seen.insert(got.as_str());
            }
            Verdict::Allow(allowed) => panic!("{label}: expected {code}, allowed {allowed:?}"),
        }
    }
    let missing: Vec<&str> = RefusalCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !seen.contains(c))
        .collect();
    assert_eq!(missing, Vec::<&str>::new(), "codes never produced");
}

#[test]
fn refusal_codes_are_the_eighteen_stable_wire_names() {
    let names: BTreeSet<&str> = RefusalCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(names.len(), 18);
    for code in RefusalCode::ALL {
        assert_eq!(serde_json::to_value(code).ok(), Some(json!(code.as_str())));
        assert_eq!(code.to_string(), code.as_str());
    }
    let decision = World::whatsapp().wrote(25 * HOUR).eval(&text(AGENT, "Hi"));
    let wire = serde_json::to_value(&decision.verdict).expect("serialisable");
    assert_eq!(wire["outcome"], "refuse");
    assert_eq!(wire["code"], "window_closed");
}

struct AllowCase {
    label: &'static str,
    world: World,
    request: SendRequest,
    kind: ChannelTemplateType,
    business_initiated: bool,
    tag: Option<MessageTag>,
    text: Option<String>,
    template: Option<String>,
}

fn allow(
    label: &'static str,
    world: World,
    request: SendRequest,
    kind: ChannelTemplateType,
    business_initiated: bool,
) -> AllowCase {
    let text = match &request.content {
        Content::Text(t) => Some(t.clone()),
        Content::Media { caption, .. } => caption.clone(),
        Content::Template { .. } => None,
    };
    let template = match &request.content {
        Content::Template { name, .. } => Some(name.clone()),
        _ => None,
    };
    AllowCase {
        label,
        world,
        request,
        kind,
        business_initiated,
        tag: None,
        text,
        template,
    }
}

impl AllowCase {
    fn tag(mut self, tag: MessageTag) -> AllowCase {
        self.tag = Some(tag);
        self
    }
}

fn allow_cases() -> Vec<AllowCase> {
    let hello = || text(AGENT, "Hello, how can we help?");
    let order = |origin| template(origin, "order_update", json!({"2": "A-1001"}));
    vec![
        // WhatsApp (R2.2, R2.3).
        allow(
            "free text in the window",
            World::whatsapp(),
            hello(),
            Session,
            false,
        ),
        allow(
            "a file exactly at the limit",
            World::whatsapp(),
            media(AGENT, Some(MEDIA_LIMIT), Some("the form")),
            Session,
            false,
        ),
        allow(
            "a file of unknown size",
            World::whatsapp(),
            media(AGENT, None, None),
            Session,
            false,
        ),
        allow(
            "a template in the window",
            World::whatsapp(),
            order(AGENT),
            TemplateKind,
            false,
        ),
        allow(
            "a template in the window to a contact who has not opted in",
            World::whatsapp().consent(ConsentStatus::None),
            order(API),
            TemplateKind,
            false,
        ),
        allow(
            "a template outside the window to an opted-in contact",
            World::whatsapp().wrote(25 * HOUR),
            order(AGENT),
            TemplateKind,
            true,
        ),
        allow(
            "a template to an opted-in contact who never wrote",
            World::whatsapp().never_wrote(),
            order(NOTIFICATION),
            TemplateKind,
            true,
        ),
        allow(
            "a campaign to an opted-in contact",
            World::whatsapp().wrote(3 * DAY),
            order(CAMPAIGN),
            TemplateKind,
            true,
        ),
        allow(
            "the limit reached, for a recipient already reached",
            World::whatsapp().wrote(25 * HOUR).with(|w| {
                w.sender.business_initiated_recipients_24h = MESSAGING_LIMIT;
                w.sender.recipient_reached_24h = true;
            }),
            order(CAMPAIGN),
            TemplateKind,
            true,
        ),
        allow(
            "the limit reached, for a reply in the window",
            World::whatsapp()
                .with(|w| w.sender.business_initiated_recipients_24h = MESSAGING_LIMIT),
            order(AGENT),
            TemplateKind,
            false,
        ),
        allow(
            "a restricted number answering with text",
            World::whatsapp().with(|w| w.sender.health = HealthStatus::Restricted),
            hello(),
            Session,
            false,
        ),
        allow(
            "a restricted number answering with a template",
            World::whatsapp().with(|w| w.sender.health = HealthStatus::Restricted),
            order(AGENT),
            TemplateKind,
            false,
        ),
        allow(
            "a sender whose health is still pending",
            World::whatsapp().with(|w| w.sender.health = HealthStatus::Pending),
            hello(),
            Session,
            false,
        ),
        allow(
            "a flagged sender",
            World::whatsapp().with(|w| w.sender.health = HealthStatus::Flagged),
            hello(),
            Session,
            false,
        ),
        allow(
            "a token not yet checked",
            World::whatsapp().with(|w| w.sender.token_status = TokenStatus::Unknown),
            hello(),
            Session,
            false,
        ),
        allow(
            "an auto reply with free text",
            World::whatsapp(),
            text(AUTO_REPLY, "Thanks, an agent will answer shortly."),
            Session,
            false,
        ),
        allow(
            "an auto reply outside business hours",
            World::whatsapp().closed_hours(),
            text(AUTO_REPLY, "We open at 8."),
            Session,
            false,
        ),
        allow(
            "an agent outside business hours",
            World::whatsapp().closed_hours(),
            hello(),
            Session,
            false,
        ),
        allow(
            "an agent template outside business hours",
            World::sms().closed_hours(),
            template(AGENT, "appointment", no_vars()),
            TemplateKind,
            false,
        ),
        allow(
            "an automation during business hours",
            World::whatsapp().with(|w| {
                w.hours = Some(HoursState {
                    open: true,
                    opens_at: None,
                })
            }),
            order(AUTOMATION),
            TemplateKind,
            false,
        ),
        allow(
            "the opt-out confirmation to an opted-out contact",
            World::whatsapp().consent(ConsentStatus::OptedOut),
            text(
                OPT_OUT_CONFIRMATION,
                "You will get no more messages from us.",
            ),
            Session,
            false,
        ),
        allow(
            "the opt-out confirmation by SMS",
            World::sms().consent(ConsentStatus::OptedOut).never_wrote(),
            text(OPT_OUT_CONFIRMATION, "You are unsubscribed."),
            Session,
            false,
        ),
        allow(
            "the opt-in confirmation",
            World::whatsapp().consent(ConsentStatus::OptedOut),
            text(OPT_IN_CONFIRMATION, "Welcome back."),
            Session,
            false,
        ),
        allow(
            "an unknown number that wrote in the last day",
            World::whatsapp().to("+16505551234"),
            hello(),
            Session,
            false,
        ),
        allow(
            "a WhatsApp user id that wrote in the last day",
            World::whatsapp().to(" US.13491208655302741918 "),
            hello(),
            Session,
            false,
        ),
        allow(
            "a contact known by WhatsApp user id only",
            World::whatsapp().contact(|c| {
                c.phone = None;
                c.whatsapp_user_id = Some(
                    switchboard_core::WhatsappUserId::parse("u", "US.13491208655302741918")
                        .expect("a valid user id"),
                );
            }),
            hello(),
            Session,
            false,
        ),
        // Messenger (R2.1, R2.3, R3.6).
        allow(
            "free text in the window",
            World::messenger(),
            hello(),
            Session,
            false,
        ),
        allow(
            "a Messenger id as `to`",
            World::messenger().to(PSID),
            hello(),
            Session,
            false,
        ),
        allow(
            "HUMAN_AGENT in the window is an ordinary reply",
            World::messenger(),
            tagged(hello(), MessageTag::HumanAgent),
            Session,
            false,
        ),
        allow(
            "HUMAN_AGENT by an agent on day 3",
            World::messenger().wrote(3 * DAY),
            tagged(
                text(AGENT, "We will deal with your request today."),
                MessageTag::HumanAgent,
            ),
            TagKind,
            true,
        )
        .tag(MessageTag::HumanAgent),
        allow(
            "HUMAN_AGENT one millisecond before 7 days",
            World::messenger().wrote(HUMAN_AGENT_WINDOW - Duration::milliseconds(1)),
            tagged(text(AGENT, "Sorry for the wait."), MessageTag::HumanAgent),
            TagKind,
            true,
        )
        .tag(MessageTag::HumanAgent),
        allow(
            "a tagged update from an integration",
            World::messenger().wrote(2 * DAY),
            tagged(
                text(API, "Your account details were updated."),
                MessageTag::AccountUpdate,
            ),
            TagKind,
            true,
        )
        .tag(MessageTag::AccountUpdate),
        allow(
            "a tag template from a notification, with its own tag",
            World::messenger().wrote(2 * DAY),
            template(NOTIFICATION, "shipping_update", json!({"1": "A-1001"})),
            TagKind,
            true,
        )
        .tag(MessageTag::PostPurchaseUpdate),
        allow(
            "a Messenger automation outside business hours",
            World::messenger().closed_hours(),
            template(AUTOMATION, "shipping_update", json!({"1": "A-1001"})),
            Session,
            false,
        ),
        allow(
            "a Messenger tagged automation outside business hours",
            World::messenger().wrote(2 * DAY).closed_hours(),
            template(AUTOMATION, "shipping_update", json!({"1": "A-1001"})),
            TagKind,
            true,
        )
        .tag(MessageTag::PostPurchaseUpdate),
        // SMS (R2.5).
        allow(
            "free text to a contact who never wrote",
            World::sms().never_wrote(),
            hello(),
            Session,
            false,
        ),
        allow(
            "free text to a contact who never wrote nor opted in",
            World::sms().never_wrote().consent(ConsentStatus::None),
            hello(),
            Session,
            false,
        ),
        allow(
            "free text to an unknown number",
            World::sms().to("+16505551234").never_wrote(),
            hello(),
            Session,
            false,
        ),
        allow(
            "an SMS template",
            World::sms().wrote(30 * DAY),
            template(AGENT, "appointment", no_vars()),
            TemplateKind,
            false,
        ),
        allow(
            "bulk SMS to an opted-in contact",
            World::sms().never_wrote(),
            template(CAMPAIGN, "appointment", no_vars()),
            TemplateKind,
            false,
        ),
    ]
}

#[test]
fn every_allow_path_says_what_is_sent() {
    for case in allow_cases() {
        let label = case.label;
        let decision = case.world.eval(&case.request);
        let sent = match &decision.verdict {
            Verdict::Allow(a) => a,
            Verdict::Refuse { code, reason } => panic!("{label}: refused {code}: {reason}"),
        };
        assert_eq!(sent.kind, case.kind, "{label}");
        assert_eq!(sent.business_initiated, case.business_initiated, "{label}");
        assert_eq!(sent.tag, case.tag, "{label}");
        assert_eq!(sent.text, case.text, "{label}");
        assert!(!sent.redacted, "{label}");
        assert_eq!(
            sent.template.as_ref().map(|t| &t.name),
            case.template.as_ref(),
            "{label}"
        );
        assert!(
            decision.is_allowed() && decision.refusal().is_none(),
            "{label}"
        );
        assert_eq!(
            decision.contact_id,
            case.world.contact.as_ref().map(|c| c.id),
            "{label}"
        );
    }
}

#[test]
fn reasons_name_what_went_wrong() {
    let reason = refused(
        &World::whatsapp().eval(&template(AGENT, "rejected_one", no_vars())),
        RefusalCode::TemplateNotApproved,
    );
    assert!(reason.contains("rejected"), "{reason}");
    assert!(
        reason.contains("INVALID_FORMAT: the body names a prohibited product"),
        "{reason}"
    );
    for (name, status) in [
        ("pending_one", "pending"),
        ("paused_one", "paused"),
        ("disabled_one", "disabled"),
        ("draft_one", "draft"),
    ] {
        let reason = refused(
            &World::whatsapp().eval(&template(AGENT, name, no_vars())),
            RefusalCode::TemplateNotApproved,
        );
        assert!(reason.contains(name) && reason.contains(status), "{reason}");
    }

    let reason = refused(
        &World::whatsapp().eval(&template(AGENT, "bienvenue", no_vars())),
        RefusalCode::TemplateNotFound,
    );
    assert!(
        reason.contains("en_GB") && reason.contains("fr"),
        "{reason}"
    );

    // The window's end, to the second.
    let reason = refused(
        &World::whatsapp().wrote(25 * HOUR).eval(&text(AGENT, "Hi")),
        RefusalCode::WindowClosed,
    );
    assert!(reason.contains("2026-03-10T11:00:00Z"), "{reason}");
    assert!(reason.contains("template"), "{reason}");
    let reason = refused(
        &World::messenger().wrote(25 * HOUR).eval(&text(AGENT, "Hi")),
        RefusalCode::WindowClosed,
    );
    assert!(reason.contains("HUMAN_AGENT"), "{reason}");

    // R4.4: a support conversation is not consent.
    let reason = refused(
        &World::whatsapp()
            .wrote(25 * HOUR)
            .consent(ConsentStatus::None)
            .eval(&template(AGENT, "welcome", no_vars())),
        RefusalCode::ConsentRequired,
    );
    assert!(reason.contains("not consent"), "{reason}");

    let reason = refused(
        &World::whatsapp().eval(&media(AGENT, Some(MEDIA_LIMIT + 1), None)),
        RefusalCode::MediaTooLarge,
    );
    assert!(
        reason.contains("2500001") && reason.contains("2500000"),
        "{reason}"
    );

    let reason = refused(
        &World::whatsapp()
            .wrote(2 * DAY)
            .with(|w| w.sender.business_initiated_recipients_24h = 300)
            .eval(&template(AGENT, "welcome", no_vars())),
        RefusalCode::MessagingLimitReached,
    );
    assert!(reason.contains("250"), "{reason}");

    let reason = refused(
        &World::whatsapp()
            .closed_hours()
            .eval(&template(AUTOMATION, "welcome", no_vars())),
        RefusalCode::OutsideBusinessHours,
    );
    assert!(reason.contains("2026-03-11T08:00:00Z"), "{reason}");

    let reason = refused(
        &World::whatsapp()
            .with(|w| w.dlp = dlp(DlpAction::Block))
            .eval(&text(AGENT, CARD)),
        RefusalCode::DlpBlocked,
    );
    assert!(reason.contains("cards"), "{reason}");
    assert!(
        !reason.contains("4111"),
        "a refusal must not echo the data: {reason}"
    );

    let reason = refused(
        &World::whatsapp().eval(&template(AGENT, "order_update", no_vars())),
        RefusalCode::TemplateVariablesMissing,
    );
    assert!(
        reason.contains("{{2}}") && !reason.contains("{{1}}"),
        "{reason}"
    );
    let reason = refused(
        &World::whatsapp().contact(|c| c.name = None).eval(&template(
            AGENT,
            "order_update",
            no_vars(),
        )),
        RefusalCode::TemplateVariablesMissing,
    );
    assert!(
        reason.contains("{{1}}") && reason.contains("{{2}}"),
        "{reason}"
    );
}

#[test]
fn the_first_rule_broken_is_the_one_reported() {
    // Not permitted beats everything else wrong with the send.
    let everything_wrong = World::whatsapp()
        .with(|w| {
            w.permitted = false;
            w.sender.token_status = TokenStatus::Expired;
        })
        .consent(ConsentStatus::OptedOut)
        .wrote(3 * DAY);
    refused(
        &everything_wrong.eval(&text(CAMPAIGN, "Hi")),
        RefusalCode::SenderNotPermitted,
    );
    // Opted out is reported before the window or the template.
    let opted_out = World::whatsapp()
        .consent(ConsentStatus::OptedOut)
        .wrote(3 * DAY);
    refused(
        &opted_out.eval(&text(CAMPAIGN, "Hi")),
        RefusalCode::OptedOut,
    );
    refused(
        &opted_out.eval(&template(AGENT, "no_such_template", no_vars())),
        RefusalCode::OptedOut,
    );
    // The address is checked before bulk on Messenger.
    refused(
        &World::messenger().to(PHONE).eval(&text(CAMPAIGN, "Hi")),
        RefusalCode::ChannelMismatch,
    );
}

#[test]
fn templates_follow_the_contacts_locale() {
    let greeting = template(AGENT, "greeting", no_vars());
    let locale_of = |world: &World, request: &SendRequest| {
        let decision = world.eval(request);
        allowed(&decision)
            .template
            .as_ref()
            .map(|t| t.locale.clone())
            .unwrap_or_default()
    };
    let without = |locales: &'static [&'static str]| {
        World::whatsapp().with(move |w| {
            w.templates.retain(|t| {
                !(t.content.name == "greeting" && locales.contains(&t.content.locale.as_str()))
            })
        })
    };

    // en_GB beats en beats en_US.
    assert_eq!(locale_of(&World::whatsapp(), &greeting), "en_GB");
    assert_eq!(locale_of(&without(&["en_GB"]), &greeting), "en");
    assert_eq!(locale_of(&without(&["en_GB", "en"]), &greeting), "en_US");
    // Listed order does not matter.
    let reversed = World::whatsapp().with(|w| w.templates.reverse());
    assert_eq!(locale_of(&reversed, &greeting), "en_GB");
    // A contact speaking only the language gets the language, then any region of it.
    let plain_en = World::whatsapp().contact(|c| c.locale = Some(locale("en")));
    assert_eq!(locale_of(&plain_en, &greeting), "en");
    // An explicit locale wins over the contact's.
    assert_eq!(
        locale_of(&World::whatsapp(), &in_locale(greeting.clone(), "en-us")),
        "en_US"
    );
    // Without a contact locale any locale will do, even French.
    let no_locale = World::whatsapp().contact(|c| c.locale = None);
    assert!(!locale_of(&no_locale, &greeting).is_empty());
    assert_eq!(
        locale_of(&no_locale, &template(AGENT, "bienvenue", no_vars())),
        "fr"
    );
    let stranger = World::whatsapp().to("+16505551234");
    assert_eq!(
        locale_of(&stranger, &template(AGENT, "bienvenue", no_vars())),
        "fr"
    );

    // en_GB pending but en approved: en is sent.
    let renewal = template(AGENT, "renewal", no_vars());
    assert_eq!(locale_of(&World::whatsapp(), &renewal), "en");
    // Without the approved en, the pending en_GB is the reason.
    let pending_only = World::whatsapp().with(|w| {
        w.templates
            .retain(|t| !(t.content.name == "renewal" && t.content.locale.as_str() == "en"))
    });
    let reason = refused(
        &pending_only.eval(&renewal),
        RefusalCode::TemplateNotApproved,
    );
    assert!(
        reason.contains("en_GB") && reason.contains("pending"),
        "{reason}"
    );
}

#[test]
fn variables_come_from_the_send_then_from_the_contact() {
    let world = World::whatsapp();
    let decision = world.eval(&template(AGENT, "order_update", json!({"2": "A-1001"})));
    let sent = allowed(&decision).template.clone().expect("a template");
    assert_eq!(sent.variables["1"], "Ada");
    assert_eq!(sent.variables["2"], "A-1001");
    assert_eq!(sent.rendered, "Hello Ada, your order A-1001 has shipped.");
    assert_eq!(sent.locale, "en_GB");
    assert_eq!(sent.tag, None);

    // A supplied value wins over the mapping.
    let decision = world.eval(&template(
        AGENT,
        "order_update",
        json!({"1": "Ms Lovelace", "2": 1001}),
    ));
    let sent = allowed(&decision).template.clone().expect("a template");
    assert_eq!(
        sent.rendered,
        "Hello Ms Lovelace, your order 1001 has shipped."
    );

    // A blank value is no value: the mapping fills it.
    let decision = world.eval(&template(
        AGENT,
        "order_update",
        json!({"1": "  ", "2": "A-1"}),
    ));
    let sent = allowed(&decision).template.clone().expect("a template");
    assert_eq!(sent.variables["1"], "Ada");

    // Named variables mapped to custom fields.
    let decision = world.eval(&template(AGENT, "plan_note", json!({"code": "X1"})));
    let sent = allowed(&decision).template.clone().expect("a template");
    assert_eq!(
        sent.rendered,
        "Your plan is gold and your code is X1 today."
    );
    let decision = world.eval(&template(
        AGENT,
        "plan_note",
        json!({"code": "X1", "plan": "silver"}),
    ));
    let sent = allowed(&decision).template.clone().expect("a template");
    assert_eq!(sent.variables["plan"], "silver");
    let decision = World::whatsapp()
        .contact(|c| c.fields.clear())
        .eval(&template(AGENT, "plan_note", json!({"code": "X1"})));
    refused(&decision, RefusalCode::TemplateVariablesMissing);

    // An address with no contact has no fields to map.
    let decision = World::whatsapp().to("+16505551234").eval(&template(
        AGENT,
        "order_update",
        json!({"2": "A-1"}),
    ));
    let reason = refused(&decision, RefusalCode::TemplateVariablesMissing);
    assert!(reason.contains("{{1}}"), "{reason}");
}

#[test]
fn redaction_sends_the_text_without_the_data() {
    let world = World::whatsapp().with(|w| w.dlp = dlp(DlpAction::Redact));
    let decision = world.eval(&text(AGENT, &format!("Your card {CARD} is on file.")));
    let sent = allowed(&decision);
    assert!(sent.redacted);
    let body = sent.text.clone().expect("a text");
    assert!(!body.contains(CARD) && !body.contains("4111"), "{body}");
    assert_eq!(body, "Your card [redacted payment card] is on file.");

    // A caption is text too.
    let decision = world.eval(&media(AGENT, Some(10), Some(&format!("card {CARD}"))));
    let sent = allowed(&decision);
    assert!(sent.redacted);
    assert_eq!(sent.text.as_deref(), Some("card [redacted payment card]"));

    // A template's supplied value is redacted in its variables and its rendering.
    let decision = world.eval(&template(AGENT, "card_note", json!({"1": CARD})));
    let sent = allowed(&decision);
    assert!(sent.redacted);
    assert_eq!(sent.text, None);
    let t = sent.template.clone().expect("a template");
    assert!(!t.variables["1"].contains("4111"), "{:?}", t.variables);
    assert!(!t.rendered.contains("4111"), "{}", t.rendered);
    assert_eq!(
        t.rendered,
        "We noted the reference [redacted payment card] for you."
    );

    // Nothing found: nothing changed.
    let decision = world.eval(&text(AGENT, "Order 1001 is on its way"));
    let sent = allowed(&decision);
    assert!(!sent.redacted);
    assert_eq!(sent.text.as_deref(), Some("Order 1001 is on its way"));
    let decision = world.eval(&template(AGENT, "card_note", json!({"1": "A-1001"})));
    assert!(!allowed(&decision).redacted);
}

#[test]
fn sms_has_no_window() {
    let world = World::sms().never_wrote().consent(ConsentStatus::None);
    let decision = world.eval(&text(AGENT, "Your table is ready."));
    assert!(decision.window.open);
    assert_eq!(decision.window.closes_at, None);
    assert_eq!(decision.window.human_agent_until, None);
    let sent = allowed(&decision);
    assert_eq!(sent.kind, Session);
    assert!(!sent.business_initiated);

    // Even long after the last message.
    let decision = World::sms()
        .wrote(400 * DAY)
        .eval(&text(AGENT, "Hello again."));
    assert!(decision.window.open);
    assert_eq!(decision.window.closes_at, None);
    assert!(decision.is_allowed());
}

// ---------------------------------------------------------------------------------------------
// 2. What the composer is offered
// ---------------------------------------------------------------------------------------------

/// `allowed_kinds` and `allowed_templates` do not depend on the request.
fn offered(world: &World) -> (Vec<ChannelTemplateType>, Vec<String>) {
    let decision = world.eval(&text(AGENT, "Hi"));
    (decision.allowed_kinds, decision.allowed_templates)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn whatsapp_offers_follow_the_window_and_consent() {
    // Open: anything, and the approved templates in the contact's language.
    assert_eq!(
        offered(&World::whatsapp()),
        (vec![Session, TemplateKind], names(&WHATSAPP_SENDABLE))
    );
    // Open, consent or not.
    assert_eq!(
        offered(&World::whatsapp().consent(ConsentStatus::None)).0,
        vec![Session, TemplateKind]
    );
    // Closed and opted in: approved templates only, in the contact's language.
    let (kinds, templates) = offered(&World::whatsapp().wrote(25 * HOUR));
    assert_eq!(kinds, vec![TemplateKind]);
    assert_eq!(templates, names(&WHATSAPP_SENDABLE));
    for excluded in [
        "bienvenue",
        "pending_one",
        "rejected_one",
        "paused_one",
        "disabled_one",
        "draft_one",
    ] {
        assert!(!templates.iter().any(|t| t == excluded), "{excluded}");
    }
    // A contact with no locale is offered every approved template.
    let (_, templates) = offered(
        &World::whatsapp()
            .wrote(25 * HOUR)
            .contact(|c| c.locale = None),
    );
    assert!(templates.iter().any(|t| t == "bienvenue"));
    assert!(!templates.iter().any(|t| t == "pending_one"));
    // A French speaker is offered the French one only.
    let (_, templates) = offered(
        &World::whatsapp()
            .wrote(25 * HOUR)
            .contact(|c| c.locale = Some(locale("fr_FR"))),
    );
    assert_eq!(templates, names(&["bienvenue"]));

    // Closed without opt-in: nothing.
    for consent in [ConsentStatus::None, ConsentStatus::Requested] {
        let world = World::whatsapp().wrote(25 * HOUR).consent(consent);
        assert_eq!(offered(&world), (vec![], vec![]), "{consent:?}");
        let world = World::whatsapp().never_wrote().consent(consent);
        assert_eq!(offered(&world), (vec![], vec![]), "{consent:?}");
    }
    // Closed, opted in, but no room to start a conversation.
    let full = World::whatsapp()
        .wrote(25 * HOUR)
        .with(|w| w.sender.business_initiated_recipients_24h = MESSAGING_LIMIT);
    assert_eq!(offered(&full), (vec![], vec![]));
    let already_reached = full.with(|w| w.sender.recipient_reached_24h = true);
    assert_eq!(offered(&already_reached).0, vec![TemplateKind]);
    let restricted = World::whatsapp()
        .wrote(25 * HOUR)
        .with(|w| w.sender.health = HealthStatus::Restricted);
    assert_eq!(offered(&restricted), (vec![], vec![]));
    // An unknown number outside any window: nothing.
    assert_eq!(
        offered(&World::whatsapp().to("+16505551234").never_wrote()),
        (vec![], vec![])
    );
}

#[test]
fn nothing_is_offered_when_nothing_may_be_sent() {
    for world in [World::whatsapp(), World::messenger(), World::sms()] {
        let channel = world.sender.channel;
        let opted_out = world.clone().consent(ConsentStatus::OptedOut);
        assert_eq!(offered(&opted_out), (vec![], vec![]), "{channel}");
        let not_permitted = world.clone().with(|w| w.permitted = false);
        assert_eq!(offered(&not_permitted), (vec![], vec![]), "{channel}");
        let expired = world
            .clone()
            .with(|w| w.sender.token_status = TokenStatus::Expired);
        assert_eq!(offered(&expired), (vec![], vec![]), "{channel}");
        let offline = world
            .clone()
            .with(|w| w.sender.health = HealthStatus::Offline);
        assert_eq!(offered(&offline), (vec![], vec![]), "{channel}");
        let nowhere = world.clone().contact(|c| {
            c.phone = None;
            c.messenger_psid = None;
            c.whatsapp_user_id = None;
        });
        assert_eq!(offered(&nowhere), (vec![], vec![]), "{channel}");
        let garbage = world.to("not an address");
        assert_eq!(offered(&garbage), (vec![], vec![]), "{channel}");
    }
}

#[test]
fn messenger_offers_tags_after_the_window() {
    let all = names(&["agent_followup", "shipping_update"]);
    assert_eq!(
        offered(&World::messenger()),
        (vec![Session, TagKind], all.clone())
    );
    assert_eq!(
        offered(&World::messenger().wrote(3 * DAY)),
        (vec![TagKind], all.clone())
    );
    // Tags other than HUMAN_AGENT outlive its 7 days.
    assert_eq!(
        offered(&World::messenger().wrote(30 * DAY)),
        (vec![TagKind], all)
    );
    assert_eq!(offered(&World::messenger().never_wrote()), (vec![], vec![]));
}

#[test]
fn sms_offers_text_and_templates_always() {
    let appointment = names(&["appointment"]);
    assert_eq!(
        offered(&World::sms()),
        (vec![Session, TemplateKind], appointment.clone())
    );
    assert_eq!(
        offered(&World::sms().never_wrote().consent(ConsentStatus::None)),
        (vec![Session, TemplateKind], appointment)
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The window's edges
// ---------------------------------------------------------------------------------------------

#[test]
fn the_window_closes_24_hours_after_the_last_inbound() {
    let last = datetime!(2026-03-09 17:45:12.345 UTC);
    for channel in [Channel::Whatsapp, Channel::Messenger] {
        let world = World::on(channel).with(|w| w.last_inbound_at = Some(last));
        let decision = world.eval(&text(AGENT, "Hi"));
        assert_eq!(
            decision.window.closes_at,
            Some(last + 24 * HOUR),
            "{channel}"
        );
        assert_eq!(
            decision.window.closes_at,
            Some(datetime!(2026-03-10 17:45:12.345 UTC))
        );
        assert!(decision.window.open, "{channel}");
        assert_eq!(decision.window, window_state(channel, Some(last), NOW));

        // After it closed, it still says when.
        let later = decision.window.closes_at.unwrap_or(NOW) + HOUR;
        let decision = world.eval_at(&text(AGENT, "Hi"), later);
        assert!(!decision.window.open, "{channel}");
        assert_eq!(decision.window.closes_at, Some(last + SERVICE_WINDOW));
    }
    assert_eq!(SERVICE_WINDOW, 24 * HOUR);
    assert_eq!(HUMAN_AGENT_WINDOW, 7 * DAY);
}

#[test]
fn human_agent_time_is_7_days_on_messenger_only() {
    let last = datetime!(2026-03-07 09:30 UTC);
    let messenger = window_state(Channel::Messenger, Some(last), NOW);
    assert_eq!(messenger.human_agent_until, Some(last + 7 * DAY));
    assert_eq!(
        messenger.human_agent_until,
        Some(datetime!(2026-03-14 09:30 UTC))
    );
    assert!(!messenger.open);
    assert_eq!(
        window_state(Channel::Whatsapp, Some(last), NOW).human_agent_until,
        None
    );
    assert_eq!(
        window_state(Channel::Sms, Some(last), NOW).human_agent_until,
        None
    );

    // No inbound message: nothing open, nothing to close.
    for channel in [Channel::Whatsapp, Channel::Messenger] {
        let w = window_state(channel, None, NOW);
        assert!(!w.open, "{channel}");
        assert_eq!(w.closes_at, None);
        assert_eq!(w.human_agent_until, None);
    }
    let sms = window_state(Channel::Sms, None, NOW);
    assert!(sms.open);
    assert_eq!(sms.closes_at, None);

    // The decision carries the same window, and serialises it as RFC 3339.
    let decision = World::messenger()
        .with(|w| w.last_inbound_at = Some(last))
        .eval(&text(AGENT, "Hi"));
    let wire = serde_json::to_value(decision.window).expect("serialisable");
    assert_eq!(wire["open"], false);
    assert_eq!(wire["closes_at"], "2026-03-08T09:30:00Z");
    assert_eq!(wire["human_agent_until"], "2026-03-14T09:30:00Z");
    let wire = serde_json::to_value(window_state(Channel::Whatsapp, Some(last), NOW))
        .expect("serialisable");
    assert!(wire.get("human_agent_until").is_none(), "{wire}");
}

#[test]
fn the_end_of_representable_time_is_no_panic() {
    // A corrupted or absurd provider timestamp must give an answer, not crash the send path.
    let last = datetime!(9999-12-31 23:00 UTC);
    for channel in Channel::ALL {
        let world = World::on(channel).with(|w| w.last_inbound_at = Some(last));
        let decision = world.eval_at(&text(AGENT, "Hi"), last);
        assert!(decision.is_allowed(), "{channel}: {:?}", decision.refusal());
        assert!(decision.window.open, "{channel}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Properties on an injected clock
// ---------------------------------------------------------------------------------------------

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Any millisecond between 2000 and 2100.
fn clock() -> impl Strategy<Value = OffsetDateTime> {
    (946_684_800_000i64..4_102_444_800_000).prop_map(from_millis)
}

/// How long ago the customer last wrote, in milliseconds: often at the edge of the window,
/// sometimes far from it, sometimes in the future (a provider clock ahead of ours).
fn inbound_age() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(DAY_MS),
        Just(DAY_MS - 1),
        Just(DAY_MS + 1),
        (DAY_MS - 2_000)..=(DAY_MS + 2_000),
        (DAY_MS - HOUR_MS)..=(DAY_MS + HOUR_MS),
        0..=(3 * DAY_MS),
        (-HOUR_MS)..0,
        0..=(400 * DAY_MS),
    ]
}

fn origin() -> impl Strategy<Value = Origin> {
    proptest::sample::select(ALL_ORIGINS.to_vec())
}

fn any_tag() -> impl Strategy<Value = Option<MessageTag>> {
    proptest::option::of(proptest::sample::select(vec![
        MessageTag::ConfirmedEventUpdate,
        MessageTag::PostPurchaseUpdate,
        MessageTag::AccountUpdate,
        MessageTag::HumanAgent,
    ]))
}

/// Contents that reach many rules: plain, promotional and sensitive text; media in and over
/// the limit; templates of every channel, approved or not, with and without their variables.
fn content() -> impl Strategy<Value = Content> {
    let texts = proptest::sample::select(vec![
        "Hello, how can we help?".to_owned(),
        "Flash sale: 50% off".to_owned(),
        format!("Card {CARD}"),
        "  ".to_owned(),
        "ok".to_owned(),
    ]);
    let template_names = proptest::sample::select(vec![
        "order_update",
        "greeting",
        "welcome",
        "bienvenue",
        "renewal",
        "plan_note",
        "card_note",
        "pending_one",
        "rejected_one",
        "shipping_update",
        "agent_followup",
        "appointment",
        "no_such_template",
    ]);
    let variables = proptest::sample::select(vec![
        json!({}),
        json!({"1": "A-1001", "2": "B-2", "code": "X"}),
        json!({"1": CARD, "2": "B-2", "code": "X"}),
        json!({"1": "free shipping", "2": "B-2"}),
    ]);
    let locales = proptest::option::of(proptest::sample::select(vec!["en", "en_US", "fr", "de"]));
    prop_oneof![
        texts.clone().prop_map(Content::Text),
        (
            proptest::option::of(prop_oneof![
                Just(MEDIA_LIMIT),
                Just(MEDIA_LIMIT + 1),
                0..MEDIA_LIMIT
            ]),
            proptest::option::of(texts),
        )
            .prop_map(|(size_bytes, caption)| Content::Media {
                kind: MediaKind::Document,
                size_bytes,
                caption,
            }),
        (template_names, locales, variables).prop_map(|(name, l, v)| Content::Template {
            name: name.to_owned(),
            locale: l.map(locale),
            variables: v.as_object().cloned().unwrap_or_default(),
        }),
    ]
}

fn consent() -> impl Strategy<Value = ConsentStatus> {
    proptest::sample::select(vec![
        ConsentStatus::None,
        ConsentStatus::Requested,
        ConsentStatus::OptedIn,
        ConsentStatus::OptedOut,
    ])
}

/// Many facts at once, on any channel, for the properties that must hold everywhere.
#[derive(Clone, Debug)]
struct Scenario {
    channel: Channel,
    request: SendRequest,
    consent: ConsentStatus,
    inbound_age: Option<i64>,
    health: HealthStatus,
    token: TokenStatus,
    limit: (Option<i64>, i64, bool),
    hours: Option<bool>,
    dlp: Option<DlpAction>,
    permitted: bool,
    recipient: u8,
    now: OffsetDateTime,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let facts = (
        proptest::sample::select(Channel::ALL.to_vec()),
        (content(), any_tag(), origin()),
        consent(),
        proptest::option::of(inbound_age()),
        proptest::sample::select(vec![
            HealthStatus::Pending,
            HealthStatus::Connected,
            HealthStatus::Offline,
            HealthStatus::Flagged,
            HealthStatus::Restricted,
        ]),
        proptest::sample::select(vec![
            TokenStatus::Unknown,
            TokenStatus::Valid,
            TokenStatus::Expired,
            TokenStatus::Invalid,
        ]),
    );
    let more = (
        (
            proptest::option::of(Just(MESSAGING_LIMIT)),
            prop_oneof![Just(0i64), Just(MESSAGING_LIMIT), 0..=(2 * MESSAGING_LIMIT)],
            any::<bool>(),
        ),
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::sample::select(vec![
            DlpAction::Redact,
            DlpAction::Block,
        ])),
        proptest::bool::weighted(0.95),
        0u8..8,
        clock(),
    );
    (facts, more).prop_map(
        |(
            (channel, (content, tag, origin), consent, inbound_age, health, token),
            (limit, hours, dlp, permitted, recipient, now),
        )| Scenario {
            channel,
            request: SendRequest {
                content,
                tag,
                origin,
            },
            consent,
            inbound_age,
            health,
            token,
            limit,
            hours,
            dlp,
            permitted,
            recipient,
            now,
        },
    )
}

impl Scenario {
    fn world(&self) -> World {
        let (messaging_limit, reached, recipient_reached) = self.limit;
        let world = World::on(self.channel).with(|w| {
            w.consent = self.consent;
            w.last_inbound_at = self
                .inbound_age
                .map(|age| self.now - Duration::milliseconds(age));
            w.sender.health = self.health;
            w.sender.token_status = self.token;
            w.sender.messaging_limit = messaging_limit;
            w.sender.business_initiated_recipients_24h = reached;
            w.sender.recipient_reached_24h = recipient_reached;
            w.hours = self.hours.map(|open| HoursState {
                open,
                opens_at: None,
            });
            if let Some(action) = self.dlp {
                w.dlp = dlp(action);
            }
            w.permitted = self.permitted;
        });
        match self.recipient {
            0 => world.to(PHONE),
            1 => world.to(PSID),
            2 => world.to("US.13491208655302741918"),
            3 => world.contact(|c| c.locale = None),
            4 => world.contact(|c| c.name = None),
            5 => world.to("not an address"),
            _ => world,
        }
    }
}

/// The scenarios are not vacuous: among a few thousand of them every refusal and every kind of
/// send occurs, and so does the exception the consistency property allows for.
#[test]
fn the_scenarios_reach_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = scenario();
    let mut codes = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut confirmations_to_opted_out = 0;
    for _ in 0..4000 {
        let s = strategy
            .new_tree(&mut runner)
            .expect("a scenario")
            .current();
        let world = s.world();
        match world.eval_at(&s.request, s.now).verdict {
            Verdict::Allow(sent) => {
                kinds.insert(sent.kind.as_str());
                if world.consent == ConsentStatus::OptedOut {
                    confirmations_to_opted_out += 1;
                }
            }
            Verdict::Refuse { code, .. } => {
                codes.insert(code.as_str());
            }
        }
    }
    let missing: Vec<&str> = RefusalCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !codes.contains(c))
        .collect();
    assert_eq!(missing, Vec::<&str>::new());
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(confirmations_to_opted_out > 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// R2.1: free text is allowed exactly while `now < last + 24 h`.
    #[test]
    fn free_text_is_allowed_iff_inside_the_window(
        now in clock(),
        age in proptest::option::of(inbound_age()),
        origin in proptest::sample::select(vec![AGENT, API, AUTO_REPLY]),
    ) {
        let last = age.map(|ms| now - Duration::milliseconds(ms));
        let world = World::whatsapp().with(|w| w.last_inbound_at = last);
        let decision = world.eval_at(&text(origin, "Hello, how can we help?"), now);
        let inside = last.is_some_and(|l| now < l + Duration::hours(24));
        prop_assert_eq!(decision.is_allowed(), inside);
        prop_assert_eq!(decision.window.open, inside);
        prop_assert_eq!(decision.window.closes_at, last.map(|l| l + SERVICE_WINDOW));
        match &decision.verdict {
            Verdict::Allow(sent) => {
                prop_assert_eq!(sent.kind, Session);
                prop_assert!(!sent.business_initiated);
            }
            Verdict::Refuse { code, .. } => prop_assert_eq!(*code, RefusalCode::WindowClosed),
        }
    }

    /// The window's end, to the millisecond.
    #[test]
    fn the_window_ends_to_the_millisecond(last in clock()) {
        let world = World::whatsapp().with(|w| w.last_inbound_at = Some(last));
        let hi = text(AGENT, "Hi");
        let closes = last + Duration::hours(24);
        let before = world.eval_at(&hi, closes - Duration::milliseconds(1));
        prop_assert!(before.is_allowed(), "{:?}", before.refusal());
        prop_assert!(before.window.open);
        let at = world.eval_at(&hi, closes);
        prop_assert_eq!(at.refusal().map(|(c, _)| c), Some(RefusalCode::WindowClosed));
        prop_assert!(!at.window.open);
        let after = world.eval_at(&hi, closes + Duration::milliseconds(1));
        prop_assert_eq!(after.refusal().map(|(c, _)| c), Some(RefusalCode::WindowClosed));
    }

    /// A later inbound message never closes a window an earlier one opened.
    #[test]
    fn a_later_inbound_keeps_the_window_open(
        now in clock(),
        (older, newer) in (0..=(3 * DAY_MS)).prop_flat_map(|older| (Just(older), 0..=older)),
    ) {
        let hi = text(AGENT, "Hi");
        let at = |age: i64| {
            World::whatsapp()
                .with(|w| w.last_inbound_at = Some(now - Duration::milliseconds(age)))
                .eval_at(&hi, now)
        };
        if at(older).is_allowed() {
            prop_assert!(at(newer).is_allowed());
        }
    }

    /// The same facts and time always give the same decision.
    #[test]
    fn decisions_are_deterministic(s in scenario()) {
        let world = s.world();
        let first = world.eval_at(&s.request, s.now);
        let second = world.eval_at(&s.request, s.now);
        prop_assert_eq!(&first, &second);
        let copy = world.clone();
        prop_assert_eq!(&copy.eval_at(&s.request.clone(), s.now), &first);
        if let Verdict::Refuse { reason, .. } = &first.verdict {
            assert_sentence(reason);
        }
    }

    /// R4.2: an opted-out contact gets nothing but the system's own confirmations, whatever is
    /// sent and whenever they last wrote.
    #[test]
    fn opted_out_contacts_get_only_confirmations(
        request in (content(), any_tag(), origin())
            .prop_map(|(content, tag, origin)| SendRequest { content, tag, origin }),
        age in proptest::option::of(inbound_age()),
        now in clock(),
    ) {
        let world = World::whatsapp().consent(ConsentStatus::OptedOut).with(|w| {
            w.last_inbound_at = age.map(|ms| now - Duration::milliseconds(ms));
        });
        let decision = world.eval_at(&request, now);
        let code = decision.refusal().map(|(c, _)| c);
        if matches!(request.origin, Origin::System(_)) {
            prop_assert_ne!(code, Some(RefusalCode::OptedOut));
        } else {
            prop_assert_eq!(code, Some(RefusalCode::OptedOut));
        }
        prop_assert!(decision.allowed_kinds.is_empty());
        prop_assert!(decision.allowed_templates.is_empty());
    }

    /// What a send is allowed as, the composer offers (R2.6, R5.5). The system's own
    /// confirmations to an opted-out contact are the one exception: the composer offers an
    /// opted-out contact nothing (R4.3c), yet the opt-out confirmation still goes out.
    #[test]
    fn allowed_sends_are_offered(s in scenario()) {
        let world = s.world();
        let decision = world.eval_at(&s.request, s.now);
        if let Verdict::Allow(sent) = &decision.verdict {
            let system_to_opted_out = world.consent == ConsentStatus::OptedOut
                && matches!(s.request.origin, Origin::System(_));
            if system_to_opted_out {
                prop_assert!(decision.allowed_kinds.is_empty());
            } else {
                prop_assert!(
                    decision.allowed_kinds.contains(&sent.kind),
                    "{:?} allowed but offered {:?}", sent.kind, decision.allowed_kinds
                );
                let asked_for_locale =
                    matches!(&s.request.content, Content::Template { locale: Some(_), .. });
                if let (Some(t), false) = (&sent.template, asked_for_locale) {
                    prop_assert!(
                        decision.allowed_templates.contains(&t.name),
                        "{} sent but offered {:?}", t.name, decision.allowed_templates
                    );
                }
            }
            // What is sent never carries what a rule removes.
            if s.dlp.is_some() {
                let texts = sent.text.iter().chain(
                    sent.template.iter().flat_map(|t| t.variables.values()),
                );
                for text in texts {
                    prop_assert!(!text.contains(CARD), "{}", text);
                }
            }
        }
    }
}

/// Messaging-limit tiers and restriction are WhatsApp's: a Messenger tag outside the window is
/// business-initiated, yet neither a restricted page nor a used-up tier stops it, and the
/// composer's offer agrees with the decision.
#[test]
fn messaging_limits_do_not_apply_to_messenger_tags() {
    for world in [
        World::messenger()
            .wrote(2 * DAY)
            .with(|w| w.sender.health = HealthStatus::Restricted),
        World::messenger().wrote(2 * DAY).with(|w| {
            w.sender.messaging_limit = Some(1);
            w.sender.business_initiated_recipients_24h = 5;
        }),
    ] {
        let request = SendRequest {
            content: Content::Text("Your booking is confirmed for Friday".into()),
            tag: Some(MessageTag::ConfirmedEventUpdate),
            origin: AGENT,
        };
        let decision = evaluate(&request, &world.ctx(), NOW);
        match &decision.verdict {
            Verdict::Allow(allowed) => {
                assert_eq!(allowed.kind, ChannelTemplateType::MessageTag);
                assert!(allowed.business_initiated);
                assert!(decision.allowed_kinds.contains(&allowed.kind));
            }
            other => panic!("expected a tagged send to be allowed, got {other:?}"),
        }
    }
}
