//! Outbound files (R5.6): a file attached in the composer or uploaded through the API is kept
//! under the data directory by its content hash, like inbound media, checked against the
//! configured limit as its bytes arrive, and sent by reference (`media.sha256`).
//!
//! When a message goes, the dispatcher hands the file to the provider in the way each accepts
//! a file it has not seen: WhatsApp's media upload, which answers an id to send; for Twilio and
//! Messenger, which fetch files themselves, a link under the public URL signed with a key of
//! ours and valid for a day.

use std::path::PathBuf;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::{Digest, Sha256};
use switchboard_channels::{RetryScope, SendError};
use switchboard_core::message::{Media, MediaKind};
use switchboard_core::sender::{ProviderConfig, Sender};
use switchboard_core::{FieldError, MessageId, Permission};
use switchboard_store::media::MediaFile;
use time::Duration;
use tokio::io::AsyncWriteExt;

use crate::media::{is_sha256_name, open_stored, OpenMedia, Partial};
use crate::{AppError, AppState, Principal, Result};

/// How long a signed link to a file stays good. Providers fetch a file when the message goes;
/// a retry makes a fresh link.
pub const LINK_LIFETIME: Duration = Duration::hours(24);
/// The longest file name kept; longer ones are cut.
const MAX_FILENAME_CHARS: usize = 240;

/// A file kept for sending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Upload {
    /// Lower-case hex SHA-256 of the bytes: send it as `media.sha256`.
    pub sha256: String,
    /// How the file goes when sent, from its type.
    pub kind: MediaKind,
    pub mime_type: String,
    pub size_bytes: i64,
    pub filename: Option<String>,
}

/// A file being received: its bytes are hashed and written as they arrive, and refused as soon
/// as they pass the limit, so an oversized upload never lands whole on disk.
pub struct UploadWriter {
    limit: i64,
    dir: PathBuf,
    partial: Partial,
    path: PathBuf,
    file: tokio::fs::File,
    hasher: Sha256,
    size: i64,
}

impl UploadWriter {
    /// Starts receiving a file for someone who may send messages.
    pub async fn start(state: &AppState, principal: &Principal) -> Result<UploadWriter> {
        principal.require(Permission::MessagesSend)?;
        let dir = state.media_dir();
        tokio::fs::create_dir_all(&dir).await.map_err(disk)?;
        let path = dir.join(format!(".upload-{}", MessageId::new()));
        let file = tokio::fs::File::create(&path).await.map_err(disk)?;
        Ok(UploadWriter {
            limit: state.media_limit_bytes(),
            dir,
            partial: Partial(Some(path.clone())),
            path,
            file,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Takes the next piece of the file; refuses the whole file once it passes the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size = self
            .size
            .saturating_add(i64::try_from(chunk.len()).unwrap_or(i64::MAX));
        if self.size > self.limit {
            return Err(too_large(self.limit));
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).await.map_err(disk)
    }

    /// The file is whole: names it by its hash and records it. `mime_type` is the type the
    /// client stated; a missing or malformed one is taken as a plain document.
    pub async fn finish(
        mut self,
        state: &AppState,
        mime_type: Option<&str>,
        filename: Option<&str>,
    ) -> Result<Upload> {
        if self.size == 0 {
            return Err(FieldError::new("file", "empty_file", "the file is empty").into());
        }
        self.file.sync_all().await.map_err(disk)?;
        let sha256 = hex::encode(self.hasher.finalize());
        let target = self.dir.join(&sha256);
        // The same bytes already kept are the same file; the copy is removed with `partial`.
        if !tokio::fs::try_exists(&target).await.unwrap_or(false) {
            tokio::fs::rename(&self.path, &target).await.map_err(disk)?;
            self.partial.0 = None;
        }
        // The type without its parameters (`text/plain; charset=utf-8` is `text/plain`).
        let mime_type = mime_type
            .and_then(|m| m.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .filter(|m| is_mime_type(m))
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        let recorded = state
            .store()
            .record_media_file(&MediaFile {
                sha256: sha256.clone(),
                mime_type: Some(mime_type),
                size_bytes: self.size,
                created_at: state.now(),
            })
            .await
            .map_err(AppError::Internal)?;
        let mime_type = recorded
            .mime_type
            .unwrap_or_else(|| "application/octet-stream".to_owned());
        Ok(Upload {
            kind: MediaKind::for_mime_type(&mime_type),
            sha256,
            mime_type,
            size_bytes: recorded.size_bytes,
            filename: filename.and_then(clean_filename),
        })
    }
}

/// The refusal of a file over the limit, with the limit in it.
pub fn too_large(limit: i64) -> AppError {
    AppError::TooLarge {
        code: "media_too_large",
        field: "file".to_owned(),
        detail: format!(
            "the file is larger than the {} allowed for attachments",
            human_size(limit)
        ),
    }
}

/// A size as people read it: `2.5 MB`, `900 KB`, `12 bytes`.
pub fn human_size(bytes: i64) -> String {
    if bytes >= 1_000_000 {
        let tenths = bytes / 100_000;
        if tenths % 10 == 0 {
            format!("{} MB", tenths / 10)
        } else {
            format!("{}.{} MB", tenths / 10, tenths % 10)
        }
    } else if bytes >= 1_000 {
        format!("{} KB", bytes / 1_000)
    } else {
        format!("{bytes} bytes")
    }
}

/// A stored file named by a send, as the message will carry it.
pub(crate) async fn stored_media(state: &AppState, sha256: &str) -> Result<MediaFile> {
    let unknown = || {
        AppError::from(FieldError::new(
            "media.sha256",
            "unknown_reference",
            "no uploaded file has this hash: upload it with POST /api/v1/media first",
        ))
    };
    if !is_sha256_name(sha256) {
        return Err(unknown());
    }
    state
        .store()
        .get_media_file(sha256)
        .await
        .map_err(AppError::Internal)?
        .ok_or_else(unknown)
}

/// The file name without any path, control characters or surrounding blanks.
fn clean_filename(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty() && cleaned != "." && cleaned != "..").then(|| cleaned.to_owned())
}

/// `type/subtype` of the characters RFC 6838 allows, and nothing else (no parameters).
fn is_mime_type(m: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(m.split_once('/'), Some((t, s)) if token(t) && token(s))
}

fn signature(key: &[u8; 32], sha256: &str, expires: i64) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("media:{sha256}:{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A link a provider can fetch the file from without credentials, or `None` when no public
/// URL is configured.
pub async fn public_link(state: &AppState, sha256: &str) -> Result<Option<String>> {
    let Some(base) = state.public_url() else {
        return Ok(None);
    };
    let key = state.media_link_key().await.map_err(AppError::Internal)?;
    let expires = (state.now() + LINK_LIFETIME).unix_timestamp();
    let signature = signature(&key, sha256, expires);
    Ok(Some(format!(
        "{base}/media/{sha256}?expires={expires}&signature={signature}"
    )))
}

/// Opens the file a signed link names, if the link is ours and has not expired. Any fault is
/// the same "not found", so a link reveals nothing about what else is kept.
pub async fn open_public(
    state: &AppState,
    sha256: &str,
    expires: i64,
    signature_hex: &str,
) -> Result<OpenMedia> {
    let not_found = AppError::NotFound { resource: "media" };
    if !is_sha256_name(sha256) || expires < state.now().unix_timestamp() {
        return Err(not_found);
    }
    let key = state.media_link_key().await.map_err(AppError::Internal)?;
    let Ok(given) = hex::decode(signature_hex) else {
        return Err(not_found);
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
        return Err(not_found);
    };
    mac.update(format!("media:{sha256}:{expires}").as_bytes());
    // Compared in constant time, so the signature cannot be guessed a byte at a time.
    if mac.verify_slice(&given).is_err() {
        return Err(not_found);
    }
    open_stored(state, sha256).await
}

/// How the provider will find a file we keep, put into the outbound media: uploaded to
/// WhatsApp for an id, or a signed link for the others. Media given by URL or id is left as
/// it is.
pub(crate) async fn provide(
    state: &AppState,
    client: &reqwest::Client,
    sender: &Sender,
    stored: &Media,
    outbound: &mut switchboard_channels::outbound::Media,
) -> std::result::Result<(), SendError> {
    let Some(sha256) = stored.sha256.as_deref() else {
        return Ok(());
    };
    if outbound.media_id.is_some() || outbound.link.as_deref().is_some_and(|l| !l.is_empty()) {
        return Ok(());
    }
    match &sender.provider {
        ProviderConfig::WhatsappCloud(c) => {
            let bytes = read_file(state, sha256).await?;
            let content_type = stored
                .mime_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            let request = switchboard_channels::whatsapp_media_upload_request(
                &c.phone_number_id,
                c.access_token.expose(),
                switchboard_channels::UploadFile {
                    filename: stored
                        .filename
                        .clone()
                        .unwrap_or_else(|| default_filename(sha256, stored.mime_type.as_deref())),
                    content_type,
                    bytes,
                },
            );
            let answer = crate::provider::execute(client, &c.api_base_url, &request).await?;
            if !answer.is_success() {
                return Err(answer.error(switchboard_core::Channel::Whatsapp));
            }
            let id = switchboard_channels::parse_media_uploaded(&answer.body).map_err(|e| {
                crate::provider::invalid(format!("an unreadable answer to the upload: {e:?}"))
            })?;
            outbound.link = None;
            outbound.media_id = Some(id);
            Ok(())
        }
        ProviderConfig::Twilio(_) | ProviderConfig::Messenger(_) => {
            let link = public_link(state, sha256).await.map_err(|e| {
                let reason = format!("making a link to the file: {e}");
                SendError::Retryable {
                    after: None,
                    scope: RetryScope::Sender,
                    provider_code: None,
                    reason,
                }
            })?;
            match link {
                Some(link) => {
                    outbound.link = Some(link);
                    outbound.media_id = None;
                    Ok(())
                }
                None => Err(crate::provider::invalid(
                    "this provider fetches files from a link: set SWITCHBOARD_PUBLIC_URL so that it can reach the file"
                        .to_owned(),
                )),
            }
        }
        // The sandbox's customers see what we keep.
        ProviderConfig::Sandbox => Ok(()),
    }
}

/// A name for a file sent without one: its hash, with the extension its type usually has, so
/// that the customer's phone knows how to open it.
fn default_filename(sha256: &str, mime_type: Option<&str>) -> String {
    let extension = match mime_type.unwrap_or_default() {
        "image/jpeg" => ".jpg",
        "image/png" => ".png",
        "image/webp" => ".webp",
        "video/mp4" => ".mp4",
        "video/3gpp" => ".3gp",
        "audio/mpeg" => ".mp3",
        "audio/ogg" => ".ogg",
        "audio/aac" => ".aac",
        "audio/amr" => ".amr",
        "audio/mp4" => ".m4a",
        "application/pdf" => ".pdf",
        "text/plain" => ".txt",
        _ => "",
    };
    format!("{}{extension}", &sha256[..sha256.len().min(16)])
}

/// The file's bytes. Files live in the data directory of the node that took the upload, so
/// several nodes share one `data_dir`; a node without the file leaves the send to be tried
/// again (by itself later, or by another node).
async fn read_file(state: &AppState, sha256: &str) -> std::result::Result<Vec<u8>, SendError> {
    tokio::fs::read(state.media_dir().join(sha256))
        .await
        .map_err(|e| SendError::Retryable {
            after: None,
            scope: RetryScope::Message,
            provider_code: None,
            reason: format!("the file {sha256} is not in this node's data directory: {e}"),
        })
}

/// The disk could not take the file.
fn disk(error: std::io::Error) -> AppError {
    AppError::Internal(switchboard_store::StoreError::Io(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        for (bytes, text) in [
            (2_500_000, "2.5 MB"),
            (5_000_000, "5 MB"),
            (900_000, "900 KB"),
            (12, "12 bytes"),
        ] {
            assert_eq!(human_size(bytes), text);
        }
    }

    #[test]
    fn file_names_lose_paths_and_control_characters() {
        assert_eq!(
            clean_filename("C:\\Users\\a\\invoice.pdf").as_deref(),
            Some("invoice.pdf")
        );
        assert_eq!(
            clean_filename("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(clean_filename("a\nb.txt").as_deref(), Some("ab.txt"));
        assert_eq!(clean_filename("  "), None);
        assert_eq!(clean_filename(".."), None);
        assert_eq!(
            clean_filename(&"x".repeat(400)).map(|n| n.chars().count()),
            Some(MAX_FILENAME_CHARS)
        );
    }

    #[test]
    fn only_plain_mime_types_are_kept() {
        assert!(is_mime_type("image/png"));
        assert!(is_mime_type(
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        ));
        assert!(!is_mime_type("text/html; charset=utf-8"));
        assert!(!is_mime_type("image"));
        assert!(!is_mime_type("image/png\r\nx: y"));
    }

    #[test]
    fn a_signature_binds_the_file_and_the_expiry() {
        let key = [7u8; 32];
        let a = signature(&key, "ab", 100);
        assert_eq!(a.len(), 64);
        assert_ne!(a, signature(&key, "ac", 100));
        assert_ne!(a, signature(&key, "ab", 101));
        assert_ne!(a, signature(&[8u8; 32], "ab", 100));
    }
}
