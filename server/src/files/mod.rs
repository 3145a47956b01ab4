//! The file store: where the media of image, sound, video and file messages go, over HTTP on
//! the server's `--http-listen` endpoint (docs/files.md).
//!
//! A client never logs in over HTTP. It asks over its authenticated connection for an upload
//! ticket (`file_upload_ticket`: the store's base URL and a signed, expiring token naming the
//! user) and uploads with it, resumably (`POST /files/uploads`, `PUT
//! /files/uploads/{id}?offset=N`); the completed file gets a fresh uuid. To read a file it asks
//! for a download URL (`file_download_url`), which is answered only to the file's owner and to
//! members of a conversation a message referencing it was sent to, and `GET`s it (with `Range`
//! to resume) until the URL expires.
//!
//! - [`signing`]: tokens and URL signatures (pure);
//! - [`storage`]: the bytes, behind the [`storage::Storage`] trait (local disk by default);
//! - [`sessions`]: upload sessions persisted on disk (resumable across restarts);
//! - [`grants`]: records, grants and who may read (the commit pipeline's message hook);
//! - [`routes`]: the axum router under `/files`;
//! - [`sweeper`]: retention (expired files, stale upload sessions).
//!
//! Bookkeeping (records, grants, the retention index) is written through the commit pipeline
//! like every other write ([`FileOp`]); the bytes are written by the HTTP handlers directly.

pub mod grants;
pub mod routes;
pub mod sessions;
pub mod signing;
pub mod sniff;
pub mod storage;
pub mod sweeper;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use chime_proto::codes;
use chime_proto::pb::{self, response::Kind as RespKind};
use serde::Deserialize;

use crate::commit::now_ms;
use crate::error::{ApiError, ApiResult, ServerError};
use crate::store::Store;
use crate::txn::Txn;
use grants::FileRecord;
use sessions::{Declared, Sessions};
use signing::Signer;
use storage::{LocalDisk, Storage};

/// One mebibyte.
const MB: u64 = 1024 * 1024;

/// The `[files]` section of the config file. Every key is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Where files and upload sessions live (default `<data_dir>/files`).
    pub store_dir: Option<PathBuf>,
    /// Stored files are deleted this many days after their upload completed (fractions allowed;
    /// 0 keeps them forever). Default 7, the history retention of the seed's basic plan.
    pub retention_days: f64,
    /// Largest `image/*` and `audio/*` file (default 28 MiB).
    pub max_image_bytes: u64,
    /// Largest file of any other type, `video/*` included (default 100 MiB).
    pub max_file_bytes: u64,
    /// MIME types accepted, as `type/subtype` or `type/*` patterns (default `image/*`,
    /// `audio/*`, `video/*`, `text/*`, `application/*`).
    pub allowed_content_types: Vec<String>,
    /// Validity of an upload token in seconds (default 3,600).
    pub token_ttl_secs: u64,
    /// Validity of a download URL in seconds (default 3,600).
    pub url_ttl_secs: u64,
    /// Upload sessions (complete or not) are dropped this many hours after they began (default
    /// 24).
    pub upload_expiry_hours: f64,
    /// How often the retention sweeper runs, in milliseconds (default 600,000).
    pub sweep_interval_ms: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            store_dir: None,
            retention_days: 7.0,
            max_image_bytes: 28 * MB,
            max_file_bytes: 100 * MB,
            allowed_content_types: ["image/*", "audio/*", "video/*", "text/*", "application/*"]
                .map(String::from)
                .to_vec(),
            token_ttl_secs: 3600,
            url_ttl_secs: 3600,
            upload_expiry_hours: 24.0,
            sweep_interval_ms: 600_000,
        }
    }
}

/// Milliseconds in `days` (fractional), saturating.
fn days_ms(days: f64) -> i64 {
    let ms = days * 86_400_000.0;
    if ms.is_finite() && ms > 0.0 {
        ms.min(i64::MAX as f64) as i64
    } else {
        0
    }
}

impl FilesConfig {
    /// The retention in milliseconds (0 = keep forever).
    pub fn retention_ms(&self) -> i64 {
        days_ms(self.retention_days)
    }

    /// How long an upload session lives, in milliseconds.
    pub fn upload_expiry_ms(&self) -> i64 {
        days_ms(self.upload_expiry_hours / 24.0)
    }

    /// The largest file of `content_type`.
    pub fn max_bytes(&self, content_type: &str) -> u64 {
        let top = content_type.split('/').next().unwrap_or_default();
        if top.eq_ignore_ascii_case("image") || top.eq_ignore_ascii_case("audio") {
            self.max_image_bytes
        } else {
            self.max_file_bytes
        }
    }

    /// Whether `content_type` (a `type/subtype`, parameters ignored) is accepted.
    pub fn allows(&self, content_type: &str) -> bool {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let Some((top, sub)) = essence.split_once('/') else {
            return false;
        };
        let token = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        if !token(top) || !token(sub) {
            return false;
        }
        self.allowed_content_types.iter().any(|pattern| {
            let pattern = pattern.to_ascii_lowercase();
            match pattern.split_once('/') {
                Some((t, "*")) => t == top,
                Some(_) => pattern == essence,
                None => false,
            }
        })
    }

    /// Checks what a client declares before any byte is accepted: 7006 empty, 7005 over the
    /// limit of its type, 90002 a bad or refused content type or resume key.
    pub fn check_declared(&self, declared: &Declared) -> ApiResult<()> {
        if declared.resume_key.is_empty() || declared.resume_key.len() > 256 {
            return Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                "resume_key must be 1..=256 bytes",
            ));
        }
        if !self.allows(&declared.content_type) {
            return Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                format!(
                    "content type {:?} is not accepted (allowed: {})",
                    declared.content_type,
                    self.allowed_content_types.join(", ")
                ),
            ));
        }
        if declared.size == 0 {
            return Err(ApiError::new(codes::ERR_EMPTY_FILE, "the file is empty"));
        }
        let max = self.max_bytes(&declared.content_type);
        if declared.size > max {
            return Err(ApiError::new(
                codes::ERR_FILE_TOO_LARGE,
                format!(
                    "{} bytes of {} is over the limit of {max} bytes",
                    declared.size, declared.content_type
                ),
            ));
        }
        Ok(())
    }
}

/// The file store's state, shared by the gateway, the HTTP routes and the sweeper.
pub struct Files {
    /// Its configuration.
    pub config: FilesConfig,
    /// Signs tokens and URLs.
    pub signer: Signer,
    /// The bytes.
    pub storage: Arc<dyn Storage>,
    /// Upload sessions.
    pub sessions: Sessions,
    /// `http_public_url` of the config, if set.
    public_url: Option<String>,
    /// The HTTP endpoint's own URL, once bound.
    http_url: OnceLock<String>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("config", &self.config)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// Reads the store's secret from `path`, making 32 random bytes (mode 0600) the first time.
fn load_secret(path: &Path) -> Result<Vec<u8>, ServerError> {
    match std::fs::read(path) {
        Ok(secret) if secret.len() >= 16 => return Ok(secret),
        Ok(_) => {
            return Err(ServerError::Config(format!(
                "{}: the file store secret must be at least 16 bytes",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let secret: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, &secret)?;
    file.sync_all()?;
    Ok(secret.to_vec())
}

impl Files {
    /// Opens the store: `config.store_dir` or `<data_dir>/files`, its secret, its sessions and
    /// the local-disk backend.
    pub fn open(
        config: FilesConfig,
        public_url: Option<String>,
        data_dir: &Path,
    ) -> Result<Self, ServerError> {
        let dir = config
            .store_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("files"));
        std::fs::create_dir_all(&dir)?;
        let secret = load_secret(&dir.join("secret"))?;
        let storage = Arc::new(LocalDisk::open(&dir)?);
        let sessions = Sessions::open(&dir)?;
        let public_url = public_url.map(|u| u.trim_end_matches('/').to_owned());
        Ok(Self {
            config,
            signer: Signer::new(secret),
            storage,
            sessions,
            public_url,
            http_url: OnceLock::new(),
        })
    }

    /// Records the HTTP endpoint's URL once it is bound (the base URL when no
    /// `http_public_url` is configured).
    pub fn set_http_url(&self, url: String) {
        let _ = self.http_url.set(url);
    }

    /// The base URL clients reach the store at, if the server has an HTTP endpoint.
    pub fn base_url(&self) -> Option<String> {
        self.public_url
            .clone()
            .or_else(|| self.http_url.get().cloned())
    }

    fn base_url_or_unavailable(&self) -> ApiResult<String> {
        self.base_url().ok_or_else(|| {
            ApiError::new(
                codes::ERR_NOT_AVAILABLE,
                "the server has no file store endpoint (start it with --http-listen)",
            )
        })
    }

    /// `file_upload_ticket`: the base URL and an upload token for `(app, user)`.
    pub fn ticket(&self, app: u64, user: &str) -> ApiResult<RespKind> {
        let base_url = self.base_url_or_unavailable()?;
        let ttl =
            i64::try_from(self.config.token_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_at_ms = now_ms().saturating_add(ttl);
        Ok(RespKind::FileUploadTicket(pb::FileUploadTicketResp {
            base_url,
            token: self.signer.upload_token(app, user, expires_at_ms),
            expires_at_ms,
        }))
    }

    /// The signed download URL of `record`, valid for the configured time.
    pub fn download_url(&self, record: &FileRecord) -> ApiResult<pb::FileDownloadUrlResp> {
        let base_url = self.base_url_or_unavailable()?;
        let ttl = i64::try_from(self.config.url_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_at_ms = now_ms().saturating_add(ttl);
        let query = self.signer.download_query(&record.uuid, expires_at_ms);
        Ok(pb::FileDownloadUrlResp {
            url: format!("{base_url}/files/{}?{query}", record.uuid),
            expires_at_ms,
            size: record.size,
            content_type: record.content_type.clone(),
        })
    }
}

/// `file_download_url` (a read, on the blocking pool): the URL, if `user` may read the file.
pub fn download_url(
    files: &Files,
    store: &dyn Store,
    app: u64,
    user: &str,
    req: &pb::FileDownloadUrlReq,
) -> ApiResult<RespKind> {
    if !storage::is_valid_uuid(&req.uuid) {
        return Err(ApiError::new(
            codes::ERR_FILE_NOT_FOUND,
            format!("no file {:?}", req.uuid),
        ));
    }
    let record = grants::check_read(store, app, user, &req.uuid)?;
    files.download_url(&record).map(RespKind::FileDownloadUrl)
}

/// A file-store write on the commit pipeline.
#[derive(Debug)]
pub enum FileOp {
    /// An upload completed: record the file (owner, size, type) and index it for retention.
    Stored(Box<FileRecord>),
}

/// Stages a [`FileOp`].
pub fn stage(txn: &mut Txn<'_>, app: u64, op: FileOp) -> ApiResult<RespKind> {
    match op {
        FileOp::Stored(record) => {
            grants::stage_record(txn, app, &record)?;
            Ok(RespKind::Logout(pb::LogoutResp {}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_by_content_type() {
        let c = FilesConfig::default();
        assert_eq!(c.max_bytes("image/png"), 28 * MB);
        assert_eq!(c.max_bytes("audio/aac"), 28 * MB);
        assert_eq!(c.max_bytes("video/mp4"), 100 * MB);
        assert_eq!(c.max_bytes("application/pdf"), 100 * MB);
        assert!(c.allows("image/png"));
        assert!(c.allows("Text/Plain; charset=utf-8"));
        assert!(!c.allows("model/gltf"));
        assert!(!c.allows("png"));
        assert!(!c.allows("image/"));
        assert!(!c.allows("image/p ng"));
        let declared = |size, content_type: &str| Declared {
            resume_key: "k".into(),
            size,
            content_type: content_type.into(),
            file_name: None,
        };
        let code = |d: Declared| c.check_declared(&d).map_err(|e| e.code);
        assert_eq!(code(declared(28 * MB, "image/jpeg")), Ok(()));
        assert_eq!(
            code(declared(28 * MB + 1, "image/jpeg")),
            Err(codes::ERR_FILE_TOO_LARGE)
        );
        assert_eq!(code(declared(28 * MB + 1, "video/mp4")), Ok(()));
        assert_eq!(
            code(declared(100 * MB + 1, "video/mp4")),
            Err(codes::ERR_FILE_TOO_LARGE)
        );
        assert_eq!(code(declared(0, "image/png")), Err(codes::ERR_EMPTY_FILE));
        assert_eq!(
            code(declared(1, "model/gltf")),
            Err(codes::ERR_SVR_INVALID_PARAMS)
        );
        let only_png = FilesConfig {
            allowed_content_types: vec!["image/png".into()],
            ..FilesConfig::default()
        };
        assert!(only_png.allows("image/png"));
        assert!(!only_png.allows("image/jpeg"));
        assert_eq!(c.retention_ms(), 7 * 86_400_000);
        assert_eq!(
            FilesConfig {
                retention_days: 0.0,
                ..FilesConfig::default()
            }
            .retention_ms(),
            0
        );
        assert_eq!(c.upload_expiry_ms(), 86_400_000);
    }
}
