//! Signaling events: the server's `SignalingPush`es as the seed's signaling listener callbacks.
//!
//! Not an actor: the server owns every invitation (who is pending, the deadline, the timeout),
//! so the engine keeps no signaling state; it maps each push to one event, in push order, on the
//! engine's event queue.

use chime_proto::pb;
use serde_json::{Value, json};

/// The event name and data of a signaling push, `None` for a kind this engine does not know.
pub fn event_of(push: &pb::SignalingPush) -> Option<(&'static str, Value)> {
    let inv = push.invitation.clone().unwrap_or_default();
    let id = inv.invite_id.clone();
    Some(match push.kind() {
        pb::SignalKind::Invite => (
            "on_received_new_invitation",
            json!({
                "invite_id": id,
                "inviter": inv.inviter,
                "group_id": inv.group_id,
                "invitee_list": inv.invitees,
                "data": push.data,
                "timeout": inv.timeout_secs,
                "online_user_only": inv.online_user_only,
            }),
        ),
        pb::SignalKind::Accept => (
            "on_invitee_accepted",
            json!({"invite_id": id, "invitee": push.operator, "data": push.data}),
        ),
        pb::SignalKind::Reject => (
            "on_invitee_rejected",
            json!({"invite_id": id, "invitee": push.operator, "data": push.data}),
        ),
        pb::SignalKind::Cancel => (
            "on_invitation_cancelled",
            json!({"invite_id": id, "inviter": push.operator, "data": push.data}),
        ),
        pb::SignalKind::Timeout => (
            "on_invitation_timeout",
            json!({"invite_id": id, "invitee_list": push.timeout_invitees}),
        ),
        pb::SignalKind::Modify => (
            "on_invitation_modified",
            json!({"invite_id": id, "data": push.data}),
        ),
        pb::SignalKind::Unspecified => return None,
    })
}

/// The signaling info of a message's first custom element when it carries the seed's signaling
/// payload (`businessID` 1 and an `inviteID`): `{invite_id, inviter, group_id, invitee_list,
/// data, timeout, action_type, online_user_only}`.
pub fn info_of_custom_data(data: &str) -> Option<Value> {
    let v: Value = serde_json::from_str(data).ok()?;
    if v.get("businessID").and_then(Value::as_i64) != Some(1) {
        return None;
    }
    let invite_id = v.get("inviteID")?.as_str()?;
    Some(json!({
        "invite_id": invite_id,
        "inviter": v.get("inviter").cloned().unwrap_or(json!("")),
        "group_id": v.get("groupID").cloned().unwrap_or(json!("")),
        "invitee_list": v.get("inviteeList").cloned().unwrap_or(json!([])),
        "data": v.get("data").cloned().unwrap_or(json!("")),
        "timeout": v.get("timeout").cloned().unwrap_or(json!(0)),
        "action_type": v.get("actionType").cloned().unwrap_or(json!(1)),
        "online_user_only": v.get("onlineUserOnly").cloned().unwrap_or(json!(false)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_map_to_the_seed_events() {
        let inv = pb::Invitation {
            invite_id: "i1".into(),
            inviter: "alice".into(),
            invitees: vec!["bob".into(), "carol".into()],
            timeout_secs: 30,
            ..Default::default()
        };
        let push = |kind: pb::SignalKind, op: &str| pb::SignalingPush {
            kind: kind as i32,
            invitation: Some(inv.clone()),
            operator: op.into(),
            data: "d".into(),
            timeout_invitees: vec!["carol".into()],
        };
        let (name, v) = event_of(&push(pb::SignalKind::Invite, "alice")).unwrap();
        assert_eq!(name, "on_received_new_invitation");
        assert_eq!(v["invitee_list"], json!(["bob", "carol"]));
        assert_eq!(v["timeout"], 30);
        let (name, v) = event_of(&push(pb::SignalKind::Accept, "bob")).unwrap();
        assert_eq!(
            (name, v["invitee"].as_str()),
            ("on_invitee_accepted", Some("bob"))
        );
        let (name, v) = event_of(&push(pb::SignalKind::Timeout, "")).unwrap();
        assert_eq!(name, "on_invitation_timeout");
        assert_eq!(v["invitee_list"], json!(["carol"]));
        assert!(event_of(&push(pb::SignalKind::Unspecified, "")).is_none());
    }

    #[test]
    fn signaling_payload_is_recognised() {
        let v = info_of_custom_data(
            r#"{"businessID":1,"inviteID":"x","inviter":"a","inviteeList":["b"],"data":"call","timeout":10,"actionType":1,"groupID":""}"#,
        )
        .unwrap();
        assert_eq!(v["invite_id"], "x");
        assert_eq!(v["invitee_list"], json!(["b"]));
        assert!(info_of_custom_data(r#"{"businessID":2,"inviteID":"x"}"#).is_none());
        assert!(info_of_custom_data("not json").is_none());
    }
}
