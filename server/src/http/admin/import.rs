//! History import (`openim/importmsg` for C2C, `group_open_http_svc/import_group_msg` for
//! groups): messages an app brings over from its old system, stored with the times they were
//! sent rather than now.
//!
//! An imported message is appended at the conversation's next seq like any message (seqs stay
//! contiguous and are never reused), but keeps its original `server_time_ms`, is pushed to
//! nobody, and calls no webhook: clients find it when they sync or page the history. A C2C
//! import with `SyncFromOldSystem: 2` (history) and every group import are excluded from unread
//! counts; `SyncFromOldSystem: 1` (a message sent while migrating) counts as unread. A group
//! batch is stored in `SendTime` order. The same message imported twice (same sender,
//! conversation, time, random and body) is stored once: its id is derived from those, and the
//! commit pipeline's idempotency entry answers the first copy's seq.

use chime_proto::codes;
use chime_proto::pb::{self, response::Kind as RespKind};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::body::{self, MsgElem};
use super::{Ctx, RestResult, parse};
use crate::commit::{Core, Op};
use crate::error::{ApiError, ApiResult};
use crate::keys::{self, Key, tag};
use crate::txn::Txn;

/// Most messages of one `import_group_msg`.
pub const MAX_GROUP_IMPORT: usize = 20;

/// One message to store as imported (built by the REST handlers, staged by [`stage`]).
#[derive(Debug)]
pub struct ImportOp {
    /// The message: sender, conversation, time, random, id and body set.
    pub message: pb::Message,
}

/// The id of an imported message: the same import always gets the same id, so that importing
/// twice stores it once.
fn import_msg_id(msg: &pb::Message) -> String {
    let elems: Vec<u8> = msg
        .elems
        .iter()
        .flat_map(prost::Message::encode_to_vec)
        .collect();
    let mut h = Sha256::new();
    for part in [
        msg.sender.as_bytes(),
        msg.receiver.as_bytes(),
        msg.group_id.as_bytes(),
        &msg.server_time_ms.to_be_bytes(),
        &msg.random.to_be_bytes(),
        &elems,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    let digest = h.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("import-{hex}")
}

/// The message of an import, validated: a known body, a time in the past.
fn imported(
    sender: String,
    time_s: u64,
    random: u32,
    body: &[MsgElem],
    cloud_custom_data: String,
) -> ApiResult<pb::Message> {
    let now_ms = crate::commit::now_ms();
    let time_ms = i64::try_from(time_s)
        .ok()
        .and_then(|s| s.checked_mul(1000))
        .filter(|t| *t > 0 && *t <= now_ms)
        .ok_or_else(|| {
            ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                format!("the message time {time_s} must be a past Unix time in seconds"),
            )
        })?;
    let msg = pb::Message {
        sender,
        random,
        elems: body::to_elems(body)?,
        cloud_custom_data: cloud_custom_data.into_bytes(),
        server_time_ms: time_ms,
        client_time_ms: time_ms,
        ..Default::default()
    };
    if chime_proto::limits::message_body_bytes(&msg) > chime_proto::limits::MAX_MESSAGE_BODY_BYTES {
        return Err(ApiError::new(
            codes::ERR_SVR_MSG_TOO_LARGE,
            "message body over 12 KB",
        ));
    }
    Ok(msg)
}

/// The idempotency key of `msg` (as the commit pipeline's sends use).
fn idem_key(app: u64, msg: &pb::Message) -> Vec<u8> {
    Key::new(tag::IDEM, app)
        .s(msg.sender.as_bytes())
        .s(msg.msg_id.as_bytes())
        .done()
}

/// Stages one imported message (on the commit thread): appended at the conversation's next
/// seq with its own time, no pushes, no effects. A repeated import answers the stored copy.
pub(crate) fn stage(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    op: ImportOp,
) -> ApiResult<RespKind> {
    let mut msg = op.message;
    let idem = idem_key(app, &msg);
    if let Some(v) = txn.get(&idem)? {
        return Ok(RespKind::SendMessage(pb::SendMessageResp {
            msg_id: msg.msg_id,
            seq: keys::be_u64(&v, 0).unwrap_or(0),
            server_time_ms: keys::be_u64(&v, 8).unwrap_or(0) as i64,
            change_version: 0,
        }));
    }
    crate::relations::stamp_sender(txn, app, &mut msg)?;
    match msg.conv_type() {
        pb::ConvType::C2c => {
            let conv = keys::c2c_conv(&msg.sender, &msg.receiver);
            Core::append(txn, app, &conv, &mut msg, idem)?;
            txn.touch(app, &msg.sender, &conv);
            if msg.receiver != msg.sender {
                txn.touch(app, &msg.receiver, &conv);
            }
        }
        pb::ConvType::Group => {
            let Some(group) = core.group(txn, app, &msg.group_id)? else {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_NOT_FOUND,
                    format!("no group {:?}", msg.group_id),
                ));
            };
            if group.info.group_type == "AVChatRoom" {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                    "an AVChatRoom keeps no history to import into",
                ));
            }
            let conv = keys::group_conv(&msg.group_id);
            Core::append(txn, app, &conv, &mut msg, idem)?;
        }
        pb::ConvType::Unspecified => {
            return Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                "conv_type must be C2C or group",
            ));
        }
    }
    Ok(RespKind::SendMessage(pb::SendMessageResp {
        msg_id: msg.msg_id,
        seq: msg.seq,
        server_time_ms: msg.server_time_ms,
        change_version: 0,
    }))
}

/// Commits one import; answers `(seq, time_ms)`.
async fn commit(ctx: &Ctx, msg: pb::Message) -> ApiResult<(u64, i64)> {
    let sender = msg.sender.clone();
    let op = Op::Import(Box::new(ImportOp { message: msg }));
    match ctx.commit(&sender, op).await? {
        RespKind::SendMessage(ack) => Ok((ack.seq, ack.server_time_ms)),
        _ => Err(ApiError::new(
            codes::ERR_SVR_INTERNAL,
            "unexpected import answer",
        )),
    }
}

#[derive(Deserialize)]
struct C2cImportReq {
    /// 1: a message of the migration itself (counts as unread); 2: history (does not).
    #[serde(rename = "SyncFromOldSystem")]
    sync_from_old_system: u32,
    #[serde(rename = "From_Account")]
    from: String,
    #[serde(rename = "To_Account")]
    to: String,
    #[serde(rename = "MsgRandom", default)]
    random: u32,
    #[serde(rename = "MsgTimeStamp")]
    time: u64,
    #[serde(rename = "MsgBody")]
    body: Vec<MsgElem>,
    #[serde(rename = "CloudCustomData", default)]
    cloud_custom_data: String,
}

/// `openim/importmsg {SyncFromOldSystem (1|2), From_Account, To_Account, MsgRandom,
/// MsgTimeStamp, MsgBody, CloudCustomData?}` → `MsgSeq`, `MsgTime`, `MsgKey`.
pub(super) async fn import_c2c(ctx: &Ctx, body: Value) -> RestResult {
    let req: C2cImportReq = parse(body)?;
    if !matches!(req.sync_from_old_system, 1 | 2) {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "SyncFromOldSystem must be 1 (real time) or 2 (history)",
        ));
    }
    ctx.require_account(&req.from).await?;
    ctx.require_account(&req.to).await?;
    let mut msg = imported(
        req.from,
        req.time,
        req.random,
        &req.body,
        req.cloud_custom_data,
    )?;
    msg.conv_type = pb::ConvType::C2c as i32;
    msg.receiver = req.to;
    msg.exclude_from_unread = req.sync_from_old_system == 2;
    msg.msg_id = import_msg_id(&msg);
    let (seq, time) = commit(ctx, msg).await?;
    let mut out = Map::new();
    out.insert("MsgSeq".into(), json!(seq));
    out.insert("MsgTime".into(), json!(time / 1000));
    out.insert(
        "MsgKey".into(),
        json!(format!("{seq}_{}_{}", req.random, time / 1000)),
    );
    Ok(out)
}

#[derive(Deserialize)]
struct GroupImportMsg {
    #[serde(rename = "From_Account")]
    from: String,
    #[serde(rename = "SendTime")]
    time: u64,
    #[serde(rename = "Random", default)]
    random: u32,
    #[serde(rename = "MsgBody")]
    body: Vec<MsgElem>,
    #[serde(rename = "CloudCustomData", default)]
    cloud_custom_data: String,
}

#[derive(Deserialize)]
struct GroupImportReq {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "MsgList")]
    list: Vec<GroupImportMsg>,
}

/// `group_open_http_svc/import_group_msg {GroupId, MsgList: [{From_Account, SendTime, Random?,
/// MsgBody, CloudCustomData?}]}` (1..=20 messages, stored in `SendTime` order) → `MsgList:
/// [{MsgTime, MsgSeq, Result (0 imported, 1 failed, 2 already imported), ErrorCode}]` in the
/// request's order. A missing group or an AVChatRoom fails the whole call.
pub(super) async fn import_group(ctx: &Ctx, body: Value) -> RestResult {
    let req: GroupImportReq = parse(body)?;
    if req.list.is_empty() || req.list.len() > MAX_GROUP_IMPORT {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            format!("MsgList must hold 1..={MAX_GROUP_IMPORT} messages"),
        ));
    }
    if !chime_proto::ids::is_valid_group_id(&req.group_id) {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_INVALID_PARAMS,
            format!("invalid GroupId {:?}", req.group_id),
        ));
    }
    let group_key = Key::new(tag::GROUP, ctx.app)
        .s(req.group_id.as_bytes())
        .done();
    let raw = ctx.read(move |store, _| Ok(store.get(&group_key)?)).await?;
    let Some(raw) = raw else {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_NOT_FOUND,
            format!("no group {:?}", req.group_id),
        ));
    };
    let info = <pb::GroupInfo as prost::Message>::decode(&raw[..])
        .map_err(crate::error::StoreError::from)?;
    if info.group_type == "AVChatRoom" {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_PERMISSION_DENIED,
            "an AVChatRoom keeps no history to import into",
        ));
    }
    let mut order: Vec<usize> = (0..req.list.len()).collect();
    order.sort_by_key(|&i| req.list[i].time);
    let mut results = vec![Value::Null; req.list.len()];
    for i in order {
        let m = &req.list[i];
        results[i] = match import_one(ctx, &req.group_id, m).await {
            Ok((seq, time, fresh)) => json!({
                "MsgTime": time / 1000,
                "MsgSeq": seq,
                "Result": if fresh { 0 } else { 2 },
                "ErrorCode": 0,
            }),
            Err(e) => json!({
                "MsgTime": m.time,
                "MsgSeq": 0,
                "Result": 1,
                "ErrorCode": e.code,
            }),
        };
    }
    let mut out = Map::new();
    out.insert("MsgList".into(), Value::Array(results));
    Ok(out)
}

/// Imports one group message; answers `(seq, time_ms, newly stored)`.
async fn import_one(ctx: &Ctx, group_id: &str, m: &GroupImportMsg) -> ApiResult<(u64, i64, bool)> {
    ctx.require_account(&m.from).await?;
    let mut msg = imported(
        m.from.clone(),
        m.time,
        m.random,
        &m.body,
        m.cloud_custom_data.clone(),
    )?;
    msg.conv_type = pb::ConvType::Group as i32;
    msg.group_id = group_id.to_owned();
    msg.exclude_from_unread = true;
    msg.msg_id = import_msg_id(&msg);
    let key = idem_key(ctx.app, &msg);
    let seen = ctx
        .read(move |store, _| Ok(store.get(&key)?.is_some()))
        .await?;
    let (seq, time) = commit(ctx, msg).await?;
    Ok((seq, time, !seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Vec<MsgElem> {
        serde_json::from_value(json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": t}}]))
            .unwrap_or_else(|e| panic!("body: {e}"))
    }

    #[test]
    fn the_same_import_gets_the_same_id_and_any_difference_another() {
        let body = text("hi");
        let m = imported("ann".into(), 1_600_000_000, 7, &body, String::new())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(m.server_time_ms, 1_600_000_000_000);
        let id = import_msg_id(&m);
        assert!(id.starts_with("import-") && id.len() == 31, "{id}");
        assert_eq!(id, import_msg_id(&m.clone()));
        let mut other = m.clone();
        other.random = 8;
        assert_ne!(id, import_msg_id(&other));
        let ho = imported("ann".into(), 1_600_000_000, 7, &text("ho"), String::new())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_ne!(id, import_msg_id(&ho));
        let mut to_bob = m.clone();
        to_bob.receiver = "bob".into();
        assert_ne!(id, import_msg_id(&to_bob));
    }

    #[test]
    fn imports_need_a_past_time_and_a_body_under_the_limit() {
        let body = text("x");
        let code = |r: ApiResult<pb::Message>| r.err().map(|e| e.code);
        assert_eq!(
            code(imported("a".into(), 0, 0, &body, String::new())),
            Some(90002)
        );
        let future = (crate::commit::now_ms() / 1000 + 3600) as u64;
        assert_eq!(
            code(imported("a".into(), future, 0, &body, String::new())),
            Some(90002)
        );
        let big = text(&"x".repeat(13 * 1024));
        assert_eq!(
            code(imported("a".into(), 1_600_000_000, 0, &big, String::new())),
            Some(80002)
        );
        assert_eq!(
            code(imported("a".into(), 1_600_000_000, 0, &[], String::new())),
            Some(90002)
        );
    }
}
