//! Forwarding: `create_forward_message` (a copy of a stored message with a new id, sent by this
//! user) and `create_merger_message` (several messages bundled as one merger elem, as chat
//! history is forwarded), with `download_merger_message` to read a merger's messages back.
//!
//! The merged messages travel inline in the merger elem (`pb::MergerElem.message_list`), so a
//! merger obeys the 12 KB message body limit like any message (8001 from `send_message`), besides
//! the seed's limits: at most [`MAX_MERGED`] messages and [`MAX_LAYERS`] levels of nesting (8005).

use actix::prelude::*;
use chime_proto::{codes, pb};
use serde_json::{Value, json};

use super::{MessageActor, new_msg_id};
use crate::actors::now_ms;
use crate::codec;
use crate::model::{Status, StoredElem, StoredMessage, elem_kind};
use crate::{ApiError, Result};

/// Most messages in one merger (the seed's limit).
pub const MAX_MERGED: usize = 300;
/// Deepest nesting of mergers inside mergers. Each level nests three protobuf messages (message,
/// elem, merger) and a frame adds a few: 20 levels stay well inside the decoders' recursion limit
/// of 100 on both ends.
pub const MAX_LAYERS: u32 = 20;

/// The nesting depth of a message's merger elems (0 when it has none).
fn layers_of(m: &StoredMessage) -> u32 {
    m.elems
        .iter()
        .filter(|e| e.kind == elem_kind::MERGER)
        .map(|e| {
            <pb::MergerElem as prost::Message>::decode(e.merger.as_slice())
                .map_or(1, |x| x.layers.max(1))
        })
        .max()
        .unwrap_or(0)
}

/// The wire form of a stored message as it is kept inside a merger (with its time and seq).
fn merged_wire(m: &StoredMessage) -> pb::Message {
    let mut w = codec::to_wire(m);
    w.server_time_ms = m.time_ms;
    w.nick_name = m.nick_name.clone();
    w.face_url = m.face_url.clone();
    w
}

/// Builds the merger elem of `messages` (oldest first).
pub fn merger_elem(
    messages: &[StoredMessage],
    title: String,
    abstract_list: Vec<String>,
    compatible_text: String,
) -> Result<StoredElem> {
    if messages.is_empty() || messages.len() > MAX_MERGED {
        return Err(ApiError::invalid_param(format!(
            "message_list holds 1..={MAX_MERGED} messages"
        )));
    }
    let layers = messages.iter().map(layers_of).max().unwrap_or(0) + 1;
    if layers > MAX_LAYERS {
        return Err(ApiError::new(
            codes::ERR_MERGER_LAYERS_OVER_LIMIT,
            format!("mergers nest at most {MAX_LAYERS} levels"),
        ));
    }
    let m = pb::MergerElem {
        title,
        abstract_list,
        compatible_text,
        message_list: messages.iter().map(merged_wire).collect(),
        layers,
    };
    Ok(StoredElem {
        kind: elem_kind::MERGER,
        merger: prost::Message::encode_to_vec(&m),
        ..Default::default()
    })
}

impl MessageActor {
    /// A new message of this user (not sent yet) holding `elems`, kept until sent.
    fn create_with(&mut self, elems: Vec<StoredElem>, cloud_custom_data: Vec<u8>) -> Value {
        let m = StoredMessage {
            msg_id: new_msg_id(),
            sender: self.me().to_owned(),
            time_ms: now_ms(),
            client_time_ms: now_ms(),
            random: rand::random(),
            status: Status::Sending as i32,
            elems,
            cloud_custom_data,
            ..Default::default()
        };
        let j = codec::to_json(&m, self.me());
        // Bounded like `create_*_message`.
        if self.created.len() > 10_000 {
            self.created.clear();
        }
        self.created.insert(m.msg_id.clone(), m);
        j
    }

    fn stored_or_created(&self, id: &str) -> Result<StoredMessage> {
        if let Some((_, m)) = self.find(id)? {
            return Ok(m);
        }
        self.created
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::invalid_param(format!("msg_id {id} not found")))
    }
}

/// `create_forward_message {msg_id}`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct CreateForward(pub String);

impl Handler<CreateForward> for MessageActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: CreateForward, _: &mut Context<Self>) -> Self::Result {
        self.acct()?;
        let m = self.stored_or_created(&msg.0)?;
        if m.revoked || m.elems.iter().any(|e| e.kind == elem_kind::GROUP_TIPS) {
            return Err(ApiError::new(
                codes::ERR_INVALID_OPERATION,
                "revoked messages and group tips cannot be forwarded",
            ));
        }
        Ok(self.create_with(m.elems, m.cloud_custom_data))
    }
}

/// `create_merger_message {message_list, title, abstract_list, compatible_text}`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct CreateMerger {
    /// The msg_ids to merge.
    pub msg_ids: Vec<String>,
    /// Title.
    pub title: String,
    /// Abstract lines.
    pub abstract_list: Vec<String>,
    /// Text for receivers that cannot show mergers.
    pub compatible_text: String,
}

impl Handler<CreateMerger> for MessageActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: CreateMerger, _: &mut Context<Self>) -> Self::Result {
        self.acct()?;
        if msg.msg_ids.is_empty() || msg.msg_ids.len() > MAX_MERGED {
            return Err(ApiError::invalid_param(format!(
                "message_list holds 1..={MAX_MERGED} msg_ids"
            )));
        }
        if msg.compatible_text.is_empty() {
            return Err(ApiError::invalid_param("compatible_text is required"));
        }
        let mut list = msg
            .msg_ids
            .iter()
            .map(|id| self.stored_or_created(id))
            .collect::<Result<Vec<_>>>()?;
        if list.iter().any(|m| m.revoked) {
            return Err(ApiError::new(
                codes::ERR_INVALID_OPERATION,
                "revoked messages cannot be merged",
            ));
        }
        list.sort_by_key(|m| (m.time_ms, m.seq, m.local_order));
        let elem = merger_elem(&list, msg.title, msg.abstract_list, msg.compatible_text)?;
        Ok(self.create_with(vec![elem], Vec::new()))
    }
}

/// `download_merger_message {msg_id}` → `{message_list}`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct DownloadMerger(pub String);

impl Handler<DownloadMerger> for MessageActor {
    type Result = Result<Value>;
    fn handle(&mut self, msg: DownloadMerger, _: &mut Context<Self>) -> Self::Result {
        let me = self.acct()?.user.clone();
        let m = self.stored_or_created(&msg.0)?;
        let Some(e) = m.elems.iter().find(|e| e.kind == elem_kind::MERGER) else {
            return Err(ApiError::new(
                codes::ERR_INVALID_MSG_ELEM,
                "not a merger message",
            ));
        };
        let merger = <pb::MergerElem as prost::Message>::decode(e.merger.as_slice())
            .map_err(|e| ApiError::new(codes::ERR_PARSE_RESPONSE, format!("merger elem: {e}")))?;
        let list: Vec<Value> = merger
            .message_list
            .iter()
            .map(|w| codec::to_json(&codec::from_wire(w, &me), &me))
            .collect();
        Ok(json!({ "message_list": list }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(id: &str) -> StoredMessage {
        StoredMessage {
            msg_id: id.into(),
            elems: vec![codec::text_elem(id)],
            ..Default::default()
        }
    }

    #[test]
    fn merger_limits_count_and_nesting() {
        let e = merger_elem(&[text("a")], "t".into(), vec![], "c".into()).unwrap();
        let decoded = <pb::MergerElem as prost::Message>::decode(e.merger.as_slice()).unwrap();
        assert_eq!(decoded.layers, 1);
        assert_eq!(decoded.message_list.len(), 1);
        let many: Vec<StoredMessage> = (0..=MAX_MERGED).map(|i| text(&i.to_string())).collect();
        assert_eq!(
            merger_elem(&many, "t".into(), vec![], "c".into())
                .unwrap_err()
                .code,
            codes::ERR_INVALID_PARAMETERS
        );
        // Nest to the limit, then one more level fails with 8005.
        let mut inner = text("x");
        for level in 1..=MAX_LAYERS {
            let e = merger_elem(&[inner], "t".into(), vec![], "c".into()).unwrap();
            let d = <pb::MergerElem as prost::Message>::decode(e.merger.as_slice()).unwrap();
            assert_eq!(d.layers, level);
            inner = StoredMessage {
                msg_id: format!("m{level}"),
                elems: vec![e],
                ..Default::default()
            };
        }
        assert_eq!(
            merger_elem(&[inner], "t".into(), vec![], "c".into())
                .unwrap_err()
                .code,
            codes::ERR_MERGER_LAYERS_OVER_LIMIT
        );
    }
}
