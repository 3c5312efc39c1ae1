use serde_json::json;
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Direction, Message, MessageError, StatusEvent, TemplateRef,
};
use switchboard_core::{Channel, MessageId};
use switchboard_testkit::{both_backends, TestDb};
use time::{Duration, OffsetDateTime};

use crate::helpers::{stored_message, TestApp};

fn message(sender: &str, contact: &str, direction: Direction, age: Duration) -> Message {
    let status = match direction {
        Direction::Inbound => DeliveryStatus::Received,
        Direction::Outbound => DeliveryStatus::Queued,
    };
    let at = switchboard_core::time::truncate_to_millis(OffsetDateTime::now_utc() - age);
    let mut m = stored_message(Channel::Whatsapp, direction, sender, contact, status, None);
    m.text = Some(format!("{direction:?} message"));
    m.status_history[0].at = at;
    m.provider_timestamp = m.provider_timestamp.map(|_| at);
    m.created_at = at;
    m.updated_at = at;
    m
}

async fn the_history_is_filtered_and_shows_each_timeline(db: TestDb) {
    let app = TestApp::spawn(db).await;
    let wa = app.sandbox_sender("whatsapp").await;
    let ada = app.contact("+442079460958").await;
    let bob = app.contact("+16505551234").await;
    let store = app.store();

    let inbound = message(&wa, &ada, Direction::Inbound, Duration::hours(3));
    store.insert_message(&inbound).await.unwrap();
    let mut template = message(&wa, &ada, Direction::Outbound, Duration::hours(2));
    template.text = None;
    template.channel_template_type = ChannelTemplateType::Template;
    template.template = Some(TemplateRef {
        name: "order_update".into(),
        locale: "en_GB".into(),
        variables: json!({"1": "Ada"}).as_object().unwrap().clone(),
    });
    template.provider_message_id = Some("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI".into());
    store.insert_message(&template).await.unwrap();
    let t = OffsetDateTime::now_utc() - Duration::minutes(90);
    for (status, minutes) in [
        (DeliveryStatus::Sent, 0),
        (DeliveryStatus::Delivered, 1),
        (DeliveryStatus::Read, 2),
    ] {
        store
            .record_status(
                template.id,
                &StatusEvent {
                    status,
                    at: switchboard_core::time::truncate_to_millis(t + Duration::minutes(minutes)),
                    error: None,
                },
            )
            .await
            .unwrap();
    }
    let failed = message(&wa, &bob, Direction::Outbound, Duration::hours(1));
    store.insert_message(&failed).await.unwrap();
    store
        .record_status(
            failed.id,
            &StatusEvent {
                status: DeliveryStatus::Failed,
                at: switchboard_core::time::truncate_to_millis(OffsetDateTime::now_utc()),
                error: Some(MessageError {
                    code: "not_on_whatsapp".into(),
                    provider_code: Some("131026".into()),
                    reason: "Message undeliverable".into(),
                }),
            },
        )
        .await
        .unwrap();

    let all = app.get("/api/v1/messages", &app.admin).await;
    let items = all.ok(200)["items"].as_array().unwrap().clone();
    let order: Vec<&str> = items.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        [
            failed.id.to_string(),
            template.id.to_string(),
            inbound.id.to_string()
        ],
        "newest first"
    );

    let one = app
        .get(&format!("/api/v1/messages/{}", template.id), &app.admin)
        .await;
    let one = one.ok(200);
    assert_eq!(one["direction"], "outbound");
    assert_eq!(one["channel"], "whatsapp");
    assert_eq!(one["sender_id"], wa.as_str());
    assert_eq!(one["contact_id"], ada.as_str());
    assert_eq!(one["channel_template_type"], "template");
    assert_eq!(one["template"]["name"], "order_update");
    assert_eq!(one["template"]["variables"]["1"], "Ada");
    assert_eq!(one["status"], "read");
    assert_eq!(
        one["provider_message_id"],
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI"
    );
    let timeline: Vec<&str> = one["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(timeline, ["queued", "sent", "delivered", "read"]);

    let failure = app
        .get(&format!("/api/v1/messages/{}", failed.id), &app.admin)
        .await;
    assert_eq!(failure.ok(200)["status"], "failed");
    assert_eq!(
        failure.body["error"],
        json!({"code": "not_on_whatsapp", "provider_code": "131026", "reason": "Message undeliverable"})
    );

    let inbound_only = app
        .get("/api/v1/messages?direction=inbound", &app.admin)
        .await;
    assert_eq!(inbound_only.ok(200)["items"].as_array().unwrap().len(), 1);
    assert_eq!(inbound_only.body["items"][0]["status"], "received");
    let for_bob = app
        .get(&format!("/api/v1/messages?contact_id={bob}"), &app.admin)
        .await;
    assert_eq!(for_bob.ok(200)["items"][0]["id"], failed.id.to_string());
    let read = app
        .get(
            &format!("/api/v1/messages?status=read&sender_id={wa}"),
            &app.admin,
        )
        .await;
    assert_eq!(read.ok(200)["items"].as_array().unwrap().len(), 1);
    let since = (OffsetDateTime::now_utc() - Duration::minutes(150))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let recent = app
        .get(
            &format!("/api/v1/messages?since={since}&order=asc"),
            &app.admin,
        )
        .await;
    let recent_ids: Vec<&str> = recent.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(recent_ids, [template.id.to_string(), failed.id.to_string()]);
    let none = app.get("/api/v1/messages?channel=sms", &app.admin).await;
    assert_eq!(none.ok(200)["items"], json!([]));

    app.get("/api/v1/messages?since=yesterday", &app.admin)
        .await
        .problem(400, "invalid_query");
    app.get("/api/v1/messages?status=lost", &app.admin)
        .await
        .problem(400, "invalid_query");
    app.get(
        &format!("/api/v1/messages/{}", MessageId::new()),
        &app.admin,
    )
    .await
    .problem(404, "not_found");

    // Agents read the history; a token scoped away from it does not.
    let (_, agent) = app.user_with_token("agent").await;
    app.get("/api/v1/messages", &agent).await.ok(200);
    let contacts_only = app
        .service_token("agent", Some(vec!["contacts:read"]))
        .await;
    assert_eq!(
        app.get("/api/v1/messages", &contacts_only)
            .await
            .problem(403, "forbidden")["permission"],
        "messages:read"
    );
}

both_backends!(the_history_is_filtered_and_shows_each_timeline);
