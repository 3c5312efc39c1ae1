//! Inbound media (R5.6): every file a customer sends through a provider is downloaded with the
//! sender's credentials and kept under the data directory by its content hash, of any size,
//! and served to the inbox with the API's authentication.
//!
//! Recording a message queues its download in the same transaction, so the webhook is answered
//! without waiting for a file and a message is never lost to a download that fails. The
//! fetcher claims download jobs under a lease, streams each file to disk while hashing it, and
//! records the result with the job; a temporary failure is retried on the schedule.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use switchboard_channels::{RetryScope, SendError};
use switchboard_core::message::{Media, MediaDownloadStatus, Message};
use switchboard_core::retry::RetryPolicy;
use switchboard_core::sender::{ProviderConfig, Sender};
use switchboard_core::{Channel, MessageId, Permission};
use switchboard_store::jobs::{Lease, NewJob, Outcome};
use switchboard_store::media::{DownloadCompletion, MediaFile};
use switchboard_store::StoreError;
use time::{Duration, OffsetDateTime};
use tokio::io::AsyncWriteExt;

use crate::provider::{execute, invalid, unreachable};
use crate::{AppError, AppState, Principal, Result};

pub const MEDIA_QUEUE: &str = "media";
const DOWNLOAD_KIND: &str = "download_media";
/// At most this much of a refusal's body is read: enough for any provider's error document.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// How the fetcher works through its queue.
#[derive(Clone, Debug)]
pub struct MediaSettings {
    /// How long a claimed download is this worker's; long, since files may be large.
    pub lease: Duration,
    /// Downloads claimed, and run concurrently, at once.
    pub batch: i64,
    pub retry: RetryPolicy,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            lease: Duration::minutes(15),
            batch: 4,
            // The first retry comes soon: most failures are a hiccup, and the URL Meta hands
            // out for a file lapses within minutes. Meta keeps the file itself for 30 days.
            retry: RetryPolicy {
                schedule: vec![
                    Duration::seconds(1),
                    Duration::seconds(10),
                    Duration::minutes(1),
                    Duration::minutes(5),
                    Duration::minutes(30),
                    Duration::hours(2),
                ],
                max_attempts: 12,
                jitter: 0.2,
            },
        }
    }
}

/// The download job for an inbound message's media, if it has media we can fetch: a provider
/// media id or URL on a sender whose provider serves files. Sandbox media are not fetched.
pub(crate) fn download_job(
    sender: &Sender,
    message: &Message,
    now: OffsetDateTime,
) -> Option<NewJob> {
    let media = message.media.as_ref()?;
    if media.sha256.is_some() {
        return None;
    }
    let fetchable = match &sender.provider {
        ProviderConfig::WhatsappCloud(_) => {
            media.provider_media_id.is_some() || media.url.is_some()
        }
        ProviderConfig::Twilio(_) | ProviderConfig::Messenger(_) => media.url.is_some(),
        ProviderConfig::Sandbox => false,
    };
    fetchable.then(|| NewJob {
        id: MessageId::new().to_string(),
        queue: MEDIA_QUEUE.to_owned(),
        kind: DOWNLOAD_KIND.to_owned(),
        payload: json!({"message_id": message.id.to_string()}),
        dedupe_key: Some(format!("media:{}", message.id)),
        run_at: now,
        expires_at: None,
    })
}

/// How a download request proves who we are.
enum Credentials<'a> {
    /// WhatsApp: the sender's access token, for the media's description and its bytes.
    Bearer(&'a str),
    /// Twilio: HTTP basic with the account SID and auth token.
    Basic(&'a str, &'a str),
    /// Messenger attachment URLs are signed and need nothing.
    None,
}

/// The file as it landed on disk.
struct Stored {
    sha256: String,
    size: u64,
    content_type: Option<String>,
}

/// Removes a partial download unless it was moved into place.
pub(crate) struct Partial(pub(crate) Option<PathBuf>);

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

pub struct MediaFetcher {
    client: reqwest::Client,
    owner: String,
    settings: MediaSettings,
}

impl Default for MediaFetcher {
    fn default() -> Self {
        Self::new(MediaSettings::default())
    }
}

impl MediaFetcher {
    pub fn new(settings: MediaSettings) -> Self {
        Self {
            // No overall timeout, since a file may be of any size; a stalled transfer is cut
            // off by the read timeout instead.
            client: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(15))
                .read_timeout(std::time::Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
            owner: format!("media-{}", MessageId::new()),
            settings,
        }
    }

    /// Runs every due download once; returns how many jobs it handled.
    pub async fn run_once(&self, state: &AppState) -> Result<usize> {
        let leases = state
            .store()
            .claim_jobs(
                MEDIA_QUEUE,
                &self.owner,
                state.now(),
                self.settings.lease,
                self.settings.batch,
            )
            .await
            .map_err(AppError::Internal)?;
        let count = leases.len();
        let runs = leases.into_iter().map(|lease| async move {
            let completion = self.run_job(state, lease).await;
            let held = state
                .store()
                .complete_download(&completion, state.now())
                .await
                .map_err(AppError::Internal)?;
            if !held {
                tracing::warn!(job = %completion.lease.job.id, "lease lost before the download finished");
            }
            Ok::<_, AppError>(())
        });
        for result in futures_util::future::join_all(runs).await {
            result?;
        }
        Ok(count)
    }

    #[tracing::instrument(skip_all, fields(job = %lease.job.id, message))]
    async fn run_job(&self, state: &AppState, lease: Lease) -> DownloadCompletion {
        let done = |lease: Lease, outcome: Outcome, message: Option<(MessageId, Media)>| {
            DownloadCompletion {
                lease,
                outcome,
                message,
                file: None,
            }
        };
        let Some(id) = lease.job.payload["message_id"]
            .as_str()
            .and_then(|id| id.parse::<MessageId>().ok())
        else {
            let error = "the job names no message".to_owned();
            return done(lease, Outcome::Dead { error }, None);
        };
        tracing::Span::current().record("message", tracing::field::display(id));
        let loaded = match state.store().get_message(id).await {
            Ok(message) => match state.store().get_sender(message.sender_id).await {
                Ok(sender) => Ok(Some((message, sender))),
                Err(StoreError::NotFound) => Ok(None),
                Err(e) => Err(e),
            },
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        };
        let (message, sender) = match loaded {
            Ok(Some(found)) => found,
            Ok(None) => {
                let error = "the message or its sender no longer exists".to_owned();
                return done(lease, Outcome::Dead { error }, None);
            }
            Err(error) => {
                tracing::error!(?error, "loading a message to download its media");
                let outcome = self.retry_or_give_up(state, &lease, format!("{error:?}"), None);
                return done(lease, outcome.0, None);
            }
        };
        let Some(media) = message.media.clone().filter(|m| m.sha256.is_none()) else {
            return done(lease, Outcome::Done, None);
        };
        match self.download(state, &sender, &media).await {
            Ok(stored) => {
                let now = state.now();
                let mime_type = media.mime_type.clone().or(stored.content_type);
                let size = i64::try_from(stored.size).unwrap_or(i64::MAX);
                let file = MediaFile {
                    sha256: stored.sha256.clone(),
                    mime_type: mime_type.clone(),
                    size_bytes: size,
                    created_at: now,
                };
                let media = Media {
                    sha256: Some(stored.sha256),
                    size_bytes: Some(size),
                    mime_type,
                    download: Some(MediaDownloadStatus::Stored),
                    ..media
                };
                DownloadCompletion {
                    lease,
                    outcome: Outcome::Done,
                    message: Some((id, media)),
                    file: Some(file),
                }
            }
            Err(SendError::Retryable { after, reason, .. }) => {
                tracing::info!(%reason, attempt = lease.job.attempt, "media download failed; will retry");
                let (outcome, failed) = self.retry_or_give_up(state, &lease, reason, after);
                let message = failed.then(|| (id, failed_media(media)));
                done(lease, outcome, message)
            }
            Err(SendError::Permanent {
                code,
                provider_code,
                reason,
            }) => {
                tracing::warn!(code, ?provider_code, %reason, "media download failed for good");
                let error = format!("{code}: {reason}");
                done(
                    lease,
                    Outcome::Dead { error },
                    Some((id, failed_media(media))),
                )
            }
        }
    }

    /// A retry on the schedule, or, when attempts are used up, the end of the job; the flag
    /// says whether it ended.
    fn retry_or_give_up(
        &self,
        state: &AppState,
        lease: &Lease,
        error: String,
        after: Option<Duration>,
    ) -> (Outcome, bool) {
        let attempt = u32::try_from(lease.job.attempt).unwrap_or(u32::MAX);
        let delay = self
            .settings
            .retry
            .delay_after(attempt, rand::random())
            .map(|d| after.map_or(d, |a| a.max(d)));
        match delay {
            Some(delay) => (
                Outcome::Retry {
                    at: state.now() + delay,
                    error,
                },
                false,
            ),
            None => (Outcome::Dead { error }, true),
        }
    }

    async fn download(
        &self,
        state: &AppState,
        sender: &Sender,
        media: &Media,
    ) -> std::result::Result<Stored, SendError> {
        let missing = || invalid("the media has no URL or provider id to fetch".to_owned());
        let mut expected_sha = media.provider_sha256.clone();
        let mut expected_size = None;
        let (url, credentials, channel) = match &sender.provider {
            ProviderConfig::WhatsappCloud(c) => {
                let token = c.access_token.expose();
                let url = match &media.provider_media_id {
                    Some(media_id) => {
                        let request =
                            switchboard_channels::whatsapp_media_info_request(media_id, token)
                                .map_err(|e| invalid(e.message))?;
                        let answer = execute(&self.client, &c.api_base_url, &request).await?;
                        if !answer.is_success() {
                            let error = answer.error(Channel::Whatsapp);
                            self.credentials_refused(state, sender, &error).await;
                            return Err(error);
                        }
                        let info =
                            switchboard_channels::parse_media_info(&answer.body).map_err(|e| {
                                invalid(format!("an unreadable media description: {e}"))
                            })?;
                        expected_sha = info.sha256.or(expected_sha);
                        expected_size = info.file_size;
                        info.url
                    }
                    None => media.url.clone().ok_or_else(missing)?,
                };
                (url, Credentials::Bearer(token), Channel::Whatsapp)
            }
            ProviderConfig::Twilio(c) => (
                media.url.clone().ok_or_else(missing)?,
                Credentials::Basic(&c.account_sid, c.auth_token.expose()),
                Channel::Sms,
            ),
            ProviderConfig::Messenger(_) => (
                media.url.clone().ok_or_else(missing)?,
                Credentials::None,
                Channel::Messenger,
            ),
            ProviderConfig::Sandbox => {
                return Err(invalid("the sandbox keeps no files to fetch".to_owned()))
            }
        };
        let uses_credentials = !matches!(credentials, Credentials::None);
        let stored = self
            .fetch_to_disk(&state.media_dir(), &url, credentials, channel)
            .await;
        if let Err(error) = &stored {
            if uses_credentials {
                self.credentials_refused(state, sender, error).await;
            }
        }
        let stored = stored?;
        if let Some(expected) = expected_sha.as_deref().and_then(decode_sha256) {
            if hex::encode(expected) != stored.sha256 {
                return Err(corrupt(format!(
                    "the file's SHA-256 {} is not the {} the provider stated",
                    stored.sha256,
                    expected_sha.unwrap_or_default()
                )));
            }
        }
        if let Some(expected) = expected_size.filter(|s| *s != stored.size) {
            return Err(corrupt(format!(
                "{} bytes arrived of the {expected} the provider stated",
                stored.size
            )));
        }
        Ok(stored)
    }

    /// An expired token found by a download is recorded like one found by a send.
    async fn credentials_refused(&self, state: &AppState, sender: &Sender, error: &SendError) {
        if error.code() == Some(switchboard_channels::errors::codes::TOKEN_EXPIRED) {
            if let Err(e) = crate::senders::mark_token_expired(state, sender).await {
                tracing::error!(error = ?e, "recording an expired token");
            }
        }
    }

    /// Streams the file at `url` into `dir`, named by its SHA-256. The bytes go to a partial
    /// file first and are renamed into place whole, so a file under its hash is always
    /// complete; one already there is the same content, and the copy is dropped.
    async fn fetch_to_disk(
        &self,
        dir: &Path,
        url: &str,
        credentials: Credentials<'_>,
        channel: Channel,
    ) -> std::result::Result<Stored, SendError> {
        let mut request = self.client.get(url);
        request = match credentials {
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Basic(user, password) => request.basic_auth(user, Some(password)),
            Credentials::None => request,
        };
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let mut body = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_ERROR_BODY {
                    break;
                }
            }
            let answer = crate::provider::Answer {
                status,
                retry_after,
                body,
            };
            return Err(answer.error(channel));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        tokio::fs::create_dir_all(dir).await.map_err(disk)?;
        let partial_path = dir.join(format!(".partial-{}", MessageId::new()));
        let mut partial = Partial(Some(partial_path.clone()));
        let mut file = tokio::fs::File::create(&partial_path).await.map_err(disk)?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    hasher.update(&chunk);
                    file.write_all(&chunk).await.map_err(disk)?;
                    size += chunk.len() as u64;
                }
                Ok(None) => break,
                Err(e) => return Err(unreachable(e)),
            }
        }
        // On disk before it is named, so a crash never leaves a short file under a hash.
        file.sync_all().await.map_err(disk)?;
        drop(file);
        let sha256 = hex::encode(hasher.finalize());
        let target = dir.join(&sha256);
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            // `partial` removes the copy when it goes out of scope.
            return Ok(Stored {
                sha256,
                size,
                content_type,
            });
        }
        tokio::fs::rename(&partial_path, &target)
            .await
            .map_err(disk)?;
        partial.0 = None;
        Ok(Stored {
            sha256,
            size,
            content_type,
        })
    }
}

fn failed_media(media: Media) -> Media {
    Media {
        download: Some(MediaDownloadStatus::Failed),
        ..media
    }
}

/// A transfer that arrived damaged: fetching it again may well work.
fn corrupt(reason: String) -> SendError {
    SendError::Retryable {
        after: None,
        scope: RetryScope::Message,
        provider_code: None,
        reason,
    }
}

/// The disk could not take the file (full, unwritable): retried, as an operator can fix it.
fn disk(error: std::io::Error) -> SendError {
    SendError::Retryable {
        after: None,
        scope: RetryScope::Message,
        provider_code: None,
        reason: format!("storing the file: {error}"),
    }
}

/// A stated SHA-256 in hex (as Meta's media description may write it) or base64 (as its
/// webhooks do); `None` for anything else, which is then not checked.
fn decode_sha256(stated: &str) -> Option<[u8; 32]> {
    let stated = stated.trim();
    let bytes = if stated.len() == 64 && stated.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(stated).ok()?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(stated)
            .ok()?
    };
    bytes.try_into().ok()
}

/// Whether `s` is a SHA-256 as we name files: 64 lower-case hex digits. Anything else never
/// reaches the file system.
pub fn is_sha256_name(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A stored file opened for reading.
pub struct OpenMedia {
    pub mime_type: Option<String>,
    pub size: u64,
    pub file: tokio::fs::File,
}

/// Opens a stored media file for someone who may read messages.
pub async fn open_media(
    state: &AppState,
    principal: &Principal,
    sha256: &str,
) -> Result<OpenMedia> {
    principal.require(Permission::MessagesRead)?;
    open_stored(state, sha256).await
}

/// Opens a stored file by its hash, for whoever has already been allowed to read it.
pub(crate) async fn open_stored(state: &AppState, sha256: &str) -> Result<OpenMedia> {
    let not_found = AppError::NotFound { resource: "media" };
    if !is_sha256_name(sha256) {
        return Err(not_found);
    }
    let Some(record) = state
        .store()
        .get_media_file(sha256)
        .await
        .map_err(AppError::Internal)?
    else {
        return Err(not_found);
    };
    let path = state.media_dir().join(sha256);
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(error) => {
            // Recorded but absent: another node's data directory, or a file removed by hand.
            tracing::warn!(%sha256, ?error, "a stored media file is missing from the data directory");
            return Err(not_found);
        }
    };
    let size = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(error) => {
            tracing::warn!(%sha256, ?error, "reading a media file's size");
            return Err(not_found);
        }
    };
    Ok(OpenMedia {
        mime_type: record.mime_type,
        size,
        file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stated_hashes_are_read_in_hex_or_base64() {
        let digest: [u8; 32] = Sha256::digest(b"hello").into();
        let hex_form = hex::encode(digest);
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        assert_eq!(decode_sha256(&hex_form), Some(digest));
        assert_eq!(decode_sha256(&hex_form.to_uppercase()), Some(digest));
        assert_eq!(decode_sha256(&b64), Some(digest));
        // Too short to be a SHA-256 (pywa's samples truncate theirs): not checked.
        assert_eq!(decode_sha256("4654+8g="), None);
        assert_eq!(decode_sha256("a1b2c3d4e5f6..."), None);
    }

    #[test]
    fn only_hash_names_reach_the_file_system() {
        let good = hex::encode(Sha256::digest(b"x"));
        assert!(is_sha256_name(&good));
        assert!(!is_sha256_name(&good.to_uppercase()));
        assert!(!is_sha256_name("../../etc/passwd"));
        assert!(!is_sha256_name(&format!("{}/", &good[..63])));
        assert!(!is_sha256_name(""));
    }
}
