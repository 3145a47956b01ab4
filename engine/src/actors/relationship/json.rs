//! The api.md JSON forms of the relationship objects (the seed's `V2TIMUserFullInfo`,
//! `V2TIMFriendInfo`, `V2TIMFriendApplication`, `V2TIMFriendGroup`, `V2TIMUserStatus`, ...) and
//! the string enums they use, in one place.

use std::collections::BTreeMap;

use chime_proto::pb;
use serde_json::{Map, Value, json};

/// Gender names (the C SDK's values 0, 1, 2).
pub const GENDERS: [&str; 3] = ["unknown", "male", "female"];
/// Allow-type names (the wire values 0, 1, 2).
pub const ALLOW_TYPES: [&str; 3] = ["need_confirm", "allow_any", "deny_any"];

fn name_of(names: &[&'static str], v: i32) -> &'static str {
    usize::try_from(v)
        .ok()
        .and_then(|i| names.get(i))
        .copied()
        .unwrap_or(names[0])
}

/// The wire value of a gender / allow-type name.
pub fn value_of(names: &[&str], s: &str) -> Option<i32> {
    names.iter().position(|n| *n == s).map(|i| i as i32)
}

/// Custom fields as a JSON object of strings.
pub fn custom_json(m: &BTreeMap<String, Vec<u8>>) -> Value {
    let mut o = Map::new();
    for (k, v) in m {
        o.insert(k.clone(), json!(String::from_utf8_lossy(v)));
    }
    Value::Object(o)
}

/// `V2TIMUserFullInfo`.
pub fn user_json(p: &pb::UserProfile) -> Value {
    json!({
        "user_id": p.user_id,
        "nick_name": p.nick_name,
        "face_url": p.face_url,
        "self_signature": p.self_signature,
        "gender": name_of(&GENDERS, p.gender),
        "birthday": p.birthday,
        "level": p.level,
        "role": p.role,
        "allow_type": name_of(&ALLOW_TYPES, p.allow_type),
        "custom_info": custom_json(&p.custom_info),
    })
}

fn profile_or_id(p: Option<&pb::UserProfile>, user: &str) -> Value {
    match p {
        Some(p) => user_json(p),
        None => user_json(&pb::UserProfile {
            user_id: user.to_owned(),
            ..Default::default()
        }),
    }
}

/// `V2TIMFriendInfo`.
pub fn friend_json(f: &pb::Friend) -> Value {
    json!({
        "user_id": f.user_id,
        "friend_remark": f.remark,
        "friend_groups": f.groups,
        "friend_custom_info": custom_json(&f.custom_info),
        "friend_add_time": f.add_time_ms.div_euclid(1000),
        "friend_add_source": f.add_source,
        "friend_add_wording": f.add_wording,
        "user_full_info": profile_or_id(f.profile.as_ref(), &f.user_id),
    })
}

/// A blacklist entry as the seed reports it (a `V2TIMFriendInfo`).
pub fn black_json(b: &pb::BlackEntry) -> Value {
    json!({
        "user_id": b.user_id,
        "friend_add_time": b.add_time_ms.div_euclid(1000),
        "user_full_info": profile_or_id(b.profile.as_ref(), &b.user_id),
    })
}

/// `V2TIMFriendApplication`.
pub fn application_json(a: &pb::FriendApplication) -> Value {
    let p = a.profile.clone().unwrap_or_default();
    json!({
        "user_id": a.user_id,
        "nick_name": p.nick_name,
        "face_url": p.face_url,
        "add_time": a.add_time_ms.div_euclid(1000),
        "add_source": a.add_source,
        "add_wording": a.add_wording,
        "type": if a.r#type == pb::ApplicationType::SendOut as i32 { "send_out" } else { "come_in" },
    })
}

/// `V2TIMFriendGroup`.
pub fn group_json(g: &pb::FriendGroup) -> Value {
    json!({
        "name": g.name,
        "friend_count": g.user_ids.len(),
        "friend_id_list": g.user_ids,
    })
}

/// `V2TIMFriendOperationResult`.
pub fn result_json(r: &pb::UserResult) -> Value {
    json!({"user_id": r.user_id, "result_code": r.code, "result_info": r.desc})
}

/// The seed's friend relation names (0..=3).
pub fn relation_name(r: i32) -> &'static str {
    match r {
        1 => "in_my_friend_list",
        2 => "in_other_friend_list",
        3 => "both_way",
        _ => "no_relation",
    }
}

/// The seed's follow type names (0..=3).
pub fn follow_type_name(t: i32) -> &'static str {
    match t {
        1 => "in_my_following_list",
        2 => "in_my_followers_list",
        3 => "in_both_following_list",
        _ => "none",
    }
}

/// Platform names of api.md §2.
pub fn platform_name(p: i32) -> &'static str {
    match pb::Platform::try_from(p).unwrap_or(pb::Platform::Unspecified) {
        pb::Platform::Windows => "windows",
        pb::Platform::Mac => "mac",
        pb::Platform::Linux => "linux",
        pb::Platform::Android => "android",
        pb::Platform::Ios => "ios",
        pb::Platform::Web => "web",
        pb::Platform::Unity => "unity",
        pb::Platform::Unreal => "unreal",
        pb::Platform::Unspecified => "unknown",
    }
}

/// `V2TIMUserStatus`.
pub fn status_json(s: &pb::UserStatus) -> Value {
    let t = match s.status_type {
        1 => "online",
        2 => "offline",
        3 => "unlogined",
        _ => "unknown",
    };
    let devices: Vec<&str> = s.online_devices.iter().map(|p| platform_name(*p)).collect();
    json!({
        "user_id": s.user_id,
        "status_type": t,
        "custom_status": s.custom_status,
        "online_devices": devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_and_unknown_values_fall_back() {
        assert_eq!(value_of(&ALLOW_TYPES, "deny_any"), Some(2));
        assert_eq!(value_of(&GENDERS, "female"), Some(2));
        assert_eq!(value_of(&GENDERS, "other"), None);
        assert_eq!(name_of(&ALLOW_TYPES, 7), "need_confirm");
        let f = pb::Friend {
            user_id: "bob".into(),
            remark: "B".into(),
            add_time_ms: 5_500,
            ..Default::default()
        };
        let j = friend_json(&f);
        assert_eq!(j["friend_add_time"], 5);
        assert_eq!(j["user_full_info"]["user_id"], "bob");
        assert_eq!(j["user_full_info"]["allow_type"], "need_confirm");
    }
}
