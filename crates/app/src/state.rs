use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_core::message::{DeliveryStatus, StatusEvent};
use switchboard_core::sender::{ProviderKind, Sender};
use switchboard_core::{MessageId, SenderId};
use switchboard_store::messages::{InboundRecord, OutboundRecord};
use switchboard_store::webhooks::WebhookEvent;
use switchboard_store::StoreError;

use crate::group_commit::GroupCommit;

use switchboard_core::time::truncate_to_millis;
use switchboard_store::Store;
use time::OffsetDateTime;

/// The setting that holds the key signing links to uploaded files.
const MEDIA_LINK_KEY_SETTING: &str = "media_link_key";

/// How long a sender or setting read from the database is used before it is read again.
const SENDER_CACHE_TTL: Duration = Duration::from_secs(2);

/// Where the application reads the time. Tests use a [`ManualClock`] so that windows, expiries
/// and retries can be exercised without waiting.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(start))
    }

    pub fn set(&self, t: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Everything a use case needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    /// For calls to providers made by use cases (template submission); one client so that
    /// connections to the Graph API are reused. Media downloads have their own, without an
    /// overall timeout.
    http: reqwest::Client,
    /// Wakes the webhook processor when a webhook has been stored.
    webhooks: tokio::sync::Notify,
    /// Wakes the media fetcher when a download has been queued.
    media: tokio::sync::Notify,
    /// Wakes the dispatcher when a send has been queued.
    dispatch: tokio::sync::Notify,
    /// Senders by provider id, for the webhook paths, briefly: see `sender_by_external_id`.
    senders: Mutex<HashMap<(ProviderKind, String), (Instant, Sender)>>,
    /// The same, by id, for the inbound path.
    senders_by_id: Mutex<HashMap<SenderId, (Instant, Sender)>>,
    /// Account settings (DLP rules, keywords, business hours) by key, briefly, like senders:
    /// every send and inbound message reads some of them.
    settings: Mutex<HashMap<String, (Instant, Option<serde_json::Value>)>>,
    settings_generation: AtomicU64,
    /// Bumped when senders change here, so a read that began before the change is not cached.
    senders_generation: AtomicU64,
    /// The group-commit writers of the webhook inbox and of inbound messages, started on
    /// first use (inside the runtime).
    inbox: std::sync::OnceLock<GroupCommit<WebhookEvent, bool>>,
    inbound: std::sync::OnceLock<GroupCommit<InboundRecord, ()>>,
    outbound: std::sync::OnceLock<GroupCommit<OutboundRecord, ()>>,
    sends:
        std::sync::OnceLock<GroupCommit<(MessageId, String, StatusEvent), Option<DeliveryStatus>>>,
    /// The shared readers of what deciding a send reads.
    lookups: std::sync::OnceLock<crate::lookups::Lookups>,
    /// Live updates for open inboxes (R5.7).
    live: tokio::sync::broadcast::Sender<crate::events::LiveEvent>,
    options: StateOptions,
    /// The key that signs links to uploaded files, read (or made) once from the settings.
    media_link_key: tokio::sync::OnceCell<[u8; 32]>,
}

/// What the deployment decides, beyond the store and the clock.
#[derive(Clone, Debug)]
pub struct StateOptions {
    /// Where files live (media under `media/`), whichever database holds the rows.
    pub data_dir: PathBuf,
    /// The largest file an outbound message may carry (R5.6).
    pub media_limit_bytes: i64,
    /// The address providers reach this server at (no trailing `/`): uploaded files are
    /// handed to Twilio and Messenger as signed links under it.
    pub public_url: Option<String>,
}

impl Default for StateOptions {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./switchboard-data"),
            media_limit_bytes: switchboard_core::sender::DEFAULT_MEDIA_SIZE_LIMIT_BYTES,
            public_url: None,
        }
    }
}

impl AppState {
    /// A state whose files go under `./switchboard-data` (the configuration's default).
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self::with_data_dir(store, clock, PathBuf::from("./switchboard-data"))
    }

    pub fn with_data_dir(store: Store, clock: Arc<dyn Clock>, data_dir: PathBuf) -> Self {
        Self::with_options(
            store,
            clock,
            StateOptions {
                data_dir,
                ..StateOptions::default()
            },
        )
    }

    pub fn with_options(store: Store, clock: Arc<dyn Clock>, options: StateOptions) -> Self {
        let options = StateOptions {
            public_url: options
                .public_url
                .map(|u| u.trim_end_matches('/').to_owned()),
            ..options
        };
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                http: reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(30))
                    .build()
                    .unwrap_or_default(),
                webhooks: tokio::sync::Notify::new(),
                media: tokio::sync::Notify::new(),
                dispatch: tokio::sync::Notify::new(),
                senders: Mutex::new(HashMap::new()),
                senders_by_id: Mutex::new(HashMap::new()),
                senders_generation: AtomicU64::new(0),
                settings: Mutex::new(HashMap::new()),
                settings_generation: AtomicU64::new(0),
                inbox: std::sync::OnceLock::new(),
                inbound: std::sync::OnceLock::new(),
                outbound: std::sync::OnceLock::new(),
                sends: std::sync::OnceLock::new(),
                lookups: std::sync::OnceLock::new(),
                // A watcher that falls this far behind skips ahead and reloads what it shows.
                live: tokio::sync::broadcast::channel(4096).0,
                options,
                media_link_key: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// Tells open inboxes about a change that has been committed.
    pub fn publish(&self, event: crate::events::LiveEvent) {
        // No one watching is not an error.
        let _ = self.inner.live.send(event);
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::events::LiveEvent> {
        self.inner.live.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.options.data_dir
    }

    /// The largest file an outbound message may carry (R5.6).
    pub fn media_limit_bytes(&self) -> i64 {
        self.inner.options.media_limit_bytes
    }

    /// The address providers reach this server at, without a trailing `/`.
    pub fn public_url(&self) -> Option<&str> {
        self.inner.options.public_url.as_deref()
    }

    /// The key for links to uploaded files. Kept in the settings so that every node, and the
    /// same node after a restart, signs and checks alike; made on first use.
    pub(crate) async fn media_link_key(&self) -> Result<[u8; 32], StoreError> {
        self.inner
            .media_link_key
            .get_or_try_init(|| async {
                let fresh: [u8; 32] = rand::random();
                let stored = self
                    .inner
                    .store
                    .setting_or_insert(
                        MEDIA_LINK_KEY_SETTING,
                        &serde_json::Value::String(hex::encode(fresh)),
                        self.now(),
                    )
                    .await?;
                let key = stored
                    .as_str()
                    .and_then(|k| hex::decode(k).ok())
                    .and_then(|k| <[u8; 32]>::try_from(k).ok());
                Ok(key.unwrap_or(fresh))
            })
            .await
            .copied()
    }

    /// Where inbound media are kept, one file per content hash.
    pub fn media_dir(&self) -> PathBuf {
        self.inner.options.data_dir.join("media")
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Tells the media fetcher there is work.
    pub fn wake_media(&self) {
        self.inner.media.notify_one();
    }

    /// Waits until a download has been queued since the last wait.
    pub async fn media_waiting(&self) {
        self.inner.media.notified().await;
    }

    /// The sender a provider's webhook names (phone-number id, page id, number), from a cache
    /// kept a couple of seconds: every webhook needs it, and reading it from the database each
    /// time costs more than the rest of answering one. Changes made here forget the cache at
    /// once; another node's are seen within `SENDER_CACHE_TTL`.
    pub(crate) async fn sender_by_external_id(
        &self,
        kind: ProviderKind,
        external_id: &str,
    ) -> Result<Option<Sender>, StoreError> {
        let key = (kind, external_id.to_owned());
        {
            let cache = self.inner.senders.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, sender)) = cache.get(&key) {
                if at.elapsed() < SENDER_CACHE_TTL {
                    return Ok(Some(sender.clone()));
                }
            }
        }
        let generation = self.inner.senders_generation.load(Ordering::Acquire);
        let found = self
            .inner
            .store
            .find_sender_by_external_id(kind, external_id)
            .await?;
        // Not found is not kept: a sender created a moment later must be found at once.
        if let Some(sender) = &found {
            let mut cache = self.inner.senders.lock().unwrap_or_else(|p| p.into_inner());
            if self.inner.senders_generation.load(Ordering::Acquire) == generation {
                cache.insert(key, (Instant::now(), sender.clone()));
            }
        }
        Ok(found)
    }

    /// A sender by id, from the same brief cache (inbound messages need theirs each time).
    pub(crate) async fn sender(&self, id: SenderId) -> Result<Sender, StoreError> {
        {
            let cache = self
                .inner
                .senders_by_id
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some((at, sender)) = cache.get(&id) {
                if at.elapsed() < SENDER_CACHE_TTL {
                    return Ok(sender.clone());
                }
            }
        }
        let generation = self.inner.senders_generation.load(Ordering::Acquire);
        let sender = self.inner.store.get_sender(id).await?;
        let mut cache = self
            .inner
            .senders_by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A change made while this read was under way is not undone by caching its result.
        if self.inner.senders_generation.load(Ordering::Acquire) == generation {
            cache.insert(id, (Instant::now(), sender.clone()));
        }
        Ok(sender)
    }

    /// A setting's stored value (`None` when never set), from a cache kept as briefly as
    /// senders'. Changes made here forget it at once; another node's are seen within the TTL.
    pub(crate) async fn setting(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        {
            let cache = self
                .inner
                .settings
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some((at, value)) = cache.get(key) {
                if at.elapsed() < SENDER_CACHE_TTL {
                    return Ok(value.clone());
                }
            }
        }
        let generation = self.inner.settings_generation.load(Ordering::Acquire);
        let value = self.inner.store.get_setting(key).await?;
        let mut cache = self
            .inner
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.inner.settings_generation.load(Ordering::Acquire) == generation {
            cache.insert(key.to_owned(), (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    /// Drops cached settings after one was changed.
    pub(crate) fn forget_settings(&self) {
        self.inner
            .settings_generation
            .fetch_add(1, Ordering::AcqRel);
        self.inner
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Drops cached senders after one was changed or deleted.
    pub(crate) fn forget_senders(&self) {
        self.inner.senders_generation.fetch_add(1, Ordering::AcqRel);
        self.inner
            .senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.inner
            .senders_by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Commits verified webhooks to the inbox; each answers whether its body is new.
    pub(crate) fn inbox(&self) -> &GroupCommit<WebhookEvent, bool> {
        self.inner.inbox.get_or_init(|| {
            let store = self.inner.store.clone();
            GroupCommit::start(move |events: Vec<WebhookEvent>| {
                let store = store.clone();
                async move {
                    let fresh = store.store_webhooks(&events).await?;
                    Ok(fresh.into_iter().map(Ok).collect())
                }
            })
        })
    }

    /// Records what providers accepted (message, provider id, `sent`) as sends return; answers
    /// for each where statuses the provider reported before moved its message, if they did.
    pub(crate) fn sends(
        &self,
    ) -> &GroupCommit<(MessageId, String, StatusEvent), Option<DeliveryStatus>> {
        self.inner.sends.get_or_init(|| {
            let store = self.inner.store.clone();
            GroupCommit::start(move |sends: Vec<(MessageId, String, StatusEvent)>| {
                let store = store.clone();
                async move {
                    let reported = store.record_sends(&sends).await?;
                    Ok(sends
                        .iter()
                        .map(|(id, _, _)| Ok(reported.get(id).copied()))
                        .collect())
                }
            })
        })
    }

    /// Records inbound messages, each with what goes with it.
    pub(crate) fn inbound(&self) -> &GroupCommit<InboundRecord, ()> {
        self.inner.inbound.get_or_init(|| {
            let store = self.inner.store.clone();
            GroupCommit::start(move |records: Vec<InboundRecord>| {
                let store = store.clone();
                async move { store.record_inbound_batch(&records).await }
            })
        })
    }

    /// Writes allowed sends, each with its job and decision.
    pub(crate) fn outbound(&self) -> &GroupCommit<OutboundRecord, ()> {
        self.inner.outbound.get_or_init(|| {
            let store = self.inner.store.clone();
            GroupCommit::start(move |records: Vec<OutboundRecord>| {
                let store = store.clone();
                async move { store.create_outbound_batch(&records).await }
            })
        })
    }

    /// Reads that sends decided at the same moment share (started on first use).
    pub(crate) fn lookups(&self) -> &crate::lookups::Lookups {
        self.inner
            .lookups
            .get_or_init(|| crate::lookups::Lookups::start(&self.inner.store))
    }

    /// Tells the webhook processor there is work.
    pub fn wake_webhooks(&self) {
        self.inner.webhooks.notify_one();
    }

    /// Waits until a webhook has been stored since the last wait.
    pub async fn webhooks_waiting(&self) {
        self.inner.webhooks.notified().await;
    }

    /// Tells the dispatcher a send has been queued.
    pub fn wake_dispatcher(&self) {
        self.inner.dispatch.notify_one();
    }

    /// Waits until a send has been queued since the last wait.
    pub async fn dispatch_waiting(&self) {
        self.inner.dispatch.notified().await;
    }

    /// The current time, in whole milliseconds (the precision the store keeps).
    pub fn now(&self) -> OffsetDateTime {
        truncate_to_millis(self.inner.clock.now())
    }
}
