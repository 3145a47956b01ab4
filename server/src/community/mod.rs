//! Communities: topics and permission groups (the seed's 社群 / 话题 / 权限组 chapters).
//!
//! A community is a group of type `Community`; this module owns what it adds:
//! - **topics** ([`topics`]): conversations of their own inside a topic-enabled community, with
//!   ids `<community id>@TOPIC#_<suffix>`. A message to a topic carries the topic id as its
//!   `group_id`, is stored in the topic's conversation (`g<topic id>`: its own seqs, unread,
//!   read position, history) and reaches the community's members. The community's membership
//!   and mutes apply, plus the topic's own mute-all and permissions;
//! - **permission groups** ([`permission_groups`]): named sets of community permission bits and
//!   per-topic permission bits, with members; while permission groups are enabled, an ordinary
//!   member may do what the community's default permissions and their permission groups allow
//!   ([`perms`] states the rules once, without I/O).
//!
//! The server enforces the rules on every operation: managing topics and permission groups,
//! sending to a topic or to the community, @all, reading a topic's history, muting. Refusals
//! are 10007. The hooks other modules call are here: [`check_send`] (the group send path),
//! [`membership_group`] (whose members may read or mark a conversation read),
//! [`check_history`] (pulls), [`joined_topics`] (sync), [`grants`] (mute, kick, profile), [`may_revoke_others`] (revoke), [`forget_member`]
//! (leaving), [`drop_data`] (dismissal). Writes are staged by the commit task ([`stage`]); reads are answered from the
//! store ([`reads::get`]). Every change reaches the community's members as a `group_tips`
//! message of type `COMMUNITY` (carrying a `CommunityPush`) in the community's history: pushed to
//! those online, found by the others' next sync ([`Ctx::announce`]).

pub(crate) mod permission_groups;
pub mod perms;
pub(crate) mod reads;
pub(crate) mod records;
pub(crate) mod topics;

use std::sync::Arc;

use chime_proto::pb::{self, community_req::Op, response::Kind as RespKind};
use chime_proto::{codes, ids};

use crate::commit::{Core, Effect};
use crate::error::{ApiError, ApiResult, StoreError};
use crate::groups::GroupState;
use crate::store::Store;
use crate::txn::Txn;
use perms::Standing;

pub use reads::get;
pub use records::community_of;

/// What separates the community id from the suffix in a topic id.
pub const TOPIC_MARK: &str = "@TOPIC#_";
/// Longest topic custom string, permission-group custom data (bytes).
pub const MAX_CUSTOM_BYTES: usize = 4096;
/// Longest permission-group name (bytes).
pub const MAX_PERMISSION_GROUP_NAME_BYTES: usize = 30;
/// The @all marker of `group_at_user_list` (the seed's constant).
pub const AT_ALL_MARKER: &str = "__kImSDK_MessageAtALL__";
/// Prefix of generated permission-group ids.
pub const GENERATED_PERMISSION_GROUP_PREFIX: &str = "@PMG#_";

fn deny(desc: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_SVR_GROUP_PERMISSION_DENIED, desc)
}

fn invalid(desc: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_SVR_GROUP_INVALID_PARAMS, desc)
}

/// A community as one operator sees it while a write is staged.
pub(crate) struct Ctx {
    /// The community's group state.
    pub g: Arc<GroupState>,
    /// The community's own record.
    pub record: pb::CommunityRecord,
    /// The operator's standing.
    pub standing: Standing,
    /// The operator's permission groups.
    pub my_groups: Vec<String>,
}

impl Ctx {
    fn id(&self) -> &str {
        &self.g.info.group_id
    }

    /// The operator's community bits.
    pub fn bits(&self) -> u64 {
        let groups = perms::groups_of(&self.record, &self.my_groups);
        perms::community_bits(self.standing, &self.record, &groups)
    }

    /// The operator's bits in topic `t`.
    pub fn topic_bits(&self, t: &pb::TopicInfo) -> u64 {
        let groups = perms::groups_of(&self.record, &self.my_groups);
        perms::topic_bits(self.standing, &self.record, t, &groups)
    }

    /// 10007 unless the operator holds community bit `bit`.
    pub fn require(&self, bit: u64, what: &str) -> ApiResult<()> {
        if self.bits() & bit == bit {
            Ok(())
        } else {
            Err(deny(format!("no permission to {what} in this community")))
        }
    }

    /// 10007 unless the operator holds community bit `community_bit` or topic bit `topic_bit`
    /// in `t`.
    pub fn require_in_topic(
        &self,
        t: &pb::TopicInfo,
        community_bit: u64,
        topic_bit: u64,
        what: &str,
    ) -> ApiResult<()> {
        if self.bits() & community_bit != 0 || self.topic_bits(t) & topic_bit != 0 {
            Ok(())
        } else {
            Err(deny(format!(
                "no permission to {what} in topic {}",
                t.topic_id
            )))
        }
    }

    /// Tells every member of the community of change `p`: a `group_tips` message of type
    /// `COMMUNITY` carrying it, appended to the community's history like every group tips (so
    /// members online get it pushed and members offline find it when they sync).
    pub fn announce(
        &self,
        txn: &mut Txn<'_>,
        app: u64,
        p: pb::CommunityPush,
        fx: &mut Vec<Effect>,
    ) -> ApiResult<()> {
        crate::group_tips::append_tips(txn, app, &self.g, community_tips(p), &[], fx)
    }
}

/// The tips message body of community change `p`.
fn community_tips(p: pb::CommunityPush) -> pb::GroupTipsElem {
    pb::GroupTipsElem {
        tips_type: pb::GroupTipsType::GroupTipsCommunity as i32,
        op_user: p.op_user.clone(),
        community: Some(p),
        ..Default::default()
    }
}

/// The standing of `user` in `g`.
fn standing(core: &Core, g: &GroupState, user: &str) -> Standing {
    if user == core.tunables.admin_identifier || g.is_staff(user) {
        Standing::Staff
    } else if g.members.contains_key(user) {
        Standing::Member
    } else {
        Standing::Outsider
    }
}

/// Loads community `id` for `user`: 8501 bad id, 10010 none, 10004 not a community, 10007
/// not a member.
pub(crate) fn context(
    core: &mut Core,
    txn: &Txn<'_>,
    app: u64,
    user: &str,
    id: &str,
) -> ApiResult<Ctx> {
    let g = core.existing(txn, app, id)?;
    if g.info.group_type != "Community" {
        return Err(invalid(format!("{id} is not a Community")));
    }
    let standing = standing(core, &g, user);
    if standing == Standing::Outsider {
        return Err(deny("not a member of the community"));
    }
    Ok(Ctx {
        record: records::record(txn, app, id)?,
        my_groups: records::member_groups(txn, app, id, user)?,
        standing,
        g,
    })
}

/// Stages one community write.
pub(crate) fn stage(
    core: &mut Core,
    txn: &mut Txn<'_>,
    app: u64,
    user: &str,
    req: pb::CommunityReq,
    fx: &mut Vec<Effect>,
) -> ApiResult<RespKind> {
    let op = req
        .op
        .ok_or_else(|| ApiError::new(codes::ERR_SVR_INVALID_PARAMS, "op is required"))?;
    let ctx = context(core, txn, app, user, &req.group_id)?;
    let resp = match op {
        Op::CreateTopic(t) => topics::create(core, txn, app, user, ctx, t, fx)?,
        Op::DeleteTopics(l) => topics::delete(txn, app, user, ctx, l.ids, fx)?,
        Op::SetTopic(u) => topics::set(txn, app, user, ctx, u, fx)?,
        Op::SetOptions(o) => permission_groups::set_options(txn, app, ctx, o)?,
        Op::CreatePermissionGroup(g) => {
            permission_groups::create(core, txn, app, user, ctx, g, fx)?
        }
        Op::DeletePermissionGroups(l) => {
            permission_groups::delete(core, txn, app, user, ctx, l.ids, fx)?
        }
        Op::ModifyPermissionGroup(u) => permission_groups::modify(txn, app, user, ctx, u, fx)?,
        Op::AddMembers(m) => permission_groups::add_members(txn, app, user, ctx, m, fx)?,
        Op::RemoveMembers(m) => permission_groups::remove_members(txn, app, user, ctx, m, fx)?,
        Op::AddTopicPermissions(t) => {
            permission_groups::topic_permissions(txn, app, user, ctx, t, true, fx)?
        }
        Op::ModifyTopicPermissions(t) => {
            permission_groups::topic_permissions(txn, app, user, ctx, t, false, fx)?
        }
        Op::DeleteTopicPermissions(t) => {
            permission_groups::delete_topic_permissions(txn, app, user, ctx, t, fx)?
        }
    };
    Ok(RespKind::Community(resp))
}

/// The send hook of the group message path. For a message to a topic: checks the topic's
/// mute-all and the sender's topic permissions (send; @all when the message @-mentions all) and
/// answers the community, whose members and mutes then apply as for any group message. For a
/// message to a community: refuses a topic-enabled community (messages go to its topics) and
/// checks the community permissions. `None` for every other group.
pub(crate) fn check_send(
    core: &mut Core,
    txn: &Txn<'_>,
    app: u64,
    msg: &pb::Message,
) -> ApiResult<Option<String>> {
    let target = &msg.group_id;
    let at_all = msg.group_at_user_list.iter().any(|u| u == AT_ALL_MARKER);
    let Some(community) = records::topic_owner(txn, app, target)? else {
        let Some(g) = core.group(txn, app, target)? else {
            return Ok(None);
        };
        if g.info.group_type != "Community" {
            return Ok(None);
        }
        if g.info.is_support_topic {
            return Err(deny("this community has topics: send to one of its topics"));
        }
        let ctx = match context(core, txn, app, &msg.sender, target) {
            Ok(ctx) => ctx,
            // Not a member: the send path answers that itself.
            Err(_) => return Ok(None),
        };
        ctx.require(perms::community::SEND_MESSAGE, "send messages")?;
        if at_all {
            ctx.require(perms::community::AT_ALL, "@all")?;
        }
        return Ok(None);
    };
    let ctx = match context(core, txn, app, &msg.sender, &community) {
        Ok(ctx) => ctx,
        Err(_) => return Ok(Some(community)),
    };
    let Some(t) = records::topic(txn, app, &community, target)? else {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_NOT_FOUND,
            "no such topic",
        ));
    };
    if t.is_all_muted && ctx.standing != Standing::Staff {
        return Err(ApiError::new(
            codes::ERR_SVR_GROUP_SHUTUP_DENY,
            "the whole topic is muted",
        ));
    }
    let bits = ctx.topic_bits(&t);
    if bits & perms::topic::SEND_MESSAGE == 0 {
        return Err(deny("no permission to send messages to this topic"));
    }
    if at_all && bits & perms::topic::AT_ALL == 0 {
        return Err(deny("no permission to @all in this topic"));
    }
    Ok(Some(community))
}

/// The send hook's receive options: the members whose receive option for topic `topic_id` is
/// `not_receive` (they are left out of its messages' delivery, as are those who turned the whole
/// community off). Read from the committed store: a change staged in the same commit batch as
/// the message applies from the next message on.
pub(crate) fn topic_not_receiving(
    store: &dyn Store,
    app: u64,
    topic_id: &str,
) -> ApiResult<std::collections::HashSet<String>> {
    Ok(crate::conversations::not_receiving(
        store,
        app,
        &crate::keys::group_conv(topic_id),
    )?)
}

/// The group whose membership governs conversation `id`: its community for a topic, else `id`.
pub(crate) fn membership_group(
    r: &(impl records::Get + ?Sized),
    app: u64,
    id: &str,
) -> Result<String, StoreError> {
    Ok(records::topic_owner(r, app, id)?.unwrap_or_else(|| id.to_owned()))
}

/// The pull hook: for a topic, 10007 unless `user` is a member of its community holding the
/// topic's history permission. Nothing to check for any other conversation.
pub(crate) fn check_history(store: &dyn Store, app: u64, user: &str, id: &str) -> ApiResult<()> {
    let Some(community) = records::topic_owner(store, app, id)? else {
        return Ok(());
    };
    let bits = reads::topic_bits_of(store, app, user, &community, id)?;
    if bits & perms::topic::GET_HISTORY_MESSAGE == 0 {
        return Err(deny("no permission to read this topic's history"));
    }
    Ok(())
}

/// The sync hook: `(topic id, newest seq)` of every topic with messages in the
/// topic-enabled communities among `joined`.
pub(crate) fn joined_topics(
    store: &dyn Store,
    app: u64,
    joined: &[pb::GroupInfo],
) -> ApiResult<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for g in joined
        .iter()
        .filter(|g| g.group_type == "Community" && g.is_support_topic)
    {
        for t in records::record(store, app, &g.group_id)?.topic_ids {
            let head = reads::head(store, app, &t)?;
            if head > 0 {
                out.push((t, head));
            }
        }
    }
    Ok(out)
}

/// The group-management hook: whether `op`, an ordinary member of community `g`, holds
/// community permission `bit` through the permission groups (so may, with `MUTE_MEMBER`, mute
/// ordinary members; with `MANAGE_GROUP_MEMBER`, kick them; with `MANAGE_GROUP_INFO`, change the
/// community's profile). Always false for other groups and while permission groups are
/// disabled.
pub(crate) fn grants(
    txn: &Txn<'_>,
    app: u64,
    g: &GroupState,
    op: &str,
    bit: u64,
) -> ApiResult<bool> {
    if g.info.group_type != "Community" || !g.members.contains_key(op) || g.is_staff(op) {
        return Ok(false);
    }
    let id = &g.info.group_id;
    let record = records::record(txn, app, id)?;
    if !record.enable_permission_group {
        return Ok(false);
    }
    let mine = records::member_groups(txn, app, id, op)?;
    let groups = perms::groups_of(&record, &mine);
    Ok(perms::community_bits(Standing::Member, &record, &groups) & bit == bit)
}

/// The revoke hook: whether `user` may revoke other members' messages in conversation `id`
/// through the community permissions: a topic's `REVOKE_OTHER_MEMBER_MESSAGE` bit (or the
/// community's), or the community's bit for a community without topics. False for any other
/// group and for users outside the community.
pub(crate) fn may_revoke_others(
    core: &mut Core,
    txn: &Txn<'_>,
    app: u64,
    id: &str,
    user: &str,
) -> ApiResult<bool> {
    let topic_of = records::topic_owner(txn, app, id)?;
    let community = topic_of.clone().unwrap_or_else(|| id.to_owned());
    match core.group(txn, app, &community)? {
        Some(g) if g.info.group_type == "Community" => {}
        _ => return Ok(false),
    }
    let Ok(ctx) = context(core, txn, app, user, &community) else {
        return Ok(false);
    };
    Ok(match topic_of {
        Some(c) => records::topic(txn, app, &c, id)?
            .is_some_and(|t| ctx.topic_bits(&t) & perms::topic::REVOKE_OTHER_MEMBER_MESSAGE != 0),
        None => ctx.bits() & perms::community::REVOKE_OTHER_MEMBER_MESSAGE != 0,
    })
}

/// The leave hook (quit, kick, dismissal): `user` leaves every permission group of community
/// `id`, so that a member who comes back starts with the defaults. Point reads only; nothing to
/// do for a user in no permission group (or a group that is no community).
pub(crate) fn forget_member(
    txn: &mut Txn<'_>,
    app: u64,
    id: &str,
    user: &str,
) -> Result<(), StoreError> {
    let mine = records::member_groups(txn, app, id, user)?;
    if mine.is_empty() {
        return Ok(());
    }
    let mut record = records::record(txn, app, id)?;
    for pg in &mine {
        txn.del(records::group_member_key(app, id, pg, user));
        if let Some(g) = record
            .permission_groups
            .iter_mut()
            .find(|g| g.permission_group_id == *pg)
        {
            g.member_count = g.member_count.saturating_sub(1);
        }
    }
    records::put_record(txn, app, id, &record);
    records::put_member_groups(txn, app, id, user, Vec::new());
    Ok(())
}

/// The dismissal hook: stages the deletion of everything community `id` owns.
pub(crate) fn drop_data(
    store: &dyn Store,
    txn: &mut Txn<'_>,
    app: u64,
    id: &str,
) -> Result<(), StoreError> {
    for (lo, hi) in records::all_prefixes(app, id) {
        for (k, _) in store.scan(&lo, &hi, usize::MAX, false)? {
            txn.del(k);
        }
    }
    // Written in this batch or one in flight (not yet in the store): the point keys.
    txn.del(records::record_key(app, id));
    Ok(())
}

/// Checks an id given by the client for a topic suffix or a permission group.
fn check_custom_id(id: &str, what: &str) -> ApiResult<()> {
    if ids::is_valid_group_id(id) {
        Ok(())
    } else {
        Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            format!("invalid {what}: printable ASCII, at most 48 bytes"),
        ))
    }
}
