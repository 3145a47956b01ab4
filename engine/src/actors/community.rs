//! Communities on the engine side: the JSON form of topics and permission groups (one mapping,
//! used by the `community` dispatch area and by the events) and the mapping of a community change
//! (`CommunityPush`, carried by a `group_tips` message of type `COMMUNITY` in the community's
//! history, see [`super::group_events`]) to the listener events of api.md §5
//! (`on_topic_created`, ... and the permission-group events of the seed's
//! `V2TIMCommunityListener`).
//!
//! The community state itself (topics, permission groups, who may do what) is owned by the
//! server, which enforces every permission; the engine keeps no copy of it, so there is no actor
//! here. A topic's conversation (`group_<topic id>`) is an ordinary group conversation of the
//! conversation actor.

use std::collections::BTreeMap;

use chime_proto::pb;
use serde_json::{Value, json};

/// The JSON of a topic's shared fields (the per-user conversation fields are added by the
/// dispatch area from the topic's conversation).
pub fn topic_json(t: &pb::TopicInfo) -> Value {
    json!({
        "topic_id": t.topic_id,
        "group_id": t.group_id,
        "topic_name": t.topic_name,
        "introduction": t.introduction,
        "notification": t.notification,
        "face_url": t.face_url,
        "is_all_muted": t.is_all_muted,
        "custom_string": t.custom_string,
        "default_permissions": t.default_permissions,
        "create_time": t.create_time_ms / 1000,
    })
}

/// The JSON of a permission group.
pub fn permission_group_json(g: &pb::PermissionGroupInfo) -> Value {
    json!({
        "group_id": g.group_id,
        "permission_group_id": g.permission_group_id,
        "permission_group_name": g.permission_group_name,
        "custom_data": g.custom_data,
        "group_permission": g.group_permission,
        "member_count": g.member_count,
    })
}

/// A topic → permission map as JSON (ids in order, so the output is stable).
pub fn permission_map_json<'a>(m: impl IntoIterator<Item = (&'a String, &'a u64)>) -> Value {
    let sorted: BTreeMap<&String, &u64> = m.into_iter().collect();
    json!(sorted)
}

/// The listener event of a community push: `(name, data)`.
pub fn event_of(p: &pb::CommunityPush) -> Option<(&'static str, Value)> {
    use pb::CommunityEvent as E;
    let g = &p.group_id;
    Some(match p.kind() {
        E::Unspecified => return None,
        E::TopicCreated => {
            let t = p.topic.clone().unwrap_or_default();
            (
                "on_topic_created",
                json!({"group_id": g, "topic_id": t.topic_id}),
            )
        }
        E::TopicDeleted => (
            "on_topic_deleted",
            json!({"group_id": g, "topic_id_list": p.topic_ids}),
        ),
        E::TopicChanged => {
            let t = p.topic.clone().unwrap_or_default();
            (
                "on_topic_changed",
                json!({"group_id": g, "topic_info": topic_json(&t)}),
            )
        }
        E::PermissionGroupCreated => {
            let i = p.permission_group.clone().unwrap_or_default();
            (
                "on_create_permission_group",
                json!({"group_id": g, "permission_group_info": permission_group_json(&i)}),
            )
        }
        E::PermissionGroupDeleted => (
            "on_delete_permission_group",
            json!({"group_id": g, "permission_group_id_list": p.permission_group_ids}),
        ),
        E::PermissionGroupChanged => {
            let i = p.permission_group.clone().unwrap_or_default();
            (
                "on_change_permission_group_info",
                json!({"group_id": g, "permission_group_info": permission_group_json(&i)}),
            )
        }
        E::MembersAdded | E::MembersRemoved => (
            if p.kind() == E::MembersAdded {
                "on_add_members_to_permission_group"
            } else {
                "on_remove_members_from_permission_group"
            },
            json!({
                "group_id": g,
                "permission_group_id": p.permission_group_id,
                "member_id_list": p.member_ids,
            }),
        ),
        E::TopicPermissionAdded | E::TopicPermissionModified => (
            if p.kind() == E::TopicPermissionAdded {
                "on_add_topic_permission"
            } else {
                "on_modify_topic_permission"
            },
            json!({
                "group_id": g,
                "permission_group_id": p.permission_group_id,
                "topic_permission_map": permission_map_json(&p.topic_permissions),
            }),
        ),
        E::TopicPermissionDeleted => (
            "on_delete_topic_permission",
            json!({
                "group_id": g,
                "permission_group_id": p.permission_group_id,
                "topic_id_list": p.topic_ids,
            }),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_map_to_the_seed_listener_events() {
        let p = pb::CommunityPush {
            kind: pb::CommunityEvent::TopicDeleted as i32,
            group_id: "@TGS#_c".into(),
            topic_ids: vec!["@TGS#_c@TOPIC#_1".into()],
            ..Default::default()
        };
        let (name, data) = event_of(&p).unwrap();
        assert_eq!(name, "on_topic_deleted");
        assert_eq!(
            data,
            json!({"group_id": "@TGS#_c", "topic_id_list": ["@TGS#_c@TOPIC#_1"]})
        );
        let p = pb::CommunityPush {
            kind: pb::CommunityEvent::TopicPermissionModified as i32,
            group_id: "c".into(),
            permission_group_id: "pg".into(),
            topic_permissions: [("t2".to_owned(), 8), ("t1".to_owned(), 24)].into(),
            ..Default::default()
        };
        let (name, data) = event_of(&p).unwrap();
        assert_eq!(name, "on_modify_topic_permission");
        assert_eq!(
            data["topic_permission_map"].to_string(),
            r#"{"t1":24,"t2":8}"#
        );
        assert!(event_of(&pb::CommunityPush::default()).is_none());
    }
}
