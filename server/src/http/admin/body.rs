//! `MsgBody` of the REST API (`[{MsgType, MsgContent}]`) to and from the wire's `pb::Elem`s,
//! and the message fields REST calls share (random, offline push info, send controls).

use base64::Engine as _;
use chime_proto::codes;
use chime_proto::pb::{self, elem::Content};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// One element of a `MsgBody`.
#[derive(Debug, Clone, Deserialize)]
pub struct MsgElem {
    /// `TIMTextElem`, `TIMCustomElem`, `TIMFaceElem` or `TIMLocationElem`.
    #[serde(rename = "MsgType")]
    pub msg_type: String,
    /// The element's fields.
    #[serde(rename = "MsgContent", default)]
    pub content: Value,
}

/// `OfflinePushInfo` of a REST message.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RestPushInfo {
    /// 0 push (default), 1 no push.
    #[serde(rename = "PushFlag", default)]
    pub push_flag: u32,
    /// Title.
    #[serde(rename = "Title", default)]
    pub title: String,
    /// Description.
    #[serde(rename = "Desc", default)]
    pub desc: String,
    /// Extension passed through to the device.
    #[serde(rename = "Ext", default)]
    pub ext: String,
}

impl RestPushInfo {
    /// The wire form.
    pub fn to_pb(&self) -> pb::OfflinePushInfo {
        pb::OfflinePushInfo {
            title: self.title.clone(),
            desc: self.desc.clone(),
            ext: self.ext.clone(),
            disable_push: self.push_flag == 1,
            ..Default::default()
        }
    }
}

fn invalid(desc: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_SVR_INVALID_PARAMS, desc)
}

fn str_field(content: &Value, name: &str) -> String {
    content
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn f64_field(content: &Value, name: &str) -> Result<f64, ApiError> {
    content
        .get(name)
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid(format!("MsgContent.{name} must be a number")))
}

/// Converts a `MsgBody` to elements; an empty body or an unknown `MsgType` answers 90002.
pub fn to_elems(body: &[MsgElem]) -> Result<Vec<pb::Elem>, ApiError> {
    if body.is_empty() {
        return Err(invalid("MsgBody is empty"));
    }
    body.iter()
        .map(|e| {
            let c = &e.content;
            let content = match e.msg_type.as_str() {
                "TIMTextElem" => {
                    let text = c
                        .get("Text")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid("TIMTextElem needs MsgContent.Text"))?;
                    Content::Text(pb::TextElem { text: text.into() })
                }
                "TIMCustomElem" => Content::Custom(pb::CustomElem {
                    data: str_field(c, "Data").into_bytes(),
                    description: str_field(c, "Desc"),
                    extension: str_field(c, "Ext"),
                }),
                "TIMFaceElem" => Content::Face(pb::FaceElem {
                    index: c
                        .get("Index")
                        .and_then(Value::as_i64)
                        .and_then(|i| i32::try_from(i).ok())
                        .ok_or_else(|| invalid("TIMFaceElem needs an integer MsgContent.Index"))?,
                    data: str_field(c, "Data").into_bytes(),
                }),
                "TIMLocationElem" => Content::Location(pb::LocationElem {
                    desc: str_field(c, "Desc"),
                    latitude: f64_field(c, "Latitude")?,
                    longitude: f64_field(c, "Longitude")?,
                }),
                other => return Err(invalid(format!("unsupported MsgType {other:?}"))),
            };
            Ok(pb::Elem {
                content: Some(content),
            })
        })
        .collect()
}

/// Converts elements back to a `MsgBody` (for webhooks and answers). Elements without a REST
/// form (media, tips, merger) are `TIMCustomElem`-free placeholders named by their type.
pub fn from_elems(elems: &[pb::Elem]) -> Vec<Value> {
    let b64 = |b: &[u8]| match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => base64::engine::general_purpose::STANDARD.encode(b),
    };
    elems
        .iter()
        .filter_map(|e| e.content.as_ref())
        .map(|c| match c {
            Content::Text(t) => {
                serde_json::json!({"MsgType": "TIMTextElem", "MsgContent": {"Text": t.text}})
            }
            Content::Custom(x) => serde_json::json!({"MsgType": "TIMCustomElem", "MsgContent": {
                "Data": b64(&x.data), "Desc": x.description, "Ext": x.extension}}),
            Content::Face(f) => serde_json::json!({"MsgType": "TIMFaceElem", "MsgContent": {
                "Index": f.index, "Data": b64(&f.data)}}),
            Content::Location(l) => serde_json::json!({"MsgType": "TIMLocationElem",
                "MsgContent": {"Desc": l.desc, "Latitude": l.latitude, "Longitude": l.longitude}}),
            Content::Image(_) => serde_json::json!({"MsgType": "TIMImageElem", "MsgContent": {}}),
            Content::Sound(_) => serde_json::json!({"MsgType": "TIMSoundElem", "MsgContent": {}}),
            Content::Video(_) => {
                serde_json::json!({"MsgType": "TIMVideoFileElem", "MsgContent": {}})
            }
            Content::File(_) => serde_json::json!({"MsgType": "TIMFileElem", "MsgContent": {}}),
            Content::GroupTips(_) => {
                serde_json::json!({"MsgType": "TIMGroupTipsElem", "MsgContent": {}})
            }
            Content::Merger(_) => {
                serde_json::json!({"MsgType": "TIMRelayElem", "MsgContent": {}})
            }
        })
        .collect()
}

/// A fresh message id for a message the REST API sends (unique per sender).
pub fn new_msg_id(random: u32) -> String {
    format!("rest-{:016x}-{random:08x}", rand::random::<u64>())
}

/// Applies `SendMsgControl` (`NoUnread`, `NoLastMsg`); unknown entries are ignored as the seed
/// does.
pub fn apply_controls(msg: &mut pb::Message, controls: &[String]) {
    for c in controls {
        match c.as_str() {
            "NoUnread" => msg.exclude_from_unread = true,
            "NoLastMsg" => msg.exclude_from_last_message = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elem(t: &str, c: Value) -> MsgElem {
        MsgElem {
            msg_type: t.into(),
            content: c,
        }
    }

    #[test]
    fn body_round_trips_text_custom_face_location() {
        let body = vec![
            elem("TIMTextElem", serde_json::json!({"Text": "hi"})),
            elem(
                "TIMCustomElem",
                serde_json::json!({"Data": "d", "Desc": "x", "Ext": "e"}),
            ),
            elem("TIMFaceElem", serde_json::json!({"Index": 3, "Data": "f"})),
            elem(
                "TIMLocationElem",
                serde_json::json!({"Desc": "here", "Latitude": 1.5, "Longitude": -2.25}),
            ),
        ];
        let elems = to_elems(&body).unwrap();
        assert_eq!(elems.len(), 4);
        let back = from_elems(&elems);
        assert_eq!(
            back[0],
            serde_json::json!({"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}})
        );
        assert_eq!(back[1]["MsgContent"]["Desc"], "x");
        assert_eq!(back[2]["MsgContent"]["Index"], 3);
        assert_eq!(back[3]["MsgContent"]["Longitude"], -2.25);
    }

    #[test]
    fn bad_bodies_are_90002() {
        assert_eq!(to_elems(&[]).unwrap_err().code, 90002);
        let e = to_elems(&[elem("TIMTextElem", serde_json::json!({}))]).unwrap_err();
        assert_eq!(e.code, 90002);
        assert!(e.desc.contains("Text"));
        let e = to_elems(&[elem("TIMBogus", Value::Null)]).unwrap_err();
        assert!(e.desc.contains("TIMBogus"));
    }
}
