//! Signaling (信令): call-style invitations whose state the server owns.
//!
//! An invitation lives in the store from `invite` until every invitee answered, the inviter
//! cancelled it, or its timeout passed. The server, not the inviter's client, enforces the
//! timeout ([`spawn_timer`]), so `on_invitation_timeout` fires on both sides even when the inviter
//! went offline. Every change is a `SignalingPush` to the users concerned, staged on the commit
//! pipeline like any write ([`stage`]). An invitation that is not online-only is also sent as a
//! custom message carrying the seed's signaling JSON (`businessID: 1`), so it is in the
//! conversation's history (`get_signaling_info` reads it back) and reaches offline users; pending
//! invitations are pushed again to a user at login ([`send_pending`]).
//!
//! Keys: `W` app, invite id → `pb::Invitation`; `P` app, invitee, invite id → () (pending
//! invitations of a user); `w` app 0, deadline, app, invite id → () (the timeout index, global so
//! that one scan finds what is due).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chime_proto::pb::{self, response::Kind as RespKind, signaling_req::Op as ReqOp};
use chime_proto::{codes, ids};
use prost::Message as _;
use serde_json::json;

use crate::Shared;
use crate::commit::{Core, Effect, Msg, Op, Reply, now_ms};
use crate::error::{ApiError, ApiResult, StoreError};
use crate::keys::{self, Key, tag};
use crate::registry::{ConnTx, push_frame};
use crate::store::Store;
use crate::txn::Txn;

/// How often the timer looks for invitations past their deadline.
const TIMER_TICK: Duration = Duration::from_millis(200);
/// Most invitations expired by one timer command.
const EXPIRE_BATCH: usize = 1000;
/// Most invitees of one invitation.
pub const MAX_INVITEES: usize = 50;
/// Longest timeout accepted (one day).
pub const MAX_TIMEOUT_SECS: u32 = 86_400;
/// `businessID` of the seed's signaling payload.
pub const BUSINESS_ID: i64 = 1;

/// A signaling write.
#[derive(Debug)]
pub enum SignalOp {
    /// A client's request.
    Client(Box<pb::SignalingReq>),
    /// Time out every invitation whose deadline passed (the timer's command).
    Expire,
}

fn invitation_key(app: u64, id: &str) -> Vec<u8> {
    Key::new(tag::SIGNAL, app).s(id.as_bytes()).done()
}

fn pending_key(app: u64, user: &str, id: &str) -> Vec<u8> {
    Key::new(tag::SIGNAL_PENDING, app)
        .s(user.as_bytes())
        .s(id.as_bytes())
        .done()
}

fn deadline_key(deadline_ms: i64, app: u64, id: &str) -> Vec<u8> {
    Key::new(tag::SIGNAL_DEADLINE, 0)
        .n(u64::try_from(deadline_ms).unwrap_or(0))
        .n(app)
        .s(id.as_bytes())
        .done()
}

/// `(app, invite id)` of a deadline key.
fn parse_deadline_key(key: &[u8]) -> Option<(u64, String)> {
    let app = keys::be_u64(key, 1 + 8 + 8)?;
    let id = keys::trailing_str(key, 1 + 8 + 8 + 8)?;
    Some((app, id))
}

fn not_found() -> ApiError {
    ApiError::new(
        codes::ERR_SIGNALING_INVALID_INVITE_ID,
        "no such invitation (unknown, answered, cancelled or timed out)",
    )
}

fn forbidden(what: &str) -> ApiError {
    ApiError::new(codes::ERR_SIGNALING_NO_PERMISSION, what.to_owned())
}

fn signal_frame(
    kind: pb::SignalKind,
    inv: &pb::Invitation,
    operator: &str,
    data: &str,
    timeout_invitees: Vec<String>,
) -> Bytes {
    push_frame(pb::push::Kind::Signaling(pb::SignalingPush {
        kind: kind as i32,
        invitation: Some(inv.clone()),
        operator: operator.to_owned(),
        data: data.to_owned(),
        timeout_invitees,
    }))
}

fn push_to(fx: &mut Vec<Effect>, app: u64, users: &[String], frame: &Bytes) {
    for user in users {
        fx.push(Effect::Push {
            app,
            user: user.clone(),
            frame: frame.clone(),
            skip: 0,
        });
    }
}

fn load(txn: &Txn<'_>, app: u64, id: &str) -> ApiResult<Option<pb::Invitation>> {
    match txn.get(&invitation_key(app, id))? {
        None => Ok(None),
        Some(v) => Ok(Some(
            pb::Invitation::decode(&v[..]).map_err(StoreError::from)?,
        )),
    }
}

/// Deletes the invitation and its index entries.
fn remove(txn: &mut Txn<'_>, app: u64, inv: &pb::Invitation) {
    txn.del(invitation_key(app, &inv.invite_id));
    for user in &inv.pending {
        txn.del(pending_key(app, user, &inv.invite_id));
    }
    if inv.deadline_ms > 0 {
        txn.del(deadline_key(inv.deadline_ms, app, &inv.invite_id));
    }
}

/// Stages one signaling write (called by the commit thread).
pub(crate) fn stage(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    op: SignalOp,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    let req = match op {
        SignalOp::Expire => {
            expire(core, txn, fx)?;
            return Ok(RespKind::Signaling(pb::SignalingResp::default()));
        }
        SignalOp::Client(req) => *req,
    };
    let invite_id = match req.op {
        None => {
            return Err(ApiError::new(
                codes::ERR_SVR_INVALID_PARAMS,
                "op is required",
            ));
        }
        Some(ReqOp::Invite(inv)) => invite(core, txn, app, user, inv, fx)?,
        Some(ReqOp::Cancel(a)) => {
            let inv = load(txn, app, &a.invite_id)?.ok_or_else(not_found)?;
            if inv.inviter != user {
                return Err(forbidden("only the inviter may cancel"));
            }
            remove(txn, app, &inv);
            let frame = signal_frame(pb::SignalKind::Cancel, &inv, user, &a.data, Vec::new());
            push_to(fx, app, &inv.pending, &frame);
            a.invite_id
        }
        Some(ReqOp::Accept(a)) => answer(txn, app, user, a, pb::SignalKind::Accept, fx)?,
        Some(ReqOp::Reject(a)) => answer(txn, app, user, a, pb::SignalKind::Reject, fx)?,
        Some(ReqOp::Modify(a)) => {
            let mut inv = load(txn, app, &a.invite_id)?.ok_or_else(not_found)?;
            if inv.inviter != user {
                return Err(forbidden("only the inviter may modify the invitation"));
            }
            check_data(&a.data)?;
            inv.data = a.data.clone();
            txn.put(invitation_key(app, &inv.invite_id), inv.encode_to_vec());
            let frame = signal_frame(pb::SignalKind::Modify, &inv, user, &a.data, Vec::new());
            push_to(fx, app, &inv.pending, &frame);
            a.invite_id
        }
    };
    Ok(RespKind::Signaling(pb::SignalingResp { invite_id }))
}

fn check_data(data: &str) -> ApiResult<()> {
    if data.len() > chime_proto::limits::MAX_MESSAGE_BODY_BYTES {
        return Err(ApiError::new(
            codes::ERR_SVR_MSG_TOO_LARGE,
            "signaling data over 12 KB",
        ));
    }
    Ok(())
}

fn invite(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::SignalInvite,
    fx: &mut Vec<Effect>,
) -> ApiResult<String> {
    let mut invitees = req.invitees;
    invitees.sort();
    invitees.dedup();
    invitees.retain(|u| u != user);
    if invitees.is_empty() || invitees.len() > MAX_INVITEES {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "invitees must name 1..=50 other users",
        ));
    }
    if let Some(bad) = invitees.iter().find(|u| !ids::is_valid_user_id(u)) {
        return Err(ApiError::new(
            codes::ERR_INVALID_USER_ID,
            format!("invalid invitee {bad:?}"),
        ));
    }
    if req.timeout_secs > MAX_TIMEOUT_SECS {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "timeout is at most 86400 seconds",
        ));
    }
    check_data(&req.data)?;
    if !req.group_id.is_empty() {
        if !ids::is_valid_group_id(&req.group_id) {
            return Err(ApiError::new(
                codes::ERR_INVALID_GROUP_ID,
                "invalid group id",
            ));
        }
        let Some(group) = core.group(txn, app, &req.group_id)? else {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_NOT_FOUND,
                "no such group",
            ));
        };
        if !group.members.contains_key(user) {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the group",
            ));
        }
        if let Some(out) = invitees.iter().find(|u| !group.members.contains_key(*u)) {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                format!("{out:?} is not a member of the group"),
            ));
        }
    }
    let now = now_ms();
    let invite_id = format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let deadline_ms = if req.timeout_secs == 0 {
        0
    } else {
        now + i64::from(req.timeout_secs) * 1000
    };
    let inv = pb::Invitation {
        invite_id: invite_id.clone(),
        inviter: user.to_owned(),
        group_id: req.group_id,
        invitees: invitees.clone(),
        data: req.data,
        timeout_secs: req.timeout_secs,
        deadline_ms,
        online_user_only: req.online_user_only,
        pending: invitees.clone(),
        create_time_ms: now,
    };
    txn.put(invitation_key(app, &invite_id), inv.encode_to_vec());
    for u in &invitees {
        txn.put(pending_key(app, u, &invite_id), Vec::new());
    }
    if deadline_ms > 0 {
        txn.put(deadline_key(deadline_ms, app, &invite_id), Vec::new());
    }
    let frame = signal_frame(pb::SignalKind::Invite, &inv, user, &inv.data, Vec::new());
    push_to(fx, app, &invitees, &frame);
    Ok(invite_id)
}

fn answer(
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    a: pb::SignalAction,
    kind: pb::SignalKind,
    fx: &mut Vec<Effect>,
) -> ApiResult<String> {
    let mut inv = load(txn, app, &a.invite_id)?.ok_or_else(not_found)?;
    if !inv.pending.iter().any(|u| u == user) {
        return Err(forbidden("not a pending invitee of this invitation"));
    }
    check_data(&a.data)?;
    inv.pending.retain(|u| u != user);
    txn.del(pending_key(app, user, &inv.invite_id));
    if inv.pending.is_empty() {
        remove(txn, app, &inv);
    } else {
        txn.put(invitation_key(app, &inv.invite_id), inv.encode_to_vec());
    }
    let frame = signal_frame(kind, &inv, user, &a.data, Vec::new());
    let mut to: Vec<String> = inv
        .invitees
        .iter()
        .filter(|u| *u != user)
        .cloned()
        .collect();
    to.push(inv.inviter.clone());
    push_to(fx, app, &to, &frame);
    Ok(a.invite_id)
}

/// Times out what is due: the inviter and the invitees still pending get the timeout push.
fn expire(core: &mut Core, txn: &mut Txn<'_>, fx: &mut Vec<Effect>) -> ApiResult<()> {
    let now = now_ms();
    let start = Key::new(tag::SIGNAL_DEADLINE, 0).done();
    let end = Key::new(tag::SIGNAL_DEADLINE, 0)
        .n(u64::try_from(now).unwrap_or(0) + 1)
        .done();
    for (key, _) in core.store.scan(&start, &end, EXPIRE_BATCH, false)? {
        txn.del(key.clone());
        let Some((app, id)) = parse_deadline_key(&key) else {
            continue;
        };
        let Some(inv) = load(txn, app, &id)? else {
            continue;
        };
        if inv.deadline_ms == 0 || inv.deadline_ms > now {
            continue;
        }
        remove(txn, app, &inv);
        let frame = signal_frame(pb::SignalKind::Timeout, &inv, "", "", inv.pending.clone());
        let mut to = inv.pending.clone();
        to.push(inv.inviter.clone());
        push_to(fx, app, &to, &frame);
    }
    Ok(())
}

/// The seed's signaling payload of an invitation's custom message.
pub fn invite_payload(
    inv_id: &str,
    inviter: &str,
    req: &pb::SignalInvite,
    invitees: &[String],
) -> String {
    json!({
        "businessID": BUSINESS_ID,
        "inviteID": inv_id,
        "inviter": inviter,
        "actionType": pb::SignalKind::Invite as i32,
        "inviteeList": invitees,
        "data": req.data,
        "timeout": req.timeout_secs,
        "groupID": req.group_id,
        "onlineUserOnly": req.online_user_only,
    })
    .to_string()
}

/// Runs `op` as `user` on the commit pipeline and waits for its answer.
async fn run(shared: &Shared, app: u64, user: &str, op: Op) -> ApiResult<RespKind> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let cmd = crate::commit::Command {
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
    rx.await.map_err(|_| stopping())?
}

/// A client's signaling request: the state change on the commit pipeline, then (for an invite
/// that is not online-only) the invitation's custom message(s), then the answer on `conn`. Runs
/// in its own task so that the connection keeps reading.
pub fn request(
    shared: &Arc<Shared>,
    conn: &ConnTx,
    app: u64,
    user: &str,
    id: u64,
    req: pb::SignalingReq,
) {
    let shared = Arc::clone(shared);
    let conn = conn.clone();
    let user = user.to_owned();
    tokio::spawn(async move {
        let invite = match &req.op {
            Some(ReqOp::Invite(i)) if !i.online_user_only => Some(i.clone()),
            _ => None,
        };
        let result = run(
            &shared,
            app,
            &user,
            Op::Signaling(SignalOp::Client(Box::new(req))),
        )
        .await;
        if let (Ok(RespKind::Signaling(resp)), Some(inv)) = (&result, invite) {
            send_invite_messages(&shared, app, &user, &resp.invite_id, inv).await;
        }
        conn.send(crate::commit::response_frame(id, result));
    });
}

/// The invitation as custom message(s): one C2C message per invitee, or one group message.
async fn send_invite_messages(
    shared: &Shared,
    app: u64,
    inviter: &str,
    id: &str,
    req: pb::SignalInvite,
) {
    let mut invitees = req.invitees.clone();
    invitees.sort();
    invitees.dedup();
    invitees.retain(|u| u != inviter);
    let payload = invite_payload(id, inviter, &req, &invitees);
    let message = |conv_type: pb::ConvType, receiver: String, group_id: String| pb::Message {
        msg_id: format!("signal-{id}-{receiver}"),
        conv_type: conv_type as i32,
        receiver,
        group_id,
        random: rand::random(),
        elems: vec![pb::Elem {
            content: Some(pb::elem::Content::Custom(pb::CustomElem {
                data: payload.clone().into_bytes(),
                description: String::new(),
                extension: String::new(),
            })),
        }],
        offline_push_info: req.offline_push_info.clone(),
        client_time_ms: now_ms(),
        ..Default::default()
    };
    let msgs: Vec<pb::Message> = if req.group_id.is_empty() {
        invitees
            .into_iter()
            .map(|u| message(pb::ConvType::C2c, u, String::new()))
            .collect()
    } else {
        vec![message(
            pb::ConvType::Group,
            String::new(),
            req.group_id.clone(),
        )]
    };
    for m in msgs {
        if let Err(e) = run(shared, app, inviter, Op::Send(Box::new(m))).await {
            tracing::warn!(
                app,
                inviter,
                invite = id,
                "invitation message not sent: {}",
                e.desc
            );
        }
    }
}

/// The pending, not online-only, not timed-out invitations of `user` as push frames.
pub fn pending_frames(store: &dyn Store, app: u64, user: &str, now: i64) -> ApiResult<Vec<Bytes>> {
    let (start, end) = Key::new(tag::SIGNAL_PENDING, app)
        .s(user.as_bytes())
        .prefix_range();
    let prefix_len = start.len();
    let mut out = Vec::new();
    for (key, _) in store.scan(&start, &end, 1000, false)? {
        let Some(id) = keys::trailing_str(&key, prefix_len) else {
            continue;
        };
        let Some(v) = store.get(&invitation_key(app, &id))? else {
            continue;
        };
        let inv = pb::Invitation::decode(&v[..]).map_err(StoreError::from)?;
        let live = inv.deadline_ms == 0 || inv.deadline_ms > now;
        if live && !inv.online_user_only && inv.pending.iter().any(|u| u == user) {
            out.push(signal_frame(
                pb::SignalKind::Invite,
                &inv,
                &inv.inviter,
                &inv.data,
                Vec::new(),
            ));
        }
    }
    Ok(out)
}

/// After a login: pushes the user's pending invitations to the new session. Reads the store:
/// runs on the session follow-up lane ([`crate::followups`]).
pub fn send_pending(store: &dyn Store, app: u64, user: &str, conn: &ConnTx) {
    match pending_frames(store, app, user, now_ms()) {
        Ok(frames) => {
            for f in frames {
                conn.send(f);
            }
        }
        Err(e) => tracing::warn!(app, user, "pending invitations not read: {}", e.desc),
    }
}

/// Starts the timeout timer: while anything is due, it has the commit thread expire it.
pub fn spawn_timer(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stopping = shared.stopping.clone();
        loop {
            tokio::select! {
                _ = stopping.wait_for(|s| *s) => break,
                _ = tokio::time::sleep(TIMER_TICK) => {}
            }
            let start = Key::new(tag::SIGNAL_DEADLINE, 0).done();
            let end = Key::new(tag::SIGNAL_DEADLINE, 0)
                .n(u64::try_from(now_ms()).unwrap_or(0) + 1)
                .done();
            // A probe on an async worker: no wait at the read barrier (the expiry command
            // itself is staged against every write).
            let due = match shared.reads.unsettled().scan(&start, &end, 1, false) {
                Ok(found) => !found.is_empty(),
                Err(e) => {
                    tracing::warn!("signaling timer scan failed: {e}");
                    false
                }
            };
            if due
                && run(&shared, 0, "", Op::Signaling(SignalOp::Expire))
                    .await
                    .is_err()
            {
                break;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_keys_sort_by_time_and_parse_back() {
        let a = deadline_key(1_000, 7, "inv-a");
        let b = deadline_key(2_000, 1, "inv-b");
        assert!(a < b);
        assert_eq!(parse_deadline_key(&a), Some((7, "inv-a".to_owned())));
        let end = Key::new(tag::SIGNAL_DEADLINE, 0).n(1_001).done();
        assert!(a < end && b > end);
    }

    #[test]
    fn invite_payload_is_the_seeds_json() {
        let req = pb::SignalInvite {
            data: "d".into(),
            timeout_secs: 30,
            ..Default::default()
        };
        let v: serde_json::Value =
            serde_json::from_str(&invite_payload("id1", "alice", &req, &["bob".into()])).unwrap();
        assert_eq!(v["businessID"], 1);
        assert_eq!(v["inviteID"], "id1");
        assert_eq!(v["actionType"], 1);
        assert_eq!(v["inviteeList"], json!(["bob"]));
        assert_eq!(v["timeout"], 30);
    }
}
