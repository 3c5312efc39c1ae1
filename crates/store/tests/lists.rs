//! Contact lists on both backends: members by id and by filter, and the keyset campaigns read.

use ::time::{Duration, OffsetDateTime};
use serde_json::json;
use switchboard_core::consent::{ConsentEvent, ConsentSource, ConsentStatus};
use switchboard_core::contact::{Contact, Locale};
use switchboard_core::list::{ContactList, ListFilter};
use switchboard_core::time::truncate_to_millis;
use switchboard_core::*;
use switchboard_store::imports::{ImportOptIn, ImportRow, OptInOutcome, RowOutcome};
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

fn row(line: u64, phone: Option<&str>, psid: Option<&str>, name: &str) -> ImportRow {
    ImportRow {
        line,
        name: Some(name.to_owned()),
        phone: phone.map(|p| PhoneNumber::parse("phone", p).unwrap()),
        whatsapp_user_id: None,
        messenger_psid: psid.map(|p| MessengerPsid::parse("messenger_psid", p).unwrap()),
        locale: None,
        fields: json!({"batch": line.to_string()})
            .as_object()
            .unwrap()
            .clone(),
        opt_in: Some(ImportOptIn {
            channel: Channel::Whatsapp,
            at: now() - Duration::days(1),
            evidence: format!("file.csv, line {line}: web"),
        }),
    }
}

async fn an_import_batch_matches_contacts_by_any_address(db: TestDb) {
    let store = Store::open(db.url()).await.unwrap();
    let by_phone = contact("+442079460001", "en", json!({"plan": "gold"}));
    let mut by_psid = contact("+442079460002", "en", json!({}));
    by_psid.phone = None;
    by_psid.messenger_psid = Some(MessengerPsid::parse("p", "1254459154682919").unwrap());
    let stopped = contact("+442079460003", "en", json!({}));
    saved(
        &store,
        &[by_phone.clone(), by_psid.clone(), stopped.clone()],
    )
    .await;
    store
        .append_consent(&consent(stopped.id, ConsentStatus::OptedOut, now()))
        .await
        .unwrap();
    let target = list("Imported", None);
    store.create_list(&target, &[]).await.unwrap();

    let rows = [
        row(2, Some("+442079460001"), None, "Phone match"),
        row(
            3,
            Some("+442079460009"),
            Some("1254459154682919"),
            "Psid match",
        ),
        row(
            4,
            Some("+442079460001"),
            Some("1254459154682919"),
            "Two contacts",
        ),
        row(5, Some("+442079460010"), None, "New"),
        row(6, None, Some("999"), "New by psid"),
        row(7, Some("+442079460010"), Some("999"), "Both new ones"),
        row(8, Some("+442079460010"), None, "New again"),
        row(9, Some("+442079460003"), None, "Stopped"),
    ];
    let outcome = store
        .import_contacts(&rows, Some(target.id), "token:test", now())
        .await
        .unwrap();
    let saved_as = |i: usize| match &outcome.rows[i] {
        RowOutcome::Saved {
            contact, created, ..
        } => (*contact, *created),
        other => panic!("row {i}: {other:?}"),
    };
    assert_eq!(saved_as(0), (by_phone.id, false));
    assert_eq!(saved_as(1), (by_psid.id, false));
    assert!(
        matches!(&outcome.rows[2], RowOutcome::Rejected(r) if r.contains("phone belongs to one contact and the messenger_psid to another"))
    );
    let (new, created) = saved_as(3);
    assert!(created);
    let (by_new_psid, created) = saved_as(4);
    assert!(created);
    // Matches two contacts made by this very batch: refused like existing ones.
    assert!(matches!(&outcome.rows[5], RowOutcome::Rejected(_)));
    assert_eq!(saved_as(6), (new, false));
    assert!(matches!(
        outcome.rows[7],
        RowOutcome::Saved {
            opt_in: OptInOutcome::OptedOutBefore(Channel::Whatsapp),
            ..
        }
    ));
    assert_eq!(outcome.added_to_list, 5);

    // Matched contacts keep their addresses and merge the row's fields; the later row wins.
    let merged = store.get_contact(by_phone.id).await.unwrap();
    assert_eq!(merged.name.as_deref(), Some("Phone match"));
    assert_eq!(merged.fields["plan"], "gold");
    assert_eq!(merged.fields["batch"], "2");
    let psid_holder = store.get_contact(by_psid.id).await.unwrap();
    assert_eq!(psid_holder.phone, None);
    let made = store.get_contact(new).await.unwrap();
    assert_eq!(made.name.as_deref(), Some("New again"));
    assert_eq!(made.fields["batch"], "8");
    store.get_contact(by_new_psid).await.unwrap();

    // Opt-ins are in the ledger with their evidence, except the opted-out contact's.
    let ledger = store
        .consent_events(new, Some(Channel::Whatsapp))
        .await
        .unwrap();
    assert_eq!(ledger.len(), 2);
    assert_eq!(ledger[0].source, ConsentSource::Import);
    assert_eq!(ledger[0].actor, "token:test");
    assert!(ledger
        .iter()
        .any(|e| e.evidence.as_deref() == Some("file.csv, line 5: web")));
    let stopped_ledger = store.consent_events(stopped.id, None).await.unwrap();
    assert_eq!(stopped_ledger.len(), 1);

    // An import into a list that is gone writes nothing.
    assert!(matches!(
        store
            .import_contacts(&rows[3..4], Some(ListId::new()), "token:test", now())
            .await,
        Err(StoreError::NotFound)
    ));
}

both_backends!(
    members_by_id_page_in_contact_order,
    filters_select_contacts_in_one_statement,
    an_import_batch_matches_contacts_by_any_address,
);
