//! Group methods (api.md §4.4): lifecycle (create, join, quit, dismiss, joined list, info)
//! here, management in [`manage`].

mod manage;

use serde_json::Value;

use super::params::*;
use crate::actors::Peers;
use crate::actors::group::{CreateGroup, GroupsInfo, JoinGroup, JoinedList, LeaveGroup};
use crate::codec;
use crate::events::EventBus;
use crate::{ApiError, Result};
use chime_proto::pb;
use chime_proto::{codes, ids};

/// The methods this area answers.
pub(super) const METHODS: &[&str] = &[
    "create_group",
    "join_group",
    "quit_group",
    "dismiss_group",
    "get_joined_group_list",
    "get_groups_info",
    // Management (`manage`).
    "set_group_info",
    "transfer_group_owner",
    "get_group_member_list",
    "get_group_members_info",
    "set_group_member_info",
    "mute_group_member",
    "set_group_member_role",
    "invite_user_to_group",
    "kick_group_member",
    "mark_group_member_list",
    "get_group_application_list",
    "accept_group_application",
    "refuse_group_application",
    "set_group_application_read",
    "init_group_attributes",
    "set_group_attributes",
    "delete_group_attributes",
    "get_group_attributes",
    "set_group_counters",
    "get_group_counters",
    "increase_group_counter",
    "decrease_group_counter",
    "search_groups",
    "search_group_members",
    "get_joined_community_list",
    "get_group_online_member_count",
];

/// The methods of this area that work before login.
pub(super) const PRE_LOGIN: &[&str] = &[];

/// Calls one method of this area.
pub(super) async fn call(
    peers: &Peers,
    _events: &EventBus,
    method: &str,
    p: Value,
) -> Result<Value> {
    match method {
        "create_group" => {
            let req = create_group_req(&p)?;
            peers.group.send(CreateGroup(req)).await.map_err(mailbox)?
        }
        "join_group" => {
            let g = group_id(&p, "group_id")?;
            let m = opt_str(&p, "message")?.unwrap_or_default();
            peers.group.send(JoinGroup(g, m)).await.map_err(mailbox)?
        }
        "quit_group" | "dismiss_group" => {
            let g = group_id(&p, "group_id")?;
            let leave = LeaveGroup {
                group_id: g,
                dismiss: method == "dismiss_group",
            };
            peers.group.send(leave).await.map_err(mailbox)?
        }
        "get_joined_group_list" => peers.group.send(JoinedList).await.map_err(mailbox)?,
        "get_groups_info" => {
            let ids = codec::string_list(&p, "group_ids")?;
            peers.group.send(GroupsInfo(ids)).await.map_err(mailbox)?
        }
        _ => manage::dispatch(peers, method, p).await,
    }
}

fn create_group_req(p: &Value) -> Result<pb::CreateGroupReq> {
    let group_type = req_str(p, "group_type")?;
    if !matches!(
        group_type.as_str(),
        "Work" | "Public" | "Meeting" | "AVChatRoom" | "Community"
    ) {
        return Err(ApiError::invalid_param(
            "group_type must be Work|Public|Meeting|AVChatRoom|Community",
        ));
    }
    let gid = opt_str(p, "group_id")?.unwrap_or_default();
    if !gid.is_empty() && !ids::is_valid_group_id(&gid) {
        return Err(ApiError::new(
            codes::ERR_INVALID_GROUP_ID,
            "invalid group_id",
        ));
    }
    manage::check_profile(p)?;
    let custom_info = manage::custom_map(p, "custom_info")?;
    let mut member_list = Vec::new();
    if let Some(list) = p.get("member_list").and_then(Value::as_array) {
        for m in list {
            let (uid, role) = match m {
                Value::String(s) => (s.clone(), String::new()),
                Value::Object(_) => (
                    req_str(m, "user_id")?,
                    opt_str(m, "role")?.unwrap_or_default(),
                ),
                _ => return Err(ApiError::invalid_param("member_list entries")),
            };
            if !ids::is_valid_user_id(&uid) {
                return Err(ApiError::new(
                    codes::ERR_INVALID_USER_ID,
                    "invalid member user_id",
                ));
            }
            member_list.push(pb::GroupMember {
                user_id: uid,
                role,
                ..Default::default()
            });
        }
    }
    Ok(pb::CreateGroupReq {
        group_type,
        group_id: gid,
        name: opt_str(p, "group_name")?.unwrap_or_default(),
        introduction: opt_str(p, "introduction")?.unwrap_or_default(),
        notification: opt_str(p, "notification")?.unwrap_or_default(),
        face_url: opt_str(p, "face_url")?.unwrap_or_default(),
        add_opt: opt_str(p, "add_opt")?.unwrap_or_default(),
        approve_opt: opt_str(p, "approve_opt")?.unwrap_or_default(),
        is_support_topic: opt_bool(p, "is_support_topic")?,
        custom_info,
        member_list,
    })
}
