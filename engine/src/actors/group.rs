//! GroupActor: create / join / quit / dismiss, the joined-group list and a cache of group info
//! (the `g` table, which also tells the sync which groups the user is known to be in), plus the
//! group listener events: it turns `group_tips` messages and `GroupNotifyPush`es into events
//! (mapping in [`super::group_events`]) and keeps the cached info in step with them. Management
//! calls that change nothing cached here go through [`GroupCall`]; the server's tips and pushes
//! then update the cache, the same way for the operator's devices and everyone else's.

use std::collections::BTreeMap;

use actix::prelude::*;
use chime_proto::pb::{self, request, response};
use chime_proto::{codes, ids};
use serde_json::{Value, json};

use super::connection::Rpc;
use super::{Account, CloseAccount, OpenAccount, Peers, Shared, decode};
use crate::model::StoredGroup;
use crate::store::{WriteBatch, keys};
use crate::{ApiError, Result};

/// Owns groups.
pub struct GroupActor {
    shared: Shared,
    peers: Option<Peers>,
    acct: Option<Account>,
    groups: BTreeMap<String, StoredGroup>,
    /// Ids of the tips messages whose events fired this session, newest last (bounded): a tips
    /// handed over twice (by its push and by the message actor taking it in) fires once.
    seen_tips: super::RecentIds,
}

/// Tips message ids remembered for dedupe.
const SEEN_TIPS: usize = 4096;

fn from_wire(g: &pb::GroupInfo) -> StoredGroup {
    StoredGroup {
        group_id: g.group_id.clone(),
        group_type: g.group_type.clone(),
        name: g.name.clone(),
        introduction: g.introduction.clone(),
        notification: g.notification.clone(),
        face_url: g.face_url.clone(),
        owner: g.owner.clone(),
        member_count: g.member_count,
        create_time_ms: g.create_time_ms,
        max_seq: g.max_seq,
        self_role: g.self_role.clone(),
        max_member_count: g.max_member_count,
        add_opt: g.add_opt.clone(),
        is_all_muted: g.is_all_muted,
        self_join_time_ms: g.self_join_time_ms,
    }
}

fn custom_json(m: &BTreeMap<String, Vec<u8>>) -> Value {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    let mut o = serde_json::Map::new();
    for k in keys {
        o.insert(k.clone(), json!(String::from_utf8_lossy(&m[k])));
    }
    Value::Object(o)
}

/// The api.md group info object, from the server's full record.
pub fn wire_group_json(g: &pb::GroupInfo) -> Value {
    json!({
        "group_id": g.group_id,
        "group_type": g.group_type,
        "group_name": g.name,
        "introduction": g.introduction,
        "notification": g.notification,
        "face_url": g.face_url,
        "owner": g.owner,
        "member_count": g.member_count,
        "max_member_count": g.max_member_count,
        "create_time": g.create_time_ms.div_euclid(1000),
        "add_opt": g.add_opt,
        "approve_opt": g.approve_opt,
        "is_all_muted": g.is_all_muted,
        "is_support_topic": g.is_support_topic,
        "custom_info": custom_json(&g.custom_info),
        "role": g.self_role,
        "join_time": g.self_join_time_ms.div_euclid(1000),
    })
}

/// The api.md group member object.
pub fn member_json(m: &pb::GroupMember, now_ms: i64) -> Value {
    json!({
        "user_id": m.user_id,
        "role": m.role,
        "name_card": m.name_card,
        "join_time": m.join_time_ms.div_euclid(1000),
        "mute_until": m.mute_until_ms.div_euclid(1000),
        "is_muted": m.mute_until_ms > now_ms,
        "custom_info": custom_json(&m.custom_info),
        "member_mark_list": m.member_mark_list,
    })
}

fn mailbox(e: MailboxError) -> ApiError {
    ApiError::new(codes::ERR_SDK_INTERNAL, format!("engine actor: {e}"))
}

impl GroupActor {
    /// An actor with no account.
    pub fn new(shared: Shared) -> Self {
        Self {
            shared,
            peers: None,
            acct: None,
            groups: BTreeMap::new(),
            seen_tips: super::RecentIds::default(),
        }
    }

    fn acct(&self) -> Result<&Account> {
        self.acct
            .as_ref()
            .ok_or_else(|| ApiError::new(codes::ERR_SDK_NOT_LOGGED_IN, "not logged in"))
    }

    fn put(&mut self, g: StoredGroup) {
        let mut b = WriteBatch::new();
        b.put(keys::group(&g.group_id), prost::Message::encode_to_vec(&g));
        if let Some(a) = &self.acct
            && let Err(e) = a.store.apply(b)
        {
            tracing::warn!("group write: {e}");
        }
        self.groups.insert(g.group_id.clone(), g);
    }

    fn remove(&mut self, group_id: &str) {
        let mut b = WriteBatch::new();
        b.delete(keys::group(group_id));
        if let Some(a) = &self.acct
            && let Err(e) = a.store.apply(b)
        {
            tracing::warn!("group write: {e}");
        }
        self.groups.remove(group_id);
    }

    /// Sends a request needing login, mapping the answer in the actor.
    fn rpc<F>(&mut self, kind: request::Kind, then: F) -> ResponseActFuture<Self, Result<Value>>
    where
        F: FnOnce(&mut Self, pb::Response) -> Result<Value> + 'static,
    {
        if let Err(e) = self.acct() {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let Some(peers) = self.peers.clone() else {
            return Box::pin(actix::fut::ready(Err(ApiError::new(
                codes::ERR_SDK_INTERNAL,
                "not wired",
            ))));
        };
        let fut = peers.conn.send(Rpc(kind));
        Box::pin(fut.into_actor(self).map(move |res, act, _| {
            let resp = res.map_err(mailbox).and_then(|r| r)?;
            then(act, resp)
        }))
    }
}

impl Actor for GroupActor {
    type Context = Context<Self>;
}

/// Tells the actor its peers.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetPeers(pub Peers);

impl Handler<SetPeers> for GroupActor {
    type Result = ();
    fn handle(&mut self, msg: SetPeers, _: &mut Context<Self>) {
        self.peers = Some(msg.0);
    }
}

impl Handler<OpenAccount> for GroupActor {
    type Result = ();
    fn handle(&mut self, msg: OpenAccount, _: &mut Context<Self>) {
        self.groups.clear();
        self.seen_tips = Default::default();
        let (lo, hi) = keys::table_bounds(keys::table::GROUP);
        if let Ok(entries) = msg.0.store.scan(&lo, &hi, false, usize::MAX) {
            for (k, v) in entries {
                if let Ok(g) = decode::<StoredGroup>(&k, &v) {
                    self.groups.insert(g.group_id.clone(), g);
                }
            }
        }
        self.acct = Some(msg.0);
    }
}

impl Handler<CloseAccount> for GroupActor {
    type Result = ();
    fn handle(&mut self, _: CloseAccount, _: &mut Context<Self>) {
        self.acct = None;
        self.groups.clear();
        self.seen_tips = Default::default();
    }
}

/// The full joined list from a sync.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetJoined(pub Vec<pb::GroupInfo>);

impl Handler<SetJoined> for GroupActor {
    type Result = ();
    fn handle(&mut self, msg: SetJoined, _: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        let now: Vec<String> = msg.0.iter().map(|g| g.group_id.clone()).collect();
        let gone: Vec<String> = self
            .groups
            .keys()
            .filter(|k| !now.contains(k))
            .cloned()
            .collect();
        for g in gone {
            self.remove(&g);
        }
        for g in &msg.0 {
            self.put(from_wire(g));
        }
    }
}

/// A group change pushed by the server.
#[derive(Message)]
#[rtype(result = "()")]
pub struct GroupChanged(pub pb::GroupChangePush);

impl Handler<GroupChanged> for GroupActor {
    type Result = ();
    fn handle(&mut self, msg: GroupChanged, _: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        let p = msg.0;
        let kind = p.kind();
        let Some(g) = p.group else { return };
        let ev = self.shared.events.clone();
        match kind {
            pb::GroupChangeKind::GroupChangeJoined | pb::GroupChangeKind::GroupChangeCreated => {
                let created = kind == pb::GroupChangeKind::GroupChangeCreated;
                self.put(from_wire(&g));
                if created {
                    self.shared
                        .events
                        .emit("on_group_created", json!({"group_id": g.group_id}));
                }
            }
            pb::GroupChangeKind::GroupChangeInfo => self.put(from_wire(&g)),
            pb::GroupChangeKind::GroupChangeQuit => {
                self.remove(&g.group_id);
                ev.emit("on_quit_from_group", json!({"group_id": g.group_id}));
            }
            pb::GroupChangeKind::GroupChangeKicked => {
                self.remove(&g.group_id);
                ev.emit(
                    "on_member_kicked",
                    json!({"group_id": g.group_id, "op_user": p.op_user}),
                );
            }
            pb::GroupChangeKind::GroupChangeDismissed => {
                self.remove(&g.group_id);
                ev.emit(
                    "on_group_dismissed",
                    json!({"group_id": g.group_id, "op_user": p.op_user}),
                );
            }
            pb::GroupChangeKind::GroupChangeRecycled => {
                self.remove(&g.group_id);
                ev.emit(
                    "on_group_recycled",
                    json!({"group_id": g.group_id, "op_user": p.op_user}),
                );
            }
            pb::GroupChangeKind::GroupChangeUnspecified => {}
        }
    }
}

/// `create_group`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct CreateGroup(pub pb::CreateGroupReq);

impl Handler<CreateGroup> for GroupActor {
    type Result = ResponseActFuture<Self, Result<Value>>;
    fn handle(&mut self, msg: CreateGroup, _: &mut Context<Self>) -> Self::Result {
        let req = msg.0;
        let me = self
            .acct
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        let proto = StoredGroup {
            group_type: req.group_type.clone(),
            name: req.name.clone(),
            introduction: req.introduction.clone(),
            notification: req.notification.clone(),
            face_url: req.face_url.clone(),
            owner: me,
            self_role: "owner".into(),
            add_opt: req.add_opt.clone(),
            member_count: 1 + req.member_list.len() as u32,
            ..Default::default()
        };
        self.rpc(request::Kind::CreateGroup(req), move |act, resp| {
            let Some(response::Kind::CreateGroup(c)) = resp.kind else {
                return Err(ApiError::new(
                    codes::ERR_PARSE_RESPONSE,
                    "create_group answer",
                ));
            };
            let mut g = proto;
            g.group_id = c.group_id.clone();
            g.create_time_ms = super::now_ms();
            act.put(g);
            Ok(json!({ "group_id": c.group_id }))
        })
    }
}

/// `join_group`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct JoinGroup(pub String, pub String);

impl Handler<JoinGroup> for GroupActor {
    type Result = ResponseActFuture<Self, Result<Value>>;
    fn handle(&mut self, msg: JoinGroup, _: &mut Context<Self>) -> Self::Result {
        let gid = msg.0.clone();
        self.rpc(
            request::Kind::JoinGroup(pb::JoinGroupReq {
                group_id: msg.0,
                message: msg.1,
            }),
            move |act, resp| {
                let pending = matches!(resp.kind, Some(response::Kind::JoinGroup(j)) if j.pending);
                if !pending && !act.groups.contains_key(&gid) {
                    act.put(StoredGroup {
                        group_id: gid,
                        self_role: "member".into(),
                        ..Default::default()
                    });
                }
                Ok(json!({}))
            },
        )
    }
}

/// `quit_group` (false) / `dismiss_group` (true).
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct LeaveGroup {
    /// Group.
    pub group_id: String,
    /// Dismiss instead of quit.
    pub dismiss: bool,
}

impl Handler<LeaveGroup> for GroupActor {
    type Result = ResponseActFuture<Self, Result<Value>>;
    fn handle(&mut self, msg: LeaveGroup, _: &mut Context<Self>) -> Self::Result {
        let gid = msg.group_id.clone();
        let kind = if msg.dismiss {
            request::Kind::DismissGroup(pb::DismissGroupReq {
                group_id: msg.group_id,
            })
        } else {
            request::Kind::QuitGroup(pb::QuitGroupReq {
                group_id: msg.group_id,
            })
        };
        self.rpc(kind, move |act, _| {
            act.remove(&gid);
            Ok(json!({}))
        })
    }
}

/// `get_joined_group_list`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct JoinedList;

impl Handler<JoinedList> for GroupActor {
    type Result = ResponseActFuture<Self, Result<Value>>;
    fn handle(&mut self, _: JoinedList, _: &mut Context<Self>) -> Self::Result {
        self.rpc(
            request::Kind::GetJoinedGroups(pb::GetJoinedGroupsReq {}),
            |act, resp| {
                let Some(response::Kind::GetJoinedGroups(j)) = resp.kind else {
                    return Err(ApiError::new(
                        codes::ERR_PARSE_RESPONSE,
                        "joined groups answer",
                    ));
                };
                let list: Vec<StoredGroup> = j.groups.iter().map(from_wire).collect();
                let ids: Vec<String> = list.iter().map(|g| g.group_id.clone()).collect();
                let gone: Vec<String> = act
                    .groups
                    .keys()
                    .filter(|k| !ids.contains(k))
                    .cloned()
                    .collect();
                for g in gone {
                    act.remove(&g);
                }
                let out: Vec<Value> = j.groups.iter().map(wire_group_json).collect();
                for g in list {
                    act.put(g);
                }
                Ok(json!({ "group_list": out }))
            },
        )
    }
}

/// `get_groups_info {group_ids}`.
#[derive(Message)]
#[rtype(result = "Result<Value>")]
pub struct GroupsInfo(pub Vec<String>);

impl Handler<GroupsInfo> for GroupActor {
    type Result = ResponseActFuture<Self, Result<Value>>;
    fn handle(&mut self, msg: GroupsInfo, _: &mut Context<Self>) -> Self::Result {
        if let Some(bad) = msg.0.iter().find(|g| !ids::is_valid_group_id(g)) {
            return Box::pin(actix::fut::ready(Err(ApiError::new(
                codes::ERR_INVALID_GROUP_ID,
                format!("invalid group_id {bad}"),
            ))));
        }
        let asked = msg.0.clone();
        self.rpc(
            request::Kind::GetGroupsInfo(pb::GetGroupsInfoReq { group_ids: msg.0 }),
            move |act, resp| {
                let Some(response::Kind::GetGroupsInfo(r)) = resp.kind else {
                    return Err(ApiError::new(
                        codes::ERR_PARSE_RESPONSE,
                        "groups info answer",
                    ));
                };
                let mut out = Vec::new();
                for (i, gid) in asked.iter().enumerate() {
                    let code = r.result_codes.get(i).copied().unwrap_or(0);
                    let info = r.groups.iter().find(|g| &g.group_id == gid);
                    match (code, info) {
                        (0, Some(g)) => {
                            let sg = from_wire(g);
                            if act.groups.contains_key(gid) {
                                act.put(sg.clone());
                            }
                            out.push(json!({"result_code": 0, "result_message": "",
                                "group_info": wire_group_json(g)}));
                        }
                        (c, _) => out.push(json!({
                            "result_code": if c == 0 { codes::ERR_SVR_GROUP_NOT_FOUND } else { c },
                            "result_message": "group not found",
                            "group_info": Value::Null,
                        })),
                    }
                }
                Ok(json!({ "group_info_result_list": out }))
            },
        )
    }
}

/// A group notification that is not a message (attributes, counters, applications).
#[derive(Message)]
#[rtype(result = "()")]
pub struct GroupNotified(pub pb::GroupNotifyPush);

impl Handler<GroupNotified> for GroupActor {
    type Result = ();
    fn handle(&mut self, msg: GroupNotified, _: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        for (name, params) in super::group_events::from_notify(&msg.0) {
            self.shared.events.emit(name, params);
        }
    }
}

/// A group message carrying `group_tips`, from its push or from the message actor taking it in
/// (the MessageActor stores it as a message; this actor updates its cache and emits the group
/// listener events, once per message id however often it is handed over).
#[derive(Message)]
#[rtype(result = "()")]
pub struct GroupTips(pub pb::Message);

impl GroupActor {
    /// Brings the cached info of `group_id` up to tips `t` of seq `seq` (0: an online-only
    /// tips). The cache's `max_seq` is the newest seq it reflects (a sync's joined list sets it
    /// to the group's head): tips at or below it are older than the cache — e.g. taken in by a
    /// catch-up pull after the sync's current state — and change nothing (their events still
    /// fire).
    fn apply_tips(&mut self, group_id: &str, seq: u64, t: &pb::GroupTipsElem) {
        let Some(mut g) = self.groups.get(group_id).cloned() else {
            return;
        };
        if seq > 0 && seq <= g.max_seq {
            return;
        }
        g.max_seq = g.max_seq.max(seq);
        let me = self
            .acct
            .as_ref()
            .map(|a| a.user.clone())
            .unwrap_or_default();
        if t.member_count > 0 {
            g.member_count = t.member_count;
        }
        for (k, v) in &t.group_change_info {
            match k.as_str() {
                "name" => g.name = v.clone(),
                "introduction" => g.introduction = v.clone(),
                "notification" => g.notification = v.clone(),
                "face_url" => g.face_url = v.clone(),
                "add_opt" => g.add_opt = v.clone(),
                "is_all_muted" => g.is_all_muted = v == "true",
                "owner" => {
                    if g.owner == me {
                        g.self_role = "member".into();
                    }
                    if *v == me {
                        g.self_role = "owner".into();
                    }
                    g.owner = v.clone();
                }
                _ => {}
            }
        }
        if t.member_list.contains(&me) {
            match t.tips_type() {
                pb::GroupTipsType::GroupTipsSetAdmin => g.self_role = "admin".into(),
                pb::GroupTipsType::GroupTipsCancelAdmin => g.self_role = "member".into(),
                _ => {}
            }
        }
        self.put(g);
    }
}

impl Handler<GroupTips> for GroupActor {
    type Result = ();
    fn handle(&mut self, msg: GroupTips, _: &mut Context<Self>) {
        if self.acct.is_none() {
            return;
        }
        let m = msg.0;
        if !self.seen_tips.first_sight(&m.msg_id, SEEN_TIPS) {
            return;
        }
        for e in &m.elems {
            if let Some(pb::elem::Content::GroupTips(t)) = &e.content {
                self.apply_tips(&m.group_id, m.seq, t);
                for (name, params) in super::group_events::from_tips(&m.group_id, t) {
                    self.shared.events.emit(name, params);
                }
            }
        }
    }
}

/// A management request answered by the server; the caller maps the answer.
#[derive(Message)]
#[rtype(result = "Result<response::Kind>")]
pub struct GroupCall(pub request::Kind);

impl Handler<GroupCall> for GroupActor {
    type Result = ResponseActFuture<Self, Result<response::Kind>>;
    fn handle(&mut self, msg: GroupCall, _: &mut Context<Self>) -> Self::Result {
        if let Err(e) = self.acct() {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let Some(peers) = self.peers.clone() else {
            return Box::pin(actix::fut::ready(Err(ApiError::new(
                codes::ERR_SDK_INTERNAL,
                "not wired",
            ))));
        };
        let fut = peers.conn.send(Rpc(msg.0));
        Box::pin(fut.into_actor(self).map(|res, _, _| {
            let resp = res.map_err(mailbox).and_then(|r| r)?;
            resp.kind
                .ok_or_else(|| ApiError::new(codes::ERR_PARSE_RESPONSE, "empty group answer"))
        }))
    }
}
