use std::sync::Arc;

use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use switchboard::config::{Config, FlagOverrides};
use switchboard::RunningServer;
use switchboard_app::{Clock, SystemClock};
use switchboard_core::message::{
    ChannelTemplateType, DeliveryStatus, Direction, Message, StatusEvent,
};
use switchboard_core::Channel;
use switchboard_store::Store;
use switchboard_testkit::TestDb;

pub const BOOTSTRAP: &str = "test-bootstrap-token-0123456789abcdef";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// An admin token (the bootstrap token).
    pub admin: String,
    server: Option<RunningServer>,
    config: Config,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

/// An answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts a problem+json answer with this status and code, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        assert_eq!(
            self.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/problem+json"),
            "{:#}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{:#}", self.body);
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].as_str().unwrap().ends_with(code));
        assert!(self.body["title"].is_string());
        assert!(self.body["detail"].is_string());
        &self.body
    }

    #[track_caller]
    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "{:#}", self.body);
        &self.body
    }
}

pub fn test_config(db_url: &str, data_dir: &std::path::Path) -> Config {
    let empty = data_dir.join("switchboard.toml");
    std::fs::write(&empty, "").unwrap();
    Config::load(
        Some(&empty),
        vec![
            ("SWITCHBOARD_DATABASE_URL".to_owned(), db_url.to_owned()),
            ("SWITCHBOARD_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
            (
                "SWITCHBOARD_BOOTSTRAP_TOKEN".to_owned(),
                BOOTSTRAP.to_owned(),
            ),
            (
                "SWITCHBOARD_DATA_DIR".to_owned(),
                data_dir.display().to_string(),
            ),
            // Tests that use the sandbox's simulated customers turn them on (`with_customers`);
            // elsewhere a sandbox sender only accepts, so nothing answers behind a test's back.
            (
                "SWITCHBOARD_SANDBOX_CUSTOMERS".to_owned(),
                "false".to_owned(),
            ),
        ],
        FlagOverrides::default(),
    )
    .expect("test configuration")
}

impl TestApp {
    pub async fn spawn(db: TestDb) -> TestApp {
        Self::spawn_with_clock(db, Arc::new(SystemClock)).await
    }

    /// A server whose clock the test sets (its workers run on it too).
    pub async fn spawn_with_clock(db: TestDb, clock: Arc<dyn Clock>) -> TestApp {
        Self::spawn_with(db, clock, false).await
    }

    /// A server on `clock`, with the sandbox's simulated customers acting if `customers`.
    pub async fn spawn_with(db: TestDb, clock: Arc<dyn Clock>, customers: bool) -> TestApp {
        Self::spawn_configured(db, clock, |config| config.sandbox_customers = customers).await
    }

    /// A server told that providers reach it at `public_url` (Twilio's status callbacks and
    /// signatures use it), as behind a proxy.
    pub async fn spawn_with_public_url(db: TestDb, public_url: &str) -> TestApp {
        let url = public_url.parse().expect("a URL");
        Self::spawn_configured(db, Arc::new(SystemClock), |config| {
            config.public_url = Some(url)
        })
        .await
    }

    pub async fn spawn_configured(
        db: TestDb,
        clock: Arc<dyn Clock>,
        configure: impl FnOnce(&mut Config),
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(db.url(), dir.path());
        configure(&mut config);
        let (server, _) = switchboard::start(&config, clock)
            .await
            .expect("server starts");
        TestApp {
            base: format!("http://{}", server.addr),
            client: reqwest::Client::new(),
            admin: BOOTSTRAP.to_owned(),
            server: Some(server),
            config,
            _db: db,
            _dir: dir,
        }
    }

    /// Stops the server and starts a new one on the same database and a new port.
    pub async fn restart(mut self) -> TestApp {
        self.server.take().unwrap().stop().await.unwrap();
        let (server, generated) = switchboard::start(&self.config, Arc::new(SystemClock))
            .await
            .expect("server restarts");
        assert!(generated.is_none());
        self.base = format!("http://{}", server.addr);
        self.server = Some(server);
        self
    }

    /// Where this server keeps its files.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.config.data_dir
    }

    pub fn store(&self) -> &Store {
        self.server.as_ref().unwrap().state.store()
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Waits (boundedly) for a message to reach a status, and returns it then.
    pub async fn message_with_status(&self, id: &str, want: &str) -> Value {
        let mut last = Value::Null;
        for _ in 0..400 {
            last = self
                .get(&format!("/api/v1/messages/{id}"), &self.admin)
                .await
                .body;
            if last["status"] == want {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("message {id} never became {want}: {last:#}");
    }

    /// A customer who wrote "hi" to `sender` `age` ago (the window is open for 24 hours
    /// from then); returns the contact id.
    pub async fn customer_wrote(&self, sender: &str, from: &str, age: time::Duration) -> String {
        let at = (time::OffsetDateTime::now_utc() - age)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        self.post(
            "/api/v1/messages/inbound",
            &self.admin,
            json!({"sender_id": sender, "from": from, "text": "hi", "timestamp": at}),
        )
        .await
        .ok(201)["contact_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A template created from `body`, submitted and approved; returns its id.
    pub async fn approved_template(&self, body: Value) -> String {
        let id = self
            .post("/api/v1/templates", &self.admin, body)
            .await
            .ok(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for (step, body) in [
            ("submit", json!({})),
            ("status", json!({"status": "approved", "reason": "test"})),
        ] {
            self.post(&format!("/api/v1/templates/{id}/{step}"), &self.admin, body)
                .await
                .ok(200);
        }
        id
    }

    /// Uploads a file as a browser's or curl's multipart form would, the file as `field`.
    pub async fn upload(
        &self,
        token: &str,
        field: &str,
        filename: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Answer {
        let boundary = "----test-boundary-7MA4YWxkTrZu0gW";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nignored\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
             Content-Type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let response = self
            .client
            .post(format!("{}/api/v1/media", self.base))
            .bearer_auth(token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("upload");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// Posts a provider webhook body as received, with an `X-Hub-Signature-256` if given;
    /// the answer's status.
    pub async fn post_webhook(&self, path: &str, body: &[u8], signature: Option<String>) -> u16 {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        request.send().await.unwrap().status().as_u16()
    }

    pub async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send(reqwest::Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, Some(token), None)
            .await
    }

    /// A sandbox sender on `channel`; returns its id.
    pub async fn sandbox_sender(&self, channel: &str) -> String {
        self.post(
            "/api/v1/senders",
            &self.admin,
            json!({"channel": channel, "name": format!("{channel} sandbox"), "provider": {"kind": "sandbox"}}),
        )
        .await
        .ok(201);
        let list = self
            .get(
                &format!("/api/v1/senders?channel={channel}&limit=1"),
                &self.admin,
            )
            .await;
        list.body["items"][0]["id"].as_str().unwrap().to_owned()
    }

    /// A user with `role` and a token acting as them; returns (user id, token).
    pub async fn user_with_token(&self, role: &str) -> (String, String) {
        let email = format!("{role}-{}@example.com", uuid_fragment());
        let user = self
            .post(
                "/api/v1/users",
                &self.admin,
                json!({"email": email, "name": format!("A {role}"), "role": role}),
            )
            .await;
        let user_id = user.ok(201)["id"].as_str().unwrap().to_owned();
        let token = self
            .post(
                "/api/v1/tokens",
                &self.admin,
                json!({"name": format!("{role} token"), "user_id": user_id}),
            )
            .await;
        let secret = token.ok(201)["token"].as_str().unwrap().to_owned();
        (user_id, secret)
    }

    /// A service token with `role` and optional scopes.
    pub async fn service_token(&self, role: &str, scopes: Option<Vec<&str>>) -> String {
        let mut body = json!({"name": "service", "role": role});
        if let Some(scopes) = scopes {
            body["scopes"] = json!(scopes);
        }
        let token = self.post("/api/v1/tokens", &self.admin, body).await;
        token.ok(201)["token"].as_str().unwrap().to_owned()
    }

    pub async fn contact(&self, phone: &str) -> String {
        self.post(
            "/api/v1/contacts",
            &self.admin,
            json!({"name": "Customer", "phone": phone}),
        )
        .await
        .ok(201)["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub fn uuid_fragment() -> String {
    uuid::Uuid::now_v7().simple().to_string()[20..].to_owned()
}

/// A message as the store keeps it, for tests that need history the API cannot yet create
/// (outbound messages already sent by a provider, inbound messages on a given sender).
pub fn stored_message(
    channel: Channel,
    direction: Direction,
    sender: &str,
    contact: &str,
    status: DeliveryStatus,
    provider_message_id: Option<&str>,
) -> Message {
    let now = switchboard_core::time::truncate_to_millis(time::OffsetDateTime::now_utc());
    Message {
        id: switchboard_core::MessageId::new(),
        direction,
        channel,
        sender_id: sender.parse().unwrap(),
        contact_id: contact.parse().unwrap(),
        conversation_id: None,
        text: Some("hello".into()),
        template: None,
        media: None,
        channel_template_type: ChannelTemplateType::Session,
        status,
        status_history: vec![StatusEvent {
            status,
            at: now,
            error: None,
        }],
        provider_message_id: provider_message_id.map(str::to_owned),
        error: None,
        provider_timestamp: (direction == Direction::Inbound).then_some(now),
        tag: None,
        business_initiated: false,
        redacted: false,
        send_at: None,
        actor: None,
        created_at: now,
        updated_at: now,
    }
}
