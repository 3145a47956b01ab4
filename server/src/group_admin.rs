//! Group management by its members: profile, invitations, kicks (with re-join bans), roles,
//! owner transfer, mutes and member profiles. Staged by the commit task like every write.
//!
//! The permission rules are the seed's, decided by [`rules`] (pure, unit-tested): a Work group
//! lets any member invite and edit the profile but has no administrators and no mutes; the other
//! types give those powers to the owner and administrators; an administrator never acts on the
//! owner or another administrator. Every change leaves a `group_tips` message
//! ([`crate::group_tips`]); changes of a user's own membership also move their change log and
//! push a `GroupChangePush` so their devices learn it online or at the next sync.

use std::collections::BTreeMap;
use std::sync::Arc;

use chime_proto::pb::{self, response::Kind as RespKind};
use chime_proto::{codes, ids};
use prost::Message as _;

use crate::commit::{Core, Effect, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::groups::{GroupState, MAX_NAME_CARD_BYTES, check_profile, info_for, role};
use crate::keys::{Key, tag};
use crate::txn::Txn;

/// Most users one invite or kick names (the seed's 500).
pub const MAX_USERS_PER_CALL: usize = 500;

/// A group management write, staged by the commit task (`commit::Op::Group`).
#[derive(Debug)]
pub enum GroupOp {
    /// Change the profile or options.
    SetInfo(pb::SetGroupInfoReq),
    /// Invite users.
    Invite(pb::InviteToGroupReq),
    /// Kick members.
    Kick(pb::KickGroupMembersReq),
    /// Grant or revoke administrator.
    SetRole(pb::SetGroupMemberRoleReq),
    /// Transfer the group.
    Transfer(pb::TransferGroupOwnerReq),
    /// Mute or unmute a member.
    Mute(pb::MuteGroupMemberReq),
    /// Change a member's name card or custom fields.
    SetMemberInfo(pb::SetGroupMemberInfoReq),
    /// Set or clear a mark on members (AVChatRoom).
    Mark(pb::MarkGroupMemberListReq),
    /// Accept or refuse a join application.
    HandleApplication(pb::HandleGroupApplicationReq),
    /// Mark every join application the user handles as read.
    ApplicationRead,
    /// Init / set / delete attributes.
    Attributes(pb::GroupAttributesReq),
    /// Set / increase / decrease counters.
    Counters(pb::GroupCountersReq),
    /// The system recycles a group (the app administrator only; no client request maps here):
    /// now (REST `recycle_group`), or, with `idle_before` (ms), only if it is still idle by then
    /// ([`crate::groups::recycle`]).
    Recycle {
        /// The group.
        group_id: String,
        /// The automatic rule's cutoff; `None` = unconditionally.
        idle_before: Option<i64>,
    },
}

impl GroupOp {
    /// The write a request asks for, or the request back when it is not one of these.
    pub fn from_request(kind: pb::request::Kind) -> Result<Self, Box<pb::request::Kind>> {
        use pb::request::Kind as K;
        Ok(match kind {
            K::SetGroupInfo(r) => GroupOp::SetInfo(r),
            K::InviteToGroup(r) => GroupOp::Invite(r),
            K::KickGroupMembers(r) => GroupOp::Kick(r),
            K::SetGroupMemberRole(r) => GroupOp::SetRole(r),
            K::TransferGroupOwner(r) => GroupOp::Transfer(r),
            K::MuteGroupMember(r) => GroupOp::Mute(r),
            K::SetGroupMemberInfo(r) => GroupOp::SetMemberInfo(r),
            K::MarkGroupMemberList(r) => GroupOp::Mark(r),
            K::HandleGroupApplication(r) => GroupOp::HandleApplication(r),
            K::SetGroupApplicationRead(_) => GroupOp::ApplicationRead,
            K::GroupAttributes(r) => GroupOp::Attributes(r),
            K::GroupCounters(r) => GroupOp::Counters(r),
            other => return Err(Box::new(other)),
        })
    }
}

/// The permission rules, as pure functions of the group state.
pub mod rules {
    use super::*;

    fn deny(desc: &str) -> ApiError {
        ApiError::new(codes::ERR_SVR_GROUP_PERMISSION_DENIED, desc)
    }

    /// `op` (the app administrator when `is_app_admin`) may act on the group at all.
    pub(crate) fn member(g: &GroupState, op: &str, is_app_admin: bool) -> ApiResult<()> {
        if is_app_admin || g.members.contains_key(op) {
            Ok(())
        } else {
            Err(deny("not a member of the group"))
        }
    }

    /// `op` may change the profile fields (name, introduction, notification, face).
    pub(crate) fn edit_profile(g: &GroupState, op: &str, is_app_admin: bool) -> ApiResult<()> {
        member(g, op, is_app_admin)?;
        if is_app_admin || g.info.group_type == "Work" || g.is_staff(op) {
            Ok(())
        } else {
            Err(deny(
                "only the owner or an administrator may change the group profile",
            ))
        }
    }

    /// `op` may change the group's options (mute all, add option, custom fields).
    pub(crate) fn edit_options(g: &GroupState, op: &str, is_app_admin: bool) -> ApiResult<()> {
        member(g, op, is_app_admin)?;
        if is_app_admin || g.is_staff(op) {
            Ok(())
        } else {
            Err(deny(
                "only the owner or an administrator may change group options",
            ))
        }
    }

    /// `op` may invite users.
    pub(crate) fn invite(g: &GroupState, op: &str, is_app_admin: bool) -> ApiResult<()> {
        member(g, op, is_app_admin)?;
        match g.info.group_type.as_str() {
            _ if is_app_admin => Ok(()),
            "Work" | "Community" => Ok(()),
            "AVChatRoom" => Err(deny("nobody can be invited to an AVChatRoom; they join")),
            _ => Err(deny(
                "only the app administrator may add members to this group type",
            )),
        }
    }

    /// `op` may kick, mute or edit the profile of `target`.
    pub(crate) fn manage(
        g: &GroupState,
        op: &str,
        target: &str,
        is_app_admin: bool,
    ) -> ApiResult<()> {
        member(g, op, is_app_admin)?;
        if is_app_admin || g.info.owner == op {
            return Ok(());
        }
        if g.info.group_type == "Work" {
            return Err(deny("only the owner manages members of a Work group"));
        }
        if !g.admins.contains(op) {
            return Err(deny("only the owner or an administrator may do this"));
        }
        if g.is_staff(target) {
            return Err(deny(
                "an administrator cannot act on the owner or another administrator",
            ));
        }
        Ok(())
    }

    /// `op` may mute members (not in a Work group).
    pub(crate) fn mute(
        g: &GroupState,
        op: &str,
        target: &str,
        is_app_admin: bool,
    ) -> ApiResult<()> {
        if g.info.group_type == "Work" {
            return Err(deny("members of a Work group cannot be muted"));
        }
        manage(g, op, target, is_app_admin)
    }

    /// `op` may mark members: only in an AVChatRoom, by its owner (the seed's rule).
    pub(crate) fn mark(g: &GroupState, op: &str, is_app_admin: bool) -> ApiResult<()> {
        if g.info.group_type != "AVChatRoom" {
            return Err(deny("member marks exist only in an AVChatRoom"));
        }
        if is_app_admin || g.info.owner == op || g.admins.contains(op) {
            Ok(())
        } else {
            Err(deny("only the owner may mark members"))
        }
    }

    /// `op` may grant or revoke administrator.
    pub(crate) fn set_role(g: &GroupState, op: &str, is_app_admin: bool) -> ApiResult<()> {
        member(g, op, is_app_admin)?;
        if matches!(g.info.group_type.as_str(), "Work" | "AVChatRoom") {
            return Err(deny("this group type has no administrators"));
        }
        if is_app_admin || g.info.owner == op {
            Ok(())
        } else {
            Err(deny("only the owner may change roles"))
        }
    }
}

/// Member marks (`mark_group_member_list`), as pure functions of a member's mark list.
pub mod marks {
    use super::*;

    /// Smallest mark type an app may use (the seed reserves those below).
    pub const MIN_MARK_TYPE: u32 = 1000;
    /// Most marks one member carries.
    pub const MAX_MARKS_PER_MEMBER: usize = 10;

    fn invalid(desc: String) -> ApiError {
        ApiError::new(codes::ERR_SVR_GROUP_INVALID_PARAMS, desc)
    }

    /// Checks a request naming `users` members and `mark_type`.
    pub fn check_request(users: usize, mark_type: u32) -> ApiResult<()> {
        if users == 0 || users > MAX_USERS_PER_CALL {
            return Err(invalid(format!(
                "member_list must name 1..={MAX_USERS_PER_CALL} users"
            )));
        }
        if mark_type < MIN_MARK_TYPE {
            return Err(invalid(format!("mark_type must be >= {MIN_MARK_TYPE}")));
        }
        Ok(())
    }

    /// Sets or clears `mark` in the ascending `list`; whether it changed. A member already
    /// carrying [`MAX_MARKS_PER_MEMBER`] marks gets no new one (10004).
    pub fn apply(list: &mut Vec<u32>, mark: u32, enable: bool) -> ApiResult<bool> {
        match (list.binary_search(&mark), enable) {
            (Ok(_), true) | (Err(_), false) => Ok(false),
            (Ok(i), false) => {
                list.remove(i);
                Ok(true)
            }
            (Err(i), true) => {
                if list.len() >= MAX_MARKS_PER_MEMBER {
                    return Err(invalid(format!(
                        "a member carries at most {MAX_MARKS_PER_MEMBER} marks"
                    )));
                }
                list.insert(i, mark);
                Ok(true)
            }
        }
    }
}

fn member_key(app: u64, group_id: &str, user: &str) -> Vec<u8> {
    Key::new(tag::MEMBER, app)
        .s(group_id.as_bytes())
        .s(user.as_bytes())
        .done()
}

fn ban_key(app: u64, group_id: &str, user: &str) -> Vec<u8> {
    Key::new(tag::GROUP_BAN, app)
        .s(group_id.as_bytes())
        .s(user.as_bytes())
        .done()
}

fn merge_custom(
    into: &mut BTreeMap<String, Vec<u8>>,
    from: BTreeMap<String, Vec<u8>>,
) -> ApiResult<()> {
    for (k, v) in from {
        if k.is_empty() || k.len() > 16 || v.len() > 512 {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                format!("custom field {k:?}: keys are 1..=16 bytes, values at most 512"),
            ));
        }
        if v.is_empty() {
            into.remove(&k);
        } else {
            into.insert(k, v);
        }
    }
    Ok(())
}

impl Core {
    /// Stages one [`GroupOp`].
    pub(crate) fn stage_group_op(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        user: &str,
        op: GroupOp,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        match op {
            GroupOp::SetInfo(r) => self.set_group_info(txn, app, user, r, fx),
            GroupOp::Invite(r) => self.invite_to_group(txn, app, user, r, skip, fx),
            GroupOp::Kick(r) => self.kick_group_members(txn, app, user, r, fx),
            GroupOp::SetRole(r) => self.set_group_member_role(txn, app, user, r, fx),
            GroupOp::Transfer(r) => self.transfer_group_owner(txn, app, user, r, fx),
            GroupOp::Mute(r) => self.mute_group_member(txn, app, user, r, fx),
            GroupOp::SetMemberInfo(r) => self.set_group_member_info(txn, app, user, r, fx),
            GroupOp::Mark(r) => self.mark_group_members(txn, app, user, r, fx),
            GroupOp::HandleApplication(r) => {
                self.handle_group_application(txn, app, user, r, skip, fx)
            }
            GroupOp::ApplicationRead => self.set_group_application_read(txn, app, user),
            GroupOp::Attributes(r) => self.group_attributes(txn, app, user, r, fx),
            GroupOp::Counters(r) => self.group_counters(txn, app, user, r, fx),
            GroupOp::Recycle {
                group_id,
                idle_before,
            } => self.recycle_group(txn, app, user, &group_id, idle_before, fx),
        }
    }

    fn is_app_admin(&self, user: &str) -> bool {
        user == self.tunables.admin_identifier
    }

    /// A member's stored record.
    pub(crate) fn load_member(
        txn: &Txn<'_>,
        app: u64,
        group_id: &str,
        user: &str,
    ) -> ApiResult<Option<(u64, pb::GroupMember)>> {
        let Some(v) = txn.get(&member_key(app, group_id, user))? else {
            return Ok(None);
        };
        let join_seq = crate::keys::be_u64(&v, 0).unwrap_or(0);
        let m = pb::GroupMember::decode(v.get(8..).unwrap_or_default())
            .map_err(crate::error::StoreError::from)?;
        Ok(Some((join_seq, m)))
    }

    fn store_member(
        txn: &mut Txn<'_>,
        app: u64,
        group_id: &str,
        join_seq: u64,
        m: &pb::GroupMember,
    ) {
        txn.put(
            member_key(app, group_id, &m.user_id),
            crate::groups::member_value(join_seq, m),
        );
    }

    /// 10007 while `user` is banned from re-joining `group_id` after a kick.
    pub(crate) fn check_not_banned(
        txn: &Txn<'_>,
        app: u64,
        group_id: &str,
        user: &str,
    ) -> ApiResult<()> {
        let until = txn.get_u64(&ban_key(app, group_id, user))? as i64;
        if until > now_ms() {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                format!("{user} was kicked and may not re-join before {until} ms"),
            ));
        }
        Ok(())
    }

    /// Deletes what a dismissed group leaves besides its members: attributes, counters, bans,
    /// applications.
    /// (Bans and applications staged in batches not yet applied are past their use: a ban
    /// only matters to a member of a group, an application only to a pending join.)
    pub(crate) fn drop_group_data(
        &self,
        txn: &mut Txn<'_>,
        app: u64,
        group_id: &str,
    ) -> ApiResult<()> {
        crate::community::drop_data(self.store.as_ref(), txn, app, group_id)?;
        txn.del(
            Key::new(tag::GROUP_ATTRS, app)
                .s(group_id.as_bytes())
                .done(),
        );
        txn.del(
            Key::new(tag::GROUP_COUNTERS, app)
                .s(group_id.as_bytes())
                .done(),
        );
        for t in [tag::GROUP_BAN, tag::GROUP_APPLICATION] {
            let (lo, hi) = Key::new(t, app).s(group_id.as_bytes()).prefix_range();
            for (k, _) in self.store.scan(&lo, &hi, usize::MAX, false)? {
                txn.del(k);
            }
        }
        Ok(())
    }

    /// Saves `state` (store and cache) and answers the cached copy.
    fn save_state(&mut self, txn: &mut Txn<'_>, app: u64, state: GroupState) -> Arc<GroupState> {
        let id = state.info.group_id.clone();
        self.save_group(txn, app, state);
        self.groups.get(&(app, id)).cloned().unwrap_or_default()
    }

    pub(crate) fn set_group_info(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::SetGroupInfoReq,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        let admin = self.is_app_admin(op);
        let profile = req.name.is_some()
            || req.introduction.is_some()
            || req.notification.is_some()
            || req.face_url.is_some();
        let options = req.add_opt.is_some()
            || req.approve_opt.is_some()
            || req.is_all_muted.is_some()
            || !req.custom_info.is_empty();
        if profile && let Err(e) = rules::edit_profile(&g, op, admin) {
            // A community member whose permission groups allow it changes the profile.
            let bit = crate::community::perms::community::MANAGE_GROUP_INFO;
            if !crate::community::grants(txn, app, &g, op, bit)? {
                return Err(e);
            }
        }
        if options {
            rules::edit_options(&g, op, admin)?;
        }
        if !profile && !options {
            rules::member(&g, op, admin)?;
        }
        check_profile(
            req.name.as_deref(),
            req.introduction.as_deref(),
            req.notification.as_deref(),
            req.face_url.as_deref(),
        )?;
        if req.is_all_muted.is_some() && g.info.group_type == "Work" {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "a Work group cannot be muted",
            ));
        }
        let mut state = (*g).clone();
        let mut changes = BTreeMap::new();
        let mut text = |key: &str, new: Option<String>, field: &mut String| {
            if let Some(v) = new
                && *field != v
            {
                changes.insert(key.to_owned(), v.clone());
                *field = v;
            }
        };
        text("name", req.name, &mut state.info.name);
        text(
            "introduction",
            req.introduction,
            &mut state.info.introduction,
        );
        text(
            "notification",
            req.notification,
            &mut state.info.notification,
        );
        text("face_url", req.face_url, &mut state.info.face_url);
        if let Some(o) = req.add_opt {
            let o = crate::groups::normalize_add_opt(&o)?.to_owned();
            text("add_opt", Some(o), &mut state.info.add_opt);
        }
        if let Some(o) = req.approve_opt {
            let o = crate::groups::normalize_add_opt(&o)?.to_owned();
            text("approve_opt", Some(o), &mut state.info.approve_opt);
        }
        if let Some(m) = req.is_all_muted
            && m != state.info.is_all_muted
        {
            state.info.is_all_muted = m;
            changes.insert("is_all_muted".into(), m.to_string());
        }
        if !req.custom_info.is_empty() {
            for k in req.custom_info.keys() {
                changes.insert(format!("custom_info.{k}"), String::new());
            }
            merge_custom(&mut state.info.custom_info, req.custom_info)?;
            for (k, v) in changes.iter_mut() {
                if let Some(key) = k.strip_prefix("custom_info.") {
                    *v = state
                        .info
                        .custom_info
                        .get(key)
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                }
            }
        }
        if changes.is_empty() {
            return Ok(RespKind::SetGroupInfo(pb::SetGroupInfoResp {}));
        }
        state.info.info_version += 1;
        let state = self.save_state(txn, app, state);
        let tips = pb::GroupTipsElem {
            tips_type: pb::GroupTipsType::GroupTipsGroupInfoChange as i32,
            op_user: op.to_owned(),
            group_change_info: changes,
            member_count: state.info.member_count,
            ..Default::default()
        };
        self.group_tips(txn, app, &state, tips, &[], fx)?;
        Ok(RespKind::SetGroupInfo(pb::SetGroupInfoResp {}))
    }

    pub(crate) fn invite_to_group(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::InviteToGroupReq,
        skip: u64,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        rules::invite(&g, op, self.is_app_admin(op))?;
        if req.user_list.is_empty() || req.user_list.len() > MAX_USERS_PER_CALL {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                "user_list must name 1..=500 users",
            ));
        }
        let mut results = Vec::new();
        let mut added: Vec<String> = Vec::new();
        for u in &req.user_list {
            let code = if !ids::is_valid_user_id(u) {
                codes::ERR_INVALID_USER_ID
            } else if g.members.contains_key(u) || added.contains(u) {
                codes::ERR_SVR_GROUP_ALREADY_MEMBER
            } else if Self::check_not_banned(txn, app, &req.group_id, u).is_err() {
                codes::ERR_SVR_GROUP_PERMISSION_DENIED
            } else {
                added.push(u.clone());
                0
            };
            results.push(pb::MemberResult {
                user_id: u.clone(),
                result: code,
            });
        }
        if !added.is_empty() {
            Self::check_room(&g, added.len())?;
            self.admit_members(txn, app, &g, op, &added, Some(op), skip, fx)?;
        }
        Ok(RespKind::InviteToGroup(pb::InviteToGroupResp { results }))
    }

    pub(crate) fn kick_group_members(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::KickGroupMembersReq,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        let admin = self.is_app_admin(op);
        if req.member_list.is_empty() || req.member_list.len() > MAX_USERS_PER_CALL {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                "member_list must name 1..=500 users",
            ));
        }
        rules::member(&g, op, admin)?;
        // Check every target first: a refused kick changes nothing.
        let mut kicked: Vec<String> = Vec::new();
        let mut results = Vec::new();
        for u in &req.member_list {
            if u == op {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_INVALID_PARAMS,
                    "use quit_group to leave",
                ));
            }
            if !g.members.contains_key(u) {
                results.push(pb::MemberResult {
                    user_id: u.clone(),
                    result: codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                });
                continue;
            }
            if let Err(e) = rules::manage(&g, op, u, admin) {
                // A community member whose permission groups allow managing members kicks
                // ordinary members; banning them from re-joining (a duration) also needs the
                // ban bit.
                use crate::community::perms::community::{BAN_MEMBER, MANAGE_GROUP_MEMBER};
                let bit = if req.duration > 0 {
                    MANAGE_GROUP_MEMBER | BAN_MEMBER
                } else {
                    MANAGE_GROUP_MEMBER
                };
                if g.is_staff(u) || !crate::community::grants(txn, app, &g, op, bit)? {
                    return Err(e);
                }
            }
            if !kicked.contains(u) {
                kicked.push(u.clone());
            }
            results.push(pb::MemberResult {
                user_id: u.clone(),
                result: 0,
            });
        }
        if kicked.is_empty() {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "none of member_list is a member",
            ));
        }
        let head = Self::head(txn, app, &req.group_id)?;
        let mut state = (*g).clone();
        let until = now_ms().saturating_add(i64::from(req.duration) * 1000);
        for u in &kicked {
            Self::del_member(txn, app, &req.group_id, u)?;
            if req.duration > 0 {
                txn.put(ban_key(app, &req.group_id, u), until.to_be_bytes().to_vec());
            }
            state.members.remove(u);
            state.admins.remove(u);
            state.muted.remove(u);
        }
        state.info.member_count = state.members.len() as u32;
        let state = self.save_state(txn, app, state);
        for u in &kicked {
            let view = info_for(&state.info, "", 0, head);
            Self::change_push(
                fx,
                app,
                u,
                pb::GroupChangeKind::GroupChangeKicked,
                view,
                op,
                0,
            );
        }
        let tips = pb::GroupTipsElem {
            tips_type: pb::GroupTipsType::GroupTipsKicked as i32,
            op_user: op.to_owned(),
            member_list: kicked,
            member_count: state.info.member_count,
            group_change_info: if req.reason.is_empty() {
                Default::default()
            } else {
                [("reason".to_owned(), req.reason)].into_iter().collect()
            },
            ..Default::default()
        };
        self.group_tips(txn, app, &state, tips, &[], fx)?;
        Ok(RespKind::KickGroupMembers(pb::KickGroupMembersResp {
            results,
        }))
    }

    pub(crate) fn set_group_member_role(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::SetGroupMemberRoleReq,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        rules::set_role(&g, op, self.is_app_admin(op))?;
        let to_admin = match req.role.as_str() {
            role::ADMIN => true,
            role::MEMBER => false,
            other => {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_INVALID_PARAMS,
                    format!("role {other:?}: expected admin or member"),
                ));
            }
        };
        if g.info.owner == req.user_id {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "the owner's role changes only by transfer",
            ));
        }
        let Some((join_seq, mut m)) = Self::load_member(txn, app, &req.group_id, &req.user_id)?
        else {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the group",
            ));
        };
        if g.admins.contains(&req.user_id) == to_admin {
            return Ok(RespKind::SetGroupMemberRole(pb::SetGroupMemberRoleResp {}));
        }
        m.role = req.role.clone();
        Self::store_member(txn, app, &req.group_id, join_seq, &m);
        txn.touch(app, &req.user_id, &crate::keys::group_conv(&req.group_id));
        let mut state = (*g).clone();
        if to_admin {
            state.admins.insert(req.user_id.clone());
        } else {
            state.admins.remove(&req.user_id);
        }
        let state = self.save_state(txn, app, state);
        let tips_type = if to_admin {
            pb::GroupTipsType::GroupTipsSetAdmin
        } else {
            pb::GroupTipsType::GroupTipsCancelAdmin
        };
        let tips = pb::GroupTipsElem {
            tips_type: tips_type as i32,
            op_user: op.to_owned(),
            member_list: vec![req.user_id],
            member_count: state.info.member_count,
            ..Default::default()
        };
        self.group_tips(txn, app, &state, tips, &[], fx)?;
        Ok(RespKind::SetGroupMemberRole(pb::SetGroupMemberRoleResp {}))
    }

    pub(crate) fn transfer_group_owner(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::TransferGroupOwnerReq,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        if g.info.owner != op && !self.is_app_admin(op) {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "only the owner may transfer the group",
            ));
        }
        if g.info.group_type == "AVChatRoom" {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "an AVChatRoom cannot be transferred",
            ));
        }
        if req.user_id == g.info.owner {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                "already the owner",
            ));
        }
        let Some((join_seq, mut new_owner)) =
            Self::load_member(txn, app, &req.group_id, &req.user_id)?
        else {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "the new owner must be a member",
            ));
        };
        let old = g.info.owner.clone();
        if let Some((seq, mut m)) = Self::load_member(txn, app, &req.group_id, &old)? {
            m.role = role::MEMBER.into();
            Self::store_member(txn, app, &req.group_id, seq, &m);
            txn.touch(app, &old, &crate::keys::group_conv(&req.group_id));
        }
        new_owner.role = role::OWNER.into();
        new_owner.mute_until_ms = 0;
        Self::store_member(txn, app, &req.group_id, join_seq, &new_owner);
        txn.touch(app, &req.user_id, &crate::keys::group_conv(&req.group_id));
        let mut state = (*g).clone();
        state.info.owner = req.user_id.clone();
        state.info.info_version += 1;
        state.admins.remove(&req.user_id);
        state.muted.remove(&req.user_id);
        let state = self.save_state(txn, app, state);
        let tips = pb::GroupTipsElem {
            tips_type: pb::GroupTipsType::GroupTipsGroupInfoChange as i32,
            op_user: op.to_owned(),
            group_change_info: [("owner".to_owned(), req.user_id)].into_iter().collect(),
            member_count: state.info.member_count,
            ..Default::default()
        };
        self.group_tips(txn, app, &state, tips, &[], fx)?;
        Ok(RespKind::TransferGroupOwner(pb::TransferGroupOwnerResp {}))
    }

    pub(crate) fn mute_group_member(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::MuteGroupMemberReq,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        if !g.members.contains_key(&req.user_id) {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the group",
            ));
        }
        if let Err(e) = rules::mute(&g, op, &req.user_id, self.is_app_admin(op)) {
            // A community member whose permission groups allow muting mutes ordinary members.
            let bit = crate::community::perms::community::MUTE_MEMBER;
            if g.is_staff(&req.user_id) || !crate::community::grants(txn, app, &g, op, bit)? {
                return Err(e);
            }
        }
        let Some((join_seq, mut m)) = Self::load_member(txn, app, &req.group_id, &req.user_id)?
        else {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the group",
            ));
        };
        let until = if req.seconds == 0 {
            0
        } else {
            now_ms().saturating_add(i64::from(req.seconds) * 1000)
        };
        m.mute_until_ms = until;
        Self::store_member(txn, app, &req.group_id, join_seq, &m);
        let mut state = (*g).clone();
        if until == 0 {
            state.muted.remove(&req.user_id);
        } else {
            state.muted.insert(req.user_id.clone(), until);
        }
        let state = self.save_state(txn, app, state);
        let tips = pb::GroupTipsElem {
            tips_type: pb::GroupTipsType::GroupTipsMemberInfoChange as i32,
            op_user: op.to_owned(),
            member_list: vec![req.user_id.clone()],
            member_change_list: vec![pb::GroupMemberChangeInfo {
                user_id: req.user_id,
                mute_time: req.seconds,
            }],
            member_count: state.info.member_count,
            ..Default::default()
        };
        self.group_tips(txn, app, &state, tips, &[], fx)?;
        Ok(RespKind::MuteGroupMember(pb::MuteGroupMemberResp {}))
    }

    /// `mark_group_member_list`: all-or-nothing over `member_list` (every user must be a member;
    /// 10007 otherwise), one `GROUP_TIPS_MEMBER_MARK_CHANGE` tips for the whole change.
    pub(crate) fn mark_group_members(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::MarkGroupMemberListReq,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        rules::mark(&g, op, self.is_app_admin(op))?;
        let mut users = req.member_list;
        users.sort();
        users.dedup();
        marks::check_request(users.len(), req.mark_type)?;
        let mut changed = Vec::with_capacity(users.len());
        for u in &users {
            let Some((join_seq, mut m)) = Self::load_member(txn, app, &req.group_id, u)? else {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                    format!("{u} is not a member of the group"),
                ));
            };
            if marks::apply(&mut m.member_mark_list, req.mark_type, req.enable_mark)? {
                changed.push((join_seq, m));
            }
        }
        for (join_seq, m) in &changed {
            Self::store_member(txn, app, &req.group_id, *join_seq, m);
        }
        if !changed.is_empty() {
            let tips = pb::GroupTipsElem {
                tips_type: pb::GroupTipsType::GroupTipsMemberMarkChange as i32,
                op_user: op.to_owned(),
                member_list: users.clone(),
                member_mark_change_list: vec![pb::GroupMemberMarkChange {
                    user_id_list: users,
                    mark_type: req.mark_type,
                    enable_mark: req.enable_mark,
                }],
                member_count: g.info.member_count,
                ..Default::default()
            };
            self.group_tips(txn, app, &g, tips, &[], fx)?;
        }
        Ok(RespKind::MarkGroupMemberList(
            pb::MarkGroupMemberListResp {},
        ))
    }

    pub(crate) fn set_group_member_info(
        &mut self,
        txn: &mut Txn<'_>,
        app: u64,
        op: &str,
        req: pb::SetGroupMemberInfoReq,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<RespKind> {
        let g = self.existing(txn, app, &req.group_id)?;
        let target = if req.user_id.is_empty() {
            op.to_owned()
        } else {
            req.user_id.clone()
        };
        if target != op {
            rules::manage(&g, op, &target, self.is_app_admin(op))?;
        }
        let Some((join_seq, mut m)) = Self::load_member(txn, app, &req.group_id, &target)? else {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the group",
            ));
        };
        if let Some(card) = req.name_card {
            if card.len() > MAX_NAME_CARD_BYTES {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_INVALID_PARAMS,
                    "name_card longer than 50 bytes",
                ));
            }
            m.name_card = card;
        }
        merge_custom(&mut m.custom_info, req.custom_info)?;
        Self::store_member(txn, app, &req.group_id, join_seq, &m);
        let tips = pb::GroupTipsElem {
            tips_type: pb::GroupTipsType::GroupTipsMemberInfoChange as i32,
            op_user: op.to_owned(),
            member_list: vec![target.clone()],
            member_change_list: vec![pb::GroupMemberChangeInfo {
                user_id: target,
                mute_time: 0,
            }],
            member_count: g.info.member_count,
            ..Default::default()
        };
        self.group_tips(txn, app, &g, tips, &[], fx)?;
        Ok(RespKind::SetGroupMemberInfo(pb::SetGroupMemberInfoResp {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(kind: &str) -> GroupState {
        let mut g = GroupState::default();
        g.info.group_type = kind.into();
        g.info.owner = "own".into();
        for u in ["own", "adm", "mem", "mem2"] {
            g.members.insert(u.into(), 0);
        }
        g.admins.insert("adm".into());
        g
    }

    fn code(r: ApiResult<()>) -> i32 {
        r.err().map_or(0, |e| e.code)
    }

    #[test]
    fn admins_manage_members_but_not_staff() {
        let g = group("Public");
        assert_eq!(code(rules::manage(&g, "own", "adm", false)), 0);
        assert_eq!(code(rules::manage(&g, "adm", "mem", false)), 0);
        assert_eq!(code(rules::manage(&g, "adm", "own", false)), 10007);
        assert_eq!(code(rules::manage(&g, "mem", "mem2", false)), 10007);
        assert_eq!(code(rules::manage(&g, "stranger", "mem", false)), 10007);
        assert_eq!(code(rules::manage(&g, "administrator", "own", true)), 0);
    }

    #[test]
    fn work_groups_let_members_invite_and_edit_but_not_mute() {
        let g = group("Work");
        assert_eq!(code(rules::invite(&g, "mem", false)), 0);
        assert_eq!(code(rules::edit_profile(&g, "mem", false)), 0);
        assert_eq!(code(rules::edit_options(&g, "mem", false)), 10007);
        assert_eq!(code(rules::mute(&g, "own", "mem", false)), 10007);
        assert_eq!(code(rules::set_role(&g, "own", false)), 10007);
        assert_eq!(code(rules::manage(&g, "adm", "mem", false)), 10007);
    }

    #[test]
    fn invitations_follow_the_group_type() {
        assert_eq!(code(rules::invite(&group("Public"), "own", false)), 10007);
        assert_eq!(code(rules::invite(&group("Public"), "x", true)), 0);
        assert_eq!(code(rules::invite(&group("Community"), "mem", false)), 0);
        assert_eq!(
            code(rules::invite(&group("AVChatRoom"), "own", false)),
            10007
        );
        assert_eq!(code(rules::set_role(&group("Public"), "adm", false)), 10007);
        assert_eq!(code(rules::set_role(&group("Meeting"), "own", false)), 0);
    }

    #[test]
    fn custom_fields_merge_and_empty_values_delete() {
        let mut m = BTreeMap::new();
        m.insert("a".to_owned(), b"1".to_vec());
        let upd = [
            ("a".to_owned(), Vec::new()),
            ("b".to_owned(), b"2".to_vec()),
        ]
        .into_iter()
        .collect();
        merge_custom(&mut m, upd).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m["b"], b"2".to_vec());
        let bad = [("x".repeat(17), b"1".to_vec())].into_iter().collect();
        assert_eq!(merge_custom(&mut m, bad).unwrap_err().code, 10004);
    }

    #[test]
    fn marks_are_sorted_bounded_and_only_in_live_rooms() {
        let mut l = Vec::new();
        assert!(marks::apply(&mut l, 1002, true).unwrap());
        assert!(marks::apply(&mut l, 1001, true).unwrap());
        assert!(!marks::apply(&mut l, 1001, true).unwrap());
        assert_eq!(l, vec![1001, 1002]);
        assert!(marks::apply(&mut l, 1002, false).unwrap());
        assert!(!marks::apply(&mut l, 1005, false).unwrap());
        assert_eq!(l, vec![1001]);
        let mut full: Vec<u32> = (2000..2010).collect();
        assert_eq!(marks::apply(&mut full, 1, true).unwrap_err().code, 10004);
        assert_eq!(marks::check_request(1, 999).unwrap_err().code, 10004);
        assert_eq!(marks::check_request(0, 1000).unwrap_err().code, 10004);
        assert!(marks::check_request(500, 1000).is_ok());
        assert_eq!(code(rules::mark(&group("Public"), "own", false)), 10007);
        assert_eq!(code(rules::mark(&group("AVChatRoom"), "mem", false)), 10007);
        assert_eq!(code(rules::mark(&group("AVChatRoom"), "own", false)), 0);
    }
}
