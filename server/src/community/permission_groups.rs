//! Permission-group writes: the community's options (enable, default permissions), create /
//! delete / modify permission groups, add / remove their members, and their per-topic
//! permissions. Each is checked against the operator's permissions and pushed to every member
//! of the community.

use std::collections::BTreeMap;

use chime_proto::{codes, pb};

use super::perms::{self, community as cp, topic as tp};
use super::{
    Ctx, GENERATED_PERMISSION_GROUP_PREFIX, MAX_CUSTOM_BYTES, MAX_PERMISSION_GROUP_NAME_BYTES,
    check_custom_id, invalid, records,
};
use crate::commit::{Core, Effect};
use crate::error::{ApiError, ApiResult};
use crate::txn::Txn;

/// The seed's permission-group modify flags.
pub mod flag {
    /// Name.
    pub const NAME: u32 = 0x1;
    /// Community permission bits.
    pub const GROUP_PERMISSION: u32 = 0x2;
    /// Custom data.
    pub const CUSTOM_DATA: u32 = 0x4;
}

fn ok(id: String) -> pb::CommunityResult {
    pb::CommunityResult {
        id,
        code: 0,
        desc: String::new(),
    }
}

fn failed(id: String, code: i32, desc: &str) -> pb::CommunityResult {
    pb::CommunityResult {
        id,
        code,
        desc: desc.to_owned(),
    }
}

fn push(kind: pb::CommunityEvent, ctx: &Ctx, op: &str, group: &str) -> pb::CommunityPush {
    pb::CommunityPush {
        kind: kind as i32,
        group_id: ctx.id().to_owned(),
        op_user: op.to_owned(),
        permission_group_id: group.to_owned(),
        ..Default::default()
    }
}

fn check_fields(g: &pb::PermissionGroupInfo) -> ApiResult<()> {
    if g.permission_group_name.len() > MAX_PERMISSION_GROUP_NAME_BYTES {
        return Err(invalid(format!(
            "permission_group_name longer than {MAX_PERMISSION_GROUP_NAME_BYTES} bytes"
        )));
    }
    if g.custom_data.len() > MAX_CUSTOM_BYTES {
        return Err(invalid(format!(
            "custom_data longer than {MAX_CUSTOM_BYTES} bytes"
        )));
    }
    if g.group_permission & !cp::ALL != 0 {
        return Err(invalid(
            "group_permission has unknown community permission bits",
        ));
    }
    Ok(())
}

/// Index of permission group `id` in the record (10010 when there is none).
fn index_of(ctx: &Ctx, id: &str) -> ApiResult<usize> {
    ctx.record
        .permission_groups
        .iter()
        .position(|g| g.permission_group_id == id)
        .ok_or_else(|| {
            ApiError::new(
                codes::ERR_SVR_GROUP_NOT_FOUND,
                format!("no permission group {id}"),
            )
        })
}

/// The community's options (an extension: the seed sets them with the group's modify flags).
pub(crate) fn set_options(
    txn: &mut Txn<'_>,
    app: u64,
    mut ctx: Ctx,
    o: pb::CommunityOptions,
) -> ApiResult<pb::CommunityResp> {
    ctx.require(
        cp::MANAGE_GROUP_INFO,
        "change the community's permission options",
    )?;
    if let Some(d) = o.default_permissions {
        if d & !cp::ALL != 0 {
            return Err(invalid(
                "default_permissions has unknown community permission bits",
            ));
        }
        ctx.record.default_permissions = d;
    }
    if let Some(e) = o.enable_permission_group {
        ctx.record.enable_permission_group = e;
    }
    let id = ctx.id().to_owned();
    records::put_record(txn, app, &id, &ctx.record);
    Ok(pb::CommunityResp::default())
}

/// `create_permission_group_in_community`.
pub(crate) fn create(
    core: &Core,
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    mut ctx: Ctx,
    mut g: pb::PermissionGroupInfo,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    ctx.require(cp::MANAGE_PERMISSION_GROUP_INFO, "manage permission groups")?;
    let limit = core.tunables.community_max_permission_groups as usize;
    if ctx.record.permission_groups.len() >= limit {
        return Err(invalid(format!(
            "a community has at most {limit} permission groups"
        )));
    }
    check_fields(&g)?;
    if !perms::valid_topic_map(&g.topic_permissions) {
        return Err(invalid("topic permissions have unknown bits"));
    }
    for t in g.topic_permissions.keys() {
        super::topics::existing(txn, app, &ctx, t)?;
    }
    let exists = |ctx: &Ctx, id: &str| {
        ctx.record
            .permission_groups
            .iter()
            .any(|p| p.permission_group_id == id)
    };
    if g.permission_group_id.is_empty() {
        g.permission_group_id = loop {
            ctx.record.next_id += 1;
            let id = format!(
                "{GENERATED_PERMISSION_GROUP_PREFIX}{:X}",
                ctx.record.next_id
            );
            if !exists(&ctx, &id) {
                break id;
            }
        };
    } else {
        check_custom_id(&g.permission_group_id, "permission_group_id")?;
        if exists(&ctx, &g.permission_group_id) {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_ID_IN_USE,
                "permission group id in use",
            ));
        }
    }
    g.group_id = ctx.id().to_owned();
    g.member_count = 0;
    let id = g.permission_group_id.clone();
    ctx.record.permission_groups.push(g.clone());
    records::put_record(txn, app, &g.group_id, &ctx.record);
    let mut p = push(pb::CommunityEvent::PermissionGroupCreated, &ctx, op, &id);
    p.permission_group = Some(g);
    ctx.announce(txn, app, p, fx)?;
    Ok(pb::CommunityResp {
        id,
        results: Vec::new(),
    })
}

/// `delete_permission_group_from_community`: unknown ids are answered 10010 in the results.
pub(crate) fn delete(
    core: &Core,
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    mut ctx: Ctx,
    ids: Vec<String>,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    ctx.require(cp::MANAGE_PERMISSION_GROUP_INFO, "manage permission groups")?;
    if ids.is_empty() {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "permission_group_id_list is empty",
        ));
    }
    let community = ctx.id().to_owned();
    let mut results = Vec::new();
    let mut gone = Vec::new();
    for id in ids {
        match index_of(&ctx, &id) {
            Err(e) => results.push(failed(id, e.code, &e.desc)),
            Ok(i) => {
                ctx.record.permission_groups.remove(i);
                let (lo, hi) = records::group_members_prefix(app, &community, &id).prefix_range();
                for (k, _) in core.store.scan(&lo, &hi, usize::MAX, false)? {
                    let Some(user) = crate::keys::trailing_str(&k, lo.len()) else {
                        continue;
                    };
                    let mut mine = records::member_groups(txn, app, &community, &user)?;
                    mine.retain(|g| *g != id);
                    records::put_member_groups(txn, app, &community, &user, mine);
                    txn.del(k);
                }
                gone.push(id.clone());
                results.push(ok(id));
            }
        }
    }
    if !gone.is_empty() {
        records::put_record(txn, app, &community, &ctx.record);
        let mut p = push(pb::CommunityEvent::PermissionGroupDeleted, &ctx, op, "");
        p.permission_group_ids = gone;
        ctx.announce(txn, app, p, fx)?;
    }
    Ok(pb::CommunityResp {
        id: String::new(),
        results,
    })
}

/// `modify_permission_group_info_in_community`: the fields named by the modify flags.
pub(crate) fn modify(
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    mut ctx: Ctx,
    u: pb::PermissionGroupUpdate,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    ctx.require(cp::MANAGE_PERMISSION_GROUP_INFO, "manage permission groups")?;
    let new = u.info.unwrap_or_default();
    let i = index_of(&ctx, &new.permission_group_id)?;
    let f = u.modify_flag;
    if f & (flag::NAME | flag::GROUP_PERMISSION | flag::CUSTOM_DATA) == 0 {
        return Err(invalid("modify_flag names no field"));
    }
    let g = &mut ctx.record.permission_groups[i];
    if f & flag::NAME != 0 {
        g.permission_group_name = new.permission_group_name;
    }
    if f & flag::GROUP_PERMISSION != 0 {
        g.group_permission = new.group_permission;
    }
    if f & flag::CUSTOM_DATA != 0 {
        g.custom_data = new.custom_data;
    }
    check_fields(g)?;
    let g = g.clone();
    records::put_record(txn, app, &g.group_id, &ctx.record);
    let mut p = push(
        pb::CommunityEvent::PermissionGroupChanged,
        &ctx,
        op,
        &g.permission_group_id,
    );
    p.permission_group = Some(g);
    ctx.announce(txn, app, p, fx)?;
    Ok(pb::CommunityResp::default())
}

/// `add_community_members_to_permission_group` / `remove_community_members_from_permission_group`:
/// a result per user (10007 for a user who is not a member of the community when adding).
pub(crate) fn members(
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    mut ctx: Ctx,
    m: pb::PermissionGroupMembers,
    add: bool,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    ctx.require(
        cp::MANAGE_PERMISSION_GROUP_MEMBER,
        "manage permission group members",
    )?;
    let i = index_of(&ctx, &m.permission_group_id)?;
    if m.member_ids.is_empty() {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "member_id_list is empty",
        ));
    }
    let community = ctx.id().to_owned();
    let group = m.permission_group_id;
    let mut results = Vec::new();
    let mut changed = Vec::new();
    for user in m.member_ids {
        if add && !ctx.g.members.contains_key(&user) {
            results.push(failed(
                user,
                codes::ERR_SVR_GROUP_PERMISSION_DENIED,
                "not a member of the community",
            ));
            continue;
        }
        let mut mine = records::member_groups(txn, app, &community, &user)?;
        let has = mine.contains(&group);
        if add && !has {
            mine.push(group.clone());
            txn.put(
                records::group_member_key(app, &community, &group, &user),
                Vec::new(),
            );
        } else if !add && has {
            mine.retain(|g| *g != group);
            txn.del(records::group_member_key(app, &community, &group, &user));
        }
        if add != has {
            records::put_member_groups(txn, app, &community, &user, mine);
            changed.push(user.clone());
        }
        results.push(ok(user));
    }
    if !changed.is_empty() {
        let g = &mut ctx.record.permission_groups[i];
        g.member_count = if add {
            g.member_count + changed.len() as u64
        } else {
            g.member_count.saturating_sub(changed.len() as u64)
        };
        records::put_record(txn, app, &community, &ctx.record);
        let kind = if add {
            pb::CommunityEvent::MembersAdded
        } else {
            pb::CommunityEvent::MembersRemoved
        };
        let mut p = push(kind, &ctx, op, &group);
        p.member_ids = changed;
        ctx.announce(txn, app, p, fx)?;
    }
    Ok(pb::CommunityResp {
        id: String::new(),
        results,
    })
}

/// `add_community_members_to_permission_group`.
pub(crate) fn add_members(
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    ctx: Ctx,
    m: pb::PermissionGroupMembers,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    members(txn, app, op, ctx, m, true, fx)
}

/// `remove_community_members_from_permission_group`.
pub(crate) fn remove_members(
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    ctx: Ctx,
    m: pb::PermissionGroupMembers,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    members(txn, app, op, ctx, m, false, fx)
}

/// 10007 unless the operator may change the permissions of topic `t` in permission groups.
fn require_topic_permission(ctx: &Ctx, t: &pb::TopicInfo) -> ApiResult<()> {
    ctx.require_in_topic(
        t,
        cp::MANAGE_PERMISSION_GROUP_INFO,
        tp::MANAGE_TOPIC_PERMISSION,
        "change permissions",
    )
}

/// `add_topic_permission_to_permission_group` (`add`) /
/// `modify_topic_permission_in_permission_group`: a result per topic (10010 no such topic;
/// 10004 already present when adding, absent when modifying).
pub(crate) fn topic_permissions(
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    mut ctx: Ctx,
    t: pb::TopicPermissions,
    add: bool,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    let i = index_of(&ctx, &t.permission_group_id)?;
    if t.topic_permissions.is_empty() {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "topic_permission_map is empty",
        ));
    }
    if !perms::valid_topic_map(&t.topic_permissions) {
        return Err(invalid("topic permissions have unknown bits"));
    }
    let mut results = Vec::new();
    let mut applied = BTreeMap::new();
    for (topic_id, bits) in t.topic_permissions {
        let Some(topic) = records::topic(txn, app, ctx.id(), &topic_id)? else {
            results.push(failed(
                topic_id,
                codes::ERR_SVR_GROUP_NOT_FOUND,
                "no such topic",
            ));
            continue;
        };
        require_topic_permission(&ctx, &topic)?;
        let present = ctx.record.permission_groups[i]
            .topic_permissions
            .contains_key(&topic_id);
        if add && present {
            results.push(failed(
                topic_id,
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                "the permission group already has permissions in this topic: modify them",
            ));
        } else if !add && !present {
            results.push(failed(
                topic_id,
                codes::ERR_SVR_GROUP_INVALID_PARAMS,
                "the permission group has no permissions in this topic: add them",
            ));
        } else {
            applied.insert(topic_id.clone(), bits);
            results.push(ok(topic_id));
        }
    }
    if !applied.is_empty() {
        let g = &mut ctx.record.permission_groups[i];
        g.topic_permissions
            .extend(applied.iter().map(|(k, v)| (k.clone(), *v)));
        let community = ctx.id().to_owned();
        records::put_record(txn, app, &community, &ctx.record);
        let kind = if add {
            pb::CommunityEvent::TopicPermissionAdded
        } else {
            pb::CommunityEvent::TopicPermissionModified
        };
        let mut p = push(kind, &ctx, op, &t.permission_group_id);
        p.topic_permissions = applied;
        ctx.announce(txn, app, p, fx)?;
    }
    Ok(pb::CommunityResp {
        id: String::new(),
        results,
    })
}

/// `delete_topic_permission_from_permission_group`: a result per topic (10010 when the
/// permission group has no permissions there).
pub(crate) fn delete_topic_permissions(
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    mut ctx: Ctx,
    t: pb::PermissionGroupTopics,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    let i = index_of(&ctx, &t.permission_group_id)?;
    if t.topic_ids.is_empty() {
        return Err(ApiError::new(
            codes::ERR_SVR_INVALID_PARAMS,
            "topic_id_list is empty",
        ));
    }
    let mut results = Vec::new();
    let mut gone = Vec::new();
    for topic_id in t.topic_ids {
        let topic = records::topic(txn, app, ctx.id(), &topic_id)?;
        let present = ctx.record.permission_groups[i]
            .topic_permissions
            .contains_key(&topic_id);
        match topic {
            Some(topic) if present => {
                require_topic_permission(&ctx, &topic)?;
                gone.push(topic_id.clone());
                results.push(ok(topic_id));
            }
            _ => results.push(failed(
                topic_id,
                codes::ERR_SVR_GROUP_NOT_FOUND,
                "no permissions of this permission group in such a topic",
            )),
        }
    }
    if !gone.is_empty() {
        ctx.record.permission_groups[i]
            .topic_permissions
            .retain(|k, _| !gone.contains(k));
        let community = ctx.id().to_owned();
        records::put_record(txn, app, &community, &ctx.record);
        let mut p = push(
            pb::CommunityEvent::TopicPermissionDeleted,
            &ctx,
            op,
            &t.permission_group_id,
        );
        p.topic_ids = gone;
        ctx.announce(txn, app, p, fx)?;
    }
    Ok(pb::CommunityResp {
        id: String::new(),
        results,
    })
}
