//! Topic writes: create (generated or custom id), delete (some or all), change (by the seed's
//! modify flags). Each is checked against the operator's permissions and pushed to every member
//! of the community.

use chime_proto::pb;

use super::perms::{community as cp, topic as tp};
use super::{Ctx, MAX_CUSTOM_BYTES, TOPIC_MARK, check_custom_id, deny, invalid, records};
use crate::commit::{Core, Effect, now_ms};
use crate::error::{ApiError, ApiResult};
use crate::txn::Txn;
use chime_proto::{codes, ids};

/// The seed's topic modify flags.
pub mod flag {
    /// Name.
    pub const NAME: u32 = 0x1;
    /// Notification.
    pub const NOTIFICATION: u32 = 0x2;
    /// Introduction.
    pub const INTRODUCTION: u32 = 0x4;
    /// Face URL.
    pub const FACE_URL: u32 = 0x8;
    /// All muted.
    pub const MUTE_ALL: u32 = 0x100;
    /// Custom string.
    pub const CUSTOM_STRING: u32 = 0x800;
    /// Draft (kept by the engine, not the server).
    pub const DRAFT: u32 = 0x4000;
    /// Default permissions.
    pub const DEFAULT_PERMISSIONS: u32 = 0x8000;
}

fn check_fields(t: &pb::TopicInfo) -> ApiResult<()> {
    crate::groups::check_profile(
        Some(&t.topic_name),
        Some(&t.introduction),
        Some(&t.notification),
        Some(&t.face_url),
    )?;
    if t.custom_string.len() > MAX_CUSTOM_BYTES {
        return Err(invalid(format!(
            "custom_string longer than {MAX_CUSTOM_BYTES} bytes"
        )));
    }
    if t.default_permissions & !tp::ALL != 0 {
        return Err(invalid(
            "default_permissions has unknown topic permission bits",
        ));
    }
    Ok(())
}

fn push(kind: pb::CommunityEvent, ctx: &Ctx, op: &str) -> pb::CommunityPush {
    pb::CommunityPush {
        kind: kind as i32,
        group_id: ctx.id().to_owned(),
        op_user: op.to_owned(),
        ..Default::default()
    }
}

/// The topic `id` of the community (10010 when there is none).
pub(crate) fn existing(txn: &Txn<'_>, app: u64, ctx: &Ctx, id: &str) -> ApiResult<pb::TopicInfo> {
    records::topic(txn, app, ctx.id(), id)?
        .ok_or_else(|| ApiError::new(codes::ERR_SVR_GROUP_NOT_FOUND, format!("no topic {id}")))
}

/// `create_topic_in_community`.
pub(crate) fn create(
    core: &Core,
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    mut ctx: Ctx,
    mut t: pb::TopicInfo,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    if !ctx.g.info.is_support_topic {
        return Err(invalid("this community does not support topics"));
    }
    ctx.require(cp::MANAGE_TOPIC_IN_COMMUNITY, "manage topics")?;
    let limit = core.tunables.community_max_topics as usize;
    if ctx.record.topic_ids.len() >= limit {
        return Err(invalid(format!("a community has at most {limit} topics")));
    }
    check_fields(&t)?;
    let community = ctx.id().to_owned();
    let topic_id = if t.topic_id.is_empty() {
        loop {
            ctx.record.next_id += 1;
            let id = format!("{community}{TOPIC_MARK}{:X}", ctx.record.next_id);
            if !ids::is_valid_group_id(&id) {
                return Err(invalid(
                    "the community id is too long for generated topic ids: give a topic_id",
                ));
            }
            if records::topic(txn, app, &community, &id)?.is_none() {
                break id;
            }
        }
    } else {
        check_custom_id(&t.topic_id, "topic_id")?;
        if super::community_of(&t.topic_id) != Some(community.as_str()) {
            return Err(ApiError::new(
                codes::ERR_INVALID_GROUP_ID,
                format!("topic_id must be {community}{TOPIC_MARK}<suffix>"),
            ));
        }
        if records::topic(txn, app, &community, &t.topic_id)?.is_some() {
            return Err(ApiError::new(
                codes::ERR_SVR_GROUP_ID_IN_USE,
                "topic id in use",
            ));
        }
        t.topic_id.clone()
    };
    t.topic_id = topic_id.clone();
    t.group_id = community.clone();
    t.create_time_ms = now_ms();
    t.max_seq = 0;
    records::put_topic(txn, app, &t);
    ctx.record.topic_ids.push(topic_id.clone());
    records::put_record(txn, app, &community, &ctx.record);
    let mut p = push(pb::CommunityEvent::TopicCreated, &ctx, op);
    p.topic = Some(t);
    ctx.announce(txn, app, p, fx)?;
    Ok(pb::CommunityResp {
        id: topic_id,
        results: Vec::new(),
    })
}

/// `delete_topic_from_community`: `ids` (empty = every topic). The operator must be allowed to
/// delete every existing one of them, else nothing is deleted (10007); unknown ids are answered
/// 10010 in the results.
pub(crate) fn delete(
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    mut ctx: Ctx,
    ids: Vec<String>,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    let ids = if ids.is_empty() {
        ctx.require(cp::MANAGE_TOPIC_IN_COMMUNITY, "delete every topic")?;
        ctx.record.topic_ids.clone()
    } else {
        ids
    };
    let mut results = Vec::new();
    let mut gone = Vec::new();
    for id in ids {
        match records::topic(txn, app, ctx.id(), &id)? {
            None => results.push(pb::CommunityResult {
                id,
                code: codes::ERR_SVR_GROUP_NOT_FOUND,
                desc: "no such topic".into(),
            }),
            Some(t) => {
                ctx.require_in_topic(
                    &t,
                    cp::MANAGE_TOPIC_IN_COMMUNITY,
                    tp::MANAGE_TOPIC,
                    "delete",
                )?;
                if !gone.contains(&id) {
                    gone.push(id.clone());
                }
                results.push(pb::CommunityResult {
                    id,
                    code: 0,
                    desc: String::new(),
                });
            }
        }
    }
    if gone.is_empty() {
        return Ok(pb::CommunityResp {
            id: String::new(),
            results,
        });
    }
    let community = ctx.id().to_owned();
    for id in &gone {
        txn.del(records::topic_key(app, &community, id));
    }
    ctx.record.topic_ids.retain(|t| !gone.contains(t));
    for g in &mut ctx.record.permission_groups {
        g.topic_permissions.retain(|t, _| !gone.contains(t));
    }
    records::put_record(txn, app, &community, &ctx.record);
    let mut p = push(pb::CommunityEvent::TopicDeleted, &ctx, op);
    p.topic_ids = gone;
    ctx.announce(txn, app, p, fx)?;
    Ok(pb::CommunityResp {
        id: String::new(),
        results,
    })
}

/// `set_topic_info`: the fields named by the modify flags.
pub(crate) fn set(
    txn: &mut Txn<'_>,
    app: u64,
    op: &str,
    ctx: Ctx,
    u: pb::TopicUpdate,
    fx: &mut Vec<Effect>,
) -> ApiResult<pb::CommunityResp> {
    let new = u.topic.unwrap_or_default();
    let mut t = existing(txn, app, &ctx, &new.topic_id)?;
    ctx.require_in_topic(
        &t,
        cp::MANAGE_TOPIC_IN_COMMUNITY,
        tp::MANAGE_TOPIC,
        "change",
    )?;
    let f = u.modify_flag & !flag::DRAFT;
    if f == 0 {
        return Err(invalid("modify_flag names no server-side field"));
    }
    if f & flag::DEFAULT_PERMISSIONS != 0 {
        ctx.require_in_topic(
            &t,
            cp::MANAGE_PERMISSION_GROUP_INFO,
            tp::MANAGE_TOPIC_PERMISSION,
            "change the default permissions",
        )
        .map_err(|e| deny(e.desc))?;
    }
    let set = |bit: u32| f & bit != 0;
    if set(flag::NAME) {
        t.topic_name = new.topic_name;
    }
    if set(flag::NOTIFICATION) {
        t.notification = new.notification;
    }
    if set(flag::INTRODUCTION) {
        t.introduction = new.introduction;
    }
    if set(flag::FACE_URL) {
        t.face_url = new.face_url;
    }
    if set(flag::MUTE_ALL) {
        t.is_all_muted = new.is_all_muted;
    }
    if set(flag::CUSTOM_STRING) {
        t.custom_string = new.custom_string;
    }
    if set(flag::DEFAULT_PERMISSIONS) {
        t.default_permissions = new.default_permissions;
    }
    check_fields(&t)?;
    records::put_topic(txn, app, &t);
    let mut p = push(pb::CommunityEvent::TopicChanged, &ctx, op);
    p.topic = Some(t);
    ctx.announce(txn, app, p, fx)?;
    Ok(pb::CommunityResp::default())
}
