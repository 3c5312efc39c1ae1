//! Campaigns (R6): create, start, pause, resume, stop and retry; the runner that feeds each
//! running campaign's recipients to the outbound queue through the policy; and the answers
//! that close each recipient's interaction.
//!
//! The runner never sends itself: it writes each allowed message with its send job, and the
//! dispatcher sends it like any other, with its retries, pacing, limits and crash safety. The
//! runner only keeps a small window of a campaign's messages in the queue at once, so that a
//! pause takes effect within that window and a million recipients never sit in the queue.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use serde_json::{json, Map, Value};
use switchboard_core::campaign::{
    classify_answer, on_refusal, transition, Campaign, CampaignAction, CampaignState, Held, Hopper,
    RecipientState, Refused,
};
use switchboard_core::consent::{current_status, ConsentStatus};
use switchboard_core::contact::Contact;
use switchboard_core::message::{DeliveryStatus, Direction, Message, StatusEvent, TemplateRef};
use switchboard_core::policy::{
    evaluate, Content, Decision, Origin, PolicyContext, Recipient, RefusalCode, SendRequest,
    SenderFacts, Verdict, WindowState,
};
use switchboard_core::template::{contact_value, is_contact_path, TemplateStatus};
use switchboard_core::validation::required_text;
use switchboard_core::{
    CampaignId, Channel, ContactId, FieldError, ListId, MessageId, Permission, SenderId,
    ValidationErrors,
};
use switchboard_store::campaigns::{AnswerRecord, Claimed, Decided, RecipientRecord};
use switchboard_store::decisions::DecisionRecord;
use switchboard_store::jobs::NewJob;
use switchboard_store::{Page, PageRequest};
use time::{Duration, OffsetDateTime};

use crate::idempotency::{earlier_result, lost_race, Created, IdempotencyRequest};
use crate::sending::OUTBOUND_QUEUE;
use crate::{AppError, AppState, Principal, Result};

/// How long an unanswered campaign message waits for its answer unless the campaign says.
pub const DEFAULT_RESPONSE_TIMEOUT_MINUTES: i64 = 24 * 60;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignTemplate {
    pub name: String,
    /// The locale for contacts whose own locale has no version of the template.
    pub locale: String,
}

/// A new campaign: one approved template to one list from one sender (R6.2).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CampaignInput {
    pub name: String,
    pub sender_id: SenderId,
    pub list_id: ListId,
    pub template: CampaignTemplate,
    /// Template variable -> contact field (`contact.name`, `contact.fields.<key>` ...), over the
    /// template's own mapping. Every variable must end up mapped.
    #[serde(default)]
    pub variable_mapping: BTreeMap<String, String>,
    /// Start at this time when started (default: at once).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub start_at: Option<OffsetDateTime>,
    /// Send nothing after this time.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub end_at: Option<OffsetDateTime>,
    /// How long a recipient's answer is awaited (default a day).
    pub response_timeout_minutes: Option<i64>,
    /// At most this many messages a second (the sender's own rate applies as well).
    pub rate_limit_per_second: Option<i64>,
    /// Start at once (or at `start_at`) rather than stay a draft.
    #[serde(default)]
    pub start: bool,
}

/// A campaign with its hopper, as the API shows it.
#[derive(Clone, Debug)]
pub struct CampaignView {
    pub campaign: Campaign,
    pub hopper: Hopper,
}

fn refused_bulk(reason: &str) -> AppError {
    AppError::PolicyRefused(Box::new(Decision {
        verdict: Verdict::Refuse {
            code: RefusalCode::BulkNotAllowed,
            reason: reason.to_owned(),
        },
        window: WindowState {
            open: false,
            closes_at: None,
            human_agent_until: None,
        },
        allowed_kinds: Vec::new(),
        allowed_templates: Vec::new(),
        contact_id: None,
    }))
}

pub async fn create_campaign(
    state: &AppState,
    principal: &Principal,
    input: CampaignInput,
    idempotency: Option<IdempotencyRequest>,
) -> Result<Created<CampaignView>> {
    principal.require(Permission::CampaignsWrite)?;
    let key = idempotency.map(|i| i.for_principal(principal));
    if let Some(key) = &key {
        if let Some(id) = earlier_result(state, key, "campaign").await? {
            return replay(state, &id).await;
        }
    }
    let store = state.store();
    let now = state.now();
    let mut errors = ValidationErrors::new();
    let name = errors.check(required_text("name", &input.name, 200));
    let timeout = input
        .response_timeout_minutes
        .unwrap_or(DEFAULT_RESPONSE_TIMEOUT_MINUTES);
    if !(1..=60 * 24 * 30).contains(&timeout) {
        errors.push(FieldError::new(
            "response_timeout_minutes",
            "invalid_value",
            "`response_timeout_minutes` must be between 1 and 43200 (30 days)",
        ));
    }
    if input.rate_limit_per_second.is_some_and(|r| r < 1) {
        errors.push(FieldError::new(
            "rate_limit_per_second",
            "invalid_value",
            "`rate_limit_per_second` must be at least 1",
        ));
    }
    if let (Some(start), Some(end)) = (input.start_at, input.end_at) {
        if end <= start {
            errors.push(FieldError::new(
                "end_at",
                "invalid_value",
                "`end_at` must be after `start_at`",
            ));
        }
    }
    if input.end_at.is_some_and(|end| end <= now) {
        errors.push(FieldError::new(
            "end_at",
            "invalid_value",
            "`end_at` has already passed",
        ));
    }
    let sender = match state.sender(input.sender_id).await {
        Ok(sender) => Some(sender),
        Err(switchboard_store::StoreError::NotFound) => {
            errors.push(FieldError::new(
                "sender_id",
                "unknown_reference",
                "no such sender",
            ));
            None
        }
        Err(e) => return Err(AppError::Internal(e)),
    };
    if !store
        .list_exists(input.list_id)
        .await
        .map_err(AppError::Internal)?
    {
        errors.push(FieldError::new(
            "list_id",
            "unknown_reference",
            "no such list",
        ));
    }
    let Some(sender) = sender else {
        return Err(errors.into());
    };
    // Bulk sends on Messenger break its rules whatever the content (R6.7).
    if sender.channel == Channel::Messenger {
        return Err(refused_bulk(
            "Messenger does not allow bulk or promotional sends: campaigns go by WhatsApp or SMS",
        ));
    }
    let templates = store
        .sender_templates(sender.id)
        .await
        .map_err(AppError::Internal)?;
    let chosen = templates.iter().find(|t| {
        t.content.name == input.template.name && t.content.locale.as_str() == input.template.locale
    });
    match chosen {
        None => errors.push(FieldError::new(
            "template",
            "template_not_found",
            format!(
                "the sender has no template `{}` in locale `{}`",
                input.template.name, input.template.locale
            ),
        )),
        Some(t) if t.status != TemplateStatus::Approved => errors.push(FieldError::new(
            "template",
            "template_not_approved",
            format!("the template is {}, not approved", t.status.as_str()),
        )),
        Some(t) => {
            for (variable, path) in &input.variable_mapping {
                if !t.content.variables().contains(variable) {
                    errors.push(FieldError::new(
                        format!("variable_mapping.{variable}"),
                        "unknown_variable",
                        format!("`{variable}` is not a variable of this template"),
                    ));
                } else if !is_contact_path(path.trim()) {
                    errors.push(FieldError::new(
                        format!("variable_mapping.{variable}"),
                        "invalid_mapping",
                        "map a variable to contact.name, contact.phone, contact.locale, \
                         contact.whatsapp_user_id, contact.messenger_psid or \
                         contact.fields.<key>",
                    ));
                }
            }
            for variable in t.content.variables() {
                if !input.variable_mapping.contains_key(&variable)
                    && !t.content.variable_mapping.contains_key(&variable)
                {
                    errors.push(FieldError::new(
                        format!("variable_mapping.{variable}"),
                        "template_variables_missing",
                        format!(
                            "map the template's variable `{variable}` to a contact field: \
                             a campaign fills every variable from its contacts"
                        ),
                    ));
                }
            }
        }
    }
    let Some(name) = name else {
        return Err(errors.into());
    };
    if !errors.is_empty() {
        return Err(errors.into());
    }
    let campaign = Campaign {
        id: CampaignId::new(),
        name,
        sender_id: sender.id,
        list_id: input.list_id,
        template_name: input.template.name.clone(),
        template_locale: input.template.locale.clone(),
        variable_mapping: input
            .variable_mapping
            .iter()
            .map(|(k, v)| (k.clone(), v.trim().to_owned()))
            .collect(),
        state: CampaignState::Draft,
        start_at: input.start_at,
        end_at: input.end_at,
        response_timeout_minutes: timeout,
        rate_limit_per_second: input.rate_limit_per_second,
        held: None,
        round: 0,
        created_by: Some(crate::consent::actor_of(principal)),
        created_at: now,
        updated_at: now,
        started_at: None,
        finished_at: None,
    };
    match store.create_campaign(&campaign, key.as_ref()).await {
        Ok(()) => {}
        Err(e) if lost_race(&e) => {
            let key = key.expect("a key conflict needs a key");
            if let Some(id) = earlier_result(state, &key, "campaign").await? {
                return replay(state, &id).await;
            }
            return Err(AppError::Internal(e));
        }
        Err(e) => return Err(AppError::from_store("campaign", e)),
    }
    if input.start {
        act(state, principal, campaign.id, CampaignAction::Start).await?;
    }
    Ok(Created {
        value: view(state, campaign.id).await?,
        replayed: false,
    })
}

async fn replay(state: &AppState, id: &str) -> Result<Created<CampaignView>> {
    let id: CampaignId = id.parse().map_err(|_| {
        AppError::Internal(switchboard_store::StoreError::Corrupt(format!(
            "idempotent id {id}"
        )))
    })?;
    Ok(Created {
        value: view(state, id).await?,
        replayed: true,
    })
}

/// A campaign with its live counters. Before it first runs, its recipients are its list's
/// members, all fresh.
pub(crate) async fn view(state: &AppState, id: CampaignId) -> Result<CampaignView> {
    let store = state.store();
    let campaign = store
        .get_campaign(id)
        .await
        .map_err(|e| AppError::from_store("campaign", e))?;
    let counts = store
        .campaign_counts(id)
        .await
        .map_err(AppError::Internal)?;
    let hopper = if counts.is_empty() && campaign.started_at.is_none() {
        let members = store
            .count_list_members(campaign.list_id)
            .await
            .map_err(AppError::Internal)?;
        Hopper::from_counts([(
            RecipientState::Fresh,
            i64::try_from(members).unwrap_or(i64::MAX),
        )])
    } else {
        Hopper::from_counts(counts)
    };
    Ok(CampaignView { campaign, hopper })
}

/// A campaign with its counters, for an operator on the machine itself (the command line),
/// who needs no token.
pub async fn view_unchecked(state: &AppState, id: CampaignId) -> Result<CampaignView> {
    view(state, id).await
}

pub async fn get_campaign(
    state: &AppState,
    principal: &Principal,
    id: CampaignId,
) -> Result<CampaignView> {
    principal.require(Permission::CampaignsRead)?;
    view(state, id).await
}

pub async fn list_campaigns(
    state: &AppState,
    principal: &Principal,
    page: &PageRequest,
) -> Result<Page<CampaignView>> {
    principal.require(Permission::CampaignsRead)?;
    let campaigns = state
        .store()
        .list_campaigns(page)
        .await
        .map_err(AppError::Internal)?;
    let mut items = Vec::with_capacity(campaigns.items.len());
    for c in &campaigns.items {
        items.push(view(state, c.id).await?);
    }
    Ok(Page {
        items,
        next_after: campaigns.next_after,
    })
}

/// Starts, pauses, resumes, stops or retries a campaign.
pub async fn act(
    state: &AppState,
    principal: &Principal,
    id: CampaignId,
    action: CampaignAction,
) -> Result<CampaignView> {
    principal.require(Permission::CampaignsWrite)?;
    let store = state.store();
    let now = state.now();
    let campaign = store
        .get_campaign(id)
        .await
        .map_err(|e| AppError::from_store("campaign", e))?;
    let next = transition(
        campaign.state,
        action,
        campaign.start_at,
        campaign.end_at,
        now,
    )
    .map_err(|refused| AppError::Conflict {
        code: refused.code,
        field: None,
        existing_id: None,
        detail: refused.reason,
    })?;
    if matches!(
        action,
        CampaignAction::Start | CampaignAction::Resume | CampaignAction::Retry
    ) {
        // Checked again now, not only at creation: the template may have been paused or the
        // sender moved since.
        let sender = state
            .sender(campaign.sender_id)
            .await
            .map_err(AppError::Internal)?;
        if sender.channel == Channel::Messenger {
            return Err(refused_bulk("Messenger does not allow bulk sends"));
        }
    }
    let moved = store
        .move_campaign(
            id,
            campaign.state,
            next,
            action == CampaignAction::Retry,
            now,
        )
        .await
        .map_err(AppError::Internal)?;
    if !moved {
        return Err(AppError::Conflict {
            code: "campaign_changed",
            field: None,
            existing_id: None,
            detail: "the campaign changed meanwhile; look again and retry".to_owned(),
        });
    }
    let view = view(state, id).await?;
    publish(state, &view);
    Ok(view)
}

/// The lists a new campaign may go to, with their sizes (for the campaign form).
pub async fn list_choices(
    state: &AppState,
    principal: &Principal,
) -> Result<Vec<(ListId, String, u64)>> {
    principal.require(Permission::CampaignsWrite)?;
    let page = state
        .store()
        .list_lists(&PageRequest {
            limit: 200,
            ..Default::default()
        })
        .await
        .map_err(AppError::Internal)?;
    Ok(page
        .items
        .into_iter()
        .map(|l| (l.list.id, l.list.name, l.member_count))
        .collect())
}

/// A page of recipients in hopper order with what happened to each.
pub async fn recipients(
    state: &AppState,
    principal: &Principal,
    id: CampaignId,
    recipient_state: Option<RecipientState>,
    after_seq: Option<i64>,
    limit: i64,
) -> Result<Vec<RecipientRecord>> {
    principal.require(Permission::CampaignsRead)?;
    let store = state.store();
    store
        .get_campaign(id)
        .await
        .map_err(|e| AppError::from_store("campaign", e))?;
    store
        .campaign_recipients(id, recipient_state, after_seq, limit.clamp(1, 10_000))
        .await
        .map_err(AppError::Internal)
}

/// How many recipients tapped each quick reply.
pub async fn answers(
    state: &AppState,
    principal: &Principal,
    id: CampaignId,
) -> Result<Vec<(String, i64)>> {
    principal.require(Permission::CampaignsRead)?;
    state
        .store()
        .get_campaign(id)
        .await
        .map_err(|e| AppError::from_store("campaign", e))?;
    state
        .store()
        .campaign_answers(id)
        .await
        .map_err(AppError::Internal)
}

fn publish(state: &AppState, view: &CampaignView) {
    state.publish(crate::events::LiveEvent::CampaignProgress {
        campaign_id: view.campaign.id,
        sender_id: view.campaign.sender_id,
        state: view.campaign.state,
        hopper: view.hopper,
        held: view.campaign.held.clone(),
    });
}

/// Whether a reply closes a campaign interaction, and how (R6.6): a quick reply in time is the
/// recipient's answer; free text or a late reply closes it and goes to the inbox.
pub(crate) async fn answer_for(
    state: &AppState,
    message: &Message,
    button: Option<&str>,
) -> Result<Option<AnswerRecord>> {
    let Some(interaction) = state
        .store()
        .open_interaction(message.contact_id, message.sender_id)
        .await
        .map_err(AppError::Internal)?
    else {
        return Ok(None);
    };
    let at = message.provider_timestamp.unwrap_or(message.created_at);
    let outcome = classify_answer(button, interaction.deadline, at);
    Ok(Some(AnswerRecord {
        campaign_id: interaction.campaign_id,
        contact_id: interaction.contact_id,
        outcome: outcome.as_str().to_owned(),
        answer: match &outcome {
            switchboard_core::campaign::AnswerOutcome::Answered(a) => Some(a.clone()),
            _ => button.map(str::to_owned),
        },
        quiet: !outcome.needs_agent(),
    }))
}

/// How the runner works. The defaults suit production; tests and benchmarks change them.
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    /// Recipients decided at once (one transaction writes them).
    pub batch: i64,
    /// How long a claimed recipient is this runner's before another node may take it.
    pub lease: Duration,
    /// At most this many of a campaign's messages wait in the outbound queue at once.
    pub window: i64,
    /// With a rate cap, messages are queued at most this far ahead of their time.
    pub horizon: Duration,
    /// How long a recipient waits when a limit or business hours hold the campaign and the
    /// policy cannot say until when.
    pub hold: Duration,
    /// How long a recipient already in another campaign's interaction waits before it is
    /// looked at again (R6.5).
    pub busy: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch: 500,
            lease: Duration::seconds(30),
            window: 2_000,
            horizon: Duration::seconds(2),
            hold: Duration::minutes(1),
            busy: Duration::minutes(1),
        }
    }
}

pub struct CampaignRunner {
    settings: RunnerSettings,
    /// When each campaign's counters were last told to the live pages: counting a large
    /// hopper takes a while, so they hear at most once a second (and at once when it ends).
    published: std::sync::Mutex<HashMap<CampaignId, std::time::Instant>>,
}

impl Default for CampaignRunner {
    fn default() -> Self {
        Self::new(RunnerSettings::default())
    }
}

impl CampaignRunner {
    pub fn new(settings: RunnerSettings) -> Self {
        Self {
            settings,
            published: Default::default(),
        }
    }

    /// Whether a campaign's live pages are due to hear its counters again.
    fn due_to_publish(&self, id: CampaignId) -> bool {
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        match published.get(&id) {
            Some(at) if now.duration_since(*at) < std::time::Duration::from_secs(1) => false,
            _ => {
                published.insert(id, now);
                true
            }
        }
    }

    /// One pass over every active campaign: scheduled ones whose time came start, due
    /// recipients are decided and queued, answers that timed out close, ended campaigns skip
    /// what was never sent, and finished ones complete. Returns how many recipients moved.
    pub async fn run_once(&self, state: &AppState) -> Result<usize> {
        let store = state.store();
        let now = state.now();
        let campaigns = store
            .active_campaigns(now)
            .await
            .map_err(AppError::Internal)?;
        let mut moved = 0;
        for mut campaign in campaigns {
            if campaign.state == CampaignState::Scheduled {
                store
                    .move_campaign(
                        campaign.id,
                        CampaignState::Scheduled,
                        CampaignState::Running,
                        false,
                        now,
                    )
                    .await
                    .map_err(AppError::Internal)?;
                campaign = store
                    .get_campaign(campaign.id)
                    .await
                    .map_err(AppError::Internal)?;
                if campaign.state != CampaignState::Running {
                    continue;
                }
            }
            moved += self.step(state, &campaign).await?;
        }
        // A campaign that sends no more still hears its answers until they time out, so that
        // its recipients do not stay busy for other campaigns (R6.5) for ever.
        for id in store
            .idle_campaign_ids()
            .await
            .map_err(AppError::Internal)?
        {
            let closed = store
                .time_out_interactions(id, now)
                .await
                .map_err(AppError::Internal)?;
            if closed > 0 {
                moved += closed as usize;
                publish(state, &view(state, id).await?);
            }
        }
        Ok(moved)
    }

    async fn step(&self, state: &AppState, campaign: &Campaign) -> Result<usize> {
        let store = state.store();
        let now = state.now();
        let mut moved = store
            .time_out_interactions(campaign.id, now)
            .await
            .map_err(AppError::Internal)? as usize;
        if campaign.end_at.is_some_and(|end| end <= now) {
            moved += store
                .skip_unsent(campaign.id, now)
                .await
                .map_err(AppError::Internal)? as usize;
        } else {
            moved += self.feed(state, campaign).await?;
        }
        let completed = store
            .complete_if_finished(campaign.id, now)
            .await
            .map_err(AppError::Internal)?;
        // Answers change the counters too, though nothing moved here: a running campaign is
        // told about every second.
        if completed || self.due_to_publish(campaign.id) {
            publish(state, &view(state, campaign.id).await?);
        }
        Ok(moved)
    }

    /// Decides the next due recipients and queues the allowed messages.
    async fn feed(&self, state: &AppState, campaign: &Campaign) -> Result<usize> {
        let store = state.store();
        let now = state.now();
        // Held (closed hours, a limit): nobody can be sent to before then, so nobody is looked
        // at, rather than the whole hopper being pushed back a batch at a time.
        if campaign
            .held
            .as_ref()
            .and_then(|h| h.until)
            .is_some_and(|until| until > now)
        {
            return Ok(0);
        }
        let in_flight = store
            .campaign_in_flight(campaign.id)
            .await
            .map_err(AppError::Internal)?;
        let mut room = (self.settings.window - in_flight).min(self.settings.batch);
        let interval = campaign
            .rate_limit_per_second
            .map(|rate| Duration::seconds_f64(1.0 / rate.max(1) as f64));
        let mut slot = now;
        if let Some(interval) = interval {
            let paced = store
                .campaign_paced_until(campaign.id)
                .await
                .map_err(AppError::Internal)?;
            slot = paced.map_or(now, |p| p.max(now));
            let ahead = now + self.settings.horizon - slot;
            let fits = (ahead.as_seconds_f64() / interval.as_seconds_f64()).floor() as i64;
            room = room.min(fits);
        }
        if room <= 0 {
            return Ok(0);
        }
        let began = std::time::Instant::now();
        let claimed = store
            .claim_recipients(campaign.id, now, self.settings.lease, room)
            .await
            .map_err(AppError::Internal)?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let sender = state
            .sender(campaign.sender_id)
            .await
            .map_err(AppError::Internal)?;
        let ids: Vec<ContactId> = claimed.iter().map(|c| c.contact_id).collect();
        let contacts: HashMap<ContactId, Contact> = store
            .get_contacts(&ids)
            .await
            .map_err(AppError::Internal)?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let mut ledgers: HashMap<ContactId, Vec<_>> = HashMap::new();
        for event in store
            .consent_events_of(&ids, sender.channel)
            .await
            .map_err(AppError::Internal)?
        {
            ledgers.entry(event.contact_id).or_default().push(event);
        }
        let busy: HashSet<ContactId> = store
            .contacts_in_other_interactions(campaign.id, sender.id, &ids)
            .await
            .map_err(AppError::Internal)?
            .into_iter()
            .collect();
        // The messaging limit counts unique customers reached in a rolling day (R8.4); with no
        // limit there is nothing to count.
        let since = now - switchboard_core::policy::SERVICE_WINDOW;
        let (mut reach, mut reached): (i64, HashSet<ContactId>) =
            match sender.health.messaging_limit_tier {
                Some(_) => (
                    store
                        .business_initiated_reach(sender.id, None, since)
                        .await
                        .map_err(AppError::Internal)?
                        .0,
                    store
                        .business_initiated_reached_among(sender.id, &ids, since)
                        .await
                        .map_err(AppError::Internal)?
                        .into_iter()
                        .collect(),
                ),
                None => (0, HashSet::new()),
            };
        let templates = store
            .sender_templates(sender.id)
            .await
            .map_err(AppError::Internal)?;
        let dlp = crate::settings::dlp_rules(state).await?;
        let hours = crate::settings::hours_at(state, now).await?;

        let loaded = began.elapsed();
        let mut decided = Vec::with_capacity(claimed.len());
        let mut held: Option<Held> = None;
        for recipient in claimed {
            if let Some(h) = &held {
                decided.push(Decided::Wait {
                    recipient,
                    until: h.until.unwrap_or(now + self.settings.hold),
                });
                continue;
            }
            if busy.contains(&recipient.contact_id) {
                decided.push(Decided::Wait {
                    recipient,
                    until: now + self.settings.busy,
                });
                continue;
            }
            let Some(contact) = contacts.get(&recipient.contact_id) else {
                // Deleted since the campaign started.
                decided.push(skip(
                    campaign,
                    &sender,
                    recipient,
                    RefusalCode::UnknownRecipient,
                    "the contact was deleted",
                    ConsentStatus::None,
                    now,
                ));
                continue;
            };
            let consent = ledgers
                .get(&contact.id)
                .map_or(ConsentStatus::None, |events| {
                    current_status(events, sender.channel)
                });
            let request = SendRequest {
                content: Content::Template {
                    name: campaign.template_name.clone(),
                    locale: Some(locale_for(campaign, contact, &templates)),
                    variables: variables_for(campaign, contact),
                },
                tag: None,
                origin: Origin::Campaign,
            };
            let context = PolicyContext {
                sender: SenderFacts {
                    id: sender.id,
                    channel: sender.channel,
                    health: sender.health.status,
                    token_status: sender.health.token_status,
                    messaging_limit: sender.health.messaging_limit_tier,
                    business_initiated_recipients_24h: reach,
                    recipient_reached_24h: reached.contains(&contact.id),
                    media_limit_bytes: state.media_limit_bytes(),
                },
                sender_permitted: true,
                recipient: Recipient::Known(contact),
                last_inbound_at: None,
                consent,
                templates: &templates,
                dlp: &dlp,
                hours,
            };
            let decision = evaluate(&request, &context, now);
            match decision.verdict {
                Verdict::Allow(allowed) => {
                    if allowed.business_initiated && reached.insert(contact.id) {
                        reach += 1;
                    }
                    let at = slot;
                    if let Some(interval) = interval {
                        slot += interval;
                    }
                    let message = campaign_message(campaign, contact, &sender, &allowed, at, now);
                    let record = record(
                        campaign,
                        &sender,
                        contact.id,
                        Some(message.id),
                        None,
                        consent,
                        now,
                    );
                    decided.push(Decided::Send {
                        recipient,
                        job: NewJob {
                            id: MessageId::new().to_string(),
                            queue: OUTBOUND_QUEUE.to_owned(),
                            kind: "send_message".to_owned(),
                            // The campaign too: the dispatcher checks it is still running.
                            payload: json!({"message_id": message.id, "campaign_id": campaign.id}),
                            dedupe_key: Some(format!("send:{}", message.id)),
                            run_at: at,
                            expires_at: campaign.end_at,
                        },
                        message: Box::new(message),
                        decision: Box::new(record),
                    });
                }
                Verdict::Refuse { code, reason } => match on_refusal(code) {
                    Refused::Skip => decided.push(skip(
                        campaign, &sender, recipient, code, &reason, consent, now,
                    )),
                    Refused::Hold => {
                        let until = match code {
                            RefusalCode::OutsideBusinessHours => hours
                                .and_then(|h| h.opens_at)
                                .unwrap_or(now + self.settings.hold),
                            _ => now + self.settings.hold,
                        };
                        held = Some(Held {
                            code: code.as_str().to_owned(),
                            reason,
                            until: Some(until),
                        });
                        decided.push(Decided::Wait { recipient, until });
                    }
                },
            }
        }
        let judged = began.elapsed();
        let written = store
            .commit_campaign_batch(campaign.id, &decided, interval.map(|_| slot), now)
            .await
            .map_err(AppError::Internal)?;
        if !written.is_empty() {
            state.wake_dispatcher();
        }
        if held != campaign.held {
            store
                .set_campaign_held(campaign.id, held.as_ref())
                .await
                .map_err(AppError::Internal)?;
        }
        let moved = decided
            .iter()
            .filter(|d| !matches!(d, Decided::Wait { .. }))
            .count();
        tracing::debug!(
            campaign = %campaign.id,
            queued = written.len(),
            moved,
            load_us = loaded.as_micros() as u64,
            decide_us = (judged - loaded).as_micros() as u64,
            commit_us = (began.elapsed() - judged).as_micros() as u64,
            "campaign batch"
        );
        Ok(moved)
    }
}

/// The contact's own locale when the template has an approved version in it, else the
/// campaign's.
fn locale_for(
    campaign: &Campaign,
    contact: &Contact,
    templates: &[switchboard_core::template::Template],
) -> switchboard_core::contact::Locale {
    let fallback = || {
        switchboard_core::contact::Locale::parse("template.locale", &campaign.template_locale).ok()
    };
    contact
        .locale
        .clone()
        .filter(|locale| {
            templates.iter().any(|t| {
                t.content.name == campaign.template_name
                    && t.content.locale == *locale
                    && t.status == TemplateStatus::Approved
            })
        })
        .or_else(fallback)
        .or_else(|| contact.locale.clone())
        .unwrap_or_else(|| {
            switchboard_core::contact::Locale::parse("template.locale", "en")
                .expect("`en` is a locale")
        })
}

/// The campaign's own mapping, filled from the contact; the template's mapping fills the rest
/// when the policy resolves the template.
fn variables_for(campaign: &Campaign, contact: &Contact) -> Map<String, Value> {
    campaign
        .variable_mapping
        .iter()
        .filter_map(|(variable, path)| {
            contact_value(contact, path).map(|v| (variable.clone(), Value::String(v)))
        })
        .collect()
}

fn campaign_message(
    campaign: &Campaign,
    contact: &Contact,
    sender: &switchboard_core::sender::Sender,
    allowed: &switchboard_core::policy::Allowed,
    send_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Message {
    let status = DeliveryStatus::Queued;
    Message {
        id: MessageId::new(),
        direction: Direction::Outbound,
        channel: sender.channel,
        sender_id: sender.id,
        contact_id: contact.id,
        // A campaign message belongs to no conversation until the customer answers: a million
        // recipients must not fill the inbox. It shows in the contact's history all the same.
        conversation_id: None,
        text: allowed.text.clone(),
        template: allowed.template.as_ref().map(|t| TemplateRef {
            name: t.name.clone(),
            locale: t.locale.clone(),
            variables: t
                .variables
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        }),
        media: None,
        channel_template_type: allowed.kind,
        status,
        status_history: vec![StatusEvent {
            status,
            at: now,
            error: None,
        }],
        provider_message_id: None,
        error: None,
        provider_timestamp: None,
        tag: None,
        business_initiated: allowed.business_initiated,
        redacted: allowed.redacted,
        send_at: (send_at > now).then_some(send_at),
        actor: Some(format!("campaign:{}", campaign.id)),
        created_at: now,
        updated_at: now,
    }
}

#[allow(clippy::too_many_arguments)]
fn skip(
    campaign: &Campaign,
    sender: &switchboard_core::sender::Sender,
    recipient: Claimed,
    code: RefusalCode,
    reason: &str,
    consent: ConsentStatus,
    now: OffsetDateTime,
) -> Decided {
    Decided::Skip {
        recipient,
        code: code.as_str().to_owned(),
        reason: reason.to_owned(),
        decision: Box::new(record(
            campaign,
            sender,
            recipient.contact_id,
            None,
            Some((code, reason)),
            consent,
            now,
        )),
    }
}

/// The decision as the audit trail keeps it: what was decided for whom, on which facts.
fn record(
    campaign: &Campaign,
    sender: &switchboard_core::sender::Sender,
    contact: ContactId,
    message: Option<MessageId>,
    refusal: Option<(RefusalCode, &str)>,
    consent: ConsentStatus,
    now: OffsetDateTime,
) -> DecisionRecord {
    DecisionRecord {
        id: MessageId::new().to_string(),
        at: now,
        actor: format!("campaign:{}", campaign.id),
        sender_id: Some(sender.id.to_string()),
        contact_id: Some(contact.to_string()),
        channel: Some(sender.channel.as_str().to_owned()),
        allowed: refusal.is_none(),
        code: refusal.map(|(c, _)| c.as_str().to_owned()),
        reason: refusal.map(|(_, r)| r.to_owned()),
        kind: refusal.is_none().then(|| "template".to_owned()),
        message_id: message.map(|m| m.to_string()),
        dry_run: false,
        request: json!({
            "content": {"kind": "template", "name": campaign.template_name},
            "origin": "campaign",
            "campaign_id": campaign.id,
        }),
        facts: json!({"consent": consent, "campaign_round": campaign.round}),
    }
}
