use std::collections::HashSet;

use serde_json::{json, Value};
use switchboard_testkit::{both_backends, TestDb};

use crate::helpers::{uuid_fragment, TestApp};

/// A person with `role` who may use `senders`, and a token acting as them.
async fn person(app: &TestApp, role: &str, senders: &[&str]) -> (String, String) {
    let user = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"email": format!("{role}-{}@example.com", uuid_fragment()),
                   "name": format!("A {role}"), "role": role,
                   "permitted_sender_ids": senders}),
        )
        .await;
    let id = user.ok(201)["id"].as_str().unwrap().to_owned();
    let token = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({"name": "person", "user_id": id}),
        )
        .await;
    (id, token.ok(201)["token"].as_str().unwrap().to_owned())
}

/// The customer at `from` writes `text` to `sender`; answers the conversation's id.
async fn customer_writes(
    app: &TestApp,
    sender: &str,
    from: &str,
    name: &str,
    text: &str,
) -> String {
    let m = app
        .post(
            "/api/v1/messages/inbound",
            &app.admin,
            json!({"sender_id": sender, "from": from, "name": name, "text": text}),
        )
        .await;
    m.ok(201)["conversation_id"].as_str().unwrap().to_owned()
}

fn path(id: &str, action: &str) -> String {
    format!("/api/v1/conversations/{id}/{action}")
}

async fn the_workflow_claims_replies_transfers_closes_and_reopens(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let (ann, ann_token) = person(&app, "agent", &[&wa]).await;
    let (bob, bob_token) = person(&app, "agent", &[&wa]).await;
    let (_, boss_token) = person(&app, "supervisor", &[]).await;
    let (_, outsider_token) = person(&app, "agent", &[]).await;
    let conversation =
        customer_writes(&app, &wa, "+442079460958", "Ada", "Where is my order?").await;

    // It arrives unclaimed, unread, with the start of the message.
    let list = app
        .get("/api/v1/conversations?state=unclaimed", &ann_token)
        .await;
    let item = &list.ok(200)["items"][0];
    assert_eq!(item["id"], conversation.as_str());
    assert_eq!(item["state"], "unclaimed");
    assert_eq!(item["assignee_id"], Value::Null);
    assert_eq!(item["unread_count"], 1);
    assert_eq!(item["preview"], "Where is my order?");
    assert_eq!(item["contact"]["name"], "Ada");
    assert_eq!(item["channel"], "whatsapp");
    assert_eq!(item["window"]["open"], true);
    let first_wait = item["waiting_since"].as_str().unwrap().to_owned();

    // An agent may not reply before claiming it.
    let early = app
        .post(
            "/api/v1/messages",
            &ann_token,
            json!({"conversation_id": conversation, "text": "On its way"}),
        )
        .await;
    early.problem(409, "conversation_not_claimed");

    // Ann claims it; Bob cannot, nor release it, nor reply in it.
    let claimed = app
        .post(&path(&conversation, "claim"), &ann_token, json!({}))
        .await;
    assert_eq!(claimed.ok(200)["state"], "claimed");
    assert_eq!(claimed.body["assignee_id"], ann.as_str());
    app.post(&path(&conversation, "claim"), &ann_token, json!({}))
        .await
        .ok(200);
    app.post(&path(&conversation, "claim"), &bob_token, json!({}))
        .await
        .problem(409, "conversation_claimed");
    app.post(&path(&conversation, "unclaim"), &bob_token, json!({}))
        .await
        .problem(403, "not_assignee");
    app.post(
        "/api/v1/messages",
        &bob_token,
        json!({"conversation_id": conversation, "text": "Hi, Bob here"}),
    )
    .await
    .problem(409, "conversation_claimed");
    // An agent who may not use the sender does not see the conversation at all.
    app.get(
        &format!("/api/v1/conversations/{conversation}"),
        &outsider_token,
    )
    .await
    .problem(404, "not_found");

    // Ann replies; the customer is no longer waiting.
    let reply = app
        .post(
            "/api/v1/messages",
            &ann_token,
            json!({"conversation_id": conversation, "text": "It ships today"}),
        )
        .await;
    reply.ok(202);
    app.post(&path(&conversation, "read"), &ann_token, json!({}))
        .await
        .ok(204);

    // A supervisor reads it without claiming it (R6.8).
    let spied = app
        .get(
            &format!("/api/v1/conversations/{conversation}"),
            &boss_token,
        )
        .await;
    let spied = spied.ok(200);
    assert_eq!(spied["assignee_id"], ann.as_str());
    assert_eq!(spied["unread_count"], 0);
    assert_eq!(spied["waiting_since"], Value::Null);
    assert_eq!(spied["preview"], "It ships today");
    let texts: Vec<&str> = spied["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Where is my order?", "It ships today"]);
    assert_eq!(spied["contact_details"]["phone"], "+442079460958");

    // Agents do not transfer; supervisors and admins do, to someone who may use the sender.
    app.post(
        &path(&conversation, "transfer"),
        &ann_token,
        json!({"agent_id": bob}),
    )
    .await
    .problem(403, "transfer_not_allowed");
    let (stranger, _) = person(&app, "agent", &[]).await;
    let refused = app
        .post(
            &path(&conversation, "transfer"),
            &boss_token,
            json!({"agent_id": stranger}),
        )
        .await;
    assert_eq!(
        refused.problem(422, "sender_not_permitted")["field"],
        "agent_id"
    );
    let moved = app
        .post(
            &path(&conversation, "transfer"),
            &boss_token,
            json!({"agent_id": bob}),
        )
        .await;
    assert_eq!(moved.ok(200)["assignee_id"], bob.as_str());
    app.post(&path(&conversation, "close"), &ann_token, json!({}))
        .await
        .problem(403, "not_assignee");
    let closed = app
        .post(&path(&conversation, "close"), &bob_token, json!({}))
        .await;
    assert_eq!(closed.ok(200)["state"], "closed");
    assert_eq!(closed.body["assignee_id"], Value::Null);
    assert_eq!(closed.body["waiting_since"], Value::Null);

    // The customer writes again: it reopens, unclaimed.
    customer_writes(&app, &wa, "+442079460958", "Ada", "One more thing").await;
    let reopened = app
        .get(&format!("/api/v1/conversations/{conversation}"), &bob_token)
        .await;
    assert_eq!(reopened.ok(200)["state"], "unclaimed");
    // Waiting since this message, not since the first one of long ago.
    // Compared as times: RFC 3339 text drops trailing zeros of the fraction, so ".12Z"
    // sorts after ".123Z" as text.
    let at = |text: &str| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    };
    assert!(at(reopened.body["waiting_since"].as_str().unwrap()) > at(&first_wait));
    assert_eq!(reopened.body["unread_count"], 1);
    let history: Vec<(String, String)> = reopened.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let actions: Vec<&str> = history.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["claimed", "transferred", "closed", "reopened"]);
    assert_eq!(history[0].1, format!("user:{ann}"));
    assert_eq!(history[2].1, format!("user:{bob}"));
    assert_eq!(history[3].1, "contact");
    for event in reopened.body["events"].as_array().unwrap() {
        assert!(event["at"].is_string());
    }
}

both_backends!(the_workflow_claims_replies_transfers_closes_and_reopens);

async fn of_agents_claiming_at_once_exactly_one_wins(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let conversation = customer_writes(&app, &wa, "+442079460958", "Ada", "Hello?").await;
    let mut agents = Vec::new();
    for _ in 0..8 {
        agents.push(person(&app, "agent", &[&wa]).await);
    }
    let claims = agents.iter().map(|(_, token)| {
        let app = &app;
        let path = path(&conversation, "claim");
        async move { app.post(&path, token, json!({})).await }
    });
    let answers = futures_util::future::join_all(claims).await;
    let winners: Vec<usize> = answers
        .iter()
        .enumerate()
        .filter(|(_, a)| a.status == 200)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:#?}");
    for answer in answers.iter().filter(|a| a.status != 200) {
        answer.problem(409, "conversation_claimed");
    }
    let now = app
        .get(&format!("/api/v1/conversations/{conversation}"), &app.admin)
        .await;
    assert_eq!(now.ok(200)["assignee_id"], agents[winners[0]].0.as_str());
    let claims = now.body["events"].as_array().unwrap();
    assert_eq!(claims.len(), 1, "one recorded claim: {claims:#?}");
}

both_backends!(of_agents_claiming_at_once_exactly_one_wins);

async fn the_list_filters_searches_sorts_pages_and_counts(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let sms = app.sandbox_sender("sms").await;
    let (_, agent) = person(&app, "agent", &[&wa]).await;
    let mut on_wa = Vec::new();
    for i in 0..7 {
        let phone = format!("+4420794609{i:02}");
        let text = if i == 3 {
            "my parcel is damaged"
        } else {
            "hello"
        };
        on_wa.push(customer_writes(&app, &wa, &phone, &format!("Customer {i}"), text).await);
    }
    let on_sms = customer_writes(&app, &sms, "+16505551234", "Grace Hopper", "hi").await;

    // Newest activity first; an agent sees only the senders they may use.
    let all = app.get("/api/v1/conversations", &app.admin).await;
    let ids: Vec<&str> = all.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 8);
    assert_eq!(ids[0], on_sms);
    assert_eq!(ids[1], on_wa[6]);
    let mine = app.get("/api/v1/conversations", &agent).await;
    assert_eq!(mine.ok(200)["items"].as_array().unwrap().len(), 7);
    let by_channel = app
        .get("/api/v1/conversations?channel=sms", &app.admin)
        .await;
    assert_eq!(by_channel.ok(200)["items"][0]["id"], on_sms.as_str());
    assert_eq!(by_channel.body["items"].as_array().unwrap().len(), 1);
    let by_sender = app
        .get(
            &format!("/api/v1/conversations?sender_id={sms}"),
            &app.admin,
        )
        .await;
    assert_eq!(by_sender.ok(200)["items"].as_array().unwrap().len(), 1);

    // Search over the contact's name, phone and the messages' text, any case.
    for (q, want) in [
        ("grace", &on_sms),
        ("PARCEL", &on_wa[3]),
        ("650555", &on_sms),
        ("Customer 5", &on_wa[5]),
    ] {
        let found = app
            .get(
                &format!("/api/v1/conversations?q={}", q.replace(' ', "%20")),
                &app.admin,
            )
            .await;
        let items = found.ok(200)["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{q}: {items:#?}");
        assert_eq!(items[0]["id"], want.as_str(), "{q}");
    }
    let wildcard = app.get("/api/v1/conversations?q=%25", &app.admin).await;
    assert_eq!(wildcard.ok(200)["items"].as_array().unwrap().len(), 0);

    // Pages of three cover everything once.
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/conversations?limit=3&cursor={c}"),
            None => "/api/v1/conversations?limit=3".to_owned(),
        };
        let page = app.get(&url, &app.admin).await;
        for item in page.ok(200)["items"].as_array().unwrap() {
            assert!(seen.insert(item["id"].as_str().unwrap().to_owned()));
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    app.get("/api/v1/conversations?cursor=nonsense!", &app.admin)
        .await
        .problem(400, "invalid_cursor");
    app.get("/api/v1/conversations?sort=sideways", &app.admin)
        .await
        .problem(400, "invalid_query");

    // Answered conversations leave the waiting list; the longest waiting comes first.
    let (_, admin_person) = person(&app, "admin", &[]).await;
    app.post(
        "/api/v1/messages",
        &admin_person,
        json!({"conversation_id": on_wa[0], "text": "Answered"}),
    )
    .await
    .ok(202);
    let waiting = app
        .get("/api/v1/conversations?sort=waiting", &app.admin)
        .await;
    let waiting: Vec<&str> = waiting.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(waiting.len(), 7);
    assert_eq!(waiting[0], on_wa[1]);
    assert!(!waiting.contains(&on_wa[0].as_str()));

    // Tabs: the agent claims two.
    for id in &on_wa[..2] {
        app.post(&path(id, "claim"), &agent, json!({}))
            .await
            .ok(200);
    }
    let mine = app.get("/api/v1/conversations?assignee=me", &agent).await;
    assert_eq!(mine.ok(200)["items"].as_array().unwrap().len(), 2);
    let counts = app.get("/api/v1/conversations/counts", &agent).await;
    assert_eq!(
        counts.ok(200),
        &json!({"unclaimed": 5, "mine": 2, "claimed": 2, "closed": 0})
    );
    let counts = app.get("/api/v1/conversations/counts", &app.admin).await;
    assert_eq!(
        counts.ok(200),
        &json!({"unclaimed": 6, "mine": 0, "claimed": 2, "closed": 0})
    );
    app.get("/api/v1/conversations?assignee=me", &app.admin)
        .await
        .problem(422, "user_required");
}

both_backends!(the_list_filters_searches_sorts_pages_and_counts);

async fn a_search_follows_renamed_contacts_and_finds_short_words(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let ada = customer_writes(&app, &wa, "+442079460999", "Ada Byron", "ok").await;
    for i in 0..3 {
        let phone = format!("+4420794601{i:02}");
        customer_writes(&app, &wa, &phone, "Someone", "My order is late").await;
    }
    let search = |q: &str| {
        let app = &app;
        let q = q.replace(' ', "%20");
        async move {
            let found = app
                .get(&format!("/api/v1/conversations?q={q}"), &app.admin)
                .await;
            let ids: Vec<String> = found.ok(200)["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect();
            ids
        }
    };
    let contact = app
        .get(&format!("/api/v1/conversations/{ada}"), &app.admin)
        .await
        .ok(200)["contact_id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.patch(
        &format!("/api/v1/contacts/{contact}"),
        &app.admin,
        json!({"name": "Ada Lovelace"}),
    )
    .await
    .ok(200);
    assert_eq!(search("lovelace").await, vec![ada.clone()]);
    assert!(search("byron").await.is_empty());
    // Shorter than any indexed run of characters, and in every thread.
    assert_eq!(search("ok").await, vec![ada.clone()]);
    assert_eq!(search("ORDER IS").await.len(), 3);
}

both_backends!(a_search_follows_renamed_contacts_and_finds_short_words);

async fn an_agent_starting_a_conversation_holds_it(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let sms = app.sandbox_sender("sms").await;
    let (ann, ann_token) = person(&app, "agent", &[&sms]).await;
    let (_, bob_token) = person(&app, "agent", &[&sms]).await;
    let sent = app
        .post(
            "/api/v1/messages",
            &ann_token,
            json!({"sender_id": sms, "to": "+16505551234", "text": "Your table is ready"}),
        )
        .await;
    let conversation = sent.ok(202)["conversation_id"].as_str().unwrap().to_owned();
    let c = app
        .get(&format!("/api/v1/conversations/{conversation}"), &ann_token)
        .await;
    assert_eq!(c.ok(200)["state"], "claimed");
    assert_eq!(c.body["assignee_id"], ann.as_str());
    // Bob cannot write into Ann's thread by naming the number either.
    app.post(
        "/api/v1/messages",
        &bob_token,
        json!({"sender_id": sms, "to": "+16505551234", "text": "Me too"}),
    )
    .await
    .problem(409, "conversation_claimed");
    // Once closed, whoever writes next holds it.
    app.post(&path(&conversation, "close"), &ann_token, json!({}))
        .await
        .ok(200);
    app.post(
        "/api/v1/messages",
        &bob_token,
        json!({"sender_id": sms, "to": "+16505551234", "text": "Following up"}),
    )
    .await
    .ok(202);
    let c = app
        .get(&format!("/api/v1/conversations/{conversation}"), &ann_token)
        .await;
    assert_eq!(c.ok(200)["state"], "claimed");
    assert_ne!(c.body["assignee_id"], ann.as_str());
}

both_backends!(an_agent_starting_a_conversation_holds_it);

/// Reads server-sent events until one named `name` arrives; answers its data.
pub(crate) async fn next_event(
    stream: &mut reqwest::Response,
    buffer: &mut String,
    name: &str,
) -> Value {
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let mut event = None;
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if event.as_deref() == Some(name) {
                return serde_json::from_str(&data).unwrap();
            }
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn the_event_stream_tells_each_viewer_what_they_may_see(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let sms = app.sandbox_sender("sms").await;
    let (_, agent) = person(&app, "agent", &[&wa]).await;
    let open = |token: String| {
        let request = app
            .client
            .get(format!("{}/api/v1/events/stream", app.base))
            .bearer_auth(token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream"));
            response
        }
    };
    let mut admin_stream = open(app.admin.clone()).await;
    let mut agent_stream = open(agent.clone()).await;
    let (mut admin_buffer, mut agent_buffer) = (String::new(), String::new());

    // The SMS conversation is not the agent's: only the admin hears of it.
    let hidden = customer_writes(&app, &sms, "+16505551234", "Grace", "hi").await;
    let seen = customer_writes(&app, &wa, "+442079460958", "Ada", "hello").await;
    let first = next_event(&mut admin_stream, &mut admin_buffer, "message.created").await;
    assert_eq!(first["conversation_id"], hidden.as_str());
    assert_eq!(first["direction"], "inbound");
    let first = next_event(&mut agent_stream, &mut agent_buffer, "message.created").await;
    assert_eq!(first["conversation_id"], seen.as_str());

    // A claim moves the conversation for everyone watching it.
    app.post(&path(&seen, "claim"), &agent, json!({}))
        .await
        .ok(200);
    let moved = next_event(&mut agent_stream, &mut agent_buffer, "conversation.updated").await;
    assert_eq!(moved["conversation_id"], seen.as_str());
    assert_eq!(moved["state"], "claimed");

    // The reply is created, then sent by the dispatcher.
    let reply = app
        .post(
            "/api/v1/messages",
            &agent,
            json!({"conversation_id": seen, "text": "Hi Ada"}),
        )
        .await;
    let reply_id = reply.ok(202)["id"].as_str().unwrap().to_owned();
    let created = next_event(&mut agent_stream, &mut agent_buffer, "message.created").await;
    assert_eq!(created["message_id"], reply_id.as_str());
    assert_eq!(created["direction"], "outbound");
    let status = next_event(&mut agent_stream, &mut agent_buffer, "message.status").await;
    assert_eq!(status["message_id"], reply_id.as_str());
    assert_eq!(status["status"], "sent");
}

both_backends!(the_event_stream_tells_each_viewer_what_they_may_see);
