//! Inbound media files kept by Switchboard, and the recording of a finished download.

use sqlx::types::Json;
use switchboard_core::message::Media;
use switchboard_core::MessageId;
use time::OffsetDateTime;

use crate::jobs::{finish_job_in, Lease, Outcome};
use crate::rows::{at, ms};
use crate::{Result, Store};

/// A stored file: its content hash names it on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaFile {
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    pub mime_type: Option<String>,
    pub size_bytes: i64,
    pub created_at: OffsetDateTime,
}

/// What one download attempt came to, recorded with its job in one transaction.
#[derive(Clone, Debug)]
pub struct DownloadCompletion {
    pub lease: Lease,
    pub outcome: Outcome,
    /// The message whose media changed (stored, or failed for good), with its new media.
    pub message: Option<(MessageId, Media)>,
    /// The file now on disk.
    pub file: Option<MediaFile>,
}

/// Records a kept file inside the caller's transaction. The same bytes arriving twice are the
/// same file: the first row stands.
macro_rules! insert_media_file {
    ($tx:ident, $file:expr) => {{
        let file: &MediaFile = $file;
        sqlx::query(
            "INSERT INTO media_files (sha256, mime_type, size_bytes, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&file.sha256)
        .bind(&file.mime_type)
        .bind(file.size_bytes)
        .bind(ms(file.created_at))
        .execute(&mut *$tx)
        .await?;
    }};
}

impl Store {
    pub async fn get_media_file(&self, sha256: &str) -> Result<Option<MediaFile>> {
        let row: Option<(String, Option<String>, i64, i64)> = read_pool!(self, |db| {
            sqlx::query_as(
                "SELECT sha256, mime_type, size_bytes, created_at FROM media_files \
                 WHERE sha256 = $1",
            )
            .bind(sha256)
            .fetch_optional(db)
            .await?
        });
        Ok(
            row.map(|(sha256, mime_type, size_bytes, created)| MediaFile {
                sha256,
                mime_type,
                size_bytes,
                created_at: at(created),
            }),
        )
    }

    /// Records a file put under the media directory by an upload. The same bytes uploaded
    /// twice are one file: the first row stands, and it is returned.
    pub async fn record_media_file(&self, file: &MediaFile) -> Result<MediaFile> {
        write_tx!(self, |tx| {
            insert_media_file!(tx, file);
        });
        Ok(self
            .get_media_file(&file.sha256)
            .await?
            .unwrap_or_else(|| file.clone()))
    }

    /// Finishes a download job, fenced on its lease, and records what it changed. Returns
    /// false, changing nothing, when the lease was taken over meanwhile.
    pub async fn complete_download(
        &self,
        completion: &DownloadCompletion,
        now: OffsetDateTime,
    ) -> Result<bool> {
        let held = write_tx!(self, |tx| {
            let held = finish_job_in!(tx, &completion.lease, &completion.outcome, now);
            if held {
                if let Some(file) = &completion.file {
                    insert_media_file!(tx, file);
                }
                if let Some((id, media)) = &completion.message {
                    sqlx::query("UPDATE messages SET media = $2, updated_at = $3 WHERE id = $1")
                        .bind(id.to_string())
                        .bind(Json(media))
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await?;
                }
            }
            held
        });
        Ok(held)
    }
}
