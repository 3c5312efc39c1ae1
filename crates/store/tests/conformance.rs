//! The storage conformance suite: every test runs on SQLite and on PostgreSQL.

use ::time::{Duration, OffsetDateTime};
use serde_json::json;
use switchboard_core::contact::{Contact, Locale};
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Direction, Message, MessageError, StatusEvent, TemplateRef,
};
use switchboard_core::sender::{ProviderConfig, ProviderInput, ProviderKind, Sender, SenderHealth};
use switchboard_core::time::truncate_to_millis;
use switchboard_core::user::{ApiToken, User};
use switchboard_core::*;
use switchboard_store::contacts::ContactFilter;
use switchboard_store::messages::MessageFilter;
use switchboard_store::senders::SenderFilter;
use switchboard_store::webhooks::WebhookEvent;
use switchboard_store::{IdempotencyKey, Order, PageRequest, Store, StoreError};
use switchboard_testkit::{both_backends, TestDb};

fn now() -> OffsetDateTime {
    truncate_to_millis(OffsetDateTime::now_utc())
}

fn whatsapp_sender(phone_number_id: &str) -> Sender {
    let provider = ProviderInput {
        kind: Some(ProviderKind::WhatsappCloud),
        phone_number_id: Some(phone_number_id.into()),
        waba_id: Some("102290129340398".into()),
        access_token: Some("EAAG-test-token".into()),
        app_secret: Some("app-secret".into()),
        verify_token: Some("verify".into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    sender(Channel::Whatsapp, provider)
}

fn sender(channel: Channel, provider: ProviderConfig) -> Sender {
    let t = now();
    Sender {
        id: SenderId::new(),
        channel,
        name: format!("{channel} sender"),
        use_case: Some("support".into()),
        health: SenderHealth::initial(provider.kind()),
        rate_limit_per_second: None,
        provider,
        created_at: t,
        updated_at: t,
    }
}

fn contact(phone: &str) -> Contact {
    let t = now();
    Contact {
        id: ContactId::new(),
        name: Some(format!("Customer {phone}")),
        phone: Some(PhoneNumber::parse("phone", phone).unwrap()),
        whatsapp_user_id: None,
        messenger_psid: None,
        locale: Some(Locale::parse("locale", "en_GB").unwrap()),
        owner_id: None,
        fields: json!({"plan": "gold"}).as_object().unwrap().clone(),
        created_at: t,
        updated_at: t,
    }
}

fn user(email: &str, role: Role) -> User {
    let t = now();
    User {
        id: UserId::new(),
        email: email.into(),
        name: "Ada".into(),
        role,
        password_hash: None,
        default_sender_id: None,
        permitted_sender_ids: vec![],
        created_at: t,
        updated_at: t,
    }
}

fn outbound(sender: &Sender, contact: &Contact, text: &str) -> Message {
    let t = now();
    Message {
        id: MessageId::new(),
        direction: Direction::Outbound,
        channel: sender.channel,
        sender_id: sender.id,
        contact_id: contact.id,
        conversation_id: None,
        text: Some(text.into()),
        template: None,
        media: None,
        channel_template_type: ChannelTemplateType::Session,
        status: DeliveryStatus::Queued,
        status_history: vec![StatusEvent {
            status: DeliveryStatus::Queued,
            at: t,
            error: None,
        }],
        provider_message_id: None,
        error: None,
        provider_timestamp: None,
        tag: None,
        business_initiated: false,
        redacted: false,
        send_at: None,
        actor: None,
        created_at: t,
        updated_at: t,
    }
}

async fn open(db: &TestDb) -> Store {
    Store::open(db.url()).await.expect("open the store")
}

async fn senders_round_trip_and_conflict_on_provider_identity(db: TestDb) {
    let store = open(&db).await;
    let s = whatsapp_sender("1001");
    store.create_sender(&s).await.unwrap();
    assert_eq!(store.get_sender(s.id).await.unwrap(), s);

    let clash = whatsapp_sender("1001");
    match store.create_sender(&clash).await {
        Err(StoreError::Conflict { field, .. }) => assert_eq!(field, "provider.external_id"),
        other => panic!("expected a conflict, got {other:?}"),
    }

    let sms = sender(Channel::Sms, ProviderConfig::Sandbox);
    store.create_sender(&sms).await.unwrap();
    let all = store
        .list_senders(&SenderFilter::default(), &PageRequest::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    assert_eq!(all.items[0].id, sms.id, "newest first");
    let only_sms = store
        .list_senders(
            &SenderFilter {
                channel: Some(Channel::Sms),
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(only_sms.items.len(), 1);

    let mut renamed = s.clone();
    renamed.name = "Transactions".into();
    renamed.updated_at = now();
    store.update_sender(&renamed).await.unwrap();
    assert_eq!(store.get_sender(s.id).await.unwrap().name, "Transactions");

    store.delete_sender(sms.id).await.unwrap();
    assert!(matches!(
        store.get_sender(sms.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_sender(sms.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn users_keep_their_permitted_senders(db: TestDb) {
    let store = open(&db).await;
    let a = whatsapp_sender("2001");
    let b = whatsapp_sender("2002");
    store.create_sender(&a).await.unwrap();
    store.create_sender(&b).await.unwrap();

    let mut agent = user("agent@example.com", Role::Agent);
    agent.default_sender_id = Some(a.id);
    agent.permitted_sender_ids = vec![a.id, b.id];
    agent.permitted_sender_ids.sort();
    store.create_user(&agent).await.unwrap();
    assert_eq!(store.get_user(agent.id).await.unwrap(), agent);
    assert_eq!(
        store
            .find_user_by_email("agent@example.com")
            .await
            .unwrap()
            .unwrap()
            .id,
        agent.id
    );

    match store
        .create_user(&user("agent@example.com", Role::Admin))
        .await
    {
        Err(StoreError::Conflict { field, existing_id }) => {
            assert_eq!(field, "email");
            assert_eq!(existing_id, Some(agent.id.to_string()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let mut ghost = user("ghost@example.com", Role::Agent);
    ghost.permitted_sender_ids = vec![SenderId::new()];
    assert!(matches!(
        store.create_user(&ghost).await,
        Err(StoreError::MissingReference { field, .. }) if field == "permitted_sender_ids"
    ));
    assert!(store
        .find_user_by_email("ghost@example.com")
        .await
        .unwrap()
        .is_none());

    // Deleting a sender takes it off the user's lists.
    store.delete_sender(b.id).await.unwrap();
    assert_eq!(
        store.get_user(agent.id).await.unwrap().permitted_sender_ids,
        vec![a.id]
    );
    store.delete_sender(a.id).await.unwrap();
    let after = store.get_user(agent.id).await.unwrap();
    assert_eq!(after.default_sender_id, None);

    let mut updated = after.clone();
    updated.name = "Ada L.".into();
    updated.role = Role::Supervisor;
    store.update_user(&updated).await.unwrap();
    assert_eq!(store.get_user(agent.id).await.unwrap(), updated);
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn users_page_through_in_both_orders(db: TestDb) {
    let store = open(&db).await;
    let s = whatsapp_sender("3001");
    store.create_sender(&s).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut u = user(&format!("u{i}@example.com"), Role::Agent);
        u.permitted_sender_ids = vec![s.id];
        store.create_user(&u).await.unwrap();
        ids.push(u.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_users(&PageRequest {
                limit: 2,
                after: after.clone(),
                order: Order::Asc,
            })
            .await
            .unwrap();
        assert!(page
            .items
            .iter()
            .all(|u| u.permitted_sender_ids == vec![s.id]));
        seen.extend(page.items.iter().map(|u| u.id));
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let newest = store
        .list_users(&PageRequest {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(newest.items[0].id, ids[4]);
}

async fn tokens_are_found_by_hash_and_go_with_their_user(db: TestDb) {
    let store = open(&db).await;
    let u = user("tok@example.com", Role::Agent);
    store.create_user(&u).await.unwrap();
    let token = ApiToken {
        id: TokenId::new(),
        name: "crm".into(),
        prefix: "sb_1234".into(),
        role: Role::Agent,
        scopes: Some(vec![Permission::ContactsRead]),
        user_id: Some(u.id),
        created_at: now(),
        last_used_at: None,
        expires_at: Some(now() + Duration::days(30)),
    };
    store.create_token(&token, "hash-1").await.unwrap();
    assert_eq!(
        store.find_token_by_hash("hash-1").await.unwrap(),
        Some(token.clone())
    );
    assert_eq!(store.find_token_by_hash("nope").await.unwrap(), None);
    let used = now();
    store.touch_token(token.id, used).await.unwrap();
    assert_eq!(
        store.get_token(token.id).await.unwrap().last_used_at,
        Some(used)
    );
    let service = ApiToken {
        id: TokenId::new(),
        user_id: None,
        scopes: None,
        role: Role::Admin,
        ..token.clone()
    };
    store.create_token(&service, "hash-2").await.unwrap();
    assert_eq!(
        store
            .list_tokens(&PageRequest::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert!(matches!(
        store
            .create_token(
                &ApiToken {
                    id: TokenId::new(),
                    ..service.clone()
                },
                "hash-2"
            )
            .await,
        Err(StoreError::Conflict { .. })
    ));

    store.delete_user(u.id).await.unwrap();
    assert_eq!(store.find_token_by_hash("hash-1").await.unwrap(), None);
    assert_eq!(store.count_tokens().await.unwrap(), 1);
    store.delete_token(service.id).await.unwrap();
    assert_eq!(store.count_tokens().await.unwrap(), 0);
}

async fn contacts_are_unique_by_every_address(db: TestDb) {
    let store = open(&db).await;
    let c = contact("+442079460958");
    store.create_contact(&c, None).await.unwrap();
    assert_eq!(store.get_contact(c.id).await.unwrap(), c);

    match store.create_contact(&contact("+442079460958"), None).await {
        Err(StoreError::Conflict { field, existing_id }) => {
            assert_eq!(field, "phone");
            assert_eq!(existing_id, Some(c.id.to_string()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let mut by_bsuid = contact("+16505551234");
    by_bsuid.phone = None;
    by_bsuid.whatsapp_user_id =
        Some(WhatsappUserId::parse("u", "US.13491208655302741918").unwrap());
    store.create_contact(&by_bsuid, None).await.unwrap();
    let found = store
        .find_contact_by_address(None, by_bsuid.whatsapp_user_id.as_ref(), None)
        .await
        .unwrap();
    assert_eq!(found.map(|f| f.id), Some(by_bsuid.id));

    let mut other = contact("+16505551235");
    other.whatsapp_user_id = by_bsuid.whatsapp_user_id.clone();
    assert!(matches!(
        store.create_contact(&other, None).await,
        Err(StoreError::Conflict { field, .. }) if field == "whatsapp_user_id"
    ));

    // An update may keep its own phone but not take another contact's.
    let mut edited = c.clone();
    edited.name = Some("Grace".into());
    store.update_contact(&edited).await.unwrap();
    let mut thief = by_bsuid.clone();
    thief.phone = c.phone.clone();
    assert!(matches!(
        store.update_contact(&thief).await,
        Err(StoreError::Conflict { field, .. }) if field == "phone"
    ));

    let mut orphan = contact("+16505551236");
    orphan.owner_id = Some(UserId::new());
    assert!(matches!(
        store.create_contact(&orphan, None).await,
        Err(StoreError::MissingReference { field, .. }) if field == "owner_id"
    ));
}

/// A batch of inbound messages finds its writers and their conversations in one read each.
async fn a_batch_finds_its_writers_at_once(db: TestDb) {
    let store = open(&db).await;
    let wa = whatsapp_sender("106540352242922");
    store.create_sender(&wa).await.unwrap();
    let by_phone = contact("+442079460958");
    let mut by_bsuid = contact("+16505551234");
    by_bsuid.phone = None;
    by_bsuid.whatsapp_user_id =
        Some(WhatsappUserId::parse("u", "US.13491208655302741918").unwrap());
    let stranger = contact("+16505551299");
    for c in [&by_phone, &by_bsuid, &stranger] {
        store.create_contact(c, None).await.unwrap();
    }
    let mut found = store
        .find_contacts_by_addresses(
            &["+442079460958", "+19995550000"],
            &["US.13491208655302741918"],
            &[],
        )
        .await
        .unwrap();
    found.sort_by_key(|c| c.id);
    let mut expected = vec![by_phone.clone(), by_bsuid.clone()];
    expected.sort_by_key(|c| c.id);
    assert_eq!(found, expected);
    assert!(store
        .find_contacts_by_addresses(&[], &[], &[])
        .await
        .unwrap()
        .is_empty());

    let conversation = store
        .ensure_conversation(by_phone.id, wa.id, Channel::Whatsapp, now())
        .await
        .unwrap();
    let pairs = store
        .conversations_with(wa.id, &[by_phone.id, by_bsuid.id])
        .await
        .unwrap();
    assert_eq!(pairs, vec![(by_phone.id, conversation, None)]);
    // No campaign has reached anyone: nobody can be answering one.
    assert!(store
        .contacts_in_interactions(wa.id, &[by_phone.id, by_bsuid.id])
        .await
        .unwrap()
        .is_empty());
}

async fn contacts_are_searched_by_name_and_phone(db: TestDb) {
    let store = open(&db).await;
    let mut grace = contact("+442079460958");
    grace.name = Some("Grace Hopper".into());
    let mut alan = contact("+16505551234");
    alan.name = Some("Alan 100% Turing".into());
    store.create_contact(&grace, None).await.unwrap();
    store.create_contact(&alan, None).await.unwrap();
    let search = |q: &str| {
        let store = store.clone();
        let q = q.to_owned();
        async move {
            store
                .list_contacts(
                    &ContactFilter {
                        q: Some(q),
                        owner_id: None,
                    },
                    &PageRequest::default(),
                )
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|c| c.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("hopper").await, vec![grace.id]);
    assert_eq!(search("GRACE").await, vec![grace.id]);
    assert_eq!(search("7946").await, vec![grace.id]);
    assert_eq!(search("+1 650").await, vec![alan.id]);
    assert_eq!(search("100%").await, vec![alan.id]);
    assert_eq!(
        search("%").await,
        vec![alan.id],
        "% is literal, not a wildcard"
    );
    assert!(search("nobody").await.is_empty());
}

async fn idempotency_keys_are_written_with_their_resource(db: TestDb) {
    let store = open(&db).await;
    let key = IdempotencyKey {
        scope: "token:1".into(),
        key: "abc".into(),
        request_hash: "h1".into(),
    };
    let c = contact("+442079460958");
    store.create_contact(&c, Some(&key)).await.unwrap();
    let hit = store
        .find_idempotency("token:1", "abc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.resource_id, c.id.to_string());
    assert_eq!(hit.resource_kind, "contact");
    assert_eq!(hit.request_hash, "h1");
    assert!(store
        .find_idempotency("token:2", "abc")
        .await
        .unwrap()
        .is_none());

    // A second create under the same key fails whole: no contact is left behind.
    let second = contact("+16505551234");
    assert!(matches!(
        store.create_contact(&second, Some(&key)).await,
        Err(StoreError::Conflict { field, .. }) if field == "idempotency_key"
    ));
    assert!(matches!(
        store.get_contact(second.id).await,
        Err(StoreError::NotFound)
    ));
    // A failed create records no key.
    let dup = IdempotencyKey {
        key: "def".into(),
        ..key.clone()
    };
    assert!(store
        .create_contact(&contact("+442079460958"), Some(&dup))
        .await
        .is_err());
    assert!(store
        .find_idempotency("token:1", "def")
        .await
        .unwrap()
        .is_none());
}

async fn messages_keep_a_forward_only_timeline(db: TestDb) {
    let store = open(&db).await;
    let s = whatsapp_sender("4001");
    store.create_sender(&s).await.unwrap();
    let c = contact("+442079460958");
    store.create_contact(&c, None).await.unwrap();
    let conversation = store
        .ensure_conversation(c.id, s.id, s.channel, now())
        .await
        .unwrap();
    assert_eq!(
        store
            .ensure_conversation(c.id, s.id, s.channel, now())
            .await
            .unwrap(),
        conversation,
        "one conversation per contact and sender"
    );

    let mut m = outbound(&s, &c, "hello");
    m.conversation_id = Some(conversation);
    m.provider_message_id = Some("wamid.1".into());
    m.template = Some(TemplateRef {
        name: "order_update".into(),
        locale: "en_GB".into(),
        variables: json!({"1": "Grace"}).as_object().unwrap().clone(),
    });
    m.channel_template_type = ChannelTemplateType::Template;
    store.insert_message(&m).await.unwrap();
    assert_eq!(store.get_message(m.id).await.unwrap(), m);

    let t = now();
    let step = |status, minutes| StatusEvent {
        status,
        at: t + Duration::minutes(minutes),
        error: None,
    };
    assert!(store
        .record_status(m.id, &step(DeliveryStatus::Sent, 1))
        .await
        .unwrap());
    assert!(store
        .record_status(m.id, &step(DeliveryStatus::Read, 3))
        .await
        .unwrap());
    // A late `delivered` after `read` changes nothing.
    assert!(!store
        .record_status(m.id, &step(DeliveryStatus::Delivered, 2))
        .await
        .unwrap());
    let read = store.get_message(m.id).await.unwrap();
    assert_eq!(read.status, DeliveryStatus::Read);
    let history: Vec<_> = read.status_history.iter().map(|e| e.status).collect();
    assert_eq!(
        history,
        vec![
            DeliveryStatus::Queued,
            DeliveryStatus::Sent,
            DeliveryStatus::Read
        ]
    );

    let failing = outbound(&s, &c, "will fail");
    store.insert_message(&failing).await.unwrap();
    let failure = StatusEvent {
        status: DeliveryStatus::Failed,
        at: now(),
        error: Some(MessageError {
            code: "not_on_whatsapp".into(),
            provider_code: Some("131026".into()),
            reason: "Message undeliverable".into(),
        }),
    };
    assert!(store.record_status(failing.id, &failure).await.unwrap());
    let failed = store.get_message(failing.id).await.unwrap();
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert_eq!(failed.error, failure.error);
    assert_eq!(failed.status_history[1].error, failure.error);

    // The same provider id again is a conflict naming the first message.
    let mut again = outbound(&s, &c, "dup");
    again.provider_message_id = Some("wamid.1".into());
    match store.insert_message(&again).await {
        Err(StoreError::Conflict { field, existing_id }) => {
            assert_eq!(field, "provider_message_id");
            assert_eq!(existing_id, Some(m.id.to_string()));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(matches!(
        store.record_status(MessageId::new(), &failure).await,
        Err(StoreError::NotFound)
    ));

    // History is kept: a contact or sender with messages cannot be deleted.
    assert!(matches!(
        store.delete_contact(c.id).await,
        Err(StoreError::InUse)
    ));
    assert!(matches!(
        store.delete_sender(s.id).await,
        Err(StoreError::InUse)
    ));
}

async fn messages_are_filtered_and_paged(db: TestDb) {
    let store = open(&db).await;
    let wa = whatsapp_sender("5001");
    let sms = sender(Channel::Sms, ProviderConfig::Sandbox);
    store.create_sender(&wa).await.unwrap();
    store.create_sender(&sms).await.unwrap();
    let a = contact("+442079460958");
    let b = contact("+16505551234");
    store.create_contact(&a, None).await.unwrap();
    store.create_contact(&b, None).await.unwrap();

    let mut ids = Vec::new();
    for i in 0..6 {
        let (s, c) = if i % 2 == 0 { (&wa, &a) } else { (&sms, &b) };
        let mut m = outbound(s, c, &format!("m{i}"));
        m.created_at = now() - Duration::hours(6 - i);
        if i == 5 {
            m.direction = Direction::Inbound;
            m.status = DeliveryStatus::Received;
            m.status_history[0].status = DeliveryStatus::Received;
        }
        store.insert_message(&m).await.unwrap();
        ids.push(m.id);
    }
    let list = |filter: MessageFilter, page: PageRequest| {
        let store = store.clone();
        async move { store.list_messages(&filter, &page).await.unwrap() }
    };
    let all = list(MessageFilter::default(), PageRequest::default()).await;
    assert_eq!(all.items.len(), 6);
    assert_eq!(all.items[0].id, ids[5], "newest first");
    assert!(all.items.iter().all(|m| m.status_history.len() == 1));

    let by_contact = list(
        MessageFilter {
            contact_id: Some(a.id),
            ..Default::default()
        },
        PageRequest::default(),
    )
    .await;
    assert_eq!(by_contact.items.len(), 3);
    let by_channel = list(
        MessageFilter {
            channel: Some(Channel::Sms),
            direction: Some(Direction::Inbound),
            ..Default::default()
        },
        PageRequest::default(),
    )
    .await;
    assert_eq!(
        by_channel.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[5]]
    );
    let recent = list(
        MessageFilter {
            since: Some(now() - Duration::minutes(150)),
            ..Default::default()
        },
        PageRequest::default(),
    )
    .await;
    assert_eq!(recent.items.len(), 2);
    let by_status = list(
        MessageFilter {
            status: Some(DeliveryStatus::Queued),
            sender_id: Some(wa.id),
            ..Default::default()
        },
        PageRequest::default(),
    )
    .await;
    assert_eq!(by_status.items.len(), 3);

    let first = list(
        MessageFilter::default(),
        PageRequest {
            limit: 4,
            after: None,
            order: Order::Asc,
        },
    )
    .await;
    assert_eq!(
        first.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[..4]
    );
    let second = list(
        MessageFilter::default(),
        PageRequest {
            limit: 4,
            after: first.next_after.clone(),
            order: Order::Asc,
        },
    )
    .await;
    assert_eq!(
        second.items.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[4..]
    );
    assert_eq!(second.next_after, None);
}

/// An inbound message's receipt is its row's own creation, not an event row of its own: it
/// reads back as written, alone and listed; a receipt at another moment than the row's (as
/// messages recorded before kept theirs) is stored and read back once, not twice.
async fn an_inbound_message_reads_back_with_its_receipt(db: TestDb) {
    let store = open(&db).await;
    let wa = whatsapp_sender("5002");
    store.create_sender(&wa).await.unwrap();
    let a = contact("+442079460957");
    store.create_contact(&a, None).await.unwrap();
    let inbound = |text: &str| {
        let mut m = outbound(&wa, &a, text);
        m.direction = Direction::Inbound;
        m.status = DeliveryStatus::Received;
        m.status_history[0].status = DeliveryStatus::Received;
        m
    };
    let implied = inbound("hello");
    assert_eq!(implied.status_history[0].at, implied.created_at);
    store.insert_message(&implied).await.unwrap();
    assert_eq!(store.get_message(implied.id).await.unwrap(), implied);

    let mut stored = inbound("hello again");
    stored.created_at = now() - Duration::minutes(5);
    stored.updated_at = stored.created_at;
    store.insert_message(&stored).await.unwrap();
    assert_eq!(store.get_message(stored.id).await.unwrap(), stored);

    let listed = store
        .list_messages(
            &MessageFilter {
                direction: Some(Direction::Inbound),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
    let mut found: Vec<Message> = listed.items;
    found.sort_by_key(|m| m.created_at);
    assert_eq!(found, vec![stored, implied]);
}

async fn data_survives_reopening(db: TestDb) {
    let s = whatsapp_sender("6001");
    let c = contact("+442079460958");
    {
        let store = open(&db).await;
        store.create_sender(&s).await.unwrap();
        store.create_contact(&c, None).await.unwrap();
        store.close().await;
    }
    let store = open(&db).await;
    assert_eq!(store.get_sender(s.id).await.unwrap(), s);
    assert_eq!(store.get_contact(c.id).await.unwrap(), c);
    store.ping().await.unwrap();
}

fn webhook(n: usize) -> WebhookEvent {
    WebhookEvent {
        id: MessageId::new().to_string(),
        provider: "whatsapp".into(),
        sender_id: None,
        dedupe_key: format!("digest-{n}"),
        body: format!("{{\"n\": {n}}}"),
        received_at: now(),
    }
}

/// The inbox writes a usual batch as one statement with no transaction around it, and a
/// larger one in a transaction: both keep each body once and say which were new.
async fn the_webhook_inbox_keeps_each_body_once_in_batches_of_any_size(db: TestDb) {
    let store = open(&db).await;
    let small: Vec<_> = (0..3).map(webhook).collect();
    assert_eq!(
        store.store_webhooks(&small).await.unwrap(),
        vec![true, true, true]
    );
    // Past a statement's rows: 1,100 bodies, two of them delivered before, one twice here.
    let mut large: Vec<_> = (1..1_100).map(webhook).collect();
    large.push(webhook(500));
    let fresh = store.store_webhooks(&large).await.unwrap();
    assert_eq!(fresh.len(), 1_100);
    assert!(!fresh[0] && !fresh[1], "bodies 1 and 2 were stored before");
    assert!(!fresh[1_099], "body 500 came twice in the batch");
    assert_eq!(fresh.iter().filter(|f| **f).count(), 1_097);
    assert_eq!(store.count_webhooks().await.unwrap(), 1_100);
    assert_eq!(store.count_pending_webhooks().await.unwrap(), 1_100);

    // Read in batches, each leaving out those read before (as if still being applied),
    // together they are the whole backlog in order; a webhook left out comes back once it
    // is no longer named.
    let pending = store.pending_webhooks(2_000).await.unwrap();
    let mut batches: Vec<WebhookEvent> = Vec::new();
    loop {
        let applying: Vec<&str> = batches.iter().map(|w| w.id.as_str()).collect();
        let batch = store.pending_webhooks_except(&applying, 300).await.unwrap();
        if batch.is_empty() {
            break;
        }
        batches.extend(batch);
    }
    assert_eq!(batches.len(), 1_100);
    assert_eq!(batches, pending);
    let but_first = store
        .pending_webhooks_except(&[pending[1].id.as_str()], 2)
        .await
        .unwrap();
    assert_eq!(but_first, vec![pending[0].clone(), pending[2].clone()]);

    // Marked with one outcome, then with two.
    let marked_at = now();
    let one: Vec<(String, String)> = pending[..10]
        .iter()
        .map(|w| (w.id.clone(), "messages=1".to_owned()))
        .collect();
    store
        .mark_webhooks_processed(&one, marked_at)
        .await
        .unwrap();
    let two: Vec<(String, String)> = pending[10..]
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id.clone(), format!("messages={}", i % 2)))
        .collect();
    store
        .mark_webhooks_processed(&two, marked_at)
        .await
        .unwrap();
    assert_eq!(store.count_pending_webhooks().await.unwrap(), 0);
    assert!(!store.any_pending_webhooks().await.unwrap());
    assert!(store.pending_webhooks(10).await.unwrap().is_empty());
    assert_eq!(
        store.webhook_outcome(&pending[0].id).await.unwrap(),
        Some((marked_at, "messages=1".to_owned()))
    );
    assert_eq!(
        store.webhook_outcome(&pending[11].id).await.unwrap(),
        Some((marked_at, "messages=1".to_owned()))
    );
    // Marked again (applied twice, by two nodes say): the first outcome stands.
    store
        .mark_webhooks_processed(&[(pending[0].id.clone(), "other".to_owned())], now())
        .await
        .unwrap();
    assert_eq!(
        store.webhook_outcome(&pending[0].id).await.unwrap(),
        Some((marked_at, "messages=1".to_owned()))
    );
    // A body delivered again is not pending again.
    let again: Vec<_> = (0..3).map(webhook).collect();
    assert_eq!(
        store.store_webhooks(&again).await.unwrap(),
        vec![false, false, false]
    );
    assert!(!store.any_pending_webhooks().await.unwrap());
    // A new one is, and has no outcome yet.
    let fresh = webhook(5_000);
    assert!(store.store_webhook(&fresh).await.unwrap());
    assert_eq!(
        store.pending_webhooks(10).await.unwrap(),
        vec![fresh.clone()]
    );
    assert_eq!(store.webhook_outcome(&fresh.id).await.unwrap(), None);
}

async fn the_log_is_copied_into_the_database_beside_the_writer(db: TestDb) {
    let store = open(&db).await;
    let c = contact("+442079460959");
    store.create_contact(&c, None).await.unwrap();
    let pass = store.checkpoint().await.unwrap();
    if db.is_postgres() {
        assert_eq!(pass, None);
    } else {
        let pass = pass.expect("SQLite checkpoints");
        // With no reader holding an older snapshot, everything the log holds is copied.
        assert!(pass.log_pages > 0, "{pass:?}");
        assert_eq!(pass.copied_pages, pass.log_pages);
        // A write after it goes on as before.
        let other = contact("+442079460960");
        store.create_contact(&other, None).await.unwrap();
        assert_eq!(store.get_contact(other.id).await.unwrap(), other);
    }
    assert_eq!(store.get_contact(c.id).await.unwrap(), c);
}

both_backends!(
    the_webhook_inbox_keeps_each_body_once_in_batches_of_any_size,
    the_log_is_copied_into_the_database_beside_the_writer,
    senders_round_trip_and_conflict_on_provider_identity,
    users_keep_their_permitted_senders,
    users_page_through_in_both_orders,
    tokens_are_found_by_hash_and_go_with_their_user,
    contacts_are_unique_by_every_address,
    a_batch_finds_its_writers_at_once,
    contacts_are_searched_by_name_and_phone,
    idempotency_keys_are_written_with_their_resource,
    messages_keep_a_forward_only_timeline,
    messages_are_filtered_and_paged,
    data_survives_reopening,
    an_inbound_message_reads_back_with_its_receipt,
);
