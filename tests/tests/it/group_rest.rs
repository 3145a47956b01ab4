//! The group events only the app backend or the system cause, end to end through a real server's
//! REST API and real engines: `send_group_system_notification` (→ `on_receive_rest_custom_data`,
//! online only, to all or the listed members, a community topic's too), `destroy_group` (→
//! `on_group_dismissed` by the administrator), `recycle_group` and the automatic recycling of
//! idle groups (→ `on_group_recycled`); offline members find the group gone at their next login.

use std::time::Duration;

use chime_tests::{APP2_ID, TestClient, TestServer, eventually};
use serde_json::{Value, json};

use crate::rest::rest;

const WAIT: Duration = Duration::from_secs(15);
const ADMIN: &str = "administrator";
const NOTIFY: &str = "group_open_http_svc/send_group_system_notification";
const CUSTOM: &str = "on_receive_rest_custom_data";

async fn client(server: &TestServer, user: &str) -> TestClient {
    let c = TestClient::new(server).await;
    c.login(user).await;
    c
}

/// Calls `api` and asserts success.
async fn ok(server: &TestServer, api: &str, body: Value) {
    let out = rest(server, api, body).await;
    assert_eq!(
        (&out["ActionStatus"], &out["ErrorCode"], &out["ErrorInfo"]),
        (&json!("OK"), &json!(0), &json!("")),
        "{api}: {out}"
    );
}

/// Calls `api`, asserts failure and answers its code.
async fn fail(server: &TestServer, api: &str, body: Value) -> i64 {
    let out = rest(server, api, body).await;
    assert_eq!(out["ActionStatus"], "FAIL", "{api}: {out}");
    out["ErrorCode"].as_i64().unwrap_or(0)
}

/// Creates group `id` of `owner`'s with `members` through the owner's engine.
async fn group(owner: &TestClient, id: &str, group_type: &str, members: &[&str]) {
    owner
        .ok(
            "create_group",
            json!({ "group_type": group_type, "group_id": id, "group_name": id,
                    "member_list": members }),
        )
        .await;
}

async fn joined(c: &TestClient) -> Vec<String> {
    let list = c.ok("get_joined_group_list", json!({})).await;
    list["group_list"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|g| g["group_id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `c`'s next custom-data event; the test's notifications each carry a distinct content, so
/// the first one a client has not yet returned tells what reached it, in order.
async fn next_custom(c: &TestClient) -> Value {
    c.expect_event(CUSTOM, WAIT).await
}

#[tokio::test]
async fn system_notifications_reach_the_online_members_listed_or_all() {
    let server = TestServer::start().await;
    let alice = client(&server, "alice").await;
    let bob = client(&server, "bob").await;
    // Bob's second device is a web one (the default policy keeps one session per class).
    let bob_pad = TestClient::with_config(&server, json!({ "platform": "web" })).await;
    bob_pad.login("bob").await;
    let carol = client(&server, "carol").await;
    let dave = client(&server, "dave").await;
    // The same user id in another app.
    let bob_app2 = TestClient::with_config(&server, json!({ "sdk_app_id": APP2_ID })).await;
    bob_app2.login("bob").await;
    let eve = client(&server, "eve").await;
    group(&alice, "g_sys", "Public", &["bob", "carol", "eve"]).await;
    eventually("eve is in the group", || async {
        joined(&eve).await == vec!["g_sys".to_owned()]
    })
    .await;
    eve.ok("logout", json!({})).await;

    // To every member: the owner, both of bob's devices, carol.
    ok(
        &server,
        NOTIFY,
        json!({"GroupId": "g_sys", "Content": "to everyone"}),
    )
    .await;
    let all = json!({"group_id": "g_sys", "custom_data": "to everyone"});
    for c in [&alice, &bob, &bob_pad, &carol] {
        assert_eq!(next_custom(c).await, all, "{}", c.event_summary());
    }

    // To the listed members only; a non-member listed (dave) is ignored.
    ok(
        &server,
        NOTIFY,
        json!({"GroupId": "g_sys", "ToMembers_Account": ["bob", "dave"], "Content": "just bob"}),
    )
    .await;
    let just_bob = json!({"group_id": "g_sys", "custom_data": "just bob"});
    assert_eq!(next_custom(&bob).await, just_bob);
    assert_eq!(next_custom(&bob_pad).await, just_bob);

    // Eve was offline for both: she logs in now and gets only what follows.
    eve.login("eve").await;
    ok(
        &server,
        NOTIFY,
        json!({"GroupId": "g_sys", "Content": "after eve logged in"}),
    )
    .await;
    let after = json!({"group_id": "g_sys", "custom_data": "after eve logged in"});
    // Pushes on one connection keep their order: the next event of those not listed is this
    // one, so they never got "just bob".
    for c in [&alice, &carol, &eve, &bob, &bob_pad] {
        assert_eq!(next_custom(c).await, after, "{}", c.event_summary());
    }
    // Non-members and the other app's bob got nothing at all.
    dave.events_delivered().await;
    bob_app2.events_delivered().await;
    assert_eq!(dave.event_count(CUSTOM), 0, "{}", dave.event_summary());
    assert_eq!(bob_app2.event_count(CUSTOM), 0);

    // Not a message: nothing in the group's history carries it.
    let history = carol
        .ok(
            "get_group_history_message_list",
            json!({"group_id": "g_sys", "count": 50}),
        )
        .await
        .to_string();
    assert!(
        !history.contains("to everyone") && !history.contains("just bob"),
        "{history}"
    );

    // Bad requests.
    assert_eq!(
        fail(&server, NOTIFY, json!({"GroupId": "nope", "Content": "x"})).await,
        10010
    );
    assert_eq!(
        fail(&server, NOTIFY, json!({"GroupId": "g_sys", "Content": ""})).await,
        10004
    );
    assert_eq!(
        fail(&server, NOTIFY, json!({"GroupId": "", "Content": "x"})).await,
        10004
    );
    let many: Vec<String> = (0..501).map(|i| format!("u{i}")).collect();
    assert_eq!(
        fail(
            &server,
            NOTIFY,
            json!({"GroupId": "g_sys", "ToMembers_Account": many, "Content": "x"})
        )
        .await,
        10004
    );
    assert_eq!(
        fail(&server, NOTIFY, json!({"GroupId": "g_sys"})).await,
        90002
    );
}

#[tokio::test]
async fn a_topic_notification_names_the_topic() {
    let server = TestServer::start().await;
    let own = client(&server, "own").await;
    let bob = client(&server, "bob").await;
    own.ok(
        "create_group",
        json!({ "group_type": "Community", "group_id": "guild", "group_name": "guild",
                "is_support_topic": true, "member_list": ["bob"] }),
    )
    .await;
    let r = own
        .ok(
            "create_topic_in_community",
            json!({ "group_id": "guild", "topic_info": { "topic_name": "news" } }),
        )
        .await;
    let topic = r["topic_id"].as_str().unwrap_or_default().to_owned();
    ok(
        &server,
        NOTIFY,
        json!({"GroupId": "guild", "TopicId": topic, "Content": "topic news"}),
    )
    .await;
    let expected = json!({"group_id": "guild", "custom_data": "topic news", "topic_id": topic});
    assert_eq!(next_custom(&bob).await, expected);
    assert_eq!(next_custom(&own).await, expected);
    // A topic the community does not have, or one of another group.
    assert_eq!(
        fail(
            &server,
            NOTIFY,
            json!({"GroupId": "guild", "TopicId": "guild@TOPIC#_none", "Content": "x"})
        )
        .await,
        10010
    );
    assert_eq!(
        fail(
            &server,
            NOTIFY,
            json!({"GroupId": "guild", "TopicId": "other@TOPIC#_t", "Content": "x"})
        )
        .await,
        10004
    );
}

/// Ends `g_end` (alice's, with bob online and carol offline) by `api` and checks that the online
/// members get `event` by the administrator and that carol finds the group gone at her login.
async fn group_ends_for_every_member(api: &str, event: &str) {
    let server = TestServer::start().await;
    let alice = client(&server, "alice").await;
    let bob = client(&server, "bob").await;
    let carol = client(&server, "carol").await;
    group(&alice, "g_end", "Work", &["bob", "carol"]).await;
    group(&alice, "g_keep", "Work", &["carol"]).await;
    eventually("carol sees both groups", || async {
        joined(&carol).await.len() == 2
    })
    .await;
    carol.ok("logout", json!({})).await;

    ok(&server, api, json!({"GroupId": "g_end"})).await;
    let expected = json!({"group_id": "g_end", "op_user": ADMIN});
    assert_eq!(alice.expect_event(event, WAIT).await, expected);
    assert_eq!(bob.expect_event(event, WAIT).await, expected);
    assert_eq!(joined(&bob).await, Vec::<String>::new());
    assert_eq!(joined(&alice).await, vec!["g_keep".to_owned()]);

    // Carol was offline: her next login's sync drops the group.
    carol.login("carol").await;
    eventually("carol's joined list drops the ended group", || async {
        joined(&carol).await == vec!["g_keep".to_owned()]
    })
    .await;
    assert_eq!(
        bob.err_code(
            "get_group_member_list",
            json!({"group_id": "g_end", "filter": "all", "next_seq": 0, "count": 50}),
        )
        .await,
        10010
    );

    // Gone: a second call finds no group; malformed ids are bad params.
    assert_eq!(fail(&server, api, json!({"GroupId": "g_end"})).await, 10010);
    assert_eq!(fail(&server, api, json!({"GroupId": ""})).await, 10004);
    assert_eq!(fail(&server, api, json!({})).await, 90002);
}

#[tokio::test]
async fn destroy_group_dismisses_it_for_every_member_as_the_administrator() {
    group_ends_for_every_member("group_open_http_svc/destroy_group", "on_group_dismissed").await;
}

#[tokio::test]
async fn recycle_group_recycles_it_for_every_member() {
    group_ends_for_every_member("group_open_http_svc/recycle_group", "on_group_recycled").await;
}

#[tokio::test]
async fn idle_groups_are_recycled_by_the_system_but_live_rooms_in_use_and_communities_stay() {
    let server =
        TestServer::start_with_config("group_recycle_idle_secs = 1\ngroup_recycle_scan_secs = 1\n")
            .await;
    let bob = client(&server, "bob").await;
    group(&bob, "live", "AVChatRoom", &[]).await;
    group(&bob, "guild", "Community", &[]).await;
    group(&bob, "quiet", "Public", &[]).await;
    assert_eq!(
        bob.expect_event("on_group_recycled", WAIT).await,
        json!({"group_id": "quiet", "op_user": ADMIN})
    );
    // A group created after that recycle is recycled by a later scan, which also looked at the
    // live room and the community again: they are still there.
    group(&bob, "later", "Meeting", &[]).await;
    assert_eq!(
        bob.expect_event("on_group_recycled", WAIT).await,
        json!({"group_id": "later", "op_user": ADMIN})
    );
    let mut list = joined(&bob).await;
    list.sort();
    assert_eq!(list, vec!["guild".to_owned(), "live".to_owned()]);
    let info = bob
        .ok("get_groups_info", json!({"group_ids": ["quiet"]}))
        .await;
    assert_eq!(info["group_info_result_list"][0]["result_code"], 10010);
}

#[tokio::test]
async fn rest_reads_and_edits_of_a_group_emit_the_member_events() {
    let server = TestServer::start().await;
    let alice = client(&server, "alice").await;
    let bob = client(&server, "bob").await;
    let carol = client(&server, "carol").await;
    let _dave = client(&server, "dave").await;
    group(&alice, "g_edit", "Public", &["bob", "carol"]).await;
    const INFO: &str = "group_open_http_svc/get_group_info";

    let out = rest(&server, INFO, json!({"GroupIdList": ["g_edit", "nope"]})).await;
    assert_eq!(out["ActionStatus"], "OK", "{out}");
    let g = &out["GroupInfo"][0];
    assert_eq!(
        (&g["GroupId"], &g["ErrorCode"], &g["Type"], &g["Name"]),
        (
            &json!("g_edit"),
            &json!(0),
            &json!("Public"),
            &json!("g_edit")
        )
    );
    assert_eq!(
        (&g["Owner_Account"], &g["MemberNum"], &g["ShutUpAllMember"]),
        (&json!("alice"), &json!(3), &json!("Off"))
    );
    assert_eq!(
        out["GroupInfo"][1],
        json!({"GroupId": "nope", "ErrorCode": 10010, "ErrorInfo": "no such group"})
    );
    assert_eq!(fail(&server, INFO, json!({"GroupIdList": []})).await, 10004);

    // Profile and mute-all: the members' info and mute events, by the administrator.
    ok(
        &server,
        "group_open_http_svc/modify_group_base_info",
        json!({"GroupId": "g_edit", "Name": "renamed", "MuteAllMember": "On"}),
    )
    .await;
    assert_eq!(
        bob.expect_event("on_group_info_changed", WAIT).await,
        json!({"group_id": "g_edit", "op_user": ADMIN, "change_info_list": [
            {"key": "is_all_muted", "value": "true"}, {"key": "name", "value": "renamed"}]})
    );
    assert_eq!(
        bob.expect_event("on_all_group_members_muted", WAIT).await,
        json!({"group_id": "g_edit", "is_mute": true})
    );
    let out = rest(&server, INFO, json!({"GroupIdList": ["g_edit"]})).await;
    assert_eq!(
        (
            &out["GroupInfo"][0]["Name"],
            &out["GroupInfo"][0]["ShutUpAllMember"]
        ),
        (&json!("renamed"), &json!("On"))
    );
    assert_eq!(
        fail(
            &server,
            "group_open_http_svc/modify_group_base_info",
            json!({"GroupId": "g_edit", "MuteAllMember": "Maybe"})
        )
        .await,
        10004
    );
    ok(
        &server,
        "group_open_http_svc/modify_group_base_info",
        json!({"GroupId": "g_edit", "MuteAllMember": "Off"}),
    )
    .await;
    assert_eq!(
        bob.expect_event("on_all_group_members_muted", WAIT).await,
        json!({"group_id": "g_edit", "is_mute": false})
    );

    // A new owner.
    ok(
        &server,
        "group_open_http_svc/change_group_owner",
        json!({"GroupId": "g_edit", "NewOwner_Account": "bob"}),
    )
    .await;
    assert_eq!(
        carol.expect_event("on_group_info_changed", WAIT).await,
        json!({"group_id": "g_edit", "op_user": ADMIN, "change_info_list": [
            {"key": "is_all_muted", "value": "true"}, {"key": "name", "value": "renamed"}]})
    );
    assert_eq!(
        carol.expect_event("on_group_info_changed", WAIT).await,
        json!({"group_id": "g_edit", "op_user": ADMIN, "change_info_list": [
            {"key": "is_all_muted", "value": "false"}]})
    );
    assert_eq!(
        carol.expect_event("on_group_info_changed", WAIT).await,
        json!({"group_id": "g_edit", "op_user": ADMIN, "change_info_list": [
            {"key": "owner", "value": "bob"}]})
    );
    let out = rest(&server, INFO, json!({"GroupIdList": ["g_edit"]})).await;
    assert_eq!(out["GroupInfo"][0]["Owner_Account"], "bob");
    // Only a member may own the group.
    assert_eq!(
        fail(
            &server,
            "group_open_http_svc/change_group_owner",
            json!({"GroupId": "g_edit", "NewOwner_Account": "dave"})
        )
        .await,
        10007
    );

    // Muting a member: everyone's member-info event; the member may not speak until unmuted.
    ok(
        &server,
        "group_open_http_svc/forbid_send_msg",
        json!({"GroupId": "g_edit", "Members_Account": ["carol"], "MuteTime": 600}),
    )
    .await;
    let muted = json!({"group_id": "g_edit", "op_user": ADMIN,
                       "member_change_info_list": [{"user_id": "carol", "mute_time": 600}]});
    assert_eq!(
        alice.expect_event("on_member_info_changed", WAIT).await,
        muted
    );
    assert_eq!(
        carol.expect_event("on_member_info_changed", WAIT).await,
        muted
    );
    assert_eq!(
        carol
            .err_code(
                "send_group_text_message",
                json!({"group_id": "g_edit", "text": "hello"})
            )
            .await,
        10017
    );
    ok(
        &server,
        "group_open_http_svc/forbid_send_msg",
        json!({"GroupId": "g_edit", "Members_Account": ["carol"], "MuteTime": 0}),
    )
    .await;
    assert_eq!(
        carol.expect_event("on_member_info_changed", WAIT).await,
        json!({"group_id": "g_edit", "op_user": ADMIN,
               "member_change_info_list": [{"user_id": "carol", "mute_time": 0}]})
    );
    carol
        .ok(
            "send_group_text_message",
            json!({"group_id": "g_edit", "text": "hello"}),
        )
        .await;
    assert_eq!(
        fail(
            &server,
            "group_open_http_svc/forbid_send_msg",
            json!({"GroupId": "g_edit", "Members_Account": [], "MuteTime": 60})
        )
        .await,
        10004
    );
    assert_eq!(
        fail(
            &server,
            "group_open_http_svc/forbid_send_msg",
            json!({"GroupId": "nope", "Members_Account": ["carol"], "MuteTime": 60})
        )
        .await,
        10010
    );
}
