//! Communities end to end: topics as conversations of their own (messages, per-topic unread,
//! drafts, events seen by every member), permission groups and the seed's permission bits as
//! the server enforces them (10007 without the bit), persistence across a server restart, and
//! bad ids and limits.

use std::time::Duration;

use chime_tests::{TestClient, TestServer, eventually, is_group_tips, text_of};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

// Community permission bits (V2TIMCommunityPermissionValue).
const MANAGE_GROUP_MEMBER: u64 = 0x2;
const MANAGE_PERMISSION_GROUP_MEMBER: u64 = 0x8;
const MANAGE_TOPIC_IN_COMMUNITY: u64 = 0x10;
const MUTE_MEMBER: u64 = 0x20;
const GET_HISTORY_MESSAGE: u64 = 0x100;
// Topic permission bits (V2TIMTopicPermissionValue).
const TOPIC_SEND_MESSAGE: u64 = 0x8;
const TOPIC_GET_HISTORY: u64 = 0x10;

async fn user(server: &TestServer, id: &str) -> TestClient {
    let c = TestClient::new(server).await;
    c.login(id).await;
    c
}

async fn community(owner: &TestClient, id: &str, topics: bool, members: &[&str]) {
    owner
        .ok(
            "create_group",
            json!({ "group_type": "Community", "group_id": id, "group_name": id,
                    "is_support_topic": topics, "member_list": members }),
        )
        .await;
}

async fn topic(c: &TestClient, group_id: &str, info: Value) -> String {
    let r = c
        .ok(
            "create_topic_in_community",
            json!({ "group_id": group_id, "topic_info": info }),
        )
        .await;
    r["topic_id"].as_str().unwrap_or_default().to_owned()
}

async fn send(c: &TestClient, group_id: &str, text: &str) -> Result<Value, i32> {
    c.call(
        "send_group_text_message",
        json!({ "group_id": group_id, "text": text }),
    )
    .await
    .map_err(|e| e.code)
}

async fn at_all(c: &TestClient, group_id: &str) -> Result<Value, i32> {
    let m = c
        .ok(
            "create_text_at_message",
            json!({ "text": "all of you", "at_user_list": ["__kImSDK_MessageAtALL__"] }),
        )
        .await;
    c.call(
        "send_message",
        json!({ "message": m, "group_id": group_id }),
    )
    .await
    .map_err(|e| e.code)
}

async fn topic_infos(c: &TestClient, group_id: &str) -> Vec<Value> {
    let r = c
        .ok("get_topic_info_list", json!({ "group_id": group_id }))
        .await;
    r["topic_info_result_list"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["topic_info"].clone())
        .collect()
}

async fn unread_of(c: &TestClient, conversation_id: &str) -> Option<u64> {
    let r = c
        .call(
            "get_conversation",
            json!({ "conversation_id": conversation_id }),
        )
        .await
        .ok()?;
    r["unread_count"].as_u64()
}

#[tokio::test]
async fn topics_are_conversations_of_their_own_seen_by_every_member() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let ann = user(&server, "ann").await;
    let bob = user(&server, "bob").await;
    community(&own, "guild", true, &["ann", "bob"]).await;

    let general = topic(&own, "guild", json!({ "topic_name": "General" })).await;
    assert_eq!(general, "guild@TOPIC#_1");
    let news = topic(
        &own,
        "guild",
        json!({ "topic_id": "guild@TOPIC#_news", "topic_name": "News",
                "introduction": "what is new", "custom_string": "c1" }),
    )
    .await;
    assert_eq!(news, "guild@TOPIC#_news");
    for c in [&own, &ann, &bob] {
        for t in [&general, &news] {
            let ev = c.expect_event("on_topic_created", WAIT).await;
            assert_eq!(ev, json!({ "group_id": "guild", "topic_id": t }));
        }
    }

    // A message to a topic reaches every member, in the topic's own conversation.
    let sent = send(&own, &general, "hello general").await.unwrap();
    assert_eq!(sent["group_id"], json!(general));
    assert_eq!(sent["seq"], json!(1), "a topic has its own seqs");
    for c in [&ann, &bob] {
        let got = c.expect_messages(1, WAIT).await;
        assert_eq!(text_of(&got[0]), "hello general");
        assert_eq!(got[0]["group_id"], json!(general));
    }
    send(&ann, &news, "first news").await.unwrap();
    send(&ann, &news, "second news").await.unwrap();
    bob.expect_messages(2, WAIT).await;
    let conv_general = format!("group_{general}");
    let conv_news = format!("group_{news}");
    eventually("bob's per-topic unread", || async {
        unread_of(&bob, &conv_general).await == Some(1)
            && unread_of(&bob, &conv_news).await == Some(2)
    })
    .await;

    // The topic list carries each topic's profile and the caller's conversation fields.
    let infos = topic_infos(&bob, "guild").await;
    assert_eq!(infos.len(), 2, "{infos:?}");
    let g = &infos[0];
    assert_eq!(g["topic_id"], json!(general));
    assert_eq!(g["topic_name"], json!("General"));
    assert_eq!(g["unread_count"], json!(1));
    assert_eq!(text_of(&g["last_message"]), "hello general");
    let n = &infos[1];
    assert_eq!(
        (
            &n["topic_name"],
            &n["introduction"],
            &n["custom_string"],
            &n["unread_count"]
        ),
        (
            &json!("News"),
            &json!("what is new"),
            &json!("c1"),
            &json!(2)
        )
    );
    assert_eq!(text_of(&n["last_message"]), "second news");

    // Reading one topic leaves the other unread; its draft is its own.
    bob.ok("mark_group_message_as_read", json!({ "group_id": news }))
        .await;
    bob.ok(
        "set_topic_info",
        json!({ "topic_info": { "topic_id": general, "draft_text": "half a thought" } }),
    )
    .await;
    bob.ok(
        "set_group_receive_message_opt",
        json!({ "group_id": news, "opt": "not_notify" }),
    )
    .await;
    let infos = topic_infos(&bob, "guild").await;
    assert_eq!(infos[0]["unread_count"], json!(1));
    assert_eq!(infos[0]["draft_text"], json!("half a thought"));
    assert_eq!(infos[0]["recv_opt"], json!("receive"));
    assert_eq!(infos[1]["unread_count"], json!(0));
    assert_eq!(infos[1]["draft_text"], json!(""));
    assert_eq!(infos[1]["recv_opt"], json!("not_notify"));

    // History of a topic is the topic's only.
    let h = ann
        .ok(
            "get_group_history_message_list",
            json!({ "group_id": news, "count": 10 }),
        )
        .await;
    let texts: Vec<String> = h["message_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(texts.len(), 2, "{h}");
    assert!(texts.contains(&"first news".to_owned()) && texts.contains(&"second news".to_owned()));

    // The owner changes a topic: every member hears it.
    own.ok(
        "set_topic_info",
        json!({ "topic_info": { "topic_id": general, "topic_name": "Lobby",
                                "notification": "be nice" } }),
    )
    .await;
    for c in [&ann, &bob] {
        let ev = c.expect_event("on_topic_changed", WAIT).await;
        assert_eq!(ev["group_id"], json!("guild"));
        assert_eq!(ev["topic_info"]["topic_id"], json!(general));
        assert_eq!(ev["topic_info"]["topic_name"], json!("Lobby"));
        assert_eq!(ev["topic_info"]["notification"], json!("be nice"));
        assert_eq!(ev["topic_info"]["introduction"], json!(""));
    }

    // A muted topic refuses ordinary members (10017) but not the owner.
    own.ok(
        "set_topic_info",
        json!({ "topic_info": { "topic_id": news, "is_all_muted": true } }),
    )
    .await;
    assert_eq!(send(&bob, &news, "shh").await.unwrap_err(), 10017);
    send(&own, &news, "owner speaks").await.unwrap();

    // Ordinary members manage nothing: 10007.
    assert_eq!(
        bob.err_code(
            "create_topic_in_community",
            json!({ "group_id": "guild", "topic_info": { "topic_name": "mine" } })
        )
        .await,
        10007
    );
    assert_eq!(
        bob.err_code(
            "set_topic_info",
            json!({ "topic_info": { "topic_id": general, "topic_name": "x" } })
        )
        .await,
        10007
    );
    assert_eq!(
        bob.err_code(
            "delete_topic_from_community",
            json!({ "group_id": "guild", "topic_id_list": [general] })
        )
        .await,
        10007
    );
    // A topic-enabled community is not messaged directly.
    assert_eq!(
        send(&own, "guild", "to the community").await.unwrap_err(),
        10007
    );

    // Deleting: every member hears it; unknown ids are answered per id.
    let r = own
        .ok(
            "delete_topic_from_community",
            json!({ "group_id": "guild", "topic_id_list": [news, "guild@TOPIC#_gone"] }),
        )
        .await;
    assert_eq!(
        r["topic_operation_result_list"],
        json!([
            { "topic_id": news, "code": 0, "desc": "" },
            { "topic_id": "guild@TOPIC#_gone", "code": 10010, "desc": "no such topic" },
        ])
    );
    for c in [&ann, &bob] {
        let ev = c.expect_event("on_topic_deleted", WAIT).await;
        assert_eq!(ev, json!({ "group_id": "guild", "topic_id_list": [news] }));
    }
    let infos = topic_infos(&ann, "guild").await;
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0]["topic_id"], json!(general));
    assert_eq!(send(&ann, &news, "anyone?").await.unwrap_err(), 10010);
}

#[tokio::test]
async fn permission_groups_grant_what_the_defaults_withhold() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let ann = user(&server, "ann").await;
    let bob = user(&server, "bob").await;
    let cat = user(&server, "cat").await;
    community(&own, "hall", true, &["ann", "bob", "cat"]).await;
    let t = topic(&own, "hall", json!({ "topic_name": "main" })).await;

    // Permission groups off (the default): members send, manage nothing.
    send(&bob, &t, "before").await.unwrap();
    assert_eq!(
        own.ok(
            "get_community_permission_options",
            json!({ "group_id": "hall" })
        )
        .await,
        json!({ "enable_permission_group": false, "default_permissions": 0x1c0 })
    );
    assert_eq!(
        bob.err_code(
            "set_community_permission_options",
            json!({ "group_id": "hall", "enable_permission_group": true })
        )
        .await,
        10007
    );
    // On, with members allowed only to read history.
    own.ok(
        "set_community_permission_options",
        json!({ "group_id": "hall", "enable_permission_group": true,
                "default_permissions": GET_HISTORY_MESSAGE }),
    )
    .await;
    assert_eq!(send(&bob, &t, "now?").await.unwrap_err(), 10007);
    assert_eq!(
        bob.err_code(
            "create_permission_group_in_community",
            json!({ "permission_group_info": { "group_id": "hall",
                    "permission_group_name": "mine", "group_permission": 1 } })
        )
        .await,
        10007
    );

    // A moderators group: manage topics and permission-group members, mute and kick.
    let mods = own
        .ok(
            "create_permission_group_in_community",
            json!({ "permission_group_info": { "group_id": "hall",
                    "permission_group_id": "mods", "permission_group_name": "Moderators",
                    "custom_data": "m",
                    "group_permission": MANAGE_TOPIC_IN_COMMUNITY
                        | MANAGE_PERMISSION_GROUP_MEMBER | MUTE_MEMBER | MANAGE_GROUP_MEMBER } }),
        )
        .await;
    assert_eq!(mods["permission_group_id"], json!("mods"));
    let ev = ann.expect_event("on_create_permission_group", WAIT).await;
    assert_eq!(
        ev,
        json!({ "group_id": "hall", "permission_group_info": {
            "group_id": "hall", "permission_group_id": "mods",
            "permission_group_name": "Moderators", "custom_data": "m",
            "group_permission": 0x3a, "member_count": 0 } })
    );
    // Without the membership bob still cannot manage topics.
    assert_eq!(
        bob.err_code(
            "create_topic_in_community",
            json!({ "group_id": "hall", "topic_info": { "topic_name": "bob's" } })
        )
        .await,
        10007
    );
    let r = own
        .ok(
            "add_community_members_to_permission_group",
            json!({ "group_id": "hall", "permission_group_id": "mods",
                    "member_list": ["bob", "stranger"] }),
        )
        .await;
    assert_eq!(
        r["member_operation_result_list"],
        json!([
            { "user_id": "bob", "code": 0, "desc": "" },
            { "user_id": "stranger", "code": 10007, "desc": "not a member of the community" },
        ])
    );
    for c in [&ann, &bob, &cat] {
        let ev = c
            .expect_event("on_add_members_to_permission_group", WAIT)
            .await;
        assert_eq!(
            ev,
            json!({ "group_id": "hall", "permission_group_id": "mods", "member_id_list": ["bob"] })
        );
    }
    // Now bob manages topics and permission-group members, mutes and kicks ordinary members,
    // but still cannot create permission groups (no bit) nor send (no bit).
    let bobs = topic(&bob, "hall", json!({ "topic_name": "bob's" })).await;
    assert_eq!(bobs, "hall@TOPIC#_2");
    assert_eq!(
        bob.err_code(
            "create_permission_group_in_community",
            json!({ "group_id": "hall", "permission_group_name": "x" })
        )
        .await,
        10007
    );
    bob.ok(
        "mute_group_member",
        json!({ "group_id": "hall", "user_id": "cat", "seconds": 60 }),
    )
    .await;
    assert_eq!(
        bob.err_code(
            "mute_group_member",
            json!({ "group_id": "hall", "user_id": "own", "seconds": 60 })
        )
        .await,
        10007
    );
    assert_eq!(send(&bob, &t, "still no").await.unwrap_err(), 10007);

    // A writers group with the send bit in topic t only.
    own.ok(
        "create_permission_group_in_community",
        json!({ "group_id": "hall", "permission_group_id": "writers",
                "permission_group_name": "Writers", "group_permission": 0 }),
    )
    .await;
    let r = own
        .ok(
            "add_topic_permission_to_permission_group",
            json!({ "group_id": "hall", "permission_group_id": "writers",
                    "topic_permission_map": { t.clone(): TOPIC_SEND_MESSAGE | TOPIC_GET_HISTORY } }),
        )
        .await;
    assert_eq!(
        r["topic_operation_result_list"],
        json!([{ "topic_id": t, "code": 0, "desc": "" }])
    );
    let ev = ann.expect_event("on_add_topic_permission", WAIT).await;
    assert_eq!(
        ev,
        json!({ "group_id": "hall", "permission_group_id": "writers",
                "topic_permission_map": { t.clone(): 0x18 } })
    );
    // bob adds ann to writers (he holds the permission-group member bit).
    bob.ok(
        "add_community_members_to_permission_group",
        json!({ "group_id": "hall", "permission_group_id": "writers", "member_list": ["ann"] }),
    )
    .await;
    send(&ann, &t, "a writer writes").await.unwrap();
    assert_eq!(send(&ann, &bobs, "not here").await.unwrap_err(), 10007);

    // The reads.
    let joined = ann
        .ok(
            "get_joined_permission_group_list_in_community",
            json!({ "group_id": "hall" }),
        )
        .await;
    let ids: Vec<&Value> = joined["permission_group_info_result_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["permission_group_info"]["permission_group_id"])
        .collect();
    assert_eq!(ids, vec![&json!("writers")]);
    let all = cat
        .ok(
            "get_permission_group_list_in_community",
            json!({ "group_id": "hall", "permission_group_id_list": ["mods", "nope"] }),
        )
        .await;
    let list = all["permission_group_info_result_list"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["permission_group_info"]["member_count"], json!(1));
    assert_eq!(list[1]["code"], json!(10010));
    let members = cat
        .ok(
            "get_community_member_list_in_permission_group",
            json!({ "group_id": "hall", "permission_group_id": "mods" }),
        )
        .await;
    assert_eq!(members["member_info_list"][0]["user_id"], json!("bob"));
    assert_eq!(members["is_finished"], json!(true));
    let perms = cat
        .ok(
            "get_topic_permission_in_permission_group",
            json!({ "group_id": "hall", "permission_group_id": "writers" }),
        )
        .await;
    assert_eq!(perms["topic_permission_map"], json!({ t.clone(): 0x18 }));

    // Modify to history only: ann can no longer send; delete it; then delete the group.
    own.ok(
        "modify_topic_permission_in_permission_group",
        json!({ "group_id": "hall", "permission_group_id": "writers",
                "topic_permission_map": { t.clone(): TOPIC_GET_HISTORY } }),
    )
    .await;
    let ev = cat.expect_event("on_modify_topic_permission", WAIT).await;
    assert_eq!(ev["topic_permission_map"], json!({ t.clone(): 0x10 }));
    assert_eq!(send(&ann, &t, "again").await.unwrap_err(), 10007);
    own.ok(
        "delete_topic_permission_from_permission_group",
        json!({ "group_id": "hall", "permission_group_id": "writers", "topic_id_list": [t] }),
    )
    .await;
    let ev = cat.expect_event("on_delete_topic_permission", WAIT).await;
    assert_eq!(
        ev,
        json!({ "group_id": "hall", "permission_group_id": "writers", "topic_id_list": [t] })
    );
    own.ok(
        "modify_permission_group_info_in_community",
        json!({ "permission_group_info": { "group_id": "hall", "permission_group_id": "mods",
                "permission_group_name": "Mods" } }),
    )
    .await;
    let ev = cat
        .expect_event("on_change_permission_group_info", WAIT)
        .await;
    assert_eq!(
        ev["permission_group_info"]["permission_group_name"],
        json!("Mods")
    );
    assert_eq!(ev["permission_group_info"]["group_permission"], json!(0x3a));
    bob.ok(
        "remove_community_members_from_permission_group",
        json!({ "group_id": "hall", "permission_group_id": "writers", "member_list": ["ann"] }),
    )
    .await;
    let ev = cat
        .expect_event("on_remove_members_from_permission_group", WAIT)
        .await;
    assert_eq!(ev["member_id_list"], json!(["ann"]));
    own.ok(
        "delete_permission_group_from_community",
        json!({ "group_id": "hall", "permission_group_id_list": ["mods"] }),
    )
    .await;
    let ev = cat.expect_event("on_delete_permission_group", WAIT).await;
    assert_eq!(
        ev,
        json!({ "group_id": "hall", "permission_group_id_list": ["mods"] })
    );
    assert_eq!(
        bob.err_code(
            "create_topic_in_community",
            json!({ "group_id": "hall", "topic_info": { "topic_name": "again" } })
        )
        .await,
        10007
    );
    // Reading history needs the bit: the default includes it; without it, 10007.
    own.ok(
        "set_community_permission_options",
        json!({ "group_id": "hall", "default_permissions": 0 }),
    )
    .await;
    let code = cat
        .err_code(
            "get_group_history_message_list",
            json!({ "group_id": t, "count": 10 }),
        )
        .await;
    assert_eq!(code, 10007);
    // Off again: the baseline lets members send.
    own.ok(
        "set_community_permission_options",
        json!({ "group_id": "hall", "enable_permission_group": false }),
    )
    .await;
    send(&ann, &t, "free again").await.unwrap();
}

#[tokio::test]
async fn topics_and_permission_groups_survive_a_restart() {
    let mut server = TestServer::start().await;
    let own = user(&server, "own").await;
    community(&own, "keep", true, &["ann"]).await;
    let t = topic(&own, "keep", json!({ "topic_name": "kept" })).await;
    send(&own, &t, "one").await.unwrap();
    send(&own, &t, "two").await.unwrap();
    own.ok(
        "set_community_permission_options",
        json!({ "group_id": "keep", "enable_permission_group": true, "default_permissions": 0 }),
    )
    .await;
    own.ok(
        "create_permission_group_in_community",
        json!({ "group_id": "keep", "permission_group_id": "readers",
                "permission_group_name": "Readers", "group_permission": GET_HISTORY_MESSAGE }),
    )
    .await;
    own.ok(
        "add_community_members_to_permission_group",
        json!({ "group_id": "keep", "permission_group_id": "readers", "member_list": ["ann"] }),
    )
    .await;
    own.shutdown().await;
    server.restart().await;

    // A fresh device of ann: the topic's conversation arrives by sync with its unread.
    let ann = user(&server, "ann").await;
    let conv = format!("group_{t}");
    eventually("the topic conversation after sync", || async {
        unread_of(&ann, &conv).await == Some(2)
    })
    .await;
    let infos = topic_infos(&ann, "keep").await;
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0]["topic_name"], json!("kept"));
    assert_eq!(text_of(&infos[0]["last_message"]), "two");
    let joined = ann
        .ok(
            "get_joined_permission_group_list_in_community",
            json!({ "group_id": "keep" }),
        )
        .await;
    assert_eq!(
        joined["permission_group_info_result_list"][0]["permission_group_info"]["member_count"],
        json!(1)
    );
    // Still enforced: ann reads (Readers) but may not send.
    let h = ann
        .ok(
            "get_group_history_message_list",
            json!({ "group_id": t, "count": 10 }),
        )
        .await;
    assert_eq!(h["message_list"].as_array().map(Vec::len), Some(2));
    assert_eq!(send(&ann, &t, "three").await.unwrap_err(), 10007);
    let o = ann
        .ok(
            "get_community_permission_options",
            json!({ "group_id": "keep" }),
        )
        .await;
    assert_eq!(
        o,
        json!({ "enable_permission_group": true, "default_permissions": 0 })
    );
}

/// The community-change tips (`group_tips` of type 12) of community `group_id` that `c` has
/// received as new messages so far, by their operator.
fn community_tips_received(c: &TestClient, group_id: &str) -> Vec<String> {
    c.events("on_recv_new_message")
        .iter()
        .map(|e| &e["message"])
        .filter(|m| is_group_tips(m) && m["group_id"] == json!(group_id))
        .filter(|m| m["elem_list"][0]["type"] == json!(12))
        .map(|m| m["sender"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_member_offline_catches_up_on_community_changes_once() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let dir = tempfile::tempdir().unwrap();
    let lobby = {
        let ann = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
        ann.login("ann").await;
        community(&own, "hall", true, &["ann"]).await;
        let lobby = topic(&own, "hall", json!({ "topic_name": "Lobby" })).await;
        // Online: the event, and the change as a tips message in the community's history.
        let ev = ann.expect_event("on_topic_created", WAIT).await;
        assert_eq!(ev, json!({ "group_id": "hall", "topic_id": lobby }));
        eventually("ann's tips of the first topic", || async {
            community_tips_received(&ann, "hall") == ["own"]
        })
        .await;
        ann.shutdown().await;
        lobby
    };

    // While ann is offline: a topic created, one changed, a permission group created with ann
    // in it.
    let news = topic(
        &own,
        "hall",
        json!({ "topic_id": "hall@TOPIC#_news", "topic_name": "News" }),
    )
    .await;
    own.ok(
        "set_topic_info",
        json!({ "topic_info": { "topic_id": lobby, "topic_name": "Main hall",
                                "notification": "be nice" } }),
    )
    .await;
    own.ok(
        "create_permission_group_in_community",
        json!({ "group_id": "hall", "permission_group_id": "mods",
                "permission_group_name": "Mods", "group_permission": MUTE_MEMBER }),
    )
    .await;
    own.ok(
        "add_community_members_to_permission_group",
        json!({ "group_id": "hall", "permission_group_id": "mods", "member_list": ["ann"] }),
    )
    .await;

    // ann back on the same device: the four changes arrive once each, by the login sync.
    let ann = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
    ann.login("ann").await;
    ann.expect_event("on_sync_server_finish", WAIT).await;
    eventually("ann's tips of the four changes", || async {
        community_tips_received(&ann, "hall").len() >= 4
    })
    .await;
    // The listener events come from the group actor, after the tips are announced: wait for
    // each, then give duplicates a quiet window before counting exactly.
    eventually("the listener events of the four changes", || async {
        [
            "on_topic_created",
            "on_topic_changed",
            "on_create_permission_group",
            "on_add_members_to_permission_group",
        ]
        .iter()
        .all(|e| ann.event_count(e) >= 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        community_tips_received(&ann, "hall"),
        ["own", "own", "own", "own"]
    );
    // The listener events of the caught-up tips fire too, once each.
    assert_eq!(
        ann.events("on_topic_created"),
        vec![json!({"group_id": "hall", "topic_id": news})]
    );
    assert_eq!(ann.event_count("on_topic_changed"), 1);
    assert_eq!(ann.event_count("on_create_permission_group"), 1);
    assert_eq!(ann.event_count("on_add_members_to_permission_group"), 1);
    // Each says which change it is (the listener event it stands for), in order.
    let changes: Vec<Value> = ann
        .events("on_recv_new_message")
        .iter()
        .map(|e| &e["message"]["elem_list"][0])
        .filter(|t| t["type"] == json!(12))
        .map(|t| t["community_change"]["event"].clone())
        .collect();
    assert_eq!(
        changes,
        [
            "on_topic_created",
            "on_topic_changed",
            "on_create_permission_group",
            "on_add_members_to_permission_group"
        ]
    );
    // And the local state is current.
    let infos = topic_infos(&ann, "hall").await;
    let topics: Vec<(Value, Value, Value)> = infos
        .iter()
        .map(|t| {
            (
                t["topic_id"].clone(),
                t["topic_name"].clone(),
                t["notification"].clone(),
            )
        })
        .collect();
    assert_eq!(
        topics,
        vec![
            (json!(lobby), json!("Main hall"), json!("be nice")),
            (json!(news), json!("News"), json!("")),
        ]
    );
    let joined = ann
        .ok(
            "get_joined_permission_group_list_in_community",
            json!({ "group_id": "hall" }),
        )
        .await;
    let info = &joined["permission_group_info_result_list"][0]["permission_group_info"];
    assert_eq!(info["permission_group_id"], json!("mods"));
    assert_eq!(info["group_permission"], json!(MUTE_MEMBER));
    assert_eq!(info["member_count"], json!(1));
    assert_eq!(
        joined["permission_group_info_result_list"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // The changes are in the community's history, once, and never unread.
    let h = ann
        .ok(
            "get_group_history_message_list",
            json!({ "group_id": "hall", "count": 20 }),
        )
        .await;
    let types: Vec<Value> = h["message_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| is_group_tips(m))
        .map(|m| m["elem_list"][0]["type"].clone())
        .filter(|t| *t == json!(12))
        .collect();
    assert_eq!(types.len(), 5);
    assert_eq!(unread_of(&ann, "group_hall").await, Some(0));

    // A later login with nothing new brings none of them again.
    ann.shutdown().await;
    let ann = TestClient::with_data_dir(&server, dir.path(), json!({})).await;
    ann.login("ann").await;
    ann.expect_event("on_sync_server_finish", WAIT).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(community_tips_received(&ann, "hall"), Vec::<String>::new());
}

#[tokio::test]
async fn bad_ids_and_limits_are_refused() {
    let server = TestServer::start_with_config(
        "community_max_topics = 2\ncommunity_max_permission_groups = 1\n",
    )
    .await;
    let own = user(&server, "own").await;
    let out = user(&server, "out").await;
    community(&own, "lim", true, &[]).await;
    community(&own, "flat", false, &[]).await;
    own.ok(
        "create_group",
        json!({ "group_type": "Public", "group_id": "pub", "group_name": "pub" }),
    )
    .await;

    let t = topic(&own, "lim", json!({ "topic_name": "a" })).await;
    topic(&own, "lim", json!({ "topic_name": "b" })).await;
    let create = |g: &'static str, info: Value| {
        let own = &own;
        async move {
            own.err_code(
                "create_topic_in_community",
                json!({ "group_id": g, "topic_info": info }),
            )
            .await
        }
    };
    // Over the limit of topics.
    assert_eq!(create("lim", json!({ "topic_name": "c" })).await, 10004);
    // Topics need a topic-enabled Community.
    assert_eq!(create("flat", json!({ "topic_name": "c" })).await, 10004);
    assert_eq!(create("pub", json!({ "topic_name": "c" })).await, 10004);
    assert_eq!(create("nowhere", json!({ "topic_name": "c" })).await, 10010);
    assert_eq!(create("bad\nid", json!({})).await, 8501);
    // Custom topic ids must be <group_id>@TOPIC#_<suffix>.
    assert_eq!(
        create("flat", json!({ "topic_id": "other@TOPIC#_x" })).await,
        10004
    );
    assert_eq!(create("lim", json!({ "topic_id": "lim-x" })).await, 8501);
    // Fields over the seed's limits.
    assert_eq!(
        own.err_code(
            "set_topic_info",
            json!({ "topic_info": { "topic_id": t, "topic_name": "n".repeat(31) } })
        )
        .await,
        10004
    );
    assert_eq!(
        own.err_code(
            "set_topic_info",
            json!({ "topic_info": { "topic_id": "lim@TOPIC#_none", "topic_name": "n" } })
        )
        .await,
        10010
    );
    assert_eq!(
        own.err_code(
            "set_topic_info",
            json!({ "topic_info": { "topic_id": "plain" } })
        )
        .await,
        8501
    );
    // Permission groups: one at most; unknown ids; bad bits.
    own.ok(
        "create_permission_group_in_community",
        json!({ "group_id": "lim", "permission_group_name": "one", "group_permission": 1 }),
    )
    .await;
    assert_eq!(
        own.err_code(
            "create_permission_group_in_community",
            json!({ "group_id": "lim", "permission_group_name": "two" })
        )
        .await,
        10004
    );
    assert_eq!(
        own.err_code(
            "create_permission_group_in_community",
            json!({ "group_id": "flat", "group_permission": 0x800 })
        )
        .await,
        10004
    );
    assert_eq!(
        own.err_code(
            "add_community_members_to_permission_group",
            json!({ "group_id": "lim", "permission_group_id": "nope", "member_list": ["own"] })
        )
        .await,
        10010
    );
    // Outsiders see and send nothing.
    assert_eq!(
        out.err_code("get_topic_info_list", json!({ "group_id": "lim" }))
            .await,
        10007
    );
    assert_eq!(send(&out, &t, "let me in").await.unwrap_err(), 10007);
    assert_eq!(
        out.err_code(
            "get_group_history_message_list",
            json!({ "group_id": t, "count": 5 })
        )
        .await,
        10007
    );
    assert_eq!(
        out.err_code(
            "get_permission_group_list_in_community",
            json!({ "group_id": "lim" })
        )
        .await,
        10007
    );
}

#[tokio::test]
async fn leaving_drops_permission_groups_and_dismissal_drops_the_community() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let ann = user(&server, "ann").await;
    community(&own, "gone", true, &["ann"]).await;
    own.ok(
        "set_community_permission_options",
        json!({ "group_id": "gone", "enable_permission_group": true }),
    )
    .await;
    own.ok(
        "create_permission_group_in_community",
        json!({ "group_id": "gone", "permission_group_id": "mods",
                "group_permission": MANAGE_TOPIC_IN_COMMUNITY }),
    )
    .await;
    own.ok(
        "add_community_members_to_permission_group",
        json!({ "group_id": "gone", "permission_group_id": "mods", "member_list": ["ann"] }),
    )
    .await;
    topic(&ann, "gone", json!({ "topic_name": "ann's" })).await;

    // Kicked and invited back: ann starts again with the defaults.
    own.ok(
        "kick_group_member",
        json!({ "group_id": "gone", "member_list": ["ann"] }),
    )
    .await;
    own.ok(
        "invite_user_to_group",
        json!({ "group_id": "gone", "user_list": ["ann"] }),
    )
    .await;
    eventually("ann back in the community", || async {
        ann.call("get_topic_info_list", json!({ "group_id": "gone" }))
            .await
            .is_ok()
    })
    .await;
    assert_eq!(
        ann.err_code(
            "create_topic_in_community",
            json!({ "group_id": "gone", "topic_info": { "topic_name": "again" } })
        )
        .await,
        10007
    );
    let list = own
        .ok(
            "get_permission_group_list_in_community",
            json!({ "group_id": "gone" }),
        )
        .await;
    assert_eq!(
        list["permission_group_info_result_list"][0]["permission_group_info"]["member_count"],
        json!(0)
    );

    // Dismissed and created again under the same id: no topic, no permission group is left.
    own.ok("dismiss_group", json!({ "group_id": "gone" })).await;
    community(&own, "gone", true, &[]).await;
    assert!(topic_infos(&own, "gone").await.is_empty());
    let list = own
        .ok(
            "get_permission_group_list_in_community",
            json!({ "group_id": "gone" }),
        )
        .await;
    assert_eq!(list["permission_group_info_result_list"], json!([]));
    assert_eq!(
        own.ok(
            "get_community_permission_options",
            json!({ "group_id": "gone" })
        )
        .await,
        json!({ "enable_permission_group": false, "default_permissions": 0x1c0 })
    );
}

#[tokio::test]
async fn revoking_others_in_a_topic_needs_the_revoke_bit() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let ann = user(&server, "ann").await;
    let bob = user(&server, "bob").await;
    community(&own, "rv", true, &["ann", "bob"]).await;
    let t = topic(&own, "rv", json!({ "topic_name": "t" })).await;
    let first = send(&ann, &t, "first").await.unwrap();
    let second = send(&ann, &t, "second").await.unwrap();
    bob.expect_messages(2, WAIT).await;

    // bob holds no revoke bit: 10007; ann revokes her own.
    assert_eq!(
        bob.err_code("revoke_message", json!({ "msg_id": first["msg_id"] }))
            .await,
        10007
    );
    ann.ok("revoke_message", json!({ "msg_id": first["msg_id"] }))
        .await;
    let ev = bob.expect_event("on_recv_message_revoked", WAIT).await;
    assert_eq!(ev["msg_id"], first["msg_id"]);

    // With a permission group giving the topic's revoke bit, bob revokes ann's message.
    own.ok(
        "set_community_permission_options",
        json!({ "group_id": "rv", "enable_permission_group": true }),
    )
    .await;
    own.ok(
        "create_permission_group_in_community",
        json!({ "group_id": "rv", "permission_group_id": "janitors" }),
    )
    .await;
    own.ok(
        "add_topic_permission_to_permission_group",
        json!({ "group_id": "rv", "permission_group_id": "janitors",
                "topic_permission_map": { t.clone(): 0x20 } }),
    )
    .await;
    own.ok(
        "add_community_members_to_permission_group",
        json!({ "group_id": "rv", "permission_group_id": "janitors", "member_list": ["bob"] }),
    )
    .await;
    bob.ok(
        "revoke_message",
        json!({ "msg_id": second["msg_id"], "reason": "off topic" }),
    )
    .await;
    let ev = ann.expect_event("on_recv_message_revoked", WAIT).await;
    assert_eq!(
        ev,
        json!({ "msg_id": second["msg_id"], "operate_user": "bob", "reason": "off topic" })
    );
}

#[tokio::test]
async fn sending_and_at_all_follow_the_community_and_topic_bits() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let ann = user(&server, "ann").await;
    community(&own, "flatc", false, &["ann"]).await;
    community(&own, "topc", true, &["ann"]).await;
    let t = topic(&own, "topc", json!({ "topic_name": "t" })).await;
    // A community without topics is messaged directly, by the community bits.
    send(&ann, "flatc", "hi").await.unwrap();
    for g in ["flatc", "topc"] {
        own.ok(
            "set_community_permission_options",
            json!({ "group_id": g, "enable_permission_group": true, "default_permissions": 0 }),
        )
        .await;
    }
    assert_eq!(send(&ann, "flatc", "hi?").await.unwrap_err(), 10007);
    own.ok(
        "create_permission_group_in_community",
        json!({ "group_id": "flatc", "permission_group_id": "talk", "group_permission": 0x40 }),
    )
    .await;
    own.ok(
        "add_community_members_to_permission_group",
        json!({ "group_id": "flatc", "permission_group_id": "talk", "member_list": ["ann"] }),
    )
    .await;
    send(&ann, "flatc", "hi again").await.unwrap();
    assert_eq!(at_all(&ann, "flatc").await.unwrap_err(), 10007);

    // In a topic: its default permissions give send, not @all.
    own.ok(
        "set_topic_info",
        json!({ "topic_info": { "topic_id": t, "default_permissions": TOPIC_SEND_MESSAGE } }),
    )
    .await;
    send(&ann, &t, "in the topic").await.unwrap();
    assert_eq!(at_all(&ann, &t).await.unwrap_err(), 10007);
    at_all(&own, &t).await.unwrap();
}

#[tokio::test]
async fn banning_on_a_kick_needs_the_ban_bit() {
    const BAN_MEMBER: u64 = 0x400;
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let kim = user(&server, "kim").await;
    let ban = user(&server, "ban").await;
    let ann = user(&server, "ann").await;
    let bob = user(&server, "bob").await;
    community(&own, "club", true, &["kim", "ban", "ann", "bob"]).await;
    own.ok(
        "set_community_permission_options",
        json!({ "group_id": "club", "enable_permission_group": true }),
    )
    .await;
    for (id, bits, member) in [
        ("kickers", MANAGE_GROUP_MEMBER, "kim"),
        ("banners", MANAGE_GROUP_MEMBER | BAN_MEMBER, "ban"),
    ] {
        own.ok(
            "create_permission_group_in_community",
            json!({ "group_id": "club", "permission_group_id": id,
                    "permission_group_name": id, "group_permission": bits }),
        )
        .await;
        own.ok(
            "add_community_members_to_permission_group",
            json!({ "group_id": "club", "permission_group_id": id, "member_list": [member] }),
        )
        .await;
    }
    let kick = |who: &str, duration: u64| json!({ "group_id": "club", "member_list": [who], "duration": duration });
    // kim may kick but not ban: a kick with a re-join ban is refused as a whole.
    assert_eq!(
        kim.err_code("kick_group_member", kick("ann", 600)).await,
        10007
    );
    let r = kim.ok("kick_group_member", kick("ann", 0)).await;
    assert_eq!(r["result_list"], json!([{ "user_id": "ann", "result": 0 }]));
    ann.ok("join_group", json!({ "group_id": "club", "message": "" }))
        .await;
    // ban holds both bits: bob is kicked and may not come back.
    let r = ban.ok("kick_group_member", kick("bob", 600)).await;
    assert_eq!(r["result_list"], json!([{ "user_id": "bob", "result": 0 }]));
    assert_eq!(
        bob.err_code("join_group", json!({ "group_id": "club", "message": "" }))
            .await,
        10007
    );
    // Nobody bans the owner, and an ordinary member bans nobody.
    assert_eq!(
        ban.err_code("kick_group_member", kick("own", 600)).await,
        10007
    );
    assert_eq!(
        ann.err_code("kick_group_member", kick("kim", 600)).await,
        10007
    );
    let members = own
        .ok(
            "get_group_member_list",
            json!({ "group_id": "club", "filter": "all", "next_seq": 0, "count": 50 }),
        )
        .await;
    let mut ids: Vec<&str> = members["member_info_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["ann", "ban", "kim", "own"]);
}

#[tokio::test]
async fn a_topic_turned_off_is_not_delivered_while_the_other_topics_are() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let ann = user(&server, "ann").await;
    let cat = user(&server, "cat").await;
    community(&own, "town", true, &["ann", "cat"]).await;
    let quiet = topic(&own, "town", json!({ "topic_name": "quiet" })).await;
    let loud = topic(&own, "town", json!({ "topic_name": "loud" })).await;
    let opt = |t: &str, o: &str| json!({ "group_id": t, "opt": o });
    ann.ok("set_group_receive_message_opt", opt(&quiet, "not_receive"))
        .await;
    let infos = topic_infos(&ann, "town").await;
    assert_eq!(infos[0]["topic_id"], json!(quiet));
    assert_eq!(infos[0]["recv_opt"], json!("not_receive"));
    assert_eq!(infos[1]["recv_opt"], json!("receive"));

    let first = send(&own, &quiet, "hush").await.unwrap();
    let second = send(&own, &loud, "shout").await.unwrap();
    // cat gets both; ann only the loud topic's.
    let got = cat.expect_messages(2, WAIT).await;
    let texts: Vec<String> = got.iter().map(text_of).collect();
    assert_eq!(texts, ["hush", "shout"]);
    let got = ann.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], second["msg_id"]);
    assert_eq!(got[0]["group_id"], json!(loud));
    assert_eq!(
        ann.next_event("on_recv_new_message", Duration::from_millis(800))
            .await,
        None
    );
    assert_ne!(first["msg_id"], second["msg_id"]);

    // Back on: the next message of the quiet topic arrives.
    ann.ok("set_group_receive_message_opt", opt(&quiet, "receive"))
        .await;
    let third = send(&own, &quiet, "hello again").await.unwrap();
    let got = ann.expect_messages(1, WAIT).await;
    assert_eq!(got[0]["msg_id"], third["msg_id"]);
    assert_eq!(got[0]["group_id"], json!(quiet));
}

#[tokio::test]
async fn topic_messages_are_pinned_reacted_extended_and_receipted() {
    let server = TestServer::start().await;
    let own = user(&server, "own").await;
    let ann = user(&server, "ann").await;
    let bob = user(&server, "bob").await;
    community(&own, "den", true, &["ann", "bob"]).await;
    let t = topic(&own, "den", json!({ "topic_name": "news" })).await;
    let m = own
        .ok("create_text_message", json!({ "text": "read me" }))
        .await;
    let sent = own
        .ok(
            "send_message",
            json!({ "message": m, "group_id": t, "need_read_receipt": true }),
        )
        .await;
    let id = sent["msg_id"].clone();
    for c in [&ann, &bob] {
        let got = c.expect_messages(1, WAIT).await;
        assert_eq!(got[0]["msg_id"], id);
    }

    // Pins: the community's owner pins; members see the event and the list; a member may not.
    own.ok(
        "pin_group_message",
        json!({ "group_id": t, "msg_id": id, "is_pinned": true }),
    )
    .await;
    let ev = ann.expect_event("on_group_message_pinned", WAIT).await;
    assert_eq!(ev["group_id"], json!(t));
    assert_eq!(ev["message"]["msg_id"], id);
    let list = bob
        .ok("get_pinned_group_messages", json!({ "group_id": t }))
        .await;
    assert_eq!(list["message_list"][0]["msg_id"], id);
    assert_eq!(list["message_list"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        ann.err_code(
            "pin_group_message",
            json!({ "group_id": t, "msg_id": id, "is_pinned": false })
        )
        .await,
        10007
    );

    // Reactions and extensions.
    ann.ok(
        "add_message_reaction",
        json!({ "msg_id": id, "reaction_id": "heart" }),
    )
    .await;
    let r = bob
        .ok("get_message_reactions", json!({ "msg_ids": [id.clone()] }))
        .await;
    assert_eq!(
        r["result_list"][0]["reaction_list"][0]["reaction_id"],
        "heart"
    );
    assert_eq!(
        r["result_list"][0]["reaction_list"][0]["total_user_count"],
        json!(1)
    );
    let r = bob
        .ok(
            "set_message_extensions",
            json!({ "msg_id": id, "extensions": [{ "key": "vote", "value": "yes" }] }),
        )
        .await;
    assert_eq!(r["result_list"][0]["result_code"], json!(0));
    let got = ann
        .ok("get_message_extensions", json!({ "msg_id": id }))
        .await;
    assert_eq!(
        got,
        json!({ "extension_list": [{ "key": "vote", "value": "yes", "version": 1 }] })
    );

    // Read receipts count the community's members but the sender.
    ann.ok(
        "send_message_read_receipts",
        json!({ "msg_ids": [id.clone()] }),
    )
    .await;
    let ev = own
        .expect_event("on_recv_message_read_receipts", WAIT)
        .await;
    let r = &ev["receipt_list"][0];
    assert_eq!(r["msg_id"], id);
    assert_eq!(
        (r["read_count"].clone(), r["unread_count"].clone()),
        (json!(1), json!(1))
    );
    let read = own
        .ok(
            "get_group_message_read_member_list",
            json!({ "msg_id": id, "filter": "unread", "next_seq": 0, "count": 10 }),
        )
        .await;
    assert_eq!(read["member_list"], json!([{ "user_id": "bob" }]));
}
