//! `download_elem` and `get_elem_url`. The file of an elem (by `image_type`: an image's origin,
//! large or thumb, a video's snapshot, else the elem's one file) is named by its uuid; the server
//! answers a signed, expiring URL for it to the conversation's members (`file_download_url`),
//! and the uploader plugin downloads it with `on_download_progress {msg_id, elem_index,
//! current_size, total_size}`.
//!
//! **Cache by uuid** (the seed's advice). Files land in the account's media cache,
//! `<data_dir>/media/<sdk_app_id>/<user>/<uuid>`, first as `<uuid>.part` (an interrupted download
//! resumes from it with a Range request), renamed when complete and of the recorded size; the
//! requested path gets a copy. A later download of the same uuid, to any path, copies from the
//! cache without the network (one final progress event). Two downloads of one file at once: the
//! second answers 6015.
//!
//! Lookups of the elem go through the MessageActor ([`ElemOf`]); the transfer itself runs in the
//! caller's task and on the plugin's threads, never on an actor.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use chime_plugin_api::abi::CHIME_STATUS_CANCELLED;
use chime_plugin_api::host::{PluginError, ProgressFn, UploaderPlugin};
use chime_proto::codes;
use chime_proto::pb::{self, elem::Content, request, response};
use serde_json::{Value, json};

use super::{ERR_DOWNLOAD_FAILED, RemoteFile, upload};
use crate::actors::Peers;
use crate::actors::connection::Rpc;
use crate::actors::message::MessageActor;
use crate::events::EventBus;
use crate::model::StoredElem;
use crate::{ApiError, Result};

/// The variant of an elem that `image_type` asks for (api.md: `origin`, `large`, `thumb`,
/// `snapshot`; absent = the elem's main file).
pub fn variant(content: &Content, image_type: Option<&str>) -> Result<&'static str> {
    let bad = |what: &str| {
        ApiError::invalid_param(format!("image_type {what} does not apply to this elem"))
    };
    Ok(match (content, image_type) {
        (Content::Image(_), None | Some("origin")) => "origin",
        (Content::Image(_), Some("large")) => "large",
        (Content::Image(_), Some("thumb")) => "thumb",
        (Content::Video(_), Some("snapshot")) => "snapshot",
        (Content::Video(_), None) => "video",
        (Content::Sound(_), None) => "sound",
        (Content::File(_), None) => "file",
        (Content::Image(_) | Content::Video(_) | Content::Sound(_) | Content::File(_), Some(t)) => {
            return Err(bad(t));
        }
        _ => {
            return Err(ApiError::new(
                codes::ERR_INVALID_MSG_ELEM,
                "this elem has no file to download",
            ));
        }
    })
}

/// The remote file an elem's `image_type` names (6016 when it was never uploaded).
pub fn remote_of(e: &StoredElem, image_type: Option<&str>) -> Result<RemoteFile> {
    let content = super::content(e).ok_or_else(|| {
        ApiError::new(
            codes::ERR_INVALID_MSG_ELEM,
            "this elem has no file to download",
        )
    })?;
    let v = variant(content, image_type)?;
    match super::remote(content, v) {
        Some(r) if !r.uuid.is_empty() => Ok(r),
        _ => Err(ApiError::new(
            codes::ERR_INVALID_MSG_ELEM,
            format!("the {v} file of this elem is not uploaded (yet)"),
        )),
    }
}

/// The elem `elem_index` of message `msg_id`, and the account's media cache directory.
#[derive(Message)]
#[rtype(result = "Result<(StoredElem, PathBuf)>")]
pub struct ElemOf {
    /// The message.
    pub msg_id: String,
    /// Index in its `elem_list`.
    pub elem_index: usize,
}

impl Handler<ElemOf> for MessageActor {
    type Result = Result<(StoredElem, PathBuf)>;
    fn handle(&mut self, msg: ElemOf, _: &mut Context<Self>) -> Self::Result {
        let user = self.acct()?.user.clone();
        let m = match self.find(&msg.msg_id)? {
            Some((_, m)) => m,
            None => self
                .transient
                .get(&msg.msg_id)
                .or_else(|| self.created.get(&msg.msg_id))
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid_param(format!("msg_id {} not found", msg.msg_id))
                })?,
        };
        let e = m.elems.get(msg.elem_index).cloned().ok_or_else(|| {
            ApiError::invalid_param(format!(
                "elem_index {} is out of range (the message has {} elems)",
                msg.elem_index,
                m.elems.len()
            ))
        })?;
        let config = &self.shared.config;
        let cache = config
            .data_dir
            .join("media")
            .join(config.sdk_app_id.to_string())
            .join(user);
        Ok((e, cache))
    }
}

/// Registers a running download (`plugin: Some`) so that logout stops it
/// ([`super::upload::stop_all`]), or forgets a finished one (`None`). Registering answers 7009
/// when no account is open (the user logged out meanwhile).
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct TrackDownload {
    /// The plugin's task id.
    pub task_id: u64,
    /// The plugin running it; `None` = it ended.
    pub plugin: Option<UploaderPlugin>,
}

impl Handler<TrackDownload> for MessageActor {
    type Result = Result<()>;
    fn handle(&mut self, msg: TrackDownload, _: &mut Context<Self>) -> Self::Result {
        match msg.plugin {
            None => {
                self.uploads.downloads.remove(&msg.task_id);
            }
            Some(plugin) => {
                if self.acct.is_none() {
                    return Err(interrupted());
                }
                self.uploads.downloads.insert(msg.task_id, plugin);
            }
        }
        Ok(())
    }
}

fn interrupted() -> ApiError {
    ApiError::new(
        codes::ERR_INTERRUPTED,
        "the download was stopped by a logout; download again after login (it resumes)",
    )
}

/// A signed download URL of `uuid` from the server (10007 for a non-member, 7004 if unknown).
pub async fn signed_url(peers: &Peers, uuid: &str) -> Result<pb::FileDownloadUrlResp> {
    let req = Rpc(request::Kind::FileDownloadUrl(pb::FileDownloadUrlReq {
        uuid: uuid.to_owned(),
    }));
    match peers.conn.send(req).await {
        Ok(Ok(pb::Response {
            kind: Some(response::Kind::FileDownloadUrl(r)),
            ..
        })) => Ok(r),
        Ok(Ok(_)) => Err(ApiError::new(
            codes::ERR_PARSE_RESPONSE,
            "unexpected answer to the download URL request",
        )),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(ApiError::new(
            codes::ERR_SDK_INTERNAL,
            format!("engine actor: {e}"),
        )),
    }
}

/// Files being downloaded into a cache right now (process-wide: caches are files).
static DOWNLOADING: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// Holds a cache file for one download; released on drop.
struct Claim(PathBuf);

impl Claim {
    fn take(path: &Path) -> Result<Claim> {
        let mut set = DOWNLOADING.lock().unwrap_or_else(|p| p.into_inner());
        if !set
            .get_or_insert_with(HashSet::new)
            .insert(path.to_path_buf())
        {
            return Err(ApiError::new(
                codes::ERR_IN_PROCESS,
                "this file is being downloaded already",
            ));
        }
        Ok(Claim(path.to_path_buf()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut set = DOWNLOADING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = set.as_mut() {
            s.remove(&self.0);
        }
    }
}

fn io_err(what: &Path, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(codes::ERR_IO, format!("{}: {e}", what.display()))
}

/// The size of a file, if it exists.
fn size_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// Copies the cached file to the requested path (nothing when they are the same file).
fn deliver(cached: &Path, path: &Path) -> Result<()> {
    if cached == path {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    std::fs::copy(cached, path).map_err(|e| io_err(path, e))?;
    Ok(())
}

/// One `download_elem` call.
pub struct Request {
    /// The message.
    pub msg_id: String,
    /// The elem's index.
    pub elem_index: usize,
    /// api.md `image_type`.
    pub image_type: Option<String>,
    /// Where the file goes.
    pub path: PathBuf,
}

fn progress_event(events: &EventBus, r: &Request, current: u64, total: u64) {
    events.emit(
        "on_download_progress",
        json!({
            "msg_id": r.msg_id, "elem_index": r.elem_index,
            "current_size": current, "total_size": total,
        }),
    );
}

/// `download_elem`: answers `{path}` once the file is at `path`.
pub async fn download(peers: &Peers, events: &EventBus, r: Request) -> Result<Value> {
    let (e, cache) = peers
        .msg
        .send(ElemOf {
            msg_id: r.msg_id.clone(),
            elem_index: r.elem_index,
        })
        .await
        .map_err(|e| ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine actor: {e}")))??;
    let remote = remote_of(&e, r.image_type.as_deref())?;
    if remote.uuid.contains(['/', '\\']) || remote.uuid.starts_with('.') {
        return Err(ApiError::new(
            codes::ERR_INVALID_MSG_ELEM,
            "the elem's uuid is not a file name",
        ));
    }
    std::fs::create_dir_all(&cache).map_err(|e| io_err(&cache, e))?;
    let cached = cache.join(&remote.uuid);
    let answer = json!({"path": r.path.display().to_string()});
    let _claim = Claim::take(&cached)?;
    if size_of(&cached) == Some(remote.size) {
        deliver(&cached, &r.path)?;
        progress_event(events, &r, remote.size, remote.size);
        return Ok(answer);
    }
    let plugin = peers.plugins.uploader().ok_or_else(upload::no_uploader)?;
    let url = signed_url(peers, &remote.uuid).await?;
    let part = cache.join(format!("{}.part", remote.uuid));
    let reported = Arc::new(AtomicU8::new(0));
    let progress: ProgressFn = {
        let reported = Arc::clone(&reported);
        let events = events.clone();
        let (msg_id, elem_index, total) = (r.msg_id.clone(), r.elem_index, remote.size);
        Arc::new(move |done, _| {
            let pct = upload::percent(done, total);
            if done == 0 || reported.fetch_max(pct, Ordering::SeqCst) >= pct {
                return;
            }
            events.emit(
                "on_download_progress",
                json!({
                    "msg_id": msg_id, "elem_index": elem_index,
                    "current_size": done.min(total), "total_size": total,
                }),
            );
        })
    };
    let options = json!({"expected_size": remote.size}).to_string();
    let task_id = plugin.new_task_id();
    let part_text = part.display().to_string();
    let track = |plugin| TrackDownload { task_id, plugin };
    peers
        .msg
        .send(track(Some(plugin.clone())))
        .await
        .map_err(|e| ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine actor: {e}")))??;
    let got = plugin
        .download(task_id, &part_text, &url.url, &options, progress)
        .await;
    let _ = peers.msg.send(track(None)).await;
    got.map_err(|e| match e {
        PluginError::CallFailed { status, .. } if status == CHIME_STATUS_CANCELLED => interrupted(),
        e => ApiError::new(ERR_DOWNLOAD_FAILED, format!("download failed: {e}")),
    })?;
    match size_of(&part) {
        Some(s) if s == remote.size => {}
        other => {
            let _ = std::fs::remove_file(&part);
            return Err(ApiError::new(
                ERR_DOWNLOAD_FAILED,
                format!(
                    "downloaded {other:?} bytes of a {}-byte file; try again",
                    remote.size
                ),
            ));
        }
    }
    std::fs::rename(&part, &cached).map_err(|e| io_err(&cached, e))?;
    deliver(&cached, &r.path)?;
    // The last event says the whole file arrived, even if the plugin's last report did not.
    if reported.fetch_max(100, Ordering::SeqCst) < 100 {
        progress_event(events, &r, remote.size, remote.size);
    }
    Ok(answer)
}

/// `get_elem_url`: `{url}` (signed, expiring; for the conversation's members).
pub async fn elem_url(
    peers: &Peers,
    msg_id: String,
    elem_index: usize,
    image_type: Option<String>,
) -> Result<Value> {
    let (e, _) = peers
        .msg
        .send(ElemOf { msg_id, elem_index })
        .await
        .map_err(|e| ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine actor: {e}")))??;
    let remote = remote_of(&e, image_type.as_deref())?;
    let url = signed_url(peers, &remote.uuid).await?;
    Ok(json!({"url": url.url, "expires_at_ms": url.expires_at_ms, "size": remote.size}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{LocalFile, elem, image_type};

    #[test]
    fn image_type_picks_the_file_and_must_fit_the_elem() {
        let info = |t, uuid: &str| pb::ImageInfo {
            image_type: t,
            uuid: uuid.into(),
            size: 7,
            ..Default::default()
        };
        let img = elem(
            Content::Image(pb::ImageElem {
                images: vec![
                    info(image_type::ORIGIN, "o"),
                    info(image_type::LARGE, "l"),
                    info(image_type::THUMB, ""),
                ],
                format: "png".into(),
            }),
            Vec::<LocalFile>::new(),
        );
        assert_eq!(remote_of(&img, None).unwrap().uuid, "o");
        assert_eq!(remote_of(&img, Some("large")).unwrap().uuid, "l");
        assert_eq!(remote_of(&img, Some("thumb")).unwrap_err().code, 6016);
        assert_eq!(remote_of(&img, Some("snapshot")).unwrap_err().code, 6017);
        let video = elem(
            Content::Video(pb::VideoElem {
                video_uuid: "v".into(),
                snapshot_uuid: "s".into(),
                ..Default::default()
            }),
            Vec::new(),
        );
        assert_eq!(remote_of(&video, None).unwrap().uuid, "v");
        assert_eq!(remote_of(&video, Some("snapshot")).unwrap().uuid, "s");
        let text = crate::codec::text_elem("hi");
        assert_eq!(remote_of(&text, None).unwrap_err().code, 6016);
    }

    #[test]
    fn a_cache_file_is_claimed_by_one_download_at_a_time() {
        let p = Path::new("/tmp/chime-claim-test/u1");
        let first = Claim::take(p).unwrap();
        assert_eq!(Claim::take(p).err().map(|e| e.code), Some(6015));
        drop(first);
        assert!(Claim::take(p).is_ok());
    }
}
