//! Which group listener events a server notification means, as pure functions.
//!
//! Group changes reach members in two forms: a `group_tips` message in the group's history (join,
//! invite, quit, kick, role, profile and mute changes, and a community's topic and permission-group
//! changes — stored, so members who were offline see them in history) and a `GroupNotifyPush` for what is not a message (attributes, counters, join
//! applications, the backend's custom system notifications). The GroupActor hands both here and emits what comes back, so the mapping to the
//! seed's `V2TIMGroupListener` callbacks lives in one place and is tested without an engine.

use chime_proto::pb;
use serde_json::{Value, json};

/// One listener event: its name and its params.
pub type GroupEvent = (&'static str, Value);

fn members(list: &[String]) -> Value {
    Value::Array(list.iter().map(|u| json!({ "user_id": u })).collect())
}

/// Info-change keys carried by a tips message, in the JSON of `on_group_info_changed`.
fn change_list(tips: &pb::GroupTipsElem) -> Value {
    Value::Array(
        tips.group_change_info
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect(),
    )
}

/// The events of one `group_tips` message of group `group_id`.
pub fn from_tips(group_id: &str, tips: &pb::GroupTipsElem) -> Vec<GroupEvent> {
    let op = tips.op_user.as_str();
    let list = members(&tips.member_list);
    match tips.tips_type() {
        pb::GroupTipsType::GroupTipsJoin => vec![(
            "on_member_enter",
            json!({ "group_id": group_id, "member_list": list }),
        )],
        pb::GroupTipsType::GroupTipsInvite => vec![(
            "on_member_invited",
            json!({ "group_id": group_id, "op_user": op, "member_list": list }),
        )],
        pb::GroupTipsType::GroupTipsQuit => tips
            .member_list
            .iter()
            .map(|u| {
                (
                    "on_member_leave",
                    json!({ "group_id": group_id, "member": { "user_id": u } }),
                )
            })
            .collect(),
        pb::GroupTipsType::GroupTipsKicked => vec![(
            "on_member_kicked",
            json!({ "group_id": group_id, "op_user": op, "member_list": list }),
        )],
        pb::GroupTipsType::GroupTipsSetAdmin => vec![(
            "on_grant_administrator",
            json!({ "group_id": group_id, "op_user": op, "member_list": list }),
        )],
        pb::GroupTipsType::GroupTipsCancelAdmin => vec![(
            "on_revoke_administrator",
            json!({ "group_id": group_id, "op_user": op, "member_list": list }),
        )],
        pb::GroupTipsType::GroupTipsGroupInfoChange => {
            let mut out = vec![(
                "on_group_info_changed",
                json!({ "group_id": group_id, "op_user": op, "change_info_list": change_list(tips) }),
            )];
            if let Some(v) = tips.group_change_info.get("is_all_muted") {
                out.push((
                    "on_all_group_members_muted",
                    json!({ "group_id": group_id, "is_mute": v == "true" }),
                ));
            }
            out
        }
        pb::GroupTipsType::GroupTipsMemberInfoChange => {
            let changes: Vec<Value> = tips
                .member_change_list
                .iter()
                .map(|c| json!({ "user_id": c.user_id, "mute_time": c.mute_time }))
                .collect();
            vec![(
                "on_member_info_changed",
                json!({ "group_id": group_id, "op_user": op, "member_change_info_list": changes }),
            )]
        }
        pb::GroupTipsType::GroupTipsMemberMarkChange => {
            let changes: Vec<Value> = tips
                .member_mark_change_list
                .iter()
                .map(|c| {
                    json!({ "user_id_list": c.user_id_list, "mark_type": c.mark_type,
                            "enable_mark": c.enable_mark })
                })
                .collect();
            vec![(
                "on_member_mark_changed",
                json!({ "group_id": group_id, "op_user": op, "member_mark_change_info_list": changes }),
            )]
        }
        // A community change: its `V2TIMCommunityListener` event (`actors::community`).
        pb::GroupTipsType::GroupTipsCommunity => tips
            .community
            .as_ref()
            .and_then(super::community::event_of)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

/// The JSON of a join application (`get_group_application_list` entries and events).
pub fn application_json(a: &pb::GroupApplication) -> Value {
    json!({
        "group_id": a.group_id,
        "from_user": a.from_user,
        "request_msg": a.add_msg,
        "add_time": a.add_time_ms.div_euclid(1000),
        "handle_status": match a.handle_status { 1 => "accepted", 2 => "refused", _ => "unhandled" },
        "handle_result": match a.handle_status { 1 => "agree", 2 => "refuse", _ => "" },
        "handler": a.handler,
        "handled_msg": a.handle_msg,
        "application_type": "join",
    })
}

/// The events of one `GroupNotifyPush`.
pub fn from_notify(p: &pb::GroupNotifyPush) -> Vec<GroupEvent> {
    let gid = p.group_id.as_str();
    match p.kind() {
        pb::GroupNotifyKind::GroupNotifyAttributes => vec![(
            "on_group_attribute_changed",
            json!({ "group_id": gid, "group_attribute_map": p.attributes }),
        )],
        pb::GroupNotifyKind::GroupNotifyCounters => {
            let mut keys: Vec<(&String, &i64)> = p.counters.iter().collect();
            keys.sort();
            keys.into_iter()
                .map(|(k, v)| {
                    (
                        "on_group_counter_changed",
                        json!({ "group_id": gid, "key": k, "new_value": v }),
                    )
                })
                .collect()
        }
        pb::GroupNotifyKind::GroupNotifyJoinApplication => {
            let Some(a) = &p.application else {
                return Vec::new();
            };
            vec![(
                "on_receive_join_application",
                json!({ "group_id": gid, "member": { "user_id": a.from_user },
                        "op_reason": a.add_msg, "application": application_json(a) }),
            )]
        }
        pb::GroupNotifyKind::GroupNotifyApplicationProcessed => {
            let Some(a) = &p.application else {
                return Vec::new();
            };
            vec![(
                "on_application_processed",
                json!({ "group_id": gid, "op_user": p.op_user,
                        "is_agree_join": a.handle_status == 1, "op_reason": a.handle_msg }),
            )]
        }
        pb::GroupNotifyKind::GroupNotifyRestCustomData => {
            let mut params = json!({ "group_id": gid, "custom_data": p.custom_data });
            if !p.topic_id.is_empty() {
                params["topic_id"] = json!(p.topic_id);
            }
            vec![("on_receive_rest_custom_data", params)]
        }
        pb::GroupNotifyKind::GroupNotifyUnspecified => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_tips_carry_the_community_listener_event() {
        let change = pb::CommunityPush {
            kind: pb::CommunityEvent::PermissionGroupDeleted as i32,
            group_id: "c".into(),
            op_user: "own".into(),
            permission_group_ids: vec!["pg".into()],
            ..Default::default()
        };
        let t = pb::GroupTipsElem {
            tips_type: pb::GroupTipsType::GroupTipsCommunity as i32,
            op_user: "own".into(),
            community: Some(change),
            ..Default::default()
        };
        assert_eq!(
            from_tips("c", &t),
            vec![(
                "on_delete_permission_group",
                json!({"group_id": "c", "permission_group_id_list": ["pg"]})
            )]
        );
        let empty = pb::GroupTipsElem {
            community: None,
            ..t
        };
        assert!(from_tips("c", &empty).is_empty());
    }

    fn tips(t: pb::GroupTipsType, members: &[&str]) -> pb::GroupTipsElem {
        pb::GroupTipsElem {
            tips_type: t as i32,
            op_user: "boss".into(),
            member_list: members.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn membership_tips_map_to_member_events() {
        let ev = from_tips("g", &tips(pb::GroupTipsType::GroupTipsJoin, &["a"]));
        assert_eq!(
            ev,
            vec![(
                "on_member_enter",
                json!({"group_id": "g", "member_list": [{"user_id": "a"}]})
            )]
        );
        let ev = from_tips("g", &tips(pb::GroupTipsType::GroupTipsQuit, &["a", "b"]));
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[1].1,
            json!({"group_id": "g", "member": {"user_id": "b"}})
        );
        let ev = from_tips("g", &tips(pb::GroupTipsType::GroupTipsKicked, &["x"]));
        assert_eq!(
            ev,
            vec![(
                "on_member_kicked",
                json!({"group_id": "g", "op_user": "boss", "member_list": [{"user_id": "x"}]})
            )]
        );
    }

    #[test]
    fn mute_all_info_change_also_emits_all_muted() {
        let mut t = tips(pb::GroupTipsType::GroupTipsGroupInfoChange, &[]);
        t.group_change_info
            .insert("is_all_muted".into(), "true".into());
        let ev = from_tips("g", &t);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].0, "on_group_info_changed");
        assert_eq!(
            ev[1],
            (
                "on_all_group_members_muted",
                json!({"group_id": "g", "is_mute": true})
            )
        );
    }

    #[test]
    fn counters_emit_one_event_per_key_in_key_order() {
        let mut p = pb::GroupNotifyPush {
            kind: pb::GroupNotifyKind::GroupNotifyCounters as i32,
            group_id: "g".into(),
            ..Default::default()
        };
        p.counters.insert("b".into(), 2);
        p.counters.insert("a".into(), -1);
        let ev = from_notify(&p);
        assert_eq!(
            ev,
            vec![
                (
                    "on_group_counter_changed",
                    json!({"group_id": "g", "key": "a", "new_value": -1})
                ),
                (
                    "on_group_counter_changed",
                    json!({"group_id": "g", "key": "b", "new_value": 2})
                ),
            ]
        );
    }

    #[test]
    fn rest_custom_data_names_the_topic_only_when_there_is_one() {
        let mut p = pb::GroupNotifyPush {
            kind: pb::GroupNotifyKind::GroupNotifyRestCustomData as i32,
            group_id: "g".into(),
            custom_data: "hello".into(),
            ..Default::default()
        };
        assert_eq!(
            from_notify(&p),
            vec![(
                "on_receive_rest_custom_data",
                json!({"group_id": "g", "custom_data": "hello"})
            )]
        );
        p.topic_id = "g@TOPIC#_t".into();
        assert_eq!(
            from_notify(&p),
            vec![(
                "on_receive_rest_custom_data",
                json!({"group_id": "g", "custom_data": "hello", "topic_id": "g@TOPIC#_t"})
            )]
        );
    }

    #[test]
    fn member_mark_tips_map_to_the_mark_event() {
        let mut t = tips(pb::GroupTipsType::GroupTipsMemberMarkChange, &["a", "b"]);
        t.member_mark_change_list = vec![pb::GroupMemberMarkChange {
            user_id_list: vec!["a".into(), "b".into()],
            mark_type: 1001,
            enable_mark: true,
        }];
        assert_eq!(
            from_tips("g", &t),
            vec![(
                "on_member_mark_changed",
                json!({"group_id": "g", "op_user": "boss", "member_mark_change_info_list": [
                    {"user_id_list": ["a", "b"], "mark_type": 1001, "enable_mark": true}]})
            )]
        );
    }
}
