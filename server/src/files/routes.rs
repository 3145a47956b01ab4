//! The file store's HTTP routes under `/files` (merged into the server's HTTP endpoint):
//!
//! - `POST /files/uploads` (bearer upload token; JSON `{resume_key, size, content_type,
//!   file_name?}`) → `{upload_id, offset, size}` (+ `uuid` when already complete);
//! - `PUT /files/uploads/{upload_id}?offset=N` (bearer token; body = the bytes from N) →
//!   `{offset, size}`, and `uuid` once `offset == size`;
//! - `GET /files/{uuid}?exp=…&sig=…` (signed URL; `Range: bytes=N-` or `bytes=N-M` → 206).
//!
//! Errors answer an HTTP status and `{code, desc}` with the code of api.md §6 (and `offset` on
//! a 409, so that a client out of step can resume from the right place). Bodies stream: an
//! upload is appended to its session's file as it arrives (whatever arrived before a dropped
//! connection is kept), a download is read from storage in chunks on the blocking pool.

use std::io::Read as _;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use chime_proto::codes;
use futures_util::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{mpsc, oneshot};

use crate::Shared;
use crate::commit::{Command, Msg, Op, Reply, now_ms};
use crate::error::ApiError;
use crate::files::grants::FileRecord;
use crate::files::sessions::{Declared, Session, Sessions, is_valid_upload_id};
use crate::files::signing::{SignError, TokenClaims};
use crate::files::storage::{ObjectMeta, is_valid_uuid};
use crate::files::{FileOp, Files, sniff};

/// Chunk size of a download stream.
const DOWNLOAD_CHUNK: usize = 256 * 1024;
/// Write buffer of an upload.
const UPLOAD_BUFFER: usize = 1024 * 1024;

/// The file store's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/files/uploads", post(begin))
        .route("/files/uploads/{upload_id}", put(append))
        .route("/files/{uuid}", get(download))
        .with_state(shared)
}

/// An error answer: HTTP status, api.md code, description, and the offset to resume from when
/// the client is out of step.
#[derive(Debug)]
struct HttpError {
    status: StatusCode,
    code: i32,
    desc: String,
    offset: Option<u64>,
}

impl HttpError {
    fn new(status: StatusCode, code: i32, desc: impl Into<String>) -> Self {
        Self {
            status,
            code,
            desc: desc.into(),
            offset: None,
        }
    }

    fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::warn!("file store: {what}: {e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::ERR_SVR_INTERNAL,
            format!("{what} failed"),
        )
    }

    /// An API error with the HTTP status that fits its code.
    fn api(e: ApiError) -> Self {
        let status = match e.code {
            codes::ERR_FILE_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            codes::ERR_FILE_NOT_FOUND => StatusCode::NOT_FOUND,
            codes::ERR_SVR_GROUP_PERMISSION_DENIED => StatusCode::FORBIDDEN,
            codes::ERR_SVR_INTERNAL => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.code, e.desc)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let mut body = json!({"code": self.code, "desc": self.desc});
        if let Some(offset) = self.offset {
            body["offset"] = json!(offset);
        }
        (self.status, axum::Json(body)).into_response()
    }
}

type HttpResult<T> = Result<T, HttpError>;

/// Runs blocking file work on the blocking pool.
async fn blocking<T, F>(what: &'static str, f: F) -> HttpResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(HttpError::internal(what, e)),
        Err(e) => Err(HttpError::internal(what, e)),
    }
}

/// The user an upload request acts as: its bearer token, checked (401 otherwise).
fn authenticate(shared: &Shared, headers: &HeaderMap) -> HttpResult<TokenClaims> {
    let unauthorized =
        |code, desc: &str| HttpError::new(StatusCode::UNAUTHORIZED, code, desc.to_owned());
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            unauthorized(
                codes::ERR_SVR_USER_SIG_EMPTY,
                "an `Authorization: Bearer <upload token>` header is required",
            )
        })?;
    let claims = shared
        .files
        .signer
        .check_upload_token(token.trim(), now_ms())
        .map_err(|e| match e {
            SignError::Expired => unauthorized(
                codes::ERR_SVR_USER_SIG_EXPIRED,
                "the upload token expired; ask for a new ticket",
            ),
            other => unauthorized(
                codes::ERR_SVR_USER_SIG_INVALID,
                &format!("invalid upload token: {other}"),
            ),
        })?;
    if !shared.apps.contains_key(&claims.app) {
        return Err(unauthorized(
            codes::ERR_SVR_INVALID_SDK_APP_ID,
            "the token's SDKAppID is not served here",
        ));
    }
    Ok(claims)
}

/// The answer describing a session at `offset`.
fn session_answer(session: &Session, offset: u64) -> Value {
    let mut body = json!({
        "upload_id": session.upload_id,
        "offset": offset,
        "size": session.size,
    });
    if let Some(uuid) = &session.uuid {
        body["uuid"] = json!(uuid);
    }
    body
}

/// `POST /files/uploads`: begins or resumes the upload of `(user, resume_key)`.
async fn begin(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResult<axum::Json<Value>> {
    let claims = authenticate(&shared, &headers)?;
    let declared: Declared = serde_json::from_slice(&body).map_err(|e| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            codes::ERR_SVR_INVALID_PARAMS,
            format!("expected JSON {{resume_key, size, content_type, file_name?}}: {e}"),
        )
    })?;
    shared
        .files
        .config
        .check_declared(&declared)
        .map_err(HttpError::api)?;
    // Serialized with the session's writers: a different file under the same key restarts the
    // session, which must not happen under a `PUT` in progress.
    let upload_id = Sessions::upload_id(claims.app, &claims.user, &declared.resume_key);
    let lock = shared.files.sessions.lock(&upload_id);
    let _writer = lock.lock().await;
    let files = Arc::clone(&shared);
    let (session, offset) = blocking("begin upload", move || {
        let sessions = &files.files.sessions;
        let mut session = sessions.begin(claims.app, &claims.user, &declared, now_ms())?;
        // A completed upload whose file has since expired is uploaded again.
        if let Some(uuid) = &session.uuid
            && files.files.storage.meta(uuid)?.is_none()
        {
            sessions.discard(&session.upload_id)?;
            session = sessions.begin(claims.app, &claims.user, &declared, now_ms())?;
        }
        let offset = sessions.offset(&session)?;
        Ok((session, offset))
    })
    .await?;
    Ok(axum::Json(session_answer(&session, offset)))
}

/// The query of a `PUT`.
#[derive(Debug, Deserialize)]
struct AppendQuery {
    offset: u64,
}

/// `PUT /files/uploads/{upload_id}?offset=N`: appends the body at `N`, which must be the
/// session's current offset (409 with the right one otherwise); completes the upload when the
/// declared size is reached.
async fn append(
    State(shared): State<Arc<Shared>>,
    Path(upload_id): Path<String>,
    Query(query): Query<AppendQuery>,
    headers: HeaderMap,
    body: Body,
) -> HttpResult<axum::Json<Value>> {
    let claims = authenticate(&shared, &headers)?;
    let not_found = || {
        HttpError::new(
            StatusCode::NOT_FOUND,
            codes::ERR_FILE_NOT_FOUND,
            "no such upload; begin it with POST /files/uploads",
        )
    };
    if !is_valid_upload_id(&upload_id) {
        return Err(not_found());
    }
    let lock = shared.files.sessions.lock(&upload_id);
    let _writer = lock.lock().await;
    let files = Arc::clone(&shared);
    let id = upload_id.clone();
    let (session, current) = blocking("load upload", move || {
        let sessions = &files.files.sessions;
        match sessions.load(&id)? {
            Some(s) => {
                let offset = sessions.offset(&s)?;
                Ok(Some((s, offset)))
            }
            None => Ok(None),
        }
    })
    .await?
    .ok_or_else(not_found)?;
    // Someone else's session reads as missing.
    if session.app != claims.app || session.user != claims.user {
        return Err(not_found());
    }
    if query.offset != current {
        let mut e = HttpError::new(
            StatusCode::CONFLICT,
            codes::ERR_SVR_INVALID_PARAMS,
            format!(
                "offset {} is not the upload's offset {current}; resume from there",
                query.offset
            ),
        );
        e.offset = Some(current);
        return Err(e);
    }
    if session.uuid.is_some() {
        // Already complete (a retry after a lost answer).
        return Ok(axum::Json(session_answer(&session, current)));
    }
    let room = session.size - current;
    let part = shared.files.sessions.part_path(&upload_id);
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .await
        .map_err(|e| HttpError::internal("open upload", e))?;
    let mut out = tokio::io::BufWriter::with_capacity(UPLOAD_BUFFER, file);
    let mut written = 0u64;
    let mut stream = body.into_data_stream();
    let mut failure = None;
    // While the file's first bytes are not all in, the body is held back until they are and
    // fit the declared type (`sniff`): a mismatch stores nothing.
    let sniff_len = sniff::SNIFF_BYTES.min(usize::try_from(session.size).unwrap_or(usize::MAX));
    let mut head: Option<Vec<u8>> = if (current as usize) < sniff_len {
        Some(read_head(&part, current as usize).await?)
    } else {
        None
    };
    let held_from = head.as_ref().map_or(0, Vec::len);
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                // The connection dropped mid-body: keep what arrived, the client resumes.
                tracing::debug!(upload_id, written, "upload body interrupted: {e}");
                failure = Some(HttpError::new(
                    StatusCode::BAD_REQUEST,
                    codes::ERR_SVR_INVALID_PARAMS,
                    "the body was interrupted; resume from the upload's offset",
                ));
                break;
            }
        };
        let held = head.as_ref().map_or(0, |h| h.len() - held_from) as u64;
        if written + held + chunk.len() as u64 > room {
            failure = Some(HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::ERR_FILE_TOO_LARGE,
                format!(
                    "the body goes past the declared size of {} bytes",
                    session.size
                ),
            ));
            break;
        }
        if let Some(h) = head.as_mut() {
            h.extend_from_slice(&chunk);
            if h.len() < sniff_len {
                continue;
            }
            if let Err(why) = sniff::check(&session.content_type, &h[..sniff_len]) {
                failure = Some(mismatch(why));
                head = None;
                break;
            }
            let held = h.split_off(held_from);
            head = None;
            if let Err(e) = out.write_all(&held).await {
                failure = Some(HttpError::internal("write upload", e));
                break;
            }
            written += held.len() as u64;
            continue;
        }
        if let Err(e) = out.write_all(&chunk).await {
            failure = Some(HttpError::internal("write upload", e));
            break;
        }
        written += chunk.len() as u64;
    }
    // A body that ended before the first bytes were all in: keep what came (the next PUT
    // brings the rest and the check).
    if let Some(h) = head.take()
        && failure.is_none()
    {
        let held = &h[held_from..];
        match out.write_all(held).await {
            Ok(()) => written += held.len() as u64,
            Err(e) => failure = Some(HttpError::internal("write upload", e)),
        }
    }
    // Durable before it is acknowledged (or kept for a resume).
    let flushed = match out.flush().await {
        Ok(()) => out.get_ref().sync_data().await,
        Err(e) => Err(e),
    };
    if let Err(e) = flushed {
        return Err(HttpError::internal("flush upload", e));
    }
    let offset = current + written;
    if let Some(mut e) = failure {
        e.offset = Some(offset);
        return Err(e);
    }
    if offset < session.size {
        return Ok(axum::Json(session_answer(&session, offset)));
    }
    let session = complete(&shared, session).await?;
    Ok(axum::Json(session_answer(&session, offset)))
}

/// The first `n` bytes an upload has so far (`n` is at most [`sniff::SNIFF_BYTES`]).
async fn read_head(part: &std::path::Path, n: usize) -> HttpResult<Vec<u8>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; n];
    let mut file = tokio::fs::File::open(part)
        .await
        .map_err(|e| HttpError::internal("read upload", e))?;
    tokio::io::AsyncReadExt::read_exact(&mut file, &mut buf)
        .await
        .map_err(|e| HttpError::internal("read upload", e))?;
    Ok(buf)
}

/// The content does not fit the declared type: 415 with the store's code for a refused type.
fn mismatch(why: String) -> HttpError {
    HttpError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        codes::ERR_SVR_INVALID_PARAMS,
        why,
    )
}

/// Stores a session's complete bytes as a new object, records it through the commit pipeline
/// and marks the session complete with the uuid.
async fn complete(shared: &Arc<Shared>, mut session: Session) -> HttpResult<Session> {
    let uuid = format!("{:032x}", rand::random::<u128>());
    let meta = ObjectMeta {
        size: session.size,
        content_type: session.content_type.clone(),
        file_name: session.file_name.clone(),
    };
    let files = Arc::clone(shared);
    let (id, object) = (session.upload_id.clone(), uuid.clone());
    blocking("store file", move || {
        let part = files.files.sessions.part_path(&id);
        let stored = std::fs::metadata(&part)?.len();
        if stored != meta.size {
            return Err(std::io::Error::other(format!(
                "{stored} bytes received, {} declared",
                meta.size
            )));
        }
        files.files.storage.put(&object, &part, &meta)
    })
    .await?;
    let record = FileRecord {
        uuid: uuid.clone(),
        owner: session.user.clone(),
        size: session.size,
        content_type: session.content_type.clone(),
        file_name: session.file_name.clone(),
        created_ms: now_ms(),
    };
    commit(
        shared,
        session.app,
        &session.user,
        Op::Files(FileOp::Stored(Box::new(record))),
    )
    .await
    .map_err(HttpError::api)?;
    session.uuid = Some(uuid);
    let files = Arc::clone(shared);
    let saved = session.clone();
    blocking("save upload", move || files.files.sessions.save(&saved)).await?;
    tracing::debug!(
        upload_id = session.upload_id,
        uuid = session.uuid.as_deref().unwrap_or_default(),
        size = session.size,
        "upload complete"
    );
    Ok(session)
}

/// Runs `op` on the commit pipeline as `(app, user)` and waits for its answer.
pub(crate) async fn commit(shared: &Shared, app: u64, user: &str, op: Op) -> Result<(), ApiError> {
    let (tx, rx) = oneshot::channel();
    let cmd = Command {
        app,
        user: user.to_owned(),
        op,
        reply: Reply::Once(tx),
    };
    let stopping = || ApiError::new(codes::ERR_SVR_INTERNAL, "server stopping");
    shared
        .commit
        .send(Msg::Cmd(cmd))
        .await
        .map_err(|_| stopping())?;
    rx.await.map_err(|_| stopping())?.map(drop)
}

/// The query of a download URL.
#[derive(Debug, Deserialize)]
struct DownloadQuery {
    exp: Option<String>,
    sig: Option<String>,
}

/// The byte range a `Range` header asks for within `size`: `Ok(None)` for the whole object
/// (no header, or one this server does not serve, which HTTP says to ignore), `Err` when it
/// starts past the end (416).
fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    if start.is_empty() {
        // A suffix: the last N bytes.
        let Ok(n) = end.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(());
        }
        return Ok(Some((size.saturating_sub(n), size - 1)));
    }
    let Ok(start) = start.parse::<u64>() else {
        return Ok(None);
    };
    if start >= size {
        return Err(());
    }
    let end = if end.is_empty() {
        size - 1
    } else {
        match end.parse::<u64>() {
            Ok(e) if e >= start => e.min(size - 1),
            _ => return Ok(None),
        }
    };
    Ok(Some((start, end)))
}

/// `GET /files/{uuid}?exp=…&sig=…`: the object's bytes (or a range of them).
async fn download(
    State(shared): State<Arc<Shared>>,
    Path(uuid): Path<String>,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> HttpResult<Response> {
    let forbidden = |desc: &str| {
        HttpError::new(
            StatusCode::FORBIDDEN,
            codes::ERR_SVR_GROUP_PERMISSION_DENIED,
            desc.to_owned(),
        )
    };
    let (Some(exp), Some(sig)) = (query.exp, query.sig) else {
        return Err(forbidden(
            "a signed URL is required (ask for one with file_download_url)",
        ));
    };
    if !is_valid_uuid(&uuid) {
        return Err(forbidden("invalid signature"));
    }
    shared
        .files
        .signer
        .check_download(&uuid, &exp, &sig, now_ms())
        .map_err(|e| match e {
            SignError::Expired => forbidden("the URL expired; ask for a new one"),
            other => forbidden(&format!("invalid signature: {other}")),
        })?;
    let files: Arc<Files> = Arc::clone(&shared.files);
    let id = uuid.clone();
    let Some(meta) = blocking("read file", move || files.storage.meta(&id)).await? else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            codes::ERR_FILE_NOT_FOUND,
            "the file is gone (expired)",
        ));
    };
    let size = meta.size;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let range = match parse_range(range.as_deref(), size) {
        Ok(r) => r,
        Err(()) => {
            let mut response = HttpError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                codes::ERR_SVR_INVALID_PARAMS,
                format!("the range starts past the end of {size} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let length = if size == 0 { 0 } else { end - start + 1 };
    let body = stream_object(Arc::clone(&shared.files), uuid, start, length);
    let mut response = Response::new(body);
    *response.status_mut() = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = response.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Ok(v) = HeaderValue::from_str(&meta.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if range.is_some()
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(response)
}

/// A body streaming `length` bytes of object `uuid` from `start`, read on the blocking pool.
fn stream_object(files: Arc<Files>, uuid: String, start: u64, length: u64) -> Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let object = match files.storage.read_from(&uuid, start) {
            Ok(Some(o)) => o,
            Ok(None) => {
                let _ = tx.blocking_send(Err(std::io::Error::from(std::io::ErrorKind::NotFound)));
                return;
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut reader = object.reader.take(length);
        loop {
            let mut buf = vec![0u8; DOWNLOAD_CHUNK];
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return; // the client went away
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=4-"), 10), Ok(Some((4, 9))));
        assert_eq!(parse_range(Some("bytes=0-0"), 10), Ok(Some((0, 0))));
        assert_eq!(parse_range(Some("bytes=2-99"), 10), Ok(Some((2, 9))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=5-4"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=x-"), 10), Ok(None));
    }
}
