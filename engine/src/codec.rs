//! The one mapping of messages between their three forms: the wire ([`pb::Message`]), the store
//! ([`StoredMessage`]) and the JSON message object of api.md. Later elem kinds (image, sound,
//! ...) are added here and nowhere else.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chime_proto::pb::{self, elem::Content};
use serde_json::{Map, Value, json};

use crate::ApiError;
use crate::media::{self, image_type};
use crate::model::{StoredElem, StoredMessage, StoredPushInfo, elem_kind};

/// `pb::Priority` value from its api.md spelling.
pub fn priority_from_str(s: &str) -> Option<i32> {
    Some(match s {
        "default" => pb::Priority::Default as i32,
        "high" => pb::Priority::High as i32,
        "normal" => pb::Priority::Normal as i32,
        "low" => pb::Priority::Low as i32,
        _ => return None,
    })
}

/// The api.md spelling of a `pb::Priority` value.
pub fn priority_str(p: i32) -> &'static str {
    match pb::Priority::try_from(p) {
        Ok(pb::Priority::High) => "high",
        Ok(pb::Priority::Normal) => "normal",
        Ok(pb::Priority::Low) => "low",
        _ => "default",
    }
}

/// Writes bytes under `field` as a string when UTF-8, else under `field_base64` (api.md §1).
fn put_bytes(obj: &mut Map<String, Value>, field: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => {
            obj.insert(field.to_owned(), Value::String(s.to_owned()));
        }
        Err(_) => {
            obj.insert(format!("{field}_base64"), Value::String(B64.encode(bytes)));
        }
    }
}

/// Reads bytes from `field` (UTF-8 string) or `field_base64`; `None` when both are absent.
pub fn get_bytes(obj: &Value, field: &str) -> Result<Option<Vec<u8>>, ApiError> {
    if let Some(v) = obj.get(field).filter(|v| !v.is_null()) {
        return v
            .as_str()
            .map(|s| Some(s.as_bytes().to_vec()))
            .ok_or_else(|| ApiError::invalid_param(format!("{field} must be a string")));
    }
    let b64 = format!("{field}_base64");
    match obj.get(&b64).filter(|v| !v.is_null()) {
        Some(v) => {
            let s = v
                .as_str()
                .ok_or_else(|| ApiError::invalid_param(format!("{b64} must be a string")))?;
            B64.decode(s)
                .map(Some)
                .map_err(|e| ApiError::invalid_param(format!("{b64}: {e}")))
        }
        None => Ok(None),
    }
}

fn str_field(obj: &Value, field: &str) -> Result<String, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::invalid_param(format!("{field} must be a string"))),
    }
}

/// A text elem.
pub fn text_elem(text: &str) -> StoredElem {
    StoredElem {
        kind: elem_kind::TEXT,
        text: text.to_owned(),
        ..Default::default()
    }
}

/// A custom elem.
pub fn custom_elem(data: Vec<u8>, description: String, extension: String) -> StoredElem {
    StoredElem {
        kind: elem_kind::CUSTOM,
        data,
        description,
        extension,
        ..Default::default()
    }
}

/// Parses one elem object of an `elem_list`.
pub fn elem_from_json(v: &Value) -> Result<StoredElem, ApiError> {
    let kind = v
        .get("elem_type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid_param("elem_list[].elem_type missing"))?;
    match kind {
        "text" => Ok(text_elem(&str_field(v, "text")?)),
        "custom" => Ok(custom_elem(
            get_bytes(v, "data")?.unwrap_or_default(),
            str_field(v, "description")?,
            str_field(v, "extension")?,
        )),
        "image" | "sound" | "video" | "file" | "location" | "face" => media_from_json(kind, v),
        other => Err(ApiError::new(
            chime_proto::codes::ERR_INVALID_MSG_ELEM,
            format!("elem_type {other} not supported yet"),
        )),
    }
}

fn elem_to_json(e: &StoredElem) -> Value {
    let mut o = Map::new();
    match e.kind {
        elem_kind::TEXT => {
            o.insert("elem_type".into(), json!("text"));
            o.insert("text".into(), json!(e.text));
        }
        elem_kind::CUSTOM => {
            o.insert("elem_type".into(), json!("custom"));
            put_bytes(&mut o, "data", &e.data);
            o.insert("description".into(), json!(e.description));
            o.insert("extension".into(), json!(e.extension));
        }
        elem_kind::MERGER => {
            let m =
                <pb::MergerElem as prost::Message>::decode(e.merger.as_slice()).unwrap_or_default();
            o.insert("elem_type".into(), json!("merger"));
            o.insert("title".into(), json!(m.title));
            o.insert("abstract_list".into(), json!(m.abstract_list));
            o.insert("compatible_text".into(), json!(m.compatible_text));
            o.insert("layers".into(), json!(m.layers));
        }
        elem_kind::IMAGE
        | elem_kind::SOUND
        | elem_kind::VIDEO
        | elem_kind::FILE
        | elem_kind::LOCATION
        | elem_kind::FACE => media_to_json(e, &mut o),
        elem_kind::GROUP_TIPS => {
            o.insert("elem_type".into(), json!("group_tips"));
            o.insert("type".into(), json!(e.tips_type));
            o.insert("op_user".into(), json!(e.op_user));
            o.insert("member_list".into(), json!(e.member_list));
            // A community change (type 12): the listener event it stands for.
            if let Some((event, data)) = tips_community(e)
                .as_ref()
                .and_then(crate::actors::community::event_of)
            {
                o.insert(
                    "community_change".into(),
                    json!({ "event": event, "data": data }),
                );
            }
        }
        _ => {
            o.insert("elem_type".into(), json!("unknown"));
        }
    }
    Value::Object(o)
}

/// The local path of `variant` of a media elem on the device that created it ("" elsewhere).
fn local_path(e: &StoredElem, variant: &str) -> String {
    e.media
        .as_ref()
        .and_then(|r| {
            r.files
                .iter()
                .find(|f| f.variants.iter().any(|v| v == variant))
        })
        .map(|f| f.path.clone())
        .unwrap_or_default()
}

/// The JSON fields of a media elem (the seed's V2TIM*Elem field names in snake_case). `url`s are
/// empty: `get_elem_url` answers a fresh signed one.
fn media_to_json(e: &StoredElem, o: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_owned(), v);
    };
    match media::content(e) {
        Some(Content::Image(i)) => {
            put("elem_type", json!("image"));
            put("path", json!(local_path(e, "origin")));
            put("image_format", json!(i.format));
            let list: Vec<Value> = i
                .images
                .iter()
                .map(|x| {
                    json!({
                        "type": image_type::name(x.image_type), "uuid": x.uuid, "size": x.size,
                        "width": x.width, "height": x.height, "url": x.url,
                    })
                })
                .collect();
            put("image_list", Value::Array(list));
        }
        Some(Content::Sound(s)) => {
            put("elem_type", json!("sound"));
            put("path", json!(local_path(e, "sound")));
            put("uuid", json!(s.uuid));
            put("data_size", json!(s.data_size));
            put("duration", json!(s.duration));
            put("url", json!(s.url));
        }
        Some(Content::Video(v)) => {
            put("elem_type", json!("video"));
            put("video_path", json!(local_path(e, "video")));
            put("video_uuid", json!(v.video_uuid));
            put("video_size", json!(v.video_size));
            put("video_type", json!(v.video_type));
            put("duration", json!(v.duration));
            put("video_url", json!(v.video_url));
            put("snapshot_path", json!(local_path(e, "snapshot")));
            put("snapshot_uuid", json!(v.snapshot_uuid));
            put("snapshot_size", json!(v.snapshot_size));
            put("snapshot_width", json!(v.snapshot_width));
            put("snapshot_height", json!(v.snapshot_height));
            put("snapshot_url", json!(v.snapshot_url));
        }
        Some(Content::File(f)) => {
            put("elem_type", json!("file"));
            put("path", json!(local_path(e, "file")));
            put("uuid", json!(f.uuid));
            put("file_name", json!(f.file_name));
            put("file_size", json!(f.file_size));
            put("url", json!(f.url));
        }
        Some(Content::Location(l)) => {
            put("elem_type", json!("location"));
            put("desc", json!(l.desc));
            put("longitude", json!(l.longitude));
            put("latitude", json!(l.latitude));
        }
        Some(Content::Face(f)) => {
            put("elem_type", json!("face"));
            put("index", json!(f.index));
            put_bytes(o, "data", &f.data);
        }
        _ => put("elem_type", json!("unknown")),
    }
}

fn u64_field(obj: &Value, field: &str) -> Result<u64, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().ok_or_else(|| {
            ApiError::invalid_param(format!("{field} must be a non-negative integer"))
        }),
    }
}

/// An optional non-negative integer field that fits a u32 (absent = 0).
pub fn u32_field(obj: &Value, field: &str) -> Result<u32, ApiError> {
    u32::try_from(u64_field(obj, field)?)
        .map_err(|_| ApiError::invalid_param(format!("{field} is too large")))
}

fn f64_field(obj: &Value, field: &str) -> Result<f64, ApiError> {
    obj.get(field)
        .and_then(Value::as_f64)
        .ok_or_else(|| ApiError::invalid_param(format!("{field} (number) is required")))
}

/// A location elem from `{desc, longitude, latitude}` (an elem object or the params of
/// `create_location_message`), checked by [`media::create::location`].
pub fn location_from_json(v: &Value) -> Result<StoredElem, ApiError> {
    media::create::location(
        str_field(v, "desc")?,
        f64_field(v, "longitude")?,
        f64_field(v, "latitude")?,
    )
}

/// A face elem from `{index, data | data_base64}` (an elem object or the params of
/// `create_face_message`).
pub fn face_from_json(v: &Value) -> Result<StoredElem, ApiError> {
    let index = v
        .get("index")
        .and_then(Value::as_i64)
        .and_then(|i| i32::try_from(i).ok())
        .ok_or_else(|| ApiError::invalid_param("index (int32) is required"))?;
    Ok(media::create::face(
        index,
        get_bytes(v, "data")?.unwrap_or_default(),
    ))
}

/// A media elem of a message object that this engine did not create: location and face as
/// given; files only by uuid (already uploaded, e.g. a message built by another process), since
/// a local file is uploaded only through `create_*_message`.
fn media_from_json(kind: &str, v: &Value) -> Result<StoredElem, ApiError> {
    let need_uuid = |uuid: &str, field: &str| {
        if uuid.is_empty() {
            Err(ApiError::new(
                chime_proto::codes::ERR_INVALID_MSG_ELEM,
                format!("{kind} elem without {field}: create it with create_{kind}_message"),
            ))
        } else {
            Ok(())
        }
    };
    let content = match kind {
        "location" => return location_from_json(v),
        "face" => return face_from_json(v),
        "image" => {
            let list = v
                .get("image_list")
                .and_then(Value::as_array)
                .ok_or_else(|| ApiError::invalid_param("image_list is required"))?;
            let mut images = Vec::with_capacity(list.len());
            for x in list {
                let t = str_field(x, "type")?;
                let info = pb::ImageInfo {
                    image_type: image_type::from_name(&t).ok_or_else(|| {
                        ApiError::invalid_param("image_list[].type must be origin|large|thumb")
                    })?,
                    uuid: str_field(x, "uuid")?,
                    size: u64_field(x, "size")?,
                    width: u32_field(x, "width")?,
                    height: u32_field(x, "height")?,
                    url: String::new(),
                };
                need_uuid(&info.uuid, "image_list[].uuid")?;
                images.push(info);
            }
            Content::Image(pb::ImageElem {
                images,
                format: str_field(v, "image_format")?,
            })
        }
        "sound" => {
            let s = pb::SoundElem {
                uuid: str_field(v, "uuid")?,
                url: String::new(),
                data_size: u64_field(v, "data_size")?,
                duration: u32_field(v, "duration")?,
            };
            need_uuid(&s.uuid, "uuid")?;
            Content::Sound(s)
        }
        "video" => {
            let x = pb::VideoElem {
                video_uuid: str_field(v, "video_uuid")?,
                video_size: u64_field(v, "video_size")?,
                video_type: str_field(v, "video_type")?,
                duration: u32_field(v, "duration")?,
                snapshot_uuid: str_field(v, "snapshot_uuid")?,
                snapshot_size: u64_field(v, "snapshot_size")?,
                snapshot_width: u32_field(v, "snapshot_width")?,
                snapshot_height: u32_field(v, "snapshot_height")?,
                ..Default::default()
            };
            need_uuid(&x.video_uuid, "video_uuid")?;
            Content::Video(x)
        }
        _ => {
            let f = pb::FileElem {
                uuid: str_field(v, "uuid")?,
                url: String::new(),
                file_name: str_field(v, "file_name")?,
                file_size: u64_field(v, "file_size")?,
            };
            need_uuid(&f.uuid, "uuid")?;
            Content::File(f)
        }
    };
    Ok(media::elem(content, Vec::new()))
}

fn elem_from_wire(e: &pb::Elem) -> StoredElem {
    match &e.content {
        Some(Content::Text(t)) => text_elem(&t.text),
        Some(Content::Custom(c)) => {
            custom_elem(c.data.clone(), c.description.clone(), c.extension.clone())
        }
        Some(Content::Merger(m)) => StoredElem {
            kind: elem_kind::MERGER,
            merger: prost::Message::encode_to_vec(m),
            ..Default::default()
        },
        Some(
            c @ (Content::Image(_)
            | Content::Sound(_)
            | Content::Video(_)
            | Content::File(_)
            | Content::Location(_)
            | Content::Face(_)),
        ) => media::elem(c.clone(), Vec::new()),
        Some(Content::GroupTips(t)) => StoredElem {
            kind: elem_kind::GROUP_TIPS,
            tips_type: t.tips_type,
            op_user: t.op_user.clone(),
            member_list: t.member_list.clone(),
            // A community change is kept whole (encoded `pb::CommunityPush`).
            data: t
                .community
                .as_ref()
                .map(prost::Message::encode_to_vec)
                .unwrap_or_default(),
            ..Default::default()
        },
        _ => StoredElem::default(),
    }
}

/// The community change a stored `group_tips` elem keeps (type 12), if any.
fn tips_community(e: &StoredElem) -> Option<pb::CommunityPush> {
    if e.data.is_empty() {
        return None;
    }
    <pb::CommunityPush as prost::Message>::decode(e.data.as_slice()).ok()
}

fn elem_to_wire(e: &StoredElem) -> pb::Elem {
    let content = match e.kind {
        elem_kind::TEXT => Some(Content::Text(pb::TextElem {
            text: e.text.clone(),
        })),
        elem_kind::CUSTOM => Some(Content::Custom(pb::CustomElem {
            data: e.data.clone(),
            description: e.description.clone(),
            extension: e.extension.clone(),
        })),
        elem_kind::MERGER => <pb::MergerElem as prost::Message>::decode(e.merger.as_slice())
            .ok()
            .map(Content::Merger),
        elem_kind::GROUP_TIPS => Some(Content::GroupTips(pb::GroupTipsElem {
            tips_type: e.tips_type,
            op_user: e.op_user.clone(),
            member_list: e.member_list.clone(),
            community: tips_community(e),
            ..Default::default()
        })),
        elem_kind::IMAGE
        | elem_kind::SOUND
        | elem_kind::VIDEO
        | elem_kind::FILE
        | elem_kind::LOCATION
        | elem_kind::FACE => media::content(e).cloned(),
        _ => None,
    };
    pb::Elem { content }
}

fn push_from_wire(p: &pb::OfflinePushInfo) -> StoredPushInfo {
    StoredPushInfo {
        title: p.title.clone(),
        desc: p.desc.clone(),
        ext: p.ext.clone(),
        disable_push: p.disable_push,
        ios_sound: p.ios_sound.clone(),
        android_sound: p.android_sound.clone(),
        ignore_ios_badge: p.ignore_ios_badge,
        android_oppo_channel_id: p.android_oppo_channel_id.clone(),
        android_fcm_channel_id: p.android_fcm_channel_id.clone(),
        android_xiaomi_channel_id: p.android_xiaomi_channel_id.clone(),
        android_vivo_classification: p.android_vivo_classification.clone(),
        ios_push_type: p.ios_push_type.clone(),
        android_huawei_category: p.android_huawei_category.clone(),
    }
}

/// The wire form of an `offline_push_info`.
pub fn push_to_wire(p: &StoredPushInfo) -> pb::OfflinePushInfo {
    pb::OfflinePushInfo {
        title: p.title.clone(),
        desc: p.desc.clone(),
        ext: p.ext.clone(),
        disable_push: p.disable_push,
        ios_sound: p.ios_sound.clone(),
        android_sound: p.android_sound.clone(),
        ignore_ios_badge: p.ignore_ios_badge,
        android_oppo_channel_id: p.android_oppo_channel_id.clone(),
        android_fcm_channel_id: p.android_fcm_channel_id.clone(),
        android_xiaomi_channel_id: p.android_xiaomi_channel_id.clone(),
        android_vivo_classification: p.android_vivo_classification.clone(),
        ios_push_type: p.ios_push_type.clone(),
        android_huawei_category: p.android_huawei_category.clone(),
    }
}

/// Parses an `offline_push_info` object.
pub fn push_info_from_json(v: &Value) -> Result<StoredPushInfo, ApiError> {
    if !v.is_object() {
        return Err(ApiError::invalid_param(
            "offline_push_info must be an object",
        ));
    }
    let b = |f: &str| v.get(f).and_then(Value::as_bool).unwrap_or(false);
    Ok(StoredPushInfo {
        title: str_field(v, "title")?,
        desc: str_field(v, "desc")?,
        ext: str_field(v, "ext")?,
        disable_push: b("disable_push"),
        ios_sound: str_field(v, "ios_sound")?,
        android_sound: str_field(v, "android_sound")?,
        ignore_ios_badge: b("ignore_ios_badge"),
        android_oppo_channel_id: str_field(v, "android_oppo_channel_id")?,
        android_fcm_channel_id: str_field(v, "android_fcm_channel_id")?,
        android_xiaomi_channel_id: str_field(v, "android_xiaomi_channel_id")?,
        android_vivo_classification: str_field(v, "android_vivo_classification")?,
        ios_push_type: str_field(v, "ios_push_type")?,
        android_huawei_category: str_field(v, "android_huawei_category")?,
    })
}

fn push_info_to_json(p: &StoredPushInfo) -> Value {
    json!({
        "title": p.title, "desc": p.desc, "ext": p.ext, "disable_push": p.disable_push,
        "ios_sound": p.ios_sound, "android_sound": p.android_sound,
        "ignore_ios_badge": p.ignore_ios_badge,
        "android_oppo_channel_id": p.android_oppo_channel_id,
        "android_fcm_channel_id": p.android_fcm_channel_id,
        "android_xiaomi_channel_id": p.android_xiaomi_channel_id,
        "android_vivo_classification": p.android_vivo_classification,
        "ios_push_type": p.ios_push_type,
        "android_huawei_category": p.android_huawei_category,
    })
}

/// A received (or acked) wire message as the local user `me` stores it.
pub fn from_wire(m: &pb::Message, me: &str) -> StoredMessage {
    let is_group = m.conv_type() == pb::ConvType::Group;
    let peer = if is_group {
        String::new()
    } else if m.sender == me {
        m.receiver.clone()
    } else {
        m.sender.clone()
    };
    StoredMessage {
        msg_id: m.msg_id.clone(),
        sender: m.sender.clone(),
        is_group,
        peer,
        group_id: m.group_id.clone(),
        seq: m.seq,
        time_ms: m.server_time_ms,
        random: m.random,
        elems: m.elems.iter().map(elem_from_wire).collect(),
        priority: m.priority,
        online_user_only: m.online_user_only,
        offline_push_info: m.offline_push_info.as_ref().map(push_from_wire),
        need_read_receipt: m.need_read_receipt,
        exclude_from_unread: m.exclude_from_unread,
        exclude_from_last_message: m.exclude_from_last_message,
        cloud_custom_data: m.cloud_custom_data.clone(),
        group_at_user_list: m.group_at_user_list.clone(),
        nick_name: m.nick_name.clone(),
        face_url: m.face_url.clone(),
        status: if m.revoked {
            crate::model::Status::LocalRevoked as i32
        } else {
            crate::model::Status::SendSucc as i32
        },
        local_custom_data: Vec::new(),
        local_custom_int: 0,
        local_order: 0,
        is_broadcast_message: m.is_broadcast_message,
        target_user_list: m.target_user_list.clone(),
        receiver: m.receiver.clone(),
        client_time_ms: m.client_time_ms,
        revoked: m.revoked,
        version: m.version,
        revoker: m.revoker.clone(),
        revoke_reason: m.revoke_reason.clone(),
        disable_cloud_message_pre_hook: m.disable_cloud_message_pre_hook,
        disable_cloud_message_post_hook: m.disable_cloud_message_post_hook,
    }
}

/// The wire form of a message to send (server-assigned fields left empty).
pub fn to_wire(m: &StoredMessage) -> pb::Message {
    pb::Message {
        msg_id: m.msg_id.clone(),
        sender: m.sender.clone(),
        conv_type: if m.is_group {
            pb::ConvType::Group as i32
        } else {
            pb::ConvType::C2c as i32
        },
        receiver: m.receiver.clone(),
        group_id: m.group_id.clone(),
        seq: m.seq,
        server_time_ms: 0,
        random: m.random,
        elems: m.elems.iter().map(elem_to_wire).collect(),
        priority: m.priority,
        online_user_only: m.online_user_only,
        offline_push_info: m.offline_push_info.as_ref().map(push_to_wire),
        need_read_receipt: m.need_read_receipt,
        exclude_from_unread: m.exclude_from_unread,
        exclude_from_last_message: m.exclude_from_last_message,
        cloud_custom_data: m.cloud_custom_data.clone(),
        group_at_user_list: m.group_at_user_list.clone(),
        target_user_list: m.target_user_list.clone(),
        client_time_ms: m.client_time_ms,
        revoked: m.revoked,
        is_broadcast_message: m.is_broadcast_message,
        version: m.version,
        revoker: m.revoker.clone(),
        revoke_reason: m.revoke_reason.clone(),
        disable_cloud_message_pre_hook: m.disable_cloud_message_pre_hook,
        disable_cloud_message_post_hook: m.disable_cloud_message_post_hook,
        ..Default::default()
    }
}

/// The api.md message object, as seen by the local user `me`.
pub fn to_json(m: &StoredMessage, me: &str) -> Value {
    let mut o = Map::new();
    let is_self = m.sender == me;
    o.insert("msg_id".into(), json!(m.msg_id));
    o.insert("timestamp".into(), json!(m.time_ms.div_euclid(1000)));
    o.insert("sender".into(), json!(m.sender));
    o.insert("nick_name".into(), json!(m.nick_name));
    o.insert("face_url".into(), json!(m.face_url));
    o.insert(
        "user_id".into(),
        json!(if m.is_group { "" } else { &m.peer }),
    );
    o.insert("group_id".into(), json!(m.group_id));
    o.insert("conversation_id".into(), json!(m.conversation_id()));
    o.insert("seq".into(), json!(m.seq));
    o.insert("random".into(), json!(m.random));
    o.insert(
        "status".into(),
        json!(crate::model::Status::as_str(m.status)),
    );
    o.insert("is_self".into(), json!(is_self));
    o.insert("is_read".into(), json!(is_self));
    o.insert("is_peer_read".into(), json!(false));
    o.insert("need_read_receipt".into(), json!(m.need_read_receipt));
    o.insert("priority".into(), json!(priority_str(m.priority)));
    o.insert("online_user_only".into(), json!(m.online_user_only));
    o.insert("group_at_user_list".into(), json!(m.group_at_user_list));
    o.insert(
        "elem_list".into(),
        Value::Array(m.elems.iter().map(elem_to_json).collect()),
    );
    put_bytes(&mut o, "cloud_custom_data", &m.cloud_custom_data);
    put_bytes(&mut o, "local_custom_data", &m.local_custom_data);
    o.insert("local_custom_int".into(), json!(m.local_custom_int));
    o.insert(
        "is_excluded_from_unread_count".into(),
        json!(m.exclude_from_unread),
    );
    o.insert(
        "is_excluded_from_last_message".into(),
        json!(m.exclude_from_last_message),
    );
    o.insert(
        "offline_push_info".into(),
        m.offline_push_info
            .as_ref()
            .map_or(Value::Null, push_info_to_json),
    );
    o.insert("is_broadcast_message".into(), json!(m.is_broadcast_message));
    o.insert(
        "disable_cloud_message_pre_hook".into(),
        json!(m.disable_cloud_message_pre_hook),
    );
    o.insert(
        "disable_cloud_message_post_hook".into(),
        json!(m.disable_cloud_message_post_hook),
    );
    // The receiver's remark for the sender: filled in, current, where message objects leave the
    // engine (`crate::actors::relationship::remarks`).
    o.insert("friend_remark".into(), json!(""));
    o.insert("version".into(), json!(m.version));
    if m.revoked {
        o.insert("revoker".into(), json!(m.revoker));
        o.insert("revoke_reason".into(), json!(m.revoke_reason));
    }
    Value::Object(o)
}

/// Builds a message to send from a message object this engine did not create (e.g. one that
/// came from another process): its `elem_list` and the flags it carries. A `msg_id` in the object
/// is kept so that a retry of the same object stays idempotent.
pub fn message_from_json(v: &Value) -> Result<StoredMessage, ApiError> {
    let elems = v
        .get("elem_list")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid_param("message.elem_list missing"))?
        .iter()
        .map(elem_from_json)
        .collect::<Result<Vec<_>, _>>()?;
    if elems.is_empty() {
        return Err(ApiError::invalid_param("message.elem_list is empty"));
    }
    let mut m = StoredMessage {
        msg_id: str_field(v, "msg_id")?,
        elems,
        group_at_user_list: string_list(v, "group_at_user_list")?,
        cloud_custom_data: get_bytes(v, "cloud_custom_data")?.unwrap_or_default(),
        local_custom_data: get_bytes(v, "local_custom_data")?.unwrap_or_default(),
        ..Default::default()
    };
    if let Some(p) = v.get("priority").and_then(Value::as_str) {
        m.priority =
            priority_from_str(p).ok_or_else(|| ApiError::invalid_param("message.priority"))?;
    }
    apply_hook_flags(&mut m, v)?;
    Ok(m)
}

/// Takes the sender's webhook opt-outs (`disable_cloud_message_pre_hook`,
/// `disable_cloud_message_post_hook`) from a message object; absent = unchanged.
pub fn apply_hook_flags(m: &mut StoredMessage, v: &Value) -> Result<(), ApiError> {
    for (field, slot) in [
        (
            "disable_cloud_message_pre_hook",
            &mut m.disable_cloud_message_pre_hook,
        ),
        (
            "disable_cloud_message_post_hook",
            &mut m.disable_cloud_message_post_hook,
        ),
    ] {
        match v.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Bool(b)) => *slot = *b,
            Some(_) => {
                return Err(ApiError::invalid_param(format!(
                    "message.{field} must be a boolean"
                )));
            }
        }
    }
    Ok(())
}

/// A list of strings under `field` (absent = empty).
pub fn string_list(v: &Value, field: &str) -> Result<Vec<String>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::invalid_param(format!("{field} must hold strings")))
            })
            .collect(),
        Some(_) => Err(ApiError::invalid_param(format!("{field} must be a list"))),
    }
}

/// Whether the message matches an api.md `message_type_list` filter (elem type names).
pub fn matches_types(m: &StoredMessage, types: &[String]) -> bool {
    types.is_empty()
        || m.elems.iter().any(|e| {
            let name = match e.kind {
                elem_kind::TEXT => "text",
                elem_kind::CUSTOM => "custom",
                elem_kind::GROUP_TIPS => "group_tips",
                elem_kind::MERGER => "merger",
                elem_kind::IMAGE => "image",
                elem_kind::SOUND => "sound",
                elem_kind::VIDEO => "video",
                elem_kind::FILE => "file",
                elem_kind::LOCATION => "location",
                elem_kind::FACE => "face",
                _ => "unknown",
            };
            types.iter().any(|t| t == name)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_tips_keep_their_change_through_the_store() {
        let change = pb::CommunityPush {
            kind: pb::CommunityEvent::TopicCreated as i32,
            group_id: "c".into(),
            op_user: "own".into(),
            topic: Some(pb::TopicInfo {
                topic_id: "c@TOPIC#_1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let tips = pb::GroupTipsElem {
            tips_type: pb::GroupTipsType::GroupTipsCommunity as i32,
            op_user: "own".into(),
            community: Some(change.clone()),
            ..Default::default()
        };
        let elem = pb::Elem {
            content: Some(Content::GroupTips(tips)),
        };
        let stored = elem_from_wire(&elem);
        let Some(Content::GroupTips(back)) = elem_to_wire(&stored).content else {
            panic!("not tips");
        };
        assert_eq!(back.community, Some(change));
        let j = elem_to_json(&stored);
        assert_eq!(j["type"], json!(12));
        assert_eq!(j["community_change"]["event"], json!("on_topic_created"));
        assert_eq!(
            j["community_change"]["data"],
            json!({"group_id": "c", "topic_id": "c@TOPIC#_1"})
        );
        // Other tips carry none.
        let plain = elem_from_wire(&pb::Elem {
            content: Some(Content::GroupTips(pb::GroupTipsElem {
                tips_type: pb::GroupTipsType::GroupTipsJoin as i32,
                ..Default::default()
            })),
        });
        assert!(elem_to_json(&plain).get("community_change").is_none());
    }

    #[test]
    fn wire_store_json_round_trip() {
        let wire = pb::Message {
            msg_id: "m1".into(),
            sender: "bob".into(),
            conv_type: pb::ConvType::C2c as i32,
            receiver: "alice".into(),
            seq: 7,
            server_time_ms: 1_700_000_123_456,
            random: 42,
            elems: vec![
                pb::Elem {
                    content: Some(Content::Text(pb::TextElem { text: "hi".into() })),
                },
                pb::Elem {
                    content: Some(Content::Custom(pb::CustomElem {
                        data: vec![0xff, 0x00],
                        description: "d".into(),
                        extension: "e".into(),
                    })),
                },
            ],
            priority: pb::Priority::High as i32,
            cloud_custom_data: b"ccd".to_vec(),
            offline_push_info: Some(pb::OfflinePushInfo {
                title: "t".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let stored = from_wire(&wire, "alice");
        assert_eq!(stored.peer, "bob");
        assert_eq!(stored.conversation_id(), "c2c_bob");
        let j = to_json(&stored, "alice");
        assert_eq!(j["timestamp"], 1_700_000_123);
        assert_eq!(j["is_self"], false);
        assert_eq!(j["priority"], "high");
        assert_eq!(j["status"], "send_succ");
        assert_eq!(j["user_id"], "bob");
        assert_eq!(j["cloud_custom_data"], "ccd");
        assert_eq!(j["offline_push_info"]["title"], "t");
        assert_eq!(
            j["elem_list"][0],
            json!({"elem_type": "text", "text": "hi"})
        );
        assert_eq!(j["elem_list"][1]["data_base64"], "/wA=");
        let back = message_from_json(&j).unwrap();
        assert_eq!(back.elems, stored.elems);
        assert_eq!(back.priority, pb::Priority::High as i32);
        let mut again = to_wire(&stored);
        again.server_time_ms = wire.server_time_ms;
        assert_eq!(again.elems, wire.elems);
        assert_eq!(again.offline_push_info, wire.offline_push_info);
        // The sender's own view of the same message.
        assert_eq!(from_wire(&wire, "bob").peer, "alice");
    }

    #[test]
    fn webhook_opt_outs_travel_with_the_message() {
        let mut m = message_from_json(&json!({
            "elem_list": [{"elem_type": "text", "text": "x"}],
            "disable_cloud_message_pre_hook": true,
        }))
        .unwrap();
        assert!(m.disable_cloud_message_pre_hook && !m.disable_cloud_message_post_hook);
        apply_hook_flags(&mut m, &json!({"disable_cloud_message_post_hook": true})).unwrap();
        assert!(m.disable_cloud_message_pre_hook && m.disable_cloud_message_post_hook);
        let wire = to_wire(&m);
        assert!(wire.disable_cloud_message_pre_hook && wire.disable_cloud_message_post_hook);
        let back = from_wire(&wire, "me");
        let j = to_json(&back, "me");
        assert_eq!(j["disable_cloud_message_pre_hook"], true);
        assert_eq!(j["disable_cloud_message_post_hook"], true);
        assert_eq!(j["friend_remark"], "");
        let bad = apply_hook_flags(&mut m, &json!({"disable_cloud_message_pre_hook": 1}));
        assert_eq!(bad.unwrap_err().code, 6017);
    }

    #[test]
    fn bad_elems_are_refused() {
        assert_eq!(
            message_from_json(&json!({"elem_list": []}))
                .unwrap_err()
                .code,
            6017
        );
        assert_eq!(
            elem_from_json(&json!({"elem_type": "hologram"}))
                .unwrap_err()
                .code,
            6016
        );
        assert_eq!(
            elem_from_json(&json!({"elem_type": "custom", "data_base64": "!!"}))
                .unwrap_err()
                .code,
            6017
        );
    }
}
