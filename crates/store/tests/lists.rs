//! Contact lists on both backends: members by id and by filter, and the keyset campaigns read.

use ::time::{Duration, OffsetDateTime};
use serde_json::json;
use switchboard_core::consent::{ConsentEvent, ConsentSource, ConsentStatus};
use switchboard_core::contact::{Contact, Locale};
use switchboard_core::list::{ContactList, ListFilter};
use switchboard_core::time::truncate_to_millis;
use switchboard_core::*;
use switchboard_store::{Store, StoreError};
use switchboard_testkit::{both_backends, TestDb};

fn now() -> OffsetDateTime {
    truncate_to_millis(OffsetDateTime::now_utc())
}

fn contact(phone: &str, locale: &str, fields: serde_json::Value) -> Contact {
    let t = now();
    Contact {
        id: ContactId::new(),
        name: Some(format!("Customer {phone}")),
        phone: Some(PhoneNumber::parse("phone", phone).unwrap()),
        whatsapp_user_id: None,
        messenger_psid: None,
        locale: Some(Locale::parse("locale", locale).unwrap()),
        owner_id: None,
        fields: fields.as_object().unwrap().clone(),
        created_at: t,
        updated_at: t,
    }
}

fn list(name: &str, filter: Option<ListFilter>) -> ContactList {
    let t = now();
    ContactList {
        id: ListId::new(),
        name: name.to_owned(),
        description: None,
        filter,
        created_by: Some("token:test".to_owned()),
        created_at: t,
        updated_at: t,
    }
}

fn filter(value: serde_json::Value) -> ListFilter {
    serde_json::from_value(value).unwrap()
}

fn consent(contact: ContactId, status: ConsentStatus, at: OffsetDateTime) -> ConsentEvent {
    ConsentEvent {
        id: ConsentEventId::new(),
        contact_id: contact,
        channel: Channel::Whatsapp,
        status,
        source: ConsentSource::Agent,
        evidence: Some("asked".to_owned()),
        actor: "token:test".to_owned(),
        at,
    }
}

async fn saved(store: &Store, contacts: &[Contact]) {
    for c in contacts {
        store.create_contact(c, None).await.unwrap();
    }
}

async fn members_by_id_page_in_contact_order(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let people: Vec<Contact> = (1..=5)
        .map(|i| contact(&format!("+44207946000{i}"), "en", json!({})))
        .collect();
    saved(&store, &people).await;
    let ids: Vec<ContactId> = people.iter().map(|c| c.id).collect();

    let first = list("First", None);
    assert_eq!(
        store.create_list(&first, &[ids[3], ids[0]]).await.unwrap(),
        2
    );
    assert_eq!(
        store
            .add_list_members(first.id, &[ids[0], ids[1], ids[4]], now())
            .await
            .unwrap(),
        2
    );
    let summary = store.get_list(first.id).await.unwrap();
    assert_eq!(summary.member_count, 4);
    // Adding members marks the list changed.
    assert!(summary.list.updated_at >= first.updated_at);
    assert_eq!(
        ContactList {
            updated_at: first.updated_at,
            ..summary.list
        },
        first
    );

    let mut read = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_member_ids(first.id, after, 3).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().copied();
        read.extend(page);
    }
    assert_eq!(read, [ids[0], ids[1], ids[3], ids[4]]);

    store.remove_list_member(first.id, ids[1]).await.unwrap();
    assert!(matches!(
        store.remove_list_member(first.id, ids[1]).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.count_list_members(first.id).await.unwrap(), 3);
    assert_eq!(
        store
            .missing_contacts(&[ids[2], ContactId::new()])
            .await
            .unwrap()
            .len(),
        1
    );

    // A taken name names its field; an unknown list is not found.
    assert!(matches!(
        store.create_list(&list("First", None), &[]).await,
        Err(StoreError::Conflict { field, .. }) if field == "name"
    ));
    assert_eq!(
        store.list_id_by_name("First").await.unwrap(),
        Some(first.id)
    );
    assert!(matches!(
        store
            .add_list_members(ListId::new(), &[ids[0]], now())
            .await,
        Err(StoreError::NotFound)
    ));

    // Deleting a contact or the list removes the memberships, nothing else.
    store.delete_contact(ids[0]).await.unwrap();
    assert_eq!(store.count_list_members(first.id).await.unwrap(), 2);
    store.delete_list(first.id).await.unwrap();
    assert!(!store.list_exists(first.id).await.unwrap());
    assert_eq!(store.count_list_members(first.id).await.unwrap(), 0);
    store.get_contact(ids[3]).await.unwrap();
}

async fn filters_select_contacts_in_one_statement(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let people = vec![
        contact(
            "+442079460001",
            "en_GB",
            json!({"plan": "gold", "vip": true}),
        ),
        contact(
            "+442079460002",
            "en_US",
            json!({"plan": "silver", "vip": false}),
        ),
        contact("+33142685300", "fr", json!({"plan": "gold"})),
        contact("+16505551234", "en", json!({"plan": 3})),
    ];
    saved(&store, &people).await;
    let t = now();
    // Opted in, then out at the very same millisecond: the later entry (by id) stands.
    store
        .append_consent(&consent(people[1].id, ConsentStatus::OptedIn, t))
        .await
        .unwrap();
    store
        .append_consent(&consent(people[1].id, ConsentStatus::OptedOut, t))
        .await
        .unwrap();
    // Opted out long ago, in since.
    store
        .append_consent(&consent(
            people[0].id,
            ConsentStatus::OptedOut,
            t - Duration::days(30),
        ))
        .await
        .unwrap();
    store
        .append_consent(&consent(people[0].id, ConsentStatus::OptedIn, t))
        .await
        .unwrap();

    let cases = [
        (json!({}), vec![0, 1, 2, 3]),
        (json!({"locale": "en"}), vec![0, 1, 3]),
        (json!({"locale": "en_GB"}), vec![0]),
        (json!({"fields": {"plan": "gold"}}), vec![0, 2]),
        (json!({"fields": {"plan": 3}}), vec![3]),
        (json!({"fields": {"vip": true}}), vec![0]),
        (json!({"fields": {"vip": false}}), vec![1]),
        (json!({"q": "079460002"}), vec![1]),
        (json!({"q": "customer +33"}), vec![2]),
        (json!({"opted_in": "whatsapp"}), vec![0]),
        (json!({"opted_in": "sms"}), vec![]),
        (json!({"locale": "en", "fields": {"plan": "gold"}}), vec![0]),
    ];
    for (i, (criteria, expected)) in cases.into_iter().enumerate() {
        let made = list(&format!("case {i}"), Some(filter(criteria.clone())));
        let added = store.create_list(&made, &[]).await.unwrap();
        let mut members = store.list_member_ids(made.id, None, 100).await.unwrap();
        members.sort();
        let mut wanted: Vec<ContactId> = expected.iter().map(|&j| people[j].id).collect();
        wanted.sort();
        assert_eq!(members, wanted, "{criteria}");
        assert_eq!(added, wanted.len() as u64, "{criteria}");
        assert_eq!(
            store.get_list(made.id).await.unwrap().list.filter,
            made.filter
        );
    }

    // An existing list takes a filter's contacts once.
    let grown = list("grown", None);
    store.create_list(&grown, &[people[0].id]).await.unwrap();
    let added = store
        .add_list_members_by_filter(grown.id, &filter(json!({"locale": "en"})), now())
        .await
        .unwrap();
    assert_eq!(added, 2);
    assert!(matches!(
        store
            .add_list_members_by_filter(ListId::new(), &filter(json!({})), now())
            .await,
        Err(StoreError::NotFound)
    ));
}

both_backends!(
    members_by_id_page_in_contact_order,
    filters_select_contacts_in_one_statement,
);
