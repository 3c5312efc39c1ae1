use serde_json::{json, Value};
use switchboard_testkit::{both_backends, TestDb};

use crate::helpers::{Answer, TestApp};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every member id of a list, following `next_cursor` two at a time.
async fn all_members(app: &TestApp, list: &str, token: &str) -> Vec<String> {
    let mut members = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/lists/{list}/contacts?limit=2&cursor={c}"),
            None => format!("/api/v1/lists/{list}/contacts?limit=2"),
        };
        let page = app.get(&path, token).await;
        members.extend(ids(page.ok(200)));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return members,
        }
    }
}

async fn import(app: &TestApp, list: &str, csv: impl Into<Vec<u8>>) -> Answer {
    let response = app
        .client
        .post(format!(
            "{}/api/v1/lists/{list}/import?file_name=customers.csv",
            app.base
        ))
        .bearer_auth(&app.admin)
        .header("content-type", "text/csv; charset=utf-8")
        .body(csv.into())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap();
    Answer {
        status,
        headers,
        body,
    }
}

async fn new_list(app: &TestApp, name: &str) -> String {
    app.post("/api/v1/lists", &app.admin, json!({"name": name}))
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn lists_are_made_by_hand_and_paged(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let mut contacts = Vec::new();
    for phone in [
        "+442079460001",
        "+442079460002",
        "+442079460003",
        "+442079460004",
    ] {
        contacts.push(app.contact(phone).await);
    }
    let (a, b, c, d) = (
        contacts[0].as_str(),
        contacts[1].as_str(),
        contacts[2].as_str(),
        contacts[3].as_str(),
    );

    let created = app
        .post(
            "/api/v1/lists",
            &app.admin,
            json!({"name": "VIP", "description": "Our best customers",
                   "contact_ids": [a, b, a]}),
        )
        .await;
    let list = created.ok(201).clone();
    assert_eq!(list["name"], "VIP");
    assert_eq!(list["description"], "Our best customers");
    assert_eq!(list["member_count"], 2);
    assert_eq!(list["filter"], Value::Null);
    assert!(list["created_by"].as_str().unwrap().starts_with("token:"));
    assert!(list["created_at"].as_str().unwrap().ends_with('Z'));
    let id = list["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/lists/{id}"), &app.admin)
            .await
            .ok(200)["member_count"],
        2
    );

    let added = app
        .post(
            &format!("/api/v1/lists/{id}/contacts"),
            &app.admin,
            json!({"contact_ids": [c, a, d]}),
        )
        .await;
    assert_eq!(added.ok(200), &json!({"added": 2, "member_count": 4}));

    // Newest contact first, two to a page, every member once.
    let members = all_members(&app, id, &app.admin).await;
    assert_eq!(members, [d, c, b, a]);
    let ascending = app
        .get(
            &format!("/api/v1/lists/{id}/contacts?order=asc"),
            &app.admin,
        )
        .await;
    assert_eq!(ids(ascending.ok(200)), [a, b, c, d]);
    assert_eq!(ascending.body["items"][0]["phone"], "+442079460001");

    app.delete(&format!("/api/v1/lists/{id}/contacts/{b}"), &app.admin)
        .await
        .ok(204);
    app.delete(&format!("/api/v1/lists/{id}/contacts/{b}"), &app.admin)
        .await
        .problem(404, "not_found");
    assert_eq!(all_members(&app, id, &app.admin).await, [d, c, a]);

    // The campaign's way through a list: ids in ascending order, by keyset.
    let store = app.store();
    let list_id = id.parse().unwrap();
    let first = store.list_member_ids(list_id, None, 2).await.unwrap();
    let rest = store
        .list_member_ids(list_id, first.last().copied(), 2)
        .await
        .unwrap();
    let read: Vec<String> = first.iter().chain(&rest).map(|i| i.to_string()).collect();
    assert_eq!(read, [a, c, d]);
    assert_eq!(store.count_list_members(list_id).await.unwrap(), 3);

    // Lists are paged like everything else.
    let second = new_list(&app, "Second").await;
    let third = new_list(&app, "Third").await;
    let page = app.get("/api/v1/lists?limit=2", &app.admin).await;
    assert_eq!(ids(page.ok(200)), [third.as_str(), second.as_str()]);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let page = app
        .get(
            &format!("/api/v1/lists?limit=2&cursor={cursor}"),
            &app.admin,
        )
        .await;
    assert_eq!(ids(page.ok(200)), [id]);
    assert_eq!(page.body["items"][0]["member_count"], 3);
    assert_eq!(page.body["next_cursor"], Value::Null);

    // Deleting a list keeps its contacts.
    app.delete(&format!("/api/v1/lists/{id}"), &app.admin)
        .await
        .ok(204);
    app.get(&format!("/api/v1/lists/{id}"), &app.admin)
        .await
        .problem(404, "not_found");
    app.get(&format!("/api/v1/contacts/{a}"), &app.admin)
        .await
        .ok(200);
    // A deleted contact leaves the lists it was in.
    app.post(
        &format!("/api/v1/lists/{second}/contacts"),
        &app.admin,
        json!({"contact_ids": [a]}),
    )
    .await
    .ok(200);
    app.delete(&format!("/api/v1/contacts/{a}"), &app.admin)
        .await
        .ok(204);
    assert!(all_members(&app, &second, &app.admin).await.is_empty());
}

async fn record_consent(app: &TestApp, contact: &str, channel: &str, status: &str) {
    app.post(
        &format!("/api/v1/contacts/{contact}/consent"),
        &app.admin,
        json!({"channel": channel, "status": status, "source": "website",
               "evidence": "https://shop.example/signup"}),
    )
    .await
    .ok(201);
}

/// The members of a new list made with `filter`, sorted.
async fn members_of(app: &TestApp, filter: Value) -> Vec<String> {
    let name = format!("list {}", crate::helpers::uuid_fragment());
    let created = app
        .post(
            "/api/v1/lists",
            &app.admin,
            json!({"name": name, "filter": filter}),
        )
        .await;
    let list = created.ok(201).clone();
    let mut members = all_members(app, list["id"].as_str().unwrap(), &app.admin).await;
    members.sort();
    assert_eq!(list["member_count"], members.len(), "{list}");
    members
}

async fn lists_are_made_by_filter(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let (owner, _) = app.user_with_token("agent").await;
    let person = |name: &str, phone: &str, locale: Option<&str>, plan: Option<Value>| {
        let mut body = json!({"name": name, "phone": phone});
        if let Some(locale) = locale {
            body["locale"] = json!(locale);
        }
        if let Some(plan) = plan {
            body["fields"] = json!({"plan": plan});
        }
        body
    };
    let mut ids = Vec::new();
    for body in [
        person(
            "Ada Lovelace",
            "+442079460001",
            Some("en_GB"),
            Some(json!("gold")),
        ),
        person(
            "Alan Turing",
            "+442079460002",
            Some("en_US"),
            Some(json!("silver")),
        ),
        person(
            "Marie Curie",
            "+33142685300",
            Some("fr"),
            Some(json!("gold")),
        ),
        person("Grace Hopper", "+16505551234", Some("en"), Some(json!(3))),
        person("Nobody", "+4930901820", None, None),
    ] {
        let created = app.post("/api/v1/contacts", &app.admin, body).await;
        ids.push(created.ok(201)["id"].as_str().unwrap().to_owned());
    }
    app.patch(
        &format!("/api/v1/contacts/{}", ids[2]),
        &app.admin,
        json!({"owner_id": owner}),
    )
    .await
    .ok(200);
    record_consent(&app, &ids[0], "whatsapp", "opted_in").await;
    record_consent(&app, &ids[1], "whatsapp", "opted_in").await;
    record_consent(&app, &ids[1], "whatsapp", "opted_out").await;
    record_consent(&app, &ids[3], "sms", "opted_in").await;

    let pick = |which: &[usize]| {
        let mut v: Vec<String> = which.iter().map(|&i| ids[i].clone()).collect();
        v.sort();
        v
    };
    assert_eq!(members_of(&app, json!({})).await, pick(&[0, 1, 2, 3, 4]));
    assert_eq!(members_of(&app, json!({"q": "an"})).await, pick(&[1]));
    assert_eq!(
        members_of(&app, json!({"q": "+44 20"})).await,
        pick(&[0, 1])
    );
    assert_eq!(
        members_of(&app, json!({"locale": "en"})).await,
        pick(&[0, 1, 3])
    );
    assert_eq!(
        members_of(&app, json!({"locale": "en-gb"})).await,
        pick(&[0])
    );
    assert_eq!(
        members_of(&app, json!({"owner_id": owner})).await,
        pick(&[2])
    );
    assert_eq!(
        members_of(&app, json!({"fields": {"plan": "gold"}})).await,
        pick(&[0, 2])
    );
    // A number is not the string of its digits.
    assert_eq!(
        members_of(&app, json!({"fields": {"plan": 3}})).await,
        pick(&[3])
    );
    assert!(members_of(&app, json!({"fields": {"plan": "3"}}))
        .await
        .is_empty());
    // Opted in now: not Alan, who opted out since, nor Grace, who opted in to SMS only.
    assert_eq!(
        members_of(&app, json!({"opted_in": "whatsapp"})).await,
        pick(&[0])
    );
    assert_eq!(
        members_of(&app, json!({"opted_in": "sms"})).await,
        pick(&[3])
    );
    assert_eq!(
        members_of(
            &app,
            json!({"locale": "en", "fields": {"plan": "gold"}, "opted_in": "whatsapp"})
        )
        .await,
        pick(&[0])
    );

    // A filter and named contacts together; the filter is kept on the list.
    let both = app
        .post(
            "/api/v1/lists",
            &app.admin,
            json!({"name": "Gold and Nobody", "filter": {"fields": {"plan": "gold"}},
                   "contact_ids": [ids[4], ids[0]]}),
        )
        .await;
    let both = both.ok(201);
    assert_eq!(both["member_count"], 3);
    assert_eq!(both["filter"], json!({"fields": {"plan": "gold"}}));
    let fetched = app
        .get(
            &format!("/api/v1/lists/{}", both["id"].as_str().unwrap()),
            &app.admin,
        )
        .await;
    assert_eq!(
        fetched.ok(200)["filter"],
        json!({"fields": {"plan": "gold"}})
    );

    // An existing list takes the contacts of a filter too.
    let grown = app
        .post(
            &format!("/api/v1/lists/{}/contacts", both["id"].as_str().unwrap()),
            &app.admin,
            json!({"filter": {"locale": "en"}}),
        )
        .await;
    assert_eq!(grown.ok(200), &json!({"added": 2, "member_count": 5}));
}

async fn lists_are_imported_from_csv(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let existing = app.contact("+442079460001").await;
    let opted_out = app.contact("+442079460005").await;
    app.post(
        &format!("/api/v1/contacts/{opted_out}/consent"),
        &app.admin,
        json!({"channel": "whatsapp", "status": "opted_out", "source": "agent"}),
    )
    .await
    .ok(201);
    let list = new_list(&app, "Spring campaign").await;
    let csv = "\u{feff}Name,Phone,Locale,Plan,opt_in_source,opt_in_at\n\
               Ada,+44 20 7946 0958,en-gb,gold,website signup,2024-05-01\n\
               Bad Number,12345,,,,\n\
               \"Grace, Admiral\",+442079460001,,silver,,\n\
               Future,+442079460003,,,shop,2999-01-01\n\
               Short,+442079460004\n\
               Ada again,0044 20 7946 0958,,platinum,,\n\
               \n\
               Stopped,+442079460005,,,paper form,2024-01-02T10:00:00Z\n\
               No source,+442079460006,,,,2024-01-02\n";
    let answer = import(&app, &list, csv).await;
    let report = answer.ok(200).clone();
    assert_eq!(report["rows"], 8, "{report:#}");
    assert_eq!(report["created"], 1, "{report:#}");
    assert_eq!(report["updated"], 2, "{report:#}");
    assert_eq!(report["duplicates"], 1, "{report:#}");
    assert_eq!(report["opt_ins"], 1, "{report:#}");
    assert_eq!(report["added_to_list"], 3, "{report:#}");
    assert_eq!(report["member_count"], 3, "{report:#}");
    assert_eq!(report["failed"], 5, "{report:#}");
    let errors: Vec<(u64, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let lines: Vec<u64> = errors.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [3, 5, 6, 9, 10], "{errors:?}");
    assert!(
        errors[0].1.contains("international phone number"),
        "{errors:?}"
    );
    assert_eq!(errors[1].1, "opt_in_at: is in the future");
    assert!(errors[2].1.contains("the row has 2 columns"), "{errors:?}");
    assert!(
        errors[3].1.contains("opted out of whatsapp earlier"),
        "{errors:?}"
    );
    assert!(errors[4].1.starts_with("opt_in_source"), "{errors:?}");

    // Both spellings of one number are one contact, in E.164, with the later row's values.
    let found = app.get("/api/v1/contacts?q=Ada", &app.admin).await;
    let ada = found.ok(200)["items"][0].clone();
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(ada["phone"], "+442079460958");
    assert_eq!(ada["name"], "Ada again");
    assert_eq!(ada["locale"], "en_GB");
    assert_eq!(ada["fields"]["plan"], "platinum");
    let ada_id = ada["id"].as_str().unwrap();
    let ledger = app
        .get(&format!("/api/v1/contacts/{ada_id}/consent"), &app.admin)
        .await;
    let ledger = ledger.ok(200).clone();
    assert_eq!(ledger["current"]["whatsapp"], "opted_in");
    let event = &ledger["events"][0];
    assert_eq!(event["source"], "import");
    assert_eq!(event["evidence"], "customers.csv, line 2: website signup");
    assert_eq!(event["at"], "2024-05-01T00:00:00Z");

    // The existing contact was updated in place and joined the list.
    let grace = app
        .get(&format!("/api/v1/contacts/{existing}"), &app.admin)
        .await;
    assert_eq!(grace.ok(200)["name"], "Grace, Admiral");
    assert_eq!(grace.body["fields"]["plan"], "silver");
    // The opted-out contact was saved and listed, and is still opted out.
    let stopped = app
        .get(&format!("/api/v1/contacts/{opted_out}/consent"), &app.admin)
        .await;
    assert_eq!(stopped.ok(200)["current"]["whatsapp"], "opted_out");
    let mut members = all_members(&app, &list, &app.admin).await;
    members.sort();
    let mut expected = vec![existing.clone(), opted_out.clone(), ada_id.to_owned()];
    expected.sort();
    assert_eq!(members, expected);

    // The same file again changes nothing but the counts.
    let again = import(&app, &list, csv).await;
    assert_eq!(again.ok(200)["created"], 0);
    assert_eq!(again.body["updated"], 3);
    assert_eq!(again.body["duplicates"], 1);
    assert_eq!(again.body["added_to_list"], 0);
    assert_eq!(again.body["member_count"], 3);
}

/// A file bigger than a batch: repeats across batches and within one are one contact each.
async fn large_imports_deduplicate_across_batches(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let list = new_list(&app, "Everyone").await;
    let mut csv = String::from("phone,name,opt_in_source\n");
    for i in 0..1_200 {
        csv.push_str(&format!("+1212555{:04},Person {i},web\n", 2000 + i));
    }
    // The first 150 again (another batch), and one twice in the same batch.
    for i in 0..150 {
        csv.push_str(&format!("+1 212 555 {:04},Person {i} again,\n", 2000 + i));
    }
    csv.push_str("+12125553199,Last,\n");
    let report = import(&app, &list, csv).await;
    let report = report.ok(200);
    assert_eq!(report["rows"], 1_351, "{report:#}");
    assert_eq!(report["created"], 1_200, "{report:#}");
    assert_eq!(report["updated"], 0, "{report:#}");
    assert_eq!(report["duplicates"], 151, "{report:#}");
    assert_eq!(report["opt_ins"], 1_200, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(report["member_count"], 1_200, "{report:#}");
    let renamed = app.get("/api/v1/contacts?q=12125552007", &app.admin).await;
    assert_eq!(renamed.ok(200)["items"].as_array().unwrap().len(), 1);
    assert_eq!(renamed.body["items"][0]["name"], "Person 7 again");
}

/// Lines are counted as a spreadsheet shows them: CRLF endings, line breaks inside quoted
/// fields, blank lines and a last row without a line ending.
async fn import_errors_give_the_lines_of_the_file(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let by_phone = app.contact("+442079460001").await;
    let by_psid = app
        .post(
            "/api/v1/contacts",
            &app.admin,
            json!({"messenger_psid": "1254459154682919"}),
        )
        .await
        .ok(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = new_list(&app, "Lines").await;
    let csv = "phone,name,messenger_psid\r\n\
               +442079460002,\"Two\r\nlines\",\r\n\
               \r\n\
               nonsense,Bad,\r\n\
               +442079460001,Both,1254459154682919\r\n\
               +442079460003,\"Last\nrow\",x";
    let report = import(&app, &list, csv).await;
    let report = report.ok(200);
    let lines: Vec<u64> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [5, 6, 7], "{report:#}");
    assert_eq!(
        report["errors"][1]["reason"],
        "the phone belongs to one contact and the messenger_psid to another; fix the row or the \
         contacts"
    );
    assert!(
        report["errors"][2]["reason"]
            .as_str()
            .unwrap()
            .contains("Messenger page-scoped id"),
        "{report:#}"
    );
    assert_eq!(report["created"], 1, "{report:#}");
    assert_eq!(report["member_count"], 1, "{report:#}");
    // The refused row changed neither contact.
    let phone_holder = app
        .get(&format!("/api/v1/contacts/{by_phone}"), &app.admin)
        .await;
    assert_eq!(phone_holder.ok(200)["name"], "Customer");
    assert_eq!(phone_holder.body["messenger_psid"], Value::Null);
    let psid_holder = app
        .get(&format!("/api/v1/contacts/{by_psid}"), &app.admin)
        .await;
    assert_eq!(psid_holder.ok(200)["phone"], Value::Null);
    let two = app.get("/api/v1/contacts?q=442079460002", &app.admin).await;
    assert_eq!(two.ok(200)["items"][0]["name"], "Two\r\nlines");
}

async fn list_errors_name_their_field(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let contact = app.contact("+442079460001").await;
    app.post("/api/v1/lists", &app.admin, json!({}))
        .await
        .problem(422, "required");
    let nameless = app
        .post("/api/v1/lists", &app.admin, json!({"name": "  "}))
        .await;
    assert_eq!(nameless.problem(422, "required")["field"], "name");

    let first = new_list(&app, "Newsletter").await;
    let taken = app
        .post("/api/v1/lists", &app.admin, json!({"name": "Newsletter"}))
        .await;
    let problem = taken.problem(409, "duplicate_list");
    assert_eq!(problem["field"], "name");
    assert_eq!(problem["existing_id"], first.as_str());

    let ghost = "01900000-0000-7000-8000-000000000000";
    let unknown = app
        .post(
            "/api/v1/lists",
            &app.admin,
            json!({"name": "Ghosts", "contact_ids": [contact, ghost]}),
        )
        .await;
    assert_eq!(
        unknown.problem(422, "unknown_reference")["field"],
        "contact_ids[1]"
    );
    let malformed = app
        .post(
            "/api/v1/lists",
            &app.admin,
            json!({"name": "Ghosts", "contact_ids": ["nope"]}),
        )
        .await;
    assert_eq!(
        malformed.problem(422, "invalid_field")["field"],
        "contact_ids[0]"
    );
    let bad_filter = app
        .post(
            "/api/v1/lists",
            &app.admin,
            json!({"name": "Bad", "filter": {"fields": {"plan": null}, "q": ""}}),
        )
        .await;
    let fields: Vec<&str> = bad_filter.problem(422, "invalid_value")["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["filter.q", "filter.fields.plan"]);
    let unknown_criterion = app
        .post(
            "/api/v1/lists",
            &app.admin,
            json!({"name": "Bad", "filter": {"country": "FR"}}),
        )
        .await;
    unknown_criterion.problem(422, "invalid_field");
    let bad_channel = app
        .post(
            "/api/v1/lists",
            &app.admin,
            json!({"name": "Bad", "filter": {"opted_in": "fax"}}),
        )
        .await;
    assert_eq!(
        bad_channel.problem(422, "invalid_field")["field"],
        "filter.opted_in"
    );
    // Nothing was made by the refused requests.
    let lists = app.get("/api/v1/lists", &app.admin).await;
    assert_eq!(lists.ok(200)["items"].as_array().unwrap().len(), 1);

    let add = |body: Value| {
        let app = &app;
        let first = first.clone();
        async move {
            app.post(&format!("/api/v1/lists/{first}/contacts"), &app.admin, body)
                .await
        }
    };
    assert_eq!(
        add(json!({"contact_ids": [ghost]}))
            .await
            .problem(422, "unknown_reference")["field"],
        "contact_ids[0]"
    );
    assert_eq!(
        add(json!({"contact_ids": []}))
            .await
            .problem(422, "required")["field"],
        "contact_ids"
    );
    assert_eq!(
        add(json!({"filter": {"q": ""}}))
            .await
            .problem(422, "invalid_value")["field"],
        "filter.q"
    );
    app.post(
        &format!("/api/v1/lists/{ghost}/contacts"),
        &app.admin,
        json!({"contact_ids": [contact]}),
    )
    .await
    .problem(404, "not_found");
    app.get("/api/v1/lists/not-an-id", &app.admin)
        .await
        .problem(404, "not_found");
    app.get(&format!("/api/v1/lists/{ghost}/contacts"), &app.admin)
        .await
        .problem(404, "not_found");
    app.delete(&format!("/api/v1/lists/{ghost}"), &app.admin)
        .await
        .problem(404, "not_found");

    // Imports: the file's header is checked before any row; the body must be CSV.
    let no_phone = import(&app, &first, "name,plan\nAda,gold\n").await;
    assert_eq!(no_phone.problem(422, "invalid_header")["field"], "file");
    import(&app, &first, "").await.problem(422, "empty_file");
    import(&app, ghost, "phone\n+442079460002\n")
        .await
        .problem(404, "not_found");
    let json_body = app
        .post(
            &format!("/api/v1/lists/{first}/import"),
            &app.admin,
            json!({"phone": "+442079460002"}),
        )
        .await;
    json_body.problem(415, "unsupported_media_type");
    assert_eq!(
        app.get(&format!("/api/v1/lists/{first}"), &app.admin)
            .await
            .ok(200)["member_count"],
        0
    );
}

async fn reading_lists_needs_contacts_read_and_changing_them_contacts_write(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let contact = app.contact("+442079460001").await;
    let list = new_list(&app, "Shared").await;

    // An agent works with contacts, so with lists of them too.
    let (_, agent) = app.user_with_token("agent").await;
    app.get("/api/v1/lists", &agent).await.ok(200);
    app.post(
        &format!("/api/v1/lists/{list}/contacts"),
        &agent,
        json!({"contact_ids": [contact]}),
    )
    .await
    .ok(200);
    assert_eq!(all_members(&app, &list, &agent).await, [contact.as_str()]);

    // A read-only integration reads and changes nothing.
    let reader = app
        .service_token("admin", Some(vec!["contacts:read"]))
        .await;
    app.get(&format!("/api/v1/lists/{list}"), &reader)
        .await
        .ok(200);
    app.get(&format!("/api/v1/lists/{list}/contacts"), &reader)
        .await
        .ok(200);
    let refused = [
        app.post("/api/v1/lists", &reader, json!({"name": "Mine"}))
            .await,
        app.post(
            &format!("/api/v1/lists/{list}/contacts"),
            &reader,
            json!({"contact_ids": [contact]}),
        )
        .await,
        app.delete(&format!("/api/v1/lists/{list}/contacts/{contact}"), &reader)
            .await,
        app.delete(&format!("/api/v1/lists/{list}"), &reader).await,
    ];
    for answer in &refused {
        assert_eq!(
            answer.problem(403, "forbidden")["permission"],
            "contacts:write"
        );
    }
    let import = app
        .client
        .post(format!("{}/api/v1/lists/{list}/import", app.base))
        .bearer_auth(&reader)
        .header("content-type", "text/csv")
        .body("phone\n+442079460002\n")
        .send()
        .await
        .unwrap();
    assert_eq!(import.status(), 403);

    // A token without contacts:read sees nothing.
    let sender_only = app.service_token("admin", Some(vec!["senders:read"])).await;
    app.get("/api/v1/lists", &sender_only)
        .await
        .problem(403, "forbidden");
    app.send(reqwest::Method::GET, "/api/v1/lists", None, None)
        .await
        .problem(401, "unauthorized");
    assert_eq!(
        app.get(&format!("/api/v1/lists/{list}"), &app.admin)
            .await
            .ok(200)["member_count"],
        1
    );
}

async fn the_openapi_document_describes_lists(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let doc = app.get("/api/v1/openapi.json", &app.admin).await;
    let paths = &doc.ok(200)["paths"];
    for path in [
        "/api/v1/lists",
        "/api/v1/lists/{id}",
        "/api/v1/lists/{id}/contacts",
        "/api/v1/lists/{id}/contacts/{contact_id}",
        "/api/v1/lists/{id}/import",
    ] {
        assert!(paths[path].is_object(), "{path} is not documented");
    }
    assert!(
        paths["/api/v1/lists/{id}/import"]["post"]["requestBody"]["content"]["text/csv"]
            .is_object()
    );
    let schemas = &doc.body["components"]["schemas"];
    for schema in [
        "ListView",
        "ListFilter",
        "NewList",
        "NewMembers",
        "ImportReportView",
    ] {
        assert!(schemas[schema].is_object(), "{schema} is not described");
    }
}

both_backends!(
    lists_are_made_by_hand_and_paged,
    lists_are_made_by_filter,
    lists_are_imported_from_csv,
    large_imports_deduplicate_across_batches,
    import_errors_give_the_lines_of_the_file,
    list_errors_name_their_field,
    reading_lists_needs_contacts_read_and_changing_them_contacts_write,
    the_openapi_document_describes_lists,
);
