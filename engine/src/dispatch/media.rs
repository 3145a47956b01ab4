//! Rich media methods (api.md §4.2, issue 6): `create_image/sound/video/file/location/
//! face_message`, `append_elem`, `download_elem`, `get_elem_url`. Sending is `send_message`'s
//! (the upload stage runs inside the send path, `crate::media::upload`).

use std::path::PathBuf;

use actix::prelude::*;
use serde_json::Value;

use super::params::*;
use crate::actors::Peers;
use crate::actors::message::{Create, CreateKind, MessageActor};
use crate::events::EventBus;
use crate::media::append::{AppendElem, may_follow};
use crate::media::{create, download};
use crate::model::StoredElem;
use crate::{ApiError, Result, codec};
use chime_proto::codes;

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &[
    "create_image_message",
    "create_sound_message",
    "create_video_message",
    "create_file_message",
    "create_location_message",
    "create_face_message",
    "append_elem",
    "download_elem",
    "get_elem_url",
];

/// The methods of this area that work before login: creating messages, as for text (the first
/// seven of [`METHODS`]).
pub(super) const PRE_LOGIN: &[&str] = METHODS.split_at(7).0;

/// Runs blocking work (file checks, image scaling) on its own thread, whatever the caller's
/// executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("chime-media".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| ApiError::new(codes::ERR_SDK_INTERNAL, format!("media thread: {e}")))?;
    rx.await
        .unwrap_or_else(|_| Err(ApiError::new(codes::ERR_SDK_INTERNAL, "media thread died")))
}

/// Where a new image message's generated sizes go: a fresh directory under
/// `<data_dir>/media/outgoing/`.
#[derive(Message)]
#[rtype(result = "PathBuf")]
struct OutgoingDir;

impl Handler<OutgoingDir> for MessageActor {
    type Result = MessageResult<OutgoingDir>;
    fn handle(&mut self, _: OutgoingDir, _: &mut Context<Self>) -> Self::Result {
        let name = format!(
            "{:x}-{:016x}",
            crate::actors::now_ms(),
            rand::random::<u64>()
        );
        MessageResult(
            self.shared
                .config
                .data_dir
                .join("media")
                .join("outgoing")
                .join(name),
        )
    }
}

fn index_param(p: &Value) -> Result<usize> {
    let v = p
        .get("elem_index")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::invalid_param("elem_index (non-negative integer) is required"))?;
    usize::try_from(v).map_err(|_| ApiError::invalid_param("elem_index is too large"))
}

async fn created(peers: &Peers, elem: StoredElem) -> Result<Value> {
    peers
        .msg
        .send(Create(CreateKind::Elem(Box::new(elem))))
        .await
        .map_err(mailbox)
}

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
        "create_image_message" => {
            let path = req_str(&p, "image_path")?;
            let dir = peers.msg.send(OutgoingDir).await.map_err(mailbox)?;
            let elem = blocking(move || create::image(&path, &dir)).await?;
            created(peers, elem).await
        }
        "create_sound_message" => {
            let path = req_str(&p, "sound_path")?;
            let duration = codec::u32_field(&p, "duration")?;
            let elem = blocking(move || create::sound(&path, duration)).await?;
            created(peers, elem).await
        }
        "create_video_message" => {
            let path = req_str(&p, "video_file_path")?;
            let video_type = opt_str(&p, "type")?.unwrap_or_default();
            let duration = codec::u32_field(&p, "duration")?;
            let snapshot = req_str(&p, "snapshot_path")?;
            let elem =
                blocking(move || create::video(&path, &video_type, duration, &snapshot)).await?;
            created(peers, elem).await
        }
        "create_file_message" => {
            let path = req_str(&p, "file_path")?;
            let name = opt_str(&p, "file_name")?.unwrap_or_default();
            let elem = blocking(move || create::file(&path, &name)).await?;
            created(peers, elem).await
        }
        "create_location_message" => created(peers, codec::location_from_json(&p)?).await,
        "create_face_message" => created(peers, codec::face_from_json(&p)?).await,
        "append_elem" => {
            let msg_id = p
                .get("message")
                .and_then(|m| m.get("msg_id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ApiError::invalid_param("message.msg_id (string) is required"))?;
            let elem = p
                .get("elem")
                .filter(|e| e.is_object())
                .ok_or_else(|| ApiError::invalid_param("elem (object) is required"))?;
            let elem_type = req_str(elem, "elem_type")
                .map_err(|_| ApiError::invalid_param("elem.elem_type (string) is required"))?;
            may_follow(&elem_type)?;
            let elem = codec::elem_from_json(elem)?;
            peers
                .msg
                .send(AppendElem { msg_id, elem })
                .await
                .map_err(mailbox)?
        }
        "download_elem" => {
            let path = req_str(&p, "path")?;
            if path.is_empty() {
                return Err(ApiError::invalid_param("path is empty"));
            }
            let r = download::Request {
                msg_id: req_str(&p, "msg_id")?,
                elem_index: index_param(&p)?,
                image_type: opt_str(&p, "image_type")?,
                path: PathBuf::from(path),
            };
            download::download(peers, events, r).await
        }
        "get_elem_url" => {
            download::elem_url(
                peers,
                req_str(&p, "msg_id")?,
                index_param(&p)?,
                opt_str(&p, "image_type")?,
            )
            .await
        }
        _ => Err(ApiError::invalid_param(format!("unknown method: {method}"))),
    }
}
