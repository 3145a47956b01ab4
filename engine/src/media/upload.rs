//! The upload stage of the send path: a media message is stored in the outbox like any other,
//! but while one of its files has no uuid yet, [`intercept`] (called by the MessageActor's
//! `transmit`) uploads that file instead of sending the message. One file at a time: the server
//! gives an upload ticket (base URL + token), the uploader plugin uploads with
//! `resume_key = "<msg_id>/<elem_index>/<variant>"` (so the file store continues where an
//! earlier attempt stopped, across reconnects and restarts of either side), and the uuid it
//! answers is written into the stored message at once. Then `transmit` runs again: the next file,
//! or, when none is missing, the message itself.
//!
//! **Progress.** `on_message_upload_progress {msg_id, progress}` counts the bytes of all the
//! message's files; it only rises (the highest value reported is kept across retries) and reaches
//! 100 exactly once, after the last upload and before the message is transmitted.
//!
//! **Failures.** A transfer cancelled by `cancel_send_message` ([`cancel`]) is dropped silently
//! (the message is gone). A local file that vanished or changed since creation fails the message
//! at once (7004 / 7006 / 7005); so does the plugin refusing the request. Other failures (the
//! network, the file store restarting) are retried a few times on the same connection; after that
//! the message is marked `send_fail` (6008), and `resend_message` resumes the same uploads. A
//! disconnect changes nothing: the outbox flush of the next login transmits, hence resumes, it.
//! Without an uploader plugin the message fails with 7013.
//!
//! While files upload, the `send_message` call keeps waiting: its ack deadline is pushed forward.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use actix::prelude::*;
use chime_plugin_api::abi::{CHIME_STATUS_CANCELLED, CHIME_STATUS_INVALID_ARGUMENT};
use chime_plugin_api::host::{PluginError, ProgressFn, UploaderPlugin};
use chime_proto::codes;
use chime_proto::pb::{self, request, response};
use serde_json::{Value, json};

use super::{ERR_UPLOAD_FAILED, LocalFile, files};
use crate::ApiError;
use crate::actors::connection::{ConnectionActor, Rpc};
use crate::actors::db_err;
use crate::actors::message::MessageActor;
use crate::events::EventBus;
use crate::model::{Status, StoredMessage};
use crate::store::{WriteBatch, keys};

/// Transient failures retried on one connection before the message is marked failed.
const MAX_ATTEMPTS: u32 = 3;
/// First retry delay; doubles per attempt.
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// How often the `send_message` deadline of an uploading message is pushed forward.
const KEEP_WAITING: Duration = Duration::from_secs(1);

/// The upload stage's state, owned by the MessageActor.
#[derive(Default)]
pub struct Uploads {
    /// Transfers running now, by msg_id.
    active: HashMap<String, Active>,
    /// Highest progress reported per message.
    reported: HashMap<String, Arc<AtomicU8>>,
    /// `(connection epoch, failed attempts on it)` per message.
    attempts: HashMap<String, (u64, u32)>,
    /// Messages whose `send_message` deadline is being pushed forward.
    keeping: HashSet<String>,
    /// Downloads running now (`download_elem`), by task id, so that logout stops them.
    pub(crate) downloads: HashMap<u64, UploaderPlugin>,
}

struct Active {
    plugin: UploaderPlugin,
    task_id: u64,
}

/// How one upload attempt ended badly.
#[derive(Debug)]
pub enum Failure {
    /// `cancel_send_message`.
    Cancelled,
    /// Retrying cannot help (the local file, the plugin refusing the request).
    Fatal(ApiError),
    /// The network or the file store: worth another attempt.
    Transient(ApiError),
}

/// The error of a media send without an uploader plugin.
pub fn no_uploader() -> ApiError {
    ApiError::new(
        codes::ERR_NOT_AVAILABLE,
        "no uploader plugin is loaded: add the uploader plugin (plugins/upload, e.g. \
         libchime_upload_plugin.so) to the plugins list of init_sdk to send image, sound, video \
         and file messages",
    )
}

/// A plugin error as an upload [`Failure`].
pub fn classify(e: PluginError) -> Failure {
    match &e {
        PluginError::CallFailed { status, .. } if *status == CHIME_STATUS_CANCELLED => {
            Failure::Cancelled
        }
        PluginError::CallFailed {
            status, message, ..
        } if *status == CHIME_STATUS_INVALID_ARGUMENT => Failure::Fatal(ApiError::new(
            ERR_UPLOAD_FAILED,
            format!("the upload was refused: {message}"),
        )),
        // The file store refused the request: the plugin passes its `{code, desc, http_status}`.
        PluginError::CallFailed { message, .. } if refusal(message).is_some() => {
            match refusal(message) {
                // An expired token: the next attempt asks for a fresh ticket.
                Some(e) if e.code == codes::ERR_SVR_USER_SIG_EXPIRED => Failure::Transient(e),
                Some(e) => Failure::Fatal(e),
                None => Failure::Transient(ApiError::new(ERR_UPLOAD_FAILED, e.to_string())),
            }
        }
        PluginError::Disabled { .. } => Failure::Fatal(ApiError::new(
            codes::ERR_NOT_AVAILABLE,
            format!("the uploader is not available: {e}"),
        )),
        _ => Failure::Transient(ApiError::new(ERR_UPLOAD_FAILED, e.to_string())),
    }
}

/// The file store's refusal carried in a plugin error message: `{"code", "desc", ...}`.
pub fn refusal(message: &str) -> Option<ApiError> {
    let v: Value = serde_json::from_str(message).ok()?;
    let code = i32::try_from(v.get("code")?.as_i64()?).ok()?;
    let desc = v.get("desc").and_then(Value::as_str).unwrap_or_default();
    (code != 0).then(|| ApiError::new(code, format!("the file store refused the upload: {desc}")))
}

/// Progress in percent of `done` of `total` bytes.
pub fn percent(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    let pct = u128::from(done.min(total)) * 100 / u128::from(total);
    u8::try_from(pct).unwrap_or(100)
}

/// Emits `on_message_upload_progress` if `pct` is above what was reported.
fn report(events: &EventBus, reported: &AtomicU8, msg_id: &str, pct: u8) {
    if reported.fetch_max(pct, Ordering::SeqCst) < pct {
        events.emit(
            "on_message_upload_progress",
            json!({"msg_id": msg_id, "progress": pct}),
        );
    }
}

/// Called by `transmit`: uploads `m`'s next missing file and answers true, or answers false
/// when `m` has nothing left to upload (then `transmit` sends it).
pub(crate) fn intercept(
    act: &mut MessageActor,
    m: &StoredMessage,
    ctx: &mut Context<MessageActor>,
) -> bool {
    let Some((index, file)) = super::next_upload(m) else {
        return false;
    };
    let id = m.msg_id.clone();
    if act.uploads.active.contains_key(&id) {
        return true;
    }
    let (Some(peers), Some(_)) = (act.peers.clone(), act.online) else {
        return true;
    };
    let Some(plugin) = peers.plugins.uploader() else {
        fail(act, &id, no_uploader());
        return true;
    };
    let task_id = plugin.new_task_id();
    act.uploads.active.insert(
        id.clone(),
        Active {
            plugin: plugin.clone(),
            task_id,
        },
    );
    let reported = Arc::clone(act.uploads.reported.entry(id.clone()).or_default());
    let (done_before, total) = super::upload_bytes(m);
    let events = act.shared.events.clone();
    let file_size = file.size;
    let progress_id = id.clone();
    let progress: ProgressFn = Arc::new(move |done, _| {
        let pct = percent(done_before + done.min(file_size), total);
        // 100 is reported once, when every file is up (see `uploaded`).
        report(&events, &reported, &progress_id, pct.min(99));
    });
    let variants = file.variants.clone();
    let resume_key = format!(
        "{id}/{index}/{}",
        variants.first().map_or("file", String::as_str)
    );
    let job = upload_file(
        peers.conn.clone(),
        plugin,
        task_id,
        file.clone(),
        resume_key,
        progress,
    );
    keep_waiting(act, &id, ctx);
    ctx.spawn(job.into_actor(act).map(move |res, act, ctx| {
        uploaded(act, id, task_id, index, variants, res, ctx);
    }));
    true
}

/// One file: check it is unchanged, get a ticket, upload; answers its uuid.
async fn upload_file(
    conn: Addr<ConnectionActor>,
    plugin: UploaderPlugin,
    task_id: u64,
    file: LocalFile,
    resume_key: String,
    progress: ProgressFn,
) -> Result<String, Failure> {
    let size = files::checked_size("file", &file.path).map_err(Failure::Fatal)?;
    if size != file.size {
        return Err(Failure::Fatal(ApiError::new(
            codes::ERR_FILE_NOT_FOUND,
            format!(
                "{} changed since the message was created ({} bytes, now {size})",
                file.path, file.size
            ),
        )));
    }
    let req = Rpc(request::Kind::FileUploadTicket(pb::FileUploadTicketReq {}));
    let ticket = match conn.send(req).await {
        Ok(Ok(pb::Response {
            kind: Some(response::Kind::FileUploadTicket(t)),
            ..
        })) => t,
        Ok(Ok(_)) => {
            return Err(Failure::Transient(ApiError::new(
                codes::ERR_PARSE_RESPONSE,
                "unexpected answer to the upload ticket request",
            )));
        }
        Ok(Err(e)) => return Err(Failure::Transient(e)),
        Err(e) => {
            return Err(Failure::Fatal(ApiError::new(
                codes::ERR_SDK_INTERNAL,
                format!("engine actor: {e}"),
            )));
        }
    };
    let mut options = json!({
        "token": ticket.token,
        "content_type": file.content_type,
        "resume_key": resume_key,
    });
    if !file.file_name.is_empty() {
        options["file_name"] = json!(file.file_name);
    }
    let answer = plugin
        .upload(
            task_id,
            &file.path,
            &ticket.base_url,
            &options.to_string(),
            progress,
        )
        .await
        .map_err(classify)?;
    parse_uploaded(&answer, file.size)
}

/// The uploader's answer `{"uuid", "size"}`, checked against the file's size.
pub fn parse_uploaded(answer: &str, expected_size: u64) -> Result<String, Failure> {
    let bad = |why: String| Failure::Transient(ApiError::new(ERR_UPLOAD_FAILED, why));
    let v: Value = serde_json::from_str(answer)
        .map_err(|e| bad(format!("the uploader answered no JSON ({e}): {answer}")))?;
    let uuid = v
        .get("uuid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| bad(format!("the uploader answered no uuid: {answer}")))?;
    match v.get("size").and_then(Value::as_u64) {
        Some(size) if size == expected_size => Ok(uuid.to_owned()),
        other => Err(bad(format!(
            "the file store holds {other:?} bytes of a {expected_size}-byte file"
        ))),
    }
}

/// The end of one upload attempt, on the actor.
fn uploaded(
    act: &mut MessageActor,
    id: String,
    task_id: u64,
    index: usize,
    variants: Vec<String>,
    res: Result<String, Failure>,
    ctx: &mut Context<MessageActor>,
) {
    // Not this transfer's any more: cancelled, or stopped by a logout (and maybe started again
    // since, as another task, after the next login).
    if act
        .uploads
        .active
        .get(&id)
        .is_none_or(|a| a.task_id != task_id)
    {
        return;
    }
    act.uploads.active.remove(&id);
    match res {
        Ok(uuid) => {
            act.uploads.attempts.remove(&id);
            match record_uuid(act, &id, index, &variants, &uuid) {
                Ok(Some(m)) => {
                    // A generated size is not needed once the file store has it.
                    let up = m.elems.get(index).and_then(|e| e.media.as_ref());
                    for f in up.iter().flat_map(|r| &r.files) {
                        if f.variants == variants {
                            super::remove_generated(f);
                        }
                    }
                    if !super::needs_upload(&m)
                        && let Some(reported) = act.uploads.reported.remove(&id)
                    {
                        report(&act.shared.events, &reported, &id, 100);
                    }
                    act.transmit(&m, ctx);
                }
                Ok(None) => forget(act, &id),
                Err(e) => fail(act, &id, e),
            }
        }
        Err(Failure::Cancelled) => forget(act, &id),
        Err(Failure::Fatal(e)) => fail(act, &id, e),
        Err(Failure::Transient(e)) => {
            // Offline: the outbox flush of the next login transmits (resumes) it. Online (maybe
            // on a newer connection than the attempt's): retry, counting per connection.
            let Some(epoch) = act.online else {
                return;
            };
            let entry = act.uploads.attempts.entry(id.clone()).or_insert((epoch, 0));
            if entry.0 != epoch {
                *entry = (epoch, 0);
            }
            entry.1 += 1;
            let n = entry.1;
            tracing::warn!(msg_id = %id, attempt = n, "media upload failed: {}", e.desc);
            if n >= MAX_ATTEMPTS {
                let e = ApiError::new(
                    ERR_UPLOAD_FAILED,
                    format!("upload failed {n} times: {}", e.desc),
                );
                fail(act, &id, e);
            } else {
                ctx.run_later(RETRY_DELAY * 2u32.pow(n - 1), move |act, ctx| {
                    retry(act, &id, ctx);
                });
            }
        }
    }
}

/// Transmits a message again if it is still waiting to be sent.
fn retry(act: &mut MessageActor, id: &str, ctx: &mut Context<MessageActor>) {
    if let Some(m) = act.transient.get(id).cloned() {
        act.transmit(&m, ctx);
    } else if let Ok(Some((_, m))) = act.find(id)
        && m.status == Status::Sending as i32
    {
        act.transmit(&m, ctx);
    }
}

/// Writes an uploaded uuid into the waiting message; answers it (`None` if it is not waiting).
fn record_uuid(
    act: &mut MessageActor,
    id: &str,
    index: usize,
    variants: &[String],
    uuid: &str,
) -> Result<Option<StoredMessage>, ApiError> {
    let set = |m: &mut StoredMessage| {
        let content = m
            .elems
            .get_mut(index)
            .and_then(|e| e.media.as_mut())
            .and_then(|r| r.elem.as_mut())
            .and_then(|e| e.content.as_mut());
        if let Some(c) = content {
            for v in variants {
                super::set_uuid(c, v, uuid);
            }
        }
    };
    if let Some(m) = act.transient.get_mut(id) {
        set(m);
        return Ok(Some(m.clone()));
    }
    let Some((loc, mut m)) = act.find(id)? else {
        return Ok(None);
    };
    if loc.first() != Some(&keys::table::PENDING) || m.status != Status::Sending as i32 {
        return Ok(None);
    }
    set(&mut m);
    let mut b = WriteBatch::new();
    b.put(loc, prost::Message::encode_to_vec(&m));
    act.acct()?.store.apply(b).map_err(db_err)?;
    Ok(Some(m))
}

/// Marks the message failed and answers its `send_message` calls.
fn fail(act: &mut MessageActor, id: &str, e: ApiError) {
    forget(act, id);
    if let Err(e2) = act.fail(id, &e) {
        tracing::warn!("marking {id} failed: {e2}");
    }
    act.answer(id, Err(e));
}

fn forget(act: &mut MessageActor, id: &str) {
    act.uploads.reported.remove(id);
    act.uploads.attempts.remove(id);
}

/// `cancel_send_message`: stops the message's running upload, if any.
pub(crate) fn cancel(act: &mut MessageActor, id: &str) {
    forget(act, id);
    if let Some(a) = act.uploads.active.remove(id) {
        actix::spawn(async move {
            if let Err(e) = a.plugin.cancel(a.task_id).await {
                tracing::warn!("cancelling an upload: {e}");
            }
        });
    }
}

/// Logout, uninit or a login as another user (the account closes): every running upload and
/// download is told to stop now, and their results will be dropped. The messages stay in the
/// outbox as `sending` with the uuids recorded so far (ARCHITECTURE.md §3: nothing fails because
/// the session ended); the outbox flush after the next login of their user resumes the uploads
/// where the file store stopped. A stopped download answers 7009 and keeps its `.part` file.
pub(crate) fn stop_all(act: &mut MessageActor) {
    let uploads = act
        .uploads
        .active
        .drain()
        .map(|(_, a)| (a.plugin, a.task_id));
    let downloads = act.uploads.downloads.drain().map(|(t, p)| (p, t));
    for (plugin, task_id) in uploads.chain(downloads).collect::<Vec<_>>() {
        if let Err(e) = plugin.cancel_blocking(task_id) {
            tracing::warn!(task_id, "stopping a transfer at logout: {e}");
        }
    }
    act.uploads.attempts.clear();
    act.uploads.keeping.clear();
}

/// Pushes the `send_message` deadline of `id` forward while it uploads.
fn keep_waiting(act: &mut MessageActor, id: &str, ctx: &mut Context<MessageActor>) {
    if !act.uploads.keeping.insert(id.to_owned()) {
        return;
    }
    let id = id.to_owned();
    ctx.run_later(KEEP_WAITING, move |act, ctx| {
        act.uploads.keeping.remove(&id);
        if !act.uploads.active.contains_key(&id) {
            return;
        }
        let timeout = Duration::from_millis(act.shared.config.send_timeout_ms);
        let deadline = std::time::Instant::now() + timeout;
        if let Some(list) = act.waiters.get_mut(&id) {
            for w in list {
                w.0 = w.0.max(deadline);
            }
        }
        keep_waiting(act, &id, ctx);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_counts_bytes_and_never_passes_100() {
        assert_eq!(percent(0, 200), 0);
        assert_eq!(percent(199, 200), 99);
        assert_eq!(percent(200, 200), 100);
        assert_eq!(percent(500, 200), 100);
        assert_eq!(percent(0, 0), 100);
        assert_eq!(percent(u64::MAX / 2, u64::MAX), 49);
    }

    #[test]
    fn the_uploaders_answer_must_name_the_file_and_its_size() {
        assert_eq!(
            parse_uploaded(r#"{"uuid":"u1","size":5}"#, 5).unwrap(),
            "u1"
        );
        for bad in [
            r#"{"uuid":"u1","size":4}"#,
            r#"{"size":5}"#,
            r#"{"uuid":""}"#,
            "nope",
        ] {
            assert!(
                matches!(parse_uploaded(bad, 5), Err(Failure::Transient(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn cancelled_and_refused_transfers_are_not_retried() {
        let failed = |status| PluginError::CallFailed {
            name: "upload".into(),
            status,
            message: "m".into(),
        };
        assert!(matches!(
            classify(failed(CHIME_STATUS_CANCELLED)),
            Failure::Cancelled
        ));
        assert!(matches!(
            classify(failed(CHIME_STATUS_INVALID_ARGUMENT)),
            Failure::Fatal(e) if e.code == 6008
        ));
        assert!(matches!(classify(failed(1)), Failure::Transient(e) if e.code == 6008));
        let refused = |message: &str| PluginError::CallFailed {
            name: "upload".into(),
            status: 1,
            message: message.into(),
        };
        assert!(matches!(
            classify(refused(r#"{"code":7005,"desc":"too large","http_status":413}"#)),
            Failure::Fatal(e) if e.code == 7005 && e.desc.ends_with("too large")
        ));
        assert!(matches!(
            classify(refused(r#"{"code":70001,"desc":"token expired","http_status":401}"#)),
            Failure::Transient(e) if e.code == 70001
        ));
    }
}
