//! What the app backend (and the system) does to a group as a whole: destroy it
//! (`destroy_group`), recycle it (`recycle_group`, a Chime extension: what the server's automatic
//! recycling does, see [`crate::groups::recycle`]) and send its members a custom system
//! notification (`send_group_system_notification`).
//!
//! Destroying and recycling are commit-pipeline writes like a client's dismissal. A system
//! notification is no write: it is never stored, nothing is in history, and only sessions online
//! at the call get it (a `GroupNotifyPush` of kind REST_CUSTOM_DATA, which engines turn into
//! `on_receive_rest_custom_data`), so it is read and pushed here directly.

use std::collections::{HashMap, HashSet};

use chime_proto::pb;
use chime_proto::{codes, ids, limits};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Ctx, RestResult, parse};
use crate::commit::Op;
use crate::error::{ApiError, ApiResult};
use crate::group_admin::GroupOp;
use crate::registry::push_frame;

/// Most members one notification names (`ToMembers_Account`).
pub const MAX_NOTICE_MEMBERS: usize = 500;

fn invalid(desc: impl Into<String>) -> ApiError {
    ApiError::new(codes::ERR_SVR_GROUP_INVALID_PARAMS, desc)
}

/// 10004 unless `id` is a well-formed group id.
fn check_group_id(id: &str) -> ApiResult<()> {
    if ids::is_valid_group_id(id) {
        Ok(())
    } else {
        Err(invalid(format!("GroupId {id:?} is not a valid group id")))
    }
}

#[derive(Deserialize)]
struct GroupReq {
    #[serde(rename = "GroupId")]
    group_id: String,
}

/// `group_open_http_svc/destroy_group {GroupId}`: the administrator dismisses the group; every
/// member gets `on_group_dismissed` with the administrator as operator.
pub(super) async fn destroy(ctx: &Ctx, body: Value) -> RestResult {
    let req: GroupReq = parse(body)?;
    check_group_id(&req.group_id)?;
    let op = Op::DismissGroup(pb::DismissGroupReq {
        group_id: req.group_id,
    });
    ctx.commit(&ctx.admin, op).await?;
    Ok(Map::new())
}

/// `group_open_http_svc/recycle_group {GroupId}` (Chime extension): the system recycles the group
/// now; every member gets `on_group_recycled`.
pub(super) async fn recycle(ctx: &Ctx, body: Value) -> RestResult {
    let req: GroupReq = parse(body)?;
    check_group_id(&req.group_id)?;
    let op = Op::Group(Box::new(GroupOp::Recycle {
        group_id: req.group_id,
        idle_before: None,
    }));
    ctx.commit(&ctx.admin, op).await?;
    Ok(Map::new())
}

#[derive(Deserialize)]
struct NoticeReq {
    #[serde(rename = "GroupId")]
    group_id: String,
    #[serde(rename = "ToMembers_Account", default)]
    to: Vec<String>,
    #[serde(rename = "Content")]
    content: String,
    #[serde(rename = "TopicId", default)]
    topic_id: String,
}

/// A notification request, checked: the group, the topic ("" = none), the receivers (empty =
/// every member), the content.
#[derive(Debug, PartialEq)]
struct Notice {
    group_id: String,
    topic_id: String,
    to: Vec<String>,
    content: String,
}

/// Checks a request (pure): ids well formed, the topic one of the group's, 1..=500 receivers
/// when listed, content non-empty and at most 12 KB.
fn check_notice(req: NoticeReq) -> ApiResult<Notice> {
    check_group_id(&req.group_id)?;
    if !req.topic_id.is_empty()
        && crate::community::community_of(&req.topic_id) != Some(req.group_id.as_str())
    {
        return Err(invalid(format!(
            "TopicId {:?} is not a topic of group {:?}",
            req.topic_id, req.group_id
        )));
    }
    if req.to.len() > MAX_NOTICE_MEMBERS {
        return Err(invalid(format!(
            "ToMembers_Account lists at most {MAX_NOTICE_MEMBERS} members"
        )));
    }
    if let Some(bad) = req.to.iter().find(|u| !ids::is_valid_user_id(u)) {
        return Err(invalid(format!(
            "ToMembers_Account: invalid UserID {bad:?}"
        )));
    }
    if req.content.is_empty() {
        return Err(invalid("Content is empty"));
    }
    if req.content.len() > limits::MAX_MESSAGE_BODY_BYTES {
        return Err(invalid(format!(
            "Content is over {} bytes",
            limits::MAX_MESSAGE_BODY_BYTES
        )));
    }
    Ok(Notice {
        group_id: req.group_id,
        topic_id: req.topic_id,
        to: req.to,
        content: req.content,
    })
}

/// The receivers: every member, or the listed ones that are members (others are ignored).
fn receivers(members: HashSet<String>, to: &[String]) -> HashMap<String, ()> {
    if to.is_empty() {
        return members.into_iter().map(|m| (m, ())).collect();
    }
    to.iter()
        .filter(|u| members.contains(*u))
        .map(|u| (u.clone(), ()))
        .collect()
}

/// `group_open_http_svc/send_group_system_notification {GroupId, ToMembers_Account?, Content,
/// TopicId?}`: the members online now (all, or those listed; non-members listed are ignored)
/// get `on_receive_rest_custom_data`. Nothing is stored.
pub(super) async fn system_notification(ctx: &Ctx, body: Value) -> RestResult {
    let notice = check_notice(parse(body)?)?;
    let (group_id, topic_id) = (notice.group_id.clone(), notice.topic_id.clone());
    let members = ctx
        .read(move |store, app| {
            let Some(info) = crate::queries::group_info(store, app, &group_id)? else {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_NOT_FOUND,
                    format!("no group {group_id:?}"),
                ));
            };
            if !topic_id.is_empty()
                && crate::community::records::topic(store, app, &info.group_id, &topic_id)?
                    .is_none()
            {
                return Err(ApiError::new(
                    codes::ERR_SVR_GROUP_NOT_FOUND,
                    format!("no topic {topic_id:?}"),
                ));
            }
            Ok(crate::queries::load_members(store, app, &group_id)?
                .into_iter()
                .map(|(_, m)| m.user_id)
                .collect::<HashSet<String>>())
        })
        .await?;
    let to = receivers(members, &notice.to);
    let frame = push_frame(pb::push::Kind::GroupNotify(pb::GroupNotifyPush {
        kind: pb::GroupNotifyKind::GroupNotifyRestCustomData as i32,
        group_id: notice.group_id,
        custom_data: notice.content,
        topic_id: notice.topic_id,
        ..Default::default()
    }));
    ctx.shared
        .registry
        .push_members(ctx.app, &to, &HashSet::<String>::new(), &frame, 0);
    Ok(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(group: &str, topic: &str, to: &[&str], content: &str) -> NoticeReq {
        NoticeReq {
            group_id: group.into(),
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            content: content.into(),
            topic_id: topic.into(),
        }
    }

    fn code(r: ApiResult<Notice>) -> i32 {
        r.err().map_or(0, |e| e.code)
    }

    #[test]
    fn notices_are_checked() {
        assert_eq!(code(check_notice(req("g1", "", &[], "hi"))), 0);
        assert_eq!(code(check_notice(req("g1", "", &["a", "b"], "hi"))), 0);
        assert_eq!(code(check_notice(req("", "", &[], "hi"))), 10004);
        assert_eq!(code(check_notice(req("g1", "", &[], ""))), 10004);
        let big = "x".repeat(limits::MAX_MESSAGE_BODY_BYTES + 1);
        assert_eq!(code(check_notice(req("g1", "", &[], &big))), 10004);
        let many: Vec<String> = (0..=MAX_NOTICE_MEMBERS).map(|i| format!("u{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(code(check_notice(req("g1", "", &many, "hi"))), 10004);
        assert_eq!(code(check_notice(req("g1", "", &[""], "hi"))), 10004);
    }

    #[test]
    fn a_topic_must_be_one_of_the_group() {
        assert_eq!(code(check_notice(req("c1", "c1@TOPIC#_t", &[], "hi"))), 0);
        assert_eq!(
            code(check_notice(req("c1", "c2@TOPIC#_t", &[], "hi"))),
            10004
        );
        assert_eq!(code(check_notice(req("c1", "nonsense", &[], "hi"))), 10004);
    }

    #[test]
    fn receivers_are_the_listed_members_or_everyone() {
        let members: HashSet<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        let mut all: Vec<String> = receivers(members.clone(), &[]).into_keys().collect();
        all.sort();
        assert_eq!(all, ["a", "b", "c"]);
        let mut some: Vec<String> = receivers(members, &["b".into(), "stranger".into()])
            .into_keys()
            .collect();
        some.sort();
        assert_eq!(some, ["b"]);
    }
}
