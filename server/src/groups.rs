//! Group mutations (create, join, quit, dismiss), staged by the commit task, and the group
//! state the commit task caches ([`GroupState`]: who is a member, who is staff, who is muted),
//! which every send checks ([`check_speak`]).
//!
//! The other management operations live beside this module: [`crate::group_admin`] (profile,
//! roles, invite, kick, mute, member profile), [`crate::group_apply`] (join applications),
//! [`crate::group_kv`] (attributes and counters), [`crate::group_tips`] (the `group_tips`
//! messages every change leaves in the group's history).
//!
//! Large groups and live rooms: a group message is one append plus one
//! [`Effect::Group`](crate::commit::Effect) that the registry resolves against the online
//! sessions after the commit, so nothing on the sender's path is per member. An AVChatRoom's
//! membership follows its members' sessions: a member offline longer than
//! `live_room_offline_grace_secs` leaves ([`went_offline`], [`Core::leave_live_rooms`]), its
//! member list and online count are its online members, and its joins and departures leave no
//! tips (at live-room scale they would cost O(members²)).
//!
//! Storage: the group's shared info (`G`), one record per member (`m`, with the member's join
//! seq, which is the history-visibility point) and a joined-group index per user (`j`). Every
//! membership change bumps the affected user's change log (so a reconnecting device learns it by
//! sync) and pushes a `GroupChangePush` to that user's online devices. Group messages themselves
//! use read diffusion: nothing is written per member per message.

pub mod recycle;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids};
use prost::Message as _;

use crate::commit::{Command, Core, Effect, Msg, Op, Reply, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::keys::{self, Key, tag};
use crate::registry::{Registry, push_frame};
use crate::store::Store;
use crate::txn::Txn;

/// The live-room group type: online-only messages, membership bound to sessions.
pub const LIVE_ROOM: &str = "AVChatRoom";

/// The group types of this issue, with the seed's aliases.
pub fn normalize_type(t: &str) -> Option<&'static str> {
    match t {
        "Work" | "Private" => Some("Work"),
        "Public" => Some("Public"),
        "Meeting" | "ChatRoom" => Some("Meeting"),
        "AVChatRoom" => Some("AVChatRoom"),
        "Community" => Some("Community"),
        _ => None,
    }
}

/// Role names on the wire.
pub mod role {
    /// Owner.
    pub const OWNER: &str = "owner";
    /// Administrator.
    pub const ADMIN: &str = "admin";
    /// Ordinary member.
    pub const MEMBER: &str = "member";
}

/// Operation not allowed for the group owner (e.g. quitting their own group).
pub const ERR_SVR_GROUP_OWNER_NOT_ALLOWED: i32 = 10009;
/// The application or invitation was already handled.
pub const ERR_SVR_GROUP_ALREADY_PROCESSED: i32 = 10024;

/// Longest group name (bytes).
pub const MAX_NAME_BYTES: usize = 30;
/// Longest introduction (bytes).
pub const MAX_INTRODUCTION_BYTES: usize = 240;
/// Longest notification (bytes).
pub const MAX_NOTIFICATION_BYTES: usize = 300;
/// Longest face URL (bytes).
pub const MAX_FACE_URL_BYTES: usize = 100;
/// Longest member name card (bytes).
pub const MAX_NAME_CARD_BYTES: usize = 50;

/// Cached state of one group (the commit thread's copy; readers use the store).
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupState {
    pub info: pb::GroupInfo,
    /// user → join seq.
    pub members: HashMap<String, u64>,
    /// Administrators (the owner is `info.owner`).
    pub admins: HashSet<String>,
    /// user → muted until (ms); only members with a mute ever set.
    pub muted: HashMap<String, i64>,
    /// Users whose receive option for the group is `not_receive` (messages are not pushed to
    /// them; tips still are). Kept by [`crate::conversations`].
    pub not_receive: HashSet<String>,
}

impl GroupState {
    /// The state of a group from its info and its member records.
    pub fn from_members(info: pb::GroupInfo, members: Vec<(u64, pb::GroupMember)>) -> Self {
        let mut g = GroupState {
            info,
            ..Default::default()
        };
        for (join_seq, m) in members {
            if m.role == role::ADMIN {
                g.admins.insert(m.user_id.clone());
            }
            if m.mute_until_ms > 0 {
                g.muted.insert(m.user_id.clone(), m.mute_until_ms);
            }
            g.members.insert(m.user_id, join_seq);
        }
        g
    }

    /// Whether `user` is the owner or an administrator.
    pub fn is_staff(&self, user: &str) -> bool {
        self.info.owner == user || self.admins.contains(user)
    }
}

/// Whether `sender` may send to `g` now: muted members (10017) and, while the whole group is
/// muted, everyone but the owner and administrators are refused.
pub(crate) fn check_speak(g: &GroupState, sender: &str, now_ms: i64) -> ApiResult<()> {
    if g.is_staff(sender) || !g.members.contains_key(sender) {
        return Ok(());
    }
    if g.info.is_all_muted {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_SHUTUP_DENY,
            "the whole group is muted",
        ));
    }
    if g.muted.get(sender).is_some_and(|&until| until > now_ms) {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_SHUTUP_DENY,
            "you are muted in this group",
        ));
    }
    Ok(())
}

/// Checks the profile text fields against the seed's limits (10004 naming the field).
pub(crate) fn check_profile(
    name: Option<&str>,
    introduction: Option<&str>,
    notification: Option<&str>,
    face_url: Option<&str>,
) -> ApiResult<()> {
    for (field, value, max) in [
        ("group_name", name, MAX_NAME_BYTES),
        ("introduction", introduction, MAX_INTRODUCTION_BYTES),
        ("notification", notification, MAX_NOTIFICATION_BYTES),
        ("face_url", face_url, MAX_FACE_URL_BYTES),
    ] {
        if value.is_some_and(|v| v.len() > max) {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                format!("{field} longer than {max} bytes"),
            ));
        }
    }
    Ok(())
}

/// Normalizes an add option ("" → the default "any").
pub(crate) fn normalize_add_opt(opt: &str) -> ApiResult<&'static str> {
    match opt {
        "" | "any" => Ok("any"),
        "auth" => Ok("auth"),
        "forbid" => Ok("forbid"),
        other => Err(ApiError::new(
            codes::ERR_SVR_GROUP_INVALID_PARAMS,
            format!("add_opt {other:?}: expected any|auth|forbid"),
        )),
    }
}

pub(crate) fn member_value(join_seq: u64, m: &pb::GroupMember) -> Vec<u8> {
    let mut v = join_seq.to_be_bytes().to_vec();
    m.encode(&mut v).unwrap_or_default();
    v
}

/// Info of `g` as `user` sees it.
pub fn info_for(
    info: &pb::GroupInfo,
    role: &str,
    join_time_ms: i64,
    max_seq: u64,
) -> pb::GroupInfo {
    let mut i = info.clone();
    i.self_role = role.to_owned();
    i.self_join_time_ms = join_time_ms;
    i.max_seq = max_seq;
    i
}

impl Core {
    pub(crate) fn change_push(
        fx: &mut Vec<Effect>,
        app: u64,
        user: &str,
        kind: pb::GroupChangeKind,
        group: pb::GroupInfo,
        op_user: &str,
        skip: u64,
    ) {
        let frame = push_frame(pb::push::Kind::GroupChange(pb::GroupChangePush {
            kind: kind as i32,
            group: Some(group),
            op_user: op_user.to_owned(),
        }));
        fx.push(Effect::Push {
            app,
            user: user.to_owned(),
            frame,
            skip,
        });
    }

    pub(crate) fn put_member(
        txn: &mut Txn<'_>,
        app: u64,
        group_id: &str,
        join_seq: u64,
        m: &pb::GroupMember,
    ) -> ApiResult<()> {
        txn.put(
            Key::new(tag::MEMBER, app)
                .s(group_id.as_bytes())
                .s(m.user_id.as_bytes())
                .done(),
            member_value(join_seq, m),
        );
        txn.put(
            Key::new(tag::JOINED, app)
                .s(m.user_id.as_bytes())
                .s(group_id.as_bytes())
                .done(),
            Vec::new(),
        );
        txn.touch(app, &m.user_id, &keys::group_conv(group_id));
        Ok(())
    }

    pub(crate) fn del_member(
        txn: &mut Txn<'_>,
        app: u64,
        group_id: &str,
        user: &str,
    ) -> ApiResult<()> {
        txn.del(
            Key::new(tag::MEMBER, app)
                .s(group_id.as_bytes())
                .s(user.as_bytes())
                .done(),
        );
        txn.del(
            Key::new(tag::JOINED, app)
                .s(user.as_bytes())
                .s(group_id.as_bytes())
                .done(),
        );
        // A community member leaves its permission groups too.
        crate::community::forget_member(txn, app, group_id, user)?;
        // No change-log entry: the next sync's joined-group list tells the user's devices, and
        // a conversation the user may no longer read must not make them pull it (10007).
        Ok(())
    }

    pub(crate) fn save_group(&mut self, txn: &mut Txn<'_>, app: u64, state: GroupState) {
        txn.put(
            Key::new(tag::GROUP, app)
                .s(state.info.group_id.as_bytes())
                .done(),
            state.info.encode_to_vec(),
        );
        self.groups
            .insert((app, state.info.group_id.clone()), Arc::new(state));
    }

    pub(crate) fn head(txn: &Txn<'_>, app: u64, group_id: &str) -> ApiResult<u64> {
        Ok(txn.get_u64(
            &Key::new(tag::HEAD, app)
                .s(&keys::group_conv(group_id))
                .done(),
        )?)
    }

    fn generate_group_id(txn: &mut Txn<'_>, app: u64) -> ApiResult<String> {
        let key = Key::new(tag::GROUP_COUNTER, app).done();
        loop {
            let n = txn.get_u64(&key)? + 1;
            txn.put(key.clone(), n.to_be_bytes().to_vec());
            let id = format!("{}{:X}", ids::GENERATED_GROUP_ID_PREFIX, 0x1000_0000 + n);
            if txn
                .get(&Key::new(tag::GROUP, app).s(id.as_bytes()).done())?
                .is_none()
            {
                return Ok(id);
            }
        }
    }

    pub(crate) fn create_group(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        owner: &str,
        req: pb::CreateGroupReq,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let group_type = normalize_type(&req.group_type).ok_or_else(|| {
            ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                format!("unknown group type {:?}", req.group_type),
            )
        })?;
        let group_id = if req.group_id.is_empty() {
            Self::generate_group_id(txn, app)?
        } else {
            if !ids::is_valid_group_id(&req.group_id) {
                return Err(ApiError::new(
                    codes::ERR_INVALID_GROUP_ID,
                    "invalid group id",
                ));
            }
            if req.group_id.starts_with(ids::GENERATED_GROUP_ID_PREFIX) {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_INVALID_PARAMS,
                    "custom group ids may not start with @TGS#",
                ));
            }
            if self.group(txn, app, &req.group_id)?.is_some() {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_ID_IN_USE,
                    "group id in use",
                ));
            }
            req.group_id.clone()
        };
        check_profile(
            Some(&req.name),
            Some(&req.introduction),
            Some(&req.notification),
            Some(&req.face_url),
        )?;
        let add_opt = normalize_add_opt(&req.add_opt)?;
        let approve_opt = normalize_add_opt(&req.approve_opt)?;
        if req.is_support_topic && group_type != "Community" {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                "only a Community supports topics",
            ));
        }
        let now = now_ms();
        let mut members: Vec<pb::GroupMember> = vec![pb::GroupMember {
            user_id: owner.to_owned(),
            role: role::OWNER.into(),
            join_time_ms: now,
            ..Default::default()
        }];
        for m in req.member_list {
            if !ids::is_valid_user_id(&m.user_id) {
                return Err(ApiError::new(
                    codes::ERR_INVALID_USER_ID,
                    "invalid member id",
                ));
            }
            if members.iter().any(|x| x.user_id == m.user_id) {
                continue;
            }
            if m.name_card.len() > MAX_NAME_CARD_BYTES {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_INVALID_PARAMS,
                    "name_card longer than 50 bytes",
                ));
            }
            let role = if m.role == role::ADMIN {
                role::ADMIN
            } else {
                role::MEMBER
            };
            members.push(pb::GroupMember {
                user_id: m.user_id,
                role: role.into(),
                name_card: m.name_card,
                join_time_ms: now,
                custom_info: m.custom_info,
                ..Default::default()
            });
        }
        let limit = self.tunables.member_limit(group_type);
        if limit != 0 && members.len() > limit as usize {
            return Err(ApiError::new(codes::ERR_SVR_GROUP_FULL, "too many members"));
        }
        let head = Self::head(txn, app, &group_id)?;
        let info = pb::GroupInfo {
            group_id: group_id.clone(),
            group_type: group_type.into(),
            name: req.name,
            introduction: req.introduction,
            notification: req.notification,
            face_url: req.face_url,
            owner: owner.to_owned(),
            member_count: members.len() as u32,
            max_member_count: limit,
            create_time_ms: now,
            add_opt: add_opt.into(),
            approve_opt: approve_opt.into(),
            is_support_topic: req.is_support_topic && group_type == "Community",
            custom_info: req.custom_info,
            info_version: 1,
            ..Default::default()
        };
        for m in &members {
            Self::put_member(txn, app, &group_id, head, m)?;
        }
        let state = GroupState::from_members(
            info.clone(),
            members.iter().map(|m| (head, m.clone())).collect(),
        );
        self.save_group(txn, app, state);
        for m in &members {
            let kind = if m.user_id == owner {
                pb::GroupChangeKind::GroupChangeCreated
            } else {
                pb::GroupChangeKind::GroupChangeJoined
            };
            let skip = if m.user_id == owner { skip } else { 0 };
            let view = info_for(&info, &m.role, now, head);
            Self::change_push(fx, app, &m.user_id, kind, view, owner, skip);
        }
        fx.push(crate::webhooks::group_created_effect(app, &info, &members));
        Ok(RespKind::CreateGroup(pb::CreateGroupResp { group_id }))
    }

    pub(crate) fn existing(
        &mut self,
        txn: &Txn<'_>,
        app: u64,
        group_id: &str,
    ) -> ApiResult<Arc<GroupState>> {
        if !ids::is_valid_group_id(group_id) {
            return Err(ApiError::new(
                codes::ERR_INVALID_GROUP_ID,
                "invalid group id",
            ));
        }
        self.group(txn, app, group_id)?
            .ok_or_else(|| ApiError::new(codes::ERR_SVR_GROUP_NOT_FOUND, "no such group"))
    }

    pub(crate) fn join_group(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        user: &str,
        req: pb::JoinGroupReq,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        if g.members.contains_key(user) {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_ALREADY_MEMBER,
                "already a member",
            ));
        }
        Self::check_not_banned(txn, app, &req.group_id, user)?;
        let free = matches!(g.info.group_type.as_str(), "Meeting" | "AVChatRoom");
        if g.info.group_type == "Work" || (!free && g.info.add_opt == "forbid") {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "this group is joined by invitation only",
            ));
        }
        Self::check_room(&g, 1)?;
        if !free && g.info.add_opt == "auth" {
            self.apply_to_join(txn, app, user, &g, &req.message, fx)?;
            return Ok(RespKind::JoinGroup(pb::JoinGroupResp { pending: true }));
        }
        self.admit_members(txn, app, &g, user, &[user.to_owned()], None, skip, fx)?;
        Ok(RespKind::JoinGroup(pb::JoinGroupResp { pending: false }))
    }

    /// 10014 unless `g` has room for `n` more members.
    pub(crate) fn check_room(g: &GroupState, n: usize) -> ApiResult<()> {
        let limit = g.info.max_member_count;
        if limit != 0 && g.members.len() + n > limit as usize {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_FULL,
                "the group is full",
            ));
        }
        Ok(())
    }

    /// Adds `users` (not yet members) to `g` as ordinary members: member records, joined index,
    /// change logs, a `GroupChangePush` to each newcomer and one `group_tips` (JOIN for a
    /// self-join or an accepted application, INVITE when `inviter` is given) to everyone.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn admit_members(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        g: &GroupState,
        op_user: &str,
        users: &[String],
        inviter: Option<&str>,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<Arc<GroupState>> {
        let group_id = g.info.group_id.clone();
        let head = Self::head(txn, app, &group_id)?;
        let now = now_ms();
        let mut state = g.clone();
        for u in users {
            let member = pb::GroupMember {
                user_id: u.clone(),
                role: role::MEMBER.into(),
                join_time_ms: now,
                ..Default::default()
            };
            Self::put_member(txn, app, &group_id, head, &member)?;
            state.members.insert(u.clone(), head);
            state.muted.remove(u);
        }
        state.info.member_count = state.members.len() as u32;
        let info = state.info.clone();
        self.save_group(txn, app, state);
        for u in users {
            let view = info_for(&info, role::MEMBER, now, head);
            let skip = if u == op_user { skip } else { 0 };
            Self::change_push(
                fx,
                app,
                u,
                pb::GroupChangeKind::GroupChangeJoined,
                view,
                op_user,
                skip,
            );
        }
        let state = self.existing(txn, app, &group_id)?;
        fx.extend(crate::webhooks::live_room_join_effect(
            app,
            &info,
            op_user,
            users,
            inviter.is_some(),
        ));
        if state.info.group_type == LIVE_ROOM {
            return Ok(state);
        }
        let tips_type = if inviter.is_some() {
            pb::GroupTipsType::GroupTipsInvite
        } else {
            pb::GroupTipsType::GroupTipsJoin
        };
        let tips = pb::GroupTipsElem {
            tips_type: tips_type as i32,
            op_user: op_user.to_owned(),
            member_list: users.to_vec(),
            member_count: state.info.member_count,
            ..Default::default()
        };
        self.group_tips(txn, app, &state, tips, &[], fx)?;
        Ok(state)
    }

    pub(crate) fn quit_group(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        user: &str,
        req: pb::QuitGroupReq,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        if !g.members.contains_key(user) {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the group",
            ));
        }
        if g.info.owner == user && g.info.group_type != "AVChatRoom" {
            return Err(ApiError::new(
                ERR_SVR_GROUP_OWNER_NOT_ALLOWED,
                "the owner cannot quit; dismiss the group or transfer it first",
            ));
        }
        Self::del_member(txn, app, &req.group_id, user)?;
        let mut state = (*g).clone();
        state.members.remove(user);
        state.admins.remove(user);
        state.muted.remove(user);
        state.info.member_count = state.members.len() as u32;
        let info = state.info.clone();
        self.save_group(txn, app, state);
        let state = self.existing(txn, app, &req.group_id)?;
        if state.info.group_type != LIVE_ROOM {
            let tips = pb::GroupTipsElem {
                tips_type: pb::GroupTipsType::GroupTipsQuit as i32,
                op_user: user.to_owned(),
                member_list: vec![user.to_owned()],
                member_count: info.member_count,
                ..Default::default()
            };
            self.group_tips(txn, app, &state, tips, &[], fx)?;
        }
        fx.extend(crate::webhooks::live_room_exit_effect(app, &info, user));
        let head = Self::head(txn, app, &req.group_id)?;
        let view = info_for(&info, "", 0, head);
        Self::change_push(
            fx,
            app,
            user,
            pb::GroupChangeKind::GroupChangeQuit,
            view,
            user,
            skip,
        );
        Ok(RespKind::QuitGroup(pb::QuitGroupResp {}))
    }

    pub(crate) fn dismiss_group(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        user: &str,
        req: pb::DismissGroupReq,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        if g.info.owner != user && user != self.tunables.admin_identifier {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "only the owner may dismiss the group",
            ));
        }
        let kind = pb::GroupChangeKind::GroupChangeDismissed;
        self.end_group(txn, app, user, &g, kind, skip, fx)?;
        Ok(RespKind::DismissGroup(pb::DismissGroupResp {}))
    }

    /// Recycles `group_id` as the system (`op` is the app administrator): every member is told
    /// (`GROUP_CHANGE_RECYCLED`) and the group is gone like a dismissed one. With `idle_before`
    /// (the automatic recycling of [`crate::groups::recycle`]) the group is kept (10004) when it
    /// was active at or after that time (ms) after all, e.g. a message since the scan.
    pub(crate) fn recycle_group(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        group_id: &str,
        idle_before: Option<i64>,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        if op != self.tunables.admin_identifier {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "only the system recycles groups",
            ));
        }
        let g = self.existing(txn, app, group_id)?;
        if let Some(cutoff) = idle_before {
            let last = recycle::last_activity_ms(&*txn, app, &g.info)?;
            if !recycle::is_idle(&g.info, last, cutoff) {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_INVALID_PARAMS,
                    "the group was active since the scan",
                ));
            }
        }
        let kind = pb::GroupChangeKind::GroupChangeRecycled;
        self.end_group(txn, app, op, &g, kind, 0, fx)?;
        Ok(RespKind::DismissGroup(pb::DismissGroupResp {}))
    }

    /// Ends group `g` (dismissed or recycled by `op`): deletes its members and data, tells every
    /// member with a `GroupChangePush` of `kind` (their devices drop the group; offline devices
    /// see it gone from the joined list of their next sync) and calls the destroyed webhook.
    #[allow(clippy::too_many_arguments)]
    fn end_group(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        g: &GroupState,
        kind: pb::GroupChangeKind,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<()> {
        let group_id = g.info.group_id.as_str();
        let head = Self::head(txn, app, group_id)?;
        for member in g.members.keys() {
            Self::del_member(txn, app, group_id, member)?;
            let view = info_for(&g.info, "", 0, head);
            let skip = if member == op { skip } else { 0 };
            Self::change_push(fx, app, member, kind, view, op, skip);
        }
        fx.push(crate::webhooks::group_destroyed_effect(
            app,
            &g.info,
            g.members.keys(),
        ));
        txn.del(Key::new(tag::GROUP, app).s(group_id.as_bytes()).done());
        self.drop_group_data(txn, app, group_id)?;
        self.groups.remove(&(app, group_id.to_owned()));
        Ok(())
    }
}

impl Core {
    /// `LeaveLiveRooms`: `user` has had no session for the grace period; unless they are back,
    /// they leave every AVChatRoom they joined (member record, joined index, cached state and
    /// member count; no tips, like every live-room departure).
    pub(crate) fn leave_live_rooms(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        user: &str,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let done = RespKind::Logout(pb::LogoutResp {});
        if self.registry.is_online(app, user) {
            return Ok(done);
        }
        let (lo, hi) = Key::new(tag::JOINED, app).s(user.as_bytes()).prefix_range();
        let prefix = lo.len();
        let joined: Vec<String> = self
            .store
            .scan(&lo, &hi, usize::MAX, false)?
            .into_iter()
            .filter_map(|(k, _)| keys::trailing_str(&k, prefix))
            .collect();
        for group_id in joined {
            // Only live rooms are loaded: the user's other groups cost one info read each.
            let live = match self.groups.get(&(app, group_id.clone())) {
                Some(g) => g.info.group_type == LIVE_ROOM,
                None => txn
                    .get(&Key::new(tag::GROUP, app).s(group_id.as_bytes()).done())?
                    .and_then(|raw| pb::GroupInfo::decode(&raw[..]).ok())
                    .is_some_and(|info| info.group_type == LIVE_ROOM),
            };
            if !live {
                continue;
            }
            let Some(g) = self.group(txn, app, &group_id)? else {
                continue;
            };
            if g.info.group_type != LIVE_ROOM || !g.members.contains_key(user) {
                continue;
            }
            Self::del_member(txn, app, &group_id, user)?;
            let mut state = (*g).clone();
            state.members.remove(user);
            state.admins.remove(user);
            state.info.member_count = state.members.len() as u32;
            let head = Self::head(txn, app, &group_id)?;
            let view = info_for(&state.info, "", 0, head);
            fx.extend(crate::webhooks::live_room_exit_effect(
                app,
                &state.info,
                user,
            ));
            self.save_group(txn, app, state);
            // For the user's devices when they come back (their sync also drops the group).
            Self::change_push(
                fx,
                app,
                user,
                pb::GroupChangeKind::GroupChangeQuit,
                view,
                user,
                0,
            );
        }
        Ok(done)
    }
}

/// Called when `user`'s last session ended: after `live_room_offline_grace_secs`, if they are
/// still offline, the commit task takes them out of their AVChatRooms.
pub fn went_offline(shared: &std::sync::Arc<crate::Shared>, app: u64, user: &str) {
    let grace = std::time::Duration::from_secs(shared.tunables.live_room_offline_grace_secs);
    // Only a weak reference waits out the grace, so a stopping server is not kept alive (and its
    // store not kept locked) by users who went offline just before.
    let weak = std::sync::Arc::downgrade(shared);
    let mut stopping = shared.stopping.clone();
    let user = user.to_owned();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(grace) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        let Some(shared) = weak.upgrade() else {
            return;
        };
        if shared.registry.is_online(app, &user) {
            return;
        }
        let cmd = Command {
            app,
            user,
            op: Op::LeaveLiveRooms,
            reply: Reply::None,
        };
        // Only fails when the server is stopping: nothing left to do then.
        let _ = shared.commit.send(Msg::Cmd(cmd)).await;
    });
}

/// The user ids of a group's member records.
fn member_ids(store: &dyn Store, app: u64, group_id: &str) -> ApiResult<HashMap<String, ()>> {
    let (lo, hi) = Key::new(tag::MEMBER, app)
        .s(group_id.as_bytes())
        .prefix_range();
    let prefix = lo.len();
    Ok(store
        .scan(&lo, &hi, usize::MAX, false)?
        .into_iter()
        .filter_map(|(k, _)| keys::trailing_str(&k, prefix).map(|u| (u, ())))
        .collect())
}

/// `GetGroupOnlineCount`: how many members of the group have a connected session now (any
/// group type; the caller must be a member).
pub fn online_count(
    store: &dyn Store,
    registry: &Registry,
    app: u64,
    user: &str,
    req: &pb::GetGroupOnlineCountReq,
) -> ApiResult<RespKind> {
    crate::group_reads::require_member(store, app, &req.group_id, user)?;
    let members = member_ids(store, app, &req.group_id)?;
    let count = registry.count_online(app, &members) as u32;
    Ok(RespKind::GetGroupOnlineCount(pb::GetGroupOnlineCountResp {
        count,
    }))
}

/// `GetGroupMembers`: [`crate::queries::group_members`], except that an AVChatRoom lists only
/// its online members (the seed: no member list beyond who is in the room now).
pub fn member_list(
    store: &dyn Store,
    registry: &Registry,
    app: u64,
    user: &str,
    req: &pb::GetGroupMembersReq,
) -> ApiResult<RespKind> {
    if !ids::is_valid_group_id(&req.group_id) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid group id",
        ));
    }
    let info = crate::queries::group_info(store, app, &req.group_id)?;
    if info.as_ref().is_none_or(|i| i.group_type != LIVE_ROOM) {
        if req.mark_type != 0 && info.is_some() {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                "mark_type filters the members of an AVChatRoom only",
            ));
        }
        return crate::queries::group_members(store, app, user, req);
    }
    crate::group_reads::require_member(store, app, &req.group_id, user)?;
    let ids = member_ids(store, app, &req.group_id)?;
    let mut members = Vec::new();
    for u in registry.online_members(app, &ids) {
        if let Some((_, m)) = crate::queries::member(store, app, &req.group_id, &u)?
            && (req.mark_type == 0 || m.member_mark_list.contains(&req.mark_type))
        {
            members.push(m);
        }
    }
    Ok(crate::queries::page_members(members, req))
}
