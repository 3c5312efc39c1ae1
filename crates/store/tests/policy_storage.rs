//! Conformance of the storage behind the policy engine, on SQLite and PostgreSQL.

use std::collections::BTreeMap;

use ::time::{Duration, OffsetDateTime};
use serde_json::json;
use switchboard_core::consent::{ConsentEvent, ConsentSource, ConsentStatus};
use switchboard_core::contact::{Contact, Locale};
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Direction, Message, StatusEvent,
};
use switchboard_core::sender::{ProviderConfig, Sender, SenderHealth};
use switchboard_core::template::{
    Template, TemplateCategory, TemplateContent, TemplateStatus, TemplateTransition,
};
use switchboard_core::time::truncate_to_millis;
use switchboard_core::{
    Channel, ConsentEventId, ContactId, MessageId, PhoneNumber, SenderId, TemplateId,
};
use switchboard_store::decisions::DecisionRecord;
use switchboard_store::jobs::{NewJob, Outcome};
use switchboard_store::messages::{InboundRecord, SendCompletion};
use switchboard_store::{IdempotencyKey, Store, StoreError};
use switchboard_testkit::{both_backends, TestDb};

fn now() -> OffsetDateTime {
    truncate_to_millis(OffsetDateTime::now_utc())
}

async fn setup(db: &TestDb) -> (Store, Sender, Contact) {
    let store = Store::open(db.url()).await.unwrap();
    let t = now();
    let sender = Sender {
        id: SenderId::new(),
        channel: Channel::Whatsapp,
        name: "wa".into(),
        use_case: None,
        provider: ProviderConfig::Sandbox,
        health: SenderHealth::initial(switchboard_core::sender::ProviderKind::Sandbox),
        rate_limit_per_second: None,
        created_at: t,
        updated_at: t,
    };
    store.create_sender(&sender).await.unwrap();
    let contact = Contact {
        id: ContactId::new(),
        name: Some("Ada".into()),
        phone: Some(PhoneNumber::parse("phone", "+442079460958").unwrap()),
        whatsapp_user_id: None,
        messenger_psid: None,
        locale: None,
        owner_id: None,
        fields: Default::default(),
        created_at: t,
        updated_at: t,
    };
    store.create_contact(&contact, None).await.unwrap();
    (store, sender, contact)
}

fn template(sender: SenderId, name: &str, locale: &str, recontact: bool) -> Template {
    let t = now();
    Template {
        id: TemplateId::new(),
        sender_id: sender,
        content: TemplateContent {
            name: name.into(),
            locale: Locale::parse("locale", locale).unwrap(),
            category: Some(TemplateCategory::Utility),
            header: None,
            body: "Hello {{1}}, your order shipped".into(),
            footer: None,
            buttons: vec![],
            variable_mapping: BTreeMap::from([("1".to_owned(), "contact.name".to_owned())]),
            tag: None,
        },
        status: TemplateStatus::Draft,
        status_reason: None,
        recontact,
        provider_template_id: None,
        created_at: t,
        updated_at: t,
    }
}

fn message(
    sender: &Sender,
    contact: &Contact,
    direction: Direction,
    at: OffsetDateTime,
) -> Message {
    let status = if direction == Direction::Inbound {
        DeliveryStatus::Received
    } else {
        DeliveryStatus::Queued
    };
    Message {
        id: MessageId::new(),
        direction,
        channel: sender.channel,
        sender_id: sender.id,
        contact_id: contact.id,
        conversation_id: None,
        text: Some("hi".into()),
        template: None,
        media: None,
        channel_template_type: ChannelTemplateType::Session,
        status,
        status_history: vec![StatusEvent {
            status,
            at,
            error: None,
        }],
        provider_message_id: None,
        error: None,
        provider_timestamp: (direction == Direction::Inbound).then_some(at),
        tag: None,
        business_initiated: false,
        redacted: false,
        send_at: None,
        actor: None,
        created_at: at,
        updated_at: at,
    }
}

fn decision(message: Option<&Message>, allowed: bool) -> DecisionRecord {
    DecisionRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at: now(),
        actor: "token:test".into(),
        sender_id: message.map(|m| m.sender_id.to_string()),
        contact_id: message.map(|m| m.contact_id.to_string()),
        channel: Some("whatsapp".into()),
        allowed,
        code: (!allowed).then(|| "window_closed".to_owned()),
        reason: None,
        kind: allowed.then(|| "session".to_owned()),
        message_id: message.map(|m| m.id.to_string()),
        dry_run: false,
        request: json!({"text": "hi"}),
        facts: json!({"last_inbound_at": null}),
    }
}

fn job(message: &Message) -> NewJob {
    NewJob {
        id: uuid::Uuid::now_v7().to_string(),
        queue: "outbound".into(),
        kind: "send_message".into(),
        payload: json!({"message_id": message.id.to_string()}),
        dedupe_key: Some(format!("send:{}", message.id)),
        run_at: message.created_at,
        expires_at: None,
    }
}

async fn templates_move_through_a_fenced_lifecycle(db: TestDb) {
    let (store, sender, _) = setup(&db).await;
    let en = template(sender.id, "order_update", "en", true);
    let fr = template(sender.id, "order_update", "fr", true);
    let other = template(sender.id, "welcome", "en", false);
    for t in [&en, &fr, &other] {
        store.create_template(t).await.unwrap();
    }
    assert_eq!(store.get_template(en.id).await.unwrap(), en);
    assert!(matches!(
        store.create_template(&template(sender.id, "order_update", "en", false)).await,
        Err(StoreError::Conflict { field, .. }) if field == "locale"
    ));
    assert_eq!(store.count_template_names(sender.id).await.unwrap(), 2);

    let step = |from, to| TemplateTransition {
        from,
        to,
        at: now(),
        actor: "user:1".into(),
        reason: None,
    };
    assert!(store
        .transition_template(en.id, &step(TemplateStatus::Draft, TemplateStatus::Pending))
        .await
        .unwrap());
    // A stale transition (from a status the template has left) changes nothing.
    assert!(!store
        .transition_template(
            en.id,
            &step(TemplateStatus::Draft, TemplateStatus::Approved)
        )
        .await
        .unwrap());
    let mut rejected = step(TemplateStatus::Pending, TemplateStatus::Rejected);
    rejected.reason = Some("INVALID_FORMAT".into());
    assert!(store.transition_template(en.id, &rejected).await.unwrap());
    let stored = store.get_template(en.id).await.unwrap();
    assert_eq!(stored.status, TemplateStatus::Rejected);
    assert_eq!(stored.status_reason.as_deref(), Some("INVALID_FORMAT"));
    let steps: Vec<_> = store
        .template_transitions(en.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.from, t.to))
        .collect();
    assert_eq!(
        steps,
        [
            (TemplateStatus::Draft, TemplateStatus::Pending),
            (TemplateStatus::Pending, TemplateStatus::Rejected)
        ]
    );

    // One recontact template per sender: marking `welcome` clears `order_update`.
    let mut welcome = other.clone();
    welcome.recontact = true;
    store.update_template(&welcome).await.unwrap();
    let all = store.sender_templates(sender.id).await.unwrap();
    let recontact: Vec<_> = all
        .iter()
        .filter(|t| t.recontact)
        .map(|t| t.content.name.as_str())
        .collect();
    assert_eq!(recontact, ["welcome"]);

    store.delete_template(fr.id).await.unwrap();
    assert!(matches!(
        store.get_template(fr.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn the_consent_ledger_is_appended_in_order(db: TestDb) {
    let (store, _, contact) = setup(&db).await;
    let t = now();
    for (i, (channel, status)) in [
        (Channel::Whatsapp, ConsentStatus::Requested),
        (Channel::Sms, ConsentStatus::OptedIn),
        (Channel::Whatsapp, ConsentStatus::OptedIn),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .append_consent(&ConsentEvent {
                id: ConsentEventId::new(),
                contact_id: contact.id,
                channel,
                status,
                source: ConsentSource::Agent,
                evidence: Some(format!("note {i}")),
                actor: "user:1".into(),
                at: t + Duration::seconds(i as i64),
            })
            .await
            .unwrap();
    }
    let whatsapp = store
        .consent_events(contact.id, Some(Channel::Whatsapp))
        .await
        .unwrap();
    assert_eq!(
        whatsapp.iter().map(|e| e.status).collect::<Vec<_>>(),
        [ConsentStatus::Requested, ConsentStatus::OptedIn]
    );
    assert_eq!(
        store.consent_events(contact.id, None).await.unwrap().len(),
        3
    );

    assert_eq!(
        store.whatsapp_unavailable_since(contact.id).await.unwrap(),
        None
    );
    store
        .set_whatsapp_unavailable(contact.id, Some(t))
        .await
        .unwrap();
    assert_eq!(
        store.whatsapp_unavailable_since(contact.id).await.unwrap(),
        Some(t)
    );
}

async fn an_outbound_message_its_job_and_its_decision_commit_together(db: TestDb) {
    let (store, sender, contact) = setup(&db).await;
    let m = message(&sender, &contact, Direction::Outbound, now());
    let key = IdempotencyKey {
        scope: "token:1".into(),
        key: "k1".into(),
        request_hash: "h".into(),
    };
    store
        .create_outbound(
            &m,
            &job(&m),
            &decision(Some(&m), true),
            Some(&key),
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(store.get_message(m.id).await.unwrap(), m);
    let jobs = store.queued_jobs("outbound").await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload["message_id"], m.id.to_string());
    assert_eq!(jobs[0].status, "queued");
    assert_eq!(store.count_decisions().await.unwrap(), 1);
    assert_eq!(
        store
            .find_idempotency("token:1", "k1")
            .await
            .unwrap()
            .unwrap()
            .resource_kind,
        "message"
    );

    // A second write with the same key fails whole: no message, no job, no decision.
    let again = message(&sender, &contact, Direction::Outbound, now());
    assert!(store
        .create_outbound(
            &again,
            &job(&again),
            &decision(Some(&again), true),
            Some(&key),
            None,
            None
        )
        .await
        .is_err());
    assert!(matches!(
        store.get_message(again.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.queued_jobs("outbound").await.unwrap().len(), 1);
    assert_eq!(store.count_decisions().await.unwrap(), 1);

    // A refusal leaves only its decision.
    store.record_decision(&decision(None, false)).await.unwrap();
    assert_eq!(store.count_decisions().await.unwrap(), 2);
}

async fn inbound_messages_open_the_window_and_reopen_conversations(db: TestDb) {
    let (store, sender, contact) = setup(&db).await;
    assert_eq!(
        store.last_inbound_at(contact.id, sender.id).await.unwrap(),
        None
    );
    let conversation = store
        .ensure_conversation(contact.id, sender.id, sender.channel, now())
        .await
        .unwrap();
    let old = now() - Duration::hours(25);
    let mut first = message(&sender, &contact, Direction::Inbound, old);
    first.conversation_id = Some(conversation);
    first.provider_message_id = Some("wamid.1".into());
    store.record_inbound(&first, None, None).await.unwrap();
    assert_eq!(
        store.last_inbound_at(contact.id, sender.id).await.unwrap(),
        Some(old)
    );

    // Provider timestamps decide, not arrival order: a late delivery of an older message does
    // not move the window back.
    let fresh = now() - Duration::minutes(5);
    let mut second = message(&sender, &contact, Direction::Inbound, fresh);
    second.conversation_id = Some(conversation);
    let opt_out = ConsentEvent {
        id: ConsentEventId::new(),
        contact_id: contact.id,
        channel: Channel::Whatsapp,
        status: ConsentStatus::OptedOut,
        source: ConsentSource::Keyword,
        evidence: Some("STOP".into()),
        actor: "system".into(),
        at: now(),
    };
    store
        .record_inbound(&second, Some(&opt_out), None)
        .await
        .unwrap();
    let mut late = message(
        &sender,
        &contact,
        Direction::Inbound,
        old - Duration::hours(1),
    );
    late.conversation_id = Some(conversation);
    store.record_inbound(&late, None, None).await.unwrap();
    assert_eq!(
        store.last_inbound_at(contact.id, sender.id).await.unwrap(),
        Some(fresh)
    );
    assert_eq!(
        store.consent_events(contact.id, None).await.unwrap()[0].status,
        ConsentStatus::OptedOut
    );

    // The same provider message again is refused, naming the first.
    let mut duplicate = message(&sender, &contact, Direction::Inbound, now());
    duplicate.provider_message_id = Some("wamid.1".into());
    match store.record_inbound(&duplicate, None, None).await {
        Err(StoreError::Conflict { existing_id, .. }) => {
            assert_eq!(existing_id, Some(first.id.to_string()))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    // In a batch (a group commit), a duplicate is refused alone: the others are recorded.
    let mut before = message(&sender, &contact, Direction::Inbound, now());
    before.provider_message_id = Some("wamid.batch.1".into());
    let mut after = message(&sender, &contact, Direction::Inbound, now());
    after.provider_message_id = Some("wamid.batch.2".into());
    let record = |m: &Message| InboundRecord {
        message: m.clone(),
        consent: None,
        job: None,
        answer: None,
    };
    let results = store
        .record_inbound_batch(&[record(&before), record(&duplicate), record(&after)])
        .await
        .unwrap();
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    match &results[1] {
        Err(StoreError::Conflict { existing_id, .. }) => {
            assert_eq!(existing_id.as_deref(), Some(first.id.to_string().as_str()))
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    for m in [&before, &after] {
        assert_eq!(store.get_message(m.id).await.unwrap().id, m.id);
    }
    assert!(matches!(
        store.get_message(duplicate.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn business_initiated_reach_counts_distinct_recent_recipients(db: TestDb) {
    let (store, sender, contact) = setup(&db).await;
    let since = now() - Duration::hours(24);
    assert_eq!(
        store
            .business_initiated_reach(sender.id, Some(contact.id), since)
            .await
            .unwrap(),
        (0, false)
    );
    for age in [1, 2] {
        let mut m = message(
            &sender,
            &contact,
            Direction::Outbound,
            now() - Duration::hours(age),
        );
        m.business_initiated = true;
        store.insert_message(&m).await.unwrap();
    }
    let mut old = message(
        &sender,
        &contact,
        Direction::Outbound,
        now() - Duration::hours(30),
    );
    old.business_initiated = true;
    store.insert_message(&old).await.unwrap();
    assert_eq!(
        store
            .business_initiated_reach(sender.id, Some(contact.id), since)
            .await
            .unwrap(),
        (1, true)
    );
    assert_eq!(
        store
            .business_initiated_reach(sender.id, Some(ContactId::new()), since)
            .await
            .unwrap(),
        (1, false)
    );
}

/// What a batch of sends came to is recorded with the jobs in one go; a message the provider
/// took keeps its id even if the worker's lease was lost meanwhile.
async fn send_outcomes_are_recorded_with_their_jobs(db: TestDb) {
    let (store, sender, contact) = setup(&db).await;
    let t = now();
    let mut messages = Vec::new();
    for _ in 0..3 {
        let mut m = message(&sender, &contact, Direction::Outbound, t);
        m.business_initiated = true;
        store
            .create_outbound(&m, &job(&m), &decision(Some(&m), true), None, None, None)
            .await
            .unwrap();
        messages.push(m);
    }
    // Nothing handed to the provider yet: no one reached.
    assert_eq!(
        store
            .business_initiated_sent_reach(sender.id, Some(contact.id), t - Duration::hours(24))
            .await
            .unwrap(),
        (0, false)
    );
    let leases = store
        .claim_jobs("outbound", "worker-a", t, Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(leases.len(), 3);
    let by_message = |m: &Message| {
        leases
            .iter()
            .find(|l| l.job.payload["message_id"] == m.id.to_string())
            .unwrap()
            .clone()
    };
    // The third job's lease is lost: another worker took it over.
    let mut lost = by_message(&messages[2]);
    lost.owner = "worker-gone".into();
    let sent = |at| StatusEvent {
        status: DeliveryStatus::Sent,
        at,
        error: None,
    };
    let follow_up = |id: &str| NewJob {
        id: id.to_owned(),
        queue: "sandbox".into(),
        kind: "status".into(),
        payload: json!({}),
        dedupe_key: None,
        run_at: t + Duration::seconds(1),
        expires_at: None,
    };
    let completions = vec![
        SendCompletion {
            lease: by_message(&messages[0]),
            outcome: Outcome::Done,
            message: Some(messages[0].id),
            provider_message_id: Some("wamid.ONE".into()),
            status: Some(sent(t)),
            follow_ups: vec![follow_up("after-one")],
            recorded: false,
        },
        SendCompletion {
            lease: by_message(&messages[1]),
            outcome: Outcome::Defer {
                at: t + Duration::seconds(6),
            },
            message: Some(messages[1].id),
            provider_message_id: None,
            status: None,
            follow_ups: Vec::new(),
            recorded: false,
        },
        SendCompletion {
            lease: lost,
            outcome: Outcome::Done,
            message: Some(messages[2].id),
            provider_message_id: Some("wamid.THREE".into()),
            status: Some(sent(t)),
            follow_ups: vec![follow_up("after-three")],
            recorded: false,
        },
    ];
    let completed = store.complete_sends(&completions, t).await.unwrap();
    assert_eq!(completed.held, vec![true, true, false]);
    assert!(completed.reported.is_empty());
    // What follows a send is enqueued with it, unless another worker holds the job now.
    let followed: Vec<String> = store
        .queued_jobs("sandbox")
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(followed, ["after-one"]);
    let one = store.get_message(messages[0].id).await.unwrap();
    assert_eq!(one.provider_message_id.as_deref(), Some("wamid.ONE"));
    assert_eq!(one.status, DeliveryStatus::Sent);
    let three = store.get_message(messages[2].id).await.unwrap();
    assert_eq!(three.provider_message_id.as_deref(), Some("wamid.THREE"));
    assert_eq!(three.status, DeliveryStatus::Sent);
    // A deferred job waits without the claim counting as an attempt.
    let deferred = store
        .get_job(&by_message(&messages[1]).job.id)
        .await
        .unwrap();
    assert_eq!(deferred.status, "queued");
    assert_eq!(deferred.attempt, 0);
    assert_eq!(deferred.run_at, t + Duration::seconds(6));
    // Reached: the contact, once, by the messages that went.
    assert_eq!(
        store
            .business_initiated_sent_reach(sender.id, Some(contact.id), t - Duration::hours(24))
            .await
            .unwrap(),
        (1, true)
    );
    assert_eq!(
        store
            .business_initiated_sent_reach(
                sender.id,
                Some(ContactId::new()),
                t - Duration::hours(24)
            )
            .await
            .unwrap(),
        (1, false)
    );
    // The same, for a batch of contacts at once.
    assert_eq!(
        store
            .business_initiated_sent_reached_among(
                sender.id,
                &[contact.id, ContactId::new()],
                t - Duration::hours(24)
            )
            .await
            .unwrap(),
        vec![contact.id]
    );
    // Batch reads return what exists, with timelines.
    let mut ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    ids.push(MessageId::new());
    let found = store.get_messages(&ids).await.unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|m| !m.status_history.is_empty()));
}

async fn settings_are_documents_by_key(db: TestDb) {
    let (store, _, _) = setup(&db).await;
    assert_eq!(store.get_setting("dlp").await.unwrap(), None);
    store
        .put_setting("dlp", &json!({"rules": []}), now())
        .await
        .unwrap();
    store
        .put_setting("dlp", &json!({"rules": [1]}), now())
        .await
        .unwrap();
    assert_eq!(
        store.get_setting("dlp").await.unwrap(),
        Some(json!({"rules": [1]}))
    );
}

/// Two customers, Ada and Bob, each in a conversation with one sender.
struct Pair {
    store: Store,
    sender: Sender,
    ada: Contact,
    bob: Contact,
    ada_conversation: switchboard_core::ConversationId,
    bob_conversation: switchboard_core::ConversationId,
    t: OffsetDateTime,
}

async fn two_conversations(db: &TestDb) -> Pair {
    let (store, sender, ada) = setup(db).await;
    let mut bob = ada.clone();
    bob.id = ContactId::new();
    bob.phone = Some(PhoneNumber::parse("phone", "+442079460959").unwrap());
    store.create_contact(&bob, None).await.unwrap();
    let t = now();
    let ada_conversation = store
        .ensure_conversation(ada.id, sender.id, sender.channel, t)
        .await
        .unwrap();
    let bob_conversation = store
        .ensure_conversation(bob.id, sender.id, sender.channel, t)
        .await
        .unwrap();
    Pair {
        store,
        sender,
        ada,
        bob,
        ada_conversation,
        bob_conversation,
        t,
    }
}

/// A batch of inbound messages for several conversations is written together: each
/// conversation once, with every message counted, the last one previewed, a closed one reopened
/// with its history, a duplicate refused alone, and a message naming no contact that exists
/// failing alone while the others are written.
async fn a_batch_of_inbound_messages_is_written_together(db: TestDb) {
    let Pair {
        store,
        sender,
        ada,
        bob,
        ada_conversation,
        bob_conversation,
        t,
    } = two_conversations(&db).await;
    let closed = switchboard_core::conversation::Assignment {
        state: switchboard_core::conversation::ConversationState::Closed,
        assignee: None,
    };
    let unclaimed = store
        .get_conversation(bob_conversation)
        .await
        .unwrap()
        .assignment();
    let close = switchboard_store::conversations::ConversationEvent {
        id: switchboard_core::ConversationEventId::new(),
        conversation_id: bob_conversation,
        action: "closed".into(),
        from: unclaimed.state,
        to: closed.state,
        assignee_id: None,
        actor: "system".into(),
        at: t,
    };
    assert!(store
        .move_conversation(unclaimed, closed, &close)
        .await
        .unwrap());

    let inbound = |contact: &Contact, conversation, text: &str, pid: &str, age: i64| {
        let mut m = message(
            &sender,
            contact,
            Direction::Inbound,
            t - Duration::seconds(age),
        );
        m.conversation_id = Some(conversation);
        m.text = Some(text.into());
        m.provider_message_id = Some(pid.into());
        InboundRecord {
            message: m,
            consent: None,
            job: None,
            answer: None,
        }
    };
    let mut stranger = inbound(&ada, ada_conversation, "who?", "wamid.s", 0);
    stranger.message.contact_id = ContactId::new();
    stranger.message.conversation_id = None;
    let records = [
        inbound(&ada, ada_conversation, "one", "wamid.a1", 30),
        inbound(&bob, bob_conversation, "bob here", "wamid.b1", 20),
        inbound(&ada, ada_conversation, "two", "wamid.a2", 10),
        inbound(&ada, ada_conversation, "two again", "wamid.a2", 5),
        stranger,
    ];
    let results = store.record_inbound_batch(&records).await.unwrap();
    assert!(
        results[0].is_ok() && results[1].is_ok() && results[2].is_ok(),
        "{results:?}"
    );
    match &results[3] {
        Err(StoreError::Conflict { existing_id, .. }) => {
            assert_eq!(
                existing_id.as_deref(),
                Some(records[2].message.id.to_string().as_str())
            )
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(results[4].is_err(), "{results:?}");
    assert!(matches!(
        store.get_message(records[4].message.id).await,
        Err(StoreError::NotFound)
    ));
    let written = store.get_message(records[2].message.id).await.unwrap();
    assert_eq!(written.text.as_deref(), Some("two"));
    assert_eq!(written.status_history.len(), 1);

    let ada_now = store.get_conversation(ada_conversation).await.unwrap();
    assert_eq!(ada_now.unread_count, 2);
    assert_eq!(ada_now.preview.as_deref(), Some("two"));
    assert_eq!(ada_now.last_inbound_at, Some(t - Duration::seconds(10)));
    assert_eq!(ada_now.waiting_since, Some(t - Duration::seconds(30)));
    let bob_now = store.get_conversation(bob_conversation).await.unwrap();
    assert_eq!(
        bob_now.state,
        switchboard_core::conversation::ConversationState::Unclaimed
    );
    assert_eq!(bob_now.waiting_since, Some(t - Duration::seconds(20)));
    let history = store.conversation_events(bob_conversation).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["closed", "reopened"]
    );
    assert_eq!(
        store
            .conversation_events(ada_conversation)
            .await
            .unwrap()
            .len(),
        0
    );
}

/// Sends with nothing but themselves to write go in together: every message with its job and
/// decision, each conversation updated once with the last message's preview; a send with an
/// idempotency key goes alone beside them, and a second use of its key fails only that send.
async fn a_batch_of_sends_is_written_together(db: TestDb) {
    let Pair {
        store,
        sender,
        ada,
        bob,
        ada_conversation,
        bob_conversation,
        t,
    } = two_conversations(&db).await;
    // Ada is waiting for an answer.
    let mut asked = message(&sender, &ada, Direction::Inbound, t - Duration::seconds(60));
    asked.conversation_id = Some(ada_conversation);
    asked.provider_message_id = Some("wamid.q".into());
    store.record_inbound(&asked, None, None).await.unwrap();
    assert!(store
        .get_conversation(ada_conversation)
        .await
        .unwrap()
        .waiting_since
        .is_some());

    let send = |contact: &Contact, conversation, text: &str, key: Option<&str>| {
        let mut m = message(&sender, contact, Direction::Outbound, t);
        m.conversation_id = Some(conversation);
        m.text = Some(text.into());
        switchboard_store::messages::OutboundRecord {
            job: job(&m),
            decision: decision(Some(&m), true),
            message: m,
            idempotency: key.map(|k| IdempotencyKey {
                scope: "token:1".into(),
                key: k.into(),
                request_hash: "h".into(),
            }),
            consent: None,
            guard: None,
        }
    };
    let records = [
        send(&ada, ada_conversation, "first", None),
        send(&bob, bob_conversation, "for bob", Some("k1")),
        send(&ada, ada_conversation, "second", None),
    ];
    let results = store.create_outbound_batch(&records).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for record in &records {
        assert_eq!(
            store.get_message(record.message.id).await.unwrap(),
            record.message
        );
    }
    assert_eq!(store.queued_jobs("outbound").await.unwrap().len(), 3);
    assert_eq!(store.count_decisions().await.unwrap(), 3);
    let ada_now = store.get_conversation(ada_conversation).await.unwrap();
    assert_eq!(ada_now.preview.as_deref(), Some("second"));
    assert_eq!(ada_now.waiting_since, None);
    assert_eq!(ada_now.last_message_at, Some(t));
    let bob_now = store.get_conversation(bob_conversation).await.unwrap();
    assert_eq!(bob_now.preview.as_deref(), Some("for bob"));

    // The key taken again fails its own send; the plain one beside it is written.
    let again = [
        send(&bob, bob_conversation, "for bob again", Some("k1")),
        send(&ada, ada_conversation, "third", None),
    ];
    let results = store.create_outbound_batch(&again).await.unwrap();
    assert!(results[0].is_err() && results[1].is_ok(), "{results:?}");
    assert!(matches!(
        store.get_message(again[0].message.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.queued_jobs("outbound").await.unwrap().len(), 4);
    assert_eq!(store.count_decisions().await.unwrap(), 4);

    // What deciding a send reads, for many at once, agrees with the reads of one.
    let among = store
        .last_inbound_among(sender.id, &[ada.id, bob.id])
        .await
        .unwrap();
    assert_eq!(among, vec![(ada.id, t - Duration::seconds(60))]);
    let senders = store
        .get_senders(&[sender.id, SenderId::new()])
        .await
        .unwrap();
    assert_eq!(senders, vec![sender.clone()]);
}

/// A status processed before its send was recorded (Twilio and Messenger name a send only by
/// the id they answered with) is kept, once however often it comes, and applied as the send
/// is recorded; one kept for more than an hour is forgotten.
async fn a_status_before_its_send_is_applied_as_the_send_is_recorded(db: TestDb) {
    let (store, sender, contact) = setup(&db).await;
    let t = now();
    let mut messages = Vec::new();
    for _ in 0..2 {
        let m = message(&sender, &contact, Direction::Outbound, t);
        store
            .create_outbound(&m, &job(&m), &decision(Some(&m), true), None, None, None)
            .await
            .unwrap();
        messages.push(m);
    }
    let event = |status, seconds| StatusEvent {
        status,
        at: t + Duration::seconds(seconds),
        error: None,
    };
    // P1's `delivered` comes twice, then its `read`; P2's was kept two hours ago, and keeping
    // P3's afterwards forgets it.
    let kept = [
        ("P1", DeliveryStatus::Delivered, 1, t),
        ("P1", DeliveryStatus::Delivered, 1, t),
        ("P1", DeliveryStatus::Read, 2, t),
        ("P2", DeliveryStatus::Delivered, 1, t - Duration::hours(2)),
        ("P3", DeliveryStatus::Delivered, 1, t),
    ];
    for (provider_id, status, seconds, kept_at) in kept {
        store
            .keep_early_status(
                sender.channel,
                provider_id,
                &event(status, seconds),
                kept_at,
            )
            .await
            .unwrap();
    }

    let reported = store
        .record_sends(&[
            (
                messages[0].id,
                "P1".to_owned(),
                event(DeliveryStatus::Sent, 0),
            ),
            (
                messages[1].id,
                "P2".to_owned(),
                event(DeliveryStatus::Sent, 0),
            ),
        ])
        .await
        .unwrap();
    // What the kept statuses moved is answered, for the inbox to hear of it.
    assert_eq!(
        reported,
        std::collections::HashMap::from([(messages[0].id, DeliveryStatus::Read)])
    );
    let first = store.get_message(messages[0].id).await.unwrap();
    assert_eq!(first.status, DeliveryStatus::Read);
    let timeline: Vec<DeliveryStatus> = first.status_history.iter().map(|e| e.status).collect();
    assert_eq!(
        timeline,
        [
            DeliveryStatus::Queued,
            DeliveryStatus::Sent,
            DeliveryStatus::Delivered,
            DeliveryStatus::Read
        ]
    );
    let second = store.get_message(messages[1].id).await.unwrap();
    assert_eq!(second.status, DeliveryStatus::Sent);
    // Applied once: recording the sends again changes nothing.
    let again = store
        .record_sends(&[(
            messages[0].id,
            "P1".to_owned(),
            event(DeliveryStatus::Sent, 0),
        )])
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(
        store
            .get_message(messages[0].id)
            .await
            .unwrap()
            .status_history,
        first.status_history
    );
}

both_backends!(
    a_status_before_its_send_is_applied_as_the_send_is_recorded,
    templates_move_through_a_fenced_lifecycle,
    a_batch_of_sends_is_written_together,
    the_consent_ledger_is_appended_in_order,
    an_outbound_message_its_job_and_its_decision_commit_together,
    inbound_messages_open_the_window_and_reopen_conversations,
    a_batch_of_inbound_messages_is_written_together,
    business_initiated_reach_counts_distinct_recent_recipients,
    send_outcomes_are_recorded_with_their_jobs,
    settings_are_documents_by_key,
);
