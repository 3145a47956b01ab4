//! Group management end to end (issue 8): invitations, kicks with re-join bans, roles, owner
//! transfer, profile and member profile, mutes (member and whole group, 10017), join
//! applications, attributes and counters — each with its permission errors, the `group_tips`
//! messages it leaves in the group's history and the listener events every member sees, and
//! members who were offline catching up by sync.

use std::time::Duration;

use chime_tests::{TestClient, TestServer, eventually, is_group_tips, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(800);

async fn user(server: &TestServer, id: &str) -> TestClient {
    let c = TestClient::new(server).await;
    c.login(id).await;
    c
}

async fn create(owner: &TestClient, kind: &str, id: &str, extra: Value) {
    let mut p = json!({ "group_type": kind, "group_id": id, "group_name": id });
    if let (Some(o), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    let r = owner.ok("create_group", p).await;
    assert_eq!(r["group_id"], json!(id));
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|m| m["user_id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The group tips in `group_id`'s cloud history, oldest first, as (type, op_user, members).
async fn tips_history(c: &TestClient, group_id: &str) -> Vec<(i64, String, Vec<String>)> {
    let h = c
        .ok(
            "get_group_history_message_list",
            json!({ "group_id": group_id, "count": 50 }),
        )
        .await;
    let mut out: Vec<(i64, String, Vec<String>)> = h["message_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|m| is_group_tips(m))
        .map(|m| {
            let e = &m["elem_list"][0];
            let members = e["member_list"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .map(|u| u.as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            (
                e["type"].as_i64().unwrap_or(-1),
                e["op_user"].as_str().unwrap_or_default().to_owned(),
                members,
            )
        })
        .collect();
    out.reverse();
    out
}

async fn role_of(c: &TestClient, group_id: &str) -> String {
    let r = c
        .ok("get_groups_info", json!({ "group_ids": [group_id] }))
        .await;
    r["group_info_result_list"][0]["group_info"]["role"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

// Tips types on the wire (GroupTipsType).
const JOIN: i64 = 1;
const INVITE: i64 = 2;
const QUIT: i64 = 3;
const KICKED: i64 = 4;

#[tokio::test]
async fn work_group_invite_kick_and_quit_tips_reach_every_member() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let bob = user(&server, "bob").await;
    let cat = user(&server, "cat").await;
    create(&own, "Work", "w1", json!({ "member_list": ["bob"] })).await;

    // A Work group is joined by invitation only; any member may invite.
    assert_eq!(
        cat.err_code("join_group", json!({ "group_id": "w1", "message": "" }))
            .await,
        10007
    );
    let r = bob
        .ok(
            "invite_user_to_group",
            json!({ "group_id": "w1", "user_list": ["cat", "own"] }),
        )
        .await;
    assert_eq!(
        r["result_list"],
        json!([{ "user_id": "cat", "result": 0 }, { "user_id": "own", "result": 10013 }])
    );
    for c in [&own, &bob, &cat] {
        let ev = c.expect_event("on_member_invited", WAIT).await;
        assert_eq!(
            ev,
            json!({ "group_id": "w1", "op_user": "bob", "member_list": [{ "user_id": "cat" }] })
        );
    }
    assert_eq!(
        bob.err_code(
            "invite_user_to_group",
            json!({ "group_id": "w1", "user_list": [] })
        )
        .await,
        8510
    );

    // Only the owner kicks in a Work group.
    assert_eq!(
        bob.err_code(
            "kick_group_member",
            json!({ "group_id": "w1", "member_list": ["cat"] })
        )
        .await,
        10007
    );
    // Only the owner dismisses.
    assert_eq!(
        bob.err_code("dismiss_group", json!({ "group_id": "w1" }))
            .await,
        10007
    );
    let r = own
        .ok(
            "kick_group_member",
            json!({ "group_id": "w1", "member_list": ["cat"], "reason": "bye" }),
        )
        .await;
    assert_eq!(r["result_list"], json!([{ "user_id": "cat", "result": 0 }]));
    let kicked = cat.expect_event("on_member_kicked", WAIT).await;
    assert_eq!(kicked["group_id"], json!("w1"));
    assert_eq!(kicked["op_user"], json!("own"));
    for c in [&own, &bob] {
        let ev = c.expect_event("on_member_kicked", WAIT).await;
        assert_eq!(
            ev,
            json!({ "group_id": "w1", "op_user": "own", "member_list": [{ "user_id": "cat" }] })
        );
    }
    let joined = cat.ok("get_joined_group_list", json!({})).await;
    assert_eq!(joined["group_list"], json!([]));
    // A kicked user can no longer send.
    assert_eq!(
        cat.err_code(
            "send_group_text_message",
            json!({ "group_id": "w1", "text": "hi" })
        )
        .await,
        10007
    );

    // The owner cannot quit; a member can, and everyone left sees it.
    assert_eq!(
        own.err_code("quit_group", json!({ "group_id": "w1" }))
            .await,
        10009
    );
    bob.ok("quit_group", json!({ "group_id": "w1" })).await;
    let left = own.expect_event("on_member_leave", WAIT).await;
    assert_eq!(
        left,
        json!({ "group_id": "w1", "member": { "user_id": "bob" } })
    );

    // Every change is a tips message in the history, in order.
    assert_eq!(
        tips_history(&own, "w1").await,
        vec![
            (INVITE, "bob".to_owned(), vec!["cat".to_owned()]),
            (KICKED, "own".to_owned(), vec!["cat".to_owned()]),
            (QUIT, "bob".to_owned(), vec!["bob".to_owned()]),
        ]
    );
    let info = own
        .ok("get_groups_info", json!({ "group_ids": ["w1"] }))
        .await;
    assert_eq!(
        info["group_info_result_list"][0]["group_info"]["member_count"],
        json!(1)
    );
}

#[tokio::test]
async fn a_kicked_user_is_banned_from_rejoining_for_the_duration() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let ann = user(&server, "ann").await;
    let ben = user(&server, "ben").await;
    create(&own, "Public", "p1", json!({ "add_opt": "any" })).await;
    for c in [&ann, &ben] {
        c.ok("join_group", json!({ "group_id": "p1", "message": "" }))
            .await;
    }
    own.ok(
        "kick_group_member",
        json!({ "group_id": "p1", "member_list": ["ann"], "duration": 3600 }),
    )
    .await;
    own.ok(
        "kick_group_member",
        json!({ "group_id": "p1", "member_list": ["ben"], "duration": 0 }),
    )
    .await;
    assert_eq!(
        ann.err_code("join_group", json!({ "group_id": "p1", "message": "" }))
            .await,
        10007
    );
    ben.ok("join_group", json!({ "group_id": "p1", "message": "" }))
        .await;
    let members = own
        .ok(
            "get_group_member_list",
            json!({ "group_id": "p1", "filter": "all", "next_seq": 0, "count": 50 }),
        )
        .await;
    assert_eq!(ids(&members["member_info_list"]), ["own", "ben"]);
    assert_eq!(members["is_finished"], json!(true));
}

#[tokio::test]
async fn roles_transfer_and_profile_changes_with_their_events() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let adm = user(&server, "adm").await;
    let mem = user(&server, "mem").await;
    create(
        &own,
        "Public",
        "p2",
        json!({ "add_opt": "any", "introduction": "intro" }),
    )
    .await;
    for c in [&adm, &mem] {
        c.ok("join_group", json!({ "group_id": "p2", "message": "" }))
            .await;
    }
    // Only the owner grants administrator.
    assert_eq!(
        mem.err_code(
            "set_group_member_role",
            json!({ "group_id": "p2", "user_id": "adm", "role": "admin" })
        )
        .await,
        10007
    );
    own.ok(
        "set_group_member_role",
        json!({ "group_id": "p2", "user_id": "adm", "role": "admin" }),
    )
    .await;
    for c in [&own, &adm, &mem] {
        let ev = c.expect_event("on_grant_administrator", WAIT).await;
        assert_eq!(
            ev,
            json!({ "group_id": "p2", "op_user": "own", "member_list": [{ "user_id": "adm" }] })
        );
    }
    assert_eq!(role_of(&adm, "p2").await, "admin");
    let admins = own
        .ok(
            "get_group_member_list",
            json!({ "group_id": "p2", "filter": "admin", "next_seq": 0, "count": 10 }),
        )
        .await;
    assert_eq!(ids(&admins["member_info_list"]), ["adm"]);

    // An administrator edits the profile; an ordinary member may not (not a Work group).
    assert_eq!(
        mem.err_code(
            "set_group_info",
            json!({ "group_id": "p2", "group_name": "x" })
        )
        .await,
        10007
    );
    assert_eq!(
        adm.err_code(
            "set_group_info",
            json!({ "group_id": "p2", "group_name": "n".repeat(31) })
        )
        .await,
        8502
    );
    adm.ok(
        "set_group_info",
        json!({ "group_id": "p2", "group_name": "Renamed", "notification": "read me" }),
    )
    .await;
    for c in [&own, &adm, &mem] {
        let ev = c.expect_event("on_group_info_changed", WAIT).await;
        assert_eq!(ev["group_id"], json!("p2"));
        assert_eq!(ev["op_user"], json!("adm"));
        assert_eq!(
            ev["change_info_list"],
            json!([{ "key": "name", "value": "Renamed" },
                   { "key": "notification", "value": "read me" }])
        );
    }
    let info = mem
        .ok("get_groups_info", json!({ "group_ids": ["p2"] }))
        .await;
    let g = &info["group_info_result_list"][0]["group_info"];
    assert_eq!(g["group_name"], json!("Renamed"));
    assert_eq!(g["notification"], json!("read me"));
    assert_eq!(g["introduction"], json!("intro"));

    // Member profile: one's own name card; an admin may edit a member's, not the owner's.
    mem.ok(
        "set_group_member_info",
        json!({ "group_id": "p2", "name_card": "Mem", "custom_info": { "lvl": "3" } }),
    )
    .await;
    assert_eq!(
        adm.err_code(
            "set_group_member_info",
            json!({ "group_id": "p2", "user_id": "own", "name_card": "x" })
        )
        .await,
        10007
    );
    assert_eq!(
        mem.err_code(
            "set_group_member_info",
            json!({ "group_id": "p2", "name_card": "c".repeat(51) })
        )
        .await,
        8506
    );
    let infos = own
        .ok(
            "get_group_members_info",
            json!({ "group_id": "p2", "member_list": ["mem", "nobody"] }),
        )
        .await;
    let m = &infos["member_info_list"][0];
    assert_eq!(infos["member_info_list"].as_array().map(Vec::len), Some(1));
    assert_eq!(m["user_id"], json!("mem"));
    assert_eq!(m["name_card"], json!("Mem"));
    assert_eq!(m["custom_info"], json!({ "lvl": "3" }));
    assert_eq!(m["role"], json!("member"));

    // Transfer: the new owner is the owner, the old one an ordinary member who can't dismiss.
    assert_eq!(
        adm.err_code(
            "transfer_group_owner",
            json!({ "group_id": "p2", "user_id": "adm" })
        )
        .await,
        10007
    );
    own.ok(
        "transfer_group_owner",
        json!({ "group_id": "p2", "user_id": "mem" }),
    )
    .await;
    let ev = adm.expect_event("on_group_info_changed", WAIT).await;
    assert_eq!(
        ev["change_info_list"],
        json!([{ "key": "owner", "value": "mem" }])
    );
    assert_eq!(role_of(&mem, "p2").await, "owner");
    assert_eq!(role_of(&own, "p2").await, "member");
    assert_eq!(
        own.err_code("dismiss_group", json!({ "group_id": "p2" }))
            .await,
        10007
    );
    // Revoke administrator, then dismiss as the new owner: everyone is told.
    mem.ok(
        "set_group_member_role",
        json!({ "group_id": "p2", "user_id": "adm", "role": "member" }),
    )
    .await;
    let ev = adm.expect_event("on_revoke_administrator", WAIT).await;
    assert_eq!(ev["member_list"], json!([{ "user_id": "adm" }]));
    mem.ok("dismiss_group", json!({ "group_id": "p2" })).await;
    for c in [&own, &adm] {
        let ev = c.expect_event("on_group_dismissed", WAIT).await;
        assert_eq!(ev["group_id"], json!("p2"));
    }
    assert_eq!(
        own.err_code("get_group_attributes", json!({ "group_id": "p2" }))
            .await,
        10010
    );
}

#[tokio::test]
async fn muted_members_and_a_muted_group_cannot_send() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let adm = user(&server, "adm").await;
    let mem = user(&server, "mem").await;
    create(&own, "Public", "p3", json!({ "add_opt": "any" })).await;
    for c in [&adm, &mem] {
        c.ok("join_group", json!({ "group_id": "p3", "message": "" }))
            .await;
    }
    own.ok(
        "set_group_member_role",
        json!({ "group_id": "p3", "user_id": "adm", "role": "admin" }),
    )
    .await;
    // An ordinary member cannot mute; an admin cannot mute the owner.
    assert_eq!(
        mem.err_code(
            "mute_group_member",
            json!({ "group_id": "p3", "user_id": "adm", "seconds": 60 })
        )
        .await,
        10007
    );
    assert_eq!(
        adm.err_code(
            "mute_group_member",
            json!({ "group_id": "p3", "user_id": "own", "seconds": 60 })
        )
        .await,
        10007
    );
    adm.ok(
        "mute_group_member",
        json!({ "group_id": "p3", "user_id": "mem", "seconds": 600 }),
    )
    .await;
    for c in [&own, &mem] {
        let ev = c.expect_event("on_member_info_changed", WAIT).await;
        assert_eq!(
            ev,
            json!({ "group_id": "p3", "op_user": "adm",
                    "member_change_info_list": [{ "user_id": "mem", "mute_time": 600 }] })
        );
    }
    assert_eq!(
        mem.err_code(
            "send_group_text_message",
            json!({ "group_id": "p3", "text": "let me speak" })
        )
        .await,
        10017
    );
    let info = own
        .ok(
            "get_group_members_info",
            json!({ "group_id": "p3", "member_list": ["mem"] }),
        )
        .await;
    assert_eq!(info["member_info_list"][0]["is_muted"], json!(true));
    // Unmute (0 seconds): sending works again.
    own.ok(
        "mute_group_member",
        json!({ "group_id": "p3", "user_id": "mem", "seconds": 0 }),
    )
    .await;
    let sent = mem
        .ok(
            "send_group_text_message",
            json!({ "group_id": "p3", "text": "thanks" }),
        )
        .await;
    assert_eq!(sent["status"], json!("send_succ"));
    let got = own.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "thanks");

    // Mute all: members are refused, the owner and administrators still speak.
    assert_eq!(
        mem.err_code(
            "set_group_info",
            json!({ "group_id": "p3", "is_all_muted": true })
        )
        .await,
        10007
    );
    own.ok(
        "set_group_info",
        json!({ "group_id": "p3", "is_all_muted": true }),
    )
    .await;
    let ev = mem.expect_event("on_all_group_members_muted", WAIT).await;
    assert_eq!(ev, json!({ "group_id": "p3", "is_mute": true }));
    assert_eq!(
        mem.err_code(
            "send_group_text_message",
            json!({ "group_id": "p3", "text": "x" })
        )
        .await,
        10017
    );
    for c in [&own, &adm] {
        c.ok(
            "send_group_text_message",
            json!({ "group_id": "p3", "text": "staff" }),
        )
        .await;
    }
    let info = mem
        .ok("get_groups_info", json!({ "group_ids": ["p3"] }))
        .await;
    assert_eq!(
        info["group_info_result_list"][0]["group_info"]["is_all_muted"],
        json!(true)
    );
    // A Work group has no mutes.
    create(&own, "Work", "w3", json!({ "member_list": ["mem"] })).await;
    assert_eq!(
        own.err_code(
            "mute_group_member",
            json!({ "group_id": "w3", "user_id": "mem", "seconds": 60 })
        )
        .await,
        10007
    );
}

#[tokio::test]
async fn join_applications_are_listed_accepted_and_refused() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let ann = user(&server, "ann").await;
    let ben = user(&server, "ben").await;
    create(&own, "Public", "ap", json!({ "add_opt": "auth" })).await;

    ann.ok(
        "join_group",
        json!({ "group_id": "ap", "message": "let me in" }),
    )
    .await;
    let ev = own.expect_event("on_receive_join_application", WAIT).await;
    assert_eq!(ev["group_id"], json!("ap"));
    assert_eq!(ev["member"], json!({ "user_id": "ann" }));
    assert_eq!(ev["op_reason"], json!("let me in"));
    // Pending: not a member yet.
    assert_eq!(
        ann.err_code(
            "send_group_text_message",
            json!({ "group_id": "ap", "text": "x" })
        )
        .await,
        10007
    );
    ben.ok(
        "join_group",
        json!({ "group_id": "ap", "message": "me too" }),
    )
    .await;
    own.expect_event("on_receive_join_application", WAIT).await;

    let list = own.ok("get_group_application_list", json!({})).await;
    assert_eq!(list["unread_count"], json!(2));
    let apps = list["application_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut froms: Vec<&str> = apps
        .iter()
        .map(|a| a["from_user"].as_str().unwrap_or_default())
        .collect();
    froms.sort_unstable();
    assert_eq!(froms, ["ann", "ben"]);
    let ann_app = apps
        .iter()
        .find(|a| a["from_user"] == "ann")
        .cloned()
        .unwrap_or_default();
    assert_eq!(ann_app["request_msg"], json!("let me in"));
    assert_eq!(ann_app["handle_status"], json!("unhandled"));

    // Only the owner or an admin handles applications.
    assert_eq!(
        ben.err_code(
            "accept_group_application",
            json!({ "group_id": "ap", "from_user": "ann" })
        )
        .await,
        10007
    );
    own.ok(
        "accept_group_application",
        json!({ "application": ann_app, "reason": "welcome" }),
    )
    .await;
    let ev = ann.expect_event("on_application_processed", WAIT).await;
    assert_eq!(
        ev,
        json!({ "group_id": "ap", "op_user": "own", "is_agree_join": true,
                "op_reason": "welcome" })
    );
    let entered = own.expect_event("on_member_enter", WAIT).await;
    assert_eq!(entered["member_list"], json!([{ "user_id": "ann" }]));
    let joined = ann.ok("get_joined_group_list", json!({})).await;
    assert_eq!(joined["group_list"][0]["group_id"], json!("ap"));

    own.ok(
        "refuse_group_application",
        json!({ "group_id": "ap", "from_user": "ben", "reason": "full" }),
    )
    .await;
    let ev = ben.expect_event("on_application_processed", WAIT).await;
    assert_eq!(ev["is_agree_join"], json!(false));
    assert_eq!(ev["op_reason"], json!("full"));
    // Handled once only.
    assert_eq!(
        own.err_code(
            "accept_group_application",
            json!({ "group_id": "ap", "from_user": "ben" })
        )
        .await,
        10024
    );
    let list = own.ok("get_group_application_list", json!({})).await;
    assert_eq!(list["unread_count"], json!(0));
    let joined = ben.ok("get_joined_group_list", json!({})).await;
    assert_eq!(joined["group_list"], json!([]));

    // add_opt forbid: no joining at all.
    own.ok(
        "set_group_info",
        json!({ "group_id": "ap", "add_opt": "forbid" }),
    )
    .await;
    assert_eq!(
        ben.err_code("join_group", json!({ "group_id": "ap", "message": "" }))
            .await,
        10007
    );
    assert_eq!(
        tips_history(&ann, "ap").await.first().map(|t| t.0),
        Some(JOIN)
    );
}

/// `(unread_count, [(from_user, handle_status)])` of `c`'s application list, `None` while the
/// call fails (a reconnect in progress).
async fn applications_of(c: &TestClient) -> Option<(u64, Vec<(String, String)>)> {
    let r = c.call("get_group_application_list", json!({})).await.ok()?;
    let list = r["application_list"]
        .as_array()?
        .iter()
        .map(|a| {
            (
                a["from_user"].as_str().unwrap_or_default().to_owned(),
                a["handle_status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    Some((r["unread_count"].as_u64()?, list))
}

async fn unread_applications(c: &TestClient) -> u64 {
    applications_of(c).await.map_or(u64::MAX, |a| a.0)
}

async fn apply(c: &TestClient, group_id: &str, staff: &[&TestClient]) {
    c.ok(
        "join_group",
        json!({ "group_id": group_id, "message": "please" }),
    )
    .await;
    for s in staff {
        s.expect_event("on_receive_join_application", WAIT).await;
    }
}

#[tokio::test]
async fn application_read_state_is_per_user_shared_by_devices_and_durable() {
    let mut server = TestServer::start().await;
    let own = user(&server, "own").await;
    // Two devices of the administrator adm (a desktop and a web session coexist).
    let pc = TestClient::with_config(&server, json!({ "platform": "windows" })).await;
    pc.login("adm").await;
    let web = TestClient::with_config(&server, json!({ "platform": "web" })).await;
    web.login("adm").await;
    let ann = user(&server, "ann").await;
    let ben = user(&server, "ben").await;
    let cat = user(&server, "cat").await;
    let dan = user(&server, "dan").await;
    create(
        &own,
        "Public",
        "ra",
        json!({ "add_opt": "auth", "member_list": ["adm"] }),
    )
    .await;
    own.ok(
        "set_group_member_role",
        json!({ "group_id": "ra", "user_id": "adm", "role": "admin" }),
    )
    .await;
    let staff = [&own, &pc, &web];
    assert_eq!(unread_applications(&pc).await, 0);

    apply(&ann, "ra", &staff).await;
    apply(&ben, "ra", &staff).await;
    for c in staff {
        assert_eq!(unread_applications(c).await, 2);
    }
    // The applicant handles none: nothing listed, nothing unread (and reading is harmless).
    assert_eq!(applications_of(&ann).await, Some((0, vec![])));
    assert_eq!(
        ann.ok("set_group_application_read", json!({})).await,
        json!({})
    );

    // adm reads on the PC: both of adm's devices see 0; the owner's count is the owner's own.
    assert_eq!(
        pc.ok("set_group_application_read", json!({})).await,
        json!({})
    );
    assert_eq!(unread_applications(&pc).await, 0);
    assert_eq!(unread_applications(&web).await, 0);
    assert_eq!(unread_applications(&own).await, 2);

    // A new application raises the count again.
    apply(&cat, "ra", &staff).await;
    assert_eq!(unread_applications(&web).await, 1);
    assert_eq!(unread_applications(&pc).await, 1);
    assert_eq!(unread_applications(&own).await, 3);

    // The owner refuses it: no longer unread for anyone.
    own.ok(
        "refuse_group_application",
        json!({ "group_id": "ra", "from_user": "cat", "reason": "no" }),
    )
    .await;
    assert_eq!(unread_applications(&web).await, 0);
    assert_eq!(unread_applications(&own).await, 2);
    // The owner accepts ann's: the owner's count drops; adm had read it already.
    own.ok(
        "accept_group_application",
        json!({ "group_id": "ra", "from_user": "ann" }),
    )
    .await;
    assert_eq!(unread_applications(&own).await, 1);
    assert_eq!(unread_applications(&pc).await, 0);

    apply(&dan, "ra", &staff).await;
    assert_eq!(unread_applications(&web).await, 1);
    assert_eq!(unread_applications(&own).await, 2);

    // After a restart of the server the markers hold.
    server.restart().await;
    let want_adm = vec![
        ("dan".to_owned(), "unhandled".to_owned()),
        ("cat".to_owned(), "refused".to_owned()),
        ("ben".to_owned(), "unhandled".to_owned()),
        ("ann".to_owned(), "accepted".to_owned()),
    ];
    eventually(
        "adm's web session reads the list after the restart",
        || async { applications_of(&web).await.is_some() },
    )
    .await;
    assert_eq!(applications_of(&web).await, Some((1, want_adm.clone())));
    eventually("adm's PC reads the list after the restart", || async {
        applications_of(&pc).await.is_some()
    })
    .await;
    assert_eq!(applications_of(&pc).await, Some((1, want_adm.clone())));
    eventually("the owner reads the list after the restart", || async {
        applications_of(&own).await.is_some()
    })
    .await;
    assert_eq!(applications_of(&own).await, Some((2, want_adm)));
    web.ok("set_group_application_read", json!({})).await;
    assert_eq!(unread_applications(&pc).await, 0);
    assert_eq!(unread_applications(&own).await, 2);
}

#[tokio::test]
async fn offline_members_catch_up_membership_and_tips_by_sync() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let dir = tempfile::tempdir().unwrap();
    {
        let off = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
        off.login("off").await;
        create(&own, "Public", "keep", json!({ "add_opt": "any" })).await;
        off.ok("join_group", json!({ "group_id": "keep", "message": "" }))
            .await;
        create(&own, "Public", "gone", json!({ "add_opt": "any" })).await;
        off.ok("join_group", json!({ "group_id": "gone", "message": "" }))
            .await;
        off.shutdown().await;
    }
    // While `off` is offline: invited to a Work group, kicked from `gone`, made admin of `keep`.
    create(&own, "Work", "new", json!({})).await;
    own.ok(
        "invite_user_to_group",
        json!({ "group_id": "new", "user_list": ["off"] }),
    )
    .await;
    own.ok(
        "kick_group_member",
        json!({ "group_id": "gone", "member_list": ["off"] }),
    )
    .await;
    own.ok(
        "set_group_member_role",
        json!({ "group_id": "keep", "user_id": "off", "role": "admin" }),
    )
    .await;
    own.ok(
        "send_group_text_message",
        json!({ "group_id": "new", "text": "welcome aboard" }),
    )
    .await;

    let off = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
    off.login("off").await;
    off.expect_event("on_sync_server_finish", WAIT).await;
    let got = off.expect_messages(1, WAIT).await;
    assert_eq!(text_of(&got[0]), "welcome aboard");
    let convs = off
        .ok(
            "get_conversation_list",
            json!({ "next_seq": 0, "count": 20 }),
        )
        .await;
    let mut conv_ids: Vec<String> = convs["conversation_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| c["conversation_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    conv_ids.sort();
    assert!(
        conv_ids.contains(&"group_new".to_owned()),
        "the invited group is a conversation: {conv_ids:?}"
    );
    let joined = off.ok("get_joined_group_list", json!({})).await;
    let mut groups: Vec<(String, String)> = joined["group_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|g| {
            (
                g["group_id"].as_str().unwrap_or_default().to_owned(),
                g["role"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        [
            ("keep".to_owned(), "admin".to_owned()),
            ("new".to_owned(), "member".to_owned())
        ]
    );
    // The invitation that happened while offline is in the new group's history.
    assert_eq!(
        tips_history(&off, "new").await,
        vec![(INVITE, "own".to_owned(), vec!["off".to_owned()])]
    );
    // Tips never count as unread: only the one text message does.
    let c = off
        .ok(
            "get_conversation",
            json!({ "conversation_id": "group_new" }),
        )
        .await;
    assert_eq!(c["unread_count"], json!(1));
    // The listener events of the caught-up tips fire once each (the kick from `gone` is not in
    // any history `off` still reads).
    eventually("off's events of the caught-up tips", || async {
        off.event_count("on_member_invited") >= 1 && off.event_count("on_grant_administrator") >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let invited =
        json!({ "group_id": "new", "member_list": [{ "user_id": "off" }], "op_user": "own" });
    assert_eq!(off.events("on_member_invited"), vec![invited]);
    let admin =
        json!({ "group_id": "keep", "member_list": [{ "user_id": "off" }], "op_user": "own" });
    assert_eq!(off.events("on_grant_administrator"), vec![admin]);
}

async fn like_25_times(c: &TestClient) {
    for _ in 0..25 {
        c.ok(
            "increase_group_counter",
            json!({ "group_id": "kv", "key": "likes", "value": 1 }),
        )
        .await;
    }
}

#[tokio::test]
async fn attributes_and_counters_are_shared_and_atomic() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let mut members = Vec::new();
    for i in 0..3 {
        members.push(user(&server, &format!("m{i}")).await);
    }
    create(&own, "Meeting", "kv", json!({})).await;
    for m in &members {
        m.ok("join_group", json!({ "group_id": "kv", "message": "" }))
            .await;
    }
    let outsider = user(&server, "outsider").await;

    // Attributes: init / set / delete / get, every member told the full map.
    own.ok(
        "init_group_attributes",
        json!({ "group_id": "kv", "attributes": { "a": "1", "b": "2" } }),
    )
    .await;
    let ev = members[0]
        .expect_event("on_group_attribute_changed", WAIT)
        .await;
    assert_eq!(
        ev,
        json!({ "group_id": "kv", "group_attribute_map": { "a": "1", "b": "2" } })
    );
    members[1]
        .ok(
            "set_group_attributes",
            json!({ "group_id": "kv", "attributes": { "b": "20", "c": "3" } }),
        )
        .await;
    members[2]
        .ok(
            "delete_group_attributes",
            json!({ "group_id": "kv", "keys": ["a"] }),
        )
        .await;
    let got = own
        .ok("get_group_attributes", json!({ "group_id": "kv" }))
        .await;
    assert_eq!(got["group_attribute_map"], json!({ "b": "20", "c": "3" }));
    let got = own
        .ok(
            "get_group_attributes",
            json!({ "group_id": "kv", "keys": ["c"] }),
        )
        .await;
    assert_eq!(got["group_attribute_map"], json!({ "c": "3" }));
    let too_many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert_eq!(
        own.err_code(
            "set_group_attributes",
            json!({ "group_id": "kv", "attributes": too_many })
        )
        .await,
        10004
    );
    assert_eq!(
        outsider
            .err_code("get_group_attributes", json!({ "group_id": "kv" }))
            .await,
        10007
    );

    // Counters: 4 engines × 25 concurrent increments lose nothing.
    tokio::join!(
        like_25_times(&members[0]),
        like_25_times(&members[1]),
        like_25_times(&members[2]),
        like_25_times(&own)
    );
    let got = members[0]
        .ok(
            "get_group_counters",
            json!({ "group_id": "kv", "keys": ["likes"] }),
        )
        .await;
    assert_eq!(got["counters"], json!({ "likes": 100 }));
    // Every member saw each increment, the last with the final value.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = members[2].events("on_group_counter_changed");
        if seen.len() >= 100 || tokio::time::Instant::now() > deadline {
            assert_eq!(seen.len(), 100);
            let mut values: Vec<i64> = seen
                .iter()
                .map(|e| e["new_value"].as_i64().unwrap_or(0))
                .collect();
            values.sort_unstable();
            assert_eq!(values, (1..=100).collect::<Vec<i64>>());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = own
        .ok(
            "decrease_group_counter",
            json!({ "group_id": "kv", "key": "likes", "value": 30 }),
        )
        .await;
    assert_eq!(r["counters"], json!({ "likes": 70 }));
    let r = own
        .ok(
            "set_group_counters",
            json!({ "group_id": "kv", "counters": { "likes": 5, "views": 9 } }),
        )
        .await;
    assert_eq!(r["counters"], json!({ "likes": 5, "views": 9 }));
    let got = own
        .ok("get_group_counters", json!({ "group_id": "kv" }))
        .await;
    assert_eq!(got["counters"], json!({ "likes": 5, "views": 9 }));
    assert_eq!(
        outsider
            .err_code(
                "increase_group_counter",
                json!({ "group_id": "kv", "key": "likes", "value": 1 })
            )
            .await,
        10007
    );
    assert_eq!(
        outsider.next_event("on_group_counter_changed", QUIET).await,
        None
    );
}

#[tokio::test]
async fn search_groups_and_members_and_community_list() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let zed = user(&server, "zed").await;
    create(
        &own,
        "Public",
        "alpha",
        json!({ "group_name": "Chess Club", "add_opt": "any" }),
    )
    .await;
    create(
        &own,
        "Community",
        "beta",
        json!({ "group_name": "Go", "is_support_topic": true }),
    )
    .await;
    zed.ok("join_group", json!({ "group_id": "alpha", "message": "" }))
        .await;
    zed.ok(
        "set_group_member_info",
        json!({ "group_id": "alpha", "name_card": "Zorro" }),
    )
    .await;
    let r = own
        .ok("search_groups", json!({ "keyword_list": ["chess"] }))
        .await;
    assert_eq!(r["group_list"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["group_list"][0]["group_id"], json!("alpha"));
    let r = own
        .ok("search_group_members", json!({ "keyword_list": ["zor"] }))
        .await;
    assert_eq!(
        r["group_member_search_result_list"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        r["group_member_search_result_list"][0]["group_id"],
        json!("alpha")
    );
    assert_eq!(
        ids(&r["group_member_search_result_list"][0]["member_info_list"]),
        ["zed"]
    );
    let r = own.ok("get_joined_community_list", json!({})).await;
    assert_eq!(r["group_list"].as_array().map(Vec::len), Some(1));
    assert_eq!(r["group_list"][0]["group_id"], json!("beta"));
    assert_eq!(r["group_list"][0]["is_support_topic"], json!(true));
    // Topics are for communities only.
    assert_eq!(
        own.err_code(
            "create_group",
            json!({ "group_type": "Public", "group_name": "x", "is_support_topic": true })
        )
        .await,
        10004
    );
    assert_eq!(
        own.err_code("search_groups", json!({ "keyword_list": [] }))
            .await,
        6017
    );
}

/// The marks of `users` in `group_id`, as `get_group_members_info` shows them to `c`.
async fn marks_of(c: &TestClient, group_id: &str, users: &[&str]) -> Vec<(String, Value)> {
    let r = c
        .ok(
            "get_group_members_info",
            json!({ "group_id": group_id, "member_list": users }),
        )
        .await;
    let mut out: Vec<(String, Value)> = r["member_info_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap_or_default().to_owned(),
                m["member_mark_list"].clone(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn avchatroom_owner_marks_members_and_everyone_sees_the_change() {
    let server = TestServer::start().await;
    let host = user(&server, "host").await;
    let ann = user(&server, "ann").await;
    let bob = user(&server, "bob").await;
    create(&host, "AVChatRoom", "live", json!({})).await;
    for c in [&ann, &bob] {
        c.ok("join_group", json!({ "group_id": "live", "message": "" }))
            .await;
    }

    let mark = |users: Value, t: u64, on: bool| json!({ "group_id": "live", "member_list": users, "mark_type": t, "enable_mark": on });
    host.ok(
        "mark_group_member_list",
        mark(json!(["ann", "bob"]), 1001, true),
    )
    .await;
    for c in [&ann, &bob] {
        let ev = c.expect_event("on_member_mark_changed", WAIT).await;
        assert_eq!(
            ev,
            json!({ "group_id": "live", "op_user": "host", "member_mark_change_info_list": [
                { "user_id_list": ["ann", "bob"], "mark_type": 1001, "enable_mark": true }] })
        );
    }
    host.ok("mark_group_member_list", mark(json!(["ann"]), 1000, true))
        .await;
    let ev = bob.expect_event("on_member_mark_changed", WAIT).await;
    assert_eq!(
        ev["member_mark_change_info_list"][0]["mark_type"],
        json!(1000)
    );
    assert_eq!(
        marks_of(&bob, "live", &["ann", "bob", "host"]).await,
        vec![
            ("ann".to_owned(), json!([1000, 1001])),
            ("bob".to_owned(), json!([1001])),
            ("host".to_owned(), json!([])),
        ]
    );
    host.ok("mark_group_member_list", mark(json!(["bob"]), 1001, false))
        .await;
    let ev = bob.expect_event("on_member_mark_changed", WAIT).await;
    assert_eq!(
        ev["member_mark_change_info_list"][0]["enable_mark"],
        json!(false)
    );
    assert_eq!(
        marks_of(&ann, "live", &["ann", "bob"]).await,
        vec![
            ("ann".to_owned(), json!([1000, 1001])),
            ("bob".to_owned(), json!([]))
        ]
    );

    // A member may not mark; types below 1000, an empty list, a non-member and an 11th mark are
    // refused, and so is any group type but AVChatRoom.
    assert_eq!(
        ann.err_code("mark_group_member_list", mark(json!(["bob"]), 1002, true))
            .await,
        10007
    );
    assert_eq!(
        host.err_code("mark_group_member_list", mark(json!(["bob"]), 999, true))
            .await,
        10004
    );
    assert_eq!(
        host.err_code("mark_group_member_list", mark(json!([]), 1002, true))
            .await,
        10004
    );
    assert_eq!(
        host.err_code("mark_group_member_list", mark(json!(["zed"]), 1002, true))
            .await,
        10007
    );
    for t in 1002..1010 {
        host.ok("mark_group_member_list", mark(json!(["ann"]), t, true))
            .await;
    }
    assert_eq!(
        host.err_code("mark_group_member_list", mark(json!(["ann"]), 1010, true))
            .await,
        10004
    );
    // The online member list filtered by a mark (the seed's AVChatRoom member filter).
    host.ok(
        "mark_group_member_list",
        mark(json!(["bob", "host"]), 1009, true),
    )
    .await;
    let list = |t: u64| {
        json!({ "group_id": "live", "filter": "all", "next_seq": 0,
                                "count": 50, "mark_type": t })
    };
    let mut marked = ids(&bob.ok("get_group_member_list", list(1009)).await["member_info_list"]);
    marked.sort();
    assert_eq!(marked, ["ann", "bob", "host"]);
    let marked = ids(&bob.ok("get_group_member_list", list(1000)).await["member_info_list"]);
    assert_eq!(marked, ["ann"]);
    let all = ids(&bob.ok("get_group_member_list", list(0)).await["member_info_list"]);
    assert_eq!(all.len(), 3);
    create(&host, "Public", "pub", json!({})).await;
    assert_eq!(
        host.err_code(
            "get_group_member_list",
            json!({ "group_id": "pub", "filter": "all", "next_seq": 0, "count": 50,
                    "mark_type": 1000 })
        )
        .await,
        10004
    );
    assert_eq!(
        host.err_code(
            "mark_group_member_list",
            json!({ "group_id": "pub", "member_list": ["host"], "mark_type": 1000, "enable_mark": true })
        )
        .await,
        10007
    );
    assert_eq!(
        host.err_code(
            "mark_group_member_list",
            json!({ "group_id": "nope", "member_list": ["host"], "mark_type": 1000, "enable_mark": true })
        )
        .await,
        10010
    );
}
