//! Messages sent by the REST API: C2C as any user (one receiver or many), group messages,
//! AVChatRoom broadcasts, and the online-only push to every user. Each is an
//! [`Op::Send`] of the commit pipeline, acting as the sender, so seqs, idempotency, receiver
//! checks, pushes and storage are the client path's.

use chime_proto::codes;
use chime_proto::pb::{self, response::Kind as RespKind};
use prost::Message as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::body::{self, MsgElem, RestPushInfo};
use super::{Ctx, RestResult, parse};
use crate::commit::Op;
use crate::error::{ApiError, ApiResult};
use crate::keys::{Key, tag};

/// Most receivers of one `batchsendmsg`.
const MAX_BATCH_RECEIVERS: usize = 500;

#[derive(Deserialize)]
struct C2cReq {
    /// 1 (default): the message is synced to the sender's devices; 2: not. Sends through the
    /// commit pipeline always reach the sender's sessions, so 2 is accepted and documented.
    #[serde(rename = "SyncOtherMachine", default)]
    _sync_other_machine: u32,
    #[serde(rename = "From_Account")]
    from: Option<String>,
    #[serde(rename = "To_Account")]
    to: String,
    #[serde(rename = "MsgRandom", default)]
    random: u32,
    #[serde(rename = "MsgBody")]
    body: Vec<MsgElem>,
    #[serde(rename = "CloudCustomData", default)]
    cloud_custom_data: String,
    /// 0 = online only (not stored); absent = stored.
    #[serde(rename = "MsgLifeTime")]
    life_time: Option<u32>,
    #[serde(rename = "IsNeedReadReceipt", default)]
    need_read_receipt: u32,
    #[serde(rename = "SendMsgControl", default)]
    controls: Vec<String>,
    #[serde(rename = "OfflinePushInfo")]
    push: Option<RestPushInfo>,
}

#[derive(Deserialize)]
struct BatchReq {
    #[serde(rename = "From_Account")]
    from: Option<String>,
    #[serde(rename = "To_Account")]
    to: Vec<String>,
    #[serde(rename = "MsgRandom", default)]
    random: u32,
    #[serde(rename = "MsgBody")]
    body: Vec<MsgElem>,
    #[serde(rename = "CloudCustomData", default)]
    cloud_custom_data: String,
    #[serde(rename = "SendMsgControl", default)]
    controls: Vec<String>,
    #[serde(rename = "OfflinePushInfo")]
    push: Option<RestPushInfo>,
}

/// Builds a message of `elems` from the REST fields common to every send.
fn base_message(
    elems: Vec<pb::Elem>,
    random: u32,
    cloud_custom_data: String,
    controls: &[String],
    push: Option<&RestPushInfo>,
) -> pb::Message {
    let mut msg = pb::Message {
        msg_id: body::new_msg_id(random),
        random,
        elems,
        cloud_custom_data: cloud_custom_data.into_bytes(),
        offline_push_info: push.map(RestPushInfo::to_pb),
        client_time_ms: crate::commit::now_ms(),
        ..Default::default()
    };
    body::apply_controls(&mut msg, controls);
    msg
}

/// Sends `msg` as `sender`; answers `(seq, server_time_ms)`.
async fn send(ctx: &Ctx, sender: &str, msg: pb::Message) -> ApiResult<(u64, i64)> {
    if chime_proto::limits::message_body_bytes(&msg) > chime_proto::limits::MAX_MESSAGE_BODY_BYTES {
        return Err(ApiError::new(
            codes::ERR_SVR_MSG_TOO_LARGE,
            "message body over 12 KB",
        ));
    }
    match ctx.commit(sender, Op::Send(Box::new(msg))).await? {
        RespKind::SendMessage(ack) => Ok((ack.seq, ack.server_time_ms)),
        _ => Err(ApiError::new(
            codes::ERR_SVR_INTERNAL,
            "unexpected send answer",
        )),
    }
}

/// `MsgKey` of the seed: `seq_random_time`.
fn msg_key(seq: u64, random: u32, time_ms: i64) -> String {
    format!("{seq}_{random}_{}", time_ms / 1000)
}

/// `openim/sendmsg` → `MsgTime` (seconds), `MsgKey`, `MsgSeq`, `MsgId`.
pub(super) async fn send_c2c(ctx: &Ctx, body: Value) -> RestResult {
    let req: C2cReq = parse(body)?;
    let sender = req.from.unwrap_or_else(|| ctx.admin.clone());
    ctx.require_account(&sender).await?;
    ctx.require_account(&req.to).await?;
    let elems = body::to_elems(&req.body)?;
    let mut msg = base_message(
        elems,
        req.random,
        req.cloud_custom_data,
        &req.controls,
        req.push.as_ref(),
    );
    msg.conv_type = pb::ConvType::C2c as i32;
    msg.receiver = req.to;
    msg.online_user_only = req.life_time == Some(0);
    msg.need_read_receipt = req.need_read_receipt == 1;
    let msg_id = msg.msg_id.clone();
    let (seq, time) = send(ctx, &sender, msg).await?;
    let mut out = Map::new();
    out.insert("MsgTime".into(), json!(time / 1000));
    out.insert("MsgKey".into(), json!(msg_key(seq, req.random, time)));
    out.insert("MsgSeq".into(), json!(seq));
    out.insert("MsgId".into(), json!(msg_id));
    Ok(out)
}

/// `openim/batchsendmsg` (at most 500 receivers) → `MsgKey` of the first, `ErrorList` of the
/// receivers that failed (`{To_Account, ErrorCode}`).
pub(super) async fn batch_send(ctx: &Ctx, body: Value) -> RestResult {
    let req: BatchReq = parse(body)?;
    if req.to.is_empty() || req.to.len() > MAX_BATCH_RECEIVERS {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "To_Account must list 1..=500 users",
        ));
    }
    let sender = req.from.unwrap_or_else(|| ctx.admin.clone());
    ctx.require_account(&sender).await?;
    let elems = body::to_elems(&req.body)?;
    let mut errors = Vec::new();
    let mut first_key = None;
    for to in req.to {
        let result = match ctx.require_account(&to).await {
            Err(e) => Err(e),
            Ok(()) => {
                let mut msg = base_message(
                    elems.clone(),
                    req.random,
                    req.cloud_custom_data.clone(),
                    &req.controls,
                    req.push.as_ref(),
                );
                msg.conv_type = pb::ConvType::C2c as i32;
                msg.receiver = to.clone();
                send(ctx, &sender, msg).await
            }
        };
        match result {
            Ok((seq, time)) => {
                first_key.get_or_insert_with(|| msg_key(seq, req.random, time));
            }
            Err(e) => errors.push(json!({"To_Account": to, "ErrorCode": e.code})),
        }
    }
    let mut out = Map::new();
    out.insert("MsgKey".into(), json!(first_key.unwrap_or_default()));
    out.insert("ErrorList".into(), json!(errors));
    Ok(out)
}

#[derive(Deserialize)]
struct GroupReq {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "From_Account")]
    from: Option<String>,
    #[serde(rename = "Random", default)]
    random: u32,
    #[serde(rename = "MsgPriority", default)]
    priority: String,
    #[serde(rename = "MsgBody")]
    body: Vec<MsgElem>,
    #[serde(rename = "OnlineOnlyFlag", default)]
    online_only: u32,
    /// A targeted group message: only these members receive it.
    #[serde(rename = "To_Account", default)]
    to: Vec<String>,
    #[serde(rename = "CloudCustomData", default)]
    cloud_custom_data: String,
    #[serde(rename = "SendMsgControl", default)]
    controls: Vec<String>,
    #[serde(rename = "OfflinePushInfo")]
    push: Option<RestPushInfo>,
}

fn priority(name: &str) -> Result<pb::Priority, ApiError> {
    Ok(match name {
        "" | "Normal" => pb::Priority::Normal,
        "High" => pb::Priority::High,
        "Low" | "Lowest" => pb::Priority::Low,
        other => {
            return Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                format!("MsgPriority {other:?}: expected High|Normal|Low|Lowest"),
            ));
        }
    })
}

/// `group_open_http_svc/send_group_msg` → `MsgTime`, `MsgSeq`, `MsgId`. Without
/// `From_Account` the administrator sends (allowed in any group).
pub(super) async fn send_group(ctx: &Ctx, body: Value) -> RestResult {
    let req: GroupReq = parse(body)?;
    let sender = req.from.unwrap_or_else(|| ctx.admin.clone());
    ctx.require_account(&sender).await?;
    let elems = body::to_elems(&req.body)?;
    let mut msg = base_message(
        elems,
        req.random,
        req.cloud_custom_data,
        &req.controls,
        req.push.as_ref(),
    );
    msg.conv_type = pb::ConvType::Group as i32;
    msg.group_id = req.group_id;
    msg.priority = priority(&req.priority)? as i32;
    msg.online_user_only = req.online_only == 1;
    msg.target_user_list = req.to;
    let msg_id = msg.msg_id.clone();
    let (seq, time) = send(ctx, &sender, msg).await?;
    let mut out = Map::new();
    out.insert("MsgTime".into(), json!(time / 1000));
    out.insert("MsgSeq".into(), json!(seq));
    out.insert("MsgId".into(), json!(msg_id));
    Ok(out)
}

#[derive(Deserialize)]
struct BroadcastReq {
    #[serde(rename = "From_Account")]
    from: Option<String>,
    #[serde(rename = "Random", default)]
    random: u32,
    #[serde(rename = "MsgBody")]
    body: Vec<MsgElem>,
}

/// Every AVChatRoom of the app.
fn av_chat_rooms(store: &dyn crate::store::Store, app: u64) -> ApiResult<Vec<String>> {
    let (start, end) = Key::new(tag::GROUP, app).prefix_range();
    let mut out = Vec::new();
    for (_, v) in store.scan(&start, &end, usize::MAX, false)? {
        let info = pb::GroupInfo::decode(&v[..]).map_err(crate::error::StoreError::from)?;
        if info.group_type == "AVChatRoom" {
            out.push(info.group_id);
        }
    }
    Ok(out)
}

/// `group_open_http_svc/send_broadcast_msg`: one online-only message with
/// `is_broadcast_message` to every AVChatRoom of the app → `GroupIdList` (the rooms reached)
/// and `ErrorList` (`{GroupId, ErrorCode}`). The sender is `From_Account` (which must be allowed
/// to speak in each room) or the administrator.
pub(super) async fn broadcast(ctx: &Ctx, body: Value) -> RestResult {
    let req: BroadcastReq = parse(body)?;
    let sender = req.from.unwrap_or_else(|| ctx.admin.clone());
    ctx.require_account(&sender).await?;
    let elems = body::to_elems(&req.body)?;
    let rooms = ctx.read(av_chat_rooms).await?;
    let mut reached = Vec::new();
    let mut errors = Vec::new();
    for group_id in rooms {
        let mut msg = base_message(elems.clone(), req.random, String::new(), &[], None);
        msg.conv_type = pb::ConvType::Group as i32;
        msg.group_id = group_id.clone();
        msg.online_user_only = true;
        msg.is_broadcast_message = true;
        msg.priority = pb::Priority::High as i32;
        match send(ctx, &sender, msg).await {
            Ok(_) => reached.push(group_id),
            Err(e) => errors.push(json!({"GroupId": group_id, "ErrorCode": e.code})),
        }
    }
    let mut out = Map::new();
    out.insert("GroupIdList".into(), json!(reached));
    out.insert("ErrorList".into(), json!(errors));
    Ok(out)
}

#[derive(Deserialize)]
struct PushAllReq {
    #[serde(rename = "From_Account")]
    from: Option<String>,
    #[serde(rename = "MsgRandom", default)]
    random: u32,
    #[serde(rename = "MsgBody")]
    body: Vec<MsgElem>,
}

/// `all_member_push/im_push`: an online-only C2C message from `From_Account` (or the
/// administrator) to every user online now → `TaskId`, `UserCount` (users reached).
pub(super) async fn push_all(ctx: &Ctx, body: Value) -> RestResult {
    let req: PushAllReq = parse(body)?;
    let sender = req.from.unwrap_or_else(|| ctx.admin.clone());
    ctx.require_account(&sender).await?;
    let elems = body::to_elems(&req.body)?;
    let mut count = 0u64;
    for user in ctx.shared.registry.online_user_ids(ctx.app) {
        if user == sender {
            continue;
        }
        let mut msg = base_message(elems.clone(), req.random, String::new(), &[], None);
        msg.conv_type = pb::ConvType::C2c as i32;
        msg.receiver = user;
        msg.online_user_only = true;
        if send(ctx, &sender, msg).await.is_ok() {
            count += 1;
        }
    }
    let mut out = Map::new();
    out.insert(
        "TaskId".into(),
        json!(format!("push-{:016x}", rand::random::<u64>())),
    );
    out.insert("UserCount".into(), json!(count));
    Ok(out)
}
