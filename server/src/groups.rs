//! Group mutations (create, join, quit, dismiss), staged by the commit task.
//!
//! Storage: the group's shared info (`G`), one record per member (`m`, with the member's join
//! seq, which is the history-visibility point) and a joined-group index per user (`j`). Every
//! membership change bumps the affected user's change log (so a reconnecting device learns it by
//! sync) and pushes a `GroupChangePush` to that user's online devices. Group messages themselves
//! use read diffusion: nothing is written per member per message.

use std::sync::Arc;

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids};
use prost::Message as _;

use crate::commit::{Core, Effect, GroupState, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::keys::{self, Key, tag};
use crate::registry::push_frame;
use crate::txn::Txn;

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

fn member_value(join_seq: u64, m: &pb::GroupMember) -> Vec<u8> {
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
    fn change_push(
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

    fn put_member(
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

    fn del_member(txn: &mut Txn<'_>, app: u64, group_id: &str, user: &str) -> ApiResult<()> {
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
        txn.touch(app, user, &keys::group_conv(group_id));
        Ok(())
    }

    fn save_group(&mut self, txn: &mut Txn<'_>, app: u64, state: GroupState) {
        txn.put(
            Key::new(tag::GROUP, app)
                .s(state.info.group_id.as_bytes())
                .done(),
            state.info.encode_to_vec(),
        );
        self.groups
            .insert((app, state.info.group_id.clone()), Arc::new(state));
    }

    fn head(txn: &Txn<'_>, app: u64, group_id: &str) -> ApiResult<u64> {
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
            add_opt: if req.add_opt.is_empty() {
                "any".into()
            } else {
                req.add_opt
            },
            approve_opt: req.approve_opt,
            is_support_topic: req.is_support_topic && group_type == "Community",
            custom_info: req.custom_info,
            info_version: 1,
            ..Default::default()
        };
        let mut state = GroupState {
            info: info.clone(),
            members: Default::default(),
        };
        for m in &members {
            Self::put_member(txn, app, &group_id, head, m)?;
            state.members.insert(m.user_id.clone(), head);
        }
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
        Ok(RespKind::CreateGroup(pb::CreateGroupResp { group_id }))
    }

    fn existing(&mut self, txn: &Txn<'_>, app: u64, group_id: &str) -> ApiResult<Arc<GroupState>> {
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
        if g.info.group_type == "Work" || g.info.add_opt == "forbid" {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "this group is joined by invitation only",
            ));
        }
        let limit = g.info.max_member_count;
        if limit != 0 && g.members.len() >= limit as usize {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_FULL,
                "the group is full",
            ));
        }
        let head = Self::head(txn, app, &req.group_id)?;
        let now = now_ms();
        let member = pb::GroupMember {
            user_id: user.to_owned(),
            role: role::MEMBER.into(),
            join_time_ms: now,
            ..Default::default()
        };
        Self::put_member(txn, app, &req.group_id, head, &member)?;
        let mut state = (*g).clone();
        state.members.insert(user.to_owned(), head);
        state.info.member_count = state.members.len() as u32;
        let info = state.info.clone();
        self.save_group(txn, app, state);
        let view = info_for(&info, role::MEMBER, now, head);
        Self::change_push(
            fx,
            app,
            user,
            pb::GroupChangeKind::GroupChangeJoined,
            view,
            user,
            skip,
        );
        Ok(RespKind::JoinGroup(pb::JoinGroupResp { pending: false }))
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
        state.info.member_count = state.members.len() as u32;
        let info = state.info.clone();
        self.save_group(txn, app, state);
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
        let head = Self::head(txn, app, &req.group_id)?;
        for member in g.members.keys() {
            Self::del_member(txn, app, &req.group_id, member)?;
            let view = info_for(&g.info, "", 0, head);
            let skip = if member == user { skip } else { 0 };
            Self::change_push(
                fx,
                app,
                member,
                pb::GroupChangeKind::GroupChangeDismissed,
                view,
                user,
                skip,
            );
        }
        txn.del(Key::new(tag::GROUP, app).s(req.group_id.as_bytes()).done());
        self.groups.remove(&(app, req.group_id.clone()));
        Ok(RespKind::DismissGroup(pb::DismissGroupResp {}))
    }
}
